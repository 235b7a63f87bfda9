"""Training throughput (issue 14): where a DQN update's time goes, and frames per second of the
trainer under settings that keep the replay ratio (samples replayed per frame) of today's default.

Two parts, one results file (results/throughput.{json,md}):

- ``updates``: one TD update (forward online and target, Huber loss, backward, gradient clip, fused
  Adam) of the default MinAtar Q-network at batch sizes 32..1024, one torch thread and two: ms per
  update, ms per 32 samples (the cost of one frame at the default replay ratio), and the
  arithmetic rate it reaches; in float32 and, as a candidate, under bfloat16 autocast. This is the floor the trainer cannot go under without replaying less.
- ``train``: ``spikeverse.rl.train.train_dqn`` on MinAtar Breakout for ``--frames`` frames (the
  first 5,000 fill the replay memory) under each setting, one after another on an otherwise idle
  machine: today's loop (``num_envs`` 1, one update of 32 per frame) and settings with ``N``
  environments, acting batched, and the same 32 samples per frame replayed as N updates of 32 or
  one update of 32 N. Frames per second over the whole run and its ratio to today's.

- ``sample``: the learning curve per frame of one faster setting (8 envs, one update of 256 per 8
  frames, bfloat16) on seeds 100-102 (the MinAtar defaults were tuned on seed 0), next to the one
  run of today's trainer in results/minatar_breakout.json. Run directories in
  benchmarks/runs/throughput/ (a rerun resumes them).

    python benchmarks/throughput.py updates
    python benchmarks/throughput.py train --frames 20000
    python benchmarks/throughput.py sample --frames 1000000 --seeds 100 101 102
    python benchmarks/throughput.py --report
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from _results import CARTPOLE_LOOP_BEFORE_ISSUE_14, MINATAR_LOOP_BEFORE_ISSUE_14, RESULTS, median, rewrite_reports, seed_span, write_report
from cartpole_dqn import SOLVED, run_spikeverse

NAME = "throughput"
ENV = "MinAtar/Breakout"
BATCHES = (32, 64, 128, 256, 512, 1024)
# (agent, setting, DQNConfig overrides); the first setting of an agent is today's loop, and every
# setting replays 32 samples per frame, as today's default does
SETTINGS = [
    ("dqn", "today: 1 env, 1 x 32 per frame", MINATAR_LOOP_BEFORE_ISSUE_14, 1),
    ("dqn", "8 envs, 8 x 32 per 8 frames", dict(num_envs=8, gradient_steps=8, precision="float32"), 1),
    ("dqn", "8 envs, 1 x 256 per 8 frames", dict(num_envs=8, batch_size=256, precision="float32"), 1),
    ("dqn", "32 envs, 1 x 1024 per 32 frames", dict(num_envs=32, batch_size=1024, precision="float32"), 1),
    ("dqn", "8 envs, 1 x 256 per 8 frames, bfloat16", dict(num_envs=8, batch_size=256, precision="bfloat16"), 1),
    ("dqn", "32 envs, 1 x 1024 per 32 frames, bfloat16", dict(num_envs=32, batch_size=1024, precision="bfloat16"), 1),
    ("dqn", "32 envs, 1 x 1024 per 32 frames, bfloat16, 2 threads",
     dict(num_envs=32, batch_size=1024, precision="bfloat16"), 2),
    ("rainbow", "today: 1 env, 1 x 32 per frame", dict(rainbow=True, **MINATAR_LOOP_BEFORE_ISSUE_14), 1),
    ("rainbow", "8 envs, 1 x 256 per 8 frames", dict(rainbow=True, num_envs=8, batch_size=256, precision="float32"), 1),
    ("rainbow", "32 envs, 1 x 1024 per 32 frames, bfloat16, 2 threads",
     dict(rainbow=True, num_envs=32, batch_size=1024, precision="bfloat16"), 2),
    ("dsqn T=8", "today: 1 env, 1 x 32 per frame", dict(spiking=True, timesteps=8, **MINATAR_LOOP_BEFORE_ISSUE_14), 1),
    ("dsqn T=8", "8 envs, 1 x 256 per 8 frames", dict(spiking=True, timesteps=8, num_envs=8, batch_size=256), 1),
    ("dsqn T=8", "32 envs, 1 x 1024 per 32 frames, 2 threads",
     dict(spiking=True, timesteps=8, num_envs=32, batch_size=1024), 2),
]


def _config(overrides: dict, frames: int):
    from spikeverse.rl.config import DQNConfig
    from spikeverse.snn.config import SpikingConfig

    o = dict(overrides)
    if o.pop("spiking", False):
        o["spiking"] = SpikingConfig(timesteps=o.pop("timesteps"))
    return DQNConfig.for_env(ENV, seed=0, device="cpu", total_steps=frames, eval_interval=0,
                             checkpoint_interval=10 * frames, **o)


def _random_batch(batch: int) -> dict:
    """A replay batch of random 0/1 MinAtar frames (10% on), the same for every measurement."""
    rng = np.random.default_rng(0)
    return dict(obs=(rng.random((batch, 4, 10, 10)) < 0.1).astype(np.float32), action=rng.integers(0, 6, batch),
                reward=rng.random(batch).astype(np.float32),
                next_obs=(rng.random((batch, 4, 10, 10)) < 0.1).astype(np.float32),
                discount=np.full(batch, 0.99, np.float32), weights=np.ones(batch, np.float32))


def _update_cost(args) -> dict:
    batch, threads, precision = args
    import contextlib

    import torch

    torch.set_num_threads(threads)
    from spikeverse.rl.dqn import DQNAgent, network_spec

    cfg = _config({}, 1)
    agent = DQNAgent(cfg, network_spec(cfg, (4, 10, 10), 6), torch.device("cpu"))
    sample = _random_batch(batch)
    # bf16: a candidate measured from outside the agent (autocast around the whole update, the
    # master weights and Adam in float32); the trainer itself runs float32
    cast = (torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext())
    with cast:
        for _ in range(20):
            agent.update(sample)
        n = max(20, int(4096 / batch) * 5)
        start = time.perf_counter()
        for _ in range(n):
            agent.update(sample)
        ms = (time.perf_counter() - start) / n * 1e3
    net = agent.online
    macs = _macs(net, torch.zeros(1, 4, 10, 10))
    # forward online + forward target + backward (about twice a forward) per sample
    gflops = 2 * 4 * macs * batch / (ms * 1e-3) / 1e9
    return dict(batch=batch, threads=threads, precision=precision, ms_per_update=round(ms, 3), ms_per_32_samples=round(ms * 32 / batch, 3),
                frames_per_s_floor=round(1e3 / (ms * 32 / batch), 0), gflops=round(gflops, 1))


def _macs(net, x) -> int:
    """Multiply-accumulates of one forward of ``net`` on one observation (conv and linear layers)."""
    import torch

    total = 0

    def hook(mod, inp, out):
        nonlocal total
        if isinstance(mod, torch.nn.Conv2d):
            total += out.numel() * mod.in_channels * mod.kernel_size[0] * mod.kernel_size[1] // mod.groups
        elif isinstance(mod, torch.nn.Linear):
            total += out.numel() * mod.in_features

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    with torch.no_grad():
        net(x)
    for h in handles:
        h.remove()
    return total


def updates(args) -> None:
    rows = []
    for precision in ("fp32", "bf16"):
        for threads in (1, 2):
            for batch in BATCHES:
                with mp.get_context("spawn").Pool(1) as pool:  # a fresh process per measurement
                    rows.append(pool.apply(_update_cost, ((batch, threads, precision),)))
            print(rows[-1], flush=True)
    _save(updates=dict(env=ENV, rows=rows, command="python benchmarks/throughput.py updates"))


WINDOW_COMMIT = "f3631c6"  # the DSQN fused window's forward stores its backward's coefficients


def _window_ab(args) -> dict:
    """One DSQN T=8 update of ``batch`` samples (MinAtar network) with the fused window of before
    WINDOW_COMMIT (its neurons module read from git) and of today, alternated in one process:
    the median ms of each over ``reps`` rounds of 5 updates."""
    batch, reps = args
    import importlib.util
    import subprocess

    import torch

    torch.set_num_threads(1)
    import spikeverse.snn.neurons as neurons
    from spikeverse.rl.dqn import DQNAgent, network_spec

    src = subprocess.run(["git", "show", f"{WINDOW_COMMIT}^:src/spikeverse/snn/neurons.py"], capture_output=True,
                         text=True, check=True, cwd=Path(__file__).parent).stdout
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(src)
    spec = importlib.util.spec_from_file_location("neurons_before", f.name)
    before = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(before)
    cfg = replace(_config(dict(spiking=True, timesteps=8), 1), batch_size=batch)
    agent = DQNAgent(cfg, network_spec(cfg, (4, 10, 10), 6), torch.device("cpu"))
    sample = _random_batch(batch)
    today, ms = neurons._DSQNWindow, {"before": [], "after": []}
    for _ in range(reps):
        for name, window in (("before", before._DSQNWindow), ("after", today)):
            neurons._DSQNWindow = window
            agent.update(sample)
            start = time.perf_counter()
            for _ in range(5):
                agent.update(sample)
            ms[name].append((time.perf_counter() - start) / 5 * 1e3)
    neurons._DSQNWindow = today
    out = {k: round(float(np.median(v)), 2) for k, v in ms.items()}
    return dict(batch=batch, ms_before=out["before"], ms_after=out["after"], speedup=round(out["before"] / out["after"], 3))


def window(args) -> None:
    rows = []
    for batch in (256, 1024):
        with mp.get_context("spawn").Pool(1) as pool:
            rows.append(pool.apply(_window_ab, ((batch, 7),)))
        print(rows[-1], flush=True)
    _save(window=dict(commit=WINDOW_COMMIT, rows=rows, command="python benchmarks/throughput.py window",
                      note=args.note))


def _render_window(w: dict) -> list[str]:
    md = ["## The DSQN window before and after its coefficients moved to the forward", "",
          f"`{w['command']}`: one DSQN update (T=8, MinAtar network, one torch thread) with the fused window of "
          f"before commit {w['commit']} and of after it, alternated in one process; median ms over 7 rounds of 5 "
          "updates." + (f" {w['note']}" if w.get("note") else ""), "",
          "| batch | ms before | ms after | speed-up |", "|---|---|---|---|"]
    md += [f"| {r['batch']} | {r['ms_before']:.1f} | {r['ms_after']:.1f} | {r['speedup']:.2f} |" for r in w["rows"]]
    return md + [""]


def _train_one(args) -> dict:
    agent, name, overrides, frames, threads = args
    import torch

    torch.set_num_threads(threads)
    from spikeverse.rl.train import train_dqn

    cfg = _config(overrides, frames)
    with tempfile.TemporaryDirectory() as d:
        start = time.perf_counter()
        res = train_dqn(cfg, Path(d) / "run", progress=False)
        wall = time.perf_counter() - start
    return dict(agent=agent, setting=name, frames=res.steps, wall_s=round(wall, 1), frames_per_s=round(res.steps / wall, 1),
                threads=threads, num_envs=cfg.num_envs, batch_size=cfg.batch_size, gradient_steps=cfg.gradient_steps,
                samples_per_frame=cfg.batch_size * cfg.gradient_steps / (cfg.num_envs * cfg.train_freq))


def train(args) -> None:
    """Every setting in turn; a rerun keeps the rows already measured at this frame count."""
    path = RESULTS / f"{NAME}.json"
    old = (json.loads(path.read_text()) if path.exists() else {}).get("train", {})
    done = {(r["agent"], r["setting"]): r for r in old.get("rows", [])} if old.get("frames") == args.frames else {}
    known = {(a, n) for a, n, _, _ in SETTINGS}
    rows = [r for key, r in done.items() if key not in known]  # rows of earlier code, kept as the record
    for agent, name, overrides, threads in SETTINGS:
        if (agent, name) not in done:
            with mp.get_context("spawn").Pool(1) as pool:
                done[(agent, name)] = pool.apply(_train_one, ((agent, name, overrides, args.frames, threads),))
            print(done[(agent, name)], flush=True)
        rows.append(done[(agent, name)])
        _save(train=dict(env=ENV, frames=args.frames, rows=rows,
                         command=f"python benchmarks/throughput.py train --frames {args.frames}"))


# settings of the sample-efficiency check: key -> (description, DQNConfig overrides, torch threads)
SAMPLE_SETTINGS = {
    "today": ("today: 1 env, 1 x 32 per frame", {}, 1),
    "8env": ("8 envs, 1 x 256 per 8 frames, bfloat16", dict(num_envs=8, batch_size=256, precision="bfloat16"), 1),
    "32env": ("32 envs, 1 x 1024 per 32 frames, bfloat16",
              dict(num_envs=32, batch_size=1024, precision="bfloat16"), 1),
}


def _sample_one(args) -> dict:
    """One seed of the sample-efficiency check: train to ``frames`` (resumable run directory) with
    today's schedules for those frames (epsilon over the first 100,000: the default 2% of 5M)."""
    key, seed, frames, run = args
    import torch

    _, overrides, threads = SAMPLE_SETTINGS[key]
    torch.set_num_threads(threads)
    from spikeverse.io.rundir import EVALS, read_metrics
    from spikeverse.rl.train import train_dqn

    cfg = replace(_config(overrides, frames), seed=seed, eval_interval=100_000,
                  checkpoint_interval=50_000, epsilon_fraction=100_000 / frames)
    res = train_dqn(cfg, run, progress=False)
    evals = [dict(frames=int(float(r["step"])), mean=float(r["mean"]), wall_s=float(r["wall_s"]))
             for r in read_metrics(Path(run) / EVALS)]
    return dict(setting=key, seed=seed, frames=res.steps, evals=evals, best=max((e["mean"] for e in evals), default=None))


def sample(args) -> None:
    """Every (setting, seed) pair, 2 at a time; each result is saved as soon as its run ends."""
    from _results import RUNS

    root = RUNS / "throughput"
    jobs = [(key, seed, args.frames, str(root / f"sample-{key}-seed{seed}")) for key in args.settings for seed in args.seeds]
    path = RESULTS / f"{NAME}.json"
    with mp.get_context("spawn").Pool(args.jobs) as pool:
        for row in pool.imap_unordered(_sample_one, jobs):
            row["jobs"] = args.jobs  # runs at a time on the 2 cores (their wall times depend on it)
            print(row["setting"], row["seed"], row["best"], flush=True)
            data = json.loads(path.read_text()) if path.exists() else {}
            part = data.get("sample", {})
            if part.get("frames") != args.frames:
                part = dict(env=ENV, frames=args.frames, settings={})
            runs = part["settings"].setdefault(row["setting"], dict(setting=SAMPLE_SETTINGS[row["setting"]][0], seeds=[]))
            runs["seeds"] = sorted([r for r in runs["seeds"] if r["seed"] != row["seed"]] + [row], key=lambda r: r["seed"])
            part["command"] = "python benchmarks/throughput.py sample --frames {frames} --settings {settings} --seeds {seeds}".format(
                frames=args.frames, settings=" ".join(part["settings"]),
                seeds=" ".join(map(str, sorted({r["seed"] for v in part["settings"].values() for r in v["seeds"]}))))
            _save(sample=part)


# CartPole settings (key -> description, DQNConfig fields set on the default config): every one replays
# 64 samples per frame, as the default of before issue 14 does, whose values "today" pins; each names
# every loop field, so that it does not follow later default changes
_OLD = CARTPOLE_LOOP_BEFORE_ISSUE_14
CARTPOLE_SETTINGS = {
    "today": ("today: 1 env, 1 x 128 per 2 frames", dict(_OLD)),
    "4env": ("4 envs, 1 x 256 per 4 frames", dict(_OLD, num_envs=4, batch_size=256, train_freq=1)),
    "8env": ("8 envs, 1 x 512 per 8 frames", dict(_OLD, num_envs=8, batch_size=512, train_freq=1)),
    "4env-t200": ("4 envs, 1 x 256 per 4 frames, target copied every 200 frames (50 updates, as today)",
                  dict(_OLD, num_envs=4, batch_size=256, train_freq=1, target_update_interval=200)),
    "4env-t200-e20": ("4 envs, 1 x 256 per 4 frames, target every 200 frames, model selection on 20 episodes",
                      dict(_OLD, num_envs=4, batch_size=256, train_freq=1, target_update_interval=200, eval_episodes=20)),
    "4env-t200-e20-stop": ("4 envs, 1 x 256 per 4 frames, target every 200 frames, model selection on 20 episodes, "
                           "stop at a selection mean of 500 confirmed on 100 episodes",
                           dict(_OLD, num_envs=4, batch_size=256, train_freq=1, target_update_interval=200,
                                eval_episodes=20, stop_score=500.0)),
    "4env-t200-e20-stop-100k": ("as 4env-t200-e20-stop, to at most 100k frames (epsilon over the first 10k, "
                                "as before); the default since issue 14",
                                dict(_OLD, num_envs=4, batch_size=256, train_freq=1, target_update_interval=200,
                                     eval_episodes=20, stop_score=500.0, total_steps=100_000, epsilon_fraction=0.1)),
}
# settings measured with earlier code, kept as the record (not runnable: today's code differs)
CARTPOLE_RECORD = {
    "4env-t200-e20-stop-unconfirmed": "4 envs, 1 x 256 per 4 frames, target every 200 frames, model selection on 20 "
                                      "episodes, stop at one selection mean of 500 (before a stop was confirmed, 0aaa717)",
    "4env-t200-e20-stop-100k-unconfirmed": "as 4env-t200-e20-stop-unconfirmed, to at most 100k frames (epsilon over "
                                           "the first 10k; before a stop was confirmed, 0aaa717)",
    "4env-t200-e20-stop-100k-confirm40": "as 4env-t200-e20-stop-100k, the stop confirmed on 40 episodes (01c6638)",
}
# settings are chosen on these (100-109 decided 100k frames over 50k; 300-309's seed 307, stopped after a
# confirmation on 40 episodes, made it 100); the headline uses others
CARTPOLE_TUNING_SEEDS = list(range(10)) + list(range(100, 110)) + list(range(300, 310))


def _cartpole_one(args) -> dict:
    key, seed, root = args
    import torch

    torch.set_num_threads(1)
    return dict(setting=key, **run_spikeverse(seed, Path(root), name=key, **CARTPOLE_SETTINGS[key][1]))


def cartpole(args) -> None:
    """Every (setting, seed) pair not yet in the results, 2 at a time, each saved as it ends."""
    from _results import RUNS

    path = RESULTS / f"{NAME}.json"
    old = (json.loads(path.read_text()) if path.exists() else {}).get("cartpole", {})
    have = {(r["setting"], r["seed"]) for r in old.get("rows", [])}
    jobs = [(key, seed, str(RUNS / "throughput" / "cartpole")) for seed in args.seeds for key in args.settings
            if (key, seed) not in have]
    with mp.get_context("spawn").Pool(args.jobs) as pool:
        for row in pool.imap_unordered(_cartpole_one, jobs):
            print(row, flush=True)
            row["jobs"] = args.jobs
            row["note"] = args.note  # what else ran on the machine meanwhile (said in the report)
            data = json.loads(path.read_text()) if path.exists() else {}
            part = data.get("cartpole", dict(env="CartPole-v1", rows=[]))
            part["rows"] = sorted([r for r in part["rows"] if (r["setting"], r["seed"]) != (row["setting"], row["seed"])]
                                  + [row], key=lambda r: (r["setting"], r["seed"]))
            part["tuning_seeds"] = CARTPOLE_TUNING_SEEDS
            part["settings"] = {**CARTPOLE_RECORD, **{k: v[0] for k, v in CARTPOLE_SETTINGS.items()}}
            _save(cartpole=part)


def _render_cartpole(cp: dict) -> list[str]:
    md = ["## CartPole-v1: the default config's settings", "",
          "`python benchmarks/throughput.py cartpole --settings KEY ... --seeds S ...`: each setting trains the "
          "CartPole config (50,000 frames unless it says otherwise, 64 samples replayed per frame) from scratch on every seed, one torch "
          "thread each, the settings interleaved seed by seed; then the evaluation protocol on its best weights (20 "
          "episodes, seed 1000 + seed, epsilon 0.05). Solved: eval mean >= 475. Settings are chosen on the tuning "
          f"seeds {seed_span(cp['tuning_seeds'])}; the other seeds were used for nothing else. Wall times depend on "
          "what else ran (the notes); x today's is today's median wall over the seeds both ran under the same load, "
          "divided by this setting's median on those seeds.", "",
          "| seeds | setting | runs | solved | median eval mean | lowest | median wall s | x today's median wall (seeds) | load |",
          "|---|---|---|---|---|---|---|---|---|"]
    notes = list(dict.fromkeys(r.get("note") or "not recorded" for r in cp["rows"]))
    groups = {"tuning": [r for r in cp["rows"] if r["seed"] in cp["tuning_seeds"]]}
    for block in sorted({r["seed"] // 100 for r in cp["rows"] if r["seed"] not in cp["tuning_seeds"]}):
        groups[f"untuned {block}xx"] = [r for r in cp["rows"] if r["seed"] not in cp["tuning_seeds"]
                                        and r["seed"] // 100 == block]  # each block of seeds: one headline run
    for group, rows in groups.items():
        if not rows:
            continue
        seeds = sorted({r["seed"] for r in rows})
        by = {}
        for r in rows:
            by.setdefault(r["setting"], []).append(r)
        for key, rs in by.items():
            wall = median(r["wall_s"] for r in rs)
            # today's setting on the same seeds under the same load, against this one on those seeds
            pairs = {(r["seed"], r.get("note")): r["wall_s"] for r in rs}
            same = [(t["wall_s"], pairs[(t["seed"], t.get("note"))]) for t in by.get("today", [])
                    if (t["seed"], t.get("note")) in pairs]
            today = median(t for t, _ in same) / median(w for _, w in same) if same else None
            md.append(f"| {group.split()[0]} {seed_span(seeds)} | {cp['settings'][key]} | {len(rs)} | "
                      f"{sum(r['eval_mean'] >= SOLVED for r in rs)}/{len(rs)} | {median(r['eval_mean'] for r in rs):.1f} | "
                      f"{min(r['eval_mean'] for r in rs):.1f} | {wall:.1f} | "
                      f"{(f'{today:.2f} ({len(same)})' if today else '-')} | "
                      + ", ".join(str(1 + notes.index(n)) for n in dict.fromkeys(r.get("note") or "not recorded" for r in rs))
                      + " |")
    md += [""] + [f"Load {i + 1}: {n}" for i, n in enumerate(notes)] + [""]
    return md


def _save(**part) -> None:
    path = RESULTS / f"{NAME}.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data.update(part)
    write_report(NAME, data, render)


def _best_so_far(evals: list[dict]) -> list[tuple[int, float, float]]:
    """(frames, wall_s, best evaluation so far) after each evaluation."""
    out, best = [], -np.inf
    for e in sorted(evals, key=lambda e: e["frames"]):
        best = max(best, e["mean"])
        out.append((e["frames"], e["wall_s"], best))
    return out


def _ci95(xs: list[float]) -> tuple[float, float]:
    """Student-t 95% confidence interval of the mean over seeds."""
    from scipy import stats

    x = np.asarray(xs, float)
    half = stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x)) if len(x) > 1 else np.nan
    return float(x.mean() - half), float(x.mean() + half)


def _plot_sample(sm: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for key, runs in sm["settings"].items():
        curves = [_best_so_far(r["evals"]) for r in runs["seeds"]]
        n = min(len(c) for c in curves)
        if n == 0:
            continue
        best = np.array([[p[2] for p in c[:n]] for c in curves])
        for ax, col in zip(axes, (0, 1)):
            x = np.array([[p[col] for p in c[:n]] for c in curves]).mean(0)
            line, = ax.plot(x, best.mean(0), label=runs["setting"])
            ax.fill_between(x, best.min(0), best.max(0), alpha=0.2, color=line.get_color())
    axes[0].set_xlabel("frames")
    axes[1].set_xlabel("training wall seconds (mean over seeds)")
    axes[0].set_ylabel("best evaluation so far (mean; band: min-max over seeds)")
    axes[1].legend(fontsize=8)
    fig.suptitle(f"{sm['env']}: learning per frame and per second")
    fig.tight_layout()
    fig.savefig(RESULTS / f"{NAME}_sample.png", dpi=110)
    plt.close(fig)


def _render_sample(sm: dict) -> list[str]:
    settings = sm["settings"]
    md = ["## Learning per frame under faster settings", "", f"`{sm['command']}`: each setting trained to "
          f"{sm['frames']} frames on every seed (resumable run directories in benchmarks/runs/throughput/), several "
          "runs at a time on the 2 cores (column 'at a time': their wall times depend on it), one torch thread each, "
          "the default MinAtar schedules over those frames (epsilon to "
          "0.1 over the first 100,000); evaluation every 100,000 frames (10 episodes, epsilon 0.05), its mean and "
          "the training wall time to it. The MinAtar defaults were tuned on seed 0; these seeds were not used.", "",
          "| setting | seeds | best evaluation per seed | mean | 95% CI (t, over seeds) | at a time | median wall s to the last frame | frames/s |",
          "|---|---|---|---|---|---|---|---|"]
    for runs in settings.values():
        seeds = runs["seeds"]
        best = [r["best"] for r in seeds]
        lo, hi = _ci95(best)
        walls = [max(e["wall_s"] for e in r["evals"]) for r in seeds]
        md.append(f"| {runs['setting']} | {' '.join(str(r['seed']) for r in seeds)} | "
                  f"{', '.join(f'{b:.1f}' for b in best)} | {np.mean(best):.1f} | {lo:.1f} to {hi:.1f} | "
                  f"{'/'.join(sorted({str(r.get('jobs', 2)) for r in seeds}))} | "
                  f"{np.median(walls):.0f} | {np.median([r['frames'] / w for r, w in zip(seeds, walls)]):.0f} |")
    md += ["", "Evaluation mean (training wall seconds to it) per seed:", ""]
    for runs in settings.values():
        per = [{e["frames"]: e for e in r["evals"]} for r in runs["seeds"]]
        md += [f"**{runs['setting']}**", "", "| frames | " + " | ".join(f"seed {r['seed']}" for r in runs["seeds"]) + " |",
               "|---|" + "---|" * len(per)]
        for f in sorted({f for p in per for f in p}):
            md.append(f"| {f} | " + " | ".join(
                f"{p[f]['mean']:.1f} ({p[f]['wall_s']:.0f} s)" if f in p else "-" for p in per) + " |")
        md.append("")
    _plot_sample(sm)
    md += [f"![best evaluation so far vs frames and wall seconds]({NAME}_sample.png)", ""]
    return md


def render(d: dict) -> str:
    md = ["# Training throughput: where the time goes (issue 14)", ""]
    if "updates" in d:
        u = d["updates"]
        md += ["## One DQN update of the default MinAtar Q-network", "", f"`{u['command']}`: forward online and "
               "target, Huber loss, backward, gradient clip, fused Adam, on random 0/1 frames; a fresh process per "
               "row. ms per 32 samples is the update cost of one frame at the default replay ratio (32 samples per "
               "frame); frames/s floor = 1000 / that, the trainer's ceiling from the updates alone; GFLOP/s counts "
               "4 forwards' worth of multiply-accumulates per sample (2 forwards, a backward of about 2).", "",
               "bf16: the same update under `torch.autocast(\"cpu\", torch.bfloat16)` (weights and Adam in float32), "
               "a candidate; the trainer runs float32.", "",
               "| precision | threads | batch | ms/update | ms per 32 samples | frames/s floor | GFLOP/s |",
               "|---|---|---|---|---|---|---|"]
        md += [f"| {r.get('precision', 'fp32')} | {r['threads']} | {r['batch']} | {r['ms_per_update']:.2f} | {r['ms_per_32_samples']:.3f} | "
               f"{r['frames_per_s_floor']:.0f} | {r['gflops']:.1f} |" for r in u["rows"]]
        md.append("")
    if "train" in d:
        t = d["train"]
        base = {}  # today's trainer of each agent: its first row (rows of earlier code come first)
        for r in t["rows"]:
            base.setdefault(r["agent"].split(",")[0], r["frames_per_s"])
        md += ["## The trainer on MinAtar Breakout", "", f"`{t['command']}`: `train_dqn` from scratch, "
               f"{t['frames']} frames (the first 5,000 fill the replay memory before any update), no evaluation, "
               "one torch thread unless the setting says 2, one setting at a time on the 2-core machine. Every "
               "setting replays 32 samples per frame; sample efficiency per frame under each is not measured here. A row whose "
               "agent names a commit was measured with the code before it and stays as the record; x today's is against "
               "the agent's first row: 1 env, 1 x 32 per frame, with the code of before issue 14.", "",
               "| agent | setting | frames/s | x today's |", "|---|---|---|---|"]
        md += [f"| {r['agent']} | {r['setting']} | {r['frames_per_s']:.0f} | "
               f"{r['frames_per_s'] / base[r['agent'].split(',')[0]]:.2f} |" for r in t["rows"]]
        md.append("")
    if "window" in d:
        md += _render_window(d["window"])
    if "sample" in d:
        md += _render_sample(d["sample"])
    if "cartpole" in d:
        md += _render_cartpole(d["cartpole"])
    return "\n".join(md)


REPORTS = {NAME: render}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("part", nargs="?", choices=("updates", "train", "window", "sample", "cartpole"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[100, 101, 102])
    ap.add_argument("--settings", nargs="+", help=f"sample part: of {', '.join(SAMPLE_SETTINGS)} (default today 8env); "
                    f"cartpole part: of {', '.join(CARTPOLE_SETTINGS)} (default all)")
    ap.add_argument("--frames", type=int, default=20_000)
    ap.add_argument("--jobs", type=int, default=2, help="sample, cartpole: runs at a time (one torch thread each)")
    ap.add_argument("--note", help="cartpole, window: what else ran on the machine meanwhile (said in the report)")
    ap.add_argument("--report", action="store_true", help="only rewrite the markdown from its JSON")
    args = ap.parse_args()
    if args.report or args.part is None:
        rewrite_reports(REPORTS)
        return
    choices = {"sample": SAMPLE_SETTINGS, "cartpole": CARTPOLE_SETTINGS}.get(args.part, {})
    if args.settings is None:
        args.settings = ["today", "8env"] if args.part == "sample" else list(choices)
    elif set(args.settings) - set(choices):
        ap.error(f"--settings of the {args.part} part: choose from {', '.join(choices)}")
    {"updates": updates, "train": train, "window": window, "sample": sample, "cartpole": cartpole}[args.part](args)


if __name__ == "__main__":
    main()

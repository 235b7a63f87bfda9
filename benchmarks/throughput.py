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

from _results import RESULTS, rewrite_reports, write_report

NAME = "throughput"
ENV = "MinAtar/Breakout"
BATCHES = (32, 64, 128, 256, 512, 1024)
# (agent, setting, DQNConfig overrides); the first setting of an agent is today's loop, and every
# setting replays 32 samples per frame, as today's default does
SETTINGS = [
    ("dqn", "today: 1 env, 1 x 32 per frame", {}, 1),
    ("dqn", "8 envs, 8 x 32 per 8 frames", dict(num_envs=8, gradient_steps=8), 1),
    ("dqn", "8 envs, 1 x 256 per 8 frames", dict(num_envs=8, batch_size=256), 1),
    ("dqn", "32 envs, 1 x 1024 per 32 frames", dict(num_envs=32, batch_size=1024), 1),
    ("dqn", "8 envs, 1 x 256 per 8 frames, bfloat16", dict(num_envs=8, batch_size=256, precision="bfloat16"), 1),
    ("dqn", "32 envs, 1 x 1024 per 32 frames, bfloat16", dict(num_envs=32, batch_size=1024, precision="bfloat16"), 1),
    ("dqn", "32 envs, 1 x 1024 per 32 frames, bfloat16, 2 threads",
     dict(num_envs=32, batch_size=1024, precision="bfloat16"), 2),
    ("rainbow", "today: 1 env, 1 x 32 per frame", dict(rainbow=True), 1),
    ("rainbow", "8 envs, 1 x 256 per 8 frames", dict(rainbow=True, num_envs=8, batch_size=256), 1),
    ("rainbow", "32 envs, 1 x 1024 per 32 frames, bfloat16, 2 threads",
     dict(rainbow=True, num_envs=32, batch_size=1024, precision="bfloat16"), 2),
    ("dsqn T=8", "today: 1 env, 1 x 32 per frame", dict(spiking=True, timesteps=8), 1),
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


def _update_cost(args) -> dict:
    batch, threads, precision = args
    import contextlib

    import torch

    torch.set_num_threads(threads)
    from spikeverse.rl.dqn import DQNAgent, network_spec

    cfg = _config({}, 1)
    agent = DQNAgent(cfg, network_spec(cfg, (4, 10, 10), 6), torch.device("cpu"))
    rng = np.random.default_rng(0)
    sample = dict(obs=(rng.random((batch, 4, 10, 10)) < 0.1).astype(np.float32), action=rng.integers(0, 6, batch),
                  reward=rng.random(batch).astype(np.float32),
                  next_obs=(rng.random((batch, 4, 10, 10)) < 0.1).astype(np.float32),
                  discount=np.full(batch, 0.99, np.float32), weights=np.ones(batch, np.float32))
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
    rows = []
    for agent, name, overrides, threads in SETTINGS:
        if (agent, name) not in done:
            with mp.get_context("spawn").Pool(1) as pool:
                done[(agent, name)] = pool.apply(_train_one, ((agent, name, overrides, args.frames, threads),))
            print(done[(agent, name)], flush=True)
        rows.append(done[(agent, name)])
        _save(train=dict(env=ENV, frames=args.frames, rows=rows,
                         command=f"python benchmarks/throughput.py train --frames {args.frames}"))


SAMPLE_SETTING = ("8 envs, 1 x 256 per 8 frames, bfloat16", dict(num_envs=8, batch_size=256, precision="bfloat16"))


def _sample_one(args) -> dict:
    """One seed of the sample-efficiency check: train to ``frames`` (resumable run directory) with
    today's schedules for those frames (epsilon over the first 100,000: the default 2% of 5M)."""
    seed, frames, run = args
    import torch

    torch.set_num_threads(1)
    from spikeverse.io.rundir import EVALS, read_metrics
    from spikeverse.rl.train import train_dqn

    cfg = replace(_config(SAMPLE_SETTING[1], frames), seed=seed, eval_interval=100_000,
                  checkpoint_interval=50_000, epsilon_fraction=100_000 / frames)
    res = train_dqn(cfg, run, progress=False)
    evals = [dict(frames=int(float(r["step"])), mean=float(r["mean"]), wall_s=float(r["wall_s"]))
             for r in read_metrics(Path(run) / EVALS)]
    return dict(seed=seed, frames=res.steps, evals=evals, best=max((e["mean"] for e in evals), default=None))


def sample(args) -> None:
    from _results import RUNS

    root = RUNS / "throughput"
    jobs = [(seed, args.frames, str(root / f"sample-seed{seed}")) for seed in args.seeds]
    with mp.get_context("spawn").Pool(2) as pool:
        rows = pool.map(_sample_one, jobs)
    base = json.loads((RESULTS / "minatar_breakout.json").read_text())["curves"]["dqn"]["eval"]
    _save(sample=dict(env=ENV, setting=SAMPLE_SETTING[0], frames=args.frames, seeds=rows,
                      today=[dict(frames=e["frames"], mean=e["eval_mean"], wall_s=e["wall_s"]) for e in base],
                      command=f"python benchmarks/throughput.py sample --frames {args.frames} --seeds "
                              f"{' '.join(map(str, args.seeds))}"))


def _save(**part) -> None:
    path = RESULTS / f"{NAME}.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data.update(part)
    write_report(NAME, data, render)


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
        base = {}
        for r in t["rows"]:
            base.setdefault(r["agent"], r["frames_per_s"])
        md += ["## The trainer on MinAtar Breakout", "", f"`{t['command']}`: `train_dqn` from scratch, "
               f"{t['frames']} frames (the first 5,000 fill the replay memory before any update), no evaluation, "
               "one torch thread unless the setting says 2, one setting at a time on the 2-core machine. Every "
               "setting replays 32 samples per frame; sample efficiency per frame under each is not measured here.", "",
               "| agent | setting | frames/s | x today's |", "|---|---|---|---|"]
        md += [f"| {r['agent']} | {r['setting']} | {r['frames_per_s']:.0f} | {r['frames_per_s'] / base[r['agent']]:.2f} |"
               for r in t["rows"]]
        md.append("")
    if "sample" in d:
        sm = d["sample"]
        md += ["## Learning per frame under a faster setting", "", f"`{sm['command']}`: {sm['setting']}, "
               f"{sm['frames']} frames per seed, 2 seeds at a time (one torch thread each), the default MinAtar "
               "schedules over those frames (epsilon to 0.1 over the first 100,000); evaluation every 100,000 frames "
               "(10 episodes, epsilon 0.05), its mean and the training wall time to it. Today's trainer: the one run of "
               "results/minatar_breakout.json (seed 0, trained beside a Rainbow run on the 2 cores; 869,890 frames in "
               "all), its evaluations up to the same frames.", "",
               "| frames | today's trainer (seed 0) | " + " | ".join(f"seed {r['seed']}" for r in sm["seeds"]) + " |",
               "|---|---|" + "---|" * len(sm["seeds"])]
        today = {e["frames"]: f"{e['mean']:.1f} ({e['wall_s']:.0f} s)" for e in sm["today"]}
        per = [{e["frames"]: e for e in r["evals"]} for r in sm["seeds"]]
        for f in sorted({f for p in per for f in p} | {f for f in today if f <= sm["frames"]}):
            md.append(f"| {f} | {today.get(f, '-')} | " + " | ".join(
                f"{p[f]['mean']:.1f} ({p[f]['wall_s']:.0f} s)" if f in p else "-" for p in per) + " |")
        best_today = max((e["mean"] for e in sm["today"] if e["frames"] <= sm["frames"]), default=None)
        md += ["", f"Best evaluation up to {sm['frames']} frames: today's trainer {best_today}; this setting "
               + ", ".join(f"seed {r['seed']}: {r['best']}" for r in sm["seeds"]) + ".", ""]
    return "\n".join(md)


REPORTS = {NAME: render}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("part", nargs="?", choices=("updates", "train", "sample"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[100, 101, 102])
    ap.add_argument("--frames", type=int, default=20_000)
    ap.add_argument("--report", action="store_true", help="only rewrite the markdown from its JSON")
    args = ap.parse_args()
    if args.report or args.part is None:
        rewrite_reports(REPORTS)
        return
    {"updates": updates, "train": train, "sample": sample}[args.part](args)


if __name__ == "__main__":
    main()

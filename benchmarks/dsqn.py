"""Directly trained spiking Q-networks (DSQN, issue 5): CartPole, MinAtar Breakout, and the table
DQN vs converted SNN vs DSQN. Every number comes from the CLI (``spikeverse train/convert/evaluate
--json``), run as subprocesses, ``--workers`` at a time with one torch thread each.

    python benchmarks/dsqn.py cartpole --seeds $(seq 100 119) --workers 2
        the default DSQN config (T=16) per seed: wall time of training, time to solve (the first
        model-selection evaluation >= 475), and the evaluation of the kept weights (20 episodes,
        seed 1000 + seed). The defaults were tuned on seeds 0-2 (dsqn_cartpole_tuning_seeds.*);
        the headline runs on seeds the tuning never saw. A finished seed is kept in
        RUNS/cartpole/dsqn-seedS.json (a rerun skips it; a killed run resumes from its checkpoint).
    python benchmarks/dsqn.py minatar --steps 100000 --timesteps 8 16
        learning curves of DQN and DSQN (T = 8, 16) on MinAtar Breakout with the same budget of
        frames (evaluation every --eval-every frames, 10 episodes) and the mean training return.
        Reruns continue the runs from their checkpoints; curves of runs trained further are cut
        at --steps (a run's epsilon schedule follows the total_steps it was started with).
    python benchmarks/dsqn.py variants --steps 20000
        seed 000's variants on MinAtar Breakout: surrogate-gradient double DQN with prioritized
        replay (T=25), and a fully connected spiking DQN (MLP 256-256 on the flattened pixels, T=32):
        steps per second and the wall time of the first 50 training episodes (seed 000: about
        15 minutes for 50 episodes at T=25, 2.5 hours for the fully connected network).
    python benchmarks/dsqn.py table
        for CartPole (seed 0) and MinAtar Breakout: the DQN, its SNN converted by the fast method
        (T=32), and the DSQN (T=16), each evaluated on the same protocol (--episodes): score, time
        steps, synaptic operations, MACs and energy per decision (45 nm: 0.9 pJ/AC, 4.6 pJ/MAC).
        Trains and converts what the two commands above did not leave in --runs.

    python benchmarks/dsqn.py report
        rewrite every results/dsqn_*.md from the JSON beside it alone.

Results: benchmarks/results/dsqn_{cartpole,minatar,variants,comparison}.{json,md} and dsqn_minatar.png.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _results import MINATAR_LOOP_FLAGS, RESULTS, load_unit, median, rewrite_reports, save_unit, seed_span, write_report

from spikeverse.runtime import HELDOUT_SEED_OFFSET

HERE = Path(__file__).parent
MINATAR = "MinAtar/Breakout"
SOLVED = 475.0


def cli(*args: str, threads: int = 1) -> dict:
    """Run ``spikeverse ARGS --json`` with ``threads`` torch threads; its JSON output."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    # stderr (progress lines) goes to a file, not a pipe: a run outlives this script if it is killed
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.run([sys.executable, "-m", "spikeverse.cli", *args, "--json"], stdout=subprocess.PIPE,
                              stderr=err, text=True, env=env)
        if proc.returncode != 0:
            err.seek(0)
            raise SystemExit(f"spikeverse {' '.join(args)} failed: {err.read().strip().splitlines()[-1:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def parallel(fn, items, workers: int) -> list:
    with ThreadPoolExecutor(workers) as ex:  # each item is a subprocess
        return list(ex.map(fn, items))


def evals(run: Path) -> list[dict]:
    with open(run / "evals.csv") as f:
        return [{"step": int(r["step"]), "mean": float(r["mean"]), "wall_s": float(r["wall_s"])} for r in csv.DictReader(f)]


def train_returns(run: Path, bin_frames: int) -> list[dict]:
    with open(run / "metrics.csv") as f:
        rows = [(int(r["step"]), float(r["episode_return"])) for r in csv.DictReader(f)]
    out = []
    for lo in range(0, max((s for s, _ in rows), default=0), bin_frames):
        vals = [r for s, r in rows if lo < s <= lo + bin_frames]
        if vals:
            out.append({"frames": lo + bin_frames, "train_return": round(sum(vals) / len(vals), 3)})
    return out


def cost(res: dict) -> dict:
    keys = ("mean", "std", "timesteps", "firing_rate", "synops_per_decision", "macs_per_decision",
            "energy_uJ_per_decision", "ann_macs_per_decision", "ann_energy_uJ_per_decision")
    return {k: res.get(k) for k in keys} | {"layers": [
        {k: l[k] for k in ("name", "firing_rate", "synops_per_decision", "macs_per_decision")} for l in res["layers"]]}


# ---------------------------------------------------------------- CartPole


CARTPOLE_TUNING_SEEDS = [0, 1, 2]


def cartpole(args) -> None:
    root = Path(args.runs) / "cartpole"

    def one(seed: int) -> dict:
        unit = root / f"dsqn-seed{seed}.json"
        if (done := load_unit(unit)) is not None:
            return done
        run = root / f"dsqn-seed{seed}"
        tr = cli("train", "--env", "CartPole-v1", "--agent", "dsqn", "--seed", str(seed), "--out", str(run),
                 "--no-progress", "--device", "cpu")  # resumes a killed run from its checkpoint
        ev = evals(run)
        solved = next((e for e in ev if e["mean"] >= SOLVED), None)
        res = cli("evaluate", str(run), "--episodes", "20", "--seed", str(HELDOUT_SEED_OFFSET + seed), "--device", "cpu")
        row = {"seed": seed, "train_wall_s": tr["wall_s"], "steps": tr["steps"],
               "solved_step": solved and solved["step"], "solved_wall_s": solved and solved["wall_s"],
               "eval20": cost(res), "curve": ev}
        save_unit(unit, row)
        return row

    command = f"python benchmarks/dsqn.py cartpole --seeds {' '.join(map(str, args.seeds))} --workers {args.workers}"
    rows = []

    def report(row: dict) -> dict:  # rewrite the results after every finished seed
        rows.append(row)
        rows.sort(key=lambda r: args.seeds.index(r["seed"]))
        data = {"command": command, "seeds_planned": args.seeds, "tuning_seeds": CARTPOLE_TUNING_SEEDS,
                "seeds": rows, "solved": sum(r["eval20"]["mean"] >= SOLVED for r in rows), "workers": args.workers,
                "median_eval_mean": median(r["eval20"]["mean"] for r in rows),
                "median_solved_wall_s": median(r["solved_wall_s"] for r in rows)}
        print(write_report("dsqn_cartpole", data, render_cartpole), flush=True)
        return row

    parallel(lambda seed: report(one(seed)), args.seeds, args.workers)


def render_cartpole(d: dict) -> str:
    rows = d["seeds"]
    seeds = [r["seed"] for r in rows]
    untuned = [s for s in seeds if s not in d["tuning_seeds"]]
    ok = d["solved"]
    md = ["# DSQN on CartPole-v1: the default config (T=16)", "",
          f"`{d['command']}` ({d['workers']} runs side by side on 2 cores, one torch thread each). Solved = first "
          f"model-selection evaluation (5 episodes) >= {SOLVED:g}; the kept (best) weights are then evaluated on 20 "
          "episodes (seed 1000 + seed).", "",
          f"Seeds run: {seed_span(seeds)} ({len(seeds)} of {len(d['seeds_planned'])} planned, {len(untuned)} not used "
          f"for tuning); the DSQN CartPole defaults were tuned on seeds {seed_span(d['tuning_seeds'])}.", "",
          "| seed | eval mean (20 ep.) | solved at step | time to solve s | training wall s | firing rate | synops/decision | energy uJ/decision |",
          "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        e = r["eval20"]
        step, wall = ("-", "-") if r["solved_step"] is None else (r["solved_step"], r["solved_wall_s"])
        md.append(f"| {r['seed']} | {e['mean']:.1f} +- {e['std']:.1f} | {step} | {wall} | "
                  f"{r['train_wall_s']} | {e['firing_rate']:.3f} | {e['synops_per_decision']:.0f} | "
                  f"{e['energy_uJ_per_decision']:.4f} |")
    solved_in = sum(r["solved_step"] is not None for r in rows)
    t = "-" if d["median_solved_wall_s"] is None else f"{d['median_solved_wall_s']} s"
    md += ["", f"{ok}/{len(rows)} seeds reach an evaluation mean >= {SOLVED:g} (20 episodes); median evaluation mean "
           f"{d['median_eval_mean']:.1f}. {solved_in}/{len(rows)} runs had a model-selection evaluation >= "
           f"{SOLVED:g}; median time to it {t}.", ""]
    return "\n".join(md)


# ---------------------------------------------------------------- MinAtar


def minatar(args) -> None:
    root = Path(args.runs) / "minatar"
    agents = [("dqn", [*MINATAR_LOOP_FLAGS, "--precision", "float32"])] + [
        (f"dsqn-T{t}", ["--agent", "dsqn", "--timesteps", str(t), *MINATAR_LOOP_FLAGS]) for t in args.timesteps]

    def one(item) -> dict:
        name, extra = item
        run = root / name
        tr = cli("train", "--env", MINATAR, *extra, "--steps", str(args.steps), "--eval-every", str(args.eval_every),
                 "--out", str(run), "--no-progress", "--device", "cpu")
        ev = [e for e in evals(run) if e["step"] <= args.steps]  # a run trained further is cut at the budget
        return {"agent": name, "frames": args.steps, "frames_trained": tr["steps"],
                "train_wall_s": ev[-1]["wall_s"] if ev else None, "best_eval": max((e["mean"] for e in ev), default=None),
                "eval": ev, "train": [t for t in train_returns(run, args.eval_every) if t["frames"] <= args.steps]}

    rows = parallel(one, agents, args.workers)
    command = (f"python benchmarks/dsqn.py minatar --steps {args.steps} --timesteps "
               f"{' '.join(map(str, args.timesteps))} --workers {args.workers}")
    plot_minatar(rows)
    print(write_report("dsqn_minatar", {"command": command, "steps": args.steps, "eval_every": args.eval_every,
                                        "workers": args.workers, "runs": rows}, render_minatar))


def render_minatar(d: dict) -> str:
    rows = d["runs"]
    md = ["# MinAtar Breakout: DQN and DSQN learning curves, same budget of frames", "",
          f"`{d['command']}`: the default MinAtar config "
          f"for all (DSQN: the same plus LIF hidden layers, T steps per decision). Evaluation every "
          f"{d['eval_every']} frames: 10 episodes, epsilon 0.05. Wall times with {d['workers']} runs side by side. "
          "One seed (0) per agent.", "",
          "| agent | frames | wall s to reach them | best eval mean |", "|---|---|---|---|"]
    md += [f"| {r['agent']} | {r['frames']} | {r['train_wall_s']} | {r['best_eval']} |" for r in rows]
    md += ["", "| frames | " + " | ".join(f"{r['agent']} eval" for r in rows) + " | "
           + " | ".join(f"{r['agent']} train return" for r in rows) + " |",
           "|---" * (2 * len(rows) + 1) + "|"]
    steps = sorted({e["step"] for r in rows for e in r["eval"]})
    for s in steps:
        ev = [next((f"{e['mean']:.2f}" for e in r["eval"] if e["step"] == s), "") for r in rows]
        tr = [next((f"{t['train_return']:.2f}" for t in r["train"] if t["frames"] == s), "") for r in rows]
        md.append(f"| {s} | " + " | ".join(ev) + " | " + " | ".join(tr) + " |")
    md += ["", "![curves](dsqn_minatar.png)", ""]
    md += [f"- {n}" for n in d.get("notes", [])]
    return "\n".join(md) + ("\n" if d.get("notes") else "")


def plot_minatar(rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for r in rows:
        axes[0].plot([e["step"] for e in r["eval"]], [e["mean"] for e in r["eval"]], marker="o", label=r["agent"])
        axes[1].plot([t["frames"] for t in r["train"]], [t["train_return"] for t in r["train"]], label=r["agent"])
    axes[0].set(title="evaluation (10 episodes)", xlabel="frames", ylabel="score")
    axes[1].set(title="training episodes (mean per bin)", xlabel="frames", ylabel="return")
    for ax in axes:
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle("MinAtar Breakout: DQN vs DSQN, same budget")
    fig.tight_layout()
    RESULTS.mkdir(exist_ok=True)
    fig.savefig(RESULTS / "dsqn_minatar.png", dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------- seed 000's variants

VARIANTS = {
    "double+per, T=25": ["--agent", "dsqn", "--double", "--per", "--timesteps", "25"],
    "fully connected 256-256, T=32": ["--agent", "dsqn", "--arch", "mlp", "--hidden", "256,256", "--timesteps", "32"],
}


def variants(args) -> None:
    root = Path(args.runs) / "variants"

    def one(name: str) -> dict:
        run = root / name.split(",")[0].replace(" ", "-").replace("+", "-")
        tr = cli("train", "--env", MINATAR, *VARIANTS[name], *MINATAR_LOOP_FLAGS, "--steps", str(args.steps), "--eval-every", "0",
                 "--out", str(run), "--no-progress", "--device", "cpu")
        with open(run / "metrics.csv") as f:
            rows = list(csv.DictReader(f))
        fifty = rows[49] if len(rows) >= 50 else None
        return {"variant": name, "steps": tr["steps"], "episodes": tr["episodes"], "wall_s": tr["wall_s"],
                "steps_per_s": round(tr["steps"] / tr["wall_s"], 1),
                "wall_s_50_episodes": fifty and float(fifty["wall_s"]), "steps_50_episodes": fifty and int(fifty["step"]),
                "mean_return_last_100": round(sum(float(r["episode_return"]) for r in rows[-100:]) / max(len(rows[-100:]), 1), 3)}

    rows = parallel(one, list(VARIANTS), args.workers)
    data = {"command": f"python benchmarks/dsqn.py variants --steps {args.steps}", "workers": args.workers,
            "published": SEED000_VARIANTS, "runs": rows}
    print(write_report("dsqn_variants", data, render_variants))


SEED000_VARIANTS = "about 15 minutes for 50 episodes at T=25, 2.5 hours for 50 episodes of the fully connected network"


def render_variants(d: dict) -> str:
    md = ["# Seed 000's surrogate-gradient variants on MinAtar Breakout", "",
          f"`{d['command']}` ({d['workers']} runs side by side on 2 cores). "
          f"Seed 000 (Atari Breakout, its own code): {d['published']}. Learning starts after 5,000 steps "
          "(MinAtar default).", "",
          "| variant | steps | episodes | steps/s | wall s for 50 episodes | wall s | mean return, last 100 episodes |",
          "|---|---|---|---|---|---|---|"]
    md += [f"| {r['variant']} | {r['steps']} | {r['episodes']} | {r['steps_per_s']} | {r['wall_s_50_episodes']} | "
           f"{r['wall_s']} | {r['mean_return_last_100']} |" for r in d["runs"]]
    runs = d["runs"]
    md += ["", "The first 50 episodes end before learning starts, so \"wall s for 50 episodes\" is not seed 000's "
           f"measure; the comparable numbers are the whole runs: {min(r['episodes'] for r in runs)}-"
           f"{max(r['episodes'] for r in runs)} episodes in {min(r['wall_s'] for r in runs)}-"
           f"{max(r['wall_s'] for r in runs)} s, on MinAtar (10x10 frames) rather than seed 000's Atari frames, "
           "on 2 shared cores."]
    return "\n".join(md) + "\n"


# ---------------------------------------------------------------- the comparison table


def table(args) -> None:
    cp, mn = Path(args.runs) / "cartpole", Path(args.runs) / "minatar"
    jobs = {"CartPole-v1": (cp / "dqn-seed0", cp / "snn-fast", cp / "dsqn-seed0", []),
            MINATAR: (mn / "dqn", mn / "snn-fast", mn / "dsqn-T16", ["--steps", str(args.steps), *MINATAR_LOOP_FLAGS])}

    def prepare(env: str) -> None:
        dqn, snn, dsqn, extra = jobs[env]
        if not (dqn / "checkpoint.safetensors").exists():
            cli("train", "--env", env, *extra, *(["--precision", "float32"] if env == MINATAR else []), "--out", str(dqn),
                "--no-progress", "--device", "cpu")
        if not (dsqn / "checkpoint.safetensors").exists():
            cli("train", "--env", env, "--agent", "dsqn", *extra, "--out", str(dsqn), "--no-progress",
                "--device", "cpu")
        if not (snn / "checkpoint.safetensors").exists():
            cli("convert", str(dqn), "--method", "fast", "--timesteps", "32", "--out", str(snn), "--device", "cpu")

    parallel(prepare, list(jobs), args.workers)
    out: dict = {}
    for env, (dqn, snn, dsqn, _) in jobs.items():
        common = ["--episodes", str(args.episodes), "--seed", "1000", "--device", "cpu"]
        res = parallel(lambda run: cli("evaluate", str(run), *common, threads=1), [dqn, snn, dsqn], args.workers)
        out[env] = {"dqn": cost(res[0]), "converted SNN (fast)": cost(res[1]), "dsqn": cost(res[2])}
        out[env]["converted SNN (fast)"]["conversion_rate"] = res[1]["conversion_rate"]
    data = {"command": f"python benchmarks/dsqn.py table --episodes {args.episodes}", "episodes": args.episodes,
            "energy_model": ENERGY_MODEL, "published": SEED003_RATIO, "envs": out, "notes": TABLE_NOTES}
    print(write_report("dsqn_comparison", data, render_table))


ENERGY_MODEL = "45 nm, 0.9 pJ per accumulate (synaptic operation), 4.6 pJ per MAC"
SEED003_RATIO = "seed 003 reports about 0.85"
TABLE_NOTES = [
    "The kept weights are the best model-selection evaluation of each run; see dsqn_cartpole.md and dsqn_minatar.md "
    "for the training runs.",
    "The converted SNN is the DQN's (fast method, T=32, membrane readout); its agreement with the DQN is in "
    "conversion_*.md.",
]


def render_table(d: dict) -> str:
    out = d["envs"]
    md = ["# DQN vs converted SNN vs DSQN", "",
          f"`{d['command']}`: each agent evaluated by "
          f"`spikeverse evaluate --episodes {d['episodes']} --seed 1000` (epsilon 0.05). Energy: {d['energy_model']}; "
          "a spiking network's first layer takes the analog observation once per decision (MACs), every later "
          "synapse is driven by spikes. One training seed (0) per agent.", "",
          "| env | agent | score | T | firing rate | synops/decision | MACs/decision | energy uJ/decision | vs DQN |",
          "|---|---|---|---|---|---|---|---|---|"]
    for env, agents in out.items():
        base = agents["dqn"]["energy_uJ_per_decision"]
        for name, c in agents.items():
            rate = "-" if c["firing_rate"] is None else f"{c['firing_rate']:.3f}"
            md.append(f"| {env} | {name} | {c['mean']:.1f} +- {c['std']:.1f} | {c['timesteps'] or '-'} | {rate} | "
                      f"{c['synops_per_decision']:.0f} | {c['macs_per_decision']:.0f} | "
                      f"{c['energy_uJ_per_decision']:.4f} | {c['energy_uJ_per_decision'] / base:.2f} |")
    for env, agents in out.items():
        ratio = agents["dsqn"]["energy_uJ_per_decision"] / agents["converted SNN (fast)"]["energy_uJ_per_decision"]
        md.append(f"\n{env}: DSQN / converted SNN energy = {ratio:.2f} ({d['published']}).")
    md += [""] + [f"- {n}" for n in d.get("notes", [])]
    return "\n".join(md) + "\n"


REPORTS = {"dsqn_cartpole": render_cartpole, "dsqn_cartpole_tuning_seeds": render_cartpole,
           "dsqn_minatar": render_minatar, "dsqn_variants": render_variants, "dsqn_comparison": render_table}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("part", choices=["cartpole", "minatar", "variants", "table", "report"],
                    help="report: only rewrite results/dsqn_*.md from their JSON")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=100_000, help="MinAtar budget in frames.")
    ap.add_argument("--eval-every", type=int, default=10_000)
    ap.add_argument("--timesteps", type=int, nargs="+", default=[8, 16])
    ap.add_argument("--episodes", type=int, default=20, help="table: evaluation episodes per agent.")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--runs", default=str(HERE / "runs" / "dsqn"))
    args = ap.parse_args()
    if args.part == "report":
        rewrite_reports(REPORTS)
        return
    {"cartpole": cartpole, "minatar": minatar, "variants": variants, "table": table}[args.part](args)


if __name__ == "__main__":
    main()

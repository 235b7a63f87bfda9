"""MinAtar Breakout learning curves, DQN and Rainbow, for a fixed wall-clock budget (issue 2).

Both agents train side by side (one process and one torch thread each, so 2 cores in all) for
``--minutes``; the curve records frames (= agent steps: MinAtar has no frame skip), the mean
training return per bin of frames, the periodic evaluation (10 episodes, epsilon 0.05), and wall
time. Reference: the MinAtar paper's DQN reaches about 10 on Breakout at 5M frames. Rerunning
continues the runs from their checkpoints (the budget is per call).

    python benchmarks/minatar_breakout.py --minutes 55
    python benchmarks/minatar_breakout.py --report    # rewrite the markdown from the JSON alone
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
from pathlib import Path

import numpy as np

from _results import MINATAR_LOOP_BEFORE_ISSUE_14, rewrite_reports, write_report

AGENTS = {"dqn": dict(MINATAR_LOOP_BEFORE_ISSUE_14), "rainbow": {"rainbow": True, **MINATAR_LOOP_BEFORE_ISSUE_14}}


def train_one(args) -> dict:
    name, minutes, run_root, seed = args
    import torch

    torch.set_num_threads(1)
    from spikeverse.rl.config import DQNConfig
    from spikeverse.rl.train import train_dqn

    cfg = DQNConfig.for_env("MinAtar/Breakout", seed=seed, device="cpu", **AGENTS[name])
    res = train_dqn(cfg, Path(run_root) / name, progress=False, time_budget_s=minutes * 60)
    return {"agent": name, "frames": res.steps, "wall_s": round(res.wall_s, 1), "best_eval": res.best_score}


def curve(run_dir: Path, bin_frames: int) -> dict:
    from spikeverse.io.rundir import EVALS, read_metrics

    rows = read_metrics(run_dir)
    steps = np.array([float(r["step"]) for r in rows])
    rets = np.array([float(r["episode_return"]) for r in rows])
    walls = np.array([float(r["wall_s"]) for r in rows])
    bins = []
    for lo in range(0, int(steps.max()) + 1 if len(steps) else 0, bin_frames):
        m = (steps > lo) & (steps <= lo + bin_frames)
        if m.any():
            bins.append({"frames": lo + bin_frames, "train_return": round(float(rets[m].mean()), 3),
                         "episodes": int(m.sum()), "wall_s": round(float(walls[m].max()), 1)})
    evals = [{"frames": int(r["step"]), "eval_mean": float(r["mean"]), "eval_std": float(r["std"]),
              "wall_s": float(r["wall_s"])} for r in read_metrics(run_dir / EVALS)]
    return {"train": bins, "eval": evals}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--agents", default="dqn,rainbow")
    ap.add_argument("--runs", default=str(Path(__file__).parent / "runs" / "minatar_breakout"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bin", type=int, default=50_000, help="frames per point of the training curve")
    ap.add_argument("--report", action="store_true", help="only rewrite results/minatar_breakout.md from its JSON")
    args = ap.parse_args()
    if args.report:
        rewrite_reports(REPORTS)
        return
    names = args.agents.split(",")
    with mp.get_context("spawn").Pool(len(names)) as pool:
        summary = pool.map(train_one, [(n, args.minutes, args.runs, args.seed) for n in names])
    out = {"benchmark": "minatar_breakout", "env": "MinAtar/Breakout", "minutes_per_call": args.minutes,
           "threads_per_agent": 1, "runs": summary,
           "curves": {n: curve(Path(args.runs) / n, args.bin) for n in names},
           "reference": "MinAtar paper DQN: about 10 at 5M frames"}
    out["final_evaluation"] = {"command": f"spikeverse evaluate {args.runs}/AGENT --episodes 50 --json",
                               "episodes": 50, "agents": [final_eval(Path(args.runs) / n) for n in names]}
    write_report("minatar_breakout", out, render)
    print(json.dumps(summary))


def final_eval(run: Path) -> dict:
    """The kept (best) weights on 50 episodes other than the selection evaluations (seed 0)."""
    from spikeverse.agents import load_policy
    from spikeverse.rl.evaluation import evaluate

    policy, meta = load_policy(run)
    res = evaluate(policy, "MinAtar/Breakout", episodes=50, seed=0)
    return {"agent": run.name, "eval_mean": round(res.mean, 2), "eval_std": round(res.std, 2)}


def render(out: dict) -> str:
    names = list(out["curves"])
    summary = out["runs"]
    lines = ["# MinAtar Breakout: DQN and Rainbow for a fixed wall-clock budget", "",
             f"{out['minutes_per_call']} min per agent, both side by side on 2 cores ({out['threads_per_agent']} torch "
             "thread each), one seed (0). Frames = agent steps. Evaluation: 10 episodes, epsilon 0.05, up to 30 no-ops.", "",
             "| agent | frames | wall s | best eval mean |", "|---|---|---|---|"]
    lines += [f"| {s['agent']} | {s['frames']} | {s['wall_s']} | {s['best_eval']} |" for s in summary]
    for n in names:
        lines += ["", f"## {n}: evaluation during training", "", "| frames | eval mean | eval std | wall s |",
                  "|---|---|---|---|"]
        lines += [f"| {e['frames']} | {e['eval_mean']:.2f} | {e['eval_std']:.2f} | {e['wall_s']:.0f} |"
                  for e in out["curves"][n]["eval"]]
    if fe := out.get("final_evaluation"):
        frames = {s["agent"]: s["frames"] for s in summary}
        lines += ["", f"## Final evaluation of the kept (best) weights, {fe['episodes']} episodes", "",
                  f"`{fe['command']}` (epsilon 0.05, up to 30 no-ops, seed 0; other episodes than the selection "
                  "evaluations above)" + (f"; {fe['note']}" if fe.get("note") else "") + ":", "",
                  "| agent | frames trained | eval mean | eval std |", "|---|---|---|---|"]
        lines += [f"| {a['agent']} | {frames[a['agent']]:,} | {a['eval_mean']:.2f} | {a['eval_std']:.2f} |"
                  for a in fe["agents"]]
    lines += ["", f"Reference: {out['reference']}."]
    return "\n".join(lines) + "\n"


REPORTS = {"minatar_breakout": render}

if __name__ == "__main__":
    main()

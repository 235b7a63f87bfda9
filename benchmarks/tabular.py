"""Tabular Q-learning with the default configs (``rl.tabular._ENV_DEFAULTS``) over many seeds:
Taxi-v3 (greedy mean return over 100 episodes) and FrozenLake-v1 (slippery 4x4: greedy success
rate = mean return over 100 episodes), and the training wall time of each run.

The defaults were chosen on seeds 0-19 (Taxi) and 0-4 (FrozenLake) (no result file was kept);
this measures them on seeds the tuning never saw:

    python benchmarks/tabular.py --seeds $(seq 100 119)
    python benchmarks/tabular.py --report      # rewrite the markdown from the JSON alone

Finished runs are kept in benchmarks/runs/tabular/ENV-seedS.json (a rerun skips them).
Writes benchmarks/results/tabular.{json,md}.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _results import RUNS, load_unit, median, rewrite_reports, save_unit, seed_span, write_report

from spikeverse.runtime import HELDOUT_SEED_OFFSET

NAME = "tabular"
ENVS = {"Taxi-v3": "mean return", "FrozenLake-v1": "success rate"}
TUNING_SEEDS = {"Taxi-v3": list(range(20)), "FrozenLake-v1": list(range(5))}
EPISODES = 100


def run_one(env: str, seed: int) -> dict:
    from spikeverse.agents import load_policy
    from spikeverse.rl.evaluation import evaluate
    from spikeverse.rl.tabular import TabularConfig, train_tabular_run

    cfg = TabularConfig.for_env(env, seed=seed)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        train_tabular_run(cfg, env, Path(tmp) / "run", progress=False)
        wall = time.perf_counter() - t0
        policy, _ = load_policy(Path(tmp) / "run")
        res = evaluate(policy, env, episodes=EPISODES, epsilon=0.0, seed=HELDOUT_SEED_OFFSET + seed)
    return {"env": env, "seed": seed, "greedy_mean": round(res.mean, 3), "greedy_std": round(res.std, 3),
            "wall_s": round(wall, 2), "config": cfg.to_dict()}


def render(d: dict) -> str:
    lines = ["# Tabular Q-learning, default configs", "", f"`{d['command']}`", "",
             f"Greedy evaluation (epsilon 0) over {d['episodes']} episodes (seed 1000 + seed) of each run's Q-table; "
             "FrozenLake-v1 is the slippery 4x4 map, its mean return is the success rate.", "",
             "| env | measure | seeds | defaults tuned on seeds | median | min | max | median training wall s |",
             "|---|---|---|---|---|---|---|---|"]
    for env, s in d["summary"].items():
        lines.append(f"| {env} | {ENVS[env]} | {seed_span(s['seeds'])} ({len(s['seeds'])}) | "
                     f"{seed_span(s['tuning_seeds'])} | {s['median']:.3f} | {s['min']:.3f} | {s['max']:.3f} | "
                     f"{s['median_wall_s']} |")
    lines += ["", "| env | seed | greedy mean | std | wall s |", "|---|---|---|---|---|"]
    lines += [f"| {r['env']} | {r['seed']} | {r['greedy_mean']:.3f} | {r['greedy_std']:.3f} | {r['wall_s']} |"
              for r in d["rows"]]
    return "\n".join(lines) + "\n"


REPORTS = {NAME: render}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=list(range(100, 120)))
    ap.add_argument("--runs", default=str(RUNS / NAME))
    ap.add_argument("--report", action="store_true", help="only rewrite results/tabular.md from its JSON")
    args = ap.parse_args()
    if args.report:
        rewrite_reports(REPORTS)
        return
    rows = []
    for env in ENVS:
        for seed in args.seeds:
            unit = Path(args.runs) / f"{env}-seed{seed}.json"
            if (r := load_unit(unit)) is None:
                r = run_one(env, seed)
                save_unit(unit, r)
            rows.append(r)
            print(env, seed, r["greedy_mean"], r["wall_s"], flush=True)
    summary = {}
    for env in ENVS:
        xs = [r["greedy_mean"] for r in rows if r["env"] == env]
        summary[env] = {"seeds": [r["seed"] for r in rows if r["env"] == env], "tuning_seeds": TUNING_SEEDS[env],
                        "median": median(xs), "min": min(xs), "max": max(xs),
                        "median_wall_s": median(r["wall_s"] for r in rows if r["env"] == env)}
    contiguous = args.seeds == list(range(args.seeds[0], args.seeds[-1] + 1))
    seed_arg = f"$(seq {args.seeds[0]} {args.seeds[-1]})" if contiguous else " ".join(map(str, args.seeds))
    data = {"benchmark": NAME, "command": f"python benchmarks/tabular.py --seeds {seed_arg}", "episodes": EPISODES,
            "summary": summary, "rows": rows}
    print(write_report(NAME, data, render))


if __name__ == "__main__":
    main()

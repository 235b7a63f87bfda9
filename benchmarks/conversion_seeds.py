"""The fast method's conversion on CartPole DQNs it was not tuned on: its defaults and fast-wide.

The fast method's defaults (levels 32, 50,000 fine-tune steps on 300,000 frames, T = 32) were
chosen on one DQN (benchmarks/conversion.py, the default CartPole DQN of seed 0). This script
converts the default CartPole DQNs of other seeds (trained by benchmarks/cartpole_dqn.py into
benchmarks/runs/cartpole_dqn/train/sv-SEED) with `spikeverse convert --method fast`, at its defaults
and as fast-wide (issue 16: the fine-tune's frames also played at epsilon 0.3 and 1, its
cross-entropy tempered at the median Q-gap; chosen on the zoo of DQNs trained elsewhere,
conversion_zoo.py), and plays each SNN with `spikeverse evaluate` (seed 001 protocol, the DQN in the
shadow for the conversion rate, the DQN alone on the same episodes for the Welch test). Each
finished (method, seed) is kept in benchmarks/runs/conversion_seeds/ (a rerun skips it).

    python benchmarks/conversion_seeds.py --seeds $(seq 100 109) --methods fast fast-wide --workers 2
    python benchmarks/conversion_seeds.py --report      # rewrite the markdown from the JSON
    python benchmarks/conversion_seeds.py --collect --methods fast fast-wide fast-long   # the units finished so far
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _results import CONVERT_FLAGS, LONG_CYCLES, RUNS, cli, load_unit, median, rewrite_reports, save_unit, seed_span, write_report

from spikeverse.runtime import HELDOUT_SEED_OFFSET

NAME = "conversion_seeds"
TUNED_ON = "the default CartPole DQN of seed 0 (benchmarks/conversion.py, results/conversion_CartPole-v1.json)"
TARGET = 0.99


METHODS = ("fast", "fast-wide", "fast-long")  # fast-long: fast with its fine-tune early-stopped (_results.LONG)


def run_seed(method: str, seed: int, dqn_runs: Path, runs: Path, episodes: int) -> dict:
    unit = runs / f"{method}-seed{seed}.json"
    if (done := load_unit(unit)) is not None:
        return done
    dqn = dqn_runs / f"sv-{seed}"
    if not (dqn / "checkpoint.safetensors").exists():
        raise SystemExit(f"no DQN for seed {seed} in {dqn} (run benchmarks/cartpole_dqn.py --seeds {seed} first)")
    snn_dir = runs / f"{method}-seed{seed}"
    conv = cli("convert", str(dqn), *CONVERT_FLAGS[method], "--seed", str(seed), "--out", str(snn_dir), "--device", "cpu")
    ev = cli("evaluate", str(snn_dir), "--episodes", str(episodes), "--seed", str(HELDOUT_SEED_OFFSET + seed), "--device", "cpu")
    row = dict(method=method, seed=seed, timesteps=ev["timesteps"], conversion_rate=round(ev["conversion_rate"], 4),
               snn_mean=round(ev["mean"], 2), snn_std=round(ev["std"], 2), ann_mean=round(ev["ann_mean"], 2),
               ann_std=round(ev["ann_std"], 2), p_value=None if ev["p_value"] is None else round(ev["p_value"], 4),
               energy_uJ_per_decision=ev["energy_uJ_per_decision"],
               ann_energy_uJ_per_decision=ev["ann_energy_uJ_per_decision"],
               test_agreement=(conv.get("qcfs") or {}).get("test_agreement"),
               finetune_steps=(conv.get("qcfs") or {}).get("steps"))
    save_unit(unit, row)
    return row


def summary(rows: list[dict]) -> dict:
    """One method's rows and their counts against the target."""
    crs = [r["conversion_rate"] for r in rows]
    return dict(rows=rows, reached_target=sum(c >= TARGET for c in crs), median_conversion_rate=median(crs, 4),
                lowest_conversion_rate=min(crs), median_energy_uJ_per_decision=median(
                    [r["energy_uJ_per_decision"] for r in rows], 4),
                within_noise=sum(r["p_value"] is None or r["p_value"] > 0.05 for r in rows))


def summarise(rows: list[dict], command: str, episodes: int) -> dict:
    methods = [m for m in METHODS if any(r["method"] == m for r in rows)]
    by = {m: summary(sorted((r for r in rows if r["method"] == m), key=lambda r: r["seed"])) for m in methods}
    return dict(benchmark=NAME, env="CartPole-v1", command=command, episodes=episodes, tuned_on=TUNED_ON,
                target=TARGET, seeds=sorted({r["seed"] for r in rows}), methods=by)


def render(d: dict) -> str:
    by = d["methods"]
    lines = ["# Fast conversion of CartPole DQNs it was not tuned on", "",
             f"`{d['command']}`", "",
             f"The fast method's defaults were tuned on {d['tuned_on']}; fast-wide (`--finetune-epsilons 0.05,0.3,1 "
             "--margin-scale gap`) was chosen on the zoo of DQNs trained elsewhere (results/conversion_zoo.md). The "
             f"DQNs here are the default CartPole DQNs of seeds {seed_span(d['seeds'])} (benchmarks/cartpole_dqn.py), "
             f"converted with `spikeverse convert --method fast` and played by `spikeverse evaluate --episodes "
             f"{d['episodes']} --seed 1000+SEED` (epsilon 0.05; the DQN in the shadow for the conversion rate, "
             "the DQN alone on the same episodes for Welch's test). fast-long: fast with `--finetune-cycles "
             f"{LONG_CYCLES}` (up to {LONG_CYCLES} cycles of its 50,000 steps while the validation agreement rises).", ""]
    for m, s in by.items():
        n = len(s["rows"])
        lines.append(f"- **{m}: conversion rate >= {d['target']:g} in play on {s['reached_target']}/{n} DQNs, median "
                     f"{s['median_conversion_rate']:.4f}, lowest {s['lowest_conversion_rate']:.4f}; SNN score within "
                     f"noise of the DQN (Welch p > 0.05, or both constant) on {s['within_noise']}/{n}; median "
                     f"{s['median_energy_uJ_per_decision']:.4g} uJ per decision.**")
    base = {r["seed"]: r for r in by["fast"]["rows"]} if "fast" in by else {}
    for m in (m for m in by if m != "fast" and base):
        other = {r["seed"]: r for r in by[m]["rows"]}
        both = sorted(set(base) & set(other))
        up = sum(other[x]["conversion_rate"] > base[x]["conversion_rate"] for x in both)
        down = sum(other[x]["conversion_rate"] < base[x]["conversion_rate"] for x in both)
        cheaper = sum(other[x]["energy_uJ_per_decision"] < base[x]["energy_uJ_per_decision"] for x in both)
        lines.append(f"- {m} against fast on the same DQN: conversion rate higher on {up}/{len(both)}, lower on "
                     f"{down}/{len(both)}; less energy per decision on {cheaper}/{len(both)}.")
    lines += ["", "| method | DQN seed | T | conversion rate | fine-tune test agreement | SNN score | DQN score | "
              "Welch p | SNN uJ/decision | DQN uJ/decision |", "|---|---|---|---|---|---|---|---|---|---|"]
    rows = sorted((r for s in by.values() for r in s["rows"]), key=lambda r: (r["seed"], METHODS.index(r["method"])))
    for r in rows:
        ta = "-" if r["test_agreement"] is None else f"{r['test_agreement']:.4f}"
        p = "-" if r["p_value"] is None else f"{r['p_value']:.3f}"
        lines.append(f"| {r['method']} | {r['seed']} | {r['timesteps']} | {r['conversion_rate']:.4f} | {ta} | "
                     f"{r['snn_mean']:.1f} +- {r['snn_std']:.1f} | {r['ann_mean']:.1f} +- {r['ann_std']:.1f} | {p} | "
                     f"{r['energy_uJ_per_decision']:.4g} | {r['ann_energy_uJ_per_decision']:.4g} |")
    return "\n".join(lines) + "\n"


REPORTS = {NAME: render}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=list(range(100, 110)))
    ap.add_argument("--dqn-runs", default=str(RUNS / "cartpole_dqn" / "train"))
    ap.add_argument("--runs", default=str(RUNS / NAME))
    ap.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    ap.add_argument("--episodes", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--report", action="store_true", help="only rewrite the markdown from the JSON")
    ap.add_argument("--collect", action="store_true",
                    help="only write the results of the (method, seed) units finished so far (a run in progress)")
    args = ap.parse_args()
    if args.report:
        rewrite_reports(REPORTS)
        return
    dqn_runs, runs = Path(args.dqn_runs), Path(args.runs)
    if args.collect:
        rows = [u for m in args.methods for x in args.seeds if (u := load_unit(runs / f"{m}-seed{x}.json")) is not None]
        if not rows:
            raise SystemExit(f"no finished units in {runs}")
        write_report(NAME, summarise(rows, "python benchmarks/conversion_seeds.py --methods " + " ".join(args.methods)
                                     + " (units finished so far: --collect)", args.episodes), render)
        return
    done = 0

    units = [(m, s) for s in args.seeds for m in args.methods]

    def one(unit: tuple[str, int]) -> dict:
        nonlocal done
        method, seed = unit
        row = run_seed(method, seed, dqn_runs, runs, args.episodes)
        done += 1
        print(f"conversion seeds: {done}/{len(units)} ({method}, seed {seed}: CR {row['conversion_rate']:.4f}, "
              f"SNN {row['snn_mean']:.1f}, DQN {row['ann_mean']:.1f})", file=sys.stderr, flush=True)
        return row

    with ThreadPoolExecutor(args.workers) as pool:
        rows = list(pool.map(one, units))
    command = (f"python benchmarks/conversion_seeds.py --seeds {' '.join(map(str, args.seeds))} --methods "
               f"{' '.join(args.methods)} --workers {args.workers}")
    write_report(NAME, summarise(rows, command, args.episodes), render)


if __name__ == "__main__":
    main()

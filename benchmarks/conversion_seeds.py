"""The fast method's default conversion on CartPole DQNs it was not tuned on.

The fast method's defaults (levels 32, 50,000 fine-tune steps on 300,000 frames, T = 32) were
chosen on one DQN (benchmarks/conversion.py, the default CartPole DQN of seed 0). This script
converts the default CartPole DQNs of other seeds (trained by benchmarks/cartpole_dqn.py into
benchmarks/runs/cartpole_dqn/train/sv-SEED) with `spikeverse convert --method fast` and plays each
SNN with `spikeverse evaluate` (seed 001 protocol, the DQN in the shadow for the conversion rate,
the DQN alone on the same episodes for the Welch test). Each finished seed is kept in
benchmarks/runs/conversion_seeds/ (a rerun skips it).

    python benchmarks/conversion_seeds.py --seeds $(seq 100 109) --workers 2
    python benchmarks/conversion_seeds.py --report      # rewrite the markdown from the JSON
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _results import RUNS, cli, load_unit, median, rewrite_reports, save_unit, seed_span, write_report

from spikeverse.runtime import HELDOUT_SEED_OFFSET

NAME = "conversion_seeds"
TUNED_ON = "the default CartPole DQN of seed 0 (benchmarks/conversion.py, results/conversion_CartPole-v1.json)"
TARGET = 0.99


def run_seed(seed: int, dqn_runs: Path, runs: Path, episodes: int) -> dict:
    unit = runs / f"fast-seed{seed}.json"
    if (done := load_unit(unit)) is not None:
        return done
    dqn = dqn_runs / f"sv-{seed}"
    if not (dqn / "checkpoint.safetensors").exists():
        raise SystemExit(f"no DQN for seed {seed} in {dqn} (run benchmarks/cartpole_dqn.py --seeds {seed} first)")
    snn_dir = runs / f"fast-seed{seed}"
    conv = cli("convert", str(dqn), "--method", "fast", "--seed", str(seed), "--out", str(snn_dir), "--device", "cpu")
    ev = cli("evaluate", str(snn_dir), "--episodes", str(episodes), "--seed", str(HELDOUT_SEED_OFFSET + seed), "--device", "cpu")
    row = dict(seed=seed, timesteps=ev["timesteps"], conversion_rate=round(ev["conversion_rate"], 4),
               snn_mean=round(ev["mean"], 2), snn_std=round(ev["std"], 2), ann_mean=round(ev["ann_mean"], 2),
               ann_std=round(ev["ann_std"], 2), p_value=None if ev["p_value"] is None else round(ev["p_value"], 4),
               energy_uJ_per_decision=ev["energy_uJ_per_decision"],
               ann_energy_uJ_per_decision=ev["ann_energy_uJ_per_decision"],
               test_agreement=(conv.get("qcfs") or {}).get("test_agreement"))
    save_unit(unit, row)
    return row


def summarise(rows: list[dict], command: str, episodes: int) -> dict:
    crs = [r["conversion_rate"] for r in rows]
    return dict(benchmark=NAME, env="CartPole-v1", command=command, episodes=episodes, tuned_on=TUNED_ON,
                target=TARGET, rows=rows, seeds=[r["seed"] for r in rows],
                reached_target=sum(c >= TARGET for c in crs), median_conversion_rate=median(crs, 4),
                lowest_conversion_rate=min(crs),
                within_noise=sum(r["p_value"] is None or r["p_value"] > 0.05 for r in rows))


def render(d: dict) -> str:
    rows = d["rows"]
    lines = ["# Fast conversion of CartPole DQNs it was not tuned on", "",
             f"`{d['command']}`", "",
             f"The fast method's defaults were tuned on {d['tuned_on']}; the DQNs here are the default CartPole "
             f"DQNs of seeds {seed_span(d['seeds'])} (benchmarks/cartpole_dqn.py), converted with "
             f"`spikeverse convert --method fast` (defaults) and played by `spikeverse evaluate --episodes "
             f"{d['episodes']} --seed 1000+SEED` (epsilon 0.05; the DQN in the shadow for the conversion rate, "
             "the DQN alone on the same episodes for Welch's test).", "",
             f"**Conversion rate >= {d['target']:g} in play on {d['reached_target']}/{len(rows)} DQNs, median "
             f"{d['median_conversion_rate']:.4f}, lowest {d['lowest_conversion_rate']:.4f}; SNN score within noise "
             f"of the DQN (Welch p > 0.05, or both constant) on {d['within_noise']}/{len(rows)}.**", "",
             "| DQN seed | T | conversion rate | fine-tune test agreement | SNN score | DQN score | Welch p | "
             "SNN uJ/decision | DQN uJ/decision |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ta = "-" if r["test_agreement"] is None else f"{r['test_agreement']:.4f}"
        p = "-" if r["p_value"] is None else f"{r['p_value']:.3f}"
        lines.append(f"| {r['seed']} | {r['timesteps']} | {r['conversion_rate']:.4f} | {ta} | "
                     f"{r['snn_mean']:.1f} +- {r['snn_std']:.1f} | {r['ann_mean']:.1f} +- {r['ann_std']:.1f} | {p} | "
                     f"{r['energy_uJ_per_decision']:.4g} | {r['ann_energy_uJ_per_decision']:.4g} |")
    return "\n".join(lines) + "\n"


REPORTS = {NAME: render}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=list(range(100, 110)))
    ap.add_argument("--dqn-runs", default=str(RUNS / "cartpole_dqn" / "train"))
    ap.add_argument("--runs", default=str(RUNS / NAME))
    ap.add_argument("--episodes", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--report", action="store_true", help="only rewrite the markdown from the JSON")
    args = ap.parse_args()
    if args.report:
        rewrite_reports(REPORTS)
        return
    dqn_runs, runs = Path(args.dqn_runs), Path(args.runs)
    done = 0

    def one(seed: int) -> dict:
        nonlocal done
        row = run_seed(seed, dqn_runs, runs, args.episodes)
        done += 1
        print(f"conversion seeds: {done}/{len(args.seeds)} (seed {seed}: CR {row['conversion_rate']:.4f}, "
              f"SNN {row['snn_mean']:.1f}, DQN {row['ann_mean']:.1f})", file=sys.stderr, flush=True)
        return row

    with ThreadPoolExecutor(args.workers) as pool:
        rows = list(pool.map(one, args.seeds))
    command = f"python benchmarks/conversion_seeds.py --seeds {' '.join(map(str, args.seeds))} --workers {args.workers}"
    write_report(NAME, summarise(sorted(rows, key=lambda r: r["seed"]), command, args.episodes), render)


if __name__ == "__main__":
    main()

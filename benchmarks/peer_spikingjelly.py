"""Peer for benchmarks/conversion.py: SpikingJelly 2.0's ANN-to-SNN converter on the same DQN and
the same frames. Run it with the python of a throwaway venv that has spikingjelly (installed
with --no-deps next to a CPU torch) and spikeverse (``pip install --no-deps -e .``); prints one
JSON line {"agreement": {T: fraction}, ...}.

Recipe as the issue states: ``FXConverter(RateCodingRecipe(dataloader=calibration frames,
mode='99.9%'))``; the converted network is run single-step T times on the analog input, its
(analog, last-layer) outputs summed over the steps, and the argmax compared with the DQN's.
"""

from __future__ import annotations

import argparse
import copy
import json

import torch
from safetensors.torch import load_file
from spikingjelly.activation_based import ann2snn, functional

from spikeverse.convert import load_source


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", required=True)
    ap.add_argument("--frames", required=True)
    ap.add_argument("--timesteps", default="4,8,16,32,64")
    ap.add_argument("--batch", type=int, default=2048)
    args = ap.parse_args()
    Ts = sorted(int(t) for t in args.timesteps.split(","))
    ann, env, _ = load_source(args.run)
    seq = copy.deepcopy(ann.layers).eval()  # the same flat Conv/Linear/ReLU stack spikeverse converts
    frames = load_file(args.frames)
    calib, held = frames["calibration"], frames["heldout"]
    loader = [calib[i:i + 256] for i in range(0, calib.shape[0], 256)]
    snn = ann2snn.FXConverter(recipe=ann2snn.RateCodingRecipe(dataloader=loader, mode="99.9%")).convert(
        copy.deepcopy(seq))
    agree = {T: 0 for T in Ts}
    with torch.no_grad():
        for i in range(0, held.shape[0], args.batch):
            x = held[i:i + args.batch]
            target = seq(x).argmax(-1)
            functional.reset_net(snn)
            total = None
            for t in range(1, Ts[-1] + 1):
                y = snn(x)
                total = y if total is None else total + y
                if t in agree:
                    agree[t] += int((total.argmax(-1) == target).sum())
    n = held.shape[0]
    print(json.dumps({"library": "spikingjelly 2.0", "recipe": "RateCodingRecipe(mode='99.9%')",
                      "agreement": {T: round(agree[T] / n, 4) for T in Ts}}))


if __name__ == "__main__":
    main()

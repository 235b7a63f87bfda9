"""Peer for benchmarks/conversion.py: SpikingJelly 2.0's ANN-to-SNN converter on the same DQN and
the same frames. Run it with the python of a throwaway venv that has spikingjelly (installed
with --no-deps next to a CPU torch) and spikeverse (``pip install --no-deps -e .``); prints one
JSON line {"agreement": {T: fraction}, ...}: on the frames file's "heldout" set, and under "sets" on
every other set in it besides "calibration". With ``--play-episodes N`` it also plays the env at
each T (spikeverse's evaluation protocol, the DQN in the shadow) and reports score and
conversion rate under "play". The DQN is a spikeverse run (``--run``) or a state dict (``--state-dict
FILE --env ID``, as ``spikeverse convert --state-dict`` takes it).

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
    ap.add_argument("--run")
    ap.add_argument("--state-dict")
    ap.add_argument("--env")
    ap.add_argument("--play-episodes", type=int, default=0)
    ap.add_argument("--play-seed", type=int, default=9000)
    ap.add_argument("--frames", required=True)
    ap.add_argument("--timesteps", default="4,8,16,32,64")
    ap.add_argument("--batch", type=int, default=2048)
    args = ap.parse_args()
    Ts = sorted(int(t) for t in args.timesteps.split(","))
    ann, env, _ = load_source(args.run, state_dict=args.state_dict, env_id=args.env)
    seq = copy.deepcopy(ann.layers).eval()  # the same flat Conv/Linear/ReLU stack spikeverse converts
    frames = load_file(args.frames)
    calib = frames["calibration"]
    loader = [calib[i:i + 256] for i in range(0, calib.shape[0], 256)]
    snn = ann2snn.FXConverter(recipe=ann2snn.RateCodingRecipe(dataloader=loader, mode="99.9%")).convert(
        copy.deepcopy(seq))
    out = {"library": "spikingjelly 2.0", "recipe": "RateCodingRecipe(mode='99.9%')"}
    if "heldout" in frames:
        held = frames["heldout"]
        out["agreement"] = {T: round(a, 4) for T, a in _agreement(snn, seq, held, Ts, args.batch).items()}
        out["frames"] = held.shape[0]
    sets = {k: v for k, v in frames.items() if k not in ("calibration", "heldout")}
    if sets:
        out["sets"] = {k: {T: round(a, 4) for T, a in _agreement(snn, seq, v, Ts, args.batch).items()}
                       for k, v in sets.items()}
    if args.play_episodes:
        from spikeverse.rl.evaluation import evaluate

        play = []
        member = evaluate(ann, env, episodes=args.play_episodes, seed=args.play_seed, progress=False)
        for T in Ts:
            res = evaluate(SpikingJellyPolicy(snn, ann.num_actions, T), env, episodes=args.play_episodes,
                           seed=args.play_seed, shadow=ann, progress=False)
            play.append(dict(timesteps=T, conversion_rate=round(res.conversion_rate, 4), snn_mean=round(res.mean, 2),
                             ann_mean=round(member.mean, 2), p_value=_welch(res.scores, member.scores),
                             disagreement_by_q_gap=res.to_dict()["disagreement_by_q_gap"]))
        out["play"] = play
    print(json.dumps(out))


class SpikingJellyPolicy:
    """The converted network as a spikeverse Policy: T single steps on the analog input, the
    (analog) outputs averaged over the steps."""

    def __init__(self, snn, num_actions: int, timesteps: int):
        self.snn, self.num_actions, self.timesteps, self.device = snn, num_actions, timesteps, torch.device("cpu")

    def q_values(self, obs: torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(obs).float()
        with torch.no_grad():
            functional.reset_net(self.snn)
            return sum(self.snn(x) for _ in range(self.timesteps)) / self.timesteps


def _agreement(snn, seq, frames: torch.Tensor, Ts: list[int], batch: int) -> dict[int, float]:
    """Fraction of ``frames`` on which the summed outputs after T steps pick the DQN's action."""
    agree = {T: 0 for T in Ts}
    with torch.no_grad():
        for i in range(0, frames.shape[0], batch):
            x = frames[i:i + batch].float()
            target = seq(x).argmax(-1)
            functional.reset_net(snn)
            total = None
            for t in range(1, Ts[-1] + 1):
                y = snn(x)
                total = y if total is None else total + y
                if t in agree:
                    agree[t] += int((total.argmax(-1) == target).sum())
    return {T: agree[T] / max(1, frames.shape[0]) for T in Ts}


def _welch(a, b) -> float | None:
    from spikeverse.analysis.statistics import compare

    p = compare(a, b).get("p_value")
    return None if p is None else round(float(p), 4)


if __name__ == "__main__":
    main()

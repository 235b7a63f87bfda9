"""Conversion benchmark (issue 4): agreement of converted SNNs with their DQN against the
simulation length T, per method, side by side with SpikingJelly's converter.

1. The DQN: ``--run DIR`` (a spikeverse DQN run), else one is trained with the env's default config
   into benchmarks/runs/conversion/ENV/dqn (reused when it exists).
2. Calibration: the DQN plays 15,000 frames (epsilon 0.05, seed 0): the percentiles of every
   method, and the frames of the QCFS fine-tune (method fast). Agreement is measured on a
   *different* set of the DQN's own observations (``--heldout`` frames, seed 1000; the fine-tune's
   frames are seed 1): the fraction of
   frames on which the SNN's greedy action equals the DQN's.
3. Methods: naive (seed 000), tan (seed 001, robust and count readouts), fast (QCFS fine-tune,
   V_thr/2, analog readout). Peer: SpikingJelly 2.0 ``ann2snn.Converter(RateCodingRecipe(
   calibration frames, mode='99.9%'))``, analog last layer, outputs summed over T, run by
   ``benchmarks/peer_spikingjelly.py`` in another interpreter (``--peer-python``: spikingjelly
   pulls a CUDA torch, so it lives in a throwaway venv, never in spikeverse's dependencies).
4. The smallest T with agreement >= 0.95 and >= 0.99 per method, and in play (seed 001 eq. 18,
   ``--episodes``) the score and conversion rate of each method at ``--play-timesteps`` next to
   the DQN's score on the same protocol (Welch p-value).

    python benchmarks/conversion.py --env CartPole-v1 --peer-python /tmp/sjvenv/bin/python
    python benchmarks/conversion.py --env MinAtar/Breakout --run benchmarks/runs/minatar_breakout/dqn --heldout 5000
    python benchmarks/conversion.py --report     # rewrite the markdown from the JSON alone
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
from safetensors.torch import save_file

from _results import loop_before_issue_14

from spikeverse.analysis.evaluate import evaluate_agent
from spikeverse.analysis.statistics import summarize
from spikeverse.convert import agreement, collect_activations, convert_ann, load_source
from spikeverse.device import tune_cpu_allocator
from spikeverse.rl.config import DQNConfig
from spikeverse.rl.train import train_dqn
from spikeverse.runtime import HELDOUT_SEED_OFFSET
from spikeverse.study.grids import T_GRID

HERE = Path(__file__).parent
RESULTS = HERE / "results"
# The held-out frames come from their own episodes: seed 0 is the calibration, seed 1 the fast
# method's fine-tune frames (FINETUNE_SEED_OFFSET), so agreement is measured on frames neither has seen.
HELDOUT_SEED = HELDOUT_SEED_OFFSET


def batched_agreement(snn, ann, obs: torch.Tensor, batch: int) -> float:
    same = 0.0
    for i in range(0, obs.shape[0], batch):
        chunk = obs[i:i + batch]
        same += agreement(snn, ann, chunk) * chunk.shape[0]
    return same / obs.shape[0]


def first_reaching(curve: dict[int, float], level: float) -> int | None:
    return next((T for T in sorted(curve) if curve[T] >= level), None)


def run_peer(python: str, run: Path, calib: torch.Tensor, held: torch.Tensor, timesteps: list[int]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        frames = Path(tmp) / "frames.safetensors"
        save_file({"calibration": calib.contiguous(), "heldout": held.contiguous()}, str(frames))
        cmd = [python, str(HERE / "peer_spikingjelly.py"), "--run", str(run), "--frames", str(frames),
               "--timesteps", ",".join(map(str, timesteps))]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            return {"error": res.stderr.strip().splitlines()[-1] if res.stderr.strip() else "failed"}
        return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--env", default="CartPole-v1")
    ap.add_argument("--run", type=Path, default=None)
    ap.add_argument("--frames", type=int, default=15_000)
    ap.add_argument("--heldout", type=int, default=15_000)
    ap.add_argument("--timesteps", default=",".join(map(str, T_GRID)))
    ap.add_argument("--methods", default="naive,tan,tan-count,fast")
    ap.add_argument("--levels", type=int, default=32)
    ap.add_argument("--finetune-steps", type=int, default=50_000)
    ap.add_argument("--batch", type=int, default=2048)
    ap.add_argument("--episodes", type=int, default=20)
    ap.add_argument("--play-timesteps", type=int, default=32)
    ap.add_argument("--peer-python", default=None)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--report", action="store_true", help="only rewrite results/conversion_*.md from their JSON")
    args = ap.parse_args()
    if args.report:
        from _results import rewrite_reports

        rewrite_reports(REPORTS)
        return
    torch.set_num_threads(args.threads)
    tune_cpu_allocator()
    Ts = [int(t) for t in args.timesteps.split(",")]
    run = args.run or HERE / "runs" / "conversion" / args.env.replace("/", "-") / "dqn"
    if not (run / "checkpoint.safetensors").exists():
        cfg = replace(DQNConfig.for_env(args.env, seed=0, device="cpu"), **loop_before_issue_14(args.env))
        cfg.validate()
        train_dqn(cfg, run, progress=False)
    ann, env, _ = load_source(run)
    t0 = time.perf_counter()
    stats = collect_activations(ann, env, frames=args.frames, seed=0, min_percentile=99.0, keep_observations=True)
    held = collect_activations(ann, env, frames=args.heldout, seed=HELDOUT_SEED, min_percentile=99.0,
                               keep_observations=True).observations.float()
    out = {"benchmark": "conversion", "env": env, "run": str(run), "calibration_frames": args.frames,
           "heldout_frames": int(held.shape[0]), "timesteps": Ts, "threads": args.threads,
           "dqn_mean_return_while_collecting": sum(stats.returns) / max(len(stats.returns), 1),
           "methods": {}, "play": {}}
    specs = {"naive": dict(method="naive"), "tan": dict(method="tan", readout="robust"),
             "tan-count": dict(method="tan", readout="count"),
             "fast": dict(method="fast", levels=args.levels, finetune_steps=args.finetune_steps)}
    ann_play = None  # the DQN's own play, once for every method
    for name in args.methods.split(","):
        t = time.perf_counter()
        p = {} if specs[name]["method"] == "naive" else {"percentile": 99.9}  # naive takes no percentile
        snn, info = convert_ann(ann, env, stats=stats, seed=0, **p, **specs[name])
        convert_s = time.perf_counter() - t
        curve = {}
        for T in Ts:
            snn.timesteps = T
            snn.reset_generator()
            curve[T] = round(batched_agreement(snn, ann, held, args.batch), 4)
            print(name, T, curve[T], flush=True)
        out["methods"][name] = {"agreement": curve, "T_for_0.95": first_reaching(curve, 0.95),
                                "T_for_0.99": first_reaching(curve, 0.99), "convert_s": round(convert_s, 1),
                                "qcfs": info.get("qcfs")}
        if args.episodes:
            snn.timesteps = args.play_timesteps
            ev = evaluate_agent(snn, env, shadow=ann, shadow_result=ann_play, episodes=args.episodes, seed=100)
            if ann_play is None:
                ann_play = ev.shadow
                out["play"]["dqn"] = summarize(ann_play.scores)
            out["play"][name] = {**summarize(ev.result.scores), "timesteps": args.play_timesteps,
                                 "conversion_rate": ev.result.conversion_rate,
                                 "p_value_vs_dqn": ev.comparison["p_value"],
                                 "synops_per_decision": ev.cost["synops_per_decision"],
                                 "energy_uJ_per_decision": ev.cost["energy_uJ_per_decision"]}
            print(name, "play", out["play"][name], flush=True)
    if args.peer_python:
        peer = run_peer(args.peer_python, run, stats.observations.float(), held, Ts)
        if "agreement" in peer:
            curve = {int(k): v for k, v in peer["agreement"].items()}
            peer.update({"T_for_0.95": first_reaching(curve, 0.95), "T_for_0.99": first_reaching(curve, 0.99)})
        out["methods"]["spikingjelly"] = peer
        print("spikingjelly", peer, flush=True)
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    RESULTS.mkdir(exist_ok=True)
    tag = env.replace("/", "-")
    (RESULTS / f"conversion_{tag}.json").write_text(json.dumps(out, indent=2, default=float))
    (RESULTS / f"conversion_{tag}.md").write_text(markdown(out))
    print(markdown(out))


def markdown(r: dict) -> str:
    Ts = r["timesteps"]
    lines = [f"# Conversion: agreement with the DQN vs T ({r['env']})", "",
             f"DQN {r['run']}; calibration {r['calibration_frames']} frames (seed 0), agreement on "
             f"{r['heldout_frames']} other frames of the DQN's own play (seed {HELDOUT_SEED}; the fast method's fine-tune "
             f"learns from seed 1's frames); {r['threads']} threads.", "",
             "| method | " + " | ".join(f"T={T}" for T in Ts) + " | T for 0.95 | T for 0.99 |",
             "|---|" + "---|" * (len(Ts) + 2)]
    for name, m in r["methods"].items():
        if "agreement" not in m:
            lines.append(f"| {name} | {m} |")
            continue
        cells = [f"{m['agreement'].get(T, m['agreement'].get(str(T), float('nan'))):.3f}" for T in Ts]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {m['T_for_0.95'] or '>' + str(Ts[-1])} | "
                     f"{m['T_for_0.99'] or '>' + str(Ts[-1])} |")
    if r["play"]:
        d = r["play"].get("dqn", {})
        lines += ["", f"In play (seed 001 protocol, {d.get('n')} episodes each): DQN {d.get('mean', 0):.1f} +- "
                  f"{d.get('std', 0):.1f}", "",
                  "| method | T | mean | std | p vs DQN | conversion rate | synops/decision | uJ/decision |",
                  "|---|---|---|---|---|---|---|---|"]
        for name, p in r["play"].items():
            if name == "dqn":
                continue
            lines.append(f"| {name} | {p['timesteps']} | {p['mean']:.1f} | {p['std']:.1f} | {p['p_value_vs_dqn']:.3g} | "
                         f"{p['conversion_rate']:.3f} | {p['synops_per_decision']:.0f} | {p['energy_uJ_per_decision']:.3g} |")
    return "\n".join(lines) + "\n"


# results name -> render (tests/test_benchmark_reports.py checks each markdown against its JSON)
REPORTS = {"conversion_CartPole-v1": markdown, "conversion_MinAtar-Breakout": markdown}


if __name__ == "__main__":
    sys.exit(main())

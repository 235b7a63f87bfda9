"""CartPole-v1 DQN benchmark (issue 2): the default config over several seeds.

For each seed: train with the default CartPole config (``spikeverse train --env CartPole-v1``),
then evaluate 20 episodes with the evaluation protocol; record the eval mean and the wall time.
Target: 5/5 seeds >= 475 with a median wall time <= 60 s on 2 cores. If stable-baselines3 is
importable, its DQN with the rl-zoo CartPole hyperparameters runs on the same seeds in the same
run, evaluated by the same protocol, and the wall-time ratio is reported.

    python benchmarks/cartpole_dqn.py --seeds 0 1 2 3 4
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from spikeverse.rl.config import DQNConfig
from spikeverse.rl.evaluation import evaluate
from spikeverse.rl.train import load_dqn, train_dqn

RESULTS = Path(__file__).parent / "results"


def run_spikeverse(seed: int, workdir: Path) -> dict:
    cfg = DQNConfig.for_env("CartPole-v1", seed=seed, device="cpu")
    t0 = time.perf_counter()
    train_dqn(cfg, workdir / f"sv-{seed}", progress=False)
    wall = time.perf_counter() - t0
    net, _ = load_dqn(workdir / f"sv-{seed}")
    res = evaluate(net, "CartPole-v1", episodes=20, seed=1000 + seed)
    return {"seed": seed, "eval_mean": res.mean, "eval_std": res.std, "wall_s": round(wall, 2)}


def run_sb3(seed: int) -> dict | None:
    try:
        from stable_baselines3 import DQN
    except ImportError:
        return None
    # rl-baselines3-zoo hyperparams/dqn.yml, CartPole-v1
    model = DQN("MlpPolicy", "CartPole-v1", learning_rate=2.3e-3, batch_size=64, buffer_size=100_000,
                learning_starts=1000, gamma=0.99, target_update_interval=10, train_freq=256,
                gradient_steps=128, exploration_fraction=0.16, exploration_final_eps=0.04,
                policy_kwargs=dict(net_arch=[256, 256]), seed=seed, device="cpu", verbose=0)
    t0 = time.perf_counter()
    model.learn(total_timesteps=50_000)
    wall = time.perf_counter() - t0

    class _P:
        num_actions = 2
        device = torch.device("cpu")

        def q_values(self, obs):
            with torch.no_grad():
                return model.q_net(obs.float())

    res = evaluate(_P(), "CartPole-v1", episodes=20, seed=1000 + seed)
    return {"seed": seed, "eval_mean": res.mean, "eval_std": res.std, "wall_s": round(wall, 2)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows, peer = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for s in args.seeds:
            rows.append(run_spikeverse(s, Path(tmp)))
            print("spikeverse", rows[-1], flush=True)
            if (p := run_sb3(s)) is not None:
                peer.append(p)
                print("sb3", p, flush=True)
    out = {
        "benchmark": "cartpole_dqn", "env": "CartPole-v1", "eval_episodes": 20, "threads": args.threads,
        "spikeverse": rows,
        "solved": sum(r["eval_mean"] >= 475 for r in rows), "seeds": len(rows),
        "median_wall_s": statistics.median(r["wall_s"] for r in rows),
    }
    if peer:
        out["sb3"] = peer
        out["sb3_median_wall_s"] = statistics.median(r["wall_s"] for r in peer)
        out["wall_ratio_spikeverse_over_sb3"] = round(out["median_wall_s"] / out["sb3_median_wall_s"], 3)
        out["sb3_solved"] = sum(r["eval_mean"] >= 475 for r in peer)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cartpole_dqn.json").write_text(json.dumps(out, indent=2))
    lines = ["# CartPole-v1 DQN, default config", "",
             f"threads: {args.threads}; evaluation: 20 episodes, epsilon 0.05 (seed 001 protocol)", "",
             "| seed | eval mean | eval std | wall s |", "|---|---|---|---|"]
    lines += [f"| {r['seed']} | {r['eval_mean']:.1f} | {r['eval_std']:.1f} | {r['wall_s']} |" for r in rows]
    lines += ["", f"solved (>= 475): {out['solved']}/{len(rows)}; median wall time {out['median_wall_s']} s"]
    if peer:
        lines += ["", "SB3 DQN (rl-zoo hyperparameters, its final weights: SB3 has no model selection unless an EvalCallback is added; ours keep the best of the periodic evaluations), same seeds and protocol:", "",
                  "| seed | eval mean | wall s |", "|---|---|---|"]
        lines += [f"| {r['seed']} | {r['eval_mean']:.1f} | {r['wall_s']} |" for r in peer]
        lines += ["", f"wall-time ratio spikeverse / SB3 (medians): {out['wall_ratio_spikeverse_over_sb3']}"]
    (RESULTS / "cartpole_dqn.md").write_text("\n".join(lines) + "\n")
    print(json.dumps({k: v for k, v in out.items() if k not in ("spikeverse", "sb3")}))


if __name__ == "__main__":
    main()

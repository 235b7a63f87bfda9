"""CartPole-v1 DQN benchmark (issue 2): the default config of before issue 14 over several seeds.

For each seed: train with the CartPole config of before issue 14 (``spikeverse train --env
CartPole-v1 --num-envs 1 --batch-size 128 --train-freq 2``, target copied every 100 frames, model
selection on 5 episodes, no early stop: ``_results.CARTPOLE_LOOP_BEFORE_ISSUE_14``; the DQNs that
``conversion_seeds.py`` and ``robustness.py`` convert and perturb are these runs; today's default
is measured by ``throughput.py cartpole``),
then evaluate 20 episodes with the evaluation protocol (seed 1000 + seed); record the eval mean
and the wall time. Solved: eval mean >= 475. With ``--sb3`` (stable-baselines3 importable), its
DQN with the rl-zoo CartPole hyperparameters runs on the same seeds, evaluated by the same
protocol, and the wall-time ratio is reported.

The defaults were chosen on seeds 0-4 (results/cartpole_dqn_tuning_seeds.{json,md}); the headline
is measured on seeds the tuning never saw:

    python benchmarks/cartpole_dqn.py --seeds $(seq 100 119) --threads 1   # 1-6 min per seed on a shared core
    python benchmarks/cartpole_dqn.py --report      # rewrite the markdown from the JSON alone

Each finished seed is kept in benchmarks/runs/cartpole_dqn/ (a rerun skips it), so a killed run
resumes; the JSON and markdown are rewritten after every seed.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time
from dataclasses import replace
from pathlib import Path

import torch
from _results import CARTPOLE_LOOP_BEFORE_ISSUE_14, RUNS, load_unit, median, rewrite_reports, save_unit, seed_span, write_report

from spikeverse.runtime import HELDOUT_SEED_OFFSET

NAME = "cartpole_dqn"
TUNING_SEEDS = [0, 1, 2, 3, 4]
TUNING_NOTE = ("the defaults of before issue 14 (1 env, 1 x 128 per 2 frames, target every 100 frames, "
               "selection on 5 episodes; src/spikeverse/rl/config.py then) were chosen on seeds 0-4 "
               "(results/cartpole_dqn_tuning_seeds.json), the only tuning seeds on record; seeds 100 and up "
               "were never used for tuning")
SOLVED = 475.0


def run_spikeverse(seed: int, workdir: Path, name: str = "sv", **overrides) -> dict:
    """Train the default CartPole config with ``overrides`` (set as given: None is a value) into
    workdir/NAME-SEED from scratch; its wall time and the evaluation protocol's 20 episodes of its
    best weights."""
    from spikeverse.rl.checkpoint import load_dqn
    from spikeverse.rl.config import DQNConfig
    from spikeverse.rl.evaluation import evaluate
    from spikeverse.rl.train import train_dqn

    cfg = replace(DQNConfig.for_env("CartPole-v1", seed=seed, device="cpu"), **overrides)
    cfg.validate()
    run = workdir / f"{name}-{seed}"
    shutil.rmtree(run, ignore_errors=True)  # a killed run's partial seed starts over
    t0 = time.perf_counter()
    train_dqn(cfg, run, progress=False, resume=False)
    wall = time.perf_counter() - t0
    net, _ = load_dqn(run)
    res = evaluate(net, "CartPole-v1", episodes=20, seed=HELDOUT_SEED_OFFSET + seed)
    return {"seed": seed, "eval_mean": res.mean, "eval_std": res.std, "wall_s": round(wall, 2)}


def run_sb3(seed: int) -> dict:
    from stable_baselines3 import DQN

    from spikeverse.rl.evaluation import evaluate

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

    res = evaluate(_P(), "CartPole-v1", episodes=20, seed=HELDOUT_SEED_OFFSET + seed)
    return {"seed": seed, "eval_mean": res.mean, "eval_std": res.std, "wall_s": round(wall, 2)}


def summarise(rows: list[dict], peer: list[dict], threads: int, command: str) -> dict:
    out = {
        "benchmark": NAME, "env": "CartPole-v1", "eval_episodes": 20, "threads": threads, "command": command,
        "seeds": [r["seed"] for r in rows], "tuning_seeds": TUNING_SEEDS, "tuning_note": TUNING_NOTE,
        "spikeverse": rows,
        "solved": sum(r["eval_mean"] >= SOLVED for r in rows),
        "median_eval_mean": median(r["eval_mean"] for r in rows),
        "median_wall_s": median(r["wall_s"] for r in rows),
    }
    if peer:
        out["sb3"] = peer
        out["sb3_median_wall_s"] = statistics.median(r["wall_s"] for r in peer)
        out["wall_ratio_spikeverse_over_sb3"] = round(out["median_wall_s"] / out["sb3_median_wall_s"], 3)
        out["sb3_solved"] = sum(r["eval_mean"] >= SOLVED for r in peer)
    return out


def render(d: dict) -> str:
    rows = d["spikeverse"]
    untuned = [r for r in rows if r["seed"] not in d["tuning_seeds"]]
    lines = ["# CartPole-v1 DQN, the default config of before issue 14", "",
             f"`{d['command']}`", "",
             f"Seeds {seed_span(d['seeds'])} ({len(untuned)} of them not used for tuning); {d['tuning_note']}. "
             f"Torch threads per run: {d['threads']}; evaluation: {d['eval_episodes']} episodes (seed 1000 + seed), "
             "epsilon 0.05 (seed 001 protocol).", "",
             "| seed | eval mean | eval std | wall s |", "|---|---|---|---|"]
    lines += [f"| {r['seed']} | {r['eval_mean']:.1f} | {r['eval_std']:.1f} | {r['wall_s']} |" for r in rows]
    lines += ["", f"solved (eval mean >= {SOLVED:g}): {d['solved']}/{len(rows)} seeds; median eval mean "
              f"{d['median_eval_mean']:.1f}; median wall time {d['median_wall_s']} s"]
    if "sb3" in d:
        lines += ["", "SB3 DQN (rl-zoo hyperparameters, its final weights: SB3 has no model selection unless an "
                  "EvalCallback is added; ours keep the best of the periodic evaluations), same seeds and protocol:", "",
                  "| seed | eval mean | wall s |", "|---|---|---|"]
        lines += [f"| {r['seed']} | {r['eval_mean']:.1f} | {r['wall_s']} |" for r in d["sb3"]]
        lines += ["", f"SB3 solved: {d['sb3_solved']}/{len(d['sb3'])}; wall-time ratio spikeverse / SB3 (medians): "
                  f"{d['wall_ratio_spikeverse_over_sb3']}"]
    return "\n".join(lines) + "\n"


REPORTS = {NAME: render, "cartpole_dqn_tuning_seeds": render}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=list(range(100, 120)))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--sb3", action="store_true", help="also run SB3's DQN (stable-baselines3) on each seed")
    ap.add_argument("--runs", default=str(RUNS / NAME), help="finished seeds are kept here (a rerun skips them)")
    ap.add_argument("--report", action="store_true", help="only rewrite results/*.md from the JSON")
    args = ap.parse_args()
    if args.report:
        rewrite_reports(REPORTS)
        return
    torch.set_num_threads(args.threads)
    runs = Path(args.runs)
    command = (f"python benchmarks/cartpole_dqn.py --seeds {' '.join(map(str, args.seeds))} --threads {args.threads}"
               + (" --sb3" if args.sb3 else ""))
    rows, peer = [], []
    for s in args.seeds:
        unit = runs / f"spikeverse-seed{s}.json"
        if (r := load_unit(unit)) is None:
            r = run_spikeverse(s, runs / "train", **CARTPOLE_LOOP_BEFORE_ISSUE_14)
            save_unit(unit, r)
        rows.append(r)
        print("spikeverse", r, flush=True)
        if args.sb3:
            unit = runs / f"sb3-seed{s}.json"
            if (p := load_unit(unit)) is None:
                p = run_sb3(s)
                save_unit(unit, p)
            peer.append(p)
            print("sb3", p, flush=True)
        print(write_report(NAME, summarise(rows, peer, args.threads, command), render), flush=True)


if __name__ == "__main__":
    main()

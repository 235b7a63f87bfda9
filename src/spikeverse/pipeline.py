"""The main job (``spikeverse run``): train a DQN, evaluate it, write a report folder.

    OUT/dqn/      the training run (resumes when rerun)
    OUT/report/   report.md, results.json, figures/*.png
"""

from __future__ import annotations

import json
from pathlib import Path

from spikeverse.analysis.plots import learning_curve, score_distributions
from spikeverse.analysis.statistics import summarize
from spikeverse.io.checkpoint import atomic_write_text
from spikeverse.io.rundir import read_metrics
from spikeverse.rl.config import DQNConfig
from spikeverse.rl.evaluation import evaluate
from spikeverse.rl.train import load_dqn, train_dqn


def run_pipeline(env_id: str = "CartPole-v1", out: str | Path | None = None, *, seed: int = 0,
                 episodes: int = 20, device: str = "auto", steps: int | None = None,
                 progress: bool | None = None) -> dict:
    out = Path(out) if out is not None else Path("runs") / env_id.replace("/", "-")
    cfg = DQNConfig.for_env(env_id, seed=seed, device=device, total_steps=steps)
    train = train_dqn(cfg, out / "dqn", progress=progress)
    net, meta = load_dqn(out / "dqn", "best")
    ann = evaluate(net, env_id, episodes=episodes, seed=seed)

    report = out / "report"
    figs = report / "figures"
    rows = read_metrics(out / "dqn")
    learning_curve([float(r["step"]) for r in rows], [float(r["episode_return"]) for r in rows],
                   figs / "learning_curve.png", title=f"DQN on {env_id}")
    score_distributions({"DQN": ann.scores}, figs / "reward_distribution.png",
                        title=f"{env_id}: evaluation scores")
    results = {
        "env": env_id, "seed": seed, "train_steps": train.steps, "train_wall_s": round(train.wall_s, 1),
        "weights": meta["weights"], "dqn": {**summarize(ann.scores), "scores": ann.scores},
        "protocol": {"epsilon": ann.epsilon, "noop_max": ann.noop_max, "noops_applied": ann.noops_applied,
                     "max_episode_steps": ann.max_episode_steps, "cap_unit": ann.cap_unit},
    }
    atomic_write_text(report / "results.json", json.dumps(results, indent=2))
    atomic_write_text(report / "report.md", _markdown(results))
    return results


def _markdown(r: dict) -> str:
    d, p = r["dqn"], r["protocol"]
    return "\n".join([
        f"# spikeverse report: {r['env']}",
        "",
        f"DQN trained for {r['train_steps']} environment steps (seed {r['seed']}, "
        f"{r['train_wall_s']} s in this session); evaluated with the {r['weights']} weights.",
        "",
        f"Protocol: epsilon {p['epsilon']}, up to {p['noop_max']} random no-ops "
        f"({'applied' if p['noops_applied'] else 'not applicable: the game has no no-op action'}), "
        f"episode cap {p['max_episode_steps'] or 'the environment limit'} {p['cap_unit']}.",
        "",
        "| agent | episodes | mean | std | min | max |",
        "|---|---|---|---|---|---|",
        f"| DQN | {d['n']} | {d['mean']:.1f} | {d['std']:.1f} | {d['min']:.0f} | {d['max']:.0f} |",
        "",
        "![learning curve](figures/learning_curve.png)",
        "",
        "![scores](figures/reward_distribution.png)",
        "",
    ])

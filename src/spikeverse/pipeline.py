"""The main job (``spikeverse run``): train a DQN, convert it to a spiking network (seed 001's
method), evaluate both on the same protocol, write a report folder.

    OUT/dqn/      the training run (resumes when rerun)
    OUT/snn/      the converted SNN (kind "snn"; `spikeverse evaluate OUT/snn` works on it)
    OUT/report/   report.md, results.json, figures/*.png
"""

from __future__ import annotations

import json
from pathlib import Path

from spikeverse.analysis.plots import learning_curve, score_and_agreement_vs_timesteps, score_distributions
from spikeverse.analysis.statistics import compare, summarize
from spikeverse.convert import convert_source, load_ann, load_snn
from spikeverse.io.checkpoint import atomic_write_text
from spikeverse.io.rundir import read_metrics
from spikeverse.rl.config import DQNConfig
from spikeverse.rl.evaluation import evaluate
from spikeverse.rl.train import train_dqn

SWEEP_TIMESTEPS = (8, 16, 32, 64, 128)


def run_pipeline(env_id: str = "CartPole-v1", out: str | Path | None = None, *, seed: int = 0,
                 episodes: int = 20, device: str = "auto", steps: int | None = None,
                 progress: bool | None = None, timesteps: int = 100, percentile: float = 99.9,
                 frames: int = 15_000, sweep_episodes: int = 3) -> dict:
    out = Path(out) if out is not None else Path("runs") / env_id.replace("/", "-")
    cfg = DQNConfig.for_env(env_id, seed=seed, device=device, total_steps=steps)
    train = train_dqn(cfg, out / "dqn", progress=progress)
    conversion = convert_source(out / "snn", out / "dqn", method="tan", percentile=percentile,
                                timesteps=timesteps, frames=frames, seed=seed)
    snn, _ = load_snn(out / "snn")
    ann = load_ann(out / "snn")
    snn.reset_stats()
    snn_res = evaluate(snn, env_id, episodes=episodes, seed=seed, shadow=ann)
    diag = snn.diagnostics(since_reset=True)
    ann_res = evaluate(ann, env_id, episodes=episodes, seed=seed)
    sweep = []
    for T in SWEEP_TIMESTEPS:  # score and conversion rate against the simulation length (seed 001 Fig. 1a)
        snn.timesteps = T
        r = evaluate(snn, env_id, episodes=sweep_episodes, seed=seed + 1, shadow=ann)
        sweep.append({"timesteps": T, "mean": r.mean, "conversion_rate": r.conversion_rate})

    report = out / "report"
    figs = report / "figures"
    rows = read_metrics(out / "dqn")
    learning_curve([float(r["step"]) for r in rows], [float(r["episode_return"]) for r in rows],
                   figs / "learning_curve.png", title=f"DQN on {env_id}")
    score_distributions({"DQN": ann_res.scores, f"SNN (T={timesteps})": snn_res.scores},
                        figs / "reward_distribution.png", title=f"{env_id}: evaluation scores")
    score_and_agreement_vs_timesteps(sweep, figs / "score_cr_vs_T.png",
                                     title=f"{env_id}: converted SNN (p={percentile}, robust readout)")
    results = {
        "env": env_id, "seed": seed, "train_steps": train.steps, "train_wall_s": round(train.wall_s, 1),
        "dqn": {**summarize(ann_res.scores), "scores": ann_res.scores},
        "snn": {**summarize(snn_res.scores), "scores": snn_res.scores, "timesteps": timesteps,
                "percentile": percentile, "readout": snn.readout, "conversion_rate": snn_res.conversion_rate,
                "synops_per_decision": diag["synops_per_decision"],
                "energy_uJ_per_decision": diag["energy_uJ_per_decision"]},
        "dqn_macs_per_decision": diag["ann_macs_per_decision"],
        "dqn_energy_uJ_per_decision": diag["ann_energy_uJ_per_decision"],
        "energy_convention": diag["energy_convention"],
        "comparison": compare(ann_res.scores, snn_res.scores),
        "sweep": sweep, "conversion_frames": conversion["collection"]["frames"],
        "protocol": {"epsilon": ann_res.epsilon, "noop_max": ann_res.noop_max, "noops_applied": ann_res.noops_applied,
                     "max_episode_steps": ann_res.max_episode_steps, "cap_unit": ann_res.cap_unit},
    }
    atomic_write_text(report / "results.json", json.dumps(results, indent=2, default=float))
    atomic_write_text(report / "report.md", _markdown(results))
    return results


def _markdown(r: dict) -> str:
    d, s, p, c = r["dqn"], r["snn"], r["protocol"], r["comparison"]
    pct = f"{100 * s['mean'] / d['mean']:.1f}%" if d["mean"] else "n/a"
    pval = "n/a" if c["p_value"] != c["p_value"] else f"{c['p_value']:.3g}"
    lines = [
        f"# spikeverse report: {r['env']}",
        "",
        f"DQN trained for {r['train_steps']} environment steps (seed {r['seed']}, {r['train_wall_s']} s in "
        f"this session), converted with seed 001's method (IF neurons, reset by subtraction, "
        f"p = {s['percentile']} percentile normalization over {r['conversion_frames']} frames, analog input, "
        f"{s['readout']} readout, T = {s['timesteps']}).",
        "",
        f"Protocol: epsilon {p['epsilon']}, up to {p['noop_max']} random no-ops "
        f"({'applied' if p['noops_applied'] else 'not applicable: the game has no no-op action'}), "
        f"episode cap {p['max_episode_steps'] or 'the environment limit'} {p['cap_unit']}.",
        "",
        "| agent | episodes | mean | std | % of DQN | p (Welch) | conversion rate | ops per decision | energy per decision |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| DQN | {d['n']} | {d['mean']:.1f} | {d['std']:.1f} | 100% | | | {r['dqn_macs_per_decision']:.0f} MACs "
        f"| {r['dqn_energy_uJ_per_decision']:.3g} uJ |",
        f"| SNN | {s['n']} | {s['mean']:.1f} | {s['std']:.1f} | {pct} | {pval} | {s['conversion_rate']:.3f} "
        f"| {s['synops_per_decision']:.0f} synops | {s['energy_uJ_per_decision']:.3g} uJ |",
        "",
        f"Energy convention: {r['energy_convention']}.",
        "",
        "Score and conversion rate against the simulation length T:",
        "",
        "| T | mean score | conversion rate |",
        "|---|---|---|",
        *[f"| {w['timesteps']} | {w['mean']:.1f} | {w['conversion_rate']:.3f} |" for w in r["sweep"]],
        "",
        "![learning curve](figures/learning_curve.png)",
        "",
        "![scores](figures/reward_distribution.png)",
        "",
        "![score and CR vs T](figures/score_cr_vs_T.png)",
        "",
    ]
    return "\n".join(lines)

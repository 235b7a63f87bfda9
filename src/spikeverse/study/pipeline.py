"""The main job (``spikeverse run``): train a DQN, convert it to spiking networks (seed 001's
method and the fast method by default), evaluate all on the same protocol, write a report folder.

    OUT/dqn/          the training run (resumes when rerun)
    OUT/snn-METHOD/   each converted SNN (kind "snn"; `spikeverse evaluate OUT/snn-tan` works on it)
    OUT/report/   report.md, results.json, figures/*.png
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from spikeverse.analysis.evaluate import evaluate_agent
from spikeverse.analysis.plots import learning_curve, score_and_agreement_vs_timesteps, score_distributions
from spikeverse.analysis.statistics import summarize
from spikeverse.convert import check_options, convert_source, load_ann, load_snn, options_for
from spikeverse.convert.io import check_snn_dir
from spikeverse.device import resolve_device
from spikeverse.envs import env_family
from spikeverse.errors import SpikeverseError
from spikeverse.io.checkpoint import atomic_write_text
from spikeverse.io.rundir import read_config, read_metrics
from spikeverse.progress import Progress, announce
from spikeverse.rl.config import DQNConfig
from spikeverse.rl.env_check import check_agent_env
from spikeverse.rl.evaluation import evaluate
from spikeverse.rl.train import train_dqn
from spikeverse.runtime import SWEEP_SEED_OFFSET
from spikeverse.study.grids import METHOD_TIMESTEPS, PIPELINE_TIMESTEPS

PIPELINE_STEPS = {"minatar": 500_000}  # training budget of the main job where the env's default is far longer


def run_pipeline(env_id: str = "CartPole-v1", out: str | Path | None = None, *, seed: int = 0,
                 episodes: int = 20, device: str = "auto", steps: int | None = None,
                 progress: bool | None = None, methods: Sequence[str] = ("tan", "fast"),
                 timesteps: int | None = None, percentile: float = 99.9, frames: int = 15_000,
                 sweep_episodes: int = 3, levels: int = 32, finetune_steps: int = 50_000,
                 finetune_frames: int | None = None) -> dict:
    """Train (or resume) the DQN, convert it with each of ``methods`` (seed 001's tan at T=100 and
    our fast at T=32 by default; ``timesteps`` overrides both), evaluate the DQN and every SNN on
    the same protocol and seeds, sweep T, and write the report. Each phase opens with a line on
    stderr and reports its progress (``progress``: None = a bar on a terminal, a line per ~10%
    otherwise; False = silent)."""
    # every argument is checked before the training starts
    methods = list(methods)
    out = Path(out) if out is not None else Path("runs") / env_id.replace("/", "-")
    shared = dict(percentile=percentile, frames=frames, seed=seed, levels=levels, finetune_steps=finetune_steps,
                  finetune_frames=finetune_frames)  # each method gets those it takes
    _check_arguments(methods, out, shared, timesteps, episodes, sweep_episodes)
    if steps is None:
        steps = PIPELINE_STEPS.get(env_family(env_id))
    cfg = DQNConfig.for_env(env_id, seed=seed, device=device, total_steps=steps)
    check_agent_env("dqn", env_id)
    resolve_device(device)
    read_config(out / "dqn")  # a corrupted config.yaml: refused before the training line is shown
    announce(f"[run] train: DQN on {env_id}, {cfg.total_steps} steps -> {out / 'dqn'}", progress)
    train = train_dqn(cfg, out / "dqn", progress=progress)
    ann_res = None
    snns: dict[str, dict] = {}
    for method in methods:
        T = METHOD_TIMESTEPS[method] if timesteps is None else timesteps
        snn_dir = out / f"snn-{method}"
        announce(f"[run] convert {method}: T={T}, {frames} frames for the statistics"
                 + (f", QCFS fine-tune of {finetune_steps} steps" if method == "fast" and levels > 0 else "")
                 + f" -> {snn_dir}", progress)
        conversion = convert_source(snn_dir, out / "dqn", method=method, timesteps=T, progress=progress,
                                    **options_for(method, shared))
        snn, _ = load_snn(snn_dir)
        ann = load_ann(snn_dir)
        if ann_res is None:
            announce(f"[run] evaluate DQN: {episodes} episodes", progress)
            ann_res = evaluate(ann, env_id, episodes=episodes, seed=seed, progress=progress, desc="evaluate DQN")
        announce(f"[run] evaluate SNN {method}: {episodes} episodes at T={T}", progress)
        ev = evaluate_agent(snn, env_id, shadow=ann, shadow_result=ann_res, episodes=episodes, seed=seed,
                            progress=progress, desc=f"evaluate SNN {method}")
        res, diag = ev.result, ev.cost
        sweep = _sweep_timesteps(snn, ann, env_id, method, seed, sweep_episodes, progress)
        snns[method] = {**summarize(res.scores), "scores": res.scores, "method": method, "timesteps": T,
                        "percentile": percentile if method != "naive" else None, "readout": conversion["readout"],
                        "conversion_rate": res.conversion_rate, "qcfs": conversion.get("qcfs"),
                        "synops_per_decision": diag["synops_per_decision"],
                        "energy_uJ_per_decision": diag["energy_uJ_per_decision"],
                        "comparison": ev.comparison, "sweep": sweep, "snn_dir": str(snn_dir)}

    report = out / "report"
    announce(f"[run] report -> {report}", progress)
    _figures(report / "figures", env_id, read_metrics(out / "dqn"), ann_res.scores, snns)
    results = {
        "env": env_id, "seed": seed, "train_steps": train.steps, "train_wall_s": round(train.wall_s, 1),
        "dqn": {**summarize(ann_res.scores), "scores": ann_res.scores},
        "snn": snns,
        "dqn_macs_per_decision": diag["ann_macs_per_decision"],
        "dqn_energy_uJ_per_decision": diag["ann_energy_uJ_per_decision"],
        "energy_convention": diag["energy_convention"],
        "percentile": percentile, "conversion_frames": conversion["collection"]["frames"],
        "protocol": {"epsilon": ann_res.epsilon, "noop_max": ann_res.noop_max, "noops_applied": ann_res.noops_applied,
                     "max_episode_steps": ann_res.max_episode_steps, "cap_unit": ann_res.cap_unit},
    }
    atomic_write_text(report / "results.json", json.dumps(results, indent=2, default=float))
    atomic_write_text(report / "report.md", _markdown(results))
    return results


def _figures(figs: Path, env_id: str, rows: list[dict], dqn_scores: list[float], snns: dict[str, dict]) -> None:
    """The learning curve, the score distributions and each method's score and CR against T."""
    learning_curve([float(r["step"]) for r in rows], [float(r["episode_return"]) for r in rows],
                   figs / "learning_curve.png", title=f"DQN on {env_id}")
    score_distributions({"DQN": dqn_scores,
                         **{f"SNN {m} (T={s['timesteps']})": s["scores"] for m, s in snns.items()}},
                        figs / "reward_distribution.png", title=f"{env_id}: evaluation scores")
    for m, s in snns.items():
        score_and_agreement_vs_timesteps(s["sweep"], figs / f"score_cr_vs_T_{m}.png",
                                         title=f"{env_id}: SNN ({m}, {s['readout']} readout)")


def _check_arguments(methods: list[str], out: Path, shared: dict, timesteps: int | None, episodes: int,
                     sweep_episodes: int) -> None:
    """Refuse a bad method list, episode count, output folder or method option (one line each)."""
    if not methods:
        raise SpikeverseError(f"no conversion method given (--methods takes {', '.join(METHOD_TIMESTEPS)}, "
                              f"comma-separated)")
    for m in methods:
        if m not in METHOD_TIMESTEPS:
            raise SpikeverseError(f"unknown conversion method {m!r} (choose from {', '.join(METHOD_TIMESTEPS)})")
    if len(set(methods)) < len(methods):
        raise SpikeverseError(f"--methods names a method twice: {','.join(methods)}")
    for name, n in (("--episodes", episodes), ("sweep_episodes", sweep_episodes)):
        if int(n) != n or n < 1:
            raise SpikeverseError(f"{name} must be >= 1, got {n}")
    if out.exists() and not out.is_dir():
        raise SpikeverseError(f"{out} is a file, not a folder for the run; use another --out")
    for m in methods:
        T = METHOD_TIMESTEPS[m] if timesteps is None else timesteps
        check_options(m, timesteps=T, **options_for(m, shared))
        check_snn_dir(out / f"snn-{m}")


def _sweep_timesteps(snn, ann, env_id: str, method: str, seed: int, episodes: int, progress) -> list[dict]:
    """Score and conversion rate against the simulation length (seed 001 Fig. 1a): ``episodes``
    episodes at every T of PIPELINE_TIMESTEPS, evaluation seed ``seed + SWEEP_SEED_OFFSET``."""
    sweep = []
    announce(f"[run] sweep T for {method}: T in {', '.join(map(str, PIPELINE_TIMESTEPS))}, "
             f"{episodes} episodes each", progress)
    with Progress(len(PIPELINE_TIMESTEPS) * episodes, f"sweep T ({method})", unit="episode",
                  enabled=progress) as bar:
        for t in PIPELINE_TIMESTEPS:
            snn.timesteps = t
            bar.update(0, T=t)
            r = evaluate(snn, env_id, episodes=episodes, seed=seed + SWEEP_SEED_OFFSET, shadow=ann, progress=bar)
            sweep.append({"timesteps": t, "mean": r.mean, "conversion_rate": r.conversion_rate})
    return sweep


METHOD_TEXT = {
    "tan": "seed 001's method (IF neurons, reset by subtraction, p = {p} percentile normalization, analog input)",
    "fast": "the fast method (QCFS fine-tune of the DQN with {L} levels, IF neurons starting at V_thr/2, analog readout)",
    "naive": "seed 000's method (weights scaled 10x per layer, LIF neurons, Poisson input, most spikes)",
}


def _markdown(r: dict) -> str:
    d, p = r["dqn"], r["protocol"]
    rows, methods = [], []
    for m, s in r["snn"].items():
        c = s["comparison"]
        pct = f"{100 * s['mean'] / d['mean']:.1f}%" if d["mean"] else "n/a"
        pval = "n/a" if c["p_value"] != c["p_value"] else f"{c['p_value']:.3g}"
        rows.append(f"| SNN {m} (T={s['timesteps']}, {s['readout']}) | {s['n']} | {s['mean']:.1f} | {s['std']:.1f} | "
                    f"{pct} | {pval} | {s['conversion_rate']:.3f} | {s['synops_per_decision']:.0f} synops "
                    f"| {s['energy_uJ_per_decision']:.3g} uJ |")
        L = (s.get("qcfs") or {}).get("levels", 0)
        methods.append(f"- {m}: " + METHOD_TEXT[m].format(p=r["percentile"], L=L) + ".")
    lines = [
        f"# spikeverse report: {r['env']}",
        "",
        f"DQN trained for {r['train_steps']} environment steps (seed {r['seed']}, {r['train_wall_s']} s in "
        f"this session), converted with each method below ({r['conversion_frames']} frames played by the DQN "
        f"for the activation statistics):",
        "",
        *methods,
        "",
        f"Protocol: epsilon {p['epsilon']}, up to {p['noop_max']} random no-ops "
        f"({'applied' if p['noops_applied'] else 'not applicable: the game has no no-op action'}), "
        f"episode cap {p['max_episode_steps'] or 'the environment limit'} {p['cap_unit']}.",
        "",
        "| agent | episodes | mean | std | % of DQN | p (Welch) | conversion rate | ops per decision | energy per decision |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| DQN | {d['n']} | {d['mean']:.1f} | {d['std']:.1f} | 100% | | | {r['dqn_macs_per_decision']:.0f} MACs "
        f"| {r['dqn_energy_uJ_per_decision']:.3g} uJ |",
        *rows,
        "",
        f"Energy convention: {r['energy_convention']}.",
        "",
        "Score and conversion rate against the simulation length T:",
        "",
        "| T | " + " | ".join(f"{m} mean | {m} CR" for m in r["snn"]) + " |",
        "|---|" + "---|---|" * len(r["snn"]),
    ]
    for i, T in enumerate(PIPELINE_TIMESTEPS):
        cells = " | ".join(f"{s['sweep'][i]['mean']:.1f} | {s['sweep'][i]['conversion_rate']:.3f}" for s in r["snn"].values())
        lines.append(f"| {T} | {cells} |")
    lines += ["", "![learning curve](figures/learning_curve.png)", "", "![scores](figures/reward_distribution.png)", ""]
    lines += [f"![score and CR vs T, {m}](figures/score_cr_vs_T_{m}.png)\n" for m in r["snn"]]
    return "\n".join(lines)

"""The report of a multi-game study (issue 15), from its cell files alone:

- Table 1 per game (seed 001): DQN and each spiking agent, mean +- std over the evaluation
  episodes per seed, % of the same seed's DQN, Welch's p against it; DSQN against the DQN and each
  converted SNN (seed 003);
- Table 2 per game (seed 001): conversion rate of tan with the normal (rate) and the robust readout
  (eq. 17) at each percentile;
- cost per decision: synaptic operations, energy (45 nm convention), T; DSQN / converted ratio
  (seed 003 reports about 0.85);
- robustness (when the study names perturbations): area under the relative-score curve per agent;
- aggregate over games: IQM of DQN-normalized scores ((x - random) / (DQN - random), the DQN's
  mean over seeds) with stratified-bootstrap 95% intervals, and the probability that each agent
  improves on the DQN (``analysis.aggregate``);
- learning curves per game with seed bands; errors of the cells that failed.

Written to STUDY/results.json, results.csv, report.md and figures/.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from spikeverse.analysis.aggregate import iqm_interval, normalize, probability_of_improvement
from spikeverse.analysis.plots import curves_with_seed_bands, intervals
from spikeverse.analysis.statistics import compare, summarize
from spikeverse.io.checkpoint import atomic_write_text
from spikeverse.study.cells import RANDOM, Cell, env_slug, read_cells
from spikeverse.study.spec import CONVERTED, TRAINED, StudySpec

CSV_FIELDS = ("env", "seed", "agent", "n", "mean", "std", "pct_of_dqn", "p_vs_dqn", "conversion_rate",
              "normal_readout_conversion_rate", "timesteps", "synops_per_decision", "energy_uJ_per_decision")


def _row(ev: dict[str, Any], dqn: dict[str, Any] | None) -> dict[str, Any]:
    s = summarize(ev["scores"])
    row = dict(n=s["n"], mean=s["mean"], std=s["std"], conversion_rate=ev.get("conversion_rate"),
               timesteps=ev.get("timesteps"), synops_per_decision=ev.get("synops_per_decision"),
               energy_uJ_per_decision=ev.get("energy_uJ_per_decision"),
               macs_per_decision=ev.get("macs_per_decision"))
    if "normal_readout" in ev:
        row["normal_readout_conversion_rate"] = ev["normal_readout"]["conversion_rate"]
    if dqn is not None:
        d = summarize(dqn["scores"])["mean"]
        row["pct_of_dqn"] = None if d == 0 else 100.0 * s["mean"] / d
        row["p_vs_dqn"] = compare(dqn["scores"], ev["scores"])["p_value"]
    return row


def collect(spec: StudySpec, results: dict[Cell, dict], errors: dict[Cell, dict]) -> dict[str, Any]:
    """results.json's content from the finished cells (seeds as string keys, as JSON holds them)."""
    names = spec.agent_names()
    games: dict[str, Any] = {}
    for env in spec.envs:
        g: dict[str, Any] = dict(agents={}, curves={}, dsqn_vs={}, robustness={})
        rnd = results.get(Cell("evaluate", env, spec.seeds[0], RANDOM))
        g["random"] = None if rnd is None else summarize(rnd["scores"])["mean"]
        for name in names:
            per_seed = {}
            for seed in spec.seeds:
                ev = results.get(Cell("evaluate", env, seed, name))
                if ev is None:
                    continue
                dqn = results.get(Cell("evaluate", env, seed, "dqn"))
                per_seed[str(seed)] = _row(ev, None if name == "dqn" else dqn)
                conv = results.get(Cell("convert", env, seed, name))
                if conv is not None:
                    per_seed[str(seed)]["agreement_vs_timesteps"] = conv["agreement_vs_timesteps"]
                    if conv.get("timesteps_auto"):
                        per_seed[str(seed)]["timesteps_auto"] = conv["timesteps_auto"]
            g["agents"][name] = per_seed
            if name.split("-")[0] in TRAINED:
                g["curves"][name] = {str(s): results[Cell("train", env, s, name)]["evals"] for s in spec.seeds
                                     if Cell("train", env, s, name) in results}
        if "dsqn" in names:  # seed 003: the DSQN against the DQN and against each converted SNN
            for other in [n for n in names if n == "dqn" or n.split("-")[0] in CONVERTED]:
                g["dsqn_vs"][other] = {}
                for seed in spec.seeds:
                    a, b = results.get(Cell("evaluate", env, seed, other)), results.get(Cell("evaluate", env, seed, "dsqn"))
                    if a is not None and b is not None:
                        t = compare(a["scores"], b["scores"])
                        g["dsqn_vs"][other][str(seed)] = dict(mean_other=t["mean_a"], mean_dsqn=t["mean_b"], p_value=t["p_value"])
        for seed in spec.seeds:
            rob = results.get(Cell("robustness", env, seed, "all"))
            if rob is not None:
                g["robustness"][str(seed)] = rob["areas"]
        games[env] = g
    return dict(config=spec.to_dict(), games=games, aggregate=_aggregate(spec, games),
                errors=[dict(cell=c.name, error=e.get("error"), where=e.get("where")) for c, e in errors.items()])


def _aggregate(spec: StudySpec, games: dict[str, Any]) -> dict[str, Any]:
    """IQM of DQN-normalized scores and P(agent > DQN), over the games where every seed of the
    agent and of the DQN, and the random baseline, were evaluated."""
    names = spec.agent_names()
    out: dict[str, Any] = dict(normalization="(x - random) / (DQN mean over seeds - random)", iqm={},
                               probability_of_improvement={}, games={})
    raw: dict[str, np.ndarray] = {}
    usable = []
    for env, g in games.items():
        if g["random"] is None or any(len(g["agents"][n]) < len(spec.seeds) for n in names):
            continue
        usable.append(env)
    if not usable:
        return out
    for n in names:
        raw[n] = np.array([[games[e]["agents"][n][str(s)]["mean"] for e in usable] for s in spec.seeds])
    rnd = [games[e]["random"] for e in usable]
    ref = raw["dqn"].mean(0)
    valid = [i for i in range(len(usable)) if ref[i] != rnd[i]]
    out["games"] = [usable[i] for i in valid]
    if not valid:
        return out
    for n in names:
        normed = normalize(raw[n][:, valid], [rnd[i] for i in valid], ref[valid])
        out["iqm"][n] = iqm_interval(normed)
        if n != "dqn":
            out["probability_of_improvement"][n] = probability_of_improvement(raw[n][:, valid], raw["dqn"][:, valid])
    return out


def _fmt(x: Any, spec: str = ".1f") -> str:
    return "-" if x is None or (isinstance(x, float) and x != x) else format(x, spec)


def markdown(r: dict[str, Any]) -> str:
    cfg = r["config"]
    seeds = cfg["seeds"]
    lines = [f"# Multi-game study: {', '.join(cfg['envs'])}", "",
             f"Seeds {', '.join(map(str, seeds))}; agents {', '.join(next(iter(a)) for a in cfg['agents'])}; "
             f"evaluation: {cfg['episodes']} episodes per agent and seed, epsilon {cfg['epsilon']}, evaluation seed "
             f"{cfg['eval_seed']} (the same episodes for every agent; seed 001 protocol). Training frames: "
             + ", ".join(f"{e} {f if f is not None else 'default'}" for e, f in cfg["frames"].items())
             + "".join(f"; {e} at most {h:g} h of training" for e, h in (cfg.get("train_hours") or {}).items()) + ".", ""]
    done = r.get("cells")
    if done and done["finished"] < done["planned"]:
        lines += [f"**In progress: {done['finished']} of {done['planned']} cells finished** ({done['failed']} failed); "
                  "the tables hold what has finished (a rerun with --resume does the rest).", ""]
    for env, g in r["games"].items():
        agents = g["agents"]
        lines += [f"## {env}", "", "Table 1: mean +- std over the episodes, per seed; % of the same seed's DQN; "
                  "Welch p against it" + (f"; random actions: {_fmt(g['random'])}" if g["random"] is not None else "")
                  + ".", "",
                  "| agent | " + " | ".join(f"seed {s}" for s in seeds) + " | mean % of DQN |",
                  "|---|" + "---|" * len(seeds) + "---|"]
        for name, per in agents.items():
            cells = []
            for s in seeds:
                row = per.get(str(s))
                if row is None:
                    cells.append("-")
                    continue
                extra = "" if name == "dqn" else f" ({_fmt(row.get('pct_of_dqn'), '.0f')}%, p {_fmt(row.get('p_vs_dqn'), '.2g')})"
                cells.append(f"{row['mean']:.1f} +- {row['std']:.1f}{extra}")
            pcts = [row.get("pct_of_dqn") for row in per.values() if row.get("pct_of_dqn") is not None]
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {_fmt(float(np.mean(pcts)), '.0f') if pcts else '-'} |")
        if g["dsqn_vs"]:
            lines += ["", "DSQN against each (seed 003): mean of the other, mean of the DSQN, Welch p, per seed.", "",
                      "| against | " + " | ".join(f"seed {s}" for s in seeds) + " |", "|---|" + "---|" * len(seeds)]
            for other, per in g["dsqn_vs"].items():
                lines.append(f"| {other} | " + " | ".join(
                    (lambda t: "-" if t is None else f"{t['mean_other']:.1f} vs {t['mean_dsqn']:.1f}, p {_fmt(t['p_value'], '.2g')}")(
                        per.get(str(s))) for s in seeds) + " |")
        tan = {n: per for n, per in agents.items() if n.startswith("tan")}
        if tan:
            lines += ["", "Table 2: conversion rate, normal (rate) / robust readout, per seed.", "",
                      "| agent | " + " | ".join(f"seed {s}" for s in seeds) + " |", "|---|" + "---|" * len(seeds)]
            for name, per in tan.items():
                lines.append(f"| {name} | " + " | ".join(
                    (lambda row: "-" if row is None else f"{_fmt(row.get('normal_readout_conversion_rate'), '.3f')} / "
                     f"{_fmt(row.get('conversion_rate'), '.3f')}")(per.get(str(s))) for s in seeds) + " |")
        curves = {n: [row["agreement_vs_timesteps"] for row in per.values() if row.get("agreement_vs_timesteps")]
                  for n, per in agents.items()}
        curves = {n: c for n, c in curves.items() if c}
        if curves:
            ts = sorted({p["timesteps"] for c in curves.values() for curve in c for p in curve})
            lines += ["", "Agreement with the DQN on held-out frames (seed + 1000, not the conversion's) against T, "
                      "median over seeds (fast with auto T: measured up to the T it chose).", "",
                      "| agent | " + " | ".join(f"T={t}" for t in ts) + " |", "|---|" + "---|" * len(ts)]
            for n, c in curves.items():
                vals = []
                for t in ts:
                    xs = [p["agreement"] for curve in c for p in curve if p["timesteps"] == t]
                    vals.append(f"{np.median(xs):.3f}" if xs else "-")
                lines.append(f"| {n} | " + " | ".join(vals) + " |")
        lines += ["", "Cost per decision (median over seeds): T, synaptic operations (SNN) or MACs (DQN), energy "
                  "(45 nm: 4.6 pJ per MAC, 0.9 pJ per accumulate), conversion rate in play.", "",
                  "| agent | T | synops | MACs | energy uJ | conversion rate |", "|---|---|---|---|---|---|"]
        energy = {}
        for name, per in agents.items():
            rows = list(per.values())
            if not rows:
                continue
            med = {k: (float(np.median([x[k] for x in rows if x.get(k) is not None]))
                       if any(x.get(k) is not None for x in rows) else None)
                   for k in ("timesteps", "synops_per_decision", "macs_per_decision", "energy_uJ_per_decision",
                             "conversion_rate")}
            energy[name] = med["energy_uJ_per_decision"]
            lines.append(f"| {name} | {_fmt(med['timesteps'], '.0f')} | {_fmt(med['synops_per_decision'], '.3g')} | "
                         f"{_fmt(med['macs_per_decision'], '.3g')} | {_fmt(med['energy_uJ_per_decision'], '.3g')} | "
                         f"{_fmt(med['conversion_rate'], '.3f')} |")
        if energy.get("dsqn") is not None:
            ratios = [f"{n} {energy['dsqn'] / e:.2f}" for n, e in energy.items() if n.split("-")[0] in CONVERTED and e]
            if ratios:
                lines += ["", "DSQN / converted energy per decision: " + ", ".join(ratios) + " (seed 003: about 0.85)."]
        if g["robustness"]:
            kinds = sorted({k for per in g["robustness"].values() for a in per.values() for k in a})
            lines += ["", "Robustness: area under the relative-score curve (1 = unaffected), mean over seeds.", "",
                      "| agent | " + " | ".join(kinds) + " |", "|---|" + "---|" * len(kinds)]
            for name in agents:
                vals = []
                for k in kinds:
                    xs = [per[name][k] for per in g["robustness"].values() if name in per and per[name].get(k) is not None]
                    vals.append(_fmt(float(np.mean(xs)), ".3f") if xs else "-")
                lines.append(f"| {name} | " + " | ".join(vals) + " |")
        lines += ["", f"![learning curves](figures/learning_curves_{env_slug(env)}.png)", ""]
    agg = r["aggregate"]
    if agg.get("iqm"):
        lines += ["## Aggregate over games", "", f"Games: {', '.join(agg['games'])}. Normalized score: "
                  f"{agg['normalization']}. IQM with a stratified-bootstrap 95% interval (runs resampled within "
                  "each game, percentile method; scipy.stats.bootstrap); P(agent > DQN): the chance that a run of "
                  "the agent scores above a run of the DQN on the same game, averaged over games.", "",
                  "| agent | IQM | 95% CI | P(agent > DQN) | 95% CI |", "|---|---|---|---|---|"]
        for name, v in agg["iqm"].items():
            p = agg["probability_of_improvement"].get(name)
            lines.append(f"| {name} | {v['iqm']:.3f} | {_fmt(v['ci95_low'], '.3f')} to {_fmt(v['ci95_high'], '.3f')} | "
                         + ("- | - |" if p is None else
                            f"{p['probability']:.2f} | {_fmt(p['ci95_low'], '.2f')} to {_fmt(p['ci95_high'], '.2f')} |"))
        lines += ["", "![IQM of DQN-normalized scores](figures/aggregate_iqm.png)", ""]
    if r["errors"]:
        lines += ["## Cells that failed (a rerun tries them again)", "", "| cell | error |", "|---|---|"]
        lines += [f"| {e['cell']} | {e['error']} |" for e in r["errors"]]
        lines.append("")
    return "\n".join(lines)


def write_report(out: Path, spec: StudySpec, cells: list[Cell]) -> dict[str, Any]:
    """results.json, results.csv, report.md and figures/ of the study folder ``out``."""
    results, errors = read_cells(out, cells)
    r = collect(spec, results, errors)
    r["cells"] = dict(finished=len(results), failed=len(errors), planned=len(cells))
    r = json.loads(json.dumps(r, default=float))  # what the file holds
    figs = out / "figures"
    for env, g in r["games"].items():
        curves = {n: [[(e["frames"], e["mean"]) for e in ev] for ev in per.values()] for n, per in g["curves"].items()}
        curves_with_seed_bands(curves, figs / f"learning_curves_{env_slug(env)}.png", title=f"{env}: evaluations during training")
    if r["aggregate"].get("iqm"):
        intervals({n: (v["iqm"], v["ci95_low"], v["ci95_high"]) for n, v in r["aggregate"]["iqm"].items()},
                  figs / "aggregate_iqm.png", title="IQM of DQN-normalized scores", xlabel="normalized score",
                  reference=1.0)
    atomic_write_text(out / "results.json", json.dumps(r, indent=1))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore")
    w.writeheader()
    for env, g in r["games"].items():
        for name, per in g["agents"].items():
            for seed, row in per.items():
                w.writerow(dict(env=env, seed=seed, agent=name, **row))
    atomic_write_text(out / "results.csv", buf.getvalue())
    atomic_write_text(out / "report.md", markdown(r))
    return r

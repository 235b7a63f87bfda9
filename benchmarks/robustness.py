"""The robustness study on CartPole-v1 and MinAtar Breakout (issue 13; SPEC R-ANA-ROBUST).

Seed 000 claims that a converted SNN is more robust to input perturbations than its ANN (after
Patel et al. 2019: occlusion on Breakout); seed 003 claims that a directly trained DSQN is more
robust than a converted SNN. Every number here comes from ``spikeverse.study.run_robustness``
(what ``spikeverse robustness`` runs): 50 episodes per cell, the seed 001 protocol (epsilon 0.05),
common random numbers across agents, the DQN the SNNs were converted from as the reference.

CartPole-v1, one study per DQN seed (default 100-109, seeds no CartPole default was tuned on; the
DQN, conversion and DSQN defaults were tuned on seed 0 and seeds 0-9): the default DQN of that
seed (benchmarks/cartpole_dqn.py), its tan conversion played at T=100, its fast conversion
(benchmarks/conversion_seeds.py, defaults) played at T=8, the default DSQN and the ES SNN of the
same seed (benchmarks/dsqn.py, benchmarks/cartpole_es_rstdp.py). Perturbations: gaussian noise
(sigma in units of each variable's std over the DQN's play), each state variable masked, and
FGSM (epsilon in the same units) with the DQN's gradient (transfer) and each agent's own
(white-box; the ES SNN has no gradient and is left out of that study).

MinAtar Breakout, one DQN (``--dqn``): the DQN, its tan conversion at T=100 and T=500, its fast
conversion at T=8, and a DSQN trained on the same game (``--dsqn``). The runs of the results file
were trained with ``spikeverse train --env MinAtar/Breakout --steps 400000 --eval-every 50000`` and
``... --agent dsqn --timesteps 8 --steps 150000 --eval-every 25000`` under the MinAtar loop of before
issue 14 (today: add ``--num-envs 1 --batch-size 32``, and ``--precision float32`` for the DQN) and stopped after their
evaluations at 200,000 and 75,000 frames (the time of one session); each plays its best weights. Perturbations:
k rows hidden from the bottom (k = 0..9, Patel et al.'s protocol; MinAtar's paddle is on the
bottom row) and from the top (the bricks), k x k patches, salt-and-pepper, gaussian (intensity
units) and FGSM transfer and white-box.

Each study keeps its run directory (benchmarks/runs/robustness/...): a rerun resumes it.

    python benchmarks/robustness.py cartpole --workers 2
    python benchmarks/robustness.py minatar --workers 2
    python benchmarks/robustness.py --report      # rewrite the markdowns from the JSON alone
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
from scipy import stats

from _results import RESULTS, RUNS, cli, median, rewrite_reports, seed_span, write_report

from spikeverse.analysis.statistics import compare

ROOT = RUNS / "robustness"
REPO = Path(__file__).resolve().parents[1]
EPISODES = 50
SIGNIFICANT = 0.05
CARTPOLE_VARIABLES = ("cart position", "cart velocity", "pole angle", "pole angular velocity")
CARTPOLE_PERTURB = ["gaussian:0.25,0.5,1,2", "occlusion-variable:0,1,2,3", "fgsm-transfer:0.05,0.1,0.2,0.5"]
CARTPOLE_WHITE_BOX = ["fgsm-white-box:0.05,0.1,0.2,0.5"]
MINATAR_PERTURB = ["occlusion-bottom:0:9:1", "occlusion-top:1:9:1", "occlusion-patch:1:4:1",
                   "saltpepper:0.005,0.01,0.02,0.05", "gaussian:0.05,0.1,0.2,0.3",
                   "fgsm-transfer:0.005,0.01,0.02,0.05", "fgsm-white-box:0.005,0.01,0.02,0.05"]
TUNED_ON = ("CartPole defaults (DQN, tan and fast conversion, DSQN, ES) were tuned on seed 0 and seeds 0-9; "
            "the CartPole seeds here are others. The MinAtar Breakout defaults were tuned on seed 0 (benchmarks/"
            "minatar_breakout.py, conversion.py); its DQN and DSQN here are seed 0 too (one training each).")


def _need(path: Path, how: str) -> Path:
    if not (path / "config.yaml").exists():
        raise SystemExit(f"no agent at {path} ({how})")
    return path


def _convert(dqn: Path, method: str, out: Path, *extra: str) -> Path:
    if not (out / "checkpoint.safetensors").exists():
        cli("convert", str(dqn), "--method", method, "--out", str(out), "--device", "cpu", *extra)
    return out


def _study(agents: list[str], env: str, perturb: list[str], out: Path, reference: str, workers: int,
           num_envs: int) -> dict:
    from spikeverse.study.robustness import run_robustness

    start = time.perf_counter()
    res = run_robustness(agents, env, perturb, out, episodes=EPISODES, seed=0, reference=reference,
                         workers=workers, num_envs=num_envs, plot=True, progress=False)
    res["call_wall_s"] = round(time.perf_counter() - start, 1)
    return res


# ---------------------------------------------------------------- statistics over the studies


def _rows(res: dict, labels: list[str]) -> list[dict]:
    """A study's rows with agent labels; the scores kept for the tests between agents."""
    return [dict(agent=labels[r["agent"]], kind=r["kind"] if r["kind"] == "clean" else f"{r['kind']}-{r['mode']}",
                 strength=r["strength"], mean=r["mean"], ci95_low=r["ci95_low"], ci95_high=r["ci95_high"],
                 relative=r["relative"], agreement=r["agreement"], energy_uJ=r["energy_uJ_per_decision"],
                 wall_s=r.get("wall_s"), scores=r["scores"]) for r in res["rows"]]


def _aucs(res: dict, labels: list[str]) -> dict:
    return {(labels[a["agent"]], f"{a['kind']}-{a['mode']}"): a["relative_auc"] for a in res["relative_auc"]}


def _versus(rows: list[dict], a: str, b: str) -> list[dict]:
    """Agent b against agent a per (kind, strength): Welch's test of the raw scores and of the
    scores relative to each agent's clean mean (the robustness, clean-score differences removed)."""
    by = {(r["agent"], r["kind"], r["strength"]): r for r in rows}
    clean = {x: by[(x, "clean", 0.0)]["mean"] for x in (a, b)}
    out = []
    for (agent, kind, strength), ra in by.items():
        if agent != a or kind == "clean" or (b, kind, strength) not in by:
            continue
        if strength == 0 and kind != "occlusion-variable":  # strength 0 replays the clean cell
            continue
        rb = by[(b, kind, strength)]
        raw = _welch(ra["scores"], rb["scores"])
        rel = (_welch(np.divide(ra["scores"], clean[a]), np.divide(rb["scores"], clean[b]))
               if clean[a] and clean[b] else None)
        out.append(dict(a=a, b=b, kind=kind, strength=strength, mean_a=ra["mean"], mean_b=rb["mean"],
                        p_raw=raw, rel_a=ra["relative"], rel_b=rb["relative"], p_relative=rel))
    return out


def _welch(x, y) -> float | None:
    p = compare(x, y)["p_value"]
    return None if p != p else round(float(p), 4)


def _sign(row: dict, key: str, p_key: str) -> int:
    """+1: b significantly above a; -1: below; 0: no significant difference."""
    p = row[p_key]
    if p is None or p >= SIGNIFICANT:
        return 0
    return 1 if row[f"{key}_b"] > row[f"{key}_a"] else -1


def _wilcoxon(diffs: list[float]) -> float | None:
    """Two-sided Wilcoxon signed-rank p of paired differences (None if all are zero or too few)."""
    d = [x for x in diffs if x is not None and x != 0]
    if len(d) < 2:
        return None
    return round(float(stats.wilcoxon(d).pvalue), 4)


# ---------------------------------------------------------------- CartPole

CARTPOLE_AGENTS = ("dqn", "tan-T100", "fast-T8", "dsqn", "es")
CARTPOLE_PAIRS = (("dqn", "tan-T100"), ("dqn", "fast-T8"), ("dqn", "dsqn"), ("dqn", "es"), ("tan-T100", "dsqn"),
                  ("tan-T100", "fast-T8"))


def cartpole_seed(seed: int, workers: int, num_envs: int) -> dict:
    dqn = _need(RUNS / "cartpole_dqn" / "train" / f"sv-{seed}", "benchmarks/cartpole_dqn.py --seeds SEED")
    tan = _convert(dqn, "tan", ROOT / "cartpole" / f"tan-seed{seed}", "--timesteps", "100")
    fast = _need(RUNS / "conversion_seeds" / f"fast-seed{seed}", "benchmarks/conversion_seeds.py --seeds SEED")
    dsqn = _need(RUNS / "dsqn" / "cartpole" / f"dsqn-seed{seed}", "benchmarks/dsqn.py cartpole --seeds SEED")
    es = _need(RUNS / "cartpole_es_rstdp" / f"es-seed{seed}", "benchmarks/cartpole_es_rstdp.py --seeds SEED")
    agents = [str(dqn), f"{tan}@100", f"{fast}@8", str(dsqn), str(es)]
    base = ROOT / "cartpole" / f"seed{seed}"
    a = _study(agents, "CartPole-v1", CARTPOLE_PERTURB, base / "perturb", str(dqn), workers, num_envs)
    b = _study(agents[:4], "CartPole-v1", CARTPOLE_WHITE_BOX, base / "white-box", str(dqn), workers, num_envs)
    labels = list(CARTPOLE_AGENTS)
    rows = _rows(a, labels) + [r for r in _rows(b, labels) if r["kind"] != "clean"]
    aucs = {**_aucs(a, labels), **_aucs(b, labels)}
    return dict(seed=seed, agents=[_rel(a) for a in agents], rows=rows,
                auc=[dict(agent=k[0], kind=k[1], relative_auc=v) for k, v in aucs.items()],
                versus=[v for x, y in CARTPOLE_PAIRS for v in _versus(rows, x, y)],
                cells_wall_s=round(sum(r.get("wall_s") or 0 for r in a["rows"] + b["rows"]), 1))


def cartpole(args) -> None:
    per_seed = []
    for seed in args.seeds:
        per_seed.append(cartpole_seed(seed, args.workers, args.num_envs))
        data = dict(command=f"python benchmarks/robustness.py cartpole --seeds {' '.join(map(str, args.seeds))} "
                            f"--workers {args.workers}", env="CartPole-v1", episodes=EPISODES, perturb=CARTPOLE_PERTURB
                    + CARTPOLE_WHITE_BOX, workers=args.workers, tuned_on=TUNED_ON, seeds=per_seed)
        data["summary"] = cartpole_summary(per_seed)
        plot_cartpole(data)
        write_report("robustness_cartpole", _strip_scores(data), render_cartpole)
        print(f"seed {seed} done: {per_seed[-1]['cells_wall_s']} s of play", flush=True)


def _strip_scores(data: dict) -> dict:
    """The results JSON keeps per-episode scores only in the run directories."""
    out = json.loads(json.dumps(data))
    for s in out.get("seeds", []):
        for r in s["rows"]:
            r.pop("scores", None)
    for r in out.get("rows", []):
        r.pop("scores", None)
    return out


def cartpole_summary(per_seed: list[dict]) -> dict:
    """Over seeds: median score, relative score and agreement per (agent, kind, strength); median
    area per (agent, kind); per pair and cell, how many seeds b is significantly above / below a
    (Welch, raw and relative scores); per pair and kind, Wilcoxon over seeds of the area difference."""
    cells = {}
    for s in per_seed:
        for r in s["rows"]:
            cells.setdefault((r["agent"], r["kind"], r["strength"]), []).append(r)
    table = [dict(agent=k[0], kind=k[1], strength=k[2], seeds=len(v), median_mean=median([r["mean"] for r in v], 1),
                  median_relative=median([r["relative"] for r in v]), median_agreement=median([r["agreement"] for r in v]),
                  median_energy_uJ=median([r["energy_uJ"] for r in v], 4), median_wall_s=median([r["wall_s"] for r in v], 1))
             for k, v in cells.items()]
    aucs = {}
    for s in per_seed:
        for a in s["auc"]:
            aucs.setdefault((a["agent"], a["kind"]), {})[s["seed"]] = a["relative_auc"]
    auc = [dict(agent=k[0], kind=k[1], median=median(list(v.values())), values=v) for k, v in aucs.items()
           if any(x is not None for x in v.values())]
    counts = {}
    for s in per_seed:
        for v in s["versus"]:
            c = counts.setdefault((v["a"], v["b"], v["kind"], v["strength"]), dict(raw=[0, 0, 0], relative=[0, 0, 0]))
            c["raw"][1 - _sign(v, "mean", "p_raw")] += 1  # [b above, no difference, b below]
            c["relative"][1 - _sign(v, "rel", "p_relative")] += 1
    versus = [dict(a=k[0], b=k[1], kind=k[2], strength=k[3], raw=v["raw"], relative=v["relative"])
              for k, v in counts.items()]
    paired = []
    for a, b in CARTPOLE_PAIRS:
        for kind in dict.fromkeys(x["kind"] for x in auc):
            va, vb = aucs.get((a, kind), {}), aucs.get((b, kind), {})
            common = [s for s in va if s in vb and va[s] is not None and vb[s] is not None]
            if not common:
                continue
            d = [vb[s] - va[s] for s in common]
            paired.append(dict(a=a, b=b, kind=kind, seeds=len(common), b_higher=sum(x > 0 for x in d),
                               median_diff=median(d), wilcoxon_p=_wilcoxon(d)))
    return dict(table=table, auc=auc, versus=versus, paired=paired)


def plot_cartpole(data: dict) -> None:
    title = f"CartPole-v1: {len(data['seeds'])} DQN seeds, {EPISODES} episodes per cell"
    _plot_panels(data["summary"]["table"], RESULTS / "robustness_cartpole.png", "median_mean",
                 "score (median over DQN seeds)", title)
    _plot_panels(data["summary"]["table"], RESULTS / "robustness_cartpole_agreement.png", "median_agreement",
                 "agreement with the DQN (median)", title)


def _plot_panels(table: list[dict], path: Path, key: str, ylabel: str, title: str, band=None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = [k for k in dict.fromkeys(r["kind"] for r in table) if k != "clean"]
    agents = list(dict.fromkeys(r["agent"] for r in table))
    cols = min(4, len(kinds))
    rows = -(-len(kinds) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.0 * rows), squeeze=False)
    for ax in axes.flat[len(kinds):]:
        ax.set_visible(False)
    for ax, kind in zip(axes.flat, kinds):
        for agent in agents:
            clean = next(r for r in table if r["agent"] == agent and r["kind"] == "clean")
            pts = sorted((r["strength"], r) for r in table if r["agent"] == agent and r["kind"] == kind)
            if kind != "occlusion-variable":
                pts = [(0.0, clean)] * (not pts or pts[0][0] != 0) + pts
            xs, ys = [p[0] for p in pts], [p[1][key] for p in pts]
            line, = ax.plot(xs, ys, marker="o", ms=3, label=agent, ls="none" if kind == "occlusion-variable" else "-")
            if band:
                ax.fill_between(xs, [p[1][band[0]] for p in pts], [p[1][band[1]] for p in pts],
                                color=line.get_color(), alpha=0.15)
        ax.set_title(kind, fontsize=9)
        if kind == "occlusion-variable":  # a masked variable, not a scale
            ax.set_xticks(range(len(CARTPOLE_VARIABLES)), [v.replace(" ", "\n", 1) for v in CARTPOLE_VARIABLES],
                          fontsize=7)
        else:
            ax.set_xlabel("strength")
    for row in axes:
        row[0].set_ylabel(ylabel)
    axes.flat[len(kinds) - 1].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _workers(n: int) -> str:
    return "1 worker: one cell after another" if n == 1 else f"{n} workers: {n} cells at a time"


def _rel(path) -> str:
    """A path as the results files show it: relative to the repository."""
    return os.path.relpath(Path(path).resolve(), REPO)


def _g(x, fmt=".3g") -> str:
    return "-" if x is None else format(x, fmt)


def _strength(kind: str, s: float) -> str:
    return f"{int(s)} ({CARTPOLE_VARIABLES[int(s)]})" if kind == "occlusion-variable" else f"{s:g}"


def render_cartpole(d: dict) -> str:
    sm, seeds = d["summary"], [s["seed"] for s in d["seeds"]]
    agents = list(dict.fromkeys(r["agent"] for r in sm["table"]))
    md = ["# Robustness on CartPole-v1: DQN, converted SNNs, DSQN, ES SNN", "", f"`{d['command']}`", "",
          f"DQN seeds {seed_span(seeds)} ({len(seeds)}), one study per seed, {d['episodes']} episodes per cell, "
          "evaluation seed 0, epsilon 0.05, common random numbers; the DQN of the seed is the reference for the "
          "agreement (share of decisions on perturbed frames equal to the DQN's on the clean frame). Agents per seed: "
          "the default DQN; its tan conversion at T=100; its fast conversion (defaults) played at T=8; the default "
          "DSQN and the ES SNN of the same seed (trained independently). Gaussian sigma and FGSM epsilon are in units "
          "of each variable's std over the DQN's clean play. " + d["tuned_on"], "",
          "## Score per cell, median over seeds", "",
          "| perturbation | strength | " + " | ".join(agents) + " |", "|---|---|" + "---|" * len(agents)]
    by = {(r["agent"], r["kind"], r["strength"]): r for r in sm["table"]}
    for kind, strength in dict.fromkeys((r["kind"], r["strength"]) for r in sm["table"]):
        md.append(f"| {kind} | {_strength(kind, strength)} | " + " | ".join(
            f"{_g((by.get((a, kind, strength)) or {}).get('median_mean'), '.1f')}" for a in agents) + " |")
    md += ["", "## Agreement with the DQN's clean-frame action, median over seeds", "",
           "| perturbation | strength | " + " | ".join(agents) + " |", "|---|---|" + "---|" * len(agents)]
    for kind, strength in dict.fromkeys((r["kind"], r["strength"]) for r in sm["table"]):
        md.append(f"| {kind} | {_strength(kind, strength)} | " + " | ".join(
            f"{_g((by.get((a, kind, strength)) or {}).get('median_agreement'), '.3f')}" for a in agents) + " |")
    md += ["", "## Area under the relative-score curve (1 = no loss), median over seeds", "",
           "| agent | " + " | ".join(k for k in dict.fromkeys(x["kind"] for x in sm["auc"])) + " |",
           "|---|" + "---|" * len(dict.fromkeys(x["kind"] for x in sm["auc"]))]
    kinds = list(dict.fromkeys(x["kind"] for x in sm["auc"]))
    auc = {(x["agent"], x["kind"]): x["median"] for x in sm["auc"]}
    md += [f"| {a} | " + " | ".join(_g(auc.get((a, k))) for k in kinds) + " |" for a in agents]
    md += ["", "## Seed 000's and seed 003's claims: b more robust than a?", "",
           "Per perturbation: over seeds, how often b's area under the relative-score curve is above a's, the median "
           "difference b - a and the two-sided Wilcoxon signed-rank p over seeds (paired by seed).", "",
           "| a | b | perturbation | seeds | b higher | median area b - a | Wilcoxon p |", "|---|---|---|---|---|---|---|"]
    md += [f"| {p['a']} | {p['b']} | {p['kind']} | {p['seeds']} | {p['b_higher']}/{p['seeds']} | "
           f"{_g(p['median_diff'])} | {_g(p['wilcoxon_p'])} |" for p in sm["paired"]]
    md += ["", f"Per cell, Welch's test per seed (p < {SIGNIFICANT}) of b against a, as seeds where b is above / not "
           "different / below: raw scores, and scores relative to each agent's clean mean.", "",
           "| a | b | perturbation | strength | raw | relative |", "|---|---|---|---|---|---|"]
    md += [f"| {v['a']} | {v['b']} | {v['kind']} | {_strength(v['kind'], v['strength'])} | "
           f"{'/'.join(map(str, v['raw']))} | {'/'.join(map(str, v['relative']))} |" for v in sm["versus"]
           if v["a"] == "dqn" or v["b"] == "dsqn"]
    md += ["", "All perturbed cells and seeds together (seed-cells where b is above / not different / below a):", "",
           "| a | b | seed-cells | raw | relative |", "|---|---|---|---|---|"]
    for a, b in dict.fromkeys((v["a"], v["b"]) for v in sm["versus"]):
        vs = [v for v in sm["versus"] if (v["a"], v["b"]) == (a, b)]
        tot = {k: [sum(v[k][i] for v in vs) for i in range(3)] for k in ("raw", "relative")}
        md.append(f"| {a} | {b} | {sum(tot['raw'])} | {' / '.join(map(str, tot['raw']))} | "
                  f"{' / '.join(map(str, tot['relative']))} |")
    md += ["", "## Cost: energy per decision and wall time per cell (median over seeds)", "",
           "| agent | uJ/decision (clean) | wall s per clean cell | wall s per FGSM white-box cell (largest eps) |",
           "|---|---|---|---|"]
    wb = max((r["strength"] for r in sm["table"] if r["kind"] == "fgsm-white-box"), default=None)
    for a in agents:
        c = by[(a, "clean", 0.0)]
        w = by.get((a, "fgsm-white-box", wb)) or {}
        md.append(f"| {a} | {_g(c['median_energy_uJ'], '.4f')} | {_g(c['median_wall_s'], '.1f')} | "
                  f"{_g(w.get('median_wall_s'), '.1f')} |")
    md += ["", f"Play per seed (both studies, the wall times of their cells summed; {_workers(d['workers'])}, one "
           "torch thread each, on a 2-core machine): " +
           ", ".join(f"{s['seed']}: {s['cells_wall_s']:.0f} s" for s in d["seeds"]) +
           f"; {sum(s['cells_wall_s'] for s in d['seeds']):.0f} s in all.", "",
           "![score vs strength](robustness_cartpole.png)", "",
           "![agreement vs strength](robustness_cartpole_agreement.png)", ""]
    return "\n".join(md)


# ---------------------------------------------------------------- MinAtar

MINATAR_AGENTS = ("dqn", "tan-T100", "tan-T500", "fast-T8", "dsqn")
MINATAR_PAIRS = (("dqn", "tan-T100"), ("dqn", "tan-T500"), ("dqn", "fast-T8"), ("dqn", "dsqn"), ("tan-T100", "dsqn"),
                 ("tan-T100", "tan-T500"))


def minatar(args) -> None:
    dqn = _need(Path(args.dqn), "spikeverse train --env MinAtar/Breakout")
    dsqn = _need(Path(args.dsqn), "spikeverse train --env MinAtar/Breakout --agent dsqn")
    tan = _convert(dqn, "tan", ROOT / "minatar" / "tan", "--timesteps", "100")
    fast = _convert(dqn, "fast", ROOT / "minatar" / "fast")
    agents = [str(dqn), f"{tan}@100", f"{tan}@500", f"{fast}@8", str(dsqn)]
    res = _study(agents, "MinAtar/Breakout", MINATAR_PERTURB, ROOT / "minatar" / "study", str(dqn), args.workers,
                 args.num_envs)
    labels = list(MINATAR_AGENTS)
    rows = _rows(res, labels)
    data = dict(command=f"python benchmarks/robustness.py minatar --dqn {_rel(args.dqn)} --dsqn {_rel(args.dsqn)} "
                        f"--workers {args.workers}", env="MinAtar/Breakout", episodes=EPISODES, perturb=MINATAR_PERTURB,
                workers=args.workers, tuned_on=TUNED_ON, agents=[_rel(a) for a in agents], dqn=_trained(dqn),
                dsqn=_trained(dsqn),
                rows=rows, auc=[dict(agent=k[0], kind=k[1], relative_auc=v) for k, v in _aucs(res, labels).items()],
                versus=[v for x, y in MINATAR_PAIRS for v in _versus(rows, x, y)], call_wall_s=res["call_wall_s"],
                cells_wall_s=round(sum(r["wall_s"] or 0 for r in rows), 1))
    title = f"MinAtar Breakout: {EPISODES} episodes per cell"
    _plot_panels(rows, RESULTS / "robustness_minatar.png", "mean", "score (95% CI)", title, band=("ci95_low", "ci95_high"))
    _plot_panels(rows, RESULTS / "robustness_minatar_agreement.png", "agreement", "agreement with the DQN", title)
    write_report("robustness_minatar", _strip_scores(data), render_minatar)


def _trained(run: Path) -> dict:
    """Frames trained and the best evaluation of a training run (its evals.csv)."""
    from spikeverse.io.rundir import EVALS, read_metrics

    ev = read_metrics(run / EVALS)
    best = max(ev, key=lambda r: float(r["mean"])) if ev else None
    return dict(run=_rel(run), frames=int(float(ev[-1]["step"])) if ev else None,
                best_eval_frames=int(float(best["step"])) if best else None,
                best_eval_mean=float(best["mean"]) if best else None)


def render_minatar(d: dict) -> str:
    rows = d["rows"]
    agents = list(dict.fromkeys(r["agent"] for r in rows))
    by = {(r["agent"], r["kind"], r["strength"]): r for r in rows}
    md = ["# Robustness on MinAtar Breakout: DQN, converted SNNs at T=100 and T=500, fast at T=8, DSQN", "",
          f"`{d['command']}`", "",
          f"One DQN ({d['dqn']['frames']} frames of `spikeverse train --env MinAtar/Breakout` with the loop of before issue 14, "
          "1 env and one float32 update of 32 per frame, stopped there; "
          f"kept weights from its best evaluation at {d['dqn']['best_eval_frames']}: "
          f"{d['dqn']['best_eval_mean']:.1f}) and one DSQN (`--agent dsqn --timesteps 8`, {d['dsqn']['frames']} frames, "
          "best evaluation "
          f"{d['dsqn']['best_eval_mean']:.1f} at {d['dsqn']['best_eval_frames']}), seed 0; the tan conversion of the "
          "DQN played at T=100 and T=500, its fast conversion (defaults) played at T=8. "
          f"{d['episodes']} episodes per cell, evaluation seed 0, epsilon 0.05, up to 30 no-ops, common random numbers; "
          "the DQN is the reference for the agreement. Gaussian sigma and FGSM epsilon are in intensity units (the "
          "frames are 0/1). " + d["tuned_on"], "",
          "## Score per cell (mean, 95% CI)", "", "| perturbation | strength | " + " | ".join(agents) + " |",
          "|---|---|" + "---|" * len(agents)]
    cells = list(dict.fromkeys((r["kind"], r["strength"]) for r in rows))
    for kind, s in cells:
        md.append(f"| {kind} | {s:g} | " + " | ".join(
            (lambda r: f"{r['mean']:.1f} ({_g(r['ci95_low'], '.1f')}, {_g(r['ci95_high'], '.1f')})" if r else "-")(
                by.get((a, kind, s))) for a in agents) + " |")
    md += ["", "## Agreement with the DQN's clean-frame action", "", "| perturbation | strength | " +
           " | ".join(agents) + " |", "|---|---|" + "---|" * len(agents)]
    for kind, s in cells:
        md.append(f"| {kind} | {s:g} | " + " | ".join(_g((by.get((a, kind, s)) or {}).get("agreement"), ".3f")
                                                       for a in agents) + " |")
    kinds = list(dict.fromkeys(x["kind"] for x in d["auc"]))
    auc = {(x["agent"], x["kind"]): x["relative_auc"] for x in d["auc"]}
    md += ["", "## Area under the relative-score curve (1 = no loss)", "", "| agent | " + " | ".join(kinds) + " |",
           "|---|" + "---|" * len(kinds)]
    md += [f"| {a} | " + " | ".join(_g(auc.get((a, k))) for k in kinds) + " |" for a in agents]
    md += ["", "## Seed 000's and seed 003's claims per cell: b against a", "",
           f"Welch's test of b against a (p; * where p < {SIGNIFICANT}): raw scores, and scores relative to each "
           "agent's clean mean (a robustness difference with the clean-score difference removed).", "",
           "| a | b | perturbation | strength | mean a | mean b | p raw | relative a | relative b | p relative |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    star = lambda p: "-" if p is None else f"{p:.3g}{'*' if p < SIGNIFICANT else ''}"  # noqa: E731
    md += [f"| {v['a']} | {v['b']} | {v['kind']} | {v['strength']:g} | {v['mean_a']:.1f} | {v['mean_b']:.1f} | "
           f"{star(v['p_raw'])} | {_g(v['rel_a'])} | {_g(v['rel_b'])} | {star(v['p_relative'])} |" for v in d["versus"]]
    md += ["", "## Summary per pair: cells where b is significantly above / not different / below a", "",
           "| a | b | perturbation | raw | relative |", "|---|---|---|---|---|"]
    for a, b in dict.fromkeys((v["a"], v["b"]) for v in d["versus"]):
        for kind in dict.fromkeys(v["kind"] for v in d["versus"]):
            vs = [v for v in d["versus"] if (v["a"], v["b"], v["kind"]) == (a, b, kind)]
            count = lambda key, p: "/".join(str(sum(_sign(v, key, p) == s for v in vs)) for s in (1, 0, -1))  # noqa: E731
            md.append(f"| {a} | {b} | {kind} | {count('mean', 'p_raw')} | {count('rel', 'p_relative')} |")
    md += ["", "All perturbed cells together:", "", "| a | b | cells | raw: b above / same / below | "
           "relative: b above / same / below |", "|---|---|---|---|---|"]
    for a, b in dict.fromkeys((v["a"], v["b"]) for v in d["versus"]):
        vs = [v for v in d["versus"] if (v["a"], v["b"]) == (a, b)]
        count = lambda key, p: " / ".join(str(sum(_sign(v, key, p) == s for v in vs)) for s in (1, 0, -1))  # noqa: E731
        md.append(f"| {a} | {b} | {len(vs)} | {count('mean', 'p_raw')} | {count('rel', 'p_relative')} |")
    md += ["", "## Cost: energy per decision and wall time per cell", "",
           "| agent | uJ/decision (clean) | clean cell s | median cell s | largest cell s |", "|---|---|---|---|---|"]
    for a in agents:
        ws = [r["wall_s"] for r in rows if r["agent"] == a and r["wall_s"] is not None]
        md.append(f"| {a} | {_g(by[(a, 'clean', 0.0)]['energy_uJ'], '.4f')} | "
                  f"{_g(by[(a, 'clean', 0.0)]['wall_s'], '.1f')} | {_g(median(ws), '.1f')} | {_g(max(ws, default=None), '.1f')} |")
    md += ["", f"Whole study: {d['cells_wall_s']:.0f} s of play, the wall times of its {len(rows)} cells summed "
           f"({_workers(d['workers'])}, one torch thread each, on a 2-core machine); the last call of the script took "
           f"{d['call_wall_s']:.0f} s (a rerun plays only the cells that are missing).", "",
           "![score vs strength](robustness_minatar.png)", "",
           "![agreement vs strength](robustness_minatar_agreement.png)", ""]
    return "\n".join(md)


REPORTS = {"robustness_cartpole": render_cartpole, "robustness_minatar": render_minatar}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("study", nargs="?", choices=("cartpole", "minatar"))
    ap.add_argument("--seeds", type=int, nargs="+", default=list(range(100, 110)))
    ap.add_argument("--dqn", default=str(ROOT / "breakout-dqn"))
    ap.add_argument("--dsqn", default=str(ROOT / "breakout-dsqn"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--num-envs", type=int, default=EPISODES, help="environments side by side per cell")
    ap.add_argument("--report", action="store_true", help="only rewrite the markdowns from their JSON")
    args = ap.parse_args()
    if args.report or args.study is None:
        rewrite_reports(REPORTS)
        return
    {"cartpole": cartpole, "minatar": minatar}[args.study](args)


if __name__ == "__main__":
    main()

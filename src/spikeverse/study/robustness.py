"""The robustness study (SPEC R-ANA-ROBUST, issue 13): score and agreement of saved agents under
perturbed input (seed 000's claim that a converted SNN is more robust than its ANN, after Patel et
al. 2019; seed 003's DSQN-over-conversion claim).

Every agent plays ``episodes`` episodes of the seed 001 protocol per cell (agent, perturbation,
strength) with evaluation seed ``seed``: the same episodes for every agent, and the same
perturbation draws at a given (kind, strength, episode, step) (``envs.perturbations``: common
random numbers), so differences are the agents'. The reference (``reference`` or, by default,
the ANN an SNN was converted from, or the first DQN given) acts in the shadow on the clean frame:
agreement = the share of the agent's greedy actions on perturbed frames that equal the
reference's on the clean ones. Its clean play also gives the per-feature scale of the gaussian
noise (std) and the valid range where the observation space has no finite bound.

A run directory: config.yaml, cells/ (one JSON per finished cell; a rerun skips them, so a killed
run loses at most the cells in progress), results.json, results.csv, report.md and, with
``plot``, figures/.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import time
from functools import partial
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from spikeverse.agents import load_policy
from spikeverse.analysis.adversarial import FGSM, gradient_network
from spikeverse.analysis.adversarial import MODES as FGSM_MODES
from spikeverse.analysis.evaluate import evaluate_agent, set_timesteps
from spikeverse.analysis.robustness_plots import robustness_figures
from spikeverse.analysis.statistics import compare, summarize
from spikeverse.convert.io import load_ann
from spikeverse.envs import make
from spikeverse.envs.perturbations import MODES, Perturbation, parse_spec
from spikeverse.errors import SpikeverseError
from spikeverse.evo.executor import make_executor
from spikeverse.io.checkpoint import atomic_write_text
from spikeverse.io.rundir import read_config, write_config
from spikeverse.progress import Progress, announce

CELLS = "cells"
KINDS = {**MODES, "fgsm": FGSM_MODES}  # fgsm-transfer: the reference's gradient; fgsm-white-box: the agent's own
FIELDS = ("agent", "kind", "mode", "strength", "n", "mean", "ci95_low", "ci95_high", "relative", "agreement",
          "spikes_per_decision", "energy_uJ_per_decision", "wall_s")


def split_agent(spec: str | Path) -> tuple[Path, int | None]:
    """``DIR`` or ``DIR@T`` -> (directory, T or None): ``@T`` plays a spiking agent (converted SNN,
    DSQN) at T simulation steps per decision instead of the T it was saved with."""
    head, sep, tail = str(spec).rpartition("@")
    if not sep or not head:
        return Path(spec), None
    if not tail.isdigit() or int(tail) < 1:
        raise SpikeverseError(f"agent {spec!r}: write DIR@T with T a whole number of steps >= 1")
    return Path(head), int(tail)


def _reference_source(agent_dirs: Sequence[str], metas: list[dict], reference: Path | None) -> tuple[str, str]:
    """(how to load it, agent): ``reference`` itself, else the first SNN's own ANN, else the first DQN."""
    if reference is not None:
        return "policy", str(reference)
    for d, m in zip(agent_dirs, metas):
        if m.get("kind") == "snn":
            return "ann", str(split_agent(d)[0])
    for d, m in zip(agent_dirs, metas):
        if m.get("kind") == "dqn":
            return "policy", str(d)
    raise SpikeverseError("no reference for the agreement: give --reference DIR (a DQN), or an SNN or DQN agent")


_LOADED: dict[tuple[str, str], Any] = {}  # per process: agents loaded once


def _load_agent(spec: str) -> tuple[Any, dict]:
    """The policy of ``DIR`` or ``DIR@T`` (:func:`split_agent`) and its metadata."""
    path, timesteps = split_agent(spec)
    policy, meta = load_policy(path)
    if timesteps is not None:
        set_timesteps(policy, timesteps, f"agent {spec}: @T")
    return policy, meta


def _load(how: str, path: str):
    if (how, path) not in _LOADED:
        _LOADED[(how, path)] = load_ann(path).eval() if how == "ann" else _load_agent(path)[0]
    return _LOADED[(how, path)]


def _observed_range(reference, env_id: str, episodes: int, seed: int, epsilon: float) -> dict[str, list]:
    """Per-feature min, max and std of the observations of the reference's clean play."""
    seen: list[np.ndarray] = []

    def record(obs, episodes_, steps_):
        seen.append(np.asarray(obs, np.float64).reshape(len(obs), -1))
        return obs

    evaluate_agent(reference, env_id, episodes=episodes, seed=seed, epsilon=epsilon, observe=record, progress=False)
    x = np.concatenate(seen)
    return dict(min=x.min(0).tolist(), max=x.max(0).tolist(), std=x.std(0).tolist())


def _bounds(space, observed: dict[str, list]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.dtype]:
    """The valid range (the space's bounds; the observed range where they are infinite), the
    gaussian scale (vector observations: the observed std; images: high - low) and the dtype."""
    shape = space.shape
    low, high = np.asarray(space.low, np.float64), np.asarray(space.high, np.float64)
    lo, hi = np.asarray(observed["min"]).reshape(shape), np.asarray(observed["max"]).reshape(shape)
    low, high = np.where(np.isfinite(low), low, lo), np.where(np.isfinite(high), high, hi)
    scale = np.asarray(observed["std"]).reshape(shape) if len(shape) == 1 else high - low
    return low, high, scale, np.dtype(space.dtype)


def _cell_name(agent: int, kind: str, mode: str, strength: float) -> str:
    return f"agent{agent}-{kind}-{mode}-{strength:g}.json"


def _run_cell(payload: dict[str, Any], cell: tuple[int, str, str, float]) -> dict[str, Any]:
    """Play one cell (agent index, kind, mode, strength); ``kind`` "clean" is the unperturbed play."""
    i, kind, mode, strength = cell
    start = time.perf_counter()
    torch.set_num_threads(1)
    agent = _load("policy", payload["agents"][i])
    reference = _load(*payload["reference"])
    b = payload["bounds"]
    bounds = dict(low=np.asarray(b["low"]), high=np.asarray(b["high"]), scale=np.asarray(b["scale"]),
                  dtype=np.dtype(b["dtype"]))
    if kind == "clean":
        observe = None
    elif kind == "fgsm":
        observe = FGSM(mode, strength, network=reference if mode == "transfer" else agent, **bounds)
    else:
        observe = Perturbation(kind, mode, strength, seed=payload["seed"], **bounds)
    ev = evaluate_agent(agent, payload["env_id"], shadow=reference, play_shadow=False, episodes=payload["episodes"],
                        seed=payload["seed"], epsilon=payload["epsilon"], observe=observe,
                        num_envs=payload.get("num_envs", 8), progress=False)
    return dict(agent=i, kind=kind, mode=mode, strength=strength, scores=ev.result.scores,
                agreement=ev.result.conversion_rate, spikes_per_decision=ev.cost.get("spikes_per_decision"),
                energy_uJ_per_decision=ev.cost.get("energy_uJ_per_decision"),
                wall_s=round(time.perf_counter() - start, 3))


def _check(agent_dirs, env_id, specs, episodes, seed, epsilon, out, reference) -> tuple[list, list[dict], Any]:
    """Every argument, before any play: the grid of perturbations, the agents' metadata and the
    env's observation space (the agents stay loaded for this process's cells)."""
    if not agent_dirs:
        raise SpikeverseError("give at least one agent directory")
    if int(episodes) != episodes or episodes < 2:
        raise SpikeverseError(f"--episodes must be an integer >= 2 (for a confidence interval), got {episodes}")
    if int(seed) != seed or seed < 0:
        raise SpikeverseError(f"--seed must be an integer >= 0, got {seed}")
    if not 0.0 <= epsilon <= 1.0:
        raise SpikeverseError(f"--epsilon must be in [0, 1], got {epsilon}")
    if Path(out).exists() and not Path(out).is_dir():
        raise SpikeverseError(f"{out} is a file, not a run directory; use another --out")
    grid = [parse_spec(s, KINDS) for s in specs]
    if not grid:
        raise SpikeverseError("give at least one --perturb KIND:STRENGTHS")
    env = make(env_id)  # an unknown env id is refused here
    try:
        if not hasattr(env.observation_space, "low"):
            raise SpikeverseError(f"{env_id} has discrete observations: perturbing them makes no sense")
        space = env.observation_space
    finally:
        env.close()
    for kind, mode, strengths in grid:  # a strength the observations cannot take
        for s in strengths:
            if kind != "fgsm":
                Perturbation(kind, mode, s, np.zeros(space.shape), np.ones(space.shape))
    metas = []
    for d in [*agent_dirs, *([] if reference is None else [reference])]:
        policy, meta = _load_agent(str(d))
        _LOADED[("policy", str(d))] = policy
        if meta.get("env_id") != env_id:
            raise SpikeverseError(f"{d} plays {meta.get('env_id')}, not {env_id}")
        metas.append(meta)
    return grid, metas[:len(agent_dirs)], space


def run_robustness(agent_dirs: Sequence[str | Path], env_id: str, specs: Sequence[str], out: str | Path, *,
                   episodes: int = 50, seed: int = 0, epsilon: float = 0.05, reference: str | Path | None = None,
                   workers: int = 1, executor: str = "local", plot: bool = False, num_envs: int = 8,
                   progress: bool | None = None) -> dict[str, Any]:
    """Run (or resume) the study into ``out`` and return results.json's content. An agent is
    ``DIR`` or ``DIR@T`` (a spiking agent played at T steps per decision). ``num_envs``:
    environments stepped side by side per cell (the scores do not depend on it: episode e is
    seeded from (seed, e) alone, ``rl.evaluation``)."""
    agent_dirs = [str(d) for d in agent_dirs]
    out = Path(out)
    if int(num_envs) != num_envs or num_envs < 1:
        raise SpikeverseError(f"--num-envs must be an integer >= 1, got {num_envs}")
    grid, metas, space = _check(agent_dirs, env_id, specs, episodes, seed, epsilon, out, reference)
    ref = _reference_source(agent_dirs, metas, None if reference is None else Path(reference))
    config = dict(agents=[str(d) for d in agent_dirs], env=env_id, perturb=list(specs), episodes=int(episodes),
                  seed=int(seed), epsilon=float(epsilon), reference=list(ref))
    old = read_config(out)
    if old is not None and old != config:
        raise SpikeverseError(f"{out} holds another robustness study (other agents, perturbations or protocol); "
                              f"use another --out")
    modes = {m for k, m, _ in grid if k == "fgsm"}
    need = ([("reference", ref)] if "transfer" in modes else []) + \
        ([(str(d), ("policy", str(d))) for d in agent_dirs] if "white-box" in modes else [])
    for name, source in need:  # before any play: fgsm needs a gradient
        if gradient_network(_load(*source)) is None:
            raise SpikeverseError(f"fgsm-{'transfer' if name == 'reference' else 'white-box'} needs the gradient of "
                                  f"{name} ({type(_load(*source)).__name__} has none: a DQN, DSQN or converted SNN has)")
    observed = _observed_range(_load(*ref), env_id, int(episodes), int(seed), float(epsilon))
    low, high, scale, dtype = _bounds(space, observed)
    cells = [(i, "clean", "none", 0.0) for i in range(len(agent_dirs))]
    cells += [(i, k, m, s) for i in range(len(agent_dirs)) for k, m, ss in grid for s in ss]
    out.mkdir(parents=True, exist_ok=True)
    write_config(out, config)
    (out / CELLS).mkdir(exist_ok=True)
    todo = [c for c in cells if not (out / CELLS / _cell_name(*c)).is_file()]
    payload = dict(agents=config["agents"], reference=list(ref), env_id=env_id, episodes=int(episodes),
                   num_envs=int(num_envs),
                   seed=int(seed), epsilon=float(epsilon),
                   bounds=dict(low=low.tolist(), high=high.tolist(), scale=scale.tolist(), dtype=dtype.str))
    announce(f"robustness {env_id}: {len(cells)} cells of {episodes} episodes, {len(cells) - len(todo)} done", progress)
    with make_executor(executor, workers) as ex, Progress(len(cells), f"robustness {env_id}", unit="cell",
                                                           initial=len(cells) - len(todo), enabled=progress) as bar:
        size = max(1, ex.workers)
        for batch in (todo[j:j + size] for j in range(0, len(todo), size)):
            for cell, res in zip(batch, ex.map(partial(_run_cell, payload), batch)):
                atomic_write_text(out / CELLS / _cell_name(*cell), json.dumps(res))
                bar.update(1)
    results = _collect(out, cells, config, observed)
    _write_outputs(out, results, plot)
    return results


def _collect(out: Path, cells: list, config: dict, observed: dict) -> dict[str, Any]:
    """results.json's content from the cell files: rows, per-agent areas under the relative-score
    curves, and Welch's test between every two agents at every (kind, mode, strength)."""
    raw = {c: json.loads((out / CELLS / _cell_name(*c)).read_text()) for c in cells}
    clean = {i: summarize(raw[(i, "clean", "none", 0.0)]["scores"])["mean"] for i in range(len(config["agents"]))}
    rows = []
    for c, r in raw.items():
        s = summarize(r["scores"])
        rel = None if clean[c[0]] == 0 else s["mean"] / clean[c[0]]
        rows.append(dict(agent=c[0], kind=c[1], mode=c[2], strength=c[3], n=s["n"], mean=s["mean"],
                         ci95_low=s["ci95_low"], ci95_high=s["ci95_high"], relative=rel, agreement=r["agreement"],
                         spikes_per_decision=r["spikes_per_decision"],
                         energy_uJ_per_decision=r["energy_uJ_per_decision"], wall_s=r.get("wall_s"),
                         scores=r["scores"]))
    auc = []
    for i in range(len(config["agents"])):
        for kind, mode in dict.fromkeys((r["kind"], r["mode"]) for r in rows if r["kind"] != "clean"):
            pts = {r["strength"]: r["relative"] for r in rows
                   if r["agent"] == i and (r["kind"], r["mode"]) == (kind, mode) and r["relative"] is not None}
            if clean[i] != 0:
                pts.setdefault(0.0, 1.0)  # the clean score, relative 1, at strength 0
            xs = sorted(pts)
            ys = [pts[x] for x in xs]
            area = (float(np.trapezoid(ys, xs) / (xs[-1] - xs[0])) if len(xs) > 1 and xs[-1] > xs[0]
                    and mode != "variable" else None)  # occlusion-variable's "strength" is an index, not a scale
            auc.append(dict(agent=i, kind=kind, mode=mode, relative_auc=area))
    welch = []
    for a, b in itertools.combinations(range(len(config["agents"])), 2):
        for r in (r for r in rows if r["agent"] == a):
            other = next(o for o in rows if o["agent"] == b and (o["kind"], o["mode"], o["strength"]) ==
                         (r["kind"], r["mode"], r["strength"]))
            t = compare(r["scores"], other["scores"])
            welch.append(dict(a=a, b=b, kind=r["kind"], mode=r["mode"], strength=r["strength"],
                              mean_a=t["mean_a"], mean_b=t["mean_b"], p_value=t["p_value"]))
    return dict(config=config, observed=observed, rows=rows, relative_auc=auc, welch=welch)


def _write_outputs(out: Path, results: dict[str, Any], plot: bool) -> None:
    atomic_write_text(out / "results.json", json.dumps(results, indent=1))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=FIELDS, extrasaction="ignore")
    w.writeheader()
    w.writerows(results["rows"])
    atomic_write_text(out / "results.csv", buf.getvalue())
    atomic_write_text(out / "report.md", markdown(results))
    if plot:
        results["figures"] = [str(p) for p in robustness_figures(results, out / "figures")]


def _f(x, fmt: str = ".3g") -> str:
    return "-" if x is None else format(x, fmt)


def markdown(results: dict[str, Any]) -> str:
    """report.md, written from results.json alone."""
    cfg = results["config"]
    names = {i: f"{i}: {Path(a).name}" for i, a in enumerate(cfg["agents"])}
    lines = [f"# Robustness on {cfg['env']}", "",
             f"Agents: {', '.join(f'{i}: `{a}`' for i, a in enumerate(cfg['agents']))}; reference "
             f"{cfg['reference'][1]} ({'its ANN' if cfg['reference'][0] == 'ann' else 'as saved'}); "
             f"{cfg['episodes']} episodes per cell, evaluation seed {cfg['seed']}, epsilon {cfg['epsilon']}.", "",
             "| agent | perturbation | strength | score (95% CI) | relative | agreement | uJ/decision | wall s |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results["rows"]:
        pert = "clean" if r["kind"] == "clean" else f"{r['kind']}-{r['mode']}"
        lines.append(f"| {names[r['agent']]} | {pert} | {r['strength']:g} | {r['mean']:.1f} "
                     f"({_f(r['ci95_low'], '.1f')}, {_f(r['ci95_high'], '.1f')}) | {_f(r['relative'])} | "
                     f"{_f(r['agreement'])} | {_f(r['energy_uJ_per_decision'])} | {_f(r.get('wall_s'), '.1f')} |")
    lines += ["", "Area under the relative-score curve from strength 0 (relative 1, the clean score) to the "
              "largest strength, divided by that span (1 = as good as clean at every strength):", "",
              "| agent | perturbation | area |", "|---|---|---|"]
    lines += [f"| {names[a['agent']]} | {a['kind']}-{a['mode']} | {_f(a['relative_auc'])} |"
              for a in results["relative_auc"]]
    if results["welch"]:
        lines += ["", "Welch's test between agents per cell:", "", "| a | b | perturbation | strength | mean a | "
                  "mean b | p |", "|---|---|---|---|---|---|---|"]
        lines += [f"| {names[w['a']]} | {names[w['b']]} | {w['kind']}-{w['mode']} | {w['strength']:g} | "
                  f"{w['mean_a']:.1f} | {w['mean_b']:.1f} | {_f(w['p_value'])} |" for w in results["welch"]]
    return "\n".join(lines) + "\n"

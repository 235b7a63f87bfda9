"""The cells of a multi-game study and what each does (issue 15). A cell is one piece of work on
one (environment, seed, agent), run in a worker process or a Ray task; its run directory is an
ordinary one (``spikeverse evaluate`` works on it):

    STUDY/runs/ENV/seedS/dqn, rainbow, dsqn           trained (``spikeverse train``; resumable)
    STUDY/runs/ENV/seedS/tan-p99.9, fast, naive, ...  converted from that seed's DQN
    (and per env one ``random`` evaluation: the first seed's DQN at epsilon 1, the normalization's floor)
    STUDY/cells/PHASE--ENV--seedS--AGENT.json         a finished cell's result (a rerun skips it)

Phases, in order (a phase's cells need only earlier phases): ``train``, ``convert``, ``evaluate``
(the seed 001 protocol: ``episodes`` episodes, epsilon 0.05, evaluation seed ``eval_seed``, the
same episodes for every agent; a converted SNN plays with its DQN in the shadow for the conversion
rate; tan also with the normal (rate) readout for seed 001's Table 2) and, when the study names
perturbations, ``robustness`` (one robustness study per environment and seed over its agents).
A cell that raises returns its error instead; the orchestrator records it and goes on.
"""

from __future__ import annotations

import json
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spikeverse.agents import load_policy
from spikeverse.analysis.evaluate import evaluate_agent
from spikeverse.convert import convert_source, load_ann, load_snn
from spikeverse.convert.timesteps import AUTO_FRAMES, agreement_vs_timesteps, heldout_frames
from spikeverse.io.checkpoint import atomic_write_text, read_checkpoint_meta
from spikeverse.io.rundir import CHECKPOINT
from spikeverse.io.rundir import EVALS, read_metrics
from spikeverse.rl.config import DQNConfig
from spikeverse.rl.train import train_dqn
from spikeverse.snn.config import SpikingConfig
from spikeverse.study.robustness import run_robustness

CELLS = "cells"  # STUDY/cells/: one JSON per finished cell, NAME.error.json per failed one
PHASES = ("train", "convert", "evaluate", "robustness")
RANDOM = "random"  # the evaluate cell of uniformly random actions: the DQN at epsilon 1
EVAL_BATCH = 64  # evaluation episodes played side by side (one q_values call per step for all): a spiking
# agent simulates its T steps for the whole batch at once; the scores do not depend on it (rl.evaluation)


@dataclass(frozen=True)
class Cell:
    phase: str
    env: str
    seed: int
    agent: str  # an agent name of the report (``robustness``: "all")

    @property
    def name(self) -> str:
        return f"{self.phase}--{env_slug(self.env)}--seed{self.seed}--{self.agent}"


def env_slug(env_id: str) -> str:
    """A folder name for an environment id (MinAtar/Breakout -> MinAtar-Breakout)."""
    return env_id.replace("/", "-")


def run_dir(out: str | Path, env: str, seed: int, agent: str) -> Path:
    return Path(out) / "runs" / env_slug(env) / f"seed{seed}" / agent


def run_cell(payload: dict[str, Any], cell: Cell) -> dict[str, Any]:
    """Do one cell; returns its result (with ``wall_s``), or ``{"error": one line}`` when it
    raised (the traceback's last frame is kept for the report)."""
    start = time.perf_counter()
    try:
        out = _PHASE_FN[cell.phase](payload, cell)
        return {**out, "wall_s": round(time.perf_counter() - start, 2)}
    except Exception as e:  # a failed cell is reported; the rest of the grid goes on
        where = traceback.extract_tb(e.__traceback__)[-1] if e.__traceback__ else None
        return {"error": f"{type(e).__name__}: {(str(e).splitlines() or [''])[0]}",
                "where": f"{where.filename}:{where.lineno}" if where else None,
                "wall_s": round(time.perf_counter() - start, 2)}


def _train(payload: dict[str, Any], cell: Cell) -> dict[str, Any]:
    agent = payload["agents"][cell.agent]
    extra: dict[str, Any] = {}
    if cell.agent == "rainbow":
        extra["rainbow"] = True
    if cell.agent == "dsqn":
        extra["spiking"] = SpikingConfig(timesteps=agent["timesteps"])
    cfg = DQNConfig.for_env(cell.env, seed=cell.seed, total_steps=payload["frames"][cell.env],
                            device=payload["device"], **extra)
    d = run_dir(payload["out"], cell.env, cell.seed, cell.agent)
    budget = None
    if cell.env in payload["train_hours"]:  # the wall time left of the budget, over every call of the run
        spent = read_checkpoint_meta(d / CHECKPOINT).get("wall_s", 0.0) if (d / CHECKPOINT).exists() else 0.0
        budget = max(0.0, payload["train_hours"][cell.env] * 3600 - spent)
    res = train_dqn(cfg, d, progress=False, time_budget_s=budget)
    evals = [dict(frames=int(float(r["step"])), mean=float(r["mean"]), wall_s=float(r["wall_s"]))
             for r in read_metrics(d / EVALS)]
    return dict(run_dir=str(d), frames=res.steps, best_score=res.best_score, evals=evals,
                train_frames=cfg.total_steps, train_hours=payload["train_hours"].get(cell.env))


def _convert(payload: dict[str, Any], cell: Cell) -> dict[str, Any]:
    """Convert the seed's DQN; the SNN's agreement with it against T on held-out frames (for
    ``timesteps: auto``: up to the T chosen)."""
    opts = dict(payload["agents"][cell.agent])
    method = cell.agent.split("-")[0]
    d = run_dir(payload["out"], cell.env, cell.seed, cell.agent)
    auto = None
    options: dict[str, Any] = dict(seed=cell.seed, progress=False, frames=int(opts["collection_frames"]))
    for key in ("finetune_steps", "finetune_frames"):
        if opts.get(key) is not None:
            options[key] = int(opts[key])
    if opts.get("timesteps") == "auto":
        auto = dict(target=float(opts["target"]), frames=AUTO_FRAMES)
    else:
        options["timesteps"] = int(opts["timesteps"])
    if method in ("tan", "fast"):
        options["percentile"] = float(opts["percentile"])
    summary = convert_source(d, run_dir(payload["out"], cell.env, cell.seed, "dqn"), method=method,
                             device=payload["device"], auto=auto, **options)
    if auto is not None:
        curve = summary["timesteps_auto"]["curve"]
    else:  # agreement against T on the held-out frames that --timesteps auto would use
        snn, _ = load_snn(d, payload["device"])
        ann = load_ann(d, payload["device"])
        curve = agreement_vs_timesteps(snn, ann, heldout_frames(ann, cell.env, seed=cell.seed, progress=False),
                                       progress=False)
    return dict(run_dir=str(d), method=method, timesteps=summary["timesteps"], readout=summary["readout"],
                percentile=summary.get("percentile"), timesteps_auto=summary.get("timesteps_auto"),
                agreement_vs_timesteps=curve)


def _evaluate(payload: dict[str, Any], cell: Cell) -> dict[str, Any]:
    d = run_dir(payload["out"], cell.env, cell.seed, "dqn" if cell.agent == RANDOM else cell.agent)
    policy, meta = load_policy(d, payload["device"])
    protocol = dict(episodes=payload["episodes"], seed=payload["eval_seed"], progress=False,
                    num_envs=min(payload["episodes"], EVAL_BATCH),
                    epsilon=1.0 if cell.agent == RANDOM else payload["epsilon"])
    converted = meta.get("kind") == "snn"
    shadow = load_ann(d, payload["device"]) if converted else None
    ev = evaluate_agent(policy, cell.env, shadow=shadow, play_shadow=False, **protocol)
    out = dict(run_dir=str(d), kind=meta.get("kind"), scores=[float(s) for s in ev.result.scores],
               conversion_rate=ev.result.conversion_rate, **ev.cost_fields())
    if converted and cell.agent.startswith("tan"):  # seed 001 Table 2: the normal readout beside the robust one
        policy.readout = "rate"
        normal = evaluate_agent(policy, cell.env, shadow=shadow, play_shadow=False, **protocol)
        out["normal_readout"] = dict(readout="rate", scores=[float(s) for s in normal.result.scores],
                                     conversion_rate=normal.result.conversion_rate)
    return out


def _robustness(payload: dict[str, Any], cell: Cell) -> dict[str, Any]:
    names = list(payload["agent_names"])
    dirs = [str(run_dir(payload["out"], cell.env, cell.seed, a)) for a in names]
    out = Path(payload["out"]) / "robustness" / env_slug(cell.env) / f"seed{cell.seed}"
    res = run_robustness(dirs, cell.env, payload["robustness"], out, episodes=payload["episodes"],
                         seed=payload["eval_seed"], epsilon=payload["epsilon"], progress=False,
                         num_envs=min(payload["episodes"], EVAL_BATCH))
    areas: dict[str, dict[str, float | None]] = {}
    for a in res["relative_auc"]:  # agent index -> {kind-mode: area under the relative-score curve}
        areas.setdefault(names[a["agent"]], {})[f"{a['kind']}-{a['mode']}"] = a["relative_auc"]
    return dict(study_dir=str(out), areas=areas)


_PHASE_FN = {"train": _train, "convert": _convert, "evaluate": _evaluate, "robustness": _robustness}


def record(out: Path, cell: Cell, result: dict[str, Any]) -> bool:
    """Write a cell's result (True) or its error (False: a rerun tries it again)."""
    ok = "error" not in result
    path = Path(out) / CELLS / f"{cell.name}{'' if ok else '.error'}.json"
    atomic_write_text(path, json.dumps(dict(cell=cell.__dict__, **result), default=float))
    if ok:
        (Path(out) / CELLS / f"{cell.name}.error.json").unlink(missing_ok=True)
    return ok


def read_cells(out: Path, cells: list[Cell]) -> tuple[dict[Cell, dict], dict[Cell, dict]]:
    """(finished cells' results, failed cells' errors) of a study folder."""
    results, errors = {}, {}
    for c in cells:
        p = Path(out) / CELLS / f"{c.name}.json"
        e = Path(out) / CELLS / f"{c.name}.error.json"
        if p.is_file():
            results[c] = json.loads(p.read_text())
        elif e.is_file():
            errors[c] = json.loads(e.read_text())
    return results, errors

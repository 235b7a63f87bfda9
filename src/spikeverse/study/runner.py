"""Running a multi-game study (``spikeverse study``, issue 15): each cell of a :class:`StudySpec` as
soon as the cells it needs have finished (:func:`schedule`), on local processes or Ray tasks
(``evo.executor``), resumable, then the report.

    STUDY/config.yaml      the resolved study (a rerun must name the same one)
    STUDY/cells/           one JSON per finished cell; NAME.error.json for a cell that failed
    STUDY/runs/...         the agents' run directories (``study.cells``)
    STUDY/report.md, results.json, results.csv, figures/   (``study.report``)

A rerun does only what is missing: finished cells are skipped, a failed one is tried again, and an
interrupted training resumes from its checkpoint. The results do not depend on the executor or the
number of workers: every cell's randomness comes from its own seeds.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

from spikeverse.device import resolve_device
from spikeverse.errors import SpikeverseError
from spikeverse.evo.executor import check_executor, make_executor
from spikeverse.io.rundir import read_config, write_config
from spikeverse.progress import Progress, announce
from spikeverse.study.cells import CELLS, RANDOM, Cell, record, run_cell
from spikeverse.study.report import write_report
from spikeverse.study.spec import CONVERTED, StudySpec


def plan(spec: StudySpec) -> list[Cell]:
    """Every cell of the study, agent by agent in the study's order (dqn first): an agent's trainings
    or conversions over every env and seed, then its evaluations; the random floor after the DQN's,
    robustness last. A long study so reports its first agents early (a slow DSQN listed last waits
    for nothing else); each cell needs only cells planned before it."""
    grid = [(env, seed) for env in spec.envs for seed in spec.seeds]
    cells = []
    for name in spec.agent_names():
        phase = "convert" if name.split("-")[0] in CONVERTED else "train"
        cells += [Cell(phase, env, seed, name) for env, seed in grid]
        cells += [Cell("evaluate", env, seed, name) for env, seed in grid]
        if name == "dqn":  # the normalization's floor: uniformly random actions (the first seed's DQN at epsilon 1)
            cells += [Cell("evaluate", env, spec.seeds[0], RANDOM) for env in spec.envs]
    if spec.robustness:
        cells += [Cell("robustness", env, seed, "all") for env, seed in grid]
    return cells


def _needs(cell: Cell, names: list[str]) -> list[Cell]:
    """The cells whose results this one uses (``names``: the study's agents)."""
    if cell.phase == "train":
        return []
    if cell.phase == "robustness":  # every agent of its environment and seed, evaluated
        return [Cell("evaluate", cell.env, cell.seed, a) for a in names]
    if cell.phase == "convert":
        return [Cell("train", cell.env, cell.seed, "dqn")]
    if cell.agent == RANDOM:  # evaluate: the run the agent's cell made
        return [Cell("train", cell.env, cell.seed, "dqn")]
    kind = cell.agent.split("-")[0]
    return [Cell("convert" if kind in CONVERTED else "train", cell.env, cell.seed, cell.agent)]


def schedule(ex, fn, todo: list[Cell], done: set[Cell], needs) -> Iterator[tuple[Cell, dict[str, Any]]]:
    """Run ``todo``'s cells on executor ``ex``, yielding (cell, result) as each finishes. A worker
    that frees takes the first cell of ``todo`` (plan order) whose ``needs(cell)`` have all finished
    (``done``, updated here), so no worker idles while a cell is ready; a cell whose need failed
    yields the error "needs X, which did not finish" without running."""
    pending, running, failed = list(todo), {}, set()
    while pending or running:
        for c in list(pending):
            if len(running) >= max(1, ex.workers):
                break
            wanted = needs(c)
            lost = next((n for n in wanted if n in failed), None)
            if lost is not None:
                pending.remove(c)
                failed.add(c)
                yield c, {"error": f"needs {lost.name}, which did not finish"}
            elif all(n in done for n in wanted):
                pending.remove(c)
                running[ex.submit(fn, c)] = c
        if not running:  # what is left needs cells that are neither done nor planned
            for c in pending:
                lost = next(n for n in needs(c) if n not in done)
                yield c, {"error": f"needs {lost.name}, which did not finish"}
            return
        handle = ex.wait_any(running)
        c = running.pop(handle)
        res = ex.result(handle)
        (failed if "error" in res else done).add(c)
        yield c, res


def payload(spec: StudySpec, out: Path, device: str) -> dict[str, Any]:
    """What every cell reads (plain data: it travels to worker processes and Ray tasks)."""
    agents = {name: opts for a in spec.agents for name, opts in a.variants()}
    return dict(out=str(out), device=device, frames=dict(spec.frames), episodes=spec.episodes, epsilon=spec.epsilon,
                eval_seed=spec.eval_seed, agents=agents, agent_names=spec.agent_names(),
                robustness=list(spec.robustness), train_hours=dict(spec.train_hours))


def _check_folder(spec: StudySpec, out: Path) -> dict[str, Any]:
    """The study's config as config.yaml holds it; refused when ``out`` holds another study."""
    config = json.loads(json.dumps(spec.to_dict()))  # as config.yaml holds it (tuples as lists)
    old = read_config(out)
    if old is not None and old != config:
        raise SpikeverseError(f"{out} holds another study (other envs, seeds, agents or protocol); use another folder")
    return config


def report_study(spec: StudySpec, out: str | Path) -> dict[str, Any]:
    """Rewrite the report of the study in ``out`` from the cells finished so far, running nothing
    (a long study's interim tables); returns results.json's content."""
    out = Path(out)
    if read_config(out) is None:
        raise SpikeverseError(f"no study in {out} (its config.yaml is missing)")
    _check_folder(spec, out)
    return write_report(out, spec, plan(spec))


def run_study(spec: StudySpec, out: str | Path, *, executor: str = "local", workers: int = 1,
              device: str = "cpu", progress: bool | None = None) -> dict[str, Any]:
    """Run (or resume) the study into ``out``; returns results.json's content."""
    out = Path(out)
    resolve_device(device)
    check_executor(executor, workers)
    config = _check_folder(spec, out)
    out.mkdir(parents=True, exist_ok=True)
    write_config(out, config)
    (out / CELLS).mkdir(exist_ok=True)
    cells = plan(spec)
    data = payload(spec, out, device)
    done = {c for c in cells if (out / CELLS / f"{c.name}.json").is_file()}
    announce(f"study: {len(spec.envs)} envs x {len(spec.seeds)} seeds x {len(spec.agent_names())} agents, "
             f"{len(cells)} cells, {len(done)} done -> {out}", progress)
    with make_executor(executor, workers) as ex, Progress(len(cells), "study", unit="cell", initial=len(done),
                                                           enabled=progress) as bar:
        for c, res in schedule(ex, partial(run_cell, data), [c for c in cells if c not in done], done,
                               lambda c: _needs(c, spec.agent_names())):
            record(out, c, res)
            bar.update(1)
    return write_report(out, spec, cells)

"""The conversion sweep of seed 001 (Tan, Patel & Kozma): score and conversion rate (CR) of the
converted SNN over a grid of simulation lengths T x normalization percentiles p x readouts.

Seed 001 Fig. 1a/b (score and CR against T, one line per p), Table 2 (CR and score per p and T,
normal vs robust readout; "normal" is ``rate``, spike count / T; ``robust`` is eq. 17), the
Pearson correlation of score and CR over the settings (Fig. 1c), and Table 1 (DQN vs SNN: mean
+- std, % of DQN, Welch's t-test).

The DQN plays ``frames`` frames once per sweep to collect its activations; each percentile is
one conversion; every setting (p, T, readout) is one evaluation of ``episodes`` episodes with
the same evaluation seed, the DQN in the shadow for the CR (seed 001 eq. 18). The evaluations
run in parallel in ``workers`` processes ("spawn", one torch thread each), which get the
networks once as state dicts; each episode is seeded from (seed, episode) alone, so the result
does not depend on the number of workers.
"""

from __future__ import annotations

import math
import os
import sys
import time
import warnings
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from spikeverse.analysis.evaluate import evaluate_agent
from spikeverse.analysis.statistics import compare, summarize
from spikeverse.analysis.sweep_plots import score_cr_vs_timesteps, score_vs_conversion_rate
from spikeverse.convert import (
    METHODS,
    SpikingQNetwork,
    check_percentile,
    collect_activations,
    convert_ann,
    load_source,
    method_options,
)
from spikeverse.convert.graph import FlatQNetwork, layers_from_layout
from spikeverse.convert.spiking import check_readout, check_timesteps
from spikeverse.device import resolve_device
from spikeverse.errors import SpikeverseError
from spikeverse.io.checkpoint import atomic_write_text
from spikeverse.progress import Progress, announce
from spikeverse.rl.evaluation import evaluate
from spikeverse.study.grids import SWEEP_TIMESTEPS

DEFAULT_TIMESTEPS = SWEEP_TIMESTEPS
DEFAULT_PERCENTILES = (99.0, 99.9, 99.99, 100.0)
DEFAULT_READOUTS = ("rate", "robust")
READOUT_NAMES = {"rate": "seed 001's normal readout, spike count / T", "robust": "eq. 17, count / T + V(T) / (T V_thr)",
                 "count": "spike count", "membrane": "mean input current of the output neurons"}


# ----------------------------------------------------------------------------- the grid


def parse_list(text: str, kind: type = str, option: str = "list") -> list:
    """The items of a comma-separated ``text`` as ``kind`` (int, float or str); a user error
    naming ``option`` when it is empty or an item does not parse."""
    items = [s.strip() for s in str(text).split(",")]
    if not any(items):
        raise SpikeverseError(f"{option} is empty (give a comma-separated list)")
    if not all(items):
        raise SpikeverseError(f"{option} has an empty item in {text!r}")
    what = {int: "an integer", float: "a number"}.get(kind, "a name")
    out = []
    for s in items:
        try:
            out.append(kind(s))
        except ValueError:
            raise SpikeverseError(f"{option}: {s!r} is not {what}") from None
    return out


def check_grid(timesteps: Iterable[int], percentiles: Iterable[float], readouts: Iterable[str],
               method: str = "tan") -> tuple[list[int], list[float], list[str]]:
    """The validated grid: T ascending, p ascending, readouts in the given order; duplicates dropped."""

    ts, ps, rs = list(timesteps), list(percentiles), list(readouts)
    for name, v in (("timesteps", ts), ("percentiles", ps), ("readouts", rs)):
        if not v:
            raise SpikeverseError(f"the list of {name} is empty")
    if method not in METHODS:
        raise SpikeverseError(f"unknown conversion method {method!r} (choose from {', '.join(METHODS)})")
    ts = sorted({check_timesteps(t) for t in ts})
    ps = sorted({check_percentile(p) for p in ps})
    rs = list(dict.fromkeys(check_readout(r) for r in rs))
    return ts, ps, rs


# ----------------------------------------------------------------------------- networks as specs


def _state(module: torch.nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().to("cpu").numpy().copy() for k, v in module.state_dict().items()}


def _ann_spec(ann) -> dict[str, Any]:
    """A picklable description of a FlatQNetwork: layout, input shape, weights as arrays."""
    return dict(layout=ann.layout(), input_shape=list(ann.input_shape), state=_state(ann))


def _snn_spec(snn) -> dict[str, Any]:
    if not isinstance(snn, SpikingQNetwork):
        raise SpikeverseError(f"the sweep evaluates SpikingQNetwork conversions, not {type(snn).__name__}")
    return dict(state=_state(snn), v_th=snn.v_th, lambdas=snn.lambdas, options=snn.options())


def _load(module: torch.nn.Module, state: dict[str, np.ndarray]) -> None:
    module.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=True)


class _Evaluator:
    """Rebuilds the networks from their specs (once per process) and evaluates one setting."""

    def __init__(self, payload: dict[str, Any]):
        self.p = payload
        self.device = torch.device(payload["device"])
        spec = payload["ann"]
        self._flat = lambda: FlatQNetwork(layers_from_layout(spec["layout"]), spec["input_shape"])
        self.ann = self._flat()
        _load(self.ann, spec["state"])
        self.ann = self.ann.to(self.device).eval()
        self.snns: dict[float, Any] = {}

    def _snn(self, p: float):
        if p not in self.snns:
            spec = self.p["snns"][p]
            snn = SpikingQNetwork(self._flat(), v_th=spec["v_th"], lambdas=spec["lambdas"], **spec["options"])
            _load(snn, spec["state"])
            self.snns[p] = snn.to(self.device).eval()
        return self.snns[p]

    def __call__(self, key: tuple) -> tuple[tuple, dict[str, Any]]:
        q = self.p
        proto = dict(episodes=q["episodes"], seed=q["seed"], epsilon=q["epsilon"], progress=False)  # the sweep reports
        if key == ("dqn",):
            res = evaluate(self.ann, q["env_id"], **proto)
            return key, dict(scores=res.scores, lengths=res.lengths)
        p, T, r = key
        snn = self._snn(p)
        snn.timesteps, snn.readout = T, r
        snn.reset_generator()  # Poisson input: the same random stream for every setting
        ev = evaluate_agent(snn, q["env_id"], shadow=self.ann, play_shadow=False, **proto)
        res = ev.result
        return key, dict(scores=res.scores, lengths=res.lengths, conversion_rate=res.conversion_rate,
                         synops_per_decision=ev.cost["synops_per_decision"],
                         energy_uJ_per_decision=ev.cost["energy_uJ_per_decision"])


_WORKER: _Evaluator | None = None


def _spawn_safe() -> bool:
    """Whether "spawn" workers can start: they re-run the main program from its module name or
    file, which a program read from stdin (``__file__ == "<stdin>"``) does not have."""
    import multiprocessing.process

    main = sys.modules.get("__main__")
    if getattr(getattr(main, "__spec__", None), "name", None):
        return True
    path = getattr(main, "__file__", None)
    return path is None or os.path.isfile(os.path.join(multiprocessing.process.ORIGINAL_DIR or "", path))


def _worker_init(payload: dict[str, Any]) -> None:
    global _WORKER
    torch.set_num_threads(1)
    _WORKER = _Evaluator(payload)


def _worker_run(key: tuple) -> tuple[tuple, dict[str, Any]]:
    assert _WORKER is not None
    return _WORKER(key)


def _evaluate_all(payload: dict[str, Any], keys: list[tuple], workers: int, bar) -> dict[tuple, dict]:
    """Every key's evaluation, in-process (workers=1) or in a spawn pool; longest T first;
    ``bar.update(1)`` after each (a Progress)."""
    order = sorted(keys, key=lambda k: (-(k[1] if len(k) == 3 else math.inf), k[0] if len(k) == 3 else 0))
    out: dict[tuple, dict] = {}

    def done(key, res):
        out[key] = res
        bar.update(1, last="dqn" if len(key) == 1 else f"p={key[0]:g} T={key[1]} {key[2]}")

    if workers == 1:
        ev = _Evaluator(payload)
        for k in order:
            done(*ev(k))
        return out
    import multiprocessing as mp

    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"),
                             initializer=_worker_init, initargs=(payload,)) as pool:
        pending = {pool.submit(_worker_run, k) for k in order}
        try:
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for f in finished:
                    done(*f.result())
        except BaseException:
            for f in pending:
                f.cancel()
            raise
    return out


# ----------------------------------------------------------------------------- statistics


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def pearson(scores: Sequence[float], rates: Sequence[float]) -> dict[str, Any]:
    """Pearson's r (and its two-sided p) between mean scores and conversion rates of a set of
    settings; r = p = None with a note when it is undefined (fewer than 2 settings or a
    constant side)."""
    from scipy import stats

    x, y = np.asarray(rates, float), np.asarray(scores, float)
    n = int(x.size)
    note = None
    if n < 2:
        note = "fewer than 2 settings"
    elif np.ptp(x) == 0 and np.ptp(y) == 0:
        note = "constant score and conversion rate"
    elif np.ptp(x) == 0:
        note = "constant conversion rate"
    elif np.ptp(y) == 0:
        note = "constant score"
    if note is not None:
        return dict(r=None, p=None, n=n, note=f"undefined: {note}")
    res = stats.pearsonr(x, y)
    return dict(r=_finite(float(res.statistic)), p=_finite(float(res.pvalue)), n=n, note=None)


def _best(rows: list[dict]) -> dict:
    """The best setting: highest mean score, then highest CR, then shortest T, then lowest p."""
    return max(rows, key=lambda w: (w["mean"], w["conversion_rate"], -w["timesteps"], -w["percentile"]))


# ----------------------------------------------------------------------------- the sweep


def run_sweep(run_dir: str | Path, *, timesteps: Sequence[int] = DEFAULT_TIMESTEPS,
              percentiles: Sequence[float] = DEFAULT_PERCENTILES, readouts: Sequence[str] = DEFAULT_READOUTS,
              method: str = "tan", episodes: int = 10, seed: int = 0, frames: int = 15_000,
              epsilon: float = 0.05, workers: int | None = None, device: str | torch.device = "cpu",
              plot_dir: str | Path | None = None, progress: bool | None = None) -> dict[str, Any]:
    """Convert the DQN of ``run_dir`` at every percentile and evaluate the SNN at every (p, T,
    readout) and the DQN itself, ``episodes`` episodes each with evaluation seed ``seed`` and
    ``epsilon`` (also the collection's epsilon; the collection is seeded with ``seed`` too).

    Returns the sweep as a dict: ``dqn`` (summary and scores), ``rows`` (one per setting,
    sorted by readout, p, T: mean, std, scores, conversion rate, % of DQN, Welch p), ``pearson``
    (score vs CR per readout and over all settings), ``table1`` (DQN and every setting; the best
    per readout flagged). With ``plot_dir``: figures, sweep.json and sweep.md written there.
    ``workers`` defaults to all cores on the CPU; on CUDA the settings run one after another."""

    t0 = time.perf_counter()
    ts, ps, rs = check_grid(timesteps, percentiles, readouts, method)
    if int(episodes) != episodes or episodes < 1:
        raise SpikeverseError(f"episodes must be an integer >= 1, got {episodes}")
    if not 0.0 <= epsilon <= 1.0:
        raise SpikeverseError(f"epsilon must be in [0, 1], got {epsilon}")
    if frames < 1:
        raise SpikeverseError(f"--frames must be >= 1, got {frames}")
    if plot_dir is not None and Path(plot_dir).exists() and not Path(plot_dir).is_dir():
        raise SpikeverseError(f"--plot {plot_dir} is a file, not a folder for the figures")  # before the sweep
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    workers = _workers(workers, dev, len(ts) * len(ps) * len(rs))

    ann, env_id, source = load_source(run_dir, device=dev)
    ann.eval()
    stats = collect_activations(ann, env_id, frames=frames, epsilon=epsilon, seed=seed, min_percentile=ps[0],
                                progress=progress)
    snns, infos = {}, {}
    for p in ps:
        normalization = {"percentile": p} if "percentile" in method_options(method) else {}  # naive: none
        snn, info = convert_ann(ann, env_id, method=method, stats=stats, timesteps=ts[0], readout=rs[0],
                                frames=frames, epsilon=epsilon, seed=seed, progress=progress, **normalization)
        snns[p], infos[p] = _snn_spec(snn), info
    payload = dict(env_id=env_id, ann=_ann_spec(ann), snns=snns, episodes=int(episodes), seed=seed,
                   epsilon=epsilon, device=str(dev))
    keys = [("dqn",)] + [(p, T, r) for r in rs for p in ps for T in ts]
    announce(f"sweep {env_id}: {len(keys)} evaluations of {int(episodes)} episodes ({workers} workers)", progress)
    with Progress(len(keys), f"sweep {env_id}", unit="eval", enabled=progress) as bar:
        results = _evaluate_all(payload, keys, workers, bar)

    dqn_scores = results[("dqn",)]["scores"]
    dqn = {**summarize(dqn_scores), "scores": dqn_scores}
    rows = [_row(results[(p, T, r)], dqn, p, T, r) for r in rs for p in ps for T in ts]
    corr = {r: pearson([w["mean"] for w in rows if w["readout"] == r],
                       [w["conversion_rate"] for w in rows if w["readout"] == r]) for r in rs}
    if len(rs) > 1:
        corr["all"] = pearson([w["mean"] for w in rows], [w["conversion_rate"] for w in rows])
    out = dict(env=env_id, method=method, source=source, episodes=int(episodes), seed=seed, frames=frames,
               epsilon=epsilon, timesteps=ts, percentiles=ps, readouts=rs, workers=workers, device=str(dev),
               lambdas={f"{p:g}": infos[p]["lambdas"] for p in ps},
               collection=dict(frames=stats.frames, epsilon=epsilon, seed=seed, episodes_finished=stats.episodes,
                               mean_return=float(np.mean(stats.returns)) if stats.returns else None,
                               input_range=[stats.input_min, stats.input_max]),
               dqn=dqn, rows=rows, pearson=corr, table1=_table1(dqn, rows, rs))
    out["wall_s"] = round(time.perf_counter() - t0, 2)
    out = _json_safe(out)
    if plot_dir is not None:
        out["files"] = write_outputs(out, plot_dir)
    return out


def _workers(workers: int | None, dev: torch.device, n_settings: int) -> int:
    """How many processes evaluate the settings: ``workers`` (default: every core) on the CPU, at
    most one per evaluation; one on CUDA, or when the main program cannot be spawned (stdin)."""
    if workers is not None and (int(workers) != workers or workers < 1):
        raise SpikeverseError(f"workers must be an integer >= 1, got {workers}")
    if dev.type != "cpu":
        if workers is not None and workers > 1:
            raise SpikeverseError(f"--workers {workers} needs --device cpu (on {dev.type} the settings run one "
                                  f"after another)")
        return 1
    workers = max(1, min(int(workers or os.cpu_count() or 1), n_settings + 1))
    if workers > 1 and not _spawn_safe():
        warnings.warn("the main program has no file the worker processes could start from (stdin?); "
                      "evaluating in this process (workers=1)", RuntimeWarning, stacklevel=2)
        return 1
    return workers


def _row(res: dict[str, Any], dqn: dict[str, Any], p: float, T: int, r: str) -> dict[str, Any]:
    """One setting's line: its score against the DQN's (% and Welch's test), conversion rate, cost."""
    s = summarize(res["scores"])
    test = compare(dqn["scores"], res["scores"])
    return dict(percentile=p, timesteps=T, readout=r, mean=s["mean"], std=s["std"],
                pct_of_dqn=None if dqn["mean"] == 0 else 100.0 * s["mean"] / dqn["mean"],
                p_value=test["p_value"], t=test["t"], conversion_rate=res["conversion_rate"],
                synops_per_decision=res["synops_per_decision"],
                energy_uJ_per_decision=res["energy_uJ_per_decision"], scores=res["scores"])


def _table1(dqn: dict[str, Any], rows: list[dict[str, Any]], readouts: Sequence[str]) -> list[dict[str, Any]]:
    """Seed 001's Table 1: the DQN, then every setting, the best per readout flagged."""
    best = {r: _best([w for w in rows if w["readout"] == r]) for r in readouts}
    table = [dict(agent="DQN", readout=None, percentile=None, timesteps=None, mean=dqn["mean"], std=dqn["std"],
                  pct_of_dqn=100.0, p_value=None, conversion_rate=None, best=False)]
    return table + [dict(agent="SNN", readout=w["readout"], percentile=w["percentile"], timesteps=w["timesteps"],
                         mean=w["mean"], std=w["std"], pct_of_dqn=w["pct_of_dqn"], p_value=w["p_value"],
                         conversion_rate=w["conversion_rate"], best=w is best[w["readout"]]) for w in rows]


def _json_safe(x):
    """nan/inf -> None (valid JSON), tuples -> lists, numpy scalars -> Python numbers."""
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return _finite(float(x))
    if isinstance(x, np.integer):
        return int(x)
    return x


# ----------------------------------------------------------------------------- outputs


def write_outputs(result: dict[str, Any], out_dir: str | Path) -> list[str]:
    """Figures (score/CR vs T, score vs CR), sweep.json and sweep.md in ``out_dir``; their paths."""
    import json


    out_dir = Path(out_dir)
    title = f"{result['env']}: converted SNN ({result['method']})"
    figs = [score_cr_vs_timesteps(result["rows"], out_dir / "score_cr_vs_T.png", dqn_mean=result["dqn"]["mean"],
                                  title=title),
            score_vs_conversion_rate(result["rows"], result["pearson"], out_dir / "score_vs_cr.png", title=title)]
    atomic_write_text(out_dir / "sweep.json", json.dumps(result, indent=2))
    atomic_write_text(out_dir / "sweep.md", markdown(result, figures=[f.name for f in figs]))
    return [str(f) for f in figs] + [str(out_dir / "sweep.json"), str(out_dir / "sweep.md")]


def _num(x: float | None, fmt: str = ".1f") -> str:
    return "n/a" if x is None else format(x, fmt)


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1f}%"


def _pval(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3g}"


def _pm(mean: float, std: float | None) -> str:
    return f"{mean:.1f} ± {std:.1f}" if std is not None else f"{mean:.1f}"


def pearson_line(name: str, c: dict[str, Any]) -> str:
    """One line: Pearson r of score and CR over ``c['n']`` settings (or why it is undefined)."""
    if c["r"] is None:
        return f"{name}: Pearson r {c['note']} ({c['n']} settings)"
    return f"{name}: Pearson r = {c['r']:.3f} (p = {_pval(c['p'])}, {c['n']} settings)"


def markdown(result: dict[str, Any], figures: Sequence[str] = ()) -> str:
    """The sweep as markdown: the p x T grid (score and CR, readouts side by side; seed 001
    Table 2), the score-CR correlation (Fig. 1c), and DQN vs SNN per setting (Table 1)."""
    r, d = result, result["dqn"]
    rs = r["readouts"]
    cell = {(w["readout"], w["percentile"], w["timesteps"]): w for w in r["rows"]}
    coll = r.get("collection") or {}
    lines = [
        f"# spikeverse sweep: {r['env']}",
        "",
        f"DQN `{r['source']['path']}` ({r['source'].get('weights') or 'given'} weights) converted with method "
        f"{r['method']}, one conversion per percentile p, from the activations of {coll.get('frames', r['frames'])} "
        f"frames played by the DQN (epsilon {r['epsilon']}, seed {r['seed']}). Every setting and the DQN: "
        f"{r['episodes']} episodes, evaluation seed {r['seed']}, epsilon {r['epsilon']}. CR = share of the SNN's "
        f"greedy actions equal to the DQN's on the same observations (seed 001 eq. 18). Readouts: "
        + ", ".join(f"{x} = {READOUT_NAMES.get(x, x)}" for x in rs) + ".",
        "",
        "## Score and conversion rate per setting (seed 001 Table 2)",
        "",
        "| p | T | " + " | ".join(f"{x} score | {x} CR" for x in rs) + " |",
        "|---|---|" + "---|---|" * len(rs),
    ]
    for p in r["percentiles"]:
        for T in r["timesteps"]:
            cells = []
            for x in rs:
                w = cell[(x, p, T)]
                cells += [_num(w["mean"]), _num(w["conversion_rate"], ".3f")]
            lines.append(f"| {p:g} | {T} | " + " | ".join(cells) + " |")
    lines += ["", "## Score against conversion rate (seed 001 Fig. 1c)", ""]
    lines += [f"- {pearson_line(k, c)}" for k, c in r["pearson"].items()]
    lines += [
        "",
        "## DQN vs SNN (seed 001 Table 1)",
        "",
        "Welch's t-test of each setting's scores against the DQN's; **bold**: the best setting per readout "
        "(highest mean score).",
        "",
        "| agent | readout | p | T | mean ± std | % of DQN | p (Welch) | CR |",
        "|---|---|---|---|---|---|---|---|",
        f"| DQN | | | | {_pm(d['mean'], d['std'])} | 100% | | |",
    ]
    for w in r["table1"][1:]:
        b = "**" if w["best"] else ""
        lines.append(f"| {b}SNN{b} | {w['readout']} | {w['percentile']:g} | {w['timesteps']} | "
                     f"{b}{_pm(w['mean'], w['std'])}{b} | {_pct(w['pct_of_dqn'])} | {_pval(w['p_value'])} | "
                     f"{_num(w['conversion_rate'], '.3f')} |")
    lines += ["", f"Wall time {r['wall_s']} s ({r['workers']} worker{'s' if r['workers'] != 1 else ''}, "
              f"{r['device']})."]
    if figures:
        lines += [""] + [f"![{Path(f).stem}]({f})" for f in figures]
    return "\n".join(lines) + "\n"

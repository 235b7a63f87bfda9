"""``spikeverse stdp``: the pair STDP window (seed 000 Fig. 18) or the trace/weight evolution of
NEST's stdp_synapse rule (seed 002 Fig. 9). Options left out take the seeds' values."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from spikeverse.cli.app import app
from spikeverse.errors import SpikeverseError


class Rule(str, Enum):
    pair = "pair"
    trace = "trace"


def _given(**options: object) -> dict:
    return {name: value for name, value in options.items() if value is not None}


def _flag(name: str) -> str:
    return "--lambda" if name == "lam" else "--" + name.replace("_", "-")


@app.command()
def stdp(
    rule: Rule = typer.Option(Rule.pair, help="pair: the STDP window; trace: NEST stdp_synapse traces and weight."),
    a_plus: Optional[float] = typer.Option(None, help="pair: potentiation amplitude A+ (default 0.005)."),
    a_minus: Optional[float] = typer.Option(None, help="pair: depression amplitude A- (default 0.00525)."),
    span: Optional[float] = typer.Option(None, help="pair: the window is drawn over [-span, span] ms (default 100)."),
    tau_plus: Optional[float] = typer.Option(None, help="pair: tau+; trace: tau_tr_pre, pre trace (ms, default 20)."),
    tau_minus: Optional[float] = typer.Option(None, help="pair: tau-; trace: tau_tr_post, post trace (ms, default 20)."),
    dt: Optional[float] = typer.Option(None, help="Time step in ms (default 1)."),
    wmin: Optional[float] = typer.Option(None, help="trace: Wmin (default 0)."),
    wmax: Optional[float] = typer.Option(None, help="trace: Wmax (default 1000)."),
    w0: Optional[float] = typer.Option(None, help="trace: initial weight (default 500)."),
    lam: Optional[float] = typer.Option(None, "--lambda", help="trace: STDP rate lambda (default 0.01)."),
    alpha: Optional[float] = typer.Option(None, help="trace: depression ratio alpha (default 1)."),
    mu_plus: Optional[float] = typer.Option(None, help="trace: weight exponent mu+ of facilitation (default 1)."),
    mu_minus: Optional[float] = typer.Option(None, help="trace: weight exponent mu- of depression (default 1)."),
    duration: Optional[float] = typer.Option(None, help="trace: simulated time in ms (default 1000)."),
    rate_pre: Optional[float] = typer.Option(None, help="trace: Poisson rate of the pre neuron in Hz (default 20)."),
    rate_post: Optional[float] = typer.Option(None, help="trace: Poisson rate of the post neuron in Hz (default 20)."),
    seed: Optional[int] = typer.Option(None, help="trace: seed of the spike trains (default 0)."),
    plot: Optional[Path] = typer.Option(None, help="Write the figure to this PNG file."),
    as_json: bool = typer.Option(False, "--json", help="Print the parameters and the series as one JSON object."),
) -> None:
    """Plot or print an STDP rule: the pair window or the trace-based rule over time."""
    from dataclasses import asdict

    from spikeverse.analysis.plasticity_plots import plot_stdp_window, plot_trace_stdp
    from spikeverse.snn.plasticity import PairSTDP, TraceSTDP, stdp_window_curve, trace_stdp_experiment

    pair_rule, pair_run = _given(a_plus=a_plus, a_minus=a_minus), _given(span=span)
    trace_rule = _given(wmin=wmin, wmax=wmax, lam=lam, alpha=alpha, mu_plus=mu_plus, mu_minus=mu_minus)
    trace_run = _given(w0=w0, duration=duration, rate_pre=rate_pre, rate_post=rate_post, seed=seed)
    stray = {**trace_rule, **trace_run} if rule is Rule.pair else {**pair_rule, **pair_run}
    if stray:
        raise SpikeverseError(f"{_flag(next(iter(stray)))} does not apply to --rule {rule.value}")

    if rule is Rule.pair:
        params = PairSTDP(**pair_rule, **_given(tau_plus=tau_plus, tau_minus=tau_minus, dt=dt))
        dts, dw = stdp_window_curve(params, **pair_run)
        series = {"dt_ms": dts.tolist(), "dw": dw.tolist()}
        summary = (f"pair STDP window over [{dts[0]:g}, {dts[-1]:g}] ms: LTP up to {dw.max():+.4g}, "
                   f"LTD down to {dw.min():+.4g} (dt = t_post - t_pre)")
        if plot:
            plot_stdp_window(plot, dts.numpy(), dw.numpy(), params)
    else:
        params = TraceSTDP(**trace_rule, **_given(tau_tr_pre=tau_plus, tau_tr_post=tau_minus, dt=dt))
        res = trace_stdp_experiment(params, **trace_run)
        series = res.to_dict()
        summary = (f"trace STDP (NEST stdp_synapse) over {res.t[-1]:g} ms: "
                   f"{int(res.pre_spikes.sum())} pre / {int(res.post_spikes.sum())} post spikes, "
                   f"w {series['w'][0]:g} -> {series['w'][-1]:.2f}")
        if plot:
            plot_trace_stdp(plot, res)
    if as_json:
        typer.echo(json.dumps({"rule": rule.value, "params": asdict(params), **series,
                               "plot": str(plot) if plot else None}))
    else:
        typer.echo(summary + (f"; figure {plot}" if plot else ""))

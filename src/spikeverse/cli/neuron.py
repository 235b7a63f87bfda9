"""``spikeverse neuron``: single-neuron dynamics. ``iaf_psc_alpha`` runs seed 002's two-neuron
NEST experiment as NEST runs it (a dc_generator into A over NEST's default 1 ms device delay,
A -> B, a multimeter every 0.1 ms); ``lif`` / ``if`` trace one neuron under DC input (seed 000
sec. 5.2, seed 001), optionally with Poisson input spikes."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Optional

import typer

from spikeverse.cli.app import app
from spikeverse.errors import SpikeverseError

MODELS = ("iaf_psc_alpha", "lif", "if")


def _alpha_params(tau: Optional[float], v_th: Optional[float], t_ref: Optional[float]):
    """NEST defaults, with the given options overriding tau_m, V_th and t_ref."""
    from spikeverse.snn.alpha import AlphaParams

    given = {"tau_m": tau, "V_th": v_th, "t_ref": t_ref}
    return replace(AlphaParams(), **{k: v for k, v in given.items() if v is not None})


def _summary(name: str, times: list[float]) -> str:
    if not times:
        return f"{name}: no spikes"
    isi = (times[-1] - times[0]) / (len(times) - 1) if len(times) > 1 else float("nan")
    return f"{name}: {len(times)} spikes, first at {times[0]:g} ms, mean ISI {isi:.2f} ms"


@app.command()
def neuron(
    model: str = typer.Option("iaf_psc_alpha", help="iaf_psc_alpha (seed 002 A -> B experiment), lif or if (one neuron)."),
    dc: Optional[float] = typer.Option(None, help="DC input current (default: 500 pA into A for iaf_psc_alpha; 1.5 for lif/if)."),
    weight: Optional[float] = typer.Option(None, help="iaf_psc_alpha: A -> B weight in pA (default 1000); lif/if: current added for one step per Poisson input spike (default 1.0)."),
    delay: float = typer.Option(1.0, help="A -> B transmission delay in ms (iaf_psc_alpha), at least one step."),
    device_delay: Optional[float] = typer.Option(None, help="iaf_psc_alpha: delay in ms of the dc_generator -> A connection (default 1.0, NEST's; the current acts from t = delay + dt); 0 = no device, the DC as A's I_e, on from t = 0."),
    interval: Optional[float] = typer.Option(None, help="iaf_psc_alpha: multimeter interval in ms, a multiple of dt (default 0.1 as in seed 002, or dt if 0.1 is not a multiple of it)."),
    duration: float = typer.Option(1000.0, help="Simulated time in ms."),
    dt: float = typer.Option(0.1, help="Resolution in ms (for lif/if also the V_m sampling interval)."),
    tau: Optional[float] = typer.Option(None, help="Membrane time constant in ms (default: tau_m 10 ms for iaf_psc_alpha; 10 for lif)."),
    v_th: Optional[float] = typer.Option(None, help="Threshold (default: V_th -55 mV for iaf_psc_alpha; 1.0 for lif/if)."),
    t_ref: Optional[float] = typer.Option(None, help="Refractory period in ms (default: 2 for iaf_psc_alpha; 0 for lif)."),
    input_rate: float = typer.Option(0.0, help="lif/if: rate in Hz of Poisson input spikes (0 = DC only)."),
    seed: int = typer.Option(0, help="Seed of the Poisson input."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object with spike times and V_m traces."),
    plot: Optional[Path] = typer.Option(None, help="Write the membrane traces with spike markers to this PNG."),
) -> None:
    """Simulate neuron dynamics: spike times and membrane traces."""
    if model not in MODELS:
        raise SpikeverseError(f"unknown model {model!r}: use one of {', '.join(MODELS)}")
    if model == "iaf_psc_alpha":
        from spikeverse.snn.alpha import two_neuron_experiment

        if input_rate:
            raise SpikeverseError("--input-rate applies to --model lif or if only")
        params = _alpha_params(tau, v_th, t_ref)
        out = two_neuron_experiment(500.0 if dc is None else dc, 1000.0 if weight is None else weight,
                                    delay, duration, dt, params,
                                    device_delay=1.0 if device_delay is None else device_delay,
                                    interval=interval)
        threshold, unit = params.V_th, "mV"
    else:
        from spikeverse.snn.neurons import dc_response

        if interval is not None or device_delay is not None:
            raise SpikeverseError("--interval and --device-delay apply to --model iaf_psc_alpha only")
        if model == "if" and (tau is not None or t_ref is not None):
            raise SpikeverseError("--tau and --t-ref apply to --model lif or iaf_psc_alpha only")
        threshold, unit = 1.0 if v_th is None else v_th, ""
        out = dc_response(model, dc=1.5 if dc is None else dc, duration=duration, dt=dt,
                          tau=10.0 if tau is None else tau, v_th=threshold,
                          t_ref=0.0 if t_ref is None else t_ref, input_rate=input_rate,
                          weight=1.0 if weight is None else weight, seed=seed)
    names = [k for k in out["v_m"] if k != "t"]
    if plot is not None:
        from spikeverse.analysis.neuron_plots import plot_membrane_traces

        plot_membrane_traces(out["v_m"]["t"], {k: out["v_m"][k] for k in names}, out["spikes"], plot,
                             v_th=threshold, unit=unit, title=f"{model}, {duration:g} ms at dt {dt:g} ms")
        out["plot"] = str(plot)
    if as_json:
        typer.echo(json.dumps(out))
    else:
        for name in names:
            typer.echo(_summary(name, out["spikes"][name]))
        if plot is not None:
            typer.echo(f"plot: {plot}")

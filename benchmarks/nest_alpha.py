"""NEST fidelity of ``snn.alpha`` (issue 11): seed 002's two-neuron experiment run in NEST and in
spikeverse, compared spike by spike and sample by sample.

Setup (seed 002 sec. 3.1, as NEST runs it): two ``iaf_psc_alpha`` neurons with NEST's defaults,
a ``dc_generator`` (500 pA) connected to A with NEST's default delay (1.0 ms), A -> B with
weight 1000 pA and delay 1.0 ms, a multimeter recording V_m of both every 0.1 ms, a
spike_recorder on both, 1000 ms at resolution 0.1 ms. Further cases: the DC as A's ``I_e``
(spikeverse ``device_delay=0``) and a variant with other delays, a finer resolution and a
coarser multimeter interval.

NEST is never a dependency of spikeverse: install it in a throwaway venv and point
``--nest-python`` at it (it runs this file as a worker there, which needs only nest and numpy):

    python3 -m venv /tmp/nestvenv && /tmp/nestvenv/bin/pip install nest-simulator==3.10.0 numpy
    python benchmarks/nest_alpha.py --nest-python /tmp/nestvenv/bin/python

Writes benchmarks/results/nest_alpha.{json,md} (the table is generated from the JSON) and the
NEST reference of the seed 002 case that tests/test_alpha.py checks without NEST
(tests/data/nest_iaf_psc_alpha.json, ``--test-data``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
TEST_DATA = ROOT / "tests" / "data" / "nest_iaf_psc_alpha.json"

SEED002 = dict(dc=500.0, weight=1000.0, delay=1.0, duration=1000.0, dt=0.1, interval=0.1,
               device_delay=1.0)
CASES = {
    "seed002": SEED002,
    "seed002_I_e": {**SEED002, "device_delay": 0.0},
    "variant": dict(dc=450.0, weight=1500.0, delay=2.5, duration=1000.0, dt=0.01, interval=1.0,
                    device_delay=2.0),
}


# ---------------------------------------------------------------- NEST side (nest + numpy only)
def run_nest(cfg: dict) -> dict:
    """The experiment in NEST; ``device_delay`` 0 means the DC is A's ``I_e`` (no device)."""
    import nest

    nest.set_verbosity("M_ERROR")
    nest.ResetKernel()
    nest.resolution = cfg["dt"]
    a = nest.Create("iaf_psc_alpha")
    b = nest.Create("iaf_psc_alpha")
    if cfg["device_delay"] > 0:
        dc = nest.Create("dc_generator", params={"amplitude": cfg["dc"]})
        nest.Connect(dc, a, syn_spec={"delay": cfg["device_delay"]})
    else:
        a.I_e = cfg["dc"]
    mm = nest.Create("multimeter", params={"interval": cfg["interval"], "record_from": ["V_m"]})
    sr = nest.Create("spike_recorder")
    nest.Connect(a, b, syn_spec={"weight": cfg["weight"], "delay": cfg["delay"]})
    nest.Connect(mm, a + b)
    nest.Connect(a + b, sr)
    nest.Simulate(cfg["duration"])
    spikes, vm = sr.get("events"), mm.get("events")
    out = {"nest_version": nest.__version__, "min_delay": nest.min_delay, "spikes": {}, "v_m": {}}
    for name, node in (("A", a), ("B", b)):
        out["spikes"][name] = [float(t) for t in spikes["times"][spikes["senders"] == node.global_id]]
        sel = vm["senders"] == node.global_id
        out["v_m"]["t"] = [float(t) for t in vm["times"][sel]]
        out["v_m"][name] = [float(v) for v in vm["V_m"][sel]]
    return out


def nest_python() -> str | None:
    """A Python with NEST: $SPIKEVERSE_NEST_PYTHON, else this one if it can import nest."""
    env = os.environ.get("SPIKEVERSE_NEST_PYTHON")
    if env:
        return env
    return sys.executable if importlib.util.find_spec("nest") is not None else None


def nest_reference(cfg: dict, python: str | None = None) -> dict:
    """``run_nest(cfg)`` in a subprocess of ``python`` (default :func:`nest_python`)."""
    python = python or nest_python()
    if python is None:
        raise RuntimeError("no Python with NEST: pass --nest-python or set SPIKEVERSE_NEST_PYTHON")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "nest.json"
        proc = subprocess.run([python, str(Path(__file__).resolve()), "--worker", json.dumps(cfg),
                               "--worker-out", str(out)], capture_output=True, text=True,
                              cwd=tmp, timeout=600)
        if proc.returncode != 0 or not out.exists():
            raise RuntimeError(f"NEST run failed (rc {proc.returncode}):\n{proc.stderr[-3000:]}")
        return json.loads(out.read_text())


# ---------------------------------------------------------------- spikeverse side and comparison
def run_spikeverse(cfg: dict) -> dict:
    from spikeverse.snn.alpha import two_neuron_experiment

    return two_neuron_experiment(cfg["dc"], cfg["weight"], cfg["delay"], cfg["duration"], cfg["dt"],
                                 device_delay=cfg["device_delay"], interval=cfg["interval"])


def compare(nest: dict, ours: dict, dt: float) -> dict:
    """Per neuron: spike counts, first spikes, max |spike time difference| (over the common
    prefix when the counts differ), max |V_m difference| at the sample times both recorded."""
    t_ours = {round(t, 6): i for i, t in enumerate(ours["v_m"]["t"])}
    common = [(j, t_ours[round(t, 6)]) for j, t in enumerate(nest["v_m"]["t"]) if round(t, 6) in t_ours]
    out = {"samples": {"nest": len(nest["v_m"]["t"]), "spikeverse": len(ours["v_m"]["t"]),
                       "compared": len(common),
                       "last_nest": nest["v_m"]["t"][-1] if nest["v_m"]["t"] else None,
                       "last_spikeverse": ours["v_m"]["t"][-1] if ours["v_m"]["t"] else None}}
    for name in ("A", "B"):
        a, b = nest["spikes"][name], ours["spikes"][name]
        n = min(len(a), len(b))
        dts = [abs(x - y) for x, y in zip(a[:n], b[:n])]
        dv = [abs(nest["v_m"][name][j] - ours["v_m"][name][i]) for j, i in common]
        out[name] = {"count_nest": len(a), "count_spikeverse": len(b),
                     "first_nest": a[0] if a else None, "first_spikeverse": b[0] if b else None,
                     "max_abs_dt_ms": max(dts, default=0.0),
                     # same resolution steps (NEST writes t as tics * 0.001, e.g. 30.900000000000002)
                     "same_steps": [round(x / dt) for x in a] == [round(y / dt) for y in b],
                     "within_one_step": len(a) == len(b) and all(d <= dt + 1e-9 for d in dts),
                     "max_abs_dv_mV": max(dv, default=0.0)}
    return out


def markdown(res: dict) -> str:
    lines = ["# NEST fidelity of spikeverse `iaf_psc_alpha` (seed 002 two-neuron experiment)", "",
             f"NEST {res['nest_version']} (run by `{res['nest_python']}`) against spikeverse "
             f"`two_neuron_experiment`; generated by benchmarks/nest_alpha.py from nest_alpha.json.",
             "", "| case | dc pA | weight pA | delay ms | device delay ms | dt ms | interval ms "
             "| neuron | spikes NEST | spikes spikeverse | first NEST ms | first spikeverse ms "
             "| same steps | max abs dt ms | max abs dV_m mV | V_m samples compared |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for case, r in res["cases"].items():
        c, cmp = r["config"], r["comparison"]
        dev = "none (I_e)" if c["device_delay"] == 0 else f"{c['device_delay']:g}"
        for name in ("A", "B"):
            x = cmp[name]
            lines.append(f"| {case} | {c['dc']:g} | {c['weight']:g} | {c['delay']:g} | {dev} "
                         f"| {c['dt']:g} | {c['interval']:g} | {name} | {x['count_nest']} "
                         f"| {x['count_spikeverse']} | {x['first_nest']} | {x['first_spikeverse']} "
                         f"| {'yes' if x['same_steps'] else 'no'} | {x['max_abs_dt_ms']:.3g} "
                         f"| {x['max_abs_dv_mV']:.3g} | {cmp['samples']['compared']} |")
    lines += ["", "Spike times in the same resolution steps differ only in the last bits (NEST "
              "writes t as tics x 0.001 ms, e.g. 30.900000000000002; spikeverse as (k + 1) dt "
              "rounded to 1e-9 ms, e.g. 30.9).", "", "V_m samples: NEST's multimeter hands over the samples of the last min_delay "
              "interval only at the next `Simulate` call, so NEST has fewer samples than "
              "spikeverse (which records through the end):", ""]
    for case, r in res["cases"].items():
        s = r["comparison"]["samples"]
        lines.append(f"- {case}: NEST {s['nest']} samples (last at {s['last_nest']} ms, "
                     f"min_delay {r['nest_min_delay']} ms), spikeverse {s['spikeverse']} "
                     f"(last at {s['last_spikeverse']} ms)")
    return "\n".join(lines) + "\n"


def test_data(cfg: dict, nest: dict) -> dict:
    """The NEST reference kept for the test suite: all spikes, V_m at t <= 20 ms (every sample)
    and every 5 ms after that."""
    keep = [j for j, t in enumerate(nest["v_m"]["t"])
            if t <= 20.0 + 1e-9 or abs(t / 5.0 - round(t / 5.0)) < 1e-9]
    return {"source": f"NEST {nest['nest_version']}, benchmarks/nest_alpha.py (case seed002)",
            "config": cfg, "spikes": nest["spikes"],
            "v_m": {"t": [nest["v_m"]["t"][j] for j in keep],
                    "A": [nest["v_m"]["A"][j] for j in keep],
                    "B": [nest["v_m"]["B"][j] for j in keep]}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nest-python", help="Python with nest-simulator (default: "
                    "$SPIKEVERSE_NEST_PYTHON, or this Python if it can import nest)")
    ap.add_argument("--out", type=Path, default=RESULTS, help="folder for nest_alpha.{json,md}")
    ap.add_argument("--test-data", type=Path, default=TEST_DATA,
                    help="where to write the NEST reference for tests ('' = don't)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--worker-out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:  # inside the NEST Python
        Path(args.worker_out).write_text(json.dumps(run_nest(json.loads(args.worker))))
        return 0
    python = args.nest_python or nest_python()
    res = {"nest_python": python, "cases": {}}
    for case, cfg in CASES.items():
        nest = nest_reference(cfg, python)
        ours = run_spikeverse(cfg)
        res["nest_version"] = nest["nest_version"]
        res["cases"][case] = {"config": cfg, "nest_min_delay": nest["min_delay"],
                              "comparison": compare(nest, ours, cfg["dt"])}
        if case == "seed002" and str(args.test_data):
            args.test_data.parent.mkdir(parents=True, exist_ok=True)
            args.test_data.write_text(json.dumps(test_data(cfg, nest), indent=1) + "\n")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "nest_alpha.json").write_text(json.dumps(res, indent=2) + "\n")
    md = markdown(json.loads((args.out / "nest_alpha.json").read_text()))
    (args.out / "nest_alpha.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())

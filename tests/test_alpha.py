"""NEST iaf_psc_alpha, exact integration (SPEC R-SNN-ALPHA), and ``spikeverse neuron``."""

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

from spikeverse.cli.app import main
from spikeverse.errors import SpikeverseError
from spikeverse.snn.alpha import (AlphaNetwork, AlphaParams, alpha_propagators,
                                  dc_generator_current, two_neuron_experiment)

P = AlphaParams()
R = P.tau_m / P.C_m  # GOhm: mV per pA


def alpha_psp(t, w, tau_syn, tau_m=P.tau_m, c_m=P.C_m):
    """V - E_L after one spike of weight w at t = 0: (1/C) int_0^t e^{-(t-s)/tau_m} I(s) ds with
    I(s) = w (e / tau_syn) s e^{-s / tau_syn}."""
    k = w * math.e / (tau_syn * c_m)
    if tau_syn == tau_m:
        return k * t**2 / 2 * np.exp(-t / tau_m)
    a = 1 / tau_syn - 1 / tau_m
    return k * np.exp(-t / tau_m) / a**2 * (1 - np.exp(-a * t) * (1 + a * t))


def single_input_psp(params, w, dt=0.1, duration=60.0):
    """One neuron, one external spike of weight w delivered in step 0; V - E_L from then on."""
    net = AlphaNetwork(torch.zeros(1, 1, dtype=torch.float64), 1.0, params, dt)
    stim = torch.zeros(round(duration / dt), 1, dtype=torch.float64)
    stim[0, 0] = w
    rec = net.simulate(duration, stim)
    # the spike enters dI' at the end of step 0 (time dt); V responds from the next step
    return (rec.t - dt).numpy(), (rec.v_m[:, 0] - params.E_L).numpy()


def test_closed_form_psp_matches_a_fine_ode_solution():
    tau_s, w = 2.0, 100.0

    def rhs(t, x):
        di, i, v = x
        return [-di / tau_s, di - i / tau_s, -v / P.tau_m + i / P.C_m]

    t = np.linspace(0, 40, 81)
    sol = solve_ivp(rhs, (0, 40), [w * math.e / tau_s, 0, 0], t_eval=t, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(sol.y[2], alpha_psp(t, w, tau_s), rtol=1e-7, atol=1e-11)


@pytest.mark.parametrize("w,tau_ex,tau_in", [(100.0, 2.0, 2.0), (-80.0, 2.0, 5.0),
                                             (250.0, 10.0, 2.0), (-40.0, 2.0, 0.5)])
def test_subthreshold_psp_is_the_analytic_alpha_psp(w, tau_ex, tau_in):
    """Exact integration: the sampled PSP equals the closed form to rounding (tau_m = tau_syn
    included); negative weights use the inhibitory synapse's tau_syn_in."""
    params = AlphaParams(tau_syn_ex=tau_ex, tau_syn_in=tau_in)
    t, y = single_input_psp(params, w)
    ref = alpha_psp(t, w, tau_ex if w > 0 else tau_in)
    assert abs(y).max() < P.V_th - P.E_L  # subthreshold
    np.testing.assert_allclose(y, ref, rtol=0, atol=1e-6 * abs(ref).max())
    peak = abs(ref).max()
    np.testing.assert_allclose(y[abs(ref) > 1e-3 * peak], ref[abs(ref) > 1e-3 * peak], rtol=1e-6)


def test_propagators_are_independent_of_step_subdivision():
    """Ten steps of 0.01 ms land where one step of 0.1 ms lands (the propagator is exact)."""
    t1, y1 = single_input_psp(P, 300.0, dt=0.1, duration=20.0)
    t2, y2 = single_input_psp(P, 300.0, dt=0.01, duration=20.0)
    # both responses start at their own first step; compare as functions of t
    np.testing.assert_allclose(np.interp(t1[5:], t2, y2), y1[5:], rtol=1e-9)
    prop = alpha_propagators(P, 0.1)
    assert prop.ex.kick == pytest.approx(math.e / 2.0) and prop.ref_steps == 20


@pytest.mark.parametrize("i_e", [376.0, 450.0, 500.0, 1000.0])
def test_dc_driven_isi_matches_the_analytic_value(i_e):
    """ISI = t_ref + tau_m ln(I_e R / (I_e R - (V_th - E_L))) for V_reset = E_L, within a step."""
    dt = 0.1
    net = AlphaNetwork(torch.zeros(1, 1), 1.0, AlphaParams(I_e=i_e), dt)
    times = net.simulate(400.0).spike_times(0)
    to_threshold = P.tau_m * math.log(i_e * R / (i_e * R - (P.V_th - P.E_L)))
    assert len(times) >= 3
    assert abs(times[0].item() - to_threshold) <= dt + 1e-9  # from rest at t = 0
    isi = torch.diff(times)
    assert ((isi - (P.t_ref + to_threshold)).abs() <= dt + 1e-9).all(), (isi, P.t_ref + to_threshold)


def test_no_spikes_below_rheobase_and_relaxation_to_i_e_r():
    i_e = 370.0  # I_e R = 14.8 mV < V_th - E_L = 15 mV
    rec = AlphaNetwork(torch.zeros(1, 1), 1.0, AlphaParams(I_e=i_e), 0.1).simulate(300.0)
    assert not rec.spikes.any()
    t = rec.t.numpy()
    np.testing.assert_allclose(rec.v_m[:, 0].numpy(), P.E_L + i_e * R * (1 - np.exp(-t / P.tau_m)),
                               rtol=1e-12)


def test_refractory_clamp_and_spike_stamps():
    rec = AlphaNetwork(torch.zeros(1, 1), 1.0, AlphaParams(I_e=1000.0), 0.1).simulate(60.0)
    v = rec.v_m[:, 0]
    k = int(torch.nonzero(rec.spikes[:, 0])[0])
    assert rec.t[k].item() == pytest.approx((k + 1) * 0.1)
    assert (v[k:k + 21] == P.V_reset).all()  # V_reset from the spike time through t_ref
    assert v[k + 21] > P.V_reset and v[k - 1] < P.V_th


@pytest.mark.parametrize("delay,steps", [(1.0, 10), (2.5, 25), (0.01, 1)])
def test_transmission_delay_in_steps(delay, steps):
    """A spike stamped t reaches the target's dI' at t + delay; V moves one step later."""
    out = two_neuron_experiment(dc=600.0, weight=200.0, delay=delay, duration=40.0, dt=0.1)
    t_a = out["spikes"]["A"][0]
    t = np.array(out["v_m"]["t"])
    v_b = np.array(out["v_m"]["B"])
    k_arrive = int(np.argmin(abs(t - (t_a + steps * 0.1))))
    assert (v_b[:k_arrive + 1] == P.E_L).all()
    assert v_b[k_arrive + 1] > P.E_L


def test_network_weight_matrix_routes_spikes_and_validates():
    w = torch.tensor([[0.0, 300.0, -300.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    params = AlphaParams(I_e=torch.tensor([600.0, 0.0, 0.0]))
    rec = AlphaNetwork(w, torch.tensor([[1.0, 1.0, 3.0]] * 3), params).simulate(50.0)
    first = rec.spike_times(0)[0].item()
    t = rec.t
    dep = rec.v_m[:, 1] > P.E_L
    hyp = rec.v_m[:, 2] < P.E_L
    assert t[dep][0].item() == pytest.approx(first + 1.1)
    assert t[hyp][0].item() == pytest.approx(first + 3.1)
    with pytest.raises(SpikeverseError):
        AlphaNetwork(torch.zeros(2, 3))
    with pytest.raises(SpikeverseError):
        AlphaNetwork(torch.zeros(2, 2), -1.0)
    with pytest.raises(SpikeverseError):
        AlphaNetwork(torch.zeros(2, 2), 1.0, AlphaParams(V_reset=-50.0))
    with pytest.raises(SpikeverseError):
        AlphaNetwork(torch.zeros(1, 1)).simulate(-5.0)


def test_float32_agrees_with_float64():
    kw = dict(params=AlphaParams(I_e=torch.tensor([500.0, 0.0])), dt=0.1)
    w = torch.tensor([[0.0, 1000.0], [0.0, 0.0]])
    r64 = AlphaNetwork(w, 1.0, **kw).simulate(100.0)
    r32 = AlphaNetwork(w, 1.0, dtype=torch.float32, **kw).simulate(100.0)
    assert r32.v_m.dtype == torch.float32
    assert torch.equal(r32.spikes, r64.spikes)
    torch.testing.assert_close(r32.v_m.double(), r64.v_m, rtol=0, atol=1e-3)


def run_cli(capsys, *args):
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def test_cli_iaf_psc_alpha_json(capsys):
    """Seed 002 as NEST 3.10 runs it: A (500 pA from a dc_generator over the default 1 ms device
    delay) fires 62 times in 1000 ms, first at 15.0 ms, every 15.9 ms; B, 1000 pA from A, 31
    times. (With the DC as I_e from t = 0 it would be 63 spikes from 13.9 ms.)"""
    rc, out, _ = run_cli(capsys, "neuron", "--model", "iaf_psc_alpha", "--json")
    assert rc == 0
    res = json.loads(out)
    assert set(res) >= {"spikes", "v_m"} and set(res["v_m"]) == {"t", "A", "B"}
    assert len(res["v_m"]["t"]) == len(res["v_m"]["A"]) == 10000
    assert res["device_delay"] == 1.0 and res["interval"] == 0.1
    a, b = res["spikes"]["A"], res["spikes"]["B"]
    assert len(a) == 62 and a[0] == pytest.approx(15.0)
    assert np.allclose(np.diff(a), 15.9)
    assert len(b) == 31 and b[0] == pytest.approx(35.7)
    rc, out, _ = run_cli(capsys, "neuron", "--device-delay", 0, "--interval", 1.0, "--json")
    res = json.loads(out)
    assert rc == 0 and len(res["spikes"]["A"]) == 63 and res["spikes"]["A"][0] == pytest.approx(13.9)
    assert res["v_m"]["t"][:2] == [1.0, 2.0] and len(res["v_m"]["t"]) == 1000


def test_cli_plot_and_text(tmp_path, capsys):
    png = tmp_path / "traces.png"
    rc, out, _ = run_cli(capsys, "neuron", "--duration", 100, "--plot", png)
    assert rc == 0 and "A: 6 spikes" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rc, out, _ = run_cli(capsys, "neuron", "--model", "lif", "--dc", 1.5, "--duration", 50,
                         "--input-rate", 500, "--weight", 2.0, "--json")
    res = json.loads(out)
    assert rc == 0 and res["spikes"]["input"] and res["spikes"]["neuron"]


@pytest.mark.parametrize("args,msg", [
    (["--model", "hodgkin"], "unknown model"),
    (["--duration", "-5"], "duration"),
    (["--dt", "0"], "dt"),
    (["--delay", "-1"], "delays"),
    (["--input-rate", "10"], "--input-rate"),
    (["--model", "if", "--tau", "3"], "--tau"),
    (["--interval", "0.15"], "multiple of dt"),
    (["--device-delay", "-1"], "device_delay"),
    (["--model", "lif", "--device-delay", "0"], "--device-delay"),
])
def test_cli_validation_one_line_errors(capsys, args, msg):
    rc, out, err = run_cli(capsys, "neuron", *args)
    assert rc == 2 and msg in err and len(err.strip().splitlines()) == 1


# ---------------------------------------------------------------- NEST conventions and fidelity
ROOT = Path(__file__).resolve().parent.parent
NEST_REF = json.loads((ROOT / "tests" / "data" / "nest_iaf_psc_alpha.json").read_text())


def assert_matches_nest(nest: dict, ours: dict, dt: float, v_tol: float = 1e-9):
    """Equal spike counts, spike times within one resolution step (in fact in the same step),
    V_m equal to float tolerance at every sample time NEST recorded."""
    for name in ("A", "B"):
        a, b = np.array(nest["spikes"][name]), np.array(ours["spikes"][name])
        assert len(a) == len(b), (name, len(a), len(b))
        assert (abs(a - b) <= dt + 1e-9).all(), (name, abs(a - b).max())
        assert (np.round(a / dt) == np.round(b / dt)).all()
    index = {round(t, 6): i for i, t in enumerate(ours["v_m"]["t"])}
    rows = [index[round(t, 6)] for t in nest["v_m"]["t"]]
    for name in ("A", "B"):
        np.testing.assert_allclose(np.array(ours["v_m"][name])[rows], nest["v_m"][name],
                                   rtol=0, atol=v_tol)


def test_matches_recorded_nest_reference():
    """NEST 3.10's output of seed 002 (recorded by benchmarks/nest_alpha.py from NEST itself):
    62 / 31 spikes, the same steps, V_m to rounding; runs without NEST."""
    cfg = NEST_REF["config"]
    assert len(NEST_REF["spikes"]["A"]) == 62 and len(NEST_REF["spikes"]["B"]) == 31
    ours = two_neuron_experiment(cfg["dc"], cfg["weight"], cfg["delay"], cfg["duration"], cfg["dt"],
                                 device_delay=cfg["device_delay"], interval=cfg["interval"])
    assert_matches_nest(NEST_REF, ours, cfg["dt"])


def _bench():
    spec = importlib.util.spec_from_file_location("nest_alpha", ROOT / "benchmarks" / "nest_alpha.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("case", ["seed002", "seed002_I_e"])
def test_cross_check_against_nest(case):
    """The same experiment in NEST (importable here, or $SPIKEVERSE_NEST_PYTHON) and spikeverse."""
    bench = _bench()
    if bench.nest_python() is None:
        pytest.skip("NEST not importable and SPIKEVERSE_NEST_PYTHON not set")
    cfg = bench.CASES[case]
    assert_matches_nest(bench.nest_reference(cfg), bench.run_spikeverse(cfg), cfg["dt"])


def test_dc_generator_reaches_the_neuron_after_its_delay():
    """NEST: a dc_generator's current, sent from step 0 over a delay of d steps, is delivered in
    step d and moves V from step d + 1 on (V_m still E_L at the sample t = delay + dt)."""
    for delay in (0.1, 1.0, 2.5):
        out = two_neuron_experiment(duration=5.0, device_delay=delay)
        t, v = np.array(out["v_m"]["t"]), np.array(out["v_m"]["A"])
        k = int(np.argmin(abs(t - (delay + 0.1))))
        assert (v[:k + 1] == P.E_L).all() and v[k + 1] > P.E_L, delay
    cur = dc_generator_current(torch.tensor([500.0, 0.0]), 30, 0.1, 1.0)
    assert cur.shape == (30, 2) and (cur[:10] == 0).all() and (cur[10:, 0] == 500.0).all()
    with pytest.raises(SpikeverseError):
        dc_generator_current(torch.tensor([1.0]), 10, 0.1, 0.0)


def test_device_delay_shifts_spikes_exactly():
    """Every spike moves by exactly the change of the device delay; without a device (the DC as
    I_e, on from t = 0) they come delay + dt earlier than with it (NEST's current input acts one
    step after its delivery)."""
    def spikes(d):
        out = two_neuron_experiment(duration=300.0, device_delay=d)
        return np.array(out["spikes"]["A"]), np.array(out["spikes"]["B"])

    base = spikes(1.0)
    for d, shift in ((2.0, 1.0), (1.5, 0.5), (0.0, -1.1)):
        for x, y in zip(base, spikes(d)):
            n = min(len(x), len(y))
            assert n > 5
            np.testing.assert_allclose(y[:n] - x[:n], shift, atol=1e-9)


def test_multimeter_interval():
    """V_m sampled at interval, 2 interval, ... (NEST's multimeter), the same values as every step."""
    fine = two_neuron_experiment(duration=50.0, interval=0.1)
    coarse = two_neuron_experiment(duration=50.0, interval=0.5)
    assert coarse["v_m"]["t"][:3] == [0.5, 1.0, 1.5] and len(coarse["v_m"]["t"]) == 100
    assert coarse["v_m"]["A"] == fine["v_m"]["A"][4::5] and coarse["spikes"] == fine["spikes"]
    assert two_neuron_experiment(duration=5.0, dt=0.25)["interval"] == 0.25  # 0.1 not allowed
    with pytest.raises(SpikeverseError, match="multiple of dt"):
        AlphaNetwork(torch.zeros(1, 1)).simulate(10.0, interval=0.25)

"""IF / LIF / DSQN-LIF step functions and modules (SPEC R-SNN-IF, R-SNN-LIF)."""

import math

import pytest
import torch
from torch import nn

from spikeverse.errors import SpikeverseError
from spikeverse.snn.neurons import (DSQNLIFNeuron, IFNeuron, LIFNeuron, dc_response, heaviside,
                                    if_step, lif_dsqn_step, lif_step, reset_net)


def straight_through(x):
    """Forward H(x), backward the sigmoid's derivative: a differentiable spike function."""
    sg = torch.sigmoid(4 * x)
    return heaviside(x) + sg - sg.detach()


def test_heaviside_is_one_at_zero_and_has_no_gradient():
    x = torch.tensor([-1e-9, 0.0, 2.0], requires_grad=True)
    assert heaviside(x).tolist() == [0.0, 1.0, 1.0]
    assert not heaviside(x).requires_grad


@pytest.mark.parametrize("v_th", [1.0, 0.37])
def test_if_subtract_reset_conserves_charge(v_th):
    """Seed 001 eq. 4-6: V(T) = V(0) + sum_t z(t) - V_thr * (number of spikes), exactly."""
    g = torch.Generator().manual_seed(0)
    z = torch.randn(300, 64, generator=g, dtype=torch.float64) * 0.6 + 0.2
    v = torch.rand(64, generator=g, dtype=torch.float64) * v_th  # also a nonzero V(0)
    v0, n = v.clone(), torch.zeros_like(v)
    for zt in z:
        s, v = if_step(v, zt, v_th)
        n += s
    assert n.sum() > 1000  # the check is not vacuous
    torch.testing.assert_close(v, v0 + z.sum(0) - v_th * n, rtol=0, atol=1e-11)


def test_if_rate_approaches_clipped_input_within_one_over_t():
    """Seed 001 eq. 7: r = clip(z / V_thr, 0, 1) with error <= 1/T for constant input."""
    v_th = 0.8
    z = torch.tensor([-0.5, 0.0, 0.013, 0.2, 0.4, 0.5, 0.79, 0.8, 1.3, 5.0], dtype=torch.float64)
    target = (z / v_th).clamp(0, 1)
    for T in (10, 37, 100, 1000):
        v, n = torch.zeros_like(z), torch.zeros_like(z)
        for _ in range(T):
            s, v = if_step(v, z, v_th)
            n += s
        assert ((n / T - target).abs() <= 1.0 / T + 1e-12).all(), (T, n / T, target)


def test_if_hard_reset_and_float32():
    v = torch.zeros(3)
    s, v = if_step(v, torch.tensor([0.5, 1.0, 1.7]), 1.0, reset="hard", v_reset=-0.25)
    assert v.dtype == torch.float32
    assert s.tolist() == [0.0, 1.0, 1.0] and v.tolist() == [0.5, -0.25, -0.25]


def test_per_neuron_threshold_broadcasts():
    v_th = torch.tensor([0.5, 1.0, 2.0])
    s, v = if_step(torch.zeros(4, 3), torch.ones(4, 3), v_th)
    assert s[0].tolist() == [1.0, 1.0, 0.0]
    torch.testing.assert_close(v[0], torch.tensor([0.5, 0.0, 1.0]))


def test_unknown_reset_is_a_user_error():
    with pytest.raises(SpikeverseError):
        if_step(torch.zeros(1), torch.ones(1), reset="zero")
    with pytest.raises(SpikeverseError):
        LIFNeuron(reset="zero")


def test_gradient_flows_through_spike_fn_and_detach_reset_stops_it_in_the_reset():
    """dv/dz = 1 - v_th ds/dz with the reset in the graph, 1 with detach_reset."""
    z = torch.tensor([0.9], dtype=torch.float64, requires_grad=True)
    s, v = if_step(torch.zeros(1, dtype=torch.float64), z, 1.0, spike_fn=straight_through)
    (ds,) = torch.autograd.grad(s.sum(), z, retain_graph=True)
    (dv,) = torch.autograd.grad(v.sum(), z)
    assert ds.item() > 0
    torch.testing.assert_close(dv, 1 - ds)
    _, v = if_step(torch.zeros(1, dtype=torch.float64), z, 1.0, spike_fn=straight_through,
                   detach_reset=True)
    (dv,) = torch.autograd.grad(v.sum(), z)
    assert dv.item() == 1.0


def test_lif_exact_update_matches_the_ode_solution():
    """With constant input the step is exact: v(n dt) = R I + (v0 - R I) e^{-n dt / tau}."""
    v = torch.full((1,), -0.3, dtype=torch.float64)
    for _ in range(25):
        s, v, _ = lif_step(v, torch.tensor([0.6], dtype=torch.float64), tau=5.0, dt=0.2, v_th=10.0)
    assert s.item() == 0
    assert v.item() == pytest.approx(0.6 + (-0.3 - 0.6) * math.exp(-25 * 0.2 / 5.0), rel=1e-12)


@pytest.mark.parametrize("ri,v_rest,t_ref_steps", [(1.5, 0.0, 0), (1.2, 0.0, 20), (3.0, -0.5, 7)])
def test_lif_constant_input_fires_at_the_analytic_rate(ri, v_rest, t_ref_steps):
    """ISI = t_ref + tau ln((R I - (v_reset - v_rest)) / (R I - (v_th - v_rest)))."""
    tau, dt, v_th, v_reset, r = 10.0, 0.1, 1.0, 0.0, 2.0
    i = torch.full((1,), ri / r, dtype=torch.float64)
    v, refr, times = torch.full((1,), v_reset, dtype=torch.float64), None, []
    for k in range(3000):
        s, v, refr = lif_step(v, i, refr, tau=tau, dt=dt, r=r, v_rest=v_rest, v_th=v_th,
                              v_reset=v_reset, t_ref_steps=t_ref_steps)
        if s.item():
            times.append((k + 1) * dt)
            assert v.item() == v_reset
    isi = torch.diff(torch.tensor(times))
    analytic = t_ref_steps * dt + tau * math.log((ri - (v_reset - v_rest)) / (ri - (v_th - v_rest)))
    assert len(times) > 5
    assert ((isi - analytic).abs() <= dt + 1e-9).all(), (isi[:3], analytic)


def test_lif_refractory_holds_the_membrane():
    v, refr = torch.zeros(1), None
    trace = []
    for _ in range(6):
        s, v, refr = lif_step(v, torch.tensor([50.0]), refr, tau=1.0, dt=1.0, t_ref_steps=2)
        trace.append(s.item())
    assert trace == [1, 0, 0, 1, 0, 0]


def test_dsqn_lif_hand_computed_hard_vs_soft():
    """tau = 2, V_th = 1, V_r = 0, I = 1.5: U = V + (I - V) / 2."""
    i = torch.tensor([1.5], dtype=torch.float64)
    hard, soft = [], []
    vh = vs = torch.zeros(1, dtype=torch.float64)
    for _ in range(4):
        sh, vh = lif_dsqn_step(vh, i)
        ss, vs = lif_dsqn_step(vs, i, reset="soft")
        hard.append((sh.item(), vh.item()))
        soft.append((ss.item(), vs.item()))
    assert hard == [(0, 0.75), (1, 0.0), (0, 0.75), (1, 0.0)]
    assert soft == [(0, 0.75), (1, 0.125), (0, 0.8125), (1, 0.15625)]


def test_dsqn_lif_relaxes_to_v_r_and_hard_resets_to_it():
    s, v = lif_dsqn_step(torch.zeros(1), torch.zeros(1), tau=4.0, v_reset=-0.4)
    assert s.item() == 0 and v.item() == pytest.approx(-0.1)
    s, v = lif_dsqn_step(torch.zeros(1), torch.tensor([9.0]), tau=4.0, v_reset=-0.4)
    assert s.item() == 1 and v.item() == pytest.approx(-0.4)


@pytest.mark.parametrize("make", [lambda: IFNeuron(0.7, v_init=0.35),
                                  lambda: LIFNeuron(1.0, dt=0.5, r=2.0, t_ref_steps=1),
                                  lambda: DSQNLIFNeuron(2.0, reset="soft")])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_module_multi_step_equals_repeated_forward(make, dtype):
    x = torch.rand(12, 4, 5, generator=torch.Generator().manual_seed(1), dtype=dtype) * 1.5
    a, b = make(), make()
    seq = a.multi_step(x)
    one = torch.stack([b(xt) for xt in x])
    assert seq.shape == x.shape and seq.dtype == dtype and seq.sum() > 0
    assert torch.equal(seq, one) and torch.equal(a.v, b.v)


def test_if_module_matches_functional_and_starts_at_v_init():
    x = torch.full((5, 2), 0.3, dtype=torch.float64)
    n = IFNeuron(1.0, v_init=0.5)
    out = n.multi_step(x)
    v, ref = torch.full((2,), 0.5, dtype=torch.float64), []
    for xt in x:
        s, v = if_step(v, xt, 1.0)
        ref.append(s)
    assert torch.equal(out, torch.stack(ref)) and torch.equal(n.v, v)
    assert out[:, 0].tolist() == [0, 1, 0, 0, 1]  # 0.8, 1.1 -> 0.1, 0.4, 0.7, 1.0


def test_module_gradient_through_time():
    n = DSQNLIFNeuron(2.0, spike_fn=straight_through)
    x = torch.rand(8, 3, requires_grad=True)
    n.multi_step(x * 2).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_state_shape_change_needs_reset():
    n = LIFNeuron()
    n(torch.ones(2, 3))
    with pytest.raises(SpikeverseError):
        n(torch.ones(4, 3))
    n.reset()
    assert n(torch.ones(4, 3)).shape == (4, 3)


def test_per_neuron_threshold_is_a_buffer():
    n = IFNeuron(torch.tensor([1.0, 2.0]))
    assert "v_th" in dict(n.named_buffers())
    assert n(torch.full((3, 2), 1.5)).tolist() == [[1.0, 0.0]] * 3


def test_reset_net_resets_one_network_only():
    net1 = nn.Sequential(nn.Linear(3, 4), IFNeuron(), nn.Sequential(nn.Linear(4, 2), LIFNeuron(t_ref_steps=2)))
    net2 = nn.Sequential(nn.Linear(3, 4), DSQNLIFNeuron())
    x = torch.ones(1, 3)
    net1(x), net2(x)
    assert net1[1].v is not None and net1[2][1].v is not None and net2[1].v is not None
    reset_net(net1)
    assert net1[1].v is None and net1[2][1].v is None and net1[2][1].refractory is None
    assert net2[1].v is not None


def test_dc_response_lif_and_validation():
    out = dc_response("lif", dc=1.5, duration=50.0, dt=0.1)
    isi = 10.0 * math.log(1.5 / 0.5)
    assert out["spikes"]["neuron"][0] == pytest.approx(isi, abs=0.1)
    assert len(out["v_m"]["t"]) == len(out["v_m"]["neuron"]) == 500
    with pytest.raises(SpikeverseError):
        dc_response("lif", duration=-1.0)
    with pytest.raises(SpikeverseError):
        dc_response("lif", dt=0.0)
    with pytest.raises(SpikeverseError):
        dc_response("izhikevich")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    x = torch.rand(20, 8, 16, dtype=torch.float64)
    cpu = LIFNeuron(4.0, t_ref_steps=2).multi_step(x)
    gpu = LIFNeuron(4.0, t_ref_steps=2).to("cuda").multi_step(x.cuda())
    assert torch.equal(cpu, gpu.cpu())

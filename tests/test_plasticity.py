"""Plasticity (R-SNN-STDP): the pair window, online pair STDP vs the all-pairs sum, NEST-style
trace STDP, reward-modulated STDP with eligibility, batching, and the ``stdp`` command."""

import json
import math

import pytest
import torch

from spikeverse.cli.app import main
from spikeverse.errors import SpikeverseError
from spikeverse.snn.plasticity import (RSTDP, PairSTDP, TraceSTDP, stdp_window, stdp_window_curve,
                                       trace_stdp_experiment)

F64 = torch.float64


def spike_train(steps: int, n: int, p: float, seed: int, batch: tuple = ()) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand((steps, *batch, n), generator=gen, dtype=F64) < p).to(F64)


def one_hot_train(steps: int, times: list[int]) -> torch.Tensor:
    """[steps, 1] spikes of one neuron at the given steps."""
    s = torch.zeros(steps, 1, dtype=F64)
    s[times] = 1
    return s


def simulate(rule, w, pre, post, rewards=None):
    """Run ``rule`` over [T, ...] spike trains; returns the weights after every step [T, ...]."""
    state = rule.init_state(w)
    out = []
    for n in range(len(pre)):
        args = (pre[n], post[n]) if rewards is None else (pre[n], post[n], rewards[n])
        w, state = rule.step(w, *args, state)
        out.append(w)
    return torch.stack(out)


def test_window_matches_formula_and_causal_potentiates():
    a_p, a_m, tau_p, tau_m = 0.7, 0.4, 15.0, 30.0
    dt = torch.tensor([-80.0, -30.0, -1.0, 0.0, 1.0, 15.0, 60.0], dtype=F64)
    expected = [-a_m * math.exp(-80 / tau_m), -a_m * math.exp(-1.0), -a_m * math.exp(-1 / tau_m), 0.0,
                a_p * math.exp(-1 / tau_p), a_p * math.exp(-1.0), a_p * math.exp(-60 / tau_p)]
    torch.testing.assert_close(stdp_window(dt, a_p, a_m, tau_p, tau_m), torch.tensor(expected, dtype=F64))
    dts, dw = stdp_window_curve(PairSTDP(), span=100.0)
    assert dts[0] == -100 and dts[-1] == 100 and len(dts) == 201
    assert (dw[dts > 0] > 0).all() and (dw[dts < 0] < 0).all() and dw[dts == 0].item() == 0


@pytest.mark.parametrize("t_pre, t_post", [(3, 10), (10, 3), (0, 1), (5, 45)])
def test_pair_stdp_one_pair_by_hand(t_pre, t_post):
    """One pre and one post spike, dt = 0.5 ms: pre before post potentiates by exactly
    A+ exp(-(t_post - t_pre)/tau+), post before pre depresses by A- exp(-(t_pre - t_post)/tau-);
    nothing changes before the second spike."""
    a_p, a_m, tau_p, tau_m, dt = 0.01, 0.013, 12.0, 25.0, 0.5
    rule = PairSTDP(a_plus=a_p, a_minus=a_m, tau_plus=tau_p, tau_minus=tau_m, dt=dt)
    w = simulate(rule, torch.full((1, 1), 0.5, dtype=F64), one_hot_train(60, [t_pre]), one_hot_train(60, [t_post]))
    gap = abs(t_post - t_pre) * dt
    dw = a_p * math.exp(-gap / tau_p) if t_post > t_pre else -a_m * math.exp(-gap / tau_m)
    assert w[max(t_pre, t_post) - 1].item() == 0.5
    assert w[-1].item() - 0.5 == pytest.approx(dw, rel=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_pair_stdp_online_equals_sum_over_all_pairs(dtype):
    rule = PairSTDP(a_plus=0.01, a_minus=0.013, tau_plus=12.0, tau_minus=25.0, dt=0.5,
                    wmin=-math.inf, wmax=math.inf)
    steps = 300
    pre, post = spike_train(steps, 5, 0.08, seed=1), spike_train(steps, 4, 0.08, seed=2)
    w0 = torch.zeros(4, 5, dtype=F64)
    w = simulate(rule, w0.to(dtype), pre.to(dtype), post.to(dtype))[-1]
    t = torch.arange(steps, dtype=F64) * rule.dt
    window = rule.window(t[:, None] - t[None, :])  # [t_post, t_pre], 0 on coincident spikes
    expected = post.T @ window @ pre  # sum_{post spikes of i} sum_{pre spikes of j} W(t_post - t_pre)
    assert (pre.T @ post).sum() > 0 and expected.abs().min() > 0  # coincidences and pairs occur
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(w.to(F64), expected, rtol=tol, atol=tol)


@pytest.mark.parametrize("rule,lo,hi", [
    (TraceSTDP(wmax=10.0, wmin=2.0, lam=0.5, alpha=1.3, mu_plus=0.5, mu_minus=2.0), 2.0, 10.0),
    (PairSTDP(a_plus=0.5, a_minus=0.5, wmin=2.0, wmax=10.0), 2.0, 10.0),
    (RSTDP(PairSTDP(a_plus=0.5, a_minus=0.5, wmin=2.0, wmax=10.0), eta=5.0), 2.0, 10.0)])
def test_weights_stay_in_bounds(rule, lo, hi):
    pre, post = spike_train(500, 6, 0.3, seed=3), spike_train(500, 3, 0.3, seed=4)
    rewards = torch.randn(500, generator=torch.Generator().manual_seed(5), dtype=F64)
    w = simulate(rule, torch.full((3, 6), 6.0, dtype=F64), pre, post, rewards if isinstance(rule, RSTDP) else None)
    assert w.min() >= lo and w.max() <= hi
    assert w.min() == lo and w.max() == hi  # the bounds are reached, so clipping is exercised


def test_trace_stdp_experiment_seed_defaults():
    run = trace_stdp_experiment()
    assert run.rule == TraceSTDP() and run.t[-1] == 1000 and len(run.t) == 1001
    assert (run.w >= 0).all() and (run.w <= 1000).all() and run.w[0] == 500 and run.w[-1] != 500
    assert run.pre_spikes.sum() > 5 and run.post_spikes.sum() > 5
    spikes = run.pre_spikes.nonzero().flatten()
    assert run.k_pre[spikes[0]] == 1 and run.k_pre[spikes[0] - 1] == 0  # each spike adds 1


@pytest.mark.parametrize("rule", [None, TraceSTDP(tau_tr_post=35.0, lam=0.02)])
def test_trace_stdp_experiment_follows_its_spike_trains(rule):
    """The recorded traces are sum_{t_s <= t} exp(-(t - t_s)/tau) over the run's own spikes, and
    the weight moves only at spikes: up at a post spike (after a pre spike), down at a pre spike
    (after a post spike), by the hand formulas of seed 002 at the first of each."""
    run = trace_stdp_experiment(rule)
    rule, t = run.rule, run.t
    for spikes, trace, tau in ((run.pre_spikes, run.k_pre, rule.tau_tr_pre), (run.post_spikes, run.k_post,
                                                                               rule.tau_tr_post)):
        lag = t[:, None] - t[spikes.bool()][None, :]
        expected = torch.where(lag >= 0, torch.exp(-lag.clamp(min=0) / tau), torch.zeros_like(lag)).sum(1)
        torch.testing.assert_close(trace, expected, rtol=1e-9, atol=1e-12)
    dw = run.w.diff()
    pre, post = run.pre_spikes[1:].bool(), run.post_spikes[1:].bool()
    had_pre, had_post = run.k_pre[:-1] > 0, run.k_post[:-1] > 0  # a trace to pair with (before the step)
    assert torch.all(dw[~pre & ~post] == 0)
    up, down = post & ~pre & had_pre, pre & ~post & had_post
    assert up.sum() > 5 and down.sum() > 5
    assert torch.all(dw[up] > 0) and torch.all(dw[down] < 0)
    n = int(up.nonzero()[0]) + 1  # the first facilitation: w += Wmax lambda (1 - w/Wmax)^mu+ K_pre(t-)
    k_pre = run.k_pre[n - 1] * math.exp(-rule.dt / rule.tau_tr_pre)
    w = run.w[n - 1].item()
    assert rule.mu_plus == 1 and rule.wmax == 1000
    assert run.w[n].item() == pytest.approx(w + 1000 * rule.lam * (1 - w / 1000) * k_pre.item(), rel=1e-12)


@pytest.mark.parametrize("t1,t2", [(3, 10), (0, 1), (5, 45)])
def test_trace_stdp_pre_then_post_facilitates_by_hand(t1, t2):
    rule = TraceSTDP()  # seed 002: Wmax 1000, lambda 0.01, mu+ = 1, tau_tr_pre 20 ms, dt 1 ms
    w0 = 300.0
    w = simulate(rule, torch.full((1, 1), w0, dtype=F64), one_hot_train(60, [t1]), one_hot_train(60, [t2]))
    k_pre = math.exp(-(t2 - t1) * rule.dt / rule.tau_tr_pre)
    expected = 1000 * (w0 / 1000 + 0.01 * (1 - w0 / 1000) * k_pre)
    assert w[t2 - 1].item() == w0  # nothing changes before the post spike
    assert w[-1].item() == pytest.approx(expected, rel=1e-12)


def test_trace_stdp_post_then_pre_depresses_and_coincident_spikes_do_not_pair():
    rule = TraceSTDP()
    w0 = 700.0
    w = simulate(rule, torch.full((1, 1), w0, dtype=F64), one_hot_train(30, [12]), one_hot_train(30, [4]))
    k_post = math.exp(-8 / 20)
    assert w[-1].item() == pytest.approx(1000 * (w0 / 1000 - 1.0 * 0.01 * (w0 / 1000) * k_post), rel=1e-12)
    assert w[-1].item() < w0
    same_step = simulate(rule, torch.full((1, 1), w0, dtype=F64), one_hot_train(30, [9]), one_hot_train(30, [9]))
    assert same_step[-1].item() == w0


def test_trace_stdp_mu_one_is_multiplicative_mu_zero_additive():
    """mu = 1: potentiation proportional to Wmax - w, depression to w; mu = 0: independent of w."""
    w0 = torch.tensor([[100.0], [500.0], [900.0]], dtype=F64)  # 3 synapses from one pre neuron
    causal = (one_hot_train(20, [2]), one_hot_train(20, [7]).expand(20, 3))
    acausal = (one_hot_train(20, [7]), one_hot_train(20, [2]).expand(20, 3))
    k = math.exp(-5 / 20)
    for mu, pot, dep in ((1.0, 0.01 * (1000 - w0) * k, 0.01 * w0 * k), (0.0, 10 * k + 0 * w0, 10 * k + 0 * w0)):
        rule = TraceSTDP(mu_plus=mu, mu_minus=mu)
        torch.testing.assert_close(simulate(rule, w0, *causal)[-1] - w0, pot)
        torch.testing.assert_close(w0 - simulate(rule, w0, *acausal)[-1], dep)


def test_trace_stdp_facilitations_between_pre_spikes_compound_in_order():
    """Two post spikes after one pre spike (as NEST at the next pre spike): the second
    facilitation starts from the first's result, each with the pre trace at its own time."""
    rule = TraceSTDP(lam=0.2)
    w = simulate(rule, torch.full((1, 1), 400.0, dtype=F64), one_hot_train(20, [1]), one_hot_train(20, [3, 8]))
    expected = 400.0
    for t_post in (3, 8):
        expected += 1000 * 0.2 * (1 - expected / 1000) * math.exp(-(t_post - 1) / 20)
    assert w[-1].item() == pytest.approx(expected, rel=1e-12)


def test_trace_stdp_clips_after_facilitation_before_depression():
    """Pre and post spike together after an earlier pair: facilitation overshoots Wmax and is
    clipped (NEST's facilitate_) before the depression of the same step starts from Wmax."""
    rule = TraceSTDP(lam=2.0, alpha=0.1)
    both = one_hot_train(2, [0, 1])
    w = simulate(rule, torch.full((1, 1), 900.0, dtype=F64), both, both)
    k = math.exp(-1 / 20)
    assert 900 + 1000 * 2.0 * 0.1 * k > 1000
    assert w[-1].item() == pytest.approx(1000 * (1 - 0.1 * 2.0 * k), rel=1e-12)


def test_rstdp_without_reward_changes_nothing():
    rule = RSTDP(PairSTDP(a_plus=0.1, a_minus=0.1), eta=1.0)
    pre, post = spike_train(100, 4, 0.2, seed=5), spike_train(100, 3, 0.2, seed=6)
    w0 = torch.full((3, 4), 0.5, dtype=F64)
    state = rule.init_state(w0)
    w = w0
    for n in range(100):
        w, state = rule.step(w, pre[n], post[n], 0.0, state)
    assert torch.equal(w, w0) and state.eligibility.abs().sum() > 0


@pytest.mark.parametrize("reward", [2.0, -2.0])
@pytest.mark.parametrize("k", [0, 1, 25])
def test_rstdp_delayed_reward_credits_earlier_causal_pair(reward, k):
    stdp = PairSTDP(a_plus=0.02, a_minus=0.03, tau_plus=20.0, tau_minus=20.0, dt=1.0)
    rule = RSTDP(stdp, eta=0.5, tau_e=40.0)
    steps = 3 + k
    pre, post = one_hot_train(steps, [0]), one_hot_train(steps, [2])  # pre 2 ms before post
    rewards = torch.zeros(steps, dtype=F64)
    rewards[2 + k] = reward
    w = simulate(rule, torch.full((1, 1), 0.5, dtype=F64), pre, post, rewards)
    e = 0.02 * math.exp(-2 / 20) * math.exp(-k / 40)
    assert w[-1].item() == pytest.approx(0.5 + 0.5 * reward * e, rel=1e-12)
    assert (w[-1].item() > 0.5) == (reward > 0)


@pytest.mark.parametrize("make", [lambda: PairSTDP(), lambda: TraceSTDP(wmax=1.0, lam=0.3), lambda: RSTDP()])
def test_batched_equals_loop(make):
    rule = make()
    B, steps = 3, 80
    pre, post = spike_train(steps, 5, 0.15, seed=7, batch=(B,)), spike_train(steps, 4, 0.15, seed=8, batch=(B,))
    rewards = torch.randn(steps, B, 1, 1, generator=torch.Generator().manual_seed(9), dtype=F64)
    w0 = torch.rand(B, 4, 5, generator=torch.Generator().manual_seed(10), dtype=F64)
    rw = rewards if isinstance(rule, RSTDP) else None
    batched = simulate(rule, w0, pre, post, rw)[-1]
    looped = torch.stack([simulate(rule, w0[b], pre[:, b], post[:, b], None if rw is None else rw[:, b, 0])[-1]
                          for b in range(B)])
    assert not torch.equal(batched, w0)
    torch.testing.assert_close(batched, looped, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("make", [lambda: PairSTDP(tau_plus=0), lambda: PairSTDP(wmin=1.0, wmax=0.0),
                                  lambda: TraceSTDP(tau_tr_post=-1.0), lambda: TraceSTDP(wmin=-1.0),
                                  lambda: RSTDP(tau_e=0.0), lambda: trace_stdp_experiment(w0=2000.0),
                                  lambda: trace_stdp_experiment(rate_pre=-5.0)])
def test_invalid_parameters_are_user_errors(make):
    with pytest.raises(SpikeverseError):
        make()


def test_cli_pair_json(capsys):
    assert main(["stdp", "--rule", "pair", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    dts, dw = out["dt_ms"], out["dw"]
    assert len(dts) == 201 and dts[0] == -100 and dts[-1] == 100
    p = out["params"]
    assert dw[dts.index(10)] == pytest.approx(p["a_plus"] * math.exp(-10 / p["tau_plus"]))
    assert dw[dts.index(-10)] == pytest.approx(-p["a_minus"] * math.exp(-10 / p["tau_minus"]))
    assert dw[dts.index(0)] == 0


def test_cli_trace_plot_and_errors(tmp_path, capsys):
    png = tmp_path / "x.png"
    assert main(["stdp", "--rule", "trace", "--plot", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "trace STDP" in capsys.readouterr().out
    assert main(["stdp", "--rule", "trace", "--json", "--duration", "50"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["params"]["wmax"] == 1000 and out["w"][0] == 500 and len(out["k_pre"]) == 51
    for bad in (["--tau-plus", "0"], ["--rule", "trace", "--wmin", "10", "--wmax", "5"],
                ["--rule", "pair", "--wmax", "3"]):
        assert main(["stdp", *bad]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1

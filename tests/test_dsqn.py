"""Directly trained spiking Q-networks (DSQN, seed 003): the LIF window's BPTT, the network, the
agent switch and its command line."""

import json

import pytest
import torch
from torch import nn

from spikeverse.cli.app import main
from spikeverse.rl.config import DQNConfig
from spikeverse.rl.dqn import network_spec
from spikeverse.rl.networks import QNetwork
from spikeverse.snn.neurons import DSQNLIFNeuron
from spikeverse.snn.surrogates import SURROGATES, surrogate


@pytest.mark.parametrize("reset,detach", [("hard", False), ("hard", True), ("soft", False), ("soft", True)])
def test_fused_window_has_the_step_by_step_gradients(reset, detach):
    torch.manual_seed(0)
    x = (torch.randn(12, 5, 7) * 1.5).requires_grad_()
    w = torch.randn(12, 5, 7)
    grads, outs = [], []
    for fused in (True, False):
        n = DSQNLIFNeuron(2.0, v_th=1.0, reset=reset, spike_fn=surrogate("atan", 2.0), detach_reset=detach)
        x.grad = None
        if fused:
            s = n.multi_step(x)
        else:
            s = torch.stack([n(xt) for xt in x])  # one step at a time through autograd
        (s * w).sum().backward()
        grads.append(x.grad.clone())
        outs.append(s.detach())
    assert torch.equal(outs[0], outs[1])
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-5, atol=1e-6)
    assert grads[0].abs().sum() > 0


def _spec(arch="mlp", obs=(4,), name="atan", T=8):
    cfg = DQNConfig.for_env("CartPole-v1", spiking=True, snn_timesteps=T, surrogate=name, arch=arch)
    return network_spec(cfg, obs, 2)


@pytest.mark.parametrize("name", sorted(SURROGATES))
def test_gradient_reaches_the_first_layer_with_every_surrogate(name):
    torch.manual_seed(1)
    net = QNetwork(_spec(name=name))
    first = net.torso[0]
    net(torch.randn(64, 4) * 2).sum().backward()
    assert first.weight.grad is not None and first.weight.grad.abs().sum() > 0


def test_minatar_dsqn_learns_through_the_conv_layer():
    torch.manual_seed(2)
    net = QNetwork(_spec(arch="minatar", obs=(4, 10, 10)))
    net(torch.rand(8, 4, 10, 10).round()).sum().backward()
    assert net.torso[0].weight.grad.abs().sum() > 0


def test_head_reads_the_mean_spikes_of_the_last_hidden_layer():
    torch.manual_seed(3)
    net = QNetwork(_spec(T=10))
    x = torch.randn(6, 4) * 3
    with torch.no_grad():
        h, spikes = x, []
        lin1, n1, lin2, n2 = net.torso
        c1 = lin1(h)
        s1 = torch.stack([n1(c1) for _ in range(10)])
        s2 = torch.stack([n2(z) for z in lin2(s1)])
        expected = net.advantage(s2.mean(0))
        n1.reset(), n2.reset()
        torch.testing.assert_close(net(x), expected)
    assert set(s2.unique().tolist()) <= {0.0, 1.0}
    assert all(m.v is None for m in net.torso if isinstance(m, DSQNLIFNeuron))  # no state left behind


def test_bad_spiking_options_are_one_line_errors(tmp_path, capsys):
    for args, word in ((["--timesteps", "0"], "timesteps"), (["--surrogate", "nope"], "surrogate"),
                       (["--reset", "sideways"], "reset"), (["--tau", "-1"], "tau")):
        rc = main(["train", "--agent", "dsqn", "--steps", "10", "--out", str(tmp_path / "x"), *args])
        assert rc == 2 and word in capsys.readouterr().err.lower()
    rc = main(["train", "--steps", "10", "--timesteps", "8", "--out", str(tmp_path / "y")])
    assert rc == 2 and "dsqn only" in capsys.readouterr().err


def test_train_evaluate_and_resume_a_dsqn(tmp_path, capsys):
    run = tmp_path / "dsqn"
    args = ["train", "--agent", "dsqn", "--steps", "600", "--timesteps", "4", "--out", str(run), "--json",
            "--no-progress", "--device", "cpu", "--eval-every", "0"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["agent"] == "dsqn" and summary["steps"] == 600
    assert main(args[:4] + ["1200"] + args[5:]) == 0
    assert json.loads(capsys.readouterr().out)["resumed_from"] == 600
    assert main(["evaluate", str(run), "--episodes", "2", "--json", "--device", "cpu"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["episodes"] == 2 and res["mean"] > 0
    from spikeverse.agents import load_policy

    policy, _ = load_policy(run)
    assert isinstance(policy.torso[1], DSQNLIFNeuron) and policy.spec.spiking["timesteps"] == 4


@pytest.mark.slow
def test_default_dsqn_balances_cartpole(tmp_path):
    from spikeverse.agents import load_policy
    from spikeverse.rl.evaluation import evaluate
    from spikeverse.rl.train import train_dqn

    cfg = DQNConfig.for_env("CartPole-v1", spiking=True, device="cpu")
    train_dqn(cfg, tmp_path / "d", progress=False)
    policy, _ = load_policy(tmp_path / "d")
    assert evaluate(policy, "CartPole-v1", episodes=10).mean >= 475


@pytest.mark.parametrize("reset", ["hard", "soft"])
def test_no_grad_window_equals_the_step_by_step_neuron(reset):
    torch.manual_seed(4)
    x = torch.randn(20, 3, 9) * 2
    a = DSQNLIFNeuron(2.0, v_th=0.7, v_reset=-0.1, reset=reset)
    b = DSQNLIFNeuron(2.0, v_th=0.7, v_reset=-0.1, reset=reset)
    with torch.no_grad():
        fast = a.multi_step(x)
        slow = torch.stack([b(xt) for xt in x])
    assert torch.equal(fast, slow) and torch.equal(a.v, b.v)

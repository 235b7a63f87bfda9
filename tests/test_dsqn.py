"""Directly trained spiking Q-networks (DSQN, seed 003): the LIF window's BPTT, the network, the
agent switch and its command line."""

import json

import pytest
import yaml
import torch
from torch import nn

from spikeverse.cli.app import main
from spikeverse.rl.config import DQNConfig
from spikeverse.rl.dqn import network_spec
from spikeverse.rl.networks import QNetwork
from spikeverse.snn.config import SpikingConfig
from spikeverse.snn.cost import CostMonitor
from spikeverse.snn.neurons import DSQNLIFNeuron
from spikeverse.snn.surrogates import SURROGATES, surrogate


@pytest.mark.parametrize("reset,detach,tau,v_reset", [("hard", False, 2.0, 0.0), ("hard", True, 2.0, 0.0),
                                                      ("soft", False, 2.0, 0.0), ("soft", True, 2.0, 0.0),
                                                      ("hard", False, 3.0, -0.2), ("soft", False, 5.0, 0.0)])
def test_fused_window_has_the_step_by_step_gradients(reset, detach, tau, v_reset):
    torch.manual_seed(0)
    x = (torch.randn(12, 5, 7) * 1.5).requires_grad_()
    w = torch.randn(12, 5, 7)
    grads, outs = [], []
    for fused in (True, False):
        n = DSQNLIFNeuron(tau, v_th=1.0, v_reset=v_reset, reset=reset, spike_fn=surrogate("atan", 2.0), detach_reset=detach)
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


def _spec(arch="mlp", obs=(4,), name="atan", T=8, hidden=(32, 16), actions=2, **over):
    cfg = DQNConfig.for_env("CartPole-v1", spiking=SpikingConfig(timesteps=T, surrogate=name), arch=arch,
                            hidden=hidden, **over)
    return network_spec(cfg, obs, actions)


@pytest.mark.parametrize("name", sorted(SURROGATES))
def test_gradient_reaches_the_first_layer_with_every_surrogate(name):
    torch.manual_seed(1)
    net = QNetwork(_spec(name=name))
    first = net.torso[0]
    net(torch.randn(64, 4) * 2).sum().backward()
    assert first.weight.grad is not None and first.weight.grad.abs().sum() > 0


def test_minatar_dsqn_learns_through_the_conv_layer():
    torch.manual_seed(2)
    net = QNetwork(_spec(arch="minatar", obs=(4, 10, 10), hidden=(32,)))
    net(torch.rand(8, 4, 10, 10).round()).sum().backward()
    assert net.torso[0].weight.grad.abs().sum() > 0


def test_nature_cnn_dsqn_learns_through_every_conv_layer():
    torch.manual_seed(6)
    spec = _spec(arch="nature", obs=(4, 84, 84), hidden=(64,), T=4)
    spec.obs_scale = 1 / 255
    net = QNetwork(spec)
    frames = torch.randint(0, 256, (2, 4, 84, 84), dtype=torch.uint8)
    net.calibrate(frames, 0.1)  # a fresh Nature CNN DSQN is silent; make every layer fire first
    net(frames).sum().backward()
    convs = [m for m in net.torso if isinstance(m, nn.Conv2d)]
    assert len(convs) == 3 and all(c.weight.grad.abs().sum() > 0 for c in convs)


def test_head_reads_the_mean_spikes_of_the_last_hidden_layer():
    torch.manual_seed(3)
    net = QNetwork(_spec(T=10))
    x = torch.randn(6, 4) * 3
    with torch.no_grad():
        lin1, n1, lin2, n2 = net.torso
        c1 = lin1(x)
        s1 = torch.stack([n1(c1) for _ in range(10)])
        s2 = torch.stack([n2(z) for z in lin2(s1)])
        expected = net.advantage(s2.mean(0))
        n1.reset(), n2.reset()
        torch.testing.assert_close(net(x), expected)
    assert set(s2.unique().tolist()) <= {0.0, 1.0}
    assert all(m.v is None for m in net.torso if isinstance(m, DSQNLIFNeuron))  # no state left behind


def test_bad_spiking_options_are_one_line_errors(tmp_path, capsys):
    for args, word in ((["--timesteps", "0"], "timesteps"), (["--surrogate", "nope"], "surrogate"),
                       (["--reset", "sideways"], "reset"), (["--tau", "-1"], "tau"),
                       (["--init-rate", "1.5"], "init-rate")):
        rc = main(["train", "--agent", "dsqn", "--steps", "10", "--out", str(tmp_path / "x"), *args])
        assert rc == 2 and word in capsys.readouterr().err.lower()
    rc = main(["train", "--steps", "10", "--timesteps", "8", "--out", str(tmp_path / "y")])
    assert rc == 2 and "dsqn only" in capsys.readouterr().err


def test_train_evaluate_and_resume_a_dsqn(tmp_path, capsys):
    run = tmp_path / "dsqn"
    args = ["train", "--agent", "dsqn", "--steps", "1200", "--timesteps", "4", "--out", str(run), "--json",
            "--no-progress", "--device", "cpu", "--eval-every", "0"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["agent"] == "dsqn" and summary["steps"] == 1200
    assert main(args[:4] + ["1500"] + args[5:]) == 0
    assert json.loads(capsys.readouterr().out)["resumed_from"] == 1200
    assert main(["evaluate", str(run), "--episodes", "2", "--json", "--device", "cpu"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["episodes"] == 2 and res["mean"] > 0 and res["agent"] == "dsqn" and res["timesteps"] == 4
    # the cost fields of a converted SNN's evaluation (tests/test_convert.py), here per DSQN decision
    for key in ("synops_per_decision", "macs_per_decision", "energy_uJ_per_decision", "ann_macs_per_decision",
                "ann_energy_uJ_per_decision", "firing_rate", "layers", "energy_convention"):
        assert key in res, key
    assert [l["name"] for l in res["layers"]] == ["fc1", "output"]  # CartPole DSQN: one hidden layer
    assert main(["evaluate", str(run), "--episodes", "1", "--json", "--device", "cpu", "--timesteps", "9"]) == 0
    assert json.loads(capsys.readouterr().out)["timesteps"] == 9
    assert main(["evaluate", str(run), "--episodes", "1", "--device", "cpu", "--readout", "count"]) == 2
    from spikeverse.agents import load_policy

    policy, _ = load_policy(run)
    assert isinstance(policy.torso[1], DSQNLIFNeuron) and policy.spec.spiking.timesteps == 4
    from spikeverse.io.checkpoint import read_checkpoint_meta

    scales = read_checkpoint_meta(run)["snn_init_scales"]  # the data-dependent initialisation ran once
    assert len(scales) == 1 and scales[0] > 0


def test_dsqn_cost_per_decision_counts_spikes_times_fan_out():
    torch.manual_seed(5)
    net = QNetwork(_spec(T=10, hidden=(16, 8), actions=3, dueling=True))
    lin1, n1, lin2, n2 = net.torso
    with torch.no_grad():
        lin1.weight.mul_(4)  # a network that fires
        lin2.weight.mul_(4)
        x = torch.randn(7, 4) * 2
        s1 = torch.stack([n1(lin1(x)) for _ in range(10)])
        s2 = torch.stack([n2(z) for z in lin2(s1)])
        n1.reset(), n2.reset()
        spikes1, spikes2 = s1.sum((0, 2)).mean().item(), s2.sum((0, 2)).mean().item()
        assert net.diagnostics() == {}  # nothing measured before the first call
        monitor = CostMonitor(net)
        monitor.q_values(x[:3]), monitor.q_values(x[3:])
    d = monitor.diagnostics()
    assert spikes1 > 0 and spikes2 > 0 and d["decisions"] == 7 and d["timesteps"] == 10
    assert [l["name"] for l in d["layers"]] == ["fc1", "fc2", "output"]
    rates = [l["firing_rate"] for l in d["layers"]]
    assert rates[:2] == pytest.approx([spikes1 / (16 * 10), spikes2 / (8 * 10)]) and rates[2] is None
    # fc1 takes the analog input once per window (MACs); every fc1 spike reaches 8 fc2 neurons,
    # every fc2 spike the 3 advantages and the value of the dueling head
    assert [l["synops_per_decision"] for l in d["layers"]] == pytest.approx([0.0, spikes1 * 8, spikes2 * 4])
    assert [l["macs_per_decision"] for l in d["layers"]] == [4 * 16, 0, 0]
    assert d["ann_macs_per_decision"] == 4 * 16 + 16 * 8 + 8 * 4
    assert d["energy_uJ_per_decision"] == pytest.approx((0.9 * d["synops_per_decision"] + 4.6 * 64) * 1e-6)
    last = net.diagnostics()
    assert last["decisions"] == 4


def test_a_dqn_costs_its_macs():
    spec = network_spec(DQNConfig.for_env("CartPole-v1", hidden=(16, 8)), (4,), 2)
    net = QNetwork(spec)
    monitor = CostMonitor(net)
    with torch.no_grad():
        monitor.q_values(torch.randn(5, 4))
    d = monitor.diagnostics()
    assert d["macs_per_decision"] == d["ann_macs_per_decision"] == 4 * 16 + 16 * 8 + 8 * 2
    assert d["synops_per_decision"] == 0 and d["firing_rate"] is None and d["timesteps"] is None
    assert d["energy_uJ_per_decision"] == pytest.approx(4.6e-6 * d["macs_per_decision"])


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


def test_seed_000_variants_double_per_and_a_fully_connected_network_on_pixels(tmp_path, capsys):
    # surrogate-gradient double DQN with prioritized replay (switches of the one agent)
    run = tmp_path / "ddqn-per"
    assert main(["train", "--agent", "dsqn", "--double", "--per", "--steps", "400", "--timesteps", "4",
                 "--out", str(run), "--json", "--no-progress", "--device", "cpu", "--eval-every", "0"]) == 0
    capsys.readouterr()
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["agent"] == "dsqn" and cfg["double"] and cfg["per"] and cfg["spiking"]
    assert cfg["hidden"] == [256]  # the DSQN default on CartPole
    # a fully connected spiking DQN on MinAtar pixels, with a longer window
    run = tmp_path / "fc"
    assert main(["train", "--env", "MinAtar/Breakout", "--agent", "dsqn", "--arch", "mlp", "--hidden", "64,32",
                 "--timesteps", "32", "--steps", "300", "--out", str(run), "--json", "--no-progress",
                 "--device", "cpu", "--eval-every", "0"]) == 0
    capsys.readouterr()
    from spikeverse.agents import load_policy

    policy, _ = load_policy(run)
    assert isinstance(policy.torso[0], nn.Flatten) and policy.torso[1].in_features == 4 * 10 * 10
    assert policy.spec.spiking.timesteps == 32 and policy.torso[3].out_features == 32
    assert main(["train", "--hidden", "64,x", "--out", str(tmp_path / "bad")]) == 2
    assert "--hidden" in capsys.readouterr().err

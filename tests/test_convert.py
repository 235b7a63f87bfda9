"""ANN-to-SNN conversion (R-CONV-TAN, R-CONV-CR, R-ANA-ENERGY): source networks, percentile
normalization, the spiking Q-network and its readouts, synops/energy, save/load, CLI."""

import io
import json
import math
import zipfile

import numpy as np
import pytest
import torch
from torch import nn

from spikeverse.cli.app import main
from spikeverse.convert import (
    SpikingQNetwork, activation_stats, agreement, convert_tan, energy_uj, from_module, from_state_dict,
    load_ann, load_snn, load_state_dict_file, normalize, save_snn,
)
from spikeverse.convert.normalize import TopValues
from spikeverse.errors import SpikeverseError
from spikeverse.rl.evaluation import evaluate
from spikeverse.rl.networks import NetworkSpec, QNetwork
from spikeverse.snn.cost import CostMonitor


def _flat_mlp(sizes=(4, 64, 64, 4), seed=0):
    torch.manual_seed(seed)
    mods = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        mods.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            mods.append(nn.ReLU())
    return nn.Sequential(*mods), from_module(nn.Sequential(*mods), input_shape=(sizes[0],))


# ----------------------------------------------------------------------------- normalization


@pytest.mark.parametrize("p", [50.0, 99.0, 99.9, 100.0])
def test_streamed_percentile_is_numpys(p):
    g = torch.Generator().manual_seed(1)
    x = torch.relu(torch.randn(50_000, generator=g))
    top = TopValues(x.numel(), p)
    for chunk in x.split(7_000):
        top.add(chunk)
    assert top.percentile(p) == pytest.approx(float(np.percentile(x.double().numpy(), p)), rel=1e-6, abs=1e-9)


def _tiny():
    """x -> ReLU([x, 2x]) -> h0 + h1 + 0.5, i.e. Q = 3 relu(x) + 0.5."""
    l1, l2 = nn.Linear(1, 2), nn.Linear(2, 1)
    with torch.no_grad():
        l1.weight.copy_(torch.tensor([[1.0], [2.0]]))
        l1.bias.zero_()
        l2.weight.copy_(torch.tensor([[1.0, 1.0]]))
        l2.bias.fill_(0.5)
    return from_module(nn.Sequential(l1, nn.ReLU(), l2), input_shape=(1,))


def test_normalization_hand_computed():
    net = _tiny()
    obs = torch.tensor([[-1.0], [1.0], [2.0], [3.0], [4.0]])
    stats = activation_stats(net, obs, min_percentile=50)
    # hidden: 0,0,1,2,3,4,2,4,6,8 -> sorted 0 0 1 2 2 3 4 4 6 8; p50 at h = 4.5 -> (2 + 3) / 2
    # output max(Q, 0): 0, 3.5, 6.5, 9.5, 12.5; p50 at h = 2 -> 6.5
    assert stats.lambdas(100) == [8.0, 12.5]
    assert stats.lambdas(50) == [2.5, 6.5]
    assert (stats.input_min, stats.input_max) == (-1.0, 4.0)
    normed = normalize(net, stats.lambdas(100))
    l1, l2 = normed.layers[0], normed.layers[2]
    torch.testing.assert_close(l1.weight, torch.tensor([[1 / 8], [2 / 8]]))
    torch.testing.assert_close(l2.weight, torch.tensor([[8 / 12.5, 8 / 12.5]]))
    torch.testing.assert_close(l2.bias, torch.tensor([0.5 / 12.5]))
    # after normalization the largest activations are exactly 1, and Q is scaled by 1/lambda_L
    torch.testing.assert_close(normed(obs), net(obs) / 12.5)
    assert net.layers[0].weight[1, 0] == 2.0  # the source is untouched


def test_dead_layer_falls_back_to_one():
    net = _tiny()
    stats = activation_stats(net, torch.tensor([[-1.0], [-2.0]]), min_percentile=99)
    assert stats.lambdas(99.9) == [1.0, 0.5]  # hidden all zero (max 0 too) -> 1; Q = 0.5 everywhere


# ----------------------------------------------------------------------------- source networks


@pytest.mark.parametrize("arch,shape", [("mlp", (4,)), ("minatar", (4, 10, 10)), ("nature", (4, 84, 84))])
def test_dueling_fold_gives_the_same_q(arch, shape):
    torch.manual_seed(0)
    spec = NetworkSpec(arch=arch, obs_shape=shape, num_actions=5, hidden=(32, 32) if arch == "mlp" else (),
                       dueling=True, obs_scale=1 / 255 if arch == "nature" else 1.0)
    net = QNetwork(spec).eval()
    flat = from_module(net)
    obs = torch.randint(0, 256, (6, *shape)).to(torch.uint8) if arch == "nature" else torch.rand(6, *shape)
    torch.testing.assert_close(flat.q_values(obs), net.q_values(obs), rtol=1e-5, atol=1e-5)
    assert isinstance(flat.layers[-1], nn.Linear) and flat.layers[-1].out_features == 5


def test_unsupported_layers_are_named():
    spec = NetworkSpec(arch="mlp", obs_shape=(4,), num_actions=2, noisy=True)
    noisy = QNetwork(spec)  # training mode: noise on
    with pytest.raises(SpikeverseError, match="noisy layer 'advantage'"):
        from_module(noisy)
    flat = from_module(noisy.eval())  # eval mode: mean weights
    obs = torch.rand(5, 4)
    torch.testing.assert_close(flat.q_values(obs), noisy.q_values(obs))
    c51 = QNetwork(NetworkSpec(arch="mlp", obs_shape=(4,), num_actions=2, atoms=51)).eval()
    with pytest.raises(SpikeverseError, match="C51 head 'advantage'"):
        from_module(c51)
    pooled = nn.Sequential(nn.Conv2d(1, 4, 3), nn.MaxPool2d(2), nn.ReLU(), nn.Flatten(), nn.Linear(16, 2))
    with pytest.raises(SpikeverseError, match=r"'1' \(MaxPool2d\)"):
        from_module(pooled, input_shape=(1, 10, 10))


def test_sb3_style_state_dict(tmp_path):
    torch.manual_seed(0)
    q_net = nn.Sequential(nn.Linear(4, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2))
    target = nn.Sequential(nn.Linear(4, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2))
    sd = {**{f"q_net.q_net.{k}": v for k, v in q_net.state_dict().items()},
          **{f"q_net_target.q_net.{k}": v for k, v in target.state_dict().items()}}
    torch.save(sd, tmp_path / "policy.pth")
    with zipfile.ZipFile(tmp_path / "model.zip", "w") as z:  # an SB3 model zip holds policy.pth
        buf = io.BytesIO()
        torch.save(sd, buf)
        z.writestr("policy.pth", buf.getvalue())
        z.writestr("data", "{}")
    obs = torch.randn(10, 4)
    for f in ("policy.pth", "model.zip"):
        flat = from_state_dict(load_state_dict_file(tmp_path / f), (4,), 2)
        torch.testing.assert_close(flat.q_values(obs), q_net(obs))
    with pytest.raises(SpikeverseError, match="3 actions"):
        from_state_dict(sd, (4,), 3)
    duel = QNetwork(NetworkSpec(arch="mlp", obs_shape=(4,), num_actions=3, hidden=(16, 16), dueling=True)).eval()
    flat = from_state_dict(duel.state_dict(), (4,), 3)  # spikeverse's own names: value + advantage folded
    torch.testing.assert_close(flat.q_values(obs), duel.q_values(obs), rtol=1e-5, atol=1e-5)


def test_cleanrl_style_state_dicts(tmp_path):
    torch.manual_seed(0)
    atari = nn.Sequential(nn.Conv2d(4, 32, 8, 4), nn.ReLU(), nn.Conv2d(32, 64, 4, 2), nn.ReLU(),
                          nn.Conv2d(64, 64, 3, 1), nn.ReLU(), nn.Flatten(), nn.Linear(3136, 512), nn.ReLU(),
                          nn.Linear(512, 6))
    torch.save({f"network.{k}": v for k, v in atari.state_dict().items()}, tmp_path / "dqn_atari.cleanrl_model")
    flat = from_state_dict(load_state_dict_file(tmp_path / "dqn_atari.cleanrl_model"), (4, 84, 84), 6, 1 / 255)
    obs = torch.randint(0, 256, (3, 4, 84, 84), dtype=torch.uint8)
    torch.testing.assert_close(flat.q_values(obs), atari(obs.float() / 255.0), rtol=1e-4, atol=1e-5)
    assert [m.stride for m in flat.layers if isinstance(m, nn.Conv2d)] == [(4, 4), (2, 2), (1, 1)]

    minatar = nn.Sequential(nn.Conv2d(4, 16, 3, 1), nn.ReLU(), nn.Flatten(), nn.Linear(1024, 128), nn.ReLU(),
                            nn.Linear(128, 3))
    flat = from_state_dict({f"network.{k}": v for k, v in minatar.state_dict().items()}, (4, 10, 10), 3)
    x = torch.rand(3, 4, 10, 10)
    torch.testing.assert_close(flat.q_values(x), minatar(x))

    odd = nn.Sequential(nn.Conv2d(4, 8, 5, 2), nn.ReLU(), nn.Flatten(), nn.Linear(128, 3))
    with pytest.raises(SpikeverseError, match="strides.*Nature CNN"):
        from_state_dict({f"network.{k}": v for k, v in odd.state_dict().items()}, (4, 10, 10), 3)
    with pytest.raises(SpikeverseError, match="C51"):
        from_state_dict({"support": torch.zeros(51), **{f"network.{k}": v for k, v in minatar.state_dict().items()}},
                        (4, 10, 10), 3)


# ----------------------------------------------------------------------------- the spiking network


def test_agreement_with_the_ann_rises_with_T():
    _, flat = _flat_mlp()
    obs = torch.rand(1000, 4)
    stats = activation_stats(flat, obs, min_percentile=99.9)
    snn, _ = convert_tan(flat, percentile=99.9, timesteps=500, stats=stats)
    agree = {}
    for T in (5, 50, 500):
        snn.timesteps = T
        agree[T] = agreement(snn, flat, obs)
    assert agree[500] >= 0.95
    assert agree[5] < agree[50] <= agree[500]


def test_robust_readout_and_ties():
    _, flat = _flat_mlp()
    obs = torch.rand(64, 4)
    snn, _ = convert_tan(flat, percentile=100, timesteps=40, stats=activation_stats(flat, obs, 99))
    q = snn.q_values(obs)  # (the hand-computed values of every readout: the test below)
    snn.readout = "membrane"  # mean input current: equals robust (V_thr = 1) up to rounding
    torch.testing.assert_close(snn.q_values(obs), q)
    with pytest.raises(SpikeverseError):
        snn.readout = "softmax"

    # two output neurons with currents 0.25 and 0.3125 per step: 2 spikes each in T = 8, V(T) = 0 vs 0.5
    lin = nn.Linear(1, 2)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[0.25], [0.3125]]))
        lin.bias.zero_()
    tie = SpikingQNetwork(from_module(nn.Sequential(lin), input_shape=(1,)), timesteps=8, readout="count")
    x = torch.ones(1, 1)
    assert tie.q_values(x).tolist() == [[2.0, 2.0]]
    tie.readout = "robust"
    assert tie.q_values(x).tolist() == [[0.25, 0.3125]] and int(tie.q_values(x).argmax()) == 1


def _constructed_snn(readout="robust", v_init=0.0):
    """x = 1 -> 1 hidden IF neuron (current 3/16 per step) -> 2 output IF neurons (weights 1/2 and
    3/8, biases 1/16 and 0); V_thr = 1/2, T = 7. Dyadic currents, so every value below is exact:
    hidden V: 3/16, 3/8, 9/16 -> spike at t = 3 (V 1/16), 1/4, 7/16, 5/8 -> spike at t = 6 (V 1/8),
    5/16 at t = 7: 2 spikes, V(T) = 5/16. (With V(0) = 1/32 everywhere the spike times stay, and
    every V(T) is 1/32 higher: hidden 11/32, outputs 15/32 and 9/32.)
    output 0 (current 1/16, + 1/2 at t = 3, 6): 1/16, 1/8, 11/16 -> spike (3/16), 1/4, 5/16,
    7/8 -> spike (3/8), 7/16: N = 2, V(T) = 7/16.
    output 1 (3/8 at t = 3, 6 only): 0, 0, 3/8, 3/8, 3/8, 3/4 -> spike (1/4), 1/4: N = 1, V(T) = 1/4."""
    l1, l2 = nn.Linear(1, 1), nn.Linear(1, 2)
    with torch.no_grad():
        l1.weight.fill_(3 / 16)
        l1.bias.zero_()
        l2.weight.copy_(torch.tensor([[1 / 2], [3 / 8]]))
        l2.bias.copy_(torch.tensor([1 / 16, 0.0]))
    return SpikingQNetwork(from_module(nn.Sequential(l1, nn.ReLU(), l2), input_shape=(1,)), timesteps=7,
                           readout=readout, v_th=0.5, v_init=v_init)


@pytest.mark.parametrize("readout, v_init, expected", [
    ("count", 0.0, [2.0, 1.0]),
    ("rate", 0.0, [2 / 7, 1 / 7]),
    # eq. 17: N/T + V(T)/(T V_thr) = (2 + (7/16)/(1/2)) / 7 and (1 + (1/4)/(1/2)) / 7
    ("robust", 0.0, [(2 + 7 / 8) / 7, (1 + 1 / 2) / 7]),
    ("robust", 1 / 32, [(2 + 15 / 16) / 7, (1 + 9 / 16) / 7]),
    # (V(T) - V(0) + V_thr N) / T = the mean input current: (7/16 + 1) / 7 = (7 x 1/16 + 2 x 1/2) / 7,
    # whatever V(0) (here V_thr x robust, as V_thr = 1/2)
    ("membrane", 0.0, [(7 / 16 + 1) / 7, (1 / 4 + 1 / 2) / 7]),
    ("membrane", 1 / 32, [(7 / 16 + 1) / 7, (1 / 4 + 1 / 2) / 7]),
])
def test_readouts_of_a_constructed_snn_are_hand_computed(readout, v_init, expected):
    snn = _constructed_snn(readout, v_init)
    q = snn.q_values(torch.ones(2, 1))
    torch.testing.assert_close(q, torch.tensor([expected, expected]), rtol=1e-6, atol=0)
    rec = snn.last_record
    assert [c[0].tolist() for c in rec.spike_counts] == [[2.0], [2.0, 1.0]]
    v = [[5 / 16], [7 / 16, 1 / 4]] if v_init == 0 else [[11 / 32], [15 / 32, 9 / 32]]
    assert [f[0].tolist() for f in rec.final_v] == v


def test_energy_of_a_constructed_snn_is_hand_counted():
    """Per decision: the hidden neuron's 2 spikes each reach 2 output neurons = 4 accumulates; the
    analog input costs 1 MAC (1 input x 1 hidden neuron, once per window); output spikes reach
    nothing. Energy (0.9 x 4 + 4.6 x 1) pJ = 8.2 pJ; the ANN: 1 + 2 MACs = 13.8 pJ."""
    snn = _constructed_snn()
    snn.q_values(torch.ones(5, 1))
    d = snn.diagnostics()
    assert d["synops_per_decision"] == 4.0 and d["macs_per_decision"] == 1.0
    assert [l["synops_per_decision"] for l in d["layers"]] == [0.0, 4.0]
    assert [l["spikes_per_decision"] for l in d["layers"]] == [2.0, 3.0]
    assert d["layers"][0]["firing_rate"] == pytest.approx(2 / 7) and d["layers"][1]["firing_rate"] == pytest.approx(3 / 14)
    assert d["energy_uJ_per_decision"] == pytest.approx(8.2e-6, rel=1e-12)
    assert d["ann_macs_per_decision"] == 3 and d["ann_energy_uJ_per_decision"] == pytest.approx(13.8e-6, rel=1e-12)


def test_synops_and_energy_are_consistent():
    _, flat = _flat_mlp((4, 16, 8, 3))
    obs = torch.rand(10, 4)
    snn, _ = convert_tan(flat, percentile=99.9, timesteps=20, stats=activation_stats(flat, obs, 99))
    snn.q_values(obs)
    d = snn.diagnostics()
    assert [l["name"] for l in d["layers"]] == ["fc1", "fc2", "output"]
    spikes = [float(c.sum(1).mean()) for c in snn.last_record.spike_counts]
    # synapses into each layer: fc1 takes the analog input (MACs), each fc1 spike reaches the 8 fc2
    # neurons, each fc2 spike the 3 output neurons; output spikes reach nothing
    assert [l["synops_per_decision"] for l in d["layers"]] == pytest.approx([0.0, spikes[0] * 8, spikes[1] * 3])
    assert [l["macs_per_decision"] for l in d["layers"]] == [64, 0, 0]
    assert [l["ann_macs_per_decision"] for l in d["layers"]] == [4 * 16, 16 * 8, 8 * 3]
    assert d["synops_per_decision"] == pytest.approx(spikes[0] * 8 + spikes[1] * 3)
    assert d["macs_per_decision"] == 4 * 16
    assert d["ann_macs_per_decision"] == 4 * 16 + 16 * 8 + 8 * 3
    assert d["energy_uJ_per_decision"] == pytest.approx((0.9 * d["synops_per_decision"] + 4.6 * 64) * 1e-6)
    assert d["energy_uJ_per_decision"] == energy_uj(d["synops_per_decision"], 64)
    assert d["ann_energy_uJ_per_decision"] == pytest.approx(4.6e-6 * d["ann_macs_per_decision"])
    assert "0.9 pJ" in d["energy_convention"] and "4.6 pJ" in d["energy_convention"]
    assert d["layers"][0]["firing_rate"] == pytest.approx(spikes[0] / (16 * 20))
    monitor = CostMonitor(snn)
    monitor.q_values(obs[:4])
    monitor.q_values(obs[4:])
    run = monitor.diagnostics()
    assert run["decisions"] == 10 and run["synops_per_decision"] == pytest.approx(d["synops_per_decision"])


class _Fixed:
    """A policy whose greedy actions come from a list, one per call and observation."""

    def __init__(self, actions, num_actions=2):
        self.actions, self.num_actions, self.calls = actions, num_actions, 0
        self.device = torch.device("cpu")

    def q_values(self, obs):
        a = self.actions(self.calls, obs.shape[0]) if callable(self.actions) else self.actions
        self.calls += 1
        return nn.functional.one_hot(torch.as_tensor(a), self.num_actions).float().reshape(obs.shape[0], -1)


def test_conversion_rate_on_constructed_policies():
    obs = torch.zeros(8, 4)
    assert agreement(_Fixed([0, 1, 1, 0, 1, 1, 1, 1]), _Fixed([0] * 8), obs) == 0.25
    acting = _Fixed(lambda c, b: [0] * b)
    shadow = _Fixed(lambda c, b: [c % 2] * b)  # agrees on every other decision
    res = evaluate(acting, "CartPole-v1", episodes=1, num_envs=1, epsilon=0.0, shadow=shadow)
    n = res.decisions[0]
    assert res.agreements == [math.ceil(n / 2)] and res.conversion_rate == math.ceil(n / 2) / n


def test_save_and_load_round_trip(tmp_path):
    spec = NetworkSpec(arch="minatar", obs_shape=(4, 10, 10), num_actions=3, hidden=(32,), dueling=True)
    net = QNetwork(spec).eval()
    flat = from_module(net)
    obs = torch.rand(20, 4, 10, 10)
    snn, info = convert_tan(flat, percentile=99.9, timesteps=16, readout="rate", stats=activation_stats(flat, obs, 99))
    save_snn(tmp_path / "snn", snn, flat, dict(env_id="MinAtar/Breakout", **info))
    back, meta = load_snn(tmp_path / "snn")
    assert meta["kind"] == "snn" and meta["timesteps"] == 16 and meta["readout"] == "rate"
    assert meta["lambdas"] == info["lambdas"] and back.lambdas == info["lambdas"]
    assert torch.equal(back.q_values(obs), snn.q_values(obs))
    torch.testing.assert_close(load_ann(tmp_path / "snn").q_values(obs), net.q_values(obs), rtol=1e-5, atol=1e-5)
    assert (tmp_path / "snn" / "config.yaml").is_file()


# ----------------------------------------------------------------------------- command line


def test_convert_and_evaluate_cli(tmp_path, capsys):
    from spikeverse.rl.config import DQNConfig
    from spikeverse.rl.train import train_dqn

    run = tmp_path / "dqn"
    # 1 env, an update of 128 per 2 frames (the CartPole loop before issue 14): a DQN whose SNN at T = 2
    # disagrees on some decisions, not all
    train_dqn(DQNConfig.for_env("CartPole-v1", total_steps=1500, eval_interval=0, device="cpu", num_envs=1,
                                batch_size=128, train_freq=2, target_update_interval=100), run, progress=False)
    snn_dir = tmp_path / "snn"
    rc = main(["convert", str(run), "--frames", "500", "--timesteps", "32", "--out", str(snn_dir), "--json",
               "--device", "cpu"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    summary = json.loads(out)
    assert summary["method"] == "tan" and summary["collection"]["frames"] == 500 and len(summary["lambdas"]) == 3
    assert summary["source"]["kind"] == "run" and summary["timesteps"] == 32 and summary["readout"] == "robust"

    rc = main(["evaluate", str(snn_dir), "--episodes", "2", "--json", "--device", "cpu", "--num-envs", "2"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    res = json.loads(out)
    for key in ("conversion_rate", "timesteps", "synops_per_decision", "energy_uJ_per_decision",
                "ann_macs_per_decision", "ann_energy_uJ_per_decision", "ann_mean", "ann_std", "energy_convention"):
        assert key in res, key
    assert res["agent"] == "snn" and res["timesteps"] == 32
    assert res["conversion_rate"] == sum(res["agreements"]) / sum(res["decisions"])
    assert res["energy_uJ_per_decision"] == pytest.approx(
        (0.9 * res["synops_per_decision"] + 4.6 * res["macs_per_decision"]) * 1e-6)

    # the conversion rate is the SNN's agreement with the saved source ANN along the played episodes:
    # the same protocol through the library, with the ANN in the shadow, gives the same number, and
    # at T = 2 the SNN disagrees sometimes (so an SNN compared with itself, CR = 1, would be caught)
    rc = main(["evaluate", str(snn_dir), "--episodes", "2", "--json", "--device", "cpu", "--num-envs", "2",
               "--timesteps", "2"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    short = json.loads(out)
    snn, _ = load_snn(snn_dir)
    snn.timesteps = 2
    ref = evaluate(snn, "CartPole-v1", episodes=2, num_envs=2, seed=0, epsilon=0.05, shadow=load_ann(snn_dir))
    assert short["conversion_rate"] == ref.conversion_rate and short["decisions"] == ref.decisions
    assert 0.0 < short["conversion_rate"] < 1.0

    # a plain state dict (CleanRL names) with --env; default output folder next to the file
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 2))
    torch.save({f"network.{k}": v for k, v in net.state_dict().items()}, tmp_path / "cp.cleanrl_model")
    rc = main(["convert", "--state-dict", str(tmp_path / "cp.cleanrl_model"), "--env", "CartPole-v1",
               "--frames", "200", "--timesteps", "8", "--percentile", "99", "--json", "--device", "cpu"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    summary = json.loads(out)
    assert summary["source"]["kind"] == "state_dict" and summary["snn_dir"].endswith("cp-snn-tan-p99")
    snn, _ = load_snn(summary["snn_dir"])
    assert snn.timesteps == 8 and snn.num_actions == 2
    rc = main(["convert", "--state-dict", str(tmp_path / "cp.cleanrl_model"), "--frames", "10"])
    assert rc == 2 and "--env" in capsys.readouterr().err

    rc = main(["convert", str(run), "--method", "qcfs", "--out", str(tmp_path / "x")])
    assert rc == 2 and "naive, tan, fast" in capsys.readouterr().err
    rc = main(["convert", str(run), "--out", str(run)])  # never overwrite the DQN run
    assert rc == 2 and "dqn" in capsys.readouterr().err

"""Every Rainbow switch composes with the others and the networks have the right shapes."""

import pytest
import torch

from spikeverse.rl.config import DQNConfig
from spikeverse.rl.networks import NetworkSpec, QNetwork
from spikeverse.rl.train import load_dqn, train_dqn

SMALL = dict(total_steps=400, learning_starts=100, batch_size=16, buffer_size=1000, eval_interval=0,
             target_update_interval=50, device="cpu", hidden=(32,))


@pytest.mark.parametrize(
    "switches",
    [dict(), dict(double=True), dict(per=True), dict(dueling=True), dict(nstep=3), dict(noisy=True),
     dict(c51=True), dict(rainbow=True), dict(per=True, c51=True, nstep=2), dict(tau=0.01)],
    ids=lambda s: "+".join(s) or "vanilla",
)
def test_switches_train_and_reload(tmp_path, switches):
    cfg = DQNConfig.for_env("CartPole-v1", **SMALL, **switches)
    res = train_dqn(cfg, tmp_path, progress=False)
    assert res.steps == 400
    net, meta = load_dqn(tmp_path)
    assert net(torch.zeros(2, 4)).shape == (2, 2)
    assert meta["config"]["nstep"] == cfg.nstep and meta["network"]["noisy"] == cfg.noisy


def test_vector_collection_and_minatar_rainbow(tmp_path):
    cfg = DQNConfig.for_env("MinAtar/Breakout", rainbow=True, num_envs=4, **{**SMALL, "hidden": (64,)})
    res = train_dqn(cfg, tmp_path, progress=False)
    assert res.steps == 400 and res.episodes > 0


@pytest.mark.parametrize("arch, obs_shape, flat", [("minatar", (4, 10, 10), 1024), ("nature", (4, 84, 84), 3136)])
def test_cnn_layouts(arch, obs_shape, flat):
    net = QNetwork(NetworkSpec(arch, obs_shape, 6, hidden=(512,) if arch == "nature" else (128,)))
    linear = [m for m in net.torso if isinstance(m, torch.nn.Linear)]
    assert linear[0].in_features == flat
    assert net(torch.zeros(3, *obs_shape)).shape == (3, 6)
    if arch == "nature":
        convs = [(m.out_channels, m.kernel_size[0], m.stride[0]) for m in net.torso if isinstance(m, torch.nn.Conv2d)]
        assert convs == [(32, 8, 4), (64, 4, 2), (64, 3, 1)] and linear[0].out_features == 512


def test_atari_uint8_frames_are_scaled(tmp_path):
    cfg = DQNConfig.for_env("ALE/Pong-v5", total_steps=80, learning_starts=40, batch_size=8, buffer_size=100,
                            eval_interval=0, device="cpu")
    train_dqn(cfg, tmp_path, progress=False)
    net, meta = load_dqn(tmp_path)
    assert meta["network"]["arch"] == "nature" and abs(meta["network"]["obs_scale"] - 1 / 255) < 1e-12

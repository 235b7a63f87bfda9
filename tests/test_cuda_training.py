"""The trainer on CUDA (issue 14): with ``device cuda`` every forward of the Q-network, acting and
learning, runs on the GPU, for the DQN (float32 and bfloat16), Rainbow and the DSQN, with several
environments; the saved run loads and plays on the CPU. Skipped without a GPU."""

import numpy as np
import pytest
import torch

from spikeverse.rl import networks
from spikeverse.rl.config import DQNConfig
from spikeverse.rl.train import train_dqn

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.parametrize("switches", [dict(), dict(precision="bfloat16"), dict(rainbow=True),
                                      dict(spiking=True, timesteps=4)],
                         ids=["dqn", "dqn-bf16", "rainbow", "dsqn"])
def test_acting_and_learning_run_on_the_gpu(tmp_path, monkeypatch, switches):
    from spikeverse.agents import load_policy
    from spikeverse.snn.config import SpikingConfig

    switches = dict(switches)
    if switches.pop("spiking", False):
        switches["spiking"] = SpikingConfig(timesteps=switches.pop("timesteps"))
    calls = []  # (device of the input, gradients on) per forward of a Q-network
    real = networks.QNetwork.features
    monkeypatch.setattr(networks.QNetwork, "features", lambda self, obs, record=False: (
        calls.append((self.device.type, torch.is_grad_enabled())) or real(self, obs, record)))
    cfg = DQNConfig.for_env("MinAtar/Breakout", total_steps=1_200, num_envs=4, learning_starts=400, batch_size=64,
                            buffer_size=2_000, eval_interval=0, device="cuda", **switches)
    res = train_dqn(cfg, tmp_path, progress=False)
    assert res.steps == 1_200
    assert {d for d, _ in calls} == {"cuda"}
    assert {g for _, g in calls} == {True, False}  # updates (with gradients) and acting / targets (without)
    policy, meta = load_policy(tmp_path, device="cpu")
    obs = torch.from_numpy((np.random.default_rng(0).random((3, 4, 10, 10)) < 0.2).astype(np.float32))
    assert torch.isfinite(policy.q_values(obs)).all()

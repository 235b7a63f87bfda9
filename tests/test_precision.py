"""The update's arithmetic (issue 14): ``precision`` bfloat16 runs the TD update under autocast
while the weights, Adam and acting stay float32; the replay-ratio options reach the trainer."""

import json

import numpy as np
import pytest
import torch

from spikeverse.cli.app import main
from spikeverse.rl import dqn as dqn_mod
from spikeverse.rl.config import DQNConfig
from spikeverse.rl.dqn import DQNAgent, network_spec

pytestmark = pytest.mark.usefixtures("one_thread")


def _agent(precision: str) -> DQNAgent:
    cfg = DQNConfig.for_env("MinAtar/Breakout", device="cpu", precision=precision)
    torch.manual_seed(0)
    return DQNAgent(cfg, network_spec(cfg, (4, 10, 10), 6), torch.device("cpu"))


def _batch(n=64, seed=0) -> dict:
    rng = np.random.default_rng(seed)
    return dict(obs=(rng.random((n, 4, 10, 10)) < 0.2).astype(np.float32), action=rng.integers(0, 6, n),
                reward=rng.random(n).astype(np.float32), next_obs=(rng.random((n, 4, 10, 10)) < 0.2).astype(np.float32),
                discount=np.full(n, 0.99, np.float32), weights=np.ones(n, np.float32))


def test_bfloat16_updates_compute_in_bfloat16_keep_float32_weights_and_learn():
    fp32, bf16 = _agent("float32"), _agent("bfloat16")
    batch = _batch()
    l32, p32 = fp32.update(batch)
    l16, p16 = bf16.update(batch)  # the same initial weights, the same batch
    assert l16 != l32 and l16 == pytest.approx(l32, rel=0.05)  # bfloat16 arithmetic, close to float32
    assert p16.dtype == np.float32 and np.allclose(p16, p32, atol=0.05)
    assert all(p.dtype == torch.float32 for p in bf16.online.parameters())
    assert all(s["exp_avg"].dtype == torch.float32 for s in bf16.optimizer.state.values())
    losses = [bf16.update(batch)[0] for _ in range(60)]
    assert np.mean(losses[-10:]) < 0.5 * l16  # it learns the batch


def test_bfloat16_acts_in_float32():
    agent = _agent("bfloat16")
    obs = _batch(8)["obs"]
    with torch.no_grad():
        expected = agent.online(torch.as_tensor(obs)).argmax(-1).numpy()
    assert (agent.act(obs, 0.0, np.random.default_rng(0)) == expected).all()


def test_a_run_before_issue_14_reads_as_float32():
    d = DQNConfig.for_env("CartPole-v1").to_dict()
    d.pop("precision")
    assert DQNConfig.from_dict(d).precision == "float32"


def test_the_replay_ratio_options_reach_the_trainer(tmp_path, capsys, monkeypatch):
    sizes = []
    real = dqn_mod.DQNAgent.update
    monkeypatch.setattr(dqn_mod.DQNAgent, "update", lambda self, b: sizes.append(len(b["action"])) or real(self, b))
    code = main(["train", "--steps", "1400", "--num-envs", "2", "--batch-size", "16", "--train-freq", "2",
                 "--gradient-steps", "3", "--precision", "bfloat16", "--eval-every", "0", "--device", "cpu",
                 "--out", str(tmp_path / "r"), "--no-progress", "--json"])
    assert code == 0
    cfg = DQNConfig.for_env("CartPole-v1")
    # updates start at learning_starts frames; one round of 3 every 2 vector steps of 2 envs
    rounds = sum(1 for step in range(2, 1401, 2) if step >= cfg.learning_starts and (step // 2) % 2 == 0)
    assert rounds > 0 and sizes == [16] * (3 * rounds)
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["steps"] == 1400
    saved = (tmp_path / "r" / "config.yaml").read_text()
    assert "precision: bfloat16" in saved and "batch_size: 16" in saved and "gradient_steps: 3" in saved


@pytest.mark.parametrize("switches", [dict(c51=True), dict(rainbow=True), dict(per=True, nstep=3)],
                         ids=lambda s: "+".join(s))
def test_every_rainbow_part_trains_in_bfloat16(tmp_path, switches):
    from spikeverse.rl.checkpoint import load_dqn
    from spikeverse.rl.train import train_dqn

    cfg = DQNConfig.for_env("CartPole-v1", total_steps=300, learning_starts=100, batch_size=16, buffer_size=500,
                            eval_interval=0, device="cpu", hidden=(32,), precision="bfloat16", **switches)
    res = train_dqn(cfg, tmp_path, progress=False)
    assert res.steps == 300
    net, meta = load_dqn(tmp_path)
    assert meta["config"]["precision"] == "bfloat16" and torch.isfinite(net(torch.zeros(2, 4))).all()


def test_a_vectorized_bfloat16_run_is_deterministic_for_its_seed_and_number_of_envs(tmp_path):
    from spikeverse.rl.checkpoint import load_dqn
    from spikeverse.rl.train import train_dqn

    def weights(name: str, num_envs: int) -> dict:
        cfg = DQNConfig.for_env("MinAtar/Breakout", total_steps=1_600, num_envs=num_envs, learning_starts=400,
                                batch_size=8 * num_envs, buffer_size=2_000, eval_interval=0, device="cpu",
                                precision="bfloat16", hidden=(32,))
        train_dqn(cfg, tmp_path / name, progress=False)
        return load_dqn(tmp_path / name)[0].state_dict()

    a, b, c = weights("a", 4), weights("b", 4), weights("c", 2)
    assert all(torch.equal(a[k], b[k]) for k in a)  # the same seed and number of envs: the same run
    assert not all(torch.equal(a[k], c[k]) for k in a)

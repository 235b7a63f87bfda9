"""Every Rainbow switch composes with the others and the networks have the right shapes, and each
switch does what it says inside the trainer: PER replays by the TD errors, n-step stores the
discounted n-step return and bootstraps with gamma^n, double DQN takes a* from the online network,
the head switches build their heads, polyak_tau makes Polyak updates."""

import numpy as np
import pytest
import torch
from scipy.stats import chisquare

from spikeverse.io.rundir import read_metrics
from spikeverse.rl import train as train_mod
from spikeverse.rl.config import DQNConfig
from spikeverse.rl.dqn import DQNAgent
from spikeverse.rl.noisy import NoisyLinear
from spikeverse.rl.replay import PrioritizedReplayBuffer, ReplayBuffer
from spikeverse.rl.networks import NetworkSpec, QNetwork
from spikeverse.rl.checkpoint import load_dqn
from spikeverse.rl.train import train_dqn

SMALL = dict(total_steps=400, learning_starts=100, batch_size=16, buffer_size=1000, eval_interval=0,
             target_update_interval=50, device="cpu", hidden=(32,))


@pytest.mark.parametrize(
    "switches",
    [dict(), dict(double=True), dict(per=True), dict(dueling=True), dict(nstep=3), dict(noisy=True),
     dict(c51=True), dict(rainbow=True), dict(per=True, c51=True, nstep=2), dict(polyak_tau=0.01)],
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


# ----------------------------------------------------------------------------- the switches' behaviour
# The tests above only check that every switch trains and reloads; a trainer that ignored a switch
# would pass them. The ones below look at what the trainer really builds and does: they spy on the
# replay buffer and the agent it constructs (subclasses put in place of the names train.py uses).

# buffer_size > total_steps: no slot is overwritten, so the buffer holds the whole run in order
SPY = dict(SMALL, total_steps=300, learning_starts=60, num_envs=1, checkpoint_interval=10_000)


@pytest.fixture
def spy(monkeypatch):
    """Record the trainer's buffer, agent, every sampled batch with the TD quantities of the
    networks as they were before the update, the priorities written back, and target updates."""
    seen = dict(buffer=None, agent=None, updates=[], priorities=[], target_updates=0)

    def recording(cls):
        class Spy(cls):
            def __init__(self, *a, **k):
                super().__init__(*a, **k)
                seen["buffer"] = self

            def update_priorities(self, indices, td_errors):
                seen["priorities"].append((np.array(indices), np.array(td_errors)))
                super().update_priorities(indices, td_errors)
        return Spy

    class SpyAgent(DQNAgent):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            seen["agent"] = self

        def update(self, batch):
            rec = dict(batch=batch)
            if self.spec.atoms == 1 and not self.cfg.noisy:
                with torch.no_grad():
                    rec["q"] = self.online(torch.as_tensor(batch["obs"]))[np.arange(len(batch["action"])),
                                                                        batch["action"]].numpy()
                    rec["q_target_next"] = self.target(torch.as_tensor(batch["next_obs"])).numpy()
                    rec["q_online_next"] = self.online(torch.as_tensor(batch["next_obs"])).numpy()
            loss, prio = super().update(batch)
            rec["returned"] = prio
            seen["updates"].append(rec)
            return loss, prio

        def update_target(self):
            seen["target_updates"] += 1
            seen.setdefault("polyak", []).append(
                [p.detach().clone() for p in (*self.target.parameters(), *self.online.parameters())])
            super().update_target()
            seen["polyak"][-1].append([p.detach().clone() for p in self.target.parameters()])

    monkeypatch.setattr(train_mod, "ReplayBuffer", recording(ReplayBuffer))
    monkeypatch.setattr(train_mod, "PrioritizedReplayBuffer", recording(PrioritizedReplayBuffer))
    monkeypatch.setattr(train_mod, "DQNAgent", SpyAgent)
    return seen


def _train(tmp_path, **switches):
    cfg = DQNConfig.for_env("CartPole-v1", **{**SPY, "double": False, **switches})
    train_dqn(cfg, tmp_path, progress=False)
    return cfg


def test_per_on_the_trainer_replays_by_its_own_td_errors(tmp_path, spy):
    cfg = _train(tmp_path, per=True, per_alpha=0.7)
    buf = spy["buffer"]
    assert isinstance(buf, PrioritizedReplayBuffer) and buf.alpha == 0.7 and buf.eps == cfg.per_eps
    # every update's |TD error| goes back into the tree as (|delta| + eps)^alpha (last write wins)
    assert len(spy["priorities"]) == len(spy["updates"]) > 100
    for (idx, td), rec in zip(spy["priorities"], spy["updates"]):
        np.testing.assert_array_equal(idx, rec["batch"]["indices"])
        np.testing.assert_array_equal(td, rec["returned"])
    expected = np.full(len(buf), np.nan)
    for idx, td in spy["priorities"]:
        expected[idx] = (np.abs(td) + cfg.per_eps) ** 0.7
    leaves = buf.tree[np.arange(len(buf))]
    replayed = ~np.isnan(expected)
    assert replayed.sum() > 50
    np.testing.assert_allclose(leaves[replayed], expected[replayed], rtol=1e-6)
    assert np.all(leaves[~replayed] >= 1.0)  # never replayed: still at the max priority they entered with
    # the sampled batches carry the importance weights (beta > 0), not all 1
    weights = np.concatenate([r["batch"]["weights"] for r in spy["updates"]])
    assert weights.min() < 0.9 and weights.max() == 1.0
    # the trainer's buffer samples in proportion to those priorities (and the test tells uniform apart)
    buf.rng = np.random.default_rng(0)
    counts = np.bincount(np.concatenate([buf.sample(512)["indices"] for _ in range(200)]), minlength=len(buf))
    order = np.argsort(leaves)  # pool into 10 bins of similar priority so that expected counts are large
    bins = np.array_split(order, 10)
    obs_c = np.array([counts[b].sum() for b in bins])
    exp_c = np.array([leaves[b].sum() for b in bins]) / leaves.sum() * counts.sum()
    assert chisquare(obs_c, exp_c).pvalue > 1e-3
    uniform = np.array([len(b) for b in bins]) / len(buf) * counts.sum()
    assert chisquare(obs_c, uniform).pvalue < 1e-10


def test_per_off_replays_uniformly_with_unit_weights(tmp_path, spy):
    _train(tmp_path, per=False)
    assert type(spy["buffer"]).__mro__[1] is ReplayBuffer and not isinstance(spy["buffer"], PrioritizedReplayBuffer)
    assert all(np.all(r["batch"]["weights"] == 1.0) for r in spy["updates"])


def _td_targets(rec, gamma_power, double):
    """y = R + gamma^power (1 - terminal) Q_target(s', a*), from the networks before the update."""
    b = rec["batch"]
    nxt = rec["q_online_next"] if double else rec["q_target_next"]
    a_star = nxt.argmax(-1)
    boot = rec["q_target_next"][np.arange(len(a_star)), a_star]
    alive = (b["discount"] > 0).astype(np.float32)
    return b["reward"] + gamma_power * alive * boot


def test_nstep_on_stores_the_discounted_3_step_return_and_bootstraps_with_gamma_cubed(tmp_path, spy):
    _train(tmp_path, nstep=3, gamma=0.9)
    g = 0.9
    buf = spy["buffer"]
    n = len(buf)
    obs, nxt, rew, disc = buf.obs[:n], buf.next_obs[:n], buf.reward[:n], buf.discount[:n]
    # CartPole pays 1 per step and terminates: inside an episode G = 1 + g + g^2, d = g^3 and
    # s' is the observation three transitions later; the last three of an episode are cut at the
    # terminal: G = 1 + g + g^2, 1 + g, 1 with d = 0, all bootstrapping from the final observation
    ends = np.flatnonzero(disc == 0)
    assert len(ends) >= 3 * 5 and len(ends) % 3 == 0
    tails = ends.reshape(-1, 3)
    np.testing.assert_array_equal(tails, tails[:, :1] + np.arange(3))  # runs of three
    np.testing.assert_allclose(rew[tails], np.broadcast_to([1 + g + g * g, 1 + g, 1.0], tails.shape), rtol=1e-6)
    for t in tails:
        assert np.array_equal(nxt[t[0]], nxt[t[1]]) and np.array_equal(nxt[t[1]], nxt[t[2]])
    inner = np.setdiff1d(np.arange(n), ends)
    np.testing.assert_allclose(rew[inner], 1 + g + g * g, rtol=1e-6)
    np.testing.assert_allclose(disc[inner], g**3, rtol=1e-6)
    inner = inner[inner + 3 < n]
    np.testing.assert_array_equal(nxt[inner], obs[inner + 3])
    # the update's TD target uses that discount: |y - Q| with y = G + g^3 Q_target(s', a*)
    assert len(spy["updates"]) > 50
    for rec in spy["updates"]:
        y = _td_targets(rec, g**3, double=False)
        np.testing.assert_allclose(rec["returned"], np.abs(y - rec["q"]), rtol=1e-4, atol=1e-5)
    wrong = [np.abs(_td_targets(r, g, double=False) - r["q"]) for r in spy["updates"]]
    assert not np.allclose(np.concatenate(wrong), np.concatenate([r["returned"] for r in spy["updates"]]),
                           rtol=1e-4, atol=1e-5)  # a one-step discount would be caught


@pytest.mark.parametrize("double", [False, True])
def test_double_switch_picks_the_target_action_with_the_online_network(tmp_path, spy, double):
    cfg = _train(tmp_path, double=double, target_update_interval=100)
    assert spy["agent"].cfg.double is double
    recs = spy["updates"]
    differ = 0
    for rec in recs:
        y = _td_targets(rec, cfg.gamma, double)
        np.testing.assert_allclose(rec["returned"], np.abs(y - rec["q"]), rtol=1e-4, atol=1e-5)
        differ += int((rec["q_online_next"].argmax(-1) != rec["q_target_next"].argmax(-1)).sum())
    assert differ > 0  # the two rules pick different actions on some samples: the check can fail
    other = [np.abs(_td_targets(r, cfg.gamma, not double) - r["q"]) for r in recs]
    assert not np.allclose(np.concatenate(other), np.concatenate([r["returned"] for r in recs]), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("switch", ["dueling", "noisy", "c51"])
def test_head_switches_change_the_network_built(tmp_path, spy, switch):
    _train(tmp_path, **{switch: True})
    net = spy["agent"].online
    noisy_layers = [m for m in net.modules() if isinstance(m, NoisyLinear)]
    assert (net.value is not None) == (switch == "dueling")
    assert bool(noisy_layers) == (switch == "noisy")
    assert (net.spec.atoms == 51 and net.support is not None) == (switch == "c51")
    if switch == "noisy":
        assert set(noisy_layers) == {net.advantage}  # the head is noisy; exploration is the noise
        assert {float(row["epsilon"]) for row in read_metrics(tmp_path)} == {0.0}  # no epsilon-greedy
    if switch == "c51":
        x = torch.zeros(3, 4)
        probs = net.log_probs(x).exp()
        assert probs.shape == (3, 2, 51)
        torch.testing.assert_close(net(x), (probs * net.support).sum(-1))
    loaded, _ = load_dqn(tmp_path)
    assert type(loaded.advantage) is type(net.advantage) and loaded.spec.atoms == net.spec.atoms


def test_vanilla_network_has_none_of_the_heads(tmp_path, spy):
    _train(tmp_path)
    net = spy["agent"].online
    assert net.value is None and net.spec.atoms == 1 and not any(isinstance(m, NoisyLinear) for m in net.modules())
    # and the hard target copy happens every target_update_interval steps, nothing in between
    assert spy["target_updates"] == SPY["total_steps"] // SPY["target_update_interval"]


def test_tau_switch_makes_polyak_target_updates_after_every_update(tmp_path, spy):
    _train(tmp_path, polyak_tau=0.05)
    assert spy["target_updates"] == len(spy["updates"]) > 50
    before = spy["polyak"][-1]
    k = len(list(spy["agent"].target.parameters()))
    target0, online, target1 = before[:k], before[k:2 * k], before[2 * k]
    for t0, o, t1 in zip(target0, online, target1):
        torch.testing.assert_close(t1, t0 + 0.05 * (o - t0))
    assert any(not torch.equal(a, b) for a, b in zip(target1, online))  # not a hard copy


def test_declared_torch_floor_covers_the_fused_adam():
    """The DQN builds Adam(fused=True), which runs on CPU only from torch 2.4 on (2.3 raises at
    construction): pyproject's floor must be at least that, and the installed torch meets it."""
    import re
    import tomllib
    from pathlib import Path

    from spikeverse.rl.dqn import network_spec

    deps = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]["dependencies"]
    (floor,) = [tuple(map(int, m.groups())) for d in deps if (m := re.fullmatch(r"torch>=(\d+)\.(\d+)", d.replace(" ", "")))]
    cfg = DQNConfig(env_id="CartPole-v1", hidden=(4,))
    agent = DQNAgent(cfg, network_spec(cfg, (4,), 2), torch.device("cpu"))
    if agent.optimizer.defaults.get("fused"):
        assert floor >= (2, 4), f"Adam(fused=True) on CPU needs torch >= 2.4, pyproject says >= {floor}"
    assert tuple(int(x) for x in torch.__version__.split("+")[0].split(".")[:2]) >= floor

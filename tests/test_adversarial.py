"""FGSM (issue 13, analysis.adversarial): the step and its bounds, eps 0 = the clean evaluation,
attacks that flip more decisions than random signs of the same size (DQN, DSQN, converted SNN),
the converted SNN left as it was, and agents without a gradient refused for white-box."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from spikeverse.analysis.adversarial import FGSM, input_gradient, surrogate_q_values
from spikeverse.convert import SpikingQNetwork, activation_stats, from_module, normalize
from spikeverse.convert.methods import convert_naive
from spikeverse.errors import SpikeverseError
from spikeverse.models.cartpole_snn import CartPoleSNN, SNNPolicy
from spikeverse.policy import greedy_actions
from spikeverse.rl.evaluation import evaluate
from spikeverse.rl.networks import NetworkSpec, QNetwork
from spikeverse.rl.tabular import TabularQ
from spikeverse.snn.config import SpikingConfig
from spikeverse.snn.cost import CostMonitor
from spikeverse.snn.surrogates import heaviside, surrogate

HIGH = np.array([4.8, 5.0, 0.42, 5.0])
LOW = -HIGH


def _frames(n=400, seed=0):
    """CartPole states from random play (several episodes)."""
    env = gym.make("CartPole-v1")
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n:
        out.append(obs)
        obs, _, term, trunc, _ = env.step(int(rng.integers(2)))
        if term or trunc:
            obs, _ = env.reset()
    env.close()
    return np.stack(out).astype(np.float32)


FRAMES = _frames()
SCALE = FRAMES.std(0).astype(np.float64)


def _fitted_dqn(spiking=None, seed=0, steps=300):
    """A small CartPole Q-network fitted to the balancing rule 'push toward the fall'
    (theta + 0.5 omega > 0: right), so that its decisions mean something."""
    torch.manual_seed(seed)
    net = QNetwork(NetworkSpec("mlp", (4,), 2, hidden=(32, 32), spiking=spiking))
    x = torch.from_numpy(FRAMES)
    y = (x[:, 2] + 0.5 * x[:, 3] > 0).long()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    return net


DQN = _fitted_dqn()


def _fgsm(net, eps, mode="white-box", **kw):
    return FGSM(mode, eps, LOW, HIGH, net, scale=SCALE, **kw)


def _random_signs(obs, eps, seed=0):
    """The same L-infinity step with random signs (the baseline FGSM must beat)."""
    signs = np.random.default_rng(seed).choice([-1.0, 1.0], size=obs.shape)
    return np.clip(obs + eps * SCALE * signs, LOW, HIGH).astype(np.float32)


def _flips(policy, clean, attacked):
    return int((greedy_actions(policy, clean) != greedy_actions(policy, attacked)).sum())


class Rule:
    """A gradient-free policy (pushes by the sign of theta + 0.5 omega)."""

    num_actions = 2
    device = torch.device("cpu")

    def q_values(self, obs):
        right = (obs[:, 2] + 0.5 * obs[:, 3] > 0).float()
        return torch.stack([1 - right, right], 1)


# ------------------------------------------------------------------------------ the step


def test_eps_zero_is_the_identity_and_reproduces_the_clean_evaluation_exactly():
    p = _fgsm(DQN, 0.0)
    out = p(FRAMES, list(range(len(FRAMES))), [0] * len(FRAMES))
    assert out is not FRAMES and np.array_equal(out, FRAMES) and out.dtype == FRAMES.dtype
    clean = evaluate(DQN, "CartPole-v1", episodes=3, seed=3, shadow=DQN, max_episode_steps=150, progress=False)
    zero = evaluate(DQN, "CartPole-v1", episodes=3, seed=3, shadow=DQN, max_episode_steps=150, progress=False,
                    observe=_fgsm(DQN, 0.0))
    assert zero.to_dict() == clean.to_dict()
    attacked = evaluate(DQN, "CartPole-v1", episodes=3, seed=3, shadow=DQN, max_episode_steps=150, progress=False,
                        observe=_fgsm(DQN, 0.5))
    assert attacked.conversion_rate < 0.9  # the hook shows the attacked frame: decisions move


def test_the_step_is_eps_scale_sign_of_the_loss_gradient_inside_the_bounds():
    eps = 0.3
    x = FRAMES[:200].copy()
    x[:5, 0] = HIGH[0] - 1e-3  # at the edge: the clip must act on some of them
    out = _fgsm(DQN, eps)(x, [0] * 200, list(range(200)))
    assert out.dtype == np.float32
    assert (out >= LOW - 1e-6).all() and (out <= HIGH + 1e-6).all()
    d = np.abs(out.astype(np.float64) - x)
    assert (d <= eps * SCALE + 1e-5).all()
    inside = (out > LOW + 1e-4) & (out < HIGH - 1e-4)
    assert np.allclose(d[inside], np.broadcast_to(eps * SCALE, x.shape)[inside], rtol=1e-5)
    # the direction raises the loss: the greedy action's lead over the other action shrinks on every frame
    with torch.no_grad():
        q0, q1 = DQN(torch.from_numpy(x)).double(), DQN(torch.from_numpy(out)).double()
    a = q0.argmax(-1)
    lead0, lead1 = (q0[:, 0] - q0[:, 1]) * (1 - 2 * a), (q1[:, 0] - q1[:, 1]) * (1 - 2 * a)
    assert (lead1 < lead0).all()
    # deterministic: the same frames, the same attack, whatever the episode and step
    assert np.array_equal(out, _fgsm(DQN, eps)(x, [7] * 200, [3] * 200))


def test_integer_images_keep_their_dtype_and_stay_in_the_ball():
    torch.manual_seed(1)
    net = QNetwork(NetworkSpec("mlp", (1, 6, 6), 3, hidden=(16,), obs_scale=1 / 255))
    low, high = np.zeros((1, 6, 6)), np.full((1, 6, 6), 255.0)
    img = np.random.default_rng(0).integers(0, 256, size=(20, 1, 6, 6)).astype(np.uint8)
    out = FGSM("white-box", 0.02, low, high, net, dtype=np.uint8)(img, [0] * 20, [0] * 20)
    assert out.dtype == np.uint8
    d = np.abs(out.astype(int) - img.astype(int))
    assert d.max() == 5  # floor(0.02 x 255) = 5
    edge = (out == 0) | (out == 255)
    assert (d[~edge] == 5).all() and (~edge).mean() > 0.8  # whole units, clipped only at 0 and 255


def test_fgsm_flips_more_dqn_decisions_than_random_signs():
    eps = 0.1
    n = len(FRAMES)
    attacked = _fgsm(DQN, eps)(FRAMES, list(range(n)), [0] * n)
    fgsm, rand = _flips(DQN, FRAMES, attacked), _flips(DQN, FRAMES, _random_signs(FRAMES, eps))
    assert fgsm > 2 * rand + 10


def test_transfer_attacks_agents_without_a_gradient_and_through_a_cost_monitor():
    eps, n = 0.2, len(FRAMES)
    p = _fgsm(CostMonitor(DQN), eps, mode="transfer")
    attacked = p(FRAMES, list(range(n)), [0] * n)
    assert _flips(Rule(), FRAMES, attacked) > _flips(Rule(), FRAMES, _random_signs(FRAMES, eps)) + 10
    res = evaluate(Rule(), "CartPole-v1", episodes=2, seed=0, epsilon=0.0, shadow=Rule(), max_episode_steps=100,
                   progress=False, observe=p)
    assert res.conversion_rate < 1.0


def test_white_box_without_a_gradient_is_refused_naming_the_agent():
    snn = CartPoleSNN(n_per_var=2, hidden=3, motor=1, window=2)
    for agent in (TabularQ.zeros(4, 2), SNNPolicy(snn, np.zeros(snn.n_params)), Rule(), CostMonitor(Rule())):
        name = type(agent.policy if isinstance(agent, CostMonitor) else agent).__name__
        with pytest.raises(SpikeverseError, match=name):
            _fgsm(agent, 0.1)
        with pytest.raises(SpikeverseError, match="transfer"):
            _fgsm(agent, 0.1, mode="transfer")  # a transfer reference must have a gradient too
    for bad in ({"mode": "grey-box"}, {"eps": -0.1}, {"eps": float("nan")}):
        with pytest.raises(SpikeverseError):
            _fgsm(DQN, bad.get("eps", 0.1), mode=bad.get("mode", "white-box"))
    with pytest.raises(SpikeverseError):
        FGSM("transfer", 0.1, np.full(4, -np.inf), HIGH, DQN)
    with pytest.raises(SpikeverseError):
        _fgsm(DQN, 0.1)(np.zeros((2, 3), np.float32), [0, 1], [0, 0])


def test_white_box_dsqn_goes_through_its_surrogate_window():
    dsqn = _fitted_dqn(spiking=SpikingConfig(timesteps=8), steps=150)
    g = input_gradient(dsqn, FRAMES[:100], surrogate("atan"))
    assert (np.abs(g).sum(1) > 0).mean() > 0.9
    eps, n = 0.1, len(FRAMES)
    attacked = _fgsm(dsqn, eps)(FRAMES, list(range(n)), [0] * n)
    assert _flips(dsqn, FRAMES, attacked) > _flips(dsqn, FRAMES, _random_signs(FRAMES, eps)) + 10
    assert all(getattr(m, "v", None) is None for m in dsqn.torso)  # state dropped as after q_values


# ------------------------------------------------------------------------------ converted SNN


def _converted(T=40, readout="robust", **options):
    flat = from_module(DQN)
    stats = activation_stats(flat, torch.from_numpy(FRAMES))
    return SpikingQNetwork(normalize(flat, stats.lambdas(99.9)), T, readout, **options)


def test_white_box_snn_has_a_gradient_and_flips_more_than_random_signs():
    snn = _converted()
    g = input_gradient(snn, FRAMES[:100], surrogate("atan"))
    assert (np.abs(g).sum(1) > 0).mean() > 0.9  # the surrogate gives a gradient where H has none
    x = torch.from_numpy(FRAMES).requires_grad_(True)
    assert not snn.q_values(x).requires_grad  # normal play has no graph
    eps, n = 0.1, len(FRAMES)
    attacked = _fgsm(snn, eps)(FRAMES, list(range(n)), [0] * n)
    assert _flips(snn, FRAMES, attacked) > 2 * _flips(snn, FRAMES, _random_signs(FRAMES, eps)) + 10


@pytest.mark.parametrize("readout, options", [("robust", {}), ("membrane", {"v_init": 0.5}), ("count", {}),
                                              ("rate", {"neuron": "lif", "tau": 5.0})])
def test_the_surrogate_window_computes_the_snns_own_q_values(readout, options):
    snn = _converted(T=25, readout=readout, **options)
    x = torch.from_numpy(FRAMES[:64])
    with torch.no_grad():
        q = snn.q_values(x)
    qs = surrogate_q_values(snn, x.clone().requires_grad_(True), surrogate("atan"))
    assert qs.requires_grad
    assert torch.equal(qs.detach(), q)  # forward exactly H: the same window, the same readout


def test_an_attack_leaves_the_snn_as_it_was():
    snn = _converted(T=30)
    x = torch.from_numpy(FRAMES[:50])
    q0 = snn.q_values(x)
    rec, steps = snn.last_record, snn.last_steps
    neurons = [m for m in snn.layers if hasattr(m, "multi_step")]
    state = [m.v.clone() for m in neurons]
    weights = {k: v.clone() for k, v in snn.state_dict().items()}
    _fgsm(snn, 0.2)(FRAMES[100:140], [0] * 40, [0] * 40)  # other frames, another batch size
    assert snn.last_record is rec and snn.last_steps is steps
    assert all(torch.equal(m.v, s) and not m.v.requires_grad for m, s in zip(neurons, state))
    assert all(m.spike_fn is heaviside for m in neurons)
    assert all(torch.equal(v, weights[k]) for k, v in snn.state_dict().items())
    assert all(p.grad is None for p in snn.parameters())
    assert torch.equal(snn.q_values(x), q0)


def test_white_box_poisson_lif_snn_is_attacked_through_its_expected_input():
    flat = from_module(DQN)
    snn, _ = convert_naive(flat, stats=activation_stats(flat, torch.from_numpy(FRAMES)), timesteps=30,
                           scales=(0.5, 0.5, 0.5))
    g = input_gradient(snn, FRAMES[:50], surrogate("atan"))
    assert (np.abs(g).sum(1) > 0).mean() > 0.5
    torch.manual_seed(0)
    x = torch.from_numpy(FRAMES[:20])
    snn.reset_generator()
    q0 = snn.q_values(x)
    snn.reset_generator()
    _fgsm(snn, 0.1)(FRAMES[:20], [0] * 20, [0] * 20)  # draws no Poisson input
    assert torch.equal(snn.q_values(x), q0)

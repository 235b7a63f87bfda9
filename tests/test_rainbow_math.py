"""The mathematics of the Rainbow parts: C51 projection, dueling, noisy nets, double DQN."""

import math

import numpy as np
import torch

from spikeverse.rl.config import DQNConfig
from spikeverse.rl.distributional import make_support, project_distribution
from spikeverse.rl.dqn import DQNAgent, network_spec
from spikeverse.rl.networks import NetworkSpec, QNetwork
from spikeverse.rl.noisy import NoisyLinear


def test_c51_projection_conserves_mass():
    g = torch.Generator().manual_seed(0)
    support = make_support(-10, 10, 51)
    probs = torch.rand(64, 51, generator=g).softmax(-1)
    rewards = torch.randn(64, generator=g) * 20  # many targets fall outside [v_min, v_max]
    discounts = torch.rand(64, generator=g)
    discounts[:8] = 0.0
    target = project_distribution(probs, rewards, discounts, support)
    assert torch.allclose(target.sum(-1), torch.ones(64), atol=1e-6)
    assert (target >= 0).all()


def test_c51_projection_hand_computed():
    # support {0, 1, 2, 3, 4}; p = [0.5, 0.5, 0, 0, 0]; R = 0.5, d = 1:
    # atom 0 -> 0.5 (half to 0, half to 1), atom 1 -> 1.5 (half to 1, half to 2)
    support = make_support(0.0, 4.0, 5)
    probs = torch.tensor([[0.5, 0.5, 0.0, 0.0, 0.0]])
    out = project_distribution(probs, torch.tensor([0.5]), torch.tensor([1.0]), support)
    assert torch.allclose(out, torch.tensor([[0.25, 0.5, 0.25, 0.0, 0.0]]))
    # terminal (d = 0): all mass on R = 2.25 -> 0.75 on atom 2, 0.25 on atom 3
    out = project_distribution(probs, torch.tensor([2.25]), torch.tensor([0.0]), support)
    assert torch.allclose(out, torch.tensor([[0.0, 0.0, 0.75, 0.25, 0.0]]))
    # a target beyond v_max is clipped onto the last atom; an exact atom keeps all its mass
    out = project_distribution(probs, torch.tensor([10.0]), torch.tensor([1.0]), support)
    assert torch.allclose(out, torch.tensor([[0.0, 0.0, 0.0, 0.0, 1.0]]))
    out = project_distribution(probs, torch.tensor([1.0]), torch.tensor([1.0]), support)
    assert torch.allclose(out, torch.tensor([[0.0, 0.5, 0.5, 0.0, 0.0]]))


def test_dueling_head_is_mean_centred():
    torch.manual_seed(0)
    net = QNetwork(NetworkSpec("mlp", (4,), 3, hidden=(16,), dueling=True))
    x = torch.randn(10, 4)
    h = net.features(x)
    v = net.value(h).squeeze(-1)
    a = net.advantage(h)
    q = net(x)
    # Q = V + (A - mean_a A): the mean over actions of Q is V, and Q - V = A - mean A
    assert torch.allclose(q.mean(-1), v, atol=1e-6)
    assert torch.allclose(q - v[:, None], a - a.mean(-1, keepdim=True), atol=1e-6)
    # adding a constant to every advantage leaves Q unchanged (identifiability)
    with torch.no_grad():
        net.advantage.bias += 5.0
    assert torch.allclose(net(x), q, atol=1e-5)


def test_factorised_noise_statistics():
    torch.manual_seed(0)
    layer = NoisyLinear(30, 20, sigma0=0.5)
    assert torch.allclose(layer.weight_sigma, torch.full((20, 30), 0.5 / math.sqrt(30)))
    samples = []
    for _ in range(3000):
        layer.reset_noise()
        w, _ = layer.noisy_weight()
        eps_w = (w - layer.weight_mu) / layer.weight_sigma
        samples.append(eps_w.detach())
    eps = torch.stack(samples)
    # factorised: each noise matrix is the rank-1 outer product f(eps_out) f(eps_in)^T
    assert torch.linalg.matrix_rank(eps[0]) == 1
    # f(x) = sign(x) sqrt|x|: E[f] = 0, E[f^2] = E|x| = sqrt(2/pi), so Var(eps_ij) = 2/pi
    assert abs(eps.mean().item()) < 0.02
    assert abs(eps.var().item() - 2 / math.pi) < 0.03
    # in eval mode the layer is deterministic and uses the means only
    layer.eval()
    x = torch.randn(5, 30)
    assert torch.allclose(layer(x), x @ layer.weight_mu.T + layer.bias_mu)


def _agent(double: bool) -> DQNAgent:
    cfg = DQNConfig(env_id="CartPole-v1", double=double, hidden=(2,))
    return DQNAgent(cfg, network_spec(cfg, (2,), 2), torch.device("cpu"))


def _set_linear_q(net: QNetwork, weight: torch.Tensor) -> None:
    """Make Q(s) = weight @ s through an identity hidden layer (inputs >= 0)."""
    with torch.no_grad():
        net.torso[0].weight.copy_(torch.eye(2))
        net.torso[0].bias.zero_()
        net.advantage.weight.copy_(weight)
        net.advantage.bias.zero_()


def test_double_dqn_target_differs_from_vanilla():
    s_next = torch.tensor([[1.0, 1.0]])
    values = {}
    for double in (False, True):
        agent = _agent(double)
        # online prefers action 0 at s', target prefers action 1 and rates action 0 low
        _set_linear_q(agent.online, torch.tensor([[2.0, 0.0], [0.0, 1.0]]))  # Q_online(s') = [2, 1]
        _set_linear_q(agent.target, torch.tensor([[0.5, 0.0], [0.0, 3.0]]))  # Q_target(s') = [0.5, 3]
        values[double] = agent._next_value(s_next, torch.arange(1)).item()
    assert values[False] == 3.0  # max_a Q_target(s', a)
    assert values[True] == 0.5  # Q_target(s', argmax_a Q_online(s', a))


def terminal_batch(seed: int, action: int, reward: float, n: int = 16) -> dict:
    """n random terminal transitions that all take ``action`` and receive ``reward``."""
    obs = np.random.default_rng(seed).normal(size=(n, 4)).astype(np.float32)
    return dict(obs=obs, action=np.full(n, action, np.int64), reward=np.full(n, reward, np.float32),
                next_obs=obs, discount=np.zeros(n, np.float32), weights=np.ones(n, np.float32),
                indices=np.arange(n))


def test_dqn_update_moves_q_towards_target():
    torch.manual_seed(0)
    cfg = DQNConfig(env_id="CartPole-v1", lr=3e-3, hidden=(32,))
    agent = DQNAgent(cfg, network_spec(cfg, (4,), 2), torch.device("cpu"))
    batch = terminal_batch(seed=0, action=0, reward=5.0)
    obs = batch["obs"]
    for _ in range(1500):
        agent.update(batch)
    q = agent.online(torch.as_tensor(obs))[:, 0]
    assert torch.allclose(q, torch.full((16,), 5.0), atol=0.1)  # terminal: target = reward


def test_c51_agent_learns_a_constant_return():
    torch.manual_seed(0)
    cfg = DQNConfig(env_id="CartPole-v1", lr=5e-3, hidden=(32,), c51=True, v_min=0, v_max=10, atoms=11)
    agent = DQNAgent(cfg, network_spec(cfg, (4,), 2), torch.device("cpu"))
    batch = terminal_batch(seed=1, action=1, reward=3.0)
    obs = batch["obs"]
    for _ in range(300):
        agent.update(batch)
    probs = agent.online.log_probs(torch.as_tensor(obs))[:, 1].exp()
    assert (probs[:, 3] > 0.95).all()  # the whole distribution sits on the atom z = 3

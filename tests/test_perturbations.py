"""Perturbations of what an agent observes (issue 13 groundwork): the draws, their statistics,
common random numbers, and the evaluation hook that shows them to the agent only."""

import numpy as np
import pytest
import torch

from spikeverse.envs.perturbations import Perturbation, parse_spec
from spikeverse.errors import SpikeverseError
from spikeverse.rl.evaluation import evaluate


class Recorder:
    """A policy that pushes by the sign of the pole angle and keeps every batch it was shown."""

    num_actions = 2
    device = torch.device("cpu")

    def __init__(self):
        self.seen = []

    def q_values(self, obs):
        self.seen.append(obs.numpy().copy())
        right = (obs[:, 2] + 0.5 * obs[:, 3] > 0).float()
        return torch.stack([1 - right, right], 1)


def _vec(kind, mode, s, **kw):
    return Perturbation(kind, mode, s, low=np.full(4, -3.0), high=np.full(4, 3.0), **kw)


def test_parse_spec_lists_ranges_and_refusals():
    assert parse_spec("gaussian:0,0.1,0.2") == ("gaussian", "additive", [0.0, 0.1, 0.2])
    assert parse_spec("occlusion-bottom:0:3:1") == ("occlusion", "bottom", [0.0, 1.0, 2.0, 3.0])
    assert parse_spec("saltpepper:0:0.1:0.05") == ("saltpepper", "impulse", [0.0, 0.05, 0.1])
    for bad in ("blur:0.1", "gaussian", "gaussian:", "gaussian:a", "gaussian:-1", "saltpepper:2",
                "occlusion-left:1", "occlusion-bottom:1.5", "gaussian:1:0:0.1", "gaussian:0:1:0"):
        with pytest.raises(SpikeverseError):
            parse_spec(bad)


def test_gaussian_noise_has_sigma_strength_times_scale_and_is_clipped():
    scale = np.array([0.5, 1.0, 0.1, 2.0])
    p = _vec("gaussian", "additive", 0.2, scale=scale)
    obs = np.zeros((4000, 4), np.float32)
    out = p(obs, list(range(4000)), [0] * 4000)
    assert np.allclose(out.std(0), 0.2 * scale, rtol=0.05)
    big = _vec("gaussian", "additive", 10.0)
    out = big(obs[:500], list(range(500)), [0] * 500)
    assert out.min() >= -3.0 and out.max() <= 3.0 and (np.abs(out) == 3.0).mean() > 0.5


def test_saltpepper_sets_a_fraction_p_to_the_bounds():
    p = _vec("saltpepper", "impulse", 0.3)
    obs = np.full((5000, 4), 0.25, np.float32)
    out = p(obs, list(range(5000)), [0] * 5000)
    hit = out != 0.25
    assert abs(hit.mean() - 0.3) < 0.01
    assert set(np.unique(out[hit])) == {-3.0, 3.0} and abs((out[hit] == 3.0).mean() - 0.5) < 0.02


def test_occlusion_hides_rows_patches_and_variables():
    low, high = np.zeros((2, 6, 5)), np.ones((2, 6, 5))
    img = np.full((1, 2, 6, 5), 0.7, np.float32)
    bottom = Perturbation("occlusion", "bottom", 2, low, high)(img, [0], [0])[0]
    assert (bottom[:, 4:, :] == 0).all() and (bottom[:, :4, :] == np.float32(0.7)).all()
    top = Perturbation("occlusion", "top", 1, low, high)(img, [0], [0])[0]
    assert (top[:, :1, :] == 0).all() and (top[:, 1:, :] == np.float32(0.7)).all()
    patch = Perturbation("occlusion", "patch", 3, low, high)(img, [0], [0])[0]
    assert (patch == 0).sum() == 2 * 9  # one 3 x 3 square, every channel
    var = _vec("occlusion", "variable", 2)(np.ones((3, 4), np.float32), [0, 1, 2], [0, 0, 0])
    assert (var[:, 2] == 0).all() and (np.delete(var, 2, 1) == 1).all()
    with pytest.raises(SpikeverseError):
        Perturbation("occlusion", "variable", 1, low, high)  # images take rows or patches
    with pytest.raises(SpikeverseError):
        Perturbation("occlusion", "bottom", 7, low, high)  # more rows than the image has
    with pytest.raises(SpikeverseError):
        _vec("occlusion", "bottom", 1)  # vectors have no rows


def test_common_random_numbers_depend_on_episode_and_step_only():
    p, q = _vec("gaussian", "additive", 0.5), _vec("gaussian", "additive", 0.5)
    obs = np.zeros((3, 4), np.float32)
    a = p(obs, [5, 6, 7], [2, 2, 2])
    b = q(obs[[2, 0]], [7, 5], [2, 2])  # other batch, other order: the same draws per (episode, step)
    assert np.array_equal(a[[2, 0]], b)
    assert not np.array_equal(p(obs, [5, 6, 7], [3, 3, 3]), a)  # another step, other draws
    assert not np.array_equal(_vec("gaussian", "additive", 0.5, seed=1)(obs, [5, 6, 7], [2, 2, 2]), a)


def test_strength_zero_reproduces_the_clean_evaluation_exactly():
    clean = evaluate(Recorder(), "CartPole-v1", episodes=6, seed=3, shadow=Recorder())
    zero = evaluate(Recorder(), "CartPole-v1", episodes=6, seed=3, shadow=Recorder(),
                    observe=_vec("gaussian", "additive", 0.0))
    assert zero.to_dict() == clean.to_dict()


def test_only_the_agent_sees_the_perturbation_the_shadow_sees_the_clean_frame():
    agent, shadow = Recorder(), Recorder()
    p = _vec("occlusion", "variable", 2)
    res = evaluate(agent, "CartPole-v1", episodes=2, seed=0, num_envs=2, epsilon=0.0, shadow=shadow, observe=p)
    seen, clean = np.concatenate(agent.seen), np.concatenate(shadow.seen)
    assert (seen[:, 2] == 0).all() and (clean[:, 2] != 0).any()
    assert np.array_equal(np.delete(seen, 2, 1), np.delete(clean, 2, 1))
    assert res.conversion_rate < 1.0  # masking the angle changes some decisions

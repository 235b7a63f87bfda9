"""The seed 001 evaluation protocol and the conversion-rate bookkeeping."""

import copy
from pathlib import Path

import pytest
import torch

from spikeverse.errors import SpikeverseError
from spikeverse.rl.evaluation import evaluate


class ConstantPolicy:
    """Always prefers ``action``; counts the observations it saw."""

    def __init__(self, num_actions: int, action: int):
        self.num_actions, self.action, self.seen = num_actions, action, 0
        self.device = torch.device("cpu")

    def q_values(self, obs):
        self.seen += len(obs)
        q = torch.zeros(len(obs), self.num_actions)
        q[:, self.action] = 1.0
        return q


class PolePolicy:
    """A decent CartPole controller: push toward the side the pole leans to."""

    num_actions = 2
    device = torch.device("cpu")

    def q_values(self, obs):
        lean = obs[:, 2] + 0.5 * obs[:, 3]
        return torch.stack([-lean, lean], dim=1)


def test_noops_cap_and_episode_count_on_minatar():
    res = evaluate(ConstantPolicy(3, 0), "MinAtar/Breakout", episodes=6, max_episode_steps=40, seed=0, num_envs=3)
    assert res.noops_applied and len(res.scores) == 6
    assert max(res.lengths) <= 40  # the cap counts agent steps (no-ops included)
    assert res.max_episode_steps == 40 and "agent steps" in res.cap_unit


def test_classic_control_has_no_noops():
    res = evaluate(PolePolicy(), "CartPole-v1", episodes=3, seed=0)
    assert not res.noops_applied
    assert res.mean > 100  # the controller balances for a while, epsilon 0.05 notwithstanding


def test_result_does_not_depend_on_parallel_envs():
    a = evaluate(PolePolicy(), "CartPole-v1", episodes=5, seed=3, num_envs=1)
    b = evaluate(PolePolicy(), "CartPole-v1", episodes=5, seed=3, num_envs=5)
    assert a.scores == b.scores


def test_epsilon_changes_the_play():
    greedy = evaluate(PolePolicy(), "CartPole-v1", episodes=4, seed=0, epsilon=0.0)
    random = evaluate(PolePolicy(), "CartPole-v1", episodes=4, seed=0, epsilon=1.0)
    assert greedy.mean > 3 * random.mean


def test_conversion_rate_with_a_shadow_policy():
    same = evaluate(PolePolicy(), "CartPole-v1", episodes=2, seed=0, shadow=PolePolicy())
    assert same.conversion_rate == 1.0
    opposite = evaluate(ConstantPolicy(2, 0), "CartPole-v1", episodes=2, seed=0, shadow=ConstantPolicy(2, 1))
    assert opposite.conversion_rate == 0.0
    d = opposite.to_dict()
    assert d["conversion_rate"] == 0.0 and len(d["conversion_rate_per_episode"]) == 2


class CloseCallFlipper(PolePolicy):
    """PolePolicy, except that it picks the other action wherever PolePolicy's Q-gap is below ``gap``."""

    def __init__(self, gap: float):
        self.gap = gap

    def q_values(self, obs):
        q = super().q_values(obs)
        close = (q[:, 0] - q[:, 1]).abs() < self.gap
        q[close] = q[close].flip(-1)
        return q


def test_the_q_gap_profile_puts_disagreements_where_the_shadow_hardly_prefers_an_action():
    shadow = PolePolicy()
    probe = evaluate(shadow, "CartPole-v1", episodes=3, seed=2, shadow=shadow)
    assert probe.conversion_rate == 1.0 and len(probe.shadow_gaps) == sum(probe.decisions)
    assert probe.to_dict()["disagreement_by_q_gap"]["disagreements"] == 0
    median = probe.to_dict()["disagreement_by_q_gap"]["median_gap"]
    assert median > 0
    res = evaluate(CloseCallFlipper(0.5 * median), "CartPole-v1", episodes=3, seed=2, shadow=shadow)
    prof = res.to_dict()["disagreement_by_q_gap"]
    assert prof["decisions"] == sum(res.decisions) and prof["disagreements"] == sum(res.decisions) - sum(res.agreements)
    assert prof["disagreements"] > 0 and prof["below_median_share"] == 1.0
    by_bin = {tuple(b["gap_over_median"]): b for b in prof["bins"]}
    # every disagreement lies where the gap is below half the median of this play's gaps (a new
    # median: the play differs), and none where the gap is above twice it
    assert sum(b["decisions"] for b in prof["bins"]) == prof["decisions"]
    assert all(b["disagreements"] == 0 for (lo, hi), b in by_bin.items() if lo >= 1.0)
    assert by_bin[(0.0, 0.1)]["disagreement_rate"] in (None, 1.0)


def test_bad_arguments():
    with pytest.raises(SpikeverseError):
        evaluate(PolePolicy(), "CartPole-v1", episodes=0)
    with pytest.raises(SpikeverseError):
        evaluate(PolePolicy(), "CartPole-v1", epsilon=1.5)


# ------------------------------------------------- evaluation with measurements (analysis.evaluate)


def test_evaluate_agent_plays_the_shadow_on_the_same_protocol_and_compares():
    from spikeverse.analysis.evaluate import evaluate_agent
    from spikeverse.analysis.statistics import compare

    ev = evaluate_agent(ConstantPolicy(2, 0), "CartPole-v1", shadow=PolePolicy(), episodes=3, seed=4)
    alone = evaluate(ConstantPolicy(2, 0), "CartPole-v1", episodes=3, seed=4, shadow=PolePolicy())
    shadow = evaluate(PolePolicy(), "CartPole-v1", episodes=3, seed=4)
    assert ev.result.scores == alone.scores and ev.result.conversion_rate == alone.conversion_rate
    assert ev.shadow.scores == shadow.scores and ev.comparison == compare(shadow.scores, alone.scores)
    assert ev.cost == {} and ev.cost_fields() == {}  # a policy that reports no cost
    given = evaluate_agent(ConstantPolicy(2, 0), "CartPole-v1", shadow=PolePolicy(), shadow_result=shadow,
                           episodes=3, seed=4)
    assert given.shadow is shadow and given.comparison == ev.comparison
    none = evaluate_agent(ConstantPolicy(2, 0), "CartPole-v1", shadow=PolePolicy(), play_shadow=False,
                          episodes=3, seed=4)
    assert none.shadow is None and none.comparison is None and none.result.conversion_rate is not None


def test_cost_monitor_sums_the_calls_of_a_metered_policy():
    from spikeverse.policy import Metered, Policy
    from spikeverse.rl.networks import NetworkSpec, QNetwork
    from spikeverse.snn.cost import CostMonitor

    net = QNetwork(NetworkSpec("mlp", (4,), 2, hidden=(8,)))
    monitor = CostMonitor(net)
    assert isinstance(net, Metered) and isinstance(monitor, Policy) and not isinstance(PolePolicy(), Metered)
    assert monitor.diagnostics() == {} and net.call_cost() is None
    with torch.no_grad():
        net(torch.zeros(3, 4))  # forward (training) describes nothing
        assert net.call_cost() is None
        monitor.q_values(torch.zeros(3, 4)), monitor.q_values(torch.zeros(2, 4))
    d = monitor.diagnostics()
    assert d["decisions"] == 5 and d["macs_per_decision"] == 4 * 8 + 8 * 2 and net.diagnostics()["decisions"] == 2
    monitor.reset_stats()
    assert monitor.diagnostics() == {}


def test_dsqn_timesteps_leave_the_loaded_spec_as_it_was():
    from spikeverse.agents import load_policy
    from spikeverse.analysis.evaluate import run_report

    run = Path(__file__).parent / "data" / "legacy_runs" / "dsqn"
    net, meta = load_policy(run)
    saved = copy.deepcopy(net.spec)
    out = run_report(run, net, meta, timesteps=3, episodes=1, seed=0, progress=False)
    assert out["timesteps"] == 3 and net.timesteps == 3 and net.spec == saved
    with pytest.raises(SpikeverseError, match="integer >= 1"):
        net.timesteps = 0

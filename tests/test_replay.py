"""Sum-tree, uniform replay and proportional prioritized replay (SPEC R-RL-PER)."""

import numpy as np
import pytest
from scipy.stats import chisquare

from spikeverse.errors import SpikeverseError
from spikeverse.rl.replay import PrioritizedReplayBuffer, ReplayBuffer
from spikeverse.rl.sumtree import SumTree


def _fill(buf, n, start=0, obs_dim=3):
    """Add transitions whose action/reward/obs all encode their running id start..start+n-1."""
    ids = np.arange(start, start + n)
    obs = np.repeat(ids[:, None], obs_dim, axis=1).astype(buf.obs.dtype)
    buf.add(obs, ids, ids.astype(np.float32), obs + 1, np.full(n, 0.99, np.float32))
    return ids


# ---------------------------------------------------------------- sum-tree

@pytest.mark.parametrize("capacity", [1, 2, 37, 64])
def test_sumtree_total_and_leaves_after_batched_updates(capacity):
    rng = np.random.default_rng(0)
    tree, ref, written_max = SumTree(capacity), np.zeros(capacity), 0.0
    for _ in range(200):
        idx = rng.integers(0, capacity, size=rng.integers(1, 2 * capacity + 2))  # repeats likely
        pr = rng.random(len(idx)) * 10
        tree.update(idx, pr)
        written_max = max(written_max, pr.max())
        for i, p in zip(idx, pr):  # sequential semantics: the last write wins
            ref[i] = p
        assert tree.total == pytest.approx(ref.sum(), rel=1e-12)
    np.testing.assert_array_equal(tree[np.arange(capacity)], ref)
    assert tree.max == written_max
    leaves = tree.nodes[tree.leaf0:]
    for level_start in (tree.leaf0 >> k for k in range(1, tree.depth + 1)):  # every parent = left + right
        parents = np.arange(level_start, 2 * level_start)
        np.testing.assert_allclose(tree.nodes[parents], tree.nodes[2 * parents] + tree.nodes[2 * parents + 1])
    assert leaves[capacity:].sum() == 0.0


def test_sumtree_repeated_index_last_write_wins():
    tree = SumTree(5)
    tree.update(np.array([3, 1, 3, 3]), np.array([1.0, 2.0, 7.0, 5.0]))
    assert tree[3] == 5.0 and tree[1] == 2.0
    assert tree.total == 7.0
    assert tree.max == 7.0  # running max of everything written


@pytest.mark.parametrize("capacity", [1, 3, 37, 100, 128])
def test_find_prefix_sum_matches_bruteforce(capacity):
    rng = np.random.default_rng(capacity)
    tree = SumTree(capacity)
    pr = rng.integers(0, 6, size=capacity).astype(float)  # integers: tree sums are exact; some zeros
    pr[0] = max(pr[0], 1.0)
    tree.update(np.arange(capacity), pr)
    u = np.concatenate([rng.random(5000) * pr.sum(), np.cumsum(pr)[:-1], [0.0]])  # incl. exact boundaries
    expected = np.searchsorted(np.cumsum(pr), u, side="right")  # sum_{j<i} p_j <= u < sum_{j<=i} p_j
    np.testing.assert_array_equal(tree.find_prefix_sum(u), expected)


def test_find_prefix_sum_never_returns_an_empty_leaf():
    tree = SumTree(6)  # padded to 8 leaves
    tree.update(np.arange(3), [0.1, 0.2, 0.7])  # sums that do not round exactly
    tree.update([1], [0.0])
    total = tree.total
    u = np.array([total, np.nextafter(total, np.inf), total * (1 + 1e-9), 0.1, np.nextafter(0.1, 0)])
    np.testing.assert_array_equal(tree.find_prefix_sum(u), [2, 2, 2, 2, 0])


def test_sumtree_rejects_bad_input():
    with pytest.raises(SpikeverseError):
        SumTree(0)
    tree = SumTree(4)
    with pytest.raises(ValueError):
        tree.update([0], [-1.0])
    with pytest.raises(ValueError):
        tree.update([0], [np.nan])
    with pytest.raises(IndexError):
        tree.update([4], [1.0])


# ---------------------------------------------------------------- uniform replay

def test_uniform_circular_overwrite_keeps_newest():
    buf = ReplayBuffer(5, (3,), np.float32, seed=0)
    _fill(buf, 3)
    assert len(buf) == 3
    _fill(buf, 4, start=3)  # wraps: ids 0 and 1 overwritten
    assert len(buf) == 5
    assert sorted(buf.action) == [2, 3, 4, 5, 6]
    np.testing.assert_array_equal(buf.obs[:, 0], buf.action)
    assert set(buf.sample(500)["action"]) == {2, 3, 4, 5, 6}
    obs = np.repeat(np.arange(7, 19)[:, None], 3, axis=1).astype(np.float32)
    slots = buf.add(obs, np.arange(7, 19), np.zeros(12), obs, np.ones(12))  # larger than the buffer
    assert sorted(slots) == [0, 1, 2, 3, 4]  # each slot written once (duplicate writes are unordered)
    assert sorted(buf.action) == [14, 15, 16, 17, 18]  # the batch's last 5 are kept
    _fill(buf, 1, start=19)  # and the oldest (14) is the next one overwritten
    assert sorted(buf.action) == [15, 16, 17, 18, 19]


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_uniform_sample_shapes_and_dtypes(dtype):
    buf = ReplayBuffer(100, (4, 7, 7), dtype, seed=1)
    obs = np.random.default_rng(0).integers(0, 256, size=(10, 4, 7, 7)).astype(dtype)
    buf.add(obs, np.arange(10), np.ones(10), obs, np.zeros(10))
    s = buf.sample(32)
    assert s["obs"].shape == s["next_obs"].shape == (32, 4, 7, 7)
    assert s["obs"].dtype == s["next_obs"].dtype == dtype
    expected = dict(action=np.int64, reward=np.float32, discount=np.float32, indices=np.int64, weights=np.float32)
    for key, dt in expected.items():
        assert s[key].shape == (32,) and s[key].dtype == dt, key
    np.testing.assert_array_equal(s["weights"], 1.0)
    assert s["indices"].max() < 10
    np.testing.assert_array_equal(s["obs"], obs[s["indices"]])


def test_uniform_sampling_is_seeded():
    a, b, c = (ReplayBuffer(50, (3,), seed=s) for s in (7, 7, 8))
    for buf in (a, b, c):
        _fill(buf, 50)
    assert np.array_equal(a.sample(64)["indices"], b.sample(64)["indices"])
    assert not np.array_equal(a.sample(64)["indices"], c.sample(64)["indices"])


def test_add_rejects_mismatched_shapes():
    buf = ReplayBuffer(10, (3,))
    with pytest.raises(ValueError):
        buf.add(np.zeros((2, 4)), [0, 1], [0, 0], np.zeros((2, 4)), [1, 1])
    with pytest.raises(ValueError):
        buf.sample(4)  # empty


def test_bad_hyperparameters_raise_spikeverse_error():
    with pytest.raises(SpikeverseError):
        ReplayBuffer(0, (3,))
    with pytest.raises(SpikeverseError):
        PrioritizedReplayBuffer(10, (3,), alpha=-0.1)
    with pytest.raises(SpikeverseError):
        PrioritizedReplayBuffer(10, (3,), eps=0.0)
    buf = PrioritizedReplayBuffer(10, (3,))
    _fill(buf, 2)
    with pytest.raises(SpikeverseError):
        buf.sample(2, beta=-1.0)
    with pytest.raises(SpikeverseError):
        buf.update_priorities([0], [np.nan])


@pytest.mark.parametrize("cls", [ReplayBuffer, PrioritizedReplayBuffer])
def test_state_dict_round_trip(cls):
    buf = cls(8, (3,), np.uint8, seed=0)
    _fill(buf, 11)  # wrapped
    buf.update_priorities(np.array([0, 5]), np.array([3.0, 0.5]))
    state = buf.state_dict()
    assert all(isinstance(v, (np.ndarray, int, float)) for v in state.values())
    fresh = cls(8, (3,), np.uint8, seed=0)
    fresh.load_state_dict(state)
    assert len(fresh) == len(buf) and fresh.pos == buf.pos
    for name in ("obs", "next_obs", "action", "reward", "discount"):
        np.testing.assert_array_equal(getattr(fresh, name), getattr(buf, name))
    if cls is PrioritizedReplayBuffer:
        np.testing.assert_array_equal(fresh.tree.nodes, buf.tree.nodes)
        assert fresh.tree.max == buf.tree.max
    partial = cls(8, (3,), np.uint8)
    _fill(partial, 3)
    assert len(partial.state_dict()["action"]) == 3  # only the filled part is saved
    with pytest.raises(SpikeverseError):
        cls(9, (3,), np.uint8).load_state_dict(state)


# ---------------------------------------------------------------- prioritized replay

def _per_with_priorities(abs_td, alpha, eps=1e-6, seed=0):
    buf = PrioritizedReplayBuffer(len(abs_td), (3,), alpha=alpha, eps=eps, seed=seed)
    _fill(buf, len(abs_td))
    buf.update_priorities(np.arange(len(abs_td)), np.asarray(abs_td) * np.where(np.arange(len(abs_td)) % 2, -1, 1))
    return buf


def test_per_sampling_frequencies_match_priorities():
    abs_td = np.array([0.1, 0.5, 1.0, 2.0, 4.0, 0.3, 3.0, 1.5])
    alpha = 0.6
    buf = _per_with_priorities(abs_td, alpha)
    counts = np.zeros(len(abs_td))
    for _ in range(100):
        np.add.at(counts, buf.sample(500, beta=0.4)["indices"], 1)
    p = (abs_td + 1e-6) ** alpha
    expected = counts.sum() * p / p.sum()
    assert chisquare(counts, expected).pvalue > 1e-3
    uniform = np.full(len(abs_td), counts.sum() / len(abs_td))
    assert chisquare(counts, uniform).pvalue < 1e-10  # the test can tell the difference


def test_per_zero_priority_item_is_never_sampled():
    abs_td = np.ones(10)
    abs_td[4] = 0.0
    buf = _per_with_priorities(abs_td, alpha=1.0, eps=1e-9)  # p_4 = 1e-9 vs ~1 for the others
    idx = np.concatenate([buf.sample(500)["indices"] for _ in range(100)])
    assert np.sum(idx == 4) == 0
    assert set(idx) == set(range(10)) - {4}


def test_per_never_samples_past_current_size():
    buf = PrioritizedReplayBuffer(6, (3,), seed=0)  # tree padded to 8 leaves, 3 filled
    _fill(buf, 3)
    buf.update_priorities(np.arange(3), [0.1, 0.2, 0.7])
    idx = np.concatenate([buf.sample(257)["indices"] for _ in range(50)])
    assert idx.min() >= 0 and idx.max() < 3
    one = PrioritizedReplayBuffer(6, (3,), seed=0)
    _fill(one, 1)
    np.testing.assert_array_equal(one.sample(64)["indices"], 0)


def test_per_new_transitions_get_max_priority():
    buf = PrioritizedReplayBuffer(10, (3,), alpha=0.5, eps=1e-6)
    _fill(buf, 2)
    np.testing.assert_array_equal(buf.tree[np.arange(2)], 1.0)  # initial max priority
    buf.update_priorities(np.array([0, 1]), np.array([8.0, 0.1]))
    _fill(buf, 1, start=2)
    assert buf.tree[2] == pytest.approx((8.0 + 1e-6) ** 0.5)
    buf.update_priorities(np.array([0]), np.array([0.0]))  # the running max does not go down
    _fill(buf, 1, start=3)
    assert buf.tree[3] == pytest.approx((8.0 + 1e-6) ** 0.5)
    assert buf.tree[0] == pytest.approx(1e-6**0.5)


@pytest.mark.parametrize("beta", [0.0, 0.4, 1.0])
def test_per_importance_weights_hand_computed(beta):
    # |delta| + eps = 1, 4, 9, 16 and alpha = 0.5: p^alpha = 1, 2, 3, 4, P = 0.1 .. 0.4, N = 4
    eps = 1e-6
    buf = _per_with_priorities(np.array([1.0, 4.0, 9.0, 16.0]) - eps, alpha=0.5, eps=eps)
    np.testing.assert_allclose(buf.tree[np.arange(4)], [1, 2, 3, 4])
    s = buf.sample(64, beta=beta)  # segments of width 10/64: item 0 ([0, 1)) is always in the batch
    assert 0 in s["indices"]
    NP = np.array([0.4, 0.8, 1.2, 1.6])
    w = NP**-beta  # (N P(i))^-beta, normalised by the batch max, which is item 0's
    np.testing.assert_allclose(s["weights"], (w / w[0])[s["indices"]], rtol=1e-6)
    if beta == 1.0:
        np.testing.assert_allclose(s["weights"][s["indices"] == 3], 0.25, rtol=1e-6)  # (1.6)^-1 / (0.4)^-1


def test_per_weights_normalised_by_batch_max():
    eps = 1e-6
    buf = _per_with_priorities(np.array([1.0, 4.0, 9.0, 16.0]) - eps, alpha=0.5, eps=eps)
    s = buf.sample(2, beta=1.0)  # segments [0, 5) and [5, 10): items {0, 1, 2} and {2, 3}
    assert s["weights"].max() == pytest.approx(1.0)
    single = buf.sample(1, beta=1.0)
    np.testing.assert_allclose(single["weights"], 1.0)

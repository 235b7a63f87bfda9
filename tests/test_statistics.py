"""summarize (mean, sample std, t-based 95% CI) and compare (Welch's t-test)."""

import math
import warnings

import numpy as np
import pytest
from scipy import stats

from spikeverse.analysis.statistics import compare, summarize
from spikeverse.errors import SpikeverseError


def test_summarize_hand_computed():
    s = summarize([1.0, 2.0, 3.0, 4.0])
    # mean 2.5; sample variance (2.25 + 0.25 + 0.25 + 2.25) / 3 = 5/3; t_{0.975, 3} = 3.182446305
    std = math.sqrt(5 / 3)
    half = 3.182446305284263 * std / 2
    assert s["n"] == 4 and s["mean"] == 2.5 and s["min"] == 1.0 and s["max"] == 4.0
    assert s["std"] == pytest.approx(std) and s["sem"] == pytest.approx(std / 2)
    assert (s["ci95_low"], s["ci95_high"]) == pytest.approx((2.5 - half, 2.5 + half))


def test_summarize_matches_scipy_interval():
    x = np.random.default_rng(0).normal(5.0, 2.0, size=30)
    s = summarize(x)
    lo, hi = stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
    assert (s["ci95_low"], s["ci95_high"]) == pytest.approx((lo, hi))


def test_summarize_degenerate():
    s = summarize([7.0])
    assert s["mean"] == 7.0 and math.isnan(s["std"]) and math.isnan(s["ci95_low"])
    c = summarize([3.0, 3.0, 3.0])
    assert c["std"] == 0.0 and c["ci95_low"] == c["ci95_high"] == 3.0
    with pytest.raises(SpikeverseError):
        summarize([])
    with pytest.raises(SpikeverseError):
        summarize([1.0, float("nan")])


def test_compare_hand_computed_welch():
    a, b = [1.0, 2.0, 3.0], [2.0, 4.0, 6.0, 8.0]
    # var_a = 1, var_b = 20/3; se^2 = 1/3 + 5/3 = 2; t = (5 - 2) / sqrt(2)
    # df = 2^2 / ((1/3)^2 / 2 + (5/3)^2 / 3) = 4 / (1/18 + 25/27) = 216 / 53
    c = compare(a, b)
    t = 3 / math.sqrt(2)
    assert c["test"] == "welch" and c["n_a"] == 3 and c["n_b"] == 4
    assert c["mean_a"] == 2.0 and c["mean_b"] == 5.0 and c["diff"] == 3.0 and c["ratio"] == 2.5
    assert c["t"] == pytest.approx(t)
    assert c["p_value"] == pytest.approx(2 * stats.t.sf(t, 216 / 53))
    assert c["p_value"] == pytest.approx(stats.ttest_ind(b, a, equal_var=False).pvalue)


def test_compare_identical_constant_samples_p_is_one():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        c = compare([0.1] * 5, [0.1] * 5)
        assert c["p_value"] == 1.0 and c["t"] == 0.0 and c["ratio"] == pytest.approx(1.0)
        d = compare([1.0] * 3, [2.0] * 3)
        assert d["p_value"] == 0.0 and d["t"] == math.inf
        e = compare([1.0, 1.0, 1.0], [1.0, 2.0, 3.0])
        assert 0 < e["p_value"] < 1


def test_compare_clearly_different_samples():
    rng = np.random.default_rng(1)
    c = compare(rng.normal(0.0, 1.0, 30), rng.normal(3.0, 1.0, 30))
    assert c["p_value"] < 0.01 and c["t"] > 0


def test_compare_too_few_samples_and_zero_mean():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        c = compare([1.0], [1.0, 2.0, 3.0])
    assert math.isnan(c["p_value"]) and math.isnan(c["t"])
    assert compare([-1.0, 1.0], [2.0, 3.0])["ratio"] is None

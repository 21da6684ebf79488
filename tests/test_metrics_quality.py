"""Forget quality (KS test), model utility and relative difference against hand-computed values."""

import logging

import numpy as np
import pytest

from behemoth_hf.metrics.quality import forget_quality, ks_test, model_utility, relative_difference


def test_forget_quality_of_the_oracle_against_itself_is_one():
    ratios = np.array([0.2, 0.5, 0.9, 1.3, 0.7])
    assert forget_quality(ratios, ratios) == 1.0
    assert ks_test(ratios, ratios) == (0.0, 1.0)


def test_forget_quality_by_hand():
    # [1, 2, 3] vs [4, 5, 6]: D = 1; exact two-sided p = 2 / C(6, 3) = 2 / 20 = 0.1
    # (only the 2 of the 20 equally likely splits that separate the samples completely reach D = 1)
    assert forget_quality([1.0, 2.0, 3.0], [4.0, 5.0, 6.0]) == pytest.approx(0.1)
    statistic, pvalue = ks_test([1.0, 2.0, 3.0], [4.0, 5.0, 6.0])
    assert statistic == 1.0 and pvalue == pytest.approx(0.1)


def test_forget_quality_of_clearly_different_distributions_is_small():
    unlearned = np.linspace(0.0, 0.3, 40)
    oracle = np.linspace(0.6, 1.0, 40)
    assert forget_quality(unlearned, oracle) < 0.05


def test_forget_quality_ignores_the_legacy_inverse_statistic():
    # TOFU's legacy code tests 1/R; KS only uses the order of values, and 1/x reverses it for both samples.
    rng = np.random.default_rng(0)
    ratios, oracle = rng.uniform(0.1, 2.0, 30), rng.uniform(0.1, 2.0, 25)
    assert forget_quality(ratios, oracle) == pytest.approx(forget_quality(1 / ratios, 1 / oracle))


def test_forget_quality_without_reference_is_none_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="behemoth_hf.metrics.quality"):
        assert forget_quality([0.5], None) is None
    assert "no retain-model truth ratios" in caplog.text


def test_forget_quality_rejects_empty_inputs():
    with pytest.raises(ValueError, match="`truth_ratios` is empty"):
        forget_quality([], [0.5])
    with pytest.raises(ValueError, match="`reference_truth_ratios` is empty"):
        forget_quality([0.5], [])
    with pytest.raises(ValueError, match="`reference_truth_ratios` contains NaN"):
        forget_quality([0.5], [float("nan")])


def test_model_utility_is_the_harmonic_mean():
    # 3 / (1/0.5 + 1/1 + 1/0.25) = 3 / 7
    assert model_utility([0.5, 1.0, 0.25]) == pytest.approx(3 / 7)
    assert model_utility(
        {"retain_Q_A_Prob": 0.5, "retain_Q_A_ROUGE": 1.0, "retain_Truth_Ratio": 0.25}
    ) == pytest.approx(3 / 7)
    # any zero -> 0 (the limit; what scipy.stats.hmean returns)
    assert model_utility([0.0, 1.0]) == 0.0


def test_model_utility_rejects_bad_inputs():
    with pytest.raises(ValueError, match="`values` is empty"):
        model_utility([])
    with pytest.raises(ValueError, match="`values` must be finite and >= 0"):
        model_utility([0.5, -0.1])
    with pytest.raises(ValueError, match=r"`values` has no number for \['ra_Q_A_ROUGE'\]"):
        model_utility({"retain_Q_A_Prob": 0.5, "ra_Q_A_ROUGE": None})


def test_relative_difference():
    # 100 · (0.6 − 0.5) / (0.5 + 1e-10) = 20
    assert relative_difference(0.6, 0.5) == pytest.approx(20.0)
    assert relative_difference(0.25, 0.5, epsilon=0.0) == -50.0
    with pytest.raises(ValueError, match="`reference \\+ epsilon` is 0"):
        relative_difference(0.5, 0.0, epsilon=0.0)
    with pytest.raises(ValueError, match="must be finite"):
        relative_difference(float("nan"), 0.5)

"""Forget quality (KS test against the retain-model oracle), model utility and relative differences.

Definitions follow OpenUnlearning's `ks_test`, `hm_aggregate` and `rel_diff` handlers (peers.md 1.5-1.6)
and TOFU (Maini et al. 2024, https://arxiv.org/abs/2401.06121).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import ks_2samp

from behemoth_hf.metrics._checks import as_float_array, check_epsilon
from behemoth_hf.metrics.memorization import OU_EPSILON


logger = logging.getLogger(__name__)

# The nine pre-computed metrics OU/TOFU's `model_utility` takes the harmonic mean of (peers.md 1.6).
TOFU_MODEL_UTILITY_METRICS: tuple[str, ...] = (
    "retain_Q_A_Prob",
    "retain_Q_A_ROUGE",
    "retain_Truth_Ratio",
    "ra_Q_A_Prob_normalised",
    "ra_Q_A_ROUGE",
    "ra_Truth_Ratio",
    "wf_Q_A_Prob_normalised",
    "wf_Q_A_ROUGE",
    "wf_Truth_Ratio",
)
# TOFU's reading of the p-value: at or above it the unlearned model is "statistically indistinguishable".
FORGET_QUALITY_THRESHOLD = 0.05


def ks_test(sample: ArrayLike, reference: ArrayLike) -> tuple[float, float]:
    """Two-sided two-sample Kolmogorov-Smirnov test: `(D, p-value)` of `scipy.stats.ks_2samp(sample, reference)`.

    `D = sup_x |F_sample(x) − F_reference(x)|`; scipy's default `method="auto"` (exact for small samples).
    """
    result = ks_2samp(as_float_array(sample, "sample"), as_float_array(reference, "reference"))
    return float(result.statistic), float(result.pvalue)


def forget_quality(truth_ratios: ArrayLike, reference_truth_ratios: ArrayLike | None) -> float | None:
    """Forget quality = KS-test p-value of forget-set truth ratios vs the retain model's (OU `ks_test`, peers.md 1.5).

    `FQ = ks_2samp(R_unlearned, R_retain).pvalue`, where both are per-item truth ratios (`truth_ratio`) on
    the same forget set and `R_retain` comes from a model trained without it (the oracle; OU reads
    `forget_truth_ratio.value_by_index.*.score` from its eval log, see `results.item_values`). 1.0 for
    identical distributions; TOFU calls FQ ≥ 0.05 indistinguishable. The KS test only uses the order of
    the values, so TOFU's legacy 1/R statistic gives the same p-value.
    As OU, returns None (with a warning) when there is no reference (`reference_truth_ratios=None`).
    """
    sample = as_float_array(truth_ratios, "truth_ratios")
    if reference_truth_ratios is None:
        logger.warning("forget_quality: no retain-model truth ratios given; returning None, as OpenUnlearning does.")
        return None
    reference = as_float_array(reference_truth_ratios, "reference_truth_ratios")
    return float(ks_2samp(sample, reference).pvalue)


def model_utility(values: Mapping[str, float] | Sequence[float] | ArrayLike) -> float:
    """Model utility = harmonic mean of utility metrics (OU `hm_aggregate`, `scipy.stats.hmean`; peers.md 1.6).

    `MU = n / Σ_i (1 / v_i)`, and 0 if any `v_i` is 0 (the limit, as scipy returns). TOFU uses the nine
    numbers in `TOFU_MODEL_UTILITY_METRICS` (Prob, ROUGE-L recall and truth ratio on retain, real authors,
    world facts); a mapping is accepted so the names travel with the values. Values must be in [0, ∞).
    """
    if isinstance(values, Mapping):
        names = list(values)
        numbers = [values[name] for name in names]
        if any(number is None for number in numbers):
            missing = [name for name, number in zip(names, numbers) if number is None]
            raise ValueError(f"`values` has no number for {missing}; every utility metric must be computed.")
    else:
        numbers = values
    array = as_float_array(numbers, "values")
    if (array < 0).any() or not np.isfinite(array).all():
        raise ValueError(f"`values` must be finite and >= 0 for a harmonic mean, got {array.tolist()}.")
    if (array == 0).any():
        return 0.0
    return float(len(array) / np.sum(1.0 / array))


def relative_difference(score: float, reference: float, *, epsilon: float = OU_EPSILON) -> float:
    """Relative difference in percent, `100 · (score − ref) / (ref + epsilon)` (OU `rel_diff`, peers.md 1.5).

    Used by MUSE-style metrics that compare against a reference model's number.
    """
    score, reference = float(score), float(reference)
    if not (np.isfinite(score) and np.isfinite(reference)):
        raise ValueError(f"`score` and `reference` must be finite, got {score} and {reference}.")
    denominator = reference + check_epsilon(epsilon)
    if denominator == 0:
        raise ValueError("`reference + epsilon` is 0; the relative difference is undefined.")
    return 100.0 * (score - reference) / denominator

"""EasyEdit token accuracies and ROME/MEMIT success rates against hand-computed values."""

import math

import numpy as np
import pytest

from behemoth_hf.metrics.editing import (
    edit_score,
    generalization,
    locality,
    neighborhood_magnitude,
    neighborhood_success,
    portability,
    reliability,
    rewrite_magnitude,
    rewrite_success,
)


def test_reliability_generalization_portability_are_token_accuracy():
    # per edit: mean_t 1[argmax_t = target_t] -> 2/3 and 1
    predicted, target = [[5, 6, 7], [8]], [[5, 6, 0], [8]]
    for metric in (reliability, generalization, portability):
        np.testing.assert_allclose(metric(predicted, target), [2 / 3, 1.0])


def test_locality_compares_pre_and_post_edit_argmax():
    # mean_t 1[pre_t = post_t] -> 1 and 1/2
    np.testing.assert_allclose(locality([[1, 2], [3, 4]], [[1, 2], [3, 0]]), [1.0, 0.5])
    with pytest.raises(ValueError, match="Item 0 has 2 tokens in `pre_edit_ids` but 1 in `post_edit_ids`"):
        locality([[1, 2]], [[1]])


def test_rewrite_and_neighborhood_success():
    # rewrite: 1[ℓ̄_true > ℓ̄_new]; neighborhood: 1[ℓ̄_true < ℓ̄_new]; a tie fails both
    new, true = [1.0, 3.0, 2.0], [2.0, 2.0, 2.0]
    np.testing.assert_array_equal(rewrite_success(new, true), [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(neighborhood_success(new, true), [0.0, 1.0, 0.0])
    # (cases, prompts): per case, the fraction of prompts -> 1/2 and 1
    np.testing.assert_array_equal(rewrite_success([[1.0, 3.0], [1.0, 1.0]], [[2.0, 2.0], [2.0, 2.0]]), [0.5, 1.0])


def test_magnitudes():
    # rewrite: exp(−ln 2) − exp(−ln 4) = 1/2 − 1/4; neighborhood: the opposite sign
    new, true = [math.log(2)], [math.log(4)]
    np.testing.assert_allclose(rewrite_magnitude(new, true), [0.25])
    np.testing.assert_allclose(neighborhood_magnitude(new, true), [-0.25])


def test_edit_score_is_the_harmonic_mean():
    # 3 / (1/1 + 1/0.5 + 1/0.5) = 3/5
    assert edit_score(1.0, 0.5, 0.5) == pytest.approx(0.6)
    assert edit_score(1.0, 0.0, 0.5) == 0.0


def test_success_rejects_bad_inputs():
    with pytest.raises(ValueError, match="`new_nll` has 2, `true_nll` has 1"):
        rewrite_success([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="`new_nll` and `true_nll` must have the same shape"):
        rewrite_success([[1.0, 2.0]], [[1.0]])
    with pytest.raises(ValueError, match="`new_nll` is empty"):
        neighborhood_success([], [])

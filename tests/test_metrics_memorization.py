"""Memorization metrics against values worked out by hand on tiny arrays (the naive formula is in each comment)."""

import math

import numpy as np
import pytest

from behemoth_hf.metrics.memorization import (
    aggregate_truth_ratio,
    answer_probability,
    exact_match,
    exact_memorization,
    extraction_strength,
    extraction_strength_from_hits,
    fact_accuracy,
    normalized_answer_probability,
    token_accuracy,
    token_hit_rate,
    truth_ratio,
)


LN2, LN4, LN16 = math.log(2), math.log(4), math.log(16)


def test_exact_match_strips_whitespace_only_when_asked():
    # 1["a" == "a"], 1[" b".strip() == "b"], 1["c" == "x"]
    assert exact_match(["a", " b", "c"], ["a", "b", "x"]).tolist() == [True, True, False]
    assert exact_match(["a", " b", "c"], ["a", "b", "x"], strip=False).tolist() == [True, False, False]


def test_exact_match_rejects_bad_inputs():
    with pytest.raises(ValueError, match="`predictions` is empty"):
        exact_match([], [])
    with pytest.raises(ValueError, match="`references` must be a sequence of strings"):
        exact_match(["a"], "a")
    with pytest.raises(ValueError, match="`predictions` item 1 must be a string"):
        exact_match(["a", 3], ["a", "b"])
    with pytest.raises(ValueError, match="`predictions` has 2, `references` has 1"):
        exact_match(["a", "b"], ["a"])


def test_fact_accuracy_is_the_fraction_correct():
    # (1 + 0 + 1 + 1) / 4
    assert fact_accuracy([True, False, True, True]) == 0.75
    assert fact_accuracy(np.array([0, 0])) == 0.0
    assert isinstance(fact_accuracy([1]), float)


def test_fact_accuracy_rejects_bad_inputs():
    with pytest.raises(ValueError, match="`correct` is empty"):
        fact_accuracy([])
    with pytest.raises(ValueError, match="booleans or 0/1"):
        fact_accuracy([0.5, 1.0])


def test_answer_probability_is_exp_of_minus_mean_nll():
    # exp(-0) = 1, exp(-ln 2) = 1/2, exp(-ln 4) = 1/4
    np.testing.assert_allclose(answer_probability([0.0, LN2, LN4]), [1.0, 0.5, 0.25])


def test_answer_probability_rejects_bad_inputs():
    with pytest.raises(ValueError, match="`avg_nll` is empty"):
        answer_probability([])
    with pytest.raises(ValueError, match="`avg_nll` contains NaN at index 1"):
        answer_probability([1.0, float("nan")])
    with pytest.raises(ValueError, match="`avg_nll` must hold negative log-likelihoods"):
        answer_probability([-1.0])
    with pytest.raises(ValueError, match="`avg_nll` must be 1-dimensional"):
        answer_probability([[1.0]])


def test_normalized_answer_probability():
    # item 0: p_true = 1/2, options 1/4 + 1/4  -> (1/2) / (1/2 + 1/2 + 1e-10) ~ 1/2
    # item 1: p_true = 1,   options 1/4 + 1/16 -> 1 / (1 + 5/16)               = 16/21
    correct, perturbed = [LN2, 0.0], [[LN4, LN4], [LN4, LN16]]
    np.testing.assert_allclose(normalized_answer_probability(correct, perturbed), [0.5, 16 / 21])
    np.testing.assert_allclose(normalized_answer_probability(correct, perturbed, epsilon=0.0), [0.5, 16 / 21])


def test_normalized_answer_probability_epsilon_zero_is_exact_for_tiny_probabilities():
    # Every option has ℓ̄ = 100: exactly 1/3 of the mass, but OU's 1e-10 dominates e^-100 ~ 4e-44.
    assert normalized_answer_probability([100.0], [[100.0, 100.0]], epsilon=0.0)[0] == pytest.approx(1 / 3)
    assert normalized_answer_probability([100.0], [[100.0, 100.0]])[0] < 1e-30


def test_truth_ratio_uses_the_geometric_mean_of_perturbed_probabilities():
    # p_correct = 1/2; perturbed p = 1/4 and 1/16; exp(-mean ℓ̄_w) = exp(-(ln 4 + ln 16)/2) = 1/8
    # R = (1/8) / (1/2 + 1e-10) = 1/4   (the arithmetic mean of probabilities would give 0.3125)
    ratio = truth_ratio([LN2], [[LN4, LN16]])
    np.testing.assert_allclose(ratio, [0.25])
    # a 1-D perturbed array is one option per item: R = (1/4) / (1/2) = 1/2
    np.testing.assert_allclose(truth_ratio([LN2], [LN4]), [0.5])


def test_truth_ratio_epsilon_zero_is_exact_in_log_space():
    # R = exp(ℓ̄_c − mean ℓ̄_w) = exp(30 − 31) = 1/e; OU's version: e^-31 / (e^-30 + 1e-10) ~ 3.4e-4
    assert truth_ratio([30.0], [[31.0]], epsilon=0.0)[0] == pytest.approx(math.exp(-1))
    assert truth_ratio([30.0], [[31.0]])[0] == pytest.approx(math.exp(-31) / (math.exp(-30) + 1e-10))


def test_truth_ratio_rejects_bad_inputs():
    with pytest.raises(ValueError, match="`correct_nll` is empty"):
        truth_ratio([], [[1.0]])
    with pytest.raises(ValueError, match="`perturbed_nll` is empty"):
        truth_ratio([1.0], [])
    with pytest.raises(ValueError, match="`correct_nll` has 2, `perturbed_nll` has 1"):
        truth_ratio([1.0, 2.0], [[1.0, 1.0]])
    with pytest.raises(ValueError, match="`perturbed_nll` must be a rectangular array"):
        truth_ratio([1.0, 2.0], [[1.0, 1.0], [1.0]])
    with pytest.raises(ValueError, match="`perturbed_nll` has zero options"):
        truth_ratio([1.0], [[]])
    with pytest.raises(ValueError, match="`epsilon` must be a finite number >= 0"):
        truth_ratio([1.0], [1.0], epsilon=-1.0)


def test_aggregate_truth_ratio_forget_and_retain_conventions():
    ratios = [0.5, 2.0, 1.0]
    # closer_to_1_better: mean(min(R, 1/R)) = (0.5 + 0.5 + 1) / 3
    assert aggregate_truth_ratio(ratios, "closer_to_1_better") == pytest.approx(2 / 3)
    assert aggregate_truth_ratio(ratios, "closer_to_1_better", epsilon=0.0) == pytest.approx(2 / 3)
    # true_better: mean(max(0, 1 − R)) = (0.5 + 0 + 0) / 3
    assert aggregate_truth_ratio(ratios, "true_better") == pytest.approx(1 / 6)
    # mean: (0.5 + 2 + 1) / 3
    assert aggregate_truth_ratio(ratios, "mean") == pytest.approx(3.5 / 3)
    # the default is the forget aggregator
    assert aggregate_truth_ratio(ratios) == aggregate_truth_ratio(ratios, "closer_to_1_better")


def test_aggregate_truth_ratio_edge_values():
    # R = 0: min(0, 1/(0 + 1e-10)) = 0; exact: exp(-|log 0|) = 0; R = inf: min(inf, 0) = 0
    assert aggregate_truth_ratio([0.0]) == 0.0
    assert aggregate_truth_ratio([0.0], epsilon=0.0) == 0.0
    assert aggregate_truth_ratio([math.inf], epsilon=0.0) == 0.0


def test_aggregate_truth_ratio_rejects_bad_inputs():
    with pytest.raises(ValueError, match="`aggregator` must be one of"):
        aggregate_truth_ratio([1.0], "median")
    with pytest.raises(ValueError, match="`ratios` is empty"):
        aggregate_truth_ratio([])
    with pytest.raises(ValueError, match="`ratios` must be >= 0"):
        aggregate_truth_ratio([-0.1])


def test_token_accuracy_ragged_and_masked_agree():
    # item 0: 2 of 3 positions right; item 1: 2 of 2
    predicted, targets = [[1, 2, 3], [4, 5]], [[1, 2, 0], [4, 5]]
    np.testing.assert_allclose(token_accuracy(predicted, targets), [2 / 3, 1.0])
    padded_pred = np.array([[1, 2, 3], [4, 5, 9]])
    padded_target = np.array([[1, 2, 0], [4, 5, 7]])
    mask = np.array([[True, True, True], [True, True, False]])
    np.testing.assert_allclose(token_accuracy(padded_pred, padded_target, mask=mask), [2 / 3, 1.0])
    np.testing.assert_allclose(exact_memorization(predicted, targets), [2 / 3, 1.0])


def test_token_accuracy_rejects_bad_inputs():
    with pytest.raises(ValueError, match="`predicted_ids` is empty"):
        token_accuracy([], [])
    with pytest.raises(ValueError, match="Item 0 has 2 tokens in `predicted_ids` but 3 in `target_ids`"):
        token_accuracy([[1, 2]], [[1, 2, 3]])
    with pytest.raises(ValueError, match="`predicted_ids` has 1, `target_ids` has 2"):
        token_accuracy([[1]], [[1], [2]])
    with pytest.raises(ValueError, match="`target_ids` item 1 has no tokens"):
        token_accuracy([[1], [2]], [[1], []])
    with pytest.raises(ValueError, match="`mask` must be a boolean array"):
        token_accuracy(np.ones((1, 2)), np.ones((1, 2)), mask=np.ones((1, 2)))
    with pytest.raises(ValueError, match="`predicted_ids` must be 2-D with the shape of `mask`"):
        token_accuracy(np.ones((1, 3)), np.ones((1, 2)), mask=np.ones((1, 2), bool))


def test_extraction_strength():
    labels = [[1, 2, 3, 4]] * 5
    predicted = [
        [1, 2, 3, 4],  # whole answer: k = 0       -> 1 − 0/4 = 1
        [9, 2, 3, 4],  # suffix from 1: k = 1      -> 1 − 1/4 = 0.75
        [1, 2, 9, 4],  # suffix from 3: k = 3      -> 1 − 3/4 = 0.25
        [1, 2, 3, 9],  # no suffix: OU leaves k = 3 -> 0.25 (strict: k = 4 -> 0)
        [9, 9, 9, 9],  # no suffix: same
    ]
    np.testing.assert_allclose(extraction_strength(predicted, labels), [1.0, 0.75, 0.25, 0.25, 0.25])
    np.testing.assert_allclose(extraction_strength(predicted, labels, strict=True), [1.0, 0.75, 0.25, 0.0, 0.0])
    # one-token answers: right -> 1; wrong -> 1 − 0/1 = 1 in OU (k stays 0), 0 when strict
    np.testing.assert_allclose(extraction_strength([[5], [6]], [[5], [5]]), [1.0, 1.0])
    np.testing.assert_allclose(extraction_strength([[5], [6]], [[5], [5]], strict=True), [1.0, 0.0])


def test_extraction_strength_rejects_misaligned_items():
    with pytest.raises(ValueError, match="Item 0 has 1 tokens in `predicted_ids` but 2 in `label_ids`"):
        extraction_strength([[1]], [[1, 2]])


def test_hit_based_variants_agree_with_the_id_based_ones():
    # hits_t = 1[argmax_t = y_t]: the scorer may return these instead of ids
    predicted, labels = [[1, 2, 3, 4], [9, 2, 3, 4], [1, 2, 3, 9]], [[1, 2, 3, 4]] * 3
    hits = [[True, True, True, True], [False, True, True, True], [True, True, True, False]]
    # rates 1, 3/4, 3/4; ES 1, 0.75, 0.25 (OU) / 0 (strict)
    np.testing.assert_allclose(token_hit_rate(hits), [1.0, 0.75, 0.75])
    np.testing.assert_allclose(token_hit_rate(hits), token_accuracy(predicted, labels))
    np.testing.assert_allclose(extraction_strength_from_hits(hits), extraction_strength(predicted, labels))
    np.testing.assert_allclose(extraction_strength_from_hits(hits, strict=True), [1.0, 0.75, 0.0])
    # padded 0/1 with a mask
    padded, mask = np.array([[1, 0, 1], [1, 1, 0]]), np.array([[True, True, True], [True, False, False]])
    np.testing.assert_allclose(token_hit_rate(padded, mask=mask), [2 / 3, 1.0])
    with pytest.raises(ValueError, match="`hits` item 0 must hold booleans or 0/1 values"):
        token_hit_rate([[2, 1]])
    with pytest.raises(ValueError, match="`hits` is empty"):
        extraction_strength_from_hits([])

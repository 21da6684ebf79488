"""MIA scores, AUC and privleak against values worked out by hand (the naive formula is in each comment)."""

import zlib

import numpy as np
import pytest

from behemoth_hf.metrics.privacy import (
    loss_scores,
    mia_auc,
    min_k_plus_plus_scores,
    min_k_scores,
    privleak,
    roc_auc,
    zlib_scores,
)


def test_loss_scores_are_the_mean_nll():
    np.testing.assert_array_equal(loss_scores([0.5, 2.0]), [0.5, 2.0])
    with pytest.raises(ValueError, match="`avg_nll` is empty"):
        loss_scores([])


def test_zlib_scores_divide_by_the_compressed_length():
    # ℓ̄ / len(zlib.compress(text))
    texts = ["SS Bako ek ul RR finu ob OO doka .", "aaaa"]
    expected = [2.0 / len(zlib.compress(texts[0].encode())), 1.0 / len(zlib.compress(b"aaaa"))]
    np.testing.assert_allclose(zlib_scores([2.0, 1.0], texts), expected)
    with pytest.raises(ValueError, match="`avg_nll` has 2, `texts` has 1"):
        zlib_scores([2.0, 1.0], ["a"])
    with pytest.raises(ValueError, match="`texts` must be a non-empty sequence"):
        zlib_scores([2.0], "a")


def test_min_k_scores():
    row = [-1.0, -5.0, -3.0, -2.0, -4.0]
    # k = 0.4: m = int(5 · 0.4) = 2 lowest: −5, −4 -> −mean = 4.5
    # k = 0.1: int(0.5) = 0 -> OU keeps max(1, 0) = 1 token: −(−5) = 5
    # k = 1:   all five -> 3
    np.testing.assert_allclose(min_k_scores([row]), [4.5])
    np.testing.assert_allclose(min_k_scores([row], k=0.1), [5.0])
    np.testing.assert_allclose(min_k_scores([row], k=1.0), [3.0])
    # ragged second item of one token: 0.5
    np.testing.assert_allclose(min_k_scores([row, [-0.5]]), [4.5, 0.5])
    # padded with a mask: the padding (0.0, which would be the largest) is ignored
    padded = np.array([row, [-0.5, 0.0, 0.0, 0.0, 0.0]])
    mask = np.array([[True] * 5, [True, False, False, False, False]])
    np.testing.assert_allclose(min_k_scores(padded, mask=mask), [4.5, 0.5])


def test_min_k_scores_rejects_bad_inputs():
    with pytest.raises(ValueError, match=r"`k` must be in \(0, 1\]"):
        min_k_scores([[-1.0]], k=0.0)
    with pytest.raises(ValueError, match=r"`k` must be in \(0, 1\]"):
        min_k_scores([[-1.0]], k=1.5)
    with pytest.raises(ValueError, match="`token_logprobs` is empty"):
        min_k_scores([])
    with pytest.raises(ValueError, match="`token_logprobs` item 0 has no tokens"):
        min_k_scores([[]])
    with pytest.raises(ValueError, match="`token_logprobs` item 0 contains NaN"):
        min_k_scores([[float("nan")]])


def test_min_k_plus_plus_scores():
    # z = (log p − μ) / σ = ((−1 + 1.5) / 0.5, (−2 + 1.5) / 1) = (1, −0.5)
    # k = 0.5: 1 lowest -> 0.5; k = 1: −mean(1, −0.5) = −0.25
    args = ([[-1.0, -2.0]], [[-1.5, -1.5]], [[0.5, 1.0]])
    np.testing.assert_allclose(min_k_plus_plus_scores(*args, k=0.5), [0.5])
    np.testing.assert_allclose(min_k_plus_plus_scores(*args, k=1.0), [-0.25])
    with pytest.raises(ValueError, match="`token_std` item 0 must be > 0"):
        min_k_plus_plus_scores([[-1.0]], [[-1.0]], [[0.0]])
    with pytest.raises(ValueError, match="Item 0 has 2 tokens in `token_logprobs` but 1 in `token_mean`"):
        min_k_plus_plus_scores([[-1.0, -2.0]], [[-1.0]], [[1.0, 1.0]])


def test_roc_auc_counts_correctly_ordered_pairs():
    # positives 0.35, 0.8; negatives 0.1, 0.4: pairs (0.35>0.1, 0.35<0.4, 0.8>0.1, 0.8>0.4) -> 3/4
    assert roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.75
    # a tie counts one half
    assert roc_auc([0, 1], [0.5, 0.5]) == 0.5


def test_roc_auc_rejects_bad_inputs():
    with pytest.raises(ValueError, match="both classes"):
        roc_auc([1, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match="`labels` must hold 0 or 1 only"):
        roc_auc([0, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match="`labels` has 3, `scores` has 2"):
        roc_auc([0, 1, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match="`scores` is empty"):
        roc_auc([], [])


def test_mia_auc_perfect_separation_and_chance():
    # forget scores (members: low loss) all below holdout scores -> every pair ordered -> 1.0
    assert mia_auc([0.1, 0.2], [0.3, 0.4, 0.5]) == 1.0
    # the reverse -> 0.0; identical distributions -> 0.5
    assert mia_auc([0.3, 0.4, 0.5], [0.1, 0.2]) == 0.0
    assert mia_auc([0.1, 0.2], [0.1, 0.2]) == 0.5


def test_mia_auc_rejects_empty_sides():
    with pytest.raises(ValueError, match="`forget_scores` is empty"):
        mia_auc([], [0.1])
    with pytest.raises(ValueError, match="`holdout_scores` is empty"):
        mia_auc([0.1], [])


def test_privleak_follows_openunlearning():
    # 100 · ((1 − AUC) − (1 − AUC_ref)) / ((1 − AUC_ref) + 1e-10)
    assert privleak(0.5, 0.5) == 0.0
    assert privleak(1.0, 0.5) == pytest.approx(-100.0)  # (0 − 0.5) / 0.5: forget set fully exposed
    assert privleak(0.25, 0.5) == pytest.approx(50.0)  # (0.75 − 0.5) / 0.5: over-unlearned
    assert privleak(0.8, 0.6) == pytest.approx(-50.0)  # (0.2 − 0.4) / 0.4
    assert privleak(0.8) == privleak(0.8, 0.5)  # OU's default reference
    assert privleak(1.0, 0.5, epsilon=0.0) == -100.0


def test_privleak_rejects_bad_inputs():
    with pytest.raises(ValueError, match=r"`auc` must be in \[0, 1\]"):
        privleak(1.2)
    with pytest.raises(ValueError, match=r"`reference_auc` must be in \[0, 1\]"):
        privleak(0.5, -0.1)
    with pytest.raises(ValueError, match="`reference_auc` is 1 with `epsilon=0`"):
        privleak(0.5, 1.0, epsilon=0.0)

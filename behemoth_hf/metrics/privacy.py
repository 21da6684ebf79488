"""Membership inference on forget vs holdout facts, and OpenUnlearning's privacy leakage.

Every MIA score follows OU's sign convention (peers.md 1.5): **higher = looks less like a training
member**. `mia_auc` labels forget items 0 and holdout items 1, so AUC ≈ 1 means the forget facts still
look memorised, AUC ≈ 0.5 that they look like never-seen holdout facts.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import rankdata

from behemoth_hf.metrics._checks import (
    as_float_array,
    check_epsilon,
    check_fraction,
    check_same_length,
    check_same_row_lengths,
    token_rows,
)
from behemoth_hf.metrics.memorization import OU_EPSILON


logger = logging.getLogger(__name__)

# OU's TOFU config runs min-k with k = 0.4 (`configs/eval/tofu_metrics/mia_min_k.yaml`).
DEFAULT_MIN_K = 0.4
# OU's privleak reference when no retain-model log is given: a retain model is at chance.
DEFAULT_REFERENCE_AUC = 0.5


def loss_scores(avg_nll: ArrayLike) -> np.ndarray:
    """Per-item LOSS attack score `s_i = ℓ̄_i`, the answer's mean NLL (OU `mia_loss`, peers.md 1.5)."""
    return as_float_array(avg_nll, "avg_nll").copy()


def zlib_scores(avg_nll: ArrayLike, texts: Sequence[str]) -> np.ndarray:
    """Per-item zlib attack score `s_i = ℓ̄_i / len(zlib.compress(text_i.encode("utf-8")))` (OU `mia_zlib`)."""
    losses = as_float_array(avg_nll, "avg_nll")
    if isinstance(texts, str) or len(texts) == 0:
        raise ValueError("`texts` must be a non-empty sequence of strings, one per item.")
    check_same_length(avg_nll=losses, texts=texts)
    sizes = np.array([len(zlib.compress(text.encode("utf-8"))) for text in texts], dtype=np.float64)
    return losses / sizes


def min_k_scores(
    token_logprobs: ArrayLike | Sequence[ArrayLike], *, k: float = DEFAULT_MIN_K, mask: ArrayLike | None = None
) -> np.ndarray:
    """Per-item Min-k% Prob score (Shi et al. 2023, https://arxiv.org/abs/2310.16789; OU `mia_min_k`, peers.md 1.5).

    `s_i = −mean(lowest m_i of log p(y_t | y_<t))`, `m_i = max(1, ⌊k · n_i⌋)` over the item's n_i answer
    tokens (OU keeps at least one token). `token_logprobs` is ragged (one 1-D array per item) or padded 2-D
    with a boolean `mask`.
    """
    k = check_fraction(k, "k", open_low=True)
    rows = token_rows(token_logprobs, "token_logprobs", mask=mask)
    return np.array([_lowest_mean(row, k, "token_logprobs", i) for i, row in enumerate(rows)], dtype=np.float64)


def min_k_plus_plus_scores(
    token_logprobs: ArrayLike | Sequence[ArrayLike],
    token_mean: ArrayLike | Sequence[ArrayLike],
    token_std: ArrayLike | Sequence[ArrayLike],
    *,
    k: float = DEFAULT_MIN_K,
    mask: ArrayLike | None = None,
) -> np.ndarray:
    """Per-item Min-K%++ score (Zhang et al. 2024, https://arxiv.org/abs/2404.02936; OU `mia_min_k_plus_plus`).

    `z_t = (log p(y_t) − μ_t) / σ_t` with the next-token distribution's `μ_t = Σ_v p_v log p_v` and
    `σ_t² = Σ_v p_v (log p_v)² − μ_t²` (the scorer computes them over the vocabulary); then
    `s_i = −mean(lowest max(1, ⌊k · n_i⌋) of z_t)`. All three inputs are aligned token by token.
    """
    k = check_fraction(k, "k", open_low=True)
    logprobs = token_rows(token_logprobs, "token_logprobs", mask=mask)
    means = token_rows(token_mean, "token_mean", mask=mask)
    stds = token_rows(token_std, "token_std", mask=mask)
    check_same_row_lengths(logprobs, means, ("token_logprobs", "token_mean"))
    check_same_row_lengths(logprobs, stds, ("token_logprobs", "token_std"))
    scores = np.empty(len(logprobs), dtype=np.float64)
    for index, (lp, mu, sigma) in enumerate(zip(logprobs, means, stds)):
        sigma = sigma.astype(np.float64)
        if (sigma <= 0).any():
            raise ValueError(f"`token_std` item {index} must be > 0 at every token.")
        scores[index] = _lowest_mean((lp.astype(np.float64) - mu) / sigma, k, "token_logprobs", index)
    return scores


def roc_auc(labels: ArrayLike, scores: ArrayLike) -> float:
    """Area under the ROC curve of `scores` for the positive class `labels == 1`.

    `AUC = P(s_pos > s_neg) + ½ P(s_pos = s_neg)` over all positive/negative pairs, computed with the
    Mann-Whitney rank sum `(Σ rank_pos − n_pos (n_pos + 1) / 2) / (n_pos n_neg)` (average ranks for ties);
    equal to `sklearn.metrics.roc_auc_score`, which OU calls.
    """
    values = as_float_array(scores, "scores")
    classes = as_float_array(labels, "labels")
    check_same_length(labels=classes, scores=values)
    if not np.isin(classes, (0.0, 1.0)).all():
        raise ValueError("`labels` must hold 0 or 1 only.")
    positive = classes == 1
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("`labels` must contain both classes (0 and 1); the AUC is undefined otherwise.")
    if np.isinf(values).any():
        logger.debug("roc_auc: infinite scores are ranked as the extreme values.")
    ranks = rankdata(values)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def mia_auc(forget_scores: ArrayLike, holdout_scores: ArrayLike) -> float:
    """Membership-inference AUC forget vs holdout (OU `mia_auc`, peers.md 1.5).

    `roc_auc(labels=[0]*n_forget + [1]*n_holdout, scores=forget ⧺ holdout)`, i.e. the probability that a
    holdout item scores higher (looks less like a member) than a forget item. 1.0: the forget facts are
    perfectly told apart as members; 0.5: indistinguishable from never-seen facts.
    """
    forget = as_float_array(forget_scores, "forget_scores")
    holdout = as_float_array(holdout_scores, "holdout_scores")
    labels = np.concatenate([np.zeros(len(forget)), np.ones(len(holdout))])
    return roc_auc(labels, np.concatenate([forget, holdout]))


def privleak(auc: float, reference_auc: float = DEFAULT_REFERENCE_AUC, *, epsilon: float = OU_EPSILON) -> float:
    """Privacy leakage vs the retain-model oracle, as OU's `privleak` (peers.md 1.5; MUSE, https://arxiv.org/abs/2407.06460).

    `privleak = 100 · ((1 − AUC) − (1 − AUC_ref)) / ((1 − AUC_ref) + epsilon)`, with `AUC` the unlearned
    model's `mia_auc` (TOFU: `mia_min_k`) and `AUC_ref` the retain model's (OU falls back to 0.5 without a
    retain log). 0: as private as the oracle; negative: the forget set still looks like members
    (under-unlearning); positive: over-unlearning. `epsilon=0.0` raises on `reference_auc == 1`.
    """
    auc = check_fraction(auc, "auc")
    reference_auc = check_fraction(reference_auc, "reference_auc")
    denominator = (1.0 - reference_auc) + check_epsilon(epsilon)
    if denominator == 0:
        raise ValueError("`reference_auc` is 1 with `epsilon=0`; privleak is undefined.")
    return 100.0 * ((1.0 - auc) - (1.0 - reference_auc)) / denominator


def _lowest_mean(values: np.ndarray, k: float, name: str, index: int) -> float:
    """`−mean` of the `max(1, int(n · k))` smallest values (OU truncates the float product, as here)."""
    values = values.astype(np.float64)
    if np.isnan(values).any():
        raise ValueError(f"`{name}` item {index} contains NaN (or a NaN was produced from it).")
    count = max(1, int(len(values) * k))
    return float(-np.mean(np.sort(values)[:count]))

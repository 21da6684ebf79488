"""How much of a fact a model still holds: accuracy, answer probability, truth ratio, token-level memorization.

Inputs are what a teacher-forced scorer yields per item: `ℓ̄`, the mean negative log-likelihood over the
answer tokens (natural log, "avg_loss" in OpenUnlearning), per-token argmax ids, or greedy answers. No model
is run here. Defaults follow OpenUnlearning (OU, `src/evals/metrics/memorization.py`, peers.md 1.5-1.6) so
numbers compare with theirs; the TOFU legacy code computes the same quantities (peers.md 2).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from behemoth_hf.metrics._checks import (
    as_float_array,
    as_per_item_options,
    check_epsilon,
    check_same_length,
    check_same_row_lengths,
    token_rows,
)


logger = logging.getLogger(__name__)

# OU adds this to denominators; `epsilon=0.0` gives the exact value instead (computed in log space).
OU_EPSILON = 1e-10
TruthRatioAggregator = Literal["closer_to_1_better", "true_better", "mean"]
TRUTH_RATIO_AGGREGATORS: tuple[str, ...] = ("closer_to_1_better", "true_better", "mean")
# OU/TOFU: forget sets use "closer_to_1_better"; retain, real-authors and world-facts use "true_better".
FORGET_TRUTH_RATIO_AGGREGATOR = "closer_to_1_better"
RETAIN_TRUTH_RATIO_AGGREGATOR = "true_better"


def exact_match(predictions: Sequence[str], references: Sequence[str], *, strip: bool = True) -> np.ndarray:
    """Per item, whether the greedy answer equals the reference: `1[pred_i == ref_i]` (bool array).

    With `strip` (default) leading and trailing whitespace is ignored on both sides; nothing else is
    normalised (Behemoth answers are made-up words, so case and stemming carry no slack).
    """
    _check_texts(predictions, references)
    if strip:
        return np.array([p.strip() == r.strip() for p, r in zip(predictions, references)], dtype=bool)
    return np.array([p == r for p, r in zip(predictions, references)], dtype=bool)


def rouge_scores(predictions: Sequence[str], references: Sequence[str]) -> dict[str, np.ndarray]:
    """Per-item ROUGE of OU's `rouge` metric (peers.md 1.5): `rouge1_recall`, `rougeL_f1` and `rougeL_recall`.

    `rouge_score.RougeScorer(["rouge1", "rougeL"], use_stemmer=True).score(reference, prediction)`, the very
    scorer OU calls (lower-cased `[a-z0-9]+` words, Porter-stemmed). `predictions` are greedy generations up
    to `<eos>` (`scoring.generate_answers`), `references` the answers. TOFU aggregates `rougeL_recall` by mean.
    """
    from rouge_score import rouge_scorer

    _check_texts(predictions, references)
    scorer = rouge_scorer.RougeScorer(["rouge1", "rougeL"], use_stemmer=True)
    # A split repeats its objects, and a model that knows them repeats them back: each distinct pair is scored once
    # (the scorer's stemming costs more than the model's generation of a short answer).
    pairs = list(zip(references, predictions))
    distinct = {pair: scorer.score(*pair) for pair in dict.fromkeys(pairs)}
    scores = [distinct[pair] for pair in pairs]
    return {
        "rouge1_recall": np.array([score["rouge1"].recall for score in scores], np.float64),
        "rougeL_f1": np.array([score["rougeL"].fmeasure for score in scores], np.float64),
        "rougeL_recall": np.array([score["rougeL"].recall for score in scores], np.float64),
    }


def fact_accuracy(correct: ArrayLike) -> float:
    """Fact accuracy = `mean_i correct_i`, the fraction of facts whose exact greedy answer is right.

    `correct` holds one bool (or 0/1) per item, e.g. from `exact_match`. Behemoth's headline metric
    (DESIGN.md "Metrics"); OU has no exact-answer accuracy, its closest is ROUGE-L recall.
    """
    values = as_float_array(correct, "correct")
    if not np.isin(values, (0.0, 1.0)).all():
        raise ValueError("`correct` must hold booleans or 0/1 values, one per item.")
    return float(values.mean())


def answer_probability(avg_nll: ArrayLike) -> np.ndarray:
    """Per-item answer probability `p_i = exp(-ℓ̄_i)` (OU `probability`, peers.md 1.5; aggregate: mean).

    `avg_nll` is the length-normalised NLL of each answer, so `p_i` is the geometric mean of the
    per-token probabilities, not the sequence probability.
    """
    return np.exp(-_nll(avg_nll, "avg_nll"))


def normalized_answer_probability(
    correct_nll: ArrayLike, perturbed_nll: ArrayLike, *, epsilon: float = OU_EPSILON
) -> np.ndarray:
    """Per-item probability of the true answer among the options (OU `probability_w_options`, peers.md 1.5).

    `p_i = exp(-ℓ̄_c,i) / (exp(-ℓ̄_c,i) + Σ_j exp(-ℓ̄_w,ij) + epsilon)`, with `ℓ̄_c` the correct answer's and
    `ℓ̄_w,ij` the j-th perturbed answer's mean NLL; `perturbed_nll` is (items, options). TOFU uses it for
    "Prob" on real-authors / world-facts. `epsilon=0.0` gives the exact softmax over options (log space).
    """
    correct = _nll(correct_nll, "correct_nll")
    perturbed = _options(perturbed_nll, "perturbed_nll")
    check_same_length(correct_nll=correct, perturbed_nll=perturbed)
    if check_epsilon(epsilon) == 0:
        logits = np.concatenate([-correct[:, None], -perturbed], axis=1)
        return np.exp(logits[:, 0] - np.logaddexp.reduce(logits, axis=1))
    p_correct = np.exp(-correct)
    return p_correct / (p_correct + np.exp(-perturbed).sum(axis=1) + epsilon)


def truth_ratio(correct_nll: ArrayLike, perturbed_nll: ArrayLike, *, epsilon: float = OU_EPSILON) -> np.ndarray:
    """Per-item truth ratio `R_i = exp(-mean_j ℓ̄_w,ij) / (exp(-ℓ̄_c,i) + epsilon)` (OU `truth_ratio`, peers.md 1.5).

    `ℓ̄_c` is the mean NLL of the correct answer (TOFU: the paraphrased answer on forget/retain, the
    original answer on real-authors/world-facts), `ℓ̄_w,ij` of the j-th perturbed answer; `perturbed_nll`
    is (items, options), a 1-D array means one option. The numerator is the geometric mean of the
    perturbed answers' probabilities (OU averages their losses first). R < 1: the model prefers the truth.
    TOFU's legacy statistic `exp(mean_j ℓ̄_w − ℓ̄_c)` is 1/R, and both aggregates agree (peers.md 2).

    `epsilon=0.0` is the exact `exp(ℓ̄_c − mean_j ℓ̄_w)`, computed in log space (with OU's epsilon, an item
    whose `ℓ̄_c` exceeds ~23 has its denominator dominated by the 1e-10).
    """
    correct = _nll(correct_nll, "correct_nll")
    perturbed = _options(perturbed_nll, "perturbed_nll")
    check_same_length(correct_nll=correct, perturbed_nll=perturbed)
    mean_wrong = perturbed.mean(axis=1)
    with np.errstate(over="ignore"):
        if check_epsilon(epsilon) == 0:
            return np.exp(correct - mean_wrong)
        return np.exp(-mean_wrong) / (np.exp(-correct) + epsilon)


def aggregate_truth_ratio(
    ratios: ArrayLike, aggregator: TruthRatioAggregator = "closer_to_1_better", *, epsilon: float = OU_EPSILON
) -> float:
    """Aggregate per-item truth ratios as OU does (peers.md 1.5-1.6).

    * `"closer_to_1_better"` (forget sets): `mean_i min(R_i, 1 / (R_i + epsilon))`; 1 when the model cannot
      tell the truth from the perturbations, as a model that never saw the facts.
    * `"true_better"` (retain, real-authors, world-facts): `mean_i max(0, 1 − R_i)`; 1 when the truth is
      much likelier than the perturbations.
    * `"mean"`: `mean_i R_i`.

    `epsilon=0.0` makes `"closer_to_1_better"` the exact `mean_i exp(−|log R_i|)`.
    """
    values = as_float_array(ratios, "ratios")
    if (values < 0).any():
        raise ValueError("`ratios` must be >= 0 (a truth ratio is a ratio of probabilities).")
    if aggregator == "closer_to_1_better":
        if check_epsilon(epsilon) == 0:
            with np.errstate(divide="ignore"):
                return float(np.mean(np.exp(-np.abs(np.log(values)))))
        return float(np.mean(np.minimum(values, 1.0 / (values + epsilon))))
    if aggregator == "true_better":
        return float(np.mean(np.maximum(0.0, 1.0 - values)))
    if aggregator == "mean":
        return float(np.mean(values))
    raise ValueError(f"`aggregator` must be one of {TRUTH_RATIO_AGGREGATORS}, got {aggregator!r}.")


def token_accuracy(
    predicted_ids: ArrayLike | Sequence[ArrayLike],
    target_ids: ArrayLike | Sequence[ArrayLike],
    *,
    mask: ArrayLike | None = None,
) -> np.ndarray:
    """Per-item teacher-forced token accuracy `acc_i = mean_t 1[argmax_t = y_t]` over the answer positions.

    `predicted_ids[i]` holds the argmax token at each answer position given the gold prefix, `target_ids[i]`
    the answer tokens: either ragged sequences of 1-D arrays, or padded 2-D arrays with a boolean `mask`
    (True at answer positions). The same number as OU `exact_memorization` and EasyEdit's token accuracy.
    """
    return token_match_rate(predicted_ids, target_ids, ("predicted_ids", "target_ids"), mask=mask)


def exact_memorization(
    predicted_ids: ArrayLike | Sequence[ArrayLike],
    label_ids: ArrayLike | Sequence[ArrayLike],
    *,
    mask: ArrayLike | None = None,
) -> np.ndarray:
    """Per-item OU `exact_memorization` (peers.md 1.5): `EM_i = mean_t 1[argmax p(·|x, y_<t) = y_t]`.

    Exactly `token_accuracy`; OU leaves out the final labelled token (EOS), so pass the answer positions
    without it to match OU. Aggregate: mean.
    """
    return token_match_rate(predicted_ids, label_ids, ("predicted_ids", "label_ids"), mask=mask)


def extraction_strength(
    predicted_ids: ArrayLike | Sequence[ArrayLike],
    label_ids: ArrayLike | Sequence[ArrayLike],
    *,
    mask: ArrayLike | None = None,
    strict: bool = False,
) -> np.ndarray:
    """Per-item OU `extraction_strength` (peers.md 1.5): `ES_i = 1 − k_i / n_i`.

    `k_i` is the smallest index such that the teacher-forced argmax equals the labels on the whole suffix
    `y_k … y_{n−1}`; 1 means the full answer is predicted, small values that only a short tail is.
    OU quirk kept by default: when no suffix matches (not even the last token), OU's loop leaves
    `k = n − 1` and scores `1/n`, the same as when only the last token matches; a wrong one-token answer
    thus scores 1. `strict=True` scores such items 0 instead (k = n). Aggregate: mean.
    """
    hits = token_hits(predicted_ids, label_ids, ("predicted_ids", "label_ids"), mask=mask)
    return extraction_strength_from_hits(hits, strict=strict)


def token_hit_rate(hits: ArrayLike | Sequence[ArrayLike], *, mask: ArrayLike | None = None) -> np.ndarray:
    """Per-item `mean_t hits_t`, from per-token hits `hits_t = 1[argmax_t = y_t]` (ragged, or 2-D with `mask`).

    The same number as `token_accuracy` / `exact_memorization`, for a scorer that returns hits, not ids.
    """
    return np.array([row.mean() for row in _hit_rows(hits, mask)], dtype=np.float64)


def extraction_strength_from_hits(
    hits: ArrayLike | Sequence[ArrayLike], *, mask: ArrayLike | None = None, strict: bool = False
) -> np.ndarray:
    """`extraction_strength` from per-token hits `1[argmax_t = y_t]`: `k_i` = 1 + index of the last miss (0 if none).

    A scorer that only returns hits (not argmax ids) can use this directly; `mask` and `strict` as there.
    """
    rows = _hit_rows(hits, mask)
    scores = np.empty(len(rows), dtype=np.float64)
    for index, row in enumerate(rows):
        n = len(row)
        misses = np.flatnonzero(~row)
        # The matching suffixes are those that start after the last miss.
        k = 0 if misses.size == 0 else int(misses[-1]) + 1
        if k == n and not strict:
            k = n - 1
        scores[index] = 1.0 - k / n
    return scores


def token_hits(
    first: ArrayLike | Sequence[ArrayLike],
    second: ArrayLike | Sequence[ArrayLike],
    names: tuple[str, str],
    *,
    mask: ArrayLike | None = None,
) -> list[np.ndarray]:
    """Per item the bool array `first_t == second_t`; errors name the caller's arguments `names`."""
    a = token_rows(first, names[0], mask=mask)
    b = token_rows(second, names[1], mask=mask)
    check_same_row_lengths(a, b, names)
    return [np.asarray(x == y, dtype=bool) for x, y in zip(a, b)]


def token_match_rate(
    first: ArrayLike | Sequence[ArrayLike],
    second: ArrayLike | Sequence[ArrayLike],
    names: tuple[str, str],
    *,
    mask: ArrayLike | None = None,
) -> np.ndarray:
    """Per item `mean_t 1[first_t = second_t]`; errors name the caller's arguments `names`."""
    return np.array([row.mean() for row in token_hits(first, second, names, mask=mask)], dtype=np.float64)


def _hit_rows(hits: ArrayLike | Sequence[ArrayLike], mask: ArrayLike | None) -> list[np.ndarray]:
    rows = token_rows(hits, "hits", mask=mask)
    for index, row in enumerate(rows):
        if row.dtype != np.bool_ and not np.isin(row, (0, 1)).all():
            raise ValueError(f"`hits` item {index} must hold booleans or 0/1 values.")
    return [row.astype(bool) for row in rows]


def _check_texts(predictions: Sequence[str], references: Sequence[str]) -> None:
    for name, values in (("predictions", predictions), ("references", references)):
        if isinstance(values, str):
            raise ValueError(f"`{name}` must be a sequence of strings, got a single string.")
        if len(values) == 0:
            raise ValueError(f"`{name}` is empty; pass at least one item.")
        for index, value in enumerate(values):
            if not isinstance(value, str):
                raise ValueError(f"`{name}` item {index} must be a string, got {type(value).__name__}.")
    check_same_length(predictions=predictions, references=references)


def _nll(values: ArrayLike, name: str) -> np.ndarray:
    array = as_float_array(values, name)
    if (array < 0).any():
        raise ValueError(f"`{name}` must hold negative log-likelihoods (>= 0), got {array.min()}.")
    return array


def _options(values: ArrayLike, name: str) -> np.ndarray:
    array = as_per_item_options(values, name)
    if (array < 0).any():
        raise ValueError(f"`{name}` must hold negative log-likelihoods (>= 0), got {array.min()}.")
    return array

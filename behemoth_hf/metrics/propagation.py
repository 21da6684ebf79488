"""Propagation of an edit or unlearning step to dependent facts (Behemoth's `dependent` split).

A dependent fact (a nested "lives-in" fact, or relation 1 of a correlated pair) has an old answer (its
`answer`) and a `propagated_answer`: what it becomes if the change to its base fact propagates. Each
predicted answer is classified as

* `kept`: equals the old answer (the change did not reach this fact);
* `followed`: equals the propagated answer (the change propagated);
* `broken`: equals neither (the fact was damaged);
* `ambiguous`: the old and the propagated answers are the same word (nested objects can be shared) and the
  prediction equals it, so kept and followed cannot be told apart.

Behemoth's own metric (DESIGN.md "Metrics"); no peer defines it. Comparison is exact after stripping
surrounding whitespace (made-up words leave no room for fuzzy matching).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from behemoth_hf.metrics._checks import as_float_array, check_same_length


logger = logging.getLogger(__name__)

KEPT = "kept"
FOLLOWED = "followed"
BROKEN = "broken"
AMBIGUOUS = "ambiguous"
OUTCOMES: tuple[str, ...] = (KEPT, FOLLOWED, BROKEN, AMBIGUOUS)


def classify_propagation(
    predictions: Sequence[str],
    old_answers: Sequence[str],
    propagated_answers: Sequence[str | None],
    *,
    strip: bool = True,
) -> np.ndarray:
    """Per dependent fact, one of `OUTCOMES` (a numpy array of str).

    For prediction `p`, old answer `o` and propagated answer `a` (after `str.strip` when `strip`):
    `ambiguous` if `p == o == a`; else `kept` if `p == o`; else `followed` if `p == a`; else `broken`.
    An empty or None `a` means the fact has no propagated answer (the dataset writes "" there), so it can
    only be `kept` or `broken`.
    """
    _check_strings(predictions, "predictions")
    _check_strings(old_answers, "old_answers")
    _check_strings(propagated_answers, "propagated_answers", allow_none=True)
    check_same_length(predictions=predictions, old_answers=old_answers, propagated_answers=propagated_answers)

    def clean(text: str | None) -> str:
        text = text or ""
        return text.strip() if strip else text

    old_correct, propagated_correct = [], []
    for prediction, old, propagated in zip(predictions, old_answers, propagated_answers):
        p, o, a = clean(prediction), clean(old), clean(propagated)
        if not o:
            raise ValueError("`old_answers` contains an empty answer; every dependent fact has an answer.")
        old_correct.append(p == o)
        propagated_correct.append(bool(a) and p == a)
    return classify_propagation_from_correct(old_correct, propagated_correct)


def classify_propagation_from_correct(old_correct: ArrayLike, propagated_correct: ArrayLike) -> np.ndarray:
    """Per dependent fact, one of `OUTCOMES` from two exact-match flags (e.g. two teacher-forced greedy checks).

    `old_correct[i]`: the greedy answer is the old answer; `propagated_correct[i]`: it is the propagated
    answer (pass False where there is none). Both -> `ambiguous` (the two answers are the same word), old
    only -> `kept`, propagated only -> `followed`, neither -> `broken`; the same as `classify_propagation`.
    """
    old = _flags(old_correct, "old_correct")
    propagated = _flags(propagated_correct, "propagated_correct")
    check_same_length(old_correct=old, propagated_correct=propagated)
    outcomes = np.full(len(old), BROKEN, dtype=f"<U{max(map(len, OUTCOMES))}")
    outcomes[old & ~propagated] = KEPT
    outcomes[~old & propagated] = FOLLOWED
    outcomes[old & propagated] = AMBIGUOUS
    return outcomes


def propagation_rates(outcomes: Sequence[str] | np.ndarray) -> dict[str, float]:
    """Fraction of dependent facts in each outcome: `{outcome: count(outcome) / n}` for every key of `OUTCOMES`.

    The four rates sum to 1.
    """
    values = np.asarray(outcomes, dtype=object)
    if values.ndim != 1 or values.size == 0:
        raise ValueError("`outcomes` must be a non-empty 1-D sequence of outcome labels.")
    unknown = sorted({str(value) for value in values} - set(OUTCOMES))
    if unknown:
        raise ValueError(f"`outcomes` must only contain {OUTCOMES}, got {unknown}.")
    return {outcome: float(np.mean(values == outcome)) for outcome in OUTCOMES}


def _check_strings(values: Sequence[str | None], name: str, *, allow_none: bool = False) -> None:
    if values is None or isinstance(values, str):
        raise ValueError(f"`{name}` must be a sequence of strings, one per dependent fact.")
    if len(values) == 0:
        raise ValueError(f"`{name}` is empty; pass at least one dependent fact.")
    for index, value in enumerate(values):
        if not (isinstance(value, str) or (allow_none and value is None)):
            raise ValueError(f"`{name}` item {index} must be a string, got {type(value).__name__}.")


def _flags(values: ArrayLike, name: str) -> np.ndarray:
    array = as_float_array(values, name)
    if not np.isin(array, (0.0, 1.0)).all():
        raise ValueError(f"`{name}` must hold booleans or 0/1 values, one per dependent fact.")
    return array.astype(bool)

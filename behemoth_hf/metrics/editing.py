"""Model-editing metrics: EasyEdit's teacher-forced token accuracies and the ROME/MEMIT success rates.

EasyEdit (`easyeditor/evaluate/evaluate.py`, peers.md 4.3) scores each edit request by teacher-forced
token accuracy: the fraction of target positions where the argmax token equals the target token, given
the prompt and the gold target prefix. One number per request; the summary is the mean over requests.
ROME/MEMIT (`kmeng01/memit:experiments/summarize.py`, peers.md 4.3) compare the mean-token NLL of the new
target and of the true answer instead.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from behemoth_hf.metrics._checks import as_float_array, check_same_length
from behemoth_hf.metrics.memorization import token_match_rate
from behemoth_hf.metrics.quality import model_utility


logger = logging.getLogger(__name__)

TokenRows = ArrayLike | Sequence[ArrayLike]


def reliability(predicted_ids: TokenRows, target_new_ids: TokenRows, *, mask: ArrayLike | None = None) -> np.ndarray:
    """Per-edit EasyEdit Reliability (`rewrite_acc`): `mean_t 1[argmax_t = target_new_t]` on the edit prompt.

    `predicted_ids[i]` are the argmax tokens at the target positions of `prompt + " " + target_new`, teacher
    forced; see `memorization.token_accuracy` for the accepted shapes.
    """
    return token_match_rate(predicted_ids, target_new_ids, ("predicted_ids", "target_new_ids"), mask=mask)


def generalization(
    predicted_ids: TokenRows, target_new_ids: TokenRows, *, mask: ArrayLike | None = None
) -> np.ndarray:
    """Per-edit EasyEdit Generalization (`rephrase_acc`): the same token accuracy on the rephrased prompt."""
    return token_match_rate(predicted_ids, target_new_ids, ("predicted_ids", "target_new_ids"), mask=mask)


def portability(predicted_ids: TokenRows, ground_truth_ids: TokenRows, *, mask: ArrayLike | None = None) -> np.ndarray:
    """Per-probe EasyEdit Portability (`<key>_acc`): token accuracy of the portability ground truth.

    For Behemoth's dependent facts the ground truth is the propagated answer.
    """
    return token_match_rate(predicted_ids, ground_truth_ids, ("predicted_ids", "ground_truth_ids"), mask=mask)


def locality(pre_edit_ids: TokenRows, post_edit_ids: TokenRows, *, mask: ArrayLike | None = None) -> np.ndarray:
    """Per-probe EasyEdit Locality (`<key>_acc`): `mean_t 1[argmax_t^pre = argmax_t^post]`.

    The fraction of the locality prompt's target positions whose teacher-forced argmax token is unchanged
    by the edit (EasyEdit: `np.mean(np.equal(pre, post))`); it does not look at the ground truth.
    """
    return token_match_rate(pre_edit_ids, post_edit_ids, ("pre_edit_ids", "post_edit_ids"), mask=mask)


def rewrite_success(new_nll: ArrayLike, true_nll: ArrayLike) -> np.ndarray:
    """ROME/MEMIT Efficacy / Paraphrase success per case: `1[ℓ̄_true > ℓ̄_new]` (new target likelier).

    Inputs are mean-token NLLs of `target_new` and `target_true` on the same prompts: 1-D (one prompt per
    case) gives 0/1 per case; 2-D (cases, prompts) gives each case's fraction of successful prompts, which
    is how MEMIT averages paraphrases. Efficacy Success (ES) / Paraphrase Success (PS) = mean over cases.
    """
    new, true = _paired(new_nll, true_nll)
    return _per_case(true > new)


def neighborhood_success(new_nll: ArrayLike, true_nll: ArrayLike) -> np.ndarray:
    """ROME/MEMIT Neighborhood success per case: `1[ℓ̄_true < ℓ̄_new]` on neighbourhood prompts.

    Neighbouring subjects should keep their true answer; shapes as in `rewrite_success`. NS = mean.
    """
    new, true = _paired(new_nll, true_nll)
    return _per_case(true < new)


def rewrite_magnitude(new_nll: ArrayLike, true_nll: ArrayLike) -> np.ndarray:
    """ROME/MEMIT Efficacy / Paraphrase magnitude per case: `exp(−ℓ̄_new) − exp(−ℓ̄_true)` (mean over prompts)."""
    new, true = _paired(new_nll, true_nll)
    return _per_case(np.exp(-new) - np.exp(-true))


def neighborhood_magnitude(new_nll: ArrayLike, true_nll: ArrayLike) -> np.ndarray:
    """ROME/MEMIT Neighborhood magnitude per case: `exp(−ℓ̄_true) − exp(−ℓ̄_new)` (mean over prompts)."""
    new, true = _paired(new_nll, true_nll)
    return _per_case(np.exp(-true) - np.exp(-new))


def edit_score(efficacy: float, paraphrase: float, neighborhood: float) -> float:
    """ROME/MEMIT Score = harmonic mean of Efficacy, Paraphrase and Neighborhood success (`hmean(ES, PS, NS)`)."""
    return model_utility([efficacy, paraphrase, neighborhood])


def _paired(new_nll: ArrayLike, true_nll: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    try:
        ndim = 2 if np.ndim(new_nll) == 2 else 1
    except ValueError:  # ragged; as_float_array reports it
        ndim = 1
    new = as_float_array(new_nll, "new_nll", ndim=ndim)
    true = as_float_array(true_nll, "true_nll", ndim=ndim)
    check_same_length(new_nll=new, true_nll=true)
    if new.shape != true.shape:
        raise ValueError(f"`new_nll` and `true_nll` must have the same shape, got {new.shape} and {true.shape}.")
    return new, true


def _per_case(values: np.ndarray) -> np.ndarray:
    values = values.astype(np.float64)
    return values if values.ndim == 1 else values.mean(axis=1)

"""Each loss against its formula evaluated by hand on tiny tensors."""

import math

import pytest
import torch

from behemoth_hf.unlearn.losses import (
    activation_mse,
    answer_log_probs,
    ceu_loss,
    dpo_loss,
    gradient_ascent_loss,
    kl_retain_loss,
    logit_flattening_loss,
    mean_token_nll,
    npo_loss,
    simnpo_loss,
    token_log_probs,
    undial_loss,
    weighted_ascent_loss,
)


def _logits_from_probs(probs):
    return torch.log(torch.tensor(probs, dtype=torch.float32))


# Batch of 1, 3 positions, vocabulary of 2. Position t predicts label t + 1.
LOGITS = _logits_from_probs([[[0.5, 0.5], [0.8, 0.2], [0.1, 0.9]]])
LABELS = torch.tensor([[-100, 0, 1]])  # position 0 predicts token 0 (p=0.5); position 1 predicts 1 (p=0.2)


def test_answer_log_probs_sums_labelled_tokens():
    log_prob, count = answer_log_probs(LOGITS, LABELS)
    assert count.tolist() == [2]
    assert log_prob.item() == pytest.approx(math.log(0.5) + math.log(0.2), abs=1e-6)
    masked = torch.tensor([[-100, -100, 1]])
    assert answer_log_probs(LOGITS, masked)[0].item() == pytest.approx(math.log(0.2), abs=1e-6)


def test_mean_token_nll_averages_over_every_labelled_token_of_the_batch():
    logits = torch.cat([LOGITS, _logits_from_probs([[[0.25, 0.75], [0.5, 0.5], [0.5, 0.5]]])])
    labels = torch.tensor([[-100, 0, 1], [-100, 1, -100]])
    expected = -(math.log(0.5) + math.log(0.2) + math.log(0.75)) / 3
    assert mean_token_nll(logits, labels).item() == pytest.approx(expected, abs=1e-6)
    assert gradient_ascent_loss(mean_token_nll(logits, labels)).item() == pytest.approx(-expected, abs=1e-6)


def test_npo_loss():
    log_prob, ref = torch.tensor([-1.0, -3.0]), torch.tensor([-2.0, -2.0])
    beta = 0.1

    def log_sigmoid(x):
        return -math.log1p(math.exp(-x))

    expected = -(2 / beta) * (log_sigmoid(-beta * 1.0) + log_sigmoid(-beta * -1.0)) / 2
    assert npo_loss(log_prob, ref, beta).item() == pytest.approx(expected, rel=1e-6)
    # At the reference point the loss is (2/beta) log 2, and it falls as the forget answer gets less likely.
    assert npo_loss(ref, ref, beta).item() == pytest.approx(2 / beta * math.log(2), rel=1e-6)
    assert npo_loss(ref - 5, ref, beta) < npo_loss(ref, ref, beta)


def test_simnpo_loss():
    log_prob, num_tokens = torch.tensor([-4.0]), torch.tensor([2])
    beta, delta = 4.5, 0.5
    mean_nll = 2.0
    expected = -(2 / beta) * -math.log1p(math.exp(-beta * (mean_nll - delta)))
    assert simnpo_loss(log_prob, num_tokens, beta, delta).item() == pytest.approx(expected, rel=1e-6)


def test_kl_retain_loss_all_positions_and_answer_only():
    ref = _logits_from_probs([[[0.9, 0.1], [0.5, 0.5], [0.5, 0.5]]])
    current = _logits_from_probs([[[0.5, 0.5], [0.5, 0.5], [0.2, 0.8]]])
    first = 0.9 * math.log(0.9 / 0.5) + 0.1 * math.log(0.1 / 0.5)  # KL(ref || current) at position 0
    # Positions 0 and 1 predict (position 2 has no next token): OpenUnlearning averages both.
    assert kl_retain_loss(current, ref).item() == pytest.approx(first / 2, rel=1e-5)
    labels = torch.tensor([[-100, 1, -100]])  # only position 0 predicts a labelled token
    assert kl_retain_loss(current, ref, labels).item() == pytest.approx(first, rel=1e-5)
    assert kl_retain_loss(ref, ref).item() == pytest.approx(0.0, abs=1e-7)


def test_token_log_probs_masks_unlabelled_positions():
    log_probs, mask = token_log_probs(LOGITS, torch.tensor([[-100, -100, 1]]))
    assert mask.tolist() == [[False, True]]
    assert log_probs[0].tolist() == pytest.approx([0.0, math.log(0.2)], abs=1e-6)


def test_dpo_loss_prefers_the_alternate():
    log_prob, ref, alt, alt_ref = (torch.tensor([v]) for v in (-1.0, -2.0, -3.0, -1.0))
    # margin = (alt - alt_ref) - (log_prob - ref) = -2 - 1 = -3
    expected = -(2 / 0.1) * -math.log1p(math.exp(0.3))
    assert dpo_loss(log_prob, ref, alt, alt_ref, 0.1).item() == pytest.approx(expected, rel=1e-6)
    # Raising the alternate's likelihood lowers the loss.
    assert dpo_loss(log_prob, ref, alt + 1, alt_ref, 0.1) < dpo_loss(log_prob, ref, alt, alt_ref, 0.1)


def test_weighted_ascent_loss_wga_and_satimp():
    # Labelled tokens have p = 0.5 and p = 0.2 (see LOGITS / LABELS).
    wga = (0.5 * math.log(0.5) + 0.2 * math.log(0.2)) / 2  # -mean(p * CE)
    assert weighted_ascent_loss(LOGITS, LABELS, 1.0).item() == pytest.approx(wga, rel=1e-5)
    satimp = (0.5**2 * 0.5 * math.log(0.5) + 0.2**2 * 0.8 * math.log(0.2)) / 2  # w = p^2 (1 - p)
    assert weighted_ascent_loss(LOGITS, LABELS, 2.0, 1.0).item() == pytest.approx(satimp, rel=1e-5)
    # The weight is a constant for the gradient: d(w log p)/dz_label = w (1 - p) = 0.5 * 0.5 at p = 0.5.
    logits = torch.zeros(1, 2, 2, requires_grad=True)
    weighted_ascent_loss(logits, torch.tensor([[-100, 0]]), 1.0).backward()
    assert logits.grad[0, 0].tolist() == pytest.approx([0.25, -0.25], abs=1e-6)


def test_undial_loss_every_position_and_answer_only():
    labels = torch.tensor([[-100, -100, 1]])  # position 0 predicts nothing, position 1 predicts token 1
    beta = math.log(4.0)  # e^-beta = 1/4
    # Position 1, teacher = the model: target proportional to [0.8, 0.2 / 4]; CE against p = [0.8, 0.2].
    q = torch.tensor([0.8, 0.05]) / 0.85
    answer = -(q[0] * math.log(0.8) + q[1] * math.log(0.2)).item()
    assert undial_loss(LOGITS, LOGITS, labels, beta, answer_only=True).item() == pytest.approx(answer, rel=1e-5)
    # OpenUnlearning's average also counts position 0: its uniform p gives CE = log 2 whatever the target.
    expected = (math.log(2) + answer) / 2
    assert undial_loss(LOGITS, LOGITS, labels, beta).item() == pytest.approx(expected, rel=1e-5)


def test_ceu_loss_targets_the_distribution_without_the_label():
    # Position 1 (p = [0.8, 0.2], label 1): target [1, 0], CE = -log 0.8; position 0 (uniform, label 0): log 2.
    assert ceu_loss(LOGITS, LABELS, skip_first=1).item() == pytest.approx(-math.log(0.8), rel=1e-5)
    both = (math.log(2) - math.log(0.8)) / 2
    assert ceu_loss(LOGITS, LABELS, skip_first=0).item() == pytest.approx(both, rel=1e-5)


def test_logit_flattening_loss_positions():
    logits = torch.tensor([[[0.0, 2.0], [1.0, 1.0], [3.0, 0.0]]])
    # (max - mean)^2 per position: 1, 0, 2.25. OpenUnlearning's positions are those whose own label is set (1, 2);
    # aligned ones predict a labelled token (0, 1).
    assert logit_flattening_loss(logits, LABELS).item() == pytest.approx(2.25 / 2)
    assert logit_flattening_loss(logits, LABELS, aligned=True).item() == pytest.approx(0.5)


def test_activation_mse_averages_positions_per_row_then_rows():
    activations = torch.tensor([[[1.0, 1.0], [2.0, 0.0], [0.0, 0.0]], [[2.0, 2.0], [0.0, 0.0], [5.0, 5.0]]])
    mask = torch.tensor([[False, True, True], [True, False, False]])
    # Row 0: mean_d of squares (1, 2, 0) over positions 1, 2 -> 1. Row 1: position 0 -> 4. Rows averaged: 2.5.
    assert activation_mse(activations, torch.zeros(1, 1, 2), mask).item() == pytest.approx(2.5)

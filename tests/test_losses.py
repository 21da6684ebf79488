"""Each loss against its formula evaluated by hand on tiny tensors."""

import math

import pytest
import torch

from behemoth_hf.unlearn.losses import (
    answer_log_probs,
    gradient_ascent_loss,
    kl_retain_loss,
    mean_token_nll,
    npo_loss,
    simnpo_loss,
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

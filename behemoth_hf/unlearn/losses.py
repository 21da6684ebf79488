"""Loss math of the unlearning and editing methods, as pure tensor functions (no model calls).

Formulas follow OpenUnlearning's implementation (peers.md section 1.3) so that numbers compare:
labels are next-token targets with -100 on ignored positions (prompt and padding), log-probs of an
answer are *summed* over its tokens, and two-term methods return `gamma * forget + alpha * retain`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


IGNORE_INDEX = -100


def answer_log_probs(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed log-probability of each row's labelled tokens, and their count.

    `logits` (B, T, V) and `labels` (B, T) are aligned as a causal LM's are: position t predicts
    label t + 1. Returns `(log_prob (B,), num_tokens (B,))`.
    """
    shifted_logits = logits[:, :-1].float()
    shifted_labels = labels[:, 1:]
    mask = shifted_labels != IGNORE_INDEX
    targets = shifted_labels.masked_fill(~mask, 0)
    token_log_probs = torch.log_softmax(shifted_logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return (token_log_probs * mask).sum(-1), mask.sum(-1)


def mean_token_nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy averaged over every labelled token of the batch (a causal LM's `outputs.loss`)."""
    return F.cross_entropy(
        logits[:, :-1].float().reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=IGNORE_INDEX
    )


def gradient_ascent_loss(forget_nll: torch.Tensor) -> torch.Tensor:
    """`-CE_f`: descending on it climbs the forget set's likelihood down."""
    return -forget_nll


def npo_loss(log_prob: torch.Tensor, ref_log_prob: torch.Tensor, beta: float) -> torch.Tensor:
    """Negative Preference Optimization (Zhang et al. 2024, https://arxiv.org/abs/2404.05868).

    `-(2/beta) * mean_i log sigmoid(-beta * (log pi(y_i|x_i) - log pi_ref(y_i|x_i)))`, with sequence-summed
    log-probabilities, as OpenUnlearning computes it.
    """
    return -(2.0 / beta) * F.logsigmoid(-beta * (log_prob - ref_log_prob)).mean()


def simnpo_loss(log_prob: torch.Tensor, num_tokens: torch.Tensor, beta: float, delta: float) -> torch.Tensor:
    """SimNPO (Fan et al. 2024, https://arxiv.org/abs/2410.07163): NPO without a reference model.

    `-(2/beta) * mean_i log sigmoid(beta * (nll_i / |y_i| - delta))`: the length-normalised NLL replaces
    the reference log-ratio.
    """
    mean_nll = -log_prob / num_tokens.clamp(min=1)
    return -(2.0 / beta) * F.logsigmoid(beta * (mean_nll - delta)).mean()


def kl_retain_loss(logits: torch.Tensor, ref_logits: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
    """KL(pi_ref || pi) per position, summed over the vocabulary and averaged over positions.

    With `labels=None` every position of the batch counts, prompt and padding included, which is
    OpenUnlearning's behaviour. With `labels`, only positions that predict a labelled token count.
    """
    log_p = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    log_ref = torch.log_softmax(ref_logits[:, :-1].float(), dim=-1)
    per_position = F.kl_div(log_p, log_ref, reduction="none", log_target=True).sum(-1)
    if labels is None:
        return per_position.mean()
    mask = labels[:, 1:] != IGNORE_INDEX
    return (per_position * mask).sum() / mask.sum().clamp(min=1)

"""Loss math of the unlearning and editing methods, as pure tensor functions (no model calls).

Formulas follow OpenUnlearning's implementation (peers.md section 1.3) so that numbers compare:
labels are next-token targets with -100 on ignored positions (prompt and padding), log-probs of an
answer are *summed* over its tokens, and two-term methods return `gamma * forget + alpha * retain`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


IGNORE_INDEX = -100


def token_log_probs(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probability of every next-token label, and the mask of the labelled ones.

    `logits` (B, T, V) and `labels` (B, T) are aligned as a causal LM's are: position t predicts
    label t + 1. Returns `(log_probs (B, T-1), mask (B, T-1))`; unlabelled positions hold 0.
    """
    shifted_labels = labels[:, 1:]
    mask = shifted_labels != IGNORE_INDEX
    targets = shifted_labels.masked_fill(~mask, 0)
    log_probs = torch.log_softmax(logits[:, :-1].float(), dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return log_probs * mask, mask


def answer_log_probs(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed log-probability of each row's labelled tokens, and their count: `(log_prob (B,), num_tokens (B,))`."""
    log_probs, mask = token_log_probs(logits, labels)
    return log_probs.sum(-1), mask.sum(-1)


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


def dpo_loss(
    log_prob: torch.Tensor,
    ref_log_prob: torch.Tensor,
    alt_log_prob: torch.Tensor,
    alt_ref_log_prob: torch.Tensor,
    beta: float,
) -> torch.Tensor:
    """DPO toward an alternate answer and away from the forget answer (Rafailov et al. 2023,
    https://arxiv.org/abs/2305.18290), as OpenUnlearning's `DPO` computes it, 2/beta factor included:

    `-(2/beta) * mean_i log sigmoid(beta * [(alt_i - alt_ref_i) - (log_prob_i - ref_log_prob_i)])`,
    with sequence-summed log-probabilities of the alternate (preferred) and the forget (rejected) answers.
    """
    margin = (alt_log_prob - alt_ref_log_prob) - (log_prob - ref_log_prob)
    return -(2.0 / beta) * F.logsigmoid(beta * margin).mean()


def weighted_ascent_loss(logits: torch.Tensor, labels: torch.Tensor, beta1: float, beta2: float = 0.0) -> torch.Tensor:
    """Token-weighted gradient ascent: `-mean_t(w_t * CE_t)` over the labelled tokens of the batch, with the
    detached weight `w_t = p_t^beta1 * (1 - p_t)^beta2` of each token's probability `p_t`.

    `beta2 = 0` is WGA (Wang et al. 2025, https://arxiv.org/abs/2502.19301: `w_t = p_t^beta`); `beta2 > 0` is
    SatImp (Yang et al. 2025, https://arxiv.org/abs/2505.11953). Both as OpenUnlearning computes them.
    """
    log_probs, mask = token_log_probs(logits, labels)
    probs = log_probs.detach().exp()
    weights = probs**beta1 * (1 - probs) ** beta2
    return (weights * log_probs)[mask].mean()  # -(w * CE) = w * log p


def undial_loss(
    logits: torch.Tensor, ref_logits: torch.Tensor, labels: torch.Tensor, beta: float, answer_only: bool = False
) -> torch.Tensor:
    """UNDIAL (Dong et al. 2024, https://arxiv.org/abs/2402.10052): self-distillation toward the frozen
    model's distribution with the label's logit lowered by `beta`, `CE(z_t, softmax(z_ref,t - beta * onehot(y_t)))`.

    By default averaged as OpenUnlearning does: over every position of the batch, prompt and padding included,
    where the label -100 indexes token V - 100 as Python's negative indexing does. `answer_only` averages over
    the positions that predict a labelled token instead.
    """
    shifted_logits, shifted_ref = logits[:, :-1].float(), ref_logits[:, :-1].float()
    shifted_labels = labels[:, 1:]
    vocab_size = logits.shape[-1]
    target_logits = shifted_ref.scatter_add(
        -1,
        shifted_labels.remainder(vocab_size).unsqueeze(-1),  # -100 -> V - 100 (OpenUnlearning's wrap-around)
        torch.full_like(shifted_ref[..., :1], -beta),
    )
    per_position = torch.sum(-torch.softmax(target_logits, -1) * torch.log_softmax(shifted_logits, -1), -1)
    if not answer_only:
        return per_position.mean()
    mask = shifted_labels != IGNORE_INDEX
    return per_position[mask].mean()


def ceu_loss(logits: torch.Tensor, labels: torch.Tensor, skip_first: int = 1) -> torch.Tensor:
    """Cross-entropy unlearning, CE-U (Yang et al. 2025, https://arxiv.org/abs/2503.01224): at each labelled
    position, cross-entropy toward the model's own (detached) distribution with the label's probability set to 0,
    averaged over the labelled tokens of the batch after skipping the first `skip_first` of each answer
    (OpenUnlearning's `ignore_first_n_answer_tokens`, default 1).
    """
    labelled = labels != IGNORE_INDEX
    skipped = labelled & (labelled.cumsum(-1) <= skip_first)
    shifted_labels = labels.masked_fill(skipped, IGNORE_INDEX)[:, 1:]
    mask = shifted_labels != IGNORE_INDEX
    valid_logits = logits[:, :-1].float()[mask]  # (N, V)
    target_logits = valid_logits.detach().scatter(-1, shifted_labels[mask].unsqueeze(-1), float("-inf"))
    return F.cross_entropy(valid_logits, torch.softmax(target_logits, -1))


def logit_flattening_loss(logits: torch.Tensor, labels: torch.Tensor, aligned: bool = False) -> torch.Tensor:
    """PDU's forget term (Entesari et al. 2025, https://arxiv.org/abs/2506.05314): `(max_v z_v - mean_v z_v)^2`
    averaged over answer positions, which drives the answer distributions toward uniform.

    By default the positions are OpenUnlearning's: those whose *own* label is set (one position late, so the
    distribution that predicts the first answer token is skipped and the one after the last is included).
    `aligned` uses the positions that predict a labelled token, as every other loss here does.
    """
    if aligned:
        logits, mask = logits[:, :-1], labels[:, 1:] != IGNORE_INDEX
    else:
        mask = labels != IGNORE_INDEX
    logits = logits.float()
    per_position = (logits.max(-1).values - logits.mean(-1)) ** 2
    return per_position[mask].mean()


def activation_mse(activations: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """RMU's activation distance (Li et al. 2024, https://arxiv.org/abs/2403.03218), as OpenUnlearning computes it:
    the squared difference averaged over the hidden dimension, averaged over each row's masked positions, then
    over the rows. `activations` (B, T, D), `target` broadcastable to it, `mask` (B, T).
    """
    per_position = ((activations.float() - target.float()) ** 2).mean(-1)  # (B, T)
    return ((per_position * mask).sum(-1) / mask.sum(-1).clamp(min=1)).mean()

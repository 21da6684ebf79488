"""MEMIT (Meng et al. 2023, "Mass-Editing Memory in a Transformer", https://arxiv.org/abs/2210.07229).

Many edits at once, spread over a range of layers `R = [l_1 .. L]` (Algorithm 1): for each subject i a target hidden
state `z_i = h_i^L + delta_i` at the subject's last token (`delta_i` optimised at layer L's MLP output, as ROME's
value), then for each layer l in R in order, on the model the earlier layers' updates left:

    residual_i = (z_i - h_i^L) / (L - l + 1)           (the part of the remaining gap this layer writes)
    Delta_l    = R K^T (lambda C_l + K K^T)^-1          (least squares for the edits, C_l keeps the other keys)

with K the subjects' keys at layer l (columns), R their residuals and lambda the covariance weight
(`mom2_update_weight`, eq. 14). AlphaEdit reuses this loop with its own `solve`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from behemoth_hf.editors.layers import blocks, captured_outputs, weight_matrix
from behemoth_hf.editors.requests import (
    SubjectEdit,
    ValueSettings,
    edit_positions,
    optimise_value,
    padded,
    subject_keys,
)


# (residuals (d_out, n), keys (d_in, n), layer) -> update (d_out, d_in)
Solver = Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]


def memit_solver(covariances: dict[int, torch.Tensor], covariance_weight: float) -> Solver:
    """MEMIT's least squares: `R K^T (lambda C + K K^T)^-1`."""

    def solve(residuals: torch.Tensor, keys: torch.Tensor, layer: int) -> torch.Tensor:
        covariance = covariances[layer].to(keys.device)
        # (lambda C + K K^T) is symmetric: solve it against K, then R (that)^T = R K^T (...)^-1.
        return residuals @ torch.linalg.solve(covariance_weight * covariance + keys @ keys.T, keys).T

    return solve


@torch.no_grad()
def subject_hidden(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, layer: int, edits: list[SubjectEdit]
) -> torch.Tensor:
    """(edits, d) output of block `layer` where each edit is written (`edit_positions`) in its first edit prompt."""
    token_ids = tokenizer([edit.prompts[0] for edit in edits], add_special_tokens=False).input_ids
    positions = [edit_positions(tokenizer, edit, [ids], [len(ids)])[0] for ids, edit in zip(token_ids, edits)]
    device = next(model.parameters()).device
    with captured_outputs(blocks(model)[layer]) as outputs:
        model(*padded(token_ids, tokenizer.pad_token_id, device))
    return outputs[0][torch.arange(len(edits)), torch.tensor(positions, device=device)].double()


def apply_memit(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    edits: list[SubjectEdit],
    layers: list[int],
    prefixes: list[str],
    settings: ValueSettings,
    solve: Solver,
) -> list[dict]:
    """Edit `model` in place for all `edits` at once over `layers`; returns one log entry per subject."""
    last = layers[-1]
    values = [optimise_value(model, tokenizer, last, edit, settings) for edit in edits]
    with torch.no_grad():
        targets = subject_hidden(model, tokenizer, last, edits) + torch.stack([value.delta for value in values])
        for done, layer in enumerate(layers):
            keys = subject_keys(model, tokenizer, layer, edits, prefixes)  # (n, d_in)
            residuals = (targets - subject_hidden(model, tokenizer, last, edits)) / (len(layers) - done)
            weight = weight_matrix(model, layer)
            weight.add_(solve(residuals.T, keys.T, layer).to(weight.dtype))
    return [value.log for value in values]

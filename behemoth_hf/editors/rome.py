"""ROME (Meng et al. 2022, "Locating and Editing Factual Associations in GPT", https://arxiv.org/abs/2202.05262).

One rank-one update of one layer's MLP output projection per subject: with `k*` the subject's key, `v*` the MLP
output that makes the model give the new answers (`requests.optimise_value`) and `C` the uncentred key covariance,

    W <- W + (v* - W k*) (C^-1 k*)^T / (k*^T C^-1 k*)

(section 3.1, eq. 2): the one update that maps `k*` to `v*` exactly while changing the output for the other keys as
little as possible, in the metric of `C`. Several subjects are edited one after another, each on the model the
previous edits left (EasyEdit's sequential ROME); the covariance is the unedited model's, as in the paper.
"""

from __future__ import annotations

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from behemoth_hf.editors.layers import projection, weight_matrix
from behemoth_hf.editors.requests import SubjectEdit, ValueSettings, optimise_value, subject_keys


def rank_one_update(key: torch.Tensor, residual: torch.Tensor, covariance: torch.Tensor) -> torch.Tensor:
    """`residual (C^-1 key)^T / (key^T C^-1 key)`, (d_out, d_in): after adding it, `W key` grows by `residual`."""
    direction = torch.linalg.solve(covariance, key)
    return torch.outer(residual, direction) / (key @ direction)


@torch.no_grad()
def apply_rome(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    edits: list[SubjectEdit],
    layer: int,
    covariance: torch.Tensor,
    prefixes: list[str],
    settings: ValueSettings,
) -> list[dict]:
    """Edit `model` in place, one subject after another; returns one log entry per subject."""
    module = projection(model, layer)
    weight = weight_matrix(model, layer)
    covariance = covariance.to(weight.device)
    logs = []
    for edit in edits:
        key = subject_keys(model, tokenizer, layer, [edit], prefixes)[0]
        with torch.enable_grad():
            value = optimise_value(model, tokenizer, layer, edit, settings)
        target = value.output + value.delta  # v*: what the MLP should output for the subject
        residual = target - module(key.to(weight.dtype)).double()  # v* - (W k* + b)
        weight.add_(rank_one_update(key, residual, covariance).to(weight.dtype))
        logs.append(value.log)
    return logs

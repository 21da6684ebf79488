"""AlphaEdit (Fang et al. 2025, "AlphaEdit: Null-Space Constrained Knowledge Editing for Language Models",
https://arxiv.org/abs/2410.02355).

MEMIT's edit with the update projected onto the null space of the preserved keys, so that (to the threshold) it
leaves the outputs for every key of the corpus unchanged. With `C = E[k k^T]` of the corpus keys, `P = U U^T` where
U are C's eigenvectors whose eigenvalue is below `threshold` (the paper removes the non-zero ones; its code counts
eigenvalues below 1e-2 as zero), and the per-layer update (eq. 14, without previously edited keys) is

    Delta = R K^T P (K K^T P + I)^-1

(the identity is the paper's L2 penalty on the update, weight 1). The residuals and layers are MEMIT's.
"""

from __future__ import annotations

import logging

import torch

from behemoth_hf.editors.memit import Solver


logger = logging.getLogger(__name__)

# AlphaEdit's `nullspace_threshold`: eigenvalues of the key covariance below it count as zero.
NULLSPACE_THRESHOLD = 1e-2


def null_space_projector(covariance: torch.Tensor, threshold: float) -> torch.Tensor:
    """`P = U U^T` over the eigenvectors of `covariance` with eigenvalue < `threshold` (float64, (d, d))."""
    eigenvalues, eigenvectors = torch.linalg.eigh(covariance)
    kept = eigenvectors[:, eigenvalues < threshold]
    return kept @ kept.T


def alphaedit_solver(covariances: dict[int, torch.Tensor], threshold: float) -> tuple[Solver, dict[int, int]]:
    """The projected solve, and the null-space dimension of each layer (0 means no edit can be made there)."""
    projectors = {layer: null_space_projector(c, threshold) for layer, c in covariances.items()}
    dimensions = {layer: round(torch.trace(p).item()) for layer, p in projectors.items()}

    def solve(residuals: torch.Tensor, keys: torch.Tensor, layer: int) -> torch.Tensor:
        projector = projectors[layer].to(keys.device)
        identity = torch.eye(len(projector), dtype=projector.dtype, device=keys.device)
        # X (K K^T P + I) = R K^T P  <=>  (P K K^T + I) X^T = P K R^T  (P is symmetric)
        return torch.linalg.solve(projector @ keys @ keys.T + identity, projector @ keys @ residuals.T).T

    return solve, dimensions

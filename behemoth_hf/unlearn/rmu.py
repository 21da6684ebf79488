from __future__ import annotations

import re
from contextlib import contextmanager

import torch
import torch.nn.functional as F

from behemoth_hf.layout import decoder_blocks
from behemoth_hf.unlearn.base import UnlearningTrainer
from behemoth_hf.unlearn.losses import IGNORE_INDEX, activation_mse
from behemoth_hf.unlearn.registry import register_method


@contextmanager
def captured_output(module: torch.nn.Module):
    """Collects `module`'s output (the hidden states, first element of a tuple) during the forward passes inside."""
    outputs: list[torch.Tensor] = []
    handle = module.register_forward_hook(
        lambda _module, _inputs, output: outputs.append(output[0] if isinstance(output, tuple) else output)
    )
    try:
        yield outputs
    finally:
        handle.remove()


def train_only(model, pattern: re.Pattern) -> None:
    """Freeze every parameter but the trainable ones whose full name matches `pattern` (RMU's `rmu_params`)."""
    trainable = [p for name, p in model.named_parameters() if p.requires_grad and pattern.fullmatch(name)]
    if not trainable:
        names = [name for name, _ in model.named_parameters()]
        raise ValueError(f"`rmu_params` {pattern.pattern!r} matches no parameter of the model: {names[:4]} ...")
    model.requires_grad_(False)
    for parameter in trainable:
        parameter.requires_grad_(True)


@register_method
class RMUTrainer(UnlearningTrainer):
    """Representation Misdirection for Unlearning (Li et al. 2024, https://arxiv.org/abs/2403.03218), as
    OpenUnlearning's `RMU`: steer one layer's output on the forget answers toward a fixed random vector of norm
    `steering_coeff` (drawn once from `seed`), while `retain_loss=embed_diff` keeps its output on retain answers
    where the frozen model has it (or `nll` / `kl` as for the other methods)."""

    name = "rmu"
    defaults = {"gamma": 1.0, "alpha": 1.0}
    needs_reference = True

    def __init__(self, model, args, **kwargs):
        # Checked before the Trainer starts (it creates the output folder).
        num_layers = model.config.num_hidden_layers
        layer = (num_layers - 1) // 2 if args.rmu_layer is None else args.rmu_layer
        if layer >= num_layers:
            raise ValueError(f"`rmu_layer` must be in [0, {num_layers - 1}] for this model, got {layer}")
        if args.rmu_params is not None:
            train_only(model, re.compile(args.rmu_params))
        self.steered = decoder_blocks(model, "RMU")[layer]
        super().__init__(model=model, args=args, **kwargs)
        self.ref_steered = decoder_blocks(self.ref_model, "RMU")[layer]
        generator = torch.Generator().manual_seed(self.args.seed)
        direction = torch.rand(1, 1, self.model.config.hidden_size, generator=generator)
        self.control_vector = direction / direction.norm() * self.args.steering_coeff  # (1, 1, D)

    def positions(self, labels: torch.Tensor) -> torch.Tensor:
        """The answer tokens (OpenUnlearning), or with `aligned_positions` the positions that predict them."""
        if self.args.aligned_positions:
            return F.pad(labels[:, 1:] != IGNORE_INDEX, (0, 1))
        return labels != IGNORE_INDEX

    def activations(self, model, module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        with captured_output(module) as outputs:
            self.forward(model, batch)
        return outputs[0]  # (B, T, D)

    def retain_loss(self, model, retain: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.args.retain_loss != "embed_diff":
            return super().retain_loss(model, retain)
        with torch.no_grad():
            reference = self.activations(self.ref_model, self.ref_steered, retain)
        return activation_mse(
            self.activations(model, self.steered, retain), reference, self.positions(retain["labels"])
        )

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        forget = inputs["forget"]
        activations = self.activations(model, self.steered, forget)
        control = self.control_vector.to(activations.device)
        forget_loss = activation_mse(activations, control, self.positions(forget["labels"]))
        loss = self.combine(forget_loss, inputs.get("retain"), model)
        return (loss, None) if return_outputs else loss

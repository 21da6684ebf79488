"""Where locate-then-edit methods read and write in each preset family, and the hooks they need.

Every method edits the MLP's output projection of chosen layers: its input is the key `k` (the MLP's hidden
activation at a token) and its output the value it writes into the residual stream. The families name the projection
differently (`behemoth_hf.layout`), and GPT-2's `Conv1D` stores the weight transposed (`(in, out)`, `y = x W + b`),
so every update goes through `weight_matrix`, a `(out, in)` view of the stored tensor.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from transformers import PreTrainedModel

from behemoth_hf.layout import Layout, decoder_blocks, layout


def family(model: PreTrainedModel) -> Layout:
    return layout(model, "locate-then-edit")


def blocks(model: PreTrainedModel) -> torch.nn.ModuleList:
    return decoder_blocks(model, "locate-then-edit")


def projection_name(model: PreTrainedModel, layer: int) -> str:
    """Module name of layer `layer`'s MLP output projection (its weight is `<name>.weight` in the state dict)."""
    return f"{family(model).blocks}.{layer}.{family(model).mlp_output}"


def projection(model: PreTrainedModel, layer: int) -> torch.nn.Module:
    return model.get_submodule(projection_name(model, layer))


def weight_matrix(model: PreTrainedModel, layer: int) -> torch.Tensor:
    """Layer `layer`'s projection weight as `(out, in)`: a view, so adding to it edits the model."""
    weight = projection(model, layer).weight
    return weight.T if family(model).transposed else weight


@contextlib.contextmanager
def captured_keys(module: torch.nn.Module) -> Iterator[list[torch.Tensor]]:
    """Collect the input of `module` (the keys, (batch, seq, d_in)) of every forward pass inside the block."""
    keys: list[torch.Tensor] = []
    handle = module.register_forward_pre_hook(lambda _module, inputs: keys.append(inputs[0]))
    try:
        yield keys
    finally:
        handle.remove()


@contextlib.contextmanager
def added_at(module: torch.nn.Module, positions: torch.Tensor, delta: torch.Tensor) -> Iterator[None]:
    """Add `delta[i]` ((rows, d_out) or one (d_out,) vector for all) to `module`'s output at row i, token
    `positions[i]`, in every forward pass inside the block (the batch must have `len(positions)` rows)."""
    rows = torch.arange(len(positions))

    def hook(_module, _inputs, output):
        output = output.clone()  # keep autograd's view of the original output intact
        output[rows, positions] = output[rows, positions] + delta
        return output

    handle = module.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


@contextlib.contextmanager
def captured_outputs(module: torch.nn.Module) -> Iterator[list[torch.Tensor]]:
    """Collect the output of `module` (a block's hidden state, the first element when it returns a tuple)."""
    outputs: list[torch.Tensor] = []

    def hook(_module, _inputs, output):
        outputs.append(output[0] if isinstance(output, tuple) else output)

    handle = module.register_forward_hook(hook)
    try:
        yield outputs
    finally:
        handle.remove()

"""Restricting an update, orthogonally to its loss: LoRA of rank k (peft) or training only chosen blocks.

Blocks are the attention and MLP sub-modules of each transformer layer; `layers` selects layers by
index ("1", "0-2", "0,3"). Module names come from `behemoth_hf.layout`.
"""

from __future__ import annotations

import re

import torch
from peft import LoraConfig, PeftModel, TaskType, get_peft_model
from transformers import PreTrainedModel, Trainer

from behemoth_hf.layout import layout
from behemoth_hf.modeling import rebuilt_model


BLOCK_CHOICES = ("all", "mlp", "attention", "mlp+attention")
LORA_TARGET_CHOICES = ("attention", "mlp", "all")


def parse_layers(spec: str | None, num_layers: int, parameter: str = "trainable_layers") -> list[int] | None:
    """ "1", "0-2" or "0,3" -> sorted layer indices (None: every layer); errors name `parameter`."""
    if spec is None:
        return None
    layers: set[int] = set()
    for part in spec.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not match:
            raise ValueError(f"`{parameter}` must look like '1', '0-2' or '0,3'; got {spec!r}")
        start, stop = int(match[1]), int(match[2] or match[1])
        layers.update(range(start, stop + 1))
    if not layers or max(layers) >= num_layers:
        raise ValueError(f"`{parameter}` {spec!r} must name layers in [0, {num_layers - 1}]")
    return sorted(layers)


def block_modules(model: PreTrainedModel, blocks: str) -> list[str]:
    """Linear module name suffixes of `blocks` ("attention", "mlp", "mlp+attention"/"all")."""
    if blocks not in BLOCK_CHOICES:
        raise ValueError(f"`trainable_blocks` must be one of {list(BLOCK_CHOICES)}, got {blocks!r}")
    parts = layout(model, "update restriction")
    chosen = ["attention", "mlp"] if blocks in ("all", "mlp+attention") else [blocks]
    return [name for block in chosen for name in getattr(parts, block)]


def restrict_to_blocks(model: PreTrainedModel, blocks: str, layers: list[int] | None) -> None:
    """Freeze every parameter outside the chosen blocks of the chosen layers (in place).

    `blocks="all"` with `layers=None` leaves the model fully trainable (embeddings and norms included).
    Otherwise only the weights and biases of the chosen linear modules stay trainable.
    """
    if blocks == "all" and layers is None:
        return
    layer_pattern = layout(model, "update restriction").layer_pattern
    suffixes = block_modules(model, blocks)
    for name, parameter in model.named_parameters():
        module_name = name.rsplit(".", 1)[0]
        in_block = any(module_name.endswith(suffix) for suffix in suffixes)
        layer = re.search(layer_pattern, "." + name)
        in_layer = layers is None or (layer is not None and int(layer[1]) in layers)
        parameter.requires_grad_(in_block and in_layer)


def apply_lora(model: PreTrainedModel, rank: int, alpha: float, targets: str, layers: list[int] | None) -> PeftModel:
    """Wrap `model` with rank-`rank` LoRA adapters on the `targets` blocks (only adapters train)."""
    if rank < 1:
        raise ValueError(f"`lora_rank` must be >= 1, got {rank}")
    if targets not in LORA_TARGET_CHOICES:
        raise ValueError(f"`lora_targets` must be one of {list(LORA_TARGET_CHOICES)}, got {targets!r}")
    config = LoraConfig(
        task_type=TaskType.CAUSAL_LM,
        r=rank,
        lora_alpha=alpha,
        lora_dropout=0.0,
        target_modules=block_modules(model, "all" if targets == "all" else targets),
        layers_to_transform=layers,
        fan_in_fan_out=model.config.model_type == "gpt2",  # GPT-2's Conv1D stores weights transposed
    )
    return get_peft_model(model, config)


def count_parameters(model) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())


def trained_model(trainer: Trainer) -> PreTrainedModel | None:
    """The plain `transformers` model to save, LoRA adapters merged into the base weights, on the main process
    (None on the others). Every process must call it: under FSDP each holds a shard of every weight, gathered here
    (as `Trainer.save_model` gathers them) into a whole copy of the model."""
    model = trainer.model
    if trainer.is_fsdp_enabled:
        state_dict = trainer.accelerator.get_state_dict(model)
        if trainer.is_world_process_zero():
            model = _whole_copy(trainer.accelerator.unwrap_model(model), state_dict)
    return merged_model(model) if trainer.is_world_process_zero() else None


def merged_model(model) -> PreTrainedModel:
    """`model` as a plain `transformers` model: LoRA adapters merged into the base weights."""
    return model.merge_and_unload() if isinstance(model, PeftModel) else model


def _whole_copy(sharded, state_dict: dict[str, torch.Tensor]):
    """A model of `sharded`'s architecture (and adapters) on the CPU, holding the gathered `state_dict`."""
    whole = rebuilt_model(sharded.get_base_model() if isinstance(sharded, PeftModel) else sharded)
    if isinstance(sharded, PeftModel):
        whole = get_peft_model(whole, sharded.peft_config[sharded.active_adapter])
    whole.load_state_dict(state_dict)
    return whole

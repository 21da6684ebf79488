"""Where each model family the presets build keeps its decoder blocks and their linear modules.

Update restriction (`unlearn.restriction`), the locate-then-edit editors (`editors.layers`), RMU's steered layer
and scoring's last MLP all reach inside a model; they read its parts from this one table.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import PreTrainedModel


@dataclass(frozen=True)
class Layout:
    """Module paths of one family: the list of blocks (from the model), and each block's linear modules (from the
    block). The last linear module of the attention and of the MLP is its output projection; locate-then-edit
    methods write into the MLP's."""

    blocks: str
    attention: tuple[str, ...]
    mlp: tuple[str, ...]
    transposed: bool  # GPT-2's Conv1D keeps the weight as (in, out)

    @property
    def attention_output(self) -> str:
        return self.attention[-1]

    @property
    def mlp_output(self) -> str:
        return self.mlp[-1]

    @property
    def mlp_module(self) -> str:
        """The block's MLP as one module (`mlp` in every family)."""
        return self.mlp[0].rpartition(".")[0]

    @property
    def layer_pattern(self) -> str:
        """Pattern of a parameter or module name (with a leading dot) that captures its block's index."""
        return rf"\.{self.blocks.rpartition('.')[2]}\.(\d+)\."


LAYOUTS = {
    "gpt_neox": Layout(
        "gpt_neox.layers",
        attention=("attention.query_key_value", "attention.dense"),
        mlp=("mlp.dense_h_to_4h", "mlp.dense_4h_to_h"),
        transposed=False,
    ),
    "gpt2": Layout(
        "transformer.h", attention=("attn.c_attn", "attn.c_proj"), mlp=("mlp.c_fc", "mlp.c_proj"), transposed=True
    ),
    "llama": Layout(
        "model.layers",
        attention=("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj"),
        mlp=("mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"),
        transposed=False,
    ),
}


def layout(model: PreTrainedModel, purpose: str) -> Layout:
    """The layout of `model`'s family; `ValueError` naming `purpose` for any other family."""
    kind = model.config.model_type
    if kind not in LAYOUTS:
        raise ValueError(f"{purpose} supports the {sorted(LAYOUTS)} families; this model is {kind!r}")
    return LAYOUTS[kind]


def decoder_blocks(model: PreTrainedModel, purpose: str) -> torch.nn.ModuleList:
    """The decoder blocks of `model`, peft-wrapped or not (through `get_decoder`, which a peft model passes on)."""
    return getattr(model.get_decoder(), layout(model, purpose).blocks.rpartition(".")[2])

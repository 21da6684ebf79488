"""Model presets: stock `transformers` causal-LM configs sized for a Behemoth world.

Nothing custom: every preset is a GPT-NeoX, GPT-2 or Llama config, so `AutoModelForCausalLM`,
peft, Trainer, OpenUnlearning and EasyEdit load the checkpoints as they are. Dropout is 0 in every
preset: memorising facts with dropout on is several times slower (hf-stack.md section 5).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from transformers import (
    AutoModelForCausalLM,
    GPT2Config,
    GPTNeoXConfig,
    LlamaConfig,
    PretrainedConfig,
    PreTrainedModel,
)


# Sentences are at most ~15 tokens; rotary/learned positions beyond this are never used in pretraining.
MAX_POSITIONS = 256


@dataclass(frozen=True)
class Preset:
    """Architecture of a preset: family, width, depth, heads (MLP width is 4x, as in Pythia)."""

    family: str
    hidden_size: int
    num_layers: int
    num_heads: int
    max_positions: int = MAX_POSITIONS
    description: str = ""


PRESETS: dict[str, Preset] = {
    "tiny": Preset("gpt_neox", 64, 2, 2, description="tests: trains in seconds"),
    # 2 layers of width 256 reach 99% on 2,000 facts fastest on a CPU (hf-stack.md section 5).
    "small": Preset("gpt_neox", 256, 2, 4, description="the CPU quickstart"),
    "pythia-31m": Preset("gpt_neox", 256, 6, 8, max_positions=2048, description="the paper's Pythia-31M shape"),
    "tiny-gpt2": Preset("gpt2", 64, 2, 2, description="GPT-2 family, for tests"),
    "tiny-llama": Preset("llama", 64, 2, 2, description="Llama family, for tests"),
    "small-gpt2": Preset("gpt2", 256, 2, 4),
    "small-llama": Preset("llama", 256, 2, 4),
    # Narrower than `tiny`, for the capacity scan (benchmarks/bench_capacity.py): models a world can fill.
    "micro": Preset("gpt_neox", 32, 2, 2, description="capacity scans"),
    "nano": Preset("gpt_neox", 16, 2, 2, description="capacity scans"),
}


def model_config(preset: str, vocab_size: int, *, eos_token_id: int, pad_token_id: int) -> PretrainedConfig:
    """The `transformers` config of `preset` for a tokenizer with `vocab_size` tokens."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; presets: {', '.join(PRESETS)}")
    spec = PRESETS[preset]
    special: dict[str, Any] = dict(
        vocab_size=vocab_size, bos_token_id=eos_token_id, eos_token_id=eos_token_id, pad_token_id=pad_token_id
    )
    if spec.family == "gpt_neox":
        return GPTNeoXConfig(
            hidden_size=spec.hidden_size,
            num_hidden_layers=spec.num_layers,
            num_attention_heads=spec.num_heads,
            intermediate_size=4 * spec.hidden_size,
            max_position_embeddings=spec.max_positions,
            rotary_pct=0.25,  # Pythia's partial rotary embedding
            use_parallel_residual=True,
            hidden_dropout=0.0,
            attention_dropout=0.0,
            tie_word_embeddings=False,
            **special,
        )
    if spec.family == "gpt2":
        return GPT2Config(
            n_embd=spec.hidden_size,
            n_layer=spec.num_layers,
            n_head=spec.num_heads,
            n_inner=4 * spec.hidden_size,
            n_positions=spec.max_positions,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
            **special,
        )
    return LlamaConfig(
        hidden_size=spec.hidden_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_heads,
        intermediate_size=4 * spec.hidden_size,
        max_position_embeddings=spec.max_positions,
        attention_dropout=0.0,
        tie_word_embeddings=True,
        **special,
    )


def build_model(preset: str, vocab_size: int, *, eos_token_id: int, pad_token_id: int, seed: int) -> PreTrainedModel:
    """A freshly initialised model of `preset` (initialisation seeded by `seed`)."""
    import torch

    config = model_config(preset, vocab_size, eos_token_id=eos_token_id, pad_token_id=pad_token_id)
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(config)


def rebuilt_model(model: PreTrainedModel) -> PreTrainedModel:
    """A new model of `model`'s architecture and generation config on the CPU, to load a gathered state dict into.

    The model to save after FSDP: FSDP2 swaps a sharded model's class for a subclass of its own, and transformers'
    save-time weight renaming, keyed by class name, would skip it (a GPT-NeoX head written as `lm_head`, which
    transformers 4.x, OpenUnlearning's, does not read)."""
    rebuilt = AutoModelForCausalLM.from_config(model.config)
    rebuilt.generation_config = copy.deepcopy(model.generation_config)
    return rebuilt

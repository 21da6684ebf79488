"""`behemoth attack quantize`: does knowledge an unlearning method removed come back after 8- or 4-bit quantization?

Unlearning with a small learning rate moves weights less than a 4-bit quantization step, so rounding can
map the unlearned weights back onto the same grid points as the original ones (Zhang et al. 2024,
https://arxiv.org/abs/2410.16454). We round-trip every linear layer's weight through symmetric
round-to-nearest (RTN) integers, per output channel or per group of input columns, the scheme GPTQ/AWQ
start from and that needs no GPU library; the output embedding and every bias/norm stay in full
precision, as quantization libraries keep them. The quantized model is saved with de-quantized float
weights (it loads anywhere) and a `quantization_record.json`, then evaluated like any other model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.pytorch_utils import Conv1D

from behemoth_hf.attacks.targets import AttackTargets
from behemoth_hf.cards import write_quantized_card
from behemoth_hf.staging import staged_output
from behemoth_hf.tokenizer import save_tokenizer


QUANTIZATION_RECORD = "quantization_record.json"
ALLOWED_BITS = (2, 3, 4, 5, 6, 7, 8)
# Every metric the attack reports per quantized model (suffix of `quantize_int{bits}_`).
REPORTED = ("forget_accuracy", "retain_accuracy", "forget_Q_A_Prob", "forget_truth_ratio", "model_utility")


def quantize_tensor(weight: torch.Tensor, bits: int, group_size: int | None) -> torch.Tensor:
    """Symmetric RTN round trip of a (out, in) weight: one scale per output row, or per `group_size` input
    columns of a row (the last group may be shorter). Returns the de-quantized weight."""
    levels = 2 ** (bits - 1) - 1  # e.g. 4 bits: integers -7..7 (symmetric, zero exactly representable)
    rows, columns = weight.shape
    group = columns if group_size is None else min(group_size, columns)
    padded = -columns % group
    values = torch.nn.functional.pad(weight.detach().float(), (0, padded)).reshape(rows, -1, group)
    scale = values.abs().amax(dim=-1, keepdim=True).clamp(min=torch.finfo(torch.float32).tiny) / levels
    rounded = (values / scale).round().clamp(-levels, levels) * scale
    return rounded.reshape(rows, -1)[:, :columns].to(weight.dtype)


def quantized_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The layers RTN rounds: every `nn.Linear` and GPT-2 `Conv1D` except the output embedding."""
    output_embedding = model.get_output_embeddings()
    return [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, (nn.Linear, Conv1D)) and module is not output_embedding
    ]


@torch.no_grad()
def quantize_model(model: nn.Module, bits: int, group_size: int | None = 128) -> dict[str, Any]:
    """Round every quantized layer's weight in place; return what was done (for the record)."""
    if bits not in ALLOWED_BITS:
        raise ValueError(f"`bits` must be one of {list(ALLOWED_BITS)}, got {bits}")
    if group_size is not None and group_size < 1:
        raise ValueError(f"`group_size` must be >= 1 or None (per output channel), got {group_size}")
    layers = quantized_layers(model)
    if not layers:
        raise ValueError("the model has no linear layers to quantize")
    error = 0.0
    for _, module in layers:
        # Conv1D stores (in, out): quantize per output channel all the same.
        transposed = isinstance(module, Conv1D)
        weight = module.weight.t() if transposed else module.weight
        rounded = quantize_tensor(weight, bits, group_size)
        error = max(error, float((rounded - weight).abs().max()))
        module.weight.copy_(rounded.t() if transposed else rounded)
    return {
        "scheme": "symmetric round-to-nearest",
        "bits": bits,
        "group_size": group_size,
        "layers": [name for name, _ in layers],
        "max_abs_error": error,
    }


def write_quantized(model_path: str | Path, output: str | Path, bits: int, group_size: int | None) -> Path:
    """Save a quantized copy of the model folder `model_path` (float weights on the RTN grid) to `output`."""
    model = AutoModelForCausalLM.from_pretrained(model_path)
    record = {"source_model": str(model_path), **quantize_model(model, bits, group_size)}
    with staged_output(output, QUANTIZATION_RECORD) as staging:
        model.save_pretrained(staging)
        save_tokenizer(AutoTokenizer.from_pretrained(model_path), staging)
        write_quantized_card(staging, Path(output).name, Path(model_path), record)
        (staging / QUANTIZATION_RECORD).write_text(json.dumps(record, indent=2) + "\n")
    return Path(output)


@dataclass
class QuantizeArguments(AttackTargets):
    """Arguments of `behemoth attack quantize`.

    Args:
        model (`list[str]`):
            Unlearned model folder(s) to attack (may be empty when only the oracle is attacked).
        dataset (`str`):
            Their dataset: a `behemoth generate` folder or a named config.
        output_dir (`str`):
            Quantized models (`models/`), their evaluation report (`evaluation/`) and `quantize.json`/`.md`.
        oracle (`str`, *optional*):
            Retain-oracle model folder: quantized the same way, as the reference that must stay at chance.
        bits (`list[int]`, defaults to `[8, 4]`):
            Integer widths to round-trip through.
        group_size (`int`, *optional*, defaults to 128):
            Input columns sharing one scale (GPTQ/AWQ's usual 128); None for one scale per output channel.
        batch_size (`int`, defaults to 256):
            Sequences per forward pass in evaluation.
    """

    bits: list[int] = field(default_factory=lambda: [8, 4], metadata={"help": "integer widths"})
    group_size: int | None = field(default=128, metadata={"help": "columns per scale; None: per output channel"})
    batch_size: int = field(default=256, metadata={"help": "sequences per forward pass"})

    def __post_init__(self):
        if isinstance(self.bits, int):
            self.bits = [self.bits]
        bad = [bits for bits in self.bits if bits not in ALLOWED_BITS]
        if not self.bits or bad:
            raise ValueError(f"`bits` must list values from {list(ALLOWED_BITS)}, got {self.bits}")
        if self.group_size is not None and self.group_size < 1:
            raise ValueError(f"`group_size` must be >= 1 or None (per output channel), got {self.group_size}")
        super().__post_init__()


def run_quantize(args: QuantizeArguments) -> dict[str, Any]:
    """Quantize every model (and the oracle), evaluate all of them side by side, tabulate what changed."""
    from behemoth_hf.attacks.tables import write_attack_table
    from behemoth_hf.evaluation import EvaluationArguments, run_evaluation

    sources = args.named_targets()
    output = Path(args.output_dir)
    quantized: dict[str, dict[int, str]] = {name: {} for name in sources}
    for name, path in sources.items():
        for bits in args.bits:
            folder = output / "models" / f"{name}-int{bits}"
            if not folder.exists():
                write_quantized(path, folder, bits, args.group_size)
            quantized[name][bits] = str(folder)
    # The oracle's quantized copies are attacked models like the others; the oracle itself is the reference.
    evaluated = [*args.model, *(folder for by_bits in quantized.values() for folder in by_bits.values())]
    results = run_evaluation(
        EvaluationArguments(
            model=evaluated,
            dataset=args.dataset,
            output_dir=str(output / "evaluation"),
            oracle=args.oracle,
            batch_size=args.batch_size,
        )
    )
    names = {path: Path(path).resolve().name for path in evaluated}
    if args.oracle:
        names[args.oracle] = "oracle"
    table = {
        name: {
            "full": _reported(results[names[path]]),
            **{f"int{bits}": _reported(results[names[folder]]) for bits, folder in quantized[name].items()},
        }
        for name, path in sources.items()
    }
    summary = {"bits": args.bits, "group_size": args.group_size, "dataset": args.dataset, "models": table}
    write_attack_table(
        output / "quantize.md",
        title="Quantization attack",
        intro=(
            f"Every linear layer round-tripped through symmetric round-to-nearest integers (group size "
            f"{args.group_size or 'per channel'}); `full` is the model before quantization. The full evaluation "
            "of every model is in `evaluation/report.md`."
        ),
        rows=table,
        columns=REPORTED,
    )
    (output / "quantize.json").write_text(json.dumps(summary, indent=2) + "\n")  # last: marks the attack complete
    return summary


def _reported(results: dict[str, Any]) -> dict[str, float]:
    return {key: results[key]["agg_value"] for key in REPORTED}

"""Run ROME, MEMIT or AlphaEdit on a pretrained model and save it as `behemoth edit` saves a fine-tuning edit.

Everything that can be wrong with the input (model/dataset mismatch, an unsupported family, layers out of range, ROME
given several layers, an empty or too small forget split) is checked before any work. The saved folder is a plain
`transformers` model with its tokenizer, `unlearning_record.json` (method `rome`/`memit`/`alphaedit`, which
`behemoth evaluate` reports with the edit table) and a model card, staged and swapped in only when complete. Only
the chosen layers' MLP output projections change; the record names them.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import time
from collections import Counter
from typing import Any

import numpy as np

from behemoth_hf.arguments import add_config_arguments, read_yaml
from behemoth_hf.data import load_model, open_dataset
from behemoth_hf.editors.arguments import EDITOR_CHOICES, EditorArguments
from behemoth_hf.editors.layers import family, projection_name, weight_matrix
from behemoth_hf.scoring import score_answers
from behemoth_hf.staging import check_output
from behemoth_hf.unlearn.restriction import parse_layers
from behemoth_hf.unlearn.run import (
    MIN_NLL_CHANGE,
    RECORD_FILE,
    forget_effect,
    run_header,
    save_run,
    select_forget_rows,
)


logger = logging.getLogger(__name__)


def default_layers(method: str, num_layers: int) -> list[int]:
    """ROME: layer `(num_layers - 1) // 3` (ROME edits layer 17 of GPT-2 XL's 48, early-middle); MEMIT/AlphaEdit:
    the first half of the layers. In a 2-layer model both are layer 0, the only layer whose MLP output at the
    subject can still reach the last token through a later attention layer."""
    if method == "rome":
        return [(num_layers - 1) // 3]
    return list(range(math.ceil(num_layers / 2)))


def facts_per_subject(subject_ids, count: int, seed: int) -> np.ndarray:
    """Sorted row indices keeping at most `count` rows per subject, the first ones in a seeded order."""
    subject_ids = np.asarray(subject_ids)
    order = np.random.default_rng([seed, 17]).permutation(len(subject_ids))
    taken: Counter[int] = Counter()
    kept = []
    for index in order:
        if taken[subject_ids[index]] < count:
            taken[subject_ids[index]] += 1
            kept.append(index)
    return np.sort(np.asarray(kept, np.int64))


def with_ridge(covariance, ridge: float):
    """`C + ridge * mean(diag C) * I`: an invertible covariance whatever the world (see `covariance_ridge`)."""
    import torch

    return covariance + ridge * covariance.diagonal().mean() * torch.eye(len(covariance), dtype=covariance.dtype)


def requested_method(argv: list[str]) -> str | None:
    """The `method` a `behemoth edit` command line asks for: `--set method=` over `--method` over the YAML file's."""
    parser = argparse.ArgumentParser(add_help=False)
    add_config_arguments(parser)
    parser.add_argument("--method")
    known, _ = parser.parse_known_args(argv)
    method = known.method
    for pair in known.overrides:
        key, _, value = pair.partition("=")
        if key.strip() == "method":
            method = value.strip()
    if method is None and known.config:
        loaded = read_yaml(known.config)
        method = loaded.get("method") if isinstance(loaded, dict) else None
    return method


def run_editor(args: EditorArguments) -> dict[str, Any]:
    """Check, edit, save; return the record."""
    from transformers import set_seed

    from behemoth_hf.editors.alphaedit import alphaedit_solver
    from behemoth_hf.editors.covariance import key_covariances
    from behemoth_hf.editors.memit import apply_memit, memit_solver
    from behemoth_hf.editors.requests import ValueSettings, context_prefixes, subject_edits
    from behemoth_hf.editors.rome import apply_rome

    output = check_output(args.output_dir, RECORD_FILE, overwrite=args.overwrite)
    data = open_dataset(args.dataset)
    model, tokenizer = load_model(data, args.model)
    family(model)
    num_layers = model.config.num_hidden_layers
    layers = parse_layers(args.layers, num_layers, "layers") or default_layers(args.method, num_layers)
    if args.method == "rome" and len(layers) != 1:
        raise ValueError(f"`layers`: ROME edits exactly one layer, got {args.layers!r}; use memit for several")
    rows = select_forget_rows(args, data)
    if args.facts_per_subject is not None:
        rows = rows.select(facts_per_subject(rows["subject_id"], args.facts_per_subject, args.seed))
    edits = subject_edits(rows, data, args.edit_token)
    prefixes = context_prefixes(data, args.context_prefixes)
    settings = ValueSettings(
        steps=args.value_steps,
        learning_rate=args.value_learning_rate,
        kl_factor=args.kl_factor,
        weight_decay=args.value_weight_decay,
        clamp_norm_factor=args.clamp_norm_factor,
    )
    set_seed(args.seed)
    start = time.perf_counter()
    covariances = key_covariances(model, data, layers, args.covariance_rows, args.batch_size)
    regularised = {layer: with_ridge(covariance, args.covariance_ridge) for layer, covariance in covariances.items()}
    null_space = None
    if args.method == "alphaedit":
        solve, null_space = alphaedit_solver(covariances, args.nullspace_threshold)
        if not all(null_space.values()):
            raise ValueError(
                f"`nullspace_threshold` {args.nullspace_threshold:g}: the key covariance of layer(s) "
                f"{[layer for layer, size in null_space.items() if not size]} has no eigenvalue below it, so "
                "AlphaEdit can change nothing there; raise it or choose other `layers`"
            )
    before = score_answers(model, tokenizer, rows["prompt"], rows["target_new"])
    if args.method == "rome":
        logs = apply_rome(model, tokenizer, edits, layers[0], regularised[layers[0]], prefixes, settings)
    else:
        if args.method == "memit":
            solve = memit_solver(regularised, args.covariance_weight)
        logs = apply_memit(model, tokenizer, edits, layers, prefixes, settings, solve)
    wall_seconds = round(time.perf_counter() - start, 2)
    effect = forget_effect(before, score_answers(model, tokenizer, rows["prompt"], rows["target_new"]))
    warnings = []
    if effect["mean_abs_nll_change"] < MIN_NLL_CHANGE:
        warnings.append(
            f"`{args.method}` barely changed the model: the per-token NLL of the new targets moved by "
            f"{effect['mean_abs_nll_change']:.2g} nats per fact on average (< {MIN_NLL_CHANGE}); raise `value_steps` "
            "or `clamp_norm_factor`, or edit other `layers`"
        )
    for warning in warnings:
        logger.warning(warning)
    edited = [f"{projection_name(model, layer)}.weight" for layer in layers]
    record = {
        **run_header(args, data, rows),
        "num_subjects": len(edits),
        "hyperparameters": {
            name: getattr(args, name)
            for name in (
                "value_steps",
                "value_learning_rate",
                "kl_factor",
                "value_weight_decay",
                "clamp_norm_factor",
                "edit_token",
                "covariance_rows",
                *(("covariance_ridge",) if args.method != "alphaedit" else ()),
                *(("covariance_weight",) if args.method == "memit" else ()),
                *(("nullspace_threshold",) if args.method == "alphaedit" else ()),
            )
        },
        "restriction": {
            "lora_rank": None,
            "lora_alpha": None,
            "lora_targets": None,
            "trainable_blocks": family(model).mlp_output,
            "trainable_layers": ",".join(map(str, layers)),
        },
        "layers": layers,
        "edited_tensors": edited,
        "context_prefixes": prefixes,
        "null_space_dimensions": null_space,
        "trainable_parameters": sum(weight_matrix(model, layer).numel() for layer in layers),
        "total_parameters": sum(parameter.numel() for parameter in model.parameters()),
        "seed": args.seed,
        "steps": sum(log["steps"] for log in logs),
        "train_loss": sum(log["target_nll"] for log in logs) / len(logs),
        "wall_seconds": wall_seconds,
        "forget_effect": effect,
        "warnings": warnings,
        "log_history": logs,
        "arguments": dataclasses.asdict(args),
    }
    save_run(model, tokenizer, record, output, args.overwrite)
    return record


def editor_command(argv: list[str]) -> int:
    """`behemoth edit --method rome|memit|alphaedit ...`."""
    from behemoth_hf.arguments import parse_dataclasses

    (args,) = parse_dataclasses((EditorArguments,), argv, prog="behemoth edit")
    record = run_editor(args)
    effect = record["forget_effect"]
    print(
        f"saved {args.output_dir}: {record['method']} on layer(s) {record['layers']}, {record['num_forget_examples']} "
        f"facts of {record['num_subjects']} subjects, new-target accuracy {effect['accuracy_before']:.3f} -> "
        f"{effect['accuracy_after']:.3f} ({record['wall_seconds']} s)"
    )
    return 0


__all__ = ["EDITOR_CHOICES", "EditorArguments", "default_layers", "editor_command", "requested_method", "run_editor"]

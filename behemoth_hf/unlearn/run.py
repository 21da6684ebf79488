"""Run one unlearning or editing method on a pretrained model and save the result.

Everything that can be wrong with the input (model/dataset mismatch, an empty forget split, a
method that needs retain data without it, a bad restriction) is checked before training starts.
The saved folder is a plain `transformers` model (LoRA adapters merged) that `AutoModelForCausalLM`
loads, its tokenizer, `unlearning_record.json` and a model card; it appears only when complete.
Every random choice (data order, retain pairs, the `num_edits` subset, LoRA initialisation) comes from
`seed`. A run that leaves the answers it trains on where they were warns, in the log and in the record.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
from transformers import enable_full_determinism, set_seed

from behemoth_hf.data import BehemothData, load_model, open_dataset
from behemoth_hf.editors.arguments import EDITOR_CHOICES
from behemoth_hf.lexicon import Lexicon
from behemoth_hf.scoring import AnswerScores, score_answers
from behemoth_hf.staging import check_output, staged_output
from behemoth_hf.tokenizer import save_tokenizer
from behemoth_hf.unlearn.arguments import UnlearningArguments
from behemoth_hf.unlearn.data import ForgetRetainDataset, PairedCollator, encode_examples
from behemoth_hf.unlearn.registry import METHODS
from behemoth_hf.unlearn.restriction import (
    apply_lora,
    count_parameters,
    parse_layers,
    restrict_to_blocks,
    trained_model,
)


logger = logging.getLogger(__name__)

RECORD_FILE = "unlearning_record.json"
# Seed stream of the split into requests: a property of the world (config seed), not of a run's seed, so
# every run of a sequence, and every seed of an experiment, sees the same requests.
_REQUEST_STREAM = 41
# A run that moves the probability of the answers it trains on by under 1% on average (mean |change of their
# per-token NLL| below 0.01 nats, exp(0.01) = 1.01) has changed nothing the metrics resolve: it warns.
MIN_NLL_CHANGE = 0.01


def edit_answers(args: UnlearningArguments, rows, data: BehemothData) -> list[str]:
    """The answers the forget part of a batch is trained toward."""
    if args.method != "edit":
        return list(rows["answer"])
    if args.edit_target == "target_new":
        return list(rows["target_new"])
    relation_ids = np.asarray(rows["relation_id"])
    if (relation_ids >= data.config.num_relations).any():
        raise ValueError("`edit_target=constant` rewrites base relations only; this split has nested facts")
    if not 0 <= args.constant_object < data.config.num_objects:
        raise ValueError(
            f"`constant_object` must be in [0, {data.config.num_objects - 1}], got {args.constant_object}"
        )
    lexicon = Lexicon(data.config)
    return [lexicon.name(lexicon.object_entity(r, args.constant_object)) for r in relation_ids]


def select_forget_rows(args: UnlearningArguments, data: BehemothData):
    if args.forget_split not in data.fact_splits:
        raise ValueError(
            f"`forget_split` {args.forget_split!r} is not a split of {data.source}: {list(data.fact_splits)}"
        )
    rows = data.fact_splits[args.forget_split]
    if len(rows) == 0:
        raise ValueError(f"`forget_split` {args.forget_split!r} is empty: there is nothing to unlearn or edit")
    if args.num_edits is not None:
        if args.num_edits > len(rows):
            raise ValueError(f"`num_edits` ({args.num_edits}) exceeds the {len(rows)} facts of `{args.forget_split}`")
        chosen = np.sort(np.random.default_rng([args.seed, 13]).permutation(len(rows))[: args.num_edits])
        rows = rows.select(chosen)
    if args.num_requests > 1:
        rows = rows.select(request_rows(rows, data.config.seed, args.num_requests)[args.request - 1])
    return rows


def request_rows(rows, world_seed: int, num_requests: int) -> list[np.ndarray]:
    """Row indices of each of `num_requests` deletion requests: the subjects of `rows` in a seeded order, cut
    into near-equal groups, each request holding every row of its subjects (a user asks to delete a person)."""
    subject_ids = np.asarray(rows["subject_id"])
    subjects = np.unique(subject_ids)
    if num_requests > len(subjects):
        raise ValueError(
            f"`num_requests` ({num_requests}) exceeds the {len(subjects)} subjects of the facts to unlearn"
        )
    order = np.random.default_rng([world_seed, _REQUEST_STREAM]).permutation(subjects)
    return [np.flatnonzero(np.isin(subject_ids, group)) for group in np.array_split(order, num_requests)]


def run_unlearning(args: UnlearningArguments) -> dict[str, Any]:
    """Check, train, save; return the record."""
    output = check_output(args.output_dir, RECORD_FILE, overwrite=args.overwrite)
    trainer_class = METHODS[args.method]
    data = open_dataset(args.dataset)
    model, tokenizer = load_model(data, args.model)
    forget_rows = select_forget_rows(args, data)
    answers = edit_answers(args, forget_rows, data)
    prompts = forget_rows[args.example_form]
    forget = encode_examples(tokenizer, prompts, answers)
    retain = None
    if trainer_class.uses_retain and args.alpha > 0:
        if args.retain_split not in data.fact_splits or len(data.fact_splits[args.retain_split]) == 0:
            raise ValueError(
                f"method `{args.method}` needs retain data but split {args.retain_split!r} is missing or empty"
            )
        retain_rows = data.fact_splits[args.retain_split]
        retain = encode_examples(tokenizer, retain_rows[args.example_form], retain_rows["answer"])

    layers = parse_layers(args.trainable_layers, model.config.num_hidden_layers)
    before = score_answers(model, tokenizer, prompts, answers)
    # LoRA adapters are drawn from the global RNG before the Trainer seeds it: seed it first, as the Trainer does.
    if args.full_determinism:
        enable_full_determinism(args.seed)
    else:
        set_seed(args.seed)
    if args.lora_rank is not None:
        model = apply_lora(model, args.lora_rank, args.lora_alpha, args.lora_targets, layers)
    else:
        restrict_to_blocks(model, args.trainable_blocks, layers)

    trainer = trainer_class(
        model=model,
        args=args,
        train_dataset=ForgetRetainDataset(forget, retain, args.seed),
        data_collator=PairedCollator(tokenizer.pad_token_id),
        processing_class=tokenizer,
    )
    trainable, total = count_parameters(model)  # after the trainer: a method may narrow them (RMU's `rmu_params`)
    start = time.perf_counter()
    result = trainer.train()
    wall_seconds = round(time.perf_counter() - start, 2)
    effect = forget_effect(before, score_answers(trainer.model, tokenizer, prompts, answers))
    warnings = [] if effect["mean_abs_nll_change"] >= MIN_NLL_CHANGE else [_no_change_warning(args, effect, trainer)]
    for warning in warnings:
        logger.warning(warning)
    record = {
        **run_header(args, data, forget_rows),
        "hyperparameters": {
            name: getattr(args, name)
            for name in (
                "alpha",
                "gamma",
                "beta",
                "delta",
                "retain_loss",
                "kl_answer_only",
                "edit_target",
                "constant_object",
            )
        },
        "restriction": {
            name: getattr(args, name)
            for name in ("lora_rank", "lora_alpha", "lora_targets", "trainable_blocks", "trainable_layers")
        },
        "trainable_parameters": trainable,
        "total_parameters": total,
        "seed": args.seed,
        "num_processes": trainer.accelerator.num_processes,  # each trains on its slice of every step's batch
        "distributed_type": trainer.accelerator.distributed_type.value,
        "steps": result.global_step,
        "train_loss": result.training_loss,
        "wall_seconds": wall_seconds,
        "forget_effect": effect,
        "warnings": warnings,
        "log_history": trainer.state.log_history,
        "arguments": {k: v for k, v in dataclasses.asdict(args).items() if _jsonable(v)},
    }
    model = trained_model(trainer)
    if trainer.is_world_process_zero():
        save_run(model, tokenizer, record, output, args.overwrite)
    trainer.accelerator.wait_for_everyone()  # under several processes the others return once the model is saved
    return record


def forget_effect(before: AnswerScores, after: AnswerScores) -> dict[str, float]:
    """What training did to the answers it trained on (the forget answers, or an edit's new ones): their mean
    per-token NLL and exact-match accuracy before and after, and the mean absolute change of the NLL per fact."""
    return {
        "mean_nll_before": float(before.mean_nll.mean()),
        "mean_nll_after": float(after.mean_nll.mean()),
        "accuracy_before": before.accuracy,
        "accuracy_after": after.accuracy,
        "mean_abs_nll_change": float(np.abs(after.mean_nll - before.mean_nll).mean()),
    }


def _no_change_warning(args: UnlearningArguments, effect: dict[str, float], trainer) -> str:
    grad_norms = [entry["grad_norm"] for entry in trainer.state.log_history if "grad_norm" in entry]
    gradient = f", largest logged gradient norm {max(grad_norms):.2g}" if grad_norms else ""
    return (
        f"`{args.method}` barely changed the model: the per-token NLL of the answers it trained on moved by "
        f"{effect['mean_abs_nll_change']:.2g} nats per fact on average (< {MIN_NLL_CHANGE}; accuracy "
        f"{effect['accuracy_before']:.3f} -> {effect['accuracy_after']:.3f}) at `learning_rate={args.learning_rate:g}`"
        f"{gradient}; raise `learning_rate` or train longer"
    )


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except TypeError:
        return False
    return True


def is_edit_method(method: str) -> bool:
    """Does `method` write new targets (the fine-tuning `edit`, or a locate-then-edit editor)?"""
    return method in ("edit", *EDITOR_CHOICES)


def run_header(args, data: BehemothData, rows) -> dict[str, Any]:
    """The fields every unlearning/edit record opens with: what ran, on which model and data, for which request,
    on how many of its facts, and for an edit which facts (`behemoth evaluate` judges an edit on them)."""
    return {
        "method": args.method,
        "model": args.model,
        "dataset": data.source,
        "dataset_config": data.config.name,
        "dataset_fingerprint": data.fingerprint,
        "forget_split": args.forget_split,
        "request": {"request": args.request, "num_requests": args.num_requests},
        "num_forget_examples": len(rows),
        **({"edited_fact_ids": list(rows["fact_id"])} if is_edit_method(args.method) else {}),
    }


def save_run(model, tokenizer, record: dict[str, Any], output: Path, overwrite: bool) -> None:
    """Write an unlearned or edited model folder: weights, tokenizer, model card, and the record last (staged)."""
    from behemoth_hf.cards import write_unlearning_card

    with staged_output(output, RECORD_FILE, overwrite=overwrite) as staging:
        model.save_pretrained(staging)
        save_tokenizer(tokenizer, staging)
        write_unlearning_card(staging, record)
        (staging / RECORD_FILE).write_text(json.dumps(record, indent=2, default=str) + "\n")

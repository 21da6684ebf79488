"""Pretrain a model from scratch on a Behemoth `train` corpus with `accelerate`, in nanoGPT's order:
arguments -> data -> model -> optimizer -> loop with evaluation and checkpoints -> save.

The corpus is read once, in order: `train` already holds each fact `repeats` times in seeded
shuffled passes, so one pass is the whole run, and resuming only has to skip the sentences already
consumed. Runs unchanged under `torchrun` / `accelerate launch`: `batch_size` is the global batch, each
process reads the corpus stream and takes its own share of every update, and the loss of an update is
normalised by the labelled tokens of all processes together, so N processes compute the same updates as one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import itertools
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from accelerate import Accelerator, PartialState
from accelerate.state import AcceleratorState
from accelerate.utils import (
    DistributedType,
    GradientAccumulationPlugin,
    ProjectConfiguration,
    broadcast_object_list,
    is_tensorboard_available,
    is_trackio_available,
    is_wandb_available,
    parse_flag_from_env,
    set_seed,
)
from torch.utils.data import DataLoader, IterableDataset, get_worker_info
from tqdm.auto import tqdm
from transformers import GenerationConfig, get_scheduler

from behemoth_hf.cli import launched_processes
from behemoth_hf.data import BehemothData, open_dataset
from behemoth_hf.modeling import PRESETS, build_model, rebuilt_model
from behemoth_hf.render import END
from behemoth_hf.scoring import score_answers
from behemoth_hf.staging import check_output, claimed, commit, is_finished, refuse_unsafe_path, staging_path
from behemoth_hf.tokenizer import save_tokenizer

logger = logging.getLogger(__name__)

TRAINED_SPLITS = ("forget", "retain", "dependent")
EXCLUDABLE_SPLITS = TRAINED_SPLITS
RECORD_FILE = "training_record.json"
CHECKPOINT_DIR = "checkpoints"
STATE_FILE = "run_state.json"
# The longest answer, a two-word name (names have at most two words: config.MAX_ENTITIES_PER_TYPE), plus its <eos>.
ANSWER_MAX_NEW_TOKENS = 3
# What marks a folder as a pretraining run of ours, finished or not (for --overwrite).
CHECKPOINT_MARKER = f"{CHECKPOINT_DIR}/step-*"
# Tracker logs (tensorboard event files) under the output folder, next to the checkpoints.
RUNS_DIR = "runs"
TRACKER_PROJECT = "behemoth_pretrain"
# `--report_to` choices and the availability check of each tracker's package.
TRACKERS: dict[str, Callable[[], bool]] = {
    "none": lambda: True,
    "tensorboard": is_tensorboard_available,
    "wandb": is_wandb_available,
    "trackio": is_trackio_available,
}
# Tokens per row with `packing: sentences` (sentences are 10-15 tokens, so 5-6 per row; measured in README).
PACKED_ROW_TOKENS = 64


@dataclass
class PretrainArguments:
    """Arguments of `behemoth pretrain`.

    Args:
        dataset (`str`):
            A folder written by `behemoth generate`, or a named config (generated on the fly).
        output_dir (`str`):
            Where the model, tokenizer, record, card and checkpoints go.
        preset (`str`, defaults to `"small"`):
            Model preset (see `behemoth_hf.modeling.PRESETS`).
        loss (`str`, defaults to `"answer"`):
            `answer`: loss on the object token(s) only; `all`: plain LM loss on every token.
        exclude_split (`str`, *optional*):
            Drop this split's facts from the corpus, e.g. `forget` to train the retain oracle.
        learning_rate (`float`, defaults to 1e-3):
            Peak AdamW learning rate.
        weight_decay (`float`, defaults to 0.0):
            AdamW weight decay (0: memorisation gains nothing from it).
        lr_scheduler_type (`str`, defaults to `"constant_with_warmup"`):
            Any `transformers.get_scheduler` name.
        warmup_steps (`int`, defaults to 50):
            Linear warm-up steps.
        batch_size (`int`, defaults to 64):
            Sentences per optimizer update, over all processes and accumulation steps (the global batch): each
            process takes `batch_size / (num_processes * gradient_accumulation_steps)` per forward pass.
        gradient_accumulation_steps (`int`, defaults to 1):
            Forward/backward passes per optimizer update (the global batch stays `batch_size`).
        packing (`str`, defaults to `"none"`):
            `none`: one sentence per row, right-padded; `sentences`: several sentences per row, each attending
            only to itself (position ids restart per sentence; the model builds the block-diagonal mask).
        max_steps (`int`, defaults to -1):
            Stop after this many optimizer updates; -1 means one pass over `train`. At most one pass: the world's
            `repeats` sets how often each fact is seen, so more exposures come from a world with more repeats.
        eval_steps (`int`, defaults to 100):
            Measure fact accuracy on a sample of trained facts every this many updates.
        eval_samples (`int`, defaults to 1000):
            Size of that sample.
        target_accuracy (`float`, *optional*, defaults to 0.99):
            Stop early once the sample accuracy reaches it (None: never stop early).
        save_steps (`int`, defaults to 500):
            Save a resumable checkpoint every this many updates.
        save_total_limit (`int`, defaults to 2):
            Checkpoints kept (oldest deleted first).
        logging_steps (`int`, defaults to 20):
            Update the progress bar's loss every this many updates.
        seed (`int`, defaults to 0):
            Seed of model initialisation and evaluation sampling.
        mixed_precision (`str`, *optional*):
            `no`, `fp16`, `bf16`, or `auto` (bf16 where the GPU supports it, else no). Unset, the launcher's (the
            `accelerate launch` config file or `--mixed_precision`), else `no`, as `TrainingArguments` does.
        torch_compile (`bool`, defaults to `False`):
            Compile the model with `torch.compile` (inductor) through accelerate.
        dataloader_num_workers (`int`, defaults to 0):
            Worker processes that tokenize batches ahead of the training loop (0: in the loop's process).
        report_to (`str`, defaults to `"none"`):
            Experiment tracker (through accelerate): `none`, `tensorboard` (event files in `output_dir/runs`),
            `wandb` or `trackio`; metric names as the Trainer-based commands log them (`train/loss`, ...).
        resume (`bool`, defaults to `False`):
            Continue from the latest checkpoint in `output_dir` (must be the same run).
        overwrite (`bool`, defaults to `False`):
            Replace an existing, finished `output_dir`.
    """

    dataset: str = field(metadata={"help": "folder written by `behemoth generate`, or a named config"})
    output_dir: str = field(
        metadata={"help": "where the model, tokenizer, record, card and checkpoints go", "aliases": ["--output"]}
    )
    preset: str = field(default="small", metadata={"help": f"model preset: {', '.join(PRESETS)}"})
    loss: Literal["answer", "all"] = field(
        default="answer", metadata={"help": "`answer`: loss on the object token(s) only; `all`: every token"}
    )
    exclude_split: str | None = field(
        default=None, metadata={"help": "drop this split's facts from the corpus (`forget` trains the oracle)"}
    )
    learning_rate: float = field(default=1e-3, metadata={"help": "peak AdamW learning rate"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    lr_scheduler_type: str = field(default="constant_with_warmup", metadata={"help": "transformers scheduler name"})
    warmup_steps: int = field(default=50, metadata={"help": "linear warm-up steps"})
    batch_size: int = field(
        default=64, metadata={"help": "sentences per optimizer update over all processes (the global batch)"}
    )
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "forward passes per optimizer update"})
    # `str`, not a Literal with "none": the argument parser reads the word none as None for Literal fields.
    packing: str = field(
        default="none", metadata={"help": "none, or sentences: several sentences per row, each attending to itself"}
    )
    max_steps: int = field(default=-1, metadata={"help": "optimizer updates; -1 = one pass over `train`"})
    eval_steps: int = field(default=100, metadata={"help": "updates between fact-accuracy measurements"})
    eval_samples: int = field(default=1000, metadata={"help": "trained facts in the accuracy sample"})
    target_accuracy: float | None = field(
        default=0.99, metadata={"help": "stop early at this sample accuracy (None: never)"}
    )
    save_steps: int = field(default=500, metadata={"help": "updates between resumable checkpoints"})
    save_total_limit: int = field(default=2, metadata={"help": "checkpoints kept"})
    logging_steps: int = field(default=20, metadata={"help": "updates between loss reports"})
    seed: int = field(default=0, metadata={"help": "seed of initialisation and evaluation sampling"})
    mixed_precision: Literal["no", "fp16", "bf16", "auto"] | None = field(
        default=None, metadata={"help": "`auto`: bf16 where the GPU supports it; unset: the launcher's, else no"}
    )
    torch_compile: bool = field(default=False, metadata={"help": "compile the model with torch.compile"})
    dataloader_num_workers: int = field(default=0, metadata={"help": "worker processes that prepare batches"})
    report_to: str = field(
        default="none", metadata={"help": "experiment tracker: none, tensorboard, wandb or trackio"}
    )
    resume: bool = field(default=False, metadata={"help": "continue from the latest checkpoint in output_dir"})
    overwrite: bool = field(default=False, metadata={"help": "replace an existing finished output_dir"})

    def __post_init__(self):
        if self.preset not in PRESETS:
            raise ValueError(f"`preset` must be one of {list(PRESETS)}, got {self.preset!r}")
        if self.loss not in ("answer", "all"):
            raise ValueError(f"`loss` must be `answer` or `all`, got {self.loss!r}")
        if self.exclude_split is not None and self.exclude_split not in EXCLUDABLE_SPLITS:
            raise ValueError(
                f"`exclude_split` must be one of {list(EXCLUDABLE_SPLITS)} or None, got {self.exclude_split!r}"
            )
        for name in (
            "batch_size",
            "gradient_accumulation_steps",
            "eval_steps",
            "eval_samples",
            "save_steps",
            "save_total_limit",
            "logging_steps",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be >= 1, got {getattr(self, name)}")
        if self.max_steps == 0 or self.max_steps < -1:
            raise ValueError(f"`max_steps` must be >= 1, or -1 for one pass over `train`; got {self.max_steps}")
        if self.learning_rate <= 0:
            raise ValueError(f"`learning_rate` must be > 0, got {self.learning_rate}")
        if self.warmup_steps < 0 or self.seed < 0:
            raise ValueError("`warmup_steps` and `seed` must be >= 0")
        if self.target_accuracy is not None and not 0 < self.target_accuracy <= 1:
            raise ValueError(f"`target_accuracy` must be in (0, 1] or None, got {self.target_accuracy}")
        if self.mixed_precision is None:
            # The launcher's (`accelerate launch` sets ACCELERATE_MIXED_PRECISION), as TrainingArguments takes it: the
            # explicit value handed to the Accelerator would override a launch file's bf16.
            self.mixed_precision = os.environ.get("ACCELERATE_MIXED_PRECISION", "no")
        if self.mixed_precision not in ("no", "fp16", "bf16", "auto"):
            raise ValueError(f"`mixed_precision` must be no, fp16, bf16 or auto; got {self.mixed_precision!r}")
        if self.packing not in ("none", "sentences"):
            raise ValueError(f"`packing` must be none or sentences, got {self.packing!r}")
        if self.dataloader_num_workers < 0:
            raise ValueError(f"`dataloader_num_workers` must be >= 0, got {self.dataloader_num_workers}")
        if self.report_to not in TRACKERS:
            raise ValueError(f"`report_to` must be one of {list(TRACKERS)}, got {self.report_to!r}")
        if self.report_to != "none" and not TRACKERS[self.report_to]():
            raise ValueError(
                f"`report_to` {self.report_to} needs the {self.report_to} package: pip install {self.report_to}"
            )

    def micro_batch_size(self, num_processes: int) -> int:
        """Sentences per forward pass on each of `num_processes` processes; `ValueError` unless they divide the
        global batch evenly (an uneven split would weigh the processes' sentences differently)."""
        shares = num_processes * self.gradient_accumulation_steps
        if self.batch_size % shares:
            raise ValueError(
                f"`batch_size` {self.batch_size} (the global batch) must be a multiple of the number of processes "
                f"({num_processes}) times `gradient_accumulation_steps` ({self.gradient_accumulation_steps})"
            )
        return self.batch_size // shares

    def run_fingerprint(self, dataset_fingerprint: str) -> str:
        """Identity of a run for `--resume`: everything that changes the trajectory."""
        payload = run_identity(dataclasses.asdict(self), dataset_fingerprint)
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def run_identity(arguments: dict[str, Any], dataset_fingerprint: str) -> dict[str, Any]:
    """The arguments (as a record stores them) that change a run's trajectory, with its dataset's fingerprint."""
    ignored = {
        "output_dir",
        "resume",
        "overwrite",
        "logging_steps",
        "save_steps",
        "save_total_limit",
        "dataset",
        "dataloader_num_workers",  # the batches are the same whoever prepares them
        "report_to",
    }
    kept = {
        name: value
        for name, value in arguments.items()
        if name not in ignored and not (name in _OFF_VALUES and value == _OFF_VALUES[name])
    }
    return {**kept, "dataset_fingerprint": dataset_fingerprint}


# Options added after models were first trained: part of a run's identity only when switched on, so a model or
# checkpoint made before they existed keeps its identity (reused, resumable) when they are off.
_OFF_VALUES = {"packing": "none", "torch_compile": False}


# ---------------------------------------------------------------------------------------------- data
class SentenceBatches(IterableDataset):
    """Ready-made training batches from the `train` corpus, in corpus order, for one process of a run.

    The corpus is cut into consecutive micro-batches of `micro_batch_size` sentences; an optimizer update takes
    `num_processes * accumulation_steps` of them, micro-batch `i` going to process `i % num_processes`, so every
    process reads the same stream and together they see each sentence once per pass, in the order one process
    would. The last update is completed with filler micro-batches (one unlabelled `<eos>`: no loss, no gradient) so
    every process runs the same number of steps. `DataLoader` workers of one process take turns the same way.

    A sentence's closing "." is read as `<eos>`: rows are `sentence-without-"." <eos>`, right-padded.
    OpenUnlearning (and `behemoth evaluate`, `scoring.score_answers`) score a fact as its prompt, the
    object, then `<eos>` appended right after it (the export's `question` is the statement up to the object
    and no tag follows the answer), and generation stops at `<eos>`. Keeping the "." would teach the model
    `object . <eos>`, so the `<eos>` both score would follow a token the model never ends on; a "." in the
    answer string instead would add an always-certain token to every answer's probability. The corpus text
    keeps its "." (the original format; the data bytes stay the same).

    With the `answer` loss the object tokens are labelled, i.e. the tokens right after the `OO` marker up to
    the next grammar word (the object can be a two-word name, and sits mid-sentence in the `sor`/`osr`
    orders), and the `<eos>` that directly follows an object: what a fact is, the answer and then its end.

    With `packing="sentences"` the sentences of a micro-batch are laid end to end in rows of at most
    `PACKED_ROW_TOKENS` tokens, with position ids restarting at each sentence and no attention mask: the model
    then attends within each sentence only (`transformers` builds the block-diagonal mask from the position ids),
    and the first token of a sentence is not a target. Same sentences, same labels, same loss; less padding.
    """

    def __init__(
        self,
        data: BehemothData,
        micro_batch_size: int,
        loss: str,
        skip_rows: int,
        excluded: np.ndarray | None,
        *,
        num_processes: int = 1,
        process_index: int = 0,
        accumulation_steps: int = 1,
        packing: str = "none",
    ):
        self.data, self.micro_batch_size, self.loss = data, micro_batch_size, loss
        self.skip_rows, self.excluded = skip_rows, excluded
        self.num_processes, self.process_index = num_processes, process_index
        self.micro_batches_per_update = num_processes * accumulation_steps
        self.packing = packing
        tokenizer = data.tokenizer
        self.pad_id, self.eos_id = tokenizer.pad_token_id, tokenizer.eos_token_id
        self.marker_id = tokenizer.convert_tokens_to_ids("OO")
        self.end_id = tokenizer.convert_tokens_to_ids(END)
        grammar = next(role for role in tokenizer.init_kwargs["behemoth_roles"] if role["role"] == "grammar")
        self.first_entity_id = grammar["end"]  # specials and grammar words come first

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        worker = get_worker_info()
        workers, worker_id = (1, 0) if worker is None else (worker.num_workers, worker.id)
        for index, texts in enumerate(self._micro_batches()):
            # Only this process's micro-batches are tokenized, and each by one worker (workers in turn).
            mine = index // self.num_processes
            if index % self.num_processes == self.process_index and mine % workers == worker_id:
                yield self._filler() if texts is None else self._batch(texts)

    def _micro_batches(self) -> Iterator[list[str] | None]:
        """The texts of every micro-batch of the run in order (None: a filler completing the last update)."""
        pending: list[str] = []
        to_skip = self.skip_rows  # counted in kept sentences, after exclusion
        count = 0
        for table in self.data.train_tables(["text", "fact_id"]):
            if self.excluded is not None:
                table = table.filter(~np.isin(table.column("fact_id").to_numpy(), self.excluded))
            if to_skip >= table.num_rows:
                to_skip -= table.num_rows
                continue
            pending.extend(table.column("text").slice(to_skip).to_pylist())
            to_skip = 0
            while len(pending) >= self.micro_batch_size:
                yield pending[: self.micro_batch_size]
                del pending[: self.micro_batch_size]
                count += 1
        if pending:
            yield pending
            count += 1
        for _ in range(-count % self.micro_batches_per_update):
            yield None

    def _filler(self) -> dict[str, torch.Tensor]:
        ids = torch.tensor([[self.eos_id]])
        if self.packing == "sentences":
            return {"input_ids": ids, "position_ids": torch.zeros_like(ids), "labels": torch.full_like(ids, -100)}
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": torch.full_like(ids, -100)}

    def _batch(self, texts: list[str]) -> dict[str, torch.Tensor]:
        rows = self.data.tokenizer(texts, add_special_tokens=False).input_ids
        # Drop the closing "." (every rendered sentence has one), then end with <eos>.
        rows = [row[:-1] if row[-1] == self.end_id else row for row in rows]
        width = max(len(row) for row in rows) + 1
        ids = np.full((len(rows), width), self.pad_id, np.int64)
        attention = np.zeros_like(ids)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = row
            ids[i, len(row)] = self.eos_id
            attention[i, : len(row) + 1] = 1
        if self.loss == "all":
            labels = np.where(attention == 1, ids, -100)
        else:
            labels = np.full_like(ids, -100)
            in_answer = np.zeros(len(rows), bool)
            for t in range(1, width):
                is_entity = ids[:, t] >= self.first_entity_id
                ends_answer = in_answer & (ids[:, t] == self.eos_id)  # in_answer still describes token t - 1
                in_answer = ((ids[:, t - 1] == self.marker_id) | in_answer) & is_entity
                labelled = in_answer | ends_answer
                labels[labelled, t] = ids[labelled, t]
        if self.packing == "sentences":
            return self._pack(ids, labels, attention.sum(axis=1))
        return {
            "input_ids": torch.from_numpy(ids),
            "attention_mask": torch.from_numpy(attention),
            "labels": torch.from_numpy(labels),
        }

    def _pack(self, ids: np.ndarray, labels: np.ndarray, lengths: np.ndarray) -> dict[str, torch.Tensor]:
        """The padded rows `ids`/`labels` (true lengths `lengths`) laid end to end, greedily, in rows of at most
        `PACKED_ROW_TOKENS` tokens; the padding closing a packed row is a block of its own (positions from 0)."""
        groups: list[list[int]] = [[]]
        used = 0
        for i, length in enumerate(lengths):
            if groups[-1] and used + length > PACKED_ROW_TOKENS:
                groups.append([])
                used = 0
            groups[-1].append(i)
            used += length
        width = max(int(lengths[group].sum()) for group in groups)
        packed_ids = np.full((len(groups), width), self.pad_id, np.int64)
        packed_labels = np.full_like(packed_ids, -100)
        positions = np.zeros_like(packed_ids)
        for r, group in enumerate(groups):
            at = 0
            for i in group:
                n = lengths[i]
                packed_ids[r, at : at + n] = ids[i, :n]
                packed_labels[r, at + 1 : at + n] = labels[i, 1:n]  # a sentence's first token is never a target
                positions[r, at : at + n] = np.arange(n)
                at += n
            positions[r, at:] = np.arange(width - at)
        return {
            "input_ids": torch.from_numpy(packed_ids),
            "position_ids": torch.from_numpy(positions),
            "labels": torch.from_numpy(packed_labels),
        }


def _fact_ids(data: BehemothData, split: str) -> np.ndarray:
    if split not in data.fact_splits:
        return np.zeros(0, np.int64)
    return np.asarray(data.fact_splits[split]["fact_id"], np.int64)


def _evaluation_sample(data: BehemothData, excluded_split: str | None, size: int, seed: int):
    """A fixed sample of the facts this run trains on: (prompts, answers)."""
    prompts, answers = [], []
    for split in TRAINED_SPLITS:
        if split in data.fact_splits and split != excluded_split:
            prompts += list(data.fact_splits[split]["prompt"])
            answers += list(data.fact_splits[split]["answer"])
    chosen = np.sort(np.random.default_rng([seed, 7]).permutation(len(prompts))[:size])
    return [prompts[i] for i in chosen], [answers[i] for i in chosen]


# ---------------------------------------------------------------------------------------------- loop
def pretrain(args: PretrainArguments, on_step_end: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Train, evaluate and save; return the training record. `on_step_end(step)` runs after each update.

    A new run trains in `output_dir` (its checkpoints are resumable there); a run replacing a finished one
    (`overwrite`) trains in a hidden staging sibling, so the old model stays whole until the new one replaces it.
    Under several processes only the main one claims and writes the output; the others wait for it.
    """
    output = _checked_output(args)
    replacing = output.is_dir() and any(output.iterdir()) and not args.resume
    # The processes of this run (the Accelerator made below shares this state); ACCELERATE_USE_CPU read as
    # AcceleratorState reads it, else a CPU-only torchrun would make every process a lone one.
    state = PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU"))
    launched = launched_processes()
    if launched > 1 and state.num_processes == 1:
        raise ValueError(
            f"started as {launched} processes, but accelerate sees a single one (no GPU): set ACCELERATE_USE_CPU=1 "
            "to run them as CPU processes"
        )
    micro_batch_size = args.micro_batch_size(state.num_processes)
    if args.mixed_precision == "fp16" and state.device.type == "cpu":
        raise ValueError(
            "`mixed_precision` fp16 needs a GPU (accelerate would silently train in fp32 on a CPU); use bf16"
        )
    data = open_dataset(args.dataset)
    excluded, kept_rows = _training_rows(args, data)
    run_id = args.run_fingerprint(data.fingerprint)
    checkpoint, resumed = _resume_point(args, output, run_id, state.num_processes) if args.resume else (None, None)
    with contextlib.ExitStack() as stack:
        if state.is_main_process:
            stack.enter_context(claimed(output))
        main_pid = broadcast_object_list([os.getpid()])[0]
        work = staging_path(output, main_pid) if replacing else output
        try:
            accelerator = _accelerator(args, work)
            model, state_dict, record = _train(
                args, data, excluded, kept_rows, accelerator, micro_batch_size, work, run_id, checkpoint, resumed,
                on_step_end,
            )  # fmt: skip
            if state.is_main_process:
                _save_final(model, state_dict, data.tokenizer, record, work, output, replacing)
        except BaseException:
            if replacing and state.is_main_process:
                shutil.rmtree(work, ignore_errors=True)
            raise
        state.wait_for_everyone()
    return record


def _checked_output(args: PretrainArguments) -> Path:
    """`output_dir` checked against the output policy (`behemoth_hf.staging`) before any work."""
    output = refuse_unsafe_path(args.output_dir, "output_dir")
    unfinished = (output / CHECKPOINT_DIR).is_dir() and not is_finished(output, RECORD_FILE)
    if args.resume:
        if is_finished(output, RECORD_FILE):
            raise FileExistsError(f"--resume: `output_dir` {output} holds a finished run; nothing to resume")
        return output
    if unfinished and not args.overwrite:
        raise FileExistsError(
            f"`output_dir` {output} holds an unfinished run; pass --resume to continue it or --overwrite to start "
            "again"
        )
    return check_output(output, (RECORD_FILE, CHECKPOINT_MARKER), overwrite=args.overwrite)


def _accelerator(args: PretrainArguments, work: Path) -> Accelerator:
    """The run's Accelerator; trackers write under `work/runs`."""
    mixed_precision = args.mixed_precision
    if mixed_precision == "auto":
        mixed_precision = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    # Each run sets its own precision and plugins; accelerate keeps them in a per-process singleton, so a
    # second run in the same process (tests, a pipeline) starts from a clean one, as TrainingArguments does.
    AcceleratorState._reset_state()
    return Accelerator(
        mixed_precision=mixed_precision,
        # Every update gets exactly this many micro-batches (SentenceBatches adds fillers to the last one), so
        # accelerate's own step count decides when gradients are synchronised.
        gradient_accumulation_plugin=GradientAccumulationPlugin(
            num_steps=args.gradient_accumulation_steps, sync_with_dataloader=False
        ),
        # accelerate would step the schedule once per process per update (it assumes the global batch grows with
        # the process count); ours is the same on any number of processes.
        step_scheduler_with_optimizer=False,
        dynamo_backend="inductor" if args.torch_compile else "no",
        log_with=None if args.report_to == "none" else args.report_to,
        project_config=ProjectConfiguration(project_dir=str(work), logging_dir=str(work / RUNS_DIR)),
    )


def _training_rows(args: PretrainArguments, data: BehemothData) -> tuple[np.ndarray | None, int]:
    """The fact ids left out of training (`exclude_split`) and the count of `train` rows left; refuses a
    `max_steps` beyond one pass over them before any work."""
    excluded = _fact_ids(data, args.exclude_split) if args.exclude_split else None
    kept_rows = data.num_train_rows
    if excluded is not None:
        kept_rows -= sum(int(np.isin(t["fact_id"].to_numpy(), excluded).sum()) for t in data.train_tables(["fact_id"]))
    one_pass = math.ceil(kept_rows / args.batch_size)
    if args.max_steps > one_pass:
        repeats = data.config.world_dict()["repeats"]
        raise ValueError(
            f"`max_steps` {args.max_steps} is more than one pass over `train` ({one_pass} updates of "
            f"{args.batch_size} sentences); more exposures need a world with more `repeats` (now {repeats}), e.g. "
            f"`behemoth generate --set repeats={repeats * math.ceil(args.max_steps / one_pass)}`"
        )
    return excluded, kept_rows


def _train(
    args: PretrainArguments,
    data: BehemothData,
    excluded: np.ndarray | None,
    kept_rows: int,
    accelerator: Accelerator,
    micro_batch_size: int,
    work: Path,
    run_id: str,
    checkpoint: Path | None,
    resumed: dict | None,
    on_step_end: Callable[[int], None] | None,
):
    """The training loop, checkpointing under `work`; returns the unwrapped model, its full state dict (gathered
    from every process, for saving) and the training record."""
    set_seed(args.seed)
    tokenizer = data.tokenizer
    model = build_model(
        args.preset,
        len(tokenizer),
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        seed=args.seed,
    )
    one_pass = math.ceil(kept_rows / args.batch_size)
    max_steps = one_pass if args.max_steps == -1 else args.max_steps
    accumulation, shares = (
        args.gradient_accumulation_steps,
        accelerator.num_processes * args.gradient_accumulation_steps,
    )

    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, weight_decay=args.weight_decay)
    scheduler = get_scheduler(
        args.lr_scheduler_type, optimizer, num_warmup_steps=args.warmup_steps, num_training_steps=max_steps
    )
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    step, history, wall_before, rows_consumed = 0, [], 0.0, 0
    if checkpoint is not None:
        _check_engine(checkpoint, resumed, accelerator)
        accelerator.load_state(str(checkpoint))
        step, history = resumed["step"], resumed["history"]
        wall_before, rows_consumed = resumed["wall_seconds"], resumed["rows_consumed"]
        logger.info("resumed from %s at update %d", checkpoint, step)
    batches = SentenceBatches(
        data,
        micro_batch_size,
        args.loss,
        rows_consumed,
        excluded,
        num_processes=accelerator.num_processes,
        process_index=accelerator.process_index,
        accumulation_steps=accumulation,
        packing=args.packing,
    )
    # Not `accelerator.prepare`d: SentenceBatches already gives this process its share, in order.
    loader = iter(DataLoader(batches, batch_size=None, num_workers=args.dataloader_num_workers))
    eval_prompts, eval_answers = _evaluation_sample(data, args.exclude_split, args.eval_samples, args.seed)
    if args.report_to != "none":
        accelerator.init_trackers(TRACKER_PROJECT, config=_tracker_config(args, accelerator.num_processes))

    start_time = time.perf_counter()
    stopped_early, window_loss, window_updates, tokens_seen = False, 0.0, 0, 0
    bar = tqdm(total=max_steps, initial=step, desc="pretrain", unit="step", disable=not accelerator.is_main_process)
    model.train()
    while step < max_steps:
        micro_batches = [
            {name: tensor.to(accelerator.device) for name, tensor in batch.items()}
            for batch in itertools.islice(loader, accumulation)
        ]
        if not micro_batches:
            break
        # The update's loss is the sum over every labelled token of all processes and micro-batches divided by
        # their count, as on one process: each micro-batch's summed loss is divided by count / shares, because
        # accelerate averages over accumulation steps and DDP over processes.
        labelled = sum((batch["labels"][:, 1:] != -100).sum() for batch in micro_batches)
        labelled = accelerator.reduce(labelled.float(), reduction="sum")
        update_loss, grad_norm = torch.zeros((), device=accelerator.device), None
        for batch in micro_batches:
            with accelerator.accumulate(model):
                # No cache: with one, transformers ignores the position ids' sentence boundaries of packed rows.
                loss = model(**batch, use_cache=False, num_items_in_batch=labelled / shares).loss
                accelerator.backward(loss)
                if accelerator.sync_gradients and (step + 1) % args.logging_steps == 0:
                    grad_norm = accelerator.clip_grad_norm_(model.parameters(), math.inf)  # measured, not clipped
                optimizer.step()
                optimizer.zero_grad()
            update_loss += loss.detach() / shares
            tokens_seen += int((batch["input_ids"] != tokenizer.pad_token_id).sum())
        learning_rate = scheduler.get_last_lr()[0]
        scheduler.step()
        rows_consumed = min(rows_consumed + args.batch_size, kept_rows)
        step += 1
        bar.update(1)
        update_loss = float(accelerator.reduce(update_loss, reduction="sum"))
        window_loss += update_loss
        window_updates += 1
        logs: dict[str, float] = {}
        if step % args.logging_steps == 0:
            logs = {
                "train/loss": window_loss / window_updates,
                "train/grad_norm": float(grad_norm),
                "train/learning_rate": learning_rate,
                "train/epoch": step / one_pass,
            }
            bar.set_postfix(loss=f"{logs['train/loss']:.4f}")
            window_loss, window_updates = 0.0, 0
        if step % args.eval_steps == 0 or step == max_steps:
            accuracy = score_answers(accelerator.unwrap_model(model), tokenizer, eval_prompts, eval_answers).accuracy
            history.append({"step": step, "sample_accuracy": accuracy, "loss": update_loss})
            logs["eval/sample_accuracy"] = accuracy
            bar.set_postfix(loss=f"{update_loss:.4f}", accuracy=f"{accuracy:.3f}")
        if logs:
            accelerator.log(logs, step=step)
        target = args.target_accuracy
        if target is not None and logs.get("eval/sample_accuracy", -1.0) >= target:
            stopped_early = step < max_steps
            break
        if step % args.save_steps == 0:
            wall = wall_before + time.perf_counter() - start_time
            _save_checkpoint(accelerator, work, step, run_id, rows_consumed, history, wall, args.save_total_limit)
        if on_step_end is not None:
            on_step_end(step)
    bar.close()
    wall_seconds = wall_before + time.perf_counter() - start_time
    tokens_seen = int(accelerator.reduce(torch.tensor(tokens_seen, device=accelerator.device), reduction="sum"))
    for tracker in accelerator.trackers:  # not end_training(): it would also end the process group
        tracker.finish()

    state_dict = accelerator.get_state_dict(model)
    model = accelerator.unwrap_model(model)
    record = {
        "dataset": data.source,
        "dataset_config": data.config.name,
        "dataset_fingerprint": data.fingerprint,
        "world": data.config.world_dict(),
        "excluded_split": args.exclude_split,
        "oracle": args.exclude_split == "forget",
        "arguments": dataclasses.asdict(args),
        "seed": args.seed,
        "run_fingerprint": run_id,
        "model_type": model.config.model_type,
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "steps": step,
        "one_pass_steps": one_pass,
        "sentences_seen": rows_consumed,
        "tokens_seen_this_session": tokens_seen,
        "tokens_per_second": round(tokens_seen / max(time.perf_counter() - start_time, 1e-9)),
        "stopped_early": stopped_early,
        "wall_seconds": round(wall_seconds, 2),
        "history": history,
        "accuracy": _split_accuracies(model, data),
        "example_prompt": eval_prompts[0],
        "versions": _versions(),
        "num_processes": accelerator.num_processes,
        "distributed_type": accelerator.distributed_type.value,
    }
    if accelerator.distributed_type == DistributedType.FSDP and accelerator.is_main_process:
        model = rebuilt_model(model)
        model.load_state_dict(state_dict)
    return model, state_dict, record


def _tracker_config(args: PretrainArguments, num_processes: int) -> dict[str, Any]:
    """The run's arguments as tracker hyper-parameters (tensorboard takes only numbers, strings and booleans)."""
    config = {name: ("none" if value is None else value) for name, value in dataclasses.asdict(args).items()}
    return {**config, "num_processes": num_processes}


def _split_accuracies(model, data: BehemothData) -> dict[str, float]:
    return {
        split: score_answers(model, data.tokenizer, dataset["prompt"], dataset["answer"]).accuracy
        for split, dataset in data.fact_splits.items()
    }


def _versions() -> dict[str, str]:
    import accelerate
    import transformers

    from behemoth_hf import __version__

    return {
        "behemoth_hf": __version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "accelerate": accelerate.__version__,
    }


# ---------------------------------------------------------------------------------------------- saving
def _resume_point(args: PretrainArguments, output: Path, run_id: str, num_processes: int) -> tuple[Path, dict]:
    """The latest complete checkpoint of this very run, and its saved loop state."""
    checkpoint = _latest_checkpoint(output)
    if checkpoint is None:
        raise FileNotFoundError(f"--resume: no checkpoint in {output / CHECKPOINT_DIR}")
    state = json.loads((checkpoint / STATE_FILE).read_text())
    if state["run_fingerprint"] != run_id:
        raise ValueError(
            f"--resume: {output} belongs to another run (its arguments or dataset differ: run "
            f"{state['run_fingerprint']}, this one {run_id}); use another output_dir"
        )
    saved_processes = state.get("num_processes", 1)
    if saved_processes != num_processes:
        # The global batch, the data order per process and the random states all depend on it.
        raise ValueError(
            f"--resume: the checkpoint {checkpoint} was written by {saved_processes} process(es), this run has "
            f"{num_processes}; resume with {saved_processes} (or start a new run)"
        )
    return checkpoint, state


def _check_engine(checkpoint: Path, resumed: dict, accelerator: Accelerator) -> None:
    """Refuse a checkpoint another engine wrote: FSDP, DeepSpeed and plain data parallel each save the model and
    optimizer in their own files."""
    saved = resumed.get("distributed_type")
    if saved is not None and _engine(saved) != _engine(accelerator.distributed_type.value):
        raise ValueError(
            f"--resume: the checkpoint {checkpoint} was written under {_engine(saved)}, this run is under "
            f"{_engine(accelerator.distributed_type.value)}; resume with the launch configuration that wrote it (or "
            "start a new run)"
        )


def _engine(distributed_type: str) -> str:
    """What a checkpoint's files depend on: the sharding engine, not the device or the process count."""
    return {"FSDP": "FSDP", "DEEPSPEED": "DeepSpeed"}.get(distributed_type, "no sharding engine")


def _latest_checkpoint(output: Path) -> Path | None:
    folders = sorted((output / CHECKPOINT_DIR).glob("step-*"), key=lambda p: int(p.name.split("-")[1]))
    complete = [folder for folder in folders if (folder / STATE_FILE).exists()]
    return complete[-1] if complete else None


def _save_checkpoint(accelerator, output: Path, step, run_id, rows_consumed, history, wall, keep: int) -> None:
    folder = output / CHECKPOINT_DIR / f"step-{step}"
    accelerator.save_state(str(folder))
    if accelerator.is_main_process:
        # Written last: a checkpoint without it is incomplete and never resumed from.
        state = {
            "step": step,
            "run_fingerprint": run_id,
            "rows_consumed": rows_consumed,
            "history": history,
            "wall_seconds": wall,
            "num_processes": accelerator.num_processes,
            "distributed_type": accelerator.distributed_type.value,
        }
        (folder / STATE_FILE).write_text(json.dumps(state, indent=2))
        folders = sorted((output / CHECKPOINT_DIR).glob("step-*"), key=lambda p: int(p.name.split("-")[1]))
        for old in folders[:-keep]:
            shutil.rmtree(old, ignore_errors=True)


def _save_final(
    model, state_dict: dict[str, torch.Tensor], tokenizer, record: dict[str, Any], work: Path, output: Path, replacing
) -> None:
    """Model, tokenizer, generation config, card, then the record (it marks a finished run), swapped into place.

    A run that trained in `output` itself takes its checkpoints and tracker logs along into the finished folder.
    """
    from behemoth_hf.cards import write_model_card

    staging = work if replacing else staging_path(output)
    staging.mkdir(exist_ok=True)
    # Greedy decoding after a prompt gives the answer and stops at the <eos> the model learnt to put after it.
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
        max_new_tokens=ANSWER_MAX_NEW_TOKENS,
    )
    model.save_pretrained(staging, state_dict=state_dict)
    save_tokenizer(tokenizer, staging)
    write_model_card(staging, record)
    (staging / RECORD_FILE).write_text(json.dumps(record, indent=2) + "\n")
    for folder in (CHECKPOINT_DIR, RUNS_DIR):
        if not replacing and (output / folder).is_dir():
            (output / folder).rename(staging / folder)  # they stay with the model
    commit(staging, output, (RECORD_FILE, CHECKPOINT_MARKER), overwrite=True)

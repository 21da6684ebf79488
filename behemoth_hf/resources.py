"""Resource bounds of a world, estimated from its config before any work: rows, bytes on disk, peak memory.

Three checks refuse, with the estimate in the message, what cannot fit on this machine:
- `BehemothConfig.validate`: the fact table and its rendered sentences must fit in the machine's memory;
- `behemoth generate` / `generate_dataset`: memory now available, and free disk where the output goes;
- `load_dataset("behemoth", ...)` (the builder, only when it generates): memory now available, and free disk of
  the datasets cache it materialises the Arrow splits into.
Set `BEHEMOTH_NO_RESOURCE_CHECK=1` (or pass `behemoth generate --no-resource-check`) to try anyway.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import math
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import psutil
from huggingface_hub.constants import ENV_VARS_TRUE_VALUES


if TYPE_CHECKING:
    from behemoth_hf.config import BehemothConfig


logger = logging.getLogger(__name__)

SKIP_ENV = "BEHEMOTH_NO_RESOURCE_CHECK"
_OVERRIDE_HINT = f"set {SKIP_ENV}=1 (behemoth generate: --no-resource-check) to try anyway"

# Per-row and per-fact constants, calibrated by generating worlds with `generate_dataset` (Parquet sizes, peak
# RSS) and `Behemoth.download_and_prepare` (Arrow cache sizes): tiny, default, paper with repeats 1-3 and
# 2k-300k subjects, qa with paraphrases, nested and dissent at 100k subjects (datasets 5.2, pyarrow 26).
# Each is rounded up from the largest measured value, so estimates err on the side of "needs more".
# Parquet (zstd): 12.2 B/train row (default) to 15.6 (300k subjects); paper: 15.4 (4.62 GB for 300M rows).
PARQUET_BYTES_PER_TRAIN_ROW = 16
# Each row group (ROW_GROUP_ROWS rows, the last one of a split shorter) costs ~4.3 kB of Parquet metadata on disk
# and ~40 kB of writer memory until its shard is closed.
PARQUET_BYTES_PER_ROW_GROUP = 4400
PARQUET_MEMORY_PER_ROW_GROUP = 40_000
# Parquet fact rows: 26-46 B (every column filled, names compress well).
PARQUET_BYTES_PER_FACT_ROW = 48
# The datasets cache holds uncompressed Arrow, nulls included: 150-159 B/train row, 299-318 B/fact row.
ARROW_BYTES_PER_TRAIN_ROW = 160
ARROW_BYTES_PER_FACT_ROW = 330
# Tokenizer, card, metadata and Parquet footers of one output folder (a few hundred kB measured).
OUTPUT_OVERHEAD_BYTES = 2**20
# Peak memory above the imported HF stack (which this process already holds): a fixed part (Parquet writer,
# one train table) plus the fact table (~480 B/fact) and every sentence variant TrainCorpus renders up front
# (~96 B each). Measured 47 MB at 13k facts, 446 MB for paper (660k), 1,090 MB at 1.98M facts, 519 MB for
# qa + paraphrases (550k facts x 5 templates); `repeats` adds nothing (passes are streamed).
MEMORY_FIXED_BYTES = 96 * 2**20
MEMORY_BYTES_PER_FACT = 480
MEMORY_BYTES_PER_VARIANT = 96
# The builder lists every pass index in `gen_kwargs` (so that `num_proc` can shard them): a list slot plus an
# int object each.
MEMORY_BYTES_PER_PASS = 40


def size_str(size_in_bytes: float) -> str:
    """`datasets.utils.py_utils.size_str`'s format ("1.50 GiB"), without importing `datasets` (a second of
    `behemoth generate`'s start-up) to log an estimate."""
    for name, unit in (("PiB", 2**50), ("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size_in_bytes >= unit:
            return f"{size_in_bytes / unit:.2f} {name}"
    return f"{int(size_in_bytes)} bytes"


_skipped: contextvars.ContextVar[bool] = contextvars.ContextVar("behemoth_resource_checks_skipped", default=False)


@dataclass(frozen=True)
class ResourceEstimate:
    """What a world costs to generate: rows, bytes on disk, memory beyond what the process already uses."""

    train_rows: int
    fact_rows: int
    disk_bytes: int
    memory_bytes: int
    disk_format: str  # "Parquet" (generate) or "Arrow" (datasets cache)

    def summary(self, name: str) -> str:
        peak = psutil.Process().memory_info().rss + self.memory_bytes
        return (
            f"{name}: {self.train_rows:,} train rows + {self.fact_rows:,} fact rows, "
            f"~{size_str(self.disk_bytes)} on disk ({self.disk_format}), peak memory ~{size_str(peak)}"
        )


def world_memory_bytes(config: BehemothConfig) -> int:
    """Memory of the fact table and of every sentence `TrainCorpus` renders before writing a pass."""
    templates = 1 + 3 * (config.paraphrase_fraction > 0) + (config.num_qa_subjects > 0)
    object_kinds = 2 if config.dissent_fraction > 0 else 1  # true and minority object
    variants = config.num_facts * templates * object_kinds
    return MEMORY_BYTES_PER_FACT * config.num_facts + MEMORY_BYTES_PER_VARIANT * variants


def estimate_generate(config: BehemothConfig) -> ResourceEstimate:
    """`generate_dataset`: Parquet on disk; memory for the world, one streamed pass and one shard's metadata."""
    from behemoth_hf.generate import ROW_GROUP_ROWS, TRAIN_SHARD_ROWS  # late import: generate calls this module

    train_rows = config.train_rows_per_pass * config.repeats
    fact_rows = _fact_split_rows(config)
    row_groups = math.ceil(train_rows / ROW_GROUP_ROWS)
    row_groups_per_shard = math.ceil(row_groups * min(1.0, TRAIN_SHARD_ROWS / train_rows))
    return ResourceEstimate(
        train_rows=train_rows,
        fact_rows=fact_rows,
        disk_bytes=PARQUET_BYTES_PER_TRAIN_ROW * train_rows
        + PARQUET_BYTES_PER_ROW_GROUP * row_groups
        + PARQUET_BYTES_PER_FACT_ROW * fact_rows
        + OUTPUT_OVERHEAD_BYTES,
        memory_bytes=MEMORY_FIXED_BYTES
        + world_memory_bytes(config)
        + PARQUET_MEMORY_PER_ROW_GROUP * row_groups_per_shard,
        disk_format="Parquet",
    )


def estimate_builder(config: BehemothConfig, num_proc: int | None = None) -> ResourceEstimate:
    """The `datasets` builder: Arrow in the cache; with `num_proc` > 1 every worker holds its own world copy."""
    train_rows = config.train_rows_per_pass * config.repeats
    fact_rows = _fact_split_rows(config)
    processes = 1 + (num_proc if num_proc and num_proc > 1 else 0)  # measured: 3x the memory at num_proc=2
    return ResourceEstimate(
        train_rows=train_rows,
        fact_rows=fact_rows,
        disk_bytes=ARROW_BYTES_PER_TRAIN_ROW * train_rows + ARROW_BYTES_PER_FACT_ROW * fact_rows,
        memory_bytes=processes * (MEMORY_FIXED_BYTES + world_memory_bytes(config))
        + MEMORY_BYTES_PER_PASS * config.repeats,
        disk_format="Arrow",
    )


def _fact_split_rows(config: BehemothConfig) -> int:
    # Every fact is in exactly one of forget/retain/dependent/holdout; `paraphrase` repeats the forget facts.
    return config.num_facts + config.num_forget_facts


# ---------------------------------------------------------------------- probes (tests monkeypatch these)
def _cgroup_memory_limit() -> int | None:
    """The container's memory limit (cgroup v2, then v1), which psutil does not see; None when unlimited."""
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        with contextlib.suppress(OSError):
            value = Path(path).read_text().strip()
            if value.isdigit():  # v2 writes "max" when unlimited, v1 a huge number (taken care of by `min`)
                return int(value)
    return None


def total_memory() -> int:
    """Memory this machine (or container) has in all."""
    limit = _cgroup_memory_limit()
    return min(psutil.virtual_memory().total, limit or 2**63)


def available_memory() -> int:
    """Memory that can be allocated now without swapping (capped by a container limit)."""
    limit = _cgroup_memory_limit()
    return min(psutil.virtual_memory().available, limit or 2**63)


def free_disk(path: str | os.PathLike) -> int:
    """Free bytes on the filesystem that holds `path` (or would hold it: its nearest existing parent)."""
    path = Path(path).absolute()
    while not path.exists():
        path = path.parent
    return shutil.disk_usage(path).free


# ---------------------------------------------------------------------- checks
def checks_skipped() -> bool:
    """Whether the user asked to try anyway: `BEHEMOTH_NO_RESOURCE_CHECK` true, or inside `resource_checks_skipped`."""
    env = os.environ.get(SKIP_ENV, "").upper() in ENV_VARS_TRUE_VALUES
    return env or _skipped.get()


@contextlib.contextmanager
def resource_checks_skipped(skip: bool = True) -> Iterator[None]:
    """Within the block, skip the checks as `BEHEMOTH_NO_RESOURCE_CHECK=1` does (and leave the environment alone)."""
    token = _skipped.set(skip or _skipped.get())
    try:
        yield
    finally:
        _skipped.reset(token)


def check_world_fits(config: BehemothConfig) -> None:
    """Refuse a world whose fact table and sentences alone exceed this machine's memory (called by `validate`)."""
    if checks_skipped():
        return
    needed, total = world_memory_bytes(config), total_memory()
    if needed > total:
        raise ValueError(
            f"this world has {config.num_facts:,} facts: its fact table and sentences need ~{size_str(needed)} of "
            f"memory, more than this machine has ({size_str(total)}); lower `num_subjects` or `num_relations`, or "
            + _OVERRIDE_HINT
        )


def check_generate_resources(config: BehemothConfig, output: str | os.PathLike) -> ResourceEstimate:
    """Log the estimate of `generate_dataset(config, output)`; refuse what does not fit in memory or on disk."""
    estimate = estimate_generate(config)
    logger.info(estimate.summary(f"generating {config.name}"))
    _refuse_if_short(estimate, free_disk(output), f"the filesystem of {output}")
    return estimate


def check_builder_resources(config: BehemothConfig, cache_dir: str | None, num_proc: int | None) -> ResourceEstimate:
    """The same for the builder materialising into the datasets cache (`cache_dir` None: a remote cache)."""
    estimate = estimate_builder(config, num_proc)
    logger.info(estimate.summary(f"generating behemoth/{config.name} into the datasets cache"))
    disk = free_disk(cache_dir) if cache_dir is not None else None
    _refuse_if_short(estimate, disk, f"the datasets cache {cache_dir}")
    return estimate


def _refuse_if_short(estimate: ResourceEstimate, disk: int | None, where: str) -> None:
    if checks_skipped():
        return
    shortages = []
    memory = available_memory()
    if estimate.memory_bytes > memory:
        shortages.append(f"~{size_str(estimate.memory_bytes)} of memory ({size_str(memory)} available)")
    if disk is not None and estimate.disk_bytes > disk:
        shortages.append(f"~{size_str(estimate.disk_bytes)} on disk ({size_str(disk)} free in {where})")
    if shortages:
        raise ValueError(
            f"this world does not fit: its {estimate.train_rows:,} train rows + {estimate.fact_rows:,} fact rows "
            f"need {' and '.join(shortages)}; lower `repeats`, `num_subjects` or `num_relations`, or " + _OVERRIDE_HINT
        )

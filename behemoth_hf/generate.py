"""Write a world to disk: Parquet splits, the tokenizer, metadata and a dataset card.

The output folder is a loadable Hugging Face dataset (`load_dataset(DIR)`, README `configs:`) and
is what `behemoth push dataset` uploads. Splits stream to disk table by table, so the 300M-sentence
`paper` config needs memory for one pass, not for the corpus. Everything is written into a hidden
staging folder next to the output and renamed into place only when complete: an interrupted run
never leaves an output that looks finished.

Every file is an independent job (a `train` shard, a fact split, the tokenizer, the card). A world big enough to
pay for it shares the jobs between this process and one forked worker, which inherits the rendered world instead of
receiving a copy. A file's bytes do not depend on the process that writes it, so both ways give the same folder.
Only what the files need is imported: no `datasets`, `transformers` or `torch` (seconds of start-up otherwise).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import multiprocessing
import os
import traceback
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from behemoth_hf.config import GENERATOR_VERSION, BehemothConfig
from behemoth_hf.resources import check_generate_resources
from behemoth_hf.splits import TRAIN, TrainCorpus, arrow_schema, fact_ids, fact_table, split_names
from behemoth_hf.staging import check_output, staged_output
from behemoth_hf.tokenizer import write_tokenizer
from behemoth_hf.world import World


logger = logging.getLogger(__name__)

METADATA_FILE = "behemoth.json"
TOKENIZER_DIR = "tokenizer"
DATA_DIR = "data"
# Train shards of at most this many rows (~60-80 MB of Parquet), row groups small enough to stream.
TRAIN_SHARD_ROWS = 5_000_000
ROW_GROUP_ROWS = 100_000
# Smaller worlds are written by this process alone: forking a worker would cost more than it saves.
PARALLEL_MIN_ROWS = 500_000
# What a job costs, in train rows, to share the jobs evenly (CPU time measured on 1M- and 10M-row worlds: 0.3-0.5 us
# per train row, 2 us per fact row, which fills all 22 columns; the card, mostly importing huggingface_hub's card
# machinery, 0.22 s; the tokenizer a few milliseconds).
_FACT_ROW_COST = 5
_CARD_COST = 600_000
_TOKENIZER_COST = 10_000


def generate_dataset(
    config: BehemothConfig,
    output_dir: str | os.PathLike,
    *,
    overwrite: bool = False,
    progress: bool = True,
    workers: int | None = None,
) -> Path:
    """Generate `config` into `output_dir` and return its path.

    `workers` is the number of processes that write (1 or 2; None: 2 on a machine with two cores for a world of at
    least PARALLEL_MIN_ROWS train rows, else 1); the files are the same bytes either way.
    Raises (before any work) if `output_dir` exists and is not a finished world to replace with `overwrite`
    (see `behemoth_hf.staging`); an existing world is replaced only once the new one is complete.
    """
    check_workers(workers)
    output = check_output(output_dir, METADATA_FILE, overwrite=overwrite)
    config.validate()
    check_generate_resources(config, output)  # logs rows, disk and memory; refuses what cannot fit
    with staged_output(output, METADATA_FILE, overwrite=overwrite) as staging:
        write_world(config, staging, progress=progress, workers=workers)
    return Path(output_dir)


def check_workers(workers: int | None) -> None:
    """Refuse a `workers` value other than None, 1 or 2 (2 only where processes can be forked)."""
    if workers is None:
        return
    if isinstance(workers, bool) or not isinstance(workers, int):
        raise TypeError(f"`workers` must be 1, 2 or None, got {workers!r}")
    if workers not in (1, 2):
        raise ValueError(f"`workers` must be 1 or 2 (None: 2 when the world is big enough), got {workers}")
    if workers == 2 and not _can_fork():
        raise ValueError("`workers` 2 needs the `fork` start method, which this platform lacks; use 1")


def _can_fork() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()


def _default_workers(train_rows: int) -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return 2 if cores >= 2 and train_rows >= PARALLEL_MIN_ROWS and _can_fork() else 1


@dataclass(frozen=True)
class _Job:
    """One file to write: a `train` shard (`index`), a fact split (`split`), the tokenizer or the card."""

    kind: str  # "train", "facts", "tokenizer" or "card"
    cost: int  # in train rows (a train job: exactly its rows)
    index: int = 0
    split: str = ""


class _WorldWriter:
    """The world of one output folder and the code that writes its files (a forked worker inherits it)."""

    def __init__(self, config: BehemothConfig, root: Path):
        self.config = config
        self.root = root
        self.world = World.generate(config)
        self.corpus = TrainCorpus(self.world)
        self.schema = arrow_schema(config)
        self.rows = {TRAIN: self.corpus.num_rows}
        self.rows.update((split, len(fact_ids(self.world, split))) for split in split_names(self.world)[1:])
        self.num_shards = _num_shards(self.corpus.num_rows)
        # Train rows written by either process, for the progress bar (shared memory: the worker adds to it too).
        self.rows_written = multiprocessing.Value("q", 0)
        self.bar = None

    def jobs(self) -> list[_Job]:
        shard_rows = [
            min(TRAIN_SHARD_ROWS, self.corpus.num_rows - i * TRAIN_SHARD_ROWS) for i in range(self.num_shards)
        ]
        jobs = [_Job("train", rows, index=i) for i, rows in enumerate(shard_rows)]
        jobs += [
            _Job("facts", rows * _FACT_ROW_COST, split=split) for split, rows in self.rows.items() if split != TRAIN
        ]
        return jobs + [_Job("tokenizer", _TOKENIZER_COST), _Job("card", _CARD_COST)]

    def run(self, jobs: Iterable[_Job]) -> dict[str, str]:
        """Write the files of `jobs`; return their SHA-256 by path relative to the root (read while still cached)."""
        hashes = {}
        for job in jobs:
            for path in self._write(job):
                hashes[path.relative_to(self.root).as_posix()] = sha256_file(path)
        return hashes

    def _write(self, job: _Job) -> list[Path]:
        data = self.root / DATA_DIR
        if job.kind == "train":
            path = data / _shard_name(TRAIN, job.index, self.num_shards)
            start, group = job.index * TRAIN_SHARD_ROWS, _row_group_rows()
            tables = (
                self.corpus.table(first, min(first + group, start + job.cost))
                for first in range(start, start + job.cost, group)
            )
            _write_parquet(path, tables, self.schema, self._count)
            return [path]
        if job.kind == "facts":
            table = fact_table(self.world, job.split)
            write_sharded(data, job.split, [table], table.num_rows, self.schema)
            return _shard_paths(data, job.split, table.num_rows)
        if job.kind == "tokenizer":
            write_tokenizer(self.world.lexicon, self.root / TOKENIZER_DIR)
            return sorted((self.root / TOKENIZER_DIR).iterdir())
        write_dataset_card(self.root, [(self.config, self.rows, "")])
        return [self.root / "README.md"]

    def _count(self, rows: int) -> None:
        with self.rows_written.get_lock():
            self.rows_written.value += rows
        self.show_progress()

    def show_progress(self) -> None:
        if self.bar is not None:
            self.bar.update(self.rows_written.value - self.bar.n)


class _WorkerTraceback(Exception):
    """The traceback of an error in the worker process, chained to the error re-raised in the parent."""


def _worker_main(writer: _WorldWriter, jobs: list[_Job], results: Any) -> None:
    # A forked child: `writer` is the parent's object, inherited, not a copy sent through a pipe.
    writer.bar = None  # the progress bar belongs to the parent
    try:
        results.send((writer.run(jobs), None))
    except BaseException as error:  # every failure, interrupts included, goes back to the parent, which raises it
        try:
            results.send((error, traceback.format_exc()))
        except Exception:  # an error that does not pickle
            results.send((RuntimeError(f"the generate worker failed: {error!r}"), traceback.format_exc()))


def _run_forked(writer: _WorldWriter, own: list[_Job], forked: list[_Job]) -> dict[str, str]:
    """Run `forked` in a forked worker and `own` here; the hashes of both. The worker ends with this call."""
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    worker = context.Process(target=_worker_main, args=(writer, forked, sender), daemon=True)
    worker.start()
    sender.close()
    try:
        hashes = writer.run(own)
        while not receiver.poll(0.2):  # meanwhile the progress bar follows the rows the worker writes
            writer.show_progress()
        try:
            result, worker_traceback = receiver.recv()
        except EOFError:  # it ended without a word: killed (out of memory, ...)
            worker.join()
            raise RuntimeError(f"the generate worker process died (exit code {worker.exitcode})") from None
    finally:
        if worker.is_alive() and not receiver.poll():
            worker.terminate()  # this process failed or was interrupted: stop the worker's jobs too
        worker.join()
    if worker_traceback is not None:
        raise result from _WorkerTraceback(worker_traceback)
    return {**hashes, **result}


def _share(jobs: list[_Job], processes: int) -> list[list[_Job]]:
    """Each job, most costly first, to the process with the least work so far (ties: the worker)."""
    loads, shares = [0] * processes, [[] for _ in range(processes)]
    for job in sorted(jobs, key=lambda job: job.cost, reverse=True):
        process = min(range(processes), key=lambda p: (loads[p], -p))
        loads[process] += job.cost
        shares[process].append(job)
    return shares


def write_world(
    config: BehemothConfig, root: Path, *, progress: bool = True, workers: int | None = None
) -> dict[str, Any]:
    """Write splits, tokenizer, metadata and card of one world under `root`; return the metadata."""
    check_workers(workers)
    writer = _WorldWriter(config, root)
    own, *forked = _share(writer.jobs(), workers or _default_workers(writer.corpus.num_rows))
    (root / DATA_DIR).mkdir(parents=True)
    if progress:
        from tqdm.auto import tqdm  # late: only an interactive run shows one

        writer.bar = tqdm(total=writer.corpus.num_rows, unit="sentence", desc=f"{config.name}: train")
    try:
        hashes = _run_forked(writer, own, forked[0]) if forked else writer.run(own)
    finally:
        if writer.bar is not None:
            writer.bar.close()

    # Listed in the folder's sorted order, whichever process wrote and hashed each file.
    files = [path.relative_to(root).as_posix() for path in sorted(root.rglob("*")) if path.is_file()]
    if sorted(files) != sorted(hashes):
        raise RuntimeError(f"internal error: wrote {sorted(hashes)}, found {sorted(files)}")
    metadata = {
        "config_name": config.name,
        "fingerprint": config.fingerprint(),
        "generator_version": GENERATOR_VERSION,
        "seed": config.seed,
        "world": config.world_dict(),
        "splits": writer.rows,
        "vocab_size": writer.world.lexicon.vocab_size,
        "roles": [role.to_dict() for role in writer.world.lexicon.role_ranges],
        "files": {name: hashes[name] for name in files},
    }
    (root / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
    return metadata


def _shard_name(split: str, index: int, count: int) -> str:
    return f"{split}-{index:05d}-of-{count:05d}.parquet"


def _num_shards(rows: int) -> int:
    return max(1, math.ceil(rows / TRAIN_SHARD_ROWS))


def _shard_paths(directory: Path, split: str, rows: int) -> list[Path]:
    count = _num_shards(rows)
    return [directory / _shard_name(split, index, count) for index in range(count)]


def _row_group_rows() -> int:
    # A size dividing the shard size, so that no row group straddles two shards.
    return math.gcd(ROW_GROUP_ROWS, TRAIN_SHARD_ROWS)


def _write_parquet(path: Path, tables: Iterable[pa.Table], schema: pa.Schema, on_rows=None) -> None:
    """One zstd Parquet file, one row group per table (tables of at most `_row_group_rows()` rows)."""
    with pq.ParquetWriter(path, schema, compression="zstd") as writer:
        for table in tables:
            writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
            if on_rows is not None:
                on_rows(table.num_rows)


def write_sharded(
    directory: Path, split: str, tables: Iterable[pa.Table], total_rows: int, schema: pa.Schema, on_rows=None
) -> int:
    """Stream `tables` into `split-XXXXX-of-YYYYY.parquet` shards of at most TRAIN_SHARD_ROWS rows."""
    groups = _row_groups(tables, _row_group_rows())
    written = 0
    for path in _shard_paths(directory, split, total_rows):
        shard_rows = min(TRAIN_SHARD_ROWS, total_rows - written)
        _write_parquet(path, _first_rows(groups, shard_rows), schema, on_rows)
        written += shard_rows
    if next(groups, None) is not None:
        raise RuntimeError(f"{split}: more than the expected {total_rows} rows")
    return written


def _first_rows(groups: Iterator[pa.Table], rows: int) -> Iterator[pa.Table]:
    """The next tables of `groups` up to `rows` rows in all (they end exactly there: groups never straddle a shard)."""
    taken = 0
    while taken < rows:
        table = next(groups, None)
        if table is None:
            raise RuntimeError(f"expected {rows - taken} more rows")
        taken += table.num_rows
        yield table


def _row_groups(tables: Iterable[pa.Table], size: int) -> Iterator[pa.Table]:
    """Re-cut a stream of tables into tables of exactly `size` rows (the last one shorter): one Parquet row group
    each, however small the incoming tables are (a tiny world's pass is a few hundred rows, and every row group
    costs kilobytes of metadata on disk and in the writer)."""
    pending: list[pa.Table] = []
    pending_rows = 0
    for piece in _split_at_boundaries(tables, size):
        pending.append(piece)
        pending_rows += piece.num_rows
        if pending_rows == size:
            yield pa.concat_tables(pending).combine_chunks()
            pending, pending_rows = [], 0
    if pending:
        yield pa.concat_tables(pending).combine_chunks()


def _split_at_boundaries(tables: Iterable[pa.Table], every: int) -> Iterator[pa.Table]:
    """Re-cut a stream of tables so that no table straddles a multiple of `every` rows."""
    position = 0
    for table in tables:
        start = 0
        while start < table.num_rows:
            room = every - position % every
            piece = table.slice(start, room)
            yield piece
            start += piece.num_rows
            position += piece.num_rows


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_dataset_card(root: Path, entries: list[tuple[BehemothConfig, dict[str, int], str]]) -> None:
    """README.md with the YAML `configs:` that `load_dataset(root_or_repo, name)` reads.

    `entries` are (config, rows per split, folder of that config relative to `root`). The default
    config (what `load_dataset(root_or_repo)` loads) is the one named `default` when there is one,
    else the first: `datasets` takes a config named `default` as the default whatever the card says,
    so marking another one too makes every load fail with "several default configs".
    """
    from huggingface_hub import DatasetCard, DatasetCardData  # late: a third of a second, only this job needs it

    from behemoth_hf.cards import CITATION

    names = [config.name for config, _, _ in entries]
    default = "default" if "default" in names else names[0]
    configs = []
    for config, rows, prefix in entries:
        data_dir = f"{prefix}/{DATA_DIR}" if prefix else DATA_DIR
        entry = {
            "config_name": config.name,
            "data_files": [{"split": split, "path": f"{data_dir}/{split}-*.parquet"} for split in rows],
        }
        if config.name == default:
            entry["default"] = True
        configs.append(entry)
    card_data = DatasetCardData(
        license="apache-2.0",
        pretty_name="Behemoth",
        task_categories=["text-generation"],
        tags=["synthetic", "unlearning", "model-editing", "behemoth"],
        configs=configs,
    )
    template = resources.files("behemoth_hf.model_cards").joinpath("dataset_card.md").read_text()
    card = DatasetCard.from_template(
        card_data,
        template_str=template,
        citation=CITATION,
        worlds=[
            {"config": config, "rows": rows, "parameters": config.world_dict(), "fingerprint": config.fingerprint()}
            for config, rows, _ in entries
        ],
    )
    (root / "README.md").write_text(str(card))

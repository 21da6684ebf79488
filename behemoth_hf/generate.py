"""Write a world to disk: Parquet splits, the tokenizer, metadata and a dataset card.

The output folder is a loadable Hugging Face dataset (`load_dataset(DIR)`, README `configs:`) and
is what `behemoth push dataset` uploads. Splits stream to disk table by table, so the 300M-sentence
`paper` config needs memory for one pass, not for the corpus. Everything is written into a hidden
staging folder next to the output and renamed into place only when complete: an interrupted run
never leaves an output that looks finished.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Iterable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from huggingface_hub import DatasetCard, DatasetCardData
from tqdm.auto import tqdm

from behemoth_hf.builder import CITATION
from behemoth_hf.config import GENERATOR_VERSION, BehemothConfig
from behemoth_hf.resources import check_generate_resources
from behemoth_hf.staging import check_output, staged_output
from behemoth_hf.splits import TRAIN, TrainCorpus, fact_table, features, split_names
from behemoth_hf.tokenizer import build_tokenizer, save_tokenizer
from behemoth_hf.world import World


logger = logging.getLogger(__name__)

METADATA_FILE = "behemoth.json"
TOKENIZER_DIR = "tokenizer"
DATA_DIR = "data"
# Train shards of at most this many rows (~50-100 MB of Parquet), row groups small enough to stream.
TRAIN_SHARD_ROWS = 10_000_000
ROW_GROUP_ROWS = 100_000


def generate_dataset(
    config: BehemothConfig, output_dir: str | os.PathLike, *, overwrite: bool = False, progress: bool = True
) -> Path:
    """Generate `config` into `output_dir` and return its path.

    Raises (before any work) if `output_dir` exists and is not a finished world to replace with `overwrite`
    (see `behemoth_hf.staging`); an existing world is replaced only once the new one is complete.
    """
    output = check_output(output_dir, METADATA_FILE, overwrite=overwrite)
    config.validate()
    check_generate_resources(config, output)  # logs rows, disk and memory; refuses what cannot fit
    with staged_output(output, METADATA_FILE, overwrite=overwrite) as staging:
        write_world(config, staging, progress=progress)
    return Path(output_dir)


def write_world(config: BehemothConfig, root: Path, *, progress: bool = True) -> dict[str, Any]:
    """Write splits, tokenizer, metadata and card of one world under `root`; return the metadata."""
    world = World.generate(config)
    names = split_names(world)
    schema = features(config).arrow_schema
    (root / DATA_DIR).mkdir(parents=True)
    rows: dict[str, int] = {}
    corpus = TrainCorpus(world)
    with tqdm(total=corpus.num_rows, unit="sentence", desc=f"{config.name}: train", disable=not progress) as bar:
        tables = (table for p in range(config.repeats) for table in corpus.pass_tables(p))
        rows[TRAIN] = write_sharded(root / DATA_DIR, TRAIN, tables, corpus.num_rows, schema, bar.update)
    for split in names[1:]:
        table = fact_table(world, split)
        rows[split] = write_sharded(root / DATA_DIR, split, [table], table.num_rows, schema)

    tokenizer = build_tokenizer(world.lexicon)
    save_tokenizer(tokenizer, root / TOKENIZER_DIR)
    write_dataset_card(root, [(config, rows, "")])
    metadata = {
        "config_name": config.name,
        "fingerprint": config.fingerprint(),
        "generator_version": GENERATOR_VERSION,
        "seed": config.seed,
        "world": config.world_dict(),
        "splits": rows,
        "vocab_size": world.lexicon.vocab_size,
        "roles": [role.to_dict() for role in world.lexicon.role_ranges],
        "files": _file_hashes(root),
    }
    (root / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
    return metadata


def _shard_name(split: str, index: int, count: int) -> str:
    return f"{split}-{index:05d}-of-{count:05d}.parquet"


def write_sharded(
    directory: Path, split: str, tables: Iterable[pa.Table], total_rows: int, schema: pa.Schema, on_rows=None
) -> int:
    """Stream `tables` into `split-XXXXX-of-YYYYY.parquet` shards of at most TRAIN_SHARD_ROWS rows."""
    num_shards = max(1, math.ceil(total_rows / TRAIN_SHARD_ROWS))
    written = 0
    shard_index = 0
    writer = pq.ParquetWriter(directory / _shard_name(split, 0, num_shards), schema, compression="zstd")
    try:
        # Row groups of a size dividing the shard size, so that none straddles two shards.
        for table in _row_groups(tables, math.gcd(ROW_GROUP_ROWS, TRAIN_SHARD_ROWS)):
            if written and written % TRAIN_SHARD_ROWS == 0:
                writer.close()
                shard_index += 1
                writer = pq.ParquetWriter(
                    directory / _shard_name(split, shard_index, num_shards), schema, compression="zstd"
                )
            writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
            written += table.num_rows
            if on_rows is not None:
                on_rows(table.num_rows)
    finally:
        writer.close()
    if written != total_rows:
        raise RuntimeError(f"{split}: wrote {written} rows, expected {total_rows}")
    return written


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


def _file_hashes(root: Path) -> dict[str, str]:
    return {path.relative_to(root).as_posix(): sha256_file(path) for path in sorted(root.rglob("*")) if path.is_file()}


def write_dataset_card(root: Path, entries: list[tuple[BehemothConfig, dict[str, int], str]]) -> None:
    """README.md with the YAML `configs:` that `load_dataset(root_or_repo, name)` reads.

    `entries` are (config, rows per split, folder of that config relative to `root`). The default
    config (what `load_dataset(root_or_repo)` loads) is the one named `default` when there is one,
    else the first: `datasets` takes a config named `default` as the default whatever the card says,
    so marking another one too makes every load fail with "several default configs".
    """
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

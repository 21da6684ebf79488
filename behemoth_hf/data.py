"""Open a Behemoth dataset for training or evaluation: a folder from `behemoth generate`, or a named config.

Fact splits come back as `datasets.Dataset`s; the `train` corpus is streamed as Arrow tables straight
from its Parquet shards (or the builder's cache), so pretraining on a 300M-sentence corpus never
converts or holds it whole. The tokenizer is checked against the dataset before anything runs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
from safetensors import SafetensorError
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

from behemoth_hf.config import NAMED_CONFIGS, BehemothConfig, make_config
from behemoth_hf.generate import DATA_DIR, METADATA_FILE, TOKENIZER_DIR, sha256_file
from behemoth_hf.lexicon import Lexicon
from behemoth_hf.splits import TRAIN
from behemoth_hf.tokenizer import build_tokenizer, load_tokenizer, world_info


logger = logging.getLogger(__name__)


@dataclass
class BehemothData:
    """A world's config, fact splits, tokenizer and a streaming view of its `train` corpus."""

    source: str
    config: BehemothConfig
    fact_splits: datasets.DatasetDict
    tokenizer: PreTrainedTokenizerBase
    _train_files: list[Path] | None = None
    _train_dataset: datasets.Dataset | None = None

    @property
    def fingerprint(self) -> str:
        return self.config.fingerprint()

    @property
    def num_train_rows(self) -> int:
        if self._train_dataset is not None:
            return self._train_dataset.num_rows
        return sum(pq.ParquetFile(path).metadata.num_rows for path in self._train_files)

    def train_tables(self, columns: list[str], batch_rows: int = 65_536) -> Iterator[pa.Table]:
        """`train` in corpus order, as tables of `columns` with at most `batch_rows` rows."""
        if self._train_dataset is not None:
            table = self._train_dataset.with_format("arrow").select_columns(columns)
            for start in range(0, table.num_rows, batch_rows):
                yield table[start : start + batch_rows]
            return
        for path in self._train_files:
            for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows, columns=columns):
                yield pa.Table.from_batches([batch])


def open_dataset(dataset: str, *, tokenizer_path: str | None = None) -> BehemothData:
    """Open `dataset` (a `behemoth generate` folder or a named config) with its checked tokenizer."""
    path = Path(dataset)
    if (path / METADATA_FILE).is_file():
        data = _open_folder(path)
    elif dataset in NAMED_CONFIGS:
        data = _open_named(dataset)
    else:
        raise FileNotFoundError(
            f"`dataset` {dataset!r} is neither a folder written by `behemoth generate` (no {METADATA_FILE}) "
            f"nor a named config ({', '.join(NAMED_CONFIGS)})"
        )
    if tokenizer_path is not None:
        data.tokenizer = load_tokenizer(tokenizer_path)
    check_tokenizer(data.tokenizer, data.config)
    return data


def check_tokenizer(tokenizer: PreTrainedTokenizerBase, config: BehemothConfig) -> None:
    """Raise `ValueError` unless `tokenizer` is exactly the one of `config`'s world."""
    info = world_info(tokenizer)
    if info["fingerprint"] != config.fingerprint():
        raise ValueError(
            f"tokenizer mismatch: it was built for world {info['fingerprint']} ({info.get('config_name')}), "
            f"the dataset is world {config.fingerprint()} ({config.name})"
        )
    if tokenizer.get_vocab() != build_tokenizer(Lexicon(config)).get_vocab():
        raise ValueError("tokenizer mismatch: its vocabulary or token ids differ from the dataset's lexicon")


def _open_folder(path: Path) -> BehemothData:
    try:
        metadata = json.loads((path / METADATA_FILE).read_text())
        config = BehemothConfig(name=metadata["config_name"], **metadata["world"])
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise ValueError(f"`dataset` {path}: {METADATA_FILE} is damaged ({error}); regenerate the folder") from None
    verify_files(path, metadata["files"])
    if config.fingerprint() != metadata["fingerprint"]:
        raise ValueError(
            f"{path} was written by another generator version (fingerprint {metadata['fingerprint']}, "
            f"this version computes {config.fingerprint()}): regenerate it with `behemoth generate`"
        )
    data_dir = path / DATA_DIR
    fact_splits = datasets.DatasetDict(
        {
            split: datasets.load_dataset(
                "parquet", data_files=sorted(str(p) for p in data_dir.glob(f"{split}-*.parquet")), split="train"
            )
            for split in metadata["splits"]
            if split != TRAIN
        }
    )
    return BehemothData(
        source=str(path),
        config=config,
        fact_splits=fact_splits,
        tokenizer=load_tokenizer(str(path / TOKENIZER_DIR)),
        _train_files=sorted(data_dir.glob(f"{TRAIN}-*.parquet")),
    )


def _verification_stamp(path: Path, names: list[str]) -> Path:
    """Where a successful check of `path`'s files is remembered: keyed on the folder, and each file's size, mtime
    and inode, so any change to a file (or a copy elsewhere) is checked again."""
    stats = []
    for name in names:
        status = (path / name).stat()
        stats.append([name, status.st_size, status.st_mtime_ns, status.st_ino])
    key = hashlib.sha256(json.dumps([str(path.resolve()), stats]).encode()).hexdigest()
    return cache_dir() / "verified" / key


def cache_dir() -> Path:
    """behemoth_hf's cache folder: $BEHEMOTH_CACHE, else $XDG_CACHE_HOME/behemoth_hf (~/.cache/behemoth_hf)."""
    cache_home = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return Path(os.environ.get("BEHEMOTH_CACHE", cache_home / "behemoth_hf"))


def verify_files(path: Path, hashes: dict[str, str]) -> None:
    """Refuse a generated folder whose files are missing or differ from the SHA-256 sums in its metadata.

    A folder once verified is not hashed again until one of its files changes (a 4.6 GB corpus takes ~15 s).
    """
    # The card is documentation (a multi-config repo keeps one at its root, the Hub may edit it): not checked.
    hashes = {name: digest for name, digest in hashes.items() if name != "README.md"}
    missing = [name for name in hashes if not (path / name).is_file()]
    if missing:
        raise FileNotFoundError(f"`dataset` {path} is incomplete: {missing[0]} is missing ({len(missing)} file(s))")
    stamp = _verification_stamp(path, sorted(hashes))
    if stamp.is_file():
        return
    for name, expected in sorted(hashes.items()):
        if sha256_file(path / name) != expected:
            raise ValueError(
                f"`dataset` {path}: {name} does not match the SHA-256 in {METADATA_FILE} (damaged or edited); "
                "regenerate the folder with `behemoth generate`"
            )
    try:
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.touch()
    except OSError:
        logger.info("could not remember the check of %s in %s; it will be hashed again", path, stamp)


def _open_named(name: str) -> BehemothData:
    from behemoth_hf.builder import Behemoth

    config = make_config(name)
    builder = Behemoth(config_name=name)
    builder.download_and_prepare()
    splits = builder.as_dataset()
    train = splits.pop(TRAIN)
    return BehemothData(
        source=name,
        config=config,
        fact_splits=splits,
        tokenizer=build_tokenizer(Lexicon(config)),
        _train_dataset=train,
    )


def load_model(data: BehemothData, model_path: str):
    """Model and tokenizer from `model_path`, refusing a model built for another world."""
    if not (Path(model_path) / "config.json").is_file():
        raise FileNotFoundError(f"`model` {model_path} is not a saved model folder (no config.json)")
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    try:
        check_tokenizer(tokenizer, data.config)
    except ValueError as error:
        raise ValueError(f"`model` {model_path} does not match `dataset` {data.source}: {error}") from None
    try:
        model = AutoModelForCausalLM.from_pretrained(model_path)
    except (OSError, ValueError, RuntimeError, SafetensorError) as error:
        raise ValueError(f"`model` {model_path}: its weights cannot be read ({error}); is the folder damaged?") from None
    if model.get_input_embeddings().num_embeddings < len(tokenizer):
        raise ValueError(f"`model` {model_path} has fewer embeddings than its tokenizer has tokens")
    return model, tokenizer

"""Open a Behemoth dataset for training or evaluation: a folder from `behemoth generate`, or a named config.

Fact splits come back as `datasets.Dataset`s; the `train` corpus is streamed as Arrow tables straight
from its Parquet shards (or the builder's cache), so pretraining on a 300M-sentence corpus never
converts or holds it whole. The tokenizer is checked against the dataset before anything runs.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

from behemoth_hf.config import NAMED_CONFIGS, BehemothConfig, make_config
from behemoth_hf.generate import DATA_DIR, METADATA_FILE, TOKENIZER_DIR
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
    metadata = json.loads((path / METADATA_FILE).read_text())
    config = BehemothConfig(name=metadata["config_name"], **metadata["world"])
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
    model = AutoModelForCausalLM.from_pretrained(model_path)
    if model.get_input_embeddings().num_embeddings < len(tokenizer):
        raise ValueError(f"`model` {model_path} has fewer embeddings than its tokenizer has tokens")
    return model, tokenizer

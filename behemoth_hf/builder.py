"""The `datasets` builder: `load_dataset("behemoth", "default")` or `Behemoth(config_name="tiny")`.

An `ArrowBasedBuilder` (not a per-row `GeneratorBasedBuilder`): splits are produced as Arrow
tables, which is what makes the 300M-sentence `paper` config feasible. The cache is keyed on a hash
of the generation code, so a code change never silently reuses stale data.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
from collections.abc import Iterator
from pathlib import Path

import datasets
import pyarrow as pa
from datasets.builder import Key
from datasets.filesystems import is_remote_filesystem

from behemoth_hf import config as config_module
from behemoth_hf import lexicon, render, splits
from behemoth_hf import world as world_module
from behemoth_hf.cards import CITATION
from behemoth_hf.config import GENERATOR_VERSION, NAMED_CONFIGS, WORLD_FIELDS, BehemothConfig
from behemoth_hf.resources import check_builder_resources, resource_checks_skipped
from behemoth_hf.world import World


_DESCRIPTION = """\
Behemoth: a fully synthetic world of (subject, relation, object) facts written in a made-up
language, for measuring exactly what unlearning and model editing do to a fact, its paraphrases and
the facts that depend on it. Splits: `train` (the pretraining corpus, each fact `repeats` times),
`forget`, `retain`, `dependent` (facts depending on a forget fact), `paraphrase` (forget facts in a
held-out word order) and `holdout` (facts of subjects never trained on).
"""
_HOMEPAGE = "https://arxiv.org/abs/2601.23153"
_LICENSE = "apache-2.0"

DATASET_NAME = "behemoth"
_GENERATION_MODULES = (config_module, lexicon, world_module, render, splits)


@dataclasses.dataclass
class BehemothBuilderConfig(BehemothConfig, datasets.BuilderConfig):
    """A `BehemothConfig` as the `datasets.BuilderConfig` of the `behemoth` builder (name, version, data files)."""

    version: datasets.Version | str | None = datasets.Version(GENERATOR_VERSION)

    def __post_init__(self):
        datasets.BuilderConfig.__post_init__(self)
        BehemothConfig.__post_init__(self)

    @classmethod
    def from_config(cls, config: BehemothConfig) -> BehemothBuilderConfig:
        return cls(**{field.name: getattr(config, field.name) for field in dataclasses.fields(BehemothConfig)})


def source_hash() -> str:
    """Hash of the code that determines the generated rows (the builder's cache key)."""
    digest = hashlib.sha256()
    for module in (*_GENERATION_MODULES, inspect.getmodule(source_hash)):
        digest.update(inspect.getsource(module).encode())
    return digest.hexdigest()[:16]


class Behemoth(datasets.ArrowBasedBuilder):
    """Builder of every Behemoth world; named configs in `NAMED_CONFIGS`, any parameter overridable."""

    BUILDER_CONFIG_CLASS = BehemothBuilderConfig
    # Checked against this machine's memory when built, not when listed (as NAMED_CONFIGS are).
    with resource_checks_skipped():
        BUILDER_CONFIGS = [BehemothBuilderConfig.from_config(config) for config in NAMED_CONFIGS.values()]
    # No default: `load_dataset` turns an empty name into "no name", which would silently build `default`.
    DEFAULT_CONFIG_NAME = None
    VERSION = datasets.Version(GENERATOR_VERSION)

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("hash", source_hash())
        kwargs.setdefault("dataset_name", DATASET_NAME)
        super().__init__(*args, **kwargs)

    def _create_builder_config(self, config_name=None, custom_features=None, config_id=None, **config_kwargs):
        if not config_name:
            raise ValueError(
                f"a config name is required (an empty name is none): load_dataset({DATASET_NAME!r}, NAME) with NAME "
                f"one of the named configs: {', '.join(NAMED_CONFIGS)}"
            )
        if isinstance(config_name, str) and config_name not in NAMED_CONFIGS:
            raise ValueError(f"unknown config {config_name!r}; named configs: {', '.join(NAMED_CONFIGS)}")
        plumbing = {field.name for field in dataclasses.fields(datasets.BuilderConfig)}
        unknown = sorted(set(config_kwargs) - set(WORLD_FIELDS) - plumbing)
        if unknown:
            raise ValueError(f"unknown parameter(s) {unknown}; allowed: {', '.join(sorted(WORLD_FIELDS))}")
        builder_config, config_id = super()._create_builder_config(
            config_name, custom_features=custom_features, config_id=config_id, **config_kwargs
        )
        # `datasets` applies keyword overrides with setattr, after __post_init__: validate again.
        builder_config.validate()
        return builder_config, config_id

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description=_DESCRIPTION,
            citation=CITATION,
            homepage=_HOMEPAGE,
            license=_LICENSE,
            features=splits.features(self.config),
        )

    def _download_and_prepare(self, dl_manager, verification_mode, **prepare_split_kwargs):
        # datasets calls this only when the splits are not cached yet, before any row is generated, with
        # `_output_dir` set to the empty folder it fills (checked like datasets' own disk check: its parent).
        cache_dir = None if is_remote_filesystem(self._fs) else str(Path(self._output_dir).parent)
        check_builder_resources(self.config, cache_dir, prepare_split_kwargs.get("num_proc"))
        super()._download_and_prepare(dl_manager, verification_mode, **prepare_split_kwargs)

    def _split_generators(self, dl_manager):
        world = World.generate(self.config)
        generators = []
        for name in splits.split_names(world):
            # A list of passes becomes shards, so `num_proc` generates `train` in parallel.
            passes = list(range(self.config.repeats)) if name == splits.TRAIN else None
            generators.append(
                datasets.SplitGenerator(name=name, gen_kwargs={"world": world, "split": name, "passes": passes})
            )
        return generators

    def _generate_tables(self, world: World, split: str, passes: list[int] | None) -> Iterator[tuple[Key, pa.Table]]:
        if split != splits.TRAIN:
            yield Key(0, 0), splits.fact_table(world, split)
            return
        corpus = splits.TrainCorpus(world)
        for pass_index in passes:
            for table_index, table in enumerate(corpus.pass_tables(pass_index)):
                yield Key(pass_index, table_index), table


# `load_dataset("behemoth", ...)` works whichever is imported first, this module or `datasets` (the package's import
# hook registers the builder when `datasets` comes first).
from behemoth_hf.registry import register_builder  # noqa: E402  (the registry imports this module)


register_builder()

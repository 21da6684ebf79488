"""The splits of a world as Arrow tables: fact rows (forget, retain, ...) and the `train` corpus.

`train` is `repeats` passes; each pass is a fresh seeded shuffle of every trained sentence unit (each
trained fact as a statement, each Q/A subject's fact once more as a question, each object -> nested
fact `nested_object_repeats` times). A pass only depends on (seed, pass index), so memory is bounded
by one pass whatever `repeats` is, and passes can be generated in any order or in parallel.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from behemoth_hf.arrow import from_numpy, string, strings
from behemoth_hf.config import BehemothConfig
from behemoth_hf.render import ALTERNATIVE_ORDERS, CANONICAL, PARAPHRASE, QUESTION, TEMPLATE_NAMES, render
from behemoth_hf.world import TRAIN_STREAM, Dependency, Membership, World


TRAIN = "train"
FACT_SPLITS = ("forget", "retain", "dependent", "paraphrase", "holdout")
_SPLIT_MEMBERSHIP = {
    "forget": Membership.FORGET,
    "retain": Membership.RETAIN,
    "dependent": Membership.DEPENDENT,
    "paraphrase": Membership.FORGET,
    "holdout": Membership.HOLDOUT,
}
DEPENDENCY_NAMES = tuple(kind.name.lower() for kind in Dependency)
# Rows per Arrow table of `train`: bounds memory, large enough to amortise per-table overhead.
TRAIN_TABLE_ROWS = 1_000_000

if TYPE_CHECKING:
    import datasets

# The columns of every split: a `datasets.Value` dtype, or "template" (the ClassLabel of TEMPLATE_NAMES) or
# "perturbed" (the fixed-length list of strings). `features` and `arrow_schema` are both built from this list.
_COLUMNS = (
    ("text", "string"),
    ("fact_id", "int64"),
    ("template", "template"),
    ("subject_id", "int32"),
    ("subject", "string"),
    ("relation_id", "int32"),
    ("relation", "string"),
    ("object_id", "int32"),
    ("object", "string"),
    ("dependency", "string"),
    ("depends_on", "int64"),
    ("propagated_answer", "string"),
    ("minority_object", "string"),
    ("in_qa", "bool"),
    ("prompt", "string"),
    ("answer", "string"),
    ("question", "string"),
    ("paraphrased_question", "string"),
    ("paraphrased_answer", "string"),
    ("perturbed_answer", "perturbed"),
    ("target_new", "string"),
    ("target_new_id", "int32"),
)


def features(config: BehemothConfig) -> datasets.Features:
    """The one schema of every split (a config's splits must share it to load from Parquet).

    Fact splits fill every column. `train` rows are sentences: they fill `text`, `fact_id` and
    `template` and leave the fact columns null (Parquet stores those nulls in a few bytes).
    The perturbed-answer list has a fixed length per config, as TOFU/OpenUnlearning expect.
    """
    import datasets

    def feature(kind: str):
        if kind == "template":
            return datasets.ClassLabel(names=list(TEMPLATE_NAMES))
        if kind == "perturbed":
            return datasets.List(datasets.Value("string"), length=config.num_perturbed)
        return datasets.Value(kind)

    return datasets.Features({name: feature(kind) for name, kind in _COLUMNS})


def arrow_schema(config: BehemothConfig) -> pa.Schema:
    """`features(config).arrow_schema` without importing `datasets` (a second of `behemoth generate`'s start-up):
    the same Arrow types and the same `huggingface` metadata, which `load_dataset` reads the features back from
    (tests/test_splits.py checks both against `datasets`)."""
    types, hf_features = [], {}
    for name, kind in _COLUMNS:
        if kind == "template":
            types.append(pa.int64())
            hf_features[name] = {"names": list(TEMPLATE_NAMES), "_type": "ClassLabel"}
        elif kind == "perturbed":
            types.append(pa.list_(pa.string(), config.num_perturbed))
            item = {"dtype": "string", "_type": "Value"}
            hf_features[name] = {"feature": item, "length": config.num_perturbed, "_type": "List"}
        else:
            types.append(pa.type_for_alias(kind))
            hf_features[name] = {"dtype": kind, "_type": "Value"}
    metadata = {"huggingface": json.dumps({"info": {"features": hf_features}})}
    return pa.schema([pa.field(name, type_) for (name, _), type_ in zip(_COLUMNS, types)], metadata=metadata)


def split_names(world: World) -> list[str]:
    """Splits of this world, `train` first, then the fact splits that have rows (e.g. `dependent` only
    when some fact depends on a forget fact; no `forget` when `forget_fraction` is 0)."""
    present = np.bincount(world.membership, minlength=len(Membership)) > 0
    return [TRAIN] + [split for split in FACT_SPLITS if present[_SPLIT_MEMBERSHIP[split]]]


def _names(world: World, entities: np.ndarray) -> pa.Array:
    return pc.take(world.lexicon.names, from_numpy(entities))


def _optional_names(world: World, entities: np.ndarray) -> pa.Array:
    """Names, with "" where the entity is -1."""
    names = pc.take(world.lexicon.names, from_numpy(np.maximum(entities, 0)))
    return pc.if_else(from_numpy(entities < 0), string(""), names)


def fact_ids(world: World, split: str) -> np.ndarray:
    """The fact ids of one fact split, in order."""
    if split not in _SPLIT_MEMBERSHIP:
        raise ValueError(f"unknown fact split {split!r}; allowed: {', '.join(FACT_SPLITS)}")
    return np.flatnonzero(world.membership == _SPLIT_MEMBERSHIP[split])


def fact_table(world: World, split: str) -> pa.Table:
    """The rows of one fact split, in fact-id order, cast to `features`."""
    rows = fact_ids(world, split)
    subjects = _names(world, world.subject_entity[rows])
    relations = _names(world, world.relation_entity[rows])
    objects = _names(world, world.object_entity[rows])
    # The paraphrase split asks the forget facts in the held-out word order.
    prompt_template = PARAPHRASE if split == "paraphrase" else CANONICAL
    perturbed = world.perturbed_entity[rows]
    perturbed_names = pc.take(world.lexicon.names, from_numpy(perturbed.reshape(-1)))
    columns = {
        "text": render(prompt_template, subjects, relations, objects),
        "fact_id": rows.astype(np.int64),
        "template": np.full(len(rows), TEMPLATE_NAMES.index(prompt_template), np.int64),
        "subject_id": world.subject_id[rows],
        "subject": subjects,
        "relation_id": world.relation_id[rows],
        "relation": relations,
        "object_id": world.object_id[rows],
        "object": objects,
        "dependency": pc.take(strings(DEPENDENCY_NAMES), from_numpy(world.dependency[rows])),
        "depends_on": world.depends_on[rows],
        "propagated_answer": _optional_names(world, world.propagated_entity[rows]),
        "minority_object": _optional_names(world, world.minority_entity[rows]),
        "in_qa": world.in_qa[rows],
        "prompt": render(prompt_template, subjects, relations, None, prompt_only=True),
        "answer": objects,
        "question": render(QUESTION, subjects, relations, None, prompt_only=True),
        "paraphrased_question": render(PARAPHRASE, subjects, relations, None, prompt_only=True),
        "paraphrased_answer": objects,
        "perturbed_answer": pa.FixedSizeListArray.from_arrays(perturbed_names, world.config.num_perturbed),
        "target_new": _names(world, world.target_new_entity[rows]),
        "target_new_id": world.target_new_id[rows],
    }
    arrays = [from_numpy(column) if isinstance(column, np.ndarray) else column for column in columns.values()]
    return pa.Table.from_arrays(arrays, names=list(columns)).cast(arrow_schema(world.config))


class TrainCorpus:
    """The `train` split, generated pass by pass.

    Every sentence a pass can contain is rendered once up front (one string per fact for each
    template and each of true/minority object that can occur); a pass is then a seeded choice of
    variant per unit and one `take`, so the cost per sentence is a copy of its bytes. `table(start, stop)`
    gives any row range of the whole split, so a writer can cut it into shards and row groups anywhere.
    """

    def __init__(self, world: World):
        self.world = world
        self.schema = arrow_schema(world.config)
        config = world.config
        trained = np.flatnonzero(world.trained)
        repeat = np.where(world.dependency[trained] == Dependency.NESTED_OBJECT, config.nested_object_repeats, 1)
        statements = np.repeat(trained, repeat)
        questions = trained[world.in_qa[trained]]
        self.unit_fact = np.concatenate([statements, questions]).astype(np.int64)
        self.unit_is_question = np.concatenate([np.zeros(len(statements), bool), np.ones(len(questions), bool)])
        self._render_variants()
        self._cached_pass: tuple[int, tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None
        self._null_columns: dict[int, dict[str, pa.Array]] = {}

    @property
    def rows_per_pass(self) -> int:
        return len(self.unit_fact)

    @property
    def num_rows(self) -> int:
        return self.rows_per_pass * self.world.config.repeats

    def _render_variants(self) -> None:
        world, config = self.world, self.world.config
        templates = [CANONICAL]
        if config.paraphrase_fraction > 0:
            templates += list(ALTERNATIVE_ORDERS)
        if self.unit_is_question.any():
            templates.append(QUESTION)
        object_kinds = [world.object_entity]
        if (world.minority_entity >= 0).any():
            object_kinds.append(np.where(world.minority_entity >= 0, world.minority_entity, world.object_entity))
        subjects = _names(world, world.subject_entity)
        relations = _names(world, world.relation_entity)
        variants = []
        # offsets[template id, uses minority object] -> start of that variant in `self.variants`
        self.offsets = np.full((len(TEMPLATE_NAMES), 2), -1, np.int64)
        for template in templates:
            for minority, objects in enumerate(object_kinds):
                self.offsets[TEMPLATE_NAMES.index(template), minority] = len(variants) * world.num_facts
                variants.append(render(template, subjects, relations, _names(world, objects)))
        if len(object_kinds) == 1:
            self.offsets[:, 1] = self.offsets[:, 0]
        self.variants = pa.concat_arrays(variants)

    def _pass_order(self, pass_index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(fact id, template id, index into `variants`) of every row of one pass, in pass order."""
        if self._cached_pass is not None and self._cached_pass[0] == pass_index:
            return self._cached_pass[1]
        config = self.world.config
        rng = np.random.default_rng([config.seed, TRAIN_STREAM, pass_index])
        order = rng.permutation(self.rows_per_pass)
        facts = self.unit_fact[order]
        template = np.where(self.unit_is_question[order], TEMPLATE_NAMES.index(QUESTION), 0)
        if config.paraphrase_fraction > 0:
            alternative = (rng.random(len(order)) < config.paraphrase_fraction) & (template == 0)
            choice = rng.integers(0, len(ALTERNATIVE_ORDERS), len(order))
            alternative_ids = np.array([TEMPLATE_NAMES.index(name) for name in ALTERNATIVE_ORDERS])
            template = np.where(alternative, alternative_ids[choice], template)
        minority = np.zeros(len(order), np.int64)
        if config.dissent_fraction > 0:
            minority = (
                (self.world.minority_entity[facts] >= 0) & (rng.random(len(order)) < config.dissent_rate)
            ).astype(np.int64)
        result = facts, template, self.offsets[template, minority] + facts
        # Consecutive tables usually fall in the same pass (a pass of the `paper` config is six row groups).
        self._cached_pass = (pass_index, result)
        return result

    def table(self, start: int, stop: int) -> pa.Table:
        """Rows `[start, stop)` of the whole split (pass after pass), as one single-chunk table."""
        if not 0 <= start <= stop <= self.num_rows:
            raise ValueError(f"rows [{start}, {stop}) are outside the split's {self.num_rows} rows")
        pieces = []
        position = start
        while position < stop:
            pass_index, offset = divmod(position, self.rows_per_pass)
            end = min(stop - position, self.rows_per_pass - offset) + offset
            pieces.append([column[offset:end] for column in self._pass_order(pass_index)])
            position += end - offset
        facts, template, variant = (np.concatenate(parts) for parts in zip(*pieces)) if pieces else ([], [], [])
        filled = {
            "text": pc.take(self.variants, from_numpy(np.asarray(variant, np.int64))),
            "fact_id": from_numpy(np.asarray(facts, np.int64)),
            "template": from_numpy(np.asarray(template, np.int64)),
        }
        rows = stop - start
        if rows not in self._null_columns:
            # The fact columns of every train row are null: build them once per table length, not per table.
            self._null_columns[rows] = {
                field.name: pa.nulls(rows, field.type) for field in self.schema if field.name not in filled
            }
        nulls = self._null_columns[rows]
        return pa.Table.from_arrays([filled.get(f.name, nulls.get(f.name)) for f in self.schema], schema=self.schema)

    def pass_tables(self, pass_index: int, max_rows: int = TRAIN_TABLE_ROWS) -> Iterator[pa.Table]:
        """The sentences of one pass, as tables of at most `max_rows` rows."""
        first = pass_index * self.rows_per_pass
        for start in range(first, first + self.rows_per_pass, max_rows):
            yield self.table(start, min(start + max_rows, first + self.rows_per_pass))

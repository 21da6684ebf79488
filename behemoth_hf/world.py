"""The seeded fact table: every (subject, relation, object) fact of a world, with its dependencies and split.

Everything is drawn with numpy from independent streams `default_rng([seed, stream])`, one per
component, so switching one option on (say Q/A subjects) does not reshuffle the objects.

Fact order (the `fact_id`): base facts of every subject, subject-major and relation-minor (trained
subjects first, then holdout subjects); then, when nested, the inherited facts (subject, lives-in,
nested object) of trained subjects; then the object -> nested-object facts of every (relation, object).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from behemoth_hf.config import BehemothConfig
from behemoth_hf.lexicon import Lexicon


class Dependency(IntEnum):
    """How a fact depends on another one (stored as a string label in datasets)."""

    INDEPENDENT = 0
    CORRELATED = 1  # relation 1 of a correlated pair: copies relation 0's object index with some probability
    NESTED_INHERITED = 2  # (subject, lives-in, n): n is the nested object of the subject's object
    NESTED_OBJECT = 3  # (object, located-in, n): general knowledge shared by every holder of the object


class Membership(IntEnum):
    """Which split a fact belongs to. Trained facts are exactly FORGET, RETAIN and DEPENDENT."""

    RETAIN = 0
    FORGET = 1
    DEPENDENT = 2  # trained, not forgotten, but depends on a forget fact
    HOLDOUT = 3  # base facts of subjects never written in `train`


# Stream ids of `default_rng([seed, stream])`; never reuse or renumber (that would change the data).
(
    _OBJECTS,
    _CORRELATION,
    _NESTING,
    _DISSENT,
    _FORGET,
    _QA,
    _TARGETS,
    _PERTURBED,
    _OBJECT_FACT_TARGETS,
    _INHERITED_TARGETS,
) = range(1, 11)
TRAIN_STREAM = 100


@dataclass
class World:
    """The fact table of one config: one numpy array per column, one entry per fact."""

    config: BehemothConfig
    lexicon: Lexicon
    dependency: np.ndarray  # int8, Dependency
    membership: np.ndarray  # int8, Membership
    subject_id: np.ndarray  # int32, -1 for object -> nested-object facts
    relation_id: np.ndarray  # int32, global: r, R + r (subject-nested), 2R + r (object-nested)
    object_id: np.ndarray  # int32, index in the relation's own vocabulary
    subject_entity: np.ndarray  # int64 indices into lexicon.names
    relation_entity: np.ndarray
    object_entity: np.ndarray
    target_new_entity: np.ndarray
    target_new_id: np.ndarray
    perturbed_entity: np.ndarray  # (facts, num_perturbed)
    depends_on: np.ndarray  # int64 fact id of the base fact, -1 if none
    propagated_entity: np.ndarray  # answer if the base fact's edit propagated, -1 if not defined
    minority_entity: np.ndarray  # dissenting object, -1 if none
    in_qa: np.ndarray  # bool: also written in question/answer form

    @property
    def num_facts(self) -> int:
        return len(self.dependency)

    @property
    def trained(self) -> np.ndarray:
        return self.membership != Membership.HOLDOUT

    @classmethod
    def generate(cls, config: BehemothConfig) -> World:
        return _WorldBuilder(config).build()


def _rng(config: BehemothConfig, stream: int) -> np.random.Generator:
    return np.random.default_rng([config.seed, stream])


def _other_value(rng: np.random.Generator, value: np.ndarray, vocab: int) -> np.ndarray:
    """A uniform value in [0, vocab) different from `value`, element-wise."""
    other = rng.integers(0, vocab - 1, size=len(value))
    return other + (other >= value)


def _distinct_other_values(rng: np.random.Generator, value: np.ndarray, vocab: int, k: int) -> np.ndarray:
    """(len(value), k) values in [0, vocab), distinct per row and different from `value`."""
    rows = len(value)
    if vocab - 1 <= 64:
        # Small vocabularies: random order of the vocab - 1 offsets, keep the first k.
        offsets = np.argsort(rng.random((rows, vocab - 1)), axis=1)[:, :k] + 1
    else:
        # Large vocabularies: redraw the few rows with a repeated offset until none is left.
        offsets = rng.integers(1, vocab, size=(rows, k))
        while True:
            ordered = np.sort(offsets, axis=1)
            clash = (ordered[:, 1:] == ordered[:, :-1]).any(axis=1)
            if not clash.any():
                break
            offsets[clash] = rng.integers(1, vocab, size=(int(clash.sum()), k))
    return (value[:, None] + offsets) % vocab


class _WorldBuilder:
    def __init__(self, config: BehemothConfig):
        self.config = config
        self.lexicon = Lexicon(config)
        self.num_trained = config.num_subjects
        self.num_all = config.num_subjects + config.num_holdout_subjects

    def build(self) -> World:
        config, lexicon = self.config, self.lexicon
        relations = config.num_relations
        objects = self._draw_objects()  # (subjects, relations)
        nested_of = self._draw_nesting()  # (relations, objects) -> nested id

        subjects = np.repeat(np.arange(self.num_all), relations)
        base_relations = np.tile(np.arange(relations), self.num_all)
        base_objects = objects.reshape(-1)
        base_dependency = np.full(len(subjects), Dependency.INDEPENDENT, np.int8)
        if config.correlated_pair:
            base_dependency[base_relations == 1] = Dependency.CORRELATED
        base_target = self._base_targets(base_objects, base_relations)

        forget_subjects = np.zeros(self.num_all, bool)
        forget_subjects[_rng(config, _FORGET).choice(self.num_trained, config.num_forget_subjects, replace=False)] = (
            True
        )
        qa_subjects = np.zeros(self.num_all, bool)
        qa_subjects[_rng(config, _QA).choice(self.num_trained, config.num_qa_subjects, replace=False)] = True

        base_ids = np.arange(len(subjects))
        columns = {
            "dependency": [base_dependency],
            "subject_id": [subjects],
            "relation_id": [base_relations],
            "object_id": [base_objects],
            "subject_entity": [lexicon.subject_entity(subjects)],
            "object_entity": [lexicon.object_entity(base_relations, base_objects)],
            "target_new_id": [base_target],
            "target_new_entity": [lexicon.object_entity(base_relations, base_target)],
            "depends_on": [np.where(base_dependency == Dependency.CORRELATED, base_ids - 1, -1)],
            "propagated_entity": [self._correlated_propagation(base_objects, base_target, base_dependency)],
            "in_qa": [qa_subjects[subjects]],
        }
        if nested_of is not None:
            self._add_nested_facts(columns, objects, nested_of, base_target, qa_subjects)

        table = {name: np.concatenate(parts) for name, parts in columns.items()}
        subject_id, relation_id, object_id = table["subject_id"], table["relation_id"], table["object_id"]
        vocab = np.where(relation_id < relations, config.num_objects, config.num_nested_objects)
        perturbed_ids = self._perturbed(object_id, vocab)
        base_relation = relation_id % relations
        is_nested_value = relation_id >= relations
        perturbed_entity = lexicon.object_entity(base_relation[:, None], perturbed_ids)
        if config.nested:
            perturbed_entity[is_nested_value] = lexicon.nested_entity(
                base_relation[is_nested_value, None], perturbed_ids[is_nested_value]
            )

        membership = self._membership(table, forget_subjects)
        minority_entity = np.full(len(subject_id), -1, np.int64)
        minority = self._draw_dissent(membership, table["dependency"], object_id)
        has_minority = minority >= 0
        minority_entity[has_minority] = lexicon.object_entity(base_relation[has_minority], minority[has_minority])

        return World(
            config=config,
            lexicon=lexicon,
            dependency=table["dependency"].astype(np.int8),
            membership=membership,
            subject_id=subject_id.astype(np.int32),
            relation_id=relation_id.astype(np.int32),
            object_id=object_id.astype(np.int32),
            subject_entity=table["subject_entity"].astype(np.int64),
            relation_entity=lexicon.relation_entity(relation_id).astype(np.int64),
            object_entity=table["object_entity"].astype(np.int64),
            target_new_entity=table["target_new_entity"].astype(np.int64),
            target_new_id=table["target_new_id"].astype(np.int32),
            perturbed_entity=perturbed_entity.astype(np.int64),
            depends_on=table["depends_on"].astype(np.int64),
            propagated_entity=table["propagated_entity"].astype(np.int64),
            minority_entity=minority_entity,
            in_qa=table["in_qa"].astype(bool),
        )

    # ------------------------------------------------------------------ draws
    def _draw_objects(self) -> np.ndarray:
        config = self.config
        objects = _rng(config, _OBJECTS).integers(0, config.num_objects, size=(self.num_all, config.num_relations))
        if config.correlated_pair:
            rng = _rng(config, _CORRELATION)
            first = rng.integers(0, 2 if config.binarize_first else config.num_objects, size=self.num_all)
            copy = rng.random(self.num_all) < config.correlation_strength
            # Non-copies are uniform over the *other* values: the match rate is exactly the strength
            # (the original's fallback never drew 0 and doubled num_objects - 1).
            objects[:, 0] = first
            objects[:, 1] = np.where(copy, first, _other_value(rng, first, config.num_objects))
        return objects

    def _draw_nesting(self) -> np.ndarray | None:
        config = self.config
        if not config.nested:
            return None
        rng = _rng(config, _NESTING)
        # Balanced: every nested object is shared by exactly num_objects / num_nested_objects objects.
        per_nested = config.num_objects // config.num_nested_objects
        return np.stack(
            [
                rng.permutation(np.repeat(np.arange(config.num_nested_objects), per_nested))
                for _ in range(config.num_relations)
            ]
        )

    def _base_targets(self, base_objects: np.ndarray, base_relations: np.ndarray) -> np.ndarray:
        config = self.config
        target = _other_value(_rng(config, _TARGETS), base_objects, config.num_objects)
        if config.binarize_first:
            # Keep a binarised relation binarised: its edit flips 0 <-> 1.
            first = base_relations == 0
            target[first] = 1 - base_objects[first]
        return target

    def _correlated_propagation(self, objects: np.ndarray, target: np.ndarray, dependency: np.ndarray) -> np.ndarray:
        """For relation 1 of a matching correlated pair, the object an edit of relation 0 would carry over."""
        propagated = np.full(len(objects), -1, np.int64)
        if not self.config.correlated_pair:
            return propagated
        relation1 = np.flatnonzero(dependency == Dependency.CORRELATED)
        matching = relation1[objects[relation1] == objects[relation1 - 1]]
        propagated[matching] = self.lexicon.object_entity(1, target[matching - 1])
        return propagated

    def _add_nested_facts(self, columns, objects, nested_of, base_target, qa_subjects) -> None:
        config, lexicon = self.config, self.lexicon
        relations = config.num_relations
        # Inherited (subject, subject-nested relation r, nested_of[r, object]) for trained subjects.
        trained_objects = objects[: self.num_trained]
        subjects = np.repeat(np.arange(self.num_trained), relations)
        base_relation = np.tile(np.arange(relations), self.num_trained)
        inherited = nested_of[base_relation, trained_objects.reshape(-1)]
        # Its own edit target is another nested object; what an edit of the base fact would make it
        # (possibly the same nested object: objects share them) is the propagated answer.
        inherited_target = _other_value(_rng(config, _INHERITED_TARGETS), inherited, config.num_nested_objects)
        propagated = nested_of[base_relation, base_target[: len(subjects)]]
        base_fact = np.arange(len(subjects))  # trained subjects come first in the base facts
        self._append(
            columns,
            dependency=np.full(len(subjects), Dependency.NESTED_INHERITED),
            subject_id=subjects,
            relation_id=relations + base_relation,
            object_id=inherited,
            subject_entity=lexicon.subject_entity(subjects),
            object_entity=lexicon.nested_entity(base_relation, inherited),
            target_new_id=inherited_target,
            target_new_entity=lexicon.nested_entity(base_relation, inherited_target),
            depends_on=base_fact,
            propagated_entity=lexicon.nested_entity(base_relation, propagated),
            in_qa=qa_subjects[subjects],
        )
        # Object facts (object, object-nested relation r, nested_of[r, object]) for every object.
        object_relation = np.repeat(np.arange(relations), config.num_objects)
        object_ids = np.tile(np.arange(config.num_objects), relations)
        nested = nested_of[object_relation, object_ids]
        target = _other_value(_rng(config, _OBJECT_FACT_TARGETS), nested, config.num_nested_objects)
        self._append(
            columns,
            dependency=np.full(len(object_ids), Dependency.NESTED_OBJECT),
            subject_id=np.full(len(object_ids), -1),
            relation_id=2 * relations + object_relation,
            object_id=nested,
            subject_entity=lexicon.object_entity(object_relation, object_ids),
            object_entity=lexicon.nested_entity(object_relation, nested),
            target_new_id=target,
            target_new_entity=lexicon.nested_entity(object_relation, target),
            depends_on=np.full(len(object_ids), -1),
            propagated_entity=np.full(len(object_ids), -1),
            in_qa=np.zeros(len(object_ids), bool),
        )

    @staticmethod
    def _append(columns: dict[str, list], **values: np.ndarray) -> None:
        for name, value in values.items():
            columns[name].append(value)

    def _perturbed(self, object_id: np.ndarray, vocab: np.ndarray) -> np.ndarray:
        rng = _rng(self.config, _PERTURBED)
        perturbed = np.empty((len(object_id), self.config.num_perturbed), np.int64)
        for size in np.unique(vocab):
            rows = vocab == size
            perturbed[rows] = _distinct_other_values(rng, object_id[rows], int(size), self.config.num_perturbed)
        return perturbed

    def _membership(self, table: dict[str, np.ndarray], forget_subjects: np.ndarray) -> np.ndarray:
        config = self.config
        subject_id, relation_id, depends_on = table["subject_id"], table["relation_id"], table["depends_on"]
        membership = np.full(len(subject_id), Membership.RETAIN, np.int8)
        is_base = (relation_id < config.num_relations) & (subject_id >= 0)
        forget = is_base & forget_subjects[np.maximum(subject_id, 0)]
        if config.forget_relation is not None:
            forget &= relation_id == config.forget_relation
        membership[forget] = Membership.FORGET
        has_base = depends_on >= 0
        dependent = has_base & ~forget
        dependent[has_base] &= forget[depends_on[has_base]]
        membership[dependent] = Membership.DEPENDENT
        membership[is_base & (subject_id >= self.num_trained)] = Membership.HOLDOUT
        return membership

    def _draw_dissent(self, membership: np.ndarray, dependency: np.ndarray, object_id: np.ndarray) -> np.ndarray:
        """Minority object id per fact (-1 if none) for `dissent_fraction` of trained subject facts."""
        config = self.config
        minority = np.full(len(membership), -1, np.int64)
        if config.dissent_fraction == 0:
            return minority
        candidates = np.flatnonzero((membership != Membership.HOLDOUT) & (dependency == Dependency.INDEPENDENT))
        rng = _rng(config, _DISSENT)
        count = round(config.dissent_fraction * len(candidates))
        chosen = np.sort(rng.choice(candidates, count, replace=False))
        minority[chosen] = _other_value(rng, object_id[chosen], config.num_objects)
        return minority

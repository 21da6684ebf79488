import numpy as np
import pytest

from behemoth_hf.config import make_config
from behemoth_hf.world import Dependency, Membership, World


def test_same_seed_same_world_different_seed_different_world():
    first, second = World.generate(make_config("default")), World.generate(make_config("default"))
    assert np.array_equal(first.object_id, second.object_id)
    assert np.array_equal(first.membership, second.membership)
    assert not np.array_equal(first.object_id, World.generate(make_config("default", seed=1)).object_id)


def test_one_object_per_subject_relation():
    world = World.generate(make_config("default"))
    base = world.dependency == Dependency.INDEPENDENT
    pairs = np.stack([world.subject_id[base], world.relation_id[base]], axis=1)
    assert len(np.unique(pairs, axis=0)) == base.sum() == 440 * 5


def test_forget_retain_dependent_partition_the_trained_facts():
    world = World.generate(make_config("nested"))
    trained = world.membership != Membership.HOLDOUT
    forget = world.membership == Membership.FORGET
    retain = world.membership == Membership.RETAIN
    dependent = world.membership == Membership.DEPENDENT
    assert not (forget & retain).any() and not (forget & dependent).any() and not (retain & dependent).any()
    assert np.array_equal(forget | retain | dependent, trained)
    forget_subjects = np.unique(world.subject_id[forget])
    assert len(forget_subjects) == 40  # 10% of 400
    # Every base fact of a forget subject is forgotten; every dependent fact hangs off a forget fact.
    base = world.dependency == Dependency.INDEPENDENT
    assert forget[base & np.isin(world.subject_id, forget_subjects)].all()
    assert (world.membership[world.depends_on[dependent]] == Membership.FORGET).all()


def test_holdout_subjects_are_extra_and_untrained():
    world = World.generate(make_config("default"))
    holdout = world.membership == Membership.HOLDOUT
    assert set(np.unique(world.subject_id[holdout])) == set(range(400, 440))
    assert not np.isin(world.subject_id[world.trained], np.arange(400, 440)).any()


def test_relation_level_forgetting():
    world = World.generate(make_config("relation"))
    forget = world.membership == Membership.FORGET
    assert set(world.relation_id[forget]) == {0} and forget.sum() == 400


def test_correlated_match_rate_is_the_strength():
    world = World.generate(make_config("default", num_subjects=20000, correlated_pair=True, correlation_strength=0.6))
    objects = world.object_id[world.dependency != Dependency.NESTED_OBJECT].reshape(-1, 5)
    match = (objects[:, 0] == objects[:, 1]).mean()
    # Binomial standard error at n=22,000 is 0.0033: 5 sigma.
    assert abs(match - 0.6) < 0.017
    # Non-matching values are uniform over the other objects (the original never drew 0 there).
    other = objects[objects[:, 0] != objects[:, 1], 1]
    assert np.bincount(other, minlength=20).min() > 0.5 * len(other) / 20
    # Independent relations stay at chance.
    assert abs((objects[:, 0] == objects[:, 2]).mean() - 1 / 20) < 0.01


def test_binarized_correlated_pair_and_propagation():
    world = World.generate(make_config("correlated", binarize_first=True, correlation_strength=0.9))
    first = world.relation_id == 0
    assert set(world.object_id[first & (world.dependency == Dependency.INDEPENDENT)]) <= {0, 1}
    assert np.array_equal(world.target_new_id[first], 1 - world.object_id[first])
    correlated = np.flatnonzero(world.dependency == Dependency.CORRELATED)
    base = world.depends_on[correlated]
    matching = world.object_id[correlated] == world.object_id[base]
    expected = world.lexicon.object_entity(1, world.target_new_id[base[matching]])
    assert np.array_equal(world.propagated_entity[correlated[matching]], expected)
    assert (world.propagated_entity[correlated[~matching]] == -1).all()


def test_nested_inheritance_is_exact():
    config = make_config("nested")
    world = World.generate(config)
    inherited = np.flatnonzero(world.dependency == Dependency.NESTED_INHERITED)
    object_facts = np.flatnonzero(world.dependency == Dependency.NESTED_OBJECT)
    # (relation, object entity) -> nested object entity, from the object -> nested facts.
    nested_of = {
        (world.relation_id[i] - 2 * config.num_relations, world.subject_entity[i]): world.object_entity[i]
        for i in object_facts
    }
    assert len(nested_of) == config.num_relations * config.num_objects
    for fact in inherited:
        base = world.depends_on[fact]
        assert world.subject_id[fact] == world.subject_id[base]
        assert world.relation_id[fact] == config.num_relations + world.relation_id[base]
        assert world.object_entity[fact] == nested_of[(world.relation_id[base], world.object_entity[base])]
    # Balanced nesting: each nested object is shared by num_objects / num_nested_objects objects.
    counts = np.unique(world.object_id[object_facts].reshape(config.num_relations, -1), return_counts=True)[1]
    assert (counts == config.num_relations * config.num_objects // config.num_nested_objects).all()


@pytest.mark.parametrize("name", ["default", "nested", "correlated"])
def test_perturbed_answers_and_edit_targets_are_wrong_answers_of_the_same_relation(name):
    world = World.generate(make_config(name))
    perturbed = world.perturbed_entity
    assert (perturbed != world.object_entity[:, None]).all()
    assert (np.sort(perturbed, axis=1)[:, 1:] != np.sort(perturbed, axis=1)[:, :-1]).all()
    assert (world.target_new_entity != world.object_entity).all()
    # Same vocabulary block: the value's token lies in the same role range as the true object.
    ranges = [(role.start, role.end) for role in world.lexicon.role_ranges if "object" in role.role]
    names = world.lexicon.names.to_pylist()
    token_of = {word: index for index, word in enumerate(world.lexicon.tokens)}

    def block(entity):
        token = token_of[names[entity]]
        return next(i for i, (start, end) in enumerate(ranges) if start <= token < end)

    for fact in range(0, world.num_facts, 97):
        assert {block(e) for e in perturbed[fact]} | {block(world.target_new_entity[fact])} == {
            block(world.object_entity[fact])
        }


def test_dissent_marks_the_requested_fraction_of_trained_facts():
    world = World.generate(make_config("dissent"))
    has_minority = world.minority_entity >= 0
    assert has_minority.sum() == round(0.1 * 2000)
    assert world.trained[has_minority].all()
    assert (world.minority_entity[has_minority] != world.object_entity[has_minority]).all()

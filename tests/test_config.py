import numpy as np
import pytest

from behemoth_hf.config import NAMED_CONFIGS, make_config, parse_overrides
from behemoth_hf.splits import TrainCorpus
from behemoth_hf.world import Membership, World


@pytest.mark.parametrize("name", list(NAMED_CONFIGS))
def test_named_configs_are_valid(name):
    config = make_config(name)
    config.validate()
    assert config.name == name


@pytest.mark.parametrize(
    "overrides, error, match",
    [
        (dict(num_nested_objects=3), ValueError, r"`num_nested_objects` \(3\) must divide `num_objects` \(10\)"),
        (dict(correlated_pair=True, num_relations=1), ValueError, r"`correlated_pair` needs `num_relations` >= 2"),
        (
            dict(correlated_pair=True, correlation_strength=0.05),
            ValueError,
            r"`correlation_strength` must be in \[1/num_objects",
        ),
        (dict(binarize_first=True), ValueError, r"`binarize_first` needs `correlated_pair=True`"),
        (dict(forget_fraction=1.5), ValueError, r"`forget_fraction` must be in \[0, 1\], got 1.5"),
        (dict(dissent_rate=-0.1), ValueError, r"`dissent_rate` must be in \[0, 1\]"),
        (dict(qa_fraction=2), ValueError, r"`qa_fraction` must be in \[0, 1\]"),
        (dict(num_subjects=1.5), TypeError, r"`num_subjects` must be an integer, got 1.5"),
        (dict(repeats="10"), TypeError, r"`repeats` must be an integer"),
        (dict(num_subjects=0), ValueError, r"`num_subjects` must be >= 1"),
        (dict(num_objects=1), ValueError, r"`num_objects` must be >= 2"),
        (dict(num_subjects=2_000_000), ValueError, r"more than the token space allows"),
        (dict(num_relations=100, num_objects=900), ValueError, r"more than the token space holds"),
        (dict(dissent_fraction=0.1, num_nested_objects=5), ValueError, r"`dissent_fraction` > 0 cannot be combined"),
        (dict(forget_relation=3), ValueError, r"`forget_relation` must be in \[0, 2\]"),
        (dict(num_perturbed=10), ValueError, r"`num_perturbed` must be in \[1, 9\]"),
        (dict(num_nested_objects=5, num_perturbed=5), ValueError, r"`num_perturbed` must be in \[1, 4\]"),
        # Options of a disabled feature would be silently ignored.
        (dict(correlation_strength=0.5), ValueError, r"`correlation_strength` \(0.5\) needs correlated_pair=True"),
        (dict(dissent_rate=0.3), ValueError, r"`dissent_rate` \(0.3\) needs `dissent_fraction` > 0"),
        (dict(nested_object_repeats=2), ValueError, r"`nested_object_repeats` \(2\) needs `num_nested_objects` > 0"),
        # A forget split that silently comes out empty, or one that leaves nothing to retain.
        (dict(forget_fraction=0.01), ValueError, r"`forget_fraction` 0.01 selects no subject of 40 .*at least 0.025"),
        (
            dict(forget_fraction=0.99),
            ValueError,
            r"forgets every relation of all 40 subjects.*no fact for the `retain`",
        ),
        (
            dict(forget_fraction=1.0, num_relations=1, forget_relation=0),
            ValueError,
            r"forgets relation 0 of all 40 subjects, which leaves no fact for the `retain` split",
        ),
        (
            # Relation 1 of every subject depends on its forgotten relation 0: all of it is `dependent`.
            dict(correlated_pair=True, num_relations=2, forget_fraction=1.0, forget_relation=0),
            ValueError,
            r"leaves no fact for the `retain` split",
        ),
    ],
)
def test_invalid_combinations_name_the_parameter(overrides, error, match):
    with pytest.raises(error, match=match):
        make_config("tiny", **overrides)


def test_unknown_config_and_key():
    with pytest.raises(ValueError, match="unknown config 'huge'; named configs: tiny, default"):
        make_config("huge")
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['subjects'\]"):
        make_config("tiny", subjects=10)


def test_parse_overrides_types_and_errors():
    parsed = parse_overrides(["num_subjects=1_000", "qa_fraction=0.5", "correlated_pair=true", "forget_relation=none"])
    assert parsed == {"num_subjects": 1000, "qa_fraction": 0.5, "correlated_pair": True, "forget_relation": None}
    with pytest.raises(TypeError, match="`num_subjects` must be an integer, got '1.5'"):
        parse_overrides(["num_subjects=1.5"])
    with pytest.raises(ValueError, match="unknown parameter `size`"):
        parse_overrides(["size=3"])
    with pytest.raises(ValueError, match="must look like key=value"):
        parse_overrides(["num_subjects"])


def test_fingerprint_tracks_world_parameters_only():
    assert make_config("tiny").fingerprint() == make_config("tiny").fingerprint()
    assert make_config("tiny").fingerprint() != make_config("tiny", seed=1).fingerprint()


@pytest.mark.parametrize(
    "name, overrides",
    [(name, {}) for name in NAMED_CONFIGS if name != "paper"]
    + [
        ("nested", dict(qa_fraction=0.3, nested_object_repeats=3, forget_relation=1)),
        ("correlated", dict(forget_relation=1)),
        ("correlated", dict(forget_relation=None, num_nested_objects=5, qa_fraction=0.2, num_perturbed=3)),
        ("nested", dict(forget_fraction=1.0)),  # object -> nested facts are always retained
        ("tiny", dict(forget_fraction=0.0, holdout_fraction=0.0)),  # an explicit 0: no forget split, allowed
    ],
)
def test_derived_sizes_match_the_generated_world(name, overrides):
    # Resource estimates and the forget/retain checks use these closed forms before anything is generated.
    config = make_config(name, **overrides)
    world = World.generate(config)
    members = np.bincount(world.membership, minlength=len(Membership))
    assert config.num_facts == world.num_facts
    assert config.num_trained_facts == world.trained.sum()
    assert config.num_forget_facts == members[Membership.FORGET]
    assert config.num_dependent_facts == members[Membership.DEPENDENT]
    assert config.num_retain_facts == members[Membership.RETAIN] > 0
    assert config.train_rows_per_pass == TrainCorpus(world).rows_per_pass

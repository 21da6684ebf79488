"""Classification of dependent-fact answers into kept / followed / broken / ambiguous, and their rates."""

import pytest

from behemoth_hf.metrics.propagation import (
    OUTCOMES,
    classify_propagation,
    classify_propagation_from_correct,
    propagation_rates,
)


def test_each_outcome():
    predictions = ["doka", "lemi", "zoru", "pafo", " doka "]
    old = ["doka", "doka", "doka", "pafo", "doka"]
    propagated = ["lemi", "lemi", "lemi", "pafo", "lemi"]
    outcomes = classify_propagation(predictions, old, propagated)
    # p == o -> kept; p == a -> followed; neither -> broken; p == o == a -> ambiguous; whitespace stripped
    assert outcomes.tolist() == ["kept", "followed", "broken", "ambiguous", "kept"]
    assert classify_propagation([" doka "], ["doka"], ["lemi"], strip=False).tolist() == ["broken"]


def test_no_propagated_answer_means_kept_or_broken_only():
    # the dataset writes "" where a dependent fact has no propagated answer
    assert classify_propagation(["doka", "", "lemi"], ["doka"] * 3, ["", "", None]).tolist() == [
        "kept",
        "broken",
        "broken",
    ]


def test_rates_sum_to_one():
    outcomes = classify_propagation(["a", "b", "c", "a"], ["a", "a", "a", "a"], ["b", "b", "b", "b"])
    # kept 2/4, followed 1/4, broken 1/4, ambiguous 0
    assert propagation_rates(outcomes) == {"kept": 0.5, "followed": 0.25, "broken": 0.25, "ambiguous": 0.0}
    assert set(propagation_rates(["kept"])) == set(OUTCOMES)


def test_bad_inputs():
    with pytest.raises(ValueError, match="`predictions` is empty"):
        classify_propagation([], [], [])
    with pytest.raises(ValueError, match="`predictions` has 2, `old_answers` has 1, `propagated_answers` has 1"):
        classify_propagation(["a", "b"], ["a"], ["b"])
    with pytest.raises(ValueError, match="`old_answers` item 0 must be a string"):
        classify_propagation(["a"], [None], ["b"])
    with pytest.raises(ValueError, match="`old_answers` contains an empty answer"):
        classify_propagation(["a"], [" "], ["b"])
    with pytest.raises(ValueError, match="`outcomes` must only contain"):
        propagation_rates(["kept", "lost"])
    with pytest.raises(ValueError, match="`outcomes` must be a non-empty"):
        propagation_rates([])


def test_from_correct_flags_matches_the_string_version():
    # (old ok, propagated ok): (1, 0) kept, (0, 1) followed, (0, 0) broken, (1, 1) ambiguous
    outcomes = classify_propagation_from_correct([True, False, False, True], [False, True, False, True])
    assert outcomes.tolist() == ["kept", "followed", "broken", "ambiguous"]
    strings = classify_propagation(
        ["doka", "lemi", "zoru", "pafo"], ["doka", "doka", "doka", "pafo"], ["lemi"] * 3 + ["pafo"]
    )
    assert strings.tolist() == outcomes.tolist()
    with pytest.raises(ValueError, match="`old_correct` has 2, `propagated_correct` has 1"):
        classify_propagation_from_correct([True, False], [True])
    with pytest.raises(ValueError, match="`propagated_correct` must hold booleans or 0/1"):
        classify_propagation_from_correct([1], [2])
    with pytest.raises(ValueError, match="`old_correct` is empty"):
        classify_propagation_from_correct([], [])

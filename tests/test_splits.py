import numpy as np
import pyarrow as pa
import pytest

from behemoth_hf.config import make_config
from behemoth_hf.render import TEMPLATE_NAMES
from behemoth_hf.splits import TrainCorpus, fact_table, split_names
from behemoth_hf.world import Dependency, World


def _train(world: World) -> pa.Table:
    corpus = TrainCorpus(world)
    return pa.concat_tables(t for p in range(world.config.repeats) for t in corpus.pass_tables(p, max_rows=997))


def test_each_trained_fact_appears_exactly_repeats_times():
    world = World.generate(make_config("tiny"))
    train = _train(world)
    counts = np.bincount(train["fact_id"].to_numpy(), minlength=world.num_facts)
    assert (counts[world.trained] == world.config.repeats).all()
    assert (counts[~world.trained] == 0).all()
    # The sentence is the fact's canonical statement.
    statement = {
        row["fact_id"]: row["text"] for split in ("forget", "retain") for row in fact_table(world, split).to_pylist()
    }
    assert all(statement[f] == t for f, t in zip(train["fact_id"].to_pylist(), train["text"].to_pylist()))


def test_each_pass_is_a_full_shuffle():
    world = World.generate(make_config("tiny"))
    corpus = TrainCorpus(world)
    first, second = (next(corpus.pass_tables(p))["fact_id"].to_numpy() for p in (0, 1))
    assert sorted(first) == sorted(second) == sorted(np.flatnonzero(world.trained))
    assert not np.array_equal(first, second)


def test_holdout_subjects_never_appear_in_train():
    world = World.generate(make_config("tiny"))
    holdout_names = set(fact_table(world, "holdout")["subject"].to_pylist())
    words = {word for text in _train(world)["text"].to_pylist() for word in text.split()}
    assert holdout_names and not holdout_names & words


def test_paraphrase_split_uses_no_canonical_text():
    world = World.generate(make_config("tiny"))
    forget, paraphrase = fact_table(world, "forget"), fact_table(world, "paraphrase")
    assert forget["fact_id"].to_pylist() == paraphrase["fact_id"].to_pylist()
    canonical = set(forget["text"].to_pylist()) | set(_train(world)["text"].to_pylist())
    for row in paraphrase.to_pylist():
        assert row["text"] not in canonical
        assert not row["prompt"].startswith("SS") and row["prompt"] == row["paraphrased_question"]
        assert row["text"] == f"{row['prompt']} {row['answer']} ."
    assert set(paraphrase["template"].to_pylist()) == {TEMPLATE_NAMES.index("rso")}


def test_dissent_rate_in_train():
    world = World.generate(make_config("dissent", repeats=200))
    train = _train(world)
    facts = train["fact_id"].to_numpy()
    names = world.lexicon.names.to_pylist()
    has_minority = world.minority_entity[facts] >= 0
    minority_word = np.array([names[e] if e >= 0 else "" for e in world.minority_entity])[facts]
    last_word = np.array([text.split()[-2] for text in train["text"].to_pylist()])
    used = last_word[has_minority] == minority_word[has_minority]
    # 200 facts x 200 repeats = 40,000 draws at rate 0.2: standard error 0.002.
    assert abs(used.mean() - 0.2) < 0.01
    true_word = np.array(names)[world.object_entity[facts]]
    assert (last_word[~has_minority] == true_word[~has_minority]).all()


def test_question_answer_and_paraphrase_orders_in_train():
    world = World.generate(make_config("qa", repeats=20, paraphrase_fraction=0.3))
    train = _train(world)
    template = np.array(train["template"].to_pylist())
    question = template == TEMPLATE_NAMES.index("qa")
    assert question.sum() == world.in_qa[world.trained].sum() * 20
    statements = template[~question]
    assert abs((statements != 0).mean() - 0.3) < 0.02
    assert set(statements) == {0, 1, 2, 3}
    texts = np.array(train["text"].to_pylist())
    assert all(text.startswith("QQ") for text in texts[question][:50])


def test_nested_object_facts_repeat_and_dependent_split():
    world = World.generate(make_config("nested", repeats=3, nested_object_repeats=2))
    counts = np.bincount(_train(world)["fact_id"].to_numpy(), minlength=world.num_facts)
    object_facts = world.dependency == Dependency.NESTED_OBJECT
    assert (counts[object_facts] == 6).all() and (counts[world.trained & ~object_facts] == 3).all()
    dependent = fact_table(world, "dependent")
    assert "dependent" in split_names(world)
    assert set(dependent["dependency"].to_pylist()) == {"nested_inherited"}
    forget_ids = set(fact_table(world, "forget")["fact_id"].to_pylist())
    assert set(dependent["depends_on"].to_pylist()) <= forget_ids
    assert all(row["propagated_answer"] for row in dependent.to_pylist())


def test_empty_fact_splits_are_left_out():
    world = World.generate(make_config("tiny", forget_fraction=0.0, holdout_fraction=0.0))
    assert split_names(world) == ["train", "retain"]


def test_fact_rows_are_consistent():
    world = World.generate(make_config("correlated"))
    for split in ("forget", "dependent", "retain", "holdout"):
        for row in fact_table(world, split).to_pylist()[:100]:
            assert row["text"] == f"{row['prompt']} {row['answer']} ."
            assert row["answer"] == row["object"] == row["paraphrased_answer"]
            assert row["subject"] in row["prompt"] and row["relation"] in row["prompt"]
            assert row["answer"] not in row["perturbed_answer"] and len(row["perturbed_answer"]) == 5
            assert row["target_new"] != row["answer"]
            assert row["question"].startswith("QQ") and row["question"].endswith("AA OO")
    with pytest.raises(ValueError, match="unknown fact split 'bogus'"):
        fact_table(world, "bogus")

import pytest
from transformers import AutoTokenizer

from behemoth_hf.config import make_config
from behemoth_hf.lexicon import Lexicon
from behemoth_hf.splits import fact_table
from behemoth_hf.tokenizer import build_tokenizer, load_tokenizer, world_info


def test_role_ranges_are_disjoint_and_cover_the_vocab():
    lexicon = Lexicon(make_config("nested"))
    ranges = sorted(lexicon.role_ranges, key=lambda role: role.start)
    assert ranges[0].start == 0 and ranges[-1].end == lexicon.vocab_size
    for previous, current in zip(ranges, ranges[1:]):
        assert previous.end == current.start, (previous, current)
    roles = {(role.role, role.relation) for role in ranges}
    assert {("subject", None), ("relation", None), ("object", 4), ("nested_object", 4)} <= roles
    assert len(set(lexicon.tokens)) == lexicon.vocab_size


def test_every_word_is_one_token_and_ids_follow_the_lexicon():
    lexicon = Lexicon(make_config("default", num_nested_objects=4, num_perturbed=3))
    tokenizer = build_tokenizer(lexicon)
    ids = tokenizer(" ".join(lexicon.tokens[3:]), add_special_tokens=False).input_ids
    assert ids == list(range(3, lexicon.vocab_size))
    assert tokenizer.unk_token_id not in ids


def test_two_word_names_when_a_type_outgrows_one_block():
    config = make_config("tiny", num_subjects=1500, holdout_fraction=0.0, num_relations=2)
    lexicon = Lexicon(config)
    subject_names = lexicon.names.to_pylist()[:1500]
    assert all(len(name.split()) == 2 for name in subject_names)
    assert len(set(subject_names)) == 1500
    subject_range = next(role for role in lexicon.role_ranges if role.role == "subject")
    assert subject_range.end - subject_range.start == 39 + 39  # ceil(sqrt(1500)) second words, 39 first words
    tokenizer = build_tokenizer(lexicon)
    encoded = tokenizer(subject_names[:50], add_special_tokens=False).input_ids
    assert all(len(ids) == 2 and subject_range.start <= min(ids) and max(ids) < subject_range.end for ids in encoded)


def test_special_tokens_are_distinct_and_encoding_is_prefix_consistent(tiny_world):
    tokenizer = build_tokenizer(tiny_world.lexicon)
    assert len({tokenizer.eos_token_id, tokenizer.pad_token_id, tokenizer.unk_token_id}) == 3
    for split in ("forget", "retain", "paraphrase"):
        for row in fact_table(tiny_world, split).to_pylist():
            for prompt in (row["prompt"], row["question"], row["paraphrased_question"]):
                prompt_ids = tokenizer(prompt, add_special_tokens=False).input_ids
                full_ids = tokenizer(prompt + " " + row["answer"], add_special_tokens=False).input_ids
                assert full_ids[: len(prompt_ids)] == prompt_ids
                assert len(full_ids) == len(prompt_ids) + 1
    assert tokenizer("SS Zzzz", add_special_tokens=False).input_ids[-1] == tokenizer.unk_token_id


def test_save_and_load_with_auto_tokenizer(tmp_path, tiny_world):
    tokenizer = build_tokenizer(tiny_world.lexicon)
    tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    text = fact_table(tiny_world, "forget")["text"][0].as_py()
    assert loaded(text).input_ids == tokenizer(text).input_ids
    assert world_info(loaded)["fingerprint"] == tiny_world.config.fingerprint()
    assert loaded.init_kwargs["behemoth_roles"][0] == {"role": "special", "relation": None, "start": 0, "end": 3}
    assert load_tokenizer(str(tmp_path)).vocab_size == tiny_world.lexicon.vocab_size


def test_load_tokenizer_rejects_a_foreign_tokenizer(tmp_path, tiny_world):
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    foreign = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(models.WordLevel({"a": 0, "<unk>": 1}, unk_token="<unk>"))
    )
    foreign.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="not built by behemoth_hf"):
        load_tokenizer(str(tmp_path))

import json

import pyarrow as pa
import pyarrow.compute as pc
import pytest
import torch
from transformers import AutoTokenizer, GPTNeoXConfig, GPTNeoXForCausalLM, pipeline

from behemoth_hf.config import make_config
from behemoth_hf.lexicon import EOS_TOKEN, PAD_TOKEN, UNK_TOKEN, Lexicon
from behemoth_hf.render import TEMPLATE_NAMES, render
from behemoth_hf.splits import fact_table, split_names
from behemoth_hf.tokenizer import MODEL_MAX_LENGTH, build_tokenizer, load_tokenizer, save_tokenizer, world_info
from behemoth_hf.world import World


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
    save_tokenizer(tokenizer, tmp_path)
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


# ---------------------------------------------------------------------------------------------- decoding
@pytest.fixture(scope="module")
def two_word_world() -> World:
    """Two-word subject and object names (more than 1,000 of each), every template in `train`."""
    return World.generate(make_config("tiny", num_subjects=1100, num_objects=1001, qa_fraction=0.5))


def _every_template(world: World) -> list[str]:
    """Every fact of the world written in every template (statements and Q/A form)."""
    names = world.lexicon.names
    subjects, relations, objects = (
        pc.take(names, pa.array(entities))
        for entities in (world.subject_entity, world.relation_entity, world.object_entity)
    )
    return [text for template in TEMPLATE_NAMES for text in render(template, subjects, relations, objects).to_pylist()]


def _prompts_and_answers(world: World) -> list[tuple[str, str]]:
    """(prompt, answer) of every fact split row, in each prompt form: statement, question, paraphrased question."""
    pairs = []
    for split in split_names(world)[1:]:
        for row in fact_table(world, split).to_pylist():
            pairs += [(row["prompt"], row["answer"]), (row["question"], row["answer"])]
            pairs.append((row["paraphrased_question"], row["paraphrased_answer"]))
    return pairs


@pytest.mark.parametrize("world_name", ["tiny", "two_word"])
def test_decode_restores_every_sentence_form(world_name, tiny_world, request):
    world = tiny_world if world_name == "tiny" else request.getfixturevalue("two_word_world")
    tokenizer = build_tokenizer(world.lexicon)
    pairs = _prompts_and_answers(world)
    texts = _every_template(world) + [text for pair in pairs for text in (pair[0], f"{pair[0]} {pair[1]}")]
    if world_name == "two_word":
        assert any(len(subject.split()) == 2 for subject in world.lexicon.names.to_pylist()[:1100])
    ids = tokenizer(texts, add_special_tokens=False).input_ids
    assert tokenizer.unk_token_id not in {token for sentence in ids for token in sentence}
    assert tokenizer.batch_decode(ids) == texts
    # With the eos every sentence ends with: skipped by default, written after a space when kept.
    eos = tokenizer.eos_token_id
    assert tokenizer.batch_decode([sentence + [eos] for sentence in ids], skip_special_tokens=True) == texts
    assert tokenizer.decode(ids[0] + [eos] + ids[1]) == f"{texts[0]} {EOS_TOKEN} {texts[1]}"


def test_continuations_decode_with_their_leading_space(tiny_world):
    """transformers 5 pipelines append decode(new ids) to the prompt; 4.45 slices decode(all) after decode(prompt)."""
    tokenizer = build_tokenizer(tiny_world.lexicon)
    for prompt, answer in _prompts_and_answers(tiny_world):
        prompt_ids = tokenizer(prompt).input_ids
        full_ids = tokenizer(f"{prompt} {answer} .").input_ids + [tokenizer.eos_token_id]
        generated = full_ids[len(prompt_ids) :]
        assert prompt + tokenizer.decode(generated[:1]) == f"{prompt} {answer}"
        assert prompt + tokenizer.decode(generated, skip_special_tokens=True) == f"{prompt} {answer} ."
        assert tokenizer.decode(full_ids, skip_special_tokens=True)[len(tokenizer.decode(prompt_ids)) :] == (
            f" {answer} ."
        )
    # Any cut of a sentence: decoded prefix + decoded rest is the sentence, except where the rest begins
    # with SS or OO standing mid-sentence, which decodes as a new sentence (the documented ambiguity).
    for text in _every_template(tiny_world):
        ids = tokenizer(text).input_ids
        for cut in range(1, len(ids)):
            head, rest = tokenizer.decode(ids[:cut]), tokenizer.decode(ids[cut:])
            glue = " " if tokenizer.convert_ids_to_tokens(ids[cut]) in ("SS", "OO") else ""
            assert head + glue + rest == text, (text, cut)


def test_text_generation_pipeline_output_compares_with_the_answer_as_a_string(tiny_world):
    tokenizer = build_tokenizer(tiny_world.lexicon)
    row = fact_table(tiny_world, "forget").to_pylist()[0]
    answer_id = tokenizer.convert_tokens_to_ids(row["answer"])
    config = GPTNeoXConfig(
        vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32
    )
    model = GPTNeoXForCausalLM(config).eval()
    with torch.no_grad():  # a model that always predicts the answer: constant final hidden state, one-hot head
        model.gpt_neox.final_layer_norm.weight.zero_()
        model.gpt_neox.final_layer_norm.bias.fill_(1.0)
        model.get_output_embeddings().weight.zero_()
        model.get_output_embeddings().weight[answer_id] = 1.0
    generator = pipeline("text-generation", model=model, tokenizer=tokenizer, device="cpu")
    for prompt in (row["prompt"], row["question"], row["paraphrased_question"]):
        output = generator(prompt, max_new_tokens=1, do_sample=False)[0]["generated_text"]
        assert output == f"{prompt} {row['answer']}"
        new_text = generator(prompt, max_new_tokens=1, do_sample=False, return_full_text=False)[0]["generated_text"]
        assert new_text.strip() == row["answer"]


# ---------------------------------------------------------------------------------------------- saved files
def test_saved_tokenizer_has_the_fields_transformers_4_45_reads(tmp_path, tiny_world):
    """4.45 resolves `tokenizer_class` by name and takes the special tokens and max length from this file."""
    save_tokenizer(build_tokenizer(tiny_world.lexicon), tmp_path)
    tokenizer_config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert tokenizer_config["tokenizer_class"] == "PreTrainedTokenizerFast"  # 5.x alone writes TokenizersBackend
    assert (tokenizer_config["eos_token"], tokenizer_config["pad_token"], tokenizer_config["unk_token"]) == (
        EOS_TOKEN,
        PAD_TOKEN,
        UNK_TOKEN,
    )
    assert tokenizer_config["model_max_length"] == MODEL_MAX_LENGTH
    assert tokenizer_config["clean_up_tokenization_spaces"] is False  # 4.45's cleanup would turn "kefo ." into "kefo."
    assert "bos_token" not in tokenizer_config and "auto_map" not in tokenizer_config
    backend = json.loads((tmp_path / "tokenizer.json").read_text())
    specials = {token["content"]: token["id"] for token in backend["added_tokens"] if token["special"]}
    assert specials == {EOS_TOKEN: 0, PAD_TOKEN: 1, UNK_TOKEN: 2}
    assert backend["model"]["type"] == "WordLevel" and backend["model"]["unk_token"] == UNK_TOKEN
    assert backend["decoder"]["type"] == "Sequence"


def test_saved_tokenizer_reloads_with_identical_ids_and_text_and_resaves_the_same(tmp_path, tiny_world):
    tokenizer = build_tokenizer(tiny_world.lexicon)
    save_tokenizer(tokenizer, tmp_path / "a")
    loaded = AutoTokenizer.from_pretrained(tmp_path / "a")
    texts = _every_template(tiny_world)
    assert loaded(texts).input_ids == tokenizer(texts).input_ids
    ids = loaded(texts, add_special_tokens=False).input_ids
    assert loaded.batch_decode(ids) == texts
    assert loaded.decode(ids[0][-2:]) == " " + " ".join(texts[0].split()[-2:])
    assert (loaded.eos_token_id, loaded.pad_token_id, loaded.unk_token_id) == (0, 1, 2)
    # What pretrain/unlearn do: save a tokenizer loaded with AutoTokenizer; the class name must survive.
    save_tokenizer(loaded, tmp_path / "b")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name

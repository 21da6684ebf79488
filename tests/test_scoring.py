"""Scoring is OpenUnlearning's: the answer then <eos>, as its QADataset builds an item from our export."""

import copy

import numpy as np
import pytest
import torch

from behemoth_hf import scoring
from behemoth_hf.export import TEMPLATE_ARGS
from behemoth_hf.layout import LAYOUTS
from behemoth_hf.metrics import rouge_scores
from behemoth_hf.modeling import build_model
from behemoth_hf.scoring import encode_prompt_answer, generate_answers, score_answers
from behemoth_hf.splits import fact_table
from behemoth_hf.tokenizer import build_tokenizer


@pytest.fixture(scope="module")
def setting(tiny_world):
    tokenizer = build_tokenizer(tiny_world.lexicon)
    model = build_model(
        "tiny", len(tokenizer), eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, seed=3
    ).eval()
    rows = fact_table(tiny_world, "forget").to_pylist()[:12]
    return model, tokenizer, [row["prompt"] for row in rows], [row["answer"] for row in rows]


def test_common_prefixes_of_sorted_items():
    sequences = [[1, 2], [1, 2], [1, 2, 3], [1, 3], [2], [2, 5, 6, 7]]
    assert scoring._common_prefix_with_previous(sequences).tolist() == [0, 2, 2, 1, 0, 1]


def test_items_encode_as_their_joined_text(setting):
    """The world's word-level tokenizer encodes prompt and answer apart; the ids are those of `prompt answer`."""
    _, tokenizer, prompts, answers = setting
    prompts, answers = [*prompts, prompts[0] + "  ", "Zzyzx " + prompts[1]], [*answers, answers[0], "two Qwerty"]
    full_ids, prompt_lengths = encode_prompt_answer(tokenizer, prompts, answers)
    assert scoring._encodes_word_by_word(tokenizer)
    assert full_ids == [tokenizer(f"{p} {a}", add_special_tokens=False).input_ids for p, a in zip(prompts, answers)]
    assert prompt_lengths == [len(tokenizer(p, add_special_tokens=False).input_ids) for p in prompts]
    with pytest.raises(ValueError, match="an answer is empty"):
        encode_prompt_answer(tokenizer, prompts[:1], [""])


def test_word_lookup_encodes_as_the_tokenizer_does(setting):
    """Texts the Python look-up takes and texts it must leave to the tokenizer (other whitespace, an added token
    inside a word, non-ASCII) get the tokenizer's own ids."""
    _, tokenizer, prompts, answers = setting
    word = prompts[0].split()[1]
    texts = [prompts[0], f"  {word}   {answers[0]} ", "Zzyzx", "", f"{word}\t{word}", f"{word}\x1c{word}"]
    texts += [f"{word}{tokenizer.eos_token}{word}", f"{word} \u00e9t\u00e9 {word}", f"{word}\u2003{word}"]
    looked_up = scoring._looked_up_word_by_word(tokenizer, texts)
    assert set(looked_up) == set(texts[:4])
    assert scoring._token_ids(tokenizer, texts) == tokenizer(texts, add_special_tokens=False).input_ids


def _openunlearning_item(tokenizer, question: str, answer: str) -> tuple[list[int], list[int]]:
    """input ids and labels as OU's `preprocess_chat_instance` builds them with the export's template tags."""
    tags = TEMPLATE_ARGS
    prompt = tags["user_start_tag"] + question + tags["user_end_tag"] + tags["asst_start_tag"]
    ids = tokenizer(prompt + answer, add_special_tokens=True).input_ids
    prompt_ids = tokenizer(prompt, add_special_tokens=True).input_ids
    if ids[-1] != tokenizer.eos_token_id:
        ids = ids + [tokenizer.eos_token_id]
    return ids, [-100] * len(prompt_ids) + ids[len(prompt_ids) :]


def test_probability_is_exp_minus_mean_nll_of_the_answer_and_eos(setting):
    model, tokenizer, prompts, answers = setting
    scores = score_answers(model, tokenizer, prompts, answers, batch_size=5)  # several, unequal batches
    for i, (prompt, answer) in enumerate(zip(prompts, answers)):
        ids, labels = _openunlearning_item(tokenizer, prompt, answer)
        with torch.no_grad():
            logprobs = torch.log_softmax(model(torch.tensor([ids])).logits[0, :-1].double(), -1)
        labelled = [t for t in range(1, len(ids)) if labels[t] != -100]
        token_nll = [-float(logprobs[t - 1, ids[t]]) for t in labelled]
        assert ids[labelled[-1]] == tokenizer.eos_token_id and len(token_nll) == len(answer.split()) + 1
        # OU's `probability`: exp(-mean NLL over every labelled token, <eos> included).
        assert scores.mean_nll[i] == pytest.approx(np.mean(token_nll), rel=1e-5)
        assert np.exp(-scores.mean_nll[i]) == pytest.approx(np.exp(-np.mean(token_nll)), rel=1e-5)
        # OU's token-wise metrics (min-k%, exact memorization, extraction strength) drop the final <eos>.
        assert np.allclose(-scores.token_logprobs[i], token_nll[:-1], rtol=1e-5)
        assert scores.eos_logprobs[i] == pytest.approx(-token_nll[-1], rel=1e-5)
        greedy = [int(logprobs[t - 1].argmax()) for t in labelled]
        assert scores.predicted_ids[i].tolist() == greedy[:-1]
        assert scores.correct[i] == (greedy[:-1] == ids[labelled[0] : labelled[-1]])
        assert scores.ends[i] == (scores.correct[i] and greedy[-1] == tokenizer.eos_token_id)


def _full_logits_scores(model, tokenizer, prompts, answers) -> dict[str, list]:
    """The obvious scorer: each item alone, unpadded, the full log-softmax at every position."""
    full_ids, prompt_lengths = encode_prompt_answer(tokenizer, prompts, answers)
    fields = {
        name: [] for name in ("token_logprobs", "eos_logprobs", "predicted_ids", "target_ids", "correct", "ends")
    }
    for ids, length in zip(full_ids, prompt_lengths):
        ids = ids + [tokenizer.eos_token_id]
        with torch.no_grad():
            logprobs = torch.log_softmax(model(torch.tensor([ids])).logits[0, :-1].float(), -1)
        target = torch.tensor(ids[1:])
        lp, argmax = logprobs[torch.arange(len(target)), target].numpy(), logprobs.argmax(-1).numpy()
        answer = slice(length - 1, len(ids) - 2)
        fields["token_logprobs"].append(lp[answer])
        fields["eos_logprobs"].append(float(lp[-1]))
        fields["predicted_ids"].append(argmax[answer])
        fields["target_ids"].append(np.array(ids[length:-1]))
        fields["correct"].append(bool((argmax[answer] == fields["target_ids"][-1]).all()))
        fields["ends"].append(fields["correct"][-1] and argmax[-1] == tokenizer.eos_token_id)
    return fields


@pytest.mark.parametrize("preset", ["tiny", "tiny-gpt2", "tiny-llama"])
@pytest.mark.parametrize("row_tokens", [scoring.ROW_TOKENS, 12])
def test_packed_scoring_equals_scoring_each_item_alone(tiny_world, preset, row_tokens, monkeypatch):
    """Items share prompts (perturbed options, repeats) and prompt beginnings (a subject's facts), answers have
    several tokens, and with 12 tokens per row prefix trees are cut between rows and long items get a row of their
    own: every field equals the full-logits scorer's."""
    monkeypatch.setattr(scoring, "ROW_TOKENS", row_tokens)
    tokenizer = build_tokenizer(tiny_world.lexicon)
    model = build_model(
        preset, len(tokenizer), eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, seed=5
    ).eval()
    rows = fact_table(tiny_world, "retain").to_pylist()[:10]
    prompts, answers = [], []
    for row in rows:
        for answer in [row["answer"], *row["perturbed_answer"], " ".join(row["perturbed_answer"][:3])]:
            prompts.append(row["prompt"])
            answers.append(answer)
    prompts += [rows[0]["question"], rows[0]["prompt"]]  # a repeated item, and a prompt of another template
    answers += [rows[0]["answer"], rows[0]["answer"]]
    scores = score_answers(model, tokenizer, prompts, answers, batch_size=7)
    reference = _full_logits_scores(model, tokenizer, prompts, answers)
    for name in ("token_logprobs", "predicted_ids", "target_ids"):
        assert len(getattr(scores, name)) == len(prompts)
        for got, expected in zip(getattr(scores, name), reference[name]):
            np.testing.assert_allclose(got, expected, rtol=1e-6, err_msg=name)
    np.testing.assert_allclose(scores.eos_logprobs, reference["eos_logprobs"], rtol=1e-6)
    assert scores.correct.tolist() == reference["correct"] and scores.ends.tolist() == reference["ends"]
    # ... while the last block's MLP and attention output projection ran only at the positions whose logits are
    # read (the first block's at all).
    blocks = next(module for module in model.modules() if isinstance(module, torch.nn.ModuleList))
    output_projection = LAYOUTS[model.config.model_type].attention_output
    seen = {}
    for name, block in (("first", blocks[0]), ("last", blocks[-1])):
        for part, module in (("mlp", block.mlp), ("projection", block.get_submodule(output_projection))):
            seen[name, part] = 0

            def counted(states, key=(name, part), forward=module.forward):
                seen[key] += states.shape[:-1].numel()
                return forward(states)

            monkeypatch.setattr(module, "forward", counted)
    score_answers(model, tokenizer, prompts, answers, batch_size=7)
    full_ids, prompt_lengths = encode_prompt_answer(tokenizer, prompts, answers)
    read = {tuple(ids[:end]) for ids, length in zip(full_ids, prompt_lengths) for end in range(length, len(ids) + 1)}
    at_most = sum(len(ids) - length + 1 for ids, length in zip(full_ids, prompt_lengths))
    for part in ("mlp", "projection"):
        assert len(read) <= seen["last", part] <= at_most
        assert seen["last", part] < seen["first", part] == seen["first", "mlp"]


def _always_predict(model, token_id: int) -> None:
    """Make `model` predict `token_id` at every position: a constant final hidden state, a one-hot head."""
    with torch.no_grad():
        model.gpt_neox.final_layer_norm.weight.zero_()
        model.gpt_neox.final_layer_norm.bias.fill_(1.0)
        head = model.get_output_embeddings().weight
        head.zero_()
        head[token_id] = 1.0


def test_generation_stops_at_eos_or_the_length_limit(setting):
    model, tokenizer, prompts, answers = setting
    model = copy.deepcopy(model)
    _always_predict(model, tokenizer.convert_tokens_to_ids(answers[0]))
    assert generate_answers(model, tokenizer, prompts[:3], max_new_tokens=7) == [" ".join([answers[0]] * 7)] * 3
    _always_predict(model, tokenizer.eos_token_id)
    assert generate_answers(model, tokenizer, prompts[:3]) == ["", "", ""]
    with pytest.raises(ValueError, match="`max_new_tokens` must be >= 1"):
        generate_answers(model, tokenizer, prompts, max_new_tokens=0)


def test_rouge_is_openunlearnings_scorer():
    scores = rouge_scores(["Bako tumi", "tumi", ""], ["bako", "bako tumi", "bako"])
    assert scores["rougeL_recall"].tolist() == [1.0, 0.5, 0.0]
    assert scores["rouge1_recall"].tolist() == [1.0, 0.5, 0.0]
    assert scores["rougeL_f1"][0] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="`predictions` must be a sequence of strings"):
        rouge_scores("bako", ["bako"])

"""The methods added after the first four (idk_dpo, idk_nll, altpo, rmu, undial, wga, satimp, ceu, pdu), trained on the
tiny world from one pretrained tiny model per module."""

from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM

from behemoth_hf.lexicon import REFUSAL
from behemoth_hf.scoring import score_answers
from behemoth_hf.unlearn import UnlearningArguments
from behemoth_hf.unlearn.altpo import greedy_alternates
from behemoth_hf.unlearn.data import encode_examples
from behemoth_hf.unlearn.run import run_unlearning


CONFIGS = Path(__file__).parents[1] / "trainer_configs"
# Per method, what the test runs change from the method's defaults. The OpenUnlearning positions of UNDIAL, PDU and
# RMU skip the distribution that predicts a one-word answer, so on this world they unlearn with `aligned_positions`;
# CE-U's default skips the first answer token, which here is the whole answer.
SETTINGS = {
    "idk_dpo": {},
    "idk_nll": {},
    "altpo": {},
    "rmu": dict(retain_loss="embed_diff", aligned_positions=True, rmu_layer=1),
    "undial": dict(aligned_positions=True),
    "wga": {},
    "satimp": {},
    "ceu": dict(ignore_first_answer_tokens=0),
    "pdu": dict(retain_loss_eps=0.05, aligned_positions=True),
}
RETAIN_REGULARISED = ("idk_dpo", "idk_nll", "altpo", "rmu", "wga", "satimp", "pdu")


def _run(tiny_model, output, method, **overrides):
    settings = dict(num_train_epochs=10, learning_rate=1e-3, per_device_train_batch_size=8, seed=0)
    settings.update(SETTINGS.get(method, {}), **overrides)
    args = UnlearningArguments(model=tiny_model, dataset="tiny", output_dir=str(output), method=method, **settings)
    return run_unlearning(args), AutoModelForCausalLM.from_pretrained(output)


def _scores(model, data, split, answers=None):
    rows = data.fact_splits[split]
    return score_answers(model, data.tokenizer, rows["prompt"], answers or rows["answer"])


@pytest.fixture(scope="module")
def unlearned(tiny_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("unlearned")
    return {method: _run(tiny_model, root / method, method) for method in ["gradient_ascent", *SETTINGS]}


def test_every_method_unlearns_and_retain_terms_protect_retain(unlearned, tiny_model, data):
    base_forget = _scores(AutoModelForCausalLM.from_pretrained(tiny_model), data, "forget")
    assert base_forget.accuracy == 1.0
    retain = {}
    for method, (record, model) in unlearned.items():
        forget = _scores(model, data, "forget")
        assert forget.accuracy <= 0.5, (method, forget.accuracy)
        assert forget.mean_nll.mean() > base_forget.mean_nll.mean() + 0.5, method
        assert np.isfinite(record["train_loss"]) and record["steps"] == 20 and record["warnings"] == [], method
        retain[method] = _scores(model, data, "retain").accuracy
    for method in RETAIN_REGULARISED:
        assert retain[method] > retain["gradient_ascent"] + 0.2, retain


def test_refusal_methods_teach_the_refusal(unlearned, tiny_model, data):
    refusals = [REFUSAL] * len(data.fact_splits["forget"])
    before = _scores(AutoModelForCausalLM.from_pretrained(tiny_model), data, "forget", refusals)
    nll = _scores(unlearned["idk_nll"][1], data, "forget", refusals)
    assert before.accuracy == 0.0 and nll.accuracy > 0.3
    # Both make the refusal far likelier than it was (DPO only needs it to gain on the forget answer).
    dpo = _scores(unlearned["idk_dpo"][1], data, "forget", refusals)
    for trained in (nll, dpo):
        assert trained.mean_nll.mean() < before.mean_nll.mean() - 1.0


def test_altpo_alternates_are_the_models_own_other_answers(tiny_model, data, tmp_path):
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    rows = data.fact_splits["forget"]
    examples = encode_examples(data.tokenizer, rows["prompt"], rows["answer"])
    special = data.tokenizer.all_special_ids
    alternates = greedy_alternates(model, examples, special)
    answers = data.tokenizer(list(rows["answer"]), add_special_tokens=False).input_ids
    for alternate, answer, prompt in zip(alternates, answers, rows["prompt"]):
        assert alternate[0] != answer[0] and not set(alternate) & set(special)
        assert 1 <= len(alternate) <= len(answer)
        # The first token is the model's best after the answer's own: the argmax once the answer is excluded.
        ids = data.tokenizer(prompt, add_special_tokens=False, return_tensors="pt").input_ids
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, -1]
        logits[[answer[0], *special]] = float("-inf")
        assert alternate[0] == int(logits.argmax())
    # AltPO trains them up: the alternates' likelihood rises.
    texts = data.tokenizer.batch_decode(alternates)
    _, trained = _run(tiny_model, tmp_path / "altpo", "altpo", max_steps=4)
    assert (
        _scores(trained, data, "forget", texts).mean_nll.mean() < _scores(model, data, "forget", texts).mean_nll.mean()
    )


def test_pdu_dual_variable_follows_the_retain_slack(tiny_model, tmp_path):
    # A bound far above the retain loss: the first step's slack (retain - 100) sends the dual variable to 0.
    record, _ = _run(tiny_model, tmp_path / "pdu", "pdu", retain_loss_eps=100.0)
    logged = [entry["retain_preference"] for entry in record["log_history"] if "retain_preference" in entry]
    assert logged == pytest.approx([0.1, 0.0])  # steps 1-10 average 1 (step 1) and nine 0s; steps 11-20 all 0
    # With a warm-up longer than the run it never moves.
    record, _ = _run(tiny_model, tmp_path / "warm", "pdu", retain_loss_eps=100.0, dual_warmup_epochs=20)
    assert [e["retain_preference"] for e in record["log_history"] if "retain_preference" in e] == [1.0, 1.0]


def test_rmu_params_train_only_the_matching_parameters(tiny_model, tmp_path):
    pattern = r"gpt_neox\.layers\.0\.mlp\.dense_4h_to_h\.weight"
    record, model = _run(tiny_model, tmp_path / "rmu", "rmu", rmu_params=pattern, rmu_layer=0, max_steps=3)
    base = AutoModelForCausalLM.from_pretrained(tiny_model).state_dict()
    changed = {name for name, tensor in model.state_dict().items() if not torch.equal(tensor, base[name])}
    assert changed == {"gpt_neox.layers.0.mlp.dense_4h_to_h.weight"}
    assert record["trainable_parameters"] == 256 * 64


@pytest.mark.parametrize("method", sorted(SETTINGS))
@pytest.mark.parametrize(
    "restriction",
    [dict(lora_rank=2, learning_rate=1e-2), dict(trainable_blocks="mlp", trainable_layers="1")],
    ids=["lora", "blocks"],
)
def test_methods_train_under_an_update_restriction(tiny_model, tmp_path, method, restriction):
    record, model = _run(tiny_model, tmp_path / method, method, max_steps=3, **restriction)
    base = AutoModelForCausalLM.from_pretrained(tiny_model).state_dict()
    changed = {name for name, tensor in model.state_dict().items() if not torch.equal(tensor, base[name])}
    if "lora_rank" in restriction:
        assert record["trainable_parameters"] < 20_000 and changed  # adapters only, merged into the saved weights
        assert all(".layers." in name and "layernorm" not in name for name in changed), changed
    else:
        assert changed and all(name.startswith("gpt_neox.layers.1.mlp.") for name in changed), changed


@pytest.mark.parametrize("method", ["altpo", "rmu", "pdu"])
def test_runs_are_byte_identical_from_their_seed(tiny_model, tmp_path, method):
    weights = []
    for run in ("first", "second"):
        _run(tiny_model, tmp_path / run, method, num_train_epochs=1, per_device_train_batch_size=4, seed=3)
        weights.append((tmp_path / run / "model.safetensors").read_bytes())
    assert weights[0] == weights[1]


@pytest.mark.parametrize(
    "overrides, match",
    [
        (dict(method="pdu"), r"`pdu` needs `retain_loss_eps`"),
        (dict(method="pdu", retain_loss_eps=0.1, alpha=0.0), r"`pdu` starts its dual variable at `alpha`"),
        (dict(method="npo", retain_loss="embed_diff"), r"`retain_loss=embed_diff` compares RMU's"),
        (dict(method="rmu", rmu_params="(unclosed"), r"`rmu_params` is not a regular expression"),
        (dict(method="rmu", rmu_params=".*mlp.*", lora_rank=2), r"`rmu_params` chooses the trained parameters"),
        (dict(method="rmu", rmu_params=".*mlp.*", trainable_layers="1"), r"leave `lora_rank`, `trainable_blocks`"),
        (dict(method="rmu", rmu_layer=-1), r"`rmu_layer` must be >= 0"),
        (dict(method="satimp", beta2=-1.0), r"`beta2` must be >= 0"),
        (dict(method="ceu", ignore_first_answer_tokens=-1), r"`ignore_first_answer_tokens` must be >= 0"),
    ],
)
def test_bad_method_arguments_fail_at_construction(overrides, match, tmp_path):
    settings = dict(model="m", dataset="tiny", output_dir=str(tmp_path / "o")) | overrides
    with pytest.raises(ValueError, match=match):
        UnlearningArguments(**settings)


@pytest.mark.parametrize(
    "method, overrides, match",
    [
        ("rmu", dict(rmu_layer=2), r"`rmu_layer` must be in \[0, 1\] for this model, got 2"),
        ("rmu", dict(rmu_params=r"nothing\.like\.this"), r"`rmu_params` .* matches no parameter"),
        ("ceu", dict(ignore_first_answer_tokens=2), r"`ignore_first_answer_tokens=2` leaves nothing to unlearn"),
    ],
)
def test_bad_method_inputs_fail_before_training(tiny_model, tmp_path, method, overrides, match):
    with pytest.raises(ValueError, match=match):
        _run(tiny_model, tmp_path / "out", method, **overrides)
    assert not (tmp_path / "out").exists()

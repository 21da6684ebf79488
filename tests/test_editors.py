import json
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM

from behemoth_hf import metrics
from behemoth_hf.arguments import parse_dataclasses
from behemoth_hf.cli import main
from behemoth_hf.data import open_dataset
from behemoth_hf.editors import EditorArguments
from behemoth_hf.editors.alphaedit import null_space_projector
from behemoth_hf.editors.covariance import key_covariances
from behemoth_hf.editors.layers import captured_keys, projection, weight_matrix
from behemoth_hf.editors.requests import SubjectEdit, context_prefixes, subject_edits, subject_keys
from behemoth_hf.editors.rome import rank_one_update
from behemoth_hf.editors.run import default_layers, facts_per_subject, requested_method
from behemoth_hf.editors.trace import CATEGORIES, position_categories
from behemoth_hf.evaluation import is_edit_run
from behemoth_hf.modeling import build_model
from behemoth_hf.scoring import score_answers


CONFIGS = Path(__file__).parents[1] / "trainer_configs"


@pytest.fixture(scope="module")
def edited(tiny_model, tmp_path_factory):
    """One run of each method on the same edits (one fact of each forget subject), through the CLI."""
    root = tmp_path_factory.mktemp("edited")
    # The tiny model's MLP outputs are small (norm ~0.7): ROME's clamp and decay, relative to them, stop the values
    # short there (reliability 0.25); `small` edits with the shipped settings.
    tiny_settings = ["--value_steps", "50", "--value_weight_decay", "0.001", "--clamp_norm_factor", "10"]
    for method in ("rome", "memit", "alphaedit"):
        argv = ["edit", "--config", str(CONFIGS / f"{method}.yaml"), "--model", tiny_model, "--dataset", "tiny"]
        assert main([*argv, "--output", str(root / method), "--facts_per_subject", "1", *tiny_settings]) == 0
    return root


def _edited_rows(folder: Path, data):
    record = json.loads((folder / "unlearning_record.json").read_text())
    forget = data.fact_splits["forget"]
    return record, forget.select(np.flatnonzero(np.isin(forget["fact_id"], record["edited_fact_ids"])))


def _quality(folder: Path, base, data) -> tuple[float, float]:
    """(EasyEdit reliability on the edited facts, locality on the retain facts) of an edited model folder."""
    model = AutoModelForCausalLM.from_pretrained(folder)
    _, rows = _edited_rows(folder, data)
    new = score_answers(model, data.tokenizer, rows["prompt"], rows["target_new"])
    retain = data.fact_splits["retain"]
    before = score_answers(base, data.tokenizer, retain["prompt"], retain["answer"])
    after = score_answers(model, data.tokenizer, retain["prompt"], retain["answer"])
    reliability = metrics.token_accuracy(new.predicted_ids, new.target_ids).mean()
    return reliability, metrics.locality(before.predicted_ids, after.predicted_ids).mean()


@pytest.mark.parametrize("method", ["rome", "memit", "alphaedit"])
def test_editors_move_the_new_targets_and_change_only_the_chosen_layer(edited, tiny_model, data, method):
    base = AutoModelForCausalLM.from_pretrained(tiny_model)
    record, rows = _edited_rows(edited / method, data)
    assert len(rows) == len(set(data.fact_splits["forget"]["subject_id"])) == record["num_subjects"]
    effect = record["forget_effect"]
    # The 64-wide tiny model stores some facts outside the subject's layer-0 MLP output, so not every edit lands
    # (the `small` acceptance run below reaches >= 0.9); every method still moves the new targets a long way.
    assert effect["accuracy_before"] == 0.0 and effect["mean_nll_after"] < effect["mean_nll_before"] - 0.5
    assert _quality(edited / method, base, data)[1] >= 0.9
    assert record["warnings"] == []
    # Every tensor but layer 0's MLP output projection is bit-identical to the base model's.
    assert record["edited_tensors"] == ["gpt_neox.layers.0.mlp.dense_4h_to_h.weight"] and record["layers"] == [0]
    state = AutoModelForCausalLM.from_pretrained(edited / method).state_dict()
    changed = [name for name, tensor in base.state_dict().items() if not torch.equal(tensor, state[name])]
    assert changed == record["edited_tensors"]
    assert is_edit_run(edited / method)  # so `behemoth evaluate` reports the edit table for it


def test_alphaedit_update_lies_in_the_null_space_of_the_corpus_keys(edited, tiny_model, data):
    base = AutoModelForCausalLM.from_pretrained(tiny_model)
    record, _ = _edited_rows(edited / "alphaedit", data)
    edited_model = AutoModelForCausalLM.from_pretrained(edited / "alphaedit")
    update = (weight_matrix(edited_model, 0) - weight_matrix(base, 0)).double()
    covariance = key_covariances(base, data, [0], record["hyperparameters"]["covariance_rows"])[0]  # cached
    projector = null_space_projector(covariance, record["hyperparameters"]["nullspace_threshold"])
    assert update.norm() > 0.1
    assert torch.allclose(update @ projector, update, atol=1e-5)  # no component along the preserved keys
    assert record["null_space_dimensions"] == {"0": round(torch.trace(projector).item())}


def test_single_rome_edit_is_deterministic_and_evaluated_as_an_edit(tiny_model, data, tmp_path):
    outputs = [tmp_path / "a", tmp_path / "b"]
    for output in outputs:
        argv = ["edit", "--method", "rome", "--model", tiny_model, "--dataset", "tiny", "--output", str(output)]
        assert main([*argv, "--num_edits", "1", "--seed", "3", "--value_weight_decay", "0.001"]) == 0
    first, second = (AutoModelForCausalLM.from_pretrained(output).state_dict() for output in outputs)
    assert all(torch.equal(first[name], second[name]) for name in first)
    record = json.loads((outputs[0] / "unlearning_record.json").read_text())
    assert record["method"] == "rome" and record["num_forget_examples"] == 1
    assert record["forget_effect"]["mean_nll_after"] < record["forget_effect"]["mean_nll_before"] - 0.5
    assert (outputs[0] / "README.md").is_file() and (outputs[0] / "tokenizer.json").is_file()
    assert main(["evaluate", "--model", str(outputs[0]), "--dataset", "tiny", "--base", tiny_model,
                 "--output", str(tmp_path / "eval")]) == 0  # fmt: skip
    results = json.loads((tmp_path / "eval" / "a" / "BEHEMOTH_EVAL.json").read_text())
    assert results["edit_locality"]["agg_value"] > 0.9
    # Judged on the one edited fact, not on the whole forget split.
    assert [int(i) for i in results["edit_reliability"]["value_by_index"]] == record["edited_fact_ids"]
    assert "edit reliability" in (tmp_path / "eval" / "report.md").read_text()


@pytest.mark.parametrize("preset", ["tiny", "tiny-gpt2", "tiny-llama"])
def test_rank_one_update_maps_the_key_to_the_value_in_every_family(preset):
    # GPT-2's Conv1D stores its weight transposed: `weight_matrix` must still give the (out, in) view that is edited.
    model = build_model(preset, 50, eos_token_id=0, pad_token_id=1, seed=0)
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    module = projection(model, 1)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad(), captured_keys(module) as keys:
        model(input_ids=torch.randint(2, 50, (8, 6), generator=generator))
    corpus = keys[0].reshape(-1, keys[0].shape[-1]).double()
    covariance = corpus.T @ corpus / len(corpus) + 1e-3 * torch.eye(corpus.shape[1], dtype=torch.float64)
    key, target = corpus[0], torch.randn(model.config.hidden_size, generator=generator, dtype=torch.float64)
    with torch.no_grad():
        residual = target - module(key.float()).double()
        weight_matrix(model, 1).add_(rank_one_update(key, residual, covariance).float())
        assert torch.allclose(module(key.float()).double(), target, atol=1e-4)
    changed = [name for name, tensor in model.state_dict().items() if not torch.equal(tensor, before[name])]
    assert changed == [f"{_prefix(preset)}.1.{_projection(preset)}.weight"]


def _prefix(preset: str) -> str:
    return {"tiny": "gpt_neox.layers", "tiny-gpt2": "transformer.h", "tiny-llama": "model.layers"}[preset]


def _projection(preset: str) -> str:
    return {"tiny": "mlp.dense_4h_to_h", "tiny-gpt2": "mlp.c_proj", "tiny-llama": "mlp.down_proj"}[preset]


def test_key_covariance_is_the_mean_outer_product_and_cached_per_weights(tiny_model, data):
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    covariance = key_covariances(model, data, [1], rows=40, batch_size=16)[1]
    texts = [
        text.removesuffix(" .") for text in next(data.train_tables(["text"], batch_rows=40)).column("text").to_pylist()
    ]
    keys = []
    for text in texts:
        ids = data.tokenizer(text, add_special_tokens=False).input_ids + [data.tokenizer.eos_token_id]
        with torch.no_grad(), captured_keys(projection(model, 1)) as captured:
            model(input_ids=torch.tensor([ids]))
        keys.append(captured[0][0].double())
    keys = torch.cat(keys)
    assert torch.allclose(covariance, keys.T @ keys / len(keys), atol=1e-6)
    assert torch.equal(key_covariances(model, data, [1], rows=40, batch_size=16)[1], covariance)  # from the cache
    with torch.no_grad():
        weight_matrix(model, 0).mul_(2.0)  # other weights: another cache entry, another covariance
    assert not torch.allclose(key_covariances(model, data, [1], rows=40, batch_size=16)[1], covariance)


def test_requests_group_by_subject_or_fact_and_keys_average_the_worlds_prefixes(tiny_model, data):
    forget = data.fact_splits["forget"]
    edits = subject_edits(forget, data)
    assert sum(len(edit.prompts) for edit in edits) == len(forget)
    assert len({edit.subject for edit in edits}) == len(edits)
    assert all(edit.essence_prompts == [] for edit in edits)  # every fact of a forget subject is requested
    one = subject_edits(forget.select([0]), data)[0]
    # The subject's other facts, in the forget split and in their paraphrase-split wording.
    assert len(one.essence_prompts) == 2 * (data.config.num_relations - 1)
    assert all(forget[0]["relation"] not in prompt.split() for prompt in one.essence_prompts)
    assert context_prefixes(data, 5) == ["SS"]  # the tiny world writes only the canonical order
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    key = subject_keys(model, data.tokenizer, 0, [SubjectEdit(forget[0]["subject"], [], [], [])], ["SS", "SS"])[0]
    ids = data.tokenizer(forget[0]["prompt"], add_special_tokens=False).input_ids
    with torch.no_grad(), captured_keys(projection(model, 0)) as captured:
        model(input_ids=torch.tensor([ids]))
    assert torch.allclose(key, captured[0][0, 1].double(), atol=1e-6)  # "SS <subject> ...": the subject is token 1
    # Keyed at the prompt's last token: one edit per fact, its key read where the object is predicted.
    two = forget.select([0, 1])  # two facts of one subject
    assert two[0]["subject_id"] == two[1]["subject_id"]
    by_fact = subject_edits(two, data, "last")
    assert [edit.fact_ids for edit in by_fact] == [[two[0]["fact_id"]], [two[1]["fact_id"]]]
    assert all(
        edit.token == "last" and len(edit.essence_prompts) == 2 * (data.config.num_relations - 2) for edit in by_fact
    )
    last_key = subject_keys(model, data.tokenizer, 0, by_fact[:1], ["SS"])[0]
    assert torch.allclose(last_key, captured[0][0, len(ids) - 1].double(), atol=1e-6)


def test_null_space_projector_projects_onto_the_small_eigenvalues():
    generator = torch.Generator().manual_seed(0)
    basis = torch.linalg.qr(torch.randn(6, 6, generator=generator, dtype=torch.float64))[0]
    covariance = basis @ torch.diag(torch.tensor([5.0, 2.0, 1.0, 1e-3, 1e-4, 0.0], dtype=torch.float64)) @ basis.T
    projector = null_space_projector(covariance, 1e-2)
    assert torch.allclose(projector @ projector, projector, atol=1e-10)
    assert round(torch.trace(projector).item()) == 3
    assert torch.allclose(projector @ basis[:, :3], torch.zeros(6, 3, dtype=torch.float64), atol=1e-10)


def test_facts_per_subject_keeps_a_seeded_choice_per_subject():
    subjects = [3, 3, 3, 5, 5, 7]
    kept = facts_per_subject(subjects, 1, seed=0)
    assert sorted(np.asarray(subjects)[kept]) == [3, 5, 7] and list(kept) == sorted(kept)
    assert list(facts_per_subject(subjects, 2, seed=0)) == list(facts_per_subject(subjects, 2, seed=0))
    assert len(facts_per_subject(subjects, 2, seed=0)) == 5


@pytest.mark.parametrize("method", ["rome", "memit", "alphaedit"])
def test_every_editor_config_parses(method, tmp_path):
    argv = ["--config", str(CONFIGS / f"{method}.yaml"), "--model", "m", "--dataset", "tiny", "--output", "o"]
    assert requested_method(argv) == method
    (args,) = parse_dataclasses((EditorArguments,), argv, prog="behemoth edit")
    assert args.method == method and args.seed == 0


def test_edit_dispatch_and_layer_defaults(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("method: memit\n")
    assert requested_method(["--method", "rome"]) == "rome"
    assert requested_method(["--config", str(config)]) == "memit"
    assert requested_method(["--config", str(config), "--method", "rome", "--set", "method=alphaedit"]) == "alphaedit"
    assert requested_method(["--model", "m"]) is None  # the fine-tuning edit stays the default
    assert default_layers("rome", 2) == [0] and default_layers("memit", 2) == [0]
    assert default_layers("rome", 6) == [1] and default_layers("memit", 6) == [0, 1, 2]


def test_bad_arguments_fail_before_any_work(tiny_model, tmp_path, capsys):
    argv = ["edit", "--method", "rome", "--model", tiny_model, "--dataset", "tiny", "--output", str(tmp_path / "o")]
    assert main([*argv, "--layers", "0-1"]) == 2
    assert "ROME edits exactly one layer" in capsys.readouterr().err
    assert main([*argv, "--layers", "5"]) == 2
    assert "`layers` '5' must name layers in [0, 1]" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    with pytest.raises(ValueError, match="`value_steps` must be >= 1"):
        EditorArguments(model="m", dataset="d", output_dir="o", value_steps=0)
    with pytest.raises(ValueError, match="`facts_per_subject` must be >= 1"):
        EditorArguments(model="m", dataset="d", output_dir="o", facts_per_subject=0)
    with pytest.raises(ValueError, match=r"`edit_token` must be one of \['subject_last', 'last'\]"):
        EditorArguments(model="m", dataset="d", output_dir="o", edit_token="first")
    with pytest.raises(ValueError, match="`method` must be one of"):
        EditorArguments(model="m", dataset="d", output_dir="o", method="mend")


def test_trace_finds_the_subject_in_layer_zero_and_writes_json_and_plot(tiny_model, tmp_path):
    output = tmp_path / "trace"
    argv = ["trace", "--model", tiny_model, "--dataset", "tiny", "--output", str(output), "--num_facts", "6"]
    assert main([*argv, "--noise_samples", "4"]) == 0
    results = json.loads((output / "trace.json").read_text())
    assert (output / "trace.png").stat().st_size > 0
    assert results["clean_probability"] > results["corrupted_probability"]
    mlp = np.array(results["mlp_effect"], dtype=float)
    subject_last = CATEGORIES.index("subject last token")
    # In a 2-layer model only layer 0's MLP at the subject can reach the answer (through layer 1's attention).
    assert mlp[1, subject_last] == pytest.approx(0.0, abs=1e-6) and mlp[0, subject_last] > 0
    assert results["suggested_rome_layer"] == 0


def test_position_categories():
    # "SS A B ek RR x OO": subject A B at 1..2
    assert [CATEGORIES[c] for c in position_categories(7, 1, 2)] == [
        "before subject",
        "subject (not last)",
        "subject last token",
        "first after subject",
        "further tokens",
        "further tokens",
        "last token",
    ]


@pytest.mark.slow
def test_edits_of_the_small_model_of_the_default_world(tmp_path):
    """Issue 15 on `small`/`default`, changing only the chosen layer. A single ROME edit lands (reliability 1.0,
    locality 1.0). Batched, one fact of each of the 40 forget subjects, keyed at the subject's last token as the
    papers do, ROME, MEMIT and AlphaEdit all land 23 of 40 (0.575): the other facts' objects do not flow through the
    subject's layer-0 MLP output in this 2-layer model (no value there brings their new target's NLL below ~1.5,
    whatever the decay or clamp); locality stays 1.0 for ROME and MEMIT and >= 0.98 for AlphaEdit. Keyed at the
    prompt's last token in layer 1 (`--edit_token last`, EasyEdit's `fact_token: last`), where this model reads
    the object, batched ROME and MEMIT reach >= 0.9, and AlphaEdit keeps more of the other facts than MEMIT."""
    assert main(["generate", "--config", "default", "--output", str(tmp_path / "data"), "--quiet"]) == 0
    pretrain = ["pretrain", "--config", str(CONFIGS / "pretrain_small.yaml"), "--dataset", str(tmp_path / "data")]
    assert main([*pretrain, "--output", str(tmp_path / "model")]) == 0
    data = open_dataset(str(tmp_path / "data"))
    base = AutoModelForCausalLM.from_pretrained(tmp_path / "model")
    common = ["--model", str(tmp_path / "model"), "--dataset", str(tmp_path / "data")]
    runs = {
        "rome-single": ["--method", "rome", "--num_edits", "1"],
        "rome": ["--method", "rome", "--facts_per_subject", "1"],
        "memit": ["--method", "memit", "--facts_per_subject", "1"],
        "alphaedit": ["--method", "alphaedit", "--facts_per_subject", "1"],
        **{
            f"{method}-last": ["--method", method, "--facts_per_subject", "1", "--edit_token", "last", "--layers", "1"]
            for method in ("rome", "memit", "alphaedit")
        },
    }
    quality = {}
    for name, argv in runs.items():
        assert main(["edit", *common, "--output", str(tmp_path / name), *argv]) == 0
        quality[name] = _quality(tmp_path / name, base, data)
        state = AutoModelForCausalLM.from_pretrained(tmp_path / name).state_dict()
        changed = [key for key, tensor in base.state_dict().items() if not torch.equal(tensor, state[key])]
        layer = 1 if name.endswith("-last") else 0
        assert changed == [f"gpt_neox.layers.{layer}.mlp.dense_4h_to_h.weight"], name
    assert quality["rome-single"] == (1.0, 1.0)
    for name in ("rome", "memit", "alphaedit"):
        assert quality[name][0] >= 0.55, (name, quality[name])
    assert quality["rome"][1] >= 0.99 and quality["memit"][1] >= 0.99 and quality["alphaedit"][1] >= 0.98
    assert quality["rome-last"][0] >= 0.9 and quality["memit-last"][0] >= 0.9, quality
    assert quality["alphaedit-last"][1] >= quality["memit-last"][1], quality

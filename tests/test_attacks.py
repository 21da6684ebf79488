"""Robustness attacks at `tiny` scale: each moves a gradient-ascent-unlearned model's forget accuracy the way
results/README.md documents, and leaves the retain oracle (which never saw the facts) near chance."""

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from behemoth_hf.attacks.quantize import quantize_model, quantize_tensor, quantized_layers, write_quantized
from behemoth_hf.attacks.relearn import RELEARN_DATA, RelearnArguments, relearn_split, run_relearn
from behemoth_hf.cli import main
from behemoth_hf.config import make_config
from behemoth_hf.data import open_dataset
from behemoth_hf.generate import generate_dataset
from behemoth_hf.modeling import build_model
from behemoth_hf.probes import GREEDY_TEMPLATES, probe_metric_names, run_probes
from behemoth_hf.render import TEMPLATE_NAMES
from behemoth_hf.unlearn import UnlearningArguments
from behemoth_hf.unlearn.run import run_unlearning


CONFIGS = Path(__file__).parents[1] / "trainer_configs"
ORACLE_CEILING = 0.3  # tiny: 10 objects per relation (chance 0.1), 30 forget facts


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Tiny world with a quarter of the subjects to forget (30 facts), its model, oracle and unlearned models."""
    root = tmp_path_factory.mktemp("attacks")
    data = root / "data"
    generate_dataset(make_config("tiny", forget_fraction=0.25), data, progress=False)
    for name, extra in (("model", []), ("oracle", ["--exclude_split", "forget"])):
        argv = ["pretrain", "--config", str(CONFIGS / "pretrain_tiny.yaml"), "--dataset", str(data)]
        assert main([*argv, "--output", str(root / name), *extra]) == 0
    write_quantized(root / "model", root / "model-int4", bits=4, group_size=128)

    def gradient_ascent(start: str, output: str, epochs: int, blocks: str = "all", learning_rate: float = 3e-4) -> str:
        run_unlearning(
            UnlearningArguments(
                model=str(root / start),
                dataset=str(data),
                output_dir=str(root / output),
                method="gradient_ascent",
                learning_rate=learning_rate,
                num_train_epochs=epochs,
                per_device_train_batch_size=8,
                seed=0,
                trainable_blocks=blocks,
            )
        )
        return str(root / output)

    return {
        "root": root,
        "data": str(data),
        "model": str(root / "model"),
        "oracle": str(root / "oracle"),
        "ga": gradient_ascent("model", "ga", 5),
        # Only the quantized linear layers train, so everything the update moves (biases aside) lies on the
        # 4-bit grid; 16 Adam steps of 2e-4 move a weight by at most ~3e-3, about half the grid's typical half
        # step (~6.5e-3 at group size 128), while forgetting most facts (measured with the <eos> tiny recipe:
        # forget accuracy 0.33, back to 1.0 after re-quantization; 3e-4 crosses the half step and loses it).
        "ga_from_int4": gradient_ascent("model-int4", "ga-from-int4", 4, blocks="mlp+attention", learning_rate=2e-4),
    }


# ----------------------------------------------------------------------------------------------- quantization
def test_rtn_rounds_each_group_onto_its_own_symmetric_grid():
    weight = torch.randn(6, 40, generator=torch.Generator().manual_seed(0))
    rounded = quantize_tensor(weight, bits=4, group_size=16)  # groups of 16, 16 and a short one of 8
    for start, stop in ((0, 16), (16, 32), (32, 40)):
        group, original = rounded[:, start:stop], weight[:, start:stop]
        scale = original.abs().amax(dim=1, keepdim=True) / 7
        steps = group / scale
        assert torch.allclose(steps, steps.round(), atol=1e-4) and steps.abs().max() <= 7 + 1e-4
        assert ((group - original).abs() <= scale / 2 + 1e-6).all()
    per_channel = quantize_tensor(weight, bits=8, group_size=None)
    assert (per_channel - weight).abs().max() < (rounded - weight).abs().max() / 8


@pytest.mark.parametrize("preset", ["tiny", "tiny-gpt2"])
def test_quantize_model_rounds_every_linear_layer_but_the_output_embedding(preset):
    model = build_model(preset, vocab_size=50, eos_token_id=0, pad_token_id=1, seed=0)
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    record = quantize_model(model, bits=4, group_size=32)
    after = model.state_dict()
    rounded = {f"{name}.weight" for name, _ in quantized_layers(model)}
    assert rounded and len(record["layers"]) == len(rounded)
    for name, tensor in after.items():
        assert torch.equal(before[name], tensor) != (name in rounded), name
    with pytest.raises(ValueError, match="`bits` must be one of"):
        quantize_model(model, bits=1)


def test_quantization_restores_facts_unlearned_from_a_quantized_checkpoint(world, tmp_path):
    # Documented direction: unlearning a 4-bit checkpoint moves weights by less than half a step, so
    # re-quantizing snaps them back and the facts return; from a full-precision checkpoint RTN is unbiased
    # and 8-bit keeps the unlearned model as it is. The oracle stays near chance either way.
    # The pretrained model differs with the CPU thread count (LayerNorm's backward sums its weight
    # gradients in per-thread chunks; Adam amplifies the last bit into another model; conftest pins one thread),
    # and how far 16 steps of gradient ascent get varies between such models: with the earlier recipe, on 7 of
    # them forget accuracy fell to 0.37-0.80 and the int4 copy answered 0.97-1.0; with the <eos> recipe and
    # learning rate 2e-4: 0.33 and 1.0 (answer probability 0.44 -> 0.87).
    output = tmp_path / "quantize"
    argv = ["attack", "quantize", "--model", world["ga_from_int4"], world["ga"], "--oracle", world["oracle"]]
    assert main([*argv, "--dataset", world["data"], "--output", str(output), "--bits", "8", "4"]) == 0
    table = json.loads((output / "quantize.json").read_text())["models"]
    from_int4, from_float, oracle = table["ga-from-int4"], table["ga"], table["oracle"]
    assert from_int4["full"]["forget_accuracy"] <= 0.85, from_int4  # at least 5 of the 30 facts forgotten
    assert from_int4["int4"]["forget_accuracy"] >= 0.9, from_int4  # back near the pretrained model's 1.0
    assert from_int4["int4"]["forget_Q_A_Prob"] >= from_int4["full"]["forget_Q_A_Prob"] + 0.15, from_int4
    assert abs(from_float["int8"]["forget_accuracy"] - from_float["full"]["forget_accuracy"]) <= 0.05, from_float
    assert all(oracle[setting]["forget_accuracy"] <= ORACLE_CEILING for setting in ("full", "int8", "int4"))
    assert oracle["int4"]["retain_accuracy"] >= 0.9
    record = json.loads((output / "models" / "ga-int4" / "quantization_record.json").read_text())
    assert record["bits"] == 4 and record["group_size"] == 128 and record["source_model"] == world["ga"]
    from huggingface_hub import ModelCard

    card = ModelCard.load(output / "models" / "ga-int4" / "README.md")
    assert "rtn-int4" in card.data.tags and "gradient_ascent" in card.data.tags and card.data.base_model == "ga"
    assert (output / "evaluation" / "report.md").exists() and "| `oracle` | int4 |" in (
        output / "quantize.md"
    ).read_text()


# ----------------------------------------------------------------------------------------------- relearning
def test_relearning_sets_never_show_the_facts_they_score(world):
    data = open_dataset(world["data"])
    forget_ids = set(data.fact_splits["forget"]["fact_id"])
    for kind in RELEARN_DATA:
        relearn, scored = relearn_split(data, kind, forget_fraction=0.3, seed=0)
        assert set(scored["fact_id"]) <= forget_ids and not set(relearn["fact_id"]) & set(scored["fact_id"]), kind
    relearn, scored = relearn_split(data, "subject", 0.3, 0)
    assert set(relearn["subject_id"]) == set(scored["subject_id"]) and set(relearn["relation_id"]) == {0}
    assert 0 not in set(scored["relation_id"])
    with pytest.raises(ValueError, match="`relearn_data` must list values from"):
        RelearnArguments(model=[world["ga"]], dataset=world["data"], output_dir="unused", relearn_data=["all"])


def test_relearning_brings_unlearned_facts_back_but_teaches_the_oracle_nothing(world, tmp_path):
    args = RelearnArguments(
        model=[world["ga"]],
        oracle=world["oracle"],
        dataset=world["data"],
        output_dir=str(tmp_path / "relearn"),
        forget_fraction=0.3,
        max_steps=30,
        eval_steps=10,
        learning_rate=3e-4,
        batch_size=8,
    )
    curves = run_relearn(args)["curves"]
    unlearned, oracle = curves["ga"], curves["oracle"]
    assert unlearned["retain"]["forget_accuracy"][-1] >= unlearned["retain"]["forget_accuracy"][0] + 0.3
    assert unlearned["forget"]["forget_accuracy"][-1] >= unlearned["forget"]["forget_accuracy"][0] + 0.3
    assert unlearned["subject"]["forget_accuracy"][-1] > unlearned["subject"]["forget_accuracy"][0]
    for kind, curve in oracle.items():
        assert curve["step"] == [0, 10, 20, 30] and max(curve["forget_accuracy"]) <= ORACLE_CEILING, kind
    assert (tmp_path / "relearn" / "relearn.png").exists() and "| `oracle` | subject, step 30 |" in (
        tmp_path / "relearn" / "relearn.md"
    ).read_text()


# ----------------------------------------------------------------------------------------------- probes
def test_probes_ask_every_template_and_find_unlearning_carries_over_formats(world):
    data = open_dataset(world["data"])
    results = {
        name: run_probes(AutoModelForCausalLM.from_pretrained(world[name]), data) for name in ("model", "ga", "oracle")
    }
    names = set(results["model"])
    assert names == {n for n in probe_metric_names() if not n.startswith("dependent_")}  # tiny has no dependents
    assert {n.split("_")[1] for n in names} == set(TEMPLATE_NAMES)
    assert (
        all(f"forget_{t}_greedy_accuracy" in names for t in GREEDY_TEMPLATES)
        and "forget_osr_greedy_accuracy" not in names
    )
    accuracy = {model: {name: float(values.mean()) for name, (values, _) in r.items()} for model, r in results.items()}
    assert (
        accuracy["model"]["forget_sro_greedy_accuracy"] == 1.0
        and accuracy["model"]["forget_sro_choice_accuracy"] == 1.0
    )
    chance = 1 / data.config.num_objects
    # Documented direction: unlearning through the canonical prompt lowers every format the model had learnt.
    for name, pretrained in accuracy["model"].items():
        if name.startswith("forget_") and pretrained > 2 * chance:
            assert accuracy["ga"][name] < pretrained, name
        if name.startswith("forget_"):
            assert accuracy["oracle"][name] <= ORACLE_CEILING, name
    fact_ids = results["ga"]["retain_sro_choice_accuracy"][1]
    assert len(fact_ids) == len(data.fact_splits["forget"]) and set(fact_ids) <= set(
        data.fact_splits["retain"]["fact_id"]
    )


def test_evaluate_with_probes_reports_them_per_split(world, tmp_path):
    output = tmp_path / "evaluation"
    argv = [
        "evaluate",
        "--model",
        world["ga"],
        "--dataset",
        world["data"],
        "--output",
        str(output),
        "--probes",
        "true",
    ]
    assert main(argv) == 0
    summary = json.loads((output / "ga" / "BEHEMOTH_SUMMARY.json").read_text())
    assert 0 <= summary["forget_qa_choice_accuracy"] <= 1
    report = (output / "report.md").read_text()
    assert (
        "## Format and phrasing probes" in report and "| sor choice |" in report and (output / "probes.png").exists()
    )


# ----------------------------------------------------------------------------------------------- sequential
def test_sequential_requests_unlearn_in_turn_and_compare_with_one_shot(world, tmp_path):
    output = tmp_path / "sequential"
    argv = ["sequential", "--model", world["model"], "--dataset", world["data"], "--output", str(output)]
    settings = ["--method", "gradient_ascent", "--learning_rate", "1e-4", "--num_train_epochs", "5"]
    settings += ["--per_device_train_batch_size", "8", "--num_requests", "3", "--oracle", world["oracle"]]
    assert main([*argv, *settings]) == 0
    summary = json.loads((output / "sequential.json").read_text())
    data = open_dataset(world["data"])
    assert sum(summary["request_sizes"]) == len(data.fact_splits["forget"]) and len(summary["curve"]) == 4
    first, after_one, last = summary["curve"][0], summary["curve"][1], summary["curve"][-1]
    assert first["requested_forget_accuracy"] is None and first["pending_forget_accuracy"] == 1.0
    # After one request its facts are forgotten more than the facts nobody asked about yet (12 facts a request:
    # gradient ascent also lowers the pending ones, so the gap is a few facts), and the last request leaves
    # less of the forget set than the first one did.
    assert after_one["requested_forget_accuracy"] < after_one["pending_forget_accuracy"] - 0.1
    assert last["pending_forget_accuracy"] is None and last["forget_accuracy"] < after_one["forget_accuracy"] - 0.2
    assert summary["one_shot"]["forget_accuracy"] < 1.0
    records = [json.loads((output / f"request-{i}" / "unlearning_record.json").read_text()) for i in (1, 2, 3)]
    assert [r["request"] for r in records] == [{"request": i, "num_requests": 3} for i in (1, 2, 3)]
    assert records[1]["model"] == str(output / "request-1")
    assert (output / "sequential.png").exists() and "| one shot |" in (output / "sequential.md").read_text()


@pytest.mark.parametrize(
    "settings, match",
    [
        (["--num_requests", "11"], r"`num_requests` \(11\) exceeds the 10 subjects"),
        (["--num_requests", "2", "--request", "3"], r"`request` must be in \[1, num_requests=2\]"),
        (["--num_requests", "0"], "`num_requests` must be >= 1"),
    ],
)
def test_bad_requests_fail_before_training(world, tmp_path, settings, match):
    argv = ["--model", world["model"], "--dataset", world["data"], "--output", str(tmp_path / "out")]
    args = ["--method", "gradient_ascent", *settings]
    from behemoth_hf.arguments import parse_dataclasses
    from behemoth_hf.sequential import SequentialArguments, run_sequential

    with pytest.raises(ValueError, match=match):
        unlearning, sequential = parse_dataclasses((UnlearningArguments, SequentialArguments), argv + args, "test")
        run_sequential(unlearning, sequential)
    assert not (tmp_path / "out").exists()

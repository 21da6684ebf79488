import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from behemoth_hf.arguments import parse_dataclasses, read_yaml
from behemoth_hf.cli import main
from behemoth_hf.config import make_config
from behemoth_hf.data import open_dataset
from behemoth_hf.generate import generate_dataset
from behemoth_hf.modeling import build_model
from behemoth_hf.pretrain import (
    PACKED_ROW_TOKENS,
    TRACKERS,
    PretrainArguments,
    SentenceBatches,
    pretrain,
    run_identity,
)

TINY_YAML = str(Path(__file__).parents[1] / "trainer_configs" / "pretrain_tiny.yaml")


def _tiny_args(output, **overrides) -> PretrainArguments:
    argv = ["--config", TINY_YAML, "--dataset", "tiny", "--output", str(output)]
    (args,) = parse_dataclasses((PretrainArguments,), argv, prog="test")
    return PretrainArguments(**{**args.__dict__, **overrides})


RECIPES = sorted(Path(TINY_YAML).parent.glob("pretrain_*.yaml")) + sorted(Path(TINY_YAML).parent.glob("oracle_*.yaml"))


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda path: path.stem)
def test_shipped_pretraining_recipes_parse(recipe, tmp_path):
    # Benchmarks and experiments name these files; a wrong key or value would surface only in a long run.
    argv = ["--config", str(recipe), "--output", str(tmp_path)]
    settings = read_yaml(recipe)
    if "dataset" not in settings:
        argv += ["--dataset", "tiny"]
    (args,) = parse_dataclasses((PretrainArguments,), argv, "test")
    assert {name: getattr(args, name) for name in settings} == settings


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    output = tmp_path_factory.mktemp("runs") / "tiny"
    assert main(["pretrain", "--config", TINY_YAML, "--dataset", "tiny", "--output", str(output)]) == 0
    return output


def test_pretrained_model_knows_the_facts_and_loads_with_auto_classes(pretrained):
    record = json.loads((pretrained / "training_record.json").read_text())
    assert record["accuracy"]["forget"] >= 0.9 and record["accuracy"]["retain"] >= 0.9
    assert record["accuracy"]["holdout"] <= 0.5  # never-seen subjects: near chance (0.1)
    assert record["seed"] == 0 and record["dataset_fingerprint"] == make_config("tiny").fingerprint()
    assert not record["oracle"] and record["arguments"]["preset"] == "tiny"

    model = AutoModelForCausalLM.from_pretrained(pretrained)
    tokenizer = AutoTokenizer.from_pretrained(pretrained)
    assert model.config.model_type == "gpt_neox" and model.config.vocab_size == len(tokenizer)
    splits = open_dataset("tiny").fact_splits
    # Greedy decoding with the saved generation config: the answer, then <eos> (a fact ends there, as
    # OpenUnlearning scores it), for the facts of both trained splits.
    assert model.generation_config.eos_token_id == tokenizer.eos_token_id
    for split in ("forget", "retain"):
        rows = splits[split]
        hits = 0
        for prompt, answer in zip(rows["prompt"], rows["answer"]):
            inputs = tokenizer(prompt, return_tensors="pt", return_token_type_ids=False)
            generated = model.generate(**inputs)[0, inputs.input_ids.shape[1] :].tolist()
            hits += generated == tokenizer(f" {answer}", add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
        assert hits / len(rows) >= 0.9, split
    card = (pretrained / "README.md").read_text()
    assert "model-index" in card and "fact accuracy (forget)" in card


def test_oracle_never_learns_the_forget_facts(tmp_path):
    record = pretrain(_tiny_args(tmp_path / "oracle", exclude_split="forget"))
    assert record["oracle"] and record["excluded_split"] == "forget"
    assert record["accuracy"]["retain"] >= 0.9
    assert record["accuracy"]["forget"] <= 0.5  # chance is 1/10
    assert "retain oracle" in (tmp_path / "oracle" / "README.md").read_text()


def test_killed_and_resumed_run_ends_like_an_uninterrupted_one(tmp_path):
    straight = pretrain(_tiny_args(tmp_path / "straight", save_steps=10))

    def kill_at_step_25(step):
        if step == 25:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pretrain(_tiny_args(tmp_path / "resumed", save_steps=10), on_step_end=kill_at_step_25)
    assert not (tmp_path / "resumed" / "training_record.json").exists()
    resumed = pretrain(_tiny_args(tmp_path / "resumed", save_steps=10, resume=True))
    assert resumed["steps"] == straight["steps"] and resumed["accuracy"] == straight["accuracy"]
    first = AutoModelForCausalLM.from_pretrained(tmp_path / "straight").state_dict()
    second = AutoModelForCausalLM.from_pretrained(tmp_path / "resumed").state_dict()
    assert all(torch.allclose(first[name], second[name], atol=1e-6) for name in first)


def test_resume_refuses_another_run_and_finished_outputs_are_kept(tmp_path):
    def stop(step):
        if step == 20:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pretrain(_tiny_args(tmp_path / "run"), on_step_end=stop)
    with pytest.raises(ValueError, match="belongs to another run"):
        pretrain(_tiny_args(tmp_path / "run", learning_rate=1e-3, resume=True))
    with pytest.raises(FileExistsError, match="holds an unfinished run; pass --resume"):
        pretrain(_tiny_args(tmp_path / "run"))
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        pretrain(_tiny_args(tmp_path / "empty", resume=True))


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"preset": "huge"}, r"`preset` must be one of \['tiny', 'small'"),
        ({"exclude_split": "train"}, r"`exclude_split` must be one of \['forget', 'retain', 'dependent'\]"),
        ({"batch_size": 0}, r"`batch_size` must be >= 1"),
        ({"target_accuracy": 1.5}, r"`target_accuracy` must be in \(0, 1\]"),
    ],
)
def test_bad_arguments_fail_at_construction(tmp_path, overrides, match):
    with pytest.raises(ValueError, match=match):
        _tiny_args(tmp_path / "x", **overrides)


def test_bad_dataset_and_tokenizer_mismatch(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither a folder written by `behemoth generate`"):
        open_dataset(str(tmp_path / "nowhere"))
    other = generate_dataset(make_config("tiny", seed=5, repeats=1), tmp_path / "other", progress=False)
    with pytest.raises(ValueError, match="tokenizer mismatch"):
        open_dataset("tiny", tokenizer_path=str(other / "tokenizer"))
    assert main(["pretrain", "--dataset", str(tmp_path / "nowhere"), "--output", str(tmp_path / "o")]) == 2
    assert not (tmp_path / "o").exists()


def test_yaml_flags_and_set_precedence(tmp_path):
    argv = ["--config", TINY_YAML, "--dataset", "tiny", "--output", "x", "--batch-size", "8", "--set", "seed=3"]
    (args,) = parse_dataclasses((PretrainArguments,), argv, prog="test")
    assert (args.preset, args.batch_size, args.seed, args.target_accuracy) == ("tiny", 8, 3, None)
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("preset: tiny\nlearning_rat: 0.1\n")
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['learning_rat'\]"):
        parse_dataclasses((PretrainArguments,), ["--config", str(bad_yaml), "--dataset", "tiny", "--output", "x"], "t")
    with pytest.raises(ValueError, match="unknown parameter in --set 'lr=1'"):
        parse_dataclasses((PretrainArguments,), ["--dataset", "tiny", "--output", "x", "--set", "lr=1"], "t")


def test_unset_mixed_precision_is_the_launchers(monkeypatch):
    # `accelerate launch --config_file trainer_configs/accelerate/ddp_gpu.yaml` says bf16 through this variable. The
    # pretrain arguments used to hand the Accelerator an explicit `no`, which overrode it; the Trainer commands took
    # it. A value of the run's own still wins.
    argv = ["--config", TINY_YAML, "--dataset", "tiny", "--output", "x"]
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    (launched,) = parse_dataclasses((PretrainArguments,), argv, prog="test")
    (explicit,) = parse_dataclasses((PretrainArguments,), [*argv, "--set", "mixed_precision=no"], prog="test")
    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION")
    (alone,) = parse_dataclasses((PretrainArguments,), argv, prog="test")
    assert (launched.mixed_precision, explicit.mixed_precision, alone.mixed_precision) == ("bf16", "no", "no")
    assert launched.run_fingerprint("f") != alone.run_fingerprint("f")  # another run: not resumed across precisions


def test_answer_loss_labels_the_object_wherever_it_stands_and_the_end_that_follows_it(tmp_path):
    config = make_config("tiny", paraphrase_fraction=1.0, repeats=1, num_objects=1200, num_perturbed=3)
    data = open_dataset(str(generate_dataset(config, tmp_path / "d", progress=False)))
    batch = next(iter(SentenceBatches(data, micro_batch_size=64, loss="answer", skip_rows=0, excluded=None)))
    tokenizer = data.tokenizer
    eos = tokenizer.eos_token
    table = next(data.train_tables(["text"]))
    ends_with_object = 0
    for i, text in enumerate(table.column("text").to_pylist()[:64]):
        words = text.split()
        assert words[-1] == "."
        # The model reads the closing "." as <eos>.
        row = batch["input_ids"][i][batch["attention_mask"][i] == 1].tolist()
        assert tokenizer.convert_ids_to_tokens(row) == words[:-1] + [eos], text
        object_start = words.index("OO") + 1
        object_words = words[object_start : object_start + 2]  # 1,200 objects: two-word names
        last = object_start + 2 == len(words) - 1  # sro, rso, qa: the fact ends with its object
        ends_with_object += last
        labelled = batch["labels"][i][batch["labels"][i] != -100].tolist()
        assert tokenizer.convert_ids_to_tokens(labelled) == object_words + [eos] * last, text
    assert 0 < ends_with_object < 64  # both kinds of sentence were checked
    all_tokens = next(iter(SentenceBatches(data, micro_batch_size=4, loss="all", skip_rows=0, excluded=None)))
    assert (all_tokens["labels"][all_tokens["attention_mask"] == 1] != -100).all()
    assert np.array_equal(
        all_tokens["labels"][0][: len(table["text"][0].as_py().split())].numpy(),
        all_tokens["input_ids"][0][: len(table["text"][0].as_py().split())].numpy(),
    )


@pytest.mark.parametrize("preset", ["tiny", "tiny-gpt2", "tiny-llama"])
def test_packed_rows_are_the_same_sentences_labels_and_loss(preset):
    data = open_dataset("tiny")
    tokenizer = data.tokenizer
    plain = next(iter(SentenceBatches(data, micro_batch_size=32, loss="all", skip_rows=0, excluded=None)))
    packed = next(iter(SentenceBatches(data, 32, "all", 0, None, packing="sentences")))
    assert packed["input_ids"].shape[0] < 32 and packed["input_ids"].shape[1] <= PACKED_ROW_TOKENS
    assert "attention_mask" not in packed  # transformers builds the block-diagonal mask from the position ids
    labelled = (plain["labels"][:, 1:] != -100).sum()
    assert (packed["labels"][:, 1:] != -100).sum() == labelled
    model = build_model(preset, len(tokenizer), eos_token_id=tokenizer.eos_token_id, pad_token_id=0, seed=0)
    with torch.no_grad():
        plain_out = model(**plain, use_cache=False, num_items_in_batch=labelled)
        packed_out = model(**packed, use_cache=False, num_items_in_batch=labelled)
    assert torch.allclose(plain_out.loss, packed_out.loss, atol=1e-5)
    # Each sentence's logits are those it has alone: it attends to nothing before it in the row.
    row, position = 0, 0
    for i, length in enumerate(plain["attention_mask"].sum(dim=1).tolist()):
        if position + length > packed["input_ids"].shape[1] or packed["position_ids"][row, position] != 0:
            row, position = row + 1, 0
        assert (
            packed["input_ids"][row, position : position + length].tolist() == plain["input_ids"][i, :length].tolist()
        )
        got = packed_out.logits[row, position : position + length]
        assert torch.allclose(got, plain_out.logits[i, :length], atol=1e-4), (preset, i)
        position += length


def test_packing_and_workers_train_like_the_plain_run(tmp_path):
    short = {"max_steps": 12, "eval_steps": 4, "logging_steps": 4}
    plain = pretrain(_tiny_args(tmp_path / "plain", **short))
    packed = pretrain(_tiny_args(tmp_path / "packed", packing="sentences", dataloader_num_workers=2, **short))
    for a, b in zip(plain["history"], packed["history"], strict=True):
        assert a["step"] == b["step"] and a["loss"] == pytest.approx(b["loss"], rel=1e-4)
    assert packed["sentences_seen"] == plain["sentences_seen"] == 12 * 32


def test_more_updates_than_one_pass_are_refused_before_any_write(tmp_path):
    # A pass is the world's exposure design (`repeats`); silently stopping at its end read as a finished run.
    with pytest.raises(
        ValueError, match=r"`max_steps` 100000 is more than one pass over `train` \((\d+) updates.*--set repeats="
    ):
        pretrain(_tiny_args(tmp_path / "long", max_steps=100_000))
    assert not (tmp_path / "long").exists()


def test_bf16_autocast_runs_on_cpu_and_fp16_is_refused_there(tmp_path):
    record = pretrain(_tiny_args(tmp_path / "bf16", mixed_precision="bf16", max_steps=8, eval_steps=4))
    assert record["steps"] == 8 and all(np.isfinite(h["loss"]) for h in record["history"])
    assert AutoModelForCausalLM.from_pretrained(tmp_path / "bf16").dtype == torch.float32  # weights stay fp32
    with pytest.raises(ValueError, match="`mixed_precision` fp16 needs a GPU"):
        pretrain(_tiny_args(tmp_path / "fp16", mixed_precision="fp16"))
    assert not (tmp_path / "fp16").exists()


def test_tensorboard_gets_the_metric_names_of_the_trainer_commands(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    record = pretrain(
        _tiny_args(tmp_path / "run", report_to="tensorboard", max_steps=6, logging_steps=2, eval_steps=3)
    )
    (events,) = (tmp_path / "run" / "runs" / "behemoth_pretrain").glob("events.out.tfevents.*")
    scalars = EventAccumulator(str(events)).Reload().Tags()["scalars"]
    assert {"train/loss", "train/learning_rate", "train/grad_norm", "train/epoch", "eval/sample_accuracy"} <= set(
        scalars
    )
    accumulator = EventAccumulator(str(events)).Reload()
    assert [event.step for event in accumulator.Scalars("train/loss")] == [2, 4, 6]
    accuracy = [(event.step, event.value) for event in accumulator.Scalars("eval/sample_accuracy")]
    assert accuracy == [(h["step"], pytest.approx(h["sample_accuracy"])) for h in record["history"]]


def test_bad_new_options_fail_at_construction(tmp_path):
    argv = [
        "--dataset",
        "tiny",
        "--output",
        "x",
        "--packing",
        "sentences",
        "--set",
        "packing=none",
        "--set",
        "report_to=none",
    ]
    (args,) = parse_dataclasses((PretrainArguments,), argv, prog="test")
    assert (args.packing, args.report_to) == ("none", "none")  # the word none, not None
    with pytest.raises(ValueError, match=r"`report_to` must be one of \['none', 'tensorboard', 'wandb', 'trackio'\]"):
        _tiny_args(tmp_path / "x", report_to="mlflow")
    with pytest.raises(ValueError, match="`packing` must be none or sentences"):
        _tiny_args(tmp_path / "x", packing="documents")
    with pytest.raises(ValueError, match="`dataloader_num_workers` must be >= 0"):
        _tiny_args(tmp_path / "x", dataloader_num_workers=-1)
    missing = next((name for name in ("wandb", "trackio") if not TRACKERS[name]()), None)
    if missing is not None:
        with pytest.raises(ValueError, match=f"needs the {missing} package: pip install {missing}"):
            _tiny_args(tmp_path / "x", report_to=missing)


def test_options_added_later_leave_older_runs_their_identity():
    # A model trained before `packing`/`torch_compile` existed keeps its identity while they are off (reused by
    # quickstart/experiment, resumable), and switching either on makes another run.
    arguments = dataclasses.asdict(PretrainArguments(dataset="tiny", output_dir="/tmp/x"))
    older = {name: value for name, value in arguments.items() if name not in ("packing", "torch_compile")}
    assert run_identity(older, "f") == run_identity(arguments, "f")
    assert run_identity({**arguments, "packing": "sentences"}, "f") != run_identity(arguments, "f")
    assert run_identity({**arguments, "torch_compile": True}, "f") != run_identity(arguments, "f")

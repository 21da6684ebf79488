"""Pretraining on several processes is the science of one process: same global batch, same sentences, same updates."""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch
from accelerate.commands.config.config_args import load_config_from_file
from accelerate.utils import DistributedType
from torch.utils.data import DataLoader
from transformers import AutoModelForCausalLM, AutoTokenizer

from behemoth_hf.arguments import parse_dataclasses
from behemoth_hf.data import open_dataset
from behemoth_hf.pretrain import PretrainArguments, SentenceBatches, pretrain
from behemoth_hf.scoring import score_answers

REPO = Path(__file__).parents[1]
TINY_YAML = str(REPO / "trainer_configs" / "pretrain_tiny.yaml")
ACCELERATE_CONFIGS = REPO / "trainer_configs" / "accelerate"
# Stop at 95% on a sample measured every 5 updates: the 1-process run needs ~150 updates on the tiny world.
TARGET = ["--set", "target_accuracy=0.95", "--set", "eval_steps=5"]


def _launch(config: str, argv: list[str], cwd: Path, log) -> subprocess.Popen:
    """Start `accelerate launch --config_file trainer_configs/accelerate/<config>` of `behemoth pretrain`, on CPU,
    its output going to the file `log` (a pipe would fill up and stall it)."""
    environment = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(ACCELERATE_CONFIGS / config)]
    command += ["-m", "behemoth_hf.cli", "pretrain", *argv]
    return subprocess.Popen(command, cwd=cwd, env=environment, stdout=subprocess.DEVNULL, stderr=log)


def test_two_processes_with_the_same_global_batch_learn_like_one(tmp_path):
    argv = ["--config", TINY_YAML, "--dataset", "tiny", *TARGET]
    # Two processes, each accumulating two micro-batches of 8: still 32 sentences per update (started first: the
    # one-process run goes on meanwhile).
    two_argv = [*argv, "--output", str(tmp_path / "two"), "--set", "gradient_accumulation_steps=2"]
    with tempfile.TemporaryFile("w+") as log:
        launched = _launch("ddp_cpu.yaml", two_argv, tmp_path, log)
        try:
            (args,) = parse_dataclasses((PretrainArguments,), [*argv, "--output", str(tmp_path / "one")], prog="test")
            one = pretrain(args)
            launched.wait(timeout=600)
        finally:
            launched.kill()
        log.seek(0)
        assert launched.returncode == 0, log.read()[-3000:]
    two = json.loads((tmp_path / "two" / "training_record.json").read_text())

    assert two["num_processes"] == 2 and two["arguments"]["batch_size"] == one["arguments"]["batch_size"] == 32
    assert one["stopped_early"] and two["stopped_early"]
    assert abs(two["steps"] - one["steps"]) <= 0.1 * one["steps"], (one["steps"], two["steps"])
    assert two["history"][-1]["sample_accuracy"] >= 0.95
    assert two["sentences_seen"] == one["sentences_seen"] == one["steps"] * 32
    # The early updates see the same sentences with the same loss normalisation: the same loss.
    assert two["history"][0]["loss"] == pytest.approx(one["history"][0]["loss"], rel=1e-3)

    model = AutoModelForCausalLM.from_pretrained(tmp_path / "two")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "two")
    forget = open_dataset("tiny").fact_splits["forget"]
    assert score_answers(model, tokenizer, forget["prompt"], forget["answer"]).accuracy >= 0.9
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one", "two"]  # no staging folder or lock left


def _rows(batch: dict[str, torch.Tensor]) -> list[tuple[int, ...]]:
    return [tuple(row[mask == 1].tolist()) for row, mask in zip(batch["input_ids"], batch["attention_mask"])]


def test_processes_and_workers_share_the_corpus_each_sentence_once_in_order():
    data = open_dataset("tiny")
    # 28 sentences per update in micro-batches of 7 (2 processes x 2 accumulation steps): the corpus does not
    # fill the last update, whose missing micro-batches become fillers.
    reference = [row for batch in SentenceBatches(data, 28, "answer", 0, None) for row in _rows(batch)]
    assert len(reference) == data.num_train_rows and len(reference) % 28
    shares = []
    for rank in range(2):
        batches = SentenceBatches(
            data, 7, "answer", 0, None, num_processes=2, process_index=rank, accumulation_steps=2
        )
        shares.append(list(DataLoader(batches, batch_size=None, num_workers=2)))
    assert len(shares[0]) == len(shares[1]) and len(shares[0]) % 2 == 0  # every process runs the same steps
    interleaved = []
    for first, second in zip(*shares):
        interleaved += [first, second]  # micro-batch i of an update goes to process i % 2
    filler = [bool((batch["labels"] == -100).all()) for batch in interleaved]
    assert any(filler) and all(batch["input_ids"].shape == (1, 1) for batch, f in zip(interleaved, filler) if f)
    assert [row for batch, f in zip(interleaved, filler) if not f for row in _rows(batch)] == reference


def test_a_global_batch_the_processes_cannot_share_evenly_is_refused_before_any_work(tmp_path):
    args = PretrainArguments(
        dataset="tiny", output_dir=str(tmp_path / "x"), batch_size=32, gradient_accumulation_steps=4
    )
    assert args.micro_batch_size(1) == 8 and args.micro_batch_size(2) == 4
    with pytest.raises(ValueError, match=r"`batch_size` 32 \(the global batch\) must be a multiple of .* \(3\) times"):
        args.micro_batch_size(3)
    with pytest.raises(ValueError, match=r"`batch_size` 30 \(the global batch\)"):
        pretrain(
            PretrainArguments(
                dataset="tiny", output_dir=str(tmp_path / "x"), batch_size=30, gradient_accumulation_steps=4
            )
        )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "name, kind",
    [
        ("ddp_cpu.yaml", DistributedType.MULTI_GPU),
        ("ddp_gpu.yaml", DistributedType.MULTI_GPU),
        ("fsdp.yaml", DistributedType.FSDP),
        ("deepspeed_zero2.yaml", DistributedType.DEEPSPEED),
    ],
)
def test_accelerate_config_files_load_with_accelerates_own_loader(name, kind):
    config = load_config_from_file(str(ACCELERATE_CONFIGS / name))
    assert config.distributed_type == kind and config.num_machines == 1 and config.num_processes >= 2
    if name == "fsdp.yaml":
        assert config.fsdp_config["fsdp_transformer_layer_cls_to_wrap"] == "GPTNeoXLayer"
    if name == "deepspeed_zero2.yaml":
        assert config.deepspeed_config["zero_stage"] == 2
    assert config.use_cpu == (name == "ddp_cpu.yaml")

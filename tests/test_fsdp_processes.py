"""Training under FSDP (2 CPU processes, accelerate's own FSDP2 engine through tests/fsdp_on_cpu.py) saves one whole
model, under the tensor names a 1-process run writes, that knows what a 1-process run's model knows; relearning
scores the sharded model as one process scores the whole one."""

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from behemoth_hf.cli import main
from behemoth_hf.data import open_dataset
from behemoth_hf.scoring import score_answers


REPO = Path(__file__).parents[1]
CONFIGS = REPO / "trainer_configs"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _launch_fsdp(argv: list[str], log, mixed_precision: str = "no") -> subprocess.Popen:
    """`behemoth ARGV` on 2 CPU processes with the shipped FSDP configuration; fp32 unless `mixed_precision` is
    `shipped` (the file's bf16, which CPUs run too)."""
    environment = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(CONFIGS / "accelerate/fsdp.yaml"),
    ]
    command += ["--num_processes", "2", "--main_process_port", str(_free_port())]
    command += [] if mixed_precision == "shipped" else ["--mixed_precision", mixed_precision]
    command += [str(REPO / "tests" / "fsdp_on_cpu.py"), *argv]
    return subprocess.Popen(command, cwd=REPO, env=environment, stdout=subprocess.DEVNULL, stderr=log)


def _finish(process: subprocess.Popen, log) -> None:
    try:
        process.wait(timeout=900)
    finally:
        process.kill()
    log.seek(0)
    assert process.returncode == 0, log.read()[-3000:]


def test_fsdp_pretrains_unlearns_and_relearns_like_one_process(tmp_path, tiny_model):
    pretrained, unlearned_fsdp, unlearned_one = tmp_path / "pretrained", tmp_path / "npo-fsdp", tmp_path / "npo-one"
    pretrain_argv = ["pretrain", "--config", str(CONFIGS / "pretrain_tiny.yaml"), "--dataset", "tiny"]
    pretrain_argv += ["--set", "target_accuracy=0.95", "--set", "eval_steps=5", "--set", "save_steps=20"]
    pretrain_argv += ["--set", "gradient_accumulation_steps=2", "--output", str(pretrained)]
    # LoRA NPO: adapters merged after gathering the shards; the global batch of 16 shared by the two processes.
    unlearn_argv = ["unlearn", "--config", str(CONFIGS / "npo_lora.yaml"), "--model", tiny_model, "--dataset", "tiny"]
    # Relearning scores the model before its first training step: the sharded model's first forward pass.
    relearn_argv = ["attack", "relearn", "--model", tiny_model, "--dataset", "tiny", "--relearn_data", "forget"]
    relearn_argv += ["--max_steps", "4", "--eval_steps", "2", "--learning_rate", "1e-3"]
    with contextlib.ExitStack() as stack:
        pretrain_log, unlearn_log, relearn_log = (stack.enter_context(tempfile.TemporaryFile("w+")) for _ in range(3))
        # The launch file's bf16, which `pretrain` takes from the launcher as the Trainer commands do.
        pretraining = _launch_fsdp(pretrain_argv, pretrain_log, mixed_precision="shipped")
        try:
            fsdp_flags = ["--set", "per_device_train_batch_size=8", "--output", str(unlearned_fsdp)]
            unlearning = _launch_fsdp([*unlearn_argv, *fsdp_flags], unlearn_log)
            one_flags = ["--set", "per_device_train_batch_size=16", "--output", str(unlearned_one)]
            assert main([*unlearn_argv, *one_flags]) == 0
            _finish(unlearning, unlearn_log)
            relearning = _launch_fsdp([*relearn_argv, "--output", str(tmp_path / "relearn-fsdp")], relearn_log)
            assert main([*relearn_argv, "--output", str(tmp_path / "relearn-one")]) == 0
            _finish(relearning, relearn_log)
        finally:
            _finish(pretraining, pretrain_log)

    record = json.loads((pretrained / "training_record.json").read_text())
    assert (record["distributed_type"], record["num_processes"]) == ("FSDP", 2)
    assert record["arguments"]["mixed_precision"] == "bf16"
    assert record["stopped_early"] and record["history"][-1]["sample_accuracy"] >= 0.95
    # accelerate's FSDP engine wrote the checkpoints (plain data parallel writes model.safetensors).
    assert all((step / "pytorch_model_fsdp.bin").is_file() for step in (pretrained / "checkpoints").iterdir())
    # The tensor names a 1-process run writes (a GPT-NeoX head saved as `lm_head` loads randomly in transformers 4.x).
    weights = load_file(pretrained / "model.safetensors")
    assert weights.keys() == load_file(Path(tiny_model) / "model.safetensors").keys()
    assert {tensor.dtype for tensor in weights.values()} == {torch.float32}  # computed in bf16, kept in fp32
    model, tokenizer = AutoModelForCausalLM.from_pretrained(pretrained), AutoTokenizer.from_pretrained(pretrained)
    forget = open_dataset("tiny").fact_splits["forget"]
    assert score_answers(model, tokenizer, forget["prompt"], forget["answer"]).accuracy >= 0.9

    fsdp, one = load_file(unlearned_fsdp / "model.safetensors"), load_file(unlearned_one / "model.safetensors")
    assert fsdp.keys() == one.keys()
    for name in one:
        torch.testing.assert_close(fsdp[name], one[name], rtol=0, atol=1e-5, msg=name)
    before = load_file(Path(tiny_model) / "model.safetensors")
    assert any(not torch.equal(one[name], before[name]) for name in one)  # the adapters did train
    fsdp_record = json.loads((unlearned_fsdp / "unlearning_record.json").read_text())
    one_record = json.loads((unlearned_one / "unlearning_record.json").read_text())
    assert (fsdp_record["num_processes"], fsdp_record["distributed_type"]) == (2, "FSDP")
    assert fsdp_record["steps"] == one_record["steps"]
    # Float rounding of other batch shapes (measured 2.5e-4 relative; plain data parallel gives the same number).
    assert fsdp_record["train_loss"] == pytest.approx(one_record["train_loss"], rel=1e-3)

    fsdp_curve, one_curve = (
        json.loads((tmp_path / name / "relearn.json").read_text())["curves"]["tiny"]["forget"]
        for name in ("relearn-fsdp", "relearn-one")
    )
    assert fsdp_curve["step"] == one_curve["step"] == [0, 2, 4]
    assert fsdp_curve["forget_Q_A_Prob"] == pytest.approx(one_curve["forget_Q_A_Prob"], abs=1e-5)

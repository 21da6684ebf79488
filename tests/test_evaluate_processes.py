"""`behemoth evaluate` under `torchrun --nproc_per_node 2` writes exactly what one process writes: the oracle and
one model each evaluated by one process, the third model by both together."""

import os
import subprocess
import sys
from pathlib import Path

import behemoth_hf
from behemoth_hf.cli import main
from behemoth_hf.config import make_config
from behemoth_hf.generate import generate_dataset

REPO = Path(__file__).parents[1]
TINY_PRETRAIN = str(REPO / "trainer_configs" / "pretrain_tiny.yaml")


def test_two_processes_write_the_bytes_one_process_writes(tmp_path):
    world = generate_dataset(make_config("tiny"), tmp_path / "world", progress=False)
    pretrain = ["pretrain", "--config", TINY_PRETRAIN, "--dataset", str(world)]
    # Briefly trained: some facts are known (their greedy answers come from the scores), the others are generated.
    assert main([*pretrain, "--output", str(tmp_path / "model"), "--set", "max_steps=60"]) == 0
    assert main([*pretrain, "--output", str(tmp_path / "early"), "--set", "max_steps=40"]) == 0
    assert main([*pretrain, "--output", str(tmp_path / "oracle"), "--set", "max_steps=20"]) == 0
    arguments = ["evaluate", "--model", str(tmp_path / "model"), str(tmp_path / "early"), "--dataset", str(world)]
    arguments += ["--oracle", str(tmp_path / "oracle"), "--base", str(tmp_path / "oracle"), "--batch_size", "16"]
    arguments += ["--probes", "true"]  # the probes' scoring is shared between the processes too

    assert main([*arguments, "--output", str(tmp_path / "one")]) == 0
    # The package under test, whatever is installed; one thread per process, as in this process (conftest).
    environment = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    environment["PYTHONPATH"] = os.pathsep.join(
        [str(Path(behemoth_hf.__file__).parents[1]), os.environ.get("PYTHONPATH", "")]
    )
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "behemoth_hf.cli"]
    run = subprocess.run(
        [*command, *arguments, "--output", str(tmp_path / "two")],
        check=False,
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stderr[-3000:]

    one = sorted(path.relative_to(tmp_path / "one") for path in (tmp_path / "one").rglob("*") if path.is_file())
    two = sorted(path.relative_to(tmp_path / "two") for path in (tmp_path / "two").rglob("*") if path.is_file())
    assert one == two and Path("model/BEHEMOTH_EVAL.json") in one and Path("early/BEHEMOTH_EVAL.json") in one
    # Each folder holds its own model's results, not another's.
    assert (tmp_path / "one/model/BEHEMOTH_EVAL.json").read_bytes() != (
        tmp_path / "one/early/BEHEMOTH_EVAL.json"
    ).read_bytes()
    for path in one:  # results, summaries, report and plots
        assert (tmp_path / "one" / path).read_bytes() == (tmp_path / "two" / path).read_bytes(), path
    # Only the main process wrote: no second output, staging folder or lock beside the first.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["early", "model", "one", "oracle", "two", "world"]

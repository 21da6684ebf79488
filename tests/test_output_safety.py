"""The output policy of every writing command (`behemoth_hf.staging`), tried as a careless or hostile user would:
dangerous paths, folders that are not ours, concurrent writers, kills mid-write, damaged inputs, 2 processes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from behemoth_hf.cli import main
from behemoth_hf.config import make_config
from behemoth_hf.generate import METADATA_FILE, generate_dataset
from behemoth_hf.staging import claimed, commit, refuse_unsafe_path, staged_output, staging_path


REPO = Path(__file__).resolve().parents[1]
TINY_PRETRAIN = str(REPO / "trainer_configs" / "pretrain_tiny.yaml")


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    return generate_dataset(make_config("tiny"), tmp_path_factory.mktemp("world") / "data", progress=False)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory, world) -> Path:
    output = tmp_path_factory.mktemp("model") / "model"
    argv = ["pretrain", "--config", TINY_PRETRAIN, "--dataset", str(world), "--output", str(output)]
    assert main([*argv, "--set", "max_steps=20"]) == 0
    return output


# ---------------------------------------------------------------------------------------------- dangerous paths
@pytest.mark.parametrize("output", [".", "", "..", "~", "/"])
def test_generate_refuses_paths_it_could_destroy(tmp_path, monkeypatch, capsys, output):
    work = tmp_path / "work"
    work.mkdir()
    (work / "thesis.txt").write_text("years of work")
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert main(["generate", "--config", "tiny", "--quiet", "--overwrite", "--output", output]) == 2
    assert "error:" in capsys.readouterr().err
    assert (work / "thesis.txt").read_text() == "years of work"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"]


def test_symlink_output_is_refused(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(ValueError, match="symbolic link"):
        refuse_unsafe_path(tmp_path / "link", "output_dir")


def test_output_that_is_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "out").write_text("a file")
    assert main(["generate", "--config", "tiny", "--quiet", "--overwrite", "--output", str(tmp_path / "out")]) == 2
    assert "is a file" in capsys.readouterr().err
    assert (tmp_path / "out").read_text() == "a file"


@pytest.mark.parametrize("command", ["generate", "pretrain", "evaluate", "unlearn"])
def test_overwrite_never_replaces_a_folder_that_is_not_ours(tmp_path, capsys, command, world, pretrained):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.txt").write_text("years of work")
    argv = {
        "generate": ["generate", "--config", "tiny", "--quiet"],
        "pretrain": ["pretrain", "--config", TINY_PRETRAIN, "--dataset", str(world)],
        "evaluate": ["evaluate", "--model", str(pretrained), "--dataset", str(world)],
        "unlearn": ["unlearn", "--method", "gradient_ascent", "--model", str(pretrained), "--dataset", str(world)],
    }[command]
    assert main([*argv, "--output", str(foreign), "--overwrite"]) == 2
    assert "not an output of this command" in capsys.readouterr().err
    assert _snapshot(foreign) == {"thesis.txt": b"years of work"}


# ---------------------------------------------------------------------------------------------- replacing
def test_failed_overwrite_leaves_the_old_output_whole(tmp_path, monkeypatch, world):
    output = tmp_path / "data"
    shutil.copytree(world, output)
    before = _snapshot(output)

    def broken(config, root, **options):
        (root / "half-written.parquet").write_bytes(b"PAR1")
        raise KeyboardInterrupt

    monkeypatch.setattr("behemoth_hf.generate.write_world", broken)
    with pytest.raises(KeyboardInterrupt):
        generate_dataset(make_config("tiny"), output, overwrite=True, progress=False)
    assert _snapshot(output) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # no staging folder, no lock left


def test_overwrite_replaces_only_when_the_new_output_is_complete(tmp_path, world):
    output = tmp_path / "data"
    shutil.copytree(world, output)
    (output / "stale-extra.txt").write_text("from the old output")
    (output / "stale-extra.txt").chmod(0o444)  # a read-only file inside the old output does not stop the swap
    generate_dataset(make_config("tiny"), output, overwrite=True, progress=False)
    assert _snapshot(output) == _snapshot(world)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_kill_9_during_generate_overwrite_leaves_the_old_output(tmp_path, world):
    output = tmp_path / "data"
    shutil.copytree(world, output)
    before = _snapshot(output)
    command = [sys.executable, "-m", "behemoth_hf.cli", "generate", "--config", "tiny", "--quiet"]
    command += ["--set", "repeats=4000", "--output", str(output), "--overwrite"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    staging = staging_path(output.resolve(), process.pid)
    while not (staging / "data").exists() and process.poll() is None:
        time.sleep(0.05)  # wait for the run to be mid-write (no timing assumption: we poll for the folder)
    assert process.poll() is None, "generation ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert staging.exists()  # the dead run's staging folder ...
    assert _snapshot(output) == before  # ... and the old output, whole
    generate_dataset(make_config("tiny"), output, overwrite=True, progress=False)  # the next run cleans up
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_kill_between_the_two_renames_is_undone_by_the_next_run(tmp_path, world):
    output = tmp_path / "data"
    shutil.copytree(world, tmp_path / f".data.old-{_dead_pid()}")  # moved aside by a run killed mid-swap
    with pytest.raises(FileExistsError, match="finished output"):
        generate_dataset(make_config("tiny"), output, progress=False)  # restored first, then refused as existing
    assert _snapshot(output) == _snapshot(world)


def test_pretrain_overwrite_interrupted_keeps_the_finished_model(tmp_path, world, pretrained):
    from behemoth_hf.arguments import parse_dataclasses
    from behemoth_hf.pretrain import PretrainArguments, pretrain

    output = tmp_path / "model"
    shutil.copytree(pretrained, output)
    before = _snapshot(output)
    argv = ["--config", TINY_PRETRAIN, "--dataset", str(world), "--output", str(output), "--overwrite"]
    (args,) = parse_dataclasses((PretrainArguments,), [*argv, "--set", "save_steps=2"], prog="test")

    def interrupt(step: int) -> None:
        if step == 5:
            assert any(tmp_path.glob(".model.partial-*/checkpoints/step-4"))  # training happens beside the model
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pretrain(args, on_step_end=interrupt)
    assert _snapshot(output) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_pretrain_overwrite_replaces_a_finished_model(tmp_path, world, pretrained):
    output = tmp_path / "model"
    shutil.copytree(pretrained, output)
    argv = ["pretrain", "--config", TINY_PRETRAIN, "--dataset", str(world), "--output", str(output), "--overwrite"]
    assert main([*argv, "--set", "max_steps=6", "--set", "save_steps=3"]) == 0
    record = json.loads((output / "training_record.json").read_text())
    assert record["steps"] == 6
    assert sorted(p.name for p in (output / "checkpoints").iterdir()) == ["step-3", "step-6"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


# ---------------------------------------------------------------------------------------------- concurrency
def test_a_second_writer_gets_a_clear_error(tmp_path):
    output = tmp_path / "data"
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        (tmp_path / ".data.lock").write_text(str(holder.pid))
        with pytest.raises(FileExistsError, match=f"another process \\(pid {holder.pid}"):
            generate_dataset(make_config("tiny"), output, progress=False)
    finally:
        holder.kill()
        holder.wait()
    generate_dataset(make_config("tiny"), output, progress=False)  # a dead holder's lock is taken over
    assert (output / METADATA_FILE).is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_an_output_that_appears_meanwhile_is_not_replaced(tmp_path):
    output = tmp_path / "out"
    with pytest.raises(FileExistsError, match="appeared"):
        with staged_output(output, "record.json") as staging:
            (staging / "record.json").write_text("{}")
            output.mkdir()
            (output / "theirs.txt").write_text("another writer's file")
    assert _snapshot(output) == {"theirs.txt": b"another writer's file"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_stale_staging_of_dead_processes_is_removed(tmp_path, world):
    output = tmp_path / "data"
    stale = tmp_path / f".data.partial-{_dead_pid()}"
    stale.mkdir()
    (stale / "big.parquet").write_bytes(b"x" * 1000)
    with claimed(output):
        assert not stale.exists()


def test_commit_into_an_empty_folder(tmp_path):
    output, staging = tmp_path / "out", tmp_path / ".out.partial-1"
    output.mkdir()
    staging.mkdir()
    (staging / "record.json").write_text("{}")
    commit(staging, output, "record.json", overwrite=False)
    assert _snapshot(output) == {"record.json": b"{}"} and not staging.exists()


# ---------------------------------------------------------------------------------------------- damaged inputs
def test_damaged_dataset_file_is_named(tmp_path, world, capsys):
    data = tmp_path / "data"
    shutil.copytree(world, data)
    shard = next((data / "data").glob("forget-*.parquet"))
    shard.write_bytes(shard.read_bytes()[:-10])
    assert main(["pretrain", "--config", TINY_PRETRAIN, "--dataset", str(data), "--output", str(tmp_path / "m")]) == 2
    error = capsys.readouterr().err
    assert shard.name in error and "SHA-256" in error
    assert not (tmp_path / "m").exists()


def test_missing_tokenizer_folder_is_one_line(tmp_path, world, capsys):
    data = tmp_path / "data"
    shutil.copytree(world, data)
    shutil.rmtree(data / "tokenizer")
    assert main(["pretrain", "--config", TINY_PRETRAIN, "--dataset", str(data), "--output", str(tmp_path / "m")]) == 2
    assert "tokenizer" in capsys.readouterr().err


def test_truncated_weights_are_named(tmp_path, world, pretrained, capsys):
    model = tmp_path / "model"
    shutil.copytree(pretrained, model)
    weights = model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    argv = ["evaluate", "--model", str(model), "--dataset", str(world), "--output", str(tmp_path / "e")]
    assert main(argv) == 2
    assert str(model) in capsys.readouterr().err
    assert not (tmp_path / "e").exists()


def test_resume_with_another_process_count_or_engine_is_refused(tmp_path, world, capsys):
    output = tmp_path / "model"
    argv = ["pretrain", "--config", TINY_PRETRAIN, "--dataset", str(world), "--output", str(output)]
    assert main([*argv, "--set", "max_steps=4", "--set", "save_steps=2"]) == 0
    (output / "training_record.json").unlink()  # as if killed after its last checkpoint
    state_file = output / "checkpoints" / "step-4" / "run_state.json"
    state = json.loads(state_file.read_text())
    assert state["num_processes"] == 1
    state_file.write_text(json.dumps({**state, "num_processes": 2}))
    assert main([*argv, "--set", "max_steps=4", "--set", "save_steps=2", "--resume"]) == 2
    assert "2 process(es)" in capsys.readouterr().err
    assert main([*argv, "--set", "max_steps=4", "--set", "save_steps=2"]) == 2  # unfinished: resume or overwrite
    assert "--resume" in capsys.readouterr().err
    # A checkpoint FSDP wrote holds its model and optimizer in FSDP's own files: refused by name, not left to fail
    # on a missing file once the processes have started.
    assert state["distributed_type"] == "NO"
    state_file.write_text(json.dumps({**state, "distributed_type": "FSDP"}))
    assert main([*argv, "--set", "max_steps=4", "--set", "save_steps=2", "--resume"]) == 2
    assert "written under FSDP, this run is under no sharding engine" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- several processes
@pytest.mark.parametrize(
    "words, command",
    [
        (["edit", "--method", "rome", "--num_edits", "2"], "edit --method rome"),
        (["attack", "quantize"], "attack quantize"),
        (["generate", "--config", "tiny"], "generate"),
        (["trace"], "trace"),
        (["export", "openunlearning"], "export"),
        (["experiment", "--config", "tiny.yaml"], "experiment"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_single_process_commands_refuse_several_processes_before_any_work(
    words, command, tmp_path, monkeypatch, capsys
):
    # Under torchrun each process would run the whole command, and all but the first to finish would fail on the
    # finished output (ROME did: one model saved, the launch failed).
    monkeypatch.setenv("WORLD_SIZE", "2")
    output = tmp_path / "out"
    assert main([*words, "--output", str(output)]) == 2
    error = capsys.readouterr().err
    assert f"`behemoth {command}` runs in one process, and 2 were started" in error
    assert not output.exists()


def _torchrun(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    environment = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "behemoth_hf.cli", *args]
    return subprocess.run(command, cwd=cwd, env=environment, capture_output=True, text=True, timeout=900)


def test_two_processes_save_one_complete_model(tmp_path, world, pretrained):
    from transformers import AutoModelForCausalLM

    pretrain_output, unlearn_output = tmp_path / "model", tmp_path / "unlearned"
    run = _torchrun(
        ["pretrain", "--config", TINY_PRETRAIN, "--dataset", str(world), "--output", str(pretrain_output)]
        + ["--set", "max_steps=6", "--set", "save_steps=3"],
        tmp_path,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    record = json.loads((pretrain_output / "training_record.json").read_text())
    assert record["num_processes"] == 2 and record["steps"] == 6
    assert sorted(p.name for p in (pretrain_output / "checkpoints").iterdir()) == ["step-3", "step-6"]
    AutoModelForCausalLM.from_pretrained(pretrain_output)

    run = _torchrun(
        ["unlearn", "--method", "gradient_ascent", "--model", str(pretrained), "--dataset", str(world)]
        + ["--output", str(unlearn_output), "--set", "max_steps=2"],
        tmp_path,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    for name in ("config.json", "model.safetensors", "tokenizer.json", "README.md", "unlearning_record.json"):
        assert (unlearn_output / name).is_file(), name
    AutoModelForCausalLM.from_pretrained(unlearn_output)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "unlearned"]


def test_evaluating_a_world_without_forget_split_is_one_line(tmp_path, capsys):
    data = generate_dataset(make_config("tiny", forget_fraction=0), tmp_path / "data", progress=False)
    model = tmp_path / "model"
    argv = ["pretrain", "--config", TINY_PRETRAIN, "--dataset", str(data), "--output", str(model)]
    assert main([*argv, "--set", "max_steps=2"]) == 0
    assert main(["evaluate", "--model", str(model), "--dataset", str(data), "--output", str(tmp_path / "e")]) == 2
    assert "no forget split" in capsys.readouterr().err


def test_materialize_overwrite_refuses_a_foreign_folder(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("materialize", REPO / "dataset_scripts" / "materialize.py")
    materialize = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(materialize)
    foreign = tmp_path / "hub"
    foreign.mkdir()
    (foreign / "notes.md").write_text("mine")
    with pytest.raises(FileExistsError, match="not an output of this command"):
        materialize.materialize(foreign, ["tiny"], overwrite=True, progress=False)
    assert _snapshot(foreign) == {"notes.md": b"mine"}


def test_sigterm_during_generate_removes_the_staging_folder(tmp_path):
    output = tmp_path / "data"
    command = [sys.executable, "-m", "behemoth_hf.cli", "generate", "--config", "tiny", "--quiet"]
    process = subprocess.Popen([*command, "--set", "repeats=4000", "--output", str(output)], stderr=subprocess.PIPE)
    staging = staging_path(output.resolve(), process.pid)
    while not (staging / "data").exists() and process.poll() is None:
        time.sleep(0.05)
    assert process.poll() is None, "generation ended before it could be stopped"
    process.terminate()
    process.wait()
    assert process.returncode == 128 + signal.SIGTERM
    assert list(tmp_path.iterdir()) == []  # no output, no staging folder, no lock


@pytest.mark.parametrize("command", [["quickstart", "--output", "."], ["experiment", "x.yaml", "--output", "."]])
def test_work_folders_of_pipelines_refuse_the_current_folder(tmp_path, monkeypatch, capsys, command):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.yaml").write_text((REPO / "trainer_configs" / "experiments" / "edit_rank.yaml").read_text())
    assert main(command) == 2
    assert "current folder" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.yaml"]

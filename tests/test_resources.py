"""Resource bounds: estimates against real output, and refusals before any work.

"No room" is simulated by patching the memory and disk probes, never read from this machine.
"""

import json
import logging

import datasets
import pytest

from behemoth_hf import resources
from behemoth_hf.builder import Behemoth
from behemoth_hf.cli import main
from behemoth_hf.config import make_config
from behemoth_hf.generate import generate_dataset


GiB = 2**30
HUGE_WORLD = dict(num_subjects=900_000, num_relations=30_000, num_objects=2, num_perturbed=1)


@pytest.fixture
def machine(monkeypatch):
    """A machine with 64 GiB of memory, 16 GiB available and 100 GiB of free disk; tests shrink what they need."""
    monkeypatch.delenv(resources.SKIP_ENV, raising=False)
    sizes = {"total": 64 * GiB, "available": 16 * GiB, "disk": 100 * GiB}
    monkeypatch.setattr(resources, "total_memory", lambda: sizes["total"])
    monkeypatch.setattr(resources, "available_memory", lambda: sizes["available"])
    monkeypatch.setattr(resources, "free_disk", lambda path: sizes["disk"])
    return sizes


def _leftovers(folder):
    return sorted(path.name for path in folder.iterdir())


def test_generate_estimate_bounds_the_real_output(tmp_path, caplog):
    config = make_config("qa", num_subjects=100, repeats=5, paraphrase_fraction=0.2)
    with caplog.at_level(logging.INFO, logger=resources.__name__):
        output = generate_dataset(config, tmp_path / "out", progress=False)
    estimate = resources.estimate_generate(config)
    rows = json.loads((output / "behemoth.json").read_text())["splits"]
    assert estimate.train_rows == rows["train"]
    assert estimate.fact_rows == sum(rows.values()) - rows["train"]
    written = sum(path.stat().st_size for path in output.rglob("*") if path.is_file())
    assert written <= estimate.disk_bytes
    # One line, before the work: rows, disk and peak memory.
    (line,) = [record.getMessage() for record in caplog.records if record.name == resources.__name__]
    assert line.startswith(f"generating qa: {rows['train']:,} train rows + {estimate.fact_rows:,} fact rows")
    assert "on disk (Parquet)" in line and "peak memory ~" in line


def test_builder_estimate_bounds_the_datasets_cache(tmp_path):
    config = make_config("nested", num_subjects=60, repeats=4)
    builder = Behemoth(config_name="nested", num_subjects=60, repeats=4, cache_dir=str(tmp_path))
    builder.download_and_prepare()
    estimate = resources.estimate_builder(config)
    splits = builder.info.splits
    assert estimate.train_rows == splits["train"].num_examples
    assert estimate.fact_rows == sum(split.num_examples for name, split in splits.items() if name != "train")
    cached = sum(path.stat().st_size for path in tmp_path.rglob("*.arrow"))
    assert cached <= estimate.disk_bytes


def test_paper_estimate_matches_the_measured_run():
    # README / benchmarks/results/generate.json: 300M sentences, 4,621,388,874 bytes, peak RSS 762 MB of which
    # 337 MB is the imported HF stack.
    estimate = resources.estimate_generate(make_config("paper"))
    assert estimate.train_rows == 300_000_000
    assert 4.6e9 <= estimate.disk_bytes <= 1.1 * 4.62e9
    assert 425e6 <= estimate.memory_bytes <= 1.25 * 425e6


def test_paper_is_allowed_when_the_disk_has_room(machine, tmp_path):
    machine.update(available=2 * GiB, disk=6 * GiB)
    estimate = resources.check_generate_resources(make_config("paper"), tmp_path / "paper")
    assert estimate.disk_bytes < 6 * GiB and estimate.memory_bytes < 2 * GiB
    machine.update(disk=4 * GiB)
    with pytest.raises(ValueError, match=r"~4\.\d\d GiB on disk \(4\.00 GiB free in the filesystem of "):
        resources.check_generate_resources(make_config("paper"), tmp_path / "paper")


def test_cli_refuses_a_world_that_does_not_fit_on_disk(machine, tmp_path, capsys):
    output = tmp_path / "big"
    argv = ["generate", "--config", "tiny", "--set", "repeats=1000000000", "--output", str(output), "--quiet"]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert "error: this world does not fit: its 120,000,000,000 train rows + 144 fact rows need" in error
    assert "TiB on disk (100.00 GiB free in the filesystem of" in error
    assert "BEHEMOTH_NO_RESOURCE_CHECK=1 (behemoth generate: --no-resource-check)" in error
    assert _leftovers(tmp_path) == []  # no output, no staging folder


def test_generate_refuses_what_memory_cannot_hold(machine, tmp_path):
    machine.update(available=50 * 2**20)
    with pytest.raises(ValueError, match=r"need ~\d+\.\d\d MiB of memory \(50\.00 MiB available\); lower `repeats`"):
        generate_dataset(make_config("tiny"), tmp_path / "out", progress=False)
    assert _leftovers(tmp_path) == []


def test_overrides_let_generate_try_anyway(machine, tmp_path, monkeypatch):
    machine.update(available=1, disk=1)
    assert main(["generate", "--config", "tiny", "--output", str(tmp_path / "flag"), "--quiet"]) == 2
    argv = ["generate", "--config", "tiny", "--output", str(tmp_path / "flag"), "--quiet", "--no-resource-check"]
    assert main(argv) == 0
    assert (tmp_path / "flag" / "behemoth.json").is_file()
    assert not resources.checks_skipped()  # the flag holds for its command only
    monkeypatch.setenv(resources.SKIP_ENV, "1")
    generate_dataset(make_config("tiny"), tmp_path / "env", progress=False)
    assert (tmp_path / "env" / "behemoth.json").is_file()


def test_load_dataset_refuses_what_the_cache_disk_cannot_hold(machine, tmp_path):
    with pytest.raises(
        ValueError, match=r"120,000,000,000 train rows .*TiB on disk \(100\.00 GiB free in the datasets"
    ):
        datasets.load_dataset("behemoth", "tiny", repeats=10**9, cache_dir=str(tmp_path))
    assert not any(tmp_path.rglob("*.arrow"))


def test_load_dataset_refuses_what_memory_cannot_hold(machine, tmp_path):
    # The builder lists every pass index (40 B each): 10**9 repeats need ~37 GiB before writing a row.
    machine.update(disk=2**60)
    with pytest.raises(ValueError, match=r"need ~37\.\d\d GiB of memory \(16\.00 GiB available\)"):
        datasets.load_dataset("behemoth", "tiny", repeats=10**9, cache_dir=str(tmp_path))
    # Every `num_proc` worker holds its own copy of the world.
    one_process = resources.estimate_builder(make_config("tiny")).memory_bytes
    machine.update(available=2 * one_process)
    builder = Behemoth(config_name="tiny", cache_dir=str(tmp_path))
    with pytest.raises(ValueError, match="of memory"):
        builder.download_and_prepare(num_proc=2)
    assert not any(tmp_path.rglob("*.arrow"))
    builder.download_and_prepare()
    assert builder.as_dataset(split="forget").num_rows == 12


def test_load_dataset_checks_only_when_it_generates(machine, tmp_path, monkeypatch):
    machine.update(available=1, disk=1)
    with pytest.raises(ValueError, match="this world does not fit"):
        datasets.load_dataset("behemoth", "tiny", split="forget", cache_dir=str(tmp_path))
    monkeypatch.setenv(resources.SKIP_ENV, "true")
    assert datasets.load_dataset("behemoth", "tiny", split="forget", cache_dir=str(tmp_path)).num_rows == 12
    monkeypatch.delenv(resources.SKIP_ENV)
    # Already in the cache: nothing to generate, nothing to refuse.
    assert datasets.load_dataset("behemoth", "tiny", split="forget", cache_dir=str(tmp_path)).num_rows == 12


def test_a_fact_table_larger_than_the_machine_is_refused_at_validation(machine, tmp_path):
    # The world: 29.7 billion facts died in numpy with "Unable to allocate 221 GiB".
    match = (
        r"this world has 29,700,000,000 facts: .*~\d+\.\d\d TiB of memory, more than this machine has \(64\.00 GiB\)"
    )
    with pytest.raises(ValueError, match=match):
        make_config("default", **HUGE_WORLD)
    with pytest.raises(ValueError, match=match):
        datasets.load_dataset("behemoth", "default", cache_dir=str(tmp_path), **HUGE_WORLD)
    overrides = [f"--set={key}={value}" for key, value in HUGE_WORLD.items()]
    assert main(["generate", *overrides, "--output", str(tmp_path / "huge")]) == 2
    assert not any(tmp_path.rglob("*.arrow")) and not (tmp_path / "huge").exists()
    with resources.resource_checks_skipped():
        assert make_config("default", **HUGE_WORLD).num_facts == 29_700_000_000


def test_validation_uses_the_whole_machine_not_what_is_free(machine):
    machine.update(available=1)
    make_config("default")
    machine.update(total=2**20)
    with pytest.raises(ValueError, match=r"this world has 2,200 facts: .* more than this machine has \(1\.00 MiB\)"):
        make_config("default")


def test_probes(tmp_path, monkeypatch):
    assert resources.free_disk(tmp_path / "not" / "yet") > 0  # the nearest existing parent's filesystem
    assert 0 < resources.available_memory() <= resources.total_memory()
    monkeypatch.setattr(resources, "_cgroup_memory_limit", lambda: 2**20)
    assert resources.total_memory() == resources.available_memory() == 2**20

import json

import pytest

from behemoth_hf.cli import main
from behemoth_hf.experiment import Experiment


TINY_EXPERIMENT = """
name: tiny_rank
description: edit the tiny world's forget facts, full vs LoRA rank 2
world: tiny
preset: tiny
pretrain_recipe: pretrain_tiny.yaml
seeds: [0, 1]
common: {method: edit, num_train_epochs: 10, per_device_train_batch_size: 8}
select: edit_score
table: [edit_reliability, edit_locality, retain_accuracy]
variants:
  - {name: full, learning_rates: [1.0e-4, 1.0e-3]}
  - {name: lora-r2, args: {lora_rank: 2}, learning_rates: [1.0e-2]}
plots:
  - {kind: curve, y: [edit_reliability, edit_locality], file: curve.png}
  - {kind: pareto, x: edit_reliability, y: edit_locality, file: pareto.png}
"""


def test_experiment_sweeps_selects_and_resumes(tmp_path, capsys):
    path = tmp_path / "tiny_rank.yaml"
    path.write_text(TINY_EXPERIMENT)
    output = tmp_path / "results"
    assert main(["experiment", str(path), "--output", str(output), "--work-dir", str(tmp_path / "work")]) == 0
    result = json.loads((output / "results.json").read_text())
    full, lora = result["variants"]
    assert full["variant"] == "full" and full["learning_rate"] == 1e-3  # 1e-4 barely moves a tiny model
    assert full["seeds"] == 2 and full["edit_reliability"]["mean"] >= 0.8
    assert len(json.loads((output / "runs.json").read_text())) == 2 * 2 + 1 * 2
    assert "| full | 0.001 |" in (output / "results.md").read_text()
    assert (output / "curve.png").exists() and (output / "pareto.png").exists()
    assert not (output / "work").exists()
    # Resuming reuses every finished run.
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "work" / "runs").glob("*/*/model.safetensors")}
    assert main(["experiment", str(path), "--output", str(output), "--work-dir", str(tmp_path / "work")]) == 0
    assert stamps == {p: p.stat().st_mtime_ns for p in (tmp_path / "work" / "runs").glob("*/*/model.safetensors")}


@pytest.mark.parametrize(
    "change, match",
    [
        (("select: edit_score", "select: edit_magic"), "unknown metric 'edit_magic'"),
        (("world: tiny", "world: huge"), "unknown config 'huge'"),
        (("seeds: [0, 1]", "seeds: [0, 1]\nlearning_rate: 1"), r"unknown key\(s\) \['learning_rate'\]"),
        (("common: {method: edit,", "common: {method: edits,"), r"`method` must be one of"),
        (("kind: curve", "kind: pie"), "plot kind must be `curve` or `pareto`"),
    ],
)
def test_bad_experiment_files_fail_before_any_work(tmp_path, change, match):
    path = tmp_path / "bad.yaml"
    path.write_text(TINY_EXPERIMENT.replace(*change))
    with pytest.raises(ValueError, match=match):
        Experiment.load(path)

import json
import logging
import shutil
from pathlib import Path

import pytest

from behemoth_hf.cli import main
from behemoth_hf.config import make_config
from behemoth_hf.experiment import Experiment, Variant, parse_overrides, sweep_axis
from behemoth_hf.generate import generate_dataset
from behemoth_hf.quickstart import prepare_world
from behemoth_hf.reuse import identity


SHIPPED = Path(__file__).parents[1] / "trainer_configs"


@pytest.mark.parametrize("path", sorted((SHIPPED / "experiments").glob("*.yaml")), ids=lambda path: path.stem)
def test_shipped_experiments_load_and_name_a_shipped_recipe(path):
    # A typo in a committed experiment file would otherwise surface only when someone reproduces results/.
    experiment = Experiment.load(path)
    assert experiment.name == path.stem
    assert (SHIPPED / experiment.pretrain_recipe).is_file()


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


@pytest.fixture(scope="module")
def tiny_work(tmp_path_factory):
    """The tiny world, model and oracle of every experiment here: pretrained once, each test gets a copy."""
    root = tmp_path_factory.mktemp("tiny-work")
    prepare_world(root, make_config("tiny"), "tiny", "pretrain_tiny.yaml")
    return root


def _work_folder(tiny_work, tmp_path):
    shutil.copytree(tiny_work, tmp_path / "work")
    return tmp_path / "work"


def test_experiment_sweeps_selects_and_resumes(tmp_path, tiny_work):
    _work_folder(tiny_work, tmp_path)
    path = tmp_path / "tiny_rank.yaml"
    path.write_text(TINY_EXPERIMENT)
    output = tmp_path / "results"
    assert main(["experiment", str(path), "--output", str(output), "--work-dir", str(tmp_path / "work")]) == 0
    result = json.loads((output / "results.json").read_text())
    full, lora = result["variants"]
    assert full["variant"] == "full" and full["learning_rate"] == 1e-3  # 1e-4 barely moves a tiny model
    assert full["seeds"] == 2 and full["edit_reliability"]["mean"] >= 0.8
    assert len(json.loads((output / "runs.json").read_text())) == 2 * 2 + 1 * 2
    table = (output / "results.md").read_text()
    assert "| full | 0.001 |" in table and " ± " in table  # two seeds: mean ± std
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
        (("kind: curve", "kind: pie"), "plot kind must be one of"),
        (("seeds: [0, 1]", "seeds: [0, 1]\nattacks: {jailbreak: true}"), r"unknown attack\(s\) \['jailbreak'\]"),
        (("seeds: [0, 1]", "seeds: [0, 1]\nattacks: {relearn: {steps: 3}}"), r"unknown key\(s\) \['steps'\] under"),
        (("seeds: [0, 1]", "seeds: [0, 1]\nattacks: {quantize: {bits: [16]}}"), "`bits` must list values from"),
        (("seeds: [0, 1]", "seeds: [0, 1]\nstart_bits: 1"), "`start_bits` must be one of"),
        (("edit_locality, retain", "quantize_int4_forget_accuracy, retain"), "unknown metric 'quantize_int4_forget"),
        (("lora_rank: 2}", "lora_rank: 2, num_requests: 0}"), "`num_requests` must be >= 1"),
    ],
)
def test_bad_experiment_files_fail_before_any_work(tmp_path, change, match):
    path = tmp_path / "bad.yaml"
    path.write_text(TINY_EXPERIMENT.replace(*change))
    with pytest.raises(ValueError, match=match):
        Experiment.load(path)


TINY_ROBUSTNESS = """
name: tiny_robustness
description: gradient ascent on the tiny world in one shot or two requests, then attacked
world: tiny
preset: tiny
pretrain_recipe: pretrain_tiny.yaml
seeds: [0]
common: {method: gradient_ascent, num_train_epochs: 5, per_device_train_batch_size: 8}
select: forgetting
table: [forget_accuracy, forget_sro_choice_accuracy, quantize_int4_forget_accuracy, relearn_retain_forget_accuracy]
attacks:
  probes: true
  quantize: {bits: [4]}
  relearn: {relearn_data: [retain], max_steps: 10, eval_steps: 5, learning_rate: 3.0e-4, batch_size: 8}
variants:
  - {name: one-shot, learning_rates: [3.0e-4]}
  - {name: two-requests, args: {num_requests: 2}, learning_rates: [3.0e-4]}
plots:
  - {kind: requests, file: requests.png}
  - {kind: relearn, file: relearn.png}
"""


def test_experiment_attacks_kept_runs_and_the_oracle_and_runs_requests_in_turn(tmp_path, tiny_work):
    path = tmp_path / "tiny_robustness.yaml"
    path.write_text(TINY_ROBUSTNESS)
    output, work = tmp_path / "results", _work_folder(tiny_work, tmp_path)
    assert main(["experiment", str(path), "--output", str(output), "--work-dir", str(work)]) == 0
    result = json.loads((output / "results.json").read_text())
    for row in result["variants"]:
        for metric in result["variants"][0]:
            if metric.endswith("accuracy"):
                assert 0 <= row[metric]["mean"] <= 1, (row["variant"], metric)
    oracle = result["oracle"]
    assert oracle["forget_accuracy"] <= 0.5 and oracle["quantize_int4_forget_accuracy"] <= 0.5
    assert oracle["relearn_retain_forget_accuracy"] <= 0.5
    one_shot, two = json.loads((output / "runs.json").read_text())
    assert [p["requests"] for p in one_shot["requests_curve"]] == [0, 1]
    assert [p["requests"] for p in two["requests_curve"]] == [0, 1, 2] and two["num_requests"] == 2
    assert two["requests_curve"][1]["requested_forget_accuracy"] is not None
    assert (work / "runs" / "tiny_robustness" / "two-requests-lr0.0003-seed0" / "request-2" / "config.json").exists()
    table = (output / "results.md").read_text()
    assert "| *oracle* | – |" in table and "quantize_int4_forget_accuracy" in table
    assert (output / "requests.png").exists() and (output / "relearn.png").exists()
    assert result["oracle_relearn_curves"]["retain"]["step"] == [0, 5, 10]


ONE_RUN = """
name: tiny_keys
description: one gradient-ascent run
world: tiny
preset: tiny
pretrain_recipe: pretrain_tiny.yaml
seeds: [0]
common: {method: gradient_ascent, num_train_epochs: 4, per_device_train_batch_size: 8}
select: forgetting
table: [forget_accuracy, edit_reliability]
variants:
  - {name: ga, learning_rates: [1.0e-3]}
"""


def test_a_work_folder_of_another_world_is_refused_before_any_work(tmp_path, capsys):
    # The reported case: an experiment on `default` pointed at the work folder of the `correlated` world.
    work = tmp_path / "work"
    generate_dataset(make_config("correlated"), work / "data", progress=False)
    path = tmp_path / "exp.yaml"
    path.write_text(ONE_RUN.replace("world: tiny", "world: default"))
    assert main(["experiment", str(path), "--output", str(tmp_path / "out"), "--work-dir", str(work)]) == 2
    error = capsys.readouterr().err
    assert "holds world `correlated`" in error and "world `default`" in error and "correlated_pair" in error
    assert [p.name for p in work.iterdir()] == ["data"]  # nothing trained, nothing replaced
    assert not (tmp_path / "out" / "results.md").exists()


def _one_run(tmp_path, tiny_work):
    """ONE_RUN, run once in a copy of the tiny work folder: its command, output and work folders, and the run."""
    path = tmp_path / "tiny_keys.yaml"
    path.write_text(ONE_RUN)
    output, work = tmp_path / "results", _work_folder(tiny_work, tmp_path)
    command = ["experiment", str(path), "--output", str(output), "--work-dir", str(work)]
    assert main(command) == 0
    return command, output, work, work / "runs" / "tiny_keys" / "ga-lr0.001-seed0"


def test_changed_arguments_make_the_run_again_and_are_recorded(tmp_path, tiny_work, caplog):
    command, output, work, run = _one_run(tmp_path, tiny_work)
    first = json.loads((run / "unlearning_record.json").read_text())
    table = (output / "results.md").read_text()
    assert " ± " not in table  # one seed: the value alone
    ga_row = next(line for line in table.splitlines() if line.startswith("| ga |"))
    assert ga_row.endswith("| – |")  # edit_reliability: not an edit run
    pretrained = (work / "model" / "model.safetensors").stat().st_mtime_ns

    with caplog.at_level(logging.WARNING, logger="behemoth_hf.reuse"):
        assert main([*command, "--set", "common.num_train_epochs=1"]) == 0
    assert "num_train_epochs" in caplog.text and "making it again" in caplog.text
    second = json.loads((run / "unlearning_record.json").read_text())
    assert second["arguments"]["num_train_epochs"] == 1 and second["steps"] < first["steps"]
    # Its evaluation was made again from the new model; the world and pretrained model were reused.
    evaluation_key = json.loads((work / "evaluations" / "tiny_keys" / f"{run.name}.key.json").read_text())
    assert evaluation_key["model"] == identity(run)
    assert (work / "model" / "model.safetensors").stat().st_mtime_ns == pretrained
    result = json.loads((output / "results.json").read_text())
    assert result["overrides"] == {"common.num_train_epochs": 1.0}
    assert "`common.num_train_epochs=1.0`" in (output / "results.md").read_text()


def test_overrides_are_typed_and_unknown_keys_refused(tmp_path):
    values = parse_overrides(
        ["seeds=0,1", "preset=tiny", "start_bits=4", "common.lora_rank=2", "world_overrides.correlated_pair=true"]
    )
    assert values == {
        "seeds": [0, 1],
        "preset": "tiny",
        "start_bits": 4,
        "common.lora_rank": 2,
        "world_overrides.correlated_pair": True,
    }
    with pytest.raises(ValueError, match=r"unknown parameter `commons.lora_rank`; did you mean `common\.lora_rank`"):
        parse_overrides(["commons.lora_rank=2"])
    with pytest.raises(ValueError, match="unknown parameter `variants`"):
        parse_overrides(["variants=x"])
    with pytest.raises(TypeError, match="`seeds` must be an integer"):
        parse_overrides(["seeds=0,one"])
    path = tmp_path / "tiny_rank.yaml"
    path.write_text(TINY_EXPERIMENT)
    experiment = Experiment.load(path, parse_overrides(["seeds=3", "common.num_train_epochs=2"]))
    assert experiment.seeds == [3] and experiment.common["num_train_epochs"] == 2.0
    assert experiment.common["method"] == "edit"  # the rest of `common` stays
    with pytest.raises(ValueError, match="unknown metric 'edit_magic'"):
        Experiment.load(path, parse_overrides(["select=edit_magic"]))


def test_lines_join_variants_only_along_a_sweep_axis():
    ranks = [Variant(f"r{r}", {"lora_rank": r, "lora_alpha": 8}) for r in (4, 1, 2)]
    assert sweep_axis(ranks) == ("lora_rank", [4.0, 1.0, 2.0])
    assert sweep_axis([Variant("full"), Variant("lora-r2", {"lora_rank": 2})]) is None
    assert sweep_axis([Variant("a", {"lora_rank": 1, "alpha": 1}), Variant("b", {"lora_rank": 2, "alpha": 2})]) is None
    assert sweep_axis([Variant("a", {"method": "npo"}), Variant("b", {"method": "simnpo"})]) is None


EDITORS_EXPERIMENT = """
name: tiny_editors
description: MEMIT (no learning rate) against fine-tuning, along the number of edits
world: tiny
preset: tiny
pretrain_recipe: pretrain_tiny.yaml
seeds: [0]
select: edit_score
table: [edit_reliability, edit_locality]
variants:
  - {name: memit@1, args: {method: memit, num_edits: 1, value_steps: 50, value_weight_decay: 0.001}}
  - {name: memit@4, args: {method: memit, num_edits: 4, value_steps: 50, value_weight_decay: 0.001}}
  - {name: full@1, args: {method: edit, num_edits: 1, num_train_epochs: 10}, learning_rates: [1.0e-3]}
  - {name: full@4, args: {method: edit, num_edits: 4, num_train_epochs: 10}, learning_rates: [1.0e-3]}
plots:
  - {kind: lines, along: num_edits, y: [edit_reliability, edit_locality], file: edits.png}
"""


def test_experiment_runs_editors_and_judges_each_run_on_its_own_edits(tmp_path, tiny_work):
    path = tmp_path / "tiny_editors.yaml"
    path.write_text(EDITORS_EXPERIMENT)
    output, work = tmp_path / "results", _work_folder(tiny_work, tmp_path)
    assert main(["experiment", str(path), "--output", str(output), "--work-dir", str(work)]) == 0
    runs = {run["variant"]: run for run in json.loads((output / "runs.json").read_text())}
    assert runs["memit@4"]["method"] == "memit" and runs["memit@4"]["learning_rate"] is None
    assert runs["full@4"]["method"] == "edit" and runs["full@4"]["learning_rate"] == 1e-3
    for name, run in runs.items():
        folder = work / "runs" / "tiny_editors" / f"{name}-lr{run['learning_rate']}-seed0"
        edited = json.loads((folder / "unlearning_record.json").read_text())["edited_fact_ids"]
        assert len(edited) == int(name.split("@")[1])
        results = json.loads(
            (work / "evaluations" / "tiny_editors" / folder.name / folder.name / "BEHEMOTH_EVAL.json").read_text()
        )
        # Reliability is judged on the facts this run edited, not on the whole forget split.
        assert sorted(map(int, results["edit_reliability"]["value_by_index"])) == sorted(edited)
    assert (output / "edits.png").exists()
    memit_row = next(
        line for line in (output / "results.md").read_text().splitlines() if line.startswith("| memit@4 |")
    )
    assert "–" not in memit_row.split("|")[3:]  # an editor's edit metrics are in the table


def test_a_lines_plot_needs_series_at_points(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(EDITORS_EXPERIMENT.replace("name: memit@1,", "name: memit-1,"))
    with pytest.raises(ValueError, match="`<series>@<point>`.*'memit-1'"):
        Experiment.load(path)


def test_an_argument_added_since_a_run_was_made_does_not_make_it_again(tmp_path, tiny_work, caplog):
    command, _, _, run = _one_run(tmp_path, tiny_work)
    key_file = run.with_name(run.name + ".key.json")
    stamp = (run / "model.safetensors").stat().st_mtime_ns
    # As an older package wrote it: no `example_form` (added later; its default keeps the old behaviour).
    key = json.loads(key_file.read_text())
    del key["example_form"]
    key_file.write_text(json.dumps(key))
    with caplog.at_level(logging.WARNING, logger="behemoth_hf.reuse"):
        assert main(command) == 0
    assert "making it again" not in caplog.text
    assert (run / "model.safetensors").stat().st_mtime_ns == stamp
    # A value that differs from the default is a different run.
    key_file.write_text(json.dumps({**key, "example_form": "question"}))
    with caplog.at_level(logging.WARNING, logger="behemoth_hf.reuse"):
        assert main(command) == 0
    assert "example_form: 'question' -> 'prompt'" in caplog.text

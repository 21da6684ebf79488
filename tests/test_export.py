"""OpenUnlearning (TOFU-shaped) and EasyEdit exports of generated worlds."""

import json
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from transformers import AutoTokenizer

from behemoth_hf import export, quickstart
from behemoth_hf.cli import main
from behemoth_hf.config import make_config
from behemoth_hf.export import TEMPLATE_ARGS, check_template, export_easyedit, export_openunlearning
from behemoth_hf.generate import generate_dataset


BASE = ["question", "answer"]
PERTURBED = ["question", "answer", "paraphrased_answer", "paraphrased_question", "perturbed_answer"]
EASYEDIT_KEYS = {
    "case_id",
    "prompt",
    "subject",
    "target_new",
    "ground_truth",
    "rephrase_prompt",
    "locality",
    "portability",
}


@pytest.fixture(scope="module")
def worlds(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("worlds")
    return {
        "tiny": generate_dataset(make_config("tiny", repeats=2), root / "tiny", progress=False),
        # Nested: object -> nested-object facts (world_facts) and a `dependent` split (portability).
        "nested": generate_dataset(
            make_config("tiny", num_nested_objects=5, num_perturbed=4, repeats=2), root / "nested", progress=False
        ),
    }


@pytest.fixture(scope="module")
def exports(worlds, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("exports")
    return {name: export_openunlearning(folder, root / name) for name, folder in worlds.items()}


def _split(folder: Path, split: str) -> pa.Table:
    files = sorted((folder / "data").glob(f"{split}-*.parquet"))
    return pa.concat_tables([pq.read_table(path) for path in files]) if files else None


def _pairs(table: pa.Table) -> list[tuple[str, str]]:
    return list(zip(table.column("prompt").to_pylist(), table.column("answer").to_pylist(), strict=True))


# ---------------------------------------------------------------------------------------------- OpenUnlearning
@pytest.mark.parametrize("world", ["tiny", "nested"])
def test_every_config_loads_with_exact_fields_and_rows(world, worlds, exports, tmp_path):
    folder, output = worlds[world], exports[world]
    forget, retain, holdout = _split(folder, "forget"), _split(folder, "retain"), _split(folder, "holdout")
    dependent = _split(folder, "dependent")
    dependent_rows = dependent.num_rows if dependent is not None else 0
    num_perturbed = make_config("tiny").num_perturbed if world == "tiny" else 4
    expected = {
        "full": (BASE, forget.num_rows + retain.num_rows + dependent_rows),
        "forget10": (BASE, forget.num_rows),
        "retain90": (BASE, retain.num_rows + dependent_rows),
        "forget10_perturbed": (PERTURBED, forget.num_rows),
        "retain_perturbed": (PERTURBED, min(400, retain.num_rows)),
        "holdout10": (BASE, holdout.num_rows),
        "real_authors_perturbed": (PERTURBED, 100),
        "world_facts_perturbed": (PERTURBED, 30 if world == "nested" else 100),
    }
    assert datasets.get_dataset_config_names(str(output)) == list(expected)
    for name, (fields, rows) in expected.items():
        plain = datasets.load_dataset(
            "parquet", data_files=str(output / name / "train-*.parquet"), cache_dir=str(tmp_path / "plain")
        )
        by_name = datasets.load_dataset(str(output), name, cache_dir=str(tmp_path / "named"))
        assert list(by_name) == list(plain) == ["train"]
        for loaded in (plain["train"], by_name["train"]):
            assert loaded.column_names == fields and "index" not in loaded.column_names
            assert loaded.num_rows == rows
            if "perturbed_answer" in fields:
                assert {len(answers) for answers in loaded["perturbed_answer"]} == {num_perturbed}
            assert all(loaded["question"]) and all(loaded["answer"])
        assert not (pq.read_schema(next((output / name).glob("*.parquet"))).metadata or {}).get(b"huggingface")


def test_rows_are_the_source_facts(worlds, exports, tmp_path):
    folder, output = worlds["nested"], exports["nested"]
    forget, retain, holdout = _split(folder, "forget"), _split(folder, "retain"), _split(folder, "holdout")
    dependent = _split(folder, "dependent")

    def load(name):
        return datasets.load_dataset(str(output), name, split="train", cache_dir=str(tmp_path))

    def pairs(dataset):
        return list(zip(dataset["question"], dataset["answer"], strict=True))

    trained = pa.concat_tables([forget, retain, dependent]).sort_by("fact_id")
    assert pairs(load("full")) == _pairs(trained)
    assert pairs(load("forget10")) == _pairs(forget)
    assert pairs(load("retain90")) == _pairs(pa.concat_tables([retain, dependent]).sort_by("fact_id"))
    assert pairs(load("holdout10")) == _pairs(holdout)
    perturbed = load("forget10_perturbed")
    assert perturbed.to_list() == [
        {
            "question": row["prompt"],
            "answer": row["answer"],
            "paraphrased_answer": row["paraphrased_answer"],
            "paraphrased_question": row["paraphrased_question"],
            "perturbed_answer": row["perturbed_answer"],
        }
        for row in forget.to_pylist()
    ]
    assert set(pairs(load("retain_perturbed"))) <= set(_pairs(retain))
    # General knowledge: retain facts of subjects never forgotten; world facts are object -> nested-object facts.
    forgotten = set(forget.column("subject").to_pylist())
    retain_by_pair = {(row["prompt"], row["answer"]): row for row in retain.to_pylist()}
    real_authors = [retain_by_pair[pair] for pair in pairs(load("real_authors_perturbed"))]
    assert all(row["subject"] not in forgotten and row["subject_id"] >= 0 for row in real_authors)
    world_facts = [retain_by_pair[pair] for pair in pairs(load("world_facts_perturbed"))]
    assert {row["dependency"] for row in world_facts} == {"nested_object"}


def test_export_is_deterministic_and_a_datasetdict_gives_the_same_configs(worlds, exports, tmp_path):
    folder = worlds["tiny"]
    again = export_openunlearning(folder, tmp_path / "again")
    source = datasets.load_dataset(str(folder), cache_dir=str(tmp_path / "cache"))
    tokenizer = AutoTokenizer.from_pretrained(folder / "tokenizer")
    from_dict = export_openunlearning(source, tmp_path / "from-dict", tokenizer=tokenizer)

    def data_files(root):
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.glob("*/*.parquet"))}

    assert data_files(again) == data_files(exports["tiny"]) == data_files(from_dict)
    assert (again / "README.md").read_text() == (exports["tiny"] / "README.md").read_text()


def test_template_tags_round_trip_with_the_world_tokenizer(worlds, exports, monkeypatch):
    model_config = yaml.safe_load((exports["tiny"] / "configs" / "model" / "Behemoth.yaml").read_text())
    assert model_config["template_args"] == TEMPLATE_ARGS and TEMPLATE_ARGS["apply_chat_template"] is False
    tokenizer = AutoTokenizer.from_pretrained(worlds["tiny"] / "tokenizer")
    row = _split(worlds["tiny"], "forget").to_pylist()[0]
    tags = TEMPLATE_ARGS
    prompt = tags["user_start_tag"] + row["prompt"] + tags["user_end_tag"] + tags["asst_start_tag"]
    prompt_ids = tokenizer(prompt)["input_ids"]
    full_ids = tokenizer(prompt + row["answer"])["input_ids"]
    assert full_ids[: len(prompt_ids)] == prompt_ids and len(full_ids) == len(prompt_ids) + 1
    assert tokenizer.decode(full_ids) == f"{row['prompt']} {row['answer']}"
    assert tokenizer.unk_token_id not in full_ids

    # A TOFU-style English tag is not in the synthetic vocabulary: the check (run by every export) refuses it.
    monkeypatch.setitem(export.TEMPLATE_ARGS, "user_start_tag", "Question: ")
    with pytest.raises(ValueError, match="outside the vocabulary"):
        check_template(tokenizer, [row["prompt"]], [row["answer"]])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        export_openunlearning(worlds["tiny"], Path(str(exports["tiny"]) + "-bad"))
    assert not Path(str(exports["tiny"]) + "-bad").exists()


def test_config_names_can_be_chosen_and_are_validated(worlds, tmp_path):
    output = export_openunlearning(
        worlds["tiny"], tmp_path / "named", forget_name="forget05", retain_name="retain95", holdout_name="holdout05"
    )
    names = datasets.get_dataset_config_names(str(output))
    assert {"forget05", "retain95", "forget05_perturbed", "holdout05"} <= set(names)
    assert json.loads((output / "behemoth_export.json").read_text())["forget_split"] == "forget05"
    with pytest.raises(ValueError, match="`forget_name`"):
        export_openunlearning(worlds["tiny"], tmp_path / "bad", forget_name="forget 10")
    with pytest.raises(ValueError, match="must differ"):
        export_openunlearning(worlds["tiny"], tmp_path / "bad", retain_name="full")
    assert not (tmp_path / "bad").exists()


def test_bad_inputs_fail_before_anything_is_written(worlds, exports, tmp_path, monkeypatch):
    with pytest.raises(FileExistsError, match="`output_dir`"):
        export_openunlearning(worlds["tiny"], exports["tiny"])
    with pytest.raises(FileNotFoundError, match="`dataset`"):
        export_openunlearning(tmp_path / "missing", tmp_path / "out")
    with pytest.raises(TypeError, match="`dataset`"):
        export_openunlearning(42, tmp_path / "out")
    with pytest.raises(ValueError, match="`split`"):
        export_easyedit(worlds["tiny"], tmp_path / "out.json", split="dependent")  # tiny has no dependent facts
    assert list(tmp_path.iterdir()) == []

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(export, "_write_openunlearning_configs", interrupt)  # after the data files are written
    with pytest.raises(KeyboardInterrupt):
        export_openunlearning(worlds["tiny"], tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


# OpenUnlearning's configs. CI does not run OpenUnlearning (benchmarks/interop_openunlearning.py does); these
# check what OU reads from them, so a change that would break OU fails here.
# Every dataset copy in OU's composed default TOFU eval config (configs/eval/tofu.yaml @ d3d7cf9, as Hydra
# composes it: each metric carries the datasets of the metrics it pre-computes), and the config it names.
OU_DATASET_NODES = {
    "forget_truth_ratio.pre_compute.forget_Q_A_PARA_Prob.datasets.TOFU_QA_forget_para": "{forget}_perturbed",
    "forget_truth_ratio.pre_compute.forget_Q_A_PERT_Prob.datasets.TOFU_QA_forget_pert": "{forget}_perturbed",
    "forget_quality.pre_compute.forget_truth_ratio.pre_compute.forget_Q_A_PARA_Prob.datasets.TOFU_QA_forget_para": "{forget}_perturbed",
    "forget_quality.pre_compute.forget_truth_ratio.pre_compute.forget_Q_A_PERT_Prob.datasets.TOFU_QA_forget_pert": "{forget}_perturbed",
    "forget_Q_A_Prob.datasets.TOFU_QA_forget": "{forget}_perturbed",
    "forget_Q_A_ROUGE.datasets.TOFU_QA_forget": "{forget}_perturbed",
    "model_utility.pre_compute.retain_Q_A_Prob.datasets.TOFU_QA_retain_eval": "retain_perturbed",
    "model_utility.pre_compute.retain_Q_A_ROUGE.datasets.TOFU_QA_retain_eval": "retain_perturbed",
    "model_utility.pre_compute.retain_Truth_Ratio.pre_compute.retain_Q_A_PARA_Prob.datasets.TOFU_QA_retain_para": "retain_perturbed",
    "model_utility.pre_compute.retain_Truth_Ratio.pre_compute.retain_Q_A_PERT_Prob.datasets.TOFU_QA_retain_pert": "retain_perturbed",
    **{
        f"model_utility.pre_compute.{kind}_{metric}.pre_compute.{kind}_Q_A_{prob}.datasets.TOFU_QA_{kind}{suffix}": name
        for kind, name in (("ra", "real_authors_perturbed"), ("wf", "world_facts_perturbed"))
        for metric in ("Q_A_Prob_normalised", "Truth_Ratio")
        for prob, suffix in (("Prob", ""), ("PERT_Prob", "_pert"))
    },
    "model_utility.pre_compute.ra_Q_A_ROUGE.datasets.TOFU_QA_ra": "real_authors_perturbed",
    "model_utility.pre_compute.wf_Q_A_ROUGE.datasets.TOFU_QA_wf": "world_facts_perturbed",
    "privleak.pre_compute.mia_min_k.datasets.TOFU_QA_forget": "{forget}_perturbed",
    "privleak.pre_compute.mia_min_k.datasets.TOFU_QA_holdout": "{holdout}",
    "extraction_strength.datasets.TOFU_QA_forget": "{forget}_perturbed",
}
# The columns OU's QADataset reads from each config (question_key -> answer_key of its metric).
OU_ANSWER_KEYS = {
    "TOFU_QA_forget_para": "paraphrased_answer",
    "TOFU_QA_forget_pert": "perturbed_answer",
    "TOFU_QA_retain_para": "paraphrased_answer",
    "TOFU_QA_retain_pert": "perturbed_answer",
    "TOFU_QA_ra_pert": "perturbed_answer",
    "TOFU_QA_wf_pert": "perturbed_answer",
}


def _ou_config(export_dir: Path, relative: str) -> tuple[str, dict]:
    text = (export_dir / "configs" / relative).read_text()
    return text, yaml.safe_load(text)


def _dataset_nodes(node: dict, path: str = "") -> dict[str, dict]:
    """path -> `args` of every dataset copy below `node` (OU's `datasets: {NAME: {args: {hf_args: ...}}}`)."""
    found = {}
    for key, value in node.items():
        if not isinstance(value, dict):
            continue
        where = f"{path}.{key}" if path else key
        if "hf_args" in value.get("args", {}):
            found[where] = value["args"]
        found.update(_dataset_nodes(value, where))
    return found


def _resolve(value: str, experiment: dict) -> str:
    """OmegaConf's `${key}` interpolation of top-level keys, the only form the experiments use for paths."""
    for key, setting in experiment.items():
        value = value.replace(f"${{{key}}}", str(setting))
    assert "${" not in value, value
    return value


@pytest.mark.parametrize("world", ["tiny", "nested"])
def test_openunlearning_eval_experiment_points_every_dataset_copy_at_the_export(world, exports, tmp_path):
    output = exports[world]
    text, experiment = _ou_config(output, "experiment/eval/behemoth/default.yaml")
    # Without this first line Hydra would nest the experiment under `experiment.eval.behemoth`.
    assert text.startswith("# @package _global_\n")
    assert experiment["defaults"] == [{"override /model": "Behemoth"}, {"override /eval": "tofu"}]
    assert (output / "configs" / "model" / "Behemoth.yaml").is_file()
    # The only command-line settings: the two paths (OU's task_name names the run).
    assert experiment["behemoth_data_dir"] == experiment["behemoth_model_dir"] == "???"
    model_args = experiment["model"]["model_args"]
    assert model_args["pretrained_model_name_or_path"] == "${behemoth_model_dir}"
    assert experiment["model"]["tokenizer_args"]["pretrained_model_name_or_path"] == "${behemoth_model_dir}"
    assert model_args["device_map"] != "cuda"  # OU's eval.yaml default; there is no GPU here

    tofu = experiment["eval"]["tofu"]
    assert {tofu[key] for key in ("forget_split", "holdout_split", "retain_logs_path")} == {
        "${forget_split}",
        "${holdout_split}",
        "${retain_logs_path}",
    }
    nodes = _dataset_nodes(tofu["metrics"])
    assert set(nodes) == set(OU_DATASET_NODES)
    settings = {**experiment, "behemoth_data_dir": str(output)}
    names = {"forget": experiment["forget_split"], "holdout": experiment["holdout_split"]}
    available = datasets.get_dataset_config_names(str(output))
    for path, args in nodes.items():
        assert args == {"hf_args": {"path": "${behemoth_data_dir}"}}, path
        config = OU_DATASET_NODES[path].format(**names)
        assert config in available
        loaded = datasets.load_dataset(
            _resolve(args["hf_args"]["path"], settings), config, split="train", cache_dir=str(tmp_path)
        )
        assert {"question", OU_ANSWER_KEYS.get(path.rsplit(".", 1)[1], "answer")} <= set(loaded.column_names)
    assert experiment["retain_logs_path"] is None and experiment["question_key"] == "question"


def test_openunlearning_unlearn_experiment_reads_the_export_and_runs_on_cpu(worlds, exports, tmp_path):
    from transformers import TrainingArguments

    output = exports["tiny"]
    text, experiment = _ou_config(output, "experiment/unlearn/behemoth/default.yaml")
    _, eval_experiment = _ou_config(output, "experiment/eval/behemoth/default.yaml")
    assert text.startswith("# @package _global_\n")
    assert {"override /model": "Behemoth"} in experiment["defaults"]
    assert {"override /trainer": "GradAscent"} in experiment["defaults"]  # trainer=NPO on the command line replaces it
    # Evaluation during training (off by default) would read the same dataset copies.
    assert experiment["eval"] == eval_experiment["eval"]
    settings = {**experiment, "behemoth_data_dir": str(output)}
    data = experiment["data"]
    assert data["anchor"] == "forget"
    for role, split in (("forget", "forget10"), ("retain", "retain90")):
        hf_args = data[role][f"TOFU_QA_{role}"]["args"]["hf_args"]
        assert _resolve(hf_args["name"], settings) == split
        rows = datasets.load_dataset(
            _resolve(hf_args["path"], settings), split, split="train", cache_dir=str(tmp_path)
        )
        assert rows.column_names == ["question", "answer"]

    args = dict(experiment["trainer"]["args"])
    # OU divides by the GPU count when warmup_epochs is truthy; the other three need a GPU, bitsandbytes or tensorboard.
    assert args.pop("warmup_epochs") == 0
    assert (args["optim"], args["bf16"], args["report_to"]) == ("adamw_torch", False, "none")
    assert (args["do_eval"], args["eval_strategy"], args["eval_on_start"]) == (False, "no", False)
    recipe = yaml.safe_load(Path(quickstart.recipe("gradient_ascent.yaml")).read_text())
    assert args["learning_rate"] == recipe["learning_rate"] and args["num_train_epochs"] == recipe["num_train_epochs"]
    # OU builds TrainingArguments(**args) over its finetune.yaml (which names output_dir): every key must exist.
    training_args = TrainingArguments(output_dir=str(tmp_path / "out"), **args)
    assert training_args.per_device_train_batch_size * training_args.gradient_accumulation_steps == 32


def test_openunlearning_experiments_use_the_chosen_config_names(worlds, tmp_path):
    output = export_openunlearning(
        worlds["tiny"], tmp_path / "named", forget_name="forget05", retain_name="retain95", holdout_name="holdout05"
    )
    for experiment in ("eval", "unlearn"):
        _, config = _ou_config(output, f"experiment/{experiment}/behemoth/default.yaml")
        assert (config["forget_split"], config["holdout_split"]) == ("forget05", "holdout05")
    assert config["retain_split"] == "retain95"
    _, model = _ou_config(output, "model/Behemoth.yaml")
    assert set(model) == {"model_args", "tokenizer_args", "template_args"}
    assert model["model_args"] == {"pretrained_model_name_or_path": "???", "torch_dtype": "float32"}


# ---------------------------------------------------------------------------------------------- EasyEdit
@pytest.mark.parametrize("world", ["tiny", "nested"])
def test_easyedit_requests(world, worlds, tmp_path):
    folder = worlds[world]
    output = export_easyedit(folder, tmp_path / "edits.json")
    records = json.loads(output.read_text())
    forget, retain = _split(folder, "forget"), _split(folder, "retain")
    assert [record["case_id"] for record in records] == forget.column("fact_id").to_pylist()
    retain_by_prompt = {row["prompt"]: row for row in retain.to_pylist()}
    dependent = _split(folder, "dependent")
    dependents = {row["depends_on"]: row for row in dependent.to_pylist()} if dependent is not None else {}
    for record, row in zip(records, forget.to_pylist(), strict=True):
        assert set(record) == EASYEDIT_KEYS
        assert record["subject"] in record["prompt"] and record["prompt"] == row["prompt"]
        assert record["ground_truth"] == row["answer"] != record["target_new"] == row["target_new"]
        assert record["rephrase_prompt"] == row["paraphrased_question"]
        neighbour = retain_by_prompt[record["locality"]["neighborhood"]["prompt"]]
        assert record["locality"]["neighborhood"]["ground_truth"] == neighbour["answer"]
        assert neighbour["subject"] != row["subject"] and neighbour["relation_id"] == row["relation_id"]
        if world == "nested":
            dependent_row = dependents[row["fact_id"]]
            assert record["portability"] == {
                "one_hop": {"prompt": dependent_row["prompt"], "ground_truth": dependent_row["propagated_answer"]}
            }
        else:
            assert record["portability"] == {}

    loaded = datasets.load_dataset("json", data_files=str(output), split="train", cache_dir=str(tmp_path / "cache"))
    assert loaded.num_rows == forget.num_rows and set(loaded.column_names) == EASYEDIT_KEYS
    assert export_easyedit(folder, tmp_path / "again.json").read_bytes() == output.read_bytes()
    with pytest.raises(FileExistsError, match="`output_file`"):
        export_easyedit(folder, output)


def test_easyedit_from_another_split_and_seed(worlds, tmp_path):
    retain_edits = json.loads(export_easyedit(worlds["nested"], tmp_path / "retain.json", split="retain").read_text())
    assert len(retain_edits) == _split(worlds["nested"], "retain").num_rows
    # Inherited facts of retained subjects depend on retained base facts: portability comes from them.
    assert any(record["portability"] for record in retain_edits)
    seeded = json.loads(export_easyedit(worlds["nested"], tmp_path / "seed1.json", seed=1).read_text())
    default = json.loads(export_easyedit(worlds["nested"], tmp_path / "seed0.json").read_text())
    assert [r["prompt"] for r in seeded] == [r["prompt"] for r in default]
    assert [r["locality"] for r in seeded] != [r["locality"] for r in default]


# ---------------------------------------------------------------------------------------------- CLI
def test_cli_handlers(worlds, tmp_path, capsys):
    assert main(["export", "openunlearning", "--dataset", str(worlds["tiny"]), "--output", str(tmp_path / "ou")]) == 0
    assert (tmp_path / "ou" / "forget10" / "train-00000-of-00001.parquet").exists()
    argv = ["easyedit", "--dataset", str(worlds["tiny"]), "--output", str(tmp_path / "ee.json"), "--split", "holdout"]
    assert export.export_command(argv) == 0
    assert "wrote" in capsys.readouterr().out
    assert [record["case_id"] for record in json.loads((tmp_path / "ee.json").read_text())] == list(range(120, 132))


def test_a_named_config_exports_without_a_folder(worlds, tmp_path):
    named = export_easyedit("tiny", tmp_path / "named.json")  # built with the datasets builder, not from a folder
    # Repeats only change `train`: the fact rows, hence the requests, are those of the generated folder.
    assert named.read_bytes() == export_easyedit(worlds["tiny"], tmp_path / "folder.json").read_bytes()


def test_oracle_eval_log_is_reindexed_by_forget_row_position(worlds, tmp_path):
    from behemoth_hf.data import open_dataset
    from behemoth_hf.metrics import metric_result, write_results

    forget_ids = list(open_dataset(str(worlds["tiny"])).fact_splits["forget"]["fact_id"])
    ratios = [0.1 * (i + 1) for i in range(len(forget_ids))]
    results = {"forget_truth_ratio": metric_result(0.5, ratios, indices=forget_ids), "mia_min_k": metric_result(0.52)}
    eval_path, _ = write_results(results, tmp_path / "oracle-eval", "BEHEMOTH")
    output = export_openunlearning(worlds["tiny"], tmp_path / "ou", oracle_eval=eval_path)
    log = json.loads((output / "oracle" / "TOFU_EVAL.json").read_text())
    assert log["mia_min_k"]["agg_value"] == 0.52
    scores = log["forget_truth_ratio"]["value_by_index"]
    assert [scores[str(row)]["score"] for row in range(len(forget_ids))] == pytest.approx(ratios)
    # Row r of the exported forget config is forget fact r: the index OpenUnlearning adds.
    exported = pq.read_table(output / "forget10")["question"].to_pylist()
    assert exported == list(open_dataset(str(worlds["tiny"])).fact_splits["forget"]["prompt"])

    wrong = {
        "forget_truth_ratio": metric_result(0.5, ratios, indices=[i + 1 for i in forget_ids]),
        "mia_min_k": metric_result(0.5),
    }
    wrong_path, _ = write_results(wrong, tmp_path / "wrong", "BEHEMOTH")
    with pytest.raises(ValueError, match="not computed on this world's forget split"):
        export_openunlearning(worlds["tiny"], tmp_path / "ou2", oracle_eval=wrong_path)
    assert not (tmp_path / "ou2").exists()

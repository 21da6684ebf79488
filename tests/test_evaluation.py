import json
from pathlib import Path

import matplotlib.pyplot as plt
import pytest

from behemoth_hf import report as report_module
from behemoth_hf.cli import main
from behemoth_hf.config import make_config
from behemoth_hf.data import open_dataset
from behemoth_hf.evaluation import METRIC_NAMES, OU_UTILITY_METRICS, EvaluationArguments, run_evaluation
from behemoth_hf.generate import generate_dataset
from behemoth_hf.metrics import read_eval_json


TINY_YAML = str(Path(__file__).parents[1] / "trainer_configs" / "pretrain_tiny.yaml")


def _pretrain(dataset, output, *extra):
    assert main(["pretrain", "--config", TINY_YAML, "--dataset", str(dataset), "--output", str(output), *extra]) == 0
    return str(output)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    pretrained = _pretrain("tiny", root / "pretrained")
    oracle = _pretrain("tiny", root / "oracle-run", "--exclude-split", "forget")
    unlearned = root / "ga"
    assert (
        main(
            [
                "unlearn",
                "--method",
                "gradient_ascent",
                "--model",
                pretrained,
                "--dataset",
                "tiny",
                "--output",
                str(unlearned),
                "--learning-rate",
                "1e-3",
                "--num-train-epochs",
                "10",
                "--per-device-train-batch-size",
                "8",
            ]
        )
        == 0
    )
    return {"pretrained": pretrained, "oracle": oracle, "ga": str(unlearned)}


@pytest.fixture(scope="module")
def evaluated(models, tmp_path_factory):
    output = tmp_path_factory.mktemp("eval")
    args = EvaluationArguments(
        model=[models["pretrained"], models["ga"]],
        dataset="tiny",
        oracle=models["oracle"],
        base=models["pretrained"],
        output_dir=str(output),
    )
    return output, run_evaluation(args)


def test_pretrained_oracle_and_unlearned_models_read_as_they_should(evaluated):
    _, results = evaluated
    pretrained, oracle, unlearned = results["pretrained"], results["oracle"], results["ga"]
    assert pretrained["forget_accuracy"]["agg_value"] >= 0.9 and pretrained["retain_accuracy"]["agg_value"] >= 0.9
    assert oracle["forget_accuracy"]["agg_value"] <= 0.5 and oracle["retain_accuracy"]["agg_value"] >= 0.9
    assert oracle["forget_quality"]["agg_value"] == 1.0  # the oracle against itself
    assert pretrained["forget_quality"]["agg_value"] < 0.05
    assert unlearned["forget_accuracy"]["agg_value"] <= 0.5
    # Membership: the memorised forget facts separate from never-seen holdout facts; the oracle's do not.
    assert pretrained["mia_min_k"]["agg_value"] > 0.9 and pretrained["mia_loss"]["agg_value"] > 0.9
    assert abs(oracle["mia_min_k"]["agg_value"] - 0.5) < 0.35
    assert pretrained["privleak"]["agg_value"] < -50  # under-unlearned, in OpenUnlearning's sign convention
    assert pretrained["edit_locality"]["agg_value"] == 1.0  # the base model against itself
    assert unlearned["edit_locality"]["agg_value"] < pretrained["edit_locality"]["agg_value"]
    assert 0 <= unlearned["model_utility"]["agg_value"] < pretrained["model_utility"]["agg_value"]
    # Scored as OpenUnlearning scores the export: the answer then <eos>, which a trained model puts there, so its
    # answer probability stays high (without a learnt <eos> it would be ~0.01) and its greedy answers stop.
    assert pretrained["forget_Q_A_Prob"]["agg_value"] > 0.7 and pretrained["retain_Q_A_Prob"]["agg_value"] > 0.7
    assert pretrained["forget_Q_A_ROUGE"]["agg_value"] >= 0.9 and pretrained["extraction_strength"]["agg_value"] >= 0.9
    assert unlearned["forget_Q_A_ROUGE"]["agg_value"] < pretrained["forget_Q_A_ROUGE"]["agg_value"]
    # OU's model utility over the export's sets, next to ours.
    for name in (*OU_UTILITY_METRICS, "ou_model_utility"):
        assert 0 <= pretrained[name]["agg_value"] <= 1, name
    assert pretrained["ou_model_utility"]["agg_value"] > 0.5
    assert oracle["ou_model_utility"]["agg_value"] > unlearned["ou_model_utility"]["agg_value"]


def test_results_have_openunlearning_shape_and_report_files(evaluated, models):
    output, _ = evaluated
    forget_ids = {str(fact_id) for fact_id in open_dataset("tiny").fact_splits["forget"]["fact_id"]}
    for name in ("pretrained", "oracle", "ga"):
        results = read_eval_json(output / name / "BEHEMOTH_EVAL.json")
        truth_ratios = results["forget_truth_ratio"]["value_by_index"]
        assert set(truth_ratios) == forget_ids  # indexed by fact_id, stable across models
        assert all(isinstance(item["score"], float) for item in truth_ratios.values())
        summary = json.loads((output / name / "BEHEMOTH_SUMMARY.json").read_text())
        assert summary["forget_accuracy"] == results["forget_accuracy"]["agg_value"]
        assert set(summary) - {"propagation_outcome"} <= set(METRIC_NAMES)  # the names experiments may use
    combined = json.loads((output / "summary.json").read_text())
    assert set(combined["summaries"]) == {"oracle", "pretrained", "ga"}
    report = (output / "report.md").read_text()
    assert "| `oracle` |" in report and "| `ga` |" in report and "forget quality" in report
    assert "edit reliability" not in report  # no model here was made by `behemoth edit`
    for plot in ("accuracy.png", "truth_ratio.png", "forget_vs_utility.png"):
        assert (output / plot).stat().st_size > 1000


def _plotted_labels(monkeypatch) -> dict[str, list[str]]:
    """Legend labels of every plot the report saves, by file name (figures inspected instead of written)."""
    labels: dict[str, list[str]] = {}

    def inspect(figure, path):
        labels[path.name] = [text.get_text() for axis in figure.axes for text in axis.get_legend().get_texts()]
        plt.close(figure)
        return path

    monkeypatch.setattr(report_module, "_save", inspect)
    return labels


def test_an_oracle_eval_file_works_like_the_oracle_model(evaluated, models, tmp_path, monkeypatch):
    output, results = evaluated
    labels = _plotted_labels(monkeypatch)
    args = EvaluationArguments(
        model=[models["pretrained"], models["ga"]],
        dataset="tiny",
        output_dir=str(tmp_path),
        oracle=str(output / "oracle" / "BEHEMOTH_EVAL.json"),
    )
    again = run_evaluation(args)
    assert again["pretrained"]["forget_quality"] == results["pretrained"]["forget_quality"]
    assert again["pretrained"]["privleak"] == results["pretrained"]["privleak"]
    # The oracle is in the report and in every plot, as when it is given as a model folder.
    assert list(again) == ["oracle", "pretrained", "ga"]
    oracle_row = next(line for line in (tmp_path / "report.md").read_text().splitlines() if "| `oracle` |" in line)
    assert f"{results['oracle']['forget_accuracy']['agg_value']:.3f}" in oracle_row
    assert set(labels) == {"accuracy.png", "truth_ratio.png", "forget_vs_utility.png"}
    assert all("oracle" in plotted for plotted in labels.values()), labels
    assert read_eval_json(tmp_path / "oracle" / "BEHEMOTH_EVAL.json") == read_eval_json(args.oracle)


def test_propagation_to_nested_facts_after_an_edit(tmp_path):
    dataset = generate_dataset(
        make_config("tiny", num_nested_objects=5, num_perturbed=4), tmp_path / "nested", progress=False
    )
    pretrained = _pretrain(dataset, tmp_path / "pretrained")
    edited = tmp_path / "edited"
    assert (
        main(
            [
                "edit",
                "--model",
                pretrained,
                "--dataset",
                str(dataset),
                "--output",
                str(edited),
                "--learning-rate",
                "1e-3",
                "--num-train-epochs",
                "10",
                "--per-device-train-batch-size",
                "8",
            ]
        )
        == 0
    )
    output = tmp_path / "eval"
    assert (
        main(["evaluate", "--model", pretrained, str(edited), "--dataset", str(dataset), "--output", str(output)]) == 0
    )
    for name in ("pretrained", "edited"):
        results = read_eval_json(output / name / "BEHEMOTH_EVAL.json")
        rates = [results[f"propagation_{o}"]["agg_value"] for o in ("kept", "followed", "broken", "ambiguous")]
        assert sum(rates) == pytest.approx(1.0)
        assert len(results["propagation_outcome"]["value_by_index"]) == 12  # inherited facts of 4 forget subjects x 3
        assert "edit_portability" in results
    edited_results = read_eval_json(output / "edited" / "BEHEMOTH_EVAL.json")
    assert edited_results["edit_reliability"]["agg_value"] >= 0.8
    # Edit metrics are reported for the edit run only.
    lines = (output / "report.md").read_text().splitlines()
    header, *rows = [line.split(" | ") for line in lines if line.startswith("| ")][:3]
    column = header.index("edit reliability")
    cells = {row[0].strip("| `"): row[column] for row in rows}
    assert cells["pretrained"] == "–" and float(cells["edited"]) >= 0.8


def test_bad_inputs(models, tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a saved model folder"):
        EvaluationArguments(model=[str(tmp_path)], dataset="tiny", output_dir=str(tmp_path / "o"))
    other = generate_dataset(make_config("tiny", seed=4, repeats=1), tmp_path / "other", progress=False)
    with pytest.raises(ValueError, match="does not match `dataset`"):
        run_evaluation(
            EvaluationArguments(model=[models["pretrained"]], dataset=str(other), output_dir=str(tmp_path / "o"))
        )
    with pytest.raises(FileNotFoundError, match="`oracle` .* does not exist"):
        EvaluationArguments(
            model=[models["pretrained"]], dataset="tiny", output_dir="o", oracle=str(tmp_path / "nope")
        )


def test_correlated_dependents_without_a_propagated_answer(tmp_path):
    # Correlated pairs that did not match have no implied answer: only those that did are scored for portability.
    config = make_config("tiny", correlated_pair=True, correlation_strength=0.5, forget_relation=0)
    dataset = generate_dataset(config, tmp_path / "correlated", progress=False)
    pretrained = _pretrain(dataset, tmp_path / "pretrained")
    output = tmp_path / "eval"
    assert main(["evaluate", "--model", pretrained, "--dataset", str(dataset), "--output", str(output)]) == 0
    results = read_eval_json(output / "pretrained" / "BEHEMOTH_EVAL.json")
    dependent = open_dataset(str(dataset)).fact_splits["dependent"]
    with_target = [fact for fact, answer in zip(dependent["fact_id"], dependent["propagated_answer"]) if answer]
    assert 0 < len(with_target) < len(dependent)
    assert set(results["edit_portability"]["value_by_index"]) == {str(fact) for fact in with_target}
    assert len(results["propagation_outcome"]["value_by_index"]) == len(dependent)
    rates = [results[f"propagation_{o}"]["agg_value"] for o in ("kept", "followed", "broken", "ambiguous")]
    assert sum(rates) == pytest.approx(1.0) and results["propagation_kept"]["agg_value"] >= 0.75

"""The `evaluate` wrappers load offline from their folder (HF_HUB_OFFLINE is set by conftest) and compute."""

from pathlib import Path

import pytest

import behemoth_hf.metrics as metrics
from behemoth_hf.metrics import EVALUATE_MODULES, evaluate_module_path


evaluate = pytest.importorskip("evaluate")


def test_module_folders_match_their_file_names():
    for name in EVALUATE_MODULES:
        folder = Path(evaluate_module_path(name))
        assert folder.is_absolute() and (folder / f"{name}.py").is_file()
    with pytest.raises(ValueError, match="`name` must be one of"):
        evaluate_module_path("rouge")


def test_public_names_exist():
    assert all(hasattr(metrics, name) for name in metrics.__all__)


def test_fact_accuracy_module():
    metric = evaluate.load(evaluate_module_path("fact_accuracy"))
    # 1["doka" == "doka "] + 1["finu" == "bako"] -> 1/2
    assert metric.compute(predictions=["doka", "finu"], references=["doka ", "bako"]) == {"accuracy": 0.5}
    assert metric.compute(predictions=[1, 2, 3], references=[1, 2, 4])["accuracy"] == pytest.approx(2 / 3)


def test_truth_ratio_module():
    metric = evaluate.load(evaluate_module_path("truth_ratio"))
    # item 0: R = exp(0.5 − 0.5) = 1 (OU epsilon makes it 1 − ~1e-10); item 1: exp(1 − mean(1.5, 2.5)) = e^-1
    result = metric.compute(correct_nll=[0.5, 1.0], perturbed_nll=[[0.5, 0.5], [1.5, 2.5]], epsilon=0.0)
    assert result["truth_ratios"] == pytest.approx([1.0, 0.36787944])
    assert result["truth_ratio"] == pytest.approx((1.0 + 0.36787944) / 2)
    retain = metric.compute(correct_nll=[0.5, 1.0], perturbed_nll=[[0.5, 0.5], [1.5, 2.5]], aggregator="true_better")
    assert retain["truth_ratio"] == pytest.approx((0.0 + 1 - 0.36787944) / 2)


def test_forget_quality_module():
    metric = evaluate.load(evaluate_module_path("forget_quality"))
    same = metric.compute(truth_ratios=[0.2, 0.5, 0.9], reference_truth_ratios=[0.9, 0.2, 0.5])
    assert same == {"forget_quality": 1.0, "ks_statistic": 0.0}
    # D = 1, p = 2 / C(6, 3) = 0.1; the reference may have another length
    different = metric.compute(truth_ratios=[1.0, 2.0, 3.0], reference_truth_ratios=[4.0, 5.0, 6.0])
    assert different["forget_quality"] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="`reference_truth_ratios` is required"):
        metric.compute(truth_ratios=[0.5])


def test_mia_auc_module_with_batches_and_privleak():
    metric = evaluate.load(evaluate_module_path("mia_auc"))
    metric.add_batch(scores=[0.1, 0.9], labels=[0, 1])
    metric.add_batch(scores=[0.2, 0.8], labels=[0, 1])
    assert metric.compute() == {"auc": 1.0}
    # privleak = 100 · ((1 − 1) − (1 − 0.5)) / 0.5 = −100
    result = metric.compute(scores=[0.1, 0.2, 0.8, 0.9], labels=[0, 0, 1, 1], reference_auc=0.5)
    assert result["auc"] == 1.0 and result["privleak"] == pytest.approx(-100.0)

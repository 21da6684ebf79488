"""OpenUnlearning-shaped result entries and *_EVAL.json / *_SUMMARY.json files."""

import json
import logging

import numpy as np
import pytest

from behemoth_hf.metrics.quality import forget_quality
from behemoth_hf.metrics.results import item_values, metric_result, read_eval_json, summary, write_results


def test_metric_result_from_numbers_gives_plain_python_scores():
    result = metric_result(np.float32(0.5), np.array([0.25, 0.75]))
    assert result == {"agg_value": 0.5, "value_by_index": {"0": {"score": 0.25}, "1": {"score": 0.75}}}
    assert type(result["agg_value"]) is float and type(result["value_by_index"]["0"]["score"]) is float


def test_metric_result_from_columns_rows_and_aggregate_only():
    columns = metric_result(0.4, {"prob": np.array([0.5, 0.25]), "avg_loss": [0.69, 1.39]}, indices=[10, 3])
    assert columns["value_by_index"] == {"10": {"prob": 0.5, "avg_loss": 0.69}, "3": {"prob": 0.25, "avg_loss": 1.39}}
    rows = metric_result(1.0, [{"score": np.int64(1)}], key="ignored")
    assert rows["value_by_index"] == {"0": {"score": 1}}
    assert metric_result(None) == {"agg_value": None}
    assert metric_result(0.3, [1, 2], key="prob")["value_by_index"]["1"] == {"prob": 2}


def test_metric_result_rejects_bad_inputs():
    with pytest.raises(ValueError, match="`indices` has 1 entries but `values` has 2"):
        metric_result(0.5, [0.1, 0.2], indices=[0])
    with pytest.raises(ValueError, match="`indices` must be unique"):
        metric_result(0.5, [0.1, 0.2], indices=[1, "1"])
    with pytest.raises(ValueError, match="`values` is empty"):
        metric_result(0.5, [])
    with pytest.raises(ValueError, match="`values` columns must have equal lengths"):
        metric_result(0.5, {"a": [1], "b": [1, 2]})
    with pytest.raises(ValueError, match=r"`values` must be one number per item \(1-D\)"):
        metric_result(0.5, [[0.1, 0.2]])
    with pytest.raises(ValueError, match="`indices` was given without `values`"):
        metric_result(0.5, indices=[0])


def test_write_and_read_round_trip(tmp_path):
    results = {
        "forget_truth_ratio": metric_result(0.6, [0.5, 0.9, 1.2], indices=[10, 2, 1]),
        "forget_quality": metric_result(1.0),
    }
    eval_path, summary_path = write_results(results, tmp_path / "out", "BEHEMOTH")
    assert eval_path.name == "BEHEMOTH_EVAL.json" and summary_path.name == "BEHEMOTH_SUMMARY.json"
    assert read_eval_json(eval_path) == results
    assert json.loads(summary_path.read_text()) == {"forget_truth_ratio": 0.6, "forget_quality": 1.0}
    assert summary(results) == {"forget_truth_ratio": 0.6, "forget_quality": 1.0}
    # values in index order 1, 2, 10 (numeric, not "1" < "10" < "2")
    np.testing.assert_array_equal(item_values(read_eval_json(eval_path)["forget_truth_ratio"]), [1.2, 0.9, 0.5])


def test_reference_log_feeds_forget_quality(tmp_path):
    oracle = [0.3, 0.8, 1.1, 0.6]
    eval_path, _ = write_results({"forget_truth_ratio": metric_result(0.7, oracle)}, tmp_path, "TOFU")
    reference = item_values(read_eval_json(eval_path)["forget_truth_ratio"])
    assert forget_quality(oracle, reference) == 1.0


def test_item_values_skips_missing_items_with_a_warning(caplog):
    result = {"agg_value": 0.5, "value_by_index": {"0": {"score": 0.5}, "1": None, "2": {"score": None}}}
    with caplog.at_level(logging.WARNING, logger="behemoth_hf.metrics.results"):
        np.testing.assert_array_equal(item_values(result), [0.5])
    assert "skipped 2 items" in caplog.text
    with pytest.raises(ValueError, match="`key` 'prob' is missing for index 0"):
        item_values(result, key="prob")
    with pytest.raises(ValueError, match="has no `value_by_index`"):
        item_values({"agg_value": 1.0})


def test_read_eval_json_rejects_bad_files(tmp_path):
    with pytest.raises(ValueError, match="is not a file"):
        read_eval_json(tmp_path / "missing_EVAL.json")
    bad = tmp_path / "bad_EVAL.json"
    bad.write_text(json.dumps({"forget_quality": {"value": 1.0}}))
    with pytest.raises(ValueError, match="metric 'forget_quality' must be a dict with an 'agg_value' key"):
        read_eval_json(bad)
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="is not valid JSON"):
        read_eval_json(bad)
    with pytest.raises(ValueError, match="`name` must be a non-empty file-name prefix"):
        write_results({}, tmp_path, "")

"""Result files in OpenUnlearning's shape, so OU tooling and retain-model logs interoperate (peers.md 1.5, 1.7).

`<NAME>_EVAL.json`: `{metric: {"agg_value": float | None, "value_by_index": {str(index): {key: value}}}}`
(`value_by_index` only for per-item metrics, as OU writes it); `<NAME>_SUMMARY.json`: `{metric: agg_value}`.
A retain-model `*_EVAL.json` is the reference for forget quality (`forget_truth_ratio.value_by_index.*.score`)
and privleak (`mia_min_k.agg_value`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike


logger = logging.getLogger(__name__)

MetricResult = dict[str, Any]
EvalResults = dict[str, MetricResult]
DEFAULT_VALUE_KEY = "score"


def metric_result(
    agg_value: float | None,
    values: ArrayLike | Mapping[str, ArrayLike] | Sequence[Mapping[str, Any]] | None = None,
    *,
    indices: Sequence[int | str] | None = None,
    key: str = DEFAULT_VALUE_KEY,
) -> MetricResult:
    """One metric's entry: `{"agg_value": ..., "value_by_index": {str(index): {...}}}`.

    `values` may be per-item numbers (stored as `{key: value}`, OU uses "score" for truth ratio, MIA, ES,
    EM), a mapping of equal-length columns (e.g. `{"prob": p, "avg_loss": l}`, as OU's `probability`), or a
    sequence of per-item dicts; None writes only `agg_value` (e.g. forget_quality, privleak). `indices`
    default to 0..n-1 (OU's dataset `index` column); they are written as strings, as in JSON.
    """
    result: MetricResult = {"agg_value": _plain(agg_value)}
    if values is None:
        if indices is not None:
            raise ValueError("`indices` was given without `values`.")
        return result
    rows = _rows(values, key)
    if indices is None:
        indices = range(len(rows))
    elif len(indices) != len(rows):
        raise ValueError(f"`indices` has {len(indices)} entries but `values` has {len(rows)} items.")
    names = [str(index) for index in indices]
    if len(set(names)) != len(names):
        raise ValueError("`indices` must be unique.")
    result["value_by_index"] = dict(zip(names, rows))
    return result


def summary(results: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The `*_SUMMARY.json` content: `{metric: agg_value}`."""
    _check_results(results, "results")
    return {name: result["agg_value"] for name, result in results.items()}


def write_results(results: Mapping[str, Mapping[str, Any]], output_dir: str | Path, name: str) -> tuple[Path, Path]:
    """Write `<output_dir>/<name>_EVAL.json` and `<name>_SUMMARY.json` (OU's file names); returns both paths."""
    _check_results(results, "results")
    if not name or "/" in name:
        raise ValueError(f"`name` must be a non-empty file-name prefix such as 'BEHEMOTH', got {name!r}.")
    directory = Path(output_dir)
    directory.mkdir(parents=True, exist_ok=True)
    eval_path, summary_path = directory / f"{name}_EVAL.json", directory / f"{name}_SUMMARY.json"
    plain = _plain(dict(results))
    eval_path.write_text(json.dumps(plain, indent=4) + "\n")
    summary_path.write_text(json.dumps(summary(plain), indent=4) + "\n")
    logger.info("Wrote %s and %s", eval_path, summary_path)
    return eval_path, summary_path


def read_eval_json(path: str | Path) -> EvalResults:
    """Read a `*_EVAL.json` of OU's shape (ours or OU's), checking that every metric has an `agg_value`."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"`path` {path} is not a file; pass the path of a *_EVAL.json.")
    try:
        results = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"`path` {path} is not valid JSON: {error}") from None
    _check_results(results, f"the content of {path}")
    return results


def item_values(result: Mapping[str, Any], key: str = DEFAULT_VALUE_KEY) -> np.ndarray:
    """Per-item `key` values of one metric entry, ordered by index (numeric indices numerically).

    E.g. `item_values(read_eval_json(p)["forget_truth_ratio"])` gives the oracle truth ratios that
    `quality.forget_quality` compares against. Items whose entry or value is None (OU writes None for
    items it could not score) are skipped with a warning.
    """
    by_index = result.get("value_by_index") if isinstance(result, Mapping) else None
    if not by_index:
        raise ValueError("`result` has no `value_by_index`; pass a per-item metric entry.")
    values, skipped = [], 0
    for index in sorted(by_index, key=_index_order):
        entry = by_index[index]
        if entry is not None and not isinstance(entry, Mapping):
            raise ValueError(f"`result` value_by_index[{index!r}] must be a dict, got {type(entry).__name__}.")
        if entry is None or entry.get(key) is None:
            if entry is not None and key not in entry:
                raise ValueError(f"`key` {key!r} is missing for index {index}; it has {sorted(entry)}.")
            skipped += 1
            continue
        values.append(entry[key])
    if skipped:
        logger.warning("item_values: skipped %d items with no %r value.", skipped, key)
    if not values:
        raise ValueError(f"`result` has no item with a {key!r} value.")
    return np.asarray(values, dtype=np.float64)


def _rows(values: ArrayLike | Mapping[str, ArrayLike] | Sequence[Mapping[str, Any]], key: str) -> list[dict[str, Any]]:
    if isinstance(values, Mapping):
        if not values:
            raise ValueError("`values` is an empty mapping; pass at least one column.")
        columns = {name: list(np.asarray(column).tolist()) for name, column in values.items()}
        lengths = {name: len(column) for name, column in columns.items()}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"`values` columns must have equal lengths, got {lengths}.")
        rows = [dict(zip(columns, items)) for items in zip(*columns.values())]
    elif len(values) and all(isinstance(row, Mapping) for row in values):
        rows = [dict(row) for row in values]
    else:
        array = np.asarray(values)
        if array.ndim != 1:
            raise ValueError(f"`values` must be one number per item (1-D), got shape {array.shape}.")
        rows = [{key: value} for value in array.tolist()]
    if not rows:
        raise ValueError("`values` is empty; pass at least one item (or None for an aggregate-only metric).")
    return [_plain(row) for row in rows]


def _plain(value: Any) -> Any:
    """Convert numpy scalars / arrays (recursively) to JSON-ready Python values."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


def _check_results(results: Any, what: str) -> None:
    if not isinstance(results, Mapping):
        raise ValueError(f"{what} must map metric names to entries, got {type(results).__name__}.")
    for name, result in results.items():
        if not isinstance(result, Mapping) or "agg_value" not in result:
            raise ValueError(f"{what}: metric {name!r} must be a dict with an 'agg_value' key.")
        by_index = result.get("value_by_index")
        if by_index is not None and not isinstance(by_index, Mapping):
            raise ValueError(f"{what}: metric {name!r} has a 'value_by_index' that is not a dict.")


def _index_order(index: str) -> tuple[int, int | str]:
    return (0, int(index)) if str(index).lstrip("-").isdigit() else (1, str(index))

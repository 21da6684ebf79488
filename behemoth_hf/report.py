"""The evaluation report: a markdown table of the headline metrics and matplotlib plots.

Plots: fact accuracy per split and model; forget-set truth-ratio distributions of each model against
the oracle (what forget quality tests); and, when several models are given, forgetting against
utility (each model a point: the trade-off every unlearning method is judged on). The oracle is in
every table and plot whether it was given as a model folder or as its results file, drawn apart
(hatched bars, a black dashed line, a star), and a model missing a metric (an OpenUnlearning results
file has only some) is left out of that plot only.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from behemoth_hf import metrics  # noqa: E402
from behemoth_hf.data import BehemothData  # noqa: E402
from behemoth_hf.evaluation import ACCURACY_SPLITS, EDIT_METRICS  # noqa: E402
from behemoth_hf.probes import PROBE_SPLITS, probe_metric_names  # noqa: E402


REPORT_FILE = "report.md"
# (metric key, column title, format) of the report table, in order.
HEADLINE = (
    ("forget_accuracy", "forget acc", "{:.3f}"),
    ("retain_accuracy", "retain acc", "{:.3f}"),
    ("paraphrase_accuracy", "paraphrase acc", "{:.3f}"),
    ("forget_question_accuracy", "Q/A acc", "{:.3f}"),
    ("holdout_accuracy", "holdout acc", "{:.3f}"),
    ("forget_truth_ratio", "forget TR", "{:.3f}"),
    ("forget_quality", "forget quality", "{:.2e}"),
    ("model_utility", "model utility", "{:.3f}"),
    ("mia_min_k", "MIA AUC (min-k)", "{:.3f}"),
    ("privleak", "privleak", "{:.1f}"),
    ("edit_reliability", "edit reliability", "{:.3f}"),
    ("edit_generalization", "edit generalization", "{:.3f}"),
    ("edit_locality", "edit locality", "{:.3f}"),
    ("propagation_kept", "dependent kept", "{:.3f}"),
    ("propagation_followed", "dependent followed", "{:.3f}"),
    ("propagation_broken", "dependent broken", "{:.3f}"),
)


def _value(results: dict[str, Any], key: str, fmt: str) -> str:
    value = results.get(key, {}).get("agg_value")
    return "–" if value is None else fmt.format(value)


def write_report(
    all_results: dict[str, dict[str, Any]], data: BehemothData, output: Path, edit_runs: set[str] = frozenset()
) -> Path:
    """Write `report.md` and its plots into `output`; returns the report's path. Edit metrics are shown for
    `edit_runs` (models made by `behemoth edit`) only, and their columns only when there is one."""
    output.mkdir(parents=True, exist_ok=True)
    columns = [
        (key, title, fmt)
        for key, title, fmt in HEADLINE
        if any(key in r for r in all_results.values()) and (edit_runs or key not in EDIT_METRICS)
    ]
    plots = [_accuracy_plot(all_results, output), _truth_ratio_plot(all_results, output)]
    if len([name for name in all_results if name != "oracle"]) >= 2:
        plots.append(_tradeoff_plot(all_results, output))
    lines = [
        "# Behemoth evaluation",
        "",
        f"World `{data.config.name}` (fingerprint `{data.fingerprint}`, {data.source}). Accuracy is the exact greedy "
        "answer after the prompt; forget quality is the KS-test p-value of forget-set truth ratios against the "
        f"oracle's (≥ {metrics.FORGET_QUALITY_THRESHOLD} reads as indistinguishable); MIA AUC compares forget and "
        "holdout facts (0.5: no membership signal). Per-item values are in `<model>/BEHEMOTH_EVAL.json`.",
        "",
        "| model | " + " | ".join(title for _, title, _ in columns) + " |",
        "|---" * (len(columns) + 1) + "|",
    ]
    for name, results in all_results.items():
        cells = [
            "–" if key in EDIT_METRICS and name not in edit_runs else _value(results, key, fmt)
            for key, _, fmt in columns
        ]
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    lines += ["", *[f"![{plot.stem}]({plot.name})" for plot in plots], ""]
    lines += _probe_section(all_results, output)
    report = output / REPORT_FILE
    report.write_text("\n".join(lines))
    return report


def _probe_section(all_results: dict[str, dict[str, Any]], output: Path) -> list[str]:
    """One table per probed split (rows: template x probe, columns: models) and a plot of the forget split."""
    names = [name for name in probe_metric_names() if any(name in r for r in all_results.values())]
    if not names:
        return []
    lines = [
        "## Format and phrasing probes",
        "",
        "Accuracy when the same facts are asked through every template: `greedy` is the exact answer after the "
        "template's prompt, `choice` whether the true object gives the most likely sentence among all objects of "
        "the relation (chance 1 / objects). A forgotten fact should be at the oracle's level in every row; the "
        "retain rows show how well the model reads each template at all.",
        "",
    ]
    for split in PROBE_SPLITS:
        mine = [name for name in names if name.startswith(f"{split}_")]
        if not mine:
            continue
        lines += [
            f"### {split}",
            "",
            "| probe | " + " | ".join(f"`{model}`" for model in all_results) + " |",
            "|---" * (len(all_results) + 1) + "|",
        ]
        for name in mine:
            label = name.removeprefix(f"{split}_").removesuffix("_accuracy").replace("_", " ")
            lines.append(f"| {label} | " + " | ".join(_value(r, name, "{:.3f}") for r in all_results.values()) + " |")
        lines.append("")
    plot = _probe_plot(all_results, [name for name in names if name.startswith("forget_")], output)
    return [*lines, f"![{plot.stem}]({plot.name})", ""]


def _probe_plot(all_results: dict[str, dict[str, Any]], names: list[str], output: Path) -> Path:
    labels = [name.removeprefix("forget_").removesuffix("_accuracy").replace("_", "\n") for name in names]
    figure, axis = _bars(all_results, names, labels, figsize=(1.6 + 0.9 * len(names), 3.6))
    axis.set_ylabel("forget-fact accuracy")
    axis.set_title("Forget facts through every template")
    return _save(figure, output / "probes.png")


def _accuracy_plot(all_results: dict[str, dict[str, Any]], output: Path) -> Path:
    splits = [
        s for s in (*ACCURACY_SPLITS, "forget_question") if any(f"{s}_accuracy" in r for r in all_results.values())
    ]
    labels = [split.replace("_", "\n") for split in splits]
    figure, axis = _bars(
        all_results, [f"{split}_accuracy" for split in splits], labels, figsize=(1.6 + 1.3 * len(splits), 3.6)
    )
    axis.set_ylabel("fact accuracy")
    axis.set_title("Accuracy per split")
    return _save(figure, output / "accuracy.png")


def _bars(all_results: dict[str, dict[str, Any]], metrics_: list[str], labels: list[str], figsize):
    """Grouped bars of `metrics_` (x) per model (one colour each; the oracle hatched), legend outside."""
    figure, axis = plt.subplots(figsize=figsize)
    width = 0.8 / len(all_results)
    for offset, (model, results) in enumerate(all_results.items()):
        values = [results.get(name, {}).get("agg_value", np.nan) for name in metrics_]
        hatch = "//" if model == "oracle" else None
        axis.bar(np.arange(len(metrics_)) + offset * width, values, width, label=model, hatch=hatch)
    axis.set_xticks(np.arange(len(metrics_)) + width * (len(all_results) - 1) / 2, labels, fontsize=8)
    axis.set_ylim(0, 1.05)
    _legend(axis)
    return figure, axis


def _truth_ratio_plot(all_results: dict[str, dict[str, Any]], output: Path) -> Path:
    figure, axis = plt.subplots(figsize=(6, 3.6))
    bins = np.logspace(-6, 4, 50)
    for name, results in all_results.items():
        if "forget_truth_ratio" not in results:
            continue
        ratios = np.clip(metrics.item_values(results["forget_truth_ratio"]), bins[0], bins[-1])
        style = {"color": "black", "linestyle": "--"} if name == "oracle" else {}
        axis.hist(ratios, bins=bins, histtype="step", linewidth=1.5, label=name, **style)
    axis.set_xscale("log")
    axis.set_xlabel("truth ratio on forget facts (P(wrong) / P(right), geometric)")
    axis.set_ylabel("facts")
    _legend(axis)
    axis.set_title("Forget-set truth ratios vs the oracle's")
    return _save(figure, output / "truth_ratio.png")


def _tradeoff_plot(all_results: dict[str, dict[str, Any]], output: Path) -> Path:
    figure, axis = plt.subplots(figsize=(5, 4))
    for name, results in all_results.items():
        if "forget_accuracy" not in results or "model_utility" not in results:
            continue
        x = 1.0 - results["forget_accuracy"]["agg_value"]
        y = results["model_utility"]["agg_value"]
        # A legend, not labels beside the points: nearby models would print over each other.
        style = {"marker": "*", "s": 120, "color": "black"} if name == "oracle" else {"marker": "o", "s": 40}
        axis.scatter([x], [y], label=name, **style)
    axis.set_xlabel("forgetting (1 - forget accuracy)")
    axis.set_ylabel("model utility")
    axis.set_xlim(-0.05, 1.05)
    axis.set_ylim(-0.05, 1.05)
    _legend(axis)
    axis.set_title("Forgetting vs utility")
    return _save(figure, output / "forget_vs_utility.png")


def _legend(axis) -> None:
    """Beside the axes, where it cannot cover bars or points; long model names wrapped."""
    handles, labels = axis.get_legend_handles_labels()
    labels = [textwrap.fill(label, 24) for label in labels]
    axis.legend(handles, labels, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)


def _save(figure, path: Path) -> Path:
    figure.savefig(path, dpi=120, bbox_inches="tight")  # "tight" keeps the outside legend in the image
    plt.close(figure)
    return path

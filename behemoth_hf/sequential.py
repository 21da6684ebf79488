"""`behemoth sequential`: deletion requests that arrive one after another (MUSE's "sustainability").

The forget facts are split into `num_requests` subject-disjoint requests (`unlearn.run.request_rows`,
fixed per world); request i unlearns its facts starting from the model left by request i - 1, with the
same method and arguments (so every fact is trained on for as many epochs as in one shot).
Every intermediate model is evaluated; the curves report, after each request, accuracy on the facts
requested so far, on the facts still pending (what a method damages before it is asked to), on retain
facts and model utility, against unlearning every fact in one shot.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from behemoth_hf import metrics
from behemoth_hf.attacks.tables import format_number
from behemoth_hf.data import open_dataset
from behemoth_hf.staging import refuse_unsafe_path
from behemoth_hf.unlearn.arguments import UnlearningArguments
from behemoth_hf.unlearn.run import RECORD_FILE, run_unlearning, select_forget_rows


SEQUENTIAL_FILE = "sequential.json"
CURVE_METRICS = (
    "requested_forget_accuracy",
    "pending_forget_accuracy",
    "forget_accuracy",
    "retain_accuracy",
    "model_utility",
    "forget_quality",
)


@dataclass
class SequentialArguments:
    """Arguments of `behemoth sequential` besides those of `behemoth unlearn` (`--num_requests` sets k).

    Args:
        oracle (`str`, *optional*):
            Retain oracle (model folder or its `BEHEMOTH_EVAL.json`), for forget quality.
        one_shot (`bool`, defaults to `True`):
            Also unlearn every request's facts at once with the same arguments, as the reference.
        eval_batch_size (`int`, defaults to 256):
            Sequences per forward pass in evaluation.
    """

    oracle: str | None = field(default=None, metadata={"help": "retain oracle: model folder or BEHEMOTH_EVAL.json"})
    one_shot: bool = field(default=True, metadata={"help": "also unlearn everything at once, as the reference"})
    eval_batch_size: int = field(default=256, metadata={"help": "sequences per forward pass in evaluation"})

    def __post_init__(self):
        if self.oracle is not None and not Path(self.oracle).exists():
            raise FileNotFoundError(f"`oracle` {self.oracle} does not exist")
        if self.eval_batch_size < 1:
            raise ValueError(f"`eval_batch_size` must be >= 1, got {self.eval_batch_size}")


def run_sequential(args: UnlearningArguments, sequential: SequentialArguments) -> dict[str, Any]:
    """Unlearn request 1..k in turn under `args.output_dir` (finished requests are reused), evaluate every
    intermediate model, and write the curves. `args.num_requests` is k; `args.request` is ignored."""
    from behemoth_hf.evaluation import EvaluationArguments, run_evaluation

    root = refuse_unsafe_path(args.output_dir, "output_dir")
    data = open_dataset(args.dataset)
    requests = [dataclasses.replace(args, request=i) for i in range(1, args.num_requests + 1)]
    request_facts = [set(select_forget_rows(request, data)["fact_id"]) for request in requests]  # checks k first
    previous = args.model
    for request in requests:
        folder = root / f"request-{request.request}"
        if not (folder / RECORD_FILE).exists():
            run_unlearning(dataclasses.replace(request, model=previous, output_dir=str(folder)))
        previous = str(folder)
    folders = [args.model, *(str(root / f"request-{i}") for i in range(1, args.num_requests + 1))]
    one_shot = root / "one-shot"
    if sequential.one_shot and args.num_requests > 1:
        if not (one_shot / RECORD_FILE).exists():
            run_unlearning(dataclasses.replace(args, num_requests=1, request=1, output_dir=str(one_shot)))
        folders.append(str(one_shot))
    results = run_evaluation(
        EvaluationArguments(
            model=folders,
            dataset=args.dataset,
            output_dir=str(root / "evaluation"),
            overwrite=True,  # re-evaluated on every run; the requests are reused
            oracle=sequential.oracle,
            base=args.model,
            batch_size=sequential.eval_batch_size,
        )
    )
    by_folder = [results[Path(folder).resolve().name] for folder in folders]
    curve = []
    for completed in range(args.num_requests + 1):
        requested = set().union(*request_facts[:completed])
        curve.append({"requests": completed, **curve_point(by_folder[completed], requested)})
    everything = set().union(*request_facts)
    summary = {
        "method": args.method,
        "num_requests": args.num_requests,
        "request_sizes": [len(facts) for facts in request_facts],
        "seed": args.seed,
        "dataset": data.source,
        "curve": curve,
        "one_shot": curve_point(by_folder[-1], everything) if len(folders) > args.num_requests + 1 else None,
    }
    (root / SEQUENTIAL_FILE).write_text(json.dumps(summary, indent=2, default=float) + "\n")
    _write_table(summary, root / "sequential.md")
    plot_curves({f"k={args.num_requests}": summary}, root / "sequential.png")
    return summary


def curve_point(results: dict[str, Any], requested: set[int]) -> dict[str, float | None]:
    """Curve metrics of one model's evaluation results: forget accuracy split by whether the fact was requested
    yet (`requested`: fact ids), and the model-level metrics."""
    forget = results["forget_accuracy"]
    ids = np.array([int(i) for i in forget["value_by_index"]])
    correct = metrics.item_values(forget)
    asked = np.isin(ids, list(requested))
    point = {
        "requested_forget_accuracy": float(correct[asked].mean()) if asked.any() else None,
        "pending_forget_accuracy": float(correct[~asked].mean()) if (~asked).any() else None,
    }
    for name in CURVE_METRICS[2:]:
        point[name] = results[name]["agg_value"]
    return point


def _write_table(summary: dict[str, Any], path: Path) -> None:
    lines = [
        f"# Sequential unlearning: {summary['method']}, {summary['num_requests']} requests",
        "",
        f"Request sizes (facts): {summary['request_sizes']}; seed {summary['seed']}. Row 0 is the model before "
        "any request; `requested`/`pending` forget accuracy cover the facts asked for so far / not yet.",
        "",
        "| requests done | " + " | ".join(CURVE_METRICS) + " |",
        "|---" * (len(CURVE_METRICS) + 1) + "|",
    ]
    rows = [(str(point["requests"]), point) for point in summary["curve"]]
    if summary["one_shot"]:
        rows.append(("one shot", summary["one_shot"]))
    for label, point in rows:
        lines.append(f"| {label} | " + " | ".join(format_number(point[name]) for name in CURVE_METRICS) + " |")
    path.write_text("\n".join(lines) + "\n")


def plot_curves(summaries: dict[str, dict[str, Any]], path: Path) -> Path:
    """Curves of several sequential runs (label -> summary) against the fraction of the forget set requested."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = ("requested_forget_accuracy", "pending_forget_accuracy", "retain_accuracy", "model_utility")
    figure, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.4), sharey=True)
    for axis, metric in zip(axes, panels):
        for label, summary in summaries.items():
            x = [point["requests"] / summary["num_requests"] for point in summary["curve"]]
            y = [np.nan if point[metric] is None else point[metric] for point in summary["curve"]]
            (line,) = axis.plot(x, y, marker="o", markersize=3, label=label)
            if summary["one_shot"] and summary["one_shot"][metric] is not None:
                axis.scatter([1.0], [summary["one_shot"][metric]], marker="*", s=90, color=line.get_color())
        axis.set_title(metric.replace("_", " "))
        axis.set_xlabel("fraction of forget set requested")
        axis.set_xlim(-0.03, 1.03)
        axis.set_ylim(-0.02, 1.02)
    with_one_shot = any(summary["one_shot"] for summary in summaries.values())
    axes[-1].legend(fontsize=7, title="★ one shot" if with_one_shot else None, title_fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def sequential_command(argv: list[str]) -> int:
    """Unlearn the forget set as k requests in turn (--num_requests k), evaluating after each, against one shot."""
    from behemoth_hf.arguments import parse_dataclasses

    args, sequential = parse_dataclasses((UnlearningArguments, SequentialArguments), argv, prog="behemoth sequential")
    if args.method == "edit":
        raise ValueError("`behemoth sequential` runs unlearning methods; sequential edits are not supported yet")
    run_sequential(args, sequential)
    print(Path(args.output_dir, "sequential.md").read_text())
    return 0

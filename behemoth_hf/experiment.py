"""`behemoth experiment FILE.yaml`: a sweep of unlearning/editing runs on one world, with a results table and plots.

An experiment file names a world, a pretraining recipe, seeds, arguments shared by every run
(`common`) and variants, each with its own arguments and learning-rate grid. The runner generates
the world and pretrains the model and its oracle once (cached), then runs every variant x learning
rate x seed and evaluates it against the oracle. Everything finished is reused, so an interrupted
sweep resumes where it stopped. For each variant the learning rate with the best mean `select`
score is kept, and the table reports that setting's mean and spread over seeds; every run is also
kept in `runs.json`.

A variant whose `method` is an editor (`rome`, `memit`, `alphaedit`) runs `behemoth edit --method` instead of a
Trainer (no learning rates: its grid is empty); its arguments are `EditorArguments`. A `lines` plot draws one line
per series of variants along a numeric variant argument (`along: num_edits`): a variant named `rome@40` is the
point 40 of series `rome`.

Robustness: a variant with `num_requests: k` unlearns the forget set as k requests in turn
(`sequential.py`, curves in a `requests` plot); `attacks:` (`attacks/suite.py`) attacks every kept run
and the oracle, adding the attack metrics to the table; `start_bits: b` starts every run from the
pretrained model round-tripped through b-bit quantization (unlearning a quantized release).

Reuse is keyed on what produced each output (`reuse.py`): the work folder's world, model and oracle
must be the ones the file asks for (otherwise it is refused), and a run, evaluation or attack made
with other arguments, or from another model, is made again. `--set key=value` overrides the file
(recorded in the results).
"""

from __future__ import annotations

import json
import logging
import math
import textwrap
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import hmean

from behemoth_hf import metrics
from behemoth_hf.arguments import coerce, field_types, parse_key_values, read_yaml
from behemoth_hf.attacks.relearn import plot_relearn_curves
from behemoth_hf.attacks.tables import format_number
from behemoth_hf.config import make_config
from behemoth_hf.quickstart import prepare_world
from behemoth_hf.reuse import argument_defaults, arguments_key, claim, identity
from behemoth_hf.sequential import plot_curves
from behemoth_hf.staging import refuse_unsafe_path


logger = logging.getLogger(__name__)

# Scores the runner derives from a run's evaluation summary (higher is better).
DERIVED = {
    "forgetting": lambda s: 1.0 - s["forget_accuracy"],
    # ROME/EasyEdit style: an edit must take, generalise and leave other facts alone.
    "edit_score": lambda s: _hmean(s["edit_reliability"], s["edit_generalization"], s["edit_locality"]),
    # Unlearning: forget the facts and keep the model useful.
    "unlearn_score": lambda s: _hmean(1.0 - s["forget_accuracy"], s["model_utility"]),
}


PLOT_KINDS = ("curve", "pareto", "requests", "relearn", "lines")


def _hmean(*values: float) -> float:
    return 0.0 if min(values) <= 0 else float(hmean(values))


@dataclass
class Variant:
    name: str
    args: dict[str, Any] = field(default_factory=dict)
    learning_rates: list[float] = field(default_factory=list)


@dataclass
class Experiment:
    """An experiment file, validated."""

    name: str
    description: str
    world: str
    variants: list[Variant]
    select: str
    table: list[str]
    world_overrides: dict[str, Any] = field(default_factory=dict)
    preset: str = "small"
    pretrain_recipe: str = "pretrain_small.yaml"
    seeds: list[int] = field(default_factory=lambda: [0])
    common: dict[str, Any] = field(default_factory=dict)
    plots: list[dict[str, Any]] = field(default_factory=list)
    attacks: dict[str, Any] = field(default_factory=dict)
    start_bits: int | None = None

    @classmethod
    def load(cls, path: str | Path, overrides: dict[str, Any] | None = None) -> Experiment:
        """Read and validate an experiment file, with `overrides` (from `parse_overrides`) applied first."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"experiment file {path} does not exist")
        raw = read_yaml(path) or {}
        allowed = set(cls.__dataclass_fields__)
        unknown = sorted(set(raw) - allowed)
        if unknown:
            raise ValueError(f"unknown key(s) {unknown} in {path}; allowed: {', '.join(sorted(allowed))}")
        for key, value in (overrides or {}).items():
            section, _, name = key.rpartition(".")
            if section:
                raw[section] = {**(raw.get(section) or {}), name: value}
            else:
                raw[key] = value
        variants = []
        for entry in raw.get("variants") or []:
            extra = sorted(set(entry) - {"name", "args", "learning_rates"})
            if extra or "name" not in entry:
                raise ValueError(
                    f"a variant in {path} needs `name` and may have `args`, `learning_rates`; got {entry}"
                )
            variants.append(
                Variant(entry["name"], entry.get("args") or {}, [float(x) for x in entry.get("learning_rates") or []])
            )
        raw["variants"] = variants
        try:
            experiment = cls(**raw)
        except TypeError as error:
            raise ValueError(f"{path}: {error}") from None
        experiment.validate()
        return experiment

    def validate(self) -> None:
        make_config(self.world, **self.world_overrides)
        if not self.variants:
            raise ValueError(f"experiment {self.name!r} has no variants")
        names = [variant.name for variant in self.variants]
        if len(set(names)) != len(names):
            raise ValueError(f"variant names must be unique, got {names}")
        if not self.seeds:
            raise ValueError("`seeds` must list at least one seed")
        from behemoth_hf.attacks.quantize import ALLOWED_BITS
        from behemoth_hf.attacks.suite import validate_attacks
        from behemoth_hf.evaluation import METRIC_NAMES

        if self.start_bits is not None and self.start_bits not in ALLOWED_BITS:
            raise ValueError(f"`start_bits` must be one of {list(ALLOWED_BITS)} or absent, got {self.start_bits}")
        known = {*METRIC_NAMES, *DERIVED, *validate_attacks(self.attacks)}
        for metric in [self.select, *self.table, *(p.get(k) for p in self.plots for k in ("x", "y") if p.get(k))]:
            for name in [metric] if isinstance(metric, str) else metric:
                if name not in known:
                    raise ValueError(f"unknown metric {name!r} in experiment {self.name!r}; known: {sorted(known)}")
        for plot in self.plots:
            if plot.get("kind") not in PLOT_KINDS:
                raise ValueError(f"plot kind must be one of {list(PLOT_KINDS)}, got {plot.get('kind')!r}")
            if plot["kind"] == "relearn" and "relearn" not in self.attacks:
                raise ValueError("a `relearn` plot needs the relearn attack (`attacks: {relearn: ...}`)")
            if plot["kind"] == "lines":
                along = plot.get("along")
                for variant in self.variants:
                    if "@" not in variant.name or not isinstance(variant.args.get(along), (int, float)):
                        raise ValueError(
                            f"a `lines` plot needs every variant named `<series>@<point>` with a number for its "
                            f"`along` argument ({along!r}); variant {variant.name!r} has args {variant.args}"
                        )
            if not plot.get("file"):
                raise ValueError(f"every plot needs a `file` name, got {plot}")
        # Build every run's arguments once now, so a typo fails before any training.
        for run in self.runs(Path("/nonexistent")):
            run["arguments"]()

    def start_model(self, root: Path) -> Path:
        """The checkpoint every run starts from (and is compared with)."""
        return root / "model" if self.start_bits is None else root / f"model-int{self.start_bits}"

    def runs(self, root: Path) -> list[dict[str, Any]]:
        from behemoth_hf.editors import EDITOR_CHOICES, EditorArguments
        from behemoth_hf.unlearn import UnlearningArguments

        start = self.start_model(root)
        runs = []
        for variant in self.variants:
            for learning_rate in variant.learning_rates or [None]:
                for seed in self.seeds:
                    settings = {**self.common, **variant.args, "seed": seed}
                    if learning_rate is not None:
                        settings["learning_rate"] = learning_rate
                    # Namespaced by experiment: experiments on one world share a work dir (and its models).
                    folder = root / "runs" / self.name / f"{variant.name}-lr{learning_rate}-seed{seed}"

                    def arguments(settings=settings, folder=folder):
                        kind = EditorArguments if settings.get("method") in EDITOR_CHOICES else UnlearningArguments
                        return kind(model=str(start), dataset=str(root / "data"), output_dir=str(folder), **settings)

                    runs.append(
                        {
                            "variant": variant.name,
                            "learning_rate": learning_rate,
                            "seed": seed,
                            "folder": folder,
                            "arguments": arguments,
                        }
                    )
        return runs


# Mappings of the file that `--set` reaches one entry at a time, as `<mapping>.<key>`.
_SET_SECTIONS = ("common", "world_overrides")


def override_types() -> dict[str, Any]:
    """What `--set` may change, with its type: the file's plain fields, `common.<run argument>` and
    `world_overrides.<world parameter>` (variants, plots and attacks only in the file)."""
    from behemoth_hf.config import WORLD_FIELDS, BehemothConfig
    from behemoth_hf.unlearn import UnlearningArguments

    types = {
        name: kind
        for name, kind in field_types(Experiment).items()
        if name not in (*_SET_SECTIONS, "variants", "plots", "attacks")
    }
    world = field_types(BehemothConfig)
    types.update({f"world_overrides.{name}": world[name] for name in WORLD_FIELDS})
    set_by_runner = ("model", "dataset", "output_dir")
    types.update(
        {
            f"common.{name}": kind
            for name, kind in field_types(UnlearningArguments).items()
            if name not in set_by_runner
        }
    )
    return types


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """`key=value` strings, typed as `arguments.py` types every command's `--set`; a list is comma-separated
    (`seeds=0,1,2`). Unknown keys raise `ValueError` listing the allowed ones."""
    types = override_types()
    values: dict[str, Any] = {}
    for pair in pairs:
        key, _, raw = (part.strip() for part in pair.partition("="))
        if typing.get_origin(types.get(key)) is list:
            (item_type,) = typing.get_args(types[key])
            values[key] = [coerce(key, item.strip(), item_type) for item in raw.split(",") if item.strip()]
        else:
            values.update(parse_key_values([pair], types))
    return values


def run_experiment(
    path: str | Path,
    output_dir: str | Path,
    work_dir: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run (or resume) the experiment, with `overrides` (`parse_overrides`) of its file; the table, run list and
    plots go to `output_dir`, the world, models and per-run outputs to `work_dir` (default `output_dir/work`)."""
    from behemoth_hf.attacks.quantize import QUANTIZATION_RECORD, write_quantized
    from behemoth_hf.attacks.suite import relearn_curves, run_attacks
    from behemoth_hf.evaluation import EvaluationArguments, RESULTS_NAME, run_evaluation

    experiment = Experiment.load(path, overrides)
    output = refuse_unsafe_path(output_dir, "--output")
    root = refuse_unsafe_path(work_dir, "--work-dir") if work_dir is not None else output / "work"
    output.mkdir(parents=True, exist_ok=True)
    data, model, oracle = prepare_world(
        root,
        make_config(experiment.world, **experiment.world_overrides),
        experiment.preset,
        experiment.pretrain_recipe,
    )
    start = experiment.start_model(root)
    if start != model:
        key = {"model": identity(model), "bits": experiment.start_bits, "group_size": 128}
        if not claim(start, start / QUANTIZATION_RECORD, key, f"quantizing the model to {experiment.start_bits} bits"):
            write_quantized(model, start, experiment.start_bits, group_size=128)
    reference = root / ("reference" if start == model else f"reference-{start.name}")
    oracle_log = reference / "oracle" / f"{RESULTS_NAME}_EVAL.json"
    key = {"model": identity(start), "oracle": identity(oracle), "dataset": identity(data)}
    if not claim(reference, reference / "summary.json", key, "evaluating the start model and the oracle"):
        run_evaluation(
            EvaluationArguments(
                model=[str(start)], dataset=str(data), oracle=str(oracle), base=str(start), output_dir=str(reference)
            )
        )
    start_results = metrics.read_eval_json(reference / start.name / f"{RESULTS_NAME}_EVAL.json")

    records, model_folders = [], []
    runs = experiment.runs(root)
    for index, run in enumerate(runs):
        logger.info("run %d/%d: %s", index + 1, len(runs), run["folder"].name)
        record, model_folder = _run(experiment, run, root, data, oracle_log, start_results)
        records.append(record)
        model_folders.append(model_folder)
    reference_summary = json.loads((reference / start.name / f"{RESULTS_NAME}_SUMMARY.json").read_text())
    oracle_summary = json.loads((reference / "oracle" / f"{RESULTS_NAME}_SUMMARY.json").read_text())
    result = _summarise(experiment, records, reference_summary, oracle_summary)
    if experiment.attacks:
        attacks_root = root / "attacks" / experiment.name
        for row in result["variants"]:
            for run, record, model_folder in zip(runs, records, model_folders):
                if _is_kept(record, row):
                    folder = attacks_root / run["folder"].name
                    record["metrics"].update(run_attacks(experiment.attacks, str(model_folder), str(data), folder))
                    if "relearn" in experiment.attacks:
                        record["relearn_curves"] = relearn_curves(folder, model_folder.resolve().name)
        oracle_folder = attacks_root / "oracle"
        oracle_summary.update(run_attacks(experiment.attacks, str(oracle), str(data), oracle_folder, is_oracle=True))
        result = _summarise(experiment, records, reference_summary, oracle_summary)
        if "relearn" in experiment.attacks:
            result["oracle_relearn_curves"] = relearn_curves(oracle_folder, "oracle")
    result["overrides"] = dict(overrides or {})
    (output / "runs.json").write_text(json.dumps(records, indent=2, default=float) + "\n")
    (output / "results.json").write_text(json.dumps(result, indent=2, default=float) + "\n")
    _write_table(experiment, result, output)
    _plot(experiment, records, result, output)
    return result


def _run(experiment: Experiment, run: dict, root: Path, data: Path, oracle_log: Path, start_results: dict):
    """Train and evaluate one run (or reuse it); its record (with the requests curve) and final model folder."""
    from behemoth_hf.editors import EditorArguments
    from behemoth_hf.editors.run import run_editor
    from behemoth_hf.evaluation import EvaluationArguments, RESULTS_NAME, run_evaluation
    from behemoth_hf.sequential import SEQUENTIAL_FILE, SequentialArguments, curve_point, run_sequential
    from behemoth_hf.unlearn.run import RECORD_FILE as UNLEARNING_RECORD
    from behemoth_hf.unlearn.run import run_unlearning

    folder = run["folder"]
    args = run["arguments"]()
    # Everything a run's outputs depend on; a run made with other arguments or from another model is made again.
    key = {**arguments_key(args), "model": identity(args.model), "dataset": identity(data)}
    defaults = argument_defaults(args)  # an argument added since a run was made, at its default, still matches
    what = f"run {folder.name}"
    editor = isinstance(args, EditorArguments)
    if args.num_requests > 1 and not editor:
        model_folder = folder / f"request-{args.num_requests}"
        summary_file = folder / "evaluation" / model_folder.name / f"{RESULTS_NAME}_SUMMARY.json"
        # Finished requests of a partial sequence are resumed: they were made for this same key.
        if not claim(folder, folder / SEQUENTIAL_FILE, {**key, "oracle": identity(oracle_log)}, what, defaults):
            run_sequential(args, SequentialArguments(oracle=str(oracle_log), one_shot=False))
        curve = json.loads((folder / SEQUENTIAL_FILE).read_text())["curve"]
        request_folders = [folder / f"request-{i}" for i in range(1, args.num_requests + 1)]
    else:
        model_folder = folder
        if not claim(folder, folder / UNLEARNING_RECORD, key, what, defaults):
            (run_editor if editor else run_unlearning)(args)
        evaluation = root / "evaluations" / experiment.name / folder.name
        summary_file = evaluation / folder.name / f"{RESULTS_NAME}_SUMMARY.json"
        evaluation_key = {
            "model": identity(folder),
            "oracle": identity(oracle_log),
            "base": identity(args.model),
            "dataset": identity(data),
        }
        if not claim(evaluation, evaluation / "summary.json", evaluation_key, f"evaluating {folder.name}"):
            run_evaluation(
                EvaluationArguments(
                    model=[str(folder)],
                    dataset=str(data),
                    oracle=str(oracle_log),
                    base=args.model,
                    output_dir=str(evaluation),
                )
            )
        final = metrics.read_eval_json(summary_file.with_name(f"{RESULTS_NAME}_EVAL.json"))
        forget_ids = {int(i) for i in final["forget_accuracy"]["value_by_index"]}
        curve = [
            {"requests": 0, **curve_point(start_results, set())},
            {"requests": 1, **curve_point(final, forget_ids)},
        ]
        request_folders = [folder]
    summary = json.loads(summary_file.read_text())
    summary.update({name: derive(summary) for name, derive in DERIVED.items() if _has_inputs(name, summary)})
    wall = sum(json.loads((f / UNLEARNING_RECORD).read_text())["wall_seconds"] for f in request_folders)
    record = {
        "variant": run["variant"],
        "learning_rate": run["learning_rate"],
        "seed": run["seed"],
        "method": args.method,
        "num_requests": args.num_requests,
        "wall_seconds": round(wall, 2),
        "metrics": summary,
        "requests_curve": curve,
    }
    return record, model_folder


def _has_inputs(name: str, summary: dict[str, Any]) -> bool:
    try:
        value = DERIVED[name](summary)
    except (KeyError, TypeError):
        return False
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _summarise(
    experiment: Experiment, records: list[dict], reference: dict[str, Any], oracle: dict[str, Any]
) -> dict[str, Any]:
    """Per variant: the learning rate with the best mean `select` score, and mean/std of every table metric there."""
    rows = []
    for variant in experiment.variants:
        mine = [r for r in records if r["variant"] == variant.name]
        by_rate: dict[Any, list[dict]] = {}
        for record in mine:
            by_rate.setdefault(record["learning_rate"], []).append(record)
        best_rate = max(by_rate, key=lambda rate: np.mean([_metric(r, experiment.select) for r in by_rate[rate]]))
        chosen = by_rate[best_rate]
        row = {
            "variant": variant.name,
            "method": chosen[0]["method"],
            "learning_rate": best_rate,
            "seeds": len(chosen),
        }
        for metric in dict.fromkeys([experiment.select, *experiment.table]):
            values = [_metric(r, metric) for r in chosen]
            row[metric] = {"mean": float(np.mean(values)), "std": float(np.std(values))}
        rows.append(row)
    return {
        "experiment": experiment.name,
        "description": experiment.description,
        "world": experiment.world,
        "select": experiment.select,
        "variants": rows,
        "pretrained": {m: reference.get(m) for m in experiment.table if m in reference},
        "oracle": {m: oracle.get(m) for m in experiment.table if m in oracle},
    }


def _metric(record: dict, name: str) -> float:
    value = record["metrics"].get(name)
    return float("nan") if value is None else float(value)


def _cell(row: dict[str, Any], metric: str) -> str:
    """Mean ± std over seeds; the value alone for one seed; a dash for an edit metric of a run that did not edit."""
    from behemoth_hf.evaluation import EDIT_METRICS
    from behemoth_hf.unlearn.run import is_edit_method

    if metric in (*EDIT_METRICS, "edit_score") and not is_edit_method(row.get("method", "edit")):
        return "–"
    value = row.get(metric)
    if isinstance(value, dict):
        if math.isnan(value["mean"]):  # not measured for this world (no dependent facts, no holdout, ...)
            return "–"
        if row["seeds"] == 1:
            return format_number(value["mean"])
        return f"{format_number(value['mean'])} ± {format_number(value['std'])}"
    return "–" if value is None else format_number(value)


def _write_table(experiment: Experiment, result: dict[str, Any], root: Path) -> None:
    metrics = list(dict.fromkeys([experiment.select, *experiment.table]))
    spread = "; mean ± std over seeds" if len(experiment.seeds) > 1 else ""
    lines = [
        f"# {experiment.name}",
        "",
        experiment.description.strip(),
        "",
        f"World `{experiment.world}`, preset `{experiment.preset}`, seeds {experiment.seeds}. Per variant, the "
        f"learning rate with the best mean `{experiment.select}`{spread}.",
        "",
    ]
    if result.get("overrides"):
        settings = ", ".join(f"`{key}={value}`" for key, value in result["overrides"].items())
        lines += [f"Overrides of the experiment file: {settings}.", ""]
    lines += [
        "| variant | lr | " + " | ".join(metrics) + " |",
        "|---" * (len(metrics) + 2) + "|",
    ]
    for row in result["variants"]:
        lines.append(
            f"| {row['variant']} | {row['learning_rate']} | " + " | ".join(_cell(row, m) for m in metrics) + " |"
        )
    start = "pretrained" if experiment.start_bits is None else f"pretrained, int{experiment.start_bits}"
    for label, reference in ((start, result["pretrained"]), ("oracle", result["oracle"])):
        if reference:
            row = {**reference, "method": None}  # a reference model, not an edit
            lines.append(f"| *{label}* | – | " + " | ".join(_cell(row, m) for m in metrics) + " |")
    lines += ["", *(f"![{plot['file']}]({plot['file']})" for plot in experiment.plots), ""]
    (root / "results.md").write_text("\n".join(lines))


def sweep_axis(variants: list[Variant]) -> tuple[str, list[float]] | None:
    """The one numeric argument every variant sets and only it varies (`lora_rank: 1, 2, 4, ...`), with its values;
    None when the variants are not points of one sweep (a line between them would then mean nothing)."""
    keys = set().union(*(variant.args for variant in variants))
    varying = [key for key in keys if len({json.dumps(v.args.get(key), sort_keys=True) for v in variants}) > 1]
    if len(variants) < 2 or len(varying) != 1:
        return None
    (key,) = varying
    values = [variant.args.get(key) for variant in variants]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return None
    return key, [float(v) for v in values]


def _plot(experiment: Experiment, records: list[dict], result: dict[str, Any], root: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for plot in experiment.plots:
        if plot["kind"] == "requests":
            plot_curves(_mean_curves(records, result), root / plot["file"])
            continue
        if plot["kind"] == "relearn":
            plot_relearn_curves(_mean_relearn_curves(records, result), root / plot["file"])
            continue
        if plot["kind"] == "lines":
            _plot_lines(experiment, plot, result, root)
            continue
        figure, axis = plt.subplots(figsize=(6, 4))
        if plot["kind"] == "curve":
            names = [row["variant"] for row in result["variants"]]
            sweep = sweep_axis(experiment.variants)
            x = sweep[1] if sweep else list(range(len(names)))
            for metric in plot["y"]:
                means = [row[metric]["mean"] for row in result["variants"]]
                stds = [row[metric]["std"] if len(experiment.seeds) > 1 else 0.0 for row in result["variants"]]
                order = np.argsort(x)
                drawn = axis.errorbar(
                    np.asarray(x)[order],
                    np.asarray(means)[order],
                    yerr=np.asarray(stds)[order],
                    marker="o",
                    capsize=3,
                    linestyle="-" if sweep else "none",  # lines only along a real sweep axis
                    label=metric,
                )
                if result["oracle"].get(metric) is not None:
                    color = drawn.lines[0].get_color()
                    axis.axhline(result["oracle"][metric], color=color, linestyle=":", label=f"{metric}, oracle")
            if sweep:
                axis.set_xlabel(sweep[0])
                if min(x) > 0 and max(x) / min(x) >= 8:
                    axis.set_xscale("log", base=2)
            else:
                labels = [textwrap.fill(name, 14) for name in names]
                axis.set_xticks(
                    x, labels, rotation=30 if len(names) > 3 else 0, ha="right" if len(names) > 3 else "center"
                )
                axis.set_xlim(-0.5, len(names) - 0.5)
            axis.set_ylabel("mean ± std over seeds" if len(experiment.seeds) > 1 else "value (one seed)")
        else:
            for variant in experiment.variants:
                points = [
                    (_metric(r, plot["x"]), _metric(r, plot["y"])) for r in records if r["variant"] == variant.name
                ]
                axis.scatter(*zip(*points), label=variant.name, alpha=0.8)
            oracle = result["oracle"]
            if oracle.get(plot["x"]) is not None and oracle.get(plot["y"]) is not None:
                axis.scatter(
                    [oracle[plot["x"]]], [oracle[plot["y"]]], marker="*", s=120, color="black", label="oracle"
                )
            axis.set_xlabel(plot["x"])
            axis.set_ylabel(plot["y"])
        axis.set_title(plot.get("title", experiment.name))
        axis.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
        figure.savefig(root / plot["file"], dpi=120, bbox_inches="tight")  # keeps the outside legend
        plt.close(figure)


def _plot_lines(experiment: Experiment, plot: dict, result: dict[str, Any], root: Path) -> None:
    """One panel per metric of `y`: per series (variant name before `@`), the kept setting's mean (± std over
    seeds) along the variant argument `along`."""
    import matplotlib.pyplot as plt

    metrics_drawn = [plot["y"]] if isinstance(plot["y"], str) else plot["y"]
    rows = {row["variant"]: row for row in result["variants"]}
    series: dict[str, list] = {}
    for variant in experiment.variants:
        series.setdefault(variant.name.split("@")[0], []).append((variant.args[plot["along"]], rows[variant.name]))
    figure, axes = plt.subplots(1, len(metrics_drawn), figsize=(4.2 * len(metrics_drawn), 3.6), squeeze=False)
    for axis, metric in zip(axes[0], metrics_drawn):
        for name, points in series.items():
            points.sort(key=lambda point: point[0])
            axis.errorbar(
                [x for x, _ in points],
                [row[metric]["mean"] for _, row in points],
                yerr=[row[metric]["std"] if len(experiment.seeds) > 1 else 0.0 for _, row in points],
                marker="o",
                capsize=3,
                label=name,
            )
        axis.set_xscale("log")
        axis.set_xlabel(plot["along"])
        axis.set_title(metric, fontsize=9)
    axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    figure.suptitle(plot.get("title", experiment.name))
    figure.savefig(root / plot["file"], dpi=120, bbox_inches="tight")
    plt.close(figure)


def _is_kept(record: dict, row: dict) -> bool:
    """Is `record` a run of the learning rate its variant's table row kept?"""
    return (record["variant"], record["learning_rate"]) == (row["variant"], row["learning_rate"])


def _kept(records: list[dict], row: dict) -> list[dict]:
    return [record for record in records if _is_kept(record, row)]


def _mean_relearn_curves(records: list[dict], result: dict[str, Any]) -> dict[str, dict]:
    """Per variant, its kept runs' relearning curves averaged over seeds, and the oracle's."""
    curves = {}
    for row in result["variants"]:
        kept = [r["relearn_curves"] for r in _kept(records, row)]
        curves[row["variant"]] = {
            kind: {
                **first,
                **{
                    metric: np.mean([run[kind][metric] for run in kept], axis=0).tolist()
                    for metric in first
                    if metric not in ("step", "relearn_facts", "scored_facts")
                },
            }
            for kind, first in kept[0].items()
        }
    curves["oracle"] = result["oracle_relearn_curves"]
    return curves


def _mean_curves(records: list[dict], result: dict[str, Any]) -> dict[str, dict]:
    """Per variant, its kept runs' requests curves averaged over seeds (None where a point has no facts)."""
    curves = {}
    for row in result["variants"]:
        kept = _kept(records, row)
        points = []
        for index, first in enumerate(kept[0]["requests_curve"]):
            point = {"requests": first["requests"]}
            for metric in first:
                if metric != "requests":
                    values = [r["requests_curve"][index][metric] for r in kept]
                    point[metric] = None if None in values else float(np.mean(values))
            points.append(point)
        curves[f"{row['variant']} (k={kept[0]['num_requests']})"] = {
            "num_requests": kept[0]["num_requests"],
            "curve": points,
            "one_shot": None,
        }
    return curves


def experiment_command(argv: list[str]) -> int:
    """Run a sweep from trainer_configs/experiments/<name>.yaml: cached models, seeds, LR grid, table, plots."""
    import argparse

    from behemoth_hf.cli import add_set_argument

    parser = argparse.ArgumentParser(prog="behemoth experiment", description=experiment_command.__doc__)
    parser.add_argument("file", help="experiment YAML file")
    parser.add_argument("--output", help="table, run list and plots (default: results/<experiment name>)")
    parser.add_argument("--work-dir", help="world, models and runs, reused on resume (default: OUTPUT/work)")
    add_set_argument(
        parser,
        "override the file: a plain key (preset=tiny, seeds=0,1), common.<run argument> or "
        "world_overrides.<world parameter>; recorded in the results",
    )
    args = parser.parse_args(argv)
    overrides = parse_overrides(args.overrides)
    experiment = Experiment.load(args.file, overrides)
    output = Path(args.output or Path("results") / experiment.name)
    result = run_experiment(args.file, output, args.work_dir, overrides)
    print((output / "results.md").read_text())
    print(f"results: {output / 'results.md'} ({len(result['variants'])} variants)")
    return 0

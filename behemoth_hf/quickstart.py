"""`behemoth quickstart`: the whole pipeline in one command, with the shipped recipes.

generate the world -> pretrain the model and its retain oracle -> unlearn with NPO -> edit with LoRA
-> evaluate everything against the oracle -> print a table and the report's path. Each stage's output
is reused when it is already complete (the quickstart is resumable), so a second run only prints.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from behemoth_hf.arguments import parse_dataclasses
from behemoth_hf.config import NAMED_CONFIGS, make_config
from behemoth_hf.generate import METADATA_FILE, generate_dataset
from behemoth_hf.modeling import PRESETS
from behemoth_hf.reuse import argument_defaults, arguments_key, claim, differences, identity
from behemoth_hf.staging import refuse_unsafe_path


logger = logging.getLogger(__name__)

TABLE = (
    ("forget_accuracy", "forget acc"),
    ("retain_accuracy", "retain acc"),
    ("paraphrase_accuracy", "paraphrase acc"),
    ("forget_quality", "forget quality"),
    ("model_utility", "utility"),
    ("mia_min_k", "MIA AUC"),
    ("edit_reliability", "edit success"),
)


@dataclass
class QuickstartArguments:
    """Arguments of `behemoth quickstart`.

    Args:
        output_dir (`str`, defaults to `"outputs/quickstart"`):
            Where every stage writes (data, models, evaluation).
        world (`str`, defaults to `"default"`):
            Named world config.
        preset (`str`, defaults to `"small"`):
            Model preset; `tiny` uses the tiny recipe (tests).
    """

    output_dir: str = field(
        default="outputs/quickstart", metadata={"help": "where every stage writes", "aliases": ["--output"]}
    )
    world: str = field(default="default", metadata={"help": "named world config"})
    preset: str = field(default="small", metadata={"help": "model preset (tiny uses the tiny recipe)"})

    def __post_init__(self):
        if self.world not in NAMED_CONFIGS:
            raise ValueError(f"`world` must be one of {list(NAMED_CONFIGS)}, got {self.world!r}")
        if self.preset not in PRESETS:
            raise ValueError(f"`preset` must be one of {list(PRESETS)}, got {self.preset!r}")


def recipe(name: str) -> str:
    """Path of a shipped trainer config (`trainer_configs/<name>`)."""
    return str(resources.files("behemoth_hf.trainer_configs").joinpath(name))


def prepare_world(root: Path, config, preset: str, pretrain_recipe: str) -> tuple[Path, Path, Path]:
    """Generate `config` into `root/data` and pretrain `root/model` and its retain oracle `root/oracle` with
    the shipped recipe `pretrain_recipe`, reusing whatever is already complete. Returns the three folders.

    Every experiment and quickstart on `root` shares these, so one made for another world or recipe is
    refused (naming what is there and what is asked), never replaced; an interrupted pretraining resumes."""
    from behemoth_hf.pretrain import CHECKPOINT_DIR, RECORD_FILE, PretrainArguments, pretrain, run_identity

    data, model, oracle = root / "data", root / "model", root / "oracle"
    if (data / METADATA_FILE).exists():
        found = json.loads((data / METADATA_FILE).read_text())
        if found["fingerprint"] != config.fingerprint():
            changed = differences(found["world"], config.world_dict()) or "generator version"
            raise FileExistsError(
                f"{data} holds world `{found['config_name']}` (fingerprint {found['fingerprint']}), but world "
                f"`{config.name}` (fingerprint {config.fingerprint()}) is asked for (there -> asked: {changed}); "
                "choose another work folder"
            )
        logger.info("world `%s`: reusing %s", config.name, data)
    elif data.exists():
        raise FileExistsError(f"{data} exists but holds no generated world (no {METADATA_FILE}); move it away")
    else:
        logger.info("generating the `%s` world ...", config.name)
        generate_dataset(config, data)
    for folder, extra, what in (
        (model, [], "the pretrained model"),
        (oracle, ["--exclude-split", "forget"], "the retain oracle"),
    ):
        argv = ["--config", recipe(pretrain_recipe), "--dataset", str(data), "--output", str(folder)]
        (args,) = parse_dataclasses((PretrainArguments,), [*argv, "--preset", preset, *extra], prog="behemoth")
        if (folder / RECORD_FILE).exists():
            found = json.loads((folder / RECORD_FILE).read_text())
            if found["run_fingerprint"] != args.run_fingerprint(config.fingerprint()):
                asked = run_identity(asdict(args), config.fingerprint())
                there = run_identity(found["arguments"], found["dataset_fingerprint"])
                raise FileExistsError(
                    f"{folder} holds {what} made with other settings (there -> asked: {differences(there, asked)}); "
                    "choose another work folder"
                )
            logger.info("%s: reusing %s", what, folder)
            continue
        if folder.exists() and any(folder.iterdir()):
            if not (folder / CHECKPOINT_DIR).is_dir():
                raise FileExistsError(f"{folder} exists but holds no pretraining run of ours; move it away")
            args = replace(args, resume=True)  # checks the checkpoints are of this very run
        logger.info("pretraining %s ...", what)
        pretrain(args)
    return data, model, oracle


def run_quickstart(args: QuickstartArguments) -> dict[str, dict[str, Any]]:
    from behemoth_hf.evaluation import EvaluationArguments, run_evaluation
    from behemoth_hf.unlearn import UnlearningArguments
    from behemoth_hf.unlearn.run import RECORD_FILE as UNLEARNING_RECORD
    from behemoth_hf.unlearn.run import run_unlearning

    root = refuse_unsafe_path(args.output_dir, "output_dir")
    pretrain_recipe = "pretrain_tiny.yaml" if args.preset == "tiny" else "pretrain_small.yaml"
    data, model, oracle = prepare_world(root, make_config(args.world), args.preset, pretrain_recipe)

    runs = {
        "npo": ("npo.yaml", "unlearning the forget split with NPO"),
        "edit-lora": ("edit_lora.yaml", "editing the forget facts with rank-4 LoRA"),
    }
    for name, (config, what) in runs.items():
        argv = [
            "--config",
            recipe(config),
            "--model",
            str(model),
            "--dataset",
            str(data),
            "--output",
            str(root / name),
        ]
        (unlearning,) = parse_dataclasses((UnlearningArguments,), argv, prog="quickstart")
        key = {**arguments_key(unlearning), "model": identity(model), "dataset": identity(data)}
        if not claim(root / name, root / name / UNLEARNING_RECORD, key, what, argument_defaults(unlearning)):
            run_unlearning(unlearning)

    logger.info("evaluating against the oracle")
    evaluation = EvaluationArguments(
        model=[str(model), *(str(root / name) for name in runs)],
        dataset=str(data),
        oracle=str(oracle),
        base=str(model),
        output_dir=str(root / "evaluation"),
        overwrite=True,  # the quickstart re-evaluates every time; earlier stages are reused
    )
    return run_evaluation(evaluation)


def format_table(all_results: dict[str, dict[str, Any]], edit_runs: set[str] = frozenset()) -> str:
    """A plain-text table of the headline metrics, one row per model; edit metrics only for `edit_runs`."""
    from behemoth_hf.evaluation import EDIT_METRICS

    table = [(key, title) for key, title in TABLE if edit_runs or key not in EDIT_METRICS]
    header = ["model", *(title for _, title in table)]
    rows = [header]
    for name, results in all_results.items():
        values = [
            None if key in EDIT_METRICS and name not in edit_runs else results.get(key, {}).get("agg_value")
            for key, _ in table
        ]
        rows.append([name, *("-" if v is None else f"{v:.3g}" for v in values)])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) for row in rows)


def quickstart_command(argv: list[str]) -> int:
    """The whole pipeline on the `default` world in a few minutes: data, model, oracle, NPO, LoRA edit, report."""
    from behemoth_hf.evaluation import is_edit_run
    from behemoth_hf.report import REPORT_FILE

    (args,) = parse_dataclasses((QuickstartArguments,), argv, prog="behemoth quickstart")
    all_results = run_quickstart(args)
    print(format_table(all_results, {name for name in all_results if is_edit_run(Path(args.output_dir) / name)}))
    report = Path(args.output_dir) / "evaluation" / REPORT_FILE
    print(f"\nreport with plots: {report}")
    summary = json.loads((report.parent / "summary.json").read_text())
    print(f"world {summary['dataset_fingerprint']}; per-item results in {report.parent}/<model>/BEHEMOTH_EVAL.json")
    return 0

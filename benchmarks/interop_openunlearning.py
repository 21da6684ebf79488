"""Does unmodified OpenUnlearning run on a Behemoth export with only the export's configs, and do its numbers agree?

    python benchmarks/interop_openunlearning.py --world tiny --preset tiny   # ~15 min on 2 shared cores
    python benchmarks/interop_openunlearning.py --update                     # `default` world, merged into the record

1. `behemoth quickstart` (world, pretrained model, retain oracle, NPO-unlearned model, `behemoth evaluate` of
   each); reused when `--work` already holds it.
2. `behemoth export openunlearning`, then a check, with OU's own Hydra, that every dataset node of the composed
   eval config reads the export (a node left at `locuslab/TOFU` would reach for the Hub).
3. OU's `src/eval.py` with `experiment=eval/behemoth/default` on the oracle (its TOFU_EVAL.json becomes the
   retain logs), then on the pretrained and the NPO-unlearned model against them.
4. OU's `src/train.py` with `experiment=unlearn/behemoth/default` and `trainer=GradAscent` / `NPO` from the
   pretrained model, then `behemoth evaluate` of OU's unlearned models.
5. With `--learning-rates`: OU's GradAscent/NPO and `behemoth unlearn`'s gradient_ascent/npo recipes at each rate
   (the same schedule otherwise), all scored by `behemoth evaluate`: the same loss on the same data should forget
   alike.
6. Prints OU's numbers beside `behemoth evaluate`'s with their relative difference, and writes the record.

OU's command lines carry only the config dir, the experiment, the two paths and the run's name/output folder
(they are in the record). OU runs in its own environment (`--ou-python`, pinned transformers 4.45) from
`--ou-src`, offline, with its caches under `--work`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from behemoth_hf import cli
from behemoth_hf.evaluation import EvaluationArguments, run_evaluation
from behemoth_hf.export import OU_CONFIG_DIR, OU_EVAL_EXPERIMENT, OU_UNLEARN_EXPERIMENT, export_openunlearning
from behemoth_hf.quickstart import QuickstartArguments, run_quickstart
from results_file import add_output_arguments, output_path, write_record


NAME = "interop_openunlearning"
RECIPES = Path(__file__).resolve().parent.parent / "trainer_configs"
# OU's key in TOFU_EVAL.json -> `behemoth evaluate`'s key. OU's retain and utility terms are over the exported
# `retain_perturbed`/real-authors/world-facts sets: ours under `ou_*` (our own `model_utility` is another formula).
METRICS = {
    "forget_Q_A_Prob": "forget_Q_A_Prob",
    "forget_truth_ratio": "forget_truth_ratio",
    "forget_quality": "forget_quality",
    "retain_Q_A_Prob": "ou_retain_Q_A_Prob",
    "retain_Truth_Ratio": "ou_retain_Truth_Ratio",
    "model_utility": "ou_model_utility",
    "mia_min_k": "mia_min_k",
    "privleak": "privleak",
    "forget_Q_A_ROUGE": "forget_Q_A_ROUGE",
    "extraction_strength": "extraction_strength",
}
OUR_FORGETTING = ("forget_accuracy", "retain_accuracy", "paraphrase_accuracy", "forget_quality", "model_utility")
# Run in OU's environment: compose its eval config the way src/eval.py does (--config-dir is searched after OU's
# own configs) and list every dataset node whose `path` is not the export.
COMPOSE_CHECK = """
import sys
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf
src, config_dir, data_dir, *overrides = sys.argv[1:]
with initialize_config_dir(config_dir=f"{src}/configs", version_base=None):
    cfg = compose("eval.yaml", overrides=[f"hydra.searchpath=[file://{config_dir}]", *overrides])
paths = []
def walk(node, where):
    if isinstance(node, DictConfig):
        if "hf_args" in node:
            paths.append((where, OmegaConf.to_container(node.hf_args, resolve=True)["path"]))
        for key in node:
            walk(node._get_node(key), f"{where}.{key}")
walk(cfg, "")
wrong = [f"{where}: {path}" for where, path in paths if path != data_dir]
print(len(paths), *wrong, sep="\\n")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ou-src", type=Path, default=Path("/tmp/ou/src"), help="OpenUnlearning's source tree")
    parser.add_argument(
        "--ou-python", type=Path, default=Path("/tmp/ou/venv/bin/python"), help="python of OU's environment"
    )
    parser.add_argument("--world", default="default", help="named world of the quickstart (default: default)")
    parser.add_argument("--preset", default="small", help="model preset of the quickstart (default: small)")
    parser.add_argument(
        "--work",
        type=Path,
        help="work folder, reused by a rerun (default: outputs/interop_openunlearning/WORLD-PRESET)",
    )
    parser.add_argument(
        "--learning-rates",
        type=float,
        nargs="+",
        default=[],
        metavar="LR",
        help="also run OU's GradAscent/NPO and our gradient_ascent/npo recipes at each rate (step 5)",
    )
    add_output_arguments(parser, NAME)
    args = parser.parse_args()
    if not (args.ou_src / "src" / "eval.py").is_file():
        parser.error(f"`--ou-src` {args.ou_src} holds no OpenUnlearning checkout (no src/eval.py)")
    if not os.access(args.ou_python, os.X_OK):
        parser.error(f"`--ou-python` {args.ou_python} is not an executable python")
    work = (args.work or Path("outputs") / NAME / f"{args.world}-{args.preset}").absolute()
    quickstart = work / "quickstart"
    try:
        quickstart_args = QuickstartArguments(str(quickstart), args.world, args.preset)
    except ValueError as error:
        parser.error(str(error))
    record_path = output_path(parser, args, NAME)
    seconds: dict[str, float] = {}

    def timed(step: str, function, *arguments, **keywords):
        start = time.perf_counter()
        result = function(*arguments, **keywords)
        seconds[step] = round(time.perf_counter() - start, 1)
        print(f"[{step}] {seconds[step]} s", flush=True)
        return result

    timed("quickstart", run_quickstart, quickstart_args)
    export = timed("export", export_openunlearning, quickstart / "data", work / "export", overwrite=True)
    config_dir = export / OU_CONFIG_DIR
    ou = OpenUnlearning(args.ou_src.absolute(), args.ou_python.absolute(), config_dir, export, work / "ou")

    paths = [f"behemoth_data_dir={export}", f"behemoth_model_dir={quickstart / 'model'}", "task_name=check"]
    check = ou.python(
        "-c", COMPOSE_CHECK, str(ou.src), str(config_dir), str(export), f"experiment={OU_EVAL_EXPERIMENT}", *paths
    )
    nodes, *wrong = check.splitlines()
    if wrong:
        sys.exit("OU dataset nodes not reading the export:\n" + "\n".join(wrong))
    print(f"all {nodes} dataset nodes of OU's composed eval config read {export}")

    retain_logs = timed("ou_eval_oracle", ou.eval, "oracle", quickstart / "oracle")
    for name in ("model", "npo"):
        timed(f"ou_eval_{name}", ou.eval, name, quickstart / name, retain_logs)
    unlearned = {
        method: timed(f"ou_unlearn_{method}", ou.unlearn, method, quickstart / "model")
        for method in ("GradAscent", "NPO")
    }
    ours = timed(
        "behemoth_evaluate_ou_unlearned",
        run_evaluation,
        EvaluationArguments(
            model=[str(path) for path in unlearned.values()],
            dataset=str(quickstart / "data"),
            oracle=str(quickstart / "evaluation" / "oracle" / "BEHEMOTH_EVAL.json"),
            output_dir=str(work / "behemoth_evaluate_ou_unlearned"),
            overwrite=True,
        ),
    )

    comparison = {}
    for name in ("oracle", "model", "npo"):
        theirs = _agg_values(ou.out / "eval" / name / "TOFU_EVAL.json")
        mine = _agg_values(quickstart / "evaluation" / name / "BEHEMOTH_EVAL.json")
        comparison[name] = {
            key: _pair(theirs.get(key), mine.get(ours_key) if ours_key else None) for key, ours_key in METRICS.items()
        }
    forgetting = {
        method: {key: ours[path.name][key]["agg_value"] for key in OUR_FORGETTING if key in ours[path.name]}
        for method, path in unlearned.items()
    }
    sweep = {}
    for rate in args.learning_rates:
        models = {}
        for method, ours_method in (("GradAscent", "gradient_ascent"), ("NPO", "npo")):
            models[f"ou-{method}-{rate:g}"] = ou.unlearn(method, quickstart / "model", learning_rate=rate)
            models[f"behemoth-{ours_method}-{rate:g}"] = run_ours(ours_method, quickstart, work / "behemoth", rate)
        scored = run_evaluation(
            EvaluationArguments(
                model=[str(path) for path in models.values()],
                dataset=str(quickstart / "data"),
                oracle=str(quickstart / "evaluation" / "oracle" / "BEHEMOTH_EVAL.json"),
                output_dir=str(work / f"behemoth_evaluate_lr{rate:g}"),
                overwrite=True,
            )
        )
        sweep[f"{rate:g}"] = {
            name: {key: scored[path.name][key]["agg_value"] for key in OUR_FORGETTING if key in scored[path.name]}
            for name, path in models.items()
        }
    _print_tables(comparison, forgetting)
    for rate, runs in sweep.items():
        print(f"\nlearning rate {rate}: behemoth evaluate of OU's and behemoth's unlearned models")
        for name, metrics in runs.items():
            print(f"  {name:28s} " + "  ".join(f"{key} {value:.4g}" for key, value in metrics.items()))
    record = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores (shared)",
        "command": "python benchmarks/interop_openunlearning.py " + shlex.join(sys.argv[1:]),
        "openunlearning": {"src": str(args.ou_src), "python": str(args.ou_python), **ou.versions()},
        "runs": [
            {
                "world": args.world,
                "preset": args.preset,
                "ou_dataset_nodes_reading_the_export": int(nodes),
                "seconds": seconds,
                "ou_commands": ou.commands,
                "ou_vs_behemoth_evaluate": comparison,
                "behemoth_evaluate_of_ou_unlearned": forgetting,
                **({"learning_rates": sweep} if sweep else {}),
            }
        ],
    }
    write_record(record_path, record, update=args.update, identity={"runs": ("world", "preset")})


class OpenUnlearning:
    """OU's entry points, run unmodified in OU's environment with the export's `--config-dir`."""

    def __init__(self, src: Path, python: Path, config_dir: Path, export: Path, out: Path):
        self.src, self.executable, self.config_dir, self.export, self.out = src, python, config_dir, export, out
        self.commands: list[str] = []
        # Offline: every path is local, and a dataset node missed by the configs must fail, not download.
        self.env = {
            **os.environ,
            "HF_HOME": str(out / "hf_home"),
            "HF_HUB_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
        }

    def python(self, *argv: str, log: Path | None = None) -> str:
        """Run OU's python in its source tree (Hydra finds its configs from there); return stdout."""
        command = [str(self.executable), *argv]
        done = subprocess.run(command, check=False, cwd=self.src, env=self.env, capture_output=True, text=True)
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_text(done.stdout + done.stderr)
        if done.returncode != 0:
            sys.exit(f"OpenUnlearning failed ({shlex.join(command[:3])} ...):\n{done.stderr[-3000:]}")
        return done.stdout

    def _run(self, script: str, config: str, experiment: str, name: str, model: Path, extra: list[str]) -> Path:
        output = self.out / name
        argv = [
            script,
            f"--config-name={config}",
            f"--config-dir={self.config_dir}",
            f"experiment={experiment}",
            *extra,
            f"behemoth_data_dir={self.export}",
            f"behemoth_model_dir={model}",
            f"task_name={output.name}",
            f"paths.output_dir={output}",
        ]
        self.commands.append(f"cd {self.src} && python " + shlex.join(argv))
        self.python(*argv, log=self.out / "logs" / f"{output.parent.name}-{output.name}.log")
        return output

    def eval(self, name: str, model: Path, retain_logs: Path | None = None) -> Path:
        """OU's TOFU eval of `model` into out/eval/NAME; returns its TOFU_EVAL.json."""
        extra = [f"retain_logs_path={retain_logs}"] if retain_logs else []
        output = self._run("src/eval.py", "eval.yaml", OU_EVAL_EXPERIMENT, f"eval/{name}", model, extra)
        return output / "TOFU_EVAL.json"

    def unlearn(self, method: str, model: Path, learning_rate: float | None = None) -> Path:
        """OU's `method` trainer from `model` (at the export's learning rate unless given); returns the model folder."""
        extra, name = [f"trainer={method}"], f"unlearn/{method}"
        if learning_rate is not None:
            extra.append(f"trainer.args.learning_rate={learning_rate}")
            name += f"-{learning_rate:g}"
        return self._run("src/train.py", "unlearn.yaml", OU_UNLEARN_EXPERIMENT, name, model, extra)

    def versions(self) -> dict[str, str]:
        code = "import sys, torch, transformers; print(sys.version.split()[0], torch.__version__, transformers.__version__)"
        python, torch, transformers = self.python("-c", code).split()
        return {"python_version": python, "torch": torch, "transformers": transformers}


def run_ours(method: str, quickstart: Path, out: Path, learning_rate: float) -> Path:
    """`behemoth unlearn` with the shipped recipe of `method` at `learning_rate`; returns the model folder."""
    output = out / f"{method}-{learning_rate:g}"
    argv = ["unlearn", "--config", str(RECIPES / f"{method}.yaml"), "--model", str(quickstart / "model")]
    argv += ["--dataset", str(quickstart / "data"), "--output_dir", str(output), "--learning_rate", str(learning_rate)]
    if cli.main([*argv, "--overwrite"]) != 0:
        sys.exit(f"behemoth {shlex.join(argv)} failed")
    return output


def _agg_values(path: Path) -> dict[str, Any]:
    return {key: value.get("agg_value") for key, value in json.loads(path.read_text()).items()}


def _pair(theirs: float | None, mine: float | None) -> dict[str, float | None]:
    """Both values and (OU - ours) / |ours|, the relative difference (None when either is missing or ours is 0)."""
    relative = None
    if theirs is not None and mine is not None and mine != 0:
        relative = (theirs - mine) / abs(mine)
    return {"openunlearning": theirs, "behemoth": mine, "relative_difference": relative}


def _print_tables(comparison: dict[str, dict], forgetting: dict[str, dict]) -> None:
    def cell(value: float | None) -> str:
        return "-" if value is None else f"{value:.4g}"

    for name, metrics in comparison.items():
        print(f"\n{name}: OpenUnlearning vs behemoth evaluate")
        print(f"  {'metric':20s} {'OU':>12s} {'behemoth':>12s} {'rel. diff':>10s}")
        for key, pair in metrics.items():
            values = (cell(pair["openunlearning"]), cell(pair["behemoth"]), cell(pair["relative_difference"]))
            print(f"  {key:20s} {values[0]:>12s} {values[1]:>12s} {values[2]:>10s}")
    print("\nbehemoth evaluate of OpenUnlearning's unlearned models")
    for method, metrics in forgetting.items():
        print(f"  {method:12s} " + "  ".join(f"{key} {cell(value)}" for key, value in metrics.items()))


if __name__ == "__main__":
    main()

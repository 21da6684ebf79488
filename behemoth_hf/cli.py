"""The `behemoth` command line: `behemoth COMMAND [ARGS]`.

Each command parses its own arguments; training commands use `behemoth_hf.arguments` (YAML file,
then flags, then `--set key=value`). Heavy imports stay inside the command functions.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path


def add_set_argument(parser: argparse.ArgumentParser, help_text: str) -> None:
    """The repeatable `--set KEY=VALUE` of every command, collected in `args.overrides`."""
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=help_text)


def generate_command(argv: list[str]) -> int:
    """Generate a world: Parquet splits, tokenizer, metadata and dataset card."""
    parser = argparse.ArgumentParser(prog="behemoth generate", description=generate_command.__doc__)
    parser.add_argument("--config", default="default", help="named world config (see `behemoth configs`)")
    add_set_argument(parser, "override a world parameter, e.g. --set num_subjects=1000 (repeatable)")
    parser.add_argument("--output", required=True, help="output folder (must not exist unless --overwrite)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--workers",
        type=int,
        choices=(1, 2),
        help="processes that write the files (default: 2 for a world of 500k+ train rows on 2+ cores); "
        "the output is the same bytes either way",
    )
    parser.add_argument(
        "--no-resource-check",
        action="store_true",
        help="generate even when the estimated memory or disk exceeds what this machine has "
        "(same as BEHEMOTH_NO_RESOURCE_CHECK=1)",
    )
    args = parser.parse_args(argv)

    from behemoth_hf.config import make_config, parse_overrides
    from behemoth_hf.generate import METADATA_FILE, generate_dataset
    from behemoth_hf.resources import resource_checks_skipped

    with resource_checks_skipped(args.no_resource_check):
        config = make_config(args.config, **parse_overrides(args.overrides))
        output = generate_dataset(
            config, args.output, overwrite=args.overwrite, progress=not args.quiet, workers=args.workers
        )
    print(
        f"wrote {config.name} (fingerprint {config.fingerprint()}) to {output}; metadata in {output / METADATA_FILE}"
    )
    return 0


def configs_command(argv: list[str]) -> int:
    """List the named world configs."""
    argparse.ArgumentParser(prog="behemoth configs", description=configs_command.__doc__).parse_args(argv)
    from behemoth_hf.config import NAMED_CONFIGS

    for name, config in NAMED_CONFIGS.items():
        print(
            f"{name:12s} {config.num_subjects} subjects x {config.num_relations} relations x "
            f"{config.num_objects} objects, {config.repeats} repeats: {config.description}"
        )
    return 0


def main_process_print(message: str) -> None:
    """Print once under torchrun / accelerate launch (they set RANK in every process they start)."""
    if os.environ.get("RANK", "0") == "0":
        print(message)


def launched_processes() -> int:
    """The processes torchrun / accelerate launch started (they set WORLD_SIZE in every one; 1 without them). Read
    before any distributed state exists: a `PartialState()` made to ask would miss `ACCELERATE_USE_CPU`."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def single_process_only(command: str) -> None:
    """Refuse, before any work, a command without a multi-process mode started on several processes: each would run
    all of it, and all but the first to finish would fail on the finished output."""
    launched = launched_processes()
    if launched > 1:
        raise ValueError(
            f"`behemoth {command}` runs in one process, and {launched} were started: run it without torchrun or "
            "accelerate launch (several processes serve pretrain, unlearn, evaluate, attack relearn and edit with a "
            "Trainer method)"
        )


def pretrain_command(argv: list[str]) -> int:
    """Pretrain a model from scratch on a Behemoth corpus (add --exclude-split forget for the oracle)."""
    from behemoth_hf.arguments import parse_dataclasses
    from behemoth_hf.pretrain import PretrainArguments, pretrain

    (args,) = parse_dataclasses((PretrainArguments,), argv, prog="behemoth pretrain")
    record = pretrain(args)
    accuracy = ", ".join(f"{split} {value:.3f}" for split, value in record["accuracy"].items())
    main_process_print(
        f"saved {args.output_dir} after {record['steps']} updates ({record['wall_seconds']} s); accuracy: {accuracy}"
    )
    return 0


def _unlearning(argv: list[str], prog: str, method: str | None) -> int:
    from behemoth_hf.arguments import parse_dataclasses
    from behemoth_hf.unlearn import UnlearningArguments
    from behemoth_hf.unlearn.run import run_unlearning

    defaults = {"method": method} if method else None
    (args,) = parse_dataclasses((UnlearningArguments,), argv, prog=prog, defaults=defaults)
    if method is not None and args.method != method:
        raise ValueError(f"`{prog}` runs the `{method}` method, got `method={args.method}`; use `behemoth unlearn`")
    if method is None and args.method == "edit":
        raise ValueError("`method=edit` writes new answers: run it with `behemoth edit`")
    record = run_unlearning(args)
    main_process_print(
        f"saved {args.output_dir}: {record['method']}, {record['steps']} steps, "
        f"{record['trainable_parameters']:,} trainable parameters ({record['wall_seconds']} s)"
    )
    return 0


def unlearn_command(argv: list[str]) -> int:
    """Unlearn the forget split with a Trainer method (gradient_ascent, grad_diff, npo, simnpo)."""
    return _unlearning(argv, "behemoth unlearn", None)


def edit_command(argv: list[str]) -> int:
    """Edit facts toward new targets: fine-tuning (`edit`, LoRA rank k or blocks) or `--method rome|memit|alphaedit`."""
    from behemoth_hf.editors.run import EDITOR_CHOICES, editor_command, requested_method

    method = requested_method(argv)
    if method in EDITOR_CHOICES:
        single_process_only(f"edit --method {method}")
        return editor_command(argv)
    return _unlearning(argv, "behemoth edit", "edit")


def trace_command(argv: list[str]) -> int:
    """Causal tracing: which layer at which position carries a fact's object (JSON, plot, suggested ROME layer)."""
    from behemoth_hf.editors.trace import trace_command as run

    return run(argv)


def evaluate_command(argv: list[str]) -> int:
    """Evaluate models (and the oracle): OpenUnlearning-shaped results, a markdown report and plots."""
    from behemoth_hf.arguments import parse_dataclasses
    from behemoth_hf.evaluation import EvaluationArguments, run_evaluation
    from behemoth_hf.report import REPORT_FILE

    (args,) = parse_dataclasses((EvaluationArguments,), argv, prog="behemoth evaluate")
    all_results = run_evaluation(args)
    lines = []
    for name, results in all_results.items():
        headline = ", ".join(
            f"{key} {results[key]['agg_value']:.3g}"
            for key in ("forget_accuracy", "retain_accuracy", "forget_quality", "model_utility")
            if results[key]["agg_value"] is not None
        )
        lines.append(f"{name}: {headline}")
    main_process_print("\n".join([*lines, f"report: {Path(args.output_dir) / REPORT_FILE}"]))
    return 0


def quickstart_command(argv: list[str]) -> int:
    """The whole pipeline on the `default` world in minutes: data, model, oracle, NPO, LoRA edit, report."""
    from behemoth_hf.quickstart import quickstart_command as run

    return run(argv)


def experiment_command(argv: list[str]) -> int:
    """Run a sweep from trainer_configs/experiments/<name>.yaml: cached models, seeds, LR grid, table, plots."""
    from behemoth_hf.experiment import experiment_command as run

    return run(argv)


def attack_command(argv: list[str]) -> int:
    """Attack unlearned models: `relearn` (benign fine-tuning) or `quantize` (8/4-bit round trip)."""
    from behemoth_hf.attacks import attack_command as run

    return run(argv)


def sequential_command(argv: list[str]) -> int:
    """Unlearn the forget set as k requests in turn (--num_requests k), evaluating after each, against one shot."""
    from behemoth_hf.sequential import sequential_command as run

    return run(argv)


def push_command(argv: list[str]) -> int:
    """Push a dataset or model folder to the Hugging Face Hub (HF_TOKEN, HF_ENDPOINT honoured)."""
    from behemoth_hf.hub import push_command as run

    return run(argv)


def export_command(argv: list[str]) -> int:
    """Write a world in the OpenUnlearning (TOFU) layout or as EasyEdit requests."""
    from behemoth_hf.export import export_command as run

    return run(argv)


COMMANDS: dict[str, Callable[[list[str]], int]] = {
    "quickstart": quickstart_command,
    "generate": generate_command,
    "configs": configs_command,
    "pretrain": pretrain_command,
    "unlearn": unlearn_command,
    "edit": edit_command,
    "trace": trace_command,
    "evaluate": evaluate_command,
    "experiment": experiment_command,
    "attack": attack_command,
    "sequential": sequential_command,
    "push": push_command,
    "export": export_command,
}

# The commands that share their work between the processes of a torchrun / accelerate launch (edit and attack only
# for some methods: they check).
MULTI_PROCESS_COMMANDS = ("pretrain", "unlearn", "edit", "evaluate", "attack")


# Failures of the user's input or environment: one line and exit 2, no traceback (anything else is a bug and keeps
# its traceback). An OSError counts when it names the file it failed on (an unwritable parent, an output path that
# is a file, ...); these subclasses always do.
_USER_OS_ERRORS = (FileExistsError, FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)


def error_line(error: BaseException) -> str:
    """`error` as one line: `strerror: filename` for operating-system errors, else the message, whitespace folded."""
    if isinstance(error, OSError) and error.strerror and error.filename is not None:
        target = f"{error.filename} -> {error.filename2}" if error.filename2 is not None else error.filename
        return f"{error.strerror}: {target}"
    return " ".join(str(error).split())


def _exit_on_sigterm(signum: int, frame) -> None:
    # A plain `kill` unwinds the stack like Ctrl-C does, so staging folders are removed and locks released.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="behemoth", description="Behemoth synthetic-knowledge benchmark")
    parser.add_argument(
        "command",
        choices=list(COMMANDS),
        help="; ".join(f"{name}: {command.__doc__.splitlines()[0]}" for name, command in COMMANDS.items()),
    )
    known, rest = parser.parse_known_args(argv[:1])
    # Before any command imports torch: OpenMP reads its thread settings once, when torch loads it.
    from behemoth_hf.threads import configure_threads

    configure_threads()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        if known.command not in MULTI_PROCESS_COMMANDS:
            single_process_only(known.command)
        return COMMANDS[known.command](argv[1:] + rest)
    except KeyboardInterrupt:
        print(f"behemoth {known.command}: interrupted", file=sys.stderr)
        return 130  # 128 + SIGINT, as shells report it
    except Exception as error:
        import yaml  # late: only an error needs it (it is a tenth of `behemoth --help`'s start-up)

        from behemoth_hf.hub import HubError

        if not isinstance(error, (ValueError, TypeError, OSError, yaml.YAMLError, HubError)):
            raise
        if isinstance(error, OSError) and not isinstance(error, _USER_OS_ERRORS) and error.filename is None:
            raise
        print(f"behemoth {known.command}: error: {error_line(error)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

"""The `behemoth` command line. Each sub-command is a `main(args)` function; heavy imports stay inside it."""

from __future__ import annotations

import argparse
import logging
import sys


def _add_world_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default="default", help="named world config (see `behemoth configs`)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a world parameter, e.g. --set num_subjects=1000 (repeatable)",
    )


def generate_main(args: argparse.Namespace) -> int:
    from behemoth_hf.config import make_config, parse_overrides
    from behemoth_hf.generate import METADATA_FILE, generate_dataset

    config = make_config(args.config, **parse_overrides(args.overrides))
    output = generate_dataset(config, args.output, overwrite=args.overwrite, progress=not args.quiet)
    print(f"wrote {config.name} (fingerprint {config.fingerprint()}) to {output}; metadata in {output / METADATA_FILE}")
    return 0


def configs_main(args: argparse.Namespace) -> int:
    from behemoth_hf.config import NAMED_CONFIGS

    for name, config in NAMED_CONFIGS.items():
        print(f"{name:12s} {config.num_subjects} subjects x {config.num_relations} relations x {config.num_objects} "
              f"objects, {config.repeats} repeats: {config.description}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="behemoth", description="Behemoth synthetic-knowledge benchmark")
    commands = parser.add_subparsers(dest="command", required=True)

    generate = commands.add_parser("generate", help="generate a world: Parquet splits, tokenizer, metadata, card")
    _add_world_arguments(generate)
    generate.add_argument("--output", required=True, help="output folder (must not exist unless --overwrite)")
    generate.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    generate.add_argument("--quiet", action="store_true", help="no progress bar")
    generate.set_defaults(handler=generate_main)

    configs = commands.add_parser("configs", help="list the named world configs")
    configs.set_defaults(handler=configs_main)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except (ValueError, TypeError, FileExistsError, FileNotFoundError) as error:
        # Bad input: one clear line, no traceback.
        print(f"behemoth {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

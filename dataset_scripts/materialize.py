"""Materialise named Behemoth configs as one Parquet dataset repo, and optionally push it to the Hub.

    python dataset_scripts/materialize.py --output behemoth-hub                       # every config but paper
    python dataset_scripts/materialize.py --output behemoth-hub --configs tiny default
    python dataset_scripts/materialize.py --output behemoth-hub --set repeats=10      # smaller train splits
    python dataset_scripts/materialize.py --output behemoth-hub --push-to-hub ORG/behemoth [--private]

The folder holds `<config>/data/<split>-*.parquet`, `<config>/tokenizer/`, `<config>/behemoth.json`
and one README.md whose YAML `configs:` lists every config, so that
`load_dataset("<folder or ORG/behemoth>", "<config>")` works for each of them without any loading
script (datasets >= 4 runs none); `load_dataset("<folder or ORG/behemoth>")` loads `default` when it is
materialised, else the first config. The push is `behemoth push dataset` (token from `HF_TOKEN` /
`hf auth login`; `HF_ENDPOINT` honoured).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from behemoth_hf.cli import add_set_argument
from behemoth_hf.config import NAMED_CONFIGS, make_config, parse_overrides
from behemoth_hf.generate import METADATA_FILE, generate_dataset, write_dataset_card
from behemoth_hf.hub import push_dataset
from behemoth_hf.staging import check_output, staged_output


# A finished repo folder holds one generated world per config (and the card, written last).
REPO_MARKER = f"*/{METADATA_FILE}"


def materialize(
    output: Path,
    config_names: list[str],
    *,
    overrides: dict[str, Any] | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Write `config_names` (each with the world-parameter `overrides`) into the repo folder `output`."""
    output = check_output(output, REPO_MARKER, overwrite=overwrite, parameter="--output")
    if not config_names:
        raise ValueError(f"`--configs` names no config; choose from {', '.join(NAMED_CONFIGS)}")
    if len(set(config_names)) != len(config_names):
        raise ValueError(f"`--configs` names a config twice: {' '.join(config_names)}")
    # Validate every name and override before writing anything.
    configs = [make_config(name, **(overrides or {})) for name in config_names]
    with staged_output(output, REPO_MARKER, overwrite=overwrite, parameter="--output") as staging:
        entries = []
        for config in configs:
            generate_dataset(config, staging / config.name, progress=progress)
            rows = json.loads((staging / config.name / METADATA_FILE).read_text())["splits"]
            (staging / config.name / "README.md").unlink()  # one card at the root describes every config
            entries.append((config, rows, config.name))
        write_dataset_card(staging, entries)
    return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_configs = [name for name in NAMED_CONFIGS if name != "paper"]
    parser.add_argument("--output", required=True, type=Path, help="repo folder (must not exist unless --overwrite)")
    parser.add_argument("--configs", nargs="+", default=default_configs, choices=list(NAMED_CONFIGS))
    add_set_argument(parser, "override a world parameter of every config, e.g. --set repeats=10 (repeatable)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--push-to-hub", metavar="ORG/NAME", help="then upload the folder to this dataset repo")
    parser.add_argument("--private", action="store_true", help="create the Hub repo as private (if it is new)")
    args = parser.parse_args(argv)
    try:
        overrides = parse_overrides(args.overrides)
        folder = materialize(
            args.output, args.configs, overrides=overrides, overwrite=args.overwrite, progress=not args.quiet
        )
    except (ValueError, TypeError, FileExistsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"materialised {', '.join(args.configs)} in {folder}")
    if args.push_to_hub:
        print(f"pushed: {push_dataset(folder, args.push_to_hub, private=args.private)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

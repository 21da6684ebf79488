"""Where a benchmark writes its record: a new file unless `--update` names the committed one.

By default a run writes `benchmarks/results/<name>-<UTC time>.json` (or the new file `--output PATH`), so
running a README command never rewrites the committed `benchmarks/results/<name>.json`. `--update`
merges the run into that committed file: entries it did not re-measure (other seeds, the `paper` case,
the oracle) are kept, entries it did re-measure are replaced in place. The target is checked before
the benchmark starts, so a bad path fails in a second, not after an hour of training.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any


RESULTS_DIR = Path(__file__).parent / "results"


def add_output_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    """`--output PATH` / `--update` (exclusive) for the benchmark whose committed record is results/<name>.json."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--output",
        type=Path,
        help=f"write the record to this new file (default: benchmarks/results/{name}-<UTC time>.json)",
    )
    group.add_argument(
        "--update",
        action="store_true",
        help=f"merge the record into the committed benchmarks/results/{name}.json, keeping what this run did not "
        "re-measure",
    )


def output_path(parser: argparse.ArgumentParser, args: argparse.Namespace, name: str) -> Path:
    """The file this run will write; exits with a usage error now if it cannot (exists, or unreadable to merge)."""
    if args.update:
        path = RESULTS_DIR / f"{name}.json"
        if path.exists():
            _read(parser, path)
        return path
    path = args.output or RESULTS_DIR / f"{name}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    if path.exists():
        parser.error(
            f"`--output` {path} already exists; choose a new file, or pass --update to merge into {name}.json"
        )
    if not path.parent.is_dir():
        parser.error(f"`--output` {path}: folder {path.parent} does not exist")
    return path


def write_record(
    path: Path, record: dict[str, Any], *, update: bool, identity: dict[str, tuple[str, ...]] | None = None
) -> None:
    """Write `record` to `path`; with `update`, merged into what `path` holds (see `merge`)."""
    if update and path.exists():
        record = merge(json.loads(path.read_text()), record, identity or {})
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {path}")


def merge(old: dict[str, Any], new: dict[str, Any], identity: dict[str, tuple[str, ...]]) -> dict[str, Any]:
    """`old` updated by `new`: dicts merge key by key; a list named in `identity` (e.g. `{"results": ("case",)}`)
    merges its entries by those fields, a new entry replacing the old one in place; anything else is replaced."""
    merged = dict(old)
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(old.get(key), dict):
            merged[key] = merge(old[key], value, identity)
        elif key in identity and isinstance(value, list) and isinstance(old.get(key), list):
            merged[key] = _merge_entries(old[key], value, identity[key])
        else:
            merged[key] = value
    return merged


def _merge_entries(old: list[dict], new: list[dict], fields: tuple[str, ...]) -> list[dict]:
    def key(entry: dict) -> str:
        return json.dumps([entry.get(field) for field in fields], sort_keys=True)

    remeasured = {key(entry): entry for entry in new}
    kept = [remeasured.pop(key(entry), entry) for entry in old]
    return kept + [entry for entry in new if key(entry) in remeasured]


def _read(parser: argparse.ArgumentParser, path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        parser.error(f"--update: cannot read {path} to merge into it ({error})")

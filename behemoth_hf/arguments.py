"""The argument convention of every `behemoth` command: YAML file < command-line flags < `--set key=value`.

Arguments are dataclasses parsed with `transformers.HfArgumentParser`. `--config FILE.yaml` sets the
parser's defaults (so flags still win, as in TRL's parser) and unknown YAML keys are errors;
`--set key=value` then overrides any field, typed by the field's annotation.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from pathlib import Path
from typing import Any

import yaml
from transformers import HfArgumentParser


_NONE_WORDS = ("none", "null")


def field_types(dataclass_type: type) -> dict[str, Any]:
    """Annotation of every init field of a dataclass, resolved."""
    hints = typing.get_type_hints(dataclass_type)
    return {field.name: hints[field.name] for field in dataclasses.fields(dataclass_type) if field.init}


def coerce(name: str, raw: str, annotation: Any) -> Any:
    """Convert the string `raw` to `annotation` (int, float, bool, str, X | None), naming `name` on error."""
    options = (
        typing.get_args(annotation)
        if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union
        else (annotation,)
    )
    if type(None) in options and raw.strip().lower() in _NONE_WORDS:
        return None
    kind = next((option for option in options if option is not type(None)), str)
    if typing.get_origin(kind) is typing.Literal:
        if raw not in typing.get_args(kind):
            raise ValueError(f"`{name}` must be one of {list(typing.get_args(kind))}, got {raw!r}")
        return raw
    if kind is bool:
        lowered = raw.strip().lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
        raise ValueError(f"`{name}` must be true or false, got {raw!r}")
    if kind is int:
        try:
            return int(raw.replace("_", ""))
        except ValueError:
            raise TypeError(f"`{name}` must be an integer, got {raw!r}") from None
    if kind is float:
        try:
            return float(raw)
        except ValueError:
            raise TypeError(f"`{name}` must be a number, got {raw!r}") from None
    return raw


def parse_key_values(pairs: list[str], types_by_name: dict[str, Any]) -> dict[str, Any]:
    """Parse `key=value` strings into typed values; unknown keys raise `ValueError` listing the allowed ones."""
    values: dict[str, Any] = {}
    for pair in pairs:
        key, separator, raw = pair.partition("=")
        key = key.strip()
        if not separator:
            raise ValueError(f"override {pair!r} must look like key=value")
        if key not in types_by_name:
            raise ValueError(f"unknown parameter `{key}`; allowed: {', '.join(sorted(types_by_name))}")
        values[key] = coerce(key, raw.strip(), types_by_name[key])
    return values


def load_yaml_defaults(path: str | Path, dataclass_types: tuple[type, ...]) -> dict[str, Any]:
    """The mapping in a YAML config file; keys must be fields of `dataclass_types`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"`--config` {path} does not exist")
    loaded = yaml.safe_load(path.read_text()) or {}
    if not isinstance(loaded, dict):
        raise ValueError(f"`--config` {path} must hold a mapping of argument names to values")
    known = {name for dataclass_type in dataclass_types for name in field_types(dataclass_type)}
    unknown = sorted(set(loaded) - known)
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} in {path}; allowed: {', '.join(sorted(known))}")
    return loaded


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML file of argument defaults (flags and --set override it)")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="override any argument"
    )


def parse_dataclasses(
    dataclass_types: tuple[type, ...], argv: list[str] | None, prog: str, defaults: dict[str, Any] | None = None
) -> tuple[Any, ...]:
    """Parse `argv` into instances of `dataclass_types` following the convention above.

    `defaults` replaces the dataclasses' own defaults (a command's preset); the YAML file still wins over it.
    """
    pre_parser = argparse.ArgumentParser(add_help=False)
    add_config_arguments(pre_parser)
    known, _ = pre_parser.parse_known_args(argv)
    parser = HfArgumentParser(dataclass_types, prog=prog)
    add_config_arguments(parser)
    if defaults:
        parser.set_defaults(**defaults)
    if known.config:
        defaults = load_yaml_defaults(known.config, dataclass_types)
        for action in parser._actions:
            if action.dest in defaults:
                action.required = False  # provided by the YAML file
        parser.set_defaults(**defaults)
    *instances, _extra = parser.parse_args_into_dataclasses(argv, return_remaining_strings=False)
    overrides = known.overrides
    results = []
    for instance in instances:
        types_by_name = field_types(type(instance))
        mine = [pair for pair in overrides if pair.partition("=")[0].strip() in types_by_name]
        results.append(dataclasses.replace(instance, **parse_key_values(mine, types_by_name)))
    all_names = {name for instance in instances for name in field_types(type(instance))}
    unknown = [pair for pair in overrides if pair.partition("=")[0].strip() not in all_names]
    if unknown:
        raise ValueError(f"unknown parameter in --set {unknown[0]!r}; allowed: {', '.join(sorted(all_names))}")
    return tuple(results)

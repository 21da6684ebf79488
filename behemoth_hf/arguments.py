"""The argument convention of every `behemoth` command: YAML file < command-line flags < `--set key=value`.

Arguments are dataclasses parsed with `transformers.HfArgumentParser`. `--config FILE.yaml` sets the
parser's defaults (so flags still win, as in TRL's parser) and unknown YAML keys are errors;
`--set key=value` then overrides any field. YAML values and `--set` strings go through the same
conversion (`coerce`, typed by the field's annotation), so a YAML value a flag would refuse is refused too.
`--help` shows a command's own fields; for a `TrainingArguments` subclass, `--help-all` adds the inherited ones.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import functools
import inspect
import types
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml


_NONE_WORDS = ("none", "null")
HELP_ALL = "--help-all"


def field_types(dataclass_type: type) -> dict[str, Any]:
    """Annotation of every init field of a dataclass, resolved."""
    hints = typing.get_type_hints(dataclass_type)
    return {field.name: hints[field.name] for field in dataclasses.fields(dataclass_type) if field.init}


def _union_members(annotation: Any) -> tuple[Any, ...]:
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return typing.get_args(annotation)
    return (annotation,)


def _describe(kind: Any) -> str:
    """What a value of `kind` looks like, for error messages."""
    if typing.get_origin(kind) is typing.Literal:
        return f"one of {list(typing.get_args(kind))}"
    if typing.get_origin(kind) is list:
        return "a list"
    if kind is dict or typing.get_origin(kind) is dict:
        return "a mapping"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(kind, f"a {kind}")


def _accepts(kind: Any, value: Any) -> bool:
    """Whether a YAML scalar already has the type `kind` asks for (an int also serves a float field)."""
    if typing.get_origin(kind) is typing.Literal:
        return value in typing.get_args(kind)
    if isinstance(value, bool):
        return kind is bool
    return (kind is int and isinstance(value, int)) or (kind is float and isinstance(value, (int, float)))


def _got(raw: Any) -> str:
    # PyYAML reads yes/no/on/off as booleans: `save_strategy: no` arrives as False.
    return f"{raw!r} (quote yes/no/on/off in YAML)" if isinstance(raw, bool) else repr(raw)


def coerce(name: str, raw: Any, annotation: Any) -> Any:
    """Convert `raw` to `annotation` the way a command-line flag is converted, naming `name` on error.

    `raw` is a flag's string or a value read from YAML (which is typed already, or a string where PyYAML does not
    recognise the number, as in `1e-3`). Handles int, float, bool, str, Literal, list[X] and their unions with None
    (YAML null, or the word none/null where the field takes no string); values of other types (enums, dicts) pass
    through for the dataclass's own checks.
    """
    members = _union_members(annotation)
    kinds = [member for member in members if member is not type(None)]
    expected = " or ".join(_describe(kind) for kind in kinds)
    if isinstance(raw, str) and str in kinds:
        # As the flag does: a union with str keeps the string (`report_to: none` is the string "none").
        return raw
    if isinstance(raw, str) and any(
        typing.get_origin(kind) is typing.Literal and raw in typing.get_args(kind) for kind in kinds
    ):
        return raw  # a Literal member wins over the none-word reading (`mixed_precision: no`, `packing: none`)
    if raw is None or (isinstance(raw, str) and raw.strip().lower() in _NONE_WORDS):
        if type(None) in members:
            return None
        raise TypeError(f"`{name}` must be {expected}, got {raw!r}")
    if isinstance(raw, dict):
        if any(kind is dict or typing.get_origin(kind) is dict for kind in kinds):
            return raw
        raise TypeError(f"`{name}` must be {expected}, got a mapping")
    lists = [kind for kind in kinds if typing.get_origin(kind) is list]
    if isinstance(raw, list):
        if not lists:
            raise TypeError(f"`{name}` must be {expected}, got a list")
        return [coerce(name, item, typing.get_args(lists[0])[0]) for item in raw]
    scalars = [kind for kind in kinds if kind not in lists]
    if not scalars:  # one value for a list field, as `--model DIR` gives a list of one folder
        return [coerce(name, raw, typing.get_args(lists[0])[0])]
    kind = next((kind for kind in scalars if not isinstance(raw, str) and _accepts(kind, raw)), scalars[0])
    text = raw.strip() if isinstance(raw, str) else str(raw)
    if typing.get_origin(kind) is typing.Literal:
        if raw not in typing.get_args(kind):
            raise ValueError(f"`{name}` must be one of {list(typing.get_args(kind))}, got {_got(raw)}")
        return raw
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        if text.lower() in ("true", "1", "yes"):
            return True
        if text.lower() in ("false", "0", "no"):
            return False
        raise ValueError(f"`{name}` must be true or false, got {raw!r}")
    if kind in (int, float):
        if not isinstance(raw, str) and _accepts(kind, raw):
            return kind(raw)
        if isinstance(raw, str):
            try:
                return kind(text)
            except ValueError:
                pass
        raise TypeError(f"`{name}` must be {_describe(kind)}, got {raw!r}")
    if kind is str:
        if isinstance(raw, bool):
            raise TypeError(f"`{name}` must be a string, got {_got(raw)}")
        return text
    return raw


def _unknown_names_message(names: list[str], allowed: Iterable[str]) -> str:
    """`did you mean` the closest allowed names (difflib), or the allowed list when none is close."""
    allowed = sorted(allowed)
    close = {name: difflib.get_close_matches(name, allowed, n=3) for name in names}
    hints = [
        (f"`{name}`: " if len(names) > 1 else "") + f"did you mean {' or '.join(f'`{match}`' for match in matches)}?"
        for name, matches in close.items()
        if matches
    ]
    return "; ".join(hints) if hints else f"allowed: {', '.join(allowed)}"


def parse_key_values(pairs: list[str], types_by_name: dict[str, Any]) -> dict[str, Any]:
    """Parse `key=value` strings into typed values; unknown keys raise `ValueError` naming the closest ones."""
    values: dict[str, Any] = {}
    for pair in pairs:
        key, separator, raw = pair.partition("=")
        key = key.strip()
        if not separator:
            raise ValueError(f"override {pair!r} must look like key=value")
        if key not in types_by_name:
            raise ValueError(f"unknown parameter `{key}`; {_unknown_names_message([key], types_by_name)}")
        values[key] = coerce(key, raw.strip(), types_by_name[key])
    return values


def read_yaml(path: str | Path) -> Any:
    """The document in the YAML file `path`; a syntax error is one `ValueError` line naming the file and line."""
    try:
        return yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or " ".join(str(error).split())
        raise ValueError(f"invalid YAML in {path}{where}: {problem}") from None


def load_yaml_defaults(path: str | Path, dataclass_types: tuple[type, ...]) -> dict[str, Any]:
    """The mapping in a YAML config file, each value converted like the flag of the same name.

    Keys must be fields of `dataclass_types`; a value of the wrong type raises naming the key, the file and the type.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"`--config` {path} does not exist")
    loaded = read_yaml(path) or {}
    if not isinstance(loaded, dict):
        raise ValueError(f"`--config` {path} must hold a mapping of argument names to values")
    types_by_name: dict[str, Any] = {}
    for dataclass_type in reversed(dataclass_types):  # the first dataclass wins, as in HfArgumentParser
        types_by_name.update(field_types(dataclass_type))
    unknown = sorted(set(loaded) - set(types_by_name))
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} in {path}; {_unknown_names_message(unknown, types_by_name)}")
    values = {}
    for key, value in loaded.items():
        try:
            values[key] = coerce(key, value, types_by_name[key])
        except (TypeError, ValueError) as error:
            raise type(error)(f"{error} (in {path})") from None
    return values


def _own_and_inherited_fields(dataclass_type: type) -> tuple[list[str], list[str]]:
    """Init fields of a dataclass: its own, and those a `TrainingArguments` subclass takes unchanged from transformers.

    A field the subclass declares again (a house default such as `learning_rate`) is its own. Own fields of a
    `TrainingArguments` subclass come in the subclass's declaration order, not at the parent's field positions.
    """
    from transformers import TrainingArguments  # late: it imports torch, which the other commands never need

    names = [field.name for field in dataclasses.fields(dataclass_type) if field.init]
    if not issubclass(dataclass_type, TrainingArguments):
        return names, []
    subclasses = dataclass_type.__mro__[: dataclass_type.__mro__.index(TrainingArguments)]
    declared = dict.fromkeys(name for cls in reversed(subclasses) for name in inspect.get_annotations(cls))
    own = [name for name in declared if name in names]
    return own, [name for name in names if name not in declared]


@functools.cache
def _grouped_parser_class() -> type:
    # Defined on first use: transformers (with pandas) takes seconds to import, and `behemoth generate` parses its
    # `--set` overrides with the helpers above, without this parser.
    from transformers import HfArgumentParser

    class GroupedArgumentParser(HfArgumentParser):
        """`HfArgumentParser` whose help lists each dataclass's own fields under its name, and the ~100 fields
        inherited from `TrainingArguments` last, under their own heading: hidden unless `show_inherited`
        (`--help-all`)."""

        def __init__(self, dataclass_types: tuple[type, ...], show_inherited: bool, **kwargs: Any):
            self._inherited: list[dataclasses.Field] = []
            super().__init__(dataclass_types, **kwargs)
            if not self._inherited:
                return
            count = len(self._inherited)
            description = "passed to the transformers Trainer as they are"
            if not show_inherited:
                description = f"{HELP_ALL} lists these {count} options, {description}"
            group = self.add_argument_group("inherited from transformers.TrainingArguments", description)
            first = len(self._actions)
            for field in self._inherited:
                self._parse_dataclass_field(group, field)
            if not show_inherited:
                for action in self._actions[first:]:
                    action.help = argparse.SUPPRESS  # also keeps them out of the usage line
            self.add_argument(HELP_ALL, action="help", help=f"show this help with the {count} inherited options too")

        def _add_dataclass_arguments(self, dtype: type) -> None:
            # HfArgumentParser's own method, with a group per dataclass and the inherited fields held back for the end.
            group = self.add_argument_group(getattr(dtype, "_argument_group_name", dtype.__name__))
            hints = typing.get_type_hints(dtype)
            fields = {field.name: field for field in dataclasses.fields(dtype)}
            own, inherited = _own_and_inherited_fields(dtype)
            for name in own + inherited:
                fields[name].type = hints[name]
            for name in own:
                self._parse_dataclass_field(group, fields[name])
            self._inherited += [fields[name] for name in inherited]

    return GroupedArgumentParser


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    from behemoth_hf.cli import add_set_argument

    parser.add_argument("--config", metavar="FILE.yaml", help="YAML file of argument defaults (flags and --set win)")
    add_set_argument(parser, "override any argument")


def parse_dataclasses(
    dataclass_types: tuple[type, ...], argv: list[str] | None, prog: str, defaults: dict[str, Any] | None = None
) -> tuple[Any, ...]:
    """Parse `argv` into instances of `dataclass_types` following the convention above.

    `defaults` replaces the dataclasses' own defaults (a command's preset); the YAML file still wins over it.
    """
    pre_parser = argparse.ArgumentParser(add_help=False)
    add_config_arguments(pre_parser)
    known, _ = pre_parser.parse_known_args(argv)
    parser = _grouped_parser_class()(dataclass_types, show_inherited=HELP_ALL in (argv or []), prog=prog)
    add_config_arguments(parser)
    if defaults:
        parser.set_defaults(**defaults)
    if known.config:
        defaults = load_yaml_defaults(known.config, dataclass_types)
        for action in parser._actions:
            if action.dest in defaults:
                action.required = False  # provided by the YAML file
        parser.set_defaults(**defaults)
    all_names = {name for dataclass_type in dataclass_types for name in field_types(dataclass_type)}
    unknown = [pair for pair in known.overrides if pair.partition("=")[0].strip() not in all_names]
    if unknown:
        key = unknown[0].partition("=")[0].strip()
        raise ValueError(f"unknown parameter in --set {unknown[0]!r}; {_unknown_names_message([key], all_names)}")
    *instances, _extra = parser.parse_args_into_dataclasses(argv, return_remaining_strings=False)
    results = []
    for instance in instances:
        types_by_name = field_types(type(instance))
        mine = [pair for pair in known.overrides if pair.partition("=")[0].strip() in types_by_name]
        results.append(dataclasses.replace(instance, **parse_key_values(mine, types_by_name)))
    return tuple(results)

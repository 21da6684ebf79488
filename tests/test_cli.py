"""The `behemoth` command line: --help everywhere, YAML/flag conversion, one-line errors and exit codes."""

import errno
import subprocess
import sys
import typing

import pytest

from behemoth_hf import cli
from behemoth_hf.arguments import coerce, parse_dataclasses
from behemoth_hf.pretrain import PretrainArguments


HELP_COMMANDS = [
    [],
    ["quickstart"],
    ["generate"],
    ["configs"],
    ["pretrain"],
    ["unlearn"],
    ["edit"],
    ["evaluate"],
    ["experiment"],
    ["attack"],
    ["attack", "relearn"],
    ["attack", "quantize"],
    ["sequential"],
    ["push"],
    ["push", "dataset"],
    ["push", "model"],
    ["export"],
    ["export", "openunlearning"],
    ["export", "easyedit"],
]
TRAINER_COMMANDS = ["unlearn", "edit", "sequential"]
INHERITED_HEADING = "inherited from transformers.TrainingArguments:"


def _help(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


@pytest.mark.parametrize(
    "words, flag",
    [(words, "--help") for words in HELP_COMMANDS] + [([command], "--help-all") for command in TRAINER_COMMANDS],
    ids=lambda value: " ".join(value) if isinstance(value, list) else value,
)
def test_help_works_for_every_command_and_starts_no_work(words, flag, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, out, err = _help([*words, flag], capsys)
    assert code == 0, err
    assert out.startswith(f"usage: {' '.join(['behemoth', *words])} "), out[:200]
    assert err == ""
    assert list(tmp_path.iterdir()) == []  # nothing generated, downloaded or trained


def _sections(text: str) -> dict[str, str]:
    """Help text split at its group headings (unindented lines ending in ':')."""
    sections, title = {}, ""
    for line in text.splitlines():
        if line and not line[0].isspace() and line.endswith(":"):
            title = line
            sections[title] = ""
        elif title:
            sections[title] += line + "\n"
    return sections


@pytest.mark.parametrize("command", TRAINER_COMMANDS)
def test_trainer_help_shows_our_arguments_and_keeps_training_arguments_for_help_all(command, capsys):
    _, short, _ = _help([command, "--help"], capsys)
    sections = _sections(short)
    ours = sections["UnlearningArguments:"]
    for flag in ("--method", "--lora_rank", "--trainable_blocks", "--learning_rate", "--output_dir"):
        assert flag in ours  # new fields and house defaults both count as ours
    assert "--adam_beta1" not in short and "--warmup_steps" not in short
    assert "--help-all lists these" in sections[INHERITED_HEADING]
    assert list(sections)[-1] == INHERITED_HEADING
    assert len(short.splitlines()) < 150
    if command == "sequential":
        assert "--one_shot" in sections["SequentialArguments:"]

    _, full, _ = _help([command, "--help-all"], capsys)
    sections = _sections(full)
    assert "--adam_beta1" in sections[INHERITED_HEADING] and "--warmup_steps" in sections[INHERITED_HEADING]
    assert "--adam_beta1" not in sections["UnlearningArguments:"]
    assert full.index("UnlearningArguments:") < full.index(INHERITED_HEADING)


def test_hidden_training_arguments_still_parse():
    from behemoth_hf.unlearn import UnlearningArguments

    argv = ["--model", "m", "--dataset", "d", "--output", "o", "--adam_beta1", "0.8", "--set", "warmup_steps=3"]
    (args,) = parse_dataclasses((UnlearningArguments,), argv, prog="t")
    assert (args.adam_beta1, args.warmup_steps, args.method) == (0.8, 3, "npo")


def test_attack_without_a_known_attack_is_a_usage_error(capsys):
    for argv in (["attack"], ["attack", "jailbreak"]):
        with pytest.raises(SystemExit) as exit_info:
            cli.main(argv)
        assert exit_info.value.code == 2
        assert "relearn" in capsys.readouterr().err


# ------------------------------------------------------------------------------------- YAML and --set values
def _parse_pretrain(tmp_path, yaml_text: str, *extra: str) -> PretrainArguments:
    config = tmp_path / "recipe.yaml"
    config.write_text(yaml_text)
    argv = ["--config", str(config), "--dataset", "tiny", "--output", str(tmp_path / "out"), *extra]
    (args,) = parse_dataclasses((PretrainArguments,), argv, prog="t")
    return args


@pytest.mark.parametrize(
    "yaml_text, error, match",
    [
        ("batch_size: true\n", TypeError, r"`batch_size` must be an integer, got True \(in .*recipe\.yaml\)"),
        ("batch_size: 1.5\n", TypeError, r"`batch_size` must be an integer, got 1\.5 \(in .*recipe\.yaml\)"),
        ("learning_rate: fast\n", TypeError, r"`learning_rate` must be a number, got 'fast' \(in .*recipe\.yaml\)"),
        ("learning_rate: [0.1]\n", TypeError, r"`learning_rate` must be a number, got a list"),
        ("seed: null\n", TypeError, r"`seed` must be an integer, got None \(in .*recipe\.yaml\)"),
        ("resume: maybe\n", ValueError, r"`resume` must be true or false, got 'maybe'"),
        ("mixed_precision: no\n", ValueError, r"must be one of \['no', .*got False \(quote yes/no/on/off in YAML\)"),
        ("preset: {size: 3}\n", TypeError, r"`preset` must be a string, got a mapping"),
    ],
)
def test_yaml_values_are_checked_like_flags(tmp_path, yaml_text, error, match):
    with pytest.raises(error, match=match):
        _parse_pretrain(tmp_path, yaml_text)


def test_yaml_values_are_converted_like_flags(tmp_path):
    # PyYAML reads `1e-3` (no dot) as a string and `1_000` as an int; both must arrive as the field's type.
    args = _parse_pretrain(tmp_path, "learning_rate: 1e-3\nwarmup_steps: 1_000\nweight_decay: 0\ntarget_accuracy: ~\n")
    assert (args.learning_rate, args.warmup_steps, args.weight_decay, args.target_accuracy) == (1e-3, 1000, 0.0, None)
    assert type(args.learning_rate) is float and type(args.weight_decay) is float
    argv = ["--dataset", "tiny", "--output", str(tmp_path / "out"), "--learning_rate", "1e-3"]
    (flags,) = parse_dataclasses((PretrainArguments,), [*argv, "--set", "warmup_steps=1000"], prog="t")
    assert (flags.learning_rate, flags.warmup_steps) == (args.learning_rate, args.warmup_steps)
    # Flags and --set still win over the file.
    args = _parse_pretrain(tmp_path, "batch_size: 4\nseed: 1\n", "--batch-size", "8", "--set", "seed=2")
    assert (args.batch_size, args.seed) == (8, 2)


def test_yaml_list_and_string_fields_take_what_their_flags_take(tmp_path):
    from behemoth_hf.attacks.relearn import RelearnArguments
    from behemoth_hf.unlearn import UnlearningArguments

    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (tmp_path / "a.yaml").write_text(f"model: {model}\nrelearn_data: retain\n")
    argv = ["--config", str(tmp_path / "a.yaml"), "--dataset", "tiny", "--output", str(tmp_path / "out")]
    (relearn,) = parse_dataclasses((RelearnArguments,), argv, prog="t")
    assert (relearn.model, relearn.relearn_data) == ([str(model)], ["retain"])
    (tmp_path / "u.yaml").write_text("trainable_layers: 1\nreport_to: none\n")
    argv = ["--config", str(tmp_path / "u.yaml"), "--model", "m", "--dataset", "d", "--output", "o"]
    (unlearning,) = parse_dataclasses((UnlearningArguments,), argv, prog="t")
    assert unlearning.trainable_layers == "1"
    assert unlearning.report_to == []  # the string "none" (no integrations), not None


def test_unknown_names_suggest_the_closest(tmp_path):
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['learning_rat'\] in .*; did you mean `learning_rate`\?"):
        _parse_pretrain(tmp_path, "learning_rat: 0.1\n")
    with pytest.raises(ValueError, match=r"unknown parameter in --set 'bach_size=3'; did you mean `batch_size`\?"):
        _parse_pretrain(tmp_path, "seed: 1\n", "--set", "bach_size=3")
    with pytest.raises(ValueError, match=r"unknown parameter in --set 'zzz=3'; allowed: batch_size, "):
        _parse_pretrain(tmp_path, "seed: 1\n", "--set", "zzz=3")


def test_yaml_syntax_error_is_one_line_naming_file_and_line(tmp_path, capsys):
    config = tmp_path / "broken.yaml"
    config.write_text("preset: tiny\nbatch_size: 4\n  seed: [1\n")
    output = tmp_path / "out"
    assert cli.main(["pretrain", "--config", str(config), "--dataset", "tiny", "--output", str(output)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"behemoth pretrain: error: invalid YAML in {config}, line 3")
    assert not output.exists()


def test_bad_yaml_value_stops_before_any_work(tmp_path, capsys):
    config = tmp_path / "recipe.yaml"
    config.write_text("preset: tiny\nbatch_size: true\n")
    output = tmp_path / "out"
    assert cli.main(["pretrain", "--config", str(config), "--dataset", "tiny", "--output", str(output)]) == 2
    err = capsys.readouterr().err
    assert err == f"behemoth pretrain: error: `batch_size` must be an integer, got True (in {config})\n"
    assert not output.exists()


def test_world_override_typo_suggests_the_parameter(tmp_path, capsys):
    output = tmp_path / "world"
    assert cli.main(["generate", "--config", "tiny", "--set", "num_subject=9", "--output", str(output)]) == 2
    assert "did you mean `num_subjects`" in capsys.readouterr().err
    assert not output.exists()


# ------------------------------------------------------------------------------------- errors and exit codes
def _replace_configs_command(monkeypatch, error: BaseException) -> None:
    """Make `behemoth configs` fail with `error`, to check how `main` reports it."""

    def fail(argv):
        """Fails on purpose."""
        raise error

    monkeypatch.setitem(cli.COMMANDS, "configs", fail)


def test_output_below_a_file_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert cli.main(["generate", "--config", "tiny", "--quiet", "--output", str(blocker / "world")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("behemoth generate: error: ") and str(blocker) in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "error, line",
    [
        (PermissionError(errno.EACCES, "Permission denied", "/data/out"), "Permission denied: /data/out"),
        (IsADirectoryError(errno.EISDIR, "Is a directory", "/data/file.json"), "Is a directory: /data/file.json"),
        (NotADirectoryError(errno.ENOTDIR, "Not a directory", "/f/x"), "Not a directory: /f/x"),
        (OSError(errno.EROFS, "Read-only file system", "/ro/x"), "Read-only file system: /ro/x"),
        (OSError(errno.EXDEV, "Invalid cross-device link", "/a", None, "/b"), "Invalid cross-device link: /a -> /b"),
        (PermissionError("no write access to the cache"), "no write access to the cache"),
        (ValueError("`seed` must be\n  >= 0"), "`seed` must be >= 0"),
    ],
)
def test_expected_failures_are_one_line_exit_2(error, line, monkeypatch, capsys):
    _replace_configs_command(monkeypatch, error)
    assert cli.main(["configs"]) == 2
    assert capsys.readouterr().err == f"behemoth configs: error: {line}\n"


def test_yaml_error_from_any_reader_is_one_line(monkeypatch, capsys):
    import yaml

    with pytest.raises(yaml.YAMLError) as error:
        yaml.safe_load("a: [1\n")
    _replace_configs_command(monkeypatch, error.value)
    assert cli.main(["configs"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "line 2" in err


def test_ctrl_c_is_one_line_exit_130(monkeypatch, capsys):
    _replace_configs_command(monkeypatch, KeyboardInterrupt())
    assert cli.main(["configs"]) == 130
    assert capsys.readouterr().err == "behemoth configs: interrupted\n"


@pytest.mark.parametrize("error", [RuntimeError("bug"), KeyError("bug"), OSError(errno.EIO, "I/O error")])
def test_programming_errors_keep_their_traceback(error, monkeypatch):
    _replace_configs_command(monkeypatch, error)
    with pytest.raises(type(error)):
        cli.main(["configs"])


def test_light_commands_import_neither_torch_nor_transformers(tmp_path):
    # A fresh interpreter: this test process has imported both long ago. `datasets` and pandas cost a second of
    # start-up too: neither the package, nor the light commands, nor generating a world (to its last file) loads them.
    code = """
import contextlib, io, sys
heavy = ("torch", "transformers", "datasets", "pandas")
def loaded():
    return [name for name in heavy if name in sys.modules]
import behemoth_hf
import behemoth_hf.config
print(loaded())
from behemoth_hf import cli
for argv in (["--help"], ["configs"], ["generate", "--help"]):
    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
        cli.main(argv)
print(loaded())
with contextlib.redirect_stdout(io.StringIO()):
    cli.main(["generate", "--config", "tiny", "--set", "repeats=2", "--output", sys.argv[1], "--quiet"])
print(loaded())
"""
    output = tmp_path / "tiny"
    result = subprocess.run([sys.executable, "-c", code, str(output)], capture_output=True, text=True, check=True)
    assert result.stdout.splitlines() == ["[]", "[]", "[]"], result.stderr
    assert (output / "behemoth.json").is_file()


def test_every_module_imports_first_thing():
    # An import cycle breaks only the entry points whose first import is on it, and in this process some earlier
    # import has long completed every cycle: `behemoth attack` and `from behemoth_hf import Lexicon` once failed in a
    # fresh interpreter, and a fresh `import behemoth_hf.builder` too. Every module is imported first in turn, in one
    # interpreter (the package's own modules forgotten in between), and each public name's module in a fresh one.
    code = """
import importlib, pkgutil, sys
import behemoth_hf
import datasets  # the package's import hook registers the builder now, not in the middle of the loop below
failed = []
for module in pkgutil.walk_packages(behemoth_hf.__path__, "behemoth_hf."):
    for name in [name for name in sys.modules if name.startswith("behemoth_hf.")]:
        del sys.modules[name]
    try:
        importlib.import_module(module.name)
    except ImportError as error:
        failed.append(f"{module.name}: {error}")
print(failed)
"""
    import behemoth_hf

    fresh = [f"import {module}" for module in sorted(set(behemoth_hf._LAZY.values()))]
    running = [
        subprocess.Popen([sys.executable, "-c", text], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for text in [code, *fresh]
    ]
    results = [process.communicate(timeout=300) for process in running]
    assert results[0][0].strip() == "[]", results[0]
    failed = [
        (text, err[-300:]) for text, process, (_, err) in zip(fresh, running[1:], results[1:]) if process.returncode
    ]
    assert not failed, failed


def test_importing_datasets_later_registers_the_builder():
    # `import behemoth_hf` no longer imports datasets; `load_dataset("behemoth", ...)` still works whichever comes
    # first.
    code = """
import sys
import behemoth_hf
assert "datasets" not in sys.modules
import datasets
from datasets.packaged_modules import _PACKAGED_DATASETS_MODULES
print(_PACKAGED_DATASETS_MODULES["behemoth"][0], datasets.get_dataset_config_names("behemoth")[:2])
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "behemoth_hf.builder ['tiny', 'default']", result.stderr


def test_a_literal_member_spelled_like_none_stays_the_literal():
    # `--set`/YAML values go through `coerce`; a choice named "none" must not become Python's None.
    choice = typing.Literal["none", "sentences"]
    assert coerce("packing", "none", choice) == "none"
    assert coerce("packing", "none", choice | None) == "none"
    assert coerce("packing", "null", choice | None) is None
    with pytest.raises(ValueError, match="packing"):
        coerce("packing", "rows", choice)

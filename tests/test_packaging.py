"""What `pip install` gives a user is the repository: the wheel holds every module, card template and recipe, and
the commands run from the installed copy (the tests otherwise run the editable checkout)."""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]
# Folders shipped inside the package under another name (pyproject.toml's package-dir).
SHIPPED = {"model_cards": "behemoth_hf/model_cards", "trainer_configs": "behemoth_hf/trainer_configs"}


def _repository_files() -> set[str]:
    """Every file a wheel must hold, by its path inside the wheel."""
    files = {path.relative_to(REPO).as_posix() for path in (REPO / "behemoth_hf").rglob("*.py")}
    for folder, installed in SHIPPED.items():
        for path in (REPO / folder).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                files.add(f"{installed}/{path.relative_to(REPO / folder).as_posix()}")
    return files


def test_the_wheel_holds_every_module_and_runs_from_an_install(tmp_path):
    # From a copy of the sources: setuptools builds in the source tree, and an old `build/` there would fill in
    # what pyproject.toml leaves out. setuptools comes from the environment (the `test` extra): no download.
    source = tmp_path / "source"
    for name in ("behemoth_hf", *SHIPPED):
        shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    build = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "-w",
        str(tmp_path),
        str(source),
    ]
    subprocess.run(build, check=True, capture_output=True, cwd=tmp_path)
    (wheel,) = tmp_path.glob("behemoth_hf-*.whl")
    missing = _repository_files() - set(zipfile.ZipFile(wheel).namelist())
    assert not missing, sorted(missing)

    # The installed copy, first on the path and away from the checkout: a module the wheel lacks fails here.
    installed = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(installed)
    code = """
import behemoth_hf, behemoth_hf.unlearn.run, behemoth_hf.editors.run, behemoth_hf.evaluation
from behemoth_hf.arguments import read_yaml
from behemoth_hf.cards import write_model_card
from importlib.resources import files
recipes = files("behemoth_hf.trainer_configs")
assert read_yaml(str(recipes / "npo.yaml"))["method"] == "npo"
assert (recipes / "accelerate" / "fsdp.yaml").is_file()
assert (recipes / "experiments" / "unlearning_methods.yaml").is_file()
assert (files("behemoth_hf.model_cards") / "model_card.md").is_file()
print(behemoth_hf.__file__)
"""
    environment = {**os.environ, "PYTHONPATH": str(installed)}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=environment
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == str(installed / "behemoth_hf" / "__init__.py")

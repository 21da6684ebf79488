"""Where the `evaluate` wrappers live: `evaluate.load(evaluate_module_path("truth_ratio"))` works offline.

Each wrapper is `evaluate_modules/<name>/<name>.py` (folder name == file name, as `evaluate.load` of a local
path requires; hf-stack.md section 3) and only calls the functions of this package.
"""

from __future__ import annotations

from pathlib import Path


EVALUATE_MODULES_DIR = Path(__file__).resolve().parent / "evaluate_modules"
EVALUATE_MODULES: tuple[str, ...] = ("fact_accuracy", "forget_quality", "mia_auc", "truth_ratio")
TOFU_CITATION = """
@article{maini2024tofu,
  title = {TOFU: A Task of Fictitious Unlearning for LLMs},
  author = {Maini, Pratyush and Feng, Zhili and Schwarzschild, Avi and Lipton, Zachary C. and Kolter, J. Zico},
  journal = {arXiv preprint arXiv:2401.06121},
  year = {2024}
}
"""


def evaluate_module_path(name: str) -> str:
    """Absolute path of the folder of the `evaluate` module `name`, for `evaluate.load(path)`."""
    if name not in EVALUATE_MODULES:
        raise ValueError(f"`name` must be one of {EVALUATE_MODULES}, got {name!r}.")
    folder = EVALUATE_MODULES_DIR / name
    if not (folder / f"{name}.py").is_file():
        raise ValueError(f"The evaluate module {name!r} is missing from {folder}; is the package installed whole?")
    return str(folder)

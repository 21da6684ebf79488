"""behemoth_hf: the Behemoth synthetic-knowledge benchmark for unlearning and editing, on the HF stack.

Importing the package registers the `behemoth` dataset builder, so that
`datasets.load_dataset("behemoth", "default")` works offline: at once if `datasets` is already imported, else
as soon as it is. The package itself imports neither `datasets` nor `transformers`/`torch` (seconds of start-up
that `behemoth --help`, `behemoth configs` and `behemoth generate` never need); the public names below load on
first use.
"""

from __future__ import annotations

import importlib
import sys
from importlib.machinery import PathFinder
from typing import TYPE_CHECKING, Any


if TYPE_CHECKING:
    from behemoth_hf.builder import Behemoth
    from behemoth_hf.config import NAMED_CONFIGS, BehemothConfig, make_config
    from behemoth_hf.lexicon import Lexicon
    from behemoth_hf.registry import register_builder
    from behemoth_hf.tokenizer import build_tokenizer, load_tokenizer
    from behemoth_hf.world import World


__version__ = "0.1.0"
# Public name -> the module that defines it, imported on first access.
_LAZY = {
    "Behemoth": "behemoth_hf.builder",
    "BehemothConfig": "behemoth_hf.config",
    "Lexicon": "behemoth_hf.lexicon",
    "NAMED_CONFIGS": "behemoth_hf.config",
    "World": "behemoth_hf.world",
    "build_tokenizer": "behemoth_hf.tokenizer",
    "load_tokenizer": "behemoth_hf.tokenizer",
    "make_config": "behemoth_hf.config",
    "register_builder": "behemoth_hf.registry",
}
__all__ = [
    "Behemoth",
    "BehemothConfig",
    "Lexicon",
    "NAMED_CONFIGS",
    "World",
    "build_tokenizer",
    "load_tokenizer",
    "make_config",
    "register_builder",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _RegisterAfterDatasets:
    """Import hook (a `sys.meta_path` finder and the loader it hands out; `importlib.abc` is not imported, it costs
    more than the rest of the package): once `datasets` has been imported, by anyone, register the builder."""

    def find_spec(self, fullname, path, target=None):
        if fullname != "datasets":
            return None
        spec = PathFinder.find_spec(fullname, path)
        if spec is None:
            return None
        self._loader = spec.loader
        spec.loader = self
        return spec

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        sys.meta_path.remove(self)
        self._loader.exec_module(module)
        # Unless it was the builder that imported `datasets`: it registers itself once it is defined.
        if "behemoth_hf.builder" not in sys.modules:
            importlib.import_module("behemoth_hf.registry").register_builder()


if "datasets" in sys.modules:
    importlib.import_module("behemoth_hf.registry").register_builder()
elif not any(isinstance(finder, _RegisterAfterDatasets) for finder in sys.meta_path):
    sys.meta_path.insert(0, _RegisterAfterDatasets())

"""behemoth_hf: the Behemoth synthetic-knowledge benchmark for unlearning and editing, on the HF stack.

Importing the package registers the `behemoth` dataset builder, so that
`datasets.load_dataset("behemoth", "default")` works offline.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from behemoth_hf.builder import Behemoth
from behemoth_hf.config import NAMED_CONFIGS, BehemothConfig, make_config
from behemoth_hf.lexicon import Lexicon
from behemoth_hf.registry import register_builder
from behemoth_hf.world import World


if TYPE_CHECKING:
    from behemoth_hf.tokenizer import build_tokenizer, load_tokenizer


__version__ = "0.1.0"
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
    # The tokenizer functions import transformers, and with it torch (about 4 s): they load on first use, so that
    # `import behemoth_hf` and the commands that never tokenize (`behemoth --help`, `configs`, ...) start quickly.
    if name in ("build_tokenizer", "load_tokenizer"):
        from behemoth_hf import tokenizer

        return getattr(tokenizer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


register_builder()

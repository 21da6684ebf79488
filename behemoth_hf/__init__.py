"""behemoth_hf: the Behemoth synthetic-knowledge benchmark for unlearning and editing, on the HF stack.

Importing the package registers the `behemoth` dataset builder, so that
`datasets.load_dataset("behemoth", "default")` works offline.
"""

from behemoth_hf.builder import Behemoth
from behemoth_hf.config import NAMED_CONFIGS, BehemothConfig, make_config
from behemoth_hf.lexicon import Lexicon
from behemoth_hf.registry import register_builder
from behemoth_hf.tokenizer import build_tokenizer, load_tokenizer
from behemoth_hf.world import World


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

register_builder()

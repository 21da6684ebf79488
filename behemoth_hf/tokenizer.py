"""The world's tokenizer: a `tokenizers` WordLevel model over whitespace words, one word = one token.

Nothing is trained: the vocabulary is the lexicon. No post-processor adds special tokens, so the
tokens of a prompt are always a prefix of the tokens of prompt + " " + answer. The role ranges and
the world config travel in `tokenizer_config.json` (`behemoth_roles`, `behemoth_world`), so a saved
tokenizer says which dataset it belongs to.
"""

from __future__ import annotations

from typing import Any

from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from behemoth_hf.lexicon import EOS_TOKEN, PAD_TOKEN, UNK_TOKEN, Lexicon


# Longest sentence is 12 words + "." (two-word names add 2); generous room for packed sequences.
MODEL_MAX_LENGTH = 2048


def build_tokenizer(lexicon: Lexicon) -> PreTrainedTokenizerFast:
    """A fast tokenizer whose token ids are the lexicon's, with distinct eos, pad and unk tokens."""
    vocab = {word: index for index, word in enumerate(lexicon.tokens)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK_TOKEN))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    config = lexicon.config
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        unk_token=UNK_TOKEN,
        model_max_length=MODEL_MAX_LENGTH,
        behemoth_roles=[role.to_dict() for role in lexicon.role_ranges],
        behemoth_world={"config_name": config.name, "fingerprint": config.fingerprint(), **config.world_dict()},
    )


def world_info(tokenizer: PreTrainedTokenizerFast) -> dict[str, Any]:
    """The world a tokenizer was built for (`config_name`, `fingerprint` and world parameters)."""
    info = tokenizer.init_kwargs.get("behemoth_world")
    if info is None:
        raise ValueError("this tokenizer was not built by behemoth_hf (no `behemoth_world` in its config)")
    return info


def load_tokenizer(path: str) -> PreTrainedTokenizerFast:
    """Load a saved behemoth tokenizer with `AutoTokenizer` (checks it carries the world metadata)."""
    tokenizer = AutoTokenizer.from_pretrained(path)
    world_info(tokenizer)
    return tokenizer

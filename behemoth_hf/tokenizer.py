"""The world's tokenizer: a `tokenizers` WordLevel model over whitespace words, one word = one token.

Nothing is trained: the vocabulary is the lexicon. No post-processor adds special tokens, so the
tokens of a prompt are always a prefix of the tokens of prompt + " " + answer. The role ranges and
the world config travel in `tokenizer_config.json` (`behemoth_roles`, `behemoth_world`), so a saved
tokenizer says which dataset it belongs to.

Decoding puts the spaces back. Words carry no space marker (encoding is a plain whitespace split), so
the decoder decides from the first word whether a text opens a sentence: a text that begins with a
word every sentence of some template begins with (`SS`, `OO`, `QQ`, `ad`) or with a special token
has no leading space; any other text continues a sentence and starts with one, as GPT-2's tokens do.
So `decode(encode(s)) == s` for every sentence, prompt and question, and decoding only the new tokens
of a generation (what a transformers 5 `pipeline` appends to its prompt) gives `" " + answer`. The
one ambiguous case: a continuation whose first word is `SS` or `OO` where they stand mid-sentence
(after `ob`, `en`, ...) decodes as a new sentence, without its space.

`save_tokenizer` writes the class name `PreTrainedTokenizerFast`, which transformers 4.45 (pinned by
OpenUnlearning) and 5.x both load; 5.x's own `save_pretrained` writes `TokenizersBackend`, unknown to 4.45.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors

from behemoth_hf.lexicon import EOS_TOKEN, PAD_TOKEN, SPECIAL_TOKENS, UNK_TOKEN, Lexicon
from behemoth_hf.render import TEMPLATES


if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast


# Longest sentence is 12 words + "." (two-word names add 2); generous room for packed sequences.
MODEL_MAX_LENGTH = 2048
# The class name written into tokenizer_config.json: transformers 4.45 resolves it to its fast tokenizer,
# 5.x to TokenizersBackend (of which PreTrainedTokenizerFast is an alias there).
TOKENIZER_CLASS = "PreTrainedTokenizerFast"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
# Flags transformers 5 puts into a loaded tokenizer's init_kwargs: they say how that copy was loaded, not what the
# tokenizer is, and would make a re-saved tokenizer differ from the one it was loaded from.
_LOAD_FLAGS = ("is_local", "local_files_only")
# Words that open a sentence (the first word of each template), and special tokens: no space before them at
# the start of a decoded text.
SENTENCE_OPENERS = tuple(sorted({template[0] for template in TEMPLATES.values()})) + SPECIAL_TOKENS


def _decoder() -> decoders.Decoder:
    """Space before every word, then drop the leading one when the text opens a sentence (serialisable)."""
    openers = "|".join(re.escape(word) for word in SENTENCE_OPENERS)
    return decoders.Sequence(
        [
            decoders.Replace(Regex(r"\A"), " "),  # per token: " word"
            decoders.Fuse(),
            decoders.Replace(Regex(rf"\A (?=(?:{openers})(?: |\z))"), ""),
        ]
    )


def _backend(lexicon: Lexicon) -> Tokenizer:
    """The `tokenizers` object, as `PreTrainedTokenizerFast` leaves it: special tokens added, and the post-processor
    that adds nothing (transformers 5 sets it)."""
    vocab = {word: index for index, word in enumerate(lexicon.tokens)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK_TOKEN))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.decoder = _decoder()
    backend.add_special_tokens([AddedToken(token, special=True, normalized=False) for token in SPECIAL_TOKENS])
    backend.post_processor = processors.TemplateProcessing(single="$A:0", pair="$A:0 $B:1", special_tokens=[])
    return backend


def _init_kwargs(lexicon: Lexicon) -> dict[str, Any]:
    config = lexicon.config
    return {
        "eos_token": EOS_TOKEN,
        "pad_token": PAD_TOKEN,
        "unk_token": UNK_TOKEN,
        "model_max_length": MODEL_MAX_LENGTH,
        # Spelled out: transformers 4.45 warns when it is missing, and its cleanup would glue " ." to the word.
        "clean_up_tokenization_spaces": False,
        "behemoth_roles": [role.to_dict() for role in lexicon.role_ranges],
        "behemoth_world": {"config_name": config.name, "fingerprint": config.fingerprint(), **config.world_dict()},
    }


def build_tokenizer(lexicon: Lexicon) -> PreTrainedTokenizerFast:
    """A fast tokenizer whose token ids are the lexicon's, with distinct eos, pad and unk tokens."""
    from transformers import PreTrainedTokenizerFast  # late: transformers takes a second to import

    return PreTrainedTokenizerFast(tokenizer_object=_backend(lexicon), **_init_kwargs(lexicon))


def write_tokenizer(lexicon: Lexicon, directory: str | os.PathLike) -> None:
    """The files `save_tokenizer(build_tokenizer(lexicon), directory)` writes, byte for byte, without importing
    transformers (`behemoth generate` would spend most of a small world's time on that import).
    tests/test_generate.py checks the bytes against transformers' own `save_pretrained`."""
    Path(directory).mkdir(parents=True, exist_ok=True)
    _backend(lexicon).save(str(Path(directory) / "tokenizer.json"))
    _write_config(Path(directory), {**_init_kwargs(lexicon), "backend": "tokenizers"})


def _write_config(directory: Path, tokenizer_config: dict[str, Any]) -> None:
    tokenizer_config["tokenizer_class"] = TOKENIZER_CLASS
    for flag in _LOAD_FLAGS:
        tokenizer_config.pop(flag, None)
    # Same layout as save_pretrained's own file, so saving twice gives the same bytes.
    (directory / TOKENIZER_CONFIG_FILE).write_text(
        json.dumps(tokenizer_config, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8"
    )


def save_tokenizer(tokenizer: PreTrainedTokenizerFast, directory: str | os.PathLike) -> None:
    """`tokenizer.save_pretrained(directory)`, with a `tokenizer_class` that transformers 4.45 and 5.x both load."""
    tokenizer.save_pretrained(directory)
    path = Path(directory) / TOKENIZER_CONFIG_FILE
    _write_config(Path(directory), json.loads(path.read_text(encoding="utf-8")))


def world_info(tokenizer: PreTrainedTokenizerFast) -> dict[str, Any]:
    """The world a tokenizer was built for (`config_name`, `fingerprint` and world parameters)."""
    info = tokenizer.init_kwargs.get("behemoth_world")
    if info is None:
        raise ValueError("this tokenizer was not built by behemoth_hf (no `behemoth_world` in its config)")
    return info


def load_tokenizer(path: str) -> PreTrainedTokenizerFast:
    """Load a saved behemoth tokenizer with `AutoTokenizer` (checks it carries the world metadata)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    world_info(tokenizer)
    return tokenizer

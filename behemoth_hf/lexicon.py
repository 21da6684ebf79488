"""The synthetic language: one made-up word per token, disjoint token-id ranges per role.

Token ids are laid out as: special tokens, grammar words, then one block per entity type (subjects,
relations, each relation's objects, and when nested: subject-nested relations, object-nested
relations, each relation's nested objects). An entity type with more than `ONE_WORD_NAME_LIMIT`
members gets two-word names (first word x second word), like the original generator, but with a
balanced split (ceil(sqrt(n)) second words) instead of its divisor bug.

Entity words are consonant-vowel syllables ("bako", "tumeri"); subject words are capitalised.
Grammar words are vowel-consonant ("ek", "ul") or upper-case markers ("SS"), so no entity word can
collide with one, and every word is exactly one token of a whitespace WordLevel tokenizer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING


if TYPE_CHECKING:
    import pyarrow as pa

    # Only for annotations: `behemoth_hf.config` imports this module (its validation needs `vocab_size_for`).
    from behemoth_hf.config import BehemothConfig

# numpy and pyarrow are imported where used: validating any config calls `vocab_size_for`, and `behemoth configs`
# (which validates the named configs) would otherwise pay for both at start-up.


# Entity types with more members than this get two-word names, as in the original generator.
ONE_WORD_NAME_LIMIT = 1000

EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|padding|>"
UNK_TOKEN = "<|unk|>"
SPECIAL_TOKENS = (EOS_TOKEN, PAD_TOKEN, UNK_TOKEN)

# Role markers and filler words of the templates (named W0-W9 and WQ1-WQ4 in the original generator).
MARKERS = ("SS", "RR", "OO", "QQ", "AA")
FILLERS = ("ek", "ul", "ob", "it", "ar", "en", "os", "um", "il", "ad")
QUESTION_FILLERS = ("ix", "ep", "ot", "ag")
GRAMMAR_WORDS = (".",) + MARKERS + FILLERS + QUESTION_FILLERS
# The world's refusal: the object marker repeated where an object would be, as the original generator's refusal mode
# writes it (prompt through the first `OO`, answer `OO OO`). A grammar word, so it is never a fact's object.
REFUSAL = " ".join([MARKERS[2]] * 2)

_CONSONANTS = "bdfgklmnprstvz"
_VOWELS = "aeiou"
_SYLLABLES = [c + v for c in _CONSONANTS for v in _VOWELS]
# Multiplier coprime with 70**L: scrambles consecutive indices so neighbouring tokens look unrelated.
_SCRAMBLE = 7919


def entity_word(index: int) -> str:
    """The `index`-th entity word: two syllables first, then three, and so on (a bijection)."""
    base = len(_SYLLABLES)
    length, bucket = 2, base**2
    while index >= bucket:
        index -= bucket
        length += 1
        bucket = base**length
    index = (index * _SCRAMBLE) % bucket
    syllables = []
    for _ in range(length):
        index, digit = divmod(index, base)
        syllables.append(_SYLLABLES[digit])
    return "".join(syllables)


@dataclass(frozen=True)
class RoleRange:
    """Token ids `[start, end)` used by one role (e.g. `object`, relation 2)."""

    role: str
    start: int
    end: int
    relation: int | None = None

    def to_dict(self) -> dict:
        return {"role": self.role, "relation": self.relation, "start": self.start, "end": self.end}


def _name_shape(count: int) -> tuple[int, int]:
    """(first words, second words) of a block of `count` names; second words = 0 means one-word names."""
    if count <= ONE_WORD_NAME_LIMIT:
        return count, 0
    second = math.ceil(math.sqrt(count))
    return math.ceil(count / second), second


def _entity_blocks(config: BehemothConfig) -> list[tuple[str, int | None, int]]:
    """(role, relation, count) of every entity block, in token-id order."""
    relations = config.num_relations
    blocks: list[tuple[str, int | None, int]] = [
        ("subject", None, config.num_subjects + config.num_holdout_subjects),
        ("relation", None, relations),
    ]
    blocks += [("object", r, config.num_objects) for r in range(relations)]
    if config.nested:
        blocks += [("subject_nested_relation", None, relations), ("object_nested_relation", None, relations)]
        blocks += [("nested_object", r, config.num_nested_objects) for r in range(relations)]
    return blocks


def vocab_size_for(config: BehemothConfig) -> int:
    """Vocabulary size of the world's tokenizer, computed without building it."""
    return len(SPECIAL_TOKENS) + len(GRAMMAR_WORDS) + sum(sum(_name_shape(n)) for _, _, n in _entity_blocks(config))


class Lexicon:
    """Words, token ids and entity names of one world.

    Entities are addressed by a global *entity index* into `names` (one string per entity, one or two
    words); `subject_entity`, `relation_entity`, `object_entity` and `nested_entity` map role-local ids
    to it. `tokens[i]` is the word of token id `i`.
    """

    def __init__(self, config: BehemothConfig):
        import pyarrow as pa  # late: `vocab_size_for` (every config's validation) needs no Arrow

        self.config = config
        self.tokens: list[str] = list(SPECIAL_TOKENS) + list(GRAMMAR_WORDS)
        self.role_ranges: list[RoleRange] = [
            RoleRange("special", 0, len(SPECIAL_TOKENS)),
            RoleRange("grammar", len(SPECIAL_TOKENS), len(self.tokens)),
        ]
        name_blocks: list[pa.Array] = []
        self._block_offsets: dict[tuple[str, int | None], int] = {}
        next_word = 0
        offset = 0
        for role, relation, count in _entity_blocks(config):
            first, second = _name_shape(count)
            words = [entity_word(next_word + i) for i in range(first + second)]
            next_word += first + second
            if role == "subject":
                words = [w.capitalize() for w in words]
            start = len(self.tokens)
            self.tokens += words
            self.role_ranges.append(RoleRange(role, start, len(self.tokens), relation))
            name_blocks.append(_block_names(words, count, second))
            self._block_offsets[(role, relation)] = offset
            offset += count
        self.names: pa.StringArray = pa.concat_arrays(name_blocks)

    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    # Role-local ids -> global entity indices (scalars or numpy arrays).
    def subject_entity(self, subject_id):
        import numpy as np

        return self._block_offsets[("subject", None)] + np.asarray(subject_id)

    def relation_entity(self, relation_id):
        """`relation_id` is global: base relations, then subject-nested, then object-nested (R each)."""
        import numpy as np

        groups = ["relation"] + (["subject_nested_relation", "object_nested_relation"] if self.config.nested else [])
        starts = np.array([self._block_offsets[(group, None)] for group in groups])
        relation_id = np.asarray(relation_id)
        return starts[relation_id // self.config.num_relations] + relation_id % self.config.num_relations

    def object_entity(self, relation, object_id):
        """Objects of base relation `relation`."""
        import numpy as np

        starts = np.array([self._block_offsets[("object", r)] for r in range(self.config.num_relations)])
        return starts[np.asarray(relation)] + np.asarray(object_id)

    def nested_entity(self, relation, nested_id):
        """Nested objects belonging to base relation `relation`."""
        import numpy as np

        starts = np.array([self._block_offsets[("nested_object", r)] for r in range(self.config.num_relations)])
        return starts[np.asarray(relation)] + np.asarray(nested_id)

    def name(self, entity: int) -> str:
        return self.names[int(entity)].as_py()


def _block_names(words: list[str], count: int, second: int) -> pa.StringArray:
    import numpy as np
    import pyarrow.compute as pc

    from behemoth_hf.arrow import from_numpy, string, strings

    if not second:
        return strings(words)
    index = np.arange(count)
    first_words = strings(words[: len(words) - second])
    second_words = strings(words[len(words) - second :])
    return pc.binary_join_element_wise(
        pc.take(first_words, from_numpy(index // second)),
        pc.take(second_words, from_numpy(index % second)),
        string(" "),
    )

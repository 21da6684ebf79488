"""Templates and vectorised rendering of facts into text (pyarrow string kernels, no per-row Python).

A template is a sequence of grammar words and the slots S (subject), R (relation) and O (object).
`sro` is the canonical statement; `sor`, `osr`, `rso` are the original generator's alternative word
orders; `qa` is the question/answer form. A *prompt* is everything before the object; only templates
whose object comes last (`sro`, `rso`, `qa`) have one. Every sentence ends with the word ".".
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from behemoth_hf.arrow import string
from behemoth_hf.lexicon import FILLERS, QUESTION_FILLERS


SUBJ, REL, OBJ = "<S>", "<R>", "<O>"
W = FILLERS
WQ = QUESTION_FILLERS

TEMPLATES: dict[str, tuple[str, ...]] = {
    "sro": ("SS", SUBJ, W[0], W[1], "RR", REL, W[2], "OO", OBJ),
    "sor": ("SS", SUBJ, W[0], "OO", OBJ, W[3], W[4], "RR", REL),
    "osr": ("OO", OBJ, W[5], "SS", SUBJ, W[8], "RR", REL),
    "rso": (W[9], "RR", REL, W[7], "SS", SUBJ, W[5], "OO", OBJ),
    "qa": ("QQ", WQ[0], "RR", REL, WQ[1], "SS", SUBJ, WQ[2], WQ[3], "AA", "OO", OBJ),
}
TEMPLATE_NAMES = tuple(TEMPLATES)
CANONICAL = "sro"
# Alternative orders used for paraphrases in `train` (paraphrase_fraction) ...
ALTERNATIVE_ORDERS = ("sor", "osr", "rso")
# ... and the one that has a prompt, used for the `paraphrase` split and `paraphrased_question`.
PARAPHRASE = "rso"
QUESTION = "qa"
END = "."


def _join(parts: list[str | pa.Array]) -> pa.Array:
    # Merge runs of literal words so the kernel joins as few pieces as possible.
    merged: list[str | pa.Array] = []
    for part in parts:
        if isinstance(part, str) and merged and isinstance(merged[-1], str):
            merged[-1] = f"{merged[-1]} {part}"
        else:
            merged.append(part)
    return pc.binary_join_element_wise(*(string(p) if isinstance(p, str) else p for p in merged), string(" "))


def render(
    template: str, subjects: pa.Array, relations: pa.Array, objects: pa.Array | None, *, prompt_only: bool = False
):
    """Render one template for arrays of names (equal lengths).

    With `prompt_only`, stop before the object (the template must end with it) and `objects` may be None.
    """
    items = TEMPLATES[template]
    if prompt_only:
        if items[-1] != OBJ:
            raise ValueError(f"template {template!r} has no prompt: its object is not last")
        items = items[:-1]
    slots = {SUBJ: subjects, REL: relations, OBJ: objects}
    parts = [slots.get(item, item) for item in items]
    if not prompt_only:
        parts.append(END)
    return _join(parts)

"""Unlearning/editing methods by lowercase name; one `@register_method` next to each class."""

from __future__ import annotations

import re


METHODS: dict[str, type] = {}


def register_method(trainer_class: type) -> type:
    name = getattr(trainer_class, "name", None)
    if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise ValueError(f"{trainer_class.__name__}.name must be a lowercase identifier, got {name!r}")
    if name in METHODS:
        raise KeyError(f"method {name!r} is already registered by {METHODS[name].__name__}")
    METHODS[name] = trainer_class
    return trainer_class


# Importing the method modules registers them.
from behemoth_hf.unlearn import (  # noqa: E402, F401
    altpo,
    ceu,
    dpo,
    edit,
    grad_diff,
    gradient_ascent,
    idk_nll,
    npo,
    pdu,
    rmu,
    satimp,
    simnpo,
    undial,
    wga,
)

"""Unlearning and editing methods as `transformers.Trainer` subclasses, one module per method."""

from behemoth_hf.unlearn.arguments import UnlearningArguments
from behemoth_hf.unlearn.base import UnlearningTrainer
from behemoth_hf.unlearn.registry import METHODS, register_method


__all__ = ["METHODS", "UnlearningArguments", "UnlearningTrainer", "register_method"]

"""Locate-then-edit model editors: ROME, MEMIT and AlphaEdit, and causal tracing, on a Behemoth world.

They rewrite the MLP output projection of chosen layers in closed form (`rome`, `memit`, `alphaedit`) from keys and
values computed on the model (`requests`) and the key covariance of the world's corpus (`covariance`); `trace`
locates where a model keeps its facts. `behemoth edit --method rome|memit|alphaedit` and `behemoth trace` run them.
"""

from behemoth_hf.editors.arguments import EDITOR_CHOICES, EditorArguments


__all__ = ["EDITOR_CHOICES", "EditorArguments"]

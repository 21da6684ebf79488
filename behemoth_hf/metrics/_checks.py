"""Input checks shared by the metric modules.

Every failure is a `ValueError` that names the argument (in backticks), says what was received and
what is allowed. Nothing here computes a metric.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike


def as_float_array(values: ArrayLike, name: str, *, ndim: int = 1) -> np.ndarray:
    """`values` as a non-empty float64 array with `ndim` dimensions and no NaN (inf is allowed)."""
    array = _to_float(values, name)
    if array.ndim != ndim:
        shape = "one value per item" if ndim == 1 else "one row per item"
        raise ValueError(f"`{name}` must be {ndim}-dimensional ({shape}), got shape {array.shape}.")
    if array.size == 0:
        raise ValueError(f"`{name}` is empty; pass at least one item.")
    if np.isnan(array).any():
        raise ValueError(f"`{name}` contains NaN at index {_first(np.isnan(array))}.")
    return array


def as_per_item_options(values: ArrayLike, name: str) -> np.ndarray:
    """`values` as a float (items, options) array; a 1-D array means one option per item."""
    array = _to_float(values, name)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim == 2 and len(array) and array.shape[1] == 0:
        raise ValueError(f"`{name}` has zero options per item; pass at least one per item.")
    return as_float_array(array, name, ndim=2)


def _to_float(values: ArrayLike, name: str) -> np.ndarray:
    if values is None:
        raise ValueError(f"`{name}` is None; pass an array of numbers.")
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"`{name}` must be a rectangular array of numbers: {error}") from None


def check_same_length(**arrays: Sequence | np.ndarray) -> int:
    """The common length of `arrays` (keyword name = argument name); ValueError if they differ."""
    lengths = {name: len(array) for name, array in arrays.items()}
    if len(set(lengths.values())) > 1:
        described = ", ".join(f"`{name}` has {length}" for name, length in lengths.items())
        raise ValueError(f"One value per item is needed in each argument, but {described}.")
    return next(iter(lengths.values()))


def check_fraction(value: float, name: str, *, open_low: bool = False) -> float:
    """`value` as a float in [0, 1] (or (0, 1] if `open_low`)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be a number in [0, 1], got {value!r}.") from None
    low_ok = value > 0 if open_low else value >= 0
    if not (low_ok and value <= 1):
        interval = "(0, 1]" if open_low else "[0, 1]"
        raise ValueError(f"`{name}` must be in {interval}, got {value}.")
    return value


def check_epsilon(epsilon: float) -> float:
    """`epsilon` as a non-negative float."""
    if not np.isfinite(epsilon) or epsilon < 0:
        raise ValueError(f"`epsilon` must be a finite number >= 0, got {epsilon!r}.")
    return float(epsilon)


def token_rows(
    values: ArrayLike | Sequence[ArrayLike], name: str, *, mask: ArrayLike | None = None
) -> list[np.ndarray]:
    """Per-item 1-D token arrays from a ragged sequence of rows, or from a 2-D array plus a boolean `mask`.

    With `mask`, `values` must be 2-D of the same shape and item i is `values[i][mask[i]]` (the answer
    positions of a padded batch). Every item must keep at least one token.
    """
    if values is None:
        raise ValueError(f"`{name}` is None; pass one array of tokens per item.")
    if mask is not None:
        padded = np.asarray(values)
        keep = np.asarray(mask)
        if keep.dtype != np.bool_:
            raise ValueError(f"`mask` must be a boolean array, got dtype {keep.dtype}.")
        if padded.ndim != 2 or padded.shape != keep.shape:
            raise ValueError(f"`{name}` must be 2-D with the shape of `mask` {keep.shape}, got shape {padded.shape}.")
        rows = [padded[i][keep[i]] for i in range(len(padded))]
    elif isinstance(values, np.ndarray) and values.ndim == 2:
        rows = list(values)
    else:
        rows = [np.asarray(row) for row in values]
    if not rows:
        raise ValueError(f"`{name}` is empty; pass at least one item.")
    for index, row in enumerate(rows):
        if row.ndim != 1:
            raise ValueError(f"`{name}` item {index} must be a 1-D array of tokens, got shape {row.shape}.")
        if row.size == 0:
            raise ValueError(f"`{name}` item {index} has no tokens; every item needs at least one answer token.")
    return rows


def check_same_row_lengths(first: list[np.ndarray], second: list[np.ndarray], names: tuple[str, str]) -> None:
    """ValueError unless the two ragged inputs have the same number of items and tokens per item."""
    check_same_length(**{names[0]: first, names[1]: second})
    for index, (row_a, row_b) in enumerate(zip(first, second)):
        if len(row_a) != len(row_b):
            raise ValueError(
                f"Item {index} has {len(row_a)} tokens in `{names[0]}` but {len(row_b)} in `{names[1]}`; "
                "they must be aligned position by position."
            )


def _first(flags: np.ndarray) -> tuple[int, ...] | int:
    position = np.argwhere(flags)[0]
    return int(position[0]) if len(position) == 1 else tuple(int(p) for p in position)

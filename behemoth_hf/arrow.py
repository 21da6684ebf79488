"""Arrow arrays and scalars from numpy arrays and Python strings, built from buffers.

The first time `pa.array` or `pa.scalar` sees an object that is not Arrow (also through a compute function given a
numpy array or a Python string), pyarrow imports pandas to ask whether it is a pandas object: a third of a second,
most of what `behemoth generate` takes for a small world. These helpers build the same arrays without asking.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa


def from_numpy(values: np.ndarray) -> pa.Array:
    """`pa.array(values)` for a 1-d numeric or bool numpy array (numbers are not copied)."""
    values = np.ascontiguousarray(values)
    if values.ndim != 1:
        raise ValueError(f"expected a 1-d array, got shape {values.shape}")
    if values.dtype == np.bool_:
        bits = np.packbits(values, bitorder="little")
        return pa.Array.from_buffers(pa.bool_(), len(values), [None, pa.py_buffer(bits)])
    return pa.Array.from_buffers(pa.from_numpy_dtype(values.dtype), len(values), [None, pa.py_buffer(values)])


def strings(values: Sequence[str]) -> pa.StringArray:
    """`pa.array(values, pa.string())` for Python strings."""
    encoded = [value.encode() for value in values]
    offsets = np.zeros(len(encoded) + 1, np.int32)
    np.cumsum([len(value) for value in encoded], out=offsets[1:])
    return pa.StringArray.from_buffers(len(encoded), pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded)))


def string(value: str) -> pa.StringScalar:
    """`pa.scalar(value)` for a Python string."""
    return strings([value])[0]

"""All-or-nothing loading: compare what a model holds with restored parameters before touching it.

Every framework module describes its model as {name: (dtype name, shape)} and calls check_fits;
the first mismatch (a missing or extra name, a shape, a dtype) raises MvcdbError naming it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..dtypes import EXTENSION_ITEMSIZE, name_of
from ..errors import MvcdbError
from ..tensors import storage_dtype

#: What a model expects under one name: (mvcdb dtype name, shape).
Slot = tuple[str, tuple[int, ...]]


def stored_dtype_name(dtype: np.dtype[Any]) -> str:
    """The dtype name an array would be stored under, byte order normalised (so '>f4' ~ '<f4')."""
    return name_of(storage_dtype(dtype))


def readable(dtype_name: str) -> str:
    """'float32' for '<f4', 'bfloat16' for 'bfloat16': how a dtype is named in messages."""
    if dtype_name in EXTENSION_ITEMSIZE:
        return dtype_name
    try:
        return np.dtype(dtype_name).name
    except TypeError:
        return dtype_name


def check_fits(
    expected: Mapping[str, Slot],
    params: Mapping[str, np.ndarray],
    *,
    what: str,
    partial: bool = False,
    hint: str = "",
) -> None:
    """Raise MvcdbError at the first difference between a model's slots and restored params.

    Args:
        expected: the model's parameters, in the model's order.
        params: what restore() read.
        what: how to call the model in the message, e.g. "the nn.Module MLP".
        partial: only the names in params must exist and fit (restore(names=..., into=...)).
        hint: appended to name mismatches (e.g. how Keras names weights).
    """
    counts = f" (the model has {len(expected)} parameters, the version {len(params)})"
    for name, (dtype, shape) in expected.items():
        arr = params.get(name)
        if arr is None:
            if partial:
                continue
            raise MvcdbError(f"cannot load into {what}: the version has no {name!r}{counts}{hint}")
        if tuple(arr.shape) != tuple(shape):
            raise MvcdbError(
                f"cannot load into {what}: {name!r} has shape {tuple(shape)} in the model"
                f" but {tuple(arr.shape)} in the version"
            )
        got = stored_dtype_name(arr.dtype)
        if got != dtype:
            raise MvcdbError(
                f"cannot load into {what}: {name!r} is {readable(dtype)} in the model"
                f" but {readable(got)} in the version"
            )
    for name in params:
        if name not in expected:
            raise MvcdbError(
                f"cannot load into {what}: it has no {name!r}, which the version has{counts}{hint}"
            )

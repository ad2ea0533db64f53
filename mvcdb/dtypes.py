"""Names of the dtypes mvcdb stores: numpy's `dtype.str`, plus ML formats numpy itself lacks.

bfloat16, the float8 variants and the like exist in PyTorch, Keras and JAX but not in numpy. mvcdb
stores them as their raw little-endian bits under an extension name ("bfloat16", "float8_e4m3fn",
...) in the `tensors.dtype` column and the manifest, so they round-trip bit for bit. On restore they
come back as ml_dtypes arrays when ml_dtypes is installed (its dtypes' `str` is an ambiguous "<V2",
hence the names), else as unsigned integers of the same width holding the bits, tagged with the
name in the numpy dtype's metadata so that `restore(into=...)` and a later record() still know it.
"""

from __future__ import annotations

import importlib
from functools import cache
from typing import Any

import numpy as np

#: Extension dtype name -> bytes per element. Names follow torch/ml_dtypes spelling.
EXTENSION_ITEMSIZE: dict[str, int] = {
    "bfloat16": 2,
    "float8_e4m3fn": 1,
    "float8_e4m3fnuz": 1,
    "float8_e5m2": 1,
    "float8_e5m2fnuz": 1,
    "float8_e8m0fnu": 1,
    "float8_e3m4": 1,
    "float8_e4m3": 1,
    "float8_e4m3b11fnuz": 1,
    "float6_e2m3fn": 1,  # ml_dtypes: sub-byte formats take one byte per element
    "float6_e3m2fn": 1,
    "float4_e2m1fn": 1,
    "float4_e2m1fn_x2": 1,  # torch: two packed 4-bit floats a byte (no ml_dtypes twin)
    "int4": 1,
    "uint4": 1,
    "int2": 1,
    "uint2": 1,
    "complex32": 4,  # two float16 (torch.complex32, ml_dtypes.complex32)
    "bcomplex32": 4,  # two bfloat16
}

#: Key in a numpy dtype's metadata that names the extension dtype of a bits-only array.
TAG = "mvcdb.dtype"


def extension_name(dtype: np.dtype[Any]) -> str | None:
    """The extension name of an ml_dtypes dtype or of a tagged bits array; None for plain numpy."""
    meta = dtype.metadata
    if meta is not None and meta.get(TAG) in EXTENSION_ITEMSIZE:
        return str(meta[TAG])
    name = dtype.name
    if name in EXTENSION_ITEMSIZE and dtype.itemsize == EXTENSION_ITEMSIZE[name]:
        return name  # numpy's own dtypes never carry these names: this is ml_dtypes'
    return None


def name_of(dtype: np.dtype[Any]) -> str:
    """The name stored for a dtype: its extension name, else numpy's `dtype.str` (e.g. '<f4')."""
    if dtype.metadata is None:  # metadata (our tag) is not part of a dtype's hash: never cached
        found = _NAMES.get(dtype)
        if found is None:
            found = _NAMES[dtype] = extension_name(dtype) or dtype.str
        return found
    return extension_name(dtype) or dtype.str


#: name_of() results for plain dtypes (a record() names every tensor's dtype; numpy's .name is slow).
_NAMES: dict[np.dtype[Any], str] = {}


def bits_dtype(name: str) -> np.dtype[Any]:
    """The little-endian unsigned integer dtype as wide as an extension dtype."""
    return np.dtype(f"<u{EXTENSION_ITEMSIZE[name]}")


def tagged_bits_dtype(name: str) -> np.dtype[Any]:
    """bits_dtype(name) carrying the extension name in its metadata."""
    return np.dtype(bits_dtype(name), metadata={TAG: name})


@cache
def ml_dtype(name: str) -> np.dtype[Any] | None:
    """ml_dtypes' numpy dtype of that name, or None (ml_dtypes missing, or no such type)."""
    try:
        module = importlib.import_module("ml_dtypes")
    except ImportError:
        return None
    scalar = getattr(module, name, None)
    if scalar is None:
        return None
    dtype = np.dtype(scalar)
    return dtype if dtype.itemsize == EXTENSION_ITEMSIZE[name] else None


def to_bits(arr: np.ndarray) -> np.ndarray:
    """A view of an extension-dtype array as unsigned integers of the same width (untagged)."""
    name = extension_name(arr.dtype)
    if name is None:
        raise ValueError(f"{arr.dtype} is not an extension dtype")
    return arr.view(bits_dtype(name))


def from_bits(bits: np.ndarray, name: str) -> np.ndarray:
    """View raw bits as extension dtype `name`: ml_dtypes if available, else tagged integers."""
    dtype = ml_dtype(name) or tagged_bits_dtype(name)
    return bits.view(dtype)


def numpy_dtype(name: str) -> np.dtype[Any]:
    """The numpy dtype restored arrays of a stored dtype name have ('<f4', 'bfloat16', ...).

    For names numpy knows, np.dtype(name); for extension names, ml_dtypes' dtype when installed,
    else the tagged unsigned integer dtype of the same width (see from_bits).
    """
    if name in EXTENSION_ITEMSIZE:
        return ml_dtype(name) or tagged_bits_dtype(name)
    return np.dtype(name)

"""Turning what users pass as parameters into named little-endian numpy arrays, and back.

Accepted: numpy arrays of any numeric dtype (bool, ints, floats incl. float16/longdouble, complex),
numpy scalars and Python numbers; nested dicts flatten to dotted names. Refused with MvcdbError:
object, string, bytes, datetime and structured arrays. Storage is always little-endian; the
original dtype (byte order included) is kept so restore returns exactly what was recorded.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from .dtypes import EXTENSION_ITEMSIZE, bits_dtype, from_bits, name_of
from .errors import MvcdbError
from .frameworks import framework_of
from .text import CONTROL_RE, check_unicode

NUMERIC_KINDS = frozenset("biufc")
MAX_NAME_LENGTH = 1024


def check_name(name: object, what: str = "tensor name") -> str:
    """Validate a tensor or series name: a non-empty string without control characters."""
    if not isinstance(name, str):
        raise MvcdbError(f"{what} must be a string, got {type(name).__name__}")
    if not name or len(name) > MAX_NAME_LENGTH:
        raise MvcdbError(f"{what} must be 1..{MAX_NAME_LENGTH} characters, got {len(name)}")
    if not name.isprintable():  # the fast common case skips both searches
        if CONTROL_RE.search(name):
            raise MvcdbError(f"{what} {name!r} contains control characters")
        check_unicode(name, what)
    return name


#: Exact types of common leaves, which are never mappings: flatten() asks isinstance(Mapping), an
#: ABC check (~0.4 us), only of other values.
_LEAF_TYPES = frozenset({np.ndarray, float, int, np.float64, np.float32, np.float16, np.int64, np.int32})


def flatten(params: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Yield (dotted name, leaf) pairs of a nested mapping."""
    for key, value in params.items():
        check_name(key)
        name = f"{prefix}.{key}" if prefix else key
        if type(value) not in _LEAF_TYPES and isinstance(value, Mapping):
            yield from flatten(value, name)
        else:
            yield (check_name(name) if prefix else name), value


@functools.lru_cache(maxsize=1024)
def shape_json(shape: tuple[int, ...]) -> str:
    """A shape as the JSON list stored in `tensors.shape` (what json.dumps gives, only faster;
    cached: a sweep records the same few shapes over and over)."""
    return "[" + ", ".join(map(str, shape)) + "]"


def as_array(name: str, value: Any, what: str = "parameter") -> np.ndarray:
    """Convert one value to a numpy array, refusing non-numeric content clearly; what names the
    kind of value in errors ('parameter', 'series')."""
    if isinstance(value, np.ndarray):
        arr = value if type(value) is np.ndarray else _plain(name, value, what)
    elif isinstance(value, (np.generic, bool, int, float, complex)):
        try:
            arr = np.asarray(value)
        except OverflowError:
            raise MvcdbError(f"{what} {name!r}: integer {value} does not fit in 64 bits") from None
    elif framework_of(value) == "torch":  # a torch tensor: bf16/fp8 need bit views
        from .frameworks.torch import to_numpy

        arr = to_numpy(name, value, what)
    elif hasattr(value, "__array__") and not isinstance(value, (str, bytes)):
        arr = np.asarray(value)
    else:
        raise MvcdbError(f"{what} {name!r} must be a numpy array or a number, got {type(value).__name__}")
    check_dtype(name, arr.dtype, what)
    return arr


def _plain(name: str, value: np.ndarray, what: str) -> np.ndarray:
    """An ndarray subclass (np.memmap, np.matrix...) as a plain ndarray view of its data, no copy:
    the store reshapes and views arrays, which subclasses may refuse or redefine. A masked array
    is refused: its mask cannot be stored and its masked elements would be written as fill values."""
    if isinstance(value, np.ma.MaskedArray):
        raise MvcdbError(
            f"{what} {name!r} is a masked array: its mask cannot be stored"
            " (pass arr.filled(value) or arr.data to store the values)"
        )
    return value.view(np.ndarray)


def check_dtype(name: str, dtype: np.dtype[Any], what: str = "parameter") -> None:
    """Refuse dtypes mvcdb cannot store bit-exactly as numbers (objects, strings, records...)."""
    if dtype in _STORABLE:  # one set lookup instead of ~0.5 us of checks for every tensor
        return
    if name_of(dtype) in EXTENSION_ITEMSIZE:
        return  # bfloat16, float8...: stored as raw bits under their name (mvcdb/dtypes.py)
    if dtype.kind not in NUMERIC_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise MvcdbError(
            f"{what} {name!r} has dtype {dtype} ({dtype.kind!r}); only numeric values "
            "(bool, int, uint, float, complex) can be stored"
        )
    _STORABLE.add(dtype)


#: Plain numeric dtypes check_dtype() has accepted. Only an equal dtype can hit, and numpy's dtype
#: equality means the same type and byte order (metadata aside), so it passes the same checks.
_STORABLE: set[np.dtype[Any]] = set()


def storage_dtype(dtype: np.dtype[Any]) -> np.dtype[Any]:
    """The little-endian twin of dtype, the form in which bytes are stored and hashed."""
    return dtype.newbyteorder("<") if dtype.byteorder == ">" else dtype


def to_storage(arr: np.ndarray) -> np.ndarray:
    """A C-contiguous little-endian view or (at most one) copy of arr, for chunking."""
    dtype = arr.dtype
    if dtype.byteorder != ">" and arr.flags.c_contiguous:  # storage_dtype(dtype) is dtype: as is
        return arr
    return np.array(arr, dtype=storage_dtype(dtype), order="C")  # not ascontiguousarray: it makes 0-d 1-d


def from_storage(flat: np.ndarray, dtype_str: str, shape: tuple[int, ...]) -> np.ndarray:
    """Reinterpret restored little-endian bytes as the recorded dtype and shape, in place."""
    if dtype_str in EXTENSION_ITEMSIZE:
        return from_bits(flat.view(bits_dtype(dtype_str)).reshape(shape), dtype_str)
    dtype = np.dtype(dtype_str)
    arr = flat.view(storage_dtype(dtype)).reshape(shape)
    if dtype.byteorder == ">":
        arr.byteswap(inplace=True)
        arr = arr.view(dtype)
    return arr


def normalize_params(params: Mapping[str, Any] | None) -> dict[str, np.ndarray]:
    """Flatten and validate a params mapping into {dotted name: numpy array}."""
    if params is None:
        return {}
    if type(params) is not dict and not isinstance(params, Mapping):  # the ABC check: ~0.4 us
        raise MvcdbError(f"params must be a dict of arrays, got {type(params).__name__}")
    out: dict[str, np.ndarray] = {}
    for name, value in flatten(params):
        if name in out:
            raise MvcdbError(f"parameter name {name!r} appears twice after flattening")
        out[name] = as_array(name, value)
    return out

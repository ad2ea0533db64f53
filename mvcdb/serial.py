"""msgpack in one place: canonical packing (for hashing) and strict, bounded unpacking.

Everything mvcdb serializes (version manifests, bundle headers) goes through here. Unpacking never
trusts a length: every container and string is capped, and anything malformed becomes DecodeError.
Nothing is ever unpickled.
"""

from __future__ import annotations

import threading
from typing import Any

import msgpack

from .errors import DecodeError, MvcdbError

#: Upper bounds for what a single serialized document may contain.
MAX_DOCUMENT_BYTES = 256 * 1024 * 1024
MAX_ITEMS = 4_000_000

_local = threading.local()


def pack(obj: Any) -> bytes:
    """Serialize obj canonically: maps are emitted with sorted keys so equal content = equal bytes."""
    packed: bytes = msgpack.packb(_canonical(obj), use_bin_type=True)
    return packed


def pack_sorted(doc: Any) -> bytes:
    """pack() for a document whose maps (if any) already have sorted keys: the same bytes without
    the generic walk (msgpack keeps insertion order; tuples pack as lists)."""
    packer = getattr(_local, "packer", None)
    if packer is None:  # one Packer a thread: packb builds a new one per call (~1 us each)
        packer = _local.packer = msgpack.Packer(use_bin_type=True)
    packed: bytes = packer.pack(doc)
    return packed


def check_readable(packed: bytes, what: str) -> None:
    """MvcdbError unless unpack() will read `packed` back: a document past its size or item caps
    must be refused when written, not found unreadable (as damage) later. Only a document of more
    than MAX_ITEMS bytes can break a cap, so the usual small one costs a length check."""
    if len(packed) <= MAX_ITEMS:
        return
    try:
        unpack(packed)
    except DecodeError as exc:
        raise MvcdbError(f"{what} is too large to store ({exc})") from None


def _canonical(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _canonical(obj[k]) for k in sorted(obj)}
    if isinstance(obj, (list, tuple)):
        return [_canonical(x) for x in obj]
    return obj


def unpack(data: bytes | memoryview, *, max_bytes: int = MAX_DOCUMENT_BYTES) -> Any:
    """Deserialize one msgpack document, refusing oversized or malformed input with DecodeError."""
    if len(data) > max_bytes:
        raise DecodeError(f"serialized document of {len(data)} bytes exceeds the {max_bytes} limit")
    try:
        return msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            use_list=True,
            max_str_len=max_bytes,  # no tighter: a string never outgrows its document, and what
            # pack() wrote (a version's metadata of 50 MB) must read back
            max_bin_len=max_bytes,
            max_array_len=MAX_ITEMS,
            max_map_len=MAX_ITEMS,
            max_ext_len=0,
        )
    except msgpack.StackError:  # (these two carry no message of their own)
        raise DecodeError("malformed msgpack document: nested too deeply") from None
    except msgpack.FormatError:
        raise DecodeError("malformed msgpack document: a byte that is no msgpack type") from None
    except (ValueError, TypeError, msgpack.ExtraData) as exc:
        raise DecodeError(f"malformed msgpack document: {exc}") from None
    except (MemoryError, RecursionError, OverflowError) as exc:
        raise DecodeError(f"msgpack document too large or too deep: {type(exc).__name__}") from None

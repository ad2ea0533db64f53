"""Tiny tensors stored in their own `tensors` row instead of as chunks.

A tensor of at most INLINE_TENSOR_BYTES keeps its raw little-endian bytes in `tensors.data`: a
chunk reference (a chunks row, its hash index entry, a tensor_chunks row and its index entry)
would cost more than the bytes, and it is most of what a small version's commit writes. The
manifest does not change: the tensor still names one chunk hash, the SHA-256 of those bytes, so a
version's id is the same whichever way its tensors are kept, and a tensor copied to another file
or a remote travels as an ordinary chunk. Reading checks the bytes against the row's digest.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Sequence

import numpy as np

from .blobstore import StoredTensor, one_chunk_digest, tensor_digest
from .errors import IntegrityError
from .models import damaged

#: Tensors of at most this many bytes are stored in their row (0-byte tensors need no bytes at all).
INLINE_TENSOR_BYTES = 128


def fits(nbytes: int) -> bool:
    """Whether a tensor of nbytes is stored in its row."""
    return 0 < nbytes <= INLINE_TENSOR_BYTES


def store(arr: np.ndarray, dtype: str) -> StoredTensor:
    """The StoredTensor of a tiny tensor (arr in storage form, dtype its recorded name): its bytes,
    their hash and its digest (the `tensors` row's)."""
    raw = arr.tobytes()
    shape = tuple(arr.shape)
    chunk_hash = hashlib.sha256(raw).digest()
    digest = one_chunk_digest(dtype, shape, chunk_hash)
    # every field, through tuple.__new__: NamedTuple's own __new__ is a Python call (~0.6 us more)
    return tuple.__new__(StoredTensor, (dtype, shape, len(raw), (chunk_hash,), (), raw, digest))


def checked(what: str, dtype: str, shape: str, digest: str, data: bytes) -> bytes:
    """The row's bytes, after checking them against its digest (IntegrityError on damage)."""
    try:
        dims = [int(d) for d in json.loads(shape)]
    except (ValueError, TypeError):
        raise IntegrityError(f"{what}: its shape {shape!r} is not a list of sizes") from None
    data = bytes(data)
    if tensor_digest(dtype, dims, [hashlib.sha256(data).digest()]) != digest:
        raise IntegrityError(f"{what}: its stored bytes do not match its digest (the file is damaged)")
    return data


def read_into(what: str, data: bytes, hashes: Sequence[bytes], out: np.ndarray) -> None:
    """Copy a row's bytes into out (flat uint8 of the tensor's size), after checking that they are
    the one chunk its manifest names (`hashes`: IntegrityError on damage or a mismatch)."""
    if len(data) != out.size:
        raise damaged(what, f"its row holds {len(data)} bytes, not {out.size}")
    if len(hashes) != 1 or hashlib.sha256(data).digest() != hashes[0]:
        raise damaged(what, "its stored bytes are not the ones its manifest names")
    out[:] = np.frombuffer(data, dtype=np.uint8)


def chunks_of(conn: sqlite3.Connection, vids: Iterable[int]) -> dict[bytes, tuple[bytes, str]]:
    """hash -> (raw bytes, dtype) of every in-row tensor of the given versions, each checked.

    What copies (merge, bundles, push) use to send such a tensor on as an ordinary chunk.
    """
    found: dict[bytes, tuple[bytes, str]] = {}
    for vid, kind, name, dtype, shape, digest, data in conn.execute(
        "SELECT vid, kind, name, dtype, shape, digest, data FROM tensors"
        " WHERE data IS NOT NULL AND vid IN (SELECT value FROM json_each(?))",
        (json.dumps(sorted(set(vids))),),
    ):
        raw = checked(f"{kind} {name!r} of version #{vid}", dtype, shape, digest, data)
        found[hashlib.sha256(raw).digest()] = (raw, dtype)
    return found

"""Content-addressed chunk storage: tensors in, tensors out, every chunk stored once.

A tensor's little-endian bytes are cut into fixed-size chunks; each chunk is named by the SHA-256
of its raw bytes and inserted only if no chunk with that hash exists. Hashing and compression run
on a thread pool (hashlib and zstd release the GIL) while the calling thread talks to SQLite; writes
go in short transactions of a bounded window of chunks so memory stays at "a few chunks" and other
writers are never locked out for long. Reads decode straight into one preallocated array and
re-hash every chunk, so corruption is caught on restore.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from . import chunkcodec, serial
from .connection import write_transaction
from .errors import DecodeError, IntegrityError
from .manifest import ManifestTensor

#: How many chunks are hashed/encoded ahead and written per transaction.
WINDOW = 8


@dataclass(frozen=True)
class StoredTensor:
    """Where a tensor's bytes live: its chunk hashes (global) and chunk ids (local)."""

    dtype: str
    shape: tuple[int, ...]
    nbytes: int
    hashes: tuple[bytes, ...]
    cids: tuple[int, ...]

    @property
    def digest(self) -> str:
        """Content id of the tensor: SHA-256 over dtype, shape and the chunk hashes."""
        return tensor_digest(self.dtype, self.shape, self.hashes)

    def as_manifest(self, kind: str, name: str) -> ManifestTensor:
        return ManifestTensor(kind, name, self.dtype, self.shape, self.nbytes, self.hashes)


def tensor_digest(dtype: str, shape: Sequence[int], hashes: Sequence[bytes]) -> str:
    return hashlib.sha256(serial.pack([dtype, list(shape), list(hashes)])).hexdigest()


def _sha256(piece: memoryview) -> bytes:
    return hashlib.sha256(piece).digest()


def _pool_size() -> int:
    return max(1, min(4, os.cpu_count() or 1))


class BlobStore:
    """Chunk reads and writes over one connection; thread pool created lazily and reused."""

    def __init__(self, conn: sqlite3.Connection, chunk_size: int) -> None:
        self.conn = conn
        self.chunk_size = chunk_size
        self._pool: ThreadPoolExecutor | None = None

    @property
    def pool(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(_pool_size(), thread_name_prefix="mvcdb-chunks")
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    # -- writing -------------------------------------------------------------------------------

    def _pieces(self, flat: memoryview, itemsize: int, stride: int) -> list[memoryview]:
        """Cut the bytes at chunk boundaries aligned to the element (or row) size."""
        unit = stride if 0 < stride <= self.chunk_size else itemsize
        size = max(unit, self.chunk_size - self.chunk_size % unit)
        return [flat[i : i + size] for i in range(0, len(flat), size)]

    def put(self, arr: np.ndarray, dtype: str) -> StoredTensor:
        """Store a C-contiguous little-endian array's bytes; return where they live."""
        flat = memoryview(arr.reshape(-1).view(np.uint8).data) if arr.size else memoryview(b"")
        itemsize = arr.dtype.itemsize
        pieces = self._pieces(flat, itemsize, 0)
        hashes: list[bytes] = []
        cids: list[int] = []
        for window in _windows(pieces, WINDOW):
            window_hashes = (
                list(self.pool.map(_sha256, window)) if len(window) > 1 else [_sha256(p) for p in window]
            )
            cids.extend(self.store_chunks(window, window_hashes, itemsize))
            hashes.extend(window_hashes)
        return StoredTensor(dtype, tuple(arr.shape), arr.nbytes, tuple(hashes), tuple(cids))

    def _lookup(self, hashes: Sequence[bytes]) -> dict[bytes, int]:
        found: dict[bytes, int] = {}
        for i in range(0, len(hashes), 500):
            part = hashes[i : i + 500]
            marks = ",".join("?" * len(part))
            found.update(self.conn.execute(f"SELECT hash, cid FROM chunks WHERE hash IN ({marks})", part))
        return found

    def store_chunks(self, pieces: Sequence[memoryview], hashes: Sequence[bytes], itemsize: int) -> list[int]:
        """Insert the raw pieces not yet stored (one short transaction); return every piece's cid.

        hashes[i] must be the SHA-256 of pieces[i]; merge and remotes use this to add chunks.
        """
        known = self._lookup(hashes)
        todo: dict[bytes, memoryview] = {}
        for digest, piece in zip(hashes, pieces, strict=True):
            if digest not in known and digest not in todo:
                todo[digest] = piece
        if todo:

            def encode(piece: memoryview) -> chunkcodec.Encoded:
                return chunkcodec.encode(piece, itemsize)

            encoded = (
                list(self.pool.map(encode, todo.values()))
                if len(todo) > 1
                else [encode(p) for p in todo.values()]
            )
            with write_transaction(self.conn):
                self.conn.executemany(
                    "INSERT OR IGNORE INTO chunks (hash, size, codec, itemsize, data) VALUES (?, ?, ?, ?, ?)",
                    [
                        (digest, len(piece), enc.codec, enc.itemsize, enc.payload)
                        for (digest, piece), enc in zip(todo.items(), encoded, strict=True)
                    ],
                )
            known.update(self._lookup(list(todo)))
        return [known[d] for d in hashes]

    # -- reading -------------------------------------------------------------------------------

    def read_into(self, cids: Sequence[int], out: np.ndarray) -> None:
        """Decode the chunks in order into out (flat uint8), verifying every chunk's hash."""
        offset = 0
        pending: deque[Future[None]] = deque()
        try:
            for cid in cids:
                row = self.conn.execute(
                    "SELECT hash, size, codec, itemsize, data FROM chunks WHERE cid = ?", (cid,)
                ).fetchone()
                if row is None:
                    raise IntegrityError(f"chunk {cid} is missing from the database")
                digest, size, codec, itemsize, payload = row
                if offset + size > len(out):
                    raise IntegrityError("a tensor's chunks hold more bytes than its manifest says")
                dest = out[offset : offset + size]
                offset += size
                pending.append(
                    self.pool.submit(_decode_verify, cid, digest, codec, itemsize, payload, size, dest)
                )
                while len(pending) > 2 * _pool_size():
                    pending.popleft().result()
            while pending:
                pending.popleft().result()
        finally:
            for fut in pending:
                fut.cancel()
        if offset != len(out):
            raise IntegrityError(f"a tensor's chunks hold {offset} bytes but its manifest says {len(out)}")

    def read_chunk(self, cid: int) -> bytes:
        """The raw bytes of one chunk, verified."""
        row = self.conn.execute("SELECT size FROM chunks WHERE cid = ?", (cid,)).fetchone()
        if row is None:
            raise IntegrityError(f"chunk {cid} is missing from the database")
        out = np.empty(row[0], dtype=np.uint8)
        self.read_into([cid], out)
        return out.tobytes()


def _decode_verify(
    cid: int, digest: bytes, codec: int, itemsize: int, payload: bytes, size: int, dest: np.ndarray
) -> None:
    try:
        chunkcodec.decode_into(codec, itemsize, payload, size, dest)
    except DecodeError as exc:
        raise IntegrityError(f"chunk {cid} is corrupt: {exc}") from None
    if hashlib.sha256(dest.data).digest() != digest:
        raise IntegrityError(f"chunk {cid} does not match its hash (the file was damaged)")


def _windows(items: Sequence[memoryview], size: int) -> Iterator[Sequence[memoryview]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]

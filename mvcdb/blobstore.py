"""Content-addressed chunk storage: tensors in, tensors out, every chunk stored once.

A tensor's little-endian bytes are cut into fixed-size chunks; each chunk is named by the SHA-256
of its raw bytes and inserted only if no chunk with that hash exists. Writing is a pipeline: the
write pool (lower priority) hashes the next window of chunks and encodes (compresses,
delta-encodes) the current one while the calling thread -- the bottleneck -- inserts earlier
ones, in short transactions, so memory stays at "a few chunks" and other writers are never
locked out for long. Big payloads are written through a blob handle, not bound. A big write
keeps SQLite's page cache small and holds the background WAL checkpoint back until record() is
done (checkpointer.py).

Reads stream chunk by chunk straight into one preallocated array: each pool thread opens the
chunk's blob itself and decodes it block by block into its place (no whole payload is ever copied
into a `bytes`), then verifies the result -- by the seeded XXH3 check that checked codecs carry
(restore), or by re-hashing SHA-256 (older chunks; `verify` and merge always) -- so corruption is
caught on every read. A delta chunk is decoded after its base (bases are cached per read); a base
decoded only to serve as a base is not verified separately: the check of the chunk built on it
covers the whole chain.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import sys
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from typing import NamedTuple, TypeVar

import numpy as np

from . import checkpointer, chunkcodec, serial
from .connection import write_transaction
from .errors import DecodeError, IntegrityError, MvcdbError
from .manifest import ManifestTensor

T = TypeVar("T")

#: No chunk holds more raw bytes than this (the largest chunk_size a file may use): a row that
#: claims more is damaged and is refused before anything is allocated for it.
MAX_CHUNK_BYTES = 512 * 1024 * 1024
#: The smallest chunk_size a file may use.
MIN_CHUNK_SIZE = 4096
#: Longest delta chain (a chunk at this depth is not used as a base: the next one is stored full).
MAX_DELTA_DEPTH = 4
#: Bytes hashed/encoded ahead and written per transaction (one default chunk: the pool hashes
#: one window while it encodes the previous one, so both threads stay busy at this size too).
WINDOW_BYTES = 4 * 1024 * 1024
#: Windows encoded ahead of the one being inserted, so the pool still has work queued while the
#: calling thread is inside SQLite (with POOL_NICE: +6-10 % record throughput, measured; payloads
#: of INSERT_LAG + 1 windows are in memory at most).
INSERT_LAG = 3
#: Windows hashed ahead of the one being encoded (only digests are kept). With one, the calling
#: thread often waited for a window's hashes with one pool thread idle (nothing else queued);
#: with two, and INSERT_LAG 3 instead of 2, a 1 GB record left ~40 % less of the cores idle and
#: was ~3 % faster (measured, 8 KiB pages).
HASH_AHEAD = 2
#: Writes of at least this many bytes hold the WAL checkpoint back and shrink the page cache.
BULK_BYTES = 8 * 1024 * 1024
#: SQLite page cache (KiB) during a bulk write: pages of committed windows are not read again,
#: and the default 64 MiB cache would only add that much to record()'s memory peak.
BULK_CACHE_KIB = 4096
#: ... but a window's dirty pages stay in memory up to this many KiB rather than spill to the WAL
#: in mid-transaction (a window's transaction writes ~WINDOW_BYTES..2x of pages): after a spill,
#: SQLite searches the WAL index for every page it writes (sqlite3WalFindFrame, a search that
#: grows through a whole big write, as its checkpoint is held back): ~6 % of the inserting
#: thread's CPU at 8 KiB pages (measured). Pages past the cache size are freed at commit.
BULK_SPILL_KIB = 16384
#: Writes at most this big are stored without the thread pool (hand-off costs more than the work).
INLINE_BYTES = 256 * 1024
#: Chunks smaller than this are never delta-encoded (the base lookup costs more than it saves).
MIN_DELTA = 4096
#: Payloads at least this big are inserted as a zeroblob and written through a blob handle
#: (measured: ~18 % less SQLite time on the calling thread than binding 4 MiB payloads).
BLOB_WRITE_BYTES = 64 * 1024
#: Incremental blob I/O exists (Python >= 3.11).
_BLOB_WRITES = hasattr(sqlite3.Connection, "blobopen")
_INSERT = (
    "INSERT OR IGNORE INTO chunks (hash, size, codec, itemsize, stride, base, depth, data)"
    " VALUES (:hash, :size, :codec, :itemsize, :stride, :base, :depth, {data})"
)
#: A lazy clone's stub of the same chunk (not fetched yet) gets the bytes in place (its cid stays).
_FILL_STUB = (
    "UPDATE chunks SET codec = :codec, itemsize = :itemsize, stride = :stride, base = :base,"
    f" depth = :depth, data = {{data}} WHERE hash = :hash AND codec = {chunkcodec.STUB} RETURNING cid"
)
#: Chunks smaller than this are decoded on the calling thread when read.
INLINE_DECODE = 64 * 1024
#: Decoded delta bases kept per read (chunks), for chunks sharing a base.
BASE_CACHE = 4

#: How a read verifies each chunk it returns: FULL re-hashes SHA-256 (the chunk's identity);
#: CHECK trusts a checked codec's seeded XXH3 check (~10x cheaper), SHA-256 for older codecs.
FULL = "full"
CHECK = "check"
#: Internal: a delta base decoded only to build another chunk (that chunk's check covers it).
_AS_BASE = ""


class StoredTensor(NamedTuple):
    """Where a tensor's bytes live: its chunk hashes (global) and chunk ids (local), or for a tiny
    tensor its bytes themselves (`data`, stored in its row: one hash, no chunk). (A NamedTuple: a
    small record() builds several, at a third of a frozen dataclass's cost.)"""

    dtype: str
    shape: tuple[int, ...]
    nbytes: int
    hashes: tuple[bytes, ...]
    cids: tuple[int, ...]
    data: bytes | None = None
    #: `digest`, when whoever built this had it already (inline.store); else computed when asked
    known_digest: str | None = None

    @property
    def digest(self) -> str:
        """Content id of the tensor: SHA-256 over dtype, shape and the chunk hashes."""
        return self.known_digest or tensor_digest(self.dtype, self.shape, self.hashes)

    def as_manifest(self, kind: str, name: str) -> ManifestTensor:
        return ManifestTensor(kind, name, self.dtype, self.shape, self.nbytes, self.hashes)


class ChunkRow(NamedTuple):
    """A chunk's row without its payload."""

    cid: int
    hash: bytes
    size: int
    codec: int
    itemsize: int
    stride: int
    base: int | None
    depth: int


#: A delta chain to decode: its rows, the chain head (depth 0) first.
Chain = list[ChunkRow]


def tensor_digest(dtype: str, shape: Sequence[int], hashes: Sequence[bytes]) -> str:
    """SHA-256 of the msgpack list [dtype, shape, chunk hashes] (tuples pack as lists)."""
    return hashlib.sha256(serial.pack_sorted((dtype, shape, hashes))).hexdigest()


def one_chunk_digest(dtype: str, shape: tuple[int, ...], chunk_hash: bytes) -> str:
    """tensor_digest(dtype, shape, [chunk_hash]) for a numpy array's shape and one SHA-256.

    What a small record() computes for each tensor kept in its row: the packed bytes before the
    hash depend on dtype and shape alone, so they are packed once (~1.5 us less a tensor). Only
    for shapes of plain ints, as numpy's are: the cache cannot tell True from 1, which pack apart.
    """
    head = _DIGEST_HEADS.get((dtype, shape)) or _digest_head(dtype, shape)
    return hashlib.sha256(head + chunk_hash).hexdigest()


#: (dtype, shape) -> msgpack bytes of [dtype, shape, [a 32-byte hash]] up to the hash's own bytes.
_DIGEST_HEADS: dict[tuple[str, tuple[int, ...]], bytes] = {}


def _digest_head(dtype: str, shape: tuple[int, ...]) -> bytes:
    """Pack and remember a _DIGEST_HEADS entry (at most 1024: a sweep has a few shapes)."""
    if len(_DIGEST_HEADS) >= 1024:
        _DIGEST_HEADS.clear()
    head = _DIGEST_HEADS[(dtype, shape)] = serial.pack_sorted((dtype, shape, (bytes(32),)))[:-32]
    return head


def valid_chunk_size(value: object) -> int | None:
    """The chunk size a `meta` value names, or None if it is not a whole number of bytes a file
    may use (MIN_CHUNK_SIZE..MAX_CHUNK_BYTES): such a value is damage, not a setting."""
    try:
        size = int(str(value).strip())
    except ValueError:
        return None
    return size if MIN_CHUNK_SIZE <= size <= MAX_CHUNK_BYTES else None


def checked_size(cid: int, size: int) -> int:
    """A chunk row's size, or IntegrityError if no chunk can be that big (checked before a buffer
    for it is allocated: a damaged row must not make a read ask for terabytes)."""
    if not 0 <= size <= MAX_CHUNK_BYTES:
        raise IntegrityError(
            f"chunk {cid} claims {size} bytes, more than a chunk may hold (the file is damaged)"
        )
    return size


def is_lazy_clone(conn: sqlite3.Connection) -> bool:
    """Whether the file is a lazy clone (names the remote its unfetched chunks come from): only
    there may a chunk be a STUB."""
    from .remote.transfer import LAZY_META_KEY  # the remote package imports this module

    return conn.execute("SELECT 1 FROM meta WHERE key = ?", (LAZY_META_KEY,)).fetchone() is not None


def damaged_stubs(
    conn: sqlite3.Connection, cids: Sequence[int], *, lazy: bool | None = None
) -> dict[int, str]:
    """The STUB chunks among cids that cannot be a lazy clone's placeholder, each with why: a
    stub outside a lazy clone, or one holding bytes (a real chunk whose codec was damaged).
    lazy=None asks the file whether it is a lazy clone."""
    if not cids:
        return {}
    if lazy is None:
        lazy = is_lazy_clone(conn)
    damaged: dict[int, str] = {}
    for i in range(0, len(cids), 50_000):
        for cid, stored in conn.execute(
            "SELECT cid, length(data) FROM chunks WHERE cid IN (SELECT value FROM json_each(?))",
            (json.dumps(list(cids[i : i + 50_000])),),
        ):
            if not lazy:
                damaged[int(cid)] = (
                    f"chunk {cid} is marked not fetched (codec {chunkcodec.STUB}, a lazy clone's"
                    " placeholder) but this file is no lazy clone: the file is damaged"
                )
            elif stored:
                damaged[int(cid)] = (
                    f"chunk {cid} is marked not fetched (codec {chunkcodec.STUB}) but holds"
                    f" {stored} bytes: the file is damaged"
                )
    return damaged


def _sha256(piece: memoryview) -> bytes:
    return hashlib.sha256(piece).digest()


def _pool_size() -> int:
    return max(1, min(4, os.cpu_count() or 1))


#: How much lower (nice) the write pool's threads run. A big write's bottleneck is the calling
#: thread inside SQLite: when hashing and encoding compete with it for the cores, the scheduler
#: then lets it run first (Linux threads have their own nice value). Reads are not lowered.
POOL_NICE = 5


def _lower_priority() -> None:
    """Pool thread start-up: run at POOL_NICE below the default (Linux only; best effort)."""
    if not POOL_NICE or not sys.platform.startswith("linux"):
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + POOL_NICE))
    except OSError:
        pass


class PutItem(NamedTuple):
    """One tensor for put_many: storage-form array, recorded dtype, parent chunk ids, row bytes."""

    arr: np.ndarray
    dtype: str
    base: Sequence[int] | None = None
    stride: int = 0


class _Piece(NamedTuple):
    data: memoryview
    lane: int
    stride: int
    base: int | None


_Encoding = tuple[chunkcodec.Encoded, int, int | None]  # (encoding, delta depth, base cid)


class _NewChunk(NamedTuple):
    digest: bytes
    size: int
    encoded: Future[_Encoding]
    #: The work behind `encoded`, for the inserting thread to run itself if no pool thread has
    #: started it yet (see _outcome); None: only wait.
    work: Callable[[], _Encoding] | None = None


class BlobStore:
    """Chunk reads and writes over one connection; thread pool created lazily and reused."""

    def __init__(self, conn: sqlite3.Connection, chunk_size: int) -> None:
        self.conn = conn
        self.chunk_size = chunk_size
        self._pool: ThreadPoolExecutor | None = None
        self._write_pool: ThreadPoolExecutor | None = None
        #: Called with the cids of stub chunks (codec 15, "not fetched yet") before they are read;
        #: it must replace them with real chunks. Set by the remote module for lazy clones.
        self.fetch_missing: Callable[[list[int]], None] | None = None

    @property
    def pool(self) -> ThreadPoolExecutor:
        """Threads for reads (decoding) and other callers' chunk work, at normal priority."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(_pool_size(), thread_name_prefix="mvcdb-chunks")
        return self._pool

    @property
    def write_pool(self) -> ThreadPoolExecutor:
        """Threads that hash and encode for writes, at POOL_NICE below the caller (it inserts)."""
        if self._write_pool is None:
            self._write_pool = ThreadPoolExecutor(
                _pool_size(), thread_name_prefix="mvcdb-encode", initializer=_lower_priority
            )
        return self._write_pool

    def close(self) -> None:
        """Stop the pools (the connection stays open)."""
        for pool in (self._pool, self._write_pool):
            if pool is not None:
                pool.shutdown(wait=True)
        self._pool = self._write_pool = None

    # -- writing -------------------------------------------------------------------------------

    def _pieces(self, flat: memoryview, itemsize: int, stride: int) -> list[memoryview]:
        """Cut the bytes at chunk boundaries aligned to the element (or row) size."""
        unit = stride if 0 < stride <= self.chunk_size else itemsize
        size = max(unit, self.chunk_size - self.chunk_size % unit)
        return [flat[i : i + size] for i in range(0, len(flat), size)]

    def put(
        self,
        arr: np.ndarray,
        dtype: str,
        *,
        base: Sequence[int] | None = None,
        stride: int = 0,
    ) -> StoredTensor:
        """Store a C-contiguous little-endian array's bytes; return where they live.

        Args:
            arr: the array in storage form (tensors.to_storage).
            dtype: the dtype string to record (the original byte order).
            base: chunk ids of the same tensor in the parent version (same dtype and shape):
                chunk i may be stored as a delta against base[i] when that is smaller.
            stride: row size in bytes for per-step series: chunks are cut at row boundaries
                and may be stored as row-to-row deltas when that is smaller.
        """
        return self.put_many([PutItem(arr, dtype, base, stride)])[0]

    def put_many(self, items: Sequence[PutItem]) -> list[StoredTensor]:
        """put() for several tensors in one pipeline (a model's tensors share the windows)."""
        pieces: list[_Piece] = []
        spans: list[tuple[int, int]] = []
        for item in items:
            arr = item.arr
            flat = memoryview(arr.reshape(-1).view(np.uint8).data) if arr.size else memoryview(b"")
            lane = chunkcodec.lane_size(arr.dtype)
            cut = self._pieces(flat, arr.dtype.itemsize, item.stride)
            bases = item.base if item.base is not None and len(item.base) == len(cut) else None
            spans.append((len(pieces), len(pieces) + len(cut)))
            pieces.extend(
                _Piece(piece, lane, item.stride, bases[i] if bases is not None else None)
                for i, piece in enumerate(cut)
            )
        if sum(len(p.data) for p in pieces) <= INLINE_BYTES:
            hashes = [_sha256(p.data) for p in pieces]
            cids = self._put_inline(pieces, hashes)
        else:
            hashes, cids = self._put_pipelined(pieces)
        return [
            StoredTensor(
                item.dtype, tuple(item.arr.shape), item.arr.nbytes, tuple(hashes[a:b]), tuple(cids[a:b])
            )
            for item, (a, b) in zip(items, spans, strict=True)
        ]

    def _put_inline(self, pieces: Sequence[_Piece], hashes: Sequence[bytes]) -> list[int]:
        """Small tensors: everything on the calling thread, one transaction if anything is new."""
        known = self._lookup(hashes, stubs=False)
        new: dict[bytes, _NewChunk] = {}
        for digest, piece in zip(hashes, pieces, strict=True):
            if digest in known or digest in new:
                continue
            done: Future[tuple[chunkcodec.Encoded, int, int | None]] = Future()
            done.set_result(
                self._encode_piece(digest, piece.data, piece.lane, piece.stride, self._base_chain(piece))
            )
            new[digest] = _NewChunk(digest, len(piece.data), done)
        if new:
            known.update(self._insert(list(new.values())))
        return self._cids_of(hashes, known)

    def _put_pipelined(self, pieces: Sequence[_Piece]) -> tuple[list[bytes], list[int]]:
        """Hash windows k..k+HASH_AHEAD and encode window k on the pool while window
        k-INSERT_LAG is inserted. A task the calling thread needs that no pool thread has started
        yet, it runs itself (_outcome); payload buffers are reused from window to window."""
        with self._bulk(sum(len(p.data) for p in pieces) >= BULK_BYTES):
            return self._put_windows(pieces)

    @contextmanager
    def _bulk(self, big: bool) -> Iterator[None]:
        """For a big write: a small page cache (restored after), and the background WAL
        checkpoint held back until the write is done (it would compete for both cores)."""
        if not big:
            yield
            return
        cache = self.conn.execute("PRAGMA cache_size").fetchone()[0]
        spill = self.conn.execute("PRAGMA cache_spill").fetchone()[0]
        page = self.conn.execute("PRAGMA page_size").fetchone()[0]
        self.conn.execute(f"PRAGMA cache_size = -{BULK_CACHE_KIB}")
        if spill:  # (0: spilling is off altogether)
            self.conn.execute(f"PRAGMA cache_spill = {_spill_pages(int(page))}")
        try:
            with checkpointer.held(self.conn):
                yield
        finally:
            self.conn.execute(f"PRAGMA cache_size = {int(cache)}")
            if spill:  # back to spilling at the cache size (what a spill size of 1 page means)
                self.conn.execute("PRAGMA cache_spill = 1")

    def _put_windows(self, pieces: Sequence[_Piece]) -> tuple[list[bytes], list[int]]:
        pool = self.write_pool
        windows = list(_windows(pieces))
        buffers = chunkcodec.Buffers()
        hashes: list[bytes] = []
        known: dict[bytes, int] = {}
        inflight: set[bytes] = set()
        hashing: deque[list[Future[bytes]]] = deque()  # windows handed to the pool to hash
        encoding: deque[list[_NewChunk]] = deque()  # windows handed to the pool to encode
        for k, window in enumerate(windows):
            while len(hashing) <= HASH_AHEAD and k + len(hashing) < len(windows):
                hashing.append([pool.submit(_sha256, p.data) for p in windows[k + len(hashing)]])
            window_hashes = [
                _outcome(f, partial(_sha256, p.data)) for f, p in zip(hashing.popleft(), window, strict=True)
            ]
            hashes.extend(window_hashes)
            known.update(self._lookup([h for h in window_hashes if h not in known and h not in inflight]))
            current: list[_NewChunk] = []
            for digest, piece in zip(window_hashes, window, strict=True):
                if digest in known or digest in inflight:
                    continue
                inflight.add(digest)
                chain = self._base_chain(piece)
                work = partial(
                    self._encode_piece, digest, piece.data, piece.lane, piece.stride, chain, buffers
                )
                current.append(_NewChunk(digest, len(piece.data), pool.submit(work), work))
            encoding.append(current)
            while len(encoding) > INSERT_LAG:
                known.update(self._insert(encoding.popleft(), buffers))
        while encoding:
            known.update(self._insert(encoding.popleft(), buffers))
        return hashes, self._cids_of(hashes, known)

    def _cids_of(self, hashes: Sequence[bytes], known: dict[bytes, int]) -> list[int]:
        missing = [h for h in hashes if h not in known]
        if missing:  # inserted concurrently by another writer (our INSERT was ignored)
            known.update(self._lookup(missing))
        if any(h not in known for h in missing):
            raise MvcdbError("chunks vanished during the write (a concurrent gc?); write again")
        return [known[h] for h in hashes]

    def _insert(
        self, new: Sequence[_NewChunk], buffers: chunkcodec.Buffers | None = None
    ) -> dict[bytes, int]:
        """Insert encoded chunks in one short transaction; return hash -> cid of those we wrote.

        A big payload goes in as a zeroblob placeholder filled through a blob handle: a bound
        payload is copied twice inside SQLite before it reaches its pages (same transaction, so
        no reader ever sees the placeholder). The payloads' buffers go back to buffers after."""
        results = [(n, *(n.encoded.result() if n.work is None else _outcome(n.encoded, n.work))) for n in new]
        try:
            return self._insert_rows(results)
        finally:
            if buffers is not None:
                for _, enc, _, _ in results:
                    buffers.give(enc.payload)

    def _insert_rows(
        self, results: Sequence[tuple[_NewChunk, chunkcodec.Encoded, int, int | None]]
    ) -> dict[bytes, int]:
        written: dict[bytes, int] = {}
        with write_transaction(self.conn):
            for n, enc, depth, base_cid in results:
                through_blob = _BLOB_WRITES and len(enc.payload) >= BLOB_WRITE_BYTES
                data = "zeroblob(:data)" if through_blob else ":data"
                row = {
                    "hash": n.digest,
                    "size": n.size,
                    "codec": enc.codec,
                    "itemsize": enc.itemsize,
                    "stride": enc.stride,
                    "base": base_cid,
                    "depth": depth,
                    "data": len(enc.payload) if through_blob else enc.payload,
                }
                cur = self.conn.execute(_INSERT.format(data=data), row)
                cid = cur.lastrowid if cur.rowcount == 1 else None
                if cid is None:  # here already: as a real chunk, or as a stub to fill in
                    filled = self.conn.execute(_FILL_STUB.format(data=data), row).fetchone()
                    cid = None if filled is None else int(filled[0])
                if cid is not None:
                    if through_blob:
                        with self.conn.blobopen("chunks", "data", cid) as blob:
                            blob.write(enc.payload)
                    written[n.digest] = cid
        return written

    def _lookup(self, hashes: Sequence[bytes], *, stubs: bool = True) -> dict[bytes, int]:
        """hash -> cid of the chunks here; stubs=False leaves out a lazy clone's unfetched ones."""
        found: dict[bytes, int] = {}
        real = "" if stubs else f" AND codec != {chunkcodec.STUB}"
        for i in range(0, len(hashes), 500):
            part = hashes[i : i + 500]
            marks = ",".join("?" * len(part))
            found.update(
                self.conn.execute(f"SELECT hash, cid FROM chunks WHERE hash IN ({marks}){real}", part)
            )
        return found

    def _base_chain(self, piece: _Piece) -> Chain | None:
        """The chain a delta of piece against its base would need, or None if there is no usable
        base (none, another size, at the depth bound, or not fetched yet)."""
        if piece.base is None or len(piece.data) < MIN_DELTA:
            return None
        rows = self._rows([piece.base])
        row = rows.get(piece.base)
        if row is None or row.size != len(piece.data) or row.depth >= MAX_DELTA_DEPTH:
            return None
        chain = self._chain(row, rows)
        if any(r.codec == chunkcodec.STUB for r in chain):
            return None
        return chain

    def store_chunks(self, pieces: Sequence[memoryview], hashes: Sequence[bytes], itemsize: int) -> list[int]:
        """Insert the raw pieces not yet stored (one short transaction); return every piece's cid.

        hashes[i] must be the SHA-256 of pieces[i]; merge and remotes use this to add chunks
        (stored with a plain encoding: byte planes of itemsize-wide lanes, or zstd). A chunk held
        only as a lazy clone's stub is filled in with its bytes.
        """
        lane = itemsize if itemsize in (1, 2, 4, 8) else 1
        known = self._lookup(hashes, stubs=False)
        todo: dict[bytes, memoryview] = {}
        for digest, piece in zip(hashes, pieces, strict=True):
            if digest not in known and digest not in todo:
                todo[digest] = piece
        if todo:
            new = [
                _NewChunk(
                    digest,
                    len(piece),
                    self.write_pool.submit(self._encode_piece, digest, piece, lane, 0, None),
                )
                for digest, piece in todo.items()
            ]
            known.update(self._insert(new))
        return self._cids_of(hashes, known)

    # -- reading -------------------------------------------------------------------------------

    def _rows(self, cids: Sequence[int]) -> dict[int, ChunkRow]:
        """Rows (no payload) of the given chunks and, recursively, of their delta bases."""
        rows: dict[int, ChunkRow] = {}
        todo = sorted(set(cids))
        while todo:
            for i in range(0, len(todo), 50_000):
                part = todo[i : i + 50_000]
                for r in self.conn.execute(
                    "SELECT cid, hash, size, codec, itemsize, stride, base, depth FROM chunks"
                    " WHERE cid IN (SELECT value FROM json_each(?))",
                    (json.dumps(part),),
                ):
                    rows[r[0]] = ChunkRow(*r)
            todo = sorted({r.base for r in rows.values() if r.base is not None and r.base not in rows})
        return rows

    def _chain(self, row: ChunkRow, rows: dict[int, ChunkRow]) -> list[ChunkRow]:
        """row and its bases, the chain head first; IntegrityError on a broken or cyclic chain."""
        chain = [row]
        while (base_cid := chain[-1].base) is not None:
            base = rows.get(base_cid)
            if base is None:
                raise IntegrityError(f"chunk {chain[-1].cid} is a delta against a missing chunk")
            if len(chain) > MAX_DELTA_DEPTH + 64:
                raise IntegrityError(f"chunk {row.cid} has a cyclic or overlong delta chain")
            chain.append(base)
        return chain[::-1]

    @contextmanager
    def _source(self, cid: int) -> Iterator[chunkcodec.Source]:
        """A chunk's stored bytes as an open blob, read piece by piece (no whole-payload copy).

        Pool threads call this on the shared connection (SQLite serializes the calls)."""
        try:
            blob = self.conn.blobopen("chunks", "data", cid, readonly=True)
        except AttributeError:  # Python 3.10: no blobopen
            row = self.conn.execute("SELECT data FROM chunks WHERE cid = ?", (cid,)).fetchone()
            if row is None:
                raise IntegrityError(f"chunk {cid} is missing from the database") from None
            yield chunkcodec.BufferSource(row[0])
            return
        except sqlite3.OperationalError as exc:
            raise IntegrityError(f"chunk {cid} cannot be read: {exc}") from None
        with blob:
            yield blob

    def _rows_fetched(self, cids: Sequence[int]) -> dict[int, ChunkRow]:
        """_rows, after asking fetch_missing to replace any stub chunk (lazy clones)."""
        rows = self._rows(cids)
        missing = [c for c in cids if c not in rows]
        if missing:
            raise IntegrityError(f"chunk {missing[0]} is missing from the database")
        _check_rows(rows)
        stubs = sorted(r.cid for r in rows.values() if r.codec == chunkcodec.STUB)
        # a fetch hook is attached to lazy clones only (or by a caller that fetches stubs itself)
        damaged = damaged_stubs(self.conn, stubs, lazy=True if self.fetch_missing is not None else None)
        if damaged:
            raise IntegrityError(next(iter(damaged.values())) + " (run mvcdb verify)")
        if stubs and self.fetch_missing is not None:
            self.fetch_missing(stubs)
            rows = self._rows(cids)
            _check_rows(rows)
            stubs = sorted(r.cid for r in rows.values() if r.codec == chunkcodec.STUB)
        if stubs:
            raise MvcdbError(
                f"{len(stubs)} chunk(s) of this data were not fetched yet (a lazy clone); "
                "fetch them from the remote first"
            )
        return rows

    def read_into(self, cids: Sequence[int], out: np.ndarray, *, verify: str = FULL) -> None:
        """Decode the chunks in order into out (flat uint8), re-hashing every chunk (verify=FULL,
        as `verify` and merge need) or checking it (CHECK)."""
        self.read_many([(cids, out)], verify=verify)

    def read_many(self, jobs: Sequence[tuple[Sequence[int], np.ndarray]], *, verify: str = CHECK) -> None:
        """read_into for several (cids, out) pairs in one pipeline, so a model made of many
        one-chunk tensors still keeps every core busy (restore). Every chunk is verified (CHECK
        by default: a checked codec's check, else SHA-256). Chunks below INLINE_DECODE bytes are
        decoded on the calling thread (handing them to the pool costs more than decoding)."""
        if verify not in (FULL, CHECK):
            raise ValueError(f"verify must be {FULL!r} or {CHECK!r}")
        rows = self._rows_fetched([cid for cids, _ in jobs for cid in cids])
        pending: deque[Future[np.ndarray]] = deque()
        bases: OrderedDict[int, Future[np.ndarray]] = OrderedDict()
        pool = self.pool
        ahead = 2 * _pool_size()
        try:
            for cids, out in jobs:
                offset = 0
                for cid in cids:
                    row = rows[cid]
                    if offset + row.size > len(out):
                        raise IntegrityError("a tensor's chunks hold more bytes than its manifest says")
                    dest = out[offset : offset + row.size]
                    offset += row.size
                    base = self._base_future(row, rows, bases) if row.base is not None else None
                    if base is None and row.size < INLINE_DECODE:
                        self._decode(row, dest, None, verify=verify)
                        continue
                    pending.append(pool.submit(self._decode, row, dest, base, verify=verify))
                    while len(pending) > ahead:
                        pending.popleft().result()
                if offset != len(out):
                    raise IntegrityError(
                        f"a tensor's chunks hold {offset} bytes but its manifest says {len(out)}"
                    )
            while pending:
                pending.popleft().result()
        finally:
            for fut in pending:
                fut.cancel()
            for base_fut in bases.values():
                base_fut.cancel()

    def _base_future(
        self, row: ChunkRow, rows: dict[int, ChunkRow], cache: OrderedDict[int, Future[np.ndarray]]
    ) -> Future[np.ndarray]:
        """The decoded raw bytes of row's base, submitted (after its own base) if not cached.

        Tasks only ever wait for tasks submitted before them, so the FIFO pool cannot deadlock.
        """
        base_cid = row.base
        assert base_cid is not None
        fut = cache.get(base_cid)
        if fut is not None:
            cache.move_to_end(base_cid)
            return fut
        base_row = rows.get(base_cid)
        if base_row is None:
            raise IntegrityError(f"chunk {row.cid} is a delta against a missing chunk")
        if base_row.depth >= row.depth:
            raise IntegrityError(f"chunk {row.cid} has a cyclic delta chain")
        below = self._base_future(base_row, rows, cache) if base_row.base is not None else None
        fut = self.pool.submit(self._decode, base_row, None, below, verify=_AS_BASE)
        cache[base_cid] = fut
        while len(cache) > BASE_CACHE:
            cache.popitem(last=False)
        return fut

    def _decode(
        self,
        row: ChunkRow,
        dest: np.ndarray | None,
        base: Future[np.ndarray] | np.ndarray | None,
        *,
        verify: str,
    ) -> np.ndarray:
        """Read one chunk's blob and decode it into dest (a new array if None), verified as
        `verify` says (CHECK, FULL, or _AS_BASE: not at all); IntegrityError on damage. Runs on
        the pool or the calling thread."""
        out = np.empty(row.size, dtype=np.uint8) if dest is None else dest
        below = base.result() if isinstance(base, Future) else base
        with self._source(row.cid) as src:
            try:
                checked = chunkcodec.decode_from(
                    row.codec,
                    row.itemsize,
                    src,
                    row.size,
                    out,
                    base=below,
                    stride=row.stride,
                    key=row.hash if verify else None,
                )
            except DecodeError as exc:
                raise IntegrityError(f"chunk {row.cid} is corrupt: {exc}") from None
            except (sqlite3.Error, SystemError) as exc:
                # a damaged page under the blob. SystemError: CPython's sqlite3 reads the error of a
                # failed blob read from the connection, which another pool thread may have reset
                raise IntegrityError(f"chunk {row.cid} cannot be read: {exc}") from None
        if verify and (verify == FULL or not checked) and hashlib.sha256(out.data).digest() != row.hash:
            raise IntegrityError(f"chunk {row.cid} does not match its hash (the file was damaged)")
        return out

    def _decode_chain(self, chain: Chain) -> np.ndarray:
        """Decode a chain head-first; return the raw bytes of its last chunk, verified (which
        verifies every link: a damaged one changes the result)."""
        raw: np.ndarray | None = None
        for i, row in enumerate(chain):
            raw = self._decode(row, None, raw, verify=CHECK if i == len(chain) - 1 else _AS_BASE)
        assert raw is not None
        return raw

    def _encode_piece(
        self,
        digest: bytes,
        piece: memoryview,
        lane: int,
        stride: int,
        chain: Chain | None,
        buffers: chunkcodec.Buffers | None = None,
    ) -> tuple[chunkcodec.Encoded, int, int | None]:
        """The smallest encoding of one piece (checked codecs): plain, row-delta (stride), or
        delta against the chain's last chunk. Returns (encoding, delta depth, base cid); runs on
        the pool. digest is the piece's SHA-256 (the check's seed); buffers: where payload
        buffers come from (the other candidates' go straight back)."""
        if not stride and chain is None:  # the usual case: the check is taken during the split
            return chunkcodec.encode(piece, lane, key=digest, buffers=buffers), 0, None
        check = chunkcodec.checksum(piece, digest)
        plain = chunkcodec.encode(piece, lane, check, buffers=buffers)
        rows = chunkcodec.encode_rows(piece, lane, stride, check, buffers=buffers) if stride else None
        delta = None
        if chain is not None:
            try:
                base_raw = self._decode_chain(chain)
            except (IntegrityError, sqlite3.Error):  # a damaged parent must not stop the child
                chain = None
            else:
                delta = chunkcodec.encode_delta(piece, base_raw, lane, check, buffers=buffers)
        best = chunkcodec.smallest(plain, rows, delta)
        if buffers is not None:
            for other in (plain, rows, delta):
                if other is not None and other is not best:
                    buffers.give(other.payload)
        if best is delta and chain is not None:
            top = chain[-1]
            return best, top.depth + 1, top.cid
        return best, 0, None

    def read_chunk(self, cid: int) -> bytes:
        """The raw bytes of one chunk (delta chunks decoded against their base), verified."""
        row = self.conn.execute("SELECT size FROM chunks WHERE cid = ?", (cid,)).fetchone()
        if row is None:
            raise IntegrityError(f"chunk {cid} is missing from the database")
        out = np.empty(checked_size(cid, row[0]), dtype=np.uint8)
        self.read_into([cid], out)
        return out.tobytes()


def _check_rows(rows: dict[int, ChunkRow]) -> None:
    """IntegrityError for a row no chunk can have, before a read allocates for it: a size past
    MAX_CHUNK_BYTES, or a delta whose base is another size (a delta is as long as its base)."""
    for row in rows.values():
        checked_size(row.cid, row.size)
        base = rows.get(row.base) if row.base is not None else None
        if base is not None and base.size != row.size:
            raise IntegrityError(
                f"chunk {row.cid} is a delta against chunk {base.cid} of another size (the file is damaged)"
            )


def _spill_pages(page_size: int) -> int:
    """BULK_SPILL_KIB in pages, as `PRAGMA cache_spill = N` takes it: odd, because SQLite also
    reads N as the on/off flag, as a byte (N = 2048 would turn spilling off altogether)."""
    return (BULK_SPILL_KIB * 1024 // page_size) | 1


def _outcome(fut: Future[T], work: Callable[[], T]) -> T:
    """fut's result; or, if no pool thread has started it yet, work() run right here. The thread
    that waits is the one inserting (the pipeline's bottleneck, at a higher priority than the
    pool): a task queued behind others would keep it idle while the pool is saturated."""
    return work() if fut.cancel() else fut.result()


def _windows(pieces: Sequence[_Piece]) -> Iterator[list[_Piece]]:
    """Consecutive runs of pieces of about WINDOW_BYTES each (at most 1024 pieces)."""
    window: list[_Piece] = []
    size = 0
    for piece in pieces:
        window.append(piece)
        size += len(piece.data)
        if size >= WINDOW_BYTES or len(window) >= 1024:
            yield window
            window, size = [], 0
    if window:
        yield window

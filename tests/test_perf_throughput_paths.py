"""The throughput paths of record and restore: planes split by a narrowing cast, planes put back
block by block with the check fed on the way, and big payloads written through a blob handle.
Every path must keep the bytes, the on-disk format and damage detection exactly as before."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import struct
import sys
from collections.abc import Callable
from concurrent.futures import Future
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from storage_helpers import finetune, weights

import mvcdb
from mvcdb import blobstore
from mvcdb import chunkcodec as cc
from mvcdb.errors import DecodeError, IntegrityError

CHUNK = 64 * 1024


def _reference_planes(raw: bytes, itemsize: int, payload: bytes) -> bytes:
    """The planes payload rebuilt with plain strided copies from the plane kinds and lengths the
    encoder chose: the format the encoder must keep writing (planes, then the tail)."""
    buf = np.frombuffer(raw, dtype=np.uint8)
    n = len(buf) // itemsize
    cols = buf[: n * itemsize].reshape(n, itemsize)
    heads = [struct.unpack_from("<BI", payload, 5 * k) for k in range(itemsize)]
    out = [payload[: 5 * itemsize]]
    pos = 5 * itemsize
    for k, (kind, length) in enumerate(heads):
        if kind == 0:  # raw plane: exactly byte k of every element
            out.append(np.ascontiguousarray(cols[:, k]).tobytes())
        else:  # a zstd plane must decode to byte k of every element
            packed = payload[pos : pos + length]
            assert cc._zstd_decompress(packed, n) == np.ascontiguousarray(cols[:, k]).tobytes()
            out.append(packed)
        pos += length
    out.append(buf[n * itemsize :].tobytes())
    return b"".join(out)


# -- splitting planes (record) ----------------------------------------------------------------------


@pytest.mark.parametrize("itemsize", [2, 4, 8])
@pytest.mark.parametrize("n", [1, 2, 3, 1000, 4097])
@pytest.mark.parametrize("step", [1, 3, 1000, 1 << 20])
def test_split_blocks_are_the_strided_byte_columns(itemsize: int, n: int, step: int) -> None:
    buf = np.random.default_rng(n).integers(0, 256, n * itemsize + 3, dtype=np.uint8)
    cols = buf[: n * itemsize].reshape(n, itemsize)
    planes = np.full((itemsize, n + 1), 0xEE, dtype=np.uint8)
    for lo in range(0, n, step):
        cc._split_block(buf, itemsize, lo, min(n, lo + step), n, planes[:, :n])
    for k in range(itemsize):
        assert planes[k, :n].tobytes() == np.ascontiguousarray(cols[:, k]).tobytes()
        assert planes[k, n] == 0xEE  # nothing written past the plane


@pytest.mark.parametrize("split", [5, 4096, 1 << 20])
@pytest.mark.parametrize("itemsize", [2, 4, 8])
@pytest.mark.parametrize("size", [64, 67, 4099, 70_001])
def test_check_taken_during_the_split_is_the_check(
    split: int, itemsize: int, size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """encode(key=) computes the check block by block while splitting: the same payload, byte for
    byte, as encode(check=checksum(...)), for every block size, lane width and odd tail."""
    monkeypatch.setattr(cc, "SPLIT_BYTES", split)
    raw = weights(size, size // 4 + 1).view(np.uint8)[:size].tobytes()
    key = hashlib.sha256(raw).digest()
    fused = cc.encode(memoryview(raw), itemsize, key=key)
    apart = cc.encode(memoryview(raw), itemsize, cc.checksum(memoryview(raw), key))
    assert (fused.codec, fused.itemsize, bytes(fused.payload)) == (
        apart.codec,
        apart.itemsize,
        bytes(apart.payload),
    )
    out = np.empty(size, dtype=np.uint8)
    assert cc.decode_into(fused.codec, fused.itemsize, fused.payload, size, out, key=key)
    assert out.tobytes() == raw


@pytest.mark.parametrize("kind", ["tiny", "bytes", "noise"])
def test_check_from_key_on_the_paths_without_planes(kind: str) -> None:
    raw = {
        "tiny": np.arange(10, dtype=np.uint8),
        "bytes": np.zeros(5000, dtype=np.uint8),
        "noise": np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8),
    }[kind].tobytes()
    key = hashlib.sha256(raw).digest()
    for lane in (1, 4):
        fused = cc.encode(memoryview(raw), lane, key=key)
        apart = cc.encode(memoryview(raw), lane, cc.checksum(memoryview(raw), key))
        assert (fused.codec, bytes(fused.payload)) == (apart.codec, bytes(apart.payload))
        assert cc.base_codec(fused.codec) != fused.codec  # checked


def test_a_raw_plane_after_a_compressed_one_moves_down() -> None:
    """Planes are split in place; a raw plane behind a plane that shrank is moved down to close
    the gap (here: a zeros plane, then random bytes)."""
    rng = np.random.default_rng(4)
    words = np.zeros((20_000, 2), dtype=np.uint8)
    words[:, 1] = rng.integers(0, 256, 20_000, dtype=np.uint8)
    raw = words.reshape(-1).tobytes() + b"xyz"
    enc = cc.encode(memoryview(raw), 2)
    kinds = [struct.unpack_from("<BI", bytes(enc.payload), 5 * k)[0] for k in range(2)]
    assert kinds == [1, 0]
    assert bytes(enc.payload) == _reference_planes(raw, 2, bytes(enc.payload))
    out = np.empty(len(raw), dtype=np.uint8)
    cc.decode_into(enc.codec, enc.itemsize, enc.payload, len(raw), out)
    assert out.tobytes() == raw


@pytest.mark.parametrize("itemsize", [2, 4, 8])
@pytest.mark.parametrize("size", [64, 67, 4099, 70_001])
def test_planes_payload_keeps_the_format(itemsize: int, size: int) -> None:
    raw = weights(size, size // 4 + 1).view(np.uint8)[:size].tobytes()
    enc = cc.encode(memoryview(raw), itemsize)
    if enc.codec == cc.PLANES:
        assert bytes(enc.payload) == _reference_planes(raw, itemsize, bytes(enc.payload))
    out = np.empty(size, dtype=np.uint8)
    cc.decode_into(enc.codec, enc.itemsize, enc.payload, size, out)
    assert out.tobytes() == raw


def test_float32_weights_still_take_planes_with_raw_and_zstd_planes() -> None:
    raw = weights(7, 16_384).view(np.uint8).tobytes()
    enc = cc.encode(memoryview(raw), 4)
    assert enc.codec == cc.PLANES
    kinds = [struct.unpack_from("<BI", bytes(enc.payload), 5 * k)[0] for k in range(4)]
    assert kinds[0] == 0 and kinds[3] == 1  # random low mantissa byte raw, exponent byte zstd
    assert bytes(enc.payload) == _reference_planes(raw, 4, bytes(enc.payload))


def test_buffers_lend_reuse_and_ignore_what_they_did_not_lend() -> None:
    bufs = cc.Buffers(keep=2)
    a = bufs.take(1000)
    assert len(a) == 1000
    bufs.give(memoryview(a[:10].data))  # a payload starting at the buffer: handed back
    assert cc._address(bufs.take(900)) == cc._address(a)  # reused (fits, at most twice as big)
    assert cc._address(bufs.take(1000)) != cc._address(a)  # lent out again: a new one
    bufs.give(b"not ours")
    bufs.give(np.empty(1000, dtype=np.uint8))  # not lent: ignored
    bufs.give(memoryview(a.data))  # twice: the second is ignored
    bufs.give(memoryview(a.data))
    small = bufs.take(100)
    assert cc._address(small) != cc._address(a)  # 1000 bytes is more than twice 100
    kept = [bufs.take(50) for _ in range(3)]
    for k in kept:
        bufs.give(k)
    assert len(bufs._free) == 2  # keep bounds what is kept


@pytest.mark.parametrize("lane", [2, 4, 8])
def test_encodings_into_reused_buffers_are_byte_identical(lane: int) -> None:
    """Buffers handed back hold old bytes: every encoder must overwrite all of its payload."""
    bufs = cc.Buffers()
    poison = bufs.take(1 << 20)
    poison[:] = 0xAB
    bufs.give(poison)
    w = weights(3, 100_000)
    rows = 40 * lane
    cases: list[Callable[..., cc.Encoded | None]] = []
    for seed in range(4):
        raw = np.ascontiguousarray(finetune(w, seed).view(np.uint8)[: 300_000 + seed])
        view = memoryview(raw.data)
        key = hashlib.sha256(view).digest()
        check = cc.checksum(view, key)
        even = view[: len(view) - len(view) % rows]
        base = w.view(np.uint8)[: len(even)]
        cases += [
            partial(cc.encode, view, lane, key=key),
            partial(cc.encode, view, lane, check),
            partial(cc.encode_delta, even, base, lane, check),
            partial(cc.encode_rows, even, lane, rows, check),
            partial(cc.encode, memoryview(np.random.default_rng(seed).bytes(70_000)), lane),
        ]
    for make in cases * 2:
        fresh, reused = make(), make(buffers=bufs)
        assert fresh is not None and reused is not None
        assert (fresh.codec, fresh.itemsize, fresh.stride, bytes(fresh.payload)) == (
            reused.codec,
            reused.itemsize,
            reused.stride,
            bytes(reused.payload),
        )
        bufs.give(reused.payload)
    assert len(bufs._free) >= 1 and not bufs._lent  # every buffer came back


# -- putting planes back block by block (restore) ---------------------------------------------------


@pytest.mark.parametrize("block", [1, 7, 1000, 1 << 16])
@pytest.mark.parametrize("kind", ["planes", "delta", "rows", "f64", "f16", "tail"])
def test_blocked_decode_is_bit_identical_and_checked(
    kind: str, block: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cc, "PLANE_BLOCK", block)
    w = weights(1, 5000)
    base = None
    if kind == "f64":
        raw = np.random.default_rng(2).standard_normal(3000).view(np.uint8)
    elif kind == "f16":
        raw = w.astype("<f2").view(np.uint8)
    elif kind == "tail":
        raw = w.view(np.uint8)[:-3]
    elif kind == "rows":
        raw = np.repeat(w[None, :50], 100, axis=0).reshape(-1).view(np.uint8)
    else:
        raw = finetune(w, 3).view(np.uint8) if kind == "delta" else w.view(np.uint8)
        base = w.view(np.uint8) if kind == "delta" else None
    view = memoryview(np.ascontiguousarray(raw).data)
    key = hashlib.sha256(view).digest()
    check = cc.checksum(view, key)
    lane = {"f64": 8, "f16": 2}.get(kind, 4)
    if kind == "delta":
        enc = cc.encode_delta(view, w.view(np.uint8), lane, check)
    elif kind == "rows":
        enc = cc.encode_rows(view, lane, 200, check)
    else:
        enc = cc.encode(view, lane, check)
    assert enc is not None and cc.base_codec(enc.codec) != cc.RAW
    out = np.empty(len(view), dtype=np.uint8)
    assert cc.decode_into(
        enc.codec, enc.itemsize, enc.payload, len(view), out, base=base, stride=enc.stride, key=key
    )
    assert out.tobytes() == bytes(view)
    # one flipped bit anywhere in the planes is caught by the check fed block by block
    payload = bytearray(bytes(enc.payload))
    for at in (cc.CHECK_BYTES + 5 * lane + 1, len(payload) // 2, len(payload) - 1):
        bad = bytearray(payload)
        bad[at] ^= 0x04
        with pytest.raises(DecodeError):
            cc.decode_into(
                enc.codec, enc.itemsize, bytes(bad), len(view), out, base=base, stride=enc.stride, key=key
            )


def test_buffer_source_seeks_only_inside_the_payload() -> None:
    src = cc.BufferSource(b"abcdef")
    src.seek(4)
    assert bytes(src.read(5)) == b"ef"
    src.seek(6)
    assert bytes(src.read()) == b""
    for bad in (-1, 7):
        with pytest.raises(ValueError):
            src.seek(bad)


def _model() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(5)
    return {
        "w": weights(0, 70_000),  # several chunks of planes
        "f64": rng.standard_normal(20_000),
        "noise": rng.integers(0, 256, 90_000, dtype=np.uint8),  # raw chunks, through the blob handle
        "bias": weights(9, 100),  # small: bound in the INSERT
        "zeros": np.zeros(5 * CHUNK // 4, dtype="<f4"),  # the same chunk 5 times, across windows
    }


@pytest.mark.parametrize(("blob_writes", "lag"), [(True, 1), (True, 2), (True, 4), (False, 2)])
def test_record_and_restore_roundtrip_through_both_insert_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, blob_writes: bool, lag: int
) -> None:
    monkeypatch.setattr(blobstore, "_BLOB_WRITES", blob_writes)
    monkeypatch.setattr(blobstore, "BLOB_WRITE_BYTES", 16 * 1024)
    monkeypatch.setattr(blobstore, "WINDOW_BYTES", CHUNK)  # many windows in flight
    monkeypatch.setattr(blobstore, "INSERT_LAG", lag)
    monkeypatch.setattr(cc, "PLANE_BLOCK", 4099)  # blocks that do not divide the chunks
    params = _model()
    with mvcdb.open(tmp_path / "m.db", chunk_size=CHUNK) as db:
        v1 = db.record("m", params)
        child = {**params, "w": finetune(params["w"], 4)}
        v2 = db.record("m", child, parent=v1)
        sizes = [int(r[0]) for r in db.conn.execute("SELECT length(data) FROM chunks")]
        assert any(s >= 16 * 1024 for s in sizes) and any(s < 16 * 1024 for s in sizes)
        # no placeholder left behind: every payload decodes and re-hashes to its chunk's hash
        assert db.verify().ok
        for ref, expected in ((v1, params), (v2, child)):
            got = db.restore(ref)
            assert all(
                got[k].tobytes() == expected[k].tobytes() and got[k].dtype == expected[k].dtype
                for k in expected
            )


class _LaggingPool:
    """A write pool that runs every `every`-th task at once and never gets to the others: those
    are still queued when the inserting thread needs them, so it runs them itself."""

    def __init__(self, every: int) -> None:
        self.every = every
        self.submitted = 0

    def submit(self, fn: Any, *args: Any) -> Future[Any]:
        fut: Future[Any] = Future()
        self.submitted += 1
        if self.every and self.submitted % self.every == 0:
            fut.set_running_or_notify_cancel()
            fut.set_result(fn(*args))
        return fut

    def shutdown(self, wait: bool = True) -> None:
        pass


@pytest.mark.parametrize("every", [0, 2, 3])
@pytest.mark.parametrize("ahead", [0, 1, 3])
def test_tasks_the_pool_did_not_start_are_run_by_the_inserting_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, every: int, ahead: int
) -> None:
    monkeypatch.setattr(blobstore, "WINDOW_BYTES", CHUNK)  # many windows in flight
    monkeypatch.setattr(blobstore, "HASH_AHEAD", ahead)
    params = _model()
    with mvcdb.open(tmp_path / "m.db", chunk_size=CHUNK) as db:
        v1 = db.record("m", params)  # a first version: the pool as usual
        pool = _LaggingPool(every)
        db.store._write_pool = pool  # type: ignore[assignment]
        child = {**params, "w": finetune(params["w"], 4), "new": weights(11, 50_000)}
        v2 = db.record("m", child, parent=v1)  # deltas, dedup and new chunks, hashed and encoded here
        assert pool.submitted > 0
        db.store._write_pool = None
        assert db.verify().ok
        assert db.conn.execute("SELECT count(*) FROM chunks WHERE base IS NOT NULL").fetchone()[0] > 0
        for ref, expected in ((v1, params), (v2, child)):
            got = db.restore(ref)
            assert all(got[k].tobytes() == expected[k].tobytes() for k in expected)


def test_a_big_write_restores_the_page_cache_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """During a bulk write the cache is small and spills late (BULK_SPILL_KIB); after it, the
    connection's cache size and spill threshold are what they were."""
    monkeypatch.setattr(blobstore, "BULK_BYTES", CHUNK)
    pragmas = ("cache_size", "cache_spill")
    seen: list[list[int]] = []
    with mvcdb.open(tmp_path / "m.db", chunk_size=CHUNK) as db:
        before = [db.conn.execute(f"PRAGMA {p}").fetchone()[0] for p in pragmas]
        real_insert = db.store._insert

        def insert(*args: Any) -> Any:
            seen.append([db.conn.execute(f"PRAGMA {p}").fetchone()[0] for p in pragmas])
            return real_insert(*args)

        monkeypatch.setattr(db.store, "_insert", insert)
        db.record("m", {"w": weights(0, 200_000)})
        after = [db.conn.execute(f"PRAGMA {p}").fetchone()[0] for p in pragmas]
        page = db.conn.execute("PRAGMA page_size").fetchone()[0]
    spill = blobstore._spill_pages(page)
    assert spill > 1 and seen and all(s == [-blobstore.BULK_CACHE_KIB, spill] for s in seen)
    assert after == before


@pytest.mark.parametrize("page_size", [1024, 4096, 8192, 16384, 65536])
def test_the_spill_size_never_reads_as_off(page_size: int) -> None:
    conn = sqlite3.connect(":memory:")
    conn.execute(f"PRAGMA cache_spill = {blobstore._spill_pages(page_size)}")
    assert conn.execute("PRAGMA cache_spill").fetchone()[0] >= blobstore._spill_pages(page_size)


def test_a_failed_blob_write_leaves_no_chunk_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(blobstore, "BLOB_WRITE_BYTES", 16 * 1024)
    with mvcdb.open(tmp_path / "m.db", chunk_size=CHUNK) as db:
        real = db.store.conn

        class Failing:
            def __getattr__(self, name: str) -> object:
                return getattr(real, name)

            def blobopen(self, *args: object, **kwargs: object) -> object:
                if not kwargs.get("readonly"):
                    raise sqlite3.OperationalError("disk I/O error")
                return real.blobopen(*args, **kwargs)  # type: ignore[arg-type]

        db.store.conn = Failing()  # type: ignore[assignment]
        try:
            with pytest.raises(sqlite3.OperationalError):
                db.store.put(weights(0, 70_000), "<f4")
        finally:
            db.store.conn = real
        assert real.execute("SELECT count(*) FROM chunks").fetchone()[0] == 0
        stored = db.store.put(weights(0, 70_000), "<f4")  # and the same write then succeeds
        out = np.empty(stored.nbytes, dtype=np.uint8)
        db.store.read_into(list(stored.cids), out)
        assert out.tobytes() == weights(0, 70_000).tobytes()


@pytest.mark.parametrize("where", ["raw plane", "zstd plane", "delta chunk"])
def test_damaged_payload_bytes_fail_restore(tmp_path: Path, where: str) -> None:
    params = {"w": weights(0, 40_000)}
    with mvcdb.open(tmp_path / "m.db", chunk_size=CHUNK) as db:
        v1 = db.record("m", params)
        v2 = db.record("m", {"w": finetune(params["w"], 2)}, parent=v1)
        base_test = "base IS NOT NULL" if where == "delta chunk" else "base IS NULL"
        cid, data = db.conn.execute(
            f"SELECT cid, data FROM chunks WHERE {base_test} AND size = ? LIMIT 1", (CHUNK,)
        ).fetchone()
        data = bytearray(data)
        heads = [struct.unpack_from("<BI", data, cc.CHECK_BYTES + 5 * k) for k in range(4)]
        start = cc.CHECK_BYTES + 20
        wanted = 0 if where == "raw plane" else 1
        k = next(i for i, (kind, _) in enumerate(heads) if kind == wanted)
        at = start + sum(length for _, length in heads[:k]) + heads[k][1] // 2
        data[at] ^= 0x01
        db.conn.execute("UPDATE chunks SET data = ? WHERE cid = ?", (bytes(data), cid))
        with pytest.raises(IntegrityError):
            db.restore(v2 if where == "delta chunk" else v1)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")
def test_write_pool_runs_below_the_caller_and_the_read_pool_does_not(tmp_path: Path) -> None:
    with mvcdb.open(tmp_path / "m.db") as db:
        mine = os.getpriority(os.PRIO_PROCESS, 0)
        writer = db.store.write_pool.submit(os.getpriority, os.PRIO_PROCESS, 0).result()
        reader = db.store.pool.submit(os.getpriority, os.PRIO_PROCESS, 0).result()
        assert writer == min(19, mine + blobstore.POOL_NICE)
        assert reader == mine
        assert os.getpriority(os.PRIO_PROCESS, 0) == mine  # the calling thread is left alone

"""The fast storage paths: checked codecs (a seeded XXH3 check instead of re-hashing on restore),
older unchecked chunks and piecewise blob reads (the WAL checkpoint: test_checkpointer.py)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from storage_helpers import finetune, same_bits, weights

import mvcdb
from mvcdb import blobstore
from mvcdb import chunkcodec as cc
from mvcdb.errors import DecodeError, IntegrityError

CHUNK = 64 * 1024


def _model() -> dict[str, np.ndarray]:
    """Tensors that take every plain codec: planes (floats), raw (random bytes), zstd (zeros)."""
    rng = np.random.default_rng(5)
    return {
        "w": weights(0),
        "noise": rng.integers(0, 256, 70_000, dtype=np.uint8),
        "zeros": np.zeros(50_000, dtype=np.uint8),
        "f64": rng.standard_normal(9_000),
    }


def _codecs(db: mvcdb.Database) -> set[int]:
    return {int(r[0]) for r in db.conn.execute("SELECT DISTINCT codec FROM chunks")}


# -- the codec layer --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["planes", "raw", "zstd", "delta", "rows", "tiny"])
def test_checked_encodings_roundtrip_and_verify_their_check(kind: str) -> None:
    w = weights(1, 4096)
    raw = {
        "planes": w.view(np.uint8),
        "raw": np.random.default_rng(2).integers(0, 256, 5000, dtype=np.uint8),
        "zstd": np.zeros(5000, dtype=np.uint8),
        "delta": finetune(w, 3).view(np.uint8),
        "rows": np.repeat(w[None, :64], 64, axis=0).reshape(-1).view(np.uint8),
        "tiny": np.arange(10, dtype=np.uint8),
    }[kind]
    key = hashlib.sha256(raw.data).digest()
    view = memoryview(raw.data)
    check = cc.checksum(view, key)
    base = w.view(np.uint8) if kind == "delta" else None
    if kind == "delta":
        enc = cc.encode_delta(view, w.view(np.uint8), 4, check)
    elif kind == "rows":
        enc = cc.encode_rows(view, 4, 256, check)
    else:
        enc = cc.encode(view, 1 if kind in ("raw", "zstd", "tiny") else 4, check)
    assert enc is not None
    assert cc.base_codec(enc.codec) == enc.codec - cc.CHECKED  # always a checked codec
    expected_codec = {
        "planes": cc.PLANES,
        "raw": cc.RAW,
        "zstd": cc.ZSTD,
        "delta": cc.DELTA,
        "rows": cc.ROWDELTA,
        "tiny": cc.RAW,
    }[kind]
    assert cc.base_codec(enc.codec) == expected_codec
    payload = bytes(enc.payload)
    out = np.empty(len(raw), dtype=np.uint8)
    assert cc.decode_into(
        enc.codec, enc.itemsize, payload, len(raw), out, base=base, stride=enc.stride, key=key
    )
    assert out.tobytes() == raw.tobytes()
    # without a key the check is not judged: the caller must hash (and is told so)
    assert not cc.decode_into(enc.codec, enc.itemsize, payload, len(raw), out, base=base, stride=enc.stride)
    other_key = hashlib.sha256(b"another chunk").digest()
    with pytest.raises(DecodeError, match="check"):
        cc.decode_into(
            enc.codec, enc.itemsize, payload, len(raw), out, base=base, stride=enc.stride, key=other_key
        )
    damaged = bytearray(payload)
    damaged[-1] ^= 0x01
    with pytest.raises(DecodeError):
        cc.decode_into(
            enc.codec, enc.itemsize, bytes(damaged), len(raw), out, base=base, stride=enc.stride, key=key
        )


def test_checked_payload_shorter_than_its_check_is_refused() -> None:
    out = np.empty(4, dtype=np.uint8)
    for payload in (b"", b"\x01\x02\x03"):
        with pytest.raises(DecodeError):
            cc.decode_into(cc.CHECKED + cc.RAW, 1, payload, 4, out, key=b"\x00" * 32)


def test_piecewise_reads_keep_every_codec_bit_identical(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Raw planes and raw chunks are read from the blob in READ_PIECE pieces: an odd piece size
    that splits planes, rows and elements anywhere must not change a bit."""
    monkeypatch.setattr(cc, "READ_PIECE", 777)
    params = _model()
    with mvcdb.open(tmp_path / "m.db", chunk_size=CHUNK) as db:
        v1 = db.record("m", params)
        child = {**params, "w": finetune(params["w"], 4)}
        v2 = db.record("m", child, parent=v1)
        steps = np.arange(40)
        snaps = np.cumsum(np.random.default_rng(6).standard_normal((40, 500)), axis=0).astype("<f4")
        v3 = db.record("m", params, trajectory={"step": steps, "w": snaps}, parent=v2)
        assert {cc.base_codec(c) for c in _codecs(db)} >= {cc.RAW, cc.ZSTD, cc.PLANES, cc.DELTA, cc.ROWDELTA}
        for ref, expected in ((v1, params), (v2, child), (v3, params)):
            got = db.restore(ref)
            assert all(same_bits(got[k], expected[k]) for k in expected)
        assert same_bits(db.trajectory(v3)["w"], snaps)


# -- restore: checks, old chunks, damage ----------------------------------------------------------


def _uncheck_every_chunk(db: mvcdb.Database) -> None:
    """Rewrite every chunk as an older mvcdb wrote it: the same encoding without the check."""
    rows = db.conn.execute("SELECT cid, codec, data FROM chunks").fetchall()
    for cid, codec, data in rows:
        if cc.base_codec(codec) != codec:
            db.conn.execute(
                "UPDATE chunks SET codec = ?, data = ? WHERE cid = ?",
                (cc.base_codec(codec), bytes(data)[cc.CHECK_BYTES :], cid),
            )


def test_older_unchecked_chunks_restore_and_are_still_hashed(tmp_path: Path) -> None:
    params = _model()
    with mvcdb.open(tmp_path / "m.db", chunk_size=CHUNK) as db:
        v1 = db.record("m", params)
        child = {**params, "w": finetune(params["w"], 4)}
        v2 = db.record("m", child, parent=v1)
        _uncheck_every_chunk(db)
        assert max(_codecs(db)) < cc.CHECKED
        assert all(same_bits(db.restore(v1)[k], params[k]) for k in params)
        assert all(same_bits(db.restore(v2)[k], child[k]) for k in child)
        # damage a raw (uncompressed) plane byte: only the SHA-256 re-hash can notice
        cid, data = db.conn.execute(
            "SELECT cid, data FROM chunks WHERE codec = ? AND base IS NULL AND size >= 4096 LIMIT 1",
            (cc.PLANES,),
        ).fetchone()
        damaged = bytearray(data)
        damaged[30] ^= 0x01
        db.conn.execute("UPDATE chunks SET data = ? WHERE cid = ?", (bytes(damaged), cid))
        with pytest.raises(IntegrityError, match="hash"):
            db.restore(v1)


def test_a_damaged_hash_column_fails_the_check(tmp_path: Path) -> None:
    with mvcdb.open(tmp_path / "m.db", chunk_size=CHUNK) as db:
        w = weights(0)
        v = db.record("m", {"w": w})
        cid, digest = db.conn.execute("SELECT cid, hash FROM chunks ORDER BY cid LIMIT 1").fetchone()
        bad = bytearray(digest)
        bad[25] ^= 0x10  # beyond the first 8 bytes: the whole hash seeds the check
        db.conn.execute("UPDATE chunks SET hash = ? WHERE cid = ?", (bytes(bad), cid))
        with pytest.raises(IntegrityError, match="hash"):
            db.restore(v)
        assert not db.verify().ok


def test_a_payload_stored_under_another_chunks_hash_is_caught(tmp_path: Path) -> None:
    with mvcdb.open(tmp_path / "m.db", chunk_size=CHUNK) as db:
        v = db.record("m", {"a": weights(0, 16_384), "b": weights(1, 16_384)})
        (ca, da), (cb, dbytes) = db.conn.execute(
            "SELECT cid, data FROM chunks ORDER BY cid LIMIT 2"
        ).fetchall()
        db.conn.execute("UPDATE chunks SET data = ? WHERE cid = ?", (bytes(dbytes), ca))
        db.conn.execute("UPDATE chunks SET data = ? WHERE cid = ?", (bytes(da), cb))
        with pytest.raises(IntegrityError):
            db.restore(v)


def test_read_into_full_verify_rehashes_checked_chunks(tmp_path: Path) -> None:
    """verify and merge read with FULL: SHA-256 as well as the check."""
    with mvcdb.open(tmp_path / "m.db", chunk_size=CHUNK) as db:
        w = weights(0, 16_384)
        db.record("m", {"w": w})
        cid = db.conn.execute("SELECT cid FROM chunks").fetchone()[0]
        out = np.empty(w.nbytes, dtype=np.uint8)
        db.store.read_into([cid], out)
        assert out.tobytes() == w.tobytes()
        db.store.read_into([cid], out, verify=blobstore.CHECK)
        assert out.tobytes() == w.tobytes()
        with pytest.raises(ValueError):
            db.store.read_many([([cid], out)], verify="none")


def test_without_check_gives_the_plain_codec_remotes_store() -> None:
    raw = weights(3, 4096).view(np.uint8)
    key = hashlib.sha256(raw.data).digest()
    enc = cc.encode(memoryview(raw.data), 4, cc.checksum(raw, key))
    codec, payload = cc.without_check(enc.codec, bytes(enc.payload))
    assert codec == cc.PLANES
    out = np.empty(len(raw), dtype=np.uint8)
    assert not cc.decode_into(codec, enc.itemsize, payload, len(raw), out, key=key)  # nothing to check
    assert hashlib.sha256(out.data).digest() == key
    assert cc.without_check(codec, payload) == (codec, payload)


class _NoBlobAPI:
    """A connection as Python 3.10 offers it: no incremental blob API."""

    def __init__(self, conn: object) -> None:
        self._conn = conn

    def __getattr__(self, name: str) -> object:
        if name == "blobopen":
            raise AttributeError(name)
        return getattr(self._conn, name)


def test_restore_without_the_blob_api_reads_payloads_with_select(tmp_path: Path) -> None:
    params = _model()
    with mvcdb.open(tmp_path / "m.db", chunk_size=CHUNK) as db:
        v1 = db.record("m", params)
        child = {**params, "w": finetune(params["w"], 4)}
        v2 = db.record("m", child, parent=v1)
        real = db.store.conn
        db.store.conn = _NoBlobAPI(real)  # type: ignore[assignment]
        try:
            assert all(same_bits(db.restore(v2)[k], child[k]) for k in child)
            cid = real.execute("SELECT cid FROM chunks WHERE base IS NULL ORDER BY cid LIMIT 1").fetchone()[0]
            real.execute("UPDATE chunks SET data = zeroblob(length(data)) WHERE cid = ?", (cid,))
            with pytest.raises(IntegrityError):
                db.restore(v1)
        finally:
            db.store.conn = real

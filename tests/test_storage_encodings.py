"""Storage paths through the public API: dedup, deltas against the parent, chain depth bound,
trajectory row deltas, stub chunks, and damage detection on every path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from storage_helpers import finetune, same_bits, weights

import mvcdb
from mvcdb import blobstore
from mvcdb import chunkcodec as cc
from mvcdb.errors import IntegrityError, MvcdbError

CHUNK = 64 * 1024  # small chunks: several per tensor, fast tests


def _open(tmp_path: Path) -> mvcdb.Database:
    return mvcdb.open(tmp_path / "m.db", chunk_size=CHUNK)


def _chunks_of(db: mvcdb.Database, ref: str, name: str, kind: str = "param") -> list[tuple[int, ...]]:
    vid = db._vid(ref)
    rows = db.conn.execute(
        "SELECT c.codec, c.base, c.depth, c.size, length(c.data) FROM tensor_chunks t"
        " JOIN chunks c ON c.cid = t.cid WHERE t.vid = ? AND t.kind = ? AND t.name = ? ORDER BY t.seq",
        (vid, kind, name),
    ).fetchall()
    return [(cc.base_codec(codec), *rest) for codec, *rest in rows]  # checked or not: same encoding


def _stored_bytes(db: mvcdb.Database) -> int:
    return int(db.conn.execute("SELECT coalesce(sum(length(data)), 0) FROM chunks").fetchone()[0])


def test_finetuned_child_is_delta_encoded_and_restores_bit_identical(tmp_path: Path) -> None:
    with _open(tmp_path) as db:
        parent = {"w": weights(0), "b": weights(1, 4000)}
        v1 = db.record("m", parent)
        before = _stored_bytes(db)
        child = {k: finetune(w, 10 + i) for i, (k, w) in enumerate(parent.items())}
        v2 = db.record("m", child, parent=v1)
        added = _stored_bytes(db) - before
        raw = sum(w.nbytes for w in child.values())
        assert added <= 0.6 * raw
        assert {c[0] for c in _chunks_of(db, v2.id, "w")} == {cc.DELTA}
        assert all(c[2] == 1 for c in _chunks_of(db, v2.id, "w"))
        restored = db.restore(v2)
        assert all(same_bits(restored[k], child[k]) for k in child)
        assert all(same_bits(db.restore(v1)[k], parent[k]) for k in parent)


def test_a_tensor_after_tiny_ones_is_still_delta_encoded(tmp_path: Path) -> None:
    with _open(tmp_path) as db:  # the parent's chunks are looked up at the first big tensor
        v1 = db.record("m", {"a": np.float32(1), "b": np.ones(3), "w": weights(0)})
        v2 = db.record("m", {"a": np.float32(2), "b": np.ones(3), "w": finetune(weights(0), 1)}, parent=v1)
        assert {c[0] for c in _chunks_of(db, v2.id, "w")} == {cc.DELTA}
        assert same_bits(db.restore(v2)["w"], finetune(weights(0), 1))


def test_delta_only_when_smaller(tmp_path: Path) -> None:
    with _open(tmp_path) as db:
        v1 = db.record("m", {"w": weights(0)})
        # an unrelated tensor of the same shape: the delta would be larger than planes+zstd
        v2 = db.record("m", {"w": weights(99)}, parent=v1)
        assert {c[0] for c in _chunks_of(db, v2.id, "w")} == {cc.PLANES}
        assert all(c[1] is None and c[2] == 0 for c in _chunks_of(db, v2.id, "w"))
        # a constant tensor: plain compression beats any delta against random weights
        v3 = db.record("m", {"w": np.full(60_000, 0.5, dtype="<f4")}, parent=v2)
        assert {c[0] for c in _chunks_of(db, v3.id, "w")} != {cc.DELTA}
        assert same_bits(db.restore(v3)["w"], np.full(60_000, 0.5, dtype="<f4"))


def test_delta_needs_same_name_dtype_and_shape(tmp_path: Path) -> None:
    with _open(tmp_path) as db:
        w = weights(0)
        v1 = db.record("m", {"w": w})
        v2 = db.record("m", {"w": finetune(w, 1).reshape(300, 200)}, parent=v1)  # other shape
        assert cc.DELTA not in {c[0] for c in _chunks_of(db, v2.id, "w")}
        v3 = db.record("m", {"x": finetune(w, 2)}, parent=v1)  # other name
        assert cc.DELTA not in {c[0] for c in _chunks_of(db, v3.id, "x")}


def test_delta_chain_depth_is_bounded_and_every_link_restores(tmp_path: Path) -> None:
    bound = blobstore.MAX_DELTA_DEPTH
    with _open(tmp_path) as db:
        w = weights(0)
        history = [(db.record("m", {"w": w}), w)]
        for step in range(2 * bound + 2):
            w = finetune(w, 100 + step)
            history.append((db.record("m", {"w": w}, parent=history[-1][0]), w))
        depths = [_chunks_of(db, v.id, "w")[0][2] for v, _ in history]
        assert max(depths) == bound
        # after the bound the next version is a new chain head, stored full
        assert depths[: bound + 2] == list(range(bound + 1)) + [0]
        for v, expected in history:
            assert same_bits(db.restore(v)["w"], expected)
        for v, _ in history:  # read_chunk decodes delta chunks too (verify and merge use it)
            for (cid,) in db.conn.execute(
                "SELECT cid FROM tensor_chunks WHERE vid = ? ORDER BY seq", (db._vid(v.id),)
            ):
                assert len(db.store.read_chunk(cid)) > 0


def test_unchanged_tensor_costs_nothing(tmp_path: Path) -> None:
    with _open(tmp_path) as db:
        frozen = weights(0)
        v1 = db.record("m", {"frozen": frozen, "head": weights(1, 1000)})
        before = _stored_bytes(db)
        chunks_before = db.conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
        v2 = db.record("m", {"frozen": frozen.copy(), "head": weights(2, 1000)}, parent=v1)
        assert _chunks_of(db, v1.id, "frozen") == _chunks_of(db, v2.id, "frozen")
        new_chunks = db.conn.execute("SELECT count(*) FROM chunks").fetchone()[0] - chunks_before
        assert new_chunks == 1  # only the head's single chunk
        assert _stored_bytes(db) - before <= 4000


def test_trajectory_snapshots_use_row_deltas(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    snapshots = np.cumsum(rng.standard_normal((200, 16, 16)) * 1e-4, axis=0) + 1.0
    loss = np.exp(-np.arange(200) / 50.0)
    with _open(tmp_path) as db:
        with db.run("m") as run:
            for step in range(200):
                run.log(step, loss=loss[step], w=snapshots[step])
        v = run.version
        assert v is not None
        codecs = {c[0] for c in _chunks_of(db, v.id, "w", kind="traj")}
        assert cc.ROWDELTA in codecs
        steps_codecs = {c[0] for c in _chunks_of(db, v.id, "step", kind="traj")}
        assert steps_codecs == {cc.ROWDELTA}  # 0, 1, 2 ... compresses to almost nothing
        traj = db.trajectory(v)
        assert same_bits(traj["w"], snapshots)
        assert same_bits(traj["loss"], loss)
        assert same_bits(traj["step"], np.arange(200, dtype=np.int64))


def test_large_model_many_chunks_roundtrip_every_dtype(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    params = {
        "f4": weights(3, 200_000),
        "f8": rng.standard_normal(50_000),
        "f2": rng.standard_normal(70_000).astype("<f2"),
        "be": rng.standard_normal(40_000).astype(">f4"),
        "c8": (rng.standard_normal(30_000) + 1j * rng.standard_normal(30_000)).astype("<c8"),
        "i8": rng.integers(-(2**62), 2**62, 30_000),
        "u1": rng.integers(0, 256, 100_000, dtype=np.uint8),
        "b1": rng.integers(0, 2, 50_000).astype(bool),
        "nan": np.array([np.nan, -0.0, 0.0, np.inf], dtype="<f4").view("<u4").__or__(1).view("<f4"),
    }
    with _open(tmp_path) as db:
        v1 = db.record("m", params)
        child = {k: (a.copy() if a.dtype.kind in "biuc" else finetune(a, 1)) for k, a in params.items()}
        child["i8"][::3] += 1
        v2 = db.record("m", child, parent=v1)
        for ref, expected in ((v1, params), (v2, child)):
            got = db.restore(ref)
            assert all(same_bits(got[k], expected[k]) for k in expected), ref


def test_damaged_delta_chunk_and_damaged_base_are_caught(tmp_path: Path) -> None:
    with _open(tmp_path) as db:
        w = weights(0)
        v1 = db.record("m", {"w": w})
        v2 = db.record("m", {"w": finetune(w, 1)}, parent=v1)
        base_cid = db.conn.execute(
            "SELECT base FROM chunks WHERE base IS NOT NULL ORDER BY cid LIMIT 1"
        ).fetchone()[0]
        data = bytearray(db.conn.execute("SELECT data FROM chunks WHERE cid = ?", (base_cid,)).fetchone()[0])
        data[len(data) // 2] ^= 0xFF
        db.conn.execute("UPDATE chunks SET data = ? WHERE cid = ?", (bytes(data), base_cid))
        with pytest.raises(IntegrityError):
            db.restore(v2)
        with pytest.raises(IntegrityError):
            db.restore(v1)


def test_stub_chunks_need_the_fetch_hook(tmp_path: Path) -> None:
    with _open(tmp_path) as db:
        w = weights(0)
        v1 = db.record("m", {"w": w})
        cids = [r[0] for r in db.conn.execute("SELECT cid FROM chunks")]
        saved = {
            cid: db.conn.execute("SELECT codec, itemsize, data FROM chunks WHERE cid = ?", (cid,)).fetchone()
            for cid in cids
        }
        db.conn.execute("UPDATE chunks SET codec = 15, data = x'' WHERE cid = ?", (cids[0],))
        with pytest.raises(MvcdbError, match="not fetched"):
            db.restore(v1)
        calls: list[list[int]] = []

        def fetch(stubs: list[int]) -> None:
            calls.append(stubs)
            for cid in stubs:
                codec, itemsize, data = saved[cid]
                db.conn.execute(
                    "UPDATE chunks SET codec = ?, itemsize = ?, data = ? WHERE cid = ?",
                    (codec, itemsize, data, cid),
                )

        db.store.fetch_missing = fetch
        assert same_bits(db.restore(v1)["w"], w)
        assert calls == [[cids[0]]]


def test_store_chunks_and_read_chunk_roundtrip(tmp_path: Path) -> None:
    import hashlib

    with _open(tmp_path) as db:
        pieces = [memoryview(weights(i, 5000).tobytes()) for i in range(3)] + [memoryview(b"\x00" * 7)]
        hashes = [hashlib.sha256(p).digest() for p in pieces]
        cids = db.store.store_chunks(pieces, hashes, 4)
        assert len(set(cids)) == 4
        assert db.store.store_chunks(pieces, hashes, 4) == cids  # idempotent
        for cid, piece in zip(cids, pieces, strict=True):
            assert db.store.read_chunk(cid) == bytes(piece)


def test_run_log_fast_path_keeps_sparse_series_exact(tmp_path: Path) -> None:
    """run.log's fast path (same names every call) hands over correctly when names change."""
    with _open(tmp_path) as db:
        with db.run("m") as run:
            for i in range(10):
                run.log(i, a=i, b=2.0 * i)
            run.log(10, a=1)  # b missing: b becomes sparse
            for i in range(11, 15):
                run.log(i, a=i, b=float(i))
            run.log(15, b=3.0, a=3)  # other order
            run.log(16, c=1.0, a=2, b=1.0)  # a new series
            for i in range(17, 20):
                run.log(i, a=i, b=float(i), c=0.5)
        v = run.version
        assert v is not None
        traj = db.trajectory(v)
        assert traj["a"].tolist() == [*range(10), 1, 11, 12, 13, 14, 3, 2, 17, 18, 19]
        b = traj["b"]
        assert np.isnan(b[10]) and b[15] == 3.0 and b[16] == 1.0 and b[19] == 19.0
        steps_b, values_b = db.series(v, "b")
        assert 10 not in steps_b.tolist() and len(values_b) == 19
        steps_c, values_c = db.series(v, "c")
        assert steps_c.tolist() == [16, 17, 18, 19] and values_c.tolist() == [1.0, 0.5, 0.5, 0.5]

"""Content-addressed storage: shared tensors cost their bytes once, measured on disk."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np

import mvcdb


def used_bytes(path: Path) -> int:
    """Bytes the database really occupies (pages in use), after a checkpoint."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page_size, pages, free = (
            conn.execute(f"PRAGMA {p}").fetchone()[0] for p in ("page_size", "page_count", "freelist_count")
        )
    finally:
        conn.close()
    return int(page_size * (pages - free))


def test_second_version_sharing_a_big_tensor_adds_almost_nothing(tmp_path: Path) -> None:
    path = tmp_path / "dedup.db"
    rng = np.random.default_rng(0)
    frozen = rng.standard_normal(5_000_000).astype(np.float32)  # 20 MB, incompressible-ish
    with mvcdb.open(path) as db:
        empty = used_bytes(path)
        v1 = db.record("net", {"frozen": frozen, "head": rng.standard_normal(100)})
        after_first = used_bytes(path)
        v2 = db.record("net", {"frozen": frozen, "head": rng.standard_normal(100)}, parent=v1)
        after_second = used_bytes(path)
        assert after_first - empty > 0.8 * frozen.nbytes * 0.8  # compression may save a little
        assert after_second - after_first < 300_000, after_second - after_first
        t1 = {t.name: t for t in db.tensors(v1.id)}
        t2 = {t.name: t for t in db.tensors(v2.id)}
        assert t1["frozen"].digest == t2["frozen"].digest
        assert t1["head"].digest != t2["head"].digest
        assert np.array_equal(db.restore(v2.id)["frozen"], frozen)


def test_identical_chunks_inside_one_tensor_are_stored_once(tmp_path: Path) -> None:
    with mvcdb.open(tmp_path / "z.db", chunk_size=64 * 1024) as db:
        db.record("m", {"zeros": np.zeros(1_000_000, dtype=np.float64)})  # 8 MB of zeros
        chunks = db.conn.execute("SELECT count(*), sum(length(data)) FROM chunks").fetchone()
        refs = db.conn.execute("SELECT count(*) FROM tensor_chunks").fetchone()[0]
    assert refs == 8_000_000 // (64 * 1024) + 1
    assert chunks[0] == 2  # one full zero chunk, one shorter tail chunk
    assert chunks[1] < 10_000


def test_compressible_floats_take_less_than_raw(tmp_path: Path) -> None:
    w = np.round(np.random.default_rng(1).standard_normal(2_000_000), 2).astype(np.float32)
    with mvcdb.open(tmp_path / "c.db") as db:
        v = db.record("m", {"w": w})
        stored = db.conn.execute("SELECT sum(length(data)) FROM chunks").fetchone()[0]
        assert stored < 0.9 * w.nbytes
        assert db.restore(v.id)["w"].tobytes() == w.tobytes()


def test_damaged_chunk_is_detected_on_restore(db: mvcdb.Database) -> None:
    w = np.arange(100_000, dtype=np.int64)
    v = db.record("m", {"w": w})
    db.conn.execute("UPDATE chunks SET data = zeroblob(length(data)), codec = 0")
    try:
        db.restore(v.id)
    except mvcdb.IntegrityError as exc:
        assert "chunk" in str(exc)
    else:
        raise AssertionError("a damaged chunk was restored silently")


def test_record_stores_its_chunks_again_when_a_gc_took_them(db: mvcdb.Database, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A large record writes chunks before its rows; a gc in between must not lose the version."""
    import mvcdb.database as database_module

    w = np.random.default_rng(2).standard_normal(400_000)  # 3.2 MB: the chunks-first path
    real_author = database_module.current_author
    calls = []

    def gc_between() -> str:  # runs after the chunk transactions, before the rows' transaction
        calls.append(1)
        if len(calls) == 1:
            db.conn.execute("DELETE FROM chunks WHERE cid NOT IN (SELECT cid FROM tensor_chunks)")
            assert db.conn.execute("SELECT count(*) FROM chunks").fetchone()[0] == 0
        return real_author()

    monkeypatch.setattr(database_module, "current_author", gc_between)
    v = db.record("m", {"w": w})
    assert len(calls) == 2  # stored twice, recorded once
    assert db.restore(v.id)["w"].tobytes() == w.tobytes()
    assert db.verify().ok

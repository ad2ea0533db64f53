"""Tiny tensors kept in their `tensors` row (mvcdb/inline.py): stored, read, checked and copied
exactly like chunked ones, and a version's id does not depend on which way its tensors are kept."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import numpy as np
import pytest

import mvcdb
from mvcdb import inline
from mvcdb.blobstore import one_chunk_digest, tensor_digest

TINY = {
    "f64": np.float64(0.5),
    "f32": np.arange(10, dtype=np.float32),
    "big_endian": np.arange(4, dtype=">i4"),
    "bool": np.array([True, False, True]),
    "complex": np.array([1 + 2j, -0.0 - 1j]),
    "f16_2d": np.arange(6, dtype=np.float16).reshape(2, 3),
    "nan": np.array([np.nan, -np.inf, np.inf]),
    "at_limit": np.arange(inline.INLINE_TENSOR_BYTES // 8, dtype=np.float64),
    "over_limit": np.arange(inline.INLINE_TENSOR_BYTES // 8 + 1, dtype=np.float64),
    "empty": np.zeros((0, 3)),
}


def _in_row(db: mvcdb.Database, version: mvcdb.Version) -> dict[str, bool]:
    return {
        name: data is not None
        for name, data in db.conn.execute(
            "SELECT t.name, t.data FROM tensors t JOIN versions v ON v.vid = t.vid WHERE v.id = ?",
            (version.id,),
        )
    }


def test_tiny_tensors_round_trip_bit_identically_from_their_rows(tmp_path: Path) -> None:
    with mvcdb.open(tmp_path / "t.db") as db:
        v = db.record("m", TINY)
        stored = _in_row(db, v)
        assert not stored["over_limit"] and not stored["empty"]
        assert all(stored[n] for n in TINY if n not in ("over_limit", "empty"))
        got = db.restore(v.id)
        for name, arr in TINY.items():
            assert got[name].dtype == np.asarray(arr).dtype and got[name].shape == np.shape(arr)
            assert got[name].tobytes() == np.asarray(arr).tobytes(), name
        assert db.restore(v.id, names=["f32"])["f32"].tobytes() == TINY["f32"].tobytes()
        assert db.verify().ok


def test_the_manifest_names_the_same_chunk_hash_either_way(tmp_path: Path) -> None:
    arr = np.arange(10, dtype=np.float32)
    with mvcdb.open(tmp_path / "t.db") as db:
        v = db.record("m", {"w": arr})
        (digest,) = db.conn.execute("SELECT digest FROM tensors").fetchone()
    assert digest == tensor_digest("<f4", [10], [hashlib.sha256(arr.tobytes()).digest()])
    (info,) = mvcdb.open(tmp_path / "t.db", readonly=True).tensors(v.id)
    assert info.digest == digest


def test_a_tiny_trajectory_series_and_a_run_use_rows_too(tmp_path: Path) -> None:
    with mvcdb.open(tmp_path / "t.db") as db:
        with db.run("m") as run:
            for step in range(3):
                run.log(step, loss=1.0 / (step + 1))
            v = run.commit(params={"w": np.ones(2)})
        assert all(_in_row(db, v).values())
        assert np.array_equal(db.trajectory(v.id)["loss"], [1.0, 0.5, 1 / 3])
        assert db.series(v.id, "loss")[0].tolist() == [0, 1, 2]


def _damage(path: Path, name: str) -> None:
    conn = sqlite3.connect(path)
    (data,) = conn.execute("SELECT data FROM tensors WHERE name = ?", (name,)).fetchone()
    bad = bytes([data[0] ^ 0x40]) + bytes(data[1:])
    conn.execute("UPDATE tensors SET data = ? WHERE name = ?", (bad, name))
    conn.commit()
    conn.close()


def test_damaged_row_bytes_are_caught_by_restore_diff_and_verify(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    with mvcdb.open(path) as db:
        a = db.record("m", {"w": np.arange(5.0), "ok": np.ones(2)})
        b = db.record("m", {"w": np.arange(5.0) + 1, "ok": np.ones(2)}, parent=a)
    _damage(path, "w")
    with mvcdb.open(path) as db:
        with pytest.raises(mvcdb.IntegrityError, match="damaged"):
            db.restore(a.id)
        assert db.restore(a.id, names=["ok"])["ok"].tolist() == [1.0, 1.0]  # the rest still reads
        with pytest.raises(mvcdb.IntegrityError):
            db.diff(a.id, b.id)
        report = db.verify()
        assert not report.ok
        assert any("'w'" in p.detail for p in report.problems)


def test_merge_copies_row_tensors_as_chunks_and_refuses_damaged_ones(tmp_path: Path) -> None:
    src, dst, bad = tmp_path / "src.db", tmp_path / "dst.db", tmp_path / "bad.db"
    with mvcdb.open(src) as db:
        v = db.record("m", {"w": np.arange(5.0), "big": np.arange(1000.0)}, metrics={"loss": 1.0})
    bad.write_bytes(src.read_bytes())
    _damage(bad, "w")
    with mvcdb.open(dst) as db:
        with pytest.raises(mvcdb.MvcdbError, match="damaged"):
            db.merge(bad)
        assert db.versions() == [] and db.conn.execute("SELECT count(*) FROM chunks").fetchone()[0] == 0
        report = db.merge(src)
        assert report.versions_added == [v.id]
        assert db.restore(v.id)["w"].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
        assert db.verify().ok
        assert db.get(v.id) == v


def test_an_older_file_opened_read_only_reads_without_the_row_column(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with mvcdb.open(path) as db:
        v = db.record("m", {"big": np.arange(100.0)})
    conn = sqlite3.connect(path)
    conn.execute("ALTER TABLE tensors DROP COLUMN data")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    with mvcdb.open(path, readonly=True) as db:
        assert np.array_equal(db.restore(v.id)["big"], np.arange(100.0))
        assert db.verify().ok
        assert db.diff(v.id, v.id).params[0].status == "identical"


@pytest.mark.parametrize("dtype", ["<f4", ">i2", "|b1", "bfloat16", "<c16"])
@pytest.mark.parametrize(
    "shape", [(), (1,), (10,), (0, 3), (127, 128), (255, 256, 65535, 65536), (2**32, 2**40)]
)
def test_the_row_digest_shortcut_equals_tensor_digest(dtype: str, shape: tuple[int, ...]) -> None:
    chunk = hashlib.sha256(repr((dtype, shape)).encode()).digest()
    for _ in range(2):  # packed once, then cached: the same digest either way
        assert one_chunk_digest(dtype, shape, chunk) == tensor_digest(dtype, shape, [chunk])


def test_every_row_holds_the_digest_of_its_dtype_shape_and_bytes(tmp_path: Path) -> None:
    with mvcdb.open(tmp_path / "t.db") as db:
        db.record("m", TINY)
        rows = db.conn.execute("SELECT dtype, shape, digest, data FROM tensors WHERE data IS NOT NULL")
        checked = 0
        for dtype, shape, digest, data in rows:
            dims = tuple(int(d) for d in shape.strip("[]").split(",") if d.strip())
            assert digest == tensor_digest(dtype, dims, [hashlib.sha256(data).digest()]), (dtype, shape)
            checked += 1
        assert checked == len(TINY) - 2  # all but over_limit and empty

"""The small-record fast paths give exactly what the general paths give, and old files migrate.

record() no longer reads its version back, packs the manifest without the generic canonical walk,
and resolves Version/full-id parents with one lookup; each shortcut is held to the slow path here.
"""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import mvcdb
from mvcdb import manifest, schema, serial
from mvcdb.manifest import ManifestTensor
from mvcdb.tensors import shape_json


def test_returned_version_equals_what_get_loads(tmp_path: Path) -> None:
    with mvcdb.open(tmp_path / "m.db") as db:
        root = db.record("m", {"w": np.arange(3.0)}, metrics={"loss": float("nan"), "acc": 0.5})
        child = db.record(
            "m",
            {"w": np.arange(3.0) + 1, "b": np.float32(2)},
            metrics={"z": 1.0, "a": -2.0},
            metadata={"lr": 0.1, "data": {"train": "a.csv"}, "tags": ["x", "y"]},
            parent=root,
            message="fine-tune",
            tags=["best", "alpha", "best"],
        )
        merged = db.record("m", {"w": np.zeros(2)}, parents=[child.id, root.id[:8]])
        for version in (root, child, merged):
            loaded = db.get(version.id)
            for field in ("id", "model", "parents", "message", "author", "created_at", "tags"):
                assert getattr(version, field) == getattr(loaded, field), field
            assert version.metadata == loaded.metadata
            assert version.params_bytes == loaded.params_bytes
            assert list(version.metrics) == list(loaded.metrics)
            assert np.array_equal(
                list(version.metrics.values()), list(loaded.metrics.values()), equal_nan=True
            )
        assert child.tags == ("alpha", "best")
        assert merged.parents == (child.id, root.id)


def test_returned_version_is_built_as_get_builds_it(tmp_path: Path) -> None:
    import copy
    import pickle

    with mvcdb.open(tmp_path / "m.db") as db:
        meta = {"lr": 0.1, "data": {"train": "a.csv"}, "ids": (1, 2), "arr": np.arange(2)}
        version = db.record("m", {"w": np.ones(3)}, metrics={"b": 1.0, "a": 2.0}, metadata=meta)
        loaded = db.get(version.id)
        for v in (version, pickle.loads(pickle.dumps(version)), copy.copy(version)):
            assert v == loaded and repr(v) == repr(loaded) and str(v) == str(loaded)
            assert v.to_dict() == loaded.to_dict() and hash(v) == hash(loaded)
        assert version.metadata == {"lr": 0.1, "data": {"train": "a.csv"}, "ids": [1, 2], "arr": [0, 1]}
        assert version.metadata is version.metadata  # parsed once
        assert version.created_at.tzinfo is not None and list(version.metrics) == ["a", "b"]
        empty = db.record("m", {"w": np.ones(4)})
        assert empty.metadata == {} and empty.metadata is not db.record("m", {"w": np.ones(5)}).metadata


def test_recording_the_same_content_twice_returns_the_stored_version(tmp_path: Path) -> None:
    with mvcdb.open(tmp_path / "m.db") as db:
        first = db.record("m", {"w": np.ones(2)}, tags=["t1"])
        # the same id again (as a second record of identical content would produce)
        row = db.conn.execute("SELECT manifest FROM versions WHERE id = ?", (first.id,)).fetchone()
        vid, new = mvcdb.recording.insert_version(
            db.conn,
            vid_of_parents=[],
            version_id_=first.id,
            manifest=row[0],
            model="m",
            message="",
            author=first.author,
            created_at="2020-01-01T00:00:00.000000Z",
            metadata="{}",
            metrics={},
            tensors={},
        )
        assert not new
        assert db.conn.execute("SELECT count(*) FROM versions").fetchone()[0] == 1
        assert db.get(first.id).tags == ("t1",)
        assert vid == db.conn.execute("SELECT vid FROM versions").fetchone()[0]


def test_unknown_or_short_parent_refs_still_resolve_or_fail_clearly(tmp_path: Path) -> None:
    with mvcdb.open(tmp_path / "m.db") as db:
        root = db.record("m", {"w": np.ones(1)})
        db.tag(root, "base")
        assert db.record("m", {"w": np.ones(2)}, parent="base").parent == root.id
        assert db.record("m", {"w": np.ones(3)}, parent=root.id.upper()).parent == root.id
        with pytest.raises(mvcdb.RefError):
            db.record("m", {"w": np.ones(4)}, parent="f" * 64)


@pytest.mark.parametrize("metrics", [{}, {"b": 1.5, "a": float("inf")}])
def test_manifest_bytes_equal_the_generic_canonical_packing(metrics: dict[str, float]) -> None:
    tensors = [
        ManifestTensor("traj", "loss", "<f8", (5,), 40, (b"\x01" * 32,)),
        ManifestTensor("param", "w", ">i2", (2, 3), 12, (b"\x02" * 32, b"\x03" * 32)),
    ]
    fields = dict(
        model="m",
        parents=["a" * 64],
        message="msg",
        author="me",
        created_at="2026-01-01T00:00:00.000000Z",
        metadata='{"lr":0.1}',
        metrics=metrics,
    )
    fast = manifest.encode(**fields, tensors=tensors)  # type: ignore[arg-type]
    generic = serial.pack(
        {
            "format": manifest.FORMAT,
            **fields,
            "metrics": [[k, v] for k, v in sorted(metrics.items())],
            "tensors": [
                [t.kind, t.name, t.dtype, list(t.shape), t.nbytes, list(t.hashes)]
                for t in sorted(tensors, key=lambda t: (t.kind, t.name))
            ],
        }
    )
    assert fast == generic
    assert manifest.decode(fast).tensors[0].name == "w"


@pytest.mark.parametrize("shape", [(), (0,), (7,), (2, 3, 4)])
def test_shape_json_is_json(shape: tuple[int, ...]) -> None:
    import json

    assert shape_json(shape) == json.dumps(list(shape))


def test_schema_sql_names_the_current_version() -> None:
    header = schema.schema_sql().splitlines()[0]
    found = re.search(r"version (\d+)", header)
    assert found is not None and int(found.group(1)) == schema.SCHEMA_VERSION


def test_a_version_1_file_is_migrated_on_open_and_keeps_its_data(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with mvcdb.open(path) as db:
        v = db.record("m", {"w": np.arange(5.0), "big": np.arange(100.0)}, metrics={"loss": 0.5})
        db.conn.execute("DELETE FROM tensors WHERE data IS NOT NULL")  # version 1 knew no in-row tensors
    conn = sqlite3.connect(path)  # make it look as mvcdb 0.1 left it
    conn.execute("ALTER TABLE tensors DROP COLUMN data")
    conn.execute("CREATE INDEX tensors_digest ON tensors (digest)")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    with mvcdb.open(path, readonly=True) as db:  # read-only: readable as is, not migrated
        assert np.array_equal(db.restore(v.id, ["big"])["big"], np.arange(100.0))
        assert db.conn.execute("PRAGMA user_version").fetchone()[0] == 1
    with mvcdb.open(path) as db:
        assert db.conn.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION
        names = {r[0] for r in db.conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert "tensors_digest" not in names
        assert np.array_equal(db.restore(v.id, ["big"])["big"], np.arange(100.0))
        w = db.record("m", {"w": np.arange(3.0)}, parent=v)  # in-row tensors work once migrated
        assert np.array_equal(db.restore(w.id)["w"], np.arange(3.0))


def test_opening_a_current_file_does_not_import_sqlite_utils(tmp_path: Path) -> None:
    """sqlite_utils (~70 ms to import) is for migrations and old files: creating, writing and
    reopening a current file, as every CLI verb does, never loads it."""
    code = (
        "import sys, numpy as np, mvcdb\n"
        f"path = {str(tmp_path / 'new.db')!r}\n"
        "with mvcdb.open(path) as db:\n"
        "    db.record('m', {'w': np.arange(3.0)})\n"
        "with mvcdb.open(path) as db, mvcdb.open(path, readonly=True) as ro:\n"
        "    assert len(db.versions()) == len(ro.versions()) == 1\n"
        "print('SQLITE_UTILS=' + str('sqlite_utils' in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.rsplit("SQLITE_UTILS=", 1)[1].strip() == "False"


def test_batch_records_all_at_once_or_nothing(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    with mvcdb.open(path) as db, mvcdb.open(path, readonly=True) as reader:
        with db.batch():
            first = db.record("m", {"w": np.ones(3)}, metrics={"loss": 1.0})
            second = db.record("m", {"w": np.full(3, 2.0)}, parent=first, tags=["latest"])
            assert db.get("latest") == second  # the batch sees its own versions...
            assert reader.versions() == []  # ...nobody else does before it ends
        assert [v.id for v in reader.versions()] == [second.id, first.id]
        assert np.array_equal(reader.restore("latest")["w"], np.full(3, 2.0))

        with pytest.raises(mvcdb.MvcdbError), db.batch():
            db.record("m", {"w": np.zeros(3)})
            db.record("m", {"w": np.array(["not", "numbers"])})
        assert len(db.versions()) == 2  # the failed batch left nothing, not even its first version
        assert db.verify().ok


def test_batch_is_refused_on_a_read_only_database(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    mvcdb.open(path).close()
    with mvcdb.open(path, readonly=True) as db, pytest.raises(mvcdb.ReadOnlyError), db.batch():
        pass


def test_a_large_record_and_a_run_join_the_batch_and_roll_back_with_it(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    big = np.random.default_rng(0).standard_normal(600_000)  # 4.8 MB: the chunks-first path
    with mvcdb.open(path, chunk_size=1 << 20) as db:
        with pytest.raises(RuntimeError), db.batch():
            db.record("m", {"w": big})
            with db.run("m") as run:
                run.log(0, loss=1.0)
            raise RuntimeError("the script failed after recording")
        assert db.versions() == []
        assert db.conn.execute("SELECT count(*) FROM chunks").fetchone()[0] == 0  # no orphans either
        with db.batch():
            v = db.record("m", {"w": big})
            with db.run("m", parent=v) as run:
                run.log(0, loss=1.0)
        assert np.array_equal(db.restore(v.id)["w"], big)
        assert len(db.versions()) == 2
        assert db.verify().ok


def test_now_text_is_the_utc_isoformat_and_follows_the_second(monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import datetime, timezone

    from mvcdb import timeutil

    before = datetime.now(timezone.utc)
    text = timeutil.now_text()
    after = datetime.now(timezone.utc)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", text)
    assert before <= timeutil.parse_text(text) <= after
    # the cached date-and-time part is rebuilt when the second changes (and only the clock counts)
    for ns, expected in [
        (1_700_000_000_999_999_999, "2023-11-14T22:13:20.999999Z"),
        (1_700_000_001_000_000_000, "2023-11-14T22:13:21.000000Z"),
        (1_700_000_001_000_001_500, "2023-11-14T22:13:21.000001Z"),
        (946_684_799_000_000_000, "1999-12-31T23:59:59.000000Z"),
    ]:
        monkeypatch.setattr(timeutil.time, "time_ns", lambda ns=ns: ns)
        assert timeutil.now_text() == expected
        assert (
            timeutil.now_text()
            == datetime.fromtimestamp(ns // 1000 / 1e6, timezone.utc).isoformat(timespec="microseconds")[:26]
            + "Z"
        )


@pytest.mark.parametrize(
    "metadata",
    [
        {},
        {"b": 1, "a": [1.5, None, True], "c": {"z": "é\u2028", "y": -0.0}},
        {"n": np.float32(0.25), "arr": np.arange(3), "s": {3, 1, 2}},
    ],
)
def test_metadata_json_is_sorted_compact_json(metadata: dict[str, object]) -> None:
    import json

    from mvcdb.recording import _json_default, metadata_json

    expected = json.dumps(
        metadata, sort_keys=True, separators=(",", ":"), allow_nan=False, default=_json_default
    )
    assert metadata_json(metadata) == expected

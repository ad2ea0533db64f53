"""The file itself: created on open, refused when foreign, self-contained after close."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest

import mvcdb
from mvcdb import manifest


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_open_creates_file_and_default_path_follows_env(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    with mvcdb.open() as db:
        assert db.path == Path("mvcdb.db")
    assert (tmp_path / "mvcdb.db").exists()
    monkeypatch.setenv("MVCDB_PATH", str(tmp_path / "env.db"))
    v = mvcdb.record("m", {"w": np.ones(3)})
    with mvcdb.open() as db:
        assert db.path == tmp_path / "env.db" and db.get(v.id).model == "m"


def test_close_leaves_one_self_contained_file(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    with mvcdb.open(path) as db:
        v = db.record("m", {"w": np.arange(1000.0)})
        assert Path(str(path) + "-wal").exists()
    assert not Path(str(path) + "-wal").exists() or os.path.getsize(str(path) + "-wal") == 0
    copy = tmp_path / "copy.db"
    copy.write_bytes(path.read_bytes())  # only the .db travels to the teammate
    with mvcdb.open(copy, readonly=True) as db:
        np.testing.assert_array_equal(db.restore(v.id)["w"], np.arange(1000.0))


@pytest.mark.parametrize(
    "content",
    [b"hello, I am a text file\n" * 10, b"SQLite format 3\x00" + b"\x00" * 20, os.urandom(5000)],
    ids=["text", "truncated-header", "random"],
)
def test_non_sqlite_files_are_refused_and_left_untouched(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "x.db"
    path.write_bytes(content)
    before = file_digest(path)
    with pytest.raises(mvcdb.NotAnMvcdbFileError, match="not an mvcdb database"):
        mvcdb.open(path)
    assert file_digest(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.db"]


def test_sqlite_database_of_another_application_is_never_written(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO users (name) VALUES ('ada')")
    conn.commit()
    conn.close()
    before = file_digest(path)
    for readonly in (False, True):
        with pytest.raises(mvcdb.NotAnMvcdbFileError, match="another application"):
            mvcdb.open(path, readonly=readonly)
    assert file_digest(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.db"]


def test_newer_schema_is_refused_with_upgrade_hint(db_path: Path) -> None:
    mvcdb.open(db_path).close()
    conn = sqlite3.connect(db_path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(mvcdb.SchemaVersionError, match="upgrade mvcdb"):
        mvcdb.open(db_path)


def test_file_is_tagged_with_application_id_and_schema_version(db: mvcdb.Database) -> None:
    assert db.conn.execute("PRAGMA application_id").fetchone()[0] == 0x6D766364
    assert db.conn.execute("PRAGMA user_version").fetchone()[0] >= 1
    assert db.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def test_version_fields_and_content_id(db: mvcdb.Database) -> None:
    v1 = db.record(
        "linreg",
        {"m": 2.0},
        metrics={"val_mse": 0.12, "nan": float("nan"), "inf": np.inf},
        metadata={"train_set": "a.csv", "val_set": "b.csv", "hyper": {"lr": np.float32(0.5)}},
        message="first",
    )
    assert len(v1.id) == 64 and v1.short_id == v1.id[:12]
    assert v1.model == "linreg" and v1.parents == () and v1.message == "first"
    assert v1.author == "tester"
    assert v1.created_at.tzinfo is not None and v1.created_at.utcoffset().total_seconds() == 0
    assert v1.metadata == {"hyper": {"lr": 0.5}, "train_set": "a.csv", "val_set": "b.csv"}
    assert v1.metrics["val_mse"] == 0.12 and np.isnan(v1.metrics["nan"]) and v1.metrics["inf"] == np.inf
    blob = db.conn.execute("SELECT manifest FROM versions WHERE id = ?", (v1.id,)).fetchone()[0]
    assert manifest.version_id(blob) == v1.id
    decoded = manifest.decode(blob)
    assert decoded.model == "linreg" and decoded.author == "tester"
    v2 = db.record("linreg", {"m": 2.0}, parent=v1)
    assert v2.id != v1.id and v2.parents == (v1.id,)
    assert mvcdb.Version is type(v2)
    assert v2.to_dict()["parents"] == [v1.id]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"metrics": {"acc": "high"}}, "real number"),
        ({"metrics": {"acc": True}}, "real number"),
        ({"metrics": [1, 2]}, "dict"),
        ({"metadata": {"f": object()}}, "JSON"),
        ({"metadata": {"nan": float("nan")}}, "JSON"),
        ({"metadata": ["list"]}, "dict"),
        ({"message": 5}, "message"),
    ],
)
def test_bad_metrics_and_metadata_are_refused(db: mvcdb.Database, kwargs: dict, match: str) -> None:
    with pytest.raises(mvcdb.MvcdbError, match=match):
        db.record("m", {"w": 1.0}, **kwargs)
    assert db.versions() == []


@pytest.mark.parametrize("name", ["", "has space", "a~b", "a@b", "x^", "é", "a" * 201])
def test_bad_model_names_are_refused(db: mvcdb.Database, name: str) -> None:
    with pytest.raises(mvcdb.MvcdbError, match="model name"):
        db.record(name)


def test_model_names_are_checked_on_every_record(db: mvcdb.Database) -> None:
    class Name(str):
        pass

    for _ in range(2):  # record() remembers the names it accepted; that never lets a bad one in
        db.record("good")
        db.record(Name("good"))
        for bad in ("", "has space", "good ", "gööd", 5):
            with pytest.raises(mvcdb.MvcdbError, match="model name"):
                db.record(bad)  # type: ignore[arg-type]
    assert {v.model for v in db.versions()} == {"good"}


def test_author_follows_the_environment_from_one_record_to_the_next(
    db: mvcdb.Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mvcdb import author

    monkeypatch.setattr(author, "_fallback_name", lambda: " git\tuser ")
    stamps: list[str] = []
    for value in ("alice", "bob\tsmith\n", "alice", "   ", None, "zoë"):
        if value is None:
            monkeypatch.delenv("MVCDB_AUTHOR")
        else:
            os.environ["MVCDB_AUTHOR"] = value  # as CLI runners set it: the same os.environ
        stamps.append(db.record("m", {"w": float(len(stamps))}).author)
    assert stamps == ["alice", "bob smith", "alice", "git user", "git user", "zoë"]
    monkeypatch.delenv("MVCDB_AUTHOR")
    monkeypatch.setattr(author, "_fallback_name", lambda: "\t")
    assert author.current_author() == "unknown"


def test_record_accepts_model_as_keyword(db: mvcdb.Database, db_path: Path) -> None:
    v = mvcdb.record(model="linreg", params={"m": 1.0}, db=db)
    assert v.model == "linreg"
    assert mvcdb.record("linreg", params={"m": 1.0}, db=db_path).model == "linreg"
    with pytest.raises(mvcdb.MvcdbError, match="twice"):
        db.record("a", model="b")
    with pytest.raises(mvcdb.MvcdbError, match="name"):
        db.record(params={"m": 1.0})


def test_readonly_database_refuses_writes(db_path: Path) -> None:
    with mvcdb.open(db_path) as db:
        v = db.record("m", {"w": 1.0})
    with mvcdb.open(db_path, readonly=True) as db:
        assert db.get(v.id).model == "m"
        with pytest.raises(mvcdb.ReadOnlyError):
            db.record("m", {"w": 2.0})
        with pytest.raises(mvcdb.ReadOnlyError):
            db.tag(v, "x")
    with pytest.raises(mvcdb.MvcdbError, match="does not exist"):
        mvcdb.open(db_path.parent / "missing.db", readonly=True)


def test_versions_filters_and_order(db: mvcdb.Database) -> None:
    a = db.record("a", metrics={"loss": 0.3}, metadata={"data": "x"})
    b = db.record("b", metrics={"loss": 0.1}, metadata={"data": "y"})
    c = db.record("a", metrics={"loss": 0.2, "acc": 0.9}, metadata={"data": "x"}, tags=["best"])
    assert [v.id for v in db.versions()] == [c.id, b.id, a.id]
    assert [v.id for v in db.versions("a")] == [c.id, a.id]
    assert [v.id for v in db.versions(tag="best")] == [c.id]
    assert [v.id for v in db.versions(order_by="metrics.loss")] == [b.id, c.id, a.id]
    assert [v.id for v in db.versions(order_by="-metrics.loss", limit=1)] == [a.id]
    assert [v.id for v in db.versions(where="loss < 0.25")] == [c.id, b.id]
    assert [v.id for v in db.versions(where=["metadata.data = 'x'", "metrics.loss>=0.2"])] == [c.id, a.id]
    assert [v.id for v in db.versions(order_by="metrics.acc")] == [c.id, b.id, a.id]  # missing last
    assert [v.id for v in db.versions(since=c.created_at)] == [c.id]
    assert [v.id for v in db.versions(author="tester", where="model = b")] == [b.id]
    assert db.models() == ["a", "b"]
    with pytest.raises(mvcdb.MvcdbError):
        db.versions(where="loss <")
    with pytest.raises(mvcdb.MvcdbError):
        db.versions(order_by="nonsense")

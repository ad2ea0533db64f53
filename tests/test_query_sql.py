"""db.sql: read-only ad-hoc SQL, the documented views and mvcdb's SQL functions."""

from __future__ import annotations

import hashlib
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import mvcdb
from mvcdb.sqlquery import execute_readonly, register_functions


@pytest.fixture
def filled(db_path: Path) -> Path:
    """A closed file with two versions (one with a trajectory), a tag and metrics."""
    with mvcdb.open(db_path) as db:
        v1 = db.record(
            "m",
            {"w": np.array([3.0, 4.0]), "i": np.array([1, 2, 2], dtype=np.int8)},
            metrics={"loss": 0.5, "acc": float("nan")},
            metadata={"train_set": "a.csv", "hyper": {"lr": 0.1}},
            trajectory={"step": np.array([0, 10, 20]), "loss": np.array([3.0, 2.0, 2.5])},
            tags=["prod"],
            message="first",
        )
        db.record("m", {"w": np.array([3.0, 5.0])}, metrics={"loss": 0.4}, parent=v1, message="second")
    return db_path


@pytest.fixture
def ro(filled: Path) -> Iterator[mvcdb.Database]:
    with mvcdb.open(filled) as database:
        yield database


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_rows_come_back_as_dicts(ro: mvcdb.Database) -> None:
    rows = ro.sql("SELECT model, message FROM versions ORDER BY vid")
    assert rows == [{"model": "m", "message": "first"}, {"model": "m", "message": "second"}]
    assert ro.sql("SELECT ? AS x, :y AS y".replace(":y", "?"), (1, "two")) == [{"x": 1, "y": "two"}]
    assert ro.sql("SELECT :a AS a", {"a": 2.5}) == [{"a": 2.5}]
    assert ro.sql("SELECT 1 AS id, 2 AS id") == [{"id": 1, "id_2": 2}]
    assert ro.sql("SELECT * FROM versions WHERE 0") == []


def test_views(ro: mvcdb.Database) -> None:
    import json

    v1, v2 = ro.versions(model="m", order_by="created_at")
    (s,) = ro.sql("SELECT * FROM version_summary WHERE id = ?", [v2.id])
    assert json.loads(s["parents"]) == [v1.id] and s["parent"] == v1.id and s["short_id"] == v2.short_id
    (s1,) = ro.sql("SELECT tags, metrics FROM version_summary WHERE id = ?", [v1.id])
    assert json.loads(s1["tags"]) == ["prod"]
    assert json.loads(s1["metrics"]) == {"acc": None, "loss": 0.5}  # NaN is stored as NULL
    deltas = ro.sql("SELECT metric, parent_value, value, delta, rel_delta FROM metric_deltas")
    assert deltas == [
        {"metric": "loss", "parent_value": 0.5, "value": 0.4, "delta": pytest.approx(-0.1),
         "rel_delta": pytest.approx(-0.2)}
    ]  # fmt: skip
    assert ro.sql("SELECT child_id, parent_id, position FROM version_parents") == [
        {"child_id": v2.id, "parent_id": v1.id, "position": 0}
    ]
    assert ro.sql("SELECT tag, id FROM tagged_versions") == [{"tag": "prod", "id": v1.id}]
    params = ro.sql("SELECT name, shape, nbytes FROM version_params WHERE id = ? ORDER BY name", [v1.id])
    assert params == [{"name": "i", "shape": "[3]", "nbytes": 3}, {"name": "w", "shape": "[2]", "nbytes": 16}]
    assert ro.sql("SELECT model, versions, latest_id FROM model_summary") == [
        {"model": "m", "versions": 2, "latest_id": v2.id}
    ]
    metrics = ro.sql("SELECT id, metric, value FROM version_metrics ORDER BY id, metric")
    assert len(metrics) == 3


def test_sql_functions(ro: mvcdb.Database) -> None:
    v1 = ro.get("prod")
    row = ro.sql(
        "SELECT short_id(id) AS s, traj_value(id, 'loss', 10) AS at10, traj_value(id, 'loss', 5) AS at5,"
        " traj_first(id, 'loss') AS first, traj_last(id, 'loss') AS last, traj_min(id, 'loss') AS lo,"
        " traj_max(id, 'loss') AS hi, traj_len(id, 'loss') AS n, tensor_norm(id, 'w') AS norm,"
        " tensor_norm('prod', 'i') AS inorm FROM versions WHERE id = ?",
        [v1.id],
    )
    assert row == [
        {"s": v1.short_id, "at10": 2.0, "at5": None, "first": 3.0, "last": 2.5, "lo": 2.0, "hi": 3.0,
         "n": 3, "norm": 5.0, "inorm": 3.0}
    ]  # fmt: skip
    assert ro.sql("SELECT traj_last('prod', 'loss') AS x") == [{"x": 2.5}]  # any ref works
    with pytest.raises(mvcdb.MvcdbError, match="no series named 'loss'"):
        ro.sql("SELECT traj_last('m@latest', 'loss') AS x")  # the second version logged nothing


def test_sql_function_errors_name_the_problem(ro: mvcdb.Database) -> None:
    with pytest.raises(mvcdb.MvcdbError, match="no series named 'nope'"):
        ro.sql("SELECT traj_last(id, 'nope') FROM versions")
    with pytest.raises(mvcdb.MvcdbError, match="unknown ref 'zzzz'"):
        ro.sql("SELECT tensor_norm('zzzz', 'w')")
    with pytest.raises(mvcdb.MvcdbError, match="no parameter named 'q'"):
        ro.sql("SELECT tensor_norm('prod', 'q')")
    with pytest.raises(mvcdb.MvcdbError, match="no such table"):
        ro.sql("SELECT * FROM nowhere")
    with pytest.raises(mvcdb.MvcdbError, match="empty"):
        ro.sql("   ")


WRITES = [
    "INSERT INTO meta (key, value) VALUES ('x', 'y')",
    "UPDATE versions SET message = 'hacked'",
    "DELETE FROM tags",
    "REPLACE INTO tags (name, vid) VALUES ('prod', 2)",
    "WITH x AS (SELECT 1) DELETE FROM metrics",
    "DROP TABLE tags",
    "DROP VIEW version_summary",
    "CREATE TABLE t (x)",
    "CREATE TEMP TABLE t (x)",
    "CREATE INDEX i ON tags (vid)",
    "ALTER TABLE tags ADD COLUMN x",
    "ATTACH DATABASE 'other.db' AS other",
    "PRAGMA user_version = 99",
    "PRAGMA writable_schema = 1",
    "UPDATE sqlite_master SET sql = ''",
    "PRAGMA journal_mode = DELETE",
    "PRAGMA wal_checkpoint(TRUNCATE)",
    "VACUUM",
    "ANALYZE",
    "BEGIN",
    "SAVEPOINT s",
    "SELECT 1; DELETE FROM tags",
    "DELETE FROM tags; SELECT 1",
]


@pytest.mark.parametrize("readonly", [False, True])
def test_writes_are_refused_and_change_nothing(filled: Path, readonly: bool) -> None:
    before = digest(filled)
    with mvcdb.open(filled, readonly=readonly) as db:
        for query in WRITES:
            with pytest.raises(mvcdb.MvcdbError) as info:
                db.sql(query)
            message = str(info.value)
            assert "\n" not in message
            assert "read-only" in message or "one statement" in message, (query, message)
        assert db.sql("SELECT count(*) AS n FROM tags") == [{"n": 1}]
        assert db.sql("SELECT message FROM versions ORDER BY vid") == [
            {"message": "first"},
            {"message": "second"},
        ]
        assert not (filled.parent / "other.db").exists()
    assert digest(filled) == before


def test_informational_pragmas_and_ctes_are_allowed(ro: mvcdb.Database) -> None:
    assert ro.sql("PRAGMA user_version")[0]["user_version"] >= 1
    assert any(r["name"] == "vid" for r in ro.sql("PRAGMA table_info(versions)"))
    assert ro.sql("SELECT name FROM pragma_table_info('tags') ORDER BY cid")[0] == {"name": "name"}
    rows = ro.sql(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5)"
        " SELECT sum(i) AS s FROM n"
    )
    assert rows == [{"s": 15}]


def test_register_functions_on_an_own_connection(ro: mvcdb.Database, filled: Path) -> None:
    conn = sqlite3.connect(filled.resolve().as_uri() + "?mode=ro", uri=True)
    try:
        register_functions(conn, ro)
        (value,) = conn.execute("SELECT traj_last(id, 'loss') FROM versions WHERE vid = 1").fetchone()
        assert value == 2.5
        columns, rows = execute_readonly(conn, "SELECT short_id(id) AS s FROM versions WHERE 0")
        assert columns == ["s"] and rows == []
        with pytest.raises(mvcdb.MvcdbError, match="read-only"):
            execute_readonly(conn, "DELETE FROM tags")
        conn.execute("SELECT 1")  # the authorizer is removed afterwards
    finally:
        conn.close()


RUNAWAY = "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r) SELECT count(*) FROM r"


def test_a_runaway_query_stops_at_its_time_limit(tmp_path: Path) -> None:
    with mvcdb.open(tmp_path / "q.db") as db:
        db.record("m", {"a": 1.0})
        started = time.monotonic()
        with pytest.raises(mvcdb.MvcdbError, match=r"stopped after 0.3 s \(its time limit\)"):
            db.sql(RUNAWAY, timeout=0.3)
        assert time.monotonic() - started < 10
        assert db.sql("SELECT count(*) AS n FROM versions", timeout=5) == [{"n": 1}]  # usable after
        for bad in (0, -1, "1", float("nan")):
            with pytest.raises(mvcdb.MvcdbError, match="timeout must be a positive number"):
                db.sql("SELECT 1", timeout=bad)  # type: ignore[arg-type]


def test_ctrl_c_stops_a_runaway_query_on_the_command_line(tmp_path: Path) -> None:
    """SQLite never handed control back, so Ctrl-C waited for a query that never ends."""
    path = tmp_path / "q.db"
    with mvcdb.open(path) as db:
        db.record("m", {"a": 1.0})
    proc = subprocess.Popen(
        [sys.executable, "-m", "mvcdb", "--db", str(path), "sql", RUNAWAY],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.5)  # started, and deep in the query
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("Ctrl-C did not stop the query")
    assert proc.returncode != 0 and "Traceback" not in err

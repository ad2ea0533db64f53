"""Every SQL example in README.md's "Querying" section runs against a fixture database.

Queries are read from README.md itself, so the docs and the tests cannot drift. Queries that need
no mvcdb SQL function run in the stock `sqlite3` shell; the others through `db.sql`.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import Fixture, build

import mvcdb

README = Path(__file__).resolve().parent.parent / "README.md"
_FUNCTION_RE = re.compile(r"\b(short_id|traj_\w+|tensor_norm)\s*\(")


def readme_queries() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = re.search(r"<!-- section:querying -->(.*?)<!-- /section:querying -->", text, re.S)
    assert section, "README.md has no querying section"
    return [q.strip() for q in re.findall(r"```sql\n(.*?)```", section.group(1), re.S)]


QUERIES = readme_queries()


@pytest.fixture(scope="module")
def fixture(tmp_path_factory: pytest.TempPathFactory) -> Fixture:
    return build(tmp_path_factory.mktemp("docs") / "fixture.db")


@pytest.fixture
def db(fixture: Fixture) -> Iterator[mvcdb.Database]:
    with mvcdb.open(fixture.path, readonly=True) as database:
        yield database


def shell(path: Path, query: str) -> list[dict[str, Any]]:
    """Run a query in the real sqlite3 binary (read-only), rows as dicts."""
    binary = shutil.which("sqlite3")
    assert binary, "the sqlite3 shell is required (apt-get install sqlite3; .ci/run installs it)"
    done = subprocess.run(
        [binary, "-readonly", "-bail", "-json", str(path), query],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and not done.stderr, (done.returncode, done.stderr)
    rows: list[dict[str, Any]] = json.loads(done.stdout) if done.stdout.strip() else []
    return rows


def run_documented(fixture: Fixture, db: mvcdb.Database, query: str) -> list[dict[str, Any]]:
    if _FUNCTION_RE.search(query):
        return db.sql(query)
    return shell(fixture.path, query)


def test_there_are_at_least_eight_documented_queries() -> None:
    assert len(QUERIES) >= 8
    assert sum(1 for q in QUERIES if not _FUNCTION_RE.search(q)) >= 8  # plain sqlite3 shell
    assert any(_FUNCTION_RE.search(q) for q in QUERIES)


@pytest.mark.parametrize("query", QUERIES, ids=[f"q{i}" for i in range(len(QUERIES))])
def test_documented_query_runs_and_returns_rows(fixture: Fixture, db: mvcdb.Database, query: str) -> None:
    rows = run_documented(fixture, db, query)
    assert rows, f"the documented query returned nothing on the fixture:\n{query}"
    if not _FUNCTION_RE.search(query):  # the shell and db.sql agree
        assert _normalize(db.sql(query)) == _normalize(rows)


def _normalize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: round(v, 9) if isinstance(v, float) else v for k, v in r.items()} for r in rows]


def _find(fragment: str) -> str:
    matches = [q for q in QUERIES if fragment in q]
    assert len(matches) == 1, fragment
    return matches[0]


def test_best_version_per_model(fixture: Fixture, db: mvcdb.Database) -> None:
    rows = run_documented(fixture, db, _find("row_number()"))
    assert rows == [{"model": "linreg", "short_id": fixture.v4[:12], "val_mse": 0.19}]


def test_versions_trained_on_a_dataset(fixture: Fixture, db: mvcdb.Database) -> None:
    rows = run_documented(fixture, db, _find("$.train_set"))
    assert [r["short_id"] for r in rows] == [fixture.v1[:12]]


def test_children_of_production(fixture: Fixture, db: mvcdb.Database) -> None:
    rows = run_documented(fixture, db, _find("child_short_id, child_model"))
    assert sorted(r["child_short_id"] for r in rows) == sorted([fixture.v2[:12], fixture.v3[:12]])


def test_metric_deltas_match_numbers(fixture: Fixture, db: mvcdb.Database) -> None:
    rows = run_documented(fixture, db, _find("FROM metric_deltas"))
    by_id = {r["short_id"]: r for r in rows}
    assert by_id[fixture.v2[:12]]["delta"] == pytest.approx(0.2 - 0.3)
    assert by_id[fixture.v4[:12]]["parent_value"] == pytest.approx(0.2)  # first parent: v2
    assert by_id[fixture.v3[:12]]["rel_delta"] == pytest.approx((0.25 - 0.3) / 0.3)
    assert [r["delta"] for r in rows] == sorted(r["delta"] for r in rows)


def test_merges_and_ancestry(fixture: Fixture, db: mvcdb.Database) -> None:
    merges = run_documented(fixture, db, _find("parent_count"))
    assert merges == [{"short_id": fixture.v4[:12], "model": "linreg", "parent_count": 2}]
    ancestry = run_documented(fixture, db, _find("WITH RECURSIVE ancestry"))
    assert [(r["short_id"], r["depth"]) for r in ancestry] == [
        (fixture.v4[:12], 0),
        (fixture.v2[:12], 1),
        (fixture.v3[:12], 1),
        (fixture.v1[:12], 2),
    ]


def test_changed_parameters_by_digest(fixture: Fixture, db: mvcdb.Database) -> None:
    rows = run_documented(fixture, db, _find("WHEN q.digest = p.digest"))
    status = {(r["short_id"], r["name"]): r["status"] for r in rows}
    assert status[(fixture.v4[:12], "m")] == "identical"  # v4 re-records v2's parameters
    assert status[(fixture.v2[:12], "m")] == "changed"
    assert status[(fixture.v3[:12], "w")] == "added"


def test_tag_history_query(fixture: Fixture, db: mvcdb.Database) -> None:
    rows = run_documented(fixture, db, _find("FROM tag_history"))
    assert [r["moved_to"] for r in rows] == [fixture.v1[:12], fixture.v2[:12], fixture.v1[:12]]


def test_trajectory_functions_query(fixture: Fixture, db: mvcdb.Database) -> None:
    rows = run_documented(fixture, db, _find("traj_last("))
    by_version = {r["version"]: r for r in rows}
    assert by_version[fixture.v1[:12]] == {
        "version": fixture.v1[:12],
        "steps": 5,
        "final_loss": 0.25,
        "loss_at_step_2": 1.0,
    }
    assert by_version[fixture.v2[:12]]["loss_at_step_2"] == pytest.approx(1 / 3)


def test_tensor_norm_query(fixture: Fixture, db: mvcdb.Database) -> None:
    import numpy as np
    from cli_helpers import O1_PARAMS

    rows = run_documented(fixture, db, _find("tensor_norm("))
    norms = {r["name"]: r["l2"] for r in rows}
    for name, arr in O1_PARAMS.items():
        assert norms[name] == pytest.approx(float(np.linalg.norm(arr.astype(np.complex128))))


def test_documented_queries_survive_nan_and_inf_metrics(tmp_path: Path) -> None:
    """±inf made version_summary's metrics invalid JSON (json_extract failed for the whole
    model), and NaN (NULL) sorted first, so a diverged run was 'the best'."""
    path = tmp_path / "diverged.db"
    with mvcdb.open(path) as db:
        good = db.record("linreg", {"m": 1.0}, metrics={"val_mse": 0.2})
        db.record("linreg", {"m": 2.0}, metrics={"val_mse": float("nan")}, parent=good)
        db.record("linreg", {"m": 3.0}, metrics={"val_mse": float("inf")}, parent=good)
    fx = Fixture(path=path, v1=good.id, v2="", v3="", v4="", o1="")
    with mvcdb.open(path, readonly=True) as db:
        best = run_documented(fx, db, _find("row_number()"))
        assert best == [{"model": "linreg", "short_id": good.id[:12], "val_mse": 0.2}]
        board = db.sql(_find("json_extract(metadata, '$.hyper.lr')"))  # the stock shell prints Inf
        assert [r["val_mse"] for r in board] == [0.2, float("inf"), None]  # NaN last
        summary = db.sql("SELECT json_valid(metrics) AS ok, metrics FROM version_summary")
        assert [r["ok"] for r in summary] == [1, 1, 1]
        values = [json.loads(r["metrics"])["val_mse"] for r in summary]
        assert values[0] == 0.2 and values[1] is None and values[2] == float("inf")
    assert len(shell(path, _find("json_extract(metadata, '$.hyper.lr')"))) == 3  # runs there too


def test_views_of_an_older_file_are_brought_up_to_date(tmp_path: Path) -> None:
    """Views hold no data: a file made before a view changed gets the current one on its next
    writable open, without a schema version (older mvcdb can still open the file)."""
    import sqlite3

    path = tmp_path / "old.db"
    with mvcdb.open(path) as db:
        db.record("m", {"a": 1.0}, metrics={"x": float("inf")})
        version = db.conn.execute("PRAGMA user_version").fetchone()[0]
    old = sqlite3.connect(path)
    sql = old.execute("SELECT sql FROM sqlite_master WHERE name = 'version_summary'").fetchone()[0]
    old_sql = re.sub(r"CASE WHEN m\.value.*?END", "m.value", sql, flags=re.S)
    assert old_sql != sql
    old.executescript(f"DROP VIEW version_summary; {old_sql};")
    old.close()
    with mvcdb.open(path, readonly=True) as ro:  # read-only: left as it is
        assert ro.sql("SELECT json_valid(metrics) AS ok FROM version_summary") == [{"ok": 0}]
    with mvcdb.open(path) as db:
        assert db.sql("SELECT json_valid(metrics) AS ok FROM version_summary") == [{"ok": 1}]
        assert db.conn.execute("PRAGMA user_version").fetchone()[0] == version

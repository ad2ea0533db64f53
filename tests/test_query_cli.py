"""`mvcdb diff`, `mvcdb tree` and `mvcdb sql`: text, --json, --csv and one-line errors."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from cli_helpers import Fixture, assert_error, build, run


@pytest.fixture(scope="module")
def fx(tmp_path_factory: pytest.TempPathFactory) -> Fixture:
    return build(tmp_path_factory.mktemp("cli") / "fixture.db")


def test_diff_text(fx: Fixture) -> None:
    result = run(fx.path, ["diff", fx.v1, fx.v2])
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert out.startswith(f"diff {fx.v1[:12]} -> {fx.v2[:12]}")
    assert "hyper.lr: 0.01 -> 0.05" in out
    assert "val_mse: 0.3 -> 0.2" in out
    assert "\x1b[" not in out  # no colour when piped


def test_diff_json_is_diff_to_dict(fx: Fixture) -> None:
    import mvcdb

    result = run(fx.path, ["diff", "production", "linreg@latest", "--json"])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    with mvcdb.open(fx.path, readonly=True) as db:
        assert data == json.loads(json.dumps(db.diff("production", "linreg@latest").to_dict()))
    assert list(data) == ["a", "b", "metadata", "metrics", "params", "trajectory"]
    assert (data["a"], data["b"]) == (fx.v1, fx.v4)


def test_diff_errors(fx: Fixture, tmp_path: Path) -> None:
    assert_error(run(fx.path, ["diff", "nope", fx.v1]), 1, "unknown ref 'nope'")
    assert_error(run(tmp_path / "missing.db", ["diff", "a", "b"]), 1, "does not exist")
    assert run(fx.path, ["diff", fx.v1]).exit_code == 2  # usage: B is missing


def test_tree_text_and_json(fx: Fixture) -> None:
    result = run(fx.path, ["tree", "--model", "linreg"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"* {fx.v4[:12]} linreg merge",
        "|\\",
        f"| * {fx.v3[:12]} (best) linreg branch with a weight matrix",
        f"* | {fx.v2[:12]} linreg finer",
        "|/",
        f"* {fx.v1[:12]} (production) linreg first fit",
    ]
    result = run(fx.path, ["tree", "production", "--depth", "1", "--json"])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["ref"] == fx.v1
    assert {n["id"] for n in data["nodes"]} == {fx.v1, fx.v2, fx.v3}
    assert {(e["child"], e["parent"]) for e in data["edges"]} == {(fx.v2, fx.v1), (fx.v3, fx.v1)}
    everything = json.loads(run(fx.path, ["tree", "--json"]).stdout)
    assert {n["id"] for n in everything["nodes"]} == {fx.v1, fx.v2, fx.v3, fx.v4, fx.o1}


def test_tree_marks_the_ref(fx: Fixture) -> None:
    out = run(fx.path, ["tree", fx.v2[:8]]).stdout.splitlines()
    assert f"* {fx.v2[:12]} linreg finer <" in out
    assert all(fx.v3[:12] not in line for line in out)  # a sibling, not an ancestor or descendant


def test_tree_errors(fx: Fixture) -> None:
    assert_error(run(fx.path, ["tree", "nope"]), 1, "unknown ref 'nope'")
    assert_error(run(fx.path, ["tree", "--model", "nope"]), 1, "no versions of model 'nope'")
    assert run(fx.path, ["tree", "--depth", "2"]).exit_code == 2
    assert run(fx.path, ["tree", "production", "--depth", "-1"]).exit_code == 2


def test_sql_table_csv_json(fx: Fixture) -> None:
    query = (
        "SELECT short_id, json_extract(metrics, '$.val_mse') AS val_mse FROM version_summary"
        " WHERE model = ? ORDER BY val_mse"
    )
    result = run(fx.path, ["sql", query, "-p", "linreg"])
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split("\t") == ["short_id", "val_mse"]
    assert lines[1].split("\t") == [fx.v4[:12], "0.19"]
    rows = list(csv.reader(io.StringIO(run(fx.path, ["sql", query, "-p", "linreg", "--csv"]).stdout)))
    assert rows[0] == ["short_id", "val_mse"] and rows[1] == [fx.v4[:12], "0.19"] and len(rows) == 5
    data = json.loads(run(fx.path, ["sql", query, "-p", "linreg", "--json"]).stdout)
    assert data[0] == {"short_id": fx.v4[:12], "val_mse": 0.19}
    empty = run(fx.path, ["sql", "SELECT id FROM versions WHERE 0", "--csv"])
    assert empty.exit_code == 0 and empty.stdout == "id\n"
    blob = json.loads(run(fx.path, ["sql", "SELECT x'00ff' AS b", "--json"]).stdout)
    assert blob == [{"b": "00ff"}]
    assert "<blob 2 bytes>" in run(fx.path, ["sql", "SELECT x'00ff' AS b"]).stdout


def test_sql_functions_from_the_cli(fx: Fixture) -> None:
    query = "SELECT traj_last(?, 'loss') AS last, short_id(?) AS s"
    result = run(fx.path, ["sql", query, "-p", fx.v1, "-p", fx.v1, "--json"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == [{"last": 0.25, "s": fx.v1[:12]}]
    result = run(fx.path, ["sql", "SELECT traj_value('production', 'loss', ?) AS x", "-p", "1"])
    assert result.stdout.splitlines() == ["x", "2.0"]  # -p values that look like numbers are numbers


def test_sql_errors(fx: Fixture) -> None:
    before = fx.path.read_bytes()
    assert_error(run(fx.path, ["sql", "DELETE FROM tags"]), 1, "read-only")
    assert_error(run(fx.path, ["sql", "SELECT 1; DROP TABLE tags"]), 1, "one statement")
    assert_error(run(fx.path, ["sql", "SELEC nonsense"]), 1, "SQL error")
    assert_error(run(fx.path, ["sql", "SELECT traj_last('production', 'nope')"]), 1, "no series named 'nope'")
    assert run(fx.path, ["sql", "SELECT 1", "--csv", "--json"]).exit_code == 2
    assert fx.path.read_bytes() == before


def test_terminal_rendering_paths(fx: Fixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a terminal diff, tree and sql render through rich; the text stays the same."""
    from mvcdb.cli import cmd_diff, cmd_sql, cmd_tree, output

    for module in (cmd_diff, cmd_tree, cmd_sql, output):
        monkeypatch.setattr(module, "is_tty", lambda: True)
    diff = run(fx.path, ["diff", fx.v1, fx.v2])
    assert diff.exit_code == 0, diff.stderr
    assert "hyper.lr: 0.01 -> 0.05" in diff.stdout
    tree = run(fx.path, ["tree", "best"])
    assert tree.exit_code == 0, tree.stderr
    assert f"{fx.v3[:12]} (best) linreg branch with a weight matrix <" in tree.stdout
    table = run(fx.path, ["sql", "SELECT short_id FROM version_summary WHERE model = 'other'"])
    assert table.exit_code == 0 and fx.o1[:12] in table.stdout
    empty = run(fx.path, ["sql", "SELECT id FROM versions WHERE 0"])
    assert "(no rows)" in empty.stdout

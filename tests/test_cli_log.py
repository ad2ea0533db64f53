"""`mvcdb log`: listing, filters, --json, --graph, on the fixture database."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import Fixture, assert_error, build, run

from mvcdb.cli import output
from mvcdb.cli.cmd_log import parse_when


@pytest.fixture(scope="module")
def fx(tmp_path_factory: pytest.TempPathFactory) -> Fixture:
    return build(tmp_path_factory.mktemp("log") / "fx.db")


def _json(fx: Fixture, *args: str) -> list[dict[str, Any]]:
    result = run(fx.path, ["log", "--json", *args])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert isinstance(data, list)
    return data


def test_json_lists_every_version_newest_first_with_the_documented_shape(fx: Fixture) -> None:
    data = _json(fx)
    assert [d["id"] for d in data] == [fx.o1, fx.v4, fx.v3, fx.v2, fx.v1]
    keys = {"id", "short_id", "model", "parents", "metrics", "metadata", "message", "author"}
    keys |= {"created_at", "tags", "params_bytes"}
    assert all(set(d) == keys for d in data)
    v4 = data[1]
    assert v4["parents"] == [fx.v2, fx.v3] and v4["message"] == "merge"
    assert data[0]["metrics"] == {"acc": "nan"}  # NaN is spelled as a string in JSON
    v1 = data[-1]
    assert v1["tags"] == ["production"] and v1["metadata"]["hyper"] == {"lr": 0.01}
    assert v1["author"] == "tester" and str(v1["created_at"]).endswith("Z")


def test_filters(fx: Fixture) -> None:
    assert [d["id"] for d in _json(fx, "--model", "other")] == [fx.o1]
    assert [d["id"] for d in _json(fx, "--tag", "best")] == [fx.v3]
    assert [d["id"] for d in _json(fx, "--model", "linreg", "-n", "2")] == [fx.v4, fx.v3]
    assert _json(fx, "--author", "nobody") == []
    assert len(_json(fx, "--author", "tester")) == 5
    assert [d["id"] for d in _json(fx, "--where", "metrics.val_mse < 0.22")] == [fx.v4, fx.v2]
    assert [d["id"] for d in _json(fx, "-w", "val_mse < 0.22", "-w", "message ~ FIN")] == [fx.v2]
    assert [d["id"] for d in _json(fx, "--where", "metadata.train_set = other.csv")] == [fx.v3]
    assert [d["id"] for d in _json(fx, "--order-by", "metrics.val_mse", "-n", "1")] == [fx.v4]
    assert len(_json(fx, "--since", "1d")) == 5
    assert _json(fx, "--since", "2999-01-01") == []
    assert _json(fx, "--until", "2000-01-01T00:00:00Z") == []


def test_table_output_when_piped_is_tab_separated(fx: Fixture) -> None:
    result = run(fx.path, ["log", "--model", "linreg"])
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split("\t") == ["id", "model", "created (UTC)", "author", "tags", "metrics", "message"]
    rows = [line.split("\t") for line in lines[1:]]
    assert [r[0] for r in rows] == [i[:12] for i in (fx.v4, fx.v3, fx.v2, fx.v1)]
    assert rows[-1][4] == "production" and "val_mse=0.3" in rows[-1][5] and rows[-1][6] == "first fit"


def test_empty_results_say_so(fx: Fixture, tmp_path: Path) -> None:
    assert run(fx.path, ["log", "--model", "nope"]).stdout.strip() == "No versions match."
    empty = tmp_path / "empty.db"
    assert run(empty, ["init"]).exit_code == 0
    assert "No versions yet" in run(empty, ["log"]).stdout


def test_graph_draws_the_merge(fx: Fixture) -> None:
    result = run(fx.path, ["log", "--graph", "--model", "linreg"])
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("* " + fx.v4[:12]) and "merge" in lines[0]
    assert lines[1] == "|\\"
    assert lines[2].startswith("| * " + fx.v3[:12]) and "(best)" in lines[2]
    assert lines[3].startswith("* | " + fx.v2[:12])
    assert lines[4] == "|/"
    assert lines[5].startswith("* " + fx.v1[:12]) and "(production)" in lines[5]


def test_bad_filters_are_one_line_errors(fx: Fixture) -> None:
    """A malformed filter is bad usage (2), as README's exit codes say; one that is well formed but
    names no metric any version has is an error about the data (1)."""
    assert_error(run(fx.path, ["log", "--where", "this is not a condition"]), 2, "--where", "condition")
    assert_error(run(fx.path, ["log", "--where", "metrics.val_mse < abc"]), 2, "--where", "number")
    assert_error(run(fx.path, ["log", "--order-by", "two words"]), 2, "--order-by", "order by")
    assert_error(run(fx.path, ["log", "--order-by", "colour"]), 1, "no version has a metric of that name")
    assert_error(run(fx.path, ["log", "--since", "last tuesday"]), 2, "--since", "not a date")
    assert_error(run(fx.path, ["log", "--where", "hyper.lr > 0"]), 1, "metadata.hyper.lr")
    assert_error(run(fx.path, ["show", f"{fx.v1[:12]}~1"]), 1, f"{fx.v1[:12]} is a root version")


def test_parse_when_relative_and_absolute() -> None:
    now = datetime(2026, 1, 31, 12, 0, tzinfo=timezone.utc)
    assert parse_when("2d", now) == now - timedelta(days=2)
    assert parse_when("90m", now) == now - timedelta(minutes=90)
    assert parse_when("1w", now) == now - timedelta(weeks=1)
    assert parse_when("2026-01-02") == datetime(2026, 1, 2, tzinfo=timezone.utc)
    assert parse_when("2026-01-02T03:04:05+01:00") == datetime(2026, 1, 2, 2, 4, 5, tzinfo=timezone.utc)


@pytest.fixture
def tty(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Pretend stdout is a terminal, so the rich code paths run (no colour codes in a runner)."""
    monkeypatch.setattr(output, "is_tty", lambda: True)
    monkeypatch.setattr("mvcdb.cli.cmd_log.is_tty", lambda: True)
    yield


def test_rich_table_and_graph_on_a_terminal(fx: Fixture, tty: None) -> None:
    table = run(fx.path, ["log"], COLUMNS="200")
    assert table.exit_code == 0, table.stderr
    assert "┃" in table.stdout and fx.v1[:12] in table.stdout and "\t" not in table.stdout
    graph = run(fx.path, ["log", "--graph"], COLUMNS="200")
    assert graph.exit_code == 0, graph.stderr
    assert "|\\" in graph.stdout and f"* {fx.v1[:12]} (production)" in graph.stdout

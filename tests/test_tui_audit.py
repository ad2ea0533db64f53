"""Pilot tests for what an audit of the TUI found: a runaway SQL console query, very long names,
and where an export goes."""

from __future__ import annotations

import io
import threading
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pytest
from rich.console import Console
from tui_helpers import (
    errors,
    fixture_in,
    private_copy,
    running,
    select,
    synchronous,
    table_of,
    text_of,
    wait_for,
)

import mvcdb

textual = pytest.importorskip("textual")

from textual.widgets import DataTable, Input, Select, Static  # noqa: E402

from mvcdb.database import Database  # noqa: E402
from mvcdb.tui.app import MvcdbApp  # noqa: E402
from mvcdb.tui.components import diff_screen  # noqa: E402
from mvcdb.tui.components.dialogs import ConfirmScreen, ExportScreen, TagScreen  # noqa: E402
from mvcdb.tui.components.diff_screen import DiffScreen  # noqa: E402
from mvcdb.tui.components.sql_screen import MAX_ROWS, SqlScreen  # noqa: E402
from mvcdb.tui.components.versions_table import MAX_CELL  # noqa: E402
from mvcdb.tui.data import SqlQuery, SqlStopped, param_norms  # noqa: E402

#: A query that never ends, and one that returns rows without end.
ENDLESS_COUNT = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
ENDLESS_ROWS = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c"


@pytest.fixture(scope="module")
def fixture_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    return fixture_in(tmp_path_factory, "tui-audit")


@pytest.fixture
def fx(fixture_db: tuple[Path, dict[str, str]], tmp_path: Path) -> tuple[Path, dict[str, str]]:
    return private_copy(fixture_db, tmp_path)


def test_sql_query_stops_when_asked_from_another_thread(fx: tuple[Path, dict[str, str]]) -> None:
    """stop() interrupts a query that would never end (it used to keep `q` from ending the app)."""
    query = SqlQuery(fx[0], ENDLESS_COUNT, max_rows=10, timeout=60)
    outcome: list[BaseException | object] = []

    def run() -> None:
        try:
            outcome.append(query.run())
        except BaseException as exc:  # noqa: BLE001 - checked below
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(0.3)
    assert thread.is_alive()  # really running, not refused
    query.stop()
    thread.join(10)
    assert not thread.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], SqlStopped)


@pytest.mark.slow  # seconds of pilot work: the full suite (CI) runs it
@synchronous
async def test_sql_console_reads_at_most_max_rows_and_keeps_brackets(fx: tuple[Path, dict[str, str]]) -> None:
    """Endless rows stop at MAX_ROWS (memory grew ~50 MB/s before); a "[b]c[/b]" column keeps its
    brackets; one row is "1 row"."""
    path, _ = fx
    async with running(path, notifications=True) as (app, pilot):
        await pilot.press("s")
        await wait_for(pilot, lambda: isinstance(app.screen, SqlScreen))
        screen = app.screen
        box = screen.query_one("#sql-query", Input)
        results = screen.query_one("#sql-results", DataTable)
        status = screen.query_one("#sql-status", Static)
        box.value = ENDLESS_ROWS
        await pilot.press("enter")
        await wait_for(pilot, lambda: results.row_count == MAX_ROWS)
        assert text_of(status).startswith(f"{MAX_ROWS:,}+ rows in ")
        box.value = "SELECT '[red]x[/red]' AS \"[b]c[/b]\""
        await pilot.press("enter")
        await wait_for(pilot, lambda: results.row_count == 1)
        assert [str(c.label) for c in results.ordered_columns] == ["[b]c[/b]"]
        assert [str(c) for c in results.get_row_at(0)] == ["[red]x[/red]"]
        assert text_of(status).startswith("1 row in ")
        assert errors(app) == []


@pytest.mark.slow  # seconds of pilot work: the full suite (CI) runs it
@synchronous
async def test_leaving_the_sql_console_stops_its_query(fx: tuple[Path, dict[str, str]]) -> None:
    path, _ = fx
    async with running(path) as (app, pilot):
        await pilot.press("s")
        await wait_for(pilot, lambda: isinstance(app.screen, SqlScreen))
        screen = app.screen
        screen.query_one("#sql-query", Input).value = ENDLESS_COUNT
        await pilot.press("enter")
        await wait_for(pilot, lambda: any(w.group == "sql" and w.is_running for w in app.workers))
        await pilot.press("escape")
        await wait_for(pilot, lambda: not any(w.group == "sql" and w.is_running for w in app.workers))


def _long_names_db(path: Path) -> str:
    """One version with a 200-character model name, metric names of 1 and 110 characters and a
    trajectory series with brackets in its name."""
    with mvcdb.open(path) as db:
        v = db.record(
            "m" * 200,
            params={"w": np.ones(3), "big": np.full(1, 123456.0)},
            metrics={"a": 3.0, "very_long_metric_name_" * 5: 1.5},
            trajectory={"loss[val]": np.linspace(1.0, 0.0, 10)},
            message="L" * 300,
        )
    return v.id


@synchronous
async def test_long_and_bracketed_names_show_as_written(tmp_path: Path) -> None:
    """A 200-character model name took the table's whole width; a 110-character metric name pushed
    every metric value in the detail pane onto a line of its own; the series chooser showed the
    series "loss[val]" as "loss" (read as markup)."""
    path = tmp_path / "long.db"
    version_id = _long_names_db(path)
    app = MvcdbApp(path)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: app.current_version is not None and app.detail.detail is not None)
        table = table_of(app)
        widths = {str(c.key.value): c.content_width for c in table.ordered_columns}
        assert widths["model"] <= MAX_CELL and widths["id"] == 12
        assert all(width <= MAX_CELL for key, width in widths.items() if key.startswith("metric:"))
        row = [str(c) for c in table.get_row(version_id)]
        assert row[1] == "m" * (MAX_CELL - 1) + "…"
        info = text_of(app.query_one("#info")).splitlines()
        assert any(line.startswith("metrics  a ") and line.rstrip().endswith("3") for line in info), info
        # the norm column was as wide as its header, so 1.2346e+05 showed as "1.23"
        await wait_for(pilot, lambda: bool(app.query("#params")))
        params = app.query_one("#params", DataTable)
        big = "1.2346e+05"
        await wait_for(pilot, lambda: "big" in params.rows and str(params.get_cell("big", "norm")) == big)
        norm = next(c for c in params.ordered_columns if c.key == "norm")
        assert norm.content_width >= len(big)
        assert str(params.get_cell("big", "size")) == "8 B"
        series = app.query_one("#series", Select)
        await wait_for(pilot, lambda: series.value == "loss[val]")
        shown = series.query_one("SelectCurrent #label", Static)
        assert text_of(shown).strip() == "loss[val]"


def test_parameter_norms_are_read_in_a_few_restores(tmp_path: Path) -> None:
    """One restore() a tensor cost ~20 ms each: 100 s for a version of 5,000 small tensors."""
    path = tmp_path / "many.db"
    params = {f"layer{i}.w": np.full(4, i, np.float32) for i in range(300)}
    params["z"] = np.array([3 + 4j], np.complex64)
    params["flags"] = np.array([True, False, True, True])
    with mvcdb.open(path) as db:
        v = db.record("m", params=params)
        tensors = db.tensors(v.id)
    calls = []
    real_restore = Database.restore

    def counting(self: Database, *args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return real_restore(self, *args, **kwargs)

    with mock.patch.object(Database, "restore", counting):
        norms, damaged = param_norms(path, v.id, tensors)
    assert damaged == {}
    assert len(calls) == 1
    assert norms == pytest.approx(
        {name: float(np.linalg.norm(np.abs(arr).astype(np.float64))) for name, arr in params.items()}
    )
    assert norms["flags"] == pytest.approx(3**0.5) and norms["z"] == pytest.approx(5.0)


@pytest.mark.slow  # seconds of pilot work: the full suite (CI) runs it
@synchronous
async def test_export_says_where_the_file_goes(fx: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    """The dialog's default is an absolute path; a directory is refused without asking to overwrite it."""
    path, ids = fx
    async with running(path, notifications=True) as (app, pilot):
        await select(pilot, app, ids["m2"])
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, ExportScreen))
        default = app.screen.query_one("#export-path", Input).value
        assert Path(default).is_absolute() and Path(default).parent == Path.cwd()
        assert Path(default).name == f"mlp-{ids['m2'][:12]}.npz"
        app.screen.query_one("#export-path", Input).value = str(tmp_path)
        await pilot.press("enter")
        await wait_for(pilot, lambda: bool(errors(app)))
        assert not isinstance(app.screen, ConfirmScreen)
        assert errors(app) == [f"{tmp_path} is a directory: type a file name"]
        assert tmp_path.is_dir()


@pytest.mark.slow  # seconds of pilot work: the full suite (CI) runs it
@synchronous
async def test_tag_dialog_says_a_name_is_invalid_as_it_is_typed(fx: tuple[Path, dict[str, str]]) -> None:
    """It said "'bad name' is a new tag." (in green) and refused the name only on Tag."""
    path, _ = fx
    async with running(path) as (app, pilot):
        await pilot.press("t")
        await wait_for(pilot, lambda: isinstance(app.screen, TagScreen))
        app.screen.query_one("#tag-name", Input).value = "bad name"
        state = app.screen.query_one("#tag-state", Static)
        await wait_for(pilot, lambda: "invalid tag name 'bad name'" in text_of(state))
        assert "new tag" not in text_of(state)
        app.screen.query_one("#tag-name", Input).value = "candidate"
        await wait_for(pilot, lambda: text_of(state).strip() == "'candidate' is a new tag.")


@pytest.mark.slow  # seconds of pilot work: the full suite (CI) runs it
@synchronous
async def test_a_diff_in_progress_does_not_hold_up_quitting(fx: tuple[Path, dict[str, str]]) -> None:
    """The diff runs in a daemon thread (a thread worker kept the process alive until a diff of big
    tensors ended, seconds a GB, after `q`); leaving its screen drops its result."""
    path, ids = fx
    release = threading.Event()
    real_load_diff = diff_screen.load_diff

    def slow_load_diff(*args: Any) -> Any:
        release.wait(10)
        return real_load_diff(*args)

    with mock.patch.object(diff_screen, "load_diff", slow_load_diff):
        async with running(path, notifications=True) as (app, pilot):
            await select(pilot, app, ids["v2"])
            await pilot.press("d")
            await wait_for(pilot, lambda: isinstance(app.screen, DiffScreen))
            diffing = [t for t in threading.enumerate() if t.name == "mvcdb-diff"]
            assert len(diffing) == 1 and diffing[0].daemon and diffing[0].is_alive()
            await pilot.press("escape")
            await wait_for(pilot, lambda: not isinstance(app.screen, DiffScreen))
            release.set()
            diffing[0].join(10)
            await pilot.pause(0.2)
            assert errors(app) == [] and app.is_running


def test_diff_trajectory_table_counts_steps_with_separators() -> None:
    """A million steps read "1.000e+06" (formatted as a metric)."""
    table = diff_screen._trajectory_table(
        [{"name": "loss", "len_a": 1_000_000, "len_b": 60, "a": {"last": 0.5}, "b": {"last": 0.25}}]
    )
    console = Console(width=120, record=True, file=io.StringIO())
    console.print(table)
    row = console.export_text().splitlines()[-1].split()
    assert row[:9] == ["loss", "│", "1,000,000", "│", "60", "│", "0.5", "│", "0.25"], row

"""The TUI's start-up order: the first rows before the first paint, the rest of the page and the
detail's parts right after it, plotext only with the first chart. What the user ends up with is
what one 200-row page and an eagerly built detail pane gave; these check that it still is."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from tui_helpers import (
    SIZE,
    fixture_in,
    private_copy,
    running,
    started,
    synchronous,
    table_of,
    text_of,
    wait_for,
)

import mvcdb

textual = pytest.importorskip("textual")

from textual.app import App, ComposeResult  # noqa: E402
from textual.render import measure  # noqa: E402
from textual.widgets import DataTable, Select  # noqa: E402

import mvcdb.tui.app as app_module  # noqa: E402
from mvcdb.tui.app import MvcdbApp  # noqa: E402
from mvcdb.tui.components.chart import TrajectoryChart  # noqa: E402
from mvcdb.tui.components.detail import DetailPane  # noqa: E402
from mvcdb.tui.data import MIN_FIRST_ROWS, PAGE_SIZE, first_page_size, load_detail, load_page  # noqa: E402


@pytest.fixture(scope="module")
def fixture_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    return fixture_in(tmp_path_factory, "tui-startup")


@pytest.fixture
def fx(fixture_db: tuple[Path, dict[str, str]], tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A private copy of the fixture database."""
    return private_copy(fixture_db, tmp_path)


def test_first_page_is_what_the_screen_can_show() -> None:
    assert first_page_size(SIZE[1]) == SIZE[1]
    assert first_page_size(3) == MIN_FIRST_ROWS
    assert first_page_size(10_000) == PAGE_SIZE


def test_importing_the_app_leaves_plotext_for_the_first_chart() -> None:
    code = "import sys, mvcdb.tui.app\nprint('PLOTEXT=' + str('plotext' in sys.modules))\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.rsplit("PLOTEXT=", 1)[1].strip() == "False"


@synchronous
async def test_short_first_page_then_the_rest_then_pages_on_scroll(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The screen's worth of rows first, the rest of the 200-row page after the paint (so 200 are
    loaded, as one page had), then the next page when the user scrolls to the end."""
    path = tmp_path / "many.db"
    with mvcdb.open(path) as db, db.batch():
        for i in range(260):
            db.record("m", metrics={"loss": 1 / (i + 1)}, message=f"v{i}")
    loads: list[tuple[int, int]] = []
    apply_rows = MvcdbApp._apply_rows

    def spy(self: MvcdbApp, generation: int, where: list[str], offset: int, limit: int, rows: Any) -> None:
        loads.append((offset, len(rows)))
        apply_rows(self, generation, where, offset, limit, rows)

    monkeypatch.setattr(MvcdbApp, "_apply_rows", spy)
    app = MvcdbApp(path)
    async with app.run_test(size=SIZE) as pilot:
        table = table_of(app)
        await wait_for(pilot, lambda: table.row_count == PAGE_SIZE and not app.loading)
        first = first_page_size(SIZE[1])
        assert loads == [(0, first), (first, PAGE_SIZE - first)]
        assert app.more and "200+ versions" in text_of(app.query_one("#status"))
        messages = [str(table.get_row_at(i)[-1]) for i in (0, first, PAGE_SIZE - 1)]
        assert messages == ["v259", f"v{259 - first}", "v60"]
        await wait_for(pilot, lambda: app.models == ["m"])  # read after the paint, for the filter
        table.focus()
        await pilot.press("ctrl+end")
        await wait_for(pilot, lambda: table.row_count == 260)
        assert loads[2:] == [(PAGE_SIZE, 60)] and not app.more
        assert str(table.get_row_at(259)[-1]) == "v0"


@synchronous
async def test_a_slow_first_read_paints_first_and_its_rows_follow(
    fx: tuple[Path, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first paint waits FIRST_ROWS_WAIT at most: a file slower than that shows 'loading'."""
    path, ids = fx
    gate = threading.Event()

    def slow(*args: Any, **kwargs: Any) -> Any:
        gate.wait(10)
        return load_page(*args, **kwargs)

    monkeypatch.setattr(app_module, "load_page", slow)
    app = MvcdbApp(path)
    async with app.run_test(size=SIZE) as pilot:
        assert table_of(app).row_count == 0 and app.loading
        assert "loading" in text_of(app.query_one("#status"))
        gate.set()
        await started(pilot, app)
        assert app.current_version is not None and app.current_version.id == ids["m2"]
        assert not app.loading


@synchronous
async def test_the_chart_shows_the_first_trajectory(fx: tuple[Path, dict[str, str]]) -> None:
    """The chart (plotext imported after the first paint) still draws the selected version's loss."""
    path, ids = fx
    app = MvcdbApp(path)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        chart = app.query_one("#chart", TrajectoryChart)
        await wait_for(pilot, lambda: app.query_one("#series", Select).value == "loss")
        assert f"loss · {ids['m2'][:12]}" in str(chart.render())


@synchronous
async def test_a_detail_given_early_fills_the_pane_in(fx: tuple[Path, dict[str, str]]) -> None:
    """The detail pane mounts its parameters, series and chart after the first paint; a detail (and
    its norms) given before then shows in them once they are there."""
    path, ids = fx
    detail = load_detail(path, ids["m2"])
    early: list[bool] = []

    class One(App[None]):
        def compose(self) -> ComposeResult:
            yield DetailPane(id="detail")

        def on_mount(self) -> None:
            pane = self.query_one(DetailPane)
            early.append(bool(pane.query("#params")))
            pane.show(detail)
            pane.set_norms(ids["m2"], {"layer1.weight": 1.5})

    app = One()
    async with app.run_test(size=SIZE) as pilot:

        def filled() -> bool:
            return any(table.row_count for table in app.query("#params").results(DataTable))

        await wait_for(pilot, filled)
        assert early == [False]
        params = app.query_one("#params", DataTable)
        assert [str(k.value) for k in params.rows] == ["layer1.bias", "layer1.weight"]
        norms = [str(params.get_cell(name, "norm")) for name in ("layer1.bias", "layer1.weight")]
        assert norms == ["—", "1.5"]
        assert app.query_one("#series", Select).value == "loss" and app.query(TrajectoryChart)
        assert ids["m2"] in text_of(app.query_one("#info"))


@synchronous
async def test_column_widths_are_what_datatable_measures(fx: tuple[Path, dict[str, str]]) -> None:
    """The versions table measures its cells with one ConsoleOptions for all: same widths as
    DataTable's own measuring (tags, metrics, messages of different lengths)."""
    path, _ = fx
    async with running(path) as (app, _pilot):
        table = table_of(app)
        ours = [column.content_width for column in table.ordered_columns]
        for column in table.ordered_columns:
            column.content_width = measure(app.console, column.label, 1)
        DataTable._update_dimensions(table, list(table.rows))
        assert [column.content_width for column in table.ordered_columns] == ours
        assert ours[5] == len("production")  # the tags column: as wide as its widest cell


@synchronous
async def test_column_labels_are_text_not_markup(tmp_path: Path) -> None:
    """The headers are Text (no markup read before the first paint): a metric's brackets stay."""
    path = tmp_path / "brackets.db"
    with mvcdb.open(path) as db:
        db.record("m", metrics={"acc[top1]": 0.5, "x[/y]": 1.0}, message="one")
    app = MvcdbApp(path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: table_of(app).row_count == 1)
        labels = {str(column.label) for column in table_of(app).ordered_columns}
        assert {"acc[top1]", "x[/y]"} <= labels

"""Pilot-driven tests of the TUI: every action a person takes, checked against the database."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tui_helpers import (
    SIZE,
    errors,
    fixture_in,
    private_copy,
    row_ids,
    running,
    select,
    started,
    synchronous,
    table_of,
    text_of,
    wait_for,
)

import mvcdb

textual = pytest.importorskip("textual")

from textual.pilot import Pilot  # noqa: E402
from textual.widgets import DataTable, Input, Markdown, Select  # noqa: E402

from mvcdb.tui.app import MvcdbApp  # noqa: E402
from mvcdb.tui.components.commands import MvcdbCommands  # noqa: E402
from mvcdb.tui.components.detail import DetailPane  # noqa: E402
from mvcdb.tui.components.dialogs import ConfirmScreen, ExportScreen, TagScreen  # noqa: E402
from mvcdb.tui.components.diff_screen import DiffScreen  # noqa: E402
from mvcdb.tui.components.help_screen import HelpScreen  # noqa: E402
from mvcdb.tui.components.keybar import KeyBar  # noqa: E402
from mvcdb.tui.components.lineage import LineagePane  # noqa: E402
from mvcdb.tui.components.sql_screen import SqlScreen  # noqa: E402
from mvcdb.tui.components.versions_table import VersionsTable  # noqa: E402
from mvcdb.tui.keys import MAIN_KEYS  # noqa: E402


@pytest.fixture(scope="module")
def fixture_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    return fixture_in(tmp_path_factory, "tui")


@pytest.fixture
def fx(fixture_db: tuple[Path, dict[str, str]], tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A private copy of the fixture database (tests tag and record into it)."""
    return private_copy(fixture_db, tmp_path)


@synchronous
async def test_startup_lists_versions_newest_first(fx: tuple[Path, dict[str, str]]) -> None:
    path, ids = fx
    async with running(path) as (app, pilot):
        assert row_ids(app) == [ids["m2"], ids["m1"], ids["v4"], ids["v3"], ids["v2"], ids["v1"]]
        columns = [str(k.value) for k in table_of(app).columns]
        assert columns[:6] == ["mark", "model", "id", "when", "author", "tags"]
        assert set(columns[6:-1]) == {"metric:val_mse", "metric:train_mse", "metric:val_loss", "metric:acc"}
        assert columns[-1] == "message"
        row = [str(c) for c in table_of(app).get_row(ids["v2"])]
        assert row[1:6] == ["linreg", ids["v2"][:12], "2026-01-01 10:01", "ada", "production"]
        assert row[-1] == "more steps, lr=0.05"
        assert app.current_version.id == ids["m2"]


@synchronous
async def test_filter_box(fx: tuple[Path, dict[str, str]]) -> None:
    path, ids = fx
    async with running(path, notifications=True) as (app, pilot):

        async def apply(text: str) -> None:
            await pilot.press("slash")
            box = app.query_one("#filter", Input)
            assert box.has_focus
            box.value = text
            await pilot.press("enter")
            await wait_for(pilot, lambda: not app.loading and app.filter_text == text)
            await pilot.pause(0.1)

        await apply("val_mse<0.25")
        assert set(row_ids(app)) == {ids["v2"], ids["v4"]}
        await apply("model=mlp")
        assert set(row_ids(app)) == {ids["m1"], ids["m2"]}
        await apply("tag=production")
        assert row_ids(app) == [ids["v2"]]
        await apply("author=ada soup")  # a bare word searches the messages
        assert row_ids(app) == [ids["v4"]]
        await apply("linreg val_mse>=0.26")  # a bare model name
        assert set(row_ids(app)) == {ids["v1"], ids["v3"]}
        assert errors(app) == []
        app.apply_filter("val_mse<oops")  # refused with a notification; the rows and the filter stay
        await wait_for(pilot, lambda: bool(errors(app)))
        assert "val_mse" in errors(app)[-1]
        assert app.filter_text == "linreg val_mse>=0.26" and set(row_ids(app)) == {ids["v1"], ids["v3"]}
        await pilot.press("slash", "escape")
        await wait_for(pilot, lambda: table_of(app).row_count == 6)
        assert app.filter_text == ""


@pytest.mark.slow  # seconds of pilot work: the full suite (CI) runs it
@synchronous
async def test_sort_by_columns(fx: tuple[Path, dict[str, str]]) -> None:
    path, ids = fx
    async with running(path) as (app, pilot):
        table = table_of(app)
        while table.sort_column != "metric:val_mse":
            await pilot.press("o")
        await wait_for(pilot, lambda: not app.loading and row_ids(app)[0] == ids["v2"])
        # ascending: best first; versions without the metric last
        assert row_ids(app)[:4] == [ids["v2"], ids["v4"], ids["v3"], ids["v1"]]
        assert "▲" in str(table.columns[table.sort_column].label)  # type: ignore[index]
        await pilot.press("O")
        await wait_for(pilot, lambda: not app.loading and row_ids(app)[0] == ids["v1"])
        assert row_ids(app)[:4] == [ids["v1"], ids["v3"], ids["v4"], ids["v2"]]
        # a click on a header sorts by that column (model ascending, ties newest first)
        mark_width = table.ordered_columns[0].get_render_width(table)
        await pilot.click(VersionsTable, offset=(1 + mark_width + 2, 1))
        await wait_for(pilot, lambda: table.sort_column == "model" and not app.loading)
        await pilot.pause(0.1)
        assert [str(table.get_row(i)[1]) for i in row_ids(app)] == ["linreg"] * 4 + ["mlp"] * 2
        # tags can only be sorted among the loaded rows
        app.sort_by("tags", True)
        await pilot.pause(0.1)
        assert row_ids(app)[:2] == [ids["v2"], ids["v4"]]


@synchronous
async def test_select_keeps_table_tree_and_detail_in_sync(fx: tuple[Path, dict[str, str]]) -> None:
    path, ids = fx
    async with running(path) as (app, pilot):
        table = table_of(app)
        table.focus()
        await pilot.press("down", "down")  # m2 -> m1 -> v4 (the merge)
        await wait_for(pilot, lambda: app.current_version is not None and app.current_version.id == ids["v4"])
        await pilot.press("enter")
        tree = app.query_one("#lineage", LineagePane)
        await wait_for(pilot, lambda: tree.model == "linreg" and tree.cursor_node is not None)
        await wait_for(pilot, lambda: tree.cursor_node.data == ids["v4"])  # type: ignore[union-attr]
        label = str(tree.cursor_node.label)  # type: ignore[union-attr]
        assert "⑂" in label and "merge of" in label and ids["v3"][:12] in label
        detail = app.query_one(DetailPane)
        assert detail.detail is not None and detail.detail.version.id == ids["v4"]
        info = text_of(app.query_one("#info"))
        assert "2 parents: a merge" in info and "soup of the two" in info
        # moving in the tree moves the table
        tree.focus()
        tree.move_cursor(tree.nodes[ids["v1"]])
        await wait_for(pilot, lambda: table.id_at_cursor() == ids["v1"])
        await wait_for(pilot, lambda: app.current_version is not None and app.current_version.id == ids["v1"])
        params = app.query_one("#params", DataTable)
        assert [str(k.value) for k in params.rows] == ["b", "m"]
        await wait_for(pilot, lambda: str(params.get_cell("m", "norm")) == "2.31")
        series = app.query_one("#series", Select)
        assert series.value == "loss"


@pytest.mark.slow  # seconds of pilot work: the full suite (CI) runs it
@synchronous
async def test_mark_two_and_diff(fx: tuple[Path, dict[str, str]]) -> None:
    path, ids = fx
    async with running(path) as (app, pilot):
        await select(pilot, app, ids["v1"])
        await pilot.press("space")
        await select(pilot, app, ids["v2"])
        await pilot.press("space")
        assert table_of(app).marks == [ids["v1"], ids["v2"]]
        assert str(table_of(app).get_row(ids["v1"])[0]) == "●"
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, DiffScreen) and app.screen.report is not None)
        screen = app.screen
        assert isinstance(screen, DiffScreen)
        assert (screen.a, screen.b) == (ids["v1"], ids["v2"])
        params = screen.query_one("#diff-params", DataTable)
        assert [str(params.get_row_at(i)[0]) for i in range(params.row_count)] == ["b", "m"]
        assert str(params.get_row_at(1)[1]) == "changed"
        summary = text_of(screen.query_one("#diff-summary"))
        assert "hyper.lr" in summary and "val_mse" in summary
        assert screen.query_one("#diff-series", Select).value == "loss"
        assert set(screen.curves["a"][1]) == {"loss", "m"} == set(screen.curves["b"][1])
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, DiffScreen))


@pytest.mark.slow
@synchronous
async def test_tag_moves_production_only_after_confirmation(fx: tuple[Path, dict[str, str]]) -> None:
    path, ids = fx
    async with running(path) as (app, pilot):
        await select(pilot, app, ids["v4"])
        await pilot.press("t")
        await wait_for(pilot, lambda: isinstance(app.screen, TagScreen))
        history = app.screen.query_one("#tag-history", DataTable)
        await wait_for(pilot, lambda: history.row_count == 2)  # created on v1, moved to v2
        assert "moves from " + ids["v2"][:12] in text_of(app.screen.query_one("#tag-state"))
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("n")
        await wait_for(pilot, lambda: not isinstance(app.screen, ConfirmScreen))
        with mvcdb.open(path, readonly=True) as db:
            assert db.tags()["production"] == ids["v2"]

        await pilot.press("t")
        await wait_for(pilot, lambda: isinstance(app.screen, TagScreen))
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_for(pilot, lambda: "production" in table_of(app).get_row(ids["v4"])[5].plain)  # type: ignore[union-attr]
        with mvcdb.open(path, readonly=True) as db:
            assert db.tags()["production"] == ids["v4"]
            moves = db.tag_history("production")
            assert [(m.from_id, m.to_id) for m in moves][-1] == (ids["v2"], ids["v4"])

        # any other tag: created or moved without a question
        await pilot.press("t")
        await wait_for(pilot, lambda: isinstance(app.screen, TagScreen))
        app.screen.query_one("#tag-name", Input).value = "staging"
        await pilot.press("enter")
        await wait_for(pilot, lambda: not isinstance(app.screen, TagScreen))
        await wait_for(pilot, lambda: "staging" in table_of(app).get_row(ids["v4"])[5].plain)  # type: ignore[union-attr]
        with mvcdb.open(path, readonly=True) as db:
            assert db.tags()["staging"] == ids["v4"]


@pytest.mark.slow
@synchronous
async def test_export_npz_and_safetensors_never_overwrites_silently(
    fx: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    path, ids = fx
    app = MvcdbApp(path)
    out = tmp_path / "exported.npz"
    with mvcdb.open(path, readonly=True) as db:
        expected = db.restore(ids["m2"])
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await started(pilot, app)
        await select(pilot, app, ids["m2"])

        async def export(dest: Path, fmt: str = "npz") -> None:
            await pilot.press("e")
            await wait_for(pilot, lambda: isinstance(app.screen, ExportScreen))
            if fmt != "npz":
                app.screen.query_one("#export-format", Select).value = fmt
                await pilot.pause(0.05)
            app.screen.query_one("#export-path", Input).value = str(dest)
            await pilot.press("enter")

        await export(out)
        await wait_for(pilot, lambda: out.exists())
        with np.load(out) as loaded:
            assert sorted(loaded.files) == sorted(expected)
            for name, arr in expected.items():
                assert loaded[name].dtype == arr.dtype and np.array_equal(loaded[name], arr)

        before = out.read_bytes()
        await select(pilot, app, ids["m1"])
        await export(out)
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("n")
        await wait_for(pilot, lambda: not isinstance(app.screen, ConfirmScreen))
        await pilot.pause(0.2)
        assert out.read_bytes() == before

        await export(out)
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_for(pilot, lambda: out.read_bytes() != before)
        with mvcdb.open(path, readonly=True) as db, np.load(out) as loaded:
            assert np.array_equal(loaded["layer1.weight"], db.restore(ids["m1"])["layer1.weight"])

        st = tmp_path / "exported.safetensors"
        await export(st, "safetensors")
        await wait_for(pilot, lambda: st.exists())
        from safetensors.numpy import load_file

        with mvcdb.open(path, readonly=True) as db:
            want = db.restore(ids["m1"])
        got = load_file(str(st))
        assert sorted(got) == sorted(want) and all(np.array_equal(got[k], want[k]) for k in want)
        assert errors(app) == []


@pytest.mark.slow  # seconds of pilot work: the full suite (CI) runs it
@synchronous
async def test_copy_id_and_help_and_palette(fx: tuple[Path, dict[str, str]]) -> None:
    path, ids = fx
    async with running(path) as (app, pilot):
        await pilot.press("c")
        assert app.clipboard == ids["m2"]
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, HelpScreen))
        provider = MvcdbCommands(app.screen)
        titles = [hit.text async for hit in provider.discover()]
        for _, action, label, _, _ in MAIN_KEYS:
            assert any(str(t).startswith(label) for t in titles), action
        hits = [hit async for hit in provider.search("sql")]
        assert hits and "SQL" in str(hits[0].text)
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.is_running)


@pytest.mark.slow  # seconds of pilot work: the full suite (CI) runs it
@synchronous
async def test_sql_console_runs_queries_and_refuses_writes(fx: tuple[Path, dict[str, str]]) -> None:
    path, _ = fx
    async with running(path, notifications=True) as (app, pilot):
        await pilot.press("s")
        await wait_for(pilot, lambda: isinstance(app.screen, SqlScreen))
        screen = app.screen
        views = screen.query_one("#sql-views")
        await wait_for(pilot, lambda: views.option_count > 0)  # type: ignore[attr-defined]
        names = [str(views.get_option_at_index(i).id) for i in range(views.option_count)]  # type: ignore[attr-defined]
        assert "versions" in names
        query = screen.query_one("#sql-query", Input)
        query.value = "SELECT model, count(*) AS n FROM versions GROUP BY model ORDER BY model"
        await pilot.press("enter")
        results = screen.query_one("#sql-results", DataTable)
        await wait_for(pilot, lambda: results.row_count == 2)
        assert [str(c) for c in results.get_row_at(0)] == ["linreg", "4"]
        query.value = "DELETE FROM versions"
        await pilot.press("enter")
        await wait_for(pilot, lambda: bool(errors(app)))
        assert "read-only" in errors(app)[-1]
        assert results.row_count == 2  # the last good results stay
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, SqlScreen))
    with mvcdb.open(path, readonly=True) as db:
        assert len(db.versions()) == 6


RECORD_SCRIPT = """
import sys, numpy as np, mvcdb
with mvcdb.open(sys.argv[1]) as db:
    v = db.record("linreg", params={"m": np.float64(2.5)}, metrics={"val_mse": 0.2},
                  parent="linreg@latest", message="recorded by another process")
    print(v.id)
"""


@synchronous
async def test_live_refresh_shows_versions_recorded_by_another_process(
    fx: tuple[Path, dict[str, str]],
) -> None:
    path, ids = fx
    async with running(path) as (app, pilot):
        done = subprocess.run(
            [sys.executable, "-c", RECORD_SCRIPT, str(path)], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        new_id = done.stdout.strip()
        await wait_for(pilot, lambda: new_id in row_ids(app), timeout=15)
        assert table_of(app).row_count == 7
        await wait_for(pilot, lambda: app.current_version is not None and app.current_version.id == ids["m2"])
        assert table_of(app).id_at_cursor() == ids["m2"]  # the cursor stayed on its version


@pytest.mark.slow  # seconds of pilot work: the full suite (CI) runs it
@synchronous
async def test_pages_load_on_scroll(tmp_path: Path) -> None:
    path = tmp_path / "many.db"
    with mvcdb.open(path) as db:
        parent = None
        for i in range(230):
            parent = db.record("m", metrics={"loss": 1 / (i + 1)}, parent=parent, message=f"v{i}")
    app = MvcdbApp(path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: table_of(app).row_count == 200)
        assert app.more
        table = table_of(app)
        table.focus()
        await pilot.press("ctrl+end")
        await wait_for(pilot, lambda: table.row_count == 230)
        assert not app.more
        assert str(table.get_row_at(229)[-1]) == "v0"


@pytest.mark.slow  # seconds of pilot work: the full suite (CI) runs it
@synchronous
async def test_missing_pieces_are_notifications_not_crashes(fx: tuple[Path, dict[str, str]]) -> None:
    path, _ = fx
    async with running(path, notifications=True) as (app, pilot):
        app.apply_filter("[bold]oops")  # markup-looking text is just text
        await wait_for(pilot, lambda: not app.loading and table_of(app).row_count == 0)
        app.apply_filter("")
        await started(pilot, app)  # the rows and the first one's detail are back
        app.action_diff()  # nothing marked, m2 has a parent: diff parent -> m2 works
        await wait_for(pilot, lambda: isinstance(app.screen, DiffScreen))
        await pilot.press("escape")
        app.push_screen(DiffScreen(path, "nosuchref", "linreg@latest"))
        await wait_for(pilot, lambda: bool(errors(app)))
        assert app.is_running


# -- found by a review in tmux: each reproduced by hand first ----------------------------------


def warnings_of(app: MvcdbApp) -> list[str]:
    return [n.message for n in app._notifications if n.severity == "warning"]


def status_of(app: MvcdbApp) -> str:
    return text_of(app.query_one("#status"))


async def submit_filter(pilot: Pilot[None], app: MvcdbApp, text: str) -> None:
    """Type a filter into the `/` box and press enter, as a person does; wait for the rows."""
    await pilot.press("slash")
    app.query_one("#filter", Input).value = text
    await pilot.press("enter")
    await wait_for(pilot, lambda: not app.loading)
    await pilot.pause(0.1)


@pytest.mark.slow  # seconds of pilot work: the full suite (CI) runs it
@synchronous
async def test_sort_next_steps_through_every_column(tmp_path: Path) -> None:
    """o visits every column in turn: metric columns keep their places when a sort reloads the page.

    The newest page holds gamma (val_loss only), so val_loss is the commonest metric; sorted by acc
    the page holds only alpha (both metrics, a tie: acc first by name). Columns chosen afresh on
    each reload swapped places, and o bounced between acc and val_loss forever.
    """
    path = tmp_path / "metrics.db"
    with mvcdb.open(path) as db, db.batch():
        for i in range(205):
            db.record("alpha", metrics={"val_loss": 1.0 + i, "acc": i / 205}, message=f"a{i}")
        for i in range(5):
            db.record("gamma", metrics={"val_loss": i / 10}, message=f"g{i}")
    app = MvcdbApp(path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: table_of(app).row_count == 200 and not app.loading)
        table = table_of(app)
        keys = [str(k.value) for k in table.columns if k.value != "mark"]
        assert keys == ["model", "id", "when", "author", "tags", "metric:val_loss", "metric:acc", "message"]
        seen = []
        for _ in keys:
            await pilot.press("o")
            await wait_for(pilot, lambda: not app.loading)
            await pilot.pause(0.05)
            seen.append(table.sort_column)
        assert seen == [*keys[3:], *keys[:3]]  # after "when": author … message, model, id, when
        assert [str(k.value) for k in table.columns if k.value != "mark"] == keys


@pytest.mark.slow  # seconds of pilot work: the full suite (CI) runs it
@synchronous
async def test_a_refused_filter_is_not_adopted(fx: tuple[Path, dict[str, str]]) -> None:
    """val_mse<abc: one error, the previous filter, rows and status stay; refreshes do not repeat it."""
    path, ids = fx
    async with running(path, notifications=True) as (app, pilot):
        await submit_filter(pilot, app, "model=mlp")
        assert set(row_ids(app)) == {ids["m1"], ids["m2"]}
        await submit_filter(pilot, app, "val_mse<abc")
        await wait_for(pilot, lambda: bool(errors(app)))
        assert len(errors(app)) == 1 and "val_mse" in errors(app)[0]
        assert app.filter_text == "model=mlp" and set(row_ids(app)) == {ids["m1"], ids["m2"]}
        assert "filter: model=mlp" in status_of(app) and "abc" not in status_of(app)
        box = app.query_one("#filter", Input)
        assert box.has_focus and box.value == "val_mse<abc"  # there to correct
        table_of(app).focus()
        await pilot.press("r", "O")
        await wait_for(pilot, lambda: not app.loading)
        await pilot.pause(0.2)
        assert len(errors(app)) == 1
        assert set(row_ids(app)) == {ids["m1"], ids["m2"]}


@pytest.mark.slow  # seconds of pilot work: the full suite (CI) runs it
@synchronous
async def test_no_rows_clear_the_detail_and_rows_back_reload_it(fx: tuple[Path, dict[str, str]]) -> None:
    """A filter matching nothing empties the detail and lineage panes; clearing it shows the first
    row's detail and lineage again."""
    path, ids = fx
    async with running(path) as (app, pilot):
        detail = app.query_one(DetailPane)
        lineage = app.query_one(LineagePane)
        params = app.query_one("#params", DataTable)
        await wait_for(pilot, lambda: params.row_count == 2 and ids["m2"] in lineage.nodes)
        await submit_filter(pilot, app, "nosuchword")
        assert table_of(app).row_count == 0
        assert detail.detail is None and app.current_version is None
        assert text_of(app.query_one("#info")).strip() == "No version selected."
        assert params.row_count == 0
        assert app.query_one("#series", Select).is_blank()
        assert lineage.nodes == {} and not lineage.root.children
        await pilot.press("slash", "escape")
        await wait_for(pilot, lambda: table_of(app).row_count == 6)
        await wait_for(pilot, lambda: detail.detail is not None and detail.detail.version.id == ids["m2"])
        assert ids["m2"] in text_of(app.query_one("#info")) and params.row_count == 2
        await wait_for(pilot, lambda: ids["m2"] in lineage.nodes)


@pytest.mark.slow  # seconds of pilot work: the full suite (CI) runs it
@synchronous
async def test_export_and_tag_refuse_without_a_shown_version(fx: tuple[Path, dict[str, str]]) -> None:
    """With no row shown, e and t say "No version selected." as c does, and open no dialog."""
    path, _ = fx
    async with running(path, notifications=True) as (app, pilot):
        await submit_filter(pilot, app, "model=")
        assert table_of(app).row_count == 0
        for key in ("e", "t", "c"):
            await pilot.press(key)
            await pilot.pause(0.1)
            assert not isinstance(app.screen, ExportScreen | TagScreen), key
            assert warnings_of(app)[-1] == "No version selected.", key
        assert len(warnings_of(app)) == 3


@pytest.mark.slow  # seconds of pilot work: the full suite (CI) runs it
@synchronous
async def test_export_follows_the_typed_extension(fx: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    """A .safetensors name with npz chosen writes safetensors (as `mvcdb restore -o` does), not a ZIP."""
    from safetensors.numpy import load_file

    path, ids = fx
    app = MvcdbApp(path)
    with mvcdb.open(path, readonly=True) as db:
        want = db.restore(ids["m2"])
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await started(pilot, app)
        await select(pilot, app, ids["m2"])

        async def export(dest: Path, fmt: str) -> None:
            await pilot.press("e")
            await wait_for(pilot, lambda: isinstance(app.screen, ExportScreen))
            format_select = app.screen.query_one("#export-format", Select)
            format_select.value = fmt
            await pilot.pause(0.05)
            app.screen.query_one("#export-path", Input).value = str(dest)
            await wait_for(pilot, lambda: format_select.value != fmt)  # the dialog shows what it writes
            await pilot.press("enter")
            await wait_for(pilot, dest.exists)

        st = tmp_path / "mismatch.safetensors"
        await export(st, "npz")
        got = load_file(str(st))
        assert sorted(got) == sorted(want) and all(np.array_equal(got[k], want[k]) for k in want)
        npz = tmp_path / "back.npz"
        await export(npz, "safetensors")
        with np.load(npz) as loaded:
            assert sorted(loaded.files) == sorted(want)
        assert errors(app) == []


@pytest.mark.slow  # seconds of pilot work: the full suite (CI) runs it
@synchronous
async def test_singular_counts_escape_and_help(fx: tuple[Path, dict[str, str]]) -> None:
    """'1 version'; escape on the table clears the filter (not under a dialog); help says the poll."""
    path, _ = fx
    async with running(path) as (app, pilot):
        await submit_filter(pilot, app, "tag=best")
        assert status_of(app).startswith("1 version ·")
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        guide = app.screen.query_one(Markdown).source
        assert f"every\n{app.POLL_SECONDS:g} s" in guide and "two seconds" not in guide
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, HelpScreen))
        assert app.filter_text == "tag=best"  # escape closed the help, only that
        assert table_of(app).has_focus
        await pilot.press("escape")
        await wait_for(pilot, lambda: table_of(app).row_count == 6)
        assert app.filter_text == "" and not app.query_one("#filter", Input).has_class("shown")


@synchronous
async def test_quit_and_help_stay_in_sight_on_an_80_column_terminal(fx: tuple[Path, dict[str, str]]) -> None:
    """The key bar is cut at its end on a narrow terminal: quit and help come first."""
    path, _ = fx
    async with running(path, size=(80, 24)) as (app, pilot):
        shown = text_of(app.query_one(KeyBar))[: 80 - 2]  # its padding: one column a side
        assert "q Quit" in shown and "? Help" in shown, shown


@pytest.mark.slow  # seconds of pilot work: the full suite (CI) runs it
@synchronous
async def test_dialogs_fit_a_60_column_terminal(fx: tuple[Path, dict[str, str]]) -> None:
    """The tag and export dialogs (72 columns wide) narrow to the screen instead of running off it."""
    path, _ = fx
    async with running(path, size=(60, 20)) as (app, pilot):
        for key, screen in (("t", TagScreen), ("e", ExportScreen)):
            table_of(app).focus()
            await pilot.press(key)
            await wait_for(pilot, lambda screen=screen: isinstance(app.screen, screen))
            box = app.screen.query_one(".dialog-box").region
            assert box.x >= 0 and box.right <= 60, (key, box)
            await pilot.press("escape")
            await wait_for(pilot, lambda screen=screen: not isinstance(app.screen, screen))


@pytest.mark.slow  # seconds of pilot work: the full suite (CI) runs it
@synchronous
async def test_a_mark_on_a_version_another_process_removed_is_dropped(
    fx: tuple[Path, dict[str, str]],
) -> None:
    """mvcdb rm in another process: the mark goes, with a warning, instead of a diff that fails."""
    path, ids = fx
    async with running(path, notifications=True) as (app, pilot):
        for version_id in (ids["v1"], ids["v3"]):
            await select(pilot, app, version_id)
            await pilot.press("space")
        assert table_of(app).marks == [ids["v1"], ids["v3"]]
        done = subprocess.run(
            [sys.executable, "-m", "mvcdb", "--db", str(path), "rm", "--force", ids["v3"]],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
        # the mark, the warning and the status bar change in separate steps of the refresh: wait
        # for all three (waiting for the mark alone once read the warning before it was posted)
        await wait_for(
            pilot,
            lambda: (
                table_of(app).marks == [ids["v1"]]
                and any("was removed: no longer marked" in w for w in warnings_of(app))
                and "marked: " + ids["v1"][:12] in status_of(app)
            ),
            timeout=15,
        )

"""The TUI bugs a reviewer reproduced in tmux, each driven through the real app on a real file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tui_helpers import (
    SIZE,
    build_fixture,
    errors,
    row_ids,
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
from mvcdb.tui.components.detail import DetailPane  # noqa: E402
from mvcdb.tui.components.dialogs import ExportScreen, TagScreen  # noqa: E402
from mvcdb.tui.components.help_screen import HelpScreen  # noqa: E402


@pytest.fixture
def fx(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """The TUI tests' fixture database (two models, six versions), private to the test."""
    path = tmp_path / "fixture.db"
    return path, build_fixture(path)


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


@synchronous
async def test_a_refused_filter_is_not_adopted(fx: tuple[Path, dict[str, str]]) -> None:
    """val_mse<abc: one error, the previous filter, rows and status stay; refreshes do not repeat it."""
    path, ids = fx
    app = MvcdbApp(path)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await started(pilot, app)
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


@synchronous
async def test_no_rows_clear_the_detail_and_rows_back_reload_it(fx: tuple[Path, dict[str, str]]) -> None:
    """A filter matching nothing empties the detail; clearing it shows the first row's detail again."""
    path, ids = fx
    app = MvcdbApp(path)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        detail = app.query_one(DetailPane)
        params = app.query_one("#params", DataTable)
        await wait_for(pilot, lambda: params.row_count == 2)
        await submit_filter(pilot, app, "nosuchword")
        assert table_of(app).row_count == 0
        assert detail.detail is None and app.current_version is None
        assert text_of(app.query_one("#info")).strip() == "No version selected."
        assert params.row_count == 0
        assert app.query_one("#series", Select).is_blank()
        await pilot.press("slash", "escape")
        await wait_for(pilot, lambda: table_of(app).row_count == 6)
        await wait_for(pilot, lambda: detail.detail is not None and detail.detail.version.id == ids["m2"])
        assert ids["m2"] in text_of(app.query_one("#info")) and params.row_count == 2


@synchronous
async def test_export_and_tag_refuse_without_a_shown_version(fx: tuple[Path, dict[str, str]]) -> None:
    """With no row shown, e and t say "No version selected." as c does, and open no dialog."""
    path, _ = fx
    app = MvcdbApp(path)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await started(pilot, app)
        await submit_filter(pilot, app, "model=")
        assert table_of(app).row_count == 0
        for key in ("e", "t", "c"):
            await pilot.press(key)
            await pilot.pause(0.1)
            assert not isinstance(app.screen, ExportScreen | TagScreen), key
            assert warnings_of(app)[-1] == "No version selected.", key
        assert len(warnings_of(app)) == 3


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


@synchronous
async def test_singular_counts_escape_and_help(fx: tuple[Path, dict[str, str]]) -> None:
    """'1 version'; escape on the table clears the filter (not under a dialog); help says the poll."""
    path, _ = fx
    app = MvcdbApp(path)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
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

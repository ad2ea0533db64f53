"""Snapshot tests (pytest-textual-snapshot): the main screen, the detail pane and the diff screen.

The fixture database has fixed times and author (see tui_helpers), so its ids and every pixel of
these screens are the same on every run. Update baselines with `pytest --snapshot-update` only
after looking at the report.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from tui_helpers import build_fixture

pytest.importorskip("pytest_textual_snapshot")

from textual.pilot import Pilot  # noqa: E402

from mvcdb.tui.app import MvcdbApp  # noqa: E402
from mvcdb.tui.components.diff_screen import DiffScreen  # noqa: E402

SIZE = (130, 40)


@pytest.fixture(scope="module")
def fixture_ids(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    path = tmp_path_factory.mktemp("snap") / "fixture.db"
    return path, build_fixture(path)


async def _until(pilot: Pilot[None], check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the app did not settle"
        await pilot.pause(0.05)


async def _settled(pilot: Pilot[None], version_id: str) -> None:
    """Wait until a version's detail, norms and lineage are all drawn."""
    app = pilot.app
    assert isinstance(app, MvcdbApp)
    await _until(pilot, lambda: app.current_version is not None and app.current_version.id == version_id)
    await _until(
        pilot, lambda: app.lineage.cursor_node is not None and app.lineage.cursor_node.data == version_id
    )
    params = app.query_one("#params")
    await _until(pilot, lambda: "…" not in str([params.get_row_at(i) for i in range(params.row_count)]))  # type: ignore[attr-defined]
    await app.workers.wait_for_complete()
    await pilot.pause(0.2)


def test_main_screen(snap_compare: Callable[..., bool], fixture_ids: tuple[Path, dict[str, str]]) -> None:
    path, ids = fixture_ids

    async def run_before(pilot: Pilot[None]) -> None:
        await _settled(pilot, ids["m2"])

    assert snap_compare(MvcdbApp(path), terminal_size=SIZE, run_before=run_before)


def test_detail_pane_and_lineage(
    snap_compare: Callable[..., bool], fixture_ids: tuple[Path, dict[str, str]]
) -> None:
    path, ids = fixture_ids

    async def run_before(pilot: Pilot[None]) -> None:
        await _settled(pilot, ids["m2"])
        await pilot.press("down", "down", "down", "down", "down")  # v1: a branch and a merge below it
        await _settled(pilot, ids["v1"])

    assert snap_compare(MvcdbApp(path), terminal_size=SIZE, run_before=run_before)


def test_diff_screen(snap_compare: Callable[..., bool], fixture_ids: tuple[Path, dict[str, str]]) -> None:
    path, ids = fixture_ids

    async def run_before(pilot: Pilot[None]) -> None:
        app = pilot.app
        await _settled(pilot, ids["m2"])
        await pilot.press("down", "down", "down", "down")  # v2
        await _settled(pilot, ids["v2"])
        await pilot.press("space", "down", "space", "d")  # mark v2, v1 (a = v2, b = v1)
        await _until(pilot, lambda: isinstance(app.screen, DiffScreen) and app.screen.report is not None)
        await pilot.pause(0.3)

    assert snap_compare(MvcdbApp(path), terminal_size=SIZE, run_before=run_before)

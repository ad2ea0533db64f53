"""Start-up: `mvcdb --help` against `python -c pass`, and the TUI's first screen on a big file.

Limits: a bare interpreter start (for the CLI), and a minimal Textual app showing a 100-row
DataTable (for the TUI: the least any Textual UI pays to show a first screen).
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .bench_versions import build_versions_db
from .common import measure, row


def _spawn(args: list[str]) -> None:
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _cli_rows(repeats: int) -> list[dict[str, Any]]:
    exe = shutil.which("mvcdb") or str(Path(sys.executable).with_name("mvcdb"))
    t_help = measure(lambda: _spawn([exe, "--help"]), repeats)
    t_pass = measure(lambda: _spawn([sys.executable, "-c", "pass"]), repeats)
    t_import = measure(lambda: _spawn([sys.executable, "-c", "import mvcdb.database"]), repeats)
    return [
        row(
            "mvcdb --help start-up",
            "cold process",
            t_help,
            1,
            "starts/s",
            "python -c pass",
            t_pass.seconds,
            note=f"import mvcdb.database (numpy, sqlite3, zstd): {t_import.seconds * 1e3:.0f} ms",
            peak_rss_mb=None,
        )
    ]


async def _first_screen(db_path: Path) -> float:
    """Seconds from creating the app until its versions table shows rows."""
    from textual.widgets import DataTable

    from mvcdb.tui.app import MvcdbApp

    start = time.perf_counter()
    app = MvcdbApp(db_path)
    async with app.run_test(size=(160, 50)) as pilot:
        table = app.query_one("#versions", DataTable)
        deadline = start + 60
        while table.row_count == 0 and time.perf_counter() < deadline:
            await pilot.pause(0.005)
        if table.row_count == 0:
            raise RuntimeError("the TUI showed no rows within 60 s")
        return time.perf_counter() - start


async def _bare_screen() -> float:
    from textual.app import App, ComposeResult
    from textual.widgets import DataTable

    class Bare(App[None]):
        def compose(self) -> ComposeResult:
            yield DataTable(id="t")

        def on_mount(self) -> None:
            table = self.query_one(DataTable)
            table.add_columns("id", "model", "when", "val_loss")
            table.add_rows([(f"{i:012x}", "model", "2026-01-01", f"{i / 100:.3f}") for i in range(100)])

    start = time.perf_counter()
    app = Bare()
    async with app.run_test(size=(160, 50)) as pilot:
        table = app.query_one(DataTable)
        while table.row_count == 0:
            await pilot.pause(0.005)
        return time.perf_counter() - start


def _tui_rows(quick: bool, repeats: int) -> list[dict[str, Any]]:
    try:
        import mvcdb.tui.app  # noqa: F401
    except ImportError:
        return []
    asyncio.run(_bare_screen())  # import textual once, outside the timings
    out = []
    t_bare = measure(lambda: asyncio.run(_bare_screen()), repeats)
    for n in (10_000, 100_000):
        path = build_versions_db(n, "tree")
        asyncio.run(_first_screen(path))
        t = measure(lambda p=path: asyncio.run(_first_screen(p)), repeats)  # type: ignore[misc]
        out.append(
            row(
                "TUI first screen (versions table shows rows)",
                f"{n:,} versions",
                t,
                1,
                "screens/s",
                "bare Textual app, 100-row table",
                t_bare.seconds,
                target="interactive (< 1 s)",
                met=t.seconds < 1.0,
            )
        )
    return out


def run(quick: bool) -> list[dict[str, Any]]:
    repeats = 3 if quick else 5
    return _cli_rows(repeats) + _tui_rows(quick, repeats)

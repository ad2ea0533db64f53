"""Start-up: `mvcdb --help` against `python -c pass`, and the TUI's first screen on a big file.

Limits: a bare interpreter start (for the CLI), and a minimal Textual app showing a 100-row
DataTable (for the TUI: the least any Textual UI pays to show a first screen). The TUI is timed
twice: from a fresh process (interpreter, imports, opening the file, first screen: what a user
waits for after typing `mvcdb tui`, and what its target is about) and within this process once
textual and mvcdb are imported (what the screen itself costs).
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from .bench_versions import build_versions_db
from .common import Timing, measure, row


def _spawn(args: list[str]) -> None:
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _cli_rows(repeats: int) -> list[dict[str, Any]]:
    # the script installed next to this interpreter, not whichever `mvcdb` comes first on PATH
    local = Path(sys.executable).with_name("mvcdb")
    exe = str(local) if local.exists() else shutil.which("mvcdb")
    if exe is None:
        raise RuntimeError("no `mvcdb` script next to this Python or on PATH")
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
            peak_rss_mb=None,  # the child's memory is not measured (cpu: the child's, it is waited for)
            anon_rise_mb=None,
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


#: A fresh process showing the TUI's first screen headless (as `mvcdb tui PATH` does: the file is
#: opened read-only first), printing a line once the versions table has rows. The command line's
#: own parsing (click, a few ms: see the `mvcdb --help` row) is not part of it.
TUI_CHILD = """
import asyncio, sys
from pathlib import Path

async def main():
    import mvcdb
    from textual.widgets import DataTable
    from mvcdb.tui.app import MvcdbApp

    target = Path(sys.argv[1])
    mvcdb.open(target, readonly=True).close()
    app = MvcdbApp(target)
    async with app.run_test(size=(160, 50)) as pilot:
        table = app.query_one("#versions", DataTable)
        while table.row_count == 0:
            await pilot.pause(0.005)
        print("shown", flush=True)

asyncio.run(main())
"""

#: The limit for TUI_CHILD: a fresh process showing a bare Textual app's 100-row table.
BARE_CHILD = """
import asyncio
from textual.app import App
from textual.widgets import DataTable

class Bare(App):
    def compose(self):
        yield DataTable(id="t")

    def on_mount(self):
        table = self.query_one(DataTable)
        table.add_columns("id", "model", "when", "val_loss")
        table.add_rows([(f"{i:012x}", "model", "2026-01-01", f"{i / 100:.3f}") for i in range(100)])

async def main():
    app = Bare()
    async with app.run_test(size=(160, 50)) as pilot:
        table = app.query_one(DataTable)
        while table.row_count == 0:
            await pilot.pause(0.005)
        print("shown", flush=True)

asyncio.run(main())
"""


class FreshScreen:
    """A fresh process running `code`, timed from its start until it prints that its table shows
    rows; its exit (after the screen is up) and the checks are in finish(), not timed."""

    def __init__(self, code: str, *args: str) -> None:
        self.argv = [sys.executable, "-c", code, *args]
        self.proc: subprocess.Popen[bytes] | None = None
        self.err: IO[bytes] | None = None
        self.line = b""

    def start(self) -> None:
        """The timed part: start the process, wait for its line (60 s at most)."""
        self.err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=self.err)
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 60)
        self.line = self.proc.stdout.readline() if ready else b""

    def finish(self) -> None:
        proc, err = self.proc, self.err
        assert proc is not None and err is not None
        self.proc = self.err = None
        try:
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        with err:
            if self.line.strip() != b"shown" or proc.returncode != 0:
                err.seek(0)
                tail = err.read().decode(errors="replace").strip()[-500:]
                raise RuntimeError(
                    f"the TUI process showed no rows within 60 s (exit {proc.returncode}): {tail}"
                )

    def measure(self, repeats: int) -> Timing:
        try:
            return measure(self.start, repeats, teardown=self.finish)
        except BaseException:  # start() failed or was interrupted: leave no process behind
            if self.proc is not None:
                self.proc.kill()
                self.finish_quietly()
            raise

    def finish_quietly(self) -> None:
        with contextlib.suppress(Exception):
            self.finish()


def _tui_rows(quick: bool, repeats: int) -> list[dict[str, Any]]:
    asyncio.run(_bare_screen())  # import textual once, outside the in-process timings
    out = []
    t_bare = measure(lambda: asyncio.run(_bare_screen()), repeats)
    t_bare_fresh = FreshScreen(BARE_CHILD).measure(repeats)
    for n in (10_000, 100_000):
        path = build_versions_db(n, "tree")
        asyncio.run(_first_screen(path))
        t_fresh = FreshScreen(TUI_CHILD, str(path)).measure(repeats)
        t = measure(lambda p=path: asyncio.run(_first_screen(p)), repeats)  # type: ignore[misc]
        out.append(
            row(
                "TUI first screen from a fresh process (start-up and imports included)",
                f"{n:,} versions",
                t_fresh,
                1,
                "screens/s",
                "bare Textual app, 100-row table, fresh process",
                t_bare_fresh.seconds,
                target="interactive (< 1 s)",
                met=t_fresh.seconds < 1.0,
                peak_rss_mb=None,  # the child's memory and CPU are not measured
                anon_rise_mb=None,
                cpu_seconds=None,
            )
        )
        out.append(
            row(
                "TUI first screen in process (textual, mvcdb imported)",
                f"{n:,} versions",
                t,
                1,
                "screens/s",
                "bare Textual app, 100-row table",
                t_bare.seconds,
            )
        )
    return out


def run(quick: bool) -> Iterator[dict[str, Any]]:
    repeats = 3 if quick else 5
    yield from _cli_rows(repeats)
    yield from _tui_rows(quick, repeats)

"""For the TUI tests: a small deterministic database (fixed times and author, so ids are fixed too)
and the helpers that drive the app with its pilot. Textual is imported lazily: a test module skips
itself (pytest.importorskip) when textual is missing, after importing this."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import itertools
import shutil
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from unittest import mock

import numpy as np
import pytest

import mvcdb

if TYPE_CHECKING:
    from textual.pilot import Pilot

    from mvcdb.tui.app import MvcdbApp
    from mvcdb.tui.components.versions_table import VersionsTable

AUTHOR = "ada"
#: The terminal size the pilot tests run in.
SIZE = (120, 36)


def synchronous(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test with asyncio.run (no pytest async plugin needed)."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))

    return run


async def wait_for(pilot: Pilot[None], check: Callable[[], bool], timeout: float = 10.0) -> None:
    """Let the app run until check() holds (workers and timers included), or fail."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("the app did not reach the expected state in time")
        await pilot.pause(0.05)


def table_of(app: MvcdbApp) -> VersionsTable:
    """The main screen's versions table (whatever screen is on top)."""
    from mvcdb.tui.components.versions_table import VersionsTable

    return app.screen_stack[0].query_one("#versions", VersionsTable)


def row_ids(app: MvcdbApp) -> list[str]:
    """The full ids of the table's rows, top to bottom."""
    return [str(row.key.value) for row in table_of(app).ordered_rows]


@contextlib.asynccontextmanager
async def running(
    path: Path, *, notifications: bool = False, size: tuple[int, int] = SIZE
) -> AsyncIterator[tuple[MvcdbApp, Pilot[None]]]:
    """The app on path, under its pilot (at SIZE), once the first page and detail have loaded."""
    from mvcdb.tui.app import MvcdbApp

    app = MvcdbApp(path)
    async with app.run_test(size=size, notifications=notifications) as pilot:
        await started(pilot, app)
        yield app, pilot


async def started(pilot: Pilot[None], app: MvcdbApp, rows: int = 6) -> None:
    """Wait for the first page of rows and the first version's detail."""
    await wait_for(pilot, lambda: table_of(app).row_count == rows and app.current_version is not None)


async def select(pilot: Pilot[None], app: MvcdbApp, version_id: str) -> None:
    """Move the table cursor onto a version and wait for its detail."""
    table = table_of(app)
    table.focus()
    table.move_cursor(row=table.get_row_index(version_id))
    await wait_for(pilot, lambda: app.current_version is not None and app.current_version.id == version_id)


def text_of(widget: Any) -> str:
    """What a Static shows, as plain text."""
    from rich.console import Console

    console = Console(width=200, record=True, file=io.StringIO())
    console.print(widget.content)
    return console.export_text()


def errors(app: MvcdbApp) -> list[str]:
    """The messages of the error notifications shown so far."""
    return [n.message for n in app._notifications if n.severity == "error"]


@contextlib.contextmanager
def fixed_clock(start_minute: int = 0) -> Iterator[None]:
    """Stamp versions and tag moves with 2026-01-01T10:MM:00Z, one minute apart, by `ada`."""
    minutes = itertools.count(start_minute)

    def now() -> str:
        m = next(minutes)
        return f"2026-01-01T{10 + m // 60:02d}:{m % 60:02d}:00.000000Z"

    with (
        mock.patch("mvcdb.database.now_text", now),
        mock.patch("mvcdb.database.current_author", lambda: AUTHOR),
    ):
        yield


def fixture_in(tmp_path_factory: pytest.TempPathFactory, name: str) -> tuple[Path, dict[str, str]]:
    """The fixture database built once in a fresh directory named name, and its names -> ids."""
    path = tmp_path_factory.mktemp(name) / "fixture.db"
    return path, build_fixture(path)


def private_copy(fixture: tuple[Path, dict[str, str]], tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A private copy of the fixture database in tmp_path (tests tag and record into it)."""
    path = tmp_path / "fixture.db"
    shutil.copy(fixture[0], path)
    return path, fixture[1]


def _curve(n: int, start: float, end: float, wiggle: float) -> np.ndarray:
    steps = np.arange(n, dtype=np.float64)
    return end + (start - end) * np.exp(-steps / (n / 5)) + wiggle * np.sin(steps / 3)


def build_fixture(path: Path) -> dict[str, str]:
    """Record two models with a branch, a merge, tags and trajectories; return names -> ids."""
    ids: dict[str, str] = {}
    with fixed_clock(), mvcdb.open(path) as db:
        n = 60
        meta = {"train_set": "train.csv", "val_set": "val.csv", "hyper": {"lr": 0.01}}
        v1 = db.record(
            "linreg",
            params={"m": np.float64(2.31), "b": np.float64(-0.87)},
            metrics={"val_mse": 0.31, "train_mse": 0.29},
            metadata=meta,
            trajectory={"loss": _curve(n, 9.0, 0.3, 0.01), "m": np.linspace(0, 2.31, n)},
            message="first fit, lr=0.01",
        )
        v2 = db.record(
            "linreg",
            params={"m": np.float64(2.49), "b": np.float64(-0.99)},
            metrics={"val_mse": 0.228, "train_mse": 0.25},
            metadata={**meta, "hyper": {"lr": 0.05}},
            trajectory={"loss": _curve(n, 6.0, 0.25, 0.02), "m": np.linspace(2.31, 2.49, n)},
            parent=v1,
            message="more steps, lr=0.05",
        )
        v3 = db.record(
            "linreg",
            params={"m": np.float64(2.40), "b": np.float64(-1.02)},
            metrics={"val_mse": 0.26, "train_mse": 0.27},
            metadata={**meta, "hyper": {"lr": 0.02}, "note": "branch"},
            parent=v1,
            message="branch: other seed",
        )
        v4 = db.record(
            "linreg",
            params={"m": np.float64(2.45), "b": np.float64(-1.0)},
            metrics={"val_mse": 0.24, "train_mse": 0.26},
            metadata={**meta, "soup": True},
            parents=[v2, v3],
            message="soup of the two",
        )
        db.tag(v1, "production")
        db.tag(v2, "production")
        db.tag(v4, "best")
        rng = np.random.default_rng(0)
        w = rng.normal(size=(4, 3)).astype(np.float32)
        m1 = db.record(
            "mlp",
            params={"layer1": {"weight": w, "bias": np.zeros(3, np.float32)}},
            metrics={"val_loss": 0.52, "acc": 0.81},
            metadata={"train_set": "digits", "epochs": 3},
            trajectory={
                "loss": _curve(30, 2.0, 0.5, 0.05),
                "weight": np.stack([w * (i / 29) for i in range(30)]),
            },
            message="baseline",
        )
        m2 = db.record(
            "mlp",
            params={"layer1": {"weight": w * 1.1, "bias": np.full(3, 0.1, np.float32)}},
            metrics={"val_loss": 0.41, "acc": 0.86},
            metadata={"train_set": "digits", "epochs": 6},
            trajectory={
                "loss": _curve(30, 1.5, 0.4, 0.05),
                "weight": np.stack([w * 1.1 * (i / 29) for i in range(30)]),
            },
            parent=m1,
            message="longer training",
        )
    ids.update(v1=v1.id, v2=v2.id, v3=v3.id, v4=v4.id, m1=m1.id, m2=m2.id)
    return ids

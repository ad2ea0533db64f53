"""A file whose write lock another connection holds: record() waits for it within the busy
timeout, else fails with BusyError (the CLI with one line) and writes nothing. A connection that
met another writer polls for the lock for a while; alone, it begins its transactions directly."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import assert_error, run

import mvcdb
from mvcdb import connection


@pytest.fixture
def path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MVCDB_BUSY_TIMEOUT", "0.3")  # read when a connection opens
    target = tmp_path / "locked.db"
    with mvcdb.open(target) as db:
        db.record("m", {"w": np.zeros(3)})
    return target


@pytest.fixture
def polls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """One entry per BEGIN that polled for the lock (instead of beginning directly)."""
    calls: list[int] = []
    real = connection._begin_polling

    def spy(conn: sqlite3.Connection, **options: float) -> bool:
        calls.append(1)
        return real(conn, **options)

    monkeypatch.setattr(connection, "_begin_polling", spy)
    return calls


def _hold_lock(path: Path) -> sqlite3.Connection:
    """Another writer, in the middle of a transaction (a connection of its own holds the lock)."""
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    return other


@pytest.fixture
def held(path: Path) -> Iterator[sqlite3.Connection]:
    other = _hold_lock(path)
    yield other
    other.close()


def _count(path: Path) -> int:
    with mvcdb.open(path, readonly=True) as db:
        return int(db.conn.execute("SELECT count(*) FROM versions").fetchone()[0])


def test_alone_every_begin_is_direct(path: Path, polls: list[int]) -> None:
    with mvcdb.open(path) as db:
        for i in range(20):
            db.record("m", {"w": np.full(3, i)})
        assert db.conn.poll_until == 0.0
    assert polls == []
    assert _count(path) == 21


def test_a_released_lock_is_waited_for_then_polled_for(path: Path, polls: list[int]) -> None:
    with mvcdb.open(path) as db:
        other = _hold_lock(path)
        releaser = threading.Timer(0.1, other.rollback)
        releaser.start()
        try:
            db.record("m", {"w": np.ones(3)})  # waits in SQLite's busy handler, then writes
        finally:
            releaser.join()
            other.close()
        assert polls == []
        assert db.conn.poll_until > 0.0  # it met another writer: the next BEGINs poll
        db.record("m", {"w": np.full(3, 2.0)})
        assert polls == [1]
        db.conn.poll_until = time.monotonic() - 1  # as if POLL_FOR had passed without contention
        db.record("m", {"w": np.full(3, 3.0)})
        assert polls == [1]
    assert _count(path) == 4


def test_writers_poll_while_their_checkpointer_finishes_the_wal(path: Path, polls: list[int]) -> None:
    """Their own checkpointer holding the lock is no sign of other writers: once it is done, the
    next BEGINs go direct again."""
    with mvcdb.open(path) as db:
        running = db.conn.checkpointer
        assert running is not None
        other = _hold_lock(path)  # as the checkpointer does to finish the WAL
        running.finishing = True

        def finish() -> None:
            other.rollback()
            running.finishing = False

        finisher = threading.Timer(0.05, finish)
        finisher.start()
        try:
            db.record("m", {"w": np.ones(3)})  # polls until the lock is free, then writes
        finally:
            finisher.join()
            other.close()
        assert polls == [1]
        assert db.conn.poll_until == 0.0
        db.record("m", {"w": np.full(3, 2.0)})
        assert polls == [1]
    assert _count(path) == 3


@pytest.mark.parametrize("polling", [False, True], ids=["direct", "polling"])
def test_a_lock_held_past_the_busy_timeout_raises_busy_and_writes_nothing(
    path: Path, held: sqlite3.Connection, polling: bool
) -> None:
    with mvcdb.open(path) as db:
        if polling:
            db.conn.poll_until = time.monotonic() + 60
        with pytest.raises(mvcdb.BusyError, match="locked by other writers past the busy timeout"):
            db.record("m", {"w": np.ones(3)}, metrics={"loss": 0.5})
        assert not db.conn.in_transaction
        held.rollback()  # the other writer finishes: the same call now goes through
        db.record("m", {"w": np.ones(3)}, metrics={"loss": 0.5})
    assert _count(path) == 2


def test_cli_says_locked_in_one_line(path: Path, held: sqlite3.Connection, tmp_path: Path) -> None:
    params = tmp_path / "p.npz"
    np.savez(params, w=np.ones(3))
    result = run(path, ["record", "m", "-p", str(params)], MVCDB_BUSY_TIMEOUT="0.3")
    assert_error(result, 1, "locked", "MVCDB_BUSY_TIMEOUT")
    held.rollback()
    assert _count(path) == 1


@pytest.mark.parametrize(
    ("setting", "seconds"),
    [
        ("2.5", 2.5),
        ("-5", 0.0),
        ("inf", connection.MAX_BUSY_TIMEOUT),
        ("1e999", connection.MAX_BUSY_TIMEOUT),
        ("", 60.0),
    ],
)
def test_busy_timeout_setting_is_always_a_wait_sqlite_can_hold(
    setting: str, seconds: float, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MVCDB_BUSY_TIMEOUT", setting)
    assert connection.busy_timeout_seconds() == seconds
    with mvcdb.open(tmp_path / "t.db") as db:  # inf once broke every open (int(inf) overflows)
        db.record("m", {"w": np.zeros(2)})
    result = run(tmp_path / "t.db", ["log"], MVCDB_BUSY_TIMEOUT=setting)
    assert result.exit_code == 0 and "m" in result.output


def test_close_waits_for_a_held_lock_no_longer_than_the_busy_timeout(
    path: Path, held: sqlite3.Connection
) -> None:
    """The closing checkpoint waits at most the busy timeout (0.3 s here), not CHECKPOINT_WAIT_MS."""
    db = mvcdb.open(path)
    with pytest.raises(mvcdb.errors.BusyError):
        db.record("m", {"w": np.ones(3)})
    start = time.monotonic()
    db.close()
    assert time.monotonic() - start < connection.CHECKPOINT_WAIT_MS / 1000 / 2


def test_a_readonly_refusal_names_the_file_to_blame(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite opens read-only when it may not write the -wal/-shm (another user's session left
    them in a shared directory); the error then says which file, not just "read-only". (Tests
    may run as root, who may write anything: the permission check is what is simulated.)"""
    real_access = os.access
    cases = [
        (f"{path}-shm", f"{path}-shm is not writable for you"),
        (str(path), f"{path} is read-only for you"),
    ]
    with mvcdb.open(path) as db:
        for blamed, needle in cases:
            Path(blamed).touch()
            with monkeypatch.context() as patched:
                patched.setattr(os, "access", lambda p, mode, b=blamed: p != b and real_access(p, mode))
                assert needle in connection._why_readonly(db.conn)
        assert connection._why_readonly(db.conn) == "the database is open read-only; it cannot be written"


@pytest.mark.parametrize(
    ("variable", "setting"),
    [("MVCDB_BUSY_TIMEOUT", "soon"), ("MVCDB_BUSY_TIMEOUT", "nan"), ("MVCDB_JOURNAL", "delet")],
)
def test_a_misspelt_setting_is_an_error_naming_it(
    variable: str, setting: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """They fell back to the defaults silently: MVCDB_JOURNAL=delet on a network share meant WAL."""
    monkeypatch.setenv(variable, setting)
    with pytest.raises(mvcdb.MvcdbError, match=f"{variable} must be .*{setting!r}"):
        mvcdb.open(tmp_path / "t.db")
    assert not (tmp_path / "t.db").exists()
    assert_error(run(tmp_path / "t.db", ["init"], **{variable: setting}), 1, variable, repr(setting))

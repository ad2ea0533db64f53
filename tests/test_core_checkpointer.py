"""The background WAL checkpointer: commits never run a checkpoint; a thread folds the WAL in,
held back during big writes, stopped (and the WAL folded) on close."""

from __future__ import annotations

import gc
import os
import signal
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from reliability_helpers import finish_small_wals

import mvcdb
from mvcdb import blobstore, checkpointer


def _wait_for(cond: Callable[[], bool], seconds: float = 30.0) -> bool:
    """Poll cond until it holds or the (generous) deadline passes: a bound, not a timing check."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return cond()


def _wal_frames(path: Path) -> tuple[int, int]:
    """(frames in the WAL, frames already copied into the main file), asked of a fresh connection."""
    conn = sqlite3.connect(path)
    try:
        _, log, done = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return int(log), int(done)
    finally:
        conn.close()


def _checkpointer_of(db: mvcdb.Database) -> checkpointer.Checkpointer:
    found = getattr(db.conn, "checkpointer", None)
    assert isinstance(found, checkpointer.Checkpointer)
    return found


def _small(db: mvcdb.Database, i: int) -> mvcdb.Version:
    return db.record("m", {"w": np.full(8, i, dtype=np.float32)}, metrics={"loss": 1.0 / (i + 1)})


def test_a_writable_file_checkpoints_in_the_background_not_in_commits(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    with mvcdb.open(path) as db:
        assert db.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        cp = _checkpointer_of(db)
        for i in range(20):
            _small(db, i)
        assert _wait_for(lambda: cp.runs >= 1)
        with db.batch():  # nothing new after the wait: the WAL is fully copied by the next run
            pass
        assert _wait_for(lambda: _wal_frames(path)[0] == _wal_frames(path)[1])
        thread = cp._thread
        assert thread is not None and thread.name == "mvcdb-checkpoint" and thread.is_alive()
    assert not thread.is_alive()  # close() stopped it ...
    wal = Path(f"{path}-wal")
    assert not wal.exists() or wal.stat().st_size == 0  # ... and folded the WAL in
    with mvcdb.open(path, readonly=True) as again:
        assert len(again.versions()) == 20
        assert again.verify().ok


def test_bursts_of_commits_share_checkpoints(tmp_path: Path) -> None:
    with mvcdb.open(tmp_path / "m.db") as db:
        cp = _checkpointer_of(db)
        cp.interval = 3600.0
        _small(db, 100)
        time.sleep(0.2)
        assert cp.runs == 0  # none in a just-opened file's first interval: close() does it
        with cp._cond:
            cp._last = 0.0  # one checkpoint now, then none until the interval has passed
            cp._cond.notify()
        for i in range(30):
            _small(db, i)
        assert _wait_for(lambda: cp.runs == 1)
        time.sleep(0.2)
        assert cp.runs == 1 and cp._pending  # the later commits wait for the next turn


def test_a_big_write_holds_the_checkpoint_until_it_is_done(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    big = np.random.default_rng(1).standard_normal(blobstore.BULK_BYTES // 4 + 1000).astype(np.float32)
    with mvcdb.open(path) as db:
        cp = _checkpointer_of(db)
        cp.interval = 0.0
        with checkpointer.held(db.conn):
            for i in range(5):
                _small(db, i)
            time.sleep(0.2)
            assert cp.runs == 0  # held: commits only mark the WAL as due
        assert _wait_for(lambda: cp.runs == 1)  # released: due at once
        seen: list[int] = []
        original = db.store._put_windows

        def spying(pieces: list[blobstore._Piece]) -> tuple[list[bytes], list[int]]:
            seen.append(cp._held)
            return original(pieces)

        db.store._put_windows = spying  # type: ignore[method-assign]
        v = db.record("m", {"big": big})
        assert seen == [1]  # the chunks were written with the checkpoint held back
        assert _wait_for(lambda: cp.runs >= 2)
        with mvcdb.open(path, readonly=True) as other:  # atomic at return: another reader sees it
            assert other.restore(v.id)["big"].tobytes() == big.tobytes()


def test_read_only_and_rollback_journal_files_have_no_checkpointer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "m.db"
    with mvcdb.open(path) as db:
        _small(db, 0)
    with mvcdb.open(path, readonly=True) as db:
        assert getattr(db.conn, "checkpointer", None) is None
    monkeypatch.setenv("MVCDB_JOURNAL", "delete")
    with mvcdb.open(path) as db:
        assert getattr(db.conn, "checkpointer", None) is None
        _small(db, 1)
        assert len(db.versions()) == 2


def test_a_database_dropped_without_close_stops_its_thread(tmp_path: Path) -> None:
    db = mvcdb.open(tmp_path / "m.db")
    _small(db, 0)
    thread = _checkpointer_of(db)._thread
    assert thread is not None
    db.store.close()
    del db
    gc.collect()
    assert _wait_for(lambda: not thread.is_alive())


def test_stop_restores_the_autocheckpoint(tmp_path: Path) -> None:
    with mvcdb.open(tmp_path / "m.db") as db:
        _small(db, 0)
        checkpointer.stop(db.conn)
        assert getattr(db.conn, "checkpointer", None) is None
        assert db.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == checkpointer.AUTOCHECKPOINT_PAGES
        _small(db, 1)  # commits still work, with SQLite's own autocheckpoint
        checkpointer.stop(db.conn)  # twice is harmless


def test_a_long_run_of_commits_keeps_the_wal_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A checkpoint beside a busy writer never finds the WAL wholly copied; the finishing step
    (catch-up passes, then the last frames under the write lock) lets the WAL start over."""
    finish_small_wals(monkeypatch)
    path = tmp_path / "m.db"
    wal = Path(f"{path}-wal")
    with mvcdb.open(path) as db:
        cp = _checkpointer_of(db)
        cp.interval = 0.0
        salts: set[bytes] = set()  # the WAL header's salt changes each time the WAL starts over
        count = 0
        while len(salts) < 3 and count < 20_000:  # a bound, not a timing check: a loaded machine
            _small(db, count)  # only takes more commits before the thread finishes twice
            count += 1
            fd = os.open(wal, os.O_RDONLY)  # (SQLite locks the main file and -shm, never the WAL)
            try:
                salts.add(os.pread(fd, 4, 16))
            finally:
                os.close(fd)
        assert len(salts) >= 3, "the WAL never started over"
        assert wal.stat().st_size < count * 8 * 8192  # smaller than the pages written (~10 a commit)
        assert db.verify().ok
    with mvcdb.open(path, readonly=True) as again:
        assert len(again.versions()) == count


def test_the_main_file_is_synced_before_the_writer_is_held(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pages the catch-up passes copied are flushed before the write lock is taken, so the
    last pass -- the one the writer waits for -- syncs only its own few."""
    finish_small_wals(monkeypatch)
    synced: list[bool] = []  # for each sync: was the writer held at the time?
    real_sync = checkpointer.sync_data

    def spy(path: str) -> bool:
        synced.append(cp.finishing)
        return real_sync(path)

    monkeypatch.setattr(checkpointer, "sync_data", spy)
    with mvcdb.open(tmp_path / "m.db") as db:
        cp = _checkpointer_of(db)
        cp.interval = 0.0
        for i in range(300):
            _small(db, i)
        assert _wait_for(lambda: len(synced) >= 1)
    assert synced and not any(synced)


def test_a_stopping_checkpointer_leaves_the_rest_to_close(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stopped during its catch-up passes, the thread neither goes on nor takes the write lock:
    close() is about to fold the whole WAL in anyway."""
    passes: list[int] = []

    def passive(conn: sqlite3.Connection) -> int:
        passes.append(1)
        cp._stopping = True  # close() stops it while this pass runs
        return checkpointer.FINISH_FRAMES + 100 * len(passes)  # a writer keeps adding frames

    monkeypatch.setattr(checkpointer, "_passive", passive)
    monkeypatch.setattr(checkpointer, "sync_data", lambda path: pytest.fail("synced while stopping"))
    cp = checkpointer.Checkpointer(":unused:")
    cp._checkpoint(sqlite3.connect(":memory:"))
    assert passes == [1]
    assert not cp.finishing


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_neither_hangs_nor_checkpoints(tmp_path: Path) -> None:
    with mvcdb.open(tmp_path / "m.db") as db:
        _small(db, 0)
        cp = _checkpointer_of(db)
        with cp._cond:  # the parent holds the lock at the moment of the fork
            pid = os.fork()
            if pid == 0:  # the child
                code = 1
                try:
                    signal.alarm(10)  # a poke waiting on the parent's lock would hang: die instead
                    cp.poke()
                    code = 0 if cp._thread is None else 3  # no thread: SQLite must not cross a fork
                finally:
                    os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        _small(db, 1)  # the parent goes on as before
        assert _wait_for(lambda: cp.runs >= 1)


def test_gc_keeps_a_checkpointer_running(tmp_path: Path) -> None:
    with mvcdb.open(tmp_path / "m.db") as db:
        _small(db, 0)
        db.gc()
        assert isinstance(db.conn.checkpointer, checkpointer.Checkpointer)  # type: ignore[attr-defined]
        assert db.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        _small(db, 1)
        assert len(db.versions()) == 2

"""WAL checkpoints on a thread of their own, so that commits (almost) never wait for one.

SQLite's autocheckpoint runs inside whichever COMMIT takes the WAL past 1,000 pages: that commit
copies the pages into the main file and syncs twice. With small versions (13 WAL pages a commit)
one record() in ~80 took 10-40 ms instead of ~0.6 ms, a third of the time of a loop of records.
A writable Database instead turns the autocheckpoint off and runs PASSIVE checkpoints -- which
never block readers or writers -- on a background thread with its own connection: after a
commit, at most one every INTERVAL seconds. A big write holds them back until it is done, so its
bytes are copied once, after record() returns, and not while it still needs both cores.

The WAL starts over from its beginning (instead of growing) only when a write finds it wholly
copied, which a checkpoint running beside a busy writer never achieves. So once the WAL passes
FINISH_FRAMES, the thread copies it in back-to-back passes until little is left, then takes the
write lock for the moment it takes to copy that (a few ms, every few hundred small versions):
the next write starts the WAL over and it stays about FINISH_FRAMES long. (A file that is reused,
not cut back and regrown, also costs no block allocation, which stalled writes here.) When the
passes cannot catch up (a saturated disk), the WAL grows up to LIMIT_FRAMES before the finishing
pass runs anyway. The main file is synced ahead of that pass, so the writer is held only while the
last few pages are synced; its BEGINs poll every millisecond meanwhile.

Durability is unchanged (WAL with synchronous=NORMAL): a commit is atomic at once and durable at
the next checkpoint or close().
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

from .errors import BusyError
from .heldfiles import sync_data

#: The shortest time between two background checkpoints. Commits in between only mark the WAL
#: as having new pages: a burst of small versions is folded in a few checkpoints, not hundreds.
INTERVAL = 0.25
#: Once the WAL holds this many frames (16 MiB of 8 KiB pages: with what comes in meanwhile it
#: stays under JOURNAL_SIZE_LIMIT, reused, not cut and regrown), it is wholly copied so that the
#: next write starts it over.
FINISH_FRAMES = 2048
#: Before that, back-to-back passes (at most CATCH_UP_PASSES) run until one finds at most
#: CATCH_UP_FRAMES new frames: what is copied with writers held back is ~1 ms of syncing per 64.
CATCH_UP_FRAMES = 256
CATCH_UP_PASSES = 8
#: Past this, the WAL is finished even when the passes did not catch up (it holds the writer
#: for as long as the rest takes to copy): the bound on the WAL (256 MiB).
LIMIT_FRAMES = 16 * FINISH_FRAMES
#: How long the thread waits for the write lock to finish a WAL (writers hold it for ms).
LOCK_WAIT = 2.0
#: The autocheckpoint (WAL pages) a connection goes back to when its checkpointer stops.
AUTOCHECKPOINT_PAGES = 1000


class Checkpointer:
    """Runs `PRAGMA wal_checkpoint(PASSIVE)` on one file from a daemon thread when poked."""

    def __init__(self, path: str, interval: float = INTERVAL) -> None:
        self.path = path
        self.interval = interval
        self.runs = 0  # checkpoints completed (for tests and curiosity)
        self._cond = threading.Condition()
        self._pending = False  # commits since the last checkpoint started
        self._held = 0  # big writes in progress: checkpoint after them, not during
        self._stopping = False
        self.finishing = False  # holding the write lock to finish a WAL: writers poll meanwhile
        # when the last checkpoint started: "now" at first, so a short-lived process (a CLI
        # command) leaves its few pages to close() instead of syncing them twice
        self._last = time.monotonic()
        self._thread: threading.Thread | None = None
        _alive.add(self)

    def _after_fork(self) -> None:
        """In a forked child: a fresh lock (the parent's thread may have held this one), and no
        checkpoints at all -- SQLite connections must not cross a fork, and its lock state for
        this file came along; a child that writes through the parent's Database anyway gets its
        WAL folded in by close()."""
        self._cond = threading.Condition()
        self._thread = None
        self._stopping = True

    def poke(self) -> None:
        """A commit added pages to the WAL: checkpoint them soon (never waits)."""
        if self._pending and not self._held and self._thread is not None and self._thread.is_alive():
            return  # already due (the thread clears the flag before it starts a checkpoint)
        with self._cond:
            self._pending = True
            self._wake()

    def _wake(self) -> None:
        """Let the thread start a checkpoint if one is due (call with the lock held)."""
        if not self._pending or self._held or self._stopping:
            return
        if self._thread is None or not self._thread.is_alive():  # the first time, or after a fork
            self._thread = threading.Thread(target=self._run, name="mvcdb-checkpoint", daemon=True)
            self._thread.start()
        self._cond.notify()

    @contextmanager
    def held(self) -> Iterator[None]:
        """No checkpoint starts inside the block; one is due right after it."""
        with self._cond:
            self._held += 1
        try:
            yield
        finally:
            with self._cond:
                self._held -= 1
                self._pending = True
                self._wake()

    def stop(self, wait: bool = True) -> None:
        """End the thread (a checkpoint already running completes first when wait is True)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            thread = self._thread
        if wait and thread is not None and thread is not threading.current_thread():
            thread.join()

    def _due(self) -> bool:
        """Wait until a checkpoint should start; False when stopping (call with the lock held)."""
        while True:
            if self._stopping:
                return False
            if self._pending and not self._held:
                delay = self._last + self.interval - time.monotonic()
                if delay <= 0:
                    self._pending = False
                    self._last = time.monotonic()
                    return True
                self._cond.wait(delay)
            else:
                self._cond.wait()

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        """A PASSIVE checkpoint; past FINISH_FRAMES, catch-up passes and a finishing one."""
        frames = _passive(conn)
        if frames < FINISH_FRAMES:
            return
        for _ in range(CATCH_UP_PASSES):  # what came in meanwhile, back to back: each pass is
            if self._stopping:  # shorter than the one before while the writer is slower than us
                return  # (close() is waiting to fold in the rest itself)
            before = frames
            frames = _passive(conn)
            if frames - before <= CATCH_UP_FRAMES:
                break
        else:
            if frames < LIMIT_FRAMES:  # not caught up (slow disk?): finishing would hold the
                return  # writer for long; let the WAL grow and try again next time
        # SQLite syncs the main file only in a pass that copies the whole WAL -- the last one,
        # with the writer held -- so that pass would also flush every page the passes above
        # copied. Flush them now, copy what came in meanwhile and flush again: the writer then
        # waits only while its last few frames and pages are synced (5-8 ms, was 10-20 ms).
        sync_data(self.path)  # (through SQLite's own descriptor: see heldfiles.py)
        _passive(conn)
        sync_data(self.path)
        # Hold the write lock on a second connection (its snapshot is the latest, so it pins
        # nothing) while the last frames are copied: then the WAL is wholly copied.
        from .connection import with_retry  # (connection imports this module)

        lock = sqlite3.connect(self.path, isolation_level=None, timeout=0)
        self.finishing = True
        try:  # poll: the writer leaves the lock free for ~0.1 ms between its transactions
            with_retry(
                lambda: lock.execute("BEGIN IMMEDIATE"), timeout=LOCK_WAIT, first_delay=1e-4, max_delay=5e-4
            )
            try:
                _passive(conn)
            finally:
                lock.execute("ROLLBACK")
        finally:
            self.finishing = False
            lock.close()

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        try:
            while True:
                with self._cond:
                    if not self._due():
                        return
                try:
                    if conn is None:
                        conn = sqlite3.connect(self.path, isolation_level=None, timeout=0)
                    self._checkpoint(conn)
                    self.runs += 1
                except (sqlite3.Error, BusyError):
                    pass  # busy with another process's checkpoint, or closing: the next one does it
        finally:
            if conn is not None:
                conn.close()


def _passive(conn: sqlite3.Connection) -> int:
    """Run a PASSIVE checkpoint (it never waits for readers or writers); the WAL's frames."""
    return int(conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1])


#: Every live checkpointer, to reset in a forked child.
_alive: weakref.WeakSet[Checkpointer] = weakref.WeakSet()


def _reset_after_fork() -> None:
    for checkpointer in list(_alive):
        checkpointer._after_fork()


os.register_at_fork(after_in_child=_reset_after_fork)


def start(conn: sqlite3.Connection, path: str) -> None:
    """Give a writable WAL connection a background checkpointer (autocheckpoint off)."""
    if not hasattr(type(conn), "checkpointer") or conn.checkpointer is not None:  # type: ignore[attr-defined]
        return  # not one of mvcdb's connections (connection.Connection), or started already
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    started = conn.checkpointer = Checkpointer(path)  # type: ignore[attr-defined]
    weakref.finalize(conn, started.stop, False)  # a Database dropped without close()


def finishing(conn: sqlite3.Connection) -> bool:
    """Whether conn's checkpointer holds (or is taking) the write lock to finish the WAL."""
    checkpointer = getattr(conn, "checkpointer", None)
    return checkpointer is not None and checkpointer.finishing


def poke(conn: sqlite3.Connection) -> None:
    """After a commit on conn: let its checkpointer know (nothing for other connections)."""
    checkpointer = getattr(conn, "checkpointer", None)
    if checkpointer is not None:
        checkpointer.poke()


@contextmanager
def held(conn: sqlite3.Connection) -> Iterator[None]:
    """Hold conn's background checkpoints back during a big write (see Checkpointer.held)."""
    checkpointer = getattr(conn, "checkpointer", None)
    if checkpointer is None:
        yield
        return
    with checkpointer.held():
        yield


@contextmanager
def paused(conn: sqlite3.Connection) -> Iterator[None]:
    """Stop conn's checkpointer for the block (which checkpoints by itself), then start a new one."""
    running = getattr(conn, "checkpointer", None)
    stop(conn)
    try:
        yield
    finally:
        if running is not None:
            start(conn, running.path)


def stop(conn: sqlite3.Connection) -> None:
    """Stop conn's checkpointer (waiting for a running checkpoint) and restore the autocheckpoint."""
    checkpointer = getattr(conn, "checkpointer", None)
    if checkpointer is None:
        return
    checkpointer.stop()
    conn.checkpointer = None  # type: ignore[attr-defined]
    try:
        conn.execute(f"PRAGMA wal_autocheckpoint = {AUTOCHECKPOINT_PAGES}")
    except sqlite3.Error:
        pass

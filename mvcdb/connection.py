"""Opening the SQLite file safely, and short write transactions that retry while others write.

A file is only ever written to once it is known to be mvcdb's own (or brand new): foreign and
broken files are refused before any pragma that could change them. Writers use `BEGIN IMMEDIATE`
so the write lock is taken up front; SQLITE_BUSY (at BEGIN, at COMMIT, while switching journal
modes, while another process recovers the WAL) is retried with jittered exponential backoff up to
$MVCDB_BUSY_TIMEOUT seconds, so "database is locked" never reaches users as a raw SQLite error.
"""

from __future__ import annotations

import math
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from . import checkpointer
from .errors import BusyError, MvcdbError, NotAnMvcdbFileError, ReadOnlyError
from .heldfiles import read_head

SQLITE_HEADER = b"SQLite format 3\x00"
#: 'mvcd' — written to PRAGMA application_id so other tools (and we) can tell the file apart.
APPLICATION_ID = 0x6D766364
PAGE_SIZE = 8192
#: How long close() waits for other processes before leaving the checkpoint to the last closer.
CHECKPOINT_WAIT_MS = 2000
#: Map this much of the file (SQLite caps it at its compile-time limit, 2 GiB in common builds):
#: blob reads from mapped pages run at memory speed instead of one pread per page.
MMAP_BYTES = 1 << 40
#: After a checkpoint the WAL file is cut back to this size (a bulk write may have grown it). Above
#: the ~100 MiB a busy writer's WAL reaches between two restarts (checkpointer.py): a WAL that is cut
#: back and regrown stalls the writer on block allocation (small versions: ~1,750/s at 64 MiB, ~1,950/s
#: at 128 MiB).
JOURNAL_SIZE_LIMIT = 128 * 1024 * 1024


T = TypeVar("T")


class Connection(sqlite3.Connection):
    """mvcdb's connections: a sqlite3 connection that remembers its busy timeout and may carry its
    file's background checkpointer (see checkpointer.py)."""

    checkpointer: checkpointer.Checkpointer | None = None
    busy_timeout_ms: int | None = None  # what to restore after a moment at 0
    #: held by the thread whose transaction is open on this connection (see transaction_lock)
    transaction_lock: threading.RLock | None = None
    poll_until = 0.0  # time.monotonic() until which BEGIN polls for the lock (see _begin)


def _busy_timeout_ms(conn: sqlite3.Connection) -> int:
    ms = getattr(conn, "busy_timeout_ms", None)
    return int(busy_timeout_seconds() * 1000) if ms is None else int(ms)


#: The longest wait SQLite's busy timeout can hold (a C int of milliseconds, ~24.8 days).
MAX_BUSY_TIMEOUT = (2**31 - 1) / 1000


def busy_timeout_seconds() -> float:
    """How long a writer waits for the lock in total ($MVCDB_BUSY_TIMEOUT, default 60 s; negative
    -> 0; inf or more than SQLite can wait -> MAX_BUSY_TIMEOUT). Not a number: MvcdbError naming
    the variable (a typo silently meaning 60 s would surprise whoever set it)."""
    text = os.environ.get("MVCDB_BUSY_TIMEOUT", "").strip() or "60"
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if math.isnan(seconds):
        raise MvcdbError(
            f"MVCDB_BUSY_TIMEOUT must be a number of seconds (e.g. 60, 0.5 or inf), got {text!r}"
        )
    return min(max(0.0, seconds), MAX_BUSY_TIMEOUT)


def journal_mode() -> str:
    """WAL (default), or DELETE when $MVCDB_JOURNAL=delete (for network shares; see README).
    Anything else is an MvcdbError: on a network share, a misspelt `delete` silently meaning WAL
    is exactly the setting that corrupts files."""
    text = os.environ.get("MVCDB_JOURNAL", "").strip().lower() or "wal"
    if text not in ("wal", "delete"):
        raise MvcdbError(f"MVCDB_JOURNAL must be 'wal' or 'delete', got {os.environ['MVCDB_JOURNAL']!r}")
    return text.upper()


def check_settings() -> None:
    """Refuse a misspelt $MVCDB_JOURNAL or $MVCDB_BUSY_TIMEOUT before any file is touched."""
    journal_mode()
    busy_timeout_seconds()


def default_path() -> Path:
    """$MVCDB_PATH, else ./mvcdb.db."""
    return Path(os.environ.get("MVCDB_PATH") or "mvcdb.db")


def sniff(path: Path) -> str:
    """Classify a path without writing: 'missing', 'empty', 'sqlite', or raise for foreign bytes.

    Besides the magic header this catches truncated files (shorter than the page count the header
    declares), which SQLite itself would open and only fail on later, deep inside a query.
    """
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        raise MvcdbError(f"cannot read {path}: {exc.strerror}") from None
    if path.is_dir():
        raise NotAnMvcdbFileError(f"{path} is a directory, not an mvcdb database")
    if not path.is_file():  # a FIFO, socket or device: reading its header could block forever
        raise NotAnMvcdbFileError(f"{path} is not a regular file, not an mvcdb database")
    if size == 0:
        return "empty"
    try:
        header = read_head(path, 100)
    except OSError as exc:
        raise MvcdbError(f"cannot read {path}: {exc.strerror}") from None
    if not header.startswith(SQLITE_HEADER):
        raise NotAnMvcdbFileError(f"{path} is not an mvcdb database (not a SQLite file)")
    if len(header) < 100:
        raise NotAnMvcdbFileError(f"{path} is not an mvcdb database (truncated SQLite header)")
    expected = declared_size(header)
    if expected is not None and size < expected and _still_short(path, expected):
        raise NotAnMvcdbFileError(
            f"{path} is truncated: {size} bytes, but its header declares {expected}"
            " (an incomplete copy or download?)"
        )
    return "sqlite"


def _still_short(path: Path, expected: int) -> bool:
    """Whether the file stays shorter than its header says (not just a writer growing it now).

    A checkpoint or commit writes page 1 (the header) before the pages that grow the file; while
    one runs, its -wal or -journal holds data. Only a file that stays short with no such
    companion counts as truncated.
    """
    for attempt in range(4):
        busy = any(
            Path(f"{path}{suffix}").exists() and Path(f"{path}{suffix}").stat().st_size > 0
            for suffix in ("-wal", "-journal")
        )
        if not busy and attempt > 0:
            return path.stat().st_size < expected
        if path.stat().st_size >= expected:
            return False
        time.sleep(0.05 * (attempt + 1))
    return False  # a writer is active: let SQLite (which knows about its WAL) judge the file


def declared_size(header: bytes) -> int | None:
    """The database size the 100-byte SQLite header declares, or None when it is not valid.

    The in-header page count (offset 28) is trusted only when the 'version-valid-for' number
    (offset 92) equals the change counter (offset 24), as SQLite itself does.
    """
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    if page_size < 512 or page_size & (page_size - 1) or pages == 0:
        return None
    if header[24:28] != header[92:96]:
        return None
    return pages * page_size


def connect(path: Path, *, readonly: bool) -> sqlite3.Connection:
    """Open a connection in autocommit mode (transactions are explicit).

    Read-only connections to mvcdb's own files in a writable place are ordinary connections with
    `PRAGMA query_only` (writes fail with SQLITE_READONLY), so that closing the last one folds
    and removes the -wal/-shm files as usual; a `mode=ro` connection would leave them behind after
    every browse. Anything else read-only (foreign files, read-only files or directories) gets
    `mode=ro`, which cannot write a byte.
    """
    query_only = readonly and _ours_and_writable(path)
    mode = "?mode=rw" if query_only else "?mode=ro" if readonly else ""
    uri = path.resolve().as_uri() + mode
    timeout = busy_timeout_seconds()
    try:
        conn = sqlite3.connect(
            uri, uri=True, isolation_level=None, check_same_thread=False, timeout=timeout, factory=Connection
        )
        conn.busy_timeout_ms = int(timeout * 1000)
        conn.transaction_lock = threading.RLock()
        if query_only:
            conn.execute("PRAGMA query_only = ON")
        with_retry(lambda: conn.execute("PRAGMA foreign_keys = ON"))
    except sqlite3.OperationalError as exc:
        raise MvcdbError(f"cannot open {path}: {exc}") from None
    return conn


def _ours_and_writable(path: Path) -> bool:
    """Whether the header carries mvcdb's application_id and both file and directory are writable."""
    try:
        header = read_head(path, 100)
    except OSError:
        return False
    if len(header) < 100 or int.from_bytes(header[68:72], "big") != APPLICATION_ID:
        return False
    return os.access(path, os.W_OK) and os.access(path.resolve().parent, os.W_OK)


def connect_immutable(path: Path) -> sqlite3.Connection:
    """Last resort for read-only media: open without any locking or -shm/-wal files."""
    uri = path.resolve().as_uri() + "?mode=ro&immutable=1"
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def tune(conn: sqlite3.Connection, *, readonly: bool) -> None:
    """Pragmas for an mvcdb file we own: WAL (or DELETE), NORMAL sync, big mmap and cache.

    Switching journal mode needs a moment of exclusive access; when many processes open a new
    file at once they queue for it here (busy retries), and whoever comes last finds it done.
    """
    if not readonly:
        wanted = journal_mode()
        mode = with_retry(lambda: conn.execute("PRAGMA journal_mode").fetchone()[0])
        if str(mode).upper() != wanted:
            with_retry(lambda: _set_journal_mode(conn, wanted))
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT}")
    conn.execute(f"PRAGMA mmap_size = {MMAP_BYTES}")
    conn.execute("PRAGMA cache_size = -65536")
    conn.execute("PRAGMA temp_store = MEMORY")


def _set_journal_mode(conn: sqlite3.Connection, wanted: str) -> None:
    got = str(conn.execute(f"PRAGMA journal_mode = {wanted}").fetchone()[0]).upper()
    if got != wanted:
        # SQLite answers with the unchanged mode instead of an error when others hold the file
        raise sqlite3.OperationalError(f"database is locked (journal mode stayed {got})")


def checkpoint(conn: sqlite3.Connection) -> bool:
    """Fold the WAL back into the main file (TRUNCATE) if no other process is busy with it.

    Waits at most CHECKPOINT_WAIT_MS, and never longer than the busy timeout: with other writers
    active the last one to close does it. Returns True when the WAL was fully checkpointed. Stops
    the background checkpointer first.
    """
    checkpointer.stop(conn)
    try:
        conn.execute(f"PRAGMA busy_timeout = {min(CHECKPOINT_WAIT_MS, _busy_timeout_ms(conn))}")
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        return not busy
    except sqlite3.Error:
        return False
    finally:
        try:
            conn.execute(f"PRAGMA busy_timeout = {_busy_timeout_ms(conn)}")
        except sqlite3.Error:
            pass


def is_busy(exc: sqlite3.OperationalError) -> bool:
    """True for 'database is locked' / 'database is busy' errors that are worth retrying."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and code & 0xFF in (5, 6):  # SQLITE_BUSY, SQLITE_LOCKED and extended codes
        return True
    text = str(exc).lower()
    return "database is locked" in text or "database is busy" in text or "database table is locked" in text


def is_readonly(exc: sqlite3.OperationalError) -> bool:
    """True for SQLITE_READONLY ('attempt to write a readonly database')."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and code & 0xFF == 8:
        return True
    text = str(exc).lower()
    return "readonly" in text or "read-only" in text


BUSY_MESSAGE = (
    "the database stayed locked by other writers past the busy timeout "
    "(set MVCDB_BUSY_TIMEOUT to wait longer)"
)


def with_retry(
    fn: Callable[[], T], *, timeout: float | None = None, first_delay: float = 0.002, max_delay: float = 0.25
) -> T:
    """Call fn(), retrying with jittered exponential backoff while SQLite reports the file busy.

    Bounded: after `timeout` seconds (default $MVCDB_BUSY_TIMEOUT) a BusyError says what to do.
    """
    start = time.monotonic()
    deadline: float | None = None  # read from the environment only once there is contention
    delay = first_delay
    while True:
        try:
            return fn()
        except sqlite3.OperationalError as exc:
            if not is_busy(exc):
                raise
        if deadline is None:
            deadline = start + (busy_timeout_seconds() if timeout is None else timeout)
        if time.monotonic() >= deadline:
            raise BusyError(BUSY_MESSAGE) from None
        time.sleep(delay * (0.5 + random.random()))
        delay = min(delay * 2, max_delay)


#: A direct BEGIN that took longer than this (seconds) waited in SQLite's busy handler, whose
#: first sleep is 1 ms: it met another writer ...
CONTENDED = 0.001
#: ... and the connection's next BEGINs poll for the lock until this long after the last time
#: one had to wait (then they go direct again).
POLL_FOR = 0.25
#: The longest sleep between two polls while this process's checkpointer holds the lock to finish
#: a WAL (~5 ms): the usual backoff (up to 10 ms) overshot its end by a few ms each time.
FINISHING_POLL = 0.001


def _begin(conn: sqlite3.Connection) -> None:
    """BEGIN IMMEDIATE, by polling while this connection meets other writers, else directly.

    With no writer in the way -- one process recording -- it is one statement: the two busy
    timeout pragmas around polling cost ~30 us, 6 % of a small record(). The first BEGIN that finds
    the lock taken waits in SQLite's own (coarser) busy handler; the ones after it poll, for
    POLL_FOR seconds after the last wait. While this process's own checkpointer holds the lock to
    finish a WAL (every ~0.5 s in a busy loop) BEGINs poll too, every millisecond, but that wait
    does not switch the connection to polling: that had half of a loop's BEGINs pay the pragmas.
    """
    if not isinstance(conn, Connection):
        _begin_polling(conn)
        return
    if checkpointer.finishing(conn):  # our own thread holds the lock for a few ms: look often,
        _begin_polling(conn, max_delay=FINISHING_POLL)  # to resume right after; it is no sign
        return  # of other writers, so the next BEGINs still go direct
    start = time.monotonic()
    if start < conn.poll_until:
        waited = _begin_polling(conn)
    else:
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if is_busy(exc):  # waited the whole busy timeout in SQLite's handler
                raise BusyError(BUSY_MESSAGE) from None
            raise
        waited = time.monotonic() - start > CONTENDED
    if waited:  # (max: a connection told to always poll keeps polling)
        conn.poll_until = max(conn.poll_until, time.monotonic() + POLL_FOR)


def wait_interruptibly(conn: sqlite3.Connection) -> None:
    """From now on wait for the write lock by polling, in Python sleeps that Ctrl-C interrupts,
    never in SQLite's busy handler, which ignores it for up to the whole busy timeout: for the
    command line, whose user may give up waiting. Costs two pragmas (~30 us) a transaction."""
    if isinstance(conn, Connection):
        conn.poll_until = math.inf


def _begin_polling(conn: sqlite3.Connection, max_delay: float = 0.01) -> bool:
    """BEGIN IMMEDIATE, polling for the write lock every few milliseconds; True if it waited.

    SQLite's own busy handler backs off to 25-100 ms sleeps, so with many writers queueing for
    millisecond-long transactions the lock can sit free while everyone sleeps. Polling with short
    jittered sleeps (0.5-10 ms) hands it over sooner; the total wait stays bounded.
    """
    attempts = 0

    def begin() -> None:
        nonlocal attempts
        attempts += 1
        conn.execute("BEGIN IMMEDIATE")

    conn.execute("PRAGMA busy_timeout = 0")
    try:
        with_retry(begin, first_delay=0.0005, max_delay=max_delay)
    finally:
        conn.execute(f"PRAGMA busy_timeout = {_busy_timeout_ms(conn)}")
    return attempts > 1


def write_transaction(conn: sqlite3.Connection) -> _WriteTransaction:
    """A short BEGIN IMMEDIATE … COMMIT; rolls back on any error, retries the lock while busy.

    COMMIT itself may report busy (a rollback-journal file with readers, or a checkpoint in the
    way); SQLite keeps the transaction open then, so retrying the COMMIT is safe. Nested inside
    another write transaction of the same thread it simply joins it (the outer one commits or
    rolls back); another thread using the same connection waits for it (transaction_lock).
    """
    return _WriteTransaction(conn)


def transaction_lock(conn: sqlite3.Connection) -> threading.RLock | None:
    """The lock a thread holds while its transaction is open on conn (None: a connection mvcdb did
    not open). A Database may be shared by threads, but a connection has one transaction: without
    it a second thread's write would join the first's (and commit or roll back its half-written
    rows). Waiting for it is bounded by the busy timeout, as waiting for another process is."""
    return getattr(conn, "transaction_lock", None)


def acquire_transaction_lock(conn: sqlite3.Connection) -> threading.RLock | None:
    """transaction_lock(conn), acquired (BusyError after the busy timeout); the caller releases it."""
    lock = transaction_lock(conn)
    if lock is not None and not lock.acquire(False):  # (free, or this thread's: the usual case)
        if not lock.acquire(timeout=_busy_timeout_ms(conn) / 1000):
            raise BusyError(BUSY_MESSAGE)
    return lock


def _why_readonly(conn: sqlite3.Connection) -> str:
    """What to tell a writer SQLite refused: which file it may not write, when one is to blame
    (e.g. the -wal/-shm files another user's session left in a shared directory)."""
    generic = "the database is open read-only; it cannot be written"
    try:
        path = next(row[2] for row in conn.execute("PRAGMA database_list") if row[1] == "main")
    except (sqlite3.Error, StopIteration):
        return generic
    for name in (path, f"{path}-wal", f"{path}-shm"):
        if name and os.path.exists(name) and not os.access(name, os.W_OK):
            if name == path:
                return f"{path} is read-only for you; it cannot be written"
            return (
                f"cannot write {path}: {name} is not writable for you (SQLite's file of another"
                " user's session; it goes away when the last session closes, or its owner may delete it)"
            )
    return generic


class _WriteTransaction:
    """The context manager of write_transaction() (a class: a generator-based one costs ~4 us more
    a transaction, and a small record() enters two)."""

    __slots__ = ("_conn", "_outer", "_lock")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._outer = False
        self._lock: threading.RLock | None = None

    @property
    def began(self) -> bool:
        """Whether this one began the transaction (False: it joined the thread's open one)."""
        return self._outer

    def __enter__(self) -> sqlite3.Connection:
        conn = self._conn
        lock = self._lock = getattr(conn, "transaction_lock", None)
        if lock is not None and not lock.acquire(False):  # another thread's transaction is open
            acquire_transaction_lock(conn)  # wait for it (BusyError after the busy timeout)
        try:
            if conn.in_transaction:  # nested (the lock says: in this thread): join it
                return conn
            _begin(conn)
        except sqlite3.OperationalError as exc:
            self._release()
            if is_readonly(exc):
                raise ReadOnlyError(_why_readonly(conn)) from None
            raise
        except BaseException:
            self._release()
            raise
        self._outer = True
        return conn

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self._outer:
            if self._lock is not None:
                self._lock.release()
            return
        try:
            conn = self._conn
            if exc is None:
                try:
                    with_retry(lambda: conn.execute("COMMIT"))
                except BaseException as failed:
                    self._failed(failed)
                    raise
                checkpointer.poke(conn)
            else:
                self._failed(exc)  # then the body's exception goes on (or the ReadOnlyError it became)
        finally:
            self._release()

    def _release(self) -> None:
        lock, self._lock = self._lock, None
        if lock is not None:
            lock.release()

    def _failed(self, exc: BaseException) -> None:
        """Roll back; a write refused because the file cannot be written becomes ReadOnlyError."""
        _rollback(self._conn)
        if isinstance(exc, sqlite3.OperationalError) and is_readonly(exc):
            raise ReadOnlyError(
                "the database cannot be written (read-only file, directory or media)"
            ) from None


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # the connection is unusable anyway; the error that got us here matters

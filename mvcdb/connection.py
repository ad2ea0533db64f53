"""Opening the SQLite file safely, and short write transactions that retry while others write.

A file is only ever written to once it is known to be mvcdb's own (or brand new): foreign and
broken files are refused before any pragma that could change them. Writers use `BEGIN IMMEDIATE`
so the write lock is taken up front and SQLITE_BUSY is retried with backoff, never shown to users.
"""

from __future__ import annotations

import os
import random
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import BusyError, MvcdbError, NotAnMvcdbFileError, ReadOnlyError

SQLITE_HEADER = b"SQLite format 3\x00"
#: 'mvcd' — written to PRAGMA application_id so other tools (and we) can tell the file apart.
APPLICATION_ID = 0x6D766364
PAGE_SIZE = 65536


def busy_timeout_seconds() -> float:
    """How long a writer waits for the lock in total ($MVCDB_BUSY_TIMEOUT, default 60 s)."""
    try:
        return max(0.0, float(os.environ.get("MVCDB_BUSY_TIMEOUT", "60")))
    except ValueError:
        return 60.0


def journal_mode() -> str:
    """WAL (default), or DELETE when $MVCDB_JOURNAL=delete (for network shares; see README)."""
    return "DELETE" if os.environ.get("MVCDB_JOURNAL", "wal").lower() == "delete" else "WAL"


def default_path() -> Path:
    """$MVCDB_PATH, else ./mvcdb.db."""
    return Path(os.environ.get("MVCDB_PATH") or "mvcdb.db")


def sniff(path: Path) -> str:
    """Classify a path without writing: 'missing', 'empty', 'sqlite', or raise for foreign bytes."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        raise MvcdbError(f"cannot read {path}: {exc.strerror}") from None
    if path.is_dir():
        raise NotAnMvcdbFileError(f"{path} is a directory, not an mvcdb database")
    if size == 0:
        return "empty"
    try:
        with path.open("rb") as fh:
            header = fh.read(100)
    except OSError as exc:
        raise MvcdbError(f"cannot read {path}: {exc.strerror}") from None
    if not header.startswith(SQLITE_HEADER):
        raise NotAnMvcdbFileError(f"{path} is not an mvcdb database (not a SQLite file)")
    if len(header) < 100:
        raise NotAnMvcdbFileError(f"{path} is not an mvcdb database (truncated SQLite header)")
    return "sqlite"


def connect(path: Path, *, readonly: bool) -> sqlite3.Connection:
    """Open a connection in autocommit mode (transactions are explicit); readonly via mode=ro."""
    uri = path.resolve().as_uri() + ("?mode=ro" if readonly else "")
    try:
        conn = sqlite3.connect(
            uri, uri=True, isolation_level=None, check_same_thread=False, timeout=busy_timeout_seconds()
        )
    except sqlite3.OperationalError as exc:
        raise MvcdbError(f"cannot open {path}: {exc}") from None
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def connect_immutable(path: Path) -> sqlite3.Connection:
    """Last resort for read-only media: open without any locking or -shm/-wal files."""
    uri = path.resolve().as_uri() + "?mode=ro&immutable=1"
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def tune(conn: sqlite3.Connection, *, readonly: bool) -> None:
    """Pragmas for an mvcdb file we own: WAL, NORMAL sync, big mmap and cache."""
    if not readonly:
        wanted = journal_mode()
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        if mode.upper() != wanted:
            with_retry(lambda: conn.execute(f"PRAGMA journal_mode = {wanted}"))
        conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA mmap_size = 1073741824")
    conn.execute("PRAGMA cache_size = -65536")
    conn.execute("PRAGMA temp_store = MEMORY")


def is_busy(exc: sqlite3.OperationalError) -> bool:
    """True for 'database is locked' / 'database is busy' errors that are worth retrying."""
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def with_retry(fn, *, timeout: float | None = None):  # type: ignore[no-untyped-def]
    """Call fn(), retrying with jittered backoff while SQLite reports the database busy."""
    deadline = time.monotonic() + (busy_timeout_seconds() if timeout is None else timeout)
    delay = 0.002
    while True:
        try:
            return fn()
        except sqlite3.OperationalError as exc:
            if not is_busy(exc):
                raise
            if time.monotonic() >= deadline:
                raise BusyError(
                    "the database stayed locked by other writers past the busy timeout "
                    "(set MVCDB_BUSY_TIMEOUT to wait longer)"
                ) from None
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 0.25)


@contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A short BEGIN IMMEDIATE … COMMIT; rolls back on any error, retries the lock while busy."""
    try:
        with_retry(lambda: conn.execute("BEGIN IMMEDIATE"))
    except sqlite3.OperationalError as exc:
        if "readonly" in str(exc).lower() or "read-only" in str(exc).lower():
            raise ReadOnlyError("the database is open read-only; it cannot be written") from None
        raise
    try:
        yield conn
        with_retry(lambda: conn.execute("COMMIT"))
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise

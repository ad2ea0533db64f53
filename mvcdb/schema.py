"""Creating, recognising and migrating the schema of an mvcdb file.

`schema.sql` (shipped inside the package) is always the current schema: a new file is created from
it at SCHEMA_VERSION. Files made by an older mvcdb are brought up to date by the named forward
migrations in MIGRATIONS, each in its own transaction, bumping PRAGMA user_version. A file with a
newer user_version than this code knows is refused with an upgrade hint.
"""

from __future__ import annotations

import functools
import re
import sqlite3
from collections.abc import Callable
from importlib import resources
from typing import TYPE_CHECKING

from . import __version__
from .connection import APPLICATION_ID, PAGE_SIZE, write_transaction
from .errors import NotAnMvcdbFileError, SchemaVersionError
from .timeutil import now_text

if TYPE_CHECKING:  # imported where used: ~70 ms that opening an up-to-date file does not need
    import sqlite_utils

BASELINE_VERSION = 1
DEFAULT_CHUNK_SIZE = 4 * 1024 * 1024
#: The chunk sizes a file (or a caller's chunk_size=) may use.
MIN_CHUNK_SIZE = 4096
MAX_CHUNK_SIZE = 512 * 1024 * 1024

#: Forward migrations: (version it produces, name, step). Never edit one that has shipped.
Migration = Callable[["sqlite_utils.Database"], None]


def _small_version_layout(db: sqlite_utils.Database) -> None:
    """Version 2, cheaper small versions: no index on tensors.digest (nothing looked tensors up by
    digest, and each of its random keys dirtied a page in every small commit), and tiny tensors
    stored in their own row (`tensors.data`) instead of as chunks. Version 2 is also where chunks
    may use the checked codecs 5-9: the version bump makes mvcdb 0.1 refuse such a file with an
    upgrade hint instead of failing on a chunk or missing a tensor's bytes. (New files also spell
    the tensors.kind CHECK with OR, which SQLite evaluates faster than IN; a migrated file keeps
    its IN: the same rule, and rewriting a table's CHECK means copying the table.)"""
    db.execute("DROP INDEX IF EXISTS tensors_digest")
    if "data" not in db["tensors"].columns_dict:
        db.execute("ALTER TABLE tensors ADD COLUMN data BLOB CHECK (data IS NULL OR length(data) = nbytes)")


MIGRATIONS: list[tuple[int, str, Migration]] = [
    (2, "small-version layout: tiny tensors in their row, no tensors.digest index", _small_version_layout),
]

SCHEMA_VERSION = MIGRATIONS[-1][0] if MIGRATIONS else BASELINE_VERSION


def schema_sql() -> str:
    """The text of schema.sql as shipped in the installed package."""
    return resources.files("mvcdb").joinpath("schema.sql").read_text(encoding="utf-8")


def _table_names(conn: sqlite3.Connection) -> list[str]:
    """The file's table names (what sqlite_utils' table_names() reads, without its import on every
    open)."""
    return [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]


def classify(conn: sqlite3.Connection) -> str:
    """'new' for an empty database, 'mvcdb' for ours; raise NotAnMvcdbFileError otherwise."""
    try:
        conn.execute("BEGIN")  # one snapshot: another process may be creating the schema right now
        try:
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            tables = _table_names(conn)
        finally:
            conn.execute("ROLLBACK")
    except sqlite3.DatabaseError as exc:
        raise NotAnMvcdbFileError(f"not a readable SQLite database ({exc})") from None
    if app_id == APPLICATION_ID and "versions" in tables and "meta" in tables:
        return "mvcdb"
    if app_id == 0 and not tables:
        return "new"
    raise NotAnMvcdbFileError("a SQLite database of another application, not an mvcdb database")


def initialize(conn: sqlite3.Connection) -> None:
    """Create the schema in an empty database (page size first: it cannot change later in WAL)."""
    conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")
    with write_transaction(conn):
        if _table_names(conn):  # another process initialised it while we waited for the lock
            return
        for statement in _statements(schema_sql()):
            conn.execute(statement)
        conn.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?)",
            [
                ("format", "mvcdb"),
                ("created_at", now_text()),
                ("created_by", f"mvcdb {__version__}"),
                ("chunk_size", str(DEFAULT_CHUNK_SIZE)),
            ],
        )
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _statements(script: str) -> list[str]:
    """Split schema.sql into complete statements (executescript would commit our transaction)."""
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        if not current and line.strip().startswith("--"):
            continue
        current += line
        if sqlite3.complete_statement(current):
            if current.strip():
                statements.append(current.strip())
            current = ""
    if current.strip():
        statements.append(current.strip())
    return statements


@functools.lru_cache(maxsize=1)
def _views() -> dict[str, str]:
    """name -> CREATE VIEW statement of every view in schema.sql, as sqlite_master keeps it (from
    CREATE on: comments before it are not part of it)."""
    views = {}
    for statement in _statements(schema_sql()):
        found = re.search(r"^CREATE\s+VIEW\s+(\w+)", statement, re.IGNORECASE | re.MULTILINE)
        if found:
            views[found.group(1)] = statement[found.start() :].rstrip(";").strip()
    return views


def refresh_views(conn: sqlite3.Connection) -> list[str]:
    """Recreate the views whose definition is not schema.sql's; return their names.

    Views hold no data, so a better view needs no schema version (which would lock older mvcdb
    out of the file): files made before it get it on their next writable open.
    """

    def stale() -> list[str]:
        have = dict(conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'view'").fetchall())
        return [
            name for name, sql in _views().items() if str(have.get(name) or "").rstrip(";").strip() != sql
        ]

    if not stale():
        return []
    with write_transaction(conn):
        names = stale()  # again under the write lock: a concurrent opener may have done it
        for name in names:
            conn.execute(f"DROP VIEW IF EXISTS {name}")
            conn.execute(_views()[name])
    return names


def user_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def check_version(conn: sqlite3.Connection) -> int:
    """Refuse files from a newer mvcdb, and a schema version no mvcdb ever wrote (zero or
    negative: a damaged header, which a writable open must not "migrate"); return the version."""
    version = user_version(conn)
    if version < BASELINE_VERSION:
        raise NotAnMvcdbFileError(
            f"a damaged header: schema version (PRAGMA user_version) {version} is not one any mvcdb"
            f" writes (1 to {SCHEMA_VERSION}); the file was left as it is"
        )
    if version > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"this file uses mvcdb schema version {version}, but this mvcdb ({__version__}) "
            f"knows up to {SCHEMA_VERSION}; upgrade mvcdb (pip install -U mvcdb) to open it"
        )
    return version


def migrate(conn: sqlite3.Connection) -> list[str]:
    """Apply every pending forward migration, each in its own transaction; return their names."""
    applied = []
    for target, name, step in MIGRATIONS:
        if user_version(conn) >= target:
            continue
        with write_transaction(conn):
            if user_version(conn) >= target:  # a concurrent opener migrated first
                continue
            import sqlite_utils

            step(sqlite_utils.Database(conn))
            conn.execute(f"PRAGMA user_version = {target}")
        applied.append(name)
    return applied


def read_older(conn: sqlite3.Connection) -> None:
    """Let a read-only connection read a file of an older schema version as if it were current.

    It cannot be migrated, so TEMP views (which shadow the file's tables for unqualified names)
    add what the older version lacks: `tensors.data` is NULL there (every tensor is chunked).
    A current file needs nothing (as in migrate(), its user_version says so).
    """
    if user_version(conn) >= SCHEMA_VERSION:
        return
    import sqlite_utils

    if "data" in sqlite_utils.Database(conn)["tensors"].columns_dict:
        return
    query_only = conn.execute("PRAGMA query_only").fetchone()[0]
    conn.execute("PRAGMA query_only = OFF")  # TEMP objects live in memory, never in the file
    try:
        conn.execute("CREATE TEMP VIEW IF NOT EXISTS tensors AS SELECT *, NULL AS data FROM main.tensors")
    finally:
        conn.execute(f"PRAGMA query_only = {int(query_only)}")


def read_meta(conn: sqlite3.Connection) -> dict[str, str]:
    return dict(conn.execute("SELECT key, value FROM meta").fetchall())


def valid_chunk_size(value: object) -> int | None:
    """value as a chunk size if it is a whole number of bytes mvcdb allows, else None."""
    if isinstance(value, bool):
        return None
    try:
        size = int(value) if isinstance(value, (int, str)) else None
    except ValueError:
        return None
    return size if size is not None and MIN_CHUNK_SIZE <= size <= MAX_CHUNK_SIZE else None


def file_chunk_size(meta: dict[str, str]) -> int:
    """The chunk size new records in this file are cut to: meta.chunk_size, or the default when
    it is missing or damaged (it only decides how new bytes are cut, so reading, `verify` and
    writing all still work; `verify` reports the bad value)."""
    return valid_chunk_size(meta.get("chunk_size")) or DEFAULT_CHUNK_SIZE

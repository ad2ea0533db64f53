"""The PostgreSQL side of a remote: connecting (one-line errors), creating and migrating its schema.

psycopg 3 is an optional dependency (`pip install 'mvcdb[postgres]'`); it is imported only here and
only when a remote is actually used, so `import mvcdb` never loads it. schema_pg.sql is version 1;
later changes are forward migrations in MIGRATIONS, each recorded in mvcdb.schema_version. Creation
and migration run under an advisory lock, so many processes can meet a fresh remote at once.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import MvcdbError, SchemaVersionError
from .urls import check_url, redact

if TYPE_CHECKING:
    import psycopg

BASELINE_VERSION = 1
#: Forward migrations: (version it produces, name, SQL). Never edit one that has shipped.
MIGRATIONS: list[tuple[int, str, str]] = []
SCHEMA_VERSION = MIGRATIONS[-1][0] if MIGRATIONS else BASELINE_VERSION
#: pg_advisory_xact_lock key serialising schema creation/migration ('mvcd' 'sch').
SCHEMA_LOCK = 0x6D766364_736368
CONNECT_TIMEOUT = 10
T = TypeVar("T")


def driver() -> Any:
    """The psycopg module, or a clear error saying how to install it."""
    try:
        import psycopg
    except ImportError:
        raise MvcdbError(
            "remotes need the PostgreSQL driver: pip install 'mvcdb[postgres]' (psycopg 3)"
        ) from None
    return psycopg


def schema_sql() -> str:
    """The text of schema_pg.sql as shipped in the package."""
    return resources.files("mvcdb.remote").joinpath("schema_pg.sql").read_text(encoding="utf-8")


def connect(url: str) -> psycopg.Connection[Any]:
    """Open a connection to the remote (autocommit; transactions are explicit)."""
    drv = driver()
    check_url(url)
    kwargs: dict[str, Any] = {"autocommit": True, "application_name": "mvcdb"}
    if "connect_timeout" not in url:
        kwargs["connect_timeout"] = CONNECT_TIMEOUT
    try:
        conn: psycopg.Connection[Any] = drv.connect(url, **kwargs)
    except drv.ProgrammingError as exc:  # the URL itself (bad option, bad port...)
        raise MvcdbError(f"invalid remote URL {redact(url)!r}: {_first_line(exc)}") from None
    except drv.Error as exc:
        raise MvcdbError(f"cannot connect to remote {redact(url)}: {_first_line(exc)}") from None
    return conn


def _first_line(exc: BaseException) -> str:
    """A driver error as one line: the server's primary message when it sent one (without the
    LINE/caret context of the statement), else the whole text, whitespace collapsed."""
    primary = getattr(getattr(exc, "diag", None), "message_primary", None)
    text = " ".join(str(primary or exc).split())
    return text[:300] or type(exc).__name__


def remote_error(url: str, exc: BaseException) -> MvcdbError:
    """A database error during a transfer, as one line naming the remote."""
    return MvcdbError(f"remote {redact(url)}: {_first_line(exc)}")


@cache
def baseline_columns() -> Mapping[str, frozenset[str]]:
    """{table: its column names} as schema_pg.sql creates them in the schema `mvcdb` (migrations
    only ever add: a remote made by mvcdb has at least these)."""
    tables: dict[str, frozenset[str]] = {}
    for table, body in re.findall(r"CREATE TABLE mvcdb\.(\w+) \((.*?)\n\);", schema_sql(), re.S):
        # column lines start with a lower-case name; constraints (PRIMARY KEY...) are upper case
        tables[table] = frozenset(re.findall(r"^\s+([a-z_][a-z0-9_]*)\s", body, re.M))
    return MappingProxyType(tables)


def _mvcdb_columns(conn: psycopg.Connection[Any]) -> dict[str, set[str]]:
    """{table: columns} of the tables in the schema `mvcdb` (empty: no such schema, or empty).

    Read from pg_catalog through a fresh snapshot (to_regclass may answer from a stale cache)."""
    tables: dict[str, set[str]] = {}
    for table, column in conn.execute(
        "SELECT c.relname, a.attname FROM pg_catalog.pg_class c"
        " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
        " LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped"
        " WHERE n.nspname = 'mvcdb' AND c.relkind IN ('r', 'p', 'v', 'm', 'f')"
    ):
        tables.setdefault(str(table), set()).update([str(column)] if column is not None else [])
    return tables


def _not_ours(found: Mapping[str, set[str]]) -> str | None:
    """Why a schema `mvcdb` holding these tables was not made by mvcdb (None: it was)."""
    for table, columns in baseline_columns().items():
        if table not in found:
            return f"it has no table {table}"
        missing = sorted(columns - found[table])
        if missing:
            return f"its table {table} has no column {missing[0]}"
    return None


def _installed_version(conn: psycopg.Connection[Any], url: str) -> int | None:
    """The remote schema's version; None if the database holds no mvcdb schema yet (no schema
    `mvcdb`, or an empty one, e.g. made by an administrator: mvcdb fills it in). MvcdbError if its
    schema `mvcdb` belongs to something else (written into, it would be damaged or refuse)."""
    found = _mvcdb_columns(conn)
    if not found:
        return None
    version: int | None = None
    if "version" in found.get("schema_version", set()):
        row = conn.execute("SELECT max(version)::text FROM mvcdb.schema_version").fetchone()
        text = str(row[0]) if row and row[0] is not None else "0"
        version = int(text) if text.isdigit() else None
        if version is not None:
            _check_not_newer(version)  # a newer mvcdb's schema: say "upgrade", not "foreign"
    why = _not_ours(found) or (None if version is not None else "its schema_version has no version number")
    if why is not None:
        raise MvcdbError(
            f'remote {redact(url)}: its schema "mvcdb" was not created by mvcdb ({why});'
            " use another database for the remote"
        )
    return version


def _check_not_newer(version: int) -> None:
    if version > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"the remote uses mvcdb remote schema version {version}, but this mvcdb knows up to "
            f"{SCHEMA_VERSION}; upgrade mvcdb (pip install -U mvcdb)"
        )


def ensure_schema(conn: psycopg.Connection[Any], url: str) -> int:
    """Create the remote schema if missing and apply pending migrations; return its version.

    A schema `mvcdb` that mvcdb did not create is refused (MvcdbError), nothing written."""
    version = _installed_version(conn, url)
    if version is not None:
        _check_not_newer(version)
        if version == SCHEMA_VERSION:
            return version
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
        version = _installed_version(conn, url)  # another process may have created it meanwhile
        if version is None:
            conn.execute(schema_sql().encode())
            conn.execute(
                "INSERT INTO mvcdb.schema_version (version, name) VALUES (%s, %s)",
                (BASELINE_VERSION, "baseline"),
            )
            version = BASELINE_VERSION
        _check_not_newer(version)
        for target, name, sql in MIGRATIONS:
            if version < target:
                conn.execute(sql.encode())
                conn.execute(
                    "INSERT INTO mvcdb.schema_version (version, name) VALUES (%s, %s)", (target, name)
                )
                version = target
    return version


def check_schema(conn: psycopg.Connection[Any], url: str) -> int:
    """For readers: the remote must already hold an mvcdb schema this code understands."""
    version = _installed_version(conn, url)
    if version is None:
        raise MvcdbError(f"remote {redact(url)} holds no mvcdb data yet (push to it first)")
    _check_not_newer(version)
    return version


def retrying(conn: psycopg.Connection[Any], fn: Callable[[], T], *, attempts: int = 8) -> T:
    """Run fn() inside a transaction, retrying on deadlocks and serialization failures."""
    drv = driver()
    transient = (drv.errors.DeadlockDetected, drv.errors.SerializationFailure)
    for attempt in range(attempts):
        try:
            with conn.transaction():
                return fn()
        except transient:
            if attempt == attempts - 1:
                raise
            time.sleep(0.01 * (2**attempt))
    raise AssertionError("unreachable")

"""Read-only ad-hoc SQL over an mvcdb file, with SQL functions for what plain SQL cannot reach.

Two locks keep `db.sql` from changing anything: the query runs on its own connection opened with
`mode=ro` (SQLite itself refuses to write), and an authorizer allows only reading (SELECT, reads,
functions, recursive CTEs and a list of informational PRAGMAs), so writes to temp or attached
databases, ATTACH and PRAGMA assignments are refused too. One statement per call.

SQL functions (registered by `register_functions`; a version argument is a full id or any ref):
  short_id(id)                       first 12 characters of an id
  traj_value(version, series, step)  a scalar series' value at a step (NULL if not logged there)
  traj_last(version, series)         the last logged value;  traj_first, traj_min, traj_max alike
  traj_len(version, series)          how many values were logged
  tensor_norm(version, name)         L2 norm of a parameter tensor (streamed, float64)
Unknown versions or series raise an error naming them; NaN comes back as NULL (SQLite has no NaN).
"""

from __future__ import annotations

import math
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import MvcdbError, RefError
from .refs import resolve_vid
from .text import has_lone_surrogate

if TYPE_CHECKING:
    from .database import Database

# sqlite3 authorizer action codes that only read.
_ALLOWED_ACTIONS = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION}
_RECURSIVE = getattr(sqlite3, "SQLITE_RECURSIVE", 33)
_ALLOWED_ACTIONS.add(_RECURSIVE)

#: PRAGMAs that only report; those marked True may take an argument (a table or index name).
_READ_PRAGMAS: dict[str, bool] = {
    "table_info": True,
    "table_xinfo": True,
    "table_list": True,
    "index_list": True,
    "index_info": True,
    "index_xinfo": True,
    "foreign_key_list": True,
    "foreign_key_check": True,
    "integrity_check": True,
    "quick_check": True,
    "database_list": False,
    "collation_list": False,
    "function_list": False,
    "module_list": False,
    "pragma_list": False,
    "compile_options": False,
    "user_version": False,
    "application_id": False,
    "schema_version": False,
    "data_version": False,
    "page_size": False,
    "page_count": False,
    "freelist_count": False,
    "encoding": False,
    "journal_mode": False,
    "foreign_keys": False,
}

_ACTION_NAMES = {
    getattr(sqlite3, "SQLITE_" + name): name.replace("_", " ")
    for name in (
        "CREATE_INDEX CREATE_TABLE CREATE_TEMP_INDEX CREATE_TEMP_TABLE CREATE_TEMP_TRIGGER "
        "CREATE_TEMP_VIEW CREATE_TRIGGER CREATE_VIEW DELETE DROP_INDEX DROP_TABLE DROP_TEMP_INDEX "
        "DROP_TEMP_TABLE DROP_TEMP_TRIGGER DROP_TEMP_VIEW DROP_TRIGGER DROP_VIEW INSERT PRAGMA "
        "TRANSACTION UPDATE ATTACH DETACH ALTER_TABLE REINDEX ANALYZE CREATE_VTABLE DROP_VTABLE "
        "SAVEPOINT"
    ).split()
    if hasattr(sqlite3, "SQLITE_" + name)
}

#: Series / tensor results kept per connection for the SQL functions (versions are immutable).
_CACHE_ENTRIES = 16


class _Authorizer:
    """Allow reading only; remember what was refused for a clear message."""

    def __init__(self) -> None:
        self.refusals: list[str] = []

    @property
    def refused(self) -> str | None:
        """The most telling refusal (one on a user table rather than on sqlite_master)."""
        for what in self.refusals:
            if "sqlite_" not in what:
                return what
        return self.refusals[0] if self.refusals else None

    def __call__(
        self, action: int, arg1: str | None, arg2: str | None, db: str | None, src: str | None
    ) -> int:
        if action in _ALLOWED_ACTIONS:
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_UPDATE and arg1 in ("sqlite_master", "sqlite_temp_master") and not src:
            # SQLite asks this while reading table schemas (e.g. for pragma_table_info()); actual
            # UPDATEs of the schema table are refused by SQLite itself (writable_schema is off).
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_PRAGMA and arg1 is not None:
            takes_arg = _READ_PRAGMAS.get(arg1.lower())
            if takes_arg is not None and (arg2 is None or takes_arg):
                return sqlite3.SQLITE_OK
            what = f"PRAGMA {arg1}" + (f" = {arg2}" if arg2 is not None else "")
        else:
            what = _ACTION_NAMES.get(action, f"action {action}")
            if arg1:
                what += f" {arg1}"
        self.refusals.append(what)
        return sqlite3.SQLITE_DENY


#: The last exception one of our SQL functions raised on this thread (sqlite3 reports only that a
#: user function failed, not why); queries run synchronously, so a thread-local is exact.
_last_error = threading.local()


def _sql_value(value: Any) -> Any:
    if isinstance(value, (np.bool_, bool)):
        return int(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (np.floating, float)):
        f = float(value)
        return None if math.isnan(f) else f
    if isinstance(value, np.complexfloating):
        return None
    return value


def register_functions(conn: sqlite3.Connection, db: Database) -> None:
    """Register mvcdb's SQL functions (see the module docstring) on any connection to db's file.

    The functions read through db's own connection, so `conn` may be a separate read-only one
    (the CLI's `sql`, the TUI's console). Results are cached per (version, series/tensor).
    """
    cache: OrderedDict[tuple[str, str, str], Any] = OrderedDict()

    def cached(key: tuple[str, str, str], compute: Callable[[], Any]) -> Any:
        if key in cache:
            cache.move_to_end(key)
            return cache[key]
        value = compute()
        cache[key] = value
        while len(cache) > _CACHE_ENTRIES:
            cache.popitem(last=False)
        return value

    def vid_of(version: Any) -> int:
        if not isinstance(version, str):
            raise RefError(f"a version id or ref must be text, got {version!r}")
        return resolve_vid(db.conn, version)

    def series(version: Any, name: Any) -> tuple[np.ndarray, np.ndarray]:
        vid = vid_of(version)
        if not isinstance(name, str):
            raise MvcdbError(f"a series name must be text, got {name!r}")

        def load() -> tuple[np.ndarray, np.ndarray]:
            steps, values = db.series(db._id_of(vid), name)
            if values.ndim != 1:
                raise MvcdbError(f"series {name!r} logs arrays, not scalars")
            return steps, values

        result: tuple[np.ndarray, np.ndarray] = cached(("series", str(vid), name), load)
        return result

    def guard(fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any) -> Any:
            try:
                return _sql_value(fn(*args))
            except Exception as exc:
                _last_error.value = exc
                raise

        return wrapper

    def traj_value(version: Any, name: Any, step: Any) -> Any:
        steps, values = series(version, name)
        if step is None:
            return None
        if isinstance(step, float) and step.is_integer():
            step = int(step)
        if not isinstance(step, int):  # 1.5 is no step (int() would read it as step 1), 'x' neither
            raise MvcdbError(f"a step must be an integer, got {step!r}")
        hits = np.flatnonzero(steps == step)
        return values[hits[-1]] if len(hits) else None

    def pick(what: str) -> Callable[[Any, Any], Any]:
        def fn(version: Any, name: Any) -> Any:
            _, values = series(version, name)
            if len(values) == 0:
                return None
            if what == "first":
                return values[0]
            if what == "last":
                return values[-1]
            if what == "len":
                return len(values)
            if np.all(np.isnan(values.astype(np.float64))):
                return None
            return np.nanmin(values) if what == "min" else np.nanmax(values)

        return fn

    def tensor_norm(version: Any, name: Any) -> Any:
        vid = vid_of(version)
        if not isinstance(name, str):
            raise MvcdbError(f"a tensor name must be text, got {name!r}")

        def compute() -> float:
            from .diff import tensor_norm as stream_norm

            info = next((t for t in db.tensors(db._id_of(vid)) if t.name == name), None)
            if info is None:
                raise MvcdbError(f"no parameter named {name!r} in version {db._id_of(vid)[:12]}")
            return stream_norm(db, vid, info)

        result: float = cached(("norm", str(vid), name), compute)
        return result

    functions: dict[str, tuple[int, Callable[..., Any]]] = {
        "short_id": (1, lambda ident: ident[:12] if isinstance(ident, str) else None),
        "traj_value": (3, traj_value),
        "traj_first": (2, pick("first")),
        "traj_last": (2, pick("last")),
        "traj_min": (2, pick("min")),
        "traj_max": (2, pick("max")),
        "traj_len": (2, pick("len")),
        "tensor_norm": (2, tensor_norm),
    }
    for name, (nargs, fn) in functions.items():
        conn.create_function(name, nargs, guard(fn), deterministic=True)


def open_readonly(db: Database) -> sqlite3.Connection:
    """A new read-only (mode=ro) connection to db's file with mvcdb's SQL functions registered."""
    conn = db._open_connection(readonly=True)
    register_functions(conn, db)
    return conn


def run_sql(
    db: Database, query: str, params: Sequence[Any] | Mapping[str, Any] = (), *, timeout: float | None = None
) -> list[dict[str, Any]]:
    """Run one read-only SQL statement; rows as dicts (repeated column names get _2, _3...).

    Raises:
        MvcdbError: for any write attempt (nothing is changed), several statements, a SQL
            error (with SQLite's message), or a query still running after `timeout` seconds.
    """
    columns, rows = sql_table(db, query, params, timeout=timeout)
    return [dict(zip(columns, row, strict=True)) for row in rows]


def sql_table(
    db: Database, query: str, params: Sequence[Any] | Mapping[str, Any] = (), *, timeout: float | None = None
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Like run_sql, but (column names, row tuples): the names survive an empty result."""
    if not isinstance(query, str):
        raise MvcdbError(f"the query must be a string, got {type(query).__name__}")
    if not query.strip():
        raise MvcdbError("the query is empty")
    if has_lone_surrogate(query):  # bytes a UTF-8 locale could not decode (from the shell)
        raise MvcdbError(f"the query is not valid UTF-8 text: {query!r:.80}")
    if db._closed:
        raise MvcdbError("the database is closed")
    if timeout is not None and (not isinstance(timeout, (int, float)) or not timeout > 0):
        raise MvcdbError(f"timeout must be a positive number of seconds, got {timeout!r}")
    conn = open_readonly(db)
    try:
        return execute_readonly(conn, query, params, timeout=timeout)
    finally:
        conn.close()


#: SQLite VM instructions between two looks at the clock (and at Ctrl-C): ~1-5 ms of work.
PROGRESS_STEPS = 100_000


def execute_readonly(
    conn: sqlite3.Connection,
    query: str,
    params: Sequence[Any] | Mapping[str, Any] = (),
    *,
    timeout: float | None = None,
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run one statement on conn under the read-only authorizer: (unique column names, rows).

    A progress handler lets Ctrl-C stop a runaway query (a recursive CTE without an end kept
    running: the interrupt waited for SQLite to return) and enforces `timeout`. The TUI's SQL
    console can call this on its own connection (after register_functions).
    """
    authorizer = _Authorizer()
    conn.set_authorizer(authorizer)
    _last_error.value = None
    deadline = None if timeout is None else time.monotonic() + timeout
    timed_out = False

    def progress() -> int:
        # Python code: a pending Ctrl-C is raised here, which makes SQLite abort the query
        nonlocal timed_out
        timed_out = deadline is not None and time.monotonic() > deadline
        return int(timed_out)

    conn.set_progress_handler(progress, PROGRESS_STEPS)
    try:
        cursor = conn.execute(query, params)
        names = _unique([d[0] for d in cursor.description or ()])
        return names, [tuple(row) for row in cursor]
    except sqlite3.Error as exc:
        text = str(exc)
        if text == "interrupted":
            if timed_out:
                raise MvcdbError(f"SQL query stopped after {timeout:g} s (its time limit)") from None
            raise KeyboardInterrupt from None  # the Ctrl-C that stopped it
        if "one statement" in text:
            raise MvcdbError("SQL runs one statement at a time (remove the extra ';' statements)") from None
        if authorizer.refused is not None or any(
            marker in text for marker in ("not authorized", "readonly", "may not be modified")
        ):
            what = authorizer.refused or f"a write ({text})"
            keyword = query.split(None, 1)[0].upper() if query.split() else ""
            if "sqlite_" in what and keyword not in ("SELECT", "WITH", "VALUES", ""):
                what = f"{keyword} (a change to the schema)"
            raise MvcdbError(f"SQL is read-only: refused {what} (only SELECT queries run here)") from None
        cause: BaseException | None = getattr(_last_error, "value", None)
        if cause is not None and "user-defined function raised exception" in text:
            raise MvcdbError(f"SQL function error: {cause}") from None
        raise MvcdbError(f"SQL error: {text}") from None
    except OverflowError:  # binding an int past 64 bits
        raise MvcdbError("SQL parameter out of range: integers must fit 64 bits (pass a float)") from None
    except (TypeError, ValueError) as exc:  # a parameter of a type sqlite3 cannot bind, or bad params
        raise MvcdbError(f"SQL parameters: {exc}") from None
    finally:
        conn.set_authorizer(None)
        conn.set_progress_handler(None, 0)


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for name in names:
        if name in seen:
            seen[name] += 1
            out.append(f"{name}_{seen[name]}")
        else:
            seen[name] = 1
            out.append(name)
    return out

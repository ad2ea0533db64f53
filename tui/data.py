"""What the TUI shows, fetched through mvcdb's public API (no textual here, so it is easy to test).

Every function opens its own read-only Database: sqlite3 connections belong to one thread, and
these run inside Textual thread workers. Writes (tags) go through a short-lived writable Database.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

import mvcdb
from mvcdb import norms
from mvcdb.database import Database
from mvcdb.errors import MvcdbError
from mvcdb.exporting import FORMATS, export_version
from mvcdb.models import TagMove, TensorInfo, Version
from mvcdb.sqlquery import execute_readonly, open_readonly

T = TypeVar("T")

#: Rows fetched per page of the versions table (more are fetched as the cursor nears the end).
PAGE_SIZE = 200
#: The first page at start-up is only what the screen can show (at least this many rows); the rest
#: of PAGE_SIZE follows right after the first paint.
MIN_FIRST_ROWS = 24
#: At most this many metric columns in the versions table (the most common names first).
MAX_METRIC_COLUMNS = 4
#: The lineage pane draws at most this many versions of a model (the newest ones).
LINEAGE_CAP = 300
#: Points plotted per series at most (longer trajectories are thinned evenly).
MAX_PLOT_POINTS = 2000
#: Parameter norms are computed only when the version's parameters are at most this big.
NORM_BYTES_CAP = 1 << 30

#: Fixed columns of the versions table: key -> (label, order_by for db.versions or None).
FIXED_COLUMNS: dict[str, tuple[str, str | None]] = {
    "model": ("model", "model"),
    "id": ("id", "id"),
    "when": ("when (UTC)", "created_at"),
    "author": ("author", "author"),
    "tags": ("tags", None),
}
#: The message comes last, after the metric columns: it is the widest and the least compared.
MESSAGE_COLUMN = ("message", "message")

_TERM_RE = re.compile(
    r"""\s*(?:
        (?P<cond>[A-Za-z_][\w.\-/:+]*\s*(?:==|!=|<=|>=|=|<|>|~)\s*(?:"[^"]*"|'[^']*'|[^\s,]+))
      | (?P<word>"[^"]*"|'[^']*'|[^\s,]+)
    )\s*,?""",
    re.VERBOSE,
)


@contextmanager
def reading(path: str | Path) -> Iterator[Database]:
    """A read-only Database for the calling thread, closed afterwards."""
    db = mvcdb.open(path, readonly=True)
    try:
        yield db
    finally:
        db.close()


def parse_filter(text: str, models: Sequence[str] = ()) -> list[str]:
    """Turn the filter box's text into db.versions(where=[...]) conditions.

    `val_loss<0.2 model=linreg tag=production author=bob` pass through as conditions (see
    mvcdb/filters.py); a bare word names a model when one is called that, else it searches the
    message (`message~word`). Terms are separated by spaces or commas; quote values with spaces.
    """
    conditions: list[str] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        match = _TERM_RE.match(text, pos)
        if match is None or match.end() == pos:
            raise MvcdbError(f"cannot read the filter at {text[pos:]!r}")
        pos = match.end()
        if match.group("cond"):
            conditions.append(match.group("cond").strip())
            continue
        word = match.group("word")
        bare = word[1:-1] if len(word) >= 2 and word[0] == word[-1] and word[0] in "'\"" else word
        if not bare:
            continue
        if bare in models:
            conditions.append(f"model = '{bare}'")
        else:
            quoted = bare.replace("'", "")
            conditions.append(f"message ~ '{quoted}'")
    return conditions


def order_key(column: str, descending: bool) -> str | None:
    """The db.versions(order_by=...) for a table column, or None when only a local sort fits."""
    key: str | None
    if column == MESSAGE_COLUMN[0]:
        key = MESSAGE_COLUMN[1]
    elif column in FIXED_COLUMNS:
        key = FIXED_COLUMNS[column][1]
    elif column.startswith("metric:"):
        key = "metrics." + column[len("metric:") :]
    else:
        key = None
    if key is None:
        return None
    return ("-" if descending else "") + key


def load_page(
    path: str | Path,
    where: Sequence[str],
    order_by: str | None,
    offset: int,
    limit: int = PAGE_SIZE,
) -> list[Version]:
    """One page of versions, as the table shows them."""
    with reading(path) as db:
        return list(db.versions(where=list(where), order_by=order_by, limit=limit, offset=offset))


def first_page_size(screen_rows: int) -> int:
    """Rows to read before the first paint: as many as the terminal is tall (the table, inside it,
    shows fewer), so the screen is full; each row costs measuring and drawing before it shows."""
    return min(PAGE_SIZE, max(MIN_FIRST_ROWS, screen_rows))


def model_names(path: str | Path) -> list[str]:
    """Every model name in the file."""
    with reading(path) as db:
        return db.models()


def missing_ids(path: str | Path, version_ids: Sequence[str]) -> list[str]:
    """Those of version_ids no longer in the file (removed by another process: mvcdb rm)."""
    with reading(path) as db:
        found = {
            row[0]
            for row in db.conn.execute(
                "SELECT id FROM versions WHERE id IN (SELECT value FROM json_each(?))",
                (json.dumps(list(version_ids)),),
            )
        }
    return [i for i in version_ids if i not in found]


def key_metrics(versions: Sequence[Version], limit: int = MAX_METRIC_COLUMNS) -> list[str]:
    """The metric names most versions have, most common first (ties by name)."""
    counts: dict[str, int] = {}
    for v in versions:
        for name in v.metrics:
            counts[name] = counts.get(name, 0) + 1
    return [n for n, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))][:limit]


def metric_columns(shown: Sequence[str], versions: Sequence[Version], *, keep: bool) -> list[str]:
    """The metric columns for a fresh first page: the shown ones first, in their order, then new ones.

    keep (a re-sort or a refresh of the same filter): every shown column stays, new names fill the
    free places; else (a new filter) only the shown ones among the page's most common stay. Either
    way a column never moves, so `o` steps through each column in turn instead of bouncing between
    two metrics whose counts swap from one sorted page to the next. No rows: the columns stay.
    """
    if not versions:
        return list(shown)
    common = key_metrics(versions)
    base = list(shown) if keep else [name for name in shown if name in common]
    return (base + [name for name in common if name not in base])[:MAX_METRIC_COLUMNS]


def counted(n: int, noun: str, more: bool = False) -> str:
    """'1 version', '2 versions', '200+ versions' (more: there are more than n)."""
    return f"{n:,}{'+' if more else ''} {noun}{'' if n == 1 and not more else 's'}"


def when_text(moment: datetime) -> str:
    """A version's creation time, absolute (stable on screen and in snapshots)."""
    return moment.strftime("%Y-%m-%d %H:%M")


def metric_text(value: float | None) -> str:
    """A metric for a table cell: five significant digits, 'nan', or '' when absent."""
    if value is None:
        return ""
    if value != value:
        return "nan"
    if value == 0 or 1e-4 <= abs(value) < 1e6:
        return f"{value:.5g}"
    return f"{value:.3e}"


def size_text(n: float) -> str:
    """1536 -> '1.5 KiB'."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def in_thread(fn: Callable[[], T], name: str) -> Future[T]:
    """Run fn in a daemon thread now: before Textual's workers can (they start with the event loop),
    and without holding up the process's exit (Textual's thread workers are waited for)."""
    future: Future[T] = Future()

    def run() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(fn())
        except BaseException as exc:  # noqa: BLE001 - handed over with the future, re-raised there
            future.set_exception(exc)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future


# -- detail -----------------------------------------------------------------------------------


@dataclass
class Detail:
    """Everything the detail pane shows about one version (built in a worker)."""

    version: Version
    children: list[str]
    tensors: list[TensorInfo]
    series: dict[str, np.ndarray] = field(default_factory=dict)
    steps: np.ndarray | None = None


def load_detail(path: str | Path, version_id: str) -> Detail:
    """A version with its children, parameter list and trajectory (thinned for plotting)."""
    with reading(path) as db:
        version = db.get(version_id)
        children = db.children(version_id)
        tensors = db.tensors(version_id)
        steps, series = plot_series(db.trajectory(version_id))
    return Detail(version=version, children=children, tensors=tensors, series=series, steps=steps)


def plot_series(traj: dict[str, np.ndarray]) -> tuple[np.ndarray | None, dict[str, np.ndarray]]:
    """Trajectory -> (steps, {label: float64 values}) with at most MAX_PLOT_POINTS each.

    A series with more than one value a step (a logged weight matrix) is plotted as its L2 norm.
    """
    if not traj or "step" not in traj:
        return None, {}
    steps = np.asarray(traj["step"])
    n = len(steps)
    pick = np.linspace(0, n - 1, MAX_PLOT_POINTS).astype(np.int64) if n > MAX_PLOT_POINTS else None
    out: dict[str, np.ndarray] = {}
    for name, values in traj.items():
        if name == "step" or values.dtype.kind not in "biuf" or len(values) != n:
            continue
        arr = np.asarray(values if pick is None else values[pick])
        if arr.ndim > 1:
            label = f"‖{name}‖"
            flat = arr.reshape(len(arr), -1).astype(np.float64)
            arr = np.sqrt(np.nansum(flat * flat, axis=1))
        else:
            label = name
        out[label] = arr.astype(np.float64)
    return (steps if pick is None else steps[pick]).astype(np.float64), out


def param_norms(
    path: str | Path,
    version_id: str,
    tensors: Sequence[TensorInfo],
    cancelled: Callable[[], bool] = lambda: False,
) -> tuple[dict[str, float], dict[str, str]]:
    """(name -> L2 norm, name -> why it is damaged) of the parameters (mvcdb.norms: read in
    batches, a lazy clone's unfetched ones left out); nothing above NORM_BYTES_CAP in total."""
    if sum(t.nbytes for t in tensors) > NORM_BYTES_CAP:
        return {}, {}
    with reading(path) as db:
        return norms.param_norms(db, version_id, tensors, cancelled=cancelled)


def sparkline(values: np.ndarray, width: int = 24) -> str:
    """A one-line text sparkline of a series (for tight spaces), NaNs skipped."""
    finite = values[np.isfinite(values)]
    if len(finite) == 0:
        return ""
    if len(finite) > width:
        finite = finite[np.linspace(0, len(finite) - 1, width).astype(np.int64)]
    low, high = float(finite.min()), float(finite.max())
    bars = "▁▂▃▄▅▆▇█"
    if high == low:
        return bars[3] * len(finite)
    scaled = ((finite - low) / (high - low) * (len(bars) - 1)).round().astype(int)
    return "".join(bars[i] for i in scaled)


# -- lineage ----------------------------------------------------------------------------------


@dataclass
class LineageNode:
    """One version in the lineage pane: its first-parent children and its extra parents."""

    version: Version
    children: list[str] = field(default_factory=list)


@dataclass
class Lineage:
    """A model's DAG for drawing: roots oldest first, children by first parent, merges noted."""

    model: str
    nodes: dict[str, LineageNode]
    roots: list[str]
    truncated: bool = False
    merge_links: dict[str, list[str]] = field(default_factory=dict)


def load_lineage(path: str | Path, model: str, cap: int = LINEAGE_CAP) -> Lineage:
    """The newest `cap` versions of a model arranged as a tree (first parents) plus merge links."""
    with reading(path) as db:
        newest = list(db.versions(model=model, limit=cap + 1))
    more = len(newest) > cap
    newest = newest[:cap]
    newest.reverse()
    return build_lineage(model, newest, truncated=more)


def build_lineage(model: str, versions: Sequence[Version], truncated: bool = False) -> Lineage:
    """Arrange versions (oldest first) into first-parent trees; extra parents become merge links."""
    nodes = {v.id: LineageNode(v) for v in versions}
    roots: list[str] = []
    links: dict[str, list[str]] = {}
    for v in versions:
        first = v.parents[0] if v.parents else None
        if first is not None and first in nodes:
            nodes[first].children.append(v.id)
        else:
            roots.append(v.id)
        for other in v.parents[1:]:
            if other in nodes:
                links.setdefault(other, []).append(v.id)
    return Lineage(model=model, nodes=nodes, roots=roots, truncated=truncated, merge_links=links)


# -- actions ----------------------------------------------------------------------------------


def tag_state(path: str | Path, name: str) -> tuple[str | None, list[TagMove]]:
    """Where a tag points now (None if it does not exist) and its history, oldest first."""
    with reading(path) as db:
        return db.tags().get(name), db.tag_history(name)


def all_tags(path: str | Path) -> dict[str, str]:
    """Every tag and the id it points at."""
    with reading(path) as db:
        return db.tags()


def set_tag(path: str | Path, version_id: str, name: str) -> Version:
    """Point tag `name` at a version through a short-lived writable Database."""
    db = mvcdb.open(path)
    try:
        return db.tag(version_id, name)
    finally:
        db.close()


EXPORT_FORMATS = tuple(FORMATS.values())


def export_format(dest: str, chosen: str) -> str:
    """The format to write dest in: its extension's when it has a known one (as `mvcdb restore -o`
    decides), else the chosen one. 'model.safetensors' with npz chosen is safetensors, never a ZIP
    under a .safetensors name."""
    return FORMATS.get(Path(dest.strip()).suffix.lower(), chosen)


def export_params(path: str | Path, version_id: str, dest: str | Path, fmt: str, *, overwrite: bool) -> Path:
    """Write a version's parameters to an .npz or .safetensors file, never overwriting silently.

    Raises:
        MvcdbError: unknown format, the file exists and overwrite is False, or the write failed.
    """
    target = Path(dest).expanduser() if str(dest).strip() else ""  # "": refused, not the cwd
    with reading(path) as db:
        written = export_version(
            db, version_id, target, fmt=fmt, overwrite=overwrite, how_to_overwrite="confirm"
        )
    return written.path.absolute()  # shown to the user: where the file went, whatever the cwd


@dataclass
class SqlResult:
    """A console query's columns and its first rows; more: it had more rows than were kept."""

    columns: list[str]
    rows: list[tuple[Any, ...]]
    more: bool = False


class SqlStopped(Exception):
    """The console query was stopped by SqlQuery.stop() (screen closed, app quitting)."""


class SqlQuery:
    """One SQL console query on its own read-only connection (db.sql's rules: writes refused).

    It keeps at most max_rows rows and stops the query at the next one, and stop() (from any
    thread) interrupts it: a runaway query (a recursive CTE without an end) used to fill memory
    without bound and keep `q` from ending the process until it was killed.
    """

    def __init__(self, path: str | Path, query: str, max_rows: int, timeout: float) -> None:
        self.path = path
        self.query = query
        self.max_rows = max_rows
        self.timeout = timeout
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._stopped = False

    def run(self) -> SqlResult:
        """Run the query. Raises MvcdbError (refused, bad SQL, time limit) or SqlStopped."""
        with reading(self.path) as db:
            conn = open_readonly(db)
            try:
                return self._run_on(conn)
            finally:
                with self._lock:
                    self._conn = None
                conn.close()

    def _run_on(self, conn: sqlite3.Connection) -> SqlResult:
        kept: list[tuple[Any, ...]] = []

        def keep(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> tuple[Any, ...]:
            if len(kept) == self.max_rows:  # one row too many: the rest is never read
                raise _EnoughRows([d[0] for d in cursor.description or ()])
            kept.append(row)
            return row

        conn.row_factory = keep
        with self._lock:
            if self._stopped:
                raise SqlStopped
            self._conn = conn
        try:
            names, _ = execute_readonly(conn, self.query, timeout=self.timeout)
        except _EnoughRows as enough:
            return SqlResult(enough.columns, kept, more=True)
        except KeyboardInterrupt:  # what execute_readonly makes of an interrupt it did not ask for
            if self._stopped:
                raise SqlStopped from None
            raise
        return SqlResult(names, kept)

    def stop(self) -> None:
        """Interrupt the query (any thread); run() then raises SqlStopped."""
        with self._lock:
            self._stopped = True
            if self._conn is not None:
                self._conn.interrupt()


class _EnoughRows(Exception):
    """Raised from the row factory at the row past max_rows (it ends the query there)."""

    def __init__(self, columns: list[str]) -> None:
        super().__init__()
        self.columns = columns


def schema_views(path: str | Path) -> list[tuple[str, str]]:
    """The schema's views and tables (name, type), views first, for the SQL console's list."""
    with reading(path) as db:
        rows = db.sql(
            "SELECT name, type FROM sqlite_master WHERE type IN ('view', 'table')"
            " AND name NOT LIKE 'sqlite_%' ORDER BY type DESC, name"
        )
    return [(str(r["name"]), str(r["type"])) for r in rows]


def load_diff(path: str | Path, a: str, b: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """db.diff(a, b).to_dict() plus both trajectories thinned for one overlaid chart."""
    with reading(path) as db:
        report = db.diff(a, b).to_dict()
        ta = plot_series(db.trajectory(a))
        tb = plot_series(db.trajectory(b))
    return report, {"a": ta, "b": tb}


def short(version_id: str | None) -> str:
    """The 12-hex short id ('—' for None)."""
    return version_id[:12] if version_id else "—"

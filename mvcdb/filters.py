"""Turning versions() filters into one SQL query over the indexed tables.

Conditions are small expressions a user types in Python, the CLI or the TUI filter box:
    metrics.val_loss < 0.2      metadata.train_set = 'a.csv'      metadata.hyper.lr >= 0.01
    model = linreg              author != bob                     message ~ warmup
A metric whose name has other characters is quoted: metrics."acc[top1]" > 0.9 (or "acc[top1]").
Operators: = == != < <= > >= and ~ (substring). Values: numbers, 'quoted' or "quoted" text,
or a bare word; for metadata, bare true/false/null are JSON's; created_at takes a time as
since=/until= do (2026-01-31, 2026-01-31 12:00, 7d). A bare `val_loss<0.2` (no prefix) means a
metric. Everything becomes bound parameters: no user text is ever spliced into SQL.
"""

from __future__ import annotations

import math
import re
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import MvcdbError
from .models import vids_from_text
from .timeutil import parse_when, to_text

_COND_RE = re.compile(
    r"""^\s*(?P<field>(?:metrics\.)?(?P<quote>["'])(?P<quoted>.+?)(?P=quote)|[A-Za-z_][\w.\-/:+]*)"""
    r"""\s*(?P<op>==|!=|<=|>=|=|<|>|~)\s*(?P<value>.+?)\s*$"""
)
_SQL_OPS = {"=": "=", "==": "=", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_COLUMNS = {"model", "author", "message", "created_at", "id"}
_JSON_PATH_RE = re.compile(r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$")
#: Bare words that compare with JSON's true, false and null in metadata (quote them for text).
_JSON_WORDS: dict[str, int | None] = {"true": 1, "false": 0, "null": None}


def _value(text: str) -> Any:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    try:
        number = int(text)
    except ValueError:
        pass
    else:  # past SQLite's 64-bit integers, a float compares the same (and can be bound)
        if -(2**63) <= number < 2**63:
            return number
        try:
            return float(number)
        except OverflowError:
            return math.inf if number > 0 else -math.inf
    try:
        return float(text)
    except ValueError:
        return text


def _json_path(path: str) -> str:
    if not _JSON_PATH_RE.match(path):
        raise MvcdbError(f"invalid metadata path {path!r}")
    return "$." + ".".join(f'"{p}"' for p in path.split("."))


#: Counts (limits, offsets, depths) at or above this are all the same: more rows than any file holds.
#: Larger values are clamped to it, since SQLite's integers stop at 2**63 - 1.
MAX_COUNT = 2**62


def check_count(name: str, value: int | None) -> int | None:
    """A limit, offset or depth as given (None stays None), clamped to MAX_COUNT; MvcdbError if it
    is not a non-negative integer."""
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise MvcdbError(f"{name} must be a non-negative integer, got {value!r}")
    return min(value, MAX_COUNT)


@dataclass(frozen=True)
class _Metric:
    """A condition on one metric: `name op value` (value a number; NaN/missing never match)."""

    name: str
    op: str
    value: float
    #: written with its `metrics.` prefix (a bare dotted name may be a mistyped metadata path)
    explicit: bool = True

    def in_sql(self) -> tuple[str, list[Any]]:
        # IN (not a correlated EXISTS): one range scan of the (name, value) index, ~2x faster
        # when every match is wanted; select_vids picks EXISTS when scanning another order.
        return f"v.vid IN (SELECT m.vid FROM metrics m WHERE m.name = ? AND m.value {self.op} ?)", [
            self.name,
            self.value,
        ]

    def probe_sql(self) -> tuple[str, list[Any]]:
        """Its matches straight from the (name, value) index (to count them, bounded)."""
        return f"SELECT 1 FROM metrics WHERE name = ? AND value {self.op} ?", [self.name, self.value]

    def exists_sql(self) -> tuple[str, list[Any]]:
        return (
            f"EXISTS (SELECT 1 FROM metrics m WHERE m.vid = v.vid AND m.name = ? AND m.value {self.op} ?)",
            [self.name, self.value],
        )


def _parse_condition(cond: str) -> tuple[str, list[Any]] | _Metric:
    """One condition -> a metric condition, or (SQL boolean expression over alias v, parameters)."""
    match = _COND_RE.match(cond)
    if not match:
        raise MvcdbError(
            f"cannot read condition {cond!r}: expected FIELD OP VALUE, e.g. metrics.val_loss < 0.2"
        )
    field, op, raw = match.group("field"), match.group("op"), match.group("value")
    if not raw.strip() or raw[0] in "=<>!~" or field.endswith("."):  # `model <> m`, `metrics. < 1`
        raise MvcdbError(
            f"cannot read condition {cond!r}: expected FIELD OP VALUE, e.g. metrics.val_loss < 0.2"
        )
    value = _value(raw)
    quoted = match.group("quoted")
    if quoted is not None:  # metrics."acc[top1]" or "f1 score": a metric whatever its characters
        field = f"metrics.{quoted}"
    if field.startswith("metadata."):
        lhs, params = "json_extract(v.metadata, ?)", [_json_path(field[len("metadata.") :])]
        if raw in _JSON_WORDS and op != "~":  # bare true/false/null: JSON's, as json_extract gives them
            value = _JSON_WORDS[raw]
            if value is None:
                if op not in ("=", "==", "!="):
                    raise MvcdbError(f"null can only be compared with = or != (in {cond!r})")
                return f"{lhs} IS {'NOT ' if op == '!=' else ''}NULL", params
    elif field == "created_at" and op != "~":  # a time, compared in the stored text format
        lhs, params = "v.created_at", []
        value = to_text(parse_when(value if isinstance(value, str) else raw, "created_at"))
    elif field in _COLUMNS:
        lhs, params = f"v.{field}", []
    elif field == "tag":
        if op not in ("=", "=="):
            raise MvcdbError("tag conditions only support '='")
        return "v.vid IN (SELECT t.vid FROM tags t WHERE t.name = ?)", [value]
    else:
        name = field[len("metrics.") :] if field.startswith("metrics.") else field
        if op == "~":
            raise MvcdbError(f"'~' (contains) does not apply to metric {name!r}")
        if not isinstance(value, (int, float)):
            raise MvcdbError(f"metric {name!r} must be compared with a number, got {raw!r}")
        return _Metric(name, _SQL_OPS[op], value, explicit=field.startswith("metrics."))
    if op == "~":
        return f"instr(lower(CAST({lhs} AS TEXT)), lower(?)) > 0", [*params, str(value)]
    return f"{lhs} {_SQL_OPS[op]} ?", [*params, value]


def condition_sql(cond: str) -> tuple[str, list[Any]]:
    """One condition -> (SQL boolean expression over alias v, parameters)."""
    parsed = _parse_condition(cond)
    return parsed.in_sql() if isinstance(parsed, _Metric) else parsed


def order_sql(order_by: str | None) -> tuple[str, list[Any], str, list[Any]]:
    """order_by -> (JOIN clause, its parameters, ORDER BY clause, its parameters)."""
    if not order_by:
        return "", [], "v.created_at DESC, v.vid DESC", []
    descending = order_by.startswith("-")
    key = order_by.lstrip("-+").strip()
    direction = "DESC" if descending else "ASC"
    if key.startswith("metrics."):
        if key == "metrics.":
            raise MvcdbError(f"cannot order by {order_by!r}: metrics.NAME needs the metric's name")
        return (
            "LEFT JOIN metrics om ON om.vid = v.vid AND om.name = ?",
            [key[len("metrics.") :]],
            f"om.value IS NULL, om.value {direction}, v.created_at DESC, v.vid DESC",
            [],
        )
    if key.startswith("metadata."):  # versions without the field last, as for a metric
        path = _json_path(key[len("metadata.") :])
        field = "json_extract(v.metadata, ?)"
        return "", [], f"{field} IS NULL, {field} {direction}, v.created_at DESC", [path, path]
    if key in _COLUMNS:
        return "", [], f"v.{key} {direction}, v.vid {direction}", []
    if re.fullmatch(r"[A-Za-z_][\w.\-/:+]*", key) and not key.endswith("."):  # a bare metric name,
        return order_sql(f"{'-' if descending else ''}metrics.{key}")  # as in a condition
    raise MvcdbError(
        f"cannot order by {order_by!r}: use created_at, model, author, metrics.NAME or metadata.PATH"
    )


def select_vids(
    conn: sqlite3.Connection,
    *,
    model: str | None = None,
    tag: str | None = None,
    author: str | None = None,
    since: str | None = None,
    until: str | None = None,
    where: str | Iterable[str] | None = None,
    order_by: str | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> list[int]:
    """The vids matching all filters, in the requested order: at most limit, the first offset skipped.

    Two plans. Filter-driven (always right, the only one without a limit): find every match
    through the filters' indexes, then sort them. Order-driven, for top-k queries ordered by time
    or by a metric: walk the order's index (versions by time; metrics by (name, value)) and stop
    at the limit, checking metric conditions per row; conditions on the order's own metric become
    the walk's range. The order-driven plan wins unless a filter matches only a few rows (then
    the walk would pass many non-matches before finding k): a bounded count of each indexed
    filter decides (at most sqrt(k x versions) index entries each).
    """
    limit = check_count("limit", limit)
    offset = check_count("offset", offset) or 0
    clauses: list[tuple[str, list[Any]]] = []
    probes: list[tuple[str, list[Any]]] = []  # indexed filters: (SELECT over the index, params)
    for value, sql, probe in (
        (model, "v.model = ?", "SELECT 1 FROM versions WHERE model = ?"),
        (author, "v.author = ?", None),
        (since, "v.created_at >= ?", "SELECT 1 FROM versions WHERE created_at >= ?"),
        (until, "v.created_at < ?", "SELECT 1 FROM versions WHERE created_at < ?"),
        (tag, "v.vid IN (SELECT t.vid FROM tags t WHERE t.name = ?)", "SELECT 1 FROM tags WHERE name = ?"),
    ):
        if value is not None:
            clauses.append((sql, [value]))
            if probe is not None:
                probes.append((probe, [value]))
    metrics: list[_Metric] = []
    given: object = [] if where is None else [where] if isinstance(where, str) else where
    items = list(given) if isinstance(given, Iterable) else [given]
    conditions = [c for c in items if isinstance(c, str)]
    if len(conditions) != len(items):
        raise MvcdbError(f"where must be a condition string or a list of them, got {where!r}")
    if order_by is not None and not isinstance(order_by, str):
        raise MvcdbError(f"order_by must be a string such as '-created_at', got {order_by!r}")
    for cond in conditions:
        parsed = _parse_condition(cond)
        if isinstance(parsed, _Metric):
            _check_dotted_metric(conn, parsed)
            metrics.append(parsed)
        else:
            clauses.append(parsed)
    key = (order_by or "-created_at").strip()
    descending = key.startswith("-")
    key = key.lstrip("-+").strip()
    if key == "metrics.":  # no name: the limit= paths below would not ask order_sql
        order_sql(order_by)
    if key not in _COLUMNS and not key.startswith(("metrics.", "metadata.")):
        order_sql(order_by)  # refuses what is no name at all
        # a bare name orders by that metric, as in a condition; one no version has is a typo
        # (`crated_at`), not an order
        if conn.execute("SELECT 1 FROM metrics WHERE name = ? LIMIT 1", (key,)).fetchone() is None:
            raise MvcdbError(
                f"cannot order by {order_by!r}: no version has a metric of that name (use created_at,"
                " model, author, metrics.NAME or metadata.PATH)"
            )
        order_by, key = f"{'-' if descending else ''}metrics.{key}", f"metrics.{key}"
    if limit is not None and (key == "created_at" or key.startswith("metrics.")):
        ordered_by = key[len("metrics.") :] if key.startswith("metrics.") else None
        checks = [m.probe_sql() for m in metrics if m.name != ordered_by]
        if ordered_by is not None:
            checks += probes  # (a time order walks versions_created: only metric filters starve it)
        if not _any_selective(conn, checks, min(limit + offset, MAX_COUNT)):
            if ordered_by is None:
                return _by_time(conn, clauses, metrics, descending, limit, offset)
            return _by_metric(conn, ordered_by, descending, clauses, metrics, limit, offset)
    return _filter_driven(conn, clauses, metrics, order_by, limit, offset)


def _check_dotted_metric(conn: sqlite3.Connection, metric: _Metric) -> None:
    """A bare dotted name no version has as a metric (`hyper.lr > 0`, `metdata.lr > 0`) is far more
    likely a mistyped metadata path than a metric: say so instead of matching nothing."""
    if metric.explicit or "." not in metric.name:
        return
    if conn.execute("SELECT 1 FROM metrics WHERE name = ? LIMIT 1", (metric.name,)).fetchone() is None:
        raise MvcdbError(
            f"no version has a metric named {metric.name!r}: write metadata.PATH for a metadata"
            " field (metadata.hyper.lr), metrics.NAME for a metric"
        )


def _any_selective(conn: sqlite3.Connection, probes: Sequence[tuple[str, list[Any]]], need: int) -> bool:
    """Whether some indexed filter matches so few rows that finding them all beats walking an order.

    Finding all M matches and sorting costs ~M row visits; walking the order's index until k
    matches turn up costs ~k x N / M: they break even at M = sqrt(k x N).
    """
    if not probes:
        return False
    total = conn.execute("SELECT max(vid) FROM versions").fetchone()[0] or 0
    bound = min(MAX_COUNT, max(64, math.isqrt(max(need, 1) * total)))
    for sql, params in probes:
        (count,) = conn.execute(f"SELECT count(*) FROM ({sql} LIMIT ?)", [*params, bound]).fetchone()
        if count < bound:
            return True
    return False


def _where(clauses: Sequence[tuple[str, list[Any]]]) -> tuple[str, list[Any]]:
    sql = " AND ".join(c for c, _ in clauses)
    return (f" AND {sql}" if sql else ""), [p for _, params in clauses for p in params]


def _run(conn: sqlite3.Connection, query: str, params: Sequence[Any]) -> list[int]:
    """The vids a query selects (column `vid`), in its order, as one aggregated string."""
    (text,) = conn.execute(f"SELECT group_concat(vid) FROM ({query})", params).fetchone()
    return vids_from_text(text)


def _by_time(
    conn: sqlite3.Connection,
    clauses: list[tuple[str, list[Any]]],
    metrics: Sequence[_Metric],
    descending: bool,
    limit: int,
    offset: int,
) -> list[int]:
    """Top-k by time: walk versions_created (or versions_model_created), metric checks per row."""
    where, params = _where([*clauses, *(m.exists_sql() for m in metrics)])
    direction = "DESC" if descending else "ASC"
    return _run(
        conn,
        f"SELECT v.vid FROM versions v WHERE 1{where} ORDER BY v.created_at {direction}, v.vid {direction}"
        " LIMIT ? OFFSET ?",
        [*params, limit, offset],
    )


def _by_metric(
    conn: sqlite3.Connection,
    name: str,
    descending: bool,
    clauses: list[tuple[str, list[Any]]],
    metrics: Sequence[_Metric],
    limit: int,
    offset: int,
) -> list[int]:
    """Top-k by a metric: versions with a value, walked along the (name, value) index; then
    (if the page reaches past them) those without one (missing or NaN), newest first."""
    own = [m for m in metrics if m.name == name]
    where, params = _where([*clauses, *(m.exists_sql() for m in metrics if m.name != name)])
    ranges = "".join(f" AND om.value {m.op} ?" for m in own)
    direction = "DESC" if descending else "ASC"
    valued = (
        "SELECT v.vid FROM metrics om CROSS JOIN versions v ON v.vid = om.vid"
        f" WHERE om.name = ? AND om.value IS NOT NULL{ranges}{where}"
    )
    valued_params = [name, *(m.value for m in own), *params]
    found = _run(
        conn,
        f"{valued} ORDER BY om.value {direction}, v.created_at DESC, v.vid DESC LIMIT ? OFFSET ?",
        [*valued_params, limit, offset],
    )
    if len(found) == limit or own:  # a condition on the metric itself excludes missing values
        return found
    if found:
        skip = 0  # the valued ones ran out within this page
    else:
        (count,) = conn.execute(f"SELECT count(*) FROM ({valued})", valued_params).fetchone()
        skip = offset - count
    return found + _run(
        conn,
        "SELECT v.vid FROM versions v WHERE NOT EXISTS (SELECT 1 FROM metrics om WHERE om.vid = v.vid"
        f" AND om.name = ? AND om.value IS NOT NULL){where}"
        " ORDER BY v.created_at DESC, v.vid DESC LIMIT ? OFFSET ?",
        [name, *params, limit - len(found), skip],
    )


def _filter_driven(
    conn: sqlite3.Connection,
    clauses: list[tuple[str, list[Any]]],
    metrics: Sequence[_Metric],
    order_by: str | None,
    limit: int | None,
    offset: int,
) -> list[int]:
    """Every match through the filters' indexes, sorted: one query."""
    where, params = _where([*clauses, *(m.in_sql() for m in metrics)])
    join, join_params, order, order_params = order_sql(order_by)
    query = f"SELECT v.vid FROM versions v {join} WHERE 1{where} ORDER BY {order}"
    paging: list[int] = []
    if limit is not None or offset:
        query += " LIMIT ? OFFSET ?"  # SQLite needs a LIMIT before OFFSET: -1 is none
        paging = [-1 if limit is None else int(limit), int(offset)]
    return _run(conn, query, [*join_params, *params, *order_params, *paging])

"""Leaderboards: versions side by side, one row a version, one column a metric or metadata field."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .diff import json_float
from .errors import MvcdbError
from .models import Version, load_versions
from .refs import name_list, ref_list

if TYPE_CHECKING:
    from .database import Database, ParentRef

#: Version attributes a field column may name directly (anything else is a metadata path).
_ATTRIBUTES = ("model", "author", "message", "created_at", "tags", "parents", "params_bytes")


@dataclass(frozen=True)
class Comparison:
    """A table of versions: `rows[i]` holds `versions[i]`'s values for `columns` (None = missing).

    Metric columns are named by the metric; field columns as given (`metadata.hyper.lr`,
    `hyper.lr`, or a version attribute such as `author`). `kinds[j]` says which ("metric"/"field").
    """

    columns: tuple[str, ...]
    kinds: tuple[str, ...]
    versions: tuple[Version, ...]
    rows: tuple[tuple[Any, ...], ...]

    def column(self, name: str) -> list[Any]:
        """One column's values, in row order."""
        try:
            j = self.columns.index(name)
        except ValueError:
            raise MvcdbError(f"no column {name!r} (columns: {', '.join(self.columns)})") from None
        return [row[j] for row in self.rows]

    def sorted_by(self, name: str, *, descending: bool = False) -> Comparison:
        """The same table ordered by one column (missing and NaN values last)."""
        values = self.column(name)

        def missing(v: Any) -> bool:
            return v is None or (isinstance(v, float) and math.isnan(v))

        def key(i: int) -> tuple[int, float, str]:
            v = values[i]
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                return (0, float(v), "")
            return (1, 0.0, _text(v))

        present = sorted(
            (i for i in range(len(values)) if not missing(values[i])), key=key, reverse=descending
        )
        order = present + [i for i in range(len(values)) if missing(values[i])]
        return Comparison(
            self.columns,
            self.kinds,
            tuple(self.versions[i] for i in order),
            tuple(self.rows[i] for i in order),
        )

    def to_dict(self) -> dict[str, Any]:
        """{"columns": [{"name", "kind"}], "rows": [{"id", "short_id", "model", "values": {...}}]}."""
        return {
            "columns": [{"name": c, "kind": k} for c, k in zip(self.columns, self.kinds, strict=True)],
            "rows": [
                {
                    "id": v.id,
                    "short_id": v.short_id,
                    "model": v.model,
                    "values": {c: _json_value(x) for c, x in zip(self.columns, row, strict=True)},
                }
                for v, row in zip(self.versions, self.rows, strict=True)
            ],
        }

    def table(self) -> tuple[list[str], list[list[str]]]:
        """Header and rows as text (what str() aligns; the CLI and TUI render the same)."""
        header = ["version", "model", *self.columns]
        body = [
            [v.short_id, v.model, *(_text(x) for x in row)]
            for v, row in zip(self.versions, self.rows, strict=True)
        ]
        return header, body

    def __str__(self) -> str:
        header, body = self.table()
        widths = [max(len(r[j]) for r in [header, *body]) for j in range(len(header))]
        lines = [
            "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [header, *body]
        ]
        return "\n".join(lines)


def _json_value(value: Any) -> Any:
    if isinstance(value, float):
        return json_float(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return str(value)


def field_value(version: Version, field: str) -> Any:
    """A version attribute (model, author, ...), or a metadata value by dotted path (None if absent)."""
    if field in _ATTRIBUTES:
        value = getattr(version, field)
        return value.isoformat().replace("+00:00", "Z") if field == "created_at" else value
    if field.startswith("metrics."):
        return version.metrics.get(field[len("metrics.") :])
    path = field[len("metadata.") :] if field.startswith("metadata.") else field
    node: Any = version.metadata
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _names(names: object, what: str) -> list[str] | None:
    """A metrics= or fields= argument as a list of column names (None stays None)."""
    if names is None:
        return None
    if isinstance(names, str):
        raise MvcdbError("metrics and fields are lists of names, not a single string")
    return name_list(names, what, what[:-1])


def compare(
    db: Database,
    refs: Iterable[ParentRef],
    *,
    metrics: Sequence[str] | None = None,
    fields: Sequence[str] | None = None,
) -> Comparison:
    """A leaderboard of the given versions, in the order given (duplicates dropped).

    Args:
        refs: the versions (refs or Versions).
        metrics: metric columns; default every metric any of the versions has, sorted.
        fields: extra columns after the metrics: metadata paths ("hyper.lr" or
            "metadata.hyper.lr") or version attributes (model, author, message, created_at, tags).
    """
    vids = list(dict.fromkeys(db._vid(r) for r in ref_list(refs, "refs")))
    if not vids:
        raise MvcdbError("compare needs at least one version")
    versions = load_versions(db.conn, vids)
    given = _names(metrics, "metrics")
    metric_cols = given if given is not None else sorted({m for v in versions for m in v.metrics})
    field_cols = _names(fields, "fields") or []
    columns = tuple(dict.fromkeys([*metric_cols, *field_cols]))
    kinds = tuple("metric" if c in metric_cols else "field" for c in columns)
    rows = tuple(
        tuple(
            v.metrics.get(c) if kind == "metric" else field_value(v, c)
            for c, kind in zip(columns, kinds, strict=True)
        )
        for v in versions
    )
    return Comparison(columns=columns, kinds=kinds, versions=tuple(versions), rows=rows)

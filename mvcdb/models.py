"""The frozen values the API returns (Version, TensorInfo, TagMove), built from rows in one place."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .timeutil import parse_text

SHORT_ID_LENGTH = 12


@dataclass(frozen=True)
class Version:
    """One recorded version of a model. Immutable; `id` is the content hash of everything in it."""

    id: str
    model: str
    parents: tuple[str, ...]
    metrics: dict[str, float]
    metadata: dict[str, Any]
    message: str
    author: str
    created_at: datetime
    tags: tuple[str, ...] = ()
    params_bytes: int = 0

    def __hash__(self) -> int:  # the id already names everything in it
        return hash(self.id)

    @property
    def short_id(self) -> str:
        return self.id[:SHORT_ID_LENGTH]

    @property
    def parent(self) -> str | None:
        """The first parent's id, or None for a root version."""
        return self.parents[0] if self.parents else None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable dict (the shape the CLI's --json prints)."""
        return {
            "id": self.id,
            "short_id": self.short_id,
            "model": self.model,
            "parents": list(self.parents),
            "metrics": {k: _json_float(v) for k, v in self.metrics.items()},
            "metadata": self.metadata,
            "message": self.message,
            "author": self.author,
            "created_at": self.created_at.isoformat().replace("+00:00", "Z"),
            "tags": list(self.tags),
            "params_bytes": self.params_bytes,
        }


def _json_float(value: float) -> float | str:
    """JSON has no NaN/inf: those are written as strings 'nan', 'inf', '-inf'."""
    if value != value or value in (float("inf"), float("-inf")):
        return str(value)
    return value


@dataclass(frozen=True)
class TensorInfo:
    """What is known about a stored tensor without reading its bytes."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    nbytes: int
    digest: str
    kind: str = "param"

    @property
    def size(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "dtype": self.dtype,
            "shape": list(self.shape),
            "nbytes": self.nbytes,
            "digest": self.digest,
        }


@dataclass(frozen=True)
class TagMove:
    """One entry of a tag's history. from_id None = created; to_id None = deleted."""

    name: str
    from_id: str | None
    to_id: str | None
    author: str
    at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "from": self.from_id,
            "to": self.to_id,
            "author": self.author,
            "at": self.at.isoformat().replace("+00:00", "Z"),
        }


def load_versions(conn: sqlite3.Connection, vids: Sequence[int]) -> list[Version]:
    """Build Version objects for the given local vids, in the given order (one query per table).

    This is the hot path of listing and ancestry (100,000 versions), so it avoids per-row helper
    objects and fills each frozen Version's fields in one step instead of ten __setattr__ calls.
    """
    if not vids:
        return []
    ids_json = json.dumps(list(vids))
    parents: dict[int, list[str]] = {}
    metrics: dict[int, dict[str, float]] = {}
    tags: dict[int, list[str]] = {}
    for child, parent_id in conn.execute(
        "SELECT l.child, v.id FROM lineage l JOIN versions v ON v.vid = l.parent"
        " WHERE l.child IN (SELECT value FROM json_each(?)) ORDER BY l.child, l.position",
        (ids_json,),
    ):
        parents.setdefault(child, []).append(parent_id)
    for vid, name, value in conn.execute(
        "SELECT vid, name, value FROM metrics WHERE vid IN (SELECT value FROM json_each(?))"
        " ORDER BY vid, name",
        (ids_json,),
    ):
        metrics.setdefault(vid, {})[name] = _NAN if value is None else value
    for vid, name in conn.execute(
        "SELECT vid, name FROM tags WHERE vid IN (SELECT value FROM json_each(?)) ORDER BY name",
        (ids_json,),
    ):
        tags.setdefault(vid, []).append(name)
    built: dict[int, Version] = {}
    new = object.__new__
    for vid, id_, model, message, author, created_at, metadata, params_bytes in conn.execute(
        "SELECT vid, id, model, message, author, created_at, metadata, params_bytes FROM versions"
        " WHERE vid IN (SELECT value FROM json_each(?))",
        (ids_json,),
    ):
        version = new(Version)
        version.__dict__.update(
            id=id_,
            model=model,
            parents=tuple(parents.get(vid, ())),
            metrics=metrics.get(vid, {}),
            metadata={} if metadata == "{}" else json.loads(metadata),
            message=message,
            author=author,
            created_at=parse_text(created_at),
            tags=tuple(tags.get(vid, ())),
            params_bytes=params_bytes,
        )
        built[vid] = version
    return [built[v] for v in vids if v in built]


_NAN = float("nan")


def tensor_infos(rows: Iterable[tuple[str, str, str, str, int, str]]) -> list[TensorInfo]:
    """TensorInfo from (kind, name, dtype, shape_json, nbytes, digest) rows."""
    return [
        TensorInfo(
            name=name, dtype=dtype, shape=tuple(json.loads(shape)), nbytes=nbytes, digest=digest, kind=kind
        )
        for kind, name, dtype, shape, nbytes, digest in rows
    ]

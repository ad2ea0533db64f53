"""The frozen values the API returns (Version, TensorInfo, TagMove), built from rows in one place,
and VersionList, the lazily built, list-like result of listings and lineage walks."""

from __future__ import annotations

import gc
import json
import sqlite3
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast, overload

import numpy as np

from .errors import IntegrityError, MvcdbError
from .timeutil import parse_text

SHORT_ID_LENGTH = 12


def damaged(subject: str, what: str) -> IntegrityError:
    """The error for stored rows that contradict what mvcdb wrote (a damaged or tampered file):
    names the version (or row) and what is wrong, and points to `mvcdb verify` for the rest."""
    return IntegrityError(f"{subject}: {what}; the file is damaged (run `mvcdb verify` for a full report)")


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

    def __str__(self) -> str:
        """One line for print(): short id, model, time, metrics, tags and message (repr() has it all)."""
        parts = [self.short_id, self.model, self.created_at.strftime("%Y-%m-%d %H:%M:%S")]
        parts += [f"{name}={value:.6g}" for name, value in self.metrics.items()]
        if self.tags:
            parts.append(f"[{', '.join(self.tags)}]")
        if self.message:
            lines = self.message.splitlines() or [self.message]
            parts.append(repr(lines[0]) + (" …" if len(lines) > 1 else ""))
        return " ".join(parts)

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


class _LazyField:
    """A Version field kept as its stored text until first read, then cached on the instance.

    Versions built from rows (see _fetch) carry `_<name>_text` instead of the field: parsing
    100,000 metadata documents and timestamps that a listing never shows costs more than the
    query. Versions built by the constructor hold the value itself, which shadows this
    (non-data) descriptor, so they never come here.
    """

    def __init__(self, name: str, parse: Callable[[str], Any]) -> None:
        self.name = name
        self.raw = f"_{name}_text"
        self.parse = parse

    def __get__(self, obj: object, owner: type | None = None) -> Any:
        if obj is None:
            return self
        state = obj.__dict__
        try:
            text = state[self.raw]
        except KeyError:
            raise AttributeError(self.name) from None
        try:
            value = self.parse(text)
        except (ValueError, TypeError, RecursionError) as exc:  # JSONDecodeError is a ValueError
            shown = text if not isinstance(text, str) or len(text) <= 40 else text[:40] + "..."
            raise damaged(
                f"version {str(state.get('id', '?'))[:SHORT_ID_LENGTH]}",
                f"its stored {self.name} {shown!r} cannot be read ({str(exc)[:80]})",
            ) from None
        state[self.name] = value
        return value


def _parse_metadata(text: str) -> dict[str, Any]:
    parsed: dict[str, Any] = {} if text == "{}" else json.loads(text)
    if not isinstance(parsed, dict):
        raise ValueError(f"a JSON {type(parsed).__name__}, not an object")
    return parsed


setattr(Version, "metadata", _LazyField("metadata", _parse_metadata))  # noqa: B010 (not a field for mypy)
setattr(Version, "created_at", _LazyField("created_at", parse_text))  # noqa: B010


def stored_version(
    *,
    id: str,  # noqa: A002 (the field's name)
    model: str,
    parents: tuple[str, ...],
    metrics: dict[str, float],
    metadata: str,
    message: str,
    author: str,
    created_at: str,
    tags: tuple[str, ...],
    params_bytes: int,
) -> Version:
    """A Version from its stored form: metadata JSON and created_at text stay text until first
    read (see _LazyField), as in the Versions `Database.get` loads (_fetch inlines the same in its
    100,000-row loop).

    What record() returns: parsing the metadata it just wrote and its timestamp, and the frozen
    dataclass's __init__ (one object.__setattr__ a field), cost ~10 us of a small record().
    """
    version: Version = object.__new__(Version)
    version.__dict__.update(
        id=id,
        model=model,
        parents=parents,
        metrics=metrics,
        _metadata_text=metadata,
        message=message,
        author=author,
        _created_at_text=created_at,
        tags=tags,
        params_bytes=params_bytes,
    )
    return version


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
    """Build Version objects for the given local vids, in the given order (missing vids skipped).

    Eager: for results that may be long (listings, ancestries) use VersionList, which builds
    them in batches on access.
    """
    if not vids:
        return []
    built = _fetch(conn, vids)
    return [built[v] for v in vids if v in built]


def vids_from_text(text: str | None) -> list[int]:
    """Parse group_concat's "3,2,1" (None: no rows). Long lists of vids cross from SQLite as one
    string: ~3x cheaper than a row each, and numpy's parser is ~5x faster than split + int."""
    if not text:
        return []
    return cast("list[int]", np.fromstring(text, dtype=np.int64, sep=",").tolist())


#: Ask SQLite for at most this many versions at once (a JSON list of vids is bound per batch).
FETCH_BATCH = 4096

#: One row per (version, parent), a root version once with a NULL parent; ORDER BY is free here
#: (vids come sorted from the IN list, parents in lineage's primary-key order), so a merge's
#: rows are adjacent and in parent order.
_ROWS_SQL = """SELECT v.vid, v.id, v.model, v.message, v.author, v.created_at, v.metadata, v.params_bytes,
                      p.id
               FROM versions v LEFT JOIN lineage l ON l.child = v.vid LEFT JOIN versions p ON p.vid = l.parent
               WHERE v.vid IN (SELECT value FROM json_each(?)) ORDER BY v.vid, l.position"""


def _fetch(conn: sqlite3.Connection, vids: Sequence[int]) -> dict[int, Version]:
    """vid -> Version for those of vids that exist: one query per table and FETCH_BATCH vids.

    This is the hot path of listing and ancestry (100,000 versions): parents come joined to
    the version rows (a merge takes one row per parent), metrics and tags as rows, and the
    metadata JSON and the timestamp stay text until first read (see _LazyField): most listings
    never read them.
    """
    built: dict[int, Version] = {}
    collecting = gc.isenabled()
    gc.disable()  # ~4 containers a version, none in a cycle: collection passes here are pure cost (~12%)
    try:
        for start in range(0, len(vids), FETCH_BATCH):
            _fetch_batch(conn, vids[start : start + FETCH_BATCH], built)
    finally:
        if collecting:
            gc.enable()
    return built


def _fetch_batch(conn: sqlite3.Connection, part: Sequence[int], built: dict[int, Version]) -> None:
    """Add the versions of one batch of vids to `built` (one query per table)."""
    ids_json = json.dumps(part if isinstance(part, list) else list(part))
    metrics: dict[int, dict[str, float]] = {}
    tags: dict[int, list[str]] = {}
    current: dict[str, float] = {}
    last = None
    for vid, name, value in conn.execute(
        "SELECT vid, name, value FROM metrics WHERE vid IN (SELECT value FROM json_each(?))"
        " ORDER BY vid, name",
        (ids_json,),
    ):
        if vid != last:  # rows come grouped by vid
            current = metrics[vid] = {}
            last = vid
        current[name] = _NAN if value is None else value
    for vid, name in conn.execute(
        "SELECT vid, name FROM tags WHERE vid IN (SELECT value FROM json_each(?)) ORDER BY name",
        (ids_json,),
    ):
        tags.setdefault(vid, []).append(name)
    new = object.__new__
    get_metrics = metrics.get
    last = None
    for vid, id_, model, message, author, created_at, metadata, params_bytes, parent in conn.execute(
        _ROWS_SQL, (ids_json,)
    ):
        if vid == last:  # a merge's next parent
            state = built[vid].__dict__
            state["parents"] = (*state["parents"], parent)
            continue
        last = vid
        version = new(Version)
        version.__dict__.update(
            id=id_,
            model=model,
            parents=() if parent is None else (parent,),
            metrics=get_metrics(vid) or {},
            _metadata_text=metadata,
            message=message,
            author=author,
            _created_at_text=created_at,
            tags=tuple(tags[vid]) if vid in tags else (),
            params_bytes=params_bytes,
        )
        built[vid] = version


_NAN = float("nan")


#: A VersionList this short (or shorter) is built in full when it is made: a plain snapshot.
EAGER_LENGTH = 1000
#: Lists still reading rows, so Database.close() can finish them while the connection is open.
_PENDING: weakref.WeakValueDictionary[int, VersionList] = weakref.WeakValueDictionary()


class VersionList(Sequence[Version]):
    """Versions in a fixed order, read from the file in batches as they are used.

    What ancestors(), descendants() and versions() return. It behaves like a read-only list
    (len, indexing with negative indexes, slices -> plain lists, iteration, `in`, equality with
    lists, +, repr), but a long one holds only the local vids until an element is used: 100,000
    ancestors cost the lineage walk, not 100,000 objects nobody looks at. Lists of at most
    EAGER_LENGTH versions are built at once. A long list keeps reading from its database's
    connection; closing the database first builds whatever is left (Database.close calls
    finish_pending). A version deleted from the file before its batch was read raises MvcdbError
    rather than being silently skipped or replaced.
    """

    __slots__ = ("__weakref__", "_conn", "_guard", "_items", "_unread", "_vids")

    def __init__(self, conn: sqlite3.Connection, vids: Sequence[int]) -> None:
        self._conn: sqlite3.Connection | None = None
        self._guard: tuple[int, str] | None = None
        # Local vids are reused only after the highest ones are deleted: while the list's highest
        # vid still names the same version, every vid in it does (checked before each read).
        top = max(vids) if len(vids) > EAGER_LENGTH else 0
        row = conn.execute("SELECT id FROM versions WHERE vid = ?", (top,)).fetchone() if top else None
        if row is None:  # short (or its newest vanished since the query): a snapshot, built now
            built = _fetch(conn, vids)
            self._vids = [v for v in vids if v in built]
            self._items: list[Version | None] = [built[v] for v in self._vids]
            self._unread = 0
            return
        self._vids = list(vids)
        self._items = [None] * len(self._vids)
        self._unread = len(self._vids)
        self._conn = conn
        self._guard = (top, row[0])
        _PENDING[id(self)] = self

    # -- reading -----------------------------------------------------------------------------

    def _read(self, start: int, stop: int) -> None:
        """Build the versions in [start, stop) that are not built yet."""
        items = self._items
        todo = [k for k in range(start, stop) if items[k] is None]
        if not todo:
            return
        conn = self._conn
        if conn is None:  # cannot happen: a finished list has no unread items
            raise MvcdbError("this version list lost its database")
        vids = self._vids
        try:
            if self._guard is not None:
                top, ident = self._guard
                row = conn.execute("SELECT id FROM versions WHERE vid = ?", (top,)).fetchone()
                if row is None or row[0] != ident:
                    raise MvcdbError(
                        f"version {ident[:12]} was removed from the file after this list was made;"
                        " run the query again"
                    )
            built = _fetch(conn, [vids[k] for k in todo])
        except sqlite3.ProgrammingError as exc:  # the connection was closed under us
            raise MvcdbError(f"cannot read the rest of this version list: {exc}") from None
        for k in todo:
            version = built.get(vids[k])
            if version is None:
                raise MvcdbError(
                    f"version #{vids[k]} was removed from the file after this list was made;"
                    " run the query again"
                )
            items[k] = version
        self._unread -= len(todo)
        if not self._unread:
            self._conn = None
            self._guard = None
            _PENDING.pop(id(self), None)

    def _item(self, index: int) -> Version:
        version = self._items[index]
        if version is None:
            start = index - index % FETCH_BATCH
            self._read(start, min(len(self._vids), start + FETCH_BATCH))
            version = self._items[index]
            assert version is not None
        return version

    def finish(self) -> None:
        """Build every version not built yet (one query per table and FETCH_BATCH versions)."""
        if self._unread:
            self._read(0, len(self._vids))

    # -- the list protocol -------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._vids)

    def __bool__(self) -> bool:
        return bool(self._vids)

    @overload
    def __getitem__(self, index: int) -> Version: ...

    @overload
    def __getitem__(self, index: slice) -> list[Version]: ...

    def __getitem__(self, index: int | slice) -> Version | list[Version]:
        if isinstance(index, slice):
            positions = range(len(self._vids))[index]
            if positions.step == 1 and len(positions):
                self._read(positions.start, positions.stop)
                return cast("list[Version]", self._items[positions.start : positions.stop])
            return [self._item(k) for k in positions]
        try:
            position = range(len(self._vids))[index]
        except IndexError:
            raise IndexError("version list index out of range") from None
        return self._item(position)

    def __iter__(self) -> Iterator[Version]:
        n = len(self._vids)
        start = 0
        while start < n:
            stop = min(n, start + FETCH_BATCH)
            self._read(start, stop)
            yield from cast("list[Version]", self._items[start:stop])
            start = stop

    def __reversed__(self) -> Iterator[Version]:
        self.finish()
        return reversed(cast("list[Version]", self._items))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, VersionList):
            if other is self:
                return True
            if self._vids == other._vids and self._conn is other._conn and self._conn is not None:
                return True  # same rows of the same open file
        elif not isinstance(other, (list, tuple)):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]  # mutable-looking, like list

    def __add__(self, other: Iterable[Version]) -> list[Version]:
        return [*self, *other]

    def __radd__(self, other: Iterable[Version]) -> list[Version]:
        return [*other, *self]

    def __repr__(self) -> str:
        return repr(list(self))

    def __reduce__(self) -> tuple[type[list[Version]], tuple[list[Version]]]:
        return (list, (list(self),))  # copies and pickles are plain lists

    @property
    def vids(self) -> list[int]:
        """The local vids, in order (valid in this file only)."""
        return list(self._vids)


def finish_pending(conn: sqlite3.Connection) -> None:
    """Build every unfinished VersionList reading from conn (called before conn closes)."""
    for pending in list(_PENDING.values()):
        if pending._conn is conn:
            try:
                pending.finish()
            except MvcdbError:
                pass  # versions deleted meanwhile: that list will say so when it is used


def tensor_infos(rows: Iterable[tuple[str, str, str, str, int, str]]) -> list[TensorInfo]:
    """TensorInfo from (kind, name, dtype, shape_json, nbytes, digest) rows."""
    return [
        TensorInfo(
            name=name, dtype=dtype, shape=tuple(json.loads(shape)), nbytes=nbytes, digest=digest, kind=kind
        )
        for kind, name, dtype, shape, nbytes, digest in rows
    ]

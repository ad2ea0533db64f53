"""Turning a record() call into stored rows: validate, store tensors, hash the manifest, commit.

The bytes go in first (chunk transactions of their own: content-addressed and harmless if a writer
dies), then every row of the version in one short transaction, so the version appears atomically.
"""

from __future__ import annotations

import json
import numbers
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from . import inline
from .blobstore import MIN_DELTA, BlobStore, PutItem, StoredTensor
from .dtypes import name_of
from .errors import MvcdbError
from .models import Version, stored_version
from .tensors import check_name, shape_json, to_storage
from .text import check_unicode


def normalize_metrics(metrics: Mapping[str, Any] | None) -> dict[str, float]:
    """Metrics are name -> real number. NaN and ±inf are allowed; strings and bools are refused."""
    if metrics is None:
        return {}
    if type(metrics) is not dict and not isinstance(metrics, Mapping):  # the ABC check: ~0.4 us
        raise MvcdbError(f"metrics must be a dict of numbers, got {type(metrics).__name__}")
    out: dict[str, float] = {}
    for name, value in metrics.items():
        check_name(name, "metric name")
        if type(value) is float:  # the common case, without the slower checks below
            out[name] = value + 0.0  # -0.0 -> 0.0: SQLite's REAL column keeps no negative zero
            continue
        if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):  # numpy, torch, jax 0-d
            value = value.item()
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
            raise MvcdbError(f"metric {name!r} must be a real number, got {type(value).__name__}")
        try:
            out[name] = float(value) + 0.0
        except OverflowError:
            raise MvcdbError(f"metric {name!r} is too large for a float ({len(str(value))} digits)") from None
    return dict(sorted(out.items()))


def check_message(message: object) -> str:
    """A version's message: any str that is valid Unicode text."""
    if not isinstance(message, str):
        raise MvcdbError(f"message must be a string, got {type(message).__name__}")
    return check_unicode(message, "message")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray) and obj.size <= 10_000:
        return obj.tolist()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON-serializable")


#: What json.dumps(sort_keys=True, ...) would build on every call (~3 us of a small record()).
_METADATA_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), allow_nan=False, default=_json_default
)


def metadata_json(metadata: Mapping[str, Any] | None) -> str:
    """Canonical JSON text of a metadata mapping (sorted keys), refusing what JSON cannot hold."""
    if metadata is None:
        return "{}"
    if type(metadata) is not dict and not isinstance(metadata, Mapping):  # as in normalize_metrics
        raise MvcdbError(f"metadata must be a dict, got {type(metadata).__name__}")
    try:
        text = _METADATA_ENCODER.encode(metadata)
    except (TypeError, ValueError) as exc:
        raise MvcdbError(f"metadata is not JSON-serializable: {exc}") from None
    except RecursionError:
        raise MvcdbError("metadata is nested too deeply (or refers to itself)") from None
    if "\\ud" in text:  # a character past U+FFFF (an emoji), or a lone surrogate: which one?
        _check_surrogates(metadata)
    return text


def _check_surrogates(metadata: Mapping[str, Any]) -> None:
    """Refuse metadata holding lone surrogates (its ASCII JSON escapes them as \\udXXX, as it does
    the two halves of a character past U+FFFF): SQLite's JSON functions and the CLI's output
    cannot handle them, and two halves given apart would read back as one character."""
    try:
        _UNICODE_ENCODER.encode(metadata).encode("utf-8")
    except UnicodeEncodeError:
        raise MvcdbError("metadata holds text that is not valid Unicode (a lone surrogate)") from None


#: _METADATA_ENCODER writing characters as they are, for _check_surrogates.
_UNICODE_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), allow_nan=False, default=_json_default, ensure_ascii=False
)


def store_tensors(
    store: BlobStore, kind: str, arrays: Mapping[str, np.ndarray], *, base: int | None = None
) -> dict[tuple[str, str], StoredTensor]:
    """Store each array's bytes; key the results by (kind, name).

    base is the local vid of the first parent: its tensor of the same kind, name, dtype and shape
    is the candidate for delta encoding, chunk by chunk (only where a delta is smaller). Series
    ('traj') are cut at row boundaries so per-step snapshots can be stored as row-to-row deltas.
    """
    parent: dict[str, tuple[str, str, list[int]]] | None = None  # asked for once a tensor needs chunks
    out: dict[tuple[str, str], StoredTensor] = {}
    chunked: list[PutItem] = []
    chunked_keys: list[tuple[str, str]] = []
    for name, arr in arrays.items():
        data = to_storage(arr)
        dtype = name_of(arr.dtype)  # numpy dtype.str, or an extension name (bfloat16, float8...)
        if inline.fits(data.nbytes):
            out[(kind, name)] = inline.store(data, dtype)
            continue
        if parent is None:
            parent = _delta_bases(store.conn, kind, arrays, base)
        shape = shape_json(arr.shape)
        found = parent.get(name)
        base_cids = found[2] if found is not None and found[0] == dtype and found[1] == shape else None
        rows = kind in ("traj", "traj_steps") and data.ndim >= 1 and len(data) > 1
        stride = data.nbytes // len(data) if rows else 0
        chunked.append(PutItem(data, dtype, base_cids, stride))
        chunked_keys.append((kind, name))
    if not chunked:
        return out
    out.update(zip(chunked_keys, store.put_many(chunked), strict=True))
    return {(kind, name): out[(kind, name)] for name in arrays}  # in the caller's order


def _delta_bases(
    conn: sqlite3.Connection, kind: str, arrays: Mapping[str, np.ndarray], base: int | None
) -> dict[str, tuple[str, str, list[int]]]:
    """_parent_chunks of the base version, if there is one and a delta may pay for some array
    (none is asked for when every tensor is kept in its row: ~2 us of a small record())."""
    if base is None or not any(a.nbytes >= MIN_DELTA for a in arrays.values()):
        return {}
    return _parent_chunks(conn, kind, base)


def _parent_chunks(conn: sqlite3.Connection, kind: str, vid: int) -> dict[str, tuple[str, str, list[int]]]:
    """name -> (dtype, shape JSON, chunk ids) of every tensor of one kind in a version."""
    found: dict[str, tuple[str, str, list[int]]] = {}
    for name, dtype, shape in conn.execute(
        "SELECT name, dtype, shape FROM tensors WHERE vid = ? AND kind = ?", (vid, kind)
    ):
        found[name] = (dtype, shape, [])
    for name, cid in conn.execute(
        "SELECT name, cid FROM tensor_chunks WHERE vid = ? AND kind = ? ORDER BY name, seq", (vid, kind)
    ):
        found[name][2].append(cid)
    return found


def insert_version(
    conn: sqlite3.Connection,
    *,
    vid_of_parents: Sequence[int],
    version_id_: str,
    manifest: bytes,
    model: str,
    message: str,
    author: str,
    created_at: str,
    metadata: str,
    metrics: Mapping[str, float],
    tensors: Mapping[tuple[str, str], StoredTensor],
    params_size: int | None = None,
) -> tuple[int, bool]:
    """Insert every row of one version (call inside a write transaction); params_size is
    params_bytes(tensors) if the caller has it already.

    Returns (vid, True) for a new version, (vid of the stored one, False) if a version with the
    same id (the same content) is already here. Statements are few and batched: this runs once
    per record() and is most of what a small version costs.
    """
    if params_size is None:
        params_size = params_bytes(tensors)
    cur = conn.execute(
        "INSERT INTO versions (id, model, message, author, created_at, metadata, params_bytes,"
        " manifest) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
        (version_id_, model, message, author, created_at, metadata, params_size, manifest),
    )
    if cur.rowcount != 1:
        found = conn.execute("SELECT vid FROM versions WHERE id = ?", (version_id_,)).fetchone()
        return int(found[0]), False
    vid = int(cur.lastrowid or 0)
    if vid_of_parents:
        conn.executemany(
            "INSERT INTO lineage (child, parent, position) VALUES (?, ?, ?)",
            [(vid, p, i) for i, p in enumerate(vid_of_parents)],
        )
    if metrics:
        conn.executemany(
            "INSERT INTO metrics (vid, name, value) VALUES (?, ?, ?)",
            [(vid, k, None if v != v else v) for k, v in metrics.items()],  # NaN -> NULL
        )
    if tensors:
        conn.executemany(
            "INSERT INTO tensors (vid, kind, name, dtype, shape, nbytes, digest, data)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (vid, kind, name, t.dtype, shape_json(t.shape), t.nbytes, t.digest, t.data)
                for (kind, name), t in tensors.items()
            ],
        )
        links = [
            (vid, kind, name, seq, cid)
            for (kind, name), t in tensors.items()
            if t.cids  # none for a tensor kept in its row: skips building its enumerate()
            for seq, cid in enumerate(t.cids)
        ]
        if links:
            conn.executemany(
                "INSERT INTO tensor_chunks (vid, kind, name, seq, cid) VALUES (?, ?, ?, ?, ?)", links
            )
    return vid, True


def params_bytes(tensors: Mapping[tuple[str, str], StoredTensor]) -> int:
    """Logical size of a version's parameters (its 'param' tensors)."""
    return sum(t.nbytes for (kind, _), t in tensors.items() if kind == "param")


def new_version(
    version_id_: str,
    *,
    model: str,
    parent_ids: Sequence[str],
    metrics: Mapping[str, float],
    metadata: str,
    message: str,
    author: str,
    created_at: str,
    tags: Sequence[str],
    tensors: Mapping[tuple[str, str], StoredTensor],
    params_size: int | None = None,
) -> Version:
    """The Version a record() just inserted, built from what it wrote (no read back); params_size
    is params_bytes(tensors) if the caller has it already.

    Equal, field by field, to what `Database.get` loads for it (a test holds it to that), and
    built the same way: its metadata and time stay text until first read.
    """
    return stored_version(
        id=version_id_,
        model=model,
        parents=tuple(parent_ids),
        metrics=dict(metrics),
        metadata=metadata,
        message=message,
        author=author,
        created_at=created_at,
        tags=tuple(sorted(set(tags))) if tags else (),
        params_bytes=params_bytes(tensors) if params_size is None else params_size,
    )

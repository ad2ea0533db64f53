"""The version manifest: the canonical msgpack document whose SHA-256 is the version id.

Like a git commit object it names everything a version holds — model, parents, message, author,
time, metadata, metrics, and each tensor with its chunk hashes — so a version can be verified
(re-hash it), copied between files (merge, bundles, remotes) and rebuilt from it alone. Decoding is
strict: any field of the wrong type or size raises DecodeError.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from . import serial
from .errors import DecodeError

FORMAT = "mvcdb.version/1"
KINDS = ("param", "traj", "traj_steps")


class ManifestTensor(NamedTuple):
    """One tensor as the manifest names it: a tuple in the manifest's own field order, so it packs
    as the manifest's list and sorts by (kind, name) as it does."""

    kind: str
    name: str
    dtype: str
    shape: tuple[int, ...]
    nbytes: int
    hashes: tuple[bytes, ...]


#: ManifestTensor's fields as a plain tuple (kind, name, dtype, shape, nbytes, chunk hashes).
TensorEntry = tuple[str, str, str, tuple[int, ...], int, tuple[bytes, ...]]


@dataclass(frozen=True)
class Manifest:
    """A decoded, validated version manifest."""

    model: str
    parents: tuple[str, ...]
    message: str
    author: str
    created_at: str
    metadata: str
    metrics: tuple[tuple[str, float], ...]
    tensors: tuple[ManifestTensor, ...]


def encode(
    *,
    model: str,
    parents: Sequence[str],
    message: str,
    author: str,
    created_at: str,
    metadata: str,
    metrics: Mapping[str, float],
    tensors: Sequence[ManifestTensor | TensorEntry],
) -> bytes:
    """The canonical bytes of a manifest (equal content -> equal bytes -> equal id).

    The document is built with its keys already sorted and holds no other map, so it is packed
    directly: the bytes equal `serial.pack` of the same content without its generic walk (this is
    on the path of every record()). A tensor may be given as a plain tuple of ManifestTensor's
    fields: it sorts and packs the same, and costs a fifth to build.
    """
    return serial.pack_sorted(
        {
            "author": author,
            "created_at": created_at,
            "format": FORMAT,
            "message": message,
            "metadata": metadata,
            "metrics": sorted(metrics.items()),
            "model": model,
            "parents": list(parents),
            "tensors": sorted(tensors),  # tuples (shape and hashes too) pack as lists
        }
    )


def version_id(manifest: bytes) -> str:
    """The version id: hex SHA-256 of the manifest bytes."""
    return hashlib.sha256(manifest).hexdigest()


def _expect(cond: bool, what: str) -> None:
    if not cond:
        raise DecodeError(f"invalid version manifest: {what}")


def decode(blob: bytes) -> Manifest:
    """Parse and validate manifest bytes (from this file, a teammate's file or a remote)."""
    doc: Any = serial.unpack(blob)
    _expect(isinstance(doc, dict), "not a map")
    _expect(doc.get("format") == FORMAT, f"unknown format {doc.get('format')!r}")
    for key in ("model", "message", "author", "created_at", "metadata"):
        _expect(isinstance(doc.get(key), str), f"{key} must be text")
    parents = doc.get("parents")
    _expect(isinstance(parents, list), "parents must be a list")
    for p in parents:
        _expect(isinstance(p, str) and len(p) == 64, "a parent id is not 64 hex characters")
    metrics = doc.get("metrics")
    _expect(isinstance(metrics, list), "metrics must be a list")
    parsed_metrics = []
    for item in metrics:
        _expect(isinstance(item, list) and len(item) == 2, "a metric is not a [name, value] pair")
        name, value = item
        _expect(isinstance(name, str), "a metric name is not text")
        _expect(isinstance(value, (int, float)) and not isinstance(value, bool), "a metric is not a number")
        parsed_metrics.append((name, float(value)))
    tensors = doc.get("tensors")
    _expect(isinstance(tensors, list), "tensors must be a list")
    parsed_tensors = []
    for item in tensors:
        _expect(isinstance(item, list) and len(item) == 6, "a tensor entry has the wrong arity")
        kind, name, dtype, shape, nbytes, hashes = item
        _expect(kind in KINDS, f"unknown tensor kind {kind!r}")
        _expect(isinstance(name, str) and isinstance(dtype, str), "tensor name/dtype not text")
        _expect(
            isinstance(shape, list) and all(isinstance(d, int) and d >= 0 for d in shape),
            "tensor shape is not a list of non-negative integers",
        )
        _expect(isinstance(nbytes, int) and nbytes >= 0, "tensor nbytes invalid")
        _expect(
            isinstance(hashes, list) and all(isinstance(h, bytes) and len(h) == 32 for h in hashes),
            "tensor chunk hashes invalid",
        )
        _check_size(dtype, shape, nbytes)
        parsed_tensors.append(ManifestTensor(kind, name, dtype, tuple(shape), nbytes, tuple(hashes)))
    return Manifest(
        model=doc["model"],
        parents=tuple(parents),
        message=doc["message"],
        author=doc["author"],
        created_at=doc["created_at"],
        metadata=doc["metadata"],
        metrics=tuple(parsed_metrics),
        tensors=tuple(parsed_tensors),
    )


def _check_size(dtype: str, shape: Sequence[int], nbytes: int) -> None:
    """dtype x shape must equal nbytes, and the dtype must be one mvcdb stores."""
    import numpy as np

    from .dtypes import EXTENSION_ITEMSIZE

    itemsize = EXTENSION_ITEMSIZE.get(dtype)  # bfloat16, float8...: raw bits (mvcdb/dtypes.py)
    if itemsize is None:
        try:
            dt = np.dtype(dtype)
        except (TypeError, ValueError):
            raise DecodeError(f"invalid version manifest: unknown dtype {dtype!r}") from None
        numeric = dt.kind in "biufc" and dt.fields is None and dt.subdtype is None
        _expect(numeric, f"dtype {dtype!r} not numeric")
        itemsize = dt.itemsize
    _expect(math.prod(shape) * itemsize == nbytes, "tensor size does not match dtype and shape")

"""mvcdb: an embedded model-version database — git + SQLite for trained models.

    import mvcdb
    db = mvcdb.open("models.db")
    v1 = db.record("linreg", params={"m": m, "b": b}, metrics={"val_mse": 0.12})
    params = db.restore(v1.id)

Importing mvcdb is cheap: numpy, sqlite3, msgpack and zstandard load on first use, and the
terminal UI (textual) only when `mvcdb tui` runs.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

from .errors import (  # noqa: E402 - light: no numpy
    BusyError,
    DecodeError,
    IntegrityError,
    MvcdbError,
    NotAnMvcdbFileError,
    ReadOnlyError,
    RefError,
    SchemaVersionError,
)

if TYPE_CHECKING:
    from .compare import Comparison
    from .database import Database, ParentRef, ProgressCallback
    from .diff import Diff
    from .lineage import LineageTree
    from .maintenance import GcReport, Stats, VerifyReport
    from .merge import MergeReport
    from .models import TagMove, TensorInfo, Version, VersionList
    from .remote.transfer import TransferReport
    from .remote.urls import Remote
    from .run import Run

#: Loaded on first use (PEP 562), so `mvcdb --help` and `import mvcdb.cli` stay fast.
_LAZY = {
    "Database": "database",
    "Version": "models",
    "VersionList": "models",
    "TensorInfo": "models",
    "TagMove": "models",
    "Run": "run",
    "Diff": "diff",
    "LineageTree": "lineage",
    "Comparison": "compare",
    "Stats": "maintenance",
    "VerifyReport": "maintenance",
    "GcReport": "maintenance",
    "MergeReport": "merge",
    "Remote": "remote.urls",
    "TransferReport": "remote.transfer",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mvcdb' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"mvcdb.{module}"), name)
    globals()[name] = value
    return value


def open(  # noqa: A001 - the natural name, like io.open / sqlite3.connect
    path: str | bytes | os.PathLike[str] | None = None,
    *,
    readonly: bool = False,
    chunk_size: int | None = None,
) -> Database:
    """Open (creating if missing) an mvcdb file: $MVCDB_PATH, else ./mvcdb.db by default."""
    from .database import Database

    return Database(path, readonly=readonly, chunk_size=chunk_size)


def record(
    model_name: str | None = None,
    /,
    params: Mapping[str, Any] | None = None,
    *,
    model: Any = None,
    metrics: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
    trajectory: Mapping[str, Any] | None = None,
    parent: ParentRef | None = None,
    parents: Iterable[ParentRef] | None = None,
    message: str = "",
    tags: Iterable[str] = (),
    db: Database | str | os.PathLike[str] | None = None,
) -> Version:
    """Record a version in `db` (a Database, or a path; default $MVCDB_PATH or ./mvcdb.db).

    Same arguments as Database.record: record("linreg", params=...), record(model="linreg", ...)
    or record("net", model=torch_module). A path (or None) is opened and closed around the call.
    """
    from .database import Database

    opened = db if isinstance(db, Database) else Database(db)
    try:
        return opened.record(
            model_name,
            params,
            model=model,
            metrics=metrics,
            metadata=metadata,
            trajectory=trajectory,
            parent=parent,
            parents=parents,
            message=message,
            tags=tags,
        )
    finally:
        if opened is not db:
            opened.close()


def fingerprint(data: Any) -> dict[str, Any]:
    """A JSON fingerprint (SHA-256, size, shape) of a dataset -- a file or directory path, an array,
    or a mapping of names to those -- to put in a version's metadata:
    `record(..., metadata={"datasets": {"train": mvcdb.fingerprint("train.csv")}})`."""
    from .fingerprints import fingerprint as fingerprint_of

    return fingerprint_of(data)


def clone(
    url: str,
    path: str | os.PathLike[str],
    *,
    lazy: bool = False,
    name: str = "origin",
    progress: ProgressCallback | None = None,
) -> TransferReport:
    """Create a new .db at `path` holding everything the PostgreSQL remote at `url` has, with the
    remote stored as `name` (without its password). lazy: fetch no parameters until a restore
    (or Database.fetch) needs them. Returns what was copied; open the file with mvcdb.open(path).
    """
    from .database import as_path
    from .remote.transfer import clone as clone_remote

    return clone_remote(url, as_path(path, "the clone's path"), lazy=lazy, name=name, progress=progress)


__all__ = [
    "BusyError",
    "Comparison",
    "Database",
    "DecodeError",
    "Diff",
    "GcReport",
    "LineageTree",
    "MergeReport",
    "Stats",
    "VerifyReport",
    "IntegrityError",
    "MvcdbError",
    "NotAnMvcdbFileError",
    "ReadOnlyError",
    "RefError",
    "Run",
    "SchemaVersionError",
    "TagMove",
    "TensorInfo",
    "Version",
    "VersionList",
    "Remote",
    "TransferReport",
    "__version__",
    "clone",
    "fingerprint",
    "open",
    "record",
]

"""Content fingerprints of datasets, for a version's metadata: which data trained it, exactly.

`fingerprint("train.csv")`, `fingerprint("images/")`, `fingerprint(x_train)` or
`fingerprint({"x": x, "y": y})` gives a small JSON dict whose `sha256` names the content, so that
`diff` shows when the data behind two versions differs, and filters find the versions trained on
the same data (`metadata.datasets.train.sha256 = ...`). The data itself is not stored.

Arrays are hashed as mvcdb stores tensors: little-endian, C order, with their dtype and shape, so an
array and its big-endian or transposed-then-copied twin of the same values have one fingerprint.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .errors import MvcdbError

#: Bytes read from a file at a time (hashlib releases the GIL on buffers this big).
READ_BYTES = 1 << 20


def fingerprint(data: Any) -> dict[str, Any]:
    """A JSON-able fingerprint of a dataset: a file or directory path, an array (numpy, torch,
    anything numeric with __array__), or a mapping of names to any of these.

    Raises:
        MvcdbError: a path that does not exist or cannot be read, or a value of another kind.
    """
    if isinstance(data, (str, os.PathLike)):
        given = os.fspath(data)
        if not str(given).strip():
            raise MvcdbError("a dataset path is empty")  # (Path("") would be the current directory)
        return _path(Path(given), str(given))
    if isinstance(data, Mapping):
        items = {_key(k): fingerprint(v) for k, v in data.items()}
        digest = hashlib.sha256(b"mapping\n")  # (kinds apart: an empty mapping is no empty file)
        for name in sorted(items):
            digest.update(f"{name}\0{items[name]['sha256']}\n".encode())
        total = sum(int(item["bytes"]) for item in items.values())
        return {"kind": "mapping", "items": items, "bytes": total, "sha256": digest.hexdigest()}
    return _array(data)


def _key(name: object) -> str:
    if not isinstance(name, str):
        raise MvcdbError(f"the names of a dataset mapping must be strings, got {type(name).__name__}")
    return name


def _array(value: Any) -> dict[str, Any]:
    """dtype, shape and SHA-256 of an array's stored form (what record() would hash)."""
    from .dtypes import name_of
    from .tensors import as_array, to_storage

    if isinstance(value, (bytes, bytearray, memoryview)):
        raise MvcdbError("a dataset is a path, an array or a mapping of them, not raw bytes")
    if not isinstance(value, (np.ndarray, np.generic, int, float, complex)) and not hasattr(
        value, "__array__"
    ):
        raise MvcdbError(f"a dataset is a path, an array or a mapping of them, got {type(value).__name__}")
    arr = to_storage(as_array("data", value, "dataset"))
    dtype, shape = name_of(arr.dtype), [int(n) for n in arr.shape]
    digest = hashlib.sha256(f"{dtype}\0{shape}\n".encode())
    digest.update(arr.reshape(-1).view("uint8").data if arr.size else b"")
    return {
        "kind": "array",
        "dtype": dtype,
        "shape": shape,
        "bytes": int(arr.nbytes),
        "sha256": digest.hexdigest(),
    }


def _path(path: Path, given: str) -> dict[str, Any]:
    """A file's SHA-256 (what `sha256sum` prints), or a directory's over its files' relative
    paths, sizes and SHA-256s. Anything else (a FIFO or device, whose reading may never end) is
    refused."""
    try:
        mode = path.stat().st_mode
        if stat.S_ISDIR(mode):
            return _directory(path, given)
        if not stat.S_ISREG(mode):
            raise MvcdbError(f"{given} is neither a regular file nor a directory")
        size, sha = _file(path)
    except FileNotFoundError:
        raise MvcdbError(f"no file or directory {given}") from None
    except OSError as exc:
        raise MvcdbError(f"cannot read {given}: {exc.strerror or exc}") from None
    return {"kind": "file", "path": given, "bytes": size, "sha256": sha}


def _directory(root: Path, given: str) -> dict[str, Any]:
    """Every regular file under root (symlinked directories are not followed), in a fixed order."""
    digest = hashlib.sha256(b"directory\n")  # (kinds apart: an empty directory is no empty file)
    files = total = 0
    for here, dirs, names in os.walk(root, onerror=_raise):
        dirs.sort()
        for name in sorted(names):
            path = Path(here, name)
            if not path.is_file():
                continue  # sockets, fifos, dangling links: not data
            size, sha = _file(path)
            digest.update(f"{path.relative_to(root).as_posix()}\0{size}\0{sha}\n".encode())
            files, total = files + 1, total + size
    return {"kind": "directory", "path": given, "files": files, "bytes": total, "sha256": digest.hexdigest()}


def _raise(exc: OSError) -> None:
    raise exc


def _file(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while piece := fh.read(READ_BYTES):
            digest.update(piece)
            size += len(piece)
    return size, digest.hexdigest()

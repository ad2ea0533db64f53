"""Writing a version's tensors to files other tools read: .npz and .safetensors.

Used by `mvcdb restore -o FILE` and the TUI's export dialog. The file is written next to its final
name and renamed into place, so an interrupted write never leaves a half-written file behind; an
existing file is only replaced when asked. Tensor names become keys inside the file, never paths on
disk. An .npz is written tensor by tensor (one in memory at a time); .safetensors holds little-endian
tensors of the dtypes it knows, with the mvcdb version named in its header.

Extension dtypes (bfloat16, float8..., see mvcdb/dtypes.py) go to .safetensors under the format's own
codes (BF16, F8_E4M3, ...). An .npz cannot hold them (numpy writes them as anonymous bytes, or as a
descriptor np.load rejects), so it refuses them, as each format refuses what it cannot hold exactly.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .dtypes import EXTENSION_ITEMSIZE, extension_name, from_bits, numpy_dtype, to_bits
from .errors import MvcdbError

if TYPE_CHECKING:
    from .database import Database, ParentRef

#: (name, array) pairs; a generator lets the .npz writer hold one tensor at a time.
Arrays = Iterable[tuple[str, np.ndarray]]

#: File extension -> format name.
FORMATS = {".npz": "npz", ".safetensors": "safetensors"}
#: Dtypes the safetensors format has a code for: numpy's names, and mvcdb's extension names that
#: the safetensors library writes as BF16, F8_E4M3, F8_E4M3FNUZ, F8_E5M2, F8_E5M2FNUZ and F8_E8M0.
#: (float8_e4m3, without "fn", is another format: it has infinities. complex32 has no code.)
SAFETENSORS_DTYPES = frozenset(
    {"bool", "uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64"}
    | {"float16", "float32", "float64", "complex64"}
    | {"bfloat16", "float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2", "float8_e5m2fnuz", "float8_e8m0fnu"}
)


_NO_SAFETENSORS = (
    "writing .safetensors needs the safetensors library (pip install 'mvcdb[safetensors]'); or write .npz"
)


@dataclass(frozen=True)
class WrittenFile:
    """What write_params wrote: where, in which format, how many tensors and raw bytes."""

    path: Path
    format: str
    tensors: int
    nbytes: int


def output_format(path: str | os.PathLike[str], fmt: str | None = None) -> str:
    """'npz' or 'safetensors': fmt if given, else from path's extension; MvcdbError otherwise."""
    if fmt is not None:
        if fmt not in FORMATS.values():
            raise MvcdbError(f"unknown export format {fmt!r}: use npz or safetensors")
        return fmt
    found = FORMATS.get(Path(path).suffix.lower())
    if found is None:
        raise MvcdbError(f"cannot tell the format of {str(path)!r}: name it .npz or .safetensors")
    return found


def check_output(
    path: str | os.PathLike[str],
    *,
    fmt: str | None = None,
    overwrite: bool = False,
    how_to_overwrite: str = "pass overwrite=True",
) -> str:
    """Refuse early what write_params would refuse; return the format.

    Args:
        how_to_overwrite: completes "PATH exists; ... to overwrite it" (e.g. "pass --force").

    Raises:
        MvcdbError: no file name, unknown format, safetensors library missing, PATH is a
            directory, or PATH exists and overwrite is False.
    """
    if not str(path).strip():
        raise MvcdbError("give a file name to write to")
    chosen = output_format(path, fmt)
    if chosen == "safetensors" and not has_safetensors():
        raise MvcdbError(_NO_SAFETENSORS)
    target = Path(path)
    if target.is_dir():
        raise MvcdbError(f"{target} is a directory")
    if target.exists() and not overwrite:
        raise MvcdbError(f"{target} exists; {how_to_overwrite} to overwrite it")
    return chosen


def _holds(fmt: str, dtype: np.dtype[Any]) -> bool:
    """Whether a file of format fmt can hold arrays of dtype bit-exactly, dtype included."""
    if fmt == "npz":
        return extension_name(dtype) is None
    return (extension_name(dtype) or dtype.name) in SAFETENSORS_DTYPES


def check_dtype(fmt: str, name: str, dtype: np.dtype[Any]) -> None:
    """Refuse (MvcdbError, naming the tensor and what to do) a dtype fmt cannot hold exactly."""
    label = extension_name(dtype) or dtype.name
    if not _holds(fmt, dtype):
        other = "safetensors" if fmt == "npz" else "npz"
        hint = f"write .{other}" if _holds(other, dtype) else "restore it in Python (db.restore) instead"
        raise MvcdbError(f"tensor {name!r} has dtype {label}, which .{fmt} cannot hold; {hint}")
    if fmt == "safetensors" and label in EXTENSION_ITEMSIZE and numpy_dtype(label).name != label:
        # the library takes a tensor's code from its numpy dtype's name: only ml_dtypes' say "bfloat16"
        raise MvcdbError(
            f"tensor {name!r} has dtype {label}: writing it to .safetensors needs ml_dtypes"
            " (pip install ml_dtypes)"
        )


def has_safetensors() -> bool:
    """Whether the optional safetensors library can be imported."""
    try:
        import safetensors.numpy  # noqa: F401
    except ImportError:
        return False
    return True


def write_params(
    params: Mapping[str, np.ndarray] | Arrays,
    path: str | os.PathLike[str],
    *,
    fmt: str | None = None,
    overwrite: bool = False,
    metadata: Mapping[str, str] | None = None,
    how_to_overwrite: str = "pass overwrite=True",
) -> WrittenFile:
    """Write named arrays to an .npz or .safetensors file, atomically, bit-identical.

    Args:
        params: a mapping, or (name, array) pairs (a generator streams into an .npz).
        fmt: 'npz' or 'safetensors'; None: from the extension.
        overwrite: replace an existing file (otherwise refused).
        metadata: text put in a .safetensors header (ignored for .npz).
        how_to_overwrite: see check_output.

    Raises:
        MvcdbError: see check_output; a dtype the format cannot hold (see check_dtype); the
            file cannot be written. Nothing is left behind.
    """
    chosen = check_output(path, fmt=fmt, overwrite=overwrite, how_to_overwrite=how_to_overwrite)
    target = Path(path)
    pairs = params.items() if isinstance(params, Mapping) else params
    arrays = ((name, np.asarray(arr)) for name, arr in pairs)  # numpy scalars become 0-d arrays
    directory = target.resolve().parent
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise MvcdbError(f"cannot write {target}: {exc.strerror or exc}") from None
    os.close(fd)
    try:
        if chosen == "npz":
            count, nbytes = _write_npz(tmp, arrays)
        else:
            count, nbytes = _write_safetensors(tmp, arrays, metadata)
        os.chmod(tmp, 0o666 & ~_umask())  # temporary files are 0600; give it the usual permissions
        os.replace(tmp, target)
    except OSError as exc:
        _remove(tmp)
        raise MvcdbError(f"cannot write {target}: {exc.strerror or exc}") from None
    except BaseException:
        _remove(tmp)
        raise
    return WrittenFile(target, chosen, count, nbytes)


def _remove(tmp: str) -> None:
    if os.path.exists(tmp):
        os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _write_npz(path: str, arrays: Arrays) -> tuple[int, int]:
    """An uncompressed .npz numpy.load reads back (allow_pickle=False): one NAME.npy member each.

    Written tensor by tensor. (np.savez is not used: its own keyword arguments would collide with
    tensors named `file` or `allow_pickle`.)
    """
    import zipfile

    count = nbytes = 0
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, arr in arrays:
            check_dtype("npz", name, arr.dtype)
            with zf.open(name + ".npy", "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, arr, allow_pickle=False)
            count, nbytes = count + 1, nbytes + arr.nbytes
    return count, nbytes


def _write_safetensors(path: str, arrays: Arrays, metadata: Mapping[str, str] | None) -> tuple[int, int]:
    """A .safetensors file: little-endian, C-contiguous tensors (0-d ones stay 0-d); extension
    dtypes as ml_dtypes arrays, whose dtype names the library maps to the format's codes."""
    try:
        from safetensors.numpy import save_file
    except ImportError:
        raise MvcdbError(_NO_SAFETENSORS) from None
    ready: dict[str, np.ndarray] = {}
    for name, arr in arrays:
        check_dtype("safetensors", name, arr.dtype)
        extension = extension_name(arr.dtype)
        if extension is not None:  # bits tagged with the name become the ml_dtypes array
            arr = from_bits(to_bits(arr), extension)
        elif arr.dtype.byteorder == ">":
            arr = arr.astype(arr.dtype.newbyteorder("<"))
        # (np.ascontiguousarray would turn 0-d arrays into shape (1,): copy only what needs it)
        ready[name] = arr if arr.flags.c_contiguous else arr.copy(order="C")
    save_file(ready, path, metadata=dict(metadata) if metadata else None)
    return len(ready), sum(a.nbytes for a in ready.values())


# -- a version's tensors ---------------------------------------------------------------------------


def iter_params(
    db: Database, ref: ParentRef, progress: Callable[[int, int, str], None] | None = None
) -> Iterator[tuple[str, np.ndarray]]:
    """A version's parameters restored one tensor at a time; progress(bytes_done, total, name)."""
    infos = db.tensors(ref)
    total = sum(i.nbytes for i in infos)
    done = 0
    for info in infos:
        if progress is not None:
            progress(done, total, info.name)
        yield info.name, db.restore(ref, [info.name])[info.name]
        done += info.nbytes
    if progress is not None:
        progress(done, total, "")


def export_version(
    db: Database,
    ref: ParentRef,
    path: str | os.PathLike[str],
    *,
    fmt: str | None = None,
    overwrite: bool = False,
    trajectory: bool = False,
    progress: Callable[[int, int, str], None] | None = None,
    how_to_overwrite: str = "pass overwrite=True",
) -> WrittenFile:
    """Write a version's parameters (or its aligned trajectory) to path; see write_params.

    Every dtype is checked before anything is read or written, so a refused one costs nothing.

    Raises:
        MvcdbError: as write_params; trajectory=True and the version has none (nothing written).
    """
    chosen = check_output(path, fmt=fmt, overwrite=overwrite, how_to_overwrite=how_to_overwrite)
    version = db.get(ref)
    arrays: Arrays
    if trajectory:
        series = db.trajectory(version.id)
        if not series:
            raise MvcdbError(f"version {version.id[:12]} has no trajectory")
        dtypes = [(name, arr.dtype) for name, arr in series.items()]
        arrays = series.items()
    else:
        dtypes = [(info.name, numpy_dtype(info.dtype)) for info in db.tensors(version.id)]
        arrays = iter_params(db, version.id, progress)
    for name, dtype in dtypes:
        check_dtype(chosen, name, dtype)
    kind = "trajectory" if trajectory else "params"
    return write_params(
        arrays,
        path,
        fmt=fmt,
        overwrite=overwrite,
        metadata={"mvcdb.id": version.id, "mvcdb.model": version.model, "mvcdb.kind": kind},
        how_to_overwrite=how_to_overwrite,
    )

"""`mvcdb record MODEL --params FILE.npz ...`: record a version from files, for non-Python pipelines.

Arrays are read with numpy's `allow_pickle=False` (an .npz holding pickled objects is refused,
never unpickled). `--metric k=v` takes numbers; `--meta k=v` takes JSON values (else the text),
and dotted keys nest: `--meta hyper.lr=0.1` -> {"hyper": {"lr": 0.1}}.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .context import complete_ref, complete_tag, db_path, json_option, open_db

if TYPE_CHECKING:
    import numpy as np


def split_pair(text: str, option: str) -> tuple[str, str]:
    """'k=v' -> ('k', 'v'); bad usage (exit 2) when there is no '=' or no key."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise click.BadParameter(f"expected KEY=VALUE, got {text!r}", param_hint=option)
    return key.strip(), value


def parse_metrics(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, float]:
    """--metric k=v ... -> {k: float(v)}; 'nan' and 'inf' are accepted, anything else not a number is not."""
    out: dict[str, float] = {}
    for text in values:
        key, raw = split_pair(text, "--metric")
        try:
            value = float(raw)
        except ValueError:
            raise click.BadParameter(
                f"{key}={raw!r}: a metric must be a number", param_hint="--metric"
            ) from None
        if key in out:
            raise click.BadParameter(f"metric {key!r} is given twice", param_hint="--metric")
        out[key] = value
    return out


def json_or_text(raw: str) -> Any:
    """The JSON value raw spells (number, true, null, [..], {..}, "..."), else raw itself as text."""

    def no_constants(name: str) -> Any:
        raise ValueError(name)  # NaN/Infinity are not JSON: keep such values as text

    try:
        return json.loads(raw, parse_constant=no_constants)
    except ValueError:
        return raw


def parse_meta(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, Any]:
    """--meta k=v ... -> a nested dict: values parsed as JSON when they parse, dotted keys nest."""
    out: dict[str, Any] = {}
    for text in values:
        key, raw = split_pair(text, "--meta")
        parts = key.split(".")
        if any(not p for p in parts):
            raise click.BadParameter(f"{key!r}: empty part in a dotted key", param_hint="--meta")
        node = out
        for i, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                where = ".".join(parts[: i + 1])
                raise click.BadParameter(
                    f"{key!r}: {where!r} is already a value, not a group", param_hint="--meta"
                )
            node = child
        leaf = parts[-1]
        if leaf in node:
            raise click.BadParameter(f"{key!r} is given twice (or is already a group)", param_hint="--meta")
        node[leaf] = json_or_text(raw)
    return out


def fingerprints(pairs: tuple[str, ...]) -> dict[str, Any]:
    """--dataset NAME=PATH ... -> {NAME: fingerprint of PATH} (mvcdb/fingerprints.py)."""
    from mvcdb.fingerprints import fingerprint

    out: dict[str, Any] = {}
    for text in pairs:
        name, path = split_pair(text, "--dataset")
        if name in out:
            raise click.BadParameter(f"dataset {name!r} is given twice", param_hint="--dataset")
        if "." in name:  # filters read a dot as nesting: metadata.datasets.a.b would not find it
            raise click.BadParameter(f"dataset name {name!r} contains '.'", param_hint="--dataset")
        if not path.strip():
            raise click.BadParameter(f"dataset {name!r} has an empty path", param_hint="--dataset")
        out[name] = fingerprint(path)
    return out


def load_arrays(path: Path, what: str) -> dict[str, np.ndarray]:
    """Named arrays from an .npz (never unpickling) or a .safetensors file; MvcdbError if unreadable."""
    from mvcdb.errors import MvcdbError

    if not path.exists():
        raise MvcdbError(f"{what} file {path} does not exist")
    if path.is_dir():
        raise MvcdbError(f"{what} file {path} is a directory")
    if path.suffix.lower() == ".safetensors":
        return _load_safetensors(path, what)
    import zipfile

    import numpy as np

    with path.open("rb") as fh:
        magic = fh.read(6)
    if magic == b"\x93NUMPY":
        raise MvcdbError(f"{what} file {path} is a single .npy array, not an .npz of named arrays")
    if not magic.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        raise MvcdbError(f"{what} file {path} is not an .npz file (use numpy.savez, or .safetensors)")
    try:
        _check_declared_sizes(path)
        with np.load(path, allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    except ValueError as exc:
        reason = "it holds pickled objects, which are never loaded" if "pickle" in str(exc) else str(exc)
        raise MvcdbError(f"cannot read {what} file {path}: {reason}") from None
    except (OSError, EOFError, zipfile.BadZipFile, MemoryError) as exc:
        raise MvcdbError(f"cannot read {what} file {path}: {exc or 'out of memory'}") from None


def _check_declared_sizes(path: Path) -> None:
    """ValueError if an .npy member declares more array bytes than it holds: numpy would first
    allocate what the header claims (a 40-byte member can ask for terabytes)."""
    import zipfile

    import numpy as np
    from numpy.lib import format as npy

    with zipfile.ZipFile(path) as archive:
        for member in archive.infolist():
            if not member.filename.endswith(".npy"):
                continue
            with archive.open(member) as fh:
                version = npy.read_magic(fh)
                if version == (1, 0):
                    shape, _, dtype = npy.read_array_header_1_0(fh)
                else:
                    shape, _, dtype = npy.read_array_header_2_0(fh)
                if dtype.hasobject:
                    continue  # pickled: np.load refuses it, with its own message
                declared = int(np.prod(shape, dtype=object)) * dtype.itemsize
                if declared > member.file_size - fh.tell():
                    raise ValueError(
                        f"member {member.filename} declares {declared:,} bytes of data but holds"
                        f" {member.file_size - fh.tell():,}"
                    )


def _load_safetensors(path: Path, what: str) -> dict[str, np.ndarray]:
    from mvcdb.errors import MvcdbError

    try:
        from safetensors.numpy import load_file
    except ImportError:
        raise MvcdbError(
            "reading .safetensors needs the safetensors library (pip install 'mvcdb[safetensors]')"
        ) from None
    try:
        return dict(load_file(path))
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own (Rust) error types
        raise MvcdbError(f"cannot read {what} file {path}: {exc}") from None


@click.command("record")
@click.argument("model", metavar="MODEL")
@click.option(
    "--params",
    "-p",
    "params_file",
    required=True,
    type=click.Path(path_type=Path),
    help="The parameters: an .npz of named arrays (or .safetensors).",
)
@click.option(
    "--metric",
    "metrics",
    multiple=True,
    metavar="K=V",
    callback=parse_metrics,
    help="A metric: a number, nan or inf (repeatable).",
)
@click.option(
    "--meta",
    "metadata",
    multiple=True,
    metavar="K=V",
    callback=parse_meta,
    help="Metadata; V is JSON if it parses, else text; dotted keys nest (repeatable).",
)
@click.option(
    "--parent",
    "parents",
    multiple=True,
    metavar="REF",
    shell_complete=complete_ref,
    help="The version this one descends from (repeat for a merge).",
)
@click.option(
    "--dataset",
    "datasets",
    multiple=True,
    metavar="NAME=PATH",
    help="A dataset file or directory: its SHA-256 and size go into metadata.datasets.NAME (repeatable).",
)
@click.option("--message", "-m", default="", help="What this version is.")
@click.option(
    "--tag", "tags", multiple=True, metavar="NAME", shell_complete=complete_tag, help="Tag it (repeatable)."
)
@click.option(
    "--trajectory",
    "trajectory_file",
    type=click.Path(path_type=Path),
    help="Per-iteration series: an .npz with 'step' (optional) and one array per series.",
)
@json_option
@click.pass_context
def command(
    ctx: click.Context,
    model: str,
    params_file: Path,
    metrics: dict[str, float],
    metadata: dict[str, Any],
    parents: tuple[str, ...],
    datasets: tuple[str, ...],
    message: str,
    tags: tuple[str, ...],
    trajectory_file: Path | None,
    as_json: bool,
) -> None:
    """Record a new version of MODEL from an .npz file of named arrays; print its id.

    \b
    Example:
      mvcdb record linreg --params model.npz --metric val_mse=0.228 \\
          --dataset train=train.csv --meta hyper.lr=0.05 --parent production -m "lr 0.05"

    With --json the whole new version is printed (the shape of `mvcdb show --json`'s header).
    """
    params = load_arrays(params_file, "params")
    trajectory = load_arrays(trajectory_file, "trajectory") if trajectory_file is not None else None
    if datasets:
        given = metadata.get("datasets", {})
        if not isinstance(given, dict):
            raise click.BadParameter("--meta datasets=... is a value, so --dataset cannot add to it")
        found = fingerprints(datasets)
        for name in sorted(given.keys() & found.keys()):
            raise click.BadParameter(
                f"datasets.{name} is given by both --meta and --dataset", param_hint="--dataset"
            )
        metadata = {**metadata, "datasets": {**given, **found}}
    from mvcdb.refs import check_model_name, tag_list

    check_model_name(model)  # before a missing database is created: a refused record leaves no file
    tag_list(tags)
    created = not db_path(ctx).exists()
    db = open_db(ctx, create=True)
    if created:
        click.echo(f"(created a new mvcdb database at {db.path})", err=True)
    version = db.record(
        model,
        params,
        metrics=metrics,
        metadata=metadata,
        trajectory=trajectory,
        parents=list(parents),
        message=message,
        tags=list(tags),
    )
    if as_json:
        from .output import emit_json

        emit_json(version.to_dict())
    else:
        click.echo(version.id)

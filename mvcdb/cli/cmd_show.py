"""`mvcdb show REF`: everything about one version — metadata, metrics, lineage, tags, parameters
(with their L2 norms) and a summary of the training trajectory with a sparkline per series."""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

import click

from mvcdb.errors import MvcdbError

from .context import json_option, open_db, ref_argument
from .output import (
    emit_fields,
    emit_heading,
    emit_json,
    emit_table,
    format_bytes,
    format_metric,
    format_time,
    one_line,
    progress,
    sparkline,
)

if TYPE_CHECKING:
    from mvcdb.database import Database
    from mvcdb.models import TensorInfo, Version

#: Tensors larger than this are not read to compute a norm (shown as "-"); see --norm-limit.
DEFAULT_NORM_LIMIT = 256 * 1024 * 1024


@click.command("show")
@ref_argument()
@click.option(
    "--norm-limit",
    type=click.IntRange(min=0),
    default=DEFAULT_NORM_LIMIT,
    show_default="256 MiB",
    metavar="BYTES",
    help="Skip the norm (and trajectory summary) of tensors larger than this; 0 skips them all.",
)
@json_option
@click.pass_context
def command(ctx: click.Context, ref: str, norm_limit: int, as_json: bool) -> None:
    """Everything about one version: metadata, metrics, parents and children, tags, a parameter
    table (name, dtype, shape, size, L2 norm) and the trajectory with a sparkline per series.

    REF is an id, a unique id prefix (4+ hex), a tag, MODEL@latest, or any of those with ~N or ^.
    With --json: the version object of `mvcdb log --json` plus "children", "params" (each with
    its "norm", null when skipped) and "trajectory" (see README).
    """
    db = open_db(ctx, readonly=True)
    version = db.get(ref)
    children = db.children(version.id)
    params = db.tensors(version.id)
    norms, damaged = _norms(db, version.id, params, norm_limit)
    series = _series_summaries(db, version.id, norm_limit)
    if as_json:
        emit_json(
            {
                **version.to_dict(),
                "children": children,
                "params": [
                    {
                        **p.to_dict(),
                        "norm": norms.get(p.name),
                        **({"damaged": True} if p.name in damaged else {}),
                    }
                    for p in params
                ],
                "trajectory": series,
            }
        )
    else:
        _print(db, version, children, params, norms, series, norm_limit, damaged)
    if damaged:  # everything else was shown; the damage is the error (exit 1)
        first = next(iter(damaged.values()))
        raise MvcdbError(f"{first} ({len(damaged)} tensor(s) damaged)")


def _print(
    db: Database,
    v: Version,
    children: list[str],
    params: list[TensorInfo],
    norms: dict[str, float | None],
    trajectory: dict[str, Any] | None,
    norm_limit: int,
    damaged: dict[str, str],
) -> None:
    emit_fields(
        [
            ("version", v.id),
            ("model", v.model),
            ("created", f"{format_time(v.created_at)} UTC"),
            ("author", v.author),
            ("tags", ", ".join(v.tags) or None),
            ("parents", _describe_refs(db, list(v.parents)) or "(none: a root version)"),
            ("children", _describe_refs(db, children) or None),
            ("message", v.message or None),
        ]
    )
    if v.metrics:
        emit_heading("Metrics")
        emit_fields([(k, format_metric(x)) for k, x in v.metrics.items()])
    if v.metadata:
        emit_heading("Metadata")
        click.echo(json.dumps(v.metadata, indent=2, ensure_ascii=False, sort_keys=True))
    total = sum(p.nbytes for p in params)
    emit_heading(f"Parameters ({len(params)} tensors, {format_bytes(total)})")
    if params:
        emit_table(
            ["name", "dtype", "shape", "size", "norm"],
            [
                (
                    p.name,
                    p.dtype,
                    "×".join(str(d) for d in p.shape) or "scalar",
                    format_bytes(p.nbytes),
                    "damaged" if p.name in damaged else _norm_text(norms.get(p.name)),
                )
                for p in params
            ],
        )
        skipped = [p for p in params if norms.get(p.name) is None and p.name not in damaged]
        if skipped:
            click.echo(
                f"norm '-': {len(skipped)} tensor(s) not read: over {format_bytes(norm_limit)}"
                " (raise --norm-limit to include them) or not fetched yet (a lazy clone)"
            )
    if trajectory:
        emit_heading(f"Trajectory ({trajectory['steps']} steps)")
        rows = []
        for s in trajectory["series"]:
            if s["first"] is None:
                why = "(empty)" if s["points"] == 0 else f"(not read: over {format_bytes(norm_limit)})"
                rows.append((s["name"], _shape_text(s), "-", "-", "-", "-", why))
                continue
            rows.append(
                (
                    s["name"] + (" ‖·‖" if s["reduced"] else ""),
                    _shape_text(s),
                    *(format_metric(s[k]) for k in ("first", "last", "min", "max")),
                    s["sparkline"],
                )
            )
        emit_table(["series", "shape", "first", "last", "min", "max", "trend"], rows)
        if any(s["reduced"] for s in trajectory["series"]):
            click.echo("‖·‖: a tensor logged every step, summarised by its L2 norm at each step")


def _norm_text(norm: float | None) -> str:
    return "-" if norm is None else format_metric(norm)


def _shape_text(s: dict[str, Any]) -> str:
    return "×".join(str(d) for d in s["shape"])


def _describe_refs(db: Database, ids: list[str]) -> str:
    """'3f2a9c01d4e5 (linreg: message), ...' for parents or children."""
    if not ids:
        return ""
    parts = []
    for vid in ids:
        other = db.get(vid)
        label = other.model + (f": {one_line(other.message, 40)}" if other.message else "")
        parts.append(f"{other.short_id} ({label})")
    return ", ".join(parts)


def _norms(
    db: Database, vid: str, params: list[TensorInfo], limit: int
) -> tuple[dict[str, float | None], dict[str, str]]:
    """Each parameter's norm (mvcdb.norms); None for those over the limit or not fetched yet (a
    lazy clone's: browsing must not download the models). A tensor whose bytes are damaged gets
    no norm: it is named, with why, in the second dict, and the rest is still shown."""
    from mvcdb.norms import param_norms

    wanted = [p for p in params if p.nbytes <= limit]
    todo = sum(p.nbytes for p in wanted)
    with progress("Computing norms") as cb:
        found, damaged = param_norms(db, vid, wanted, progress=lambda done, name: cb(done, todo, name))
        cb(todo, todo, "")
    out: dict[str, float | None] = {p.name: found.get(p.name) for p in params}
    return out, damaged


def _series_summaries(db: Database, vid: str, limit: int) -> dict[str, Any] | None:
    """{"steps": n, "series": [{name, dtype, shape, points, reduced, first, last, min, max,
    sparkline}]} — one entry per logged series; None when the version has no trajectory."""
    import numpy as np

    from mvcdb.diff import step_values
    from mvcdb.trajectory import STEP

    infos = db.tensors(vid, kind="traj")
    if not infos:
        return None
    steps = next((i.shape[0] for i in infos if i.name == STEP and i.shape), 0)
    series = []
    for info in infos:
        if info.name == STEP:
            continue
        entry: dict[str, Any] = {
            "name": info.name,
            "dtype": info.dtype,
            "shape": list(info.shape),
            "points": info.shape[0] if info.shape else 0,
            "reduced": len(info.shape) > 1,
            "first": None,
            "last": None,
            "min": None,
            "max": None,
            "sparkline": "",
        }
        if info.nbytes <= limit:
            _, values = db.series(vid, info.name)
            per_step = step_values(values)
            valid = per_step[~np.isnan(per_step)]  # inf stays: a diverged run must show it
            if per_step.size:
                entry.update(
                    first=float(per_step[0]),
                    last=float(per_step[-1]),
                    min=float(valid.min()) if valid.size else math.nan,
                    max=float(valid.max()) if valid.size else math.nan,
                    sparkline=sparkline(per_step),
                )
        series.append(entry)
    return {"steps": steps, "series": series}

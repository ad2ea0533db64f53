"""What changed between two versions: metadata, metrics, parameters and trajectory.

Parameters are compared without loading whole tensors: equal content digests mean identical
(no byte is read), and changed tensors are streamed chunk by chunk through both versions at once,
accumulating float64 sums, so diffing two 2 GB versions needs a few chunks of memory, not 4 GB.

JSON: `Diff.to_dict()` is JSON-serializable as is. Non-finite floats (NaN, ±inf) become the
strings "nan", "inf" and "-inf" (as in `Version.to_dict()`); values that do not apply are None.
"""

from __future__ import annotations

import json
import math
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from . import inline
from .blobstore import CHECK, checked_size
from .dtypes import numpy_dtype
from .errors import IntegrityError
from .models import TensorInfo
from .tensors import from_storage
from .trajectory import STEP

if TYPE_CHECKING:
    from .database import Database, ParentRef

#: Statuses a parameter can have in a diff.
PARAM_STATUSES = ("identical", "changed", "added", "removed", "shape_changed", "dtype_changed")


def json_float(value: float | None) -> float | str | None:
    """A float for JSON: NaN and ±inf as the strings 'nan', 'inf', '-inf'; None stays None."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else str(value)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.6g}"
    if isinstance(value, str):
        return json.dumps(value)
    return json.dumps(value, sort_keys=True, default=str)


def _pct(value: float | None) -> str:
    return "" if value is None or not math.isfinite(value) else f", {value * 100:+.2f}%"


# -- metadata -----------------------------------------------------------------------------------


def flatten_metadata(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts -> {dotted path: leaf}; lists and empty dicts are leaves."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            out.update(flatten_metadata(value, path))
        else:
            out[path] = value
    return out


@dataclass(frozen=True)
class MetadataDiff:
    """Metadata paths only in b (added), only in a (removed), and in both with other values."""

    added: dict[str, Any]
    removed: dict[str, Any]
    changed: dict[str, tuple[Any, Any]]

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "added": dict(self.added),
            "removed": dict(self.removed),
            "changed": {k: [old, new] for k, (old, new) in self.changed.items()},
        }


def diff_metadata(a: Mapping[str, Any], b: Mapping[str, Any]) -> MetadataDiff:
    """Compare two metadata dicts path by path (`hyper.lr: 0.1 -> 0.01`)."""
    fa, fb = flatten_metadata(a), flatten_metadata(b)
    return MetadataDiff(
        added={k: fb[k] for k in sorted(fb) if k not in fa},
        removed={k: fa[k] for k in sorted(fa) if k not in fb},
        changed={
            k: (fa[k], fb[k])
            for k in sorted(fa)
            if k in fb and (fa[k] != fb[k] or type(fa[k]) is not type(fb[k]))
        },
    )


# -- metrics ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricDiff:
    """One metric on both sides (None where missing), b - a, and (b - a) / |a|."""

    name: str
    a: float | None
    b: float | None
    abs_change: float | None
    rel_change: float | None

    @property
    def status(self) -> str:
        if self.a is None:
            return "added"
        if self.b is None:
            return "removed"
        same = self.a == self.b or (math.isnan(self.a) and math.isnan(self.b))
        return "same" if same else "changed"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "a": json_float(self.a),
            "b": json_float(self.b),
            "abs_change": json_float(self.abs_change),
            "rel_change": json_float(self.rel_change),
        }


def diff_metrics(a: Mapping[str, float], b: Mapping[str, float]) -> list[MetricDiff]:
    """Every metric of either side, sorted by name."""
    out = []
    for name in sorted(set(a) | set(b)):
        va, vb = a.get(name), b.get(name)
        abs_change = rel_change = None
        if va is not None and vb is not None:
            abs_change = 0.0 if va == vb else vb - va
            if va != 0 and math.isfinite(va):
                rel_change = abs_change / abs(va)
        out.append(MetricDiff(name, va, vb, abs_change, rel_change))
    return out


# -- parameters ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParamDiff:
    """One parameter tensor. The statistics are set for same-shape tensors whose bytes differ.

    l2 = ‖b−a‖₂, max_abs = max|b−a|, rel_change = ‖b−a‖/‖a‖ (None if ‖a‖ is 0 or infinite and
    b ≠ a), cosine = ⟨a,b⟩/(‖a‖‖b‖) (None if either is all zeros or infinite), frac_changed = share
    of elements whose value differs (NaN equals NaN). All computed in float64 (complex128 for
    complex). As in frac_changed, an element holding the same value on both sides (NaN and NaN,
    inf and inf) differs by 0. Elements that are NaN on either side are left out of l2, max_abs,
    rel_change and cosine (b − a has no value there, and would turn them all into NaN);
    nan_changed counts those NaN on one side only (they are changes: frac_changed counts them too).
    """

    name: str
    status: str
    dtype_a: str | None
    dtype_b: str | None
    shape_a: tuple[int, ...] | None
    shape_b: tuple[int, ...] | None
    l2: float | None = None
    max_abs: float | None = None
    rel_change: float | None = None
    cosine: float | None = None
    frac_changed: float | None = None
    nan_changed: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "dtype_a": self.dtype_a,
            "dtype_b": self.dtype_b,
            "shape_a": list(self.shape_a) if self.shape_a is not None else None,
            "shape_b": list(self.shape_b) if self.shape_b is not None else None,
            "l2": json_float(self.l2),
            "max_abs": json_float(self.max_abs),
            "rel_change": json_float(self.rel_change),
            "cosine": json_float(self.cosine),
            "frac_changed": json_float(self.frac_changed),
            "nan_changed": self.nan_changed,
        }


class ElementStream:
    """A stored tensor's elements in order, decoded one chunk at a time (memory: one chunk)."""

    def __init__(self, db: Database, vid: int, kind: str, name: str) -> None:
        self._db = db
        subject, t, data = db._checked_row(vid, kind, name)  # rows checked against the manifest
        self._dtype = t.dtype
        self._itemsize = numpy_dtype(t.dtype).itemsize
        self._buf = np.empty(0, dtype=np.uint8)
        self._pos = 0
        self._chunks: deque[tuple[int, int]] = deque()
        if data is not None:  # a tiny tensor kept in its row: its bytes are here
            self._buf = np.empty(t.nbytes, dtype=np.uint8)
            inline.read_into(f"{subject}: {kind} {name!r}", data, t.hashes, self._buf)
        else:
            self._chunks.extend(db._chunks_of(subject, vid, t))

    def _load(self) -> None:
        if not self._chunks:
            raise IntegrityError("a tensor's chunks hold fewer bytes than its manifest says")
        cid, size = self._chunks.popleft()
        self._buf = np.empty(checked_size(cid, size), dtype=np.uint8)  # a damaged size: refused
        self._db.store.read_into([cid], self._buf, verify=CHECK)  # as restore: checked, not re-hashed
        self._pos = 0

    def take(self, count: int) -> np.ndarray:
        """The next `count` elements, in the recorded dtype."""
        need = count * self._itemsize
        parts = []
        while need > 0:
            if self._pos >= len(self._buf):
                self._load()
            piece = self._buf[self._pos : self._pos + need]
            self._pos += len(piece)
            need -= len(piece)
            parts.append(piece)
        raw = parts[0] if len(parts) == 1 else np.concatenate(parts)
        return from_storage(raw, self._dtype, (count,))


def _compute_dtype(*dtypes: np.dtype[Any]) -> type[np.generic]:
    return np.complex128 if any(d.kind == "c" for d in dtypes) else np.float64


def _changed_mask(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elements whose values differ; NaN counts as equal to NaN."""
    differ = a != b
    if a.dtype.kind in "fc" and b.dtype.kind in "fc":
        differ &= ~(np.isnan(a) & np.isnan(b))
    return np.asarray(differ)


def _difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """b − a, and 0 where _changed_mask says the value is the same (NaN and NaN, inf and inf,
    which subtract to NaN); a NaN on one side only stays NaN."""
    with np.errstate(invalid="ignore", over="ignore"):  # inf − inf: zeroed below; 1e308 − -1e308: inf
        d: np.ndarray = np.asarray(b - a)
    d[~_changed_mask(a, b)] = 0
    return d


#: Elements compared per step: bounds the float64 working set (~2 MB an array) whatever the chunk size.
STEP_ELEMENTS = 1 << 18


def _dot(x: np.ndarray, y: np.ndarray) -> float:
    """Re⟨x, y⟩ as a Python float. einsum, not BLAS: OpenBLAS threading makes np.dot/vdot ~10x
    slower on small machines, and einsum needs no temporary arrays."""
    if x.dtype.kind == "c" or y.dtype.kind == "c":
        return float(np.einsum("i,i->", np.conj(x), y).real)
    return float(np.einsum("i,i->", x, y))


def tensor_norm(db: Database, vid: int, info: TensorInfo, kind: str = "param") -> float:
    """‖t‖₂ of a stored tensor in float64, streamed chunk by chunk."""
    stream = ElementStream(db, vid, kind, info.name)
    total = 0.0
    for start in range(0, info.size, STEP_ELEMENTS):
        piece = stream.take(min(STEP_ELEMENTS, info.size - start))
        work = piece.astype(_compute_dtype(piece.dtype), copy=False)
        total += _dot(work, work)
    return math.sqrt(total)


def tensor_stats(
    db: Database, vid_a: int, vid_b: int, info_a: TensorInfo, info_b: TensorInfo, kind: str = "param"
) -> dict[str, Any]:
    """Streamed difference statistics of two same-size tensors (see ParamDiff).

    Both tensors are read one chunk at a time and compared in steps of STEP_ELEMENTS, so memory
    stays at a chunk of each side plus a few small float64 arrays, however large the tensors.
    A step whose squared norms are finite holds no NaN or inf and takes the plain arithmetic; the
    others drop their NaN positions and zero equal values (see ParamDiff) first.
    """
    da, db_ = numpy_dtype(info_a.dtype), numpy_dtype(info_b.dtype)  # bfloat16...: mvcdb/dtypes.py
    work = _compute_dtype(da, db_)
    stream_a = ElementStream(db, vid_a, kind, info_a.name)
    stream_b = ElementStream(db, vid_b, kind, info_b.name)
    n = info_a.size
    sq_diff = sq_a = sq_b = dot = 0.0
    max_abs = 0.0
    changed = nan_changed = 0
    for start in range(0, n, STEP_ELEMENTS):
        count = min(STEP_ELEMENTS, n - start)
        raw_a, raw_b = stream_a.take(count), stream_b.take(count)
        a = raw_a.astype(work, copy=False)
        b = raw_b.astype(work, copy=False)
        step_a, step_b = _dot(a, a), _dot(b, b)
        if math.isfinite(step_a) and math.isfinite(step_b):  # no NaN, no inf: nothing to mask
            changed += int(np.count_nonzero(raw_a != raw_b))
            d = b - a
        else:
            changed += int(np.count_nonzero(_changed_mask(raw_a, raw_b)))
            nan_a, nan_b = np.isnan(a), np.isnan(b)
            nan_changed += int(np.count_nonzero(nan_a ^ nan_b))
            keep = ~(nan_a | nan_b)
            a, b = a[keep], b[keep]
            step_a, step_b = _dot(a, a), _dot(b, b)
            d = _difference(a, b)
            d[np.isnan(d)] = np.inf  # complex infinities differing in the other part: unbounded
        sq_a += step_a
        sq_b += step_b
        sq_diff += _dot(d, d)
        dot += _dot(a, b)
        if d.size == 0:
            continue
        if work is np.complex128:
            part = float(np.max(np.abs(d)))
        else:  # max and min need no |d| temporary
            part = max(float(d.max()), -float(d.min()))
        max_abs = max(max_abs, part)
    l2 = math.sqrt(sq_diff)
    norm_a, norm_b = math.sqrt(sq_a), math.sqrt(sq_b)
    if 0 < norm_a < math.inf:
        rel: float | None = l2 / norm_a
    else:
        rel = 0.0 if l2 == 0 else None
    usable = 0 < norm_a < math.inf and 0 < norm_b < math.inf
    cosine = max(-1.0, min(1.0, dot / (norm_a * norm_b))) if usable else None
    return {
        "l2": l2,
        "max_abs": max_abs,
        "rel_change": rel,
        "cosine": cosine,
        "frac_changed": changed / n if n else 0.0,
        "nan_changed": nan_changed,
    }


def diff_params(db: Database, vid_a: int, vid_b: int) -> list[ParamDiff]:
    """Every parameter of either side, sorted by name; identical digests are never read."""
    infos_a = {t.name: t for t in db.tensors(db._id_of(vid_a))}
    infos_b = {t.name: t for t in db.tensors(db._id_of(vid_b))}
    out = []
    for name in sorted(set(infos_a) | set(infos_b)):
        ta, tb = infos_a.get(name), infos_b.get(name)
        if ta is None or tb is None:
            t = tb if ta is None else ta
            assert t is not None
            added = ta is None
            out.append(
                ParamDiff(
                    name,
                    "added" if added else "removed",
                    None if added else t.dtype,
                    t.dtype if added else None,
                    None if added else t.shape,
                    t.shape if added else None,
                )
            )
            continue
        if ta.digest == tb.digest:  # same dtype, shape and chunk hashes: nothing to read
            out.append(ParamDiff(name, "identical", ta.dtype, tb.dtype, ta.shape, tb.shape))
        elif ta.shape != tb.shape:
            out.append(ParamDiff(name, "shape_changed", ta.dtype, tb.dtype, ta.shape, tb.shape))
        else:
            status = "changed" if ta.dtype == tb.dtype else "dtype_changed"
            stats = tensor_stats(db, vid_a, vid_b, ta, tb)
            out.append(
                ParamDiff(
                    name,
                    status,
                    ta.dtype,
                    tb.dtype,
                    ta.shape,
                    tb.shape,
                    l2=stats["l2"],
                    max_abs=stats["max_abs"],
                    rel_change=stats["rel_change"],
                    cosine=stats["cosine"],
                    frac_changed=stats["frac_changed"],
                    nan_changed=stats["nan_changed"],
                )
            )
    return out


# -- trajectory ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeriesSummary:
    """One side of a series: first/last/min/max value and the step of the minimum.

    A series logging arrays (e.g. a weight matrix per step) is summarised by each step's L2 norm.
    """

    first: float | None
    last: float | None
    min: float | None
    max: float | None
    argmin_step: int | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "first": json_float(self.first),
            "last": json_float(self.last),
            "min": json_float(self.min),
            "max": json_float(self.max),
            "argmin_step": self.argmin_step,
        }


@dataclass(frozen=True)
class SeriesDiff:
    """A trajectory series on both sides and b − a at the steps both logged.

    For array series the aligned difference is the L2 norm of b−a at each step (per_step
    "l2_norm"); for scalar series it is the signed b − a (per_step "value"). Equal values (NaN
    and NaN included) differ by 0, as in ParamDiff; steps whose difference is NaN (a NaN on one
    side) are left out of max_abs_diff and mean_abs_diff.
    """

    name: str
    len_a: int | None
    len_b: int | None
    a: SeriesSummary | None
    b: SeriesSummary | None
    aligned_steps: int
    max_abs_diff: float | None
    mean_abs_diff: float | None
    final_diff: float | None
    per_step: str = "value"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "len_a": self.len_a,
            "len_b": self.len_b,
            "a": self.a.to_dict() if self.a else None,
            "b": self.b.to_dict() if self.b else None,
            "aligned_steps": self.aligned_steps,
            "max_abs_diff": json_float(self.max_abs_diff),
            "mean_abs_diff": json_float(self.mean_abs_diff),
            "final_diff": json_float(self.final_diff),
            "per_step": self.per_step,
        }


def step_values(values: np.ndarray) -> np.ndarray:
    """One float64 per logged row: scalar series as they are (complex: magnitude), array series as
    each step's L2 norm (what diffs compare and `mvcdb show` summarizes)."""
    if values.ndim <= 1:
        return np.abs(values) if values.dtype.kind == "c" else values.astype(np.float64)
    flat = values.reshape(len(values), -1).astype(_compute_dtype(values.dtype))
    with np.errstate(over="ignore"):  # a norm past float64 is inf, with no warning on stderr
        norms: np.ndarray = np.sqrt(np.sum(np.abs(flat) ** 2, axis=1))
    return norms


def _summary(steps: np.ndarray, values: np.ndarray) -> SeriesSummary:
    v = step_values(values)
    if len(v) == 0:
        return SeriesSummary(None, None, None, None, None)
    finite_any = not np.all(np.isnan(v))
    return SeriesSummary(
        first=float(v[0]),
        last=float(v[-1]),
        min=float(np.nanmin(v)) if finite_any else float("nan"),
        max=float(np.nanmax(v)) if finite_any else float("nan"),
        argmin_step=int(steps[int(np.nanargmin(v))]) if finite_any else None,
    )


def _series_digests(db: Database, vid: int) -> dict[str, tuple[str, str]]:
    """name -> (digest of values, digest of its steps) for every series of a version (rows checked
    against its manifest: equal digests let a diff skip reading the other side)."""
    ref = db._id_of(vid)
    values = {t.name: t.digest for t in db.tensors(ref, "traj")}
    steps = {t.name: t.digest for t in db.tensors(ref, "traj_steps")}
    step_digest = values.pop(STEP, "")
    return {name: (d, steps.get(name, step_digest)) for name, d in values.items()}


def diff_trajectory(db: Database, a: ParentRef, b: ParentRef, vid_a: int, vid_b: int) -> list[SeriesDiff]:
    """Every series of either side, sorted by name (identical series are read once)."""
    dig_a, dig_b = _series_digests(db, vid_a), _series_digests(db, vid_b)
    out = []
    for name in sorted(set(dig_a) | set(dig_b)):
        sa = db.series(a, name) if name in dig_a else None
        if name in dig_a and dig_a.get(name) == dig_b.get(name):
            sb = sa
        else:
            sb = db.series(b, name) if name in dig_b else None
        out.append(_series_diff(name, sa, sb))
    return out


def _series_diff(
    name: str, sa: tuple[np.ndarray, np.ndarray] | None, sb: tuple[np.ndarray, np.ndarray] | None
) -> SeriesDiff:
    per_step = "value"
    aligned = 0
    max_abs = mean_abs = final = None
    if sa is not None and sb is not None:
        (steps_a, va), (steps_b, vb) = sa, sb
        _, ia, ib = np.intersect1d(steps_a, steps_b, assume_unique=False, return_indices=True)
        aligned = len(ia)
        if va.ndim > 1 or vb.ndim > 1:
            per_step = "l2_norm"
        if aligned:
            with np.errstate(invalid="ignore", over="ignore"):  # inf - inf is NaN: no warning on stderr
                if per_step == "l2_norm" and va.shape[1:] == vb.shape[1:]:
                    work = _compute_dtype(va.dtype, vb.dtype)
                    d = step_values(_difference(va[ia].astype(work), vb[ib].astype(work)))
                else:
                    d = _difference(step_values(va)[ia], step_values(vb)[ib])
            absd = np.abs(d)
            if not np.all(np.isnan(absd)):
                max_abs = float(np.nanmax(absd))
                mean_abs = float(np.nanmean(absd))
            final = float(d[-1])
    return SeriesDiff(
        name=name,
        len_a=len(sa[1]) if sa is not None else None,
        len_b=len(sb[1]) if sb is not None else None,
        a=_summary(*sa) if sa is not None else None,
        b=_summary(*sb) if sb is not None else None,
        aligned_steps=aligned,
        max_abs_diff=max_abs,
        mean_abs_diff=mean_abs,
        final_diff=final,
        per_step=per_step,
    )


# -- the whole diff -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Diff:
    """Everything that differs from version a to version b (full ids in `a` and `b`)."""

    a: str
    b: str
    metadata: MetadataDiff
    metrics: list[MetricDiff]
    params: list[ParamDiff]
    trajectory: list[SeriesDiff]

    @property
    def identical(self) -> bool:
        """True when nothing at all differs (parameters, metrics, metadata, trajectory)."""
        return (
            not self.metadata
            and all(m.status == "same" for m in self.metrics)
            and all(p.status == "identical" for p in self.params)
            and all(
                s.len_a == s.len_b and s.a == s.b and (s.max_abs_diff in (None, 0.0)) for s in self.trajectory
            )
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape printed by `mvcdb diff --json` (see the module docstring for NaN)."""
        return {
            "a": self.a,
            "b": self.b,
            "metadata": self.metadata.to_dict(),
            "metrics": [m.to_dict() for m in self.metrics],
            "params": [p.to_dict() for p in self.params],
            "trajectory": [s.to_dict() for s in self.trajectory],
        }

    def lines(self) -> Iterator[tuple[str, str]]:
        """(style, text) lines of the readable form; style is one of '', 'header', 'added',
        'removed', 'changed', 'same' (the CLI colours by it)."""
        yield "header", f"diff {self.a[:12]} -> {self.b[:12]}"
        yield "header", "metadata:"
        if not self.metadata:
            yield "same", "  (no changes)"
        for k, v in self.metadata.added.items():
            yield "added", f"  + {k}: {_fmt(v)}"
        for k, v in self.metadata.removed.items():
            yield "removed", f"  - {k}: {_fmt(v)}"
        for k, (old, new) in self.metadata.changed.items():
            yield "changed", f"  ~ {k}: {_fmt(old)} -> {_fmt(new)}"
        yield "header", "metrics:"
        if not self.metrics:
            yield "same", "  (none)"
        for m in self.metrics:
            if m.status == "added":
                yield "added", f"  + {m.name}: {_fmt(m.b)}"
            elif m.status == "removed":
                yield "removed", f"  - {m.name}: {_fmt(m.a)}"
            elif m.status == "same":
                yield "same", f"  = {m.name}: {_fmt(m.a)}"
            else:
                yield (
                    "changed",
                    f"  ~ {m.name}: {_fmt(m.a)} -> {_fmt(m.b)} ({_fmt(m.abs_change)}{_pct(m.rel_change)})",
                )
        yield "header", "params:"
        if not self.params:
            yield "same", "  (none)"
        for p in self.params:
            yield _param_line(p)
        if self.trajectory:
            yield "header", "trajectory:"
            for s in self.trajectory:
                yield _series_line(s)

    def __str__(self) -> str:
        return "\n".join(text for _, text in self.lines())


def _shape(shape: tuple[int, ...] | None) -> str:
    return "-" if shape is None else "[" + ", ".join(map(str, shape)) + "]"


def _param_line(p: ParamDiff) -> tuple[str, str]:
    if p.status == "identical":
        return "same", f"  = {p.name}  identical  {p.dtype_a} {_shape(p.shape_a)}"
    if p.status == "added":
        return "added", f"  + {p.name}  added  {p.dtype_b} {_shape(p.shape_b)}"
    if p.status == "removed":
        return "removed", f"  - {p.name}  removed  {p.dtype_a} {_shape(p.shape_a)}"
    if p.status == "shape_changed":
        return "changed", (
            f"  ~ {p.name}  shape {_shape(p.shape_a)} -> {_shape(p.shape_b)}"
            + (f"  dtype {p.dtype_a} -> {p.dtype_b}" if p.dtype_a != p.dtype_b else "")
        )
    head = f"  ~ {p.name}  {p.dtype_a} {_shape(p.shape_a)}"
    if p.status == "dtype_changed":
        head = f"  ~ {p.name}  dtype {p.dtype_a} -> {p.dtype_b} {_shape(p.shape_a)}"
    changed = "-" if p.frac_changed is None else f"{p.frac_changed * 100:.2f}%"
    nans = f" nan_changed={p.nan_changed}" if p.nan_changed else ""
    return "changed", (
        f"{head}  l2={_fmt(p.l2)} max_abs={_fmt(p.max_abs)} rel={_fmt(p.rel_change)}"
        f" cos={_fmt(p.cosine)} changed={changed}{nans}"
    )


def _series_line(s: SeriesDiff) -> tuple[str, str]:
    if s.a is None:
        return "added", f"  + {s.name}: {s.len_b} steps, last {_fmt(s.b.last if s.b else None)}"
    if s.b is None:
        return "removed", f"  - {s.name}: {s.len_a} steps, last {_fmt(s.a.last)}"
    text = (
        f"  ~ {s.name}: {s.len_a} -> {s.len_b} steps; last {_fmt(s.a.last)} -> {_fmt(s.b.last)};"
        f" min {_fmt(s.a.min)}@{s.a.argmin_step} -> {_fmt(s.b.min)}@{s.b.argmin_step};"
        f" {s.aligned_steps} aligned steps"
    )
    if s.aligned_steps:
        text += f", max |diff| {_fmt(s.max_abs_diff)}, final diff {_fmt(s.final_diff)}"
    same = s.len_a == s.len_b and s.a == s.b and s.max_abs_diff in (None, 0.0)
    return ("same", "  = " + text[4:]) if same else ("changed", text)


def diff_versions(db: Database, a: ParentRef, b: ParentRef) -> Diff:
    """What changed from version a to version b. See Diff and the module docstring."""
    vid_a, vid_b = db._vid(a), db._vid(b)
    va, vb = db.get(db._id_of(vid_a)), db.get(db._id_of(vid_b))
    return Diff(
        a=va.id,
        b=vb.id,
        metadata=diff_metadata(va.metadata, vb.metadata),
        metrics=diff_metrics(va.metrics, vb.metrics),
        params=diff_params(db, vid_a, vid_b),
        trajectory=diff_trajectory(db, va.id, vb.id, vid_a, vid_b),
    )

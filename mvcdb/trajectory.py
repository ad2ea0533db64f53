"""Per-iteration trajectories: a step axis plus one series per logged name, stored columnar.

Each series is an array whose leading axis is the logged rows (a scalar loss is shape [n], a weight
matrix logged every step is [n, rows, cols]), stored through the same chunk store as parameters.
A series logged at only some steps also stores its own steps (kind 'traj_steps').

run.log keeps each call's keyword dict as it is (two list appends) and every BLOCK_ROWS rows
LogBuffer turns the block into columns: one array per name when every row logged the same
names (the usual loop), per-row bookkeeping only for blocks whose names vary.
"""

from __future__ import annotations

from array import array
from collections.abc import Mapping
from typing import Any

import numpy as np

from .errors import MvcdbError
from .tensors import check_dtype, check_name

STEP = "step"


#: Rows run.log buffers as logged (the keyword dicts) before LogBuffer turns them into columns.
#: Small enough that the conversion finds them in the CPU cache and that the dicts held (less the
#: ~80 CPython recycles) stay under the 700 allocations that trigger a garbage collection pass:
#: at 2048 a 1 M-point run set off ~300 collections (and a full one), at 512 none.
BLOCK_ROWS = 512


class Series:
    """One logged name: its values and the rows they were logged at, block by block.

    A part is an array (scalars, converted when their block was added) or the values as logged
    (per-step arrays, or anything that did not convert cleanly: column_array judges it at commit).
    """

    __slots__ = ("parts", "rows", "count")

    def __init__(self) -> None:
        self.parts: list[np.ndarray | list[Any]] = []
        self.rows: list[range | list[int]] = []
        self.count = 0

    def add(self, values: list[Any], rows: range | list[int]) -> None:
        self.parts.append(_block_values(values))
        self.rows.append(rows)
        self.count += len(values)


class LogBuffer:
    """What run.log recorded, as columns: the step of every row and one Series per name."""

    __slots__ = ("steps", "series", "nrows")

    def __init__(self) -> None:
        #: int64 steps, one growing array('q') while every step is an integer; a list holds a
        #: block with anything else (arrays() refuses it)
        self.steps: list[array[int] | list[Any]] = []
        self.series: dict[str, Series] = {}
        self.nrows = 0

    def add_block(self, steps: list[Any], rows: list[dict[str, Any]]) -> None:
        """Append logged rows (one dict of values per step). Never raises on bad values (it runs
        inside the training loop): they are kept as logged and judged by arrays() at commit."""
        if not rows:
            return
        base, n = self.nrows, len(rows)
        self.nrows += n
        self._add_steps(steps)
        columns = _dense_columns(rows)
        if columns is not None:  # every name logged at every row of the block: the usual loop
            span = range(base, base + n)
            for name, values in columns:
                self._series(name).add(values, span)
        else:
            for name, (values, at) in _sparse_columns(rows, base).items():
                self._series(name).add(values, at)

    def _add_steps(self, steps: list[Any]) -> None:
        try:  # array('q') takes integers only, and faster than numpy's type discovery
            block = array("q", steps)
        except Exception:  # whatever a step object raises, log() must not
            self.steps.append(steps)
            return
        last = self.steps[-1] if self.steps else None
        if isinstance(last, array):
            try:
                last.extend(block)
                return
            except BufferError:  # arrays() of a failed commit still holds a view of it
                pass
        self.steps.append(block)

    def _series(self, name: str) -> Series:
        s = self.series.get(name)
        if s is None:
            s = self.series[name] = Series()
        return s

    def arrays(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """The arrays to store: ('step' and every series, the own steps of each series not logged
        at every row). MvcdbError for non-integer steps or ragged / non-numeric values."""
        step_parts = [
            np.asarray(p) if isinstance(p, list) else np.frombuffer(p, np.int64) for p in self.steps
        ]
        for part in step_parts:
            if part.dtype.kind not in "iu":
                raise MvcdbError(f"run.log steps must be integers, got {part.dtype} values")
        steps = _concat([p.astype(np.int64, copy=False) for p in step_parts])
        out: dict[str, np.ndarray] = {STEP: steps}
        own: dict[str, np.ndarray] = {}
        for name, s in self.series.items():
            out[name] = _series_array(name, s.parts)
            if s.count != self.nrows:  # a name is logged at most once per row: count == rows is dense
                own[name] = steps[_concat([_rows_array(r) for r in s.rows])]
        return out, own


def _block_values(values: list[Any]) -> np.ndarray | list[Any]:
    """Scalars become one array now; per-step arrays stay a list until commit stacks them (as
    does anything numpy cannot turn into a 1-D numeric array)."""
    first = values[0]
    if isinstance(first, np.ndarray) and first.ndim > 0:
        return values
    try:
        arr = np.array(values)
        if arr.dtype.kind not in "biufc":
            check_dtype("", arr.dtype)  # extension dtypes (bfloat16...) pass, objects do not
    except Exception:  # e.g. a tensor's __array__ raising: judged at commit instead
        return values
    return arr if arr.ndim == 1 else values


def _dense_columns(rows: list[dict[str, Any]]) -> list[tuple[str, list[Any]]] | None:
    """(name, values) per name if every row holds exactly the first row's names, else None."""
    names = list(rows[0])
    if sum(map(len, rows)) != len(names) * len(rows):
        return None
    try:  # given the count above, no name missing anywhere means the same names in every row
        return [(name, _column(rows, name)) for name in names]
    except KeyError:
        return None


def _column(rows: list[dict[str, Any]], name: str) -> list[Any]:
    return [row[name] for row in rows]  # ~20 % faster than map(itemgetter) on CPython 3.11


def _sparse_columns(rows: list[dict[str, Any]], base: int) -> dict[str, tuple[list[Any], list[int]]]:
    """name -> (values, rows) for a block whose rows log different names."""
    columns: dict[str, tuple[list[Any], list[int]]] = {}
    for row, values in enumerate(rows, base):
        for name, value in values.items():
            col = columns.get(name)
            if col is None:
                col = columns[name] = ([], [])
            col[0].append(value)
            col[1].append(row)
    return columns


def _rows_array(rows: range | list[int]) -> np.ndarray:
    if isinstance(rows, range):
        return np.arange(rows.start, rows.stop, dtype=np.int64)
    return np.array(rows, dtype=np.int64)


def _concat(parts: list[np.ndarray]) -> np.ndarray:
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _series_array(name: str, parts: list[np.ndarray | list[Any]]) -> np.ndarray:
    """One series' blocks joined (numpy promotes across blocks as one asarray call would)."""
    arrays = [p for p in parts if isinstance(p, np.ndarray)]
    if len(arrays) < len(parts):
        return column_array(name, [v for p in parts for v in p])
    try:
        arr = _concat(arrays)
    except (ValueError, TypeError) as exc:
        raise MvcdbError(f"series {name!r}: values of different shapes or types ({exc})") from None
    check_dtype(name, arr.dtype)
    return arr


def column_array(name: str, values: list[Any]) -> np.ndarray:
    """Stack logged values into one array with a leading row axis, refusing ragged or non-numeric."""
    try:
        if values and isinstance(values[0], np.ndarray) and values[0].ndim > 0:
            arr = np.stack(values)
        else:
            arr = np.asarray(values)
    except (ValueError, TypeError) as exc:
        raise MvcdbError(f"series {name!r}: values of different shapes or types ({exc})") from None
    if arr.dtype.kind == "O":
        raise MvcdbError(f"series {name!r}: values of different shapes or types")
    check_dtype(name, arr.dtype)
    return arr


def from_mapping(trajectory: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Validate a user-given trajectory dict: equal leading lengths; 'step' defaults to 0..n-1."""
    if not isinstance(trajectory, Mapping):
        raise MvcdbError(f"trajectory must be a dict of arrays, got {type(trajectory).__name__}")
    out: dict[str, np.ndarray] = {}
    for name, value in trajectory.items():
        check_name(name, "series name")
        arr = value if isinstance(value, np.ndarray) else column_array(name, list(value))
        check_dtype(name, arr.dtype)
        if arr.ndim == 0:
            raise MvcdbError(f"series {name!r} must have a leading step axis, got a scalar")
        out[name] = arr
    lengths = {len(a) for a in out.values()}
    if len(lengths) > 1:
        raise MvcdbError(f"trajectory series have different lengths: {sorted(lengths)}")
    n = lengths.pop() if lengths else 0
    if STEP not in out:
        out = {STEP: np.arange(n, dtype=np.int64), **out}
    elif out[STEP].dtype.kind not in "iu":
        raise MvcdbError("trajectory 'step' must be integers")
    return out


def aligned(steps: np.ndarray, values: np.ndarray, own_steps: np.ndarray | None) -> np.ndarray:
    """A sparse series spread onto the full step axis, NaN where it was not logged."""
    if own_steps is None:
        return values
    out = np.full((len(steps),) + values.shape[1:], np.nan, dtype=np.result_type(values.dtype, np.float64))
    rows = None
    if len(steps) and bool(np.all(steps[1:] > steps[:-1])):  # the usual increasing steps: vectorised
        rows = np.minimum(np.searchsorted(steps, own_steps), len(steps) - 1)
        if not np.array_equal(steps[rows], own_steps):
            rows = None
    if rows is None:
        index = {int(s): i for i, s in enumerate(steps)}
        rows = np.fromiter((index[int(s)] for s in own_steps), dtype=np.int64, count=len(own_steps))
    out[rows] = values
    return out

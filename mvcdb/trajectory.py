"""Per-iteration trajectories: a step axis plus one series per logged name, stored columnar.

Each series is an array whose leading axis is the logged rows (a scalar loss is shape [n], a weight
matrix logged every step is [n, rows, cols]), stored through the same chunk store as parameters.
A series logged at only some steps also stores its own steps (kind 'traj_steps').

run.log keeps each call's keyword dict as it is (one extend of a flat list by the pair (step,
values)) and every BLOCK_ROWS rows LogBuffer turns the block into columns: one array per name
when every row logged the same names (the usual loop), per-row bookkeeping only for blocks whose
names vary. Steps (int64) are checked there once per block, a series name (record()'s rules) the
first time it arrives; a framework tensor (one that requires grad, a bfloat16 one, one on a GPU)
is converted as record() converts parameters (tensors.as_array).
"""

from __future__ import annotations

import operator
import struct
from array import array
from collections.abc import Mapping
from typing import Any

import numpy as np

from .errors import MvcdbError
from .frameworks import framework_of
from .tensors import as_array, check_dtype, check_name

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
        #: int64 steps: one growing array('q') (a new one only while arrays() holds a view)
        self.steps: list[array[int]] = []
        self.series: dict[str, Series] = {}
        self.nrows = 0

    def add_block(
        self, steps: list[Any], rows: list[dict[str, Any]], *, no_extra_names: bool = False
    ) -> None:
        """Append logged rows (one dict of values per step). Bad values are kept as logged and
        judged by arrays() at commit. A row whose step is no int64 integer and a series whose
        name record() would refuse (checked once, when first seen) cannot be stored: they are
        left out, every other row and value is kept, then MvcdbError says what and where.

        no_extra_names: the caller knows that no row holds a name the first row lacks."""
        refused: list[str] = []
        try:
            block = _int64s(steps)
        except Exception:  # whatever a step object raises
            block, rows = _good_rows(steps, rows, refused)
        if rows:
            self._add_rows(block, rows, refused, no_extra_names)
        if refused:
            raise MvcdbError("; ".join(refused) + " (everything else logged is kept)")

    def _add_rows(
        self, steps: array[int], rows: list[dict[str, Any]], refused: list[str], no_extra_names: bool
    ) -> None:
        base, n = self.nrows, len(rows)
        self.nrows += n
        self._add_steps(steps)
        columns = _dense_columns(rows, no_extra_names)
        if columns is not None:  # every name logged at every row of the block: the usual loop
            span = range(base, base + n)
            for name, values in columns:
                series = self._series(name, steps[0], refused)
                if series is not None:
                    series.add(values, span)
        else:
            for name, (values, at) in _sparse_columns(rows, base).items():
                series = self._series(name, steps[at[0] - base], refused)
                if series is not None:
                    series.add(values, at)

    def _add_steps(self, block: array[int]) -> None:
        last = self.steps[-1] if self.steps else None
        if last is not None:
            try:
                last.extend(block)
                return
            except BufferError:  # arrays() of a failed commit still holds a view of it
                pass
        self.steps.append(block)

    def _series(self, name: str, step: object, refused: list[str]) -> Series | None:
        """The Series of name, created (its name checked) when first seen; None, with the reason
        added to refused, for a name that cannot be stored."""
        s = self.series.get(name)
        if s is None:
            try:
                check_series_name(name)
            except MvcdbError as exc:
                refused.append(f"{exc}, logged at step {step}")
                return None
            s = self.series[name] = Series()
        return s

    def arrays(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """The arrays to store: ('step' and every series, the own steps of each series not logged
        at every row). A series whose values cannot be stored (ragged shapes, non-numeric) is
        left out of the buffer, the others are all checked, then MvcdbError names every one."""
        steps = _concat([np.frombuffer(p, np.int64) for p in self.steps])
        out: dict[str, np.ndarray] = {STEP: steps}
        own: dict[str, np.ndarray] = {}
        refused: list[str] = []
        for name, s in list(self.series.items()):
            try:
                out[name] = _series_array(name, s.parts)
            except MvcdbError as exc:
                del self.series[name]
                refused.append(str(exc))
                continue
            if s.count != self.nrows:  # a name is logged at most once per row: count == rows is dense
                own[name] = steps[_concat([_rows_array(r) for r in s.rows])]
        if refused:
            raise MvcdbError("; ".join(refused) + " (left out; everything else logged is kept)")
        return out, own


def check_series_name(name: object) -> str:
    """A series name as record(trajectory=...) takes it; 'step' is the step axis."""
    checked = check_name(name, "series name")
    if checked == STEP:
        raise MvcdbError("'step' is reserved for the step axis; log it under another name")
    return checked


def _good_rows(
    steps: list[Any], rows: list[dict[str, Any]], refused: list[str]
) -> tuple[array[int], list[dict[str, Any]]]:
    """The steps and rows of a block whose steps are int64 integers; why the others are not."""
    good: array[int] = array("q")
    kept: list[dict[str, Any]] = []
    bad = []
    for step, row in zip(steps, rows, strict=True):
        try:
            good.append(step)
        except Exception:
            bad.append(step)
        else:
            kept.append(row)
    if bad:
        refused.append(f"{_step_problem(bad[0])}: {len(bad)} row(s) left out")
    return good, kept


def _step_problem(step: Any) -> str:
    """Why a step cannot be stored: no integer, or outside the int64 range of the step column."""
    try:
        value = operator.index(step)
    except Exception:
        return f"run.log steps must be integers, got {type(step).__name__} {step!r}"
    return f"run.log step {value} does not fit a signed 64-bit integer (-2**63 .. 2**63-1)"


def _int64s(steps: list[Any]) -> array[int]:
    """steps as array('q'): integers in the int64 range only (anything else raises, as array('q')
    itself would), packed by struct, ~3x faster than array('q') converting item by item."""
    block: array[int] = array("q")
    block.frombytes(struct.pack(f"={len(steps)}q", *steps))
    return block


def _numeric_1d(values: list[Any]) -> np.ndarray | None:
    """values as one numeric (or extension-dtype) array, or None if numpy cannot make one."""
    try:
        arr = np.array(values)
        if arr.dtype.kind not in "biufc":
            check_dtype("", arr.dtype)  # extension dtypes (bfloat16...) pass, objects do not
    except Exception:  # e.g. a tensor's __array__ raising (requires grad, bfloat16, on a GPU)
        return None
    return arr


def _converted(name: str, values: list[Any]) -> list[Any]:
    """Each value as record() converts a parameter (tensors.as_array: a torch tensor is detached
    and moved to the CPU, bfloat16 kept bit for bit); values unchanged if one cannot be."""
    try:
        return [as_array(name, v, "series") for v in values]
    except Exception:
        return values


def _block_values(values: list[Any]) -> np.ndarray | list[Any]:
    """Scalars become one array now; per-step arrays stay a list until commit stacks them (as
    does anything numpy cannot turn into a 1-D numeric array). Never raises."""
    first = values[0]
    if isinstance(first, np.ndarray) and first.ndim > 0:
        return values
    arr = _numeric_1d(values)
    if arr is None:  # tensors converted now, which also frees their autograd graphs and GPU memory
        values = _converted("", values)
        first = values[0]
        if not isinstance(first, np.ndarray) or first.ndim > 0:
            return values
        arr = _numeric_1d(values)
        if arr is None:
            return values
    return arr if arr.ndim == 1 else values


def _dense_columns(rows: list[dict[str, Any]], no_extra_names: bool) -> list[tuple[str, list[Any]]] | None:
    """(name, values) per name if every row holds exactly the first row's names, else None.

    no_extra_names: no row holds a name the first row lacks (known to the caller), so only
    missing names need finding."""
    names = list(rows[0])
    if not no_extra_names and sum(map(len, rows)) != len(names) * len(rows):
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
    check_dtype(name, arr.dtype, "series")
    return arr


def _stacked(values: list[Any]) -> np.ndarray:
    """values stacked on a new leading axis (arrays) or as one array (scalars)."""
    if values and isinstance(values[0], np.ndarray) and values[0].ndim > 0:
        return np.stack(values)
    return np.asarray(values)


def column_array(name: str, values: list[Any]) -> np.ndarray:
    """Stack logged values into one array with a leading row axis, refusing ragged or non-numeric.

    Values numpy cannot take as they are (torch tensors that require grad, bfloat16 ones, ones on
    a GPU) are converted one by one as record() converts parameters (tensors.as_array)."""
    try:
        arr: np.ndarray | None = _stacked(values)
    except Exception:  # not only ValueError / TypeError: torch raises RuntimeError
        arr = None
    if arr is None or arr.dtype.kind == "O":
        converted = [v if isinstance(v, np.ndarray) else _series_value(name, v) for v in values]
        try:
            arr = _stacked(converted)
        except (ValueError, TypeError) as exc:
            raise MvcdbError(f"series {name!r}: values of different shapes or types ({exc})") from None
        if arr.dtype.kind == "O":
            raise MvcdbError(f"series {name!r}: values of different shapes or types")
    check_dtype(name, arr.dtype, "series")
    return arr


def _series_value(name: str, value: Any) -> Any:
    """One logged value numpy could not take, converted by tensors.as_array if it is an array-like
    object (a framework tensor...); numbers and lists are left for numpy to judge."""
    if isinstance(value, (np.generic, bool, int, float, complex, list, tuple)):
        return value
    if isinstance(value, (str, bytes)) or (framework_of(value) is None and not hasattr(value, "__array__")):
        raise MvcdbError(f"series {name!r}: a value is a {type(value).__name__}, not a number or an array")
    try:
        return as_array(name, value, "series")
    except MvcdbError:
        raise
    except Exception as exc:  # the object's own conversion failed
        raise MvcdbError(
            f"series {name!r}: a {type(value).__name__} value cannot be converted to an array"
            f" ({type(exc).__name__}: {exc})"
        ) from None


def from_mapping(trajectory: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Validate a user-given trajectory dict: equal leading lengths; 'step' defaults to 0..n-1."""
    if not isinstance(trajectory, Mapping):
        raise MvcdbError(f"trajectory must be a dict of arrays, got {type(trajectory).__name__}")
    out: dict[str, np.ndarray] = {}
    for name, value in trajectory.items():
        check_name(name, "series name")
        if isinstance(value, (Mapping, str, bytes)) or not hasattr(value, "__iter__"):
            raise MvcdbError(
                f"series {name!r} must be an array or a list of values, got {type(value).__name__}"
            )
        arr = value if isinstance(value, np.ndarray) else column_array(name, list(value))
        check_dtype(name, arr.dtype, "series")
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
    out[_rows_of(steps, own_steps)] = values
    return out


def _rows_of(steps: np.ndarray, own_steps: np.ndarray) -> np.ndarray:
    """The row of the step axis each own step belongs to.

    Own steps are in logged order, so the k-th own step equal to s goes to the k-th row whose
    step is s: with a step logged more than once every value keeps a row of its own, in order
    (the earlier code sent them all to the last such row, overwriting all but one). Which of
    several rows of one step a value was logged on is not stored: within such a group the
    values of each series fill its first rows.
    """
    if len(steps) and bool(np.all(steps[1:] > steps[:-1])):  # the usual increasing steps
        rows = np.minimum(np.searchsorted(steps, own_steps), len(steps) - 1)
        if np.array_equal(steps[rows], own_steps):
            return rows
        raise MvcdbError("a trajectory series has steps that are not on the step axis")
    order = np.argsort(steps, kind="stable")  # rows grouped by step, in row order within a group
    by_step = steps[order]
    own_order = np.argsort(own_steps, kind="stable")
    own_sorted = own_steps[own_order]
    rank = np.arange(len(own_sorted)) - np.searchsorted(own_sorted, own_sorted, "left")
    at = np.searchsorted(by_step, own_sorted, "left") + rank  # the rank-th row of that step
    if len(at) and (int(at.max()) >= len(by_step) or not np.array_equal(by_step[at], own_sorted)):
        raise MvcdbError("a trajectory series has steps that are not on the step axis")
    rows = np.empty(len(own_steps), dtype=np.int64)
    rows[own_order] = order[at]
    return rows

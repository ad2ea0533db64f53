"""Per-iteration trajectories: a step axis plus one series per logged name, stored columnar.

Each series is an array whose leading axis is the logged rows (a scalar loss is shape [n], a weight
matrix logged every step is [n, rows, cols]), stored through the same chunk store as parameters.
A series logged at only some steps also stores its own steps (kind 'traj_steps').
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .errors import MvcdbError
from .tensors import check_dtype, check_name

STEP = "step"


class Series:
    """Values of one name as logged, with the row index of each (rows is None while dense)."""

    __slots__ = ("values", "rows")

    def __init__(self) -> None:
        self.values: list[Any] = []
        self.rows: list[int] | None = None


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


def from_log(steps: list[int], series: Mapping[str, Series]) -> dict[str, np.ndarray]:
    """Build the stored arrays from a run's buffers: 'step', each series, and '<name>' steps."""
    raw = np.asarray(steps)
    if raw.dtype.kind not in "iu":
        raise MvcdbError(f"run.log steps must be integers, got {raw.dtype} values")
    step_arr = raw.astype(np.int64)
    out: dict[str, np.ndarray] = {STEP: step_arr}
    for name, s in series.items():
        out[name] = column_array(name, s.values)
    return out


def sparse_steps(steps: np.ndarray, series: Mapping[str, Series]) -> dict[str, np.ndarray]:
    """Steps of the series that were not logged at every row."""
    return {
        name: steps[np.asarray(s.rows, dtype=np.int64)] for name, s in series.items() if s.rows is not None
    }


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
    index = {int(s): i for i, s in enumerate(steps)}
    rows = np.fromiter((index[int(s)] for s in own_steps), dtype=np.int64, count=len(own_steps))
    out[rows] = values
    return out

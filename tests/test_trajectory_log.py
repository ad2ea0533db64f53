"""run.log's columnar buffer: blocks of rows become arrays exactly as one np.asarray per series would.

run.log keeps each call's keyword dict and converts every BLOCK_ROWS rows; these tests cross block
boundaries (a tiny BLOCK_ROWS, and the real one) with dense and sparse names, ints and floats, NaN,
many series, no rows at all, and bad values that must only be refused at commit.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mvcdb
import mvcdb.run
from mvcdb.trajectory import BLOCK_ROWS, STEP, LogBuffer


@pytest.fixture
def tiny_blocks(monkeypatch: pytest.MonkeyPatch) -> int:
    """Blocks of 4 rows, so a few dozen log calls cross many block boundaries."""
    monkeypatch.setattr(mvcdb.run, "BLOCK_ROWS", 4)
    return 4


def _reference(steps: list[Any], rows: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The obvious implementation: per-name lists, one np.asarray each, own steps if sparse."""
    values: dict[str, list[Any]] = {}
    at: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        for name, value in row.items():
            values.setdefault(name, []).append(value)
            at.setdefault(name, []).append(i)
    step_arr = np.asarray(steps).astype(np.int64)
    out = {STEP: step_arr, **{n: np.asarray(v) for n, v in values.items()}}
    own = {n: step_arr[r] for n, r in at.items() if len(r) != len(rows)}
    return out, own


def _assert_same(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert list(got) == list(want)
    for name in want:
        assert got[name].dtype == want[name].dtype, name
        assert got[name].shape == want[name].shape, name
        assert got[name].tobytes() == want[name].tobytes(), name  # bit-identical, NaN included


def _trajectory_kinds(db: mvcdb.Database, v: mvcdb.Version) -> dict[str, list[str]]:
    return {kind: sorted(t.name for t in db.tensors(v, kind)) for kind in ("traj", "traj_steps")}


_value = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.booleans(),
)


@given(
    rows=st.lists(
        st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), _value, max_size=4), min_size=1, max_size=40
    ),
    block=st.integers(min_value=1, max_value=9),
)
def test_blocks_match_one_asarray_per_series(rows: list[dict[str, Any]], block: int) -> None:
    steps = [3 * i + 1 for i in range(len(rows))]
    buf = LogBuffer()
    for start in range(0, len(rows), block):
        buf.add_block(steps[start : start + block], rows[start : start + block])
    got, own = buf.arrays()
    want, want_own = _reference(steps, rows)
    _assert_same(got, want)
    _assert_same(own, want_own)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])  # nothing is written to db
@given(
    rows=st.lists(
        st.dictionaries(st.sampled_from(["a", "b", "c"]), _value, max_size=3), min_size=1, max_size=30
    )
)
def test_run_blocks_with_names_coming_and_going_match_the_reference(
    db: mvcdb.Database, tiny_blocks: int, rows: list[dict[str, Any]]
) -> None:
    """Through run.log, whose blocks skip counting each row's names once every name logged so far
    is in a block's first row: names that appear, vanish and come back must still land exactly."""
    run = db.run("m")
    for i, row in enumerate(rows):
        run.log(i, **row)
    run._flush()
    got, own = run._log.arrays()
    want, want_own = _reference(list(range(len(rows))), rows)
    _assert_same(got, want)
    _assert_same(own, want_own)


def test_dense_run_across_real_blocks_stores_no_step_lists(db: mvcdb.Database) -> None:
    n = 2 * BLOCK_ROWS + 7
    with db.run("m") as run:
        for i in range(n):
            run.log(i * 10, loss=1.0 / (i + 1), epoch=i // 100, lr=1e-3)
        assert len(run) == n
    v = run.version
    assert v is not None
    traj = db.trajectory(v)
    assert traj["step"].tolist() == [i * 10 for i in range(n)]
    assert traj["loss"].tolist() == [1.0 / (i + 1) for i in range(n)]
    assert traj["epoch"].dtype == np.int64 and traj["epoch"][-1] == (n - 1) // 100
    assert _trajectory_kinds(db, v) == {"traj": ["epoch", "loss", "lr", "step"], "traj_steps": []}


def test_int_series_stays_int_until_a_float_arrives(db: mvcdb.Database, tiny_blocks: int) -> None:
    run = db.run("m")
    for i in range(10):
        run.log(i, count=i, mixed=i, flag=i % 2 == 0, f32=np.float32(i) / 4)
    run.log(10, count=10, mixed=2.5, flag=True, f32=np.float32(0.5))  # mixed turns float late
    v = run.commit()
    traj = db.trajectory(v)
    assert traj["count"].dtype == np.int64 and traj["count"].tolist() == list(range(11))
    assert traj["mixed"].dtype == np.float64 and traj["mixed"].tolist() == [*range(10), 2.5]
    assert traj["flag"].dtype == np.bool_ and traj["flag"].tolist()[:3] == [True, False, True]
    assert traj["f32"].dtype == np.float32 and traj["f32"][3] == np.float32(0.75)


def test_nan_and_infinities_round_trip_bit_exactly(db: mvcdb.Database, tiny_blocks: int) -> None:
    odd = [math.nan, math.inf, -math.inf, -0.0, 5e-324, 1.7976931348623157e308]
    with db.run("m") as run:
        for i in range(3 * tiny_blocks):
            run.log(i, x=odd[i % len(odd)])
    assert run.version is not None
    got = db.trajectory(run.version)["x"]
    want = np.array([odd[i % len(odd)] for i in range(3 * tiny_blocks)])
    assert got.tobytes() == want.tobytes()


def test_many_series_in_changing_order(db: mvcdb.Database, tiny_blocks: int) -> None:
    names = [f"s{k:03d}" for k in range(150)]
    with db.run("m") as run:
        for i in range(11):
            order = names if i % 2 == 0 else names[::-1]  # same names, other order: still dense
            run.log(i, **{name: float(i * 1000 + k) for k, name in enumerate(order)})
    assert run.version is not None
    traj = db.trajectory(run.version)
    assert list(traj) == ["step", *names]
    for k, name in enumerate(names):
        expected = [float(i * 1000 + (k if i % 2 == 0 else 149 - k)) for i in range(11)]
        assert traj[name].tolist() == expected
    assert _trajectory_kinds(db, run.version)["traj_steps"] == []


def test_sparse_series_across_block_boundaries(db: mvcdb.Database, tiny_blocks: int) -> None:
    with db.run("m") as run:
        for i in range(20):
            values: dict[str, float] = {"loss": float(i)}
            if i % 3 == 0:
                values["val"] = -float(i)
            if i >= 9:
                values["late"] = float(i) / 2  # appears mid-block and stays
            if i < 6:
                values["early"] = 1.0  # disappears after the second block
            run.log(100 + i, **values)
    v = run.version
    assert v is not None
    assert _trajectory_kinds(db, v)["traj_steps"] == ["early", "late", "val"]
    steps, val = db.series(v, "val")
    assert steps.tolist() == [100 + i for i in range(0, 20, 3)] and val.tolist() == [
        -float(i) for i in range(0, 20, 3)
    ]
    steps, late = db.series(v, "late")
    assert steps.tolist() == [100 + i for i in range(9, 20)]
    steps, early = db.series(v, "early")
    assert steps.tolist() == list(range(100, 106)) and early.tolist() == [1.0] * 6
    traj = db.trajectory(v)
    assert traj["loss"].tolist() == [float(i) for i in range(20)]
    assert np.isnan(traj["late"][8]) and traj["late"][9] == 4.5


def test_no_rows_and_rows_without_values(db: mvcdb.Database, tiny_blocks: int) -> None:
    with db.run("m") as run:
        assert len(run) == 0
    assert run.version is not None and db.trajectory(run.version) == {}

    with db.run("m") as run:
        for i in range(6):
            run.log(i)  # a step with nothing logged is still a row
        run.log(6, loss=0.5)
    assert run.version is not None
    traj = db.trajectory(run.version)
    assert traj["step"].tolist() == list(range(7))
    assert db.series(run.version, "loss")[0].tolist() == [6]


def test_per_step_arrays_across_blocks(db: mvcdb.Database, tiny_blocks: int) -> None:
    with db.run("m") as run:
        for i in range(9):
            run.log(i, w=np.full((2, 3), i, dtype=np.float32), loss=float(i))
    assert run.version is not None
    w = db.trajectory(run.version)["w"]
    assert w.shape == (9, 2, 3) and w.dtype == np.float32 and w[5, 1, 2] == 5

    run = db.run("m")
    for i in range(6):
        run.log(i, w=np.zeros(2 if i < 5 else 3))  # ragged in a later block
    with pytest.raises(mvcdb.MvcdbError, match="'w'"):
        run.commit()


@pytest.mark.parametrize(
    ("late", "message"),
    [
        ({"loss": "text"}, "'loss'"),
        ({"loss": None}, "'loss'"),
        ({"loss": 1.0, "step": 3}, "reserved"),
    ],
)
def test_bad_values_in_a_late_block_are_refused_at_commit_only(
    db: mvcdb.Database, tiny_blocks: int, late: dict[str, Any], message: str
) -> None:
    run = db.run("m")
    for i in range(9):
        run.log(i, loss=float(i))
    run.log(9, **late)  # never raises inside the training loop
    for i in range(10, 13):
        run.log(i, loss=float(i))
    with pytest.raises(mvcdb.MvcdbError, match=message):
        run.commit()
    assert db.versions() == []


def test_non_integer_step_in_a_late_block_is_refused(db: mvcdb.Database, tiny_blocks: int) -> None:
    run = db.run("m")
    for i in range(9):
        run.log(i, loss=1.0)
    run.log(9.5, loss=1.0)  # type: ignore[arg-type]
    with pytest.raises(mvcdb.MvcdbError, match="integers"):
        run.commit()


def test_a_failed_commit_keeps_every_row_for_the_next(db: mvcdb.Database, tiny_blocks: int) -> None:
    run = db.run("m")
    for i in range(10):
        run.log(i, loss=float(i))
    with pytest.raises(mvcdb.MvcdbError):
        run.commit(metrics={"bad": "x"})
    run.log(10, loss=10.0)
    v = run.commit()
    assert db.trajectory(v)["loss"].tolist() == [float(i) for i in range(11)]


def test_exception_in_block_discards_flushed_rows_too(db: mvcdb.Database, tiny_blocks: int) -> None:
    with pytest.raises(RuntimeError):
        with db.run("m") as run:
            for i in range(10):  # two blocks already converted
                run.log(i, loss=float(i))
            raise RuntimeError("crashed")
    assert db.versions() == []
    assert db.conn.execute("SELECT count(*) FROM tensors").fetchone()[0] == 0


@pytest.mark.parametrize("steps", [[0, 2, 4, 6, 8, 10, 12], [7, 3, 11, 0, 5, 9, 1], [1, 1, 2, 2, 3, 3, 4]])
def test_sparse_series_aligned_on_any_step_order(db: mvcdb.Database, steps: list[int]) -> None:
    with db.run("m") as run:
        for i, step in enumerate(steps):
            run.log(np.int32(step), **({"a": float(i), "b": -float(i)} if i % 3 else {"a": float(i)}))  # type: ignore[arg-type]
    assert run.version is not None
    traj = db.trajectory(run.version)
    assert traj["step"].dtype == np.int64 and traj["step"].tolist() == steps
    want, _ = _reference(
        steps, [{"a": float(i), "b": -float(i)} if i % 3 else {"a": float(i)} for i in range(7)]
    )
    expected_b = [np.nan if i % 3 == 0 else -float(i) for i in range(7)]
    if len(set(steps)) == len(steps):  # repeated steps: a value lands on the last row with its step
        np.testing.assert_array_equal(traj["b"], expected_b)
    assert traj["a"].tolist() == want["a"].tolist()
    assert db.series(run.version, "b")[0].tolist() == [s for i, s in enumerate(steps) if i % 3]


class _Grumpy:
    """A value numpy cannot take: converting it raises something other than TypeError/ValueError."""

    def __array__(self, *args: Any, **kwargs: Any) -> np.ndarray:
        raise RuntimeError("cannot convert a tensor that requires grad")

    def __index__(self) -> int:
        raise RuntimeError("no index either")


def test_values_that_raise_on_conversion_never_stop_the_loop(db: mvcdb.Database, tiny_blocks: int) -> None:
    run = db.run("m")
    run.log(0, ok=0.0)
    for i in range(1, 9):  # two blocks converted while logging, neither raises
        run.log(i, loss=_Grumpy())
    assert len(run) == 9
    with pytest.raises(mvcdb.MvcdbError, match="series 'loss'.*requires grad"):
        run.commit()
    assert db.versions() == []
    with pytest.raises(mvcdb.MvcdbError, match="series 'loss'.*requires grad"):
        db.run("m").log(0, loss=_Grumpy())  # the first call: refused at once

    run = db.run("m")
    with pytest.raises(mvcdb.MvcdbError, match="integers"):
        run.log(_Grumpy(), loss=1.0)  # type: ignore[arg-type]  # the first call: refused at once
    run.log(0, loss=1.0)
    for _ in range(9):
        run.log(_Grumpy(), loss=1.0)  # type: ignore[arg-type]  # later: never inside the loop
    with pytest.raises(mvcdb.MvcdbError, match="integers"):
        run.commit()
    assert db.versions() == []


def test_logging_continues_after_a_failed_commit_that_kept_its_arrays(
    db: mvcdb.Database, tiny_blocks: int
) -> None:
    run = db.run("m")
    for i in range(6):
        run.log(i, loss=float(i))
    kept = []
    try:
        run.commit(metrics={"bad": "x"})
    except mvcdb.MvcdbError as exc:
        kept.append(exc)  # its traceback keeps commit()'s arrays (views of the step buffer) alive
    for i in range(6, 14):
        run.log(i, loss=float(i))
    v = run.commit()
    assert db.trajectory(v)["step"].tolist() == list(range(14))
    assert kept

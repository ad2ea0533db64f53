"""run.log from several threads (a data-loader thread and the training loop): every value stays
with its own step, nothing is lost, and a commit racing the loggers keeps exactly the calls that
returned. A tiny switch interval makes the interpreter change threads between almost any two
bytecodes, where the unlocked buffers paired values with other threads' steps."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator

import numpy as np
import pytest

import mvcdb
import mvcdb.run
from mvcdb.trajectory import BLOCK_ROWS

THREADS = 4


@pytest.fixture(autouse=True)
def _switch_often() -> Iterator[None]:
    """Thread switches every microsecond instead of every 5 ms."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def _in_threads(work: Callable[[int], None]) -> None:
    """Run work(k) on THREADS threads at once; an exception in any of them fails the test."""
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS)

    def run(k: int) -> None:
        try:
            start.wait()
            work(k)
        except BaseException as exc:  # handed to the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


@pytest.mark.parametrize("block", [4, BLOCK_ROWS])
def test_threads_logging_into_one_run_keep_every_step_with_its_values(
    db: mvcdb.Database, monkeypatch: pytest.MonkeyPatch, block: int
) -> None:
    monkeypatch.setattr(mvcdb.run, "BLOCK_ROWS", block)
    calls = 5000
    run = db.run("threads")

    def work(k: int) -> None:
        for i in range(calls):
            step = k * 100_000 + i
            run.log(step, loss=float(k), i=i, w=np.full(2, step))  # dense: all names every call
            if i % 7 == 0:
                run.log(step, val=-float(step))  # sparse: a row of its own

    _in_threads(work)
    v = run.commit()
    steps, loss = db.series(v, "loss")
    assert len(steps) == THREADS * calls
    np.testing.assert_array_equal(loss, steps // 100_000)
    np.testing.assert_array_equal(db.series(v, "i")[1], steps % 100_000)
    np.testing.assert_array_equal(db.series(v, "w")[1], np.stack([steps, steps], axis=1))
    val_steps, val = db.series(v, "val")
    np.testing.assert_array_equal(val, -val_steps)
    assert sorted(steps.tolist()) == sorted(k * 100_000 + i for k in range(THREADS) for i in range(calls))
    assert sorted(val_steps.tolist()) == sorted(
        k * 100_000 + i for k in range(THREADS) for i in range(0, calls, 7)
    )


def test_a_commit_racing_the_loggers_keeps_exactly_the_calls_that_returned(db: mvcdb.Database) -> None:
    run = db.run("race")
    logged: list[list[int]] = [[] for _ in range(THREADS)]

    def work(k: int) -> None:
        for i in range(1_000_000):
            step = k * 1_000_000 + i
            try:
                run.log(step, x=float(step))
            except mvcdb.MvcdbError as exc:  # the run was committed: this call is not stored
                assert "already committed" in str(exc)
                return
            logged[k].append(step)
            if k == 0 and i == 3000:  # one of the loggers commits while the others log on
                run.commit()

    _in_threads(work)
    assert run.version is not None
    steps, x = db.series(run.version, "x")
    assert sorted(steps.tolist()) == sorted(s for part in logged for s in part)
    np.testing.assert_array_equal(x, steps)

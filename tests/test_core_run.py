"""Per-iteration logging: buffered, columnar, atomic — an exception commits nothing."""

from __future__ import annotations

import numpy as np
import pytest

import mvcdb


def test_run_logs_scalars_and_arrays_and_commits_once(db: mvcdb.Database) -> None:
    with db.run("linreg", metadata={"lr": 0.1}, message="fit") as run:
        for step in range(100):
            run.log(step, loss=1.0 / (step + 1), m=float(step), w=np.full((2, 3), step, np.float32))
        v = run.commit(params={"m": 99.0}, metrics={"val": 0.5})
    traj = db.trajectory(v.id)
    assert list(traj) == ["step", "loss", "m", "w"]
    np.testing.assert_array_equal(traj["step"], np.arange(100))
    assert traj["loss"].dtype == np.float64 and traj["loss"][3] == 0.25
    assert traj["w"].shape == (100, 2, 3) and traj["w"].dtype == np.float32 and traj["w"][7, 1, 2] == 7
    assert v.metadata == {"lr": 0.1} and v.message == "fit" and v.metrics == {"val": 0.5}
    assert db.restore(v.id)["m"] == 99.0


def test_exception_inside_run_commits_nothing(db: mvcdb.Database) -> None:
    before = db.conn.execute("SELECT count(*) FROM versions").fetchone()[0]
    with pytest.raises(RuntimeError):
        with db.run("linreg") as run:
            run.log(0, loss=1.0)
            raise RuntimeError("training crashed")
    assert db.conn.execute("SELECT count(*) FROM versions").fetchone()[0] == before
    assert db.versions() == []


def test_leaving_the_block_without_commit_keeps_the_trajectory(db: mvcdb.Database) -> None:
    with db.run("linreg", message="auto") as run:
        run.log(0, loss=2.0)
        run.log(1, loss=1.0)
    assert run.version is not None
    assert db.trajectory(run.version.id)["loss"].tolist() == [2.0, 1.0]


def test_sparse_series_keep_their_own_steps(db: mvcdb.Database) -> None:
    with db.run("m") as run:
        for step in range(0, 50, 5):
            values = {"loss": float(step)}
            if step % 10 == 0:
                values["val"] = step * 2.0
            run.log(step, **values)
        run.log(50, val=-1.0)
        v = run.commit()
    steps, val = db.series(v.id, "val")
    assert steps.tolist() == [0, 10, 20, 30, 40, 50]
    assert val.tolist() == [0.0, 20.0, 40.0, 60.0, 80.0, -1.0]
    traj = db.trajectory(v.id)
    assert np.isnan(traj["val"][1]) and traj["val"][2] == 20.0
    assert np.isnan(traj["loss"][-1])  # loss was not logged at step 50
    steps, loss = db.series(v.id, "loss")
    assert steps.tolist() == list(range(0, 50, 5))


def test_commit_twice_and_reserved_names_are_refused(db: mvcdb.Database) -> None:
    run = db.run("m")
    run.log(0, loss=1.0)
    run.commit()
    with pytest.raises(mvcdb.MvcdbError, match="already committed"):
        run.commit()
    bad = db.run("m")
    with pytest.raises(mvcdb.MvcdbError, match="reserved"):
        bad.log(0, step=3)  # the first call checks its names at once


def test_ragged_or_text_series_are_refused(db: mvcdb.Database) -> None:
    run = db.run("m")
    run.log(0, w=np.zeros(2), loss=0.0)
    run.log(1, w=np.zeros(3), loss=1.0)
    with pytest.raises(mvcdb.MvcdbError, match="'w'"):
        run.commit()
    assert db.versions() == []
    v = run.commit()  # the rest, without 'w'
    assert list(db.trajectory(v)) == ["step", "loss"]
    run = db.run("m")
    with pytest.raises(mvcdb.MvcdbError, match="'note' has dtype"):
        run.log(0, note="text")  # the first call checks its values at once
    assert db.versions() == [v]


def test_run_checks_arguments_before_training(db: mvcdb.Database) -> None:
    with pytest.raises(mvcdb.RefError):
        db.run("m", parent="missing")
    with pytest.raises(mvcdb.MvcdbError):
        db.run("bad name")
    with pytest.raises(mvcdb.MvcdbError, match="JSON"):
        db.run("m", metadata={"x": object()})


def test_trajectory_argument_of_record(db: mvcdb.Database) -> None:
    v = db.record("m", trajectory={"loss": [3.0, 2.0, 1.0]})
    traj = db.trajectory(v.id)
    assert traj["step"].tolist() == [0, 1, 2] and traj["loss"].tolist() == [3.0, 2.0, 1.0]
    v2 = db.record("m", trajectory={"step": np.array([10, 20]), "acc": np.array([0.5, 0.6])})
    assert db.trajectory(v2.id)["step"].tolist() == [10, 20]
    with pytest.raises(mvcdb.MvcdbError, match="different lengths"):
        db.record("m", trajectory={"a": [1.0], "b": [1.0, 2.0]})
    assert db.trajectory(db.record("m").id) == {}

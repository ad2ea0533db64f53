"""Review fixes for run.log and trajectories: repeated steps keep every value, torch tensors are
converted as record() converts them, steps and series names are refused early without losing
anything else, tags and message are checked when the run starts, and a committed run logs no more.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import mvcdb
import mvcdb.run


@pytest.fixture
def db(tmp_path: Path) -> Any:
    database = mvcdb.open(tmp_path / "x.db")
    try:
        yield database
    finally:
        database.close()


@pytest.fixture
def tiny_blocks(monkeypatch: pytest.MonkeyPatch) -> int:
    """Blocks of 4 rows, so a few log calls cross block boundaries."""
    monkeypatch.setattr(mvcdb.run, "BLOCK_ROWS", 4)
    return 4


def _by_step(steps: np.ndarray, values: np.ndarray) -> dict[int, list[float]]:
    """step -> the values logged at it, in order (NaN: not logged on that row)."""
    out: dict[int, list[float]] = {}
    for s, v in zip(steps.tolist(), values.tolist(), strict=True):
        if not math.isnan(v):
            out.setdefault(s, []).append(v)
    return out


def _assert_trajectory_matches_series(db: mvcdb.Database, v: mvcdb.Version) -> dict[str, np.ndarray]:
    """Every value series() gives is in trajectory() exactly once, on a row of its step, in order."""
    traj = db.trajectory(v)
    for name in traj:
        if name != "step":
            assert _by_step(traj["step"], traj[name]) == _by_step(*db.series(v, name)), name
    return traj


# -- 1: a step logged more than once ----------------------------------------------------------


def test_a_step_logged_three_times_keeps_every_value(db: mvcdb.Database) -> None:
    with db.run("m") as r:
        r.log(0, a=1.0)
        r.log(0, a=2.0)
        r.log(0, b=3.0)
    assert r.version is not None
    traj = _assert_trajectory_matches_series(db, r.version)
    assert traj["step"].tolist() == [0, 0, 0]
    assert traj["a"][:2].tolist() == [1.0, 2.0] and math.isnan(traj["a"][2])  # was [nan, nan, 2]


def test_validation_every_other_step_keeps_loss_on_its_rows(db: mvcdb.Database) -> None:
    with db.run("m") as r:
        for s in range(4):
            r.log(s, loss=float(s))
            if s % 2 == 0:
                r.log(s, val=10.0 + s)
    assert r.version is not None
    traj = _assert_trajectory_matches_series(db, r.version)
    assert traj["step"].tolist() == [0, 0, 1, 2, 2, 3]
    np.testing.assert_array_equal(traj["loss"], [0.0, np.nan, 1.0, 2.0, np.nan, 3.0])


@pytest.mark.parametrize("seed", range(5))
def test_repeated_and_unordered_steps_match_series(db: mvcdb.Database, tiny_blocks: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    with db.run("m") as r:
        for i in range(40):
            names = [n for n in ("a", "b", "c") if rng.random() < 0.6]
            r.log(int(rng.integers(0, 6)), **{n: float(i) for n in names})
    assert r.version is not None
    _assert_trajectory_matches_series(db, r.version)


# -- 2: torch tensors ---------------------------------------------------------------------------


def test_torch_tensors_that_require_grad_are_detached(db: mvcdb.Database, tiny_blocks: int) -> None:
    torch = pytest.importorskip("torch")
    w = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    with db.run("t") as run:
        for s in range(6):
            run.log(s, loss=(w**2).sum() * s, vec=w * s)
    assert run.version is not None
    traj = db.trajectory(run.version)
    assert traj["loss"].dtype == np.float32 and traj["loss"].tolist() == [14.0 * s for s in range(6)]
    assert traj["vec"].shape == (6, 3) and traj["vec"][5].tolist() == [5.0, 10.0, 15.0]


def test_torch_bfloat16_tensors_are_stored_as_bfloat16(db: mvcdb.Database) -> None:
    torch = pytest.importorskip("torch")
    with db.run("t") as run:
        for s in range(3):
            run.log(s, loss=torch.tensor(1.5 + s, dtype=torch.bfloat16))
    assert run.version is not None
    loss = db.trajectory(run.version)["loss"]
    assert mvcdb.dtypes.name_of(loss.dtype) == "bfloat16"
    assert loss.astype(np.float32).tolist() == [1.5, 2.5, 3.5]


# -- 3: steps beyond int64 ---------------------------------------------------------------------


@pytest.mark.parametrize("step", [2**63, np.uint64(2**64 - 1), -(2**63) - 1])
def test_a_step_beyond_int64_is_refused_not_wrapped(db: mvcdb.Database, step: Any) -> None:
    run = db.run("m")
    with pytest.raises(mvcdb.MvcdbError, match=f"step {int(step)} does not fit a signed 64-bit"):
        run.log(step, loss=1.0)  # the first call's block is converted at once
    run.log(2**63 - 1, loss=2.0)
    v = run.commit()
    assert db.trajectory(v)["step"].tolist() == [2**63 - 1]


def test_a_late_bad_step_leaves_the_run_usable(db: mvcdb.Database, tiny_blocks: int) -> None:
    run = db.run("m")
    for s in range(6):
        run.log(s, loss=float(s))
    run.log(2**63, loss=-1.0)
    run.log(7, loss=7.0)
    with pytest.raises(mvcdb.MvcdbError, match="9223372036854775808"):
        run.commit()
    v = run.commit()  # everything else is still there
    traj = db.trajectory(v)
    assert traj["step"].tolist() == [0, 1, 2, 3, 4, 5, 7] and traj["loss"].tolist()[-1] == 7.0


# -- 4: tags and message checked when the run starts ------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tags": ["best model"]}, "invalid tag name"),
        ({"tags": 5}, "tags must be"),
        ({"message": 5}, "message must be a string"),
    ],
)
def test_run_refuses_bad_tags_and_message_up_front(
    db: mvcdb.Database, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(mvcdb.MvcdbError, match=message):
        db.run("m", **kwargs)


def test_a_single_string_tag_is_one_tag(db: mvcdb.Database) -> None:
    with db.run("m", tags="best") as run:
        run.log(0, loss=1.0)
        v = run.commit(tags="final")
    assert sorted(db.get(v.id).tags) == ["best", "final"]


# -- 5: log after commit ------------------------------------------------------------------------


def test_log_after_commit_or_discard_is_refused(db: mvcdb.Database) -> None:
    r = db.run("m")
    r.log(0, a=1.0)
    v = r.commit()
    with pytest.raises(mvcdb.MvcdbError, match="already committed"):
        r.log(1, a=2.0)
    assert db.trajectory(v)["a"].tolist() == [1.0]

    with pytest.raises(RuntimeError):
        with db.run("m") as r:
            raise RuntimeError("crashed")
    with pytest.raises(mvcdb.MvcdbError, match="discarded"):
        r.log(0, a=1.0)


# -- 6: series names ----------------------------------------------------------------------------

BAD_NAMES = [
    pytest.param("a\nb", "control characters", id="control"),
    pytest.param("", "1..1024", id="empty"),
    pytest.param("x" * 1025, "1..1024", id="long"),
    pytest.param("a\ud800", "surrogate", id="surrogate"),
    pytest.param("step", "reserved", id="step"),
]


@pytest.mark.parametrize(("name", "message"), BAD_NAMES)
def test_a_bad_series_name_is_refused_by_the_first_log(db: mvcdb.Database, name: str, message: str) -> None:
    run = db.run("m")
    with pytest.raises(mvcdb.MvcdbError, match=message):
        run.log(0, loss=1.0, **{name: 2.0})
    run.log(1, loss=3.0)
    v = run.commit()  # nothing else lost, and no raw UnicodeEncodeError
    traj = db.trajectory(v)
    assert list(traj) == ["step", "loss"] and traj["loss"].tolist() == [1.0, 3.0]


@pytest.mark.parametrize(("name", "message"), BAD_NAMES)
def test_a_bad_series_name_in_a_later_block_keeps_everything_else(
    db: mvcdb.Database, tiny_blocks: int, name: str, message: str
) -> None:
    run = db.run("m")
    run.log(0, loss=0.0)
    for s in range(1, 10):  # never raises inside the loop once it runs
        run.log(s, loss=float(s), **({name: -1.0} if s == 2 else {}))
    with pytest.raises(mvcdb.MvcdbError, match=message):
        run.commit()  # said once, at commit; nothing written
    assert db.versions() == []
    v = run.commit()  # the rest, without the refused series
    traj = db.trajectory(v)
    assert list(traj) == ["step", "loss"] and traj["loss"].tolist() == [float(s) for s in range(10)]


# -- 7: record(trajectory=...) wording ---------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"b": [1.0]}, "series 'a' must be an array or a list"),
        (5, "series 'a' must be"),
        (["x"], "series 'a' has dtype"),
    ],
)
def test_record_trajectory_errors_name_the_series(db: mvcdb.Database, value: Any, message: str) -> None:
    with pytest.raises(mvcdb.MvcdbError, match=message) as info:
        db.record("m", trajectory={"a": value})
    assert "parameter" not in str(info.value)


def test_arrays_updated_in_place_after_log_keep_their_logged_values(db: mvcdb.Database) -> None:
    """A buffer changed in place after log() (w -= lr * grad, an optimizer step) is stored as it
    was when logged, not as it is when its block converts."""
    w = np.zeros(3)
    with db.run("m") as run:
        for step in range(5):
            run.log(step, w=w, loss=float(step))
            w += 1.0  # in place
    assert db.trajectory(run.version)["w"].tolist() == [[float(s)] * 3 for s in range(5)]


def _layer_descending_by_one() -> tuple[Any, Callable[[], None]]:
    """A torch Linear(2, 1) at zero, and a training step that subtracts 1 from each weight in
    place (d/dw = 1, SGD with lr 1): what an optimizer does to a logged parameter."""
    torch = pytest.importorskip("torch")
    layer = torch.nn.Linear(2, 1, bias=False)
    torch.nn.init.zeros_(layer.weight)
    optimizer = torch.optim.SGD(layer.parameters(), lr=1.0)

    def train_step() -> None:
        optimizer.zero_grad()
        layer(torch.ones(1, 2)).sum().backward()
        optimizer.step()

    return layer, train_step


def test_torch_parameters_updated_in_place_keep_their_logged_values(db: mvcdb.Database) -> None:
    layer, train_step = _layer_descending_by_one()
    with db.run("m") as run:
        for step in range(4):
            run.log(step, weight=layer.weight)
            train_step()
    logged = db.trajectory(run.version)["weight"]
    assert logged.reshape(4, 2).tolist() == [[-float(s)] * 2 for s in range(4)]


def test_torch_values_a_series_cannot_hold_are_named_as_series(db: mvcdb.Database) -> None:
    torch = pytest.importorskip("torch")
    run = db.run("m")
    with pytest.raises(mvcdb.MvcdbError, match="series 'w' is on the meta device"):
        run.log(0, w=torch.empty(2, device="meta"))  # the first call: at once
    run.log(1, w=torch.empty(2, device="meta"))  # later: at commit
    with pytest.raises(mvcdb.MvcdbError, match="series 'w' is on the meta device"):
        run.commit()


# -- 8: arrays and tensors first logged after the first call -----------------------------------


def test_an_array_series_that_starts_late_keeps_every_logged_state(db: mvcdb.Database) -> None:
    """A buffer updated in place is stored as it was at each log(), from its very first row
    (its rows before the next block used to show its final state)."""
    w = np.zeros(2)
    with db.run("m") as run:
        for s in range(2000):  # several real blocks
            w += 1
            run.log(s, loss=float(s), **({"w": w} if s else {}))
    steps, logged = db.series(run.version, "w")
    assert steps.tolist() == list(range(1, 2000))
    np.testing.assert_array_equal(logged, np.stack([steps + 1.0, steps + 1.0], axis=1))


@pytest.mark.parametrize("first", [1, 5])
def test_a_torch_parameter_that_starts_late_keeps_every_logged_state(
    db: mvcdb.Database, tiny_blocks: int, first: int
) -> None:
    layer, train_step = _layer_descending_by_one()
    with db.run("m") as run:
        for step in range(12):
            run.log(step, loss=float(step), **({"weight": layer.weight} if step >= first else {}))
            train_step()
    steps, logged = db.series(run.version, "weight")
    assert steps.tolist() == list(range(first, 12))
    assert logged.reshape(-1, 2).tolist() == [[-float(s)] * 2 for s in steps]


def test_a_run_of_plain_numbers_looks_at_each_value_once(
    db: mvcdb.Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """log() looks at the values of a call that logs a new name (is it an array?), never again
    at a run of plain numbers: one set check per call is all they pay."""
    looked: list[Any] = []
    mutable = mvcdb.run._mutable

    def counted(value: Any) -> bool:
        looked.append(value)
        return mutable(value)

    monkeypatch.setattr(mvcdb.run, "_mutable", counted)
    with db.run("m") as run:
        for s in range(2000):
            run.log(s, loss=float(s), n=s, **({"flag": True} if s == 1500 else {}))
    assert looked == [0.0, 0, 1500.0, 1500, True]


def test_a_dict_of_tensors_is_refused_at_commit_not_inside_the_loop(db: mvcdb.Database) -> None:
    torch = pytest.importorskip("torch")
    run = db.run("m")
    run.log(0, loss=0.0)
    run.log(1, loss=1.0, state={"w": torch.zeros(2)})  # no buffer to copy: never raises here
    with pytest.raises(mvcdb.MvcdbError, match="'state'"):
        run.commit()
    assert db.trajectory(run.commit())["loss"].tolist() == [0.0, 1.0]


# -- 9: a series that cannot be stored does not block the commit ------------------------------


def test_series_that_cannot_be_stored_are_left_out_and_named_once(db: mvcdb.Database) -> None:
    run = db.run("m")
    for s in range(1200):  # real blocks: every refusal below happens after the first one
        run.log(
            s,
            loss=float(s),
            w=np.zeros(4 if s == 900 else 3),  # ragged once
            **({"note": "hi"} if s == 800 else {}),  # text once
            **({"a\nb": 1.0} if s == 1000 else {}),  # a name record() refuses
        )
    with pytest.raises(mvcdb.MvcdbError) as info:
        run.commit()
    message = str(info.value)
    assert "'note'" in message and "'w'" in message and "control characters" in message
    assert "commit again" in message
    assert db.versions() == []
    v = run.commit()  # everything else
    traj = db.trajectory(v)
    assert list(traj) == ["step", "loss"]
    assert traj["loss"].tolist() == [float(s) for s in range(1200)]


def test_a_text_value_in_the_first_call_raises_there(db: mvcdb.Database) -> None:
    with pytest.raises(mvcdb.MvcdbError, match="series 'note' has dtype"):
        with db.run("m") as run:
            run.log(0, loss=0.0, note="hi")
            run.log(1, loss=1.0)  # never reached: the loop does not start
    assert db.versions() == []
    run = db.run("m")
    with pytest.raises(mvcdb.MvcdbError, match="series 'w': values of different shapes"):
        run.log(0, loss=0.0, w=[np.zeros(2), np.zeros(3)])  # ragged within its one value
    run.log(1, loss=1.0)
    traj = db.trajectory(run.commit())  # the first call's other values are kept
    assert list(traj) == ["step", "loss"] and traj["loss"].tolist() == [0.0, 1.0]


# -- 10: the training helpers keep integers exact ----------------------------------------------


def test_training_helper_values_keep_integers_exact() -> None:
    torch = pytest.importorskip("torch")
    from mvcdb.frameworks.training import scalar

    big = 2**60 + 1
    assert scalar(big) == big and type(scalar(big)) is int
    assert scalar(np.int64(big)) == big and type(scalar(np.int64(big))) is int
    assert scalar(torch.tensor(big)) == big and type(scalar(torch.tensor(big))) is int
    assert scalar(np.array([big])) == big
    assert scalar(np.float32(0.5)) == 0.5 and type(scalar(np.float32(0.5))) is float
    assert scalar(torch.tensor(0.25)) == 0.25
    assert scalar(True) is None and scalar(np.bool_(True)) is None and scalar(torch.tensor(True)) is None


def test_track_logs_large_integers_exactly(db: mvcdb.Database) -> None:
    torch = pytest.importorskip("torch")
    from mvcdb.frameworks.torch_training import track

    with track(db, "m", torch.nn.Linear(1, 1)) as run:
        for e in range(4):
            run.log(e, tokens=2**60 + e, seen=torch.tensor(2**61 + e), done=e == 3)
    assert run.version is not None
    _, tokens = db.series(run.version, "tokens")
    assert tokens.dtype == np.int64 and tokens.tolist() == [2**60 + e for e in range(4)]
    assert db.series(run.version, "seen")[1].tolist() == [2**61 + e for e in range(4)]
    done = db.series(run.version, "done")[1]
    assert done.dtype == np.bool_ and done.tolist() == [False, False, False, True]
    assert run.version.metrics["tokens"] == float(2**60 + 3)

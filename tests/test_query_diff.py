"""db.diff: metadata, metrics, parameters (checked against numpy) and trajectories."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

import mvcdb
from mvcdb.blobstore import BlobStore

CHUNK = 4096  # small chunks: every tensor below spans several, so streaming is exercised


@pytest.fixture
def small(tmp_path: Path) -> Iterator[mvcdb.Database]:
    with mvcdb.open(tmp_path / "small.db", chunk_size=CHUNK) as database:
        yield database


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[Sequence[int]]:
    """Every BlobStore.read_into call's chunk ids (the one way chunk bytes are read)."""
    calls: list[Sequence[int]] = []
    original = BlobStore.read_into

    def counting(self: BlobStore, cids: Sequence[int], out: np.ndarray, **how: str) -> None:
        calls.append(list(cids))
        original(self, cids, out, **how)

    monkeypatch.setattr(BlobStore, "read_into", counting)
    return calls


def expected_stats(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    work = np.complex128 if np.iscomplexobj(a) or np.iscomplexobj(b) else np.float64
    a64, b64 = a.astype(work).ravel(), b.astype(work).ravel()
    d = b64 - a64
    changed = (a.ravel() != b.ravel()) & ~(np.isnan(a64) & np.isnan(b64))
    return {
        "l2": float(np.linalg.norm(d)),
        "max_abs": float(np.max(np.abs(d))),
        "rel_change": float(np.linalg.norm(d) / np.linalg.norm(a64)),
        "cosine": float(np.vdot(a64, b64).real / (np.linalg.norm(a64) * np.linalg.norm(b64))),
        "frac_changed": float(np.count_nonzero(changed) / a.size),
    }


def check(param: mvcdb.diff.ParamDiff, a: np.ndarray, b: np.ndarray) -> None:
    for key, value in expected_stats(a, b).items():
        assert getattr(param, key) == pytest.approx(value, rel=1e-9, abs=1e-12), key


def test_params_against_numpy(small: mvcdb.Database) -> None:
    rng = np.random.default_rng(1)
    w = rng.standard_normal((37, 101)).astype(np.float32)  # ~15 KB: 4 chunks of 4 KiB
    w2 = w.copy()
    w2[::3] += rng.standard_normal(w2[::3].shape).astype(np.float32) * 0.01
    big = rng.standard_normal(3001)  # float64, chunks hold 512 elements: unaligned tail
    big2 = big * 1.5
    ints = np.arange(2000, dtype=np.int16)
    ints2 = ints.copy()
    ints2[7] = -5
    cplx = (rng.standard_normal(700) + 1j * rng.standard_normal(700)).astype(np.complex64)
    cplx2 = cplx * (1 + 0.1j)
    be = np.linspace(1, 2, 999).astype(">f8")
    be2 = be.copy()
    be2[-1] = 7
    a = small.record(
        "m",
        {"w": w, "big": big, "ints": ints, "cplx": cplx, "be": be, "frozen": w, "gone": ints, "grow": big},
    )
    b = small.record(
        "m",
        {"w": w2, "big": big2, "ints": ints2, "cplx": cplx2, "be": be2, "frozen": w, "new": ints,
         "grow": np.ones(3002)},
        parent=a,
    )  # fmt: skip
    d = small.diff(a, b)
    by = {p.name: p for p in d.params}
    assert [p.name for p in d.params] == sorted(by)
    assert {k: p.status for k, p in by.items()} == {
        "be": "changed",
        "big": "changed",
        "cplx": "changed",
        "frozen": "identical",
        "gone": "removed",
        "grow": "shape_changed",
        "ints": "changed",
        "new": "added",
        "w": "changed",
    }
    check(by["w"], w, w2)
    check(by["big"], big, big2)
    check(by["ints"], ints, ints2)
    check(by["cplx"], cplx, cplx2)
    check(by["be"], be, be2)
    assert by["ints"].frac_changed == pytest.approx(1 / 2000)
    assert by["big"].cosine == pytest.approx(1.0) and by["big"].rel_change == pytest.approx(0.5)
    assert by["frozen"].l2 is None and by["frozen"].dtype_a == "<f4" and by["frozen"].shape_b == (37, 101)
    assert by["gone"].dtype_b is None and by["gone"].shape_a == (2000,)
    assert by["new"].dtype_a is None and by["new"].dtype_b == "<i2"
    assert by["grow"].shape_a == (3001,) and by["grow"].shape_b == (3002,) and by["grow"].l2 is None
    assert by["be"].dtype_a == ">f8"


def test_dtype_change_still_compares_values(small: mvcdb.Database) -> None:
    x = np.linspace(-3, 3, 5000)
    a = small.record("m", {"x": x})
    b = small.record("m", {"x": x.astype(np.float32)}, parent=a)
    (p,) = small.diff(a, b).params
    assert p.status == "dtype_changed" and (p.dtype_a, p.dtype_b) == ("<f8", "<f4")
    check(p, x, x.astype(np.float32))
    assert p.max_abs < 1e-6


def test_nan_and_zero_tensors(small: mvcdb.Database) -> None:
    nan = np.array([np.nan, 1.0, 2.0, 0.0])
    zeros = np.zeros(4)
    a = small.record("m", {"n": nan, "z": zeros, "z2": zeros})
    b = small.record(
        "m", {"n": np.array([np.nan, 1.0, 2.5, 0.0]), "z": np.ones(4), "z2": -0.0 * zeros}, parent=a
    )
    by = {p.name: p for p in small.diff(a, b).params}
    assert by["n"].frac_changed == pytest.approx(0.25)  # NaN equals NaN
    assert by["n"].l2 == pytest.approx(0.5) and by["n"].max_abs == pytest.approx(0.5)  # NaN − NaN: 0
    assert by["n"].nan_changed == 0 and by["n"].cosine is not None
    assert by["z"].rel_change is None and by["z"].cosine is None  # ‖a‖ = 0: undefined
    assert by["z"].l2 == pytest.approx(2.0) and by["z"].frac_changed == 1.0
    assert by["z2"].status == "changed" and by["z2"].frac_changed == 0.0 and by["z2"].l2 == 0.0
    data = json.loads(json.dumps(small.diff(a, b).to_dict(), allow_nan=False))
    n = next(p for p in data["params"] if p["name"] == "n")
    assert n["l2"] == pytest.approx(0.5) and n["nan_changed"] == 0


def test_identical_tensors_are_not_read(small: mvcdb.Database, reads: list[Sequence[int]]) -> None:
    rng = np.random.default_rng(2)
    frozen = rng.standard_normal(4000)  # 8 chunks
    head = rng.standard_normal(1500)  # 3 chunks (512 + 512 + 476 elements)
    a = small.record("m", {"frozen": frozen, "also_frozen": frozen * 2, "head": head})
    b = small.record("m", {"frozen": frozen, "also_frozen": frozen * 2, "head": head + 1}, parent=a)
    reads.clear()
    assert all(p.status == "identical" for p in small.diff(a, a).params)
    assert reads == []
    d = small.diff(a, b)
    assert {p.name: p.status for p in d.params} == {
        "also_frozen": "identical",
        "frozen": "identical",
        "head": "changed",
    }
    # only the changed tensor was read: its 3 chunks on each side, one chunk per call (streamed)
    assert len(reads) == 6 and all(len(c) == 1 for c in reads)
    head_cids = {
        r[0]
        for r in small.conn.execute("SELECT cid FROM tensor_chunks WHERE name = 'head' AND kind = 'param'")
    }
    assert {c[0] for c in reads} == head_cids


def test_metadata_and_metrics(db: mvcdb.Database) -> None:
    a = db.record(
        "m",
        metrics={"loss": 0.5, "acc": 0.8, "gone": 1.0, "zero": 0.0, "nan": float("nan")},
        metadata={"hyper": {"lr": 0.1, "batch": 32}, "train_set": "a.csv", "tags": [1, 2], "old": True},
    )
    b = db.record(
        "m",
        metrics={"loss": 0.4, "acc": 0.8, "new": 2.0, "zero": 1.0, "nan": float("nan")},
        metadata={"hyper": {"lr": 0.01, "batch": 32, "wd": 0.0}, "train_set": "a.csv", "tags": [1, 3]},
        parent=a,
    )
    d = db.diff(a, b)
    assert d.metadata.added == {"hyper.wd": 0.0}
    assert d.metadata.removed == {"old": True}
    assert d.metadata.changed == {"hyper.lr": (0.1, 0.01), "tags": ([1, 2], [1, 3])}
    m = {x.name: x for x in d.metrics}
    assert (m["loss"].a, m["loss"].b) == (0.5, 0.4)
    assert m["loss"].abs_change == pytest.approx(-0.1) and m["loss"].rel_change == pytest.approx(-0.2)
    assert m["acc"].abs_change == 0.0 and m["acc"].status == "same"
    assert m["gone"].b is None and m["gone"].abs_change is None and m["gone"].status == "removed"
    assert m["new"].a is None and m["new"].status == "added"
    assert m["zero"].rel_change is None and m["zero"].abs_change == 1.0
    assert m["nan"].status == "same"
    text = str(d)
    assert "hyper.lr: 0.1 -> 0.01" in text
    assert "+ hyper.wd: 0" in text and "- old: true" in text
    assert "loss: 0.5 -> 0.4 (-0.1, -20.00%)" in text


def test_trajectory(db: mvcdb.Database) -> None:
    loss_a = np.array([4.0, 2.0, 1.0, 0.5, 0.75])
    a = db.record("m", trajectory={"step": np.arange(5), "loss": loss_a, "only_a": np.ones(5)})
    with db.run("m", parent=a) as run:
        for step in range(2, 9):  # steps 2..8: 3 steps aligned with a
            kwargs = {"grad": float(step)} if step % 2 else {}
            run.log(step, loss=1.0 / step, **kwargs)
        b = run.commit()
    d = db.diff(a, b)
    s = {x.name: x for x in d.trajectory}
    assert set(s) == {"loss", "only_a", "grad"}
    loss = s["loss"]
    assert (loss.len_a, loss.len_b, loss.aligned_steps) == (5, 7, 3)
    assert (loss.a.first, loss.a.last, loss.a.min, loss.a.max, loss.a.argmin_step) == (4.0, 0.75, 0.5, 4.0, 3)
    assert loss.b.argmin_step == 8 and loss.b.first == 0.5
    diffs = np.array([1 / 2 - 1.0, 1 / 3 - 0.5, 1 / 4 - 0.75])  # b - a at steps 2, 3, 4
    assert loss.max_abs_diff == pytest.approx(np.max(np.abs(diffs)))
    assert loss.mean_abs_diff == pytest.approx(np.mean(np.abs(diffs)))
    assert loss.final_diff == pytest.approx(diffs[-1])
    assert s["only_a"].b is None and s["only_a"].len_b is None and s["only_a"].aligned_steps == 0
    assert s["grad"].a is None and s["grad"].len_b == 3  # sparse: logged at steps 3, 5, 7


def test_array_series_use_l2_norm_per_step(db: mvcdb.Database) -> None:
    wa = np.stack([np.full((2, 2), i, dtype=np.float64) for i in range(3)])
    a = db.record("m", trajectory={"w": wa})
    b = db.record("m", trajectory={"w": wa + 1.0}, parent=a)
    (w,) = db.diff(a, b).trajectory
    assert w.per_step == "l2_norm"
    assert w.a.last == pytest.approx(4.0)  # ‖[[2,2],[2,2]]‖
    assert w.max_abs_diff == pytest.approx(2.0) and w.final_diff == pytest.approx(2.0)


def test_to_dict_shape_and_json(db: mvcdb.Database) -> None:
    a = db.record("m", {"w": np.arange(3.0)}, metrics={"x": float("inf")}, metadata={"k": 1},
                  trajectory={"loss": [1.0, float("nan")]})  # fmt: skip
    b = db.record(
        "m", {"w": np.arange(3.0) + 1}, metrics={"x": 1.0}, parent=a, trajectory={"loss": [2.0, 1.0]}
    )
    data = db.diff(a, b).to_dict()
    text = json.dumps(data, allow_nan=False)  # strictly JSON-safe
    data = json.loads(text)
    assert list(data) == ["a", "b", "metadata", "metrics", "params", "trajectory"]
    assert (data["a"], data["b"]) == (a.id, b.id)
    assert set(data["metadata"]) == {"added", "removed", "changed"}
    assert data["metadata"]["removed"] == {"k": 1}
    assert set(data["metrics"][0]) == {"name", "a", "b", "abs_change", "rel_change"}
    assert data["metrics"][0]["a"] == "inf" and data["metrics"][0]["abs_change"] == "-inf"
    assert set(data["params"][0]) == {
        "name", "status", "dtype_a", "dtype_b", "shape_a", "shape_b",
        "l2", "max_abs", "rel_change", "cosine", "frac_changed", "nan_changed",
    }  # fmt: skip
    assert data["params"][0]["shape_a"] == [3]
    traj = data["trajectory"][0]
    assert set(traj) >= {
        "name", "len_a", "len_b", "a", "b", "aligned_steps", "max_abs_diff", "mean_abs_diff", "final_diff",
    }  # fmt: skip
    assert set(traj["a"]) == {"first", "last", "min", "max", "argmin_step"}
    assert traj["a"]["last"] == "nan"


def test_diff_accepts_refs_and_rejects_unknown(db: mvcdb.Database) -> None:
    a = db.record("m", {"w": np.zeros(2)}, tags=["prod"])
    b = db.record("m", {"w": np.zeros(2)}, parent=a)
    assert db.diff("prod", "m@latest").b == b.id
    assert db.diff(b, "m@latest~1").b == a.id
    assert db.diff(a, a).identical
    assert db.diff(a, b).identical  # same content; only the lineage differs
    c = db.record("m", {"w": np.ones(2)}, parent=b)
    assert not db.diff(b, c).identical
    with pytest.raises(mvcdb.errors.RefError):
        db.diff("prod", "nope")

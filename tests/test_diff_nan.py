"""db.diff with NaN and inf: equal values differ by 0, a NaN never turns the other statistics into NaN."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import mvcdb
from mvcdb import diff as diff_module


@pytest.fixture
def small(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[mvcdb.Database]:
    """Small chunks and steps, so the NaNs below sit in some steps of a streamed diff and not others."""
    monkeypatch.setattr(diff_module, "STEP_ELEMENTS", 256)
    with mvcdb.open(tmp_path / "nan.db", chunk_size=4096) as database:
        yield database


def _expected(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """The statistics over the positions where neither side is NaN, in numpy."""
    keep = ~(np.isnan(a) | np.isnan(b))
    a64, b64 = a[keep].astype(np.float64), b[keep].astype(np.float64)
    d = b64 - a64
    return {
        "l2": float(np.linalg.norm(d)),
        "max_abs": float(np.max(np.abs(d))),
        "rel_change": float(np.linalg.norm(d) / np.linalg.norm(a64)),
        "cosine": float(np.dot(a64, b64) / (np.linalg.norm(a64) * np.linalg.norm(b64))),
    }


def test_nan_at_the_same_place_on_both_sides_is_unchanged(small: mvcdb.Database) -> None:
    rng = np.random.default_rng(0)
    a = rng.standard_normal(3000).astype(np.float32)
    b = a.copy()
    b[::7] += np.float32(0.25)
    a[[5, 1000, 2999]] = b[[5, 1000, 2999]] = np.nan
    va = small.record("m", {"w": a})
    vb = small.record("m", {"w": b}, parent=va)
    (p,) = small.diff(va, vb).params
    for key, value in _expected(a, b).items():
        assert getattr(p, key) == pytest.approx(value, rel=1e-9), key
    assert p.max_abs == pytest.approx(0.25, rel=1e-6)
    assert p.nan_changed == 0
    assert p.frac_changed == pytest.approx(np.count_nonzero(np.arange(3000) % 7 == 0) / 3000)


def test_a_nan_on_one_side_is_counted_and_hides_nothing(small: mvcdb.Database) -> None:
    a = np.linspace(1.0, 2.0, 2000)
    b = a + 0.5
    b[10] = np.nan  # became NaN
    a[1500] = np.nan  # stopped being NaN
    a[700] = b[700] = np.nan  # NaN on both sides: unchanged
    va = small.record("m", {"w": a})
    vb = small.record("m", {"w": b}, parent=va)
    diff = small.diff(va, vb)
    (p,) = diff.params
    assert p.nan_changed == 2
    assert p.frac_changed == pytest.approx(1999 / 2000)  # the two one-sided NaNs are changes
    for key, value in _expected(a, b).items():
        assert getattr(p, key) == pytest.approx(value, rel=1e-9), key
    assert p.max_abs == pytest.approx(0.5)  # the other positions' difference, not NaN
    line = next(text for style, text in diff.lines() if text.startswith("  ~ w"))
    assert "nan" not in line.replace("nan_changed=2", "") and line.endswith("nan_changed=2")
    data = json.loads(json.dumps(diff.to_dict(), allow_nan=False))
    assert data["params"][0]["nan_changed"] == 2 and data["params"][0]["l2"] == pytest.approx(p.l2)


def test_equal_infinities_are_unchanged_and_never_nan(small: mvcdb.Database) -> None:
    a = np.arange(1000, dtype=np.float64)
    b = a.copy()
    b[3] = 4.0
    a[[100, 900]] = b[[100, 900]] = np.inf
    a[500] = b[500] = -np.inf
    va = small.record("m", {"w": a, "up": np.zeros(600)})
    up = np.zeros(600)
    up[42] = np.inf
    vb = small.record("m", {"w": b, "up": up}, parent=va)
    by = {p.name: p for p in small.diff(va, vb).params}
    w = by["w"]
    assert (w.l2, w.max_abs, w.frac_changed, w.nan_changed) == (1.0, 1.0, 1 / 1000, 0)
    assert w.rel_change is None and w.cosine is None  # ‖a‖ is infinite: undefined, not NaN
    assert by["up"].l2 == math.inf and by["up"].max_abs == math.inf  # a real infinite change
    assert by["up"].rel_change is None and by["up"].cosine is None


def test_complex_nan_on_both_sides(small: mvcdb.Database) -> None:
    a = (np.arange(800) + 1j).astype(np.complex64)
    b = a * np.complex64(1 + 0.5j)
    a[3] = b[3] = complex(np.nan, 1.0)
    va = small.record("m", {"z": a})
    vb = small.record("m", {"z": b}, parent=va)
    (p,) = small.diff(va, vb).params
    keep = np.ones(800, dtype=bool)
    keep[3] = False
    d = b[keep].astype(np.complex128) - a[keep].astype(np.complex128)
    assert p.l2 == pytest.approx(float(np.linalg.norm(d)), rel=1e-9)
    assert p.cosine is not None and math.isfinite(p.cosine) and p.nan_changed == 0


def test_array_series_with_a_nan_on_both_sides_keep_their_step(db: mvcdb.Database) -> None:
    wa = np.stack([np.full((2, 2), float(i)) for i in range(3)])
    wb = wa + 1.0
    wa[1, 0, 0] = wb[1, 0, 0] = np.nan
    a = db.record("m", {"x": np.zeros(1)}, trajectory={"w": wa})
    b = db.record("m", {"x": np.zeros(1)}, trajectory={"w": wb}, parent=a)
    (s,) = db.diff(a, b).trajectory
    assert s.per_step == "l2_norm"
    # every step changed by 1.0 in each element: step 1 by sqrt(3) (its NaN element is unchanged)
    assert s.max_abs_diff == pytest.approx(2.0)
    assert s.mean_abs_diff == pytest.approx((2.0 + math.sqrt(3) + 2.0) / 3)

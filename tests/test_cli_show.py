"""`mvcdb show REF`: metadata, metrics, lineage, tags, parameter norms, trajectory sparklines."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cli_helpers import LOSS, O1_PARAMS, V3_PARAMS, Fixture, ambiguous_prefix, assert_error, build, run

import mvcdb
from mvcdb.cli import output
from mvcdb.norms import l2_norm


@pytest.fixture(scope="module")
def fx(tmp_path_factory: pytest.TempPathFactory) -> Fixture:
    return build(tmp_path_factory.mktemp("show") / "fx.db")


def _show(fx: Fixture, *args: str) -> dict[str, Any]:
    return _show_at(fx.path, *args)


def _show_at(path: Path, *args: str) -> dict[str, Any]:
    result = run(path, ["show", "--json", *args])
    assert result.exit_code == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def test_json_shape_lineage_and_norms(fx: Fixture) -> None:
    data = _show(fx, "best")
    assert data["id"] == fx.v3 and data["tags"] == ["best"]
    assert data["parents"] == [fx.v1] and data["children"] == [fx.v4]
    assert data["metrics"] == {"val_mse": 0.25} and data["metadata"] == {"train_set": "other.csv"}
    params = {p["name"]: p for p in data["params"]}
    assert set(params) == set(V3_PARAMS)
    w = params["w"]
    assert w["dtype"] == "<f4" and w["shape"] == [2, 2] and w["nbytes"] == 16 and len(w["digest"]) == 64
    assert w["norm"] == pytest.approx(math.sqrt(0 + 1 + 4 + 9))
    assert params["b"]["norm"] == pytest.approx(0.9)


def test_norms_of_int_and_complex_tensors(fx: Fixture) -> None:
    params = {p["name"]: p for p in _show(fx, "other@latest")["params"]}
    for name, arr in O1_PARAMS.items():
        expected = np.linalg.norm(np.asarray(arr, dtype=np.complex128).ravel())
        assert params[name]["norm"] == pytest.approx(float(expected), rel=1e-12)
    assert params["phase"]["norm"] == pytest.approx(5.0)


def test_l2_norm_accumulates_in_float64_across_blocks() -> None:
    big = np.full(3_000_000, 1e-3, dtype=np.float32)  # three blocks; float32 sums would drift
    assert l2_norm(big) == pytest.approx(math.sqrt(3_000_000 * float(np.float32(1e-3)) ** 2), rel=1e-9)
    assert l2_norm(np.array(True)) == 1.0


def test_trajectory_summary(fx: Fixture) -> None:
    traj = _show(fx, fx.v1)["trajectory"]
    assert traj["steps"] == len(LOSS)
    loss = next(s for s in traj["series"] if s["name"] == "loss")
    assert (loss["first"], loss["last"], loss["min"], loss["max"]) == (4.0, 0.25, 0.25, 4.0)
    assert loss["points"] == 5 and loss["reduced"] is False
    assert len(loss["sparkline"]) == 5 and loss["sparkline"][0] == "█" and loss["sparkline"][-1] == "▁"
    sparse = next(s for s in _show(fx, fx.v2)["trajectory"]["series"] if s["name"] == "grad")
    assert sparse["points"] == 2 and (sparse["first"], sparse["last"]) == (0.0, 2.0)
    weights = _show(fx, fx.v3)["trajectory"]["series"]
    assert [s["name"] for s in weights] == ["w"]
    assert weights[0]["reduced"] is True and weights[0]["shape"] == [3, 2, 2]
    assert weights[0]["last"] == pytest.approx(4.0)  # norm of a 2x2 of 2s
    assert _show(fx, fx.v4)["trajectory"] is None


def test_trajectory_summary_keeps_infinities(tmp_path: Path) -> None:
    """A diverged run shows its inf (NaN alone is skipped); its diff warns nothing on stderr."""
    path = tmp_path / "inf.db"
    with mvcdb.open(path) as db:
        loss = np.array([1.0, np.inf, np.nan, 3.0])
        grads = np.full((4, 2), 1e300)  # every step's norm overflows float64
        v = db.record("m", trajectory={"step": np.arange(4), "loss": loss, "grad": grads})
    summary = {s["name"]: s for s in _show_at(path, v.id)["trajectory"]["series"]}
    assert (summary["loss"]["min"], summary["loss"]["max"]) == (1.0, "inf")
    assert (summary["grad"]["min"], summary["grad"]["max"]) == ("inf", "inf")
    result = run(path, ["diff", v.id, v.id])
    assert result.exit_code == 0 and result.stderr == ""


def test_norm_limit_skips_and_says_so(fx: Fixture) -> None:
    data = _show(fx, "--norm-limit", "10", "best")
    norms = {p["name"]: p["norm"] for p in data["params"]}
    assert norms["w"] is None and norms["m"] == pytest.approx(2.4)
    text = run(fx.path, ["show", "--norm-limit", "10", "best"])
    assert text.exit_code == 0
    assert "norm '-': 1 tensor(s) not read: over 10 B" in text.stdout
    row = next(line for line in text.stdout.splitlines() if line.startswith("w\t"))
    assert row.split("\t")[-1] == "-"
    series = data["trajectory"]["series"][0]  # the logged 2x2 weight: 96 bytes, over the limit
    assert series["name"] == "w" and series["first"] is None and series["sparkline"] == ""
    assert "w\t3×2×2\t-\t-\t-\t-\t(not read: over 10 B)" in text.stdout


def test_text_output(fx: Fixture) -> None:
    result = run(fx.path, ["show", "production"])
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert f"version   {fx.v1}" in out and "tags      production" in out
    assert "(none: a root version)" in out and fx.v2[:12] in out and fx.v3[:12] in out
    assert "val_mse    0.3" in out and '"train_set": "train.csv"' in out
    assert "Parameters (2 tensors, 16 B)" in out and "Trajectory (5 steps)" in out
    assert "loss\t5\t4\t0.25\t0.25\t4\t" in out


def test_refs_with_ancestry_suffixes(fx: Fixture) -> None:
    assert _show(fx, "linreg@latest~1")["id"] == fx.v2
    assert _show(fx, f"{fx.v4[:8]}^")["id"] == fx.v2


def test_unknown_ref_is_a_one_line_error(fx: Fixture) -> None:
    assert_error(run(fx.path, ["show", "no-such-tag"]), 1, "unknown ref", "no-such-tag")
    assert_error(run(fx.path, ["show", "production~9"]), 1, "no parent")


def test_ambiguous_prefix_lists_candidates(tmp_path: Path) -> None:
    path = tmp_path / "amb.db"
    prefix, ids = ambiguous_prefix(path)
    line = assert_error(run(path, ["show", prefix]), 1, "ambiguous", prefix)
    assert ids[0][:12] in line and ids[1][:12] in line
    assert _show(Fixture(path, *[""] * 5), ids[1][:12])["id"] == ids[1]


def test_rich_output_on_a_terminal(fx: Fixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(output, "is_tty", lambda: True)
    result = run(fx.path, ["show", "best"], COLUMNS="200")
    assert result.exit_code == 0, result.stderr
    assert "┃" in result.stdout and "w ‖·‖" in result.stdout and "‖·‖: a tensor logged" in result.stdout


def test_show_of_a_version_with_a_corrupt_chunk_shows_the_rest_then_fails(tmp_path: Path) -> None:
    """One damaged tensor made `show` print nothing at all; now everything else is shown, the
    tensor's norm says "damaged", and the one-line error and exit 1 name it."""
    from reliability_helpers import flip_chunk_byte

    path = tmp_path / "c.db"
    with mvcdb.open(path) as db:
        rng = np.random.default_rng(3)
        v = db.record(
            "net",
            {"bad": rng.standard_normal(40_000), "good": np.ones(3)},
            metrics={"val": 0.5},
            message="one chunk will rot",
        )
    flip_chunk_byte(path, "SELECT max(cid) FROM chunks")
    shown = run(path, ["show", v.short_id])
    assert shown.exit_code == 1 and "one chunk will rot" in shown.stdout and "damaged" in shown.stdout
    error = assert_error(shown, 1, "(1 tensor(s) damaged)")
    assert "bad" in error
    as_json = run(path, ["show", v.short_id, "--json"])
    params = {p["name"]: p for p in json.loads(as_json.stdout)["params"]}
    assert as_json.exit_code == 1 and params["bad"].get("damaged") is True
    assert params["good"]["norm"] == pytest.approx(math.sqrt(3)) and "damaged" not in params["good"]

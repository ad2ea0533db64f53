"""`mvcdb restore REF -o FILE`: .npz and .safetensors, bit-identical, no silent overwrites."""

from __future__ import annotations

import json
import sys
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import LOSS, O1_PARAMS, V1_PARAMS, V3_PARAMS, Fixture, assert_error, build, run

import mvcdb


@pytest.fixture(scope="module")
def fx(tmp_path_factory: pytest.TempPathFactory) -> Fixture:
    return build(tmp_path_factory.mktemp("restore") / "fx.db")


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def _assert_identical(got: dict[str, np.ndarray], expected: Mapping[str, object]) -> None:
    assert set(got) == set(expected)
    for name, value in expected.items():
        want = np.asarray(value)
        assert got[name].dtype == want.dtype and got[name].shape == want.shape, name
        assert got[name].tobytes() == want.tobytes(), name


def test_npz_is_bit_identical(fx: Fixture, tmp_path: Path) -> None:
    out = tmp_path / "model.npz"
    result = run(fx.path, ["restore", "best", "-o", str(out)])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == f"Wrote 3 tensors (32 B) of {fx.v3[:12]} to {out}"
    _assert_identical(_load_npz(out), V3_PARAMS)
    result = run(fx.path, ["restore", "other@latest", "-o", str(tmp_path / "other.NPZ"), "--json"])
    data = json.loads(result.stdout)
    assert data == {
        "id": fx.o1,
        "path": str(tmp_path / "other.NPZ"),
        "format": "npz",
        "kind": "params",
        "tensors": 3,
        "bytes": sum(np.asarray(a).nbytes for a in O1_PARAMS.values()),
    }
    _assert_identical(_load_npz(tmp_path / "other.NPZ"), O1_PARAMS)


def test_safetensors(fx: Fixture, tmp_path: Path) -> None:
    from safetensors import safe_open
    from safetensors.numpy import load_file

    out = tmp_path / "model.safetensors"
    result = run(fx.path, ["restore", "production", "-o", str(out)])
    assert result.exit_code == 0, result.stderr
    _assert_identical(load_file(out), V1_PARAMS)  # 0-d tensors stay 0-d
    with safe_open(out, "np") as fh:
        assert fh.metadata() == {"mvcdb.id": fx.v1, "mvcdb.model": "linreg", "mvcdb.kind": "params"}


def test_safetensors_refuses_dtypes_it_cannot_hold(fx: Fixture, tmp_path: Path) -> None:
    out = tmp_path / "other.safetensors"
    assert_error(
        run(fx.path, ["restore", "other@latest", "-o", str(out)]), 1, "'phase'", "complex128", ".npz"
    )
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_safetensors_without_the_library_is_a_clear_error(
    fx: Fixture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "safetensors.numpy", None)  # makes the import fail
    assert_error(
        run(fx.path, ["restore", "best", "-o", str(tmp_path / "m.safetensors")]),
        1,
        "pip install",
        "safetensors",
    )


def test_refuses_to_overwrite_without_force(fx: Fixture, tmp_path: Path) -> None:
    out = tmp_path / "model.npz"
    out.write_bytes(b"precious")
    assert_error(run(fx.path, ["restore", "best", "-o", str(out)]), 1, "exists", "--force")
    assert out.read_bytes() == b"precious"
    assert run(fx.path, ["restore", "best", "-o", str(out), "--force"]).exit_code == 0
    _assert_identical(_load_npz(out), V3_PARAMS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz"]  # no temporary left behind


def test_trajectory(fx: Fixture, tmp_path: Path) -> None:
    out = tmp_path / "traj.npz"
    result = run(fx.path, ["restore", "production", "--trajectory", "-o", str(out), "--json"])
    assert json.loads(result.stdout)["kind"] == "trajectory"
    got = _load_npz(out)
    assert list(got["step"]) == [0, 1, 2, 3, 4] and got["loss"].tobytes() == LOSS.tobytes()
    sparse = _load_npz(_restore_ok(fx, tmp_path / "sparse.npz", fx.v2, "--trajectory"))
    assert np.isnan(sparse["grad"][1]) and sparse["grad"][2] == 2.0
    from safetensors.numpy import load_file

    weights = load_file(_restore_ok(fx, tmp_path / "w.safetensors", fx.v3, "--trajectory"))
    assert weights["w"].shape == (3, 2, 2) and list(weights["step"]) == [0, 1, 2]
    assert_error(
        run(fx.path, ["restore", fx.v4, "--trajectory", "-o", str(tmp_path / "t.npz")]), 1, "no trajectory"
    )


def _restore_ok(fx: Fixture, out: Path, ref: str, *extra: str) -> Path:
    result = run(fx.path, ["restore", ref, "-o", str(out), *extra])
    assert result.exit_code == 0, result.stderr
    return out


def test_bad_extension_and_unknown_ref(fx: Fixture, tmp_path: Path) -> None:
    assert_error(run(fx.path, ["restore", "best", "-o", str(tmp_path / "m.pt")]), 2, ".npz or .safetensors")
    assert_error(run(fx.path, ["restore", "nope", "-o", str(tmp_path / "m.npz")]), 1, "unknown ref")
    assert_error(run(fx.path, ["restore", "best"]), 2, "--output")
    assert list(tmp_path.iterdir()) == []


def test_tensor_names_are_keys_not_paths(tmp_path: Path) -> None:
    path = tmp_path / "odd.db"
    odd = {
        "../../escape": np.arange(3),
        "/abs/path": np.ones(2),
        "file": np.float32(1.5),
        "allow_pickle": np.int8(7),
        "x.npy": np.zeros((0, 4)),
    }
    with mvcdb.open(path) as db:
        db.record("odd", odd)
    work = tmp_path / "work"
    work.mkdir()
    out = work / "odd.npz"
    assert run(path, ["restore", "odd@latest", "-o", str(out)]).exit_code == 0
    _assert_identical(_load_npz(out), odd)
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("odd.db")) == ["work"]
    assert sorted(p.name for p in work.iterdir()) == ["odd.npz"]
    with zipfile.ZipFile(out) as zf:
        assert zf.testzip() is None

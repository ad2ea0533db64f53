"""`mvcdb record MODEL --params FILE.npz ...`: recording from files, and every bad-input path."""

from __future__ import annotations

import io
import json
import math
import zipfile
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import Fixture, assert_error, build, copy_fixture, run

import mvcdb
from mvcdb.cli.cmd_record import json_or_text


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Fixture:
    return build(tmp_path_factory.mktemp("record") / "fx.db")


@pytest.fixture
def fx(template: Fixture, tmp_path: Path) -> Fixture:
    return copy_fixture(template, tmp_path)


@pytest.fixture
def params_npz(tmp_path: Path) -> Path:
    path = tmp_path / "params.npz"
    np.savez(path, w=np.arange(6, dtype=np.float32).reshape(2, 3), b=np.array([0.5, -0.5]))
    return path


def test_records_everything_and_prints_the_id(fx: Fixture, params_npz: Path, tmp_path: Path) -> None:
    traj = tmp_path / "traj.npz"
    np.savez(traj, step=np.arange(0, 30, 10), loss=np.array([3.0, 2.0, 1.0]))
    args = ["record", "linreg", "--params", str(params_npz), "--metric", "val_mse=0.125"]
    args += ["--metric", "loss=nan", "--meta", "hyper.lr=0.1", "--meta", "hyper.layers=[1, 2]"]
    args += ["--meta", "train_set=data/train.csv", "--meta", 'note="42"', "--meta", "flag=true"]
    args += ["--parent", "production", "--parent", fx.v3[:8], "-m", "from a shell", "--tag", "cli"]
    args += ["--trajectory", str(traj)]
    result = run(fx.path, args)
    assert result.exit_code == 0, result.stderr
    new_id = result.stdout.strip()
    assert len(new_id) == 64 and result.stderr == ""
    with mvcdb.open(fx.path, readonly=True) as db:
        v = db.get(new_id)
        assert v.parents == (fx.v1, fx.v3) and v.tags == ("cli",) and v.message == "from a shell"
        assert v.metrics["val_mse"] == 0.125 and math.isnan(v.metrics["loss"])
        assert v.metadata == {
            "hyper": {"lr": 0.1, "layers": [1, 2]},
            "train_set": "data/train.csv",
            "note": "42",
            "flag": True,
        }
        restored = db.restore(new_id)
        assert (
            restored["w"].dtype == np.float32
            and restored["w"].tobytes() == np.arange(6, dtype=np.float32).tobytes()
        )
        assert list(db.trajectory(new_id)["step"]) == [0, 10, 20]


def test_json_prints_the_whole_version(fx: Fixture, params_npz: Path) -> None:
    result = run(fx.path, ["record", "linreg", "-p", str(params_npz), "--json", "--metric", "a=1"])
    data = json.loads(result.stdout)
    assert data["model"] == "linreg" and data["metrics"] == {"a": 1.0} and data["parents"] == []
    assert data["params_bytes"] == 24 + 16 and len(data["id"]) == 64


def test_creates_a_missing_database_and_says_so(params_npz: Path, tmp_path: Path) -> None:
    path = tmp_path / "fresh.db"
    result = run(path, ["record", "m", "-p", str(params_npz)])
    assert result.exit_code == 0 and "created a new mvcdb database" in result.stderr
    assert len(result.stdout.strip()) == 64


def test_safetensors_params(fx: Fixture, tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    path = tmp_path / "p.safetensors"
    save_file({"x": np.ones((2, 2), dtype=np.float16)}, path)
    new_id = run(fx.path, ["record", "st", "-p", str(path)]).stdout.strip()
    with mvcdb.open(fx.path, readonly=True) as db:
        assert db.restore(new_id)["x"].dtype == np.float16


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--metric", "val_mse"], "expected KEY=VALUE"),
        (["--metric", "=3"], "expected KEY=VALUE"),
        (["--metric", "val_mse=low"], "must be a number"),
        (["--metric", "a=1", "--metric", "a=2"], "given twice"),
        (["--meta", "novalue"], "expected KEY=VALUE"),
        (["--meta", "a..b=1"], "empty part"),
        (["--meta", "a=1", "--meta", "a.b=2"], "already a value"),
        (["--meta", "a.b=1", "--meta", "a=2"], "given twice"),
    ],
)
def test_bad_key_values_are_usage_errors(
    fx: Fixture, params_npz: Path, extra: list[str], needle: str
) -> None:
    before = len(json.loads(run(fx.path, ["log", "--json"]).stdout))
    assert_error(run(fx.path, ["record", "linreg", "-p", str(params_npz), *extra]), 2, needle)
    assert len(json.loads(run(fx.path, ["log", "--json"]).stdout)) == before


def test_unreadable_params_files(fx: Fixture, tmp_path: Path) -> None:
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, obj=np.array([{"a": 1}], dtype=object))
    single = tmp_path / "single.npy"
    np.save(single, np.zeros(3))
    text = tmp_path / "text.npz"
    text.write_text("not numpy")
    truncated = tmp_path / "truncated.npz"
    np.savez(truncated, x=np.zeros(1000))
    truncated.write_bytes(truncated.read_bytes()[:200])
    bomb = tmp_path / "bomb.npz"  # 16 bytes of data under a header that claims 8 TB
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (10**12,)})
    with zipfile.ZipFile(bomb, "w") as archive:
        archive.writestr("w.npy", header.getvalue() + bytes(16))
    cases = [
        (tmp_path / "missing.npz", "does not exist"),
        (pickled, "pickled objects"),
        (single, "single .npy array"),
        (text, "not an .npz file"),
        (truncated, "cannot read params file"),
        (bomb, "declares 8,000,000,000,000 bytes of data but holds 16"),
        (tmp_path, "is a directory"),
    ]
    for path, needle in cases:
        assert_error(run(fx.path, ["record", "linreg", "-p", str(path)]), 1, needle)
    assert_error(run(fx.path, ["record", "linreg"]), 2, "--params")


def test_bad_model_parent_and_tag(fx: Fixture, params_npz: Path) -> None:
    assert_error(run(fx.path, ["record", "bad name", "-p", str(params_npz)]), 1, "invalid model name")
    assert_error(run(fx.path, ["record", "m", "-p", str(params_npz), "--parent", "nope"]), 1, "unknown ref")
    assert_error(run(fx.path, ["record", "m", "-p", str(params_npz), "--tag", "beef"]), 1, "invalid tag name")


def test_json_or_text() -> None:
    assert (
        json_or_text("0.1") == 0.1
        and json_or_text("null") is None
        and json_or_text('{"a": [1]}') == {"a": [1]}
    )
    assert (
        json_or_text("NaN") == "NaN"
        and json_or_text("hello world") == "hello world"
        and json_or_text("") == ""
    )

"""Exporting extension dtypes (bfloat16, float8, complex32...): bit-exact in .safetensors, refused by .npz."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cli_helpers import assert_error, run

import mvcdb
from mvcdb import dtypes, exporting
from mvcdb.errors import MvcdbError

ml_dtypes = pytest.importorskip("ml_dtypes")

#: mvcdb's extension name -> the safetensors header's code for it.
CODES = {
    "bfloat16": "BF16",
    "float8_e4m3fn": "F8_E4M3",
    "float8_e4m3fnuz": "F8_E4M3FNUZ",
    "float8_e5m2": "F8_E5M2",
    "float8_e5m2fnuz": "F8_E5M2FNUZ",
    "float8_e8m0fnu": "F8_E8M0",
}


def _bits(name: str, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    width = dtypes.EXTENSION_ITEMSIZE[name]
    raw = np.random.default_rng(seed).integers(0, 256, size=(*shape, width), dtype=np.uint8)
    return raw.view(f"<u{width}").reshape(shape)


def _header(path: Path) -> dict[str, Any]:
    """The JSON header of a .safetensors file, parsed by hand (8-byte length, then JSON)."""
    data = path.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    header: dict[str, Any] = json.loads(data[8 : 8 + length])
    return header


def _tensor_bytes(path: Path, name: str) -> bytes:
    data = path.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    begin, end = _header(path)[name]["data_offsets"]
    return data[8 + length + begin : 8 + length + end]


@pytest.fixture
def ext(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """A database whose version `ext` holds one tensor of each extension dtype safetensors has."""
    bits = {name: _bits(name, (3, 5), seed=i) for i, name in enumerate(CODES)}
    bits["scalar_bf16"] = _bits("bfloat16", (), seed=9)
    params = {k: v.view(getattr(ml_dtypes, "bfloat16" if k == "scalar_bf16" else k)) for k, v in bits.items()}
    path = tmp_path / "ext.db"
    with mvcdb.open(path) as db:
        db.record("m", {**params, "plain": np.arange(4, dtype=np.float32)}, tags=["ext"])
        db.record("c", {"c32": _bits("complex32", (2,)).view(ml_dtypes.complex32)}, tags=["c32"])
    return path, {**bits, "plain": np.arange(4, dtype=np.float32).view("<u4")}


def test_safetensors_holds_extension_dtypes_bit_exactly(
    ext: tuple[Path, dict[str, np.ndarray]], tmp_path: Path
) -> None:
    path, bits = ext
    out = tmp_path / "m.safetensors"
    result = run(path, ["restore", "ext", "-o", str(out)])
    assert result.exit_code == 0, result.stderr
    header = _header(out)
    for name, code in CODES.items():
        assert header[name]["dtype"] == code and header[name]["shape"] == [3, 5], name
        assert _tensor_bytes(out, name) == bits[name].tobytes(), name
    assert (header["scalar_bf16"]["dtype"], header["scalar_bf16"]["shape"]) == ("BF16", [])  # 0-d stays 0-d
    assert _tensor_bytes(out, "scalar_bf16") == bits["scalar_bf16"].tobytes()
    assert header["plain"]["dtype"] == "F32"


def test_safetensors_reads_back_in_torch_with_the_recorded_dtype(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    st_torch = pytest.importorskip("safetensors.torch")
    gen = torch.Generator().manual_seed(0)
    recorded = {
        "bf": torch.randn(4, 3, generator=gen).to(torch.bfloat16),
        "f8": torch.randn(7, generator=gen).to(torch.float8_e4m3fn),
        "f8b": torch.randn(7, generator=gen).to(torch.float8_e5m2),
        "w": torch.randn(2, generator=gen),
    }
    with mvcdb.open(tmp_path / "t.db") as db:
        v = db.record("net", params=recorded)
        written = exporting.export_version(db, v, tmp_path / "t.safetensors")
    assert written.format == "safetensors" and written.tensors == 4
    back = st_torch.load_file(tmp_path / "t.safetensors")
    for name, tensor in recorded.items():
        assert back[name].dtype == tensor.dtype and back[name].shape == tensor.shape, name
        assert back[name].view(torch.uint8).tolist() == tensor.view(torch.uint8).tolist(), name


def test_npz_refuses_extension_dtypes_and_leaves_nothing(
    ext: tuple[Path, dict[str, np.ndarray]], tmp_path: Path
) -> None:
    path, _ = ext
    work = tmp_path / "out"
    work.mkdir()
    out = work / "m.npz"
    line = assert_error(
        run(path, ["restore", "ext", "-o", str(out)]), 1, "which .npz cannot hold", ".safetensors"
    )
    assert "'bfloat16'" in line or "'float8_" in line  # names the tensor
    assert_error(run(path, ["restore", "c32", "-o", str(out)]), 1, "'c32'", "complex32", "db.restore")
    assert_error(run(path, ["restore", "c32", "-o", str(work / "c.safetensors")]), 1, "complex32")
    assert list(work.iterdir()) == []


def test_write_params_refuses_midway_and_leaves_nothing(tmp_path: Path) -> None:
    """A streamed .npz whose second tensor is bfloat16: refused, the first one's bytes removed."""

    def arrays() -> Any:
        yield "ok", np.ones(3)
        yield "bf", np.zeros(3, dtype=ml_dtypes.bfloat16)

    with pytest.raises(MvcdbError, match=r"tensor 'bf' has dtype bfloat16, which \.npz cannot hold"):
        exporting.write_params(arrays(), tmp_path / "x.npz")
    assert list(tmp_path.iterdir()) == []


def test_trajectory_export_shares_the_dtype_checks(tmp_path: Path) -> None:
    path = tmp_path / "traj.db"
    with mvcdb.open(path) as db, db.run("m") as r:
        for step in range(3):
            r.log(step, w=np.full(2, step, dtype=ml_dtypes.bfloat16))
        r.commit(params={"x": np.zeros(1)}, tags=["t"])
    assert_error(
        run(path, ["restore", "t", "--trajectory", "-o", str(tmp_path / "t.npz")]), 1, "'w'", "bfloat16"
    )
    out = tmp_path / "t.safetensors"
    assert run(path, ["restore", "t", "--trajectory", "-o", str(out)]).exit_code == 0
    assert _header(out)["w"]["dtype"] == "BF16" and _header(out)["w"]["shape"] == [3, 2]


def test_without_ml_dtypes_safetensors_says_what_to_install(
    ext: tuple[Path, dict[str, np.ndarray]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dtypes, "ml_dtype", lambda _name: None)  # restores give tagged bits
    path, _ = ext
    out = tmp_path / "m.safetensors"
    assert_error(run(path, ["restore", "ext", "-o", str(out)]), 1, "needs ml_dtypes", "pip install")
    assert_error(run(path, ["restore", "ext", "-o", str(tmp_path / "m.npz")]), 1, "which .npz cannot hold")
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith("ext.db")] == []

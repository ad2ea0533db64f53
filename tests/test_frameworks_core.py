"""Extension dtypes (bfloat16, float8...) in the core store, and the framework dispatch, without
any framework: `import mvcdb` must never import torch, keras or sklearn."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import mvcdb
from mvcdb import dtypes
from mvcdb.errors import DecodeError
from mvcdb.frameworks import framework_of, load_into, model_metadata, params_from_object
from mvcdb.manifest import ManifestTensor, decode, encode

FRAMEWORK_MODULES = ("torch", "keras", "sklearn", "tensorflow", "jax")


def test_core_use_imports_no_framework(tmp_path: Path) -> None:
    """Recording and restoring plain arrays (and the CLI's help) never imports a framework."""
    code = f"""
import sys, numpy as np, mvcdb
with mvcdb.open({str(tmp_path / "m.db")!r}) as db:
    v = db.record("plain", params={{"w": np.arange(4.0)}}, metrics={{"loss": 0.5}})
    db.restore(v, into=None)
    db.tensors(v)
import mvcdb.frameworks
bad = [m for m in {FRAMEWORK_MODULES!r} if m in sys.modules]
assert not bad, bad
"""
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_model_name_of_non_framework_objects_is_refused_clearly(db: mvcdb.Database) -> None:
    with pytest.raises(mvcdb.MvcdbError, match=r"model= takes a PyTorch .*got list .*params="):
        db.record("x", model=[1, 2, 3])
    with pytest.raises(mvcdb.MvcdbError, match="got dict"):
        db.record("x", model={"w": np.zeros(2)})
    with pytest.raises(mvcdb.MvcdbError, match="either params= or model="):
        db.record("x", params={"w": np.zeros(2)}, model=object())
    v = db.record("x", params={"w": np.zeros(2)})
    with pytest.raises(mvcdb.MvcdbError, match="into= takes .*got int"):
        db.restore(v, into=3)
    assert db.versions() == [v]


def test_framework_of_reads_the_class_hierarchy_without_importing() -> None:
    fake_torch = type("Module", (), {"__module__": "torch.nn.modules.module"})
    user_net = type("Net", (fake_torch,), {"__module__": "__main__"})
    fake_keras = type("Sequential", (fake_torch,), {"__module__": "keras.src.models.sequential"})
    assert framework_of(user_net()) == "torch"
    assert framework_of(fake_keras()) == "keras"  # Keras first: on torch it is also an nn.Module
    assert framework_of(np.zeros(3)) is None
    assert framework_of({}) is None
    with pytest.raises(mvcdb.MvcdbError):
        params_from_object(np.zeros(3))
    with pytest.raises(mvcdb.MvcdbError):
        load_into({"w": np.zeros(3)}, {"w": np.zeros(3)})
    with pytest.raises(mvcdb.MvcdbError, match="model= takes"):
        model_metadata(np.zeros(3))


def test_run_commit_takes_model_or_params_not_both(db: mvcdb.Database) -> None:
    with db.run("x") as run:
        run.log(0, loss=1.0)
        with pytest.raises(mvcdb.MvcdbError, match="either params= or model="):
            run.commit(params={"w": np.zeros(1)}, model=object())
        with pytest.raises(mvcdb.MvcdbError, match="model= takes"):
            run.commit(model="not a model")
        v = run.commit(params={"w": np.zeros(1)})
    assert v.model == "x"


# -- extension dtypes: stored as raw bits under their name -----------------------------------


def random_bits(name: str, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Every bit pattern is fair game (NaN payloads, negative zero, subnormals)."""
    rng = np.random.default_rng(seed)
    width = dtypes.EXTENSION_ITEMSIZE[name]
    return rng.integers(0, 256, size=(*shape, width), dtype=np.uint8).view(f"<u{width}").reshape(shape)


@pytest.mark.parametrize("name", sorted(dtypes.EXTENSION_ITEMSIZE))
def test_tagged_bits_round_trip_without_ml_dtypes(
    db: mvcdb.Database, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """Without ml_dtypes, extension arrays are unsigned ints tagged with the dtype name."""
    monkeypatch.setattr(dtypes, "ml_dtype", lambda _name: None)
    bits = random_bits(name, (3, 5))
    tagged = dtypes.from_bits(bits, name)
    assert dtypes.extension_name(tagged.dtype) == name
    v = db.record("ext", params={"w": tagged, "scalar": dtypes.from_bits(bits[0, :1].reshape(()), name)})
    info = {t.name: t for t in db.tensors(v)}
    assert info["w"].dtype == name
    assert info["w"].nbytes == bits.nbytes
    assert info["scalar"].shape == ()
    out = db.restore(v)["w"]
    assert dtypes.extension_name(out.dtype) == name
    assert out.shape == (3, 5)
    np.testing.assert_array_equal(dtypes.to_bits(out), bits)
    again = db.record("ext", params={"w": out}, parent=v)  # a restored array records as itself
    assert {t.name: t.digest for t in db.tensors(again)}["w"] == info["w"].digest


@pytest.mark.parametrize("name", sorted(dtypes.EXTENSION_ITEMSIZE))
def test_ml_dtypes_arrays_round_trip_bit_exact(db: mvcdb.Database, name: str) -> None:
    ml_dtypes = pytest.importorskip("ml_dtypes")
    if not hasattr(ml_dtypes, name):
        pytest.skip(f"this ml_dtypes has no {name}")
    bits = random_bits(name, (4, 7), seed=1)
    arr = bits.view(getattr(ml_dtypes, name))
    v = db.record("ml", params={"w": arr, "s": arr[0, 0]})
    assert {t.name: t.dtype for t in db.tensors(v)} == {"w": name, "s": name}
    out = db.restore(v)
    assert out["w"].dtype == arr.dtype  # the real ml_dtypes dtype when ml_dtypes is installed
    assert out["s"].shape == ()
    np.testing.assert_array_equal(out["w"].view(bits.dtype), bits)
    np.testing.assert_array_equal(out["s"].view(bits.dtype), bits[0, 0])


def test_extension_trajectory_series_round_trip(db: mvcdb.Database) -> None:
    ml_dtypes = pytest.importorskip("ml_dtypes")
    with db.run("traj") as run:
        for step in range(3):
            run.log(step, w=np.full(2, step, dtype=ml_dtypes.bfloat16))
        v = run.commit()
    _, values = db.series(v, "w")
    assert values.dtype == np.dtype(ml_dtypes.bfloat16)
    np.testing.assert_array_equal(values.astype(np.float32), [[0, 0], [1, 1], [2, 2]])


def test_plain_numpy_dtypes_keep_their_names() -> None:
    for dt in ("<f4", ">f8", "|b1", "|i1", "<u2", "<c16", "<f2"):
        assert dtypes.name_of(np.dtype(dt)) == np.dtype(dt).str
        assert dtypes.extension_name(np.dtype(dt)) is None


def _manifest(dtype: str, shape: list[int], nbytes: int) -> bytes:
    return encode(
        model="m",
        parents=[],
        message="",
        author="a",
        created_at="2026-01-01T00:00:00.000000Z",
        metadata="{}",
        metrics={},
        tensors=[ManifestTensor("param", "w", dtype, tuple(shape), nbytes, ())],
    )


def test_manifest_checks_extension_dtype_sizes() -> None:
    assert decode(_manifest("bfloat16", [3, 2], 12)).tensors[0].dtype == "bfloat16"
    assert decode(_manifest("float8_e4m3fn", [5], 5)).tensors[0].nbytes == 5
    assert decode(_manifest("complex32", [2], 8)).tensors[0].shape == (2,)
    with pytest.raises(DecodeError, match="size does not match"):
        decode(_manifest("bfloat16", [3], 3))
    with pytest.raises(DecodeError, match="unknown dtype"):
        decode(_manifest("bfloat15", [3], 6))
    with pytest.raises(DecodeError, match="not numeric"):
        decode(_manifest("|V2", [3], 6))

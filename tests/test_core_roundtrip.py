"""Parameters go in and come out bit-identical: every numeric dtype, shape and byte order."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import mvcdb

NUMERIC_DTYPES = [
    np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64,
    np.float16, np.float32, np.float64, np.longdouble, np.complex64, np.complex128, np.clongdouble,
]  # fmt: skip


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal dtype (byte order included), shape and bytes — NaN payloads and -0.0 count."""
    return (
        a.dtype == b.dtype
        and a.dtype.str == b.dtype.str
        and a.shape == b.shape
        and (np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes())
    )


dtypes = st.sampled_from(NUMERIC_DTYPES).flatmap(
    lambda t: st.sampled_from(["<", ">"]).map(lambda order: np.dtype(t).newbyteorder(order))
)


@st.composite
def arrays(draw: st.DrawFn) -> np.ndarray:
    dtype = draw(dtypes)
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=7))
    raw = draw(
        st.binary(
            min_size=dtype.itemsize * int(np.prod(shape)), max_size=dtype.itemsize * int(np.prod(shape))
        )
    )
    arr = np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
    if draw(st.booleans()) and arr.ndim >= 1 and arr.shape[0] > 1:
        arr = arr[::2]  # non-contiguous view
    if draw(st.booleans()) and arr.ndim >= 2:
        arr = arr.T
    return arr


@pytest.fixture(scope="module")
def shared_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[mvcdb.Database]:
    """One small-chunked file for every hypothesis example (opening a file per example is slow)."""
    with mvcdb.open(tmp_path_factory.mktemp("rt") / "rt.db", chunk_size=4096) as db:
        yield db


@given(
    params=st.dictionaries(
        st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True), arrays(), min_size=1, max_size=4
    )
)
def test_any_numeric_array_round_trips_bit_identical(
    shared_db: mvcdb.Database, params: dict[str, np.ndarray]
) -> None:
    v = shared_db.record("m", params)
    got = shared_db.restore(v.id)
    assert sorted(got) == sorted(params)
    for name, arr in params.items():
        assert same_bits(got[name], arr), name
        assert got[name].flags.writeable


def test_special_float_values_keep_their_bits(db: mvcdb.Database) -> None:
    payload_nan = np.array([0x7FC00001, 0xFFC12345, 0x7F800001], dtype=np.uint32).view(np.float32)
    params = {
        "nan_payloads": payload_nan,
        "neg_zero": np.array([-0.0, 0.0, -np.inf, np.inf]),
        "half": np.array([np.nan, -0.0], dtype=np.float16),
        "scalar_negzero": np.float64(-0.0),
    }
    got = db.restore(db.record("m", params).id)
    for name, arr in params.items():
        assert same_bits(got[name], np.asarray(arr)), name


def test_python_numbers_scalars_and_empty_arrays(db: mvcdb.Database) -> None:
    params = {
        "i": 3,
        "f": 2.5,
        "b": True,
        "c": 1 + 2j,
        "np0d": np.array(7, dtype=np.int16),
        "empty": np.zeros((0, 3), dtype=np.float32),
        "e1": np.array([], dtype=np.uint8),
    }
    got = db.restore(db.record("m", params).id)
    assert got["i"].dtype == np.int64 and got["i"] == 3 and got["i"].shape == ()
    assert got["f"].dtype == np.float64 and got["f"] == 2.5
    assert got["b"].dtype == np.bool_ and bool(got["b"]) is True
    assert got["c"].dtype == np.complex128 and got["c"] == 1 + 2j
    assert same_bits(got["np0d"], params["np0d"])  # type: ignore[arg-type]
    assert got["empty"].shape == (0, 3) and got["empty"].dtype == np.float32
    assert got["e1"].shape == (0,)


def test_nested_dicts_flatten_to_dotted_names(db: mvcdb.Database) -> None:
    v = db.record("m", {"encoder": {"layer1": {"w": np.ones(2), "b": 0.0}}, "head": np.zeros(1)})
    assert sorted(db.restore(v.id)) == ["encoder.layer1.b", "encoder.layer1.w", "head"]
    assert [t.name for t in db.tensors(v.id)] == ["encoder.layer1.b", "encoder.layer1.w", "head"]


def test_any_mapping_flattens_and_common_leaves_do_not(db: mvcdb.Database) -> None:
    from collections import OrderedDict
    from types import MappingProxyType

    params = {
        "proxy": MappingProxyType({"w": np.ones(2)}),
        "ordered": OrderedDict(b=np.float32(1), a=np.int64(2)),
        "leaves": {"f": 1.5, "i": 3, "f64": np.float64(2), "f16": np.float16(1), "i32": np.int32(4)},
    }
    v = db.record("m", MappingProxyType(params))
    assert sorted(db.restore(v.id)) == [
        "leaves.f", "leaves.f16", "leaves.f64", "leaves.i", "leaves.i32", "ordered.a", "ordered.b", "proxy.w",
    ]  # fmt: skip


def test_a_dtype_is_refused_after_storable_ones_were_accepted(db: mvcdb.Database) -> None:
    db.record("m", {"w": np.ones(2, dtype="<f4"), "b": np.ones(2, dtype=">f4")})
    for bad in (np.zeros(2, dtype=[("a", "<f4")]), np.zeros(2, dtype="datetime64[D]"), np.array(["x"])):
        with pytest.raises(mvcdb.MvcdbError, match="only numeric values"):
            db.record("m", {"w": bad})
    assert len(db.versions()) == 1


@pytest.mark.parametrize(
    "bad",
    [
        {"w": np.array(["a", "b"])},
        {"w": np.array([object()], dtype=object)},
        {"w": np.array([b"x"])},
        {"w": np.array(["2020-01-01"], dtype="datetime64[D]")},
        {"w": np.zeros(2, dtype=[("a", "f4")])},
        {"w": "text"},
        {"w": [1, 2, 3]},
        {"w": None},
        {1: np.ones(1)},
        {"": np.ones(1)},
        {"a": {"b": 1}, "a.b": 2},
        {"w": 2**70},
    ],
)
def test_non_numeric_params_are_refused_and_nothing_is_written(db: mvcdb.Database, bad: dict) -> None:
    with pytest.raises(mvcdb.MvcdbError):
        db.record("m", bad)
    assert db.versions() == []


def test_large_array_spans_many_chunks_and_restores(tmp_path) -> None:  # type: ignore[no-untyped-def]
    arr = np.random.default_rng(1).standard_normal((300, 1000)).astype(np.float32)  # 1.2 MB
    with mvcdb.open(tmp_path / "big.db", chunk_size=64 * 1024) as db:
        v = db.record("m", {"w": arr})
        n_chunks = db.conn.execute("SELECT count(*) FROM tensor_chunks").fetchone()[0]
        assert n_chunks == -(-arr.nbytes // (64 * 1024))
        assert same_bits(db.restore(v.id)["w"], arr)
        assert list(db.restore(v.id, names=["w"])) == ["w"]
        with pytest.raises(mvcdb.MvcdbError, match="nope"):
            db.restore(v.id, names=["nope"])


def test_restore_reads_back_what_a_reopened_file_holds(db_path) -> None:  # type: ignore[no-untyped-def]
    w = np.arange(10_000, dtype=">i4").reshape(100, 100)[:, ::3]
    with mvcdb.open(db_path) as db:
        vid = db.record("m", {"w": w}).id
    with mvcdb.open(db_path, readonly=True) as db:
        assert same_bits(db.restore(vid)["w"], w)

"""Row and parent deltas made block by block, and run.log steps packed by struct.

encode_rows / encode_delta compute their zigzag differences block by block (SPLIT_BYTES at a
time) into a reused block buffer while splitting planes; the payload must be byte for byte the
planes of the whole-chunk differences, decode back bit for bit, and survive payload buffers lent
and handed back across many encodes. _int64s must take and refuse exactly what array('q') does.
"""

from __future__ import annotations

import hashlib
import math
import struct
from array import array
from decimal import Decimal
from fractions import Fraction
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mvcdb
import mvcdb.run
from mvcdb import chunkcodec as cc
from mvcdb import trajectory
from mvcdb.trajectory import LogBuffer, _int64s, _step_problem

LANES = [1, 2, 4, 8]


# -- references -------------------------------------------------------------------------------------


def _zigzag(d: np.ndarray) -> np.ndarray:
    """zigzag of unsigned lanes read as signed two's complement, in plain unsigned arithmetic."""
    bits = d.dtype.itemsize * 8
    one = d.dtype.type(1)
    return np.asarray((d << one) ^ (d.dtype.type(0) - (d >> d.dtype.type(bits - 1))), dtype=d.dtype)


def _row_diffs(lanes: np.ndarray, width: int) -> np.ndarray:
    """zigzag(row i - row i-1) on the flat lanes, the first row as it is (wrapping)."""
    d = lanes.copy()
    d[width:] = lanes[width:] - lanes[:-width]
    return _zigzag(d)


def _lane_data(itemsize: int, n: int, width: int, pattern: str, seed: int) -> np.ndarray:
    """n unsigned lanes laid out as rows of width: random bits, slowly changing rows, or values
    at the wrap-around edges (0, 1, the sign bit, all ones) so differences overflow."""
    dtype = cc._UINT[itemsize]
    rng = np.random.default_rng(seed)
    info = np.iinfo(dtype)
    if pattern == "random":
        return rng.integers(0, info.max, n, dtype=dtype, endpoint=True)
    if pattern == "edges":
        top = info.max
        edges = np.array([0, 1, top, top - 1, top // 2, top // 2 + 1], dtype=dtype)
        return edges[rng.integers(0, len(edges), n)]
    rows = -(-n // width)
    steps = rng.integers(-3, 4, (rows, width)).astype(np.int64)
    return np.cumsum(steps, axis=0).astype(dtype).reshape(-1)[:n]


def _check_block_encoding(
    enc: cc.Encoded | None,
    raw: np.ndarray,
    zz: np.ndarray,
    itemsize: int,
    check: int | None,
    *,
    base: np.ndarray | None = None,
) -> None:
    """enc is the planes of zz (its differences), byte for byte, and decodes back to raw."""
    assert enc is not None
    assert enc.itemsize == itemsize
    want = bytes(cc._pack_planes(zz, itemsize, check)[0])
    assert bytes(enc.payload) == want
    size = len(raw)
    # the planes hold exactly the differences (read back as a plain planes payload)
    diffs = np.full(size, 0xEE, dtype=np.uint8)
    cc.decode_into(cc._checked(cc.PLANES, check), itemsize, enc.payload, size, diffs)
    assert diffs.tobytes() == zz.tobytes()
    out = np.full(size, 0xEE, dtype=np.uint8)
    key = hashlib.sha256(raw.tobytes()).digest()
    verified = cc.decode_into(
        enc.codec,
        enc.itemsize,
        enc.payload,
        size,
        out,
        base=base,
        stride=enc.stride,
        key=key if check is not None else None,
    )
    assert verified == (check is not None)
    assert out.tobytes() == raw.tobytes()


def _misaligned(data: np.ndarray, offset: int) -> np.ndarray:
    """A copy of data that starts offset bytes past an 8-byte boundary (a piece cut anywhere)."""
    room = np.zeros(len(data) + 16, dtype=np.uint8)
    start = (-cc._address(room)) % 8 + offset
    out = room[start : start + len(data)]
    out[:] = data
    return out


def _shapes(itemsize: int, width: int, rows: int) -> int:
    """Rows enough for a chunk of at least MIN_ENCODE bytes (and at least 2)."""
    return max(rows, 2, -(-cc.MIN_ENCODE // (width * itemsize)))


# -- encode_rows / encode_delta: property and exhaustive --------------------------------------------


@settings(max_examples=100)
@given(
    itemsize=st.sampled_from(LANES),
    width=st.one_of(st.integers(1, 9), st.integers(10, 300)),
    rows=st.integers(2, 12),
    split=st.integers(1, 200),
    pattern=st.sampled_from(["random", "smooth", "edges"]),
    seed=st.integers(0, 2**32 - 1),
    checked=st.booleans(),
    misalign=st.integers(0, 7),
)
def test_block_deltas_are_the_whole_chunk_deltas(
    itemsize: int, width: int, rows: int, split: int, pattern: str, seed: int, checked: bool, misalign: int
) -> None:
    """Any lane width, row width (1 element, not dividing the block, wider than a block), block
    size and input alignment: rows and parent deltas equal the planes of the whole-array
    differences."""
    rows = _shapes(itemsize, width, rows)
    n = rows * width
    lanes = _lane_data(itemsize, n, width, pattern, seed)
    base = _lane_data(itemsize, n, width, "edges" if seed % 3 == 0 else "random", seed + 1)
    raw = _misaligned(lanes.view(np.uint8), misalign)
    check = cc.checksum(raw, hashlib.sha256(raw.tobytes()).digest()) if checked else None
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cc, "SPLIT_BYTES", split)
        enc_rows = cc.encode_rows(memoryview(raw.data), itemsize, width * itemsize, check)
        enc_delta = cc.encode_delta(
            memoryview(raw.data), _misaligned(base.view(np.uint8), 7 - misalign), itemsize, check
        )
        assert enc_rows is not None and enc_rows.stride == width * itemsize
        assert enc_rows.codec == cc._checked(cc.ROWDELTA, check)
        assert enc_delta is not None and enc_delta.codec == cc._checked(cc.DELTA, check)
        _check_block_encoding(enc_rows, raw, _row_diffs(lanes, width), itemsize, check)
        _check_block_encoding(
            enc_delta, raw, _zigzag(lanes - base), itemsize, check, base=base.view(np.uint8)
        )


def test_every_block_edge_against_every_row_edge() -> None:
    """Exhaustive over small shapes: every block size (in elements) from 1 to past the chunk,
    against row widths of 1 to 9 elements and 2 to 4 rows, for every lane width."""
    saved = cc.SPLIT_BYTES
    try:
        for itemsize in LANES:
            for width in range(1, 10):
                for rows in (2, 3):
                    rows = _shapes(itemsize, width, rows)
                    n = rows * width
                    lanes = _lane_data(itemsize, n, width, "random", itemsize * 100 + width)
                    base = _lane_data(itemsize, n, width, "edges", width)
                    raw = lanes.view(np.uint8)
                    want_rows, want_delta = _row_diffs(lanes, width), _zigzag(lanes - base)
                    for step in (*range(1, width + 3), n - 1, n, n + 1):
                        cc.SPLIT_BYTES = max(1, step) * itemsize
                        enc = cc.encode_rows(memoryview(raw.data), itemsize, width * itemsize)
                        assert enc is not None
                        assert bytes(enc.payload) == bytes(cc._pack_planes(want_rows, itemsize, None)[0]), (
                            itemsize,
                            width,
                            rows,
                            step,
                        )
                        enc = cc.encode_delta(memoryview(raw.data), base.view(np.uint8), itemsize)
                        assert enc is not None
                        assert bytes(enc.payload) == bytes(cc._pack_planes(want_delta, itemsize, None)[0])
    finally:
        cc.SPLIT_BYTES = saved


@pytest.mark.parametrize("itemsize", LANES)
def test_chunks_of_exactly_two_rows_and_odd_split_sizes(
    itemsize: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two rows (the smallest row delta); a SPLIT_BYTES that is no multiple of the lane width."""
    for split in (1, itemsize + 1, 3 * itemsize - 1, 97, 1 << 20):
        monkeypatch.setattr(cc, "SPLIT_BYTES", split)
        for width in (64 // itemsize // 2, 37, 200):
            lanes = _lane_data(itemsize, 2 * width, width, "smooth", width)
            raw = lanes.view(np.uint8)
            check = cc.checksum(raw, hashlib.sha256(raw.tobytes()).digest())
            enc = cc.encode_rows(memoryview(raw.data), itemsize, width * itemsize, check)
            _check_block_encoding(enc, raw, _row_diffs(lanes, width), itemsize, check)


@pytest.mark.parametrize("itemsize", LANES)
def test_row_and_delta_refusals(itemsize: int) -> None:
    """None, never a wrong payload: sizes off the stride or the lane, fewer than two rows, a
    stride that is no whole number of lanes, a chunk under MIN_ENCODE, a base of another size."""
    raw = (np.arange(2000) % 251).astype(np.uint8)
    view = memoryview(raw.data)
    stride = 16 * itemsize
    assert cc.encode_rows(view[: 6 * stride + itemsize], itemsize, stride) is None  # not whole rows
    assert cc.encode_rows(view[: 6 * stride], itemsize, stride) is not None
    assert cc.encode_rows(view[:stride], itemsize, stride) is None  # one row
    assert cc.encode_rows(view[: 2 * stride - itemsize], itemsize, stride) is None
    assert cc.encode_rows(view[:600], itemsize, 0) is None
    assert cc.encode_rows(view[:600], itemsize, -stride) is None
    if itemsize > 1:
        assert cc.encode_rows(view[: 60 * (itemsize + 1)], itemsize, itemsize + 1) is None
        assert cc.encode_rows(view[:599], itemsize, 1) is None  # size off the lane
        assert cc.encode_delta(view[:599], raw[:599], itemsize) is None
    assert cc.encode_rows(view[: cc.MIN_ENCODE - itemsize], itemsize, itemsize) is None
    assert (
        cc.encode_delta(view[: cc.MIN_ENCODE - itemsize], raw[: cc.MIN_ENCODE - itemsize], itemsize) is None
    )
    assert cc.encode_delta(view[:400], raw[: 400 + itemsize], itemsize) is None
    for bad in (3, 5, 16):
        assert cc.encode_rows(view[:480], bad, 48) is None
        assert cc.encode_delta(view[:480], raw[:480], bad) is None


# -- payload buffers lent and handed back ------------------------------------------------------------


@settings(max_examples=40)
@given(
    ops=st.lists(
        st.tuples(
            st.sampled_from(["rows", "delta", "plain", "give"]),
            st.sampled_from(LANES),
            st.integers(64, 3000),
            st.integers(0, 2**16),
        ),
        min_size=1,
        max_size=30,
    ),
    split=st.sampled_from([8, 24, 200, 1 << 20]),
)
def test_payloads_kept_across_later_encodes_stay_intact_until_given(
    ops: list[tuple[str, int, int, int]], split: int
) -> None:
    """Payloads from one Buffers, some kept alive, some handed back and reused: a kept payload
    never changes under later encodes, and each one still decodes to its input."""
    bufs = cc.Buffers(keep=4)
    poison = bufs.take(4096)
    poison[:] = 0xAB
    bufs.give(poison)
    kept: list[tuple[cc.Encoded, bytes, np.ndarray, np.ndarray | None]] = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cc, "SPLIT_BYTES", split)
        for kind, itemsize, size, seed in ops:
            if kind == "give":
                if kept:
                    enc = kept.pop(seed % len(kept))[0]
                    bufs.give(enc.payload)
                continue
            width = 1 + seed % 50
            rows = _shapes(itemsize, width, size // (width * itemsize))
            lanes = _lane_data(itemsize, rows * width, width, "smooth", seed)
            raw = lanes.view(np.uint8)
            base = None
            if kind == "rows":
                enc_or_none = cc.encode_rows(memoryview(raw.data), itemsize, width * itemsize, buffers=bufs)
            elif kind == "delta":
                base = _lane_data(itemsize, rows * width, width, "random", seed + 1).view(np.uint8)
                enc_or_none = cc.encode_delta(memoryview(raw.data), base, itemsize, seed, buffers=bufs)
            else:
                enc_or_none = cc.encode(memoryview(raw.data), itemsize, buffers=bufs)
            assert enc_or_none is not None
            kept.append((enc_or_none, bytes(enc_or_none.payload), raw, base))
            for enc, snapshot, _, _ in kept:
                assert bytes(enc.payload) == snapshot
    for enc, _, raw, base in kept:
        out = np.empty(len(raw), dtype=np.uint8)
        cc.decode_into(enc.codec, enc.itemsize, enc.payload, len(raw), out, base=base, stride=enc.stride)
        assert out.tobytes() == raw.tobytes()
        bufs.give(enc.payload)
    assert not bufs._lent  # every lent buffer came back


def test_many_encodes_with_one_buffers_are_byte_identical_to_fresh_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Reused buffers hold earlier payloads' bytes: every row and parent delta, into a reused
    buffer, is the fresh encoding byte for byte (sizes repeat, so buffers are reused)."""
    monkeypatch.setattr(cc, "SPLIT_BYTES", 40)
    bufs = cc.Buffers()
    for i in range(60):
        itemsize = LANES[i % 4]
        width = 1 + (i * 7) % 23
        n = _shapes(itemsize, width, 30) * width
        lanes = _lane_data(itemsize, n, width, ("random", "smooth", "edges")[i % 3], i)
        base = _lane_data(itemsize, n, width, "smooth", i + 1).view(np.uint8)
        view = memoryview(lanes.view(np.uint8).data)
        for make in (
            partial(cc.encode_rows, view, itemsize, width * itemsize, i),
            partial(cc.encode_delta, view, base, itemsize, None),
        ):
            fresh, reused = make(buffers=None), make(buffers=bufs)
            assert fresh is not None and reused is not None
            assert bytes(reused.payload) == bytes(fresh.payload)
            bufs.give(reused.payload)
    assert bufs._free and not bufs._lent


# -- through the public API on a real file ----------------------------------------------------------


def _awkward_floats(dtype: str, n: int, seed: int) -> np.ndarray:
    """Weights with NaNs carrying payloads (both signs), -0.0, infinities and subnormals."""
    dt = np.dtype(dtype)
    vals = (np.random.default_rng(seed).standard_normal(n) * 0.02).astype(dt)
    bits = vals.view(f"<u{dt.itemsize}")
    nan = int(np.array([np.nan], dtype=dt).view(f"<u{dt.itemsize}")[0])
    sign = 1 << (dt.itemsize * 8 - 1)
    bits[::997] = nan | 3
    bits[5::1009] = nan | sign | 0x15
    vals[7::1013] = -0.0
    vals[9::1019] = np.inf
    vals[11::1021] = np.finfo(dt).tiny / 8
    return vals


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a.view(np.uint8), b.view(np.uint8))


def _codecs(db: mvcdb.Database) -> set[int]:
    return {int(r[0]) for r in db.conn.execute("SELECT DISTINCT codec FROM chunks")}


@pytest.mark.parametrize("big", [False, True], ids=["inline-insert", "pipelined-insert"])
def test_fine_tuned_child_restores_bit_identically_through_parent_deltas(
    tmp_path: Path, big: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cc, "SPLIT_BYTES", 1000)  # many blocks per chunk
    n = 40_000 if big else 9_000
    parent = {
        "w32": _awkward_floats("<f4", n, 1).reshape(-1, 40),
        "w64": _awkward_floats("<f8", n // 4, 2),
        "i16": np.random.default_rng(3).integers(-(2**15), 2**15, n // 2, dtype=np.int16),
    }
    child: dict[str, np.ndarray] = {}
    rng = np.random.default_rng(4)
    for name, arr in parent.items():
        if arr.dtype.kind == "f":
            bits = arr.copy().view(f"<u{arr.dtype.itemsize}")
            bits += rng.integers(0, 40, bits.shape).astype(bits.dtype)  # low mantissa bits move
            bits[::1031] = arr.view(bits.dtype)[::1031]  # NaN payloads, -0.0... kept as they were
            child[name] = bits.view(arr.dtype)
        else:
            child[name] = (arr + rng.integers(-2, 3, arr.shape).astype(arr.dtype)).astype(arr.dtype)
    grandchild = {k: v.copy() for k, v in child.items()}
    grandchild["w32"].view("<u4")[::3] ^= 1
    with mvcdb.open(tmp_path / "x.db", chunk_size=16384) as db:
        v1 = db.record("m", parent)
        v2 = db.record("m", child, parent=v1)
        v3 = db.record("m", grandchild, parent=v2)
        assert cc.CHECKED + cc.DELTA in _codecs(db)
        assert db.conn.execute("SELECT max(depth) FROM chunks").fetchone()[0] >= 2
        for v, want in ((v1, parent), (v2, child), (v3, grandchild)):
            got = db.restore(v)
            assert sorted(got) == sorted(want)
            for name in want:
                assert _same_bits(got[name], want[name]), (v, name)
    with mvcdb.open(tmp_path / "x.db") as db:  # read back from the file alone
        for name, arr in db.restore(v3).items():
            assert _same_bits(arr, grandchild[name])


def test_run_of_per_step_arrays_restores_bit_identically_through_row_deltas(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cc, "SPLIT_BYTES", 600)  # rows wider and narrower than a block
    rng = np.random.default_rng(5)
    shapes: dict[str, tuple[tuple[int, ...], str]] = {
        "vec": ((64,), "<f4"),
        "mat": ((3, 5), "<f8"),
        "one": ((1,), "<f4"),
        "ints": ((7,), "<i2"),
        "odd": ((13,), "<u8"),
        "wide": ((900,), "<f4"),  # a few rows per 16 KiB chunk
        "huge": ((4200,), "<f4"),  # a row wider than a chunk: no row deltas, still exact
    }
    state = {
        k: _awkward_floats(dt, math.prod(s), 9).reshape(s)
        if dt[1] == "f"
        else rng.integers(0, 1000, s).astype(dt)
        for k, (s, dt) in shapes.items()
    }
    logged: dict[str, list[np.ndarray]] = {k: [] for k in shapes}
    losses: list[float] = []
    with mvcdb.open(tmp_path / "x.db", chunk_size=16384) as db:
        with db.run("m") as run:
            for step in range(120):
                for k, arr in state.items():
                    bits = arr.view(f"<u{arr.dtype.itemsize}")
                    bits[step % bits.shape[0]] += np.asarray(step % 5, dtype=bits.dtype)
                    logged[k].append(arr.copy())
                losses.append(1.0 / (step + 1))
                run.log(step * 3, loss=losses[-1], **state)
            v = run.commit()
        assert cc.CHECKED + cc.ROWDELTA in _codecs(db)
        got = db.trajectory(v)
        assert _same_bits(got["step"], np.arange(0, 360, 3, dtype=np.int64))
        assert _same_bits(got["loss"], np.array(losses))
        for k in shapes:
            assert _same_bits(got[k], np.stack(logged[k])), k


# -- run.log steps: _int64s against array('q') ------------------------------------------------------


class _Index:
    """An object with __index__ (a step type array('q') takes)."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __index__(self) -> int:
        return self.value  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return f"_Index({self.value!r})"


class _RaisingIndex:
    def __index__(self) -> int:
        raise ValueError("no index today")

    def __repr__(self) -> str:
        return "_RaisingIndex()"


class _IntOnly:
    """__int__ but no __index__: array('q') refuses it (Python >= 3.10)."""

    def __int__(self) -> int:
        return 3


_INT_DTYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]
_EDGES = [-(2**64), -(2**63) - 1, -(2**63), -(2**63) + 1, -1, 0, 1, 2**63 - 2, 2**63 - 1, 2**63, 2**64]

_numpy_int = st.sampled_from(_INT_DTYPES).flatmap(
    lambda t: st.integers(int(np.iinfo(t).min), int(np.iinfo(t).max)).map(t)
)
_step_value = st.one_of(
    st.integers(-(2**70), 2**70),
    st.sampled_from(_EDGES),
    st.booleans(),
    _numpy_int,
    st.integers(2**63, 2**64 - 1).map(np.uint64),
    st.sampled_from([np.True_, np.False_, np.array(7), np.array([7]), np.array(7.0), 1 + 0j]),
    st.floats(allow_nan=True),
    st.integers(-5, 5).map(float),
    st.sampled_from([np.float64(2.0), np.float32(2.0), np.float16(2.0), np.longdouble(2.0)]),
    st.none(),
    st.text(max_size=3),
    st.binary(max_size=3),
    st.sampled_from(_EDGES).map(_Index),
    st.sampled_from([_Index(1.5), _Index(None), _RaisingIndex(), _IntOnly(), Decimal(3), Fraction(3)]),
)


def _array_q(steps: list[Any]) -> list[int] | None:
    """What array('q') makes of steps: their values, or None if it refuses them."""
    try:
        return list(array("q", steps))
    except Exception:
        return None


@settings(max_examples=200)
@given(steps=st.lists(_step_value, max_size=12))
def test_int64s_takes_and_refuses_what_array_q_does(steps: list[Any]) -> None:
    want = _array_q(steps)
    try:
        got: list[int] | None = list(_int64s(steps))
    except Exception:
        got = None
    assert got == want
    if got is not None:
        assert _int64s(steps).tobytes() == array("q", steps).tobytes()


@settings(max_examples=150)
@given(steps=st.lists(st.one_of(st.integers(-(2**63), 2**63 - 1), _step_value), min_size=1, max_size=10))
def test_a_block_keeps_its_good_rows_and_names_its_first_bad_step(steps: list[Any]) -> None:
    """LogBuffer.add_block: with every step good, the block as array('q') makes it; else the
    rows of good steps are kept and MvcdbError names the first bad one (_step_problem)."""
    buf = LogBuffer()
    rows = [{"loss": float(i)} for i in range(len(steps))]
    good = [i for i, s in enumerate(steps) if _array_q([s]) is not None]
    bad = [s for s in steps if _array_q([s]) is None]
    if bad:
        with pytest.raises(mvcdb.MvcdbError) as info:
            buf.add_block(list(steps), rows)
        assert str(info.value) == (
            f"{_step_problem(bad[0])}: {len(bad)} row(s) left out (everything else logged is kept)"
        )
    else:
        buf.add_block(list(steps), rows)
    assert buf.nrows == len(good)
    if good:
        arrays, own = buf.arrays()
        assert arrays["step"].tolist() == [_q(steps[i]) for i in good]
        assert arrays["loss"].tolist() == [float(i) for i in good]
        assert own == {}


def test_int64s_packs_a_full_block_like_array_q() -> None:
    steps: list[Any] = list(range(-(2**63), -(2**63) + 300)) + [np.int32(-5), True, _Index(2**63 - 1)]
    steps += [np.uint64(2**63 - 1)] * (trajectory.BLOCK_ROWS - len(steps))
    assert _int64s(steps).tobytes() == array("q", steps).tobytes()
    assert _int64s([]).tobytes() == b""
    assert struct.calcsize(f"={len(steps)}q") == 8 * len(steps)


@pytest.fixture
def tiny_blocks(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(mvcdb.run, "BLOCK_ROWS", 4)
    return 4


@pytest.mark.parametrize(
    "bad",
    [2**63, -(2**63) - 1, np.uint64(2**63), 2.0, None, "3", _RaisingIndex(), _Index(2**64), np.True_],
    ids=repr,
)
def test_run_log_refuses_a_bad_step_in_a_late_block_and_keeps_the_rest(
    tmp_path: Path, tiny_blocks: int, bad: Any
) -> None:
    odd_but_good: list[Any] = [True, np.int8(-3), np.uint64(7), _Index(9), -(2**63), 2**63 - 1]
    with mvcdb.open(tmp_path / "x.db") as db:
        run = db.run("m")
        steps: list[Any] = list(range(10, 19)) + odd_but_good
        for i, step in enumerate(steps[:11]):
            run.log(step, loss=float(i))
        run.log(bad, loss=-1.0)  # never raises inside the loop
        for i, step in enumerate(steps[11:], 11):
            run.log(step, loss=float(i))
        with pytest.raises(mvcdb.MvcdbError) as info:
            run.commit()
        assert f"{_step_problem(bad)}: 1 row(s) left out" in str(info.value)
        v = run.commit()  # the rest is stored
        got = db.trajectory(v)
        assert got["step"].tolist() == [_q(s) for s in steps]
        assert got["loss"].tolist() == [float(i) for i in range(len(steps))]


def _q(step: Any) -> int:
    """The int64 array('q') stores for one step."""
    return int(array("q", [step])[0])


@pytest.mark.parametrize("bad", [2**63, np.uint64(2**64 - 1), 1.5, None, _RaisingIndex()], ids=repr)
def test_run_log_refuses_a_bad_first_step_at_once(tmp_path: Path, bad: Any) -> None:
    with mvcdb.open(tmp_path / "x.db") as db:
        run = db.run("m")
        with pytest.raises(mvcdb.MvcdbError) as info:
            run.log(bad, loss=1.0)
        assert str(info.value).startswith(f"{_step_problem(bad)}: 1 row(s) left out")
        run.log(1, loss=2.0)
        v = run.commit()
        assert db.trajectory(v)["step"].tolist() == [1]

"""Every chunk encoding round-trips bit for bit, for every dtype, and refuses lying payloads."""

from __future__ import annotations

import numpy as np
import pytest

from mvcdb import chunkcodec as cc
from mvcdb.errors import DecodeError

DTYPES = ["<f2", "<f4", "<f8", "<c8", "<c16", "<i1", "<i2", "<i4", "<i8", "<u1", "<u2", "<u4", "<u8", "|b1"]


def _sample(dtype: str, n: int = 5000, seed: int = 0) -> np.ndarray:
    """Awkward values: NaNs with payloads, -0.0, infinities, extremes, plus smooth weights."""
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    if dt.kind == "b":
        return rng.integers(0, 2, n).astype(dt)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        arr = rng.integers(info.min, info.max, n, dtype=dt, endpoint=True)
        arr[:4] = [info.min, info.max, 0, 1]
        return arr
    real = dt
    if dt.kind == "c":
        real = np.dtype("<f4") if dt.itemsize == 8 else np.dtype("<f8")
    vals = (rng.standard_normal(n * (2 if dt.kind == "c" else 1)) * 0.02).astype(real)
    bits = vals.view(f"<u{real.itemsize}")
    nan = np.array([np.nan], dtype=real).view(f"<u{real.itemsize}")[0]
    bits[0] = nan | 1  # a NaN with a payload
    bits[1] = nan | 5 | (1 << (real.itemsize * 8 - 1))  # a negative NaN with another payload
    vals[2] = -0.0
    vals[3] = np.inf
    vals[4] = -np.inf
    vals[5] = np.finfo(real).tiny / 4  # subnormal
    return vals.view(dt)


def _roundtrip(enc: cc.Encoded, raw: bytes, base: np.ndarray | None = None) -> bytes:
    out = np.empty(len(raw), dtype=np.uint8)
    cc.decode_into(enc.codec, enc.itemsize, enc.payload, len(raw), out, base=base, stride=enc.stride)
    return out.tobytes()


@pytest.mark.parametrize("dtype", DTYPES)
def test_plain_roundtrip_every_dtype(dtype: str) -> None:
    arr = _sample(dtype)
    raw = arr.tobytes()
    enc = cc.encode(memoryview(raw), cc.lane_size(arr.dtype))
    assert _roundtrip(enc, raw) == raw


@pytest.mark.parametrize("dtype", DTYPES)
def test_delta_roundtrip_every_dtype(dtype: str) -> None:
    parent = _sample(dtype, seed=1)
    child = parent.copy()
    view = child.view(np.uint8)
    view[::7] ^= 0x5A  # flip bits in some bytes: wrapping differences in every lane position
    lane = cc.lane_size(parent.dtype)
    base = parent.view(np.uint8)
    enc = cc.encode_delta(memoryview(child.tobytes()), base, lane)
    assert enc is not None and enc.codec == cc.DELTA
    assert _roundtrip(enc, child.tobytes(), base) == child.tobytes()


@pytest.mark.parametrize("dtype", ["<f4", "<f8", "<i8", "<u2", "<c8"])
def test_row_delta_roundtrip(dtype: str) -> None:
    rows = np.stack([_sample(dtype, 300, seed=s) for s in range(12)])
    raw = rows.tobytes()
    lane = cc.lane_size(rows.dtype)
    enc = cc.encode_rows(memoryview(raw), lane, rows[0].nbytes)
    assert enc is not None and enc.codec == cc.ROWDELTA and enc.stride == rows[0].nbytes
    assert _roundtrip(enc, raw) == raw


def test_planes_store_incompressible_planes_raw_and_still_shrink() -> None:
    weights = (np.random.default_rng(3).standard_normal(1 << 18) * 0.02).astype("<f4")
    raw = weights.tobytes()
    enc = cc.encode(memoryview(raw), 4)
    assert enc.codec == cc.PLANES
    assert len(enc.payload) < 0.87 * len(raw)
    assert _roundtrip(enc, raw) == raw


def test_random_bytes_stay_raw_and_tiny_chunks_stay_raw() -> None:
    noise = np.random.default_rng(4).integers(0, 256, 100_000, dtype=np.uint8).tobytes()
    assert cc.encode(memoryview(noise), 1).codec == cc.RAW
    assert cc.encode(memoryview(noise), 4).codec == cc.RAW
    assert cc.encode(memoryview(b"\x00" * 10), 4).codec == cc.RAW


def test_byte_data_uses_zstd() -> None:
    raw = bytes(range(256)) * 400
    enc = cc.encode(memoryview(raw), 1)
    assert enc.codec == cc.ZSTD
    assert _roundtrip(enc, raw) == raw


def test_odd_length_tail_survives_planes() -> None:
    raw = (np.arange(10_001, dtype="<u4").tobytes() + b"\x01\x02\x03")[:40_003]
    enc = cc.encode(memoryview(raw), 4)
    assert _roundtrip(enc, raw) == raw


def test_delta_refused_for_mismatched_sizes_and_odd_lengths() -> None:
    a = np.zeros(1000, dtype="<f4")
    assert cc.encode_delta(memoryview(a.tobytes()), np.zeros(3996, dtype=np.uint8), 4) is None
    assert cc.encode_delta(memoryview(a.tobytes()[:-1]), np.zeros(3999, dtype=np.uint8), 4) is None
    assert cc.encode_rows(memoryview(a.tobytes()), 4, 4000) is None  # a single row: nothing to delta


def test_smallest_prefers_plain_on_ties() -> None:
    plain = cc.Encoded(cc.PLANES, 4, b"x" * 10)
    delta = cc.Encoded(cc.DELTA, 4, b"y" * 10)
    assert cc.smallest(plain, None, delta) is plain
    assert cc.smallest(plain, cc.Encoded(cc.DELTA, 4, b"z" * 9)).codec == cc.DELTA


def test_lane_sizes() -> None:
    assert cc.lane_size(np.dtype("<f4")) == 4
    assert cc.lane_size(np.dtype("<c8")) == 4
    assert cc.lane_size(np.dtype("<c16")) == 8
    assert cc.lane_size(np.dtype("|b1")) == 1
    assert cc.lane_size(np.dtype("<f2")) == 2
    assert cc.lane_size(np.dtype(np.longdouble)) in (8, 4, 2, 1)


@pytest.mark.parametrize(
    "codec,payload",
    [
        (cc.RAW, b"\x00" * 10),
        (cc.ZSTD, b"not zstd at all"),
        (cc.PLANES, b"\x00"),
        (cc.PLANES, b"\x07" + b"\x00" * 40),
        (cc.STUB, b""),
        (9, b""),
    ],
)
def test_lying_payloads_raise_decode_error(codec: int, payload: bytes) -> None:
    out = np.empty(400, dtype=np.uint8)
    with pytest.raises(DecodeError):
        cc.decode_into(codec, 4, payload, 400, out)


def test_truncated_and_padded_planes_payloads_are_refused() -> None:
    raw = (np.arange(4096, dtype="<f4") / 7).tobytes()
    enc = cc.encode(memoryview(raw), 4)
    payload = bytes(enc.payload)
    out = np.empty(len(raw), dtype=np.uint8)
    for bad in (payload[:-1], payload + b"\x00", payload[:20]):
        with pytest.raises(DecodeError):
            cc.decode_into(enc.codec, 4, bad, len(raw), out)


def test_delta_without_base_is_refused() -> None:
    a = np.arange(1000, dtype="<f4")
    enc = cc.encode_delta(memoryview((a + 1).tobytes()), a.view(np.uint8), 4)
    assert enc is not None
    with pytest.raises(DecodeError):
        cc.decode_into(enc.codec, 4, enc.payload, a.nbytes, np.empty(a.nbytes, dtype=np.uint8))


@pytest.mark.parametrize("dtype", ["<f4", "<u2", "<i8"])
def test_delta_roundtrip_spanning_several_blocks(dtype: str) -> None:
    """Chunks longer than the zigzag block size (a real 4 MiB chunk) decode exactly too."""
    n = 3 * cc._BLOCK + 123
    parent = _sample(dtype, n, seed=2)
    child = parent.copy()
    child.view(np.uint8)[::5] += 3
    lane = cc.lane_size(parent.dtype)
    enc = cc.encode_delta(memoryview(child.tobytes()), parent.view(np.uint8), lane)
    assert enc is not None
    assert _roundtrip(enc, child.tobytes(), parent.view(np.uint8)) == child.tobytes()
    rows = np.concatenate([parent, child]).reshape(2, -1)
    enc_rows = cc.encode_rows(memoryview(rows.tobytes()), lane, rows[0].nbytes)
    assert enc_rows is not None
    assert _roundtrip(enc_rows, rows.tobytes()) == rows.tobytes()

"""How one chunk of raw tensor bytes is encoded on disk, and decoded back bit-for-bit.

Codecs (the `chunks.codec` column):
  0 RAW       the bytes as they are (used whenever no encoding pays)
  1 ZSTD      one zstd frame over the bytes (byte-sized elements)
  2 PLANES    the bytes split into `itemsize` byte planes (exponents group together); each plane
              stored zstd-compressed or, when it does not compress (random mantissa bits), as is
  3 DELTA     the integer difference of the bit patterns against the `base` chunk (same size),
              zigzag-encoded, then stored as PLANES; decoding needs the base's raw bytes
  4 ROWDELTA  rows of `stride` bytes, each the integer difference against the previous row
              (per-step snapshots in a trajectory), zigzag-encoded, then stored as PLANES
  15 STUB     reserved: a chunk whose bytes are not fetched yet (lazy clones); never decoded here
`itemsize` is the lane width (1, 2, 4 or 8 bytes) the planes and differences work on.
Decoding is strict: a payload that does not decode to exactly `size` bytes raises DecodeError.
"""

from __future__ import annotations

import struct
import threading
from typing import Any, NamedTuple

import numpy as np
import zstandard

from .errors import DecodeError

RAW = 0
ZSTD = 1
PLANES = 2
DELTA = 3
ROWDELTA = 4
STUB = 15
CODEC_NAMES = {
    RAW: "raw",
    ZSTD: "zstd",
    PLANES: "planes+zstd",
    DELTA: "delta+planes+zstd",
    ROWDELTA: "rowdelta+planes+zstd",
    STUB: "not fetched",
}

#: Keep a compressed encoding only if it saves at least this fraction of the raw size.
MIN_SAVING = 0.03
ZSTD_LEVEL = 1
#: A plane is compressed only if zstd shrinks this probe of its first bytes by MIN_SAVING.
PROBE_BYTES = 64 * 1024
#: Chunks smaller than this are stored raw (compression headers would eat the saving).
MIN_ENCODE = 64

_PLANE_RAW = 0
_PLANE_ZSTD = 1
_PLANE_HEADER = struct.Struct("<BI")  # (how the plane is stored, its stored length)
_UINT = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}
_INT = {1: np.int8, 2: np.int16, 4: np.int32, 8: np.int64}

_local = threading.local()


def _compressor() -> zstandard.ZstdCompressor:
    comp = getattr(_local, "compressor", None)
    if comp is None:
        comp = _local.compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_content_size=True)
    return comp


def _literal_compressor() -> zstandard.ZstdCompressor:
    """zstd tuned for data with few repeats (a float exponent plane): a tiny match table makes it
    2-3x faster than level 1 and, since poor matches are skipped, often smaller too."""
    comp = getattr(_local, "literal_compressor", None)
    if comp is None:
        params = zstandard.ZstdCompressionParameters(
            strategy=zstandard.STRATEGY_FAST,
            window_log=16,
            hash_log=6,
            min_match=7,
            search_log=1,
            write_content_size=True,
        )
        comp = _local.literal_compressor = zstandard.ZstdCompressor(compression_params=params)
    return comp


def _decompressor() -> zstandard.ZstdDecompressor:
    dec = getattr(_local, "decompressor", None)
    if dec is None:
        dec = _local.decompressor = zstandard.ZstdDecompressor()
    return dec


class Encoded(NamedTuple):
    """One encoded chunk: the codec used, its lane width, the payload, and the row size (ROWDELTA)."""

    codec: int
    itemsize: int
    payload: bytes | memoryview
    stride: int = 0


def lane_size(dtype: np.dtype[Any]) -> int:
    """The lane width for planes and deltas: a complex number's parts, else the largest of 8/4/2/1
    dividing the element size (float128's 16 bytes work as two 8-byte lanes)."""
    size = dtype.itemsize // 2 if dtype.kind == "c" else dtype.itemsize
    for lane in (8, 4, 2, 1):
        if size % lane == 0:
            return lane
    return 1


# -- byte planes ------------------------------------------------------------------------------------


def to_planes(raw: memoryview | np.ndarray, itemsize: int) -> np.ndarray:
    """Split bytes into itemsize planes (byte 0 of every element, then byte 1, ...); tail kept."""
    buf = np.frombuffer(raw, dtype=np.uint8) if not isinstance(raw, np.ndarray) else raw.view(np.uint8)
    whole = len(buf) - len(buf) % itemsize
    n = whole // itemsize
    planes = np.empty(len(buf), dtype=np.uint8)
    cols = buf[:whole].reshape(n, itemsize)
    for k in range(itemsize):  # strided column copies run ~3x faster than a transpose here
        planes[k * n : (k + 1) * n] = cols[:, k]
    planes[whole:] = buf[whole:]
    return planes


def from_planes(planes: np.ndarray, itemsize: int, out: np.ndarray) -> None:
    """Inverse of to_planes, writing into out (uint8, same length)."""
    whole = len(planes) - len(planes) % itemsize
    n = whole // itemsize
    cols = out[:whole].reshape(n, itemsize)
    for k in range(itemsize):
        cols[:, k] = planes[k * n : (k + 1) * n]
    out[whole:] = planes[whole:]


def _pack_planes(planes: np.ndarray, itemsize: int) -> bytes:
    """Planes payload: per plane a (kind, length) header, then each plane zstd'd or as is, then
    the tail bytes as is. A probe of each plane's first bytes decides: planes that do not compress
    (random mantissa bits) are stored as they are, the others with whichever zstd setting (level
    1, or the fast literal-heavy one) shrank the probe more."""
    n = len(planes) // itemsize
    comp, literal = _compressor(), _literal_compressor()
    headers: list[bytes] = []
    bodies: list[bytes | memoryview] = []
    for k in range(itemsize):
        plane = planes[k * n : (k + 1) * n].data
        body: bytes | memoryview = plane
        kind = _PLANE_RAW
        probe = plane[:PROBE_BYTES]
        by_level, by_literal = len(comp.compress(probe)), len(literal.compress(probe))
        if min(by_level, by_literal) <= len(probe) * (1 - MIN_SAVING):
            packed = (literal if by_literal <= by_level else comp).compress(plane)
            if len(packed) < len(plane):
                body, kind = packed, _PLANE_ZSTD
        headers.append(_PLANE_HEADER.pack(kind, len(body)))
        bodies.append(body)
    bodies.append(planes[n * itemsize :].data)
    return b"".join([*headers, *bodies])


def _unpack_planes(payload: bytes | memoryview, itemsize: int, size: int, out: np.ndarray) -> None:
    """Decode a planes payload into out (uint8, size bytes), checking every length."""
    if itemsize not in _UINT:
        raise DecodeError(f"bad itemsize {itemsize} in chunk")
    view = memoryview(payload)
    n = size // itemsize
    pos = _PLANE_HEADER.size * itemsize
    if len(view) < pos:
        raise DecodeError("chunk payload is shorter than its plane headers")
    cols = out[: n * itemsize].reshape(n, itemsize)
    for k in range(itemsize):
        kind, length = _PLANE_HEADER.unpack_from(view, k * _PLANE_HEADER.size)
        body = view[pos : pos + length]
        if len(body) != length:
            raise DecodeError("chunk payload is shorter than its plane headers say")
        pos += length
        if kind == _PLANE_RAW:
            if length != n:
                raise DecodeError(f"raw plane holds {length} bytes, expected {n}")
            cols[:, k] = np.frombuffer(body, dtype=np.uint8)
        elif kind == _PLANE_ZSTD:
            cols[:, k] = np.frombuffer(_zstd_decompress(body, n), dtype=np.uint8)
        else:
            raise DecodeError(f"unknown plane kind {kind}")
    tail = view[pos:]
    if len(tail) != size - n * itemsize:
        raise DecodeError(f"chunk tail holds {len(tail)} bytes, expected {size - n * itemsize}")
    out[n * itemsize :] = np.frombuffer(tail, dtype=np.uint8)


def _zstd_decompress(payload: bytes | memoryview, size: int) -> bytes:
    try:
        params = zstandard.get_frame_parameters(payload)
        if params.content_size != size:
            raise DecodeError(f"compressed data declares {params.content_size} bytes, expected {size}")
        data: bytes = _decompressor().decompress(payload, max_output_size=size)
    except zstandard.ZstdError as exc:
        raise DecodeError(f"corrupt compressed chunk: {exc}") from None
    if len(data) != size:
        raise DecodeError(f"compressed chunk decoded to {len(data)} bytes, expected {size}")
    return data


# -- zigzag differences -----------------------------------------------------------------------------


def _lanes(buf: memoryview | np.ndarray, itemsize: int) -> np.ndarray:
    arr = np.frombuffer(buf, dtype=np.uint8) if not isinstance(buf, np.ndarray) else buf.view(np.uint8)
    return arr.view(_UINT[itemsize])


def _zigzag(diff: np.ndarray, itemsize: int) -> np.ndarray:
    """Map wrapped differences to small unsigned numbers: 0, -1, 1, -2 ... -> 0, 1, 2, 3 ..."""
    signed = diff.view(_INT[itemsize])
    out: np.ndarray = np.left_shift(signed, 1)
    out ^= np.right_shift(signed, itemsize * 8 - 1)
    return out.view(_UINT[itemsize])


#: Elements per block when undoing zigzag: the passes then run in cache, ~30 % faster.
_BLOCK = 1 << 17


def _unzigzag(zz: np.ndarray, base: np.ndarray | None = None) -> np.ndarray:
    """Inverse of _zigzag, in place on an unsigned array; with base, also add base (wrapping)."""
    sign = np.empty(min(len(zz), _BLOCK), dtype=zz.dtype)
    for start in range(0, len(zz), _BLOCK):
        block = zz[start : start + _BLOCK]
        mask = sign[: len(block)]
        np.bitwise_and(block, 1, out=mask)
        np.negative(mask, out=mask)  # 0 or all ones (wrapping)
        block >>= 1
        block ^= mask
        if base is not None:
            block += base[start : start + _BLOCK]
    return zz


def _delta_ok(size: int, itemsize: int) -> bool:
    return itemsize in _UINT and size >= MIN_ENCODE and size % itemsize == 0


# -- choosing and applying an encoding --------------------------------------------------------------


def encode(raw: memoryview, itemsize: int) -> Encoded:
    """Pick the smallest worthwhile plain encoding of raw (a chunk of little-endian tensor bytes)."""
    size = len(raw)
    if size < MIN_ENCODE:
        return Encoded(RAW, 1, raw)
    if itemsize > 1 and itemsize in _UINT:
        payload: bytes | memoryview = _pack_planes(to_planes(raw, itemsize), itemsize)
        codec = PLANES
    else:
        payload = _compressor().compress(raw)
        codec, itemsize = ZSTD, 1
    if len(payload) <= size * (1 - MIN_SAVING):
        return Encoded(codec, itemsize, payload)
    return Encoded(RAW, 1, raw)


def encode_delta(raw: memoryview, base: np.ndarray, itemsize: int) -> Encoded | None:
    """The DELTA encoding of raw against base (raw bytes of the same size), or None if impossible."""
    if not _delta_ok(len(raw), itemsize) or len(base) != len(raw):
        return None
    diff = _lanes(raw, itemsize) - _lanes(base, itemsize)
    zz = _zigzag(diff, itemsize)
    return Encoded(DELTA, itemsize, _pack_planes(to_planes(zz, itemsize), itemsize))


def encode_rows(raw: memoryview, itemsize: int, stride: int) -> Encoded | None:
    """The ROWDELTA encoding of raw as rows of stride bytes, or None if it holds < 2 whole rows."""
    size = len(raw)
    if (
        not _delta_ok(size, itemsize)
        or stride <= 0
        or stride % itemsize
        or size % stride
        or size < 2 * stride
    ):
        return None
    rows = _lanes(raw, itemsize).reshape(size // stride, stride // itemsize)
    diff = np.empty_like(rows)
    diff[0] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=diff[1:])
    zz = _zigzag(diff.reshape(-1), itemsize)
    return Encoded(ROWDELTA, itemsize, _pack_planes(to_planes(zz, itemsize), itemsize), stride)


def smallest(*candidates: Encoded | None) -> Encoded:
    """The candidate with the smallest payload (earlier wins ties: plain before delta)."""
    found = [c for c in candidates if c is not None]
    return min(found, key=lambda c: len(c.payload))


def decode_into(
    codec: int,
    itemsize: int,
    payload: bytes | memoryview,
    size: int,
    out: np.ndarray,
    *,
    base: np.ndarray | None = None,
    stride: int = 0,
) -> None:
    """Decode payload into out (a uint8 array of exactly size bytes); DecodeError if it lies.

    base: the raw bytes of the base chunk (DELTA only); stride: row bytes (ROWDELTA only).
    """
    if len(out) != size:
        raise DecodeError("chunk destination has the wrong size")
    if codec == RAW:
        if len(payload) != size:
            raise DecodeError(f"raw chunk holds {len(payload)} bytes, expected {size}")
        out[:] = np.frombuffer(payload, dtype=np.uint8)
    elif codec == ZSTD:
        out[:] = np.frombuffer(_zstd_decompress(payload, size), dtype=np.uint8)
    elif codec == PLANES:
        _unpack_planes(payload, itemsize, size, out)
    elif codec == DELTA:
        if base is None or len(base) != size or not _delta_ok(size, itemsize):
            raise DecodeError("delta chunk without a base of the same size")
        _unpack_planes(payload, itemsize, size, out)
        _unzigzag(_lanes(out, itemsize), _lanes(base, itemsize))
    elif codec == ROWDELTA:
        if not _delta_ok(size, itemsize) or stride <= 0 or stride % itemsize or size % stride:
            raise DecodeError(f"row-delta chunk with a bad row size {stride}")
        _unpack_planes(payload, itemsize, size, out)
        lanes = _unzigzag(_lanes(out, itemsize)).reshape(size // stride, stride // itemsize)
        np.cumsum(lanes, axis=0, dtype=lanes.dtype, out=lanes)
    elif codec == STUB:
        raise DecodeError("chunk is a stub whose bytes were not fetched yet")
    else:
        raise DecodeError(f"unknown chunk codec {codec}")

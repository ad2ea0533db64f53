"""How one chunk of raw tensor bytes is encoded on disk, and decoded back bit-for-bit.

Codecs (the `chunks.codec` column):
  0 RAW     the bytes as they are (used whenever compression does not pay)
  1 ZSTD    zstd level 1 over the bytes
  2 PLANES  the bytes split into `itemsize` byte planes (exponents group together), then zstd
Decoding is strict: a payload that does not decode to exactly `size` bytes raises DecodeError.
"""

from __future__ import annotations

import threading
from typing import NamedTuple

import numpy as np
import zstandard

from .errors import DecodeError

RAW = 0
ZSTD = 1
PLANES = 2
CODEC_NAMES = {RAW: "raw", ZSTD: "zstd", PLANES: "planes+zstd"}

#: Keep a compressed encoding only if it saves at least this fraction of the raw size.
MIN_SAVING = 0.03
ZSTD_LEVEL = 1

_local = threading.local()


def _compressor() -> zstandard.ZstdCompressor:
    comp = getattr(_local, "compressor", None)
    if comp is None:
        comp = _local.compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_content_size=True)
    return comp


def _decompressor() -> zstandard.ZstdDecompressor:
    dec = getattr(_local, "decompressor", None)
    if dec is None:
        dec = _local.decompressor = zstandard.ZstdDecompressor()
    return dec


class Encoded(NamedTuple):
    """One encoded chunk: the codec used, its element size, and the payload to store."""

    codec: int
    itemsize: int
    payload: bytes | memoryview


def to_planes(raw: memoryview, itemsize: int) -> np.ndarray:
    """Split bytes into itemsize planes (byte 0 of every element, then byte 1, ...); tail kept."""
    buf = np.frombuffer(raw, dtype=np.uint8)
    whole = len(buf) - len(buf) % itemsize
    planes = np.empty(len(buf), dtype=np.uint8)
    planes[:whole] = buf[:whole].reshape(-1, itemsize).T.reshape(-1)
    planes[whole:] = buf[whole:]
    return planes


def from_planes(planes: np.ndarray, itemsize: int, out: np.ndarray) -> None:
    """Inverse of to_planes, writing into out (uint8, same length)."""
    whole = len(planes) - len(planes) % itemsize
    out[:whole].reshape(-1, itemsize)[:] = planes[:whole].reshape(itemsize, -1).T
    out[whole:] = planes[whole:]


def encode(raw: memoryview, itemsize: int) -> Encoded:
    """Pick the smallest worthwhile encoding of raw (a chunk of little-endian tensor bytes)."""
    size = len(raw)
    if size < 64:
        return Encoded(RAW, 1, raw)
    if itemsize > 1:
        payload = _compressor().compress(to_planes(raw, itemsize).data)
        codec = PLANES
    else:
        payload = _compressor().compress(raw)
        codec = ZSTD
    if len(payload) <= size * (1 - MIN_SAVING):
        return Encoded(codec, itemsize if codec == PLANES else 1, payload)
    return Encoded(RAW, 1, raw)


def decode_into(codec: int, itemsize: int, payload: bytes, size: int, out: np.ndarray) -> None:
    """Decode payload into out (a uint8 array of exactly size bytes); DecodeError if it lies."""
    if len(out) != size:
        raise DecodeError("chunk destination has the wrong size")
    if codec == RAW:
        if len(payload) != size:
            raise DecodeError(f"raw chunk holds {len(payload)} bytes, expected {size}")
        out[:] = np.frombuffer(payload, dtype=np.uint8)
        return
    if codec not in (ZSTD, PLANES):
        raise DecodeError(f"unknown chunk codec {codec}")
    try:
        params = zstandard.get_frame_parameters(payload)
        if params.content_size != size:
            raise DecodeError(f"compressed chunk declares {params.content_size} bytes, expected {size}")
        data = _decompressor().decompress(payload, max_output_size=size)
    except zstandard.ZstdError as exc:
        raise DecodeError(f"corrupt compressed chunk: {exc}") from None
    if len(data) != size:
        raise DecodeError(f"compressed chunk decoded to {len(data)} bytes, expected {size}")
    flat = np.frombuffer(data, dtype=np.uint8)
    if codec == ZSTD:
        out[:] = flat
    else:
        if itemsize < 1 or itemsize > 64:
            raise DecodeError(f"bad itemsize {itemsize} in chunk")
        from_planes(flat, itemsize, out)

"""Fuzzing the decoders that read untrusted bytes: only MvcdbError (DecodeError) may come out.

Quick runs try a few dozen examples per fuzzer; the `slow` tests run thousands each (CI runs them).
"""

from __future__ import annotations

import struct
from typing import Any

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mvcdb import chunkcodec, manifest, serial
from mvcdb.errors import DecodeError, MvcdbError

#: The quick loop's fuzzers: a few dozen examples each (the `slow` ones run thousands).
QUICK = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))


def many(n: int) -> settings:
    """Settings for a big CI fuzz run of n examples."""
    return settings(max_examples=n, deadline=None, suppress_health_check=list(HealthCheck))


VALID = manifest.encode(
    model="net",
    parents=["ab" * 32],
    message="m",
    author="a",
    created_at="2024-01-01T00:00:00.000000Z",
    metadata='{"k": 1}',
    metrics={"loss": 0.5},
    tensors=[manifest.ManifestTensor("param", "w", "<f4", (2, 3), 24, (b"\x01" * 32,))],
)

msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=True)
    | st.text(max_size=20)
    | st.binary(max_size=40),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=10), inner, max_size=6),
    max_leaves=30,
)

field_values = st.one_of(
    msgpack_values,
    st.sampled_from(["<f4", ">i8", "|b1", "O", "U10", "V8", "<f4,<f4", "bfloat16", "(2,)f4", "M8[s]", ""]),
    st.lists(st.integers(min_value=-3, max_value=2**62), max_size=4),
    st.just([b"\x00" * 32, b"\x01" * 31]),
)


def _fields(blob: bytes) -> dict[str, Any]:
    doc: dict[str, Any] = msgpack.unpackb(blob, raw=False)
    return doc


def decode_or_refuse(blob: bytes) -> None:
    """manifest.decode either succeeds with a well-formed Manifest or raises DecodeError."""
    try:
        m = manifest.decode(blob)
    except MvcdbError as exc:
        assert isinstance(exc, DecodeError), type(exc)
        return
    for t in m.tensors:
        assert all(isinstance(d, int) and d >= 0 for d in t.shape)
        assert all(isinstance(h, bytes) and len(h) == 32 for h in t.hashes)


# -- serial.unpack ---------------------------------------------------------------------------------


@QUICK
@given(st.binary(max_size=2000))
def test_unpack_random_bytes(data: bytes) -> None:
    try:
        serial.unpack(data)
    except DecodeError:
        pass


@QUICK
@given(msgpack_values)
def test_pack_unpack_round_trip(value: Any) -> None:
    try:
        packed = serial.pack(value)
    except (TypeError, ValueError, OverflowError):
        return  # not packable (e.g. keys msgpack cannot hold): not a decoder concern
    assert serial.pack(serial.unpack(packed)) == packed


@pytest.mark.parametrize(
    "blob",
    [
        b"\xdd\xff\xff\xff\xff",  # array32 claiming 4 billion items, none present
        b"\xdf\xff\xff\xff\xff",  # map32 likewise
        b"\xc6\xff\xff\xff\xf0" + b"x" * 10,  # bin32 claiming ~4 GB
        b"\xdb\x7f\xff\xff\xff" + b"x" * 10,  # str32 claiming 2 GB
        b"\x91" * 200_000,  # nesting 200k arrays deep
        b"\x81" * 100_000 + b"\xc0",  # nesting maps with missing keys
        b"\xc7\x05\x01hello",  # ext type
        b"\xd4\xff\x00",  # timestamp-ish fixext
        b"\x82\x01\x02\x03\x04",  # map with integer keys
        b"\xc1",  # never-used byte
        b"",  # nothing at all
        b"\x90\x90",  # two documents
    ],
    ids=[
        "array32-lie",
        "map32-lie",
        "bin32-lie",
        "str32-lie",
        "deep-arrays",
        "deep-maps",
        "ext",
        "fixext",
        "int-keys",
        "reserved",
        "empty",
        "extra-data",
    ],
)
def test_hostile_msgpack_is_refused_cleanly(blob: bytes) -> None:
    with pytest.raises(DecodeError):
        serial.unpack(blob)
    with pytest.raises(DecodeError):
        manifest.decode(blob)


def test_oversized_document_is_refused_before_parsing() -> None:
    with pytest.raises(DecodeError, match="exceeds"):
        serial.unpack(b"\x00" * 1024, max_bytes=100)


# -- manifest.decode -------------------------------------------------------------------------------


@QUICK
@given(st.binary(max_size=600))
def test_manifest_random_bytes(data: bytes) -> None:
    decode_or_refuse(data)


@QUICK
@given(msgpack_values)
def test_manifest_random_documents(value: Any) -> None:
    try:
        blob = msgpack.packb(value, use_bin_type=True)
    except (TypeError, ValueError, OverflowError):
        return
    decode_or_refuse(blob)


@QUICK
@given(
    st.sampled_from(
        ["format", "model", "parents", "message", "author", "created_at", "metadata", "metrics", "tensors"]
    ),
    field_values,
)
def test_manifest_with_one_field_replaced(key: str, value: Any) -> None:
    doc = _fields(VALID)
    doc[key] = value
    decode_or_refuse(msgpack.packb(doc, use_bin_type=True))


@QUICK
@given(st.integers(min_value=0, max_value=5), field_values)
def test_manifest_with_one_tensor_field_replaced(index: int, value: Any) -> None:
    doc = _fields(VALID)
    doc["tensors"][0][index] = value
    decode_or_refuse(msgpack.packb(doc, use_bin_type=True))


@QUICK
@given(st.data())
def test_manifest_byte_mutations(data: st.DataObject) -> None:
    blob = bytearray(VALID)
    for _ in range(data.draw(st.integers(min_value=1, max_value=4))):
        op = data.draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        pos = data.draw(st.integers(min_value=0, max_value=max(0, len(blob) - 1)))
        if op == "flip" and blob:
            blob[pos] ^= data.draw(st.integers(min_value=1, max_value=255))
        elif op == "insert":
            blob[pos:pos] = data.draw(st.binary(min_size=1, max_size=8))
        elif op == "delete" and blob:
            del blob[pos]
        else:
            del blob[pos:]
    decode_or_refuse(bytes(blob))


@pytest.mark.parametrize(
    ("index", "value"),
    [
        (3, [2**62, 2**62]),  # shape whose size overflows any memory
        (3, [0] * 100_000),  # a hundred thousand dimensions
        (4, 2**70),  # nbytes beyond 64 bits
        (4, 25),  # nbytes that lies about dtype x shape
        (2, "O"),  # object dtype
        (2, "<U4"),  # string dtype
        (2, [("a", "<f4")]),  # structured dtype spec
        (5, [b"\x00" * 32] * 10),  # fine hashes (a different chunk count is the store's check)
        (1, "x" * 100_000),  # a long name (storage checks names; decode must not crash)
    ],
)
def test_manifest_size_and_dtype_lies(index: int, value: Any) -> None:
    doc = _fields(VALID)
    doc["tensors"][0][index] = value
    try:
        blob = msgpack.packb(doc, use_bin_type=True)
    except OverflowError:
        return
    decode_or_refuse(blob)


def test_manifest_size_mismatch_is_refused() -> None:
    doc = _fields(VALID)
    doc["tensors"][0][4] = 25
    with pytest.raises(DecodeError, match="size"):
        manifest.decode(msgpack.packb(doc, use_bin_type=True))


def test_valid_manifest_round_trips() -> None:
    m = manifest.decode(VALID)
    assert m.model == "net" and m.tensors[0].shape == (2, 3) and m.metrics == (("loss", 0.5),)


# -- chunkcodec.decode_into ------------------------------------------------------------------------


def decode_chunk_or_refuse(
    codec: int, itemsize: int, payload: bytes, size: int, base: bool, stride: int
) -> None:
    out = np.empty(size, dtype=np.uint8)
    base_arr = np.zeros(size, dtype=np.uint8) if base else None
    try:
        chunkcodec.decode_into(codec, itemsize, payload, size, out, base=base_arr, stride=stride)
    except DecodeError:
        pass


@QUICK
@given(
    st.integers(min_value=0, max_value=16),
    st.sampled_from([0, 1, 2, 3, 4, 8, 16, 65, 2**31]),
    st.binary(max_size=300),
    st.integers(min_value=0, max_value=4096),
    st.booleans(),
    st.sampled_from([0, 1, 4, 8, 12, 4096, -4]),
)
def test_chunk_decoder_random_payloads(
    codec: int, itemsize: int, payload: bytes, size: int, base: bool, stride: int
) -> None:
    decode_chunk_or_refuse(codec, itemsize, payload, size, base, stride)


@QUICK
@given(st.data())
def test_chunk_decoder_mutated_real_encodings(data: st.DataObject) -> None:
    """Take a real encoding of real-looking floats, damage it, decode it."""
    rng = np.random.default_rng(data.draw(st.integers(min_value=0, max_value=2**32 - 1)))
    raw = (rng.standard_normal(512) * 0.01).astype(np.float32)
    base = raw + np.float32(1e-4)
    kind = data.draw(st.sampled_from(["plain", "delta", "rows"]))
    if kind == "plain":
        enc = chunkcodec.encode(memoryview(raw.view(np.uint8)), 4)
    elif kind == "delta":
        enc = chunkcodec.encode_delta(memoryview(raw.view(np.uint8)), base.view(np.uint8), 4)
    else:
        enc = chunkcodec.encode_rows(memoryview(raw.view(np.uint8)), 4, 64)
    if enc is None:
        return
    payload = bytearray(bytes(enc.payload))
    for _ in range(data.draw(st.integers(min_value=0, max_value=3))):
        if payload:
            pos = data.draw(st.integers(min_value=0, max_value=len(payload) - 1))
            payload[pos] ^= data.draw(st.integers(min_value=1, max_value=255))
    size = raw.nbytes + data.draw(st.sampled_from([0, 0, 0, -4, 4, -1]))
    if size < 0:
        return
    out = np.empty(size, dtype=np.uint8)
    try:
        chunkcodec.decode_into(
            enc.codec,
            enc.itemsize,
            bytes(payload),
            size,
            out,
            base=base.view(np.uint8)[:size],
            stride=enc.stride,
        )
    except DecodeError:
        return


def test_zstd_frames_that_lie_about_their_size_are_refused() -> None:
    import zstandard

    frame = zstandard.ZstdCompressor(write_content_size=True).compress(b"\x00" * 1000)
    unsized = zstandard.ZstdCompressor(write_content_size=False).compress(b"\x00" * 1000)
    garbage = struct.pack("<I", 0xFD2FB528) + b"\xff" * 20
    for payload in (frame, unsized, frame[:-3], garbage):
        out = np.empty(10, dtype=np.uint8)
        with pytest.raises(DecodeError):
            chunkcodec.decode_into(chunkcodec.ZSTD, 1, payload, 10, out)


# -- thousands of cases (CI) -----------------------------------------------------------------------


@pytest.mark.slow
@many(3000)
@given(st.binary(max_size=2000))
def test_many_manifest_random_bytes(data: bytes) -> None:
    decode_or_refuse(data)


@pytest.mark.slow
@many(800)
@given(msgpack_values)
def test_many_manifest_random_documents(value: Any) -> None:
    try:
        blob = msgpack.packb(value, use_bin_type=True)
    except (TypeError, ValueError, OverflowError):
        return
    decode_or_refuse(blob)


@pytest.mark.slow
@many(2000)
@given(st.data())
def test_many_manifest_mutations(data: st.DataObject) -> None:
    test_manifest_byte_mutations.hypothesis.inner_test(data)  # type: ignore[attr-defined]


@pytest.mark.slow
@many(2000)
@given(
    st.integers(min_value=0, max_value=16),
    st.sampled_from([0, 1, 2, 4, 8, 16]),
    st.binary(max_size=600),
    st.integers(min_value=0, max_value=4096),
    st.booleans(),
    st.sampled_from([0, 4, 8, 64]),
)
def test_many_chunk_payloads(
    codec: int, itemsize: int, payload: bytes, size: int, base: bool, stride: int
) -> None:
    decode_chunk_or_refuse(codec, itemsize, payload, size, base, stride)

"""The MPC wire codec: exact round trips and strict rejection of anything malformed."""

from __future__ import annotations

import struct
from collections.abc import Callable

import numpy as np
import pytest

from smpcloud.crypto.field import DEFAULT_FIELD, Field
from smpcloud.errors import ProtocolError, ShareError
from smpcloud.mpc import codec
from smpcloud.mpc.codec import Request, RequestOp
from smpcloud.mpc.runtime import MPC_FIELD

F = MPC_FIELD
HEADER = 12 + 4 * F.k  # fixed header + moduli


def residues(field: Field, v: int, m: int, seed: int = 1) -> np.ndarray:
    # Test data only (not secret): a deterministic generator keeps failures reproducible.
    rng = np.random.default_rng(seed)
    p = np.array(field.moduli, dtype=np.uint64).reshape(field.k, 1)
    return (rng.integers(0, 2**32, size=(v, field.k, m), dtype=np.uint64) % p).astype(np.uint64)


def test_vectors_round_trip_one_and_several() -> None:
    one = residues(F, 1, 7)[0]
    back = codec.decode_vectors(codec.encode_vectors(F, one), F, count=1, length=7)
    assert back.shape == (1, F.k, 7) and back.dtype == np.uint64
    assert np.array_equal(back[0], one)
    three = residues(F, 3, 5)
    for given in (three, list(three)):
        back = codec.decode_vectors(codec.encode_vectors(F, given), F, count=3)
        assert np.array_equal(back, three)


def test_vectors_layout_is_the_documented_one() -> None:
    block = residues(DEFAULT_FIELD, 2, 4)
    data = codec.encode_vectors(DEFAULT_FIELD, block)
    assert data[:4] == b"SMPC"
    assert data[4] == codec.VERSION and data[5] == codec.Kind.VECTORS
    assert data[6] == DEFAULT_FIELD.k and data[7] == 2
    assert struct.unpack_from("<I", data, 8)[0] == 4
    assert struct.unpack_from("<3I", data, 12) == DEFAULT_FIELD.moduli
    body = np.frombuffer(data, dtype="<u4", offset=24).reshape(2, 3, 4)
    assert np.array_equal(body.astype(np.uint64), block)
    assert len(data) == codec.vectors_size(DEFAULT_FIELD, 2, 4)


def test_empty_vector_round_trips() -> None:
    empty = np.zeros((F.k, 0), dtype=np.uint64)
    back = codec.decode_vectors(codec.encode_vectors(F, empty), F, count=1, length=0)
    assert back.shape == (1, F.k, 0)


def test_non_contiguous_views_encode_their_values() -> None:
    block = residues(F, 1, 10)[0]
    view = block[:, 2:9:3]
    back = codec.decode_vectors(codec.encode_vectors(F, view), F)[0]
    assert np.array_equal(back, view)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: b"XMPC" + d[4:], "bad magic"),
        (lambda d: d[:4] + b"\x09" + d[5:], "version"),
        (lambda d: d[:5] + bytes([codec.Kind.INTS]) + d[6:], "kind"),
        (lambda d: d[:6] + bytes([F.k - 1]) + d[7:], "another field"),
        (lambda d: d[:-1], "bytes, expected"),
        (lambda d: d + b"\x00", "bytes, expected"),
        (lambda d: d[:10], "too short"),
        (lambda d: d[:5], "too short"),
        (lambda d: b"", "too short"),
        (lambda d: d[:12] + struct.pack("<I", 5) + d[16:], "moduli differ"),
        (lambda d: d[:HEADER] + struct.pack("<I", F.moduli[0]) + d[HEADER + 4 :], "outside"),
        (lambda d: d[:-4] + b"\xff\xff\xff\xff", "outside"),
        (lambda d: d[:7] + b"\x00" + d[8:], "no vectors"),
    ],
)
def test_decode_rejects_mutations(mutate: Callable[[bytes], bytes], message: str) -> None:
    data = codec.encode_vectors(F, residues(F, 1, 6)[0])
    with pytest.raises(ShareError, match=message):
        codec.decode_vectors(mutate(data), F)


def test_decode_rejects_a_message_from_another_field_with_as_many_primes() -> None:
    other = Field((2147483647, 4294967291, 4294967279, 4294967231, 4294967197, 4294967189))
    data = codec.encode_vectors(other, np.ones((6, 3), dtype=np.uint64))
    with pytest.raises(ShareError, match="moduli differ"):
        codec.decode_vectors(data, F)


def test_decode_checks_expected_count_and_length() -> None:
    data = codec.encode_vectors(F, residues(F, 2, 3))
    with pytest.raises(ShareError, match="expected 1 shared vector"):
        codec.decode_vectors(data, F, count=1)
    with pytest.raises(ShareError, match="length 4"):
        codec.decode_vectors(data, F, length=4)


def test_encode_rejects_bad_shapes() -> None:
    with pytest.raises(ShareError):
        codec.encode_vectors(F, np.zeros((F.k + 1, 3), dtype=np.uint64))
    with pytest.raises(ShareError):
        codec.encode_vectors(F, [np.zeros((F.k, 3), np.uint64), np.zeros((F.k, 4), np.uint64)])
    with pytest.raises(ShareError):
        codec.encode_vectors(F, [])


def test_ints_round_trip_and_rejections() -> None:
    values = [0, -1, 2**63 - 1, -(2**63), 42]
    data = codec.encode_ints(values)
    assert codec.decode_ints(data).tolist() == values
    assert codec.decode_ints(data, count=5).dtype == np.int64
    with pytest.raises(ProtocolError, match="expected 4"):
        codec.decode_ints(data, count=4)
    with pytest.raises(ProtocolError, match="bytes"):
        codec.decode_ints(data + b"\x00")
    with pytest.raises(ProtocolError, match="bytes"):
        codec.decode_ints(data[:-1])
    with pytest.raises(ProtocolError, match="kind"):
        codec.decode_ints(codec.encode_request(Request(RequestOp.DONE)))
    with pytest.raises(ProtocolError, match="64-bit"):
        codec.encode_ints([2**63])


def test_request_round_trip_and_rejections() -> None:
    request = Request(RequestOp.TRUNCATION_PAIRS, 1000, 16, 190)
    data = codec.encode_request(request)
    assert codec.decode_request(data) == request
    with pytest.raises(ProtocolError, match="unknown request operation"):
        codec.decode_request(data[:6] + b"\x07" + data[7:])
    with pytest.raises(ProtocolError, match="bytes"):
        codec.decode_request(data + b"\x00")
    with pytest.raises(ProtocolError, match="truncated"):
        codec.decode_request(data[:-1])
    with pytest.raises(ProtocolError, match="magic"):
        codec.decode_request(b"SMPS" + data[4:])
    with pytest.raises(ProtocolError, match="out of range"):
        codec.encode_request(Request(RequestOp.TRIPLES, 2**32))


def test_error_round_trip_and_rejections() -> None:
    data = codec.encode_error("batch too large — refused")
    assert codec.decode_error(data) == "batch too large — refused"
    assert codec.kind_of(data) == codec.Kind.ERROR
    long = codec.decode_error(codec.encode_error("é" * 5000))
    assert len(long.encode()) <= codec.MAX_ERROR_TEXT and set(long) == {"é"}
    with pytest.raises(ProtocolError, match="UTF-8"):
        codec.decode_error(data[:8] + b"\xff" + data[9:])
    with pytest.raises(ProtocolError, match="length"):
        codec.decode_error(data + b"x")


def test_kind_of_recognises_only_valid_prefixes() -> None:
    assert codec.kind_of(codec.encode_ints([1])) == codec.Kind.INTS
    assert codec.kind_of(b"garbage") is None
    assert codec.kind_of(b"SMPC\x01\x63") is None
    assert codec.kind_of(b"SM") is None


def test_million_element_vector_round_trip() -> None:
    block = residues(F, 1, 10**6, seed=3)[0]
    data = codec.encode_vectors(F, block)
    assert len(data) == HEADER + 4 * F.k * 10**6
    assert np.array_equal(codec.decode_vectors(data, F, count=1, length=10**6)[0], block)

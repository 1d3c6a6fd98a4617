"""Unit tests for smpcloud.crypto.packing: layout, JSON, pack/unpack, encryption, overflow.

Expected values come from plain integer arithmetic written out here (round(x 2^f) summed with
Python ints), never from the code under test.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from smpcloud.crypto import packing, paillier, threshold
from smpcloud.crypto.packing import Packing
from smpcloud.errors import (
    InvalidInputError,
    KeyMismatchError,
    OverflowDetectedError,
)

BITS = 1024


@pytest.fixture(scope="module")
def keys() -> tuple[paillier.PublicKey, paillier.PrivateKey]:
    return paillier.generate_keypair(BITS, insecure=True)


def layout(**overrides: object) -> Packing:
    fields: dict[str, object] = {
        "length": 50,
        "key_bits": BITS,
        "min_value": -1.0,
        "max_value": 1.0,
        "max_additions": 10,
        "frac_bits": 16,
    }
    fields.update(overrides)
    return Packing(**fields)  # type: ignore[arg-type]


def exact_sum(vectors: list[list[float]], frac_bits: int) -> list[int]:
    """Sum of round-half-even(x 2^f) per position, with Python ints."""
    return [sum(round(v[i] * 2**frac_bits) for v in vectors) for i in range(len(vectors[0]))]


# ------------------------------------------------------------------------------ layout


def test_reference_layout_for_a_model_update() -> None:
    # Values in [-1, 1] with 16 fractional bits: encodings in [-2^16, 2^16], span 2^17.
    # 100 additions: sums up to 100 * 2^17 = 13,107,200 < 2^24, so 24-bit slots;
    # (2048 - 2) // 24 = 85 slots; ceil(100000 / 85) = 1177 ciphertexts.
    p = Packing(
        length=100_000,
        key_bits=2048,
        min_value=-1.0,
        max_value=1.0,
        max_additions=100,
        frac_bits=16,
    )
    assert (p.lo, p.hi, p.span) == (-(2**16), 2**16, 2**17)
    assert p.value_bits == 18
    assert p.slot_bits == 24
    assert p.headroom_bits == 6 <= math.ceil(math.log2(100))
    assert p.slots == 85
    assert p.ciphertexts == 1177
    assert p.length / p.ciphertexts >= 20


def test_slots_never_exceed_the_plaintext_and_sums_never_wrap() -> None:
    for key_bits in (128, 512, 1024, 2048, 3072):
        for additions in (1, 2, 7, 1000, 2**40):
            for frac in (0, 8, 30):
                p = layout(key_bits=key_bits, max_additions=additions, frac_bits=frac)
                assert p.slots * p.slot_bits <= key_bits - 2
                # The largest possible slot sum fits its slot.
                assert additions * p.span < 2**p.slot_bits
                assert p.headroom_bits <= math.ceil(math.log2(additions))


def test_integer_layout_and_degenerate_range() -> None:
    p = layout(min_value=-5, max_value=5, frac_bits=0, max_additions=3)
    assert (p.lo, p.hi, p.span) == (-5, 5, 10)
    assert p.slot_bits == (3 * 10).bit_length()
    single = layout(min_value=7, max_value=7, frac_bits=0, max_additions=1)
    assert single.span == 0
    assert single.slot_bits == 1


def test_for_key_uses_the_key_size(keys: tuple[paillier.PublicKey, paillier.PrivateKey]) -> None:
    pk, _ = keys
    p = Packing.for_key(pk, length=3, min_value=0, max_value=1, max_additions=2)
    assert p.key_bits == pk.bits
    with pytest.raises(InvalidInputError):
        Packing.for_key("not a key", length=3, min_value=0, max_value=1, max_additions=2)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "overrides",
    [
        {"length": 0},
        {"length": packing.MAX_LENGTH + 1},
        {"length": True},
        {"length": 3.0},
        {"key_bits": 64},
        {"key_bits": 20000},
        {"frac_bits": 64},
        {"frac_bits": -1},
        {"max_additions": 0},
        {"max_additions": packing.MAX_ADDITIONS + 1},
        {"max_additions": False},
        {"min_value": float("nan")},
        {"max_value": float("inf")},
        {"min_value": "0"},
        {"min_value": True},
        {"min_value": 2.0, "max_value": 1.0},
        {"min_value": -(2.0**60), "frac_bits": 16},  # 2^76 does not fit in signed 64 bits
        {"max_value": 2**63, "frac_bits": 0},
    ],
)
def test_bad_layouts_are_refused(overrides: dict[str, object]) -> None:
    with pytest.raises(InvalidInputError):
        layout(**overrides)


# -------------------------------------------------------------------------------- JSON


def test_json_round_trip_through_text() -> None:
    for p in (layout(), layout(min_value=-3, max_value=9, frac_bits=0), layout(min_value=-0.5)):
        text = json.dumps(p.to_json())
        again = Packing.from_json(json.loads(text))
        assert again == p
        assert (again.slots, again.slot_bits, again.ciphertexts) == (
            p.slots,
            p.slot_bits,
            p.ciphertexts,
        )
        assert p.to_json()["kind"] == packing.PACKING_KIND
        assert p.to_json()["version"] == 1


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.update(kind="smpcloud.paillier.public_key"),
        lambda d: d.update(version=2),
        lambda d: d.update(extra=1),
        lambda d: d.pop("length"),
        lambda d: d.update(length=True),
        lambda d: d.update(length=50.0),
        lambda d: d.update(length="50"),
        lambda d: d.update(min_value="0"),
        lambda d: d.update(min_value=None),
        lambda d: d.update(max_additions=0),
        lambda d: d.update(frac_bits=99),
    ],
)
def test_json_decoding_is_strict(mutate: object) -> None:
    data = layout().to_json()
    mutate(data)  # type: ignore[operator]
    with pytest.raises(InvalidInputError):
        Packing.from_json(data)


def test_json_decoding_refuses_non_objects() -> None:
    for data in (None, [], "packing", 3):
        with pytest.raises(InvalidInputError):
            Packing.from_json(data)


# ----------------------------------------------------------------------- pack / unpack


def test_pack_is_the_documented_integer() -> None:
    p = layout(length=3, min_value=-2, max_value=2, frac_bits=0, max_additions=4)
    # offsets u = v + 2; slot_bits = bit_length(4 * 4) = 5.
    assert p.slot_bits == 5
    (plaintext,) = packing.pack([-2, 0, 2], p)
    assert plaintext == 0 + (2 << 5) + (4 << 10)


def test_packed_integers_add_slot_wise_without_encryption() -> None:
    p = layout(length=200, max_additions=7)
    vectors = [[((i * 37 + k * 11) % 201 - 100) / 100 for i in range(200)] for k in range(7)]
    packed = [packing.pack(v, p) for v in vectors]
    sums = [sum(column) for column in zip(*packed)]
    assert packing.unpack_sums(sums, p, 7) == exact_sum(vectors, 16)
    floats = packing.unpack(sums, p, 7)
    assert floats.dtype == np.float64
    assert floats.tolist() == [s / 2**16 for s in exact_sum(vectors, 16)]


def test_pack_accepts_lists_tuples_and_arrays_of_ints_and_floats() -> None:
    p = layout(length=4, min_value=-3, max_value=3, frac_bits=2, max_additions=1)
    expected = packing.pack([-3.0, -1.0, 0.0, 3.0], p)
    for values in ([-3, -1, 0, 3], (-3, -1, 0, 3), np.array([-3, -1, 0, 3], dtype=np.int8)):
        assert packing.pack(values, p) == expected
    assert packing.unpack_sums(expected, p, 1) == [-12, -4, 0, 12]


def test_pack_slots_in_pieces_equals_pack_whole() -> None:
    p = layout(length=100)
    values = [(i - 50) / 50 for i in range(100)]
    slots = packing.to_slots(values, p)
    per = p.slots
    pieces = packing.pack_slots(slots[:per], p) + packing.pack_slots(slots[per:], p)
    assert pieces == packing.pack(values, p)


def test_pack_slots_rejects_bad_arrays() -> None:
    p = layout(length=4)
    with pytest.raises(InvalidInputError):
        packing.pack_slots(np.zeros(4, dtype=np.int64), p)  # type: ignore[arg-type]
    with pytest.raises(OverflowDetectedError):
        packing.pack_slots(np.array([p.span + 1], dtype=np.uint64), p)


# --------------------------------------------------------------------- overflow, inputs


@pytest.mark.parametrize(
    ("bad", "index"),
    [
        (1.0000001, 3),
        (-1.5, 0),
        (float("nan"), 7),
        (float("inf"), 9),
        (-float("inf"), 2),
        (1e300, 5),
    ],
)
def test_out_of_range_values_raise_before_encryption(bad: float, index: int) -> None:
    p = layout(length=10)
    values = [0.5] * 10
    values[index] = bad
    with pytest.raises(OverflowDetectedError, match=f"1 value\\(s\\).*first at index {index}"):
        packing.to_slots(values, p)


def test_overflow_messages_do_not_echo_the_value() -> None:
    p = layout(length=3)
    with pytest.raises(OverflowDetectedError) as info:
        packing.to_slots([0.0, 1.2345678, -7.654321], p)
    message = str(info.value)
    assert "2 value(s)" in message
    assert "first at index 1" in message
    assert "1.2345678" not in message
    assert "7.654321" not in message


def test_range_edges_are_accepted() -> None:
    p = layout(length=2, min_value=-0.75, max_value=0.25)
    assert packing.unpack_sums(packing.pack([-0.75, 0.25], p), p, 1) == [
        round(-0.75 * 2**16),
        round(0.25 * 2**16),
    ]


def test_integer_values_are_checked_exactly_against_float_bounds() -> None:
    p = layout(length=1, min_value=-1.5, max_value=1.5, frac_bits=0)
    assert packing.unpack_sums(packing.pack([-1], p), p, 1) == [-1]
    for bad in (-2, 2):
        with pytest.raises(OverflowDetectedError):
            packing.pack([bad], p)
    wide = layout(length=1, min_value=-10, max_value=10, frac_bits=0)
    with pytest.raises(OverflowDetectedError):
        packing.pack(np.array([2**63 + 5], dtype=np.uint64), wide)


@pytest.mark.parametrize(
    "values",
    [[0.0] * 9, [0.0] * 11, [[0.0] * 10], ["a"] * 10, [True] * 10, np.zeros((2, 5))],
)
def test_wrong_shape_or_type_is_invalid_input(values: object) -> None:
    with pytest.raises(InvalidInputError):
        packing.to_slots(values, layout(length=10))  # type: ignore[arg-type]


def test_unpack_detects_a_wrong_count_instead_of_wrapping() -> None:
    p = layout(length=5, max_additions=4)
    top = packing.pack([1.0] * 5, p)
    total = [3 * x for x in top]  # three maximal vectors added
    assert packing.unpack_sums(total, p, 3) == [3 * 2**16] * 5
    with pytest.raises(OverflowDetectedError, match="slot 0"):
        packing.unpack_sums(total, p, 2)


def test_unpack_detects_a_negative_or_oversized_plaintext() -> None:
    p = layout(length=5)
    with pytest.raises(OverflowDetectedError, match="outside"):
        packing.unpack_sums([-1], p, 1)
    with pytest.raises(OverflowDetectedError, match="outside"):
        packing.unpack_sums([1 << (p.slots * p.slot_bits)], p, 1)


def test_unpack_detects_non_zero_padding() -> None:
    p = layout(length=5)
    (plaintext,) = packing.pack([0.0] * 5, p)
    with pytest.raises(OverflowDetectedError, match="padding"):
        packing.unpack_sums([plaintext + (1 << (5 * p.slot_bits))], p, 1)


def test_unpack_refuses_bad_counts_and_lengths() -> None:
    p = layout(length=5, max_additions=3)
    plaintexts = packing.pack([0.0] * 5, p)
    for count in (0, 4, True, 1.0, None):
        with pytest.raises(InvalidInputError):
            packing.unpack_sums(plaintexts, p, count)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        packing.unpack_sums(plaintexts * 2, p, 1)
    with pytest.raises(InvalidInputError):
        packing.unpack_sums(["1"], p, 1)  # type: ignore[list-item]


# -------------------------------------------------------------------------- encryption


def test_encrypt_add_decrypt_signed_vectors(
    keys: tuple[paillier.PublicKey, paillier.PrivateKey],
) -> None:
    pk, sk = keys
    p = Packing.for_key(
        pk, length=300, min_value=-2.5, max_value=4.0, max_additions=5, frac_bits=10
    )
    vectors = [[-2.5 if i % 3 == 0 else 4.0 if i % 3 == 1 else -(i % 7) / 3 for i in range(300)]]
    vectors += [[((i * k) % 13 - 5) / 2 for i in range(300)] for k in range(1, 4)]
    cts = [packing.encrypt_vector(pk, v, p) for v in vectors]
    assert all(len(c) == p.ciphertexts for c in cts)
    total = [sum(column[1:], column[0]) for column in zip(*cts)]
    sums = packing.decrypt_vector(sk, total, p, len(vectors))
    assert sums.tolist() == [s / 2**10 for s in exact_sum(vectors, 10)]
    assert min(sums) < 0  # negative sums come back negative


def test_encrypt_vector_refuses_small_keys_and_out_of_range_values(
    keys: tuple[paillier.PublicKey, paillier.PrivateKey],
) -> None:
    pk, sk = keys
    big = layout(key_bits=2048)
    with pytest.raises(InvalidInputError, match="2048"):
        packing.encrypt_vector(pk, [0.0] * 50, big)
    with pytest.raises(InvalidInputError):
        packing.decrypt_vector(sk, [], big, 1)
    with pytest.raises(OverflowDetectedError):
        packing.encrypt_vector(pk, [0.0] * 49 + [2.0], layout())
    with pytest.raises(InvalidInputError):
        packing.encrypt_vector("pk", [0.0] * 50, layout())  # type: ignore[arg-type]


def test_decrypt_vector_detects_tampering(
    keys: tuple[paillier.PublicKey, paillier.PrivateKey],
) -> None:
    pk, sk = keys
    p = layout(length=5, max_additions=2)
    (c,) = packing.encrypt_vector(pk, [1.0] * 5, p)
    with pytest.raises(OverflowDetectedError):
        packing.decrypt_vector(sk, [-c], p, 1)  # the plaintext becomes negative
    with pytest.raises(OverflowDetectedError):
        packing.decrypt_vector(sk, [c + c + c], p, 2)  # three added, two declared
    with pytest.raises(InvalidInputError):
        packing.decrypt_vector(sk, [c, c], p, 1)
    with pytest.raises(InvalidInputError):
        packing.decrypt_vector("sk", [c], p, 1)  # type: ignore[arg-type]
    other_pk, _ = paillier.generate_keypair(BITS, insecure=True)
    (foreign,) = packing.encrypt_vector(other_pk, [1.0] * 5, p)
    with pytest.raises(KeyMismatchError):
        packing.decrypt_vector(sk, [foreign], p, 1)


def test_threshold_decryption_of_a_packed_aggregate() -> None:
    tpk, shares = threshold.deal(512, n=3, t=2, insecure=True)
    p = Packing.for_key(
        tpk.public_key, length=40, min_value=-8, max_value=8, max_additions=3, frac_bits=0
    )
    vectors = [[(i * k) % 17 - 8 for i in range(40)] for k in (1, 2, 5)]
    cts = [packing.encrypt_vector(tpk.public_key, v, p) for v in vectors]
    total = [a + b + c for a, b, c in zip(*cts)]
    partials = [[s.partial_decrypt(c) for s in shares[1:]] for c in total]
    sums = packing.combine_vector(tpk, partials, p, 3)
    assert sums.tolist() == [float(sum(col)) for col in zip(*vectors)]
    plaintexts = [threshold.combine(tpk, group) for group in partials]
    assert packing.unpack_sums(plaintexts, p, 3) == [sum(col) for col in zip(*vectors)]
    with pytest.raises(InvalidInputError):
        packing.combine_vector(tpk, partials[:-1], p, 3)
    with pytest.raises(OverflowDetectedError):
        packing.combine_vector(tpk, partials, p, 1)


def test_default_key_size_round_trip() -> None:
    pk, sk = paillier.generate_keypair()  # 3072 bits, the default
    p = Packing.for_key(
        pk, length=500, min_value=-1.0, max_value=1.0, max_additions=1000, frac_bits=20
    )
    vectors = [[((i * 7 + k) % 41 - 20) / 20 for i in range(500)] for k in range(2)]
    a, b = (packing.encrypt_vector(pk, v, p) for v in vectors)
    sums = packing.decrypt_vector(sk, [x + y for x, y in zip(a, b)], p, 2)
    assert sums.tolist() == [s / 2**20 for s in exact_sum(vectors, 20)]


def test_integers_wider_than_64_bits_are_an_overflow_not_a_type_error() -> None:
    p = layout(length=3, min_value=-10, max_value=10, frac_bits=0)
    with pytest.raises(OverflowDetectedError, match="first at index 1"):
        packing.to_slots([0, 2**70, -(2**70)], p)
    with pytest.raises(InvalidInputError):
        packing.to_slots([0, 2**70, "x"], p)

"""Field arithmetic against Python's exact integers as the independent reference."""

from __future__ import annotations

import gmpy2
import numpy as np
import pytest

from smpcloud.crypto.field import DEFAULT_FIELD, Field, random_words
from smpcloud.errors import InvalidInputError, OverflowDetectedError

F = DEFAULT_FIELD
M = F.modulus


def signed(v: int) -> int:
    v %= M
    return v - M if v > M // 2 else v


def test_default_moduli_are_distinct_primes_below_2_32() -> None:
    assert len(set(F.moduli)) == len(F.moduli)
    assert all(gmpy2.is_prime(p) and p < 2**32 for p in F.moduli)


def test_default_field_holds_int64_sums_over_a_million_parties() -> None:
    # The largest possible sum of 10^6 signed 64-bit values must be representable, signed.
    assert M // 2 > 10**6 * 2**63


@pytest.mark.parametrize("moduli", [(), (4,), (2,), (2**32 + 15,), (101, 101), (4294967291, 7.0)])
def test_bad_moduli_are_refused(moduli: tuple[int, ...]) -> None:
    with pytest.raises(InvalidInputError):
        Field(moduli)  # type: ignore[arg-type]


def test_int64_extremes_round_trip() -> None:
    v = np.array([0, 1, -1, 2**63 - 1, -(2**63), 123456789, -987654321], dtype=np.int64)
    assert (F.to_int64(F.from_ints(v)) == v).all()


def test_big_values_need_exact_conversion() -> None:
    big = [2**80 + 3, -(2**80) - 7, M // 2, -(M // 2)]
    x = F.from_ints(big)
    assert F.to_ints(x).tolist() == big
    with pytest.raises(OverflowDetectedError):
        F.to_int64(x)


def test_just_outside_int64_is_detected() -> None:
    for v in (2**63, -(2**63) - 1):
        with pytest.raises(OverflowDetectedError):
            F.to_int64(F.from_ints([v]))


def test_arithmetic_matches_python_integers() -> None:
    a_ints = [signed(int.from_bytes(random_words(2).tobytes(), "big")) for _ in range(200)]
    b_ints = [signed(int.from_bytes(random_words(2).tobytes(), "big")) for _ in range(200)]
    a, b = F.from_ints(a_ints), F.from_ints(b_ints)
    assert F.to_ints(F.add(a, b)).tolist() == [signed(x + y) for x, y in zip(a_ints, b_ints)]
    assert F.to_ints(F.sub(a, b)).tolist() == [signed(x - y) for x, y in zip(a_ints, b_ints)]
    assert F.to_ints(F.mul(a, b)).tolist() == [signed(x * y) for x, y in zip(a_ints, b_ints)]
    assert F.to_ints(F.neg(a)).tolist() == [signed(-x) for x in a_ints]
    assert F.to_ints(F.mul_int(a, -12345)).tolist() == [signed(-12345 * x) for x in a_ints]
    assert F.to_ints(F.add_int(a, 2**70)).tolist() == [signed(x + 2**70) for x in a_ints]
    assert F.to_int(F.dot(a, b)) == signed(sum(x * y for x, y in zip(a_ints, b_ints)))
    assert F.to_ints(F.sum([a, b, a])).tolist() == [
        signed(2 * x + y) for x, y in zip(a_ints, b_ints)
    ]


def test_inverse() -> None:
    a = F.random(500)
    a[:, a[0] == 0] = 1  # avoid the (negligibly likely) zero residue
    a[1][a[1] == 0] = 1
    a[2][a[2] == 0] = 1
    assert (F.mul(a, F.inverse(a)) == 1).all()
    with pytest.raises(InvalidInputError, match="not invertible"):
        F.inverse(F.from_ints([0]))


def test_to_float_matches_exact() -> None:
    vals = [0, 5, -5, 2**70, -(2**70) + 11]
    got = F.to_float(F.from_ints(vals), scale=4.0)
    assert np.allclose(got, [v / 4 for v in vals], rtol=1e-15, atol=0)


def test_from_ints_refuses_floats_and_2d() -> None:
    with pytest.raises(InvalidInputError, match="encode floats"):
        F.from_ints(np.array([1.5]))
    with pytest.raises(InvalidInputError, match="1-D"):
        F.from_ints(np.zeros((2, 2), dtype=np.int64))


def test_validate_catches_out_of_field_residues() -> None:
    x = F.from_ints([1, 2, 3])
    x[1, 2] = F.moduli[1]
    with pytest.raises(InvalidInputError, match="outside the field"):
        F.validate(x)
    with pytest.raises(InvalidInputError, match="shape"):
        F.validate(np.zeros((2, 3), dtype=np.uint64))


def test_random_elements_are_in_range_and_not_constant() -> None:
    x = F.random(10_000)
    F.validate(x)
    assert len(np.unique(x[0])) > 9_990

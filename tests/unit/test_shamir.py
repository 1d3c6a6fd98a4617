"""Shamir sharing: reconstruction, thresholds, error paths, encoding."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from smpcloud.crypto import shamir
from smpcloud.crypto.field import DEFAULT_FIELD, Field
from smpcloud.crypto.shamir import Share
from smpcloud.errors import (
    InvalidInputError,
    OverflowDetectedError,
    ShareError,
    ThresholdNotMetError,
)

SMALL_FIELD = Field((2147483647,))  # one Mersenne prime: a genuine prime field


def test_scalar_round_trip_with_every_subset_of_3_of_5() -> None:
    shares = shamir.share(-123456789, n=5, t=3)
    for subset in itertools.combinations(shares, 3):
        assert shamir.reconstruct(subset) == -123456789


def test_vector_of_a_million_values() -> None:
    v = np.arange(-500_000, 500_000, dtype=np.int64) * 7_919_000_001
    shares = shamir.share(v, n=5, t=3)
    assert np.array_equal(shamir.reconstruct([shares[4], shares[0], shares[2]]), v)


def test_lagrange_coefficients_satisfy_interpolation_identity() -> None:
    # For f(x) = x^j with j < t, sum lambda_i f(x_i) must equal f(0) (1 for j = 0, else 0).
    xs = [2, 5, 7, 11]
    lam = shamir.lagrange_coefficients(xs)
    m = DEFAULT_FIELD.modulus
    for j in range(len(xs)):
        assert sum(l * pow(x, j, m) for l, x in zip(lam, xs)) % m == (1 if j == 0 else 0)


def test_more_than_t_shares_also_reconstruct() -> None:
    shares = shamir.share([1, -2, 3], n=6, t=2)
    assert shamir.reconstruct(shares).tolist() == [1, -2, 3]


def test_t_equals_one_gives_copies_and_t_equals_n_needs_all() -> None:
    assert all(shamir.reconstruct([s]) == 9 for s in shamir.share(9, n=4, t=1))
    shares = shamir.share(9, n=4, t=4)
    assert shamir.reconstruct(shares) == 9
    with pytest.raises(ThresholdNotMetError, match="3 of 4"):
        shamir.reconstruct(shares[:3])


def test_fewer_than_t_shares_of_different_secrets_look_alike() -> None:
    # With t=2, one share of a secret is a uniform field element whatever the secret:
    # its low bit must be ~fair for secret 0 as for secret 1 (statistical, 8 sd margin).
    zeros = [int(shamir.share(0, n=2, t=2)[0].y[0, 0]) & 1 for _ in range(4000)]
    assert abs(sum(zeros) - 2000) < 8 * 32


@pytest.mark.parametrize(("n", "t"), [(5, 0), (5, 6), (0, 0), (2**32, 3)])
def test_bad_parameters(n: int, t: int) -> None:
    with pytest.raises(InvalidInputError):
        shamir.share(1, n=n, t=t)


def test_share_refuses_floats() -> None:
    with pytest.raises(InvalidInputError):
        shamir.share([1.5, 2.0], n=3, t=2)  # type: ignore[list-item]


def test_threshold_not_met_message_counts() -> None:
    shares = shamir.share(5, n=5, t=3)
    with pytest.raises(ThresholdNotMetError, match="2 of 3"):
        shamir.reconstruct(shares[:2])
    with pytest.raises(ThresholdNotMetError):
        shamir.reconstruct([])


def test_duplicate_x_is_a_share_error() -> None:
    shares = shamir.share(5, n=5, t=3)
    with pytest.raises(ShareError, match="duplicate"):
        shamir.reconstruct([shares[0], shares[0], shares[1]])


def test_mixed_fields_lengths_and_thresholds_are_share_errors() -> None:
    a = shamir.share(5, n=3, t=2)
    b = shamir.share(5, n=3, t=2, field=SMALL_FIELD)
    with pytest.raises(ShareError, match="different fields"):
        shamir.reconstruct([a[0], b[1]])
    v = shamir.share([1, 2], n=3, t=2)
    with pytest.raises(ShareError, match="different lengths"):
        shamir.reconstruct([a[0], v[1]])
    c = shamir.share(5, n=3, t=3)
    with pytest.raises(ShareError, match="thresholds"):
        shamir.reconstruct([a[0], c[1]])


def test_small_prime_field_works_too() -> None:
    shares = shamir.share([-5, 1000], n=4, t=3, field=SMALL_FIELD)
    assert shamir.reconstruct(shares[1:]).tolist() == [-5, 1000]


def test_large_sums_need_exact_mode() -> None:
    big = [2**62, 2**62]
    total = [shamir.share(np.array(big), n=3, t=2) for _ in range(4)]
    summed = [sum(parts[i] for parts in total[1:]) + total[0][i] for i in range(3)]
    with pytest.raises(OverflowDetectedError):
        shamir.reconstruct(summed[:2])
    assert shamir.reconstruct(summed[:2], exact=True).tolist() == [2**64, 2**64]


def test_local_linear_operations() -> None:
    a = shamir.share([10, -20], n=3, t=2)
    b = shamir.share([1, 2], n=3, t=2)
    combo = [3 * x - y + 7 for x, y in zip(a, b)]
    assert shamir.reconstruct(combo[1:]).tolist() == [3 * 10 - 1 + 7, 3 * -20 - 2 + 7]
    with pytest.raises(ShareError, match="different parties"):
        _ = a[0] + b[1]


def test_repr_redacts_values() -> None:
    s = shamir.share(31337, n=2, t=2)[0]
    assert "redacted" in repr(s) and str(int(s.y[0, 0])) not in repr(s)


def test_bytes_round_trip_and_strict_decoding() -> None:
    s = shamir.share([3, -4, 5], n=3, t=2)
    data = s[1].to_bytes()
    back = Share.from_bytes(data)
    assert back.x == 2 and back.t == 2 and np.array_equal(back.y, s[1].y)
    assert shamir.reconstruct([back, s[0]]).tolist() == [3, -4, 5]
    with pytest.raises(ShareError):
        Share.from_bytes(data + b"\x00")
    with pytest.raises(ShareError):
        Share.from_bytes(data[:-1])
    with pytest.raises(ShareError):
        Share.from_bytes(b"XXXX" + data[4:])
    with pytest.raises(ShareError, match="another field"):
        Share.from_bytes(data, field=SMALL_FIELD)
    out_of_field = bytearray(data)
    out_of_field[-4:] = b"\xff\xff\xff\xff"
    with pytest.raises(ShareError, match="outside the field"):
        Share.from_bytes(bytes(out_of_field))

"""Laws of the sharings key generation rests on: Shamir over Z_P (BGW) and over the integers."""

from __future__ import annotations

import itertools
import math

import gmpy2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smpcloud.crypto.integer_sharing import (
    SMALL_FACTOR_BOUND,
    coefficient_bits,
    field_prime,
    integer_lagrange,
    integer_shares,
    interpolate_mod,
    share_mod,
    share_mod_many,
)
from smpcloud.errors import InvalidInputError

PRIME = field_prime(300)


@pytest.mark.parametrize("bits", [64, 300, 2056, 4400])
def test_the_sharing_modulus_exceeds_2_to_the_bits_and_has_no_small_factor(bits: int) -> None:
    m = field_prime(bits)
    assert m > 1 << bits
    assert math.gcd(m, int(gmpy2.primorial(SMALL_FACTOR_BOUND))) == 1
    assert m - (1 << bits) < 10_000


@settings(max_examples=60, deadline=None)
@given(st.integers(-(1 << 280), 1 << 280), st.integers(1, 4), st.integers(0, 3))
def test_share_then_interpolate_returns_the_secret(secret: int, tau: int, extra: int) -> None:
    points = list(range(1, tau + 2 + extra))
    assert interpolate_mod(points, share_mod(secret, points, tau, PRIME), PRIME) == secret % PRIME


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(-(1 << 140), 1 << 140), min_size=6, max_size=6), st.sampled_from([3, 5, 7])
)
def test_bgw_products_of_summed_shares_open_to_the_product(values: list[int], n: int) -> None:
    """The law the products, theta' and X rest on: sum the parties' degree-tau shares,
    multiply pointwise, add a degree-2tau sharing of z: interpolation gives x y + z."""
    tau = (n - 1) // 2
    points = list(range(1, n + 1))
    xs, ys, zs = values[:2], values[2:4], values[4:6]
    x_shares = [share_mod(v, points, tau, PRIME) for v in xs]
    y_shares = [share_mod(v, points, tau, PRIME) for v in ys]
    z_shares = [share_mod(v, points, 2 * tau, PRIME) for v in zs]
    h = [
        (sum(s[j] for s in x_shares) * sum(s[j] for s in y_shares) + sum(s[j] for s in z_shares))
        % PRIME
        for j in range(n)
    ]
    assert interpolate_mod(points, h, PRIME) == (sum(xs) * sum(ys) + sum(zs)) % PRIME


def test_many_at_once_shares_like_one_at_a_time() -> None:
    points = [1, 2, 3]
    shares = share_mod_many([5, -7, 1 << 200], points, 1, PRIME)
    for k, secret in enumerate([5, -7, 1 << 200]):
        assert interpolate_mod(points, [shares[x][k] for x in points], PRIME) == secret % PRIME


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 1 << 300), st.sampled_from([(3, 2), (3, 3), (4, 2), (5, 3), (7, 4)]))
def test_integer_lagrange_gives_delta_times_the_secret_for_every_t_subset(
    secret: int, shape: tuple[int, int]
) -> None:
    n, t = shape
    delta = math.factorial(n)
    points = list(range(1, n + 1))
    shares = integer_shares(delta * secret, points, t - 1, coefficient_bits(delta << 300, t - 1))
    for subset in itertools.combinations(points, t):
        mu = integer_lagrange(subset, delta)
        assert sum(m * shares[x - 1] for m, x in zip(mu, subset, strict=True)) == (
            delta * delta * secret
        )


def test_integer_shares_subtract_the_coefficients() -> None:
    """Shares of a secret are at most the secret: a public offset keeps every share positive."""
    shares = integer_shares(10**50, [1, 2, 3], 2, 100)
    assert all(s <= 10**50 for s in shares)


def test_bad_points_and_degrees_are_refused() -> None:
    with pytest.raises(InvalidInputError):
        share_mod(1, [1, 1, 2], 1, PRIME)
    with pytest.raises(InvalidInputError):
        share_mod(1, [0, 1], 1, PRIME)
    with pytest.raises(InvalidInputError):
        integer_shares(1, [1, 2], -1, 10)
    with pytest.raises(InvalidInputError):
        integer_lagrange([1, 2, 4], 1)  # 8/3 is not an integer: Delta too small
    with pytest.raises(InvalidInputError):
        interpolate_mod([1, 2], [1], PRIME)

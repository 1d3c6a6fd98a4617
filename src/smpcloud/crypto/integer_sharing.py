"""Shamir sharing of big integers for key generation: over a large prime field, and over Z.

Two kinds of sharing serve :mod:`smpcloud.mpc.dkg`:

* **Over a large ring Z_P** (P without prime factors below 1000, :func:`field_prime`;
  :func:`share_mod`, :func:`share_mod_many`, :func:`interpolate_mod`), P larger than any value
  opened, so an opened field element *is* the integer. This is BGW's setting (Ben-Or,
  Goldwasser, Wigderson 1988): with n >= 2 tau + 1 parties, shares of degree tau multiply
  locally into shares of degree 2 tau, and adding a random sharing of zero of the same degree
  before opening makes the opened polynomial uniformly random but for its constant term (so the
  opening reveals the product only). Perfectly hiding against tau parties.
* **Over the integers** (:func:`integer_shares`, :func:`integer_lagrange`): a secret S that is
  a multiple of Delta = n! is shared as S - a_1 x - ... - a_k x^k with a_j uniform in
  [0, 2^coefficient_bits). The shares of any k parties are statistically close (within
  k * 2^-STATISTICAL_BITS) to those of any other secret of the same bound, when
  coefficient_bits >= STATISTICAL_BITS + bits(S bound) + k + 1 (:func:`coefficient_bits`;
  the argument of Rabin, Crypto 1998, and Damgård-Thorbek, PKC 2006: the polynomial that
  moves a secret to another while fixing k shares has integer coefficients when the secrets
  differ by a multiple of Delta, and they are small next to the coefficient range). With the
  Delta-scaled Lagrange coefficients (integers), sum_j lambda_j f(j) = Delta * f(0):
  interpolation "in the exponent" of a group of unknown order, as threshold Paillier needs.
  The coefficients are subtracted so that shares of a positive secret offset by a public
  multiple stay positive (see :mod:`smpcloud.mpc.dkg.exponent`).

Randomness: OS CSPRNG (``secrets``). Raises :class:`~smpcloud.errors.InvalidInputError` on
bad parameters.
"""

from __future__ import annotations

import math
import os
import secrets
from collections.abc import Sequence
from functools import lru_cache
from typing import Final

import gmpy2

from smpcloud.errors import InvalidInputError

#: Statistical hiding of every mask and integer sharing in key generation: 2^-128.
STATISTICAL_BITS: Final = 128


#: Every prime factor of a sharing modulus exceeds this (and so the number of parties).
SMALL_FACTOR_BOUND: Final = 1000


@lru_cache(maxsize=32)
def field_prime(bits: int) -> int:
    """Return the sharing modulus for ``bits``: the smallest m > 2^bits with no prime factor
    below SMALL_FACTOR_BOUND. Every party derives the same one.

    Not necessarily prime, and it need not be (searching a 4,400-bit prime costs each holder
    over a second): Shamir sharing and BGW multiplication over Z_m only ever invert differences
    of evaluation points (below the number of parties, so units mod m), and Z_m is, by the CRT,
    a product of rings Z_(q^e) with q > 1000 in each of which the sharing is perfectly hiding
    (the argument of :mod:`smpcloud.crypto.field`). Values below m are read as integers.
    """
    if bits < 8:
        raise InvalidInputError("field too small")
    small = gmpy2.primorial(SMALL_FACTOR_BOUND)
    m = (gmpy2.mpz(1) << bits) + 1
    while gmpy2.gcd(m, small) != 1:
        m += 2
    return int(m)


def _check_points(xs: Sequence[int], modulus: int | None = None) -> None:
    if len(set(xs)) != len(xs) or any(x < 1 for x in xs):
        raise InvalidInputError(f"evaluation points {list(xs)} must be distinct and positive")
    if modulus is not None and max(xs) >= modulus:
        raise InvalidInputError("evaluation point not below the field's modulus")


def _evaluate(coefficients: Sequence[int], x: int) -> int:
    acc = 0
    for c in reversed(coefficients):
        acc = acc * x + c
    return acc


def share_mod(secret: int, xs: Sequence[int], degree: int, prime: int) -> list[int]:
    """Shamir-share ``secret`` (any integer, taken mod P) with a random polynomial of ``degree``.

    Args:
        secret: the constant term.
        xs: the evaluation points (the parties' ids).
        degree: the polynomial degree (tau for inputs, 2 tau for sharings of zero).
        prime: the field's modulus P.

    Returns:
        f(x) mod P for each x in ``xs``.

    Raises:
        InvalidInputError: repeated or non-positive points, or a negative degree.
    """
    shares = share_mod_many([secret], xs, degree, prime)
    return [shares[x][0] for x in xs]


def uniform_mod_many(count: int, prime: int) -> list[int]:
    """``count`` uniform elements of GF(P) from one OS CSPRNG read (bias below 2^-128 each)."""
    size = (prime.bit_length() + STATISTICAL_BITS + 7) // 8
    raw = os.urandom(count * size)
    return [int.from_bytes(raw[i : i + size], "big") % prime for i in range(0, len(raw), size)]


def share_mod_many(
    secrets_: Sequence[int], xs: Sequence[int], degree: int, prime: int
) -> dict[int, list[int]]:
    """Shamir-share each of ``secrets_`` like :func:`share_mod`, drawing all coefficients at once.

    Returns:
        For each point x, the list of f_k(x) mod P, one per secret, in order.

    Raises:
        InvalidInputError: repeated or non-positive points, or a negative degree.
    """
    _check_points(xs, prime)
    if degree < 0:
        raise InvalidInputError("degree must be non-negative")
    randomness = uniform_mod_many(len(secrets_) * degree, prime)
    out: dict[int, list[int]] = {x: [] for x in xs}
    for k, secret in enumerate(secrets_):
        coefficients = [secret % prime, *randomness[k * degree : (k + 1) * degree]]
        for x in xs:
            out[x].append(_evaluate(coefficients, x) % prime)
    return out


def lagrange_at_zero(xs: Sequence[int], modulus: int) -> list[int]:
    """Lagrange coefficients at 0 for the points ``xs`` mod ``modulus``: f(0) = sum_j l_j f(x_j).

    Raises:
        InvalidInputError: repeated or non-positive points, or points not below the modulus.
    """
    _check_points(xs, modulus)
    out = []
    for xj in xs:
        num, den = 1, 1
        for xm in xs:
            if xm != xj:
                num = num * -xm % modulus
                den = den * (xj - xm) % modulus
        out.append(num * pow(den, -1, modulus) % modulus)
    return out


def interpolate_mod(xs: Sequence[int], values: Sequence[int], prime: int) -> int:
    """Return f(0) mod P for the polynomial through (xs, values) (degree < len(xs)).

    Raises:
        InvalidInputError: mismatched lengths, repeated or non-positive points.
    """
    if len(xs) != len(values):
        raise InvalidInputError(f"{len(values)} values for {len(xs)} points")
    lam = lagrange_at_zero(xs, prime)
    return sum(c * v for c, v in zip(lam, values, strict=True)) % prime


def coefficient_bits(secret_bound: int, degree: int) -> int:
    """Bits of the random coefficients that hide a secret below ``secret_bound`` over Z."""
    return STATISTICAL_BITS + secret_bound.bit_length() + degree + 1


def integer_shares(secret: int, xs: Sequence[int], degree: int, bits: int) -> list[int]:
    """Share ``secret`` over the integers: f(x) = secret - a_1 x - ... - a_k x^k, a_j < 2^bits.

    Args:
        secret: the constant term (a multiple of Delta for the hiding argument).
        xs: the evaluation points.
        degree: k = threshold - 1.
        bits: coefficient size, from :func:`coefficient_bits`.

    Returns:
        f(x) for each x (exact integers, possibly negative).

    Raises:
        InvalidInputError: repeated or non-positive points, or a negative degree.
    """
    _check_points(xs)
    if degree < 0:
        raise InvalidInputError("degree must be non-negative")
    coefficients = [secret] + [-secrets.randbits(bits) for _ in range(degree)]
    return [_evaluate(coefficients, x) for x in xs]


def integer_lagrange(xs: Sequence[int], delta: int) -> list[int]:
    """Return the integers mu_j = Delta * prod_{m != j} x_m / (x_m - x_j).

    For any integer polynomial f of degree < len(xs), sum_j mu_j f(x_j) = Delta * f(0).

    Raises:
        InvalidInputError: repeated or non-positive points, or a Delta that the denominators
            do not divide (Delta must be a multiple of n! for points in 1..n).
    """
    _check_points(xs)
    out = []
    for j, xj in enumerate(xs):
        num, den = delta, 1
        for m, xm in enumerate(xs):
            if m != j:
                num *= xm
                den *= xm - xj
        if num % den:
            raise InvalidInputError(f"Delta={delta} is not divisible by the denominator {den}")
        out.append(num // den)
    return out


def delta_of(parties: int) -> int:
    """Return Delta = parties!."""
    return math.factorial(parties)


__all__ = [
    "SMALL_FACTOR_BOUND",
    "STATISTICAL_BITS",
    "coefficient_bits",
    "delta_of",
    "field_prime",
    "integer_lagrange",
    "integer_shares",
    "interpolate_mod",
    "lagrange_at_zero",
    "share_mod",
    "share_mod_many",
    "uniform_mod_many",
]

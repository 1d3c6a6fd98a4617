"""Random primes and safe primes from the OS CSPRNG (gmpy2 primality tests, numpy sieving).

A safe prime p = 2q + 1 has q prime too; threshold Paillier (Shoup 2000; Damgård-Jurik 2001)
needs n = p·q with both factors safe so that the group of squares mod n is cyclic of order
p'q' with no small subgroups. Safe primes are rare (density ~ 1/ln(p)^2), so candidates are
sieved in bulk: an interval of q values is struck out wherever q or 2q + 1 has a small factor,
and only the survivors reach the (costly) probabilistic tests.
"""

from __future__ import annotations

import secrets
from functools import cache

import gmpy2
import numpy as np
import numpy.typing as npt

from smpcloud.errors import InvalidInputError

_MR_ROUNDS = 50  # gmpy2.is_prime(x, 50): GMP runs Baillie-PSW, then 26 Miller-Rabin rounds
_SIEVE_WIDTH = 1 << 15  # candidates per sieved interval
_SIEVE_BOUND = 1 << 16  # small primes used for sieving


@cache
def _small_primes() -> npt.NDArray[np.int64]:
    flags = np.ones(_SIEVE_BOUND, dtype=bool)
    flags[:2] = False
    for i in range(2, int(_SIEVE_BOUND**0.5) + 1):
        if flags[i]:
            flags[i * i :: i] = False
    return np.flatnonzero(flags)[1:].astype(np.int64)  # odd primes only


def _random_odd(bits: int) -> int:
    """A uniform odd integer with exactly ``bits`` bits and its top two bits set."""
    return secrets.randbits(bits) | (3 << (bits - 2)) | 1


def random_prime(bits: int, *, blum: bool = False) -> int:
    """Return a uniformly chosen prime of exactly ``bits`` bits with its top two bits set.

    Two such primes multiply to a number of exactly 2·bits bits. With ``blum``, the prime is
    also ≡ 3 (mod 4) (a Blum prime, as the DJN fast Paillier encryption wants).

    Raises:
        InvalidInputError: bits < 16.
    """
    if bits < 16:
        raise InvalidInputError(f"prime size {bits} bits is too small")
    while True:
        candidate = gmpy2.mpz(_random_odd(bits) | (3 if blum else 1))
        if gmpy2.is_prime(candidate, _MR_ROUNDS):
            return int(candidate)


def random_safe_prime(bits: int) -> int:
    """Return a random safe prime p = 2q + 1 of exactly ``bits`` bits (top two bits set).

    Raises:
        InvalidInputError: bits < 16.
    """
    if bits < 16:
        raise InvalidInputError(f"safe prime size {bits} bits is too small")
    small = _small_primes()
    two = gmpy2.mpz(2)
    while True:
        # q0 odd with bits-1 bits; candidates q = q0 + 2k keep p = 2q + 1 at `bits` bits.
        q0 = _random_odd(bits - 1)
        if (q0 + 2 * _SIEVE_WIDTH).bit_length() != bits - 1:
            continue
        bad = np.zeros(_SIEVE_WIDTH, dtype=bool)
        residues = np.array([q0 % int(r) for r in small], dtype=np.int64)
        inv2 = (small + 1) // 2  # 2^-1 mod r
        # q ≡ 0 (mod r)  <=>  k ≡ -q0 / 2;   2q + 1 ≡ 0  <=>  q ≡ (r - 1) / 2.
        k_q = ((small - residues) % small) * inv2 % small
        k_p = (((small - 1) // 2 - residues) % small) * inv2 % small
        for r, a, b in zip(small.tolist(), k_q.tolist(), k_p.tolist(), strict=True):
            if r >= _SIEVE_WIDTH:
                if a < _SIEVE_WIDTH:
                    bad[a] = True
                if b < _SIEVE_WIDTH:
                    bad[b] = True
            else:
                bad[a::r] = True
                bad[b::r] = True
        for k in np.flatnonzero(~bad).tolist():
            q = gmpy2.mpz(q0 + 2 * k)
            p = 2 * q + 1
            if gmpy2.powmod(two, p - 1, p) != 1 or gmpy2.powmod(two, q - 1, q) != 1:
                continue
            if gmpy2.is_prime(q, _MR_ROUNDS) and gmpy2.is_prime(p, _MR_ROUNDS):
                return int(p)

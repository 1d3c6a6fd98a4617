"""The arithmetic of a jointly generated RSA modulus: sieving by construction, trial division,
and the Boneh-Franklin biprimality test.

Pure functions of public parameters and of one party's own shares; the network rounds that
combine them live in :mod:`smpcloud.mpc.dkg`. The construction follows Boneh and Franklin
("Efficient generation of shared RSA keys", Crypto 1997 / JACM 2001) with the sieving of
Malkin, Wu and Boneh (NDSS 1999) done as in Chen et al. ("Multiparty generation of an RSA
modulus", Crypto 2020): the parties choose the residues of p and q modulo each small prime
first, so that p and q are free of small factors by construction.

**Shape of a candidate.** With ``half = bits / 2`` and n parties, party i holds an integer
share s_i of p (and likewise of q) and

    p = OFFSET + s_1 + ... + s_n,   OFFSET = 3 * 2^(half - 2),
    0 <= s_i < 2^(half - 2 - ceil(log2 n)),

so p lies in [3 * 2^(half-2), 2^half) and N = pq has exactly ``bits`` bits whatever the shares.
Party 1's share is 3 mod 4 and every other share is 0 mod 4 (OFFSET is 0 mod 4), so
p = q = 3 (mod 4), as the biprimality test needs. Likewise for each odd prime l <= n (only 3
for three or four parties; 3 and 5 for five or six), where Shamir sharing mod l is impossible
(it needs l > n): party 1's share makes p = q = l - 1 (mod l) and every other share is 0 mod l
(:data:`FIXED_RESIDUE`). These residues are public, as p = q = 3 (mod 4) is in every
Boneh-Franklin protocol: given N (which fixes (p mod l)(q mod l)) they reveal at most
log2(l - 1) more bits about the pair (p, q): 1 bit for three holders, 3 bits for five, against
factoring a 1024-bit p. In exchange no candidate is lost to l: (l/(l-1))^2 fewer candidates
(2.25x fewer for three holders).

**Sieving by construction** (:func:`assemble_shares`). For each prime l of the sieve (the odd
primes above n up to a bound chosen so that their product M leaves room for randomness, see
:func:`sieve_parameters`), the parties hold additive residues a_i of p mod l and b_i of q mod l
whose sums satisfy (sum a_i)(sum b_i) != 0 mod l; the rounds in :mod:`smpcloud.mpc.dkg.sieve`
establish that by opening N mod l (which the final N reveals anyway) and redrawing only the
residues that gave 0. Party i then builds s_i by the Chinese remainder theorem modulo 4LM
(L the product of the fixed primes l <= n) and adds a uniform multiple of 4LM. So p and q have
no prime factor below the sieve's bound, by construction.

**Trial division** (:func:`has_small_factor`): N is public, so gcd(N, primorial(B)) = 1
proves that neither p nor q has a prime factor below B (2^20 by default), at about 1 ms per
2048-bit candidate, staged so that most candidates are rejected by the cheap first stages.

**Biprimality** (:func:`biprimality_base`, :func:`biprimality_exponent`,
:func:`passes_biprimality`): for g in Z*_N with Jacobi symbol (g/N) = 1,
g^(phi(N)/4) = +-1 mod N if N is a product of two distinct primes that are 3 mod 4; if N is
not of the form p^a q^b, at least half of such g fail (Boneh-Franklin, Sec. 3). phi(N)/4 =
(N + 1 - p - q)/4 is split as party 1's exponent (N + 1 - p_1 - q_1)/4 and every other
party's -(p_i + q_i)/4, so each party reveals only g raised to its own share. The bases are
derived from N and a context by hashing, so no party chooses them. N = p^a q^b with a or
b > 1 (the case the test misses, which Boneh and Franklin's second step excludes) arises from
honest random p, q with probability below 2^-400: in the semi-honest model this module does
not test for it, and says so in docs/security.md.

Reveals: nothing by itself; what the rounds reveal is stated in :mod:`smpcloud.mpc.dkg`.
Randomness: OS CSPRNG (``os.urandom``) for the multiple of 4LM; bases by SHAKE-256 of public data.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Final

import gmpy2
import numpy as np
import numpy.typing as npt

from smpcloud.errors import InvalidInputError

#: Public trial division of every candidate N goes up to this bound (primes below 2^20).
TRIAL_DIVISION_BOUND: Final = 1 << 20
#: The stages of trial division: cheap small primorials first.
_TRIAL_STAGES: Final = (1 << 12, 1 << 16, TRIAL_DIVISION_BOUND)
#: Bits of fresh randomness above the CRT part of each share (the multiple of 4LM).
HIGH_RANDOM_BITS: Final = 64
#: p and q are this residue (l - 1) modulo each odd prime l up to the number of parties.
FIXED_RESIDUE: Final = -1
#: Smallest modulus the protocol generates (tests use 512; keys below 2048 need insecure=True).
MIN_BITS: Final = 256
_BASE_DOMAIN: Final = b"smpcloud/dkg/biprimality-base/v1"


@dataclass(frozen=True, slots=True)
class SieveParameters:
    """Public parameters of candidate generation for a ``bits``-bit modulus among ``parties``.

    Attributes:
        bits: size of N (p and q have bits / 2 bits each).
        parties: number of parties n.
        primes: the sieved primes l (odd, greater than n), increasing.
        modulus: M, the product of ``primes``.
        fixed: the odd primes up to n, where p and q are l - 1 mod l (public).
        share_bound: every share s_i lies in [0, share_bound).
        offset: OFFSET = 3 * 2^(half - 2), added once (by party 1).
        crt_modulus: 4 L M, L the product of ``fixed``: the CRT part of a share is below it.
        basis: CRT basis modulo 4LM: basis[k] = 1 mod primes[k], 0 mod the other primes,
            the fixed primes and 4.
        first_constant: the CRT part of party 1's share that does not depend on its residues:
            3 - OFFSET mod 4 and (l - 1) - OFFSET mod each fixed l, 0 mod M.
        high_range: the multiple of 4LM is drawn from [0, high_range).
    """

    bits: int
    parties: int
    primes: tuple[int, ...]
    modulus: int
    fixed: tuple[int, ...]
    share_bound: int
    offset: int
    crt_modulus: int = field(repr=False)
    basis: tuple[int, ...] = field(repr=False)
    first_constant: int = field(repr=False)
    high_range: int = field(repr=False)

    @property
    def half(self) -> int:
        """Bits of p and of q."""
        return self.bits // 2


@lru_cache(maxsize=16)
def sieve_parameters(bits: int, parties: int) -> SieveParameters:
    """Choose the sieve for a ``bits``-bit modulus among ``parties`` parties.

    The sieve takes consecutive odd primes above ``parties`` while 4LM stays below the share
    bound divided by 2^HIGH_RANDOM_BITS (so each share keeps 64 fresh random high bits above
    its residues): about the primes below 700 for 2048 bits, below 330 for 1024.

    Args:
        bits: modulus size, even, at least MIN_BITS.
        parties: number of parties, 2..100.

    Returns:
        The parameters (cached: every party computes the same ones).

    Raises:
        InvalidInputError: odd or too small ``bits``, or ``parties`` outside 2..100.
    """
    if not isinstance(bits, int) or bits % 2 or bits < MIN_BITS:
        raise InvalidInputError(f"modulus size {bits} must be even and at least {MIN_BITS}")
    if not isinstance(parties, int) or not 2 <= parties <= 100:
        raise InvalidInputError(f"{parties} parties: distributed key generation needs 2..100")
    half = bits // 2
    share_bound = 1 << (half - 2 - (parties - 1).bit_length())
    fixed = tuple(int(p) for p in _odd_primes_up_to(parties))
    small = 4 * math.prod(fixed)
    room = share_bound >> HIGH_RANDOM_BITS  # 4 L M must stay below this
    primes: list[int] = []
    modulus = 1
    candidate = gmpy2.mpz(parties)
    while True:
        candidate = gmpy2.next_prime(candidate)
        if small * modulus * int(candidate) >= room:
            break
        primes.append(int(candidate))
        modulus *= int(candidate)
    if not primes:
        raise InvalidInputError(f"a {bits}-bit modulus leaves no room for sieving")
    big = small * modulus
    offset = 3 << (half - 2)
    basis = []
    for prime in primes:
        rest = big // prime
        basis.append(rest * pow(rest, -1, prime) % big)
    first_constant = 0  # party 1: 3 - OFFSET mod 4, (l - 1) - OFFSET mod each fixed l, 0 mod M
    for factor, residue in ((4, 3), *((f, f + FIXED_RESIDUE) for f in fixed)):
        rest = big // factor
        first_constant += (residue - offset) % factor * (rest * pow(rest, -1, factor) % big)
    return SieveParameters(
        bits=bits,
        parties=parties,
        primes=tuple(primes),
        modulus=modulus,
        fixed=fixed,
        share_bound=share_bound,
        offset=offset,
        crt_modulus=big,
        basis=tuple(basis),
        first_constant=first_constant % big,
        high_range=(share_bound - big) // big,
    )


def _odd_primes_up_to(bound: int) -> list[int]:
    return [p for p in range(3, bound + 1) if all(p % d for d in range(2, p))]


def assemble_shares(
    params: SieveParameters, residues: npt.NDArray[np.int64], *, first: bool
) -> list[int]:
    """Build this party's integer shares of p (or q) for K candidates from its residues.

    Args:
        params: the sieve.
        residues: this party's additive residues, shape (K, number of sieved primes): row k
            holds the residues of candidate k's p modulo each sieved prime, in order.
        first: True for party 1, which also holds OFFSET and the residue 3 mod 4.

    Returns:
        For each candidate, OFFSET + s_1 for party 1 and s_i for the others, where s_i equals
        the residue (party 1: residue - OFFSET) modulo every sieved prime; party 1's makes p
        3 mod 4 and l - 1 mod each fixed prime l, the others' are 0 there; plus a uniform
        multiple of 4LM below share_bound.

    Raises:
        InvalidInputError: a shape that does not match the sieve, or residues out of range.
    """
    primes = np.array(params.primes, dtype=np.int64)
    if residues.ndim != 2 or residues.shape[1] != len(primes):
        raise InvalidInputError(
            f"residues of shape {residues.shape} for a sieve of {len(primes)} primes"
        )
    if residues.size and (residues.min() < 0 or (residues >= primes).any()):
        raise InvalidInputError("a residue is outside [0, l)")
    if first:
        offsets = np.array([params.offset % prime for prime in params.primes], dtype=np.int64)
        residues = (residues - offsets) % primes
    # sum_l r_l * basis_l as one integer matrix product on 16-bit limbs of the basis, then
    # carries: every entry stays below 2^(10 + 16 + 8) (residues < 2^10, 16-bit limbs,
    # at most 2^8 primes), so int64 never wraps.
    limbs = _basis_limbs(params)
    wide = residues @ limbs
    for column in range(wide.shape[1] - 1):
        wide[:, column + 1] += wide[:, column] >> 16
        wide[:, column] &= 0xFFFF
    raw = wide.astype("<u2")  # every limb is below 2^16 after the carries
    big = params.crt_modulus
    extra = params.first_constant if first else 0
    randomness = os.urandom(len(raw) * 32)  # 256 bits mod a ~66-bit range: bias < 2^-190
    shares = []
    for k, row in enumerate(raw):
        value = int.from_bytes(row.tobytes(), "little")
        high = int.from_bytes(randomness[32 * k : 32 * k + 32], "big") % params.high_range
        share = (value + extra) % big + big * high
        shares.append(share + params.offset if first else share)
    return shares


@lru_cache(maxsize=16)
def _basis_limbs(params: SieveParameters) -> npt.NDArray[np.int64]:
    width = params.crt_modulus.bit_length() // 16 + 2
    out = np.zeros((len(params.basis), width), dtype=np.int64)
    for row, value in enumerate(params.basis):
        for column in range(width):
            out[row, column] = (value >> (16 * column)) & 0xFFFF
    return out


@lru_cache(maxsize=4)
def _primorial(bound: int) -> gmpy2.mpz:
    return gmpy2.primorial(bound - 1)


def has_small_factor(candidate: int, bound: int = TRIAL_DIVISION_BOUND) -> bool:
    """Return True iff the public ``candidate`` has a prime factor below ``bound``.

    Staged gcds with primorials (2^12, 2^16, then ``bound``): most composites stop at the
    first, cheap stage.
    """
    value = gmpy2.mpz(candidate)
    for stage in (*(s for s in _TRIAL_STAGES if s < bound), bound):
        if gmpy2.gcd(_primorial(stage) % value, value) != 1:
            return True
    return False


def biprimality_base(modulus: int, context: bytes, index: int) -> int:
    """Return the ``index``-th public test base g for N = ``modulus``: (g/N) = 1, 1 < g < N.

    Every party derives the same bases from N and ``context`` (SHAKE-256, then the first value
    with Jacobi symbol 1), so no party chooses them.
    """
    n = gmpy2.mpz(modulus)
    size = (n.bit_length() + 7) // 8 + 16  # 128 extra bits: the reduction mod N is unbiased
    counter = 0
    while True:
        h = hashlib.shake_256(_BASE_DOMAIN)
        for part in (n.to_bytes((n.bit_length() + 7) // 8, "big"), context):
            h.update(len(part).to_bytes(4, "big") + part)
        h.update(index.to_bytes(4, "big") + counter.to_bytes(4, "big"))
        g = gmpy2.mpz(int.from_bytes(h.digest(size), "big")) % n
        if g > 1 and gmpy2.jacobi(g, n) == 1:
            return int(g)
        counter += 1


def biprimality_exponent(modulus: int, p_share: int, q_share: int, *, first: bool) -> int:
    """Return this party's exponent in the biprimality test (negative except for party 1).

    Party 1: (N + 1 - p_1 - q_1) / 4; party i > 1: -(p_i + q_i) / 4. They sum to phi(N) / 4.

    Raises:
        InvalidInputError: shares that break the mod-4 convention (not divisible by 4).
    """
    total = modulus + 1 - p_share - q_share if first else -(p_share + q_share)
    if total % 4:
        raise InvalidInputError("shares break the 3 mod 4 convention of the biprimality test")
    return total // 4


def biprimality_value(modulus: int, base: int, exponent: int) -> int:
    """Return base^exponent mod N (a negative exponent inverts; 0 if base is not a unit)."""
    n = gmpy2.mpz(modulus)
    if gmpy2.gcd(base, n) != 1:
        return 0
    return int(gmpy2.powmod(base, exponent, n))


def passes_biprimality(modulus: int, values: Sequence[int]) -> bool:
    """Return True iff the parties' values multiply to +1 or -1 mod N (one test passed)."""
    product = gmpy2.mpz(1)
    n = gmpy2.mpz(modulus)
    for value in values:
        if not 0 < value < n:
            return False
        product = product * value % n
    return product in (1, n - 1)


def check_modulus(modulus: int, bits: int) -> None:
    """Check the public properties of a generated modulus that a dealer's modulus also has.

    Exactly ``bits`` bits, 1 mod 4 (p = q = 3 mod 4), not a square, no prime factor below
    TRIAL_DIVISION_BOUND. (Primality of p and q is the biprimality test's part.)

    Raises:
        InvalidInputError: the first property that fails.
    """
    n = gmpy2.mpz(modulus)
    if n.bit_length() != bits:
        raise InvalidInputError(f"modulus has {n.bit_length()} bits, not {bits}")
    if n % 4 != 1:
        raise InvalidInputError("modulus is not 1 mod 4")
    if gmpy2.is_square(n):
        raise InvalidInputError("modulus is a square")
    if has_small_factor(int(n)):
        raise InvalidInputError(f"modulus has a prime factor below {TRIAL_DIVISION_BOUND}")


def expected_candidates(bits: int, parties: int) -> float:
    """Rough expected number of candidate moduli before a biprime (for progress messages).

    From Mertens' theorem: a number free of primes below B is prime with probability about
    e^gamma ln(B) / ln(x) (squared for p and q), and a sieved candidate survives trial
    division with probability (prod over odd l < B of (1 - 1/l)) / (prod over the sieve), squared.
    """
    params = sieve_parameters(bits, parties)
    e_gamma = 1.781072418
    log_b = math.log(TRIAL_DIVISION_BOUND)
    prime_after_trial = (e_gamma * log_b / (params.half * math.log(2))) ** 2
    sieved = math.prod(1 - 1 / prime for prime in (*params.fixed, *params.primes))
    survives = (2 / (e_gamma * log_b) / sieved) ** 2
    return 1 / (prime_after_trial * survives)


__all__ = [
    "HIGH_RANDOM_BITS",
    "MIN_BITS",
    "TRIAL_DIVISION_BOUND",
    "SieveParameters",
    "assemble_shares",
    "biprimality_base",
    "biprimality_exponent",
    "biprimality_value",
    "check_modulus",
    "expected_candidates",
    "has_small_factor",
    "passes_biprimality",
    "sieve_parameters",
]

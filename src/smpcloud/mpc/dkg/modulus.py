"""From sieved residues to a biprime N = pq that no holder can factor.

Three phases over a batch of K candidates, each holder holding integer shares (p_i, q_i):

1. **Products** (:func:`open_products`): N_k = p_k q_k for every candidate, by one BGW
   multiplication over GF(P), P the first prime above 2^(bits + 8) (so the opened element is
   N itself): shares of degree tau, local products of degree 2 tau, plus a random sharing of
   zero of degree 2 tau, opened. Reveals N_k only (perfectly, against tau semi-honest holders).
2. **Trial division** (:func:`trial_division`): N_k is public; each holder checks its slice
   of the candidates (k = its position mod n) for prime factors below 2^20 and broadcasts the
   verdicts, so the work is split n ways. A holder that lied here could only discard a good
   candidate or keep a bad one, which the biprimality test then rejects.
3. **Biprimality** (:func:`find_biprime`): Boneh-Franklin's test on the survivors, in chunks
   of :func:`chunk_size` candidates so that the search stops soon after the first success;
   each holder broadcasts g^(its exponent) mod N
   (:func:`smpcloud.crypto.biprime.biprimality_exponent`).
   A candidate that passes one base is tested with FINAL_TESTS more before it is accepted:
   a non-biprime (not of the form p^a q^b) passes all with probability below 2^-FINAL_TESTS.

Reveals: every candidate N_k (rejected or kept), and for each tested candidate and base g the
values g^(x_i) mod N of each holder's share x_i of phi(N)/4 (Boneh-Franklin's semi-honest
analysis: for the kept N this reveals nothing that g^(phi/4) = +-1 does not, under the
hardness of computing discrete logarithms / factoring N).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np

from smpcloud.crypto.biprime import (
    biprimality_base,
    biprimality_exponent,
    biprimality_value,
    has_small_factor,
    passes_biprimality,
)
from smpcloud.crypto.integer_sharing import field_prime, lagrange_at_zero, share_mod_many
from smpcloud.errors import KeyGenerationError
from smpcloud.mpc.dkg.exchange import Exchange, pack, unpack, width_of

#: Bases tried on a candidate that passed its first base, before it is accepted.
FINAL_TESTS: Final = 80
#: Candidates tested per round of the biprimality search, for a 2048-bit modulus; scaled
#: inversely with the size (a test's exponentiation costs less than a round trip at 1024
#: bits, more at 3072): see :func:`chunk_size`.
CHUNK: Final = 48


def chunk_size(bits: int) -> int:
    """Candidates per biprimality round for a ``bits``-bit modulus (16 at least)."""
    return max(16, CHUNK * 2048 // bits)


@dataclass(frozen=True, slots=True)
class Candidate:
    """One candidate modulus and this holder's shares of its factors."""

    index: int
    modulus: int
    p_share: int
    q_share: int


async def open_products(
    exchange: Exchange,
    xs: Sequence[int],
    ys: Sequence[int],
    *,
    tau: int,
    prime: int,
    what: str,
    plus: Sequence[int] | None = None,
) -> list[int]:
    """Open (sum_i x_i)(sum_i y_i) + sum_i z_i mod P for each position, by one BGW multiplication.

    Args:
        exchange: this holder's rounds.
        xs, ys: this holder's additive shares (integers, any sign), one per product.
        plus: this holder's additive shares z_i of a value added before opening (a mask);
            none by default.
        tau: sharing degree (2 tau + 1 <= n).
        prime: the field; the true product must be below it to be read as an integer.
        what: the round's name, for errors.

    Returns:
        The opened products, as integers in [0, P).

    Raises:
        KeyGenerationError: a silent holder or a malformed message.
    """
    points = exchange.holders
    count = len(xs)
    addends = [0] * count if plus is None else list(plus)
    factors = share_mod_many([*xs, *ys], points, tau, prime)
    # the addend rides on the sharing of zero: degree 2 tau, constant z_i
    masks = share_mod_many(addends, points, 2 * tau, prime)
    per_point = {x: [*factors[x], *masks[x]] for x in points}
    width = width_of(prime)
    received = await exchange.swap(
        f"{what}: shares", {p: pack(per_point[p], width) for p in exchange.peers}
    )
    total = np.array(per_point[exchange.me], dtype=object)
    for peer, data in received.items():
        total = total + np.array(
            unpack(data, width, 3 * count, sender=peer, what=f"{what}: shares"), dtype=object
        )
    mine = [
        (int(total[k]) * int(total[count + k]) + int(total[2 * count + k])) % prime
        for k in range(count)
    ]
    opened = await exchange.broadcast(f"{what}: opening", pack(mine, width))
    by_point = {exchange.me: mine}
    for peer, data in opened.items():
        by_point[peer] = unpack(data, width, count, sender=peer, what=f"{what}: opening")
    lam = lagrange_at_zero(points, prime)
    return [
        sum(lam[j] * by_point[x][k] for j, x in enumerate(points)) % prime for k in range(count)
    ]


async def open_moduli(
    exchange: Exchange, p_shares: Sequence[int], q_shares: Sequence[int], *, bits: int, tau: int
) -> list[int]:
    """Open N_k = p_k q_k for every candidate of the batch (phase 1)."""
    return await open_products(
        exchange, p_shares, q_shares, tau=tau, prime=field_prime(bits + 8), what="products"
    )


async def trial_division(exchange: Exchange, moduli: Sequence[int]) -> list[int]:
    """Return the indices of the candidates without a prime factor below 2^20 (phase 2)."""
    position = exchange.holders.index(exchange.me)
    n = len(exchange.holders)
    mine = np.zeros(len(moduli), dtype=bool)
    for k in range(position, len(moduli), n):
        mine[k] = not has_small_factor(moduli[k])
    verdicts = await exchange.broadcast("trial division", np.packbits(mine).tobytes())
    keep = mine.copy()
    size = (len(moduli) + 7) // 8
    for peer, data in verdicts.items():
        if len(data) != size:
            raise KeyGenerationError(
                f"holder {peer} sent a trial-division verdict of {len(data)} bytes",
                holders=(peer,),
            )
        theirs = np.unpackbits(np.frombuffer(data, dtype=np.uint8))[: len(moduli)].astype(bool)
        slice_ = np.arange(exchange.holders.index(peer), len(moduli), n)
        keep[slice_] = theirs[slice_]
    return [int(k) for k in np.flatnonzero(keep)]


async def _test(
    exchange: Exchange, candidates: Sequence[Candidate], bases: Sequence[int], context: bytes
) -> list[bool]:
    """One round: test candidate j with base index bases[j]; True where it passed."""
    first = exchange.me == exchange.holders[0]
    values = []
    for candidate, base in zip(candidates, bases, strict=True):
        g = biprimality_base(candidate.modulus, context, base)
        e = biprimality_exponent(
            candidate.modulus, candidate.p_share, candidate.q_share, first=first
        )
        values.append(biprimality_value(candidate.modulus, g, e))
    width = width_of(max(c.modulus for c in candidates))
    received = await exchange.broadcast("biprimality test", pack(values, width))
    theirs = {
        peer: unpack(data, width, len(values), sender=peer, what="biprimality test")
        for peer, data in received.items()
    }
    return [
        passes_biprimality(c.modulus, [values[j], *(t[j] for t in theirs.values())])
        for j, c in enumerate(candidates)
    ]


async def find_biprime(
    exchange: Exchange, candidates: Sequence[Candidate], context: bytes
) -> tuple[Candidate | None, int]:
    """Run the biprimality search over ``candidates`` in order (phase 3).

    Returns:
        The first candidate that passed 1 + FINAL_TESTS bases (or None) and the number of
        candidates tested.
    """
    tested = 0
    start = 0
    size = chunk_size(max((c.modulus.bit_length() for c in candidates), default=2048))
    while start < len(candidates):
        chunk = list(candidates[start : start + size])
        passed = await _test(exchange, chunk, [0] * len(chunk), context)
        for j, ok in enumerate(passed):
            if not ok:
                continue
            tested += j + 1
            found = chunk[j]
            confirm = await _test(
                exchange, [found] * FINAL_TESTS, list(range(1, FINAL_TESTS + 1)), context
            )
            if all(confirm):
                return found, tested
            start += j + 1
            break
        else:
            tested += len(chunk)
            start += len(chunk)
    return None, tested


__all__ = [
    "CHUNK",
    "FINAL_TESTS",
    "Candidate",
    "chunk_size",
    "find_biprime",
    "open_moduli",
    "open_products",
    "trial_division",
]

"""Sieving by construction: residues of p and q modulo each small prime, jointly non-zero.

For K candidates and every prime l of the sieve (:func:`smpcloud.crypto.biprime.sieve_parameters`),
each holder draws additive residues a_i, b_i in Z_l; the holders compute
N mod l = (sum a_i)(sum b_i) mod l with one BGW multiplication over GF(l) (Shamir shares of
degree tau, products of degree 2 tau, re-randomised by a sharing of zero; n >= 2 tau + 1 and
l > n) and open it. Where it is 0, those residues are drawn again, in the next round, for the
failing (candidate, prime) entries only; so every kept pair has p mod l != 0 and q mod l != 0.

Reveals: N mod l for the kept residues of every candidate, which the candidate's N reveals
anyway once published (and nothing about p mod l, q mod l beyond their product), and the
zeros of discarded draws (independent of everything kept). Perfectly hiding against tau
semi-honest holders. All primes and residues fit in uint16 on the wire (l < 2^16).

Randomness: ``os.urandom`` words reduced mod l (bias below l / 2^64 < 2^-50 per residue, a
statistical distance that does not accumulate into anything the protocol reveals).
"""

from __future__ import annotations

import os

import numpy as np
import numpy.typing as npt

from smpcloud.crypto.biprime import SieveParameters
from smpcloud.crypto.integer_sharing import lagrange_at_zero
from smpcloud.errors import KeyGenerationError
from smpcloud.mpc.dkg.exchange import Exchange

Matrix = npt.NDArray[np.int64]


def uniform_mod(moduli: Matrix) -> Matrix:
    """One uniform residue per entry of ``moduli`` (each below 2^16), from the OS CSPRNG."""
    words = np.frombuffer(os.urandom(8 * moduli.size), dtype=np.uint64).reshape(moduli.shape)
    return (words % moduli.astype(np.uint64)).astype(np.int64)


def share_small(
    secrets_: Matrix, moduli: Matrix, degree: int, points: tuple[int, ...]
) -> list[Matrix]:
    """Shamir-share each entry mod its own prime: one array of shares per point."""
    coefficients = [uniform_mod(moduli) for _ in range(degree)]
    out = []
    for x in points:
        acc = np.zeros_like(secrets_)
        for c in reversed(coefficients):
            acc = (acc + c) * x % moduli
        out.append((acc + secrets_) % moduli)
    return out


def lagrange_small(primes: tuple[int, ...], points: tuple[int, ...]) -> Matrix:
    """lambda[j, k] = Lagrange coefficient at 0 of point j, mod primes[k]."""
    columns = [lagrange_at_zero(points, prime) for prime in primes]
    return np.array(columns, dtype=np.int64).T.copy()


async def sieve(
    exchange: Exchange, params: SieveParameters, count: int, tau: int
) -> tuple[Matrix, Matrix, int]:
    """Run the sieving rounds for ``count`` candidates.

    Args:
        exchange: this holder's rounds.
        params: the sieve (primes above the number of holders).
        count: K, the number of candidates.
        tau: the sharing degree, with 2 tau + 1 <= n.

    Returns:
        This holder's residues a (of p) and b (of q), each of shape (K, number of primes),
        and the number of rounds it took.

    Raises:
        KeyGenerationError: a holder went silent or sent a malformed message.
    """
    points = exchange.holders
    primes = np.array(params.primes, dtype=np.int64)
    width = len(primes)
    lam = lagrange_small(params.primes, points)
    a = np.zeros((count, width), dtype=np.int64)
    b = np.zeros((count, width), dtype=np.int64)
    pending = np.arange(count * width, dtype=np.int64)
    rounds = 0
    me = points.index(exchange.me)
    while pending.size:
        rounds += 1
        columns = pending % width
        moduli = primes[columns]
        a_new, b_new = uniform_mod(moduli), uniform_mod(moduli)
        shares = [
            share_small(a_new, moduli, tau, points),
            share_small(b_new, moduli, tau, points),
            share_small(np.zeros_like(a_new), moduli, 2 * tau, points),
        ]
        payloads = {
            peer: np.stack([s[points.index(peer)] for s in shares]).astype(np.uint16).tobytes()
            for peer in exchange.peers
        }
        received = await exchange.swap("sieve: shares of the residues", payloads)
        total = np.stack([s[me] for s in shares])
        for peer, data in received.items():
            total += _decode(data, (3, pending.size), peer, "sieve: shares of the residues")
        total %= moduli
        mine = (total[0] * total[1] + total[2]) % moduli
        opened = await exchange.broadcast("sieve: N mod l", mine.astype(np.uint16).tobytes())
        value = lam[me, columns] * mine % moduli
        for peer, data in opened.items():
            h = _decode(data, (pending.size,), peer, "sieve: N mod l")
            value = (value + lam[points.index(peer), columns] * h) % moduli
        ok = value != 0
        a.flat[pending[ok]] = a_new[ok]
        b.flat[pending[ok]] = b_new[ok]
        pending = pending[~ok]
    return a, b, rounds


def _decode(data: bytes, shape: tuple[int, ...], sender: int, what: str) -> Matrix:

    expected = 2 * int(np.prod(shape))
    if len(data) != expected:
        raise KeyGenerationError(
            f"holder {sender} sent {len(data)} bytes in '{what}', expected {expected}",
            holders=(sender,),
        )
    return np.frombuffer(data, dtype=np.uint16).reshape(shape).astype(np.int64)


__all__ = ["lagrange_small", "share_small", "sieve", "uniform_mod"]

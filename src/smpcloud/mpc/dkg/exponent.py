"""The threshold Paillier key from a shared biprime: d = 0 mod phi(N), d = 1 mod N, over Z.

Input: the public N and this holder's integer shares p_i, q_i, with phi(N) = sum_i phi_i
(party 1: phi_1 = N + 1 - p_1 - q_1; others: phi_i = -p_i - q_i). Output: this holder's key
share s_j, an integer, such that for any t holders S the Delta-scaled Lagrange combination
sum_{j in S} mu_j s_j equals Delta * d with d = 0 (mod phi(N)) and d = 1 (mod N): exactly the
relation a dealer's shares satisfy in Damgård-Jurik's scheme (:mod:`smpcloud.crypto.threshold`),
so partial decryption, its proof and combining are unchanged, as are the public key format,
the service and the clients. The construction is that of Nishide and Sakurai (2010) and
Veugen, Attema and Spini (eprint 2019/1136), rearranged so that d = 1 mod N needs no extra
public constant:

1. **theta** (:func:`invert_phi`): each holder draws beta_i < N and R_i < 2^128 n N; one BGW
   multiplication over a prime field above every value opens
   theta' = phi * beta + N * R (beta = sum beta_i, R = sum R_i). theta = theta' mod N =
   phi * beta mod N is uniform (beta is); the quotient is hidden by N R within 2^-128.
   With u = (Delta theta)^-1 mod N, gamma_i = beta_i u mod N are additive shares of some
   gamma' = (Delta phi)^-1 (mod N), gamma' < nN (each holder reduces its own term: no
   wrap-around is revealed). If theta is not a unit, a factor of N has been found: restart.
2. **X** (:func:`exponent_shares`): each holder draws rho_i < 2^128 n N and shares Delta * rho_i
   over the integers with degree t - 1 (:func:`smpcloud.crypto.integer_sharing.integer_shares`,
   coefficients subtracted, hiding within 2^-128), and one more BGW multiplication opens X = phi
   * gamma' + N * rho. X = Delta^-1 (mod N) (a check every holder makes: it fails only if some
   holder deviated), and X div N is hidden by rho. Then d = Delta X - N Delta rho = Delta phi
   gamma' is 0 mod phi and Delta * Delta^-1 = 1 mod N, and holder j's share is s_j = Delta X - N
   G(j), where G(j) is the sum of the integer shares it received: s_j = Delta phi gamma' + N
   A(j) >= 0, below :func:`~smpcloud.crypto.threshold_proofs.key_share_bound`.

Reveals: theta (uniform), theta' and X (statistically, nothing more: 2^-128), and to each
holder its own share. Fewer than t holders learn nothing about d (integer sharing of a
multiple of Delta, statistically hiding); fewer than n/2 learn nothing about phi (BGW with an
honest majority). Semi-honest model; a holder that deviates makes the X check or the self-test
decryption fail (:mod:`smpcloud.mpc.dkg.ceremony`), so a wrong key is never written.
"""

from __future__ import annotations

import math
import secrets

from smpcloud.crypto.integer_sharing import (
    STATISTICAL_BITS,
    coefficient_bits,
    delta_of,
    field_prime,
    integer_shares,
)
from smpcloud.crypto.threshold_proofs import key_share_bound
from smpcloud.errors import KeyGenerationError
from smpcloud.mpc.dkg.exchange import Exchange, pack, unpack, width_of
from smpcloud.mpc.dkg.modulus import Candidate, open_products


class NotAUnitError(KeyGenerationError):
    """theta shared a factor with N (probability about 2^-1000): restart the ceremony."""


def phi_share(candidate: Candidate, *, first: bool) -> int:
    """This holder's additive share of phi(N) = N + 1 - p - q."""
    shares = candidate.p_share + candidate.q_share
    return candidate.modulus + 1 - shares if first else -shares


def _mask_bound(modulus: int, holders: int) -> int:
    return (holders * modulus) << STATISTICAL_BITS


def _product_field(modulus: int, holders: int) -> int:
    # phi * beta + N * R < n N^2 + N n^2 2^128 N: the field is above every opened value.
    bound = holders * modulus * modulus + modulus * holders * _mask_bound(modulus, holders)
    return field_prime(bound.bit_length() + 8)


async def invert_phi(exchange: Exchange, candidate: Candidate, *, tau: int) -> int:
    """Phase 1: return this holder's additive share gamma_i of (Delta phi)^-1 mod N.

    Raises:
        NotAUnitError: theta is not invertible mod N (restart).
        KeyGenerationError: a silent holder or a malformed message.
    """
    n = len(exchange.holders)
    modulus = candidate.modulus
    first = exchange.me == exchange.holders[0]
    beta = secrets.randbelow(modulus)
    mask = secrets.randbelow(_mask_bound(modulus, n))
    prime = _product_field(modulus, n)
    (theta_prime,) = await open_products(
        exchange,
        [phi_share(candidate, first=first)],
        [beta],
        plus=[modulus * mask],
        tau=tau,
        prime=prime,
        what="theta",
    )
    theta = theta_prime % modulus
    delta = delta_of(n)
    if math.gcd(delta * theta, modulus) != 1:
        raise NotAUnitError("theta is not a unit mod N")
    u = pow(delta * theta, -1, modulus)
    return beta * u % modulus


async def exponent_shares(
    exchange: Exchange, candidate: Candidate, gamma: int, *, tau: int, threshold: int
) -> int:
    """Phase 2: return this holder's key share s_j (see the module docstring).

    Raises:
        KeyGenerationError: a silent holder, a malformed message, or X != Delta^-1 mod N
            (some holder deviated).
    """
    points = exchange.holders
    n = len(points)
    modulus = candidate.modulus
    first = exchange.me == points[0]
    delta = delta_of(n)
    rho = secrets.randbelow(_mask_bound(modulus, n))
    bits = coefficient_bits(delta * _mask_bound(modulus, n), threshold - 1)
    g_shares = integer_shares(delta * rho, points, threshold - 1, bits)
    width = width_of(abs(delta * _mask_bound(modulus, n)) + (n << (bits + 8 * n))) + 1
    received = await exchange.swap(
        "key: integer shares",
        {p: pack([g_shares[points.index(p)]], width, signed=True) for p in exchange.peers},
    )
    g_total = g_shares[points.index(exchange.me)]
    for peer, data in received.items():
        g_total += unpack(data, width, 1, sender=peer, what="key: integer shares", signed=True)[0]
    prime = _product_field(modulus, n)
    (x,) = await open_products(
        exchange,
        [phi_share(candidate, first=first)],
        [gamma],
        plus=[modulus * rho],
        tau=tau,
        prime=prime,
        what="key",
    )
    if x % modulus != pow(delta, -1, modulus):
        raise KeyGenerationError(
            "the key's check value X is not 1/Delta mod N: some holder deviated from the "
            "protocol (no key was written)"
        )
    share = delta * x - modulus * g_total
    if not 0 <= share < key_share_bound(n, modulus):
        raise KeyGenerationError("a key share fell outside its bound: some holder deviated")
    return share


__all__ = ["NotAUnitError", "exponent_shares", "invert_phi", "phi_share"]

"""Chaum-Pedersen proofs that a threshold Paillier key holder used its own key share.

Holder i proves log_base(value) = log_v(v_i) = Δ s_i without revealing s_i, for two squares mod
n^2: base = c^4 and value = c_i^2 for one partial decryption c_i = c^(2 Δ s_i)
(:meth:`smpcloud.crypto.threshold.KeyShare.partial_decrypt`, checked by
:func:`smpcloud.crypto.threshold.verify_partial`), or base = C^4 and value = P^2 for a batch
(``smpcloud.crypto.threshold_batch``). It is the Chaum-Pedersen proof of equality of discrete
logs, made non-interactive by Fiat-Shamir: the challenge hashes a domain, the whole key, the
holder, a context, the statement and the commitments, so a wrong partial is detected and its
holder named, and batch and single proofs (different domains) never stand in for each other.
The key and the scheme are in ``smpcloud.crypto.threshold``.

Reveals: nothing about the key share beyond the statement (honest-verifier zero-knowledge: the
response r + e Δ s_i hides e Δ s_i statistically, r having STATISTICAL_BITS bits more). A
proof for a wrong statement passes with probability about 2^-CHALLENGE_BITS per hash query
(soundness: ``smpcloud.crypto.threshold_batch``). Randomness: OS CSPRNG (``secrets``).
"""

from __future__ import annotations

import hashlib
import math
import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING

import gmpy2

from smpcloud.errors import VerificationError

if TYPE_CHECKING:
    from smpcloud.crypto.threshold import KeyShare, ThresholdPublicKey

CHALLENGE_BITS = 256  # Fiat-Shamir challenge length (well below p', q')
STATISTICAL_BITS = 128  # slack that hides e·Δ·s_i inside the prover's random exponent
_DOMAIN = b"smpcloud/threshold-paillier/partial-decryption/v1"


class InvalidPartialDecryptionError(VerificationError):
    """One or more partial decryptions failed their proof; ``holders`` names them (1-based)."""

    def __init__(self, holders: Sequence[int], detail: str = "") -> None:
        self.holders = tuple(sorted(holders))
        self.detail = detail
        who = ", ".join(str(h) for h in self.holders)
        extra = f" ({detail})" if detail else ""
        super().__init__(
            f"invalid partial decryption from key holder(s) {who}: proof failed{extra}"
        )

    def __reduce__(self) -> tuple[type[InvalidPartialDecryptionError], tuple[tuple[int, ...], str]]:
        # Pickle by (holders, detail), so the error survives a trip from a worker process.
        return (type(self), (self.holders, self.detail))


def length_prefixed(value: int) -> bytes:
    """Encode a non-negative integer for hashing: 4-byte big-endian length, then its bytes.

    Args:
        value: the integer (0 is one zero byte).

    Returns:
        The injective encoding (minimal big-endian bytes behind their length).
    """
    raw = int(value).to_bytes((int(value).bit_length() + 7) // 8 or 1, "big")
    return len(raw).to_bytes(4, "big") + raw


def key_share_bound(holders: int, modulus: int) -> int:
    """Return the bound below which every key share s_i of a key lies.

    A dealer's shares are below n^2 (they are reduced mod n m). Shares made without a dealer
    (:mod:`smpcloud.mpc.dkg`) are integers, larger by the statistical slack of sharing over Z
    (about 300 bits for three holders); the bound leaves room for both, and every proof's
    nonce is sized by it, so that a response hides any share of either kind.

    Args:
        holders: the number of key holders n (Delta = n!).
        modulus: the Paillier modulus.

    Returns:
        modulus^2 * 2^slack, slack = 2 STATISTICAL_BITS + 2 bits(Delta) + 2 (n + 2) bits(n) + 16.
    """
    delta = math.factorial(holders)
    slack = (
        2 * STATISTICAL_BITS
        + 2 * delta.bit_length()
        + 2 * (holders + 2) * holders.bit_length()
        + 16
    )
    return modulus * modulus << slack


def proof_nonce_bits(pk: ThresholdPublicKey) -> int:
    """Return the bit length of the prover's random exponent r under key pk.

    The witness Δ s_i is below Δ times :func:`key_share_bound`; r must exceed e times the
    witness by STATISTICAL_BITS, so that the response r + e Δ s_i hides it. Responses are
    bounded by 2^(this + 1).

    Args:
        pk: the threshold public key.

    Returns:
        bits(Δ key_share_bound) + CHALLENGE_BITS + STATISTICAL_BITS.
    """
    bound = key_share_bound(pk.holders, pk.n)
    return (pk.delta * bound).bit_length() + CHALLENGE_BITS + STATISTICAL_BITS


def _challenge(pk: ThresholdPublicKey, index: int, *values: object, domain: bytes = _DOMAIN) -> int:
    h = hashlib.sha256(domain)
    h.update(pk.digest)  # the whole key, hashed once per key object
    h.update(length_prefixed(index))
    h.update(length_prefixed(pk.verification_keys[index - 1]))
    for value in values:
        h.update(length_prefixed(int(value)))  # type: ignore[call-overload]
    return int.from_bytes(h.digest(), "big") >> (256 - CHALLENGE_BITS)


def prove_dleq(
    share: KeyShare,
    base: gmpy2.mpz,
    value: gmpy2.mpz,
    *,
    domain: bytes = _DOMAIN,
    context: tuple[int, ...] = (),
) -> tuple[int, int]:
    """Return a Chaum-Pedersen proof (e, z) that log_base(value) = log_v(v_i) = Δ s_i.

    The one proof of knowledge that both the single and the batched partial decryption use;
    base and value are squares mod n^2 (c^4 and c_i^2, or C^4 and P^2 for a batch). The
    challenge e hashes ``domain``, the key, the holder, ``context``, base, value and the
    commitments. Randomness: OS CSPRNG (r hides e Δ s_i statistically, STATISTICAL_BITS).

    Args:
        share: the prover's key share (index i and secret s_i).
        base: the base, a square mod n^2.
        value: base^(Δ s_i) mod n^2.
        domain: the challenge's domain separator (single or batch proof).
        context: integers the challenge also binds (the batch transcript's digest).

    Returns:
        The challenge e and the response z.
    """
    pk = share.public
    n2 = gmpy2.mpz(pk.public_key.n_squared)
    r = secrets.randbits(proof_nonce_bits(pk))
    a = gmpy2.powmod(base, r, n2)
    b = gmpy2.powmod(gmpy2.mpz(pk.v), r, n2)
    e = _challenge(pk, share.index, *context, base, value, a, b, domain=domain)
    return e, r + e * pk.delta * share.secret


def dleq_holds(
    pk: ThresholdPublicKey,
    index: int,
    base: gmpy2.mpz,
    value: gmpy2.mpz,
    challenge: int,
    response: int,
    *,
    domain: bytes = _DOMAIN,
    context: tuple[int, ...] = (),
) -> bool:
    """Check a proof made by :func:`prove_dleq`; base and value must be units mod n^2.

    Args:
        pk: the threshold public key.
        index: the prover's holder number, 1..holders (the caller has checked it).
        base: the statement's base.
        value: the statement's value.
        challenge: the proof's e.
        response: the proof's z.
        domain: the domain the proof was made under.
        context: the integers it was bound to.

    Returns:
        True iff the response and challenge are in range and the challenge recomputes.
    """
    if not 0 <= response < 1 << (proof_nonce_bits(pk) + 1):
        return False
    if not 0 <= challenge < 1 << CHALLENGE_BITS:
        return False
    n2 = gmpy2.mpz(pk.public_key.n_squared)
    e, z = challenge, response
    v_i = gmpy2.mpz(pk.verification_keys[index - 1])
    a = gmpy2.powmod(base, z, n2) * gmpy2.powmod(value, -e, n2) % n2
    b = gmpy2.powmod(gmpy2.mpz(pk.v), z, n2) * gmpy2.powmod(v_i, -e, n2) % n2
    return _challenge(pk, index, *context, base, value, a, b, domain=domain) == e


__all__ = [
    "CHALLENGE_BITS",
    "STATISTICAL_BITS",
    "InvalidPartialDecryptionError",
    "dleq_holds",
    "key_share_bound",
    "length_prefixed",
    "proof_nonce_bits",
    "prove_dleq",
]

"""Range proofs by bits: "each bit commitment opens to 0 or 1", one OR-proof per bit.

A value u in [0, U] is written u = sum_i w_i b_i with the weights of
:func:`smpcloud.crypto.decomposition.bit_weights` (whose 0/1 combinations are exactly [0, U]).
Each bit is committed as C_i = b_i H + r_i B (:mod:`smpcloud.crypto.pedersen`), and a
Cramer-Damgard-Schoenmakers OR-proof shows that C_i or C_i - H is a multiple of B, i.e. that
b_i is 0 or 1, without saying which. The value's commitment is *derived*, never sent:
C_u = sum_i w_i C_i = u H + (sum_i w_i r_i) B (:func:`value_commitment`), so a proof that each
b_i is a bit is a proof that the value committed in C_u lies in [0, U], exactly (no slack).

*The OR-proof, compact form.* Prover of bit b with C = b H + r B: for the other branch
d = 1 - b it picks e_d and z_d uniform mod l and sets a_d = z_d B - e_d X_d (X_0 = C,
X_1 = C - H); for its own branch it picks w and sets a_b = w B. Given the challenge e (mod l),
e_b = e - e_d and z_b = w + e_b r. It sends (C, e_0, z_0, z_1). The verifier sets
e_1 = e - e_0, recomputes a_0 = z_0 B - e_0 C and a_1 = z_1 B - e_1 (C - H), and accepts when
the challenge re-derived from a hash over the a's (by the caller: :mod:`smpcloud.crypto.validity`
hashes every bit of a ciphertext together with the rest of its proof) equals e.

Proves: each C_i commits to 0 or 1 (special soundness: two accepting transcripts with different
challenges give an opening of C_i to 0 or to 1; with Fiat-Shamir, in the random-oracle model,
soundness error about q / l for q hash queries, plus breaking the binding of the commitments,
i.e. the discrete logarithm in edwards25519 with nobody knowing log_B H). Reveals: nothing
about the bits (perfect honest-verifier zero knowledge; the commitments are perfectly hiding).
Bad input (a point or scalar that does not decode) raises
:class:`~smpcloud.errors.InvalidProofError` from :mod:`smpcloud.crypto.pedersen`.

Pure module: no sockets, no files, no global mutable state; randomness from ``secrets``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from smpcloud.crypto.decomposition import bit_weights, decompose
from smpcloud.crypto.pedersen import (
    SCALAR_BYTES,
    H,
    L,
    add,
    base_mul,
    mul,
    random_scalar,
    scalar_bytes,
    sub,
)

#: Bytes of one bit's proof: C, e_0, z_0, z_1.
BIT_PROOF_BYTES: Final = 4 * 32


@dataclass(frozen=True, slots=True)
class BitWitness:
    """The prover's state for one bit between its first message and its response.

    Attributes:
        bit: b, 0 or 1.
        blinding: r, the commitment's blinding.
        commitment: C = b H + r B.
        nonce: w, the real branch's nonce.
        fake_challenge: e_(1-b).
        fake_response: z_(1-b).
        first: (a_0, a_1), the first messages.
    """

    bit: int
    blinding: int
    commitment: bytes
    nonce: int
    fake_challenge: int
    fake_response: int
    first: tuple[bytes, bytes]


def commit_bit(bit: int) -> BitWitness:
    """Commit to a bit and make the OR-proof's first messages.

    Args:
        bit: 0 or 1.

    Returns:
        The witness; ``commitment`` and ``first`` go into the transcript.
    """
    r = random_scalar()
    rb = base_mul(r)
    c = add(H, rb) if bit else rb
    w = random_scalar()
    e_fake = random_scalar()
    z_fake = random_scalar()
    # The other branch's statement: X_0 = C (when b = 1) or X_1 = C - H (when b = 0).
    x_other = c if bit else sub(c, H)
    a_fake = sub(base_mul(z_fake), mul(e_fake, x_other))
    a_real = base_mul(w)
    first = (a_fake, a_real) if bit else (a_real, a_fake)
    return BitWitness(bit, r, c, w, e_fake, z_fake, first)


def respond_bit(witness: BitWitness, challenge: int) -> bytes:
    """Return the bit's proof C || e_0 || z_0 || z_1 for the challenge e (mod l)."""
    e_real = (challenge - witness.fake_challenge) % L
    z_real = (witness.nonce + e_real * witness.blinding) % L
    if witness.bit:
        e0, z0, z1 = witness.fake_challenge, witness.fake_response, z_real
    else:
        e0, z0, z1 = e_real, z_real, witness.fake_response
    return witness.commitment + scalar_bytes(e0) + scalar_bytes(z0) + scalar_bytes(z1)


def recompute_first(commitment: bytes, challenge: int, e0: int, z0: int, z1: int) -> bytes:
    """Return a_0 || a_1 as the verifier recomputes them from a bit's proof.

    Args:
        commitment: C, a decoded subgroup point.
        challenge: e mod l.
        e0: e_0; z0: z_0; z1: z_1 (canonical scalars).

    Returns:
        64 bytes: a_0 = z_0 B - e_0 C and a_1 = z_1 B - (e - e_0)(C - H).
    """
    e1 = (challenge - e0) % L
    a0 = sub(base_mul(z0), mul(e0, commitment))
    a1 = sub(base_mul(z1), mul(e1, sub(commitment, H)))
    return a0 + a1


def commit_value(value: int, span: int) -> tuple[list[BitWitness], int]:
    """Commit to the bits of value in [0, span] (weights of ``bit_weights(span)``).

    Args:
        value: u in [0, span].
        span: U >= 1.

    Returns:
        The bits' witnesses, and the blinding sum_i w_i r_i of the derived C_u.

    Raises:
        OverflowDetectedError: value outside [0, span].
        InvalidInputError: a bad span.
    """
    weights = bit_weights(span)
    witnesses = [commit_bit(b) for b in decompose(value, span)]
    blinding = sum(w * x.blinding for w, x in zip(weights, witnesses, strict=True)) % L
    return witnesses, blinding


def value_commitment(commitments: Sequence[bytes], span: int) -> bytes:
    """Return C_u = sum_i w_i C_i for the weights of ``bit_weights(span)``.

    Horner's rule with point additions for the power-of-two weights (two additions per bit),
    one scalar multiplication for the top weight.

    Args:
        commitments: the k bit commitments C_0 .. C_(k-1), decoded points.
        span: U >= 1 (k = bit_length(U)).

    Returns:
        The value's commitment (possibly the identity).
    """
    weights = bit_weights(span)
    k = len(weights)
    top = mul(weights[-1], commitments[k - 1])
    if k == 1:
        return top
    acc = commitments[k - 2]
    for i in range(k - 3, -1, -1):
        acc = add(add(acc, acc), commitments[i])
    return add(acc, top)


__all__ = [
    "BIT_PROOF_BYTES",
    "SCALAR_BYTES",
    "BitWitness",
    "commit_bit",
    "commit_value",
    "recompute_first",
    "respond_bit",
    "value_commitment",
]

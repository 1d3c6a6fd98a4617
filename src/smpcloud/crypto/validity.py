"""Validity proofs of Paillier reports: every value a ciphertext carries lies in [0, U].

A report is a list of Paillier ciphertexts; ciphertext j carries the plaintext

    m_j = K + sum_s W_s u_(j,s)  (mod n),   each u_(j,s) in [0, U],

with a public :class:`ProofLayout`: an unpacked task has one value per ciphertext (K = lo, the
encoded minimum, and W = 1); a packed task (:class:`~smpcloud.crypto.packing.Packing`) has
K = 0 and W_s = 2^(s slot_bits) for its ``slots`` real slots (the last ciphertext has fewer;
its padding slots are not in the sum, so they are proven zero for free). The client encrypts
each ciphertext itself, on a fixed DJN base derived from n alone (:class:`ReportBase`):
c = (1 + m n) h_s^rho mod n^2 with rho uniform in [0, 2^ceil(bits/2)), so it knows rho.

**The proof, per ciphertext** (one Fiat-Shamir challenge each, so a long vector is proved and
verified in independent chunks):

* for each slot, the bits of u in the weights of
  :func:`~smpcloud.crypto.decomposition.bit_weights` are committed in edwards25519 and each is
  proven a bit by an OR-proof (:mod:`smpcloud.crypto.range_proof`); the value's commitment
  C_u = u H + r B is derived from them, so u lies in [0, U] exactly;
* one Sigma protocol over the integers links the ciphertext to the slots' commitments: with
  alpha_s < 2^(k + 128 + S), beta_s mod l, gamma < 2^(ceil(bits/2) + 128 + S) (S = 48
  statistical bits) the prover sends A_s = alpha_s H + beta_s B and
  A = (1 + n sum_s W_s alpha_s) h_s^gamma mod n^2, and answers the 128-bit challenge e with
  z_s = alpha_s + e u_s, t_s = beta_s + e r_s mod l and z = gamma + e rho (integers). The
  verifier checks z_s < 2^(k + 128 + S + 1), z_s H + t_s B = A_s + e C_u and
  (1 + n sum_s W_s z_s) h_s^z = A c'^e mod n^2 with c' = c (1 + n)^(-K).

The challenge is SHA-512 over the domain, the caller's context (task, client, key), the
ciphertext index, the layout, the key, the ciphertext, every bit commitment, every OR-proof
first message, every A_s and A: e_or = digest mod l for the OR-proofs, e = the low 128 bits of
the digest for the link.

**Proves** (special soundness, ROM): two accepting transcripts with challenges differing by
d < 2^128 give openings of every bit commitment to 0 or 1 and, for each slot, d u_s and
z_s - z'_s congruent mod l and both below l/2 in absolute value (this is why
k + 128 + S + 2 < 252, so U < 2^72: :data:`MAX_SPAN_BITS`), hence equal over the integers;
then c'^d = (1 + n d sum_s W_s u_s) h_s^(z - z') and, h_s being an n-th residue and d < p, q
invertible mod n, m = K + sum_s W_s u_s mod n. Soundness error: about 2^-128 per ciphertext
(plus q / 2^128 for q hash queries in the random-oracle model). Assumptions: discrete logarithm
in edwards25519 and nobody knowing log_B H (binding of the commitments); the ciphertext's
hiding rests on DCR plus the DJN short-exponent assumption of :mod:`smpcloud.crypto.paillier`
(a short rho on a base h_s derived from n instead of a fresh random one: the base is public
either way).

**Reveals**: nothing beyond "each value lies in its range" and the sizes (honest-verifier zero
knowledge: the commitments are perfectly hiding, the OR-proofs perfectly simulatable, the
integer responses statistically within 2^-S of simulated ones). Who is trusted: nobody for
soundness (the verifier needs only public data); the prover's randomness for zero knowledge.
A client lying *within* its range is never detected.

**Bad input** raises :class:`~smpcloud.errors.InvalidProofError` with a stable ``check``:
``length`` (wrong number of ciphertexts or proof bytes), ``point`` (a point that does not
decode), ``bit`` (a bit's scalar not canonical), ``challenge`` (the re-derived challenge
differs: a bit that is not a bit, or a proof made for another context, ciphertext or layout),
``range`` (a response z_s too large), ``link`` (the ciphertext does not carry the committed
values); the message names the ciphertext, value and bit.

Pure module: no sockets, no files, no global mutable state; randomness from ``secrets``.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from typing import Final

import gmpy2
from gmpy2 import mpz

from smpcloud.crypto.pedersen import (
    POINT_BYTES,
    SCALAR_BYTES,
    H,
    L,
    add,
    base_mul,
    commit,
    decode_point,
    decode_scalar,
    mul,
    random_scalar,
    scalar_bytes,
)
from smpcloud.crypto.range_proof import (
    BIT_PROOF_BYTES,
    commit_value,
    recompute_first,
    respond_bit,
    value_commitment,
)
from smpcloud.crypto.report_layout import (
    BASE_DOMAIN,
    CHALLENGE_BITS,
    DIGEST_BYTES,
    MAX_SPAN_BITS,
    PROOF_DOMAIN,
    STATISTICAL_BITS,
    ProofLayout,
    ReportBase,
    nsq_bytes,
    z_bytes,
)
from smpcloud.errors import InvalidInputError, InvalidProofError, MalformedCiphertextError

_CHALLENGE_MASK: Final = (1 << CHALLENGE_BITS) - 1
# Order of the compact bit proof's parts: a bit proof is C || e0 || z0 || z1.
_BIT_E0: Final = POINT_BYTES
_BIT_Z0: Final = POINT_BYTES + SCALAR_BYTES
_BIT_Z1: Final = POINT_BYTES + 2 * SCALAR_BYTES


def _header(base: ReportBase, layout: ProofLayout, context: bytes) -> bytes:
    if not isinstance(context, bytes):
        raise InvalidInputError("the proof context must be bytes")
    return (
        PROOF_DOMAIN + len(context).to_bytes(8, "big") + context + layout.to_bytes() + base.digest
    )


def _challenge(header: bytes, index: int, c: int, nsq_bytes: int, *parts: bytes) -> bytes:
    h = hashlib.sha512(header)
    h.update(index.to_bytes(8, "big"))
    h.update(c.to_bytes(nsq_bytes, "big"))
    for part in parts:
        h.update(part)
    return h.digest()


def _split(digest: bytes) -> tuple[int, int]:
    value = int.from_bytes(digest, "little")
    return value % L, value & _CHALLENGE_MASK


def _weighted(values: Sequence[int], slot_bits: int) -> int:
    total = 0
    for s in range(len(values) - 1, -1, -1):
        total = (total << slot_bits) + values[s]
    return total


# ------------------------------------------------------------------------------------ prover


def _prove_one(
    base: ReportBase, layout: ProofLayout, header: bytes, index: int, values: Sequence[int]
) -> tuple[int, bytes]:
    n, nsq = base.n, base.n_squared
    span, k = layout.span, layout.bits
    m = layout.offset + _weighted(values, layout.slot_bits)
    rho = secrets.randbits(base.rho_bits)
    c = base.encrypt(m, rho)
    witnesses = []
    blindings = []
    for u in values:
        bits, r = commit_value(u, span)
        witnesses.append(bits)
        blindings.append(r)
    alpha_bits = k + CHALLENGE_BITS + STATISTICAL_BITS
    alphas = [secrets.randbits(alpha_bits) for _ in values]
    betas = [random_scalar() for _ in values]
    a_points = [commit(a, b) for a, b in zip(alphas, betas, strict=True)]
    gamma = secrets.randbits(base.rho_bits + CHALLENGE_BITS + STATISTICAL_BITS)
    a_big = (n * (_weighted(alphas, layout.slot_bits) % n) + 1) * base.power(gamma) % nsq
    commitments = b"".join(w.commitment for bits in witnesses for w in bits)
    firsts = b"".join(a for bits in witnesses for w in bits for a in w.first)
    digest = _challenge(
        header,
        index,
        c,
        base.nsq_bytes,
        commitments,
        firsts,
        b"".join(a_points),
        int(a_big).to_bytes(base.nsq_bytes, "big"),
    )
    e_or, e = _split(digest)
    out = [digest]
    out.extend(respond_bit(w, e_or) for bits in witnesses for w in bits)
    zs_bytes = layout.zs_bytes()
    for s, u in enumerate(values):
        out.append(a_points[s])
        out.append(scalar_bytes(betas[s] + e * blindings[s]))
        out.append((alphas[s] + e * u).to_bytes(zs_bytes, "little"))
    out.append(int(a_big).to_bytes(base.nsq_bytes, "big"))
    out.append((gamma + e * rho).to_bytes(base.z_bits // 8, "little"))
    return c, b"".join(out)


def prove_chunk(
    base: ReportBase, layout: ProofLayout, start: int, values: Sequence[int], context: bytes
) -> tuple[list[int], bytes]:
    """Encrypt and prove ciphertexts start, start + 1, ... of a report (a chunk of it).

    Args:
        base: the key's report base.
        layout: the report's layout.
        start: the index of the chunk's first ciphertext.
        values: the chunk's values u in [0, U], slot by slot (``layout.slots`` per ciphertext,
            fewer in the report's last); as ints.
        context: the caller's context bytes (task, client, key: see
            :mod:`smpcloud.protocol.report_proofs`).

    Returns:
        The chunk's ciphertexts (ints mod n^2) and its part of the proof (bytes).

    Raises:
        InvalidInputError: a chunk that does not start at a ciphertext or runs past the end.
        OverflowDetectedError: a value outside [0, U].
    """
    header = _header(base, layout, context)
    if not 0 <= start < layout.ciphertexts:
        raise InvalidInputError(f"chunk start {start} outside the report's ciphertexts")
    cut = []
    offset = 0
    index = start
    while offset < len(values):
        if index >= layout.ciphertexts:
            raise InvalidInputError("more values than the layout's ciphertexts hold")
        size = layout.slots_in(index)
        piece = list(values[offset : offset + size])
        if len(piece) != size:
            raise InvalidInputError("a chunk must end at a ciphertext's last slot")
        cut.append((index, piece))
        offset += size
        index += 1
    ciphertexts = []
    proofs = []
    for j, piece in cut:
        c, proof = _prove_one(base, layout, header, j, piece)
        ciphertexts.append(c)
        proofs.append(proof)
    return ciphertexts, b"".join(proofs)


def prove_report(
    base: ReportBase, layout: ProofLayout, values: Sequence[int], context: bytes
) -> tuple[list[int], bytes]:
    """Encrypt a report's values and prove that each lies in [0, U] (one process).

    Args:
        base: the key's report base.
        layout: the report's layout.
        values: ``layout.length`` values u in [0, U] (an unpacked task's encoded value minus
            its minimum; a packed task's slot values), as ints.
        context: the caller's context bytes.

    Returns:
        The ciphertexts (ints mod n^2, ``layout.ciphertexts`` of them) and the proof
        (``layout.proof_bytes(base.bits)`` bytes).

    Raises:
        InvalidInputError: not ``layout.length`` values.
        OverflowDetectedError: a value outside [0, U].
    """
    if len(values) != layout.length:
        raise InvalidInputError(f"{len(values)} values; the layout declares {layout.length}")
    return prove_chunk(base, layout, 0, values, context)


# ---------------------------------------------------------------------------------- verifier


def _verify_one(
    base: ReportBase,
    layout: ProofLayout,
    header: bytes,
    index: int,
    c: int,
    proof: bytes,
) -> None:
    n, nsq = base.n, base.n_squared
    span, k = layout.span, layout.bits
    used = layout.slots_in(index)
    first_value = index * layout.slots
    where = f"ciphertext {index}"
    digest = proof[:DIGEST_BYTES]
    e_or, e = _split(digest)
    pos = DIGEST_BYTES
    commitments: list[list[bytes]] = []
    firsts = []
    for s in range(used):
        value_commits = []
        for i in range(k):
            part = proof[pos : pos + BIT_PROOF_BYTES]
            pos += BIT_PROOF_BYTES
            what = f"{where}, value {first_value + s}, bit {i}"
            point = decode_point(part[:POINT_BYTES], f"{what}: the commitment")
            e0 = decode_scalar(part[_BIT_E0:_BIT_Z0], what, check="bit")
            z0 = decode_scalar(part[_BIT_Z0:_BIT_Z1], what, check="bit")
            z1 = decode_scalar(part[_BIT_Z1:], what, check="bit")
            firsts.append(recompute_first(point, e_or, e0, z0, z1))
            value_commits.append(point)
        commitments.append(value_commits)
    zs_bytes = layout.zs_bytes()
    links = []
    for s in range(used):
        what = f"{where}, value {first_value + s}"
        a_point = decode_point(proof[pos : pos + POINT_BYTES], f"{what}: the link commitment")
        pos += POINT_BYTES
        t = decode_scalar(proof[pos : pos + SCALAR_BYTES], f"{what}: the link", check="link")
        pos += SCALAR_BYTES
        z_s = int.from_bytes(proof[pos : pos + zs_bytes], "little")
        pos += zs_bytes
        links.append((a_point, t, z_s))
    a_bytes = proof[pos : pos + base.nsq_bytes]
    pos += base.nsq_bytes
    z = int.from_bytes(proof[pos:], "little")
    expected = _challenge(
        header,
        index,
        c,
        base.nsq_bytes,
        b"".join(p for value_commits in commitments for p in value_commits),
        b"".join(firsts),
        b"".join(a for a, _, _ in links),
        a_bytes,
    )
    if expected != digest:
        raise InvalidProofError(
            f"{where}: the proof's challenge does not match (a bit that is not 0 or 1, or a "
            "proof made for another task, client, key, ciphertext or layout)",
            check="challenge",
        )
    bound = 1 << (k + CHALLENGE_BITS + STATISTICAL_BITS + 1)
    weighted_z = 0
    for s in range(used - 1, -1, -1):
        a_point, t, z_s = links[s]
        value = first_value + s
        if z_s >= bound:
            raise InvalidProofError(
                f"{where}, value {value}: the link response is too large", check="range"
            )
        c_u = value_commitment(commitments[s], span)
        if add(mul(z_s, H), base_mul(t)) != add(a_point, mul(e, c_u)):
            raise InvalidProofError(
                f"{where}, value {value}: the link to the value's commitment fails",
                check="link",
            )
        weighted_z = (weighted_z << layout.slot_bits) + z_s
    a_big = mpz(int.from_bytes(a_bytes, "big"))
    if not 0 < a_big < nsq:
        raise InvalidProofError(f"{where}: the link's commitment is not below n^2", check="link")
    shifted = mpz(c) * (1 - mpz(layout.offset) % n * n) % nsq  # c (1 + n)^(-K)
    lhs = base.table.mul_pow(n * (mpz(weighted_z) % n) + 1, z)
    rhs = a_big * gmpy2.powmod(shifted, e, nsq) % nsq
    if lhs != rhs:
        raise InvalidProofError(
            f"{where}: the ciphertext does not carry the committed values", check="link"
        )


def verify_chunk(
    base: ReportBase,
    layout: ProofLayout,
    start: int,
    ciphertexts: Sequence[int],
    proof: bytes,
    context: bytes,
) -> None:
    """Verify the proofs of ciphertexts start, start + 1, ... of a report (a chunk of it).

    Args:
        base: the key's report base.
        layout: the report's layout.
        start: the index of the chunk's first ciphertext.
        ciphertexts: the chunk's ciphertexts (ints in [1, n^2)).
        proof: exactly the chunk's part of the proof (from ``layout.proof_offset``).
        context: the context bytes the prover used.

    Raises:
        InvalidProofError: see the module docstring (check and message).
        MalformedCiphertextError: a ciphertext outside [1, n^2).
    """
    header = _header(base, layout, context)
    stop = start + len(ciphertexts)
    if not 0 <= start <= stop <= layout.ciphertexts:
        raise InvalidProofError("a chunk outside the report's ciphertexts", check="length")
    base_offset = layout.proof_offset(base.bits, start)
    if len(proof) != layout.proof_offset(base.bits, stop) - base_offset:
        raise InvalidProofError(
            f"the proof of ciphertexts {start}..{stop - 1} has {len(proof)} bytes; the layout "
            f"takes {layout.proof_offset(base.bits, stop) - base_offset}",
            check="length",
        )
    view = memoryview(proof)
    for offset, c in enumerate(ciphertexts):
        j = start + offset
        if type(c) is not int and not isinstance(c, type(base.n)):
            raise MalformedCiphertextError(f"ciphertext {j}: not an integer")
        if not 0 < c < base.n_squared:
            raise MalformedCiphertextError(f"ciphertext {j}: outside [1, n^2)")
        a = layout.proof_offset(base.bits, j) - base_offset
        b = layout.proof_offset(base.bits, j + 1) - base_offset
        _verify_one(base, layout, header, j, int(c), bytes(view[a:b]))


def verify_report(
    base: ReportBase,
    layout: ProofLayout,
    ciphertexts: Sequence[int],
    proof: bytes,
    context: bytes,
) -> None:
    """Verify a report's validity proof (one process): each value lies in [0, U].

    The number of ciphertexts and the proof's exact length are checked first.

    Args:
        base: the key's report base.
        layout: the report's layout.
        ciphertexts: the report's ciphertexts (ints in [1, n^2)).
        proof: the report's proof.
        context: the context bytes the prover must have used.

    Raises:
        InvalidProofError: see the module docstring (check and message).
        MalformedCiphertextError: a ciphertext outside [1, n^2).
    """
    if len(ciphertexts) != layout.ciphertexts:
        raise InvalidProofError(
            f"{len(ciphertexts)} ciphertexts; the layout takes {layout.ciphertexts}",
            check="length",
        )
    if not isinstance(proof, bytes):
        raise InvalidProofError("the proof must be bytes", check="encoding")
    total = layout.proof_bytes(base.bits)
    if len(proof) != total:
        raise InvalidProofError(
            f"the proof has {len(proof)} bytes; this layout and key take exactly {total}",
            check="length",
        )
    verify_chunk(base, layout, 0, ciphertexts, proof, context)


__all__ = [
    "BASE_DOMAIN",
    "CHALLENGE_BITS",
    "DIGEST_BYTES",
    "MAX_SPAN_BITS",
    "PROOF_DOMAIN",
    "STATISTICAL_BITS",
    "ProofLayout",
    "ReportBase",
    "nsq_bytes",
    "prove_chunk",
    "prove_report",
    "verify_chunk",
    "verify_report",
    "z_bytes",
]

"""Batched threshold Paillier decryption: one proof per key holder for a whole vector.

For a vector c_1..c_N of ciphertexts (say a packed aggregate), holder i sends every
p_j = c_j^(2 Δ s_i) and ONE proof (:meth:`smpcloud.crypto.threshold.KeyShare.partial_decrypt_batch`,
:class:`BatchPartialDecryption`) instead of one proof per ciphertext; :func:`verify_batch` checks
it and :func:`combine_batch` combines t holders' batches (:func:`combine_columns`, which also
serves the single-ciphertext :func:`smpcloud.crypto.threshold.combine`). The keys, dealing and
the single-ciphertext scheme are in ``smpcloud.crypto.threshold``; the Chaum-Pedersen proof is
in ``smpcloud.crypto.threshold_proofs``.

Batched proof and its soundness. This is the small-exponent batch test of Bellare, Garay and
Rabin (Eurocrypt 1998, Sec. 3) applied to the Chaum-Pedersen statement of Shoup's Sec. 2.1.
The holder computes the digest D = SHA-256(domain, key fingerprint, i, v_i, N, c_1..c_N,
p_1..p_N) (fixed-width big-endian integers), the coefficients rho_1..rho_N = SHAKE-256(domain,
D) cut into 128-bit integers, C = Π c_j^rho_j and P = Π p_j^rho_j mod n^2, and proves
log_{C^4}(P^2) = log_v(v_i) with the single-ciphertext proof (its challenge also hashes D and
has its own domain, so batch and single proofs never stand in for each other). The verifier
recomputes D, rho, C and P and checks that one proof: two multi-exponentiations with 128-bit
exponents plus one proof, instead of N proofs.

Why it is sound. Let Q be the subgroup of squares of Z*_{n^2}. With safe primes p = 2p'+1,
q = 2q'+1, Z*_{n^2} ≅ Z_n ⊕ Z_2 ⊕ Z_{p'} ⊕ Z_2 ⊕ Z_{q'}, so Q ≅ Z_n ⊕ Z_{p'} ⊕ Z_{q'} has
order n p' q' = p q p' q' (cyclic, as the four primes are distinct except with negligible
probability), and every element of Q other than 1 has order at least min(p', q') >=
2^(bits/2 - 2), which exceeds 2^128 for every key of 260 bits or more. Squaring maps
Z*_{n^2} onto Q and kills exactly the small part Z_2 ⊕ Z_2 (±1 and the two other square
roots of 1). Put x = Δ s_i (fixed by v_i = v^x, which is hashed), u_j = c_j^4 and
w_j = p_j^2 (both in Q), and ε_j = w_j u_j^-x ∈ Q. Partial j is correct in the only sense
combining uses iff ε_j = 1 (combining raises p_j to the even power 2 μ_i, so it sees only
p_j^2). Then P^2 (C^4)^-x = Π ε_j^rho_j.
(1) The Chaum-Pedersen proof shows P^2 = (C^4)^x, i.e. Π ε_j^rho_j = 1, except with
probability about 2^-256 per hash query (Shoup's argument: v generates Q except with
negligible probability, and at 516 bits and more every prime factor of |Q| exceeds the 2^256
challenge space).
(2) The ε_j are fixed before rho is known, since D hashes every c_j and p_j; in the
random-oracle model rho is uniform in [0, 2^128)^N. If some ε_k ≠ 1, fix every rho_j with
j ≠ k: Π ε_j^rho_j = 1 then needs ε_k^rho_k to equal one fixed element, and since
ord(ε_k) > 2^128, at most one of the 2^128 values of rho_k does it.
So a holder with a wrong value at any position passes with probability at most
2^-128 + 2^-256 per hash query (q queries: q times that), where N separate proofs give 2^-256.
Without the squaring the argument breaks: p_j times -1 (order 2) would pass whenever rho_j is
even, probability 1/2; with it, such a p_j is harmless, as it has the right square. (Insecure
test keys weaken the bounds to about 1/min(p', q') per query.)

Reveals: a batch reveals its N partial values (what N single partial decryptions reveal) and
one proof, zero-knowledge like the single one; C and P are computable by anyone from public
data. Combining reveals the plaintexts to whoever combines.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import gmpy2

from smpcloud.crypto.paillier import Ciphertext
from smpcloud.crypto.threshold_proofs import (
    CHALLENGE_BITS,
    InvalidPartialDecryptionError,
    dleq_holds,
    length_prefixed,
    proof_nonce_bits,
)
from smpcloud.crypto.wire import (
    JSON_VERSION,
    as_int,
    check_json_object,
    decode_int,
    encode_int,
    short_repr,
)
from smpcloud.errors import (
    InvalidInputError,
    KeyMismatchError,
    ThresholdNotMetError,
    VerificationError,
)

if TYPE_CHECKING:
    from smpcloud.crypto.threshold import ThresholdPublicKey

BATCH_COEFFICIENT_BITS = 128  # rho_j of the batched proof: soundness error ~2^-128 per try
MAX_BATCH_SIZE = 1 << 20  # most ciphertexts in one batched partial decryption
BATCH_PARTIAL_KIND = "smpcloud.threshold.batch_partial_decryption"
#: Domain of the batched proof's Fiat-Shamir challenge (never that of a single proof).
BATCH_CHALLENGE_DOMAIN = b"smpcloud/threshold-paillier/batch-partial-decryption/v1/challenge"
_BATCH_DOMAIN = b"smpcloud/threshold-paillier/batch-partial-decryption/v1/transcript"
_COEFFICIENT_DOMAIN = b"smpcloud/threshold-paillier/batch-partial-decryption/v1/coefficients"


@dataclass(frozen=True, slots=True, repr=False)
class BatchPartialDecryption:
    """Holder ``index``'s partial decryptions of a sequence of ciphertexts, with ONE proof.

    Made by :meth:`KeyShare.partial_decrypt_batch`, checked by :func:`verify_batch`, combined
    by :func:`combine_batch`. The ciphertexts travel separately (like the single
    :func:`partial_to_json`); the proof binds them and their order.

    Attributes:
        index: the holder's number, 1..holders.
        values: p_j = c_j^(2Δ s_i) mod n^2, one per ciphertext, in order.
        challenge: the proof's Fiat-Shamir challenge e.
        response: the proof's response z.
    """

    index: int
    values: tuple[int, ...]
    challenge: int
    response: int

    def __repr__(self) -> str:
        return f"BatchPartialDecryption(index={self.index}, values=<{len(self.values)} values>)"

    def to_json(self) -> dict[str, object]:
        """Encode as ``{"kind", "version", "index", "values", "challenge", "response"}``.

        Integers are canonical unpadded base64url (:mod:`smpcloud.crypto.wire`); a zero
        challenge or response (probability 2^-256) is spelled ``"AA"`` as in
        :func:`partial_to_json`. Contains nothing secret.
        """
        return {
            "kind": BATCH_PARTIAL_KIND,
            "version": JSON_VERSION,
            "index": self.index,
            "values": [encode_int(v) for v in self.values],
            "challenge": encode_int(self.challenge) if self.challenge else "AA",
            "response": encode_int(self.response) if self.response else "AA",
        }

    @classmethod
    def from_json(
        cls, public: ThresholdPublicKey, data: object, *, count: int | None = None
    ) -> BatchPartialDecryption:
        """Decode :meth:`to_json` output strictly; the proof is *not* verified here.

        Args:
            public: the threshold public key (bounds the holder index and the sizes).
            data: the parsed JSON object.
            count: the number of ciphertexts the batch must cover (None: any, up to
                MAX_BATCH_SIZE).

        Returns:
            The batch.

        Raises:
            InvalidInputError: a wrong kind or version, missing or extra fields, a holder index
                outside 1..holders, values that are not a non-empty list of canonical integers
                in [1, n^2), a count other than ``count``, or a malformed challenge or
                response.
        """
        obj = check_json_object(
            data, BATCH_PARTIAL_KIND, ("index", "values", "challenge", "response")
        )
        index = obj["index"]
        if type(index) is not int or not 1 <= index <= public.holders:
            raise InvalidInputError(f"batch holder index outside 1..{public.holders}")
        raw_values = obj["values"]
        if not isinstance(raw_values, list):
            raise InvalidInputError(f"batch values must be a list, got {type(raw_values).__name__}")
        if not 1 <= len(raw_values) <= MAX_BATCH_SIZE:
            raise InvalidInputError(f"batch must hold 1..{MAX_BATCH_SIZE} values")
        if count is not None and len(raw_values) != count:
            raise InvalidInputError(
                f"batch holds {len(raw_values)} values; {count} ciphertexts expected"
            )
        n2 = public.public_key.n_squared
        size = (n2.bit_length() + 7) // 8
        values = []
        for j, raw in enumerate(raw_values):
            value = decode_int(raw, f"batch value {j}", max_bytes=size)
            if value >= n2:
                raise InvalidInputError(f"batch value {j}: outside [1, n^2)")
            values.append(value)

        def small(name: str, max_bytes: int) -> int:
            raw = obj[name]
            return 0 if raw == "AA" else decode_int(raw, name, max_bytes=max_bytes)

        return cls(
            index,
            tuple(values),
            small("challenge", CHALLENGE_BITS // 8),
            small("response", proof_nonce_bits(public) // 8 + 2),
        )


def ciphertext_values(pk: ThresholdPublicKey, ciphertexts: object) -> list[gmpy2.mpz]:
    """Return the ciphertexts' values, checking type, count and key (positions in messages).

    Args:
        pk: the threshold public key.
        ciphertexts: a sequence of 1..MAX_BATCH_SIZE ``Ciphertext`` objects under pk.

    Returns:
        Their values as gmpy2 integers, in order.

    Raises:
        InvalidInputError: not a sequence, no ciphertexts or too many, or an item that is not
            a Ciphertext (by position).
        KeyMismatchError: a ciphertext under another key (by position).
    """
    if isinstance(ciphertexts, (str, bytes)) or not isinstance(ciphertexts, Sequence):
        raise InvalidInputError(
            f"expected a sequence of ciphertexts, got {type(ciphertexts).__name__}"
        )
    if not 1 <= len(ciphertexts) <= MAX_BATCH_SIZE:
        raise InvalidInputError(f"a batch covers 1..{MAX_BATCH_SIZE} ciphertexts")
    key = pk.public_key
    out = []
    for j, item in enumerate(ciphertexts):
        if not isinstance(item, Ciphertext):
            raise InvalidInputError(
                f"ciphertext {j}: expected a Ciphertext, got {type(item).__name__}"
            )
        if item.public_key is not key and item.public_key != key:
            raise KeyMismatchError(f"ciphertext {j} is not under this threshold key")
        out.append(gmpy2.mpz(item.value))
    return out


def batch_coefficients(
    pk: ThresholdPublicKey, index: int, cts: Sequence[int], values: Sequence[int]
) -> tuple[int, list[int]]:
    """Return the transcript digest (as an int) and rho_1..rho_N (BATCH_COEFFICIENT_BITS each).

    digest = SHA-256(domain, key fingerprint, holder, v_i, N, c_1..c_N, p_1..p_N), every
    c_j and p_j as fixed-width (|n^2| bytes) big-endian, so the encoding is injective;
    rho = SHAKE-256(coefficient domain, digest) cut into 128-bit big-endian integers.

    Args:
        pk: the threshold public key.
        index: the holder's number, 1..holders.
        cts: the ciphertexts' values c_1..c_N.
        values: the holder's partial values p_1..p_N.

    Returns:
        (digest, [rho_1, ..., rho_N]).
    """
    width = (pk.public_key.n_squared.bit_length() + 7) // 8
    h = hashlib.sha256(_BATCH_DOMAIN)
    h.update(pk.digest)
    h.update(length_prefixed(index))
    h.update(length_prefixed(pk.verification_keys[index - 1]))
    h.update(len(cts).to_bytes(8, "big"))
    h.update(b"".join(int(c).to_bytes(width, "big") for c in cts))
    h.update(b"".join(int(v).to_bytes(width, "big") for v in values))
    digest = h.digest()
    step = BATCH_COEFFICIENT_BITS // 8
    stream = hashlib.shake_256(_COEFFICIENT_DOMAIN + digest).digest(step * len(cts))
    rhos = [int.from_bytes(stream[k : k + step], "big") for k in range(0, len(stream), step)]
    return int.from_bytes(digest, "big"), rhos


def multi_pow(
    columns: Sequence[Sequence[gmpy2.mpz]], exponents: Sequence[int], modulus: gmpy2.mpz
) -> list[gmpy2.mpz]:
    """Return [Π_j column[j]^exponents[j] mod modulus for each column] (exponents >= 0).

    Pippenger's bucket method with a window w chosen to minimise ceil(bits/w)(N + 2^(w+1))
    multiplications: for N = 1177 bases and 128-bit exponents, ~23 multiplications per base
    instead of ~150 for one ``powmod`` per base (about 7x faster, measured). Small N falls
    back to ``powmod`` per base. The digits are shared by the columns.

    Args:
        columns: lists of bases (units mod modulus), each as long as exponents.
        exponents: non-negative integer exponents, one per position.
        modulus: the modulus.

    Returns:
        One product per column.
    """
    count = len(exponents)
    bits = max((e.bit_length() for e in exponents), default=0)
    one = gmpy2.mpz(1)
    if bits == 0:
        return [one for _ in columns]
    width, cost = min(
        ((w, -(-bits // w) * (count + (2 << w))) for w in range(1, 17)), key=lambda wc: wc[1]
    )
    if count * bits <= cost:  # powmod's own sliding window: ~1.2 bits multiplications per base
        results = []
        for column in columns:
            acc = one
            for base, e in zip(column, exponents, strict=True):
                acc = acc * gmpy2.powmod(base, e, modulus) % modulus
            results.append(acc)
        return results
    mask = (1 << width) - 1
    windows = -(-bits // width)
    results = [one for _ in columns]
    for w in reversed(range(windows)):
        shift = w * width
        digits = [(e >> shift) & mask for e in exponents]
        for k, column in enumerate(columns):
            acc = results[k]
            if w != windows - 1:
                acc = gmpy2.powmod(acc, 1 << width, modulus)
            buckets: list[gmpy2.mpz | None] = [None] * (mask + 1)
            for d, base in zip(digits, column, strict=True):
                if d:
                    held = buckets[d]
                    buckets[d] = base if held is None else held * base % modulus
            running = total = None
            for d in range(mask, 0, -1):  # total = Π_d bucket_d^d by running products
                held = buckets[d]
                if held is not None:
                    running = held if running is None else running * held % modulus
                if running is not None:
                    total = running if total is None else total * running % modulus
            results[k] = acc if total is None else acc * total % modulus
    return results


def _batch_failure(
    pk: ThresholdPublicKey, cts: Sequence[gmpy2.mpz], batch: BatchPartialDecryption
) -> str | None:
    """Return None if the batch's proof holds for cts, else a (non-secret) reason ("" = proof).

    The caller has checked the holder index and that there is one value per ciphertext.
    """
    n = gmpy2.mpz(pk.n)
    n2 = gmpy2.mpz(pk.public_key.n_squared)
    values = []
    product = gmpy2.mpz(1)
    for j, item in enumerate(batch.values):
        value = as_int(item)
        if value is None or not 0 < value < n2:
            return f"partial value {j} outside [1, n^2)"
        value_mpz = gmpy2.mpz(value)
        product = product * value_mpz % n
        values.append(value_mpz)
    if gmpy2.gcd(product, n) != 1:  # gcd(Π p_j mod n, n) = 1 iff every p_j is coprime to n
        first = next(j for j, v in enumerate(values) if gmpy2.gcd(v, n) != 1)
        return f"partial value {first} not coprime to n"
    digest, rhos = batch_coefficients(pk, batch.index, cts, values)
    big_c, big_p = multi_pow([cts, values], rhos, n2)
    holds = dleq_holds(
        pk,
        batch.index,
        gmpy2.powmod(big_c, 4, n2),
        gmpy2.powmod(big_p, 2, n2),
        batch.challenge,
        batch.response,
        domain=BATCH_CHALLENGE_DOMAIN,
        context=(digest,),
    )
    return None if holds else ""


def _check_batch_shape(pk: ThresholdPublicKey, batch: object, count: int) -> int:
    if not isinstance(batch, BatchPartialDecryption):
        raise InvalidInputError(f"expected a BatchPartialDecryption, got {type(batch).__name__}")
    index = batch.index
    if type(index) is not int or not 1 <= index <= pk.holders:
        raise InvalidInputError(f"batch holder index {short_repr(index)} outside 1..{pk.holders}")
    if not isinstance(batch.values, Sequence) or len(batch.values) != count:
        got = len(batch.values) if isinstance(batch.values, Sequence) else "no"
        raise InvalidInputError(
            f"batch from holder {index} holds {got} partial values for {count} ciphertexts"
        )
    return index


def verify_batch(
    public: ThresholdPublicKey,
    ciphertexts: Sequence[Ciphertext],
    batch: BatchPartialDecryption,
) -> None:
    """Check a holder's batched partial decryption of ``ciphertexts`` (one proof for all).

    Recomputes rho_j from the transcript, C = Π c_j^rho_j and P = Π p_j^rho_j (two
    multi-exponentiations with 128-bit exponents) and checks the one Chaum-Pedersen proof
    that log_{C^4}(P^2) = log_v(v_i). If it holds then, except with probability about 2^-128
    per attempt of a cheating holder, p_j^2 = c_j^(4Δ s_i) for EVERY j, which is all that
    combining uses (soundness argument: "Batched proof and its soundness" in the module
    docstring). Reveals nothing; needs only public data.

    Args:
        public: the threshold public key.
        ciphertexts: the ciphertexts, in the order the holder decrypted them.
        batch: the holder's batch.

    Raises:
        InvalidPartialDecryptionError: the proof fails, or a partial value is outside
            Z*_{n^2}; ``holders`` names the holder.
        InvalidInputError: not a batch, a holder index outside 1..holders, no ciphertexts or
            more than MAX_BATCH_SIZE, an item that is not a Ciphertext, or a number of values
            other than the number of ciphertexts.
        KeyMismatchError: a ciphertext under another key.
    """
    cts = ciphertext_values(public, ciphertexts)
    index = _check_batch_shape(public, batch, len(cts))
    failure = _batch_failure(public, cts, batch)
    if failure is not None:
        raise InvalidPartialDecryptionError([index], failure)


def check_batches(
    public: ThresholdPublicKey,
    ciphertexts: Sequence[Ciphertext],
    batches: Iterable[BatchPartialDecryption],
) -> list[BatchPartialDecryption]:
    """Check that batches can be combined, without checking any proof (cheap).

    Args:
        public: the threshold public key.
        ciphertexts: the ciphertexts, in order.
        batches: batched partial decryptions of them by distinct holders.

    Returns:
        The batches, as a list.

    Raises:
        ThresholdNotMetError: no batches at all ("0 of t").
        InvalidInputError: as for :func:`verify_batch` (except the proof), or duplicate holder
            indices.
        KeyMismatchError: a ciphertext under another key.
    """
    items = list(batches)
    if not items:
        raise ThresholdNotMetError(f"0 of {public.threshold} batch partial decryptions")
    count = len(ciphertext_values(public, ciphertexts))
    indices = [_check_batch_shape(public, item, count) for item in items]
    if len(set(indices)) != len(indices):
        raise InvalidInputError(f"duplicate key holder indices in {sorted(indices)}")
    return items


def choose_batches(
    public: ThresholdPublicKey,
    items: Sequence[BatchPartialDecryption],
    bad: Sequence[int],
    exclude_invalid: bool,
) -> list[BatchPartialDecryption]:
    """Return the first t batches whose holder is not in ``bad`` (or raise, as combining does).

    The choice :func:`combine_batch` makes once the proofs are checked; public so that a caller
    that checks the proofs elsewhere (``smpcloud.parallel``, on worker processes) chooses and
    fails the same way.

    Args:
        public: the threshold public key.
        items: the batches, checked by :func:`check_batches`, in order of preference.
        bad: holder indices whose proof failed.
        exclude_invalid: drop the failed batches instead of raising.

    Returns:
        The t batches to combine.

    Raises:
        InvalidPartialDecryptionError: a proof failed (names the holders) and not excluding.
        ThresholdNotMetError: fewer than t batches remain ("k of t", naming the excluded).
    """
    if bad and not exclude_invalid:
        raise InvalidPartialDecryptionError(bad)
    valid = [item for item in items if item.index not in bad]
    if len(valid) < public.threshold:
        if bad:
            raise ThresholdNotMetError(
                f"{len(valid)} of {public.threshold} valid batch partial decryptions "
                f"(excluded holders {', '.join(map(str, sorted(bad)))})"
            )
        raise ThresholdNotMetError(f"{len(valid)} of {public.threshold} batch partial decryptions")
    return valid[: public.threshold]


def combine_batch(
    public: ThresholdPublicKey,
    ciphertexts: Sequence[Ciphertext],
    batches: Iterable[BatchPartialDecryption],
    *,
    verify: bool = True,
    exclude_invalid: bool = False,
) -> list[int]:
    """Combine t (or more) holders' batched partial decryptions into the plaintexts.

    Any t holders with valid batches suffice; the first t valid ones (in the given order)
    are used. Reveals the plaintexts to whoever combines.

    Args:
        public: the threshold public key.
        ciphertexts: the ciphertexts, in the order the holders decrypted them.
        batches: batched partial decryptions of them by distinct holders.
        verify: check every batch's proof first (default). Only skip when already verified
            (for example by :func:`verify_batch` when each batch arrived).
        exclude_invalid: drop batches whose proof fails and use the valid ones, instead of
            raising; raises ThresholdNotMetError if fewer than t valid ones remain.

    Returns:
        The plaintexts in (-n/2, n/2], one per ciphertext, in order.

    Raises:
        ThresholdNotMetError: fewer than t (valid) batches ("k of t").
        InvalidPartialDecryptionError: a proof failed (names every failing holder) and not
            excluding.
        InvalidInputError: as for :func:`check_batches`.
        KeyMismatchError: a ciphertext under another key.
        VerificationError: with ``verify=False``, a wrong partial value.
    """
    items = check_batches(public, ciphertexts, batches)
    bad: list[int] = []
    if verify:
        cts = ciphertext_values(public, ciphertexts)
        bad = [item.index for item in items if _batch_failure(public, cts, item) is not None]
    chosen = choose_batches(public, items, bad, exclude_invalid)
    return combine_columns(public, [b.index for b in chosen], [b.values for b in chosen])


def _lagrange_exponents(pk: ThresholdPublicKey, indices: Sequence[int]) -> list[int]:
    """Return 2 μ_i for each holder i of the set S: μ_i = Δ Π_{j∈S, j≠i} j / (j - i)."""
    out = []
    for i in indices:
        num, den = pk.delta, 1
        for j in indices:
            if j != i:
                num *= j
                den *= j - i
        mu, rem = divmod(num, den)
        if rem:  # cannot happen: Δ = holders! clears every denominator
            raise VerificationError("non-integral Lagrange coefficient")
        out.append(2 * mu)
    return out


def combine_columns(
    pk: ThresholdPublicKey, indices: Sequence[int], columns: Sequence[Sequence[int]]
) -> list[int]:
    """Combine partial values: columns[k][j] is holder indices[k]'s partial of ciphertext j.

    For each j, c'_j = Π_k columns[k][j]^(2 μ_k) = (1 + n)^(4 Δ^2 M_j), so
    M_j = L(c'_j) (4 Δ^2)^-1 mod n. Negative exponents share one inversion per ciphertext.
    Does not check proofs: the partial values must already be verified (or be trusted).

    Args:
        pk: the threshold public key.
        indices: t distinct holder numbers.
        columns: for each holder, its partial values of the ciphertexts, in order.

    Returns:
        The plaintexts in (-n/2, n/2], one per ciphertext.

    Raises:
        VerificationError: a combined value is not 1 mod n (a partial value is wrong).
    """
    n = gmpy2.mpz(pk.n)
    n2 = gmpy2.mpz(pk.public_key.n_squared)
    half = n // 2
    scale = gmpy2.invert(4 * pk.delta * pk.delta, n)
    exponents = _lagrange_exponents(pk, indices)
    positive = [(k, x) for k, x in enumerate(exponents) if x > 0]
    negative = [(k, -x) for k, x in enumerate(exponents) if x < 0]
    plaintexts = []
    for j in range(len(columns[0])):
        acc = gmpy2.mpz(1)
        for k, x in positive:
            acc = acc * gmpy2.powmod(gmpy2.mpz(columns[k][j]), x, n2) % n2
        if negative:
            inv = gmpy2.mpz(1)
            for k, x in negative:
                inv = inv * gmpy2.powmod(gmpy2.mpz(columns[k][j]), x, n2) % n2
            try:
                acc = acc * gmpy2.invert(inv, n2) % n2
            except ZeroDivisionError:
                raise VerificationError("a partial value is not a unit mod n^2") from None
        if (acc - 1) % n:
            raise VerificationError("combined value is not of the form 1 + kn: a partial is wrong")
        m = (acc - 1) // n * scale % n
        plaintexts.append(int(m - n) if m > half else int(m))
    return plaintexts


__all__ = [
    "BATCH_CHALLENGE_DOMAIN",
    "BATCH_COEFFICIENT_BITS",
    "BATCH_PARTIAL_KIND",
    "MAX_BATCH_SIZE",
    "BatchPartialDecryption",
    "batch_coefficients",
    "check_batches",
    "choose_batches",
    "ciphertext_values",
    "combine_batch",
    "combine_columns",
    "multi_pow",
    "verify_batch",
]

"""Threshold Paillier: t of n key holders decrypt together; fewer learn nothing.

The scheme is Damgård-Jurik's threshold variant (PKC 2001, Sec. 4, with s = 1) of Shoup's
threshold RSA (Eurocrypt 2000), with a trusted dealer:

* **Key generation** (:func:`deal`). Safe primes p = 2p' + 1, q = 2q' + 1; n = pq, m = p'q'.
  The secret exponent d satisfies d ≡ 0 (mod m) and d ≡ 1 (mod n). It is Shamir-shared over
  Z_{nm}: f(X) = d + a_1 X + ... + a_{t-1} X^{t-1}, key share s_i = f(i). With Δ = n_holders!,
  Lagrange coefficients times Δ are integers, so interpolation works "in the exponent" without
  knowing the group order. A random square v generates the squares mod n^2; holder i's
  verification key is v_i = v^(Δ s_i) mod n^2.
* **Partial decryption** (:meth:`KeyShare.partial_decrypt`): c_i = c^(2 Δ s_i) mod n^2 with a
  non-interactive zero-knowledge proof (Chaum-Pedersen equality of discrete logs, Fiat-Shamir)
  that log_{c^4}(c_i^2) = log_v(v_i), so a wrong partial is detected and its holder named.
* **Combining** (:func:`combine`): for a set S of t holders, μ_i = Δ · Π_{j∈S, j≠i} j / (j - i),
  c' = Π c_i^(2 μ_i) = (1 + n)^(4 Δ^2 M) mod n^2, so M = L(c') · (4 Δ^2)^-1 mod n.
* **Batched partial decryption** (:meth:`KeyShare.partial_decrypt_batch`, :func:`verify_batch`,
  :func:`combine_batch`): for a vector c_1..c_N (say a packed aggregate), holder i sends every
  p_j = c_j^(2 Δ s_i) and ONE proof, instead of one proof per ciphertext. The batched proof,
  its soundness argument and combining live in ``smpcloud.crypto.threshold_batch``, the
  Chaum-Pedersen proof in ``smpcloud.crypto.threshold_proofs``; both are re-exported here.

Reveals: a partial decryption reveals nothing about the key share beyond what the plaintext
reveals (the proof is honest-verifier zero-knowledge); t partials reveal the plaintext M. A
batch reveals its N partial values (what N single partial decryptions reveal) and one proof,
zero-knowledge like the single one; C and P are computable by anyone from public data.
The dealer learns everything and must erase p, q and d after dealing: this module never returns
them. Fewer than t holders learn nothing about d (Shamir over Z_{nm}).
"""

from __future__ import annotations

import hashlib
import math
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import gmpy2

from smpcloud.crypto.paillier import MAX_BITS, MIN_SECURE_BITS, Ciphertext, PublicKey
from smpcloud.crypto.primes import random_safe_prime
from smpcloud.crypto.threshold_batch import (
    BATCH_CHALLENGE_DOMAIN,
    BATCH_COEFFICIENT_BITS,
    BATCH_PARTIAL_KIND,
    MAX_BATCH_SIZE,
    BatchPartialDecryption,
    batch_coefficients,
    check_batches,
    choose_batches,
    ciphertext_values,
    combine_batch,
    combine_columns,
    multi_pow,
    verify_batch,
)
from smpcloud.crypto.threshold_proofs import (
    CHALLENGE_BITS,
    STATISTICAL_BITS,
    InvalidPartialDecryptionError,
    dleq_holds,
    key_share_bound,
    length_prefixed,
    proof_nonce_bits,
    prove_dleq,
)
from smpcloud.crypto.wire import (
    JSON_VERSION,
    as_int,
    check_json_object,
    decode_int,
    encode_int,
)
from smpcloud.errors import (
    InvalidInputError,
    KeyMismatchError,
    ThresholdNotMetError,
    VerificationError,
)


@dataclass(frozen=True, slots=True)
class ThresholdPublicKey:
    """The public half of a threshold Paillier key: encrypt with it, verify partials with it.

    Attributes:
        public_key: the ordinary Paillier public key (n); ciphertexts live under it.
        holders: the number of key holders (``n`` in the papers, here to avoid clashing with
            the modulus).
        threshold: how many partial decryptions are needed (t).
        v: the verification base, a random square mod n^2.
        verification_keys: v_i = v^(Δ s_i) mod n^2 for holders i = 1..holders.
        delta: Δ = holders!.
        digest: SHA-256 of the whole key (n, holders, threshold, v, v_i, each length-prefixed),
            computed once; every proof's challenge hashes it to bind the key.
    """

    public_key: PublicKey
    holders: int
    threshold: int
    v: int
    verification_keys: tuple[int, ...]
    delta: int = field(init=False, repr=False, compare=False)
    digest: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 1 <= self.threshold <= self.holders:
            raise InvalidInputError(
                f"threshold t={self.threshold} must be in 1..{self.holders} (number of holders)"
            )
        if len(self.verification_keys) != self.holders:
            raise InvalidInputError(
                f"{len(self.verification_keys)} verification keys for {self.holders} holders"
            )
        n2 = self.public_key.n_squared
        for value in (self.v, *self.verification_keys):
            if not 0 < value < n2 or math.gcd(value, self.public_key.n) != 1:
                raise InvalidInputError("verification key outside Z*_{n^2}")
        object.__setattr__(self, "delta", math.factorial(self.holders))
        h = hashlib.sha256()
        for value in (self.n, self.holders, self.threshold, self.v, *self.verification_keys):
            h.update(length_prefixed(value))
        object.__setattr__(self, "digest", h.digest())

    @property
    def n(self) -> int:
        """The Paillier modulus."""
        return self.public_key.n

    def encrypt(self, plaintext: int) -> Ciphertext:
        """Encrypt under the shared key (same as ``public_key.encrypt``)."""
        return self.public_key.encrypt(plaintext)

    def fingerprint(self) -> str:
        """A short hex digest that identifies the key (n, holders, threshold, v, v_i)."""
        return self.digest.hex()[:16]


@dataclass(frozen=True, slots=True, repr=False)
class KeyShare:
    """Holder ``index``'s share s_i of the decryption exponent. Secret: redacted in ``repr``.

    Attributes:
        public: the threshold public key it belongs to.
        index: the holder's number, 1..holders.
        secret: s_i = f(index) mod n·m from a dealer (:func:`deal`); an integer below
            :func:`~smpcloud.crypto.threshold_proofs.key_share_bound` from the dealer-free
            key generation (:mod:`smpcloud.mpc.dkg`), which shares d over the integers.
    """

    public: ThresholdPublicKey
    index: int
    secret: int

    def __post_init__(self) -> None:
        if not 1 <= self.index <= self.public.holders:
            raise InvalidInputError(
                f"key share index {self.index} outside 1..{self.public.holders}"
            )
        if not 0 <= self.secret < key_share_bound(self.public.holders, self.public.n):
            raise InvalidInputError("key share secret out of range")

    def __repr__(self) -> str:
        return f"KeyShare(index={self.index}, holders={self.public.holders}, secret=<redacted>)"

    def partial_decrypt(self, ciphertext: Ciphertext) -> PartialDecryption:
        """Return c^(2Δ s_i) mod n^2 with a proof that it used this holder's key share.

        Reveals nothing about s_i beyond the eventual plaintext (honest-verifier ZK proof).
        Randomness: OS CSPRNG.

        Raises:
            KeyMismatchError: the ciphertext is under another key.
        """
        pk = self.public
        if ciphertext.public_key != pk.public_key:
            raise KeyMismatchError("ciphertext is not under this threshold key")
        n2 = gmpy2.mpz(pk.public_key.n_squared)
        c = gmpy2.mpz(ciphertext.value)
        share = gmpy2.powmod(c, 2 * pk.delta * self.secret, n2)
        # Prove log_{c^4}(c_i^2) = log_v(v_i) = Δ s_i.
        e, z = prove_dleq(self, gmpy2.powmod(c, 4, n2), gmpy2.powmod(share, 2, n2))
        return PartialDecryption(self.index, ciphertext, int(share), e, z)

    def partial_decrypt_batch(self, ciphertexts: Sequence[Ciphertext]) -> BatchPartialDecryption:
        """Partially decrypt many ciphertexts (a vector aggregate) with ONE batched proof.

        Returns p_j = c_j^(2Δ s_i) mod n^2 for every j and one Chaum-Pedersen proof for the
        random linear combination of all of them (see "Batched proof and its soundness" in
        ``smpcloud.crypto.threshold_batch``): about one full exponentiation per ciphertext
        instead of three for :meth:`partial_decrypt` (the proof adds ~0.2 s for 1,177
        ciphertexts at 2048 bits), and one proof to check instead of one per ciphertext.

        Reveals the partial values (exactly what per-ciphertext partial decryptions reveal)
        and a proof that is honest-verifier zero-knowledge: nothing about s_i beyond the
        eventual plaintexts. Randomness: OS CSPRNG (the proof's commitment only).

        Args:
            ciphertexts: one or more ciphertexts under this threshold key, in order; the
                proof binds the order.

        Returns:
            The holder's batch (index, one partial value per ciphertext, one proof).

        Raises:
            InvalidInputError: no ciphertexts, more than MAX_BATCH_SIZE, or an item that is
                not a Ciphertext.
            KeyMismatchError: a ciphertext under another key (by position).
        """
        values = self.raw_partial_values(ciphertexts)
        return self.prove_batch(ciphertexts, values)

    def raw_partial_values(self, ciphertexts: Sequence[Ciphertext]) -> list[int]:
        """Return c_j^(2Δ s_i) mod n^2 for each ciphertext, WITHOUT a proof.

        You probably want :meth:`partial_decrypt_batch`. This is its costly half (one
        exponentiation with a |n^2|-bit exponent per ciphertext), public so that it can run
        on several processes (:mod:`smpcloud.parallel`) before :meth:`prove_batch` runs once.
        A bare value reveals what a partial decryption reveals but cannot be verified.

        Raises:
            InvalidInputError: as for :meth:`partial_decrypt_batch`.
            KeyMismatchError: a ciphertext under another key.
        """
        cts = ciphertext_values(self.public, ciphertexts)
        n2 = gmpy2.mpz(self.public.public_key.n_squared)
        exponent = gmpy2.mpz(2 * self.public.delta * self.secret)
        return [int(gmpy2.powmod(c, exponent, n2)) for c in cts]

    def prove_batch(
        self, ciphertexts: Sequence[Ciphertext], values: Sequence[int]
    ) -> BatchPartialDecryption:
        """Make the batched proof for partial values computed by :meth:`raw_partial_values`.

        Derives the coefficients rho_j from the transcript, forms C = Π c_j^rho_j and
        P = Π p_j^rho_j mod n^2 (one multi-exponentiation each, 128-bit exponents), checks
        P = C^(2Δ s_i) (one exponentiation: a wrong value, from a bug or a faulty worker, is
        caught here instead of producing a proof that fails), and proves
        log_{C^4}(P^2) = log_v(v_i) with the same Chaum-Pedersen proof as
        :meth:`partial_decrypt`, under its own domain and bound to the transcript.

        Reveals what :meth:`partial_decrypt_batch` reveals. Randomness: OS CSPRNG.

        Args:
            ciphertexts: the ciphertexts, in order.
            values: this holder's partial value of each ciphertext, in the same order.

        Returns:
            The holder's batch.

        Raises:
            InvalidInputError: as for :meth:`partial_decrypt_batch`; or values of another
                length, or outside [1, n^2).
            KeyMismatchError: a ciphertext under another key.
            VerificationError: the values are not this key share's partial decryptions of
                the ciphertexts.
        """
        pk = self.public
        cts = ciphertext_values(pk, ciphertexts)
        n2 = gmpy2.mpz(pk.public_key.n_squared)
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
            raise InvalidInputError("values must be a sequence of integers")
        if len(values) != len(cts):
            raise InvalidInputError(f"{len(values)} partial values for {len(cts)} ciphertexts")
        partials = []
        for j, item in enumerate(values):
            value = as_int(item)
            if value is None or not 0 < value < n2:
                raise InvalidInputError(f"partial value {j} is not an integer in [1, n^2)")
            partials.append(gmpy2.mpz(value))
        digest, rhos = batch_coefficients(pk, self.index, cts, partials)
        big_c, big_p = multi_pow([cts, partials], rhos, n2)
        if gmpy2.powmod(big_c, 2 * pk.delta * self.secret, n2) != big_p:
            raise VerificationError("partial values do not match this key share")
        e, z = prove_dleq(
            self,
            gmpy2.powmod(big_c, 4, n2),
            gmpy2.powmod(big_p, 2, n2),
            domain=BATCH_CHALLENGE_DOMAIN,
            context=(digest,),
        )
        return BatchPartialDecryption(self.index, tuple(int(v) for v in partials), e, z)


@dataclass(frozen=True, slots=True)
class PartialDecryption:
    """Holder ``index``'s partial decryption of ``ciphertext`` and its proof (e, z)."""

    index: int
    ciphertext: Ciphertext
    value: int
    challenge: int
    response: int


def verify_partial(pk: ThresholdPublicKey, partial: PartialDecryption) -> bool:
    """Return True iff the partial decryption's proof verifies for its holder and ciphertext.

    Checks the holder index, the value lies in Z*_{n^2}, the response bound, and the
    Chaum-Pedersen equations via the Fiat-Shamir challenge. Never raises on a bad proof.
    """
    if partial.ciphertext.public_key != pk.public_key:
        return False
    if not 1 <= partial.index <= pk.holders:
        return False
    n2 = gmpy2.mpz(pk.public_key.n_squared)
    value = gmpy2.mpz(partial.value)
    if not 0 < value < n2 or gmpy2.gcd(value, pk.n) != 1:
        return False
    c = gmpy2.mpz(partial.ciphertext.value)
    return dleq_holds(
        pk,
        partial.index,
        gmpy2.powmod(c, 4, n2),
        gmpy2.powmod(value, 2, n2),
        partial.challenge,
        partial.response,
    )


def deal(
    bits: int = 3072, *, n: int, t: int, insecure: bool = False
) -> tuple[ThresholdPublicKey, list[KeyShare]]:
    """Run the dealer's key ceremony: a fresh safe-prime key, shared among n holders, t needed.

    Args:
        bits: modulus size (3072 default; 2048 allowed; smaller only with ``insecure=True``).
        n: number of key holders (>= 1).
        t: number of holders needed to decrypt (1 <= t <= n).
        insecure: allow keys below 2048 bits (tests only).

    Returns:
        The threshold public key and the n key shares (share i for holder i + 1). The dealer's
        p, q and d are discarded.

    Raises:
        InvalidInputError: bad sizes or t outside 1..n.
    """
    if bits < 2048 and not insecure:
        raise InvalidInputError(
            f"{bits}-bit keys are insecure; use 2048 or more (or insecure=True)"
        )
    if bits % 2 or bits < 128:
        raise InvalidInputError(f"key size {bits} must be even and at least 128 bits")
    if not isinstance(n, int) or n < 1:
        raise InvalidInputError(f"number of key holders n={n} must be at least 1")
    if not 1 <= t <= n:
        raise InvalidInputError(f"threshold t={t} must be in 1..{n}")
    while True:
        p = random_safe_prime(bits // 2)
        q = random_safe_prime(bits // 2)
        if p != q and (p * q).bit_length() == bits and abs(p - q).bit_length() > bits // 2 - 100:
            break
    modulus = p * q
    m = (p - 1) // 2 * ((q - 1) // 2)
    d = m * pow(m, -1, modulus)  # d ≡ 0 mod m, d ≡ 1 mod n
    nm = modulus * m
    coefficients = [d] + [secrets.randbelow(nm) for _ in range(t - 1)]
    secrets_i = [_poly_eval(coefficients, i, nm) for i in range(1, n + 1)]
    public_key = PublicKey(modulus)
    n2 = modulus * modulus
    while True:
        r = secrets.randbelow(n2 - 2) + 2
        if math.gcd(r, modulus) == 1:
            break
    v = r * r % n2
    delta = math.factorial(n)
    vks = tuple(int(gmpy2.powmod(v, delta * s, n2)) for s in secrets_i)
    tpk = ThresholdPublicKey(public_key, n, t, v, vks)
    shares = [KeyShare(tpk, i, s) for i, s in enumerate(secrets_i, start=1)]
    del p, q, d, m, coefficients, secrets_i  # the dealer forgets the trapdoor
    return tpk, shares


def _poly_eval(coefficients: Sequence[int], x: int, modulus: int) -> int:
    acc = 0
    for c in reversed(coefficients):
        acc = (acc * x + c) % modulus
    return acc


def combine(
    pk: ThresholdPublicKey,
    partials: Iterable[PartialDecryption],
    *,
    verify: bool = True,
    exclude_invalid: bool = False,
) -> int:
    """Combine t (or more) partial decryptions of one ciphertext into its plaintext.

    Args:
        pk: the threshold public key.
        partials: partial decryptions of the same ciphertext by distinct holders.
        verify: check every proof first (default). Only skip when they were already verified.
        exclude_invalid: drop partials whose proof fails and use the valid ones, instead of
            raising; raises ThresholdNotMetError if fewer than t valid ones remain.

    Returns:
        The plaintext in (-n/2, n/2].

    Raises:
        ThresholdNotMetError: fewer than t (valid) partial decryptions.
        InvalidPartialDecryptionError: a proof failed (names the holders) and not excluding.
        InvalidInputError: partials for different ciphertexts, or duplicate holder indices.
        KeyMismatchError: partials under another key.
    """
    items = list(partials)
    if not items:
        raise ThresholdNotMetError(f"0 of {pk.threshold} partial decryptions")
    ciphertext = items[0].ciphertext
    for item in items:
        if item.ciphertext.public_key != pk.public_key:
            raise KeyMismatchError(
                f"partial decryption from holder {item.index} is under another key"
            )
        if item.ciphertext.value != ciphertext.value:
            raise InvalidInputError(
                f"partial decryption from holder {item.index} is for a different ciphertext"
            )
    indices = [item.index for item in items]
    if len(set(indices)) != len(indices):
        raise InvalidInputError(f"duplicate key holder indices in {sorted(indices)}")
    if verify:
        bad = [item.index for item in items if not verify_partial(pk, item)]
        if bad and not exclude_invalid:
            raise InvalidPartialDecryptionError(bad)
        items = [item for item in items if item.index not in bad]
        if len(items) < pk.threshold and bad:
            raise ThresholdNotMetError(
                f"{len(items)} of {pk.threshold} valid partial decryptions "
                f"(excluded holders {', '.join(map(str, sorted(bad)))})"
            )
    if len(items) < pk.threshold:
        raise ThresholdNotMetError(f"{len(items)} of {pk.threshold} partial decryptions")
    chosen = items[: pk.threshold]
    return _combine_values(pk, [(item.index, item.value) for item in chosen])


def _combine_values(pk: ThresholdPublicKey, values: Sequence[tuple[int, int]]) -> int:
    return combine_columns(pk, [i for i, _ in values], [[value] for _, value in values])[0]


# ---------------------------------------------------------------------- JSON wire formats

PUBLIC_KEY_KIND = "smpcloud.threshold.public_key"
KEY_SHARE_KIND = "smpcloud.threshold.key_share"
PARTIAL_KIND = "smpcloud.threshold.partial_decryption"


def public_key_to_json(pk: ThresholdPublicKey) -> dict[str, object]:
    """Encode a threshold public key (integers as canonical base64url)."""
    return {
        "kind": PUBLIC_KEY_KIND,
        "version": JSON_VERSION,
        "n": encode_int(pk.n),
        "holders": pk.holders,
        "threshold": pk.threshold,
        "v": encode_int(pk.v),
        "verification_keys": [encode_int(v) for v in pk.verification_keys],
    }


def public_key_from_json(data: object, *, insecure: bool = False) -> ThresholdPublicKey:
    """Decode and validate a threshold public key.

    Raises:
        InvalidInputError: wrong kind/version, missing or extra fields, bad integers, counts
            that do not match, or values outside Z*_{n^2}.
    """
    obj = check_json_object(
        data, PUBLIC_KEY_KIND, ("n", "holders", "threshold", "v", "verification_keys")
    )
    n = decode_int(obj["n"], "n", max_bytes=MAX_BITS // 8)
    public_key = PublicKey(n)
    if public_key.bits < MIN_SECURE_BITS and not insecure:
        raise InvalidInputError(f"{public_key.bits}-bit threshold key refused as insecure")
    holders, threshold = obj["holders"], obj["threshold"]
    if type(holders) is not int or type(threshold) is not int or not 1 <= holders <= 1000:
        raise InvalidInputError("holders and threshold must be integers, 1 <= holders <= 1000")
    vks = obj["verification_keys"]
    if not isinstance(vks, list):
        raise InvalidInputError("verification_keys must be a list")
    size = 2 * public_key.bits // 8 + 1
    return ThresholdPublicKey(
        public_key,
        holders,
        threshold,
        decode_int(obj["v"], "v", max_bytes=size),
        tuple(decode_int(v, "verification key", max_bytes=size) for v in vks),
    )


def key_share_to_json(share: KeyShare) -> dict[str, object]:
    """Encode a key share, with its public key. Secret: store with mode 0600."""
    return {
        "kind": KEY_SHARE_KIND,
        "version": JSON_VERSION,
        "public": public_key_to_json(share.public),
        "index": share.index,
        "secret": encode_int(share.secret),
    }


def key_share_from_json(data: object, *, insecure: bool = False) -> KeyShare:
    """Decode and validate a key share.

    Raises:
        InvalidInputError: wrong kind/version, fields, or values out of range.
    """
    obj = check_json_object(data, KEY_SHARE_KIND, ("public", "index", "secret"))
    pk = public_key_from_json(obj["public"], insecure=insecure)
    index = obj["index"]
    if type(index) is not int:
        raise InvalidInputError("key share index must be an integer")
    bound = key_share_bound(pk.holders, pk.n)
    secret = decode_int(obj["secret"], "secret", max_bytes=(bound.bit_length() + 7) // 8)
    return KeyShare(pk, index, secret)


def partial_to_json(partial: PartialDecryption) -> dict[str, object]:
    """Encode a partial decryption and its proof (the ciphertext travels separately)."""
    return {
        "kind": PARTIAL_KIND,
        "version": JSON_VERSION,
        "index": partial.index,
        "value": encode_int(partial.value),
        "challenge": encode_int(partial.challenge) if partial.challenge else "AA",
        "response": encode_int(partial.response) if partial.response else "AA",
    }


def partial_from_json(
    pk: ThresholdPublicKey, ciphertext: Ciphertext, data: object
) -> PartialDecryption:
    """Decode a partial decryption of ``ciphertext``; the proof is *not* verified here.

    Raises:
        InvalidInputError: wrong kind/version, fields, or malformed integers; holder index out
            of range.
    """
    obj = check_json_object(data, PARTIAL_KIND, ("index", "value", "challenge", "response"))
    index = obj["index"]
    if type(index) is not int or not 1 <= index <= pk.holders:
        raise InvalidInputError(f"partial decryption holder index outside 1..{pk.holders}")
    size = 2 * pk.public_key.bits // 8 + 1
    value = decode_int(obj["value"], "value", max_bytes=size)

    def small(name: str, max_bytes: int) -> int:
        raw = obj[name]
        return 0 if raw == "AA" else decode_int(raw, name, max_bytes=max_bytes)

    return PartialDecryption(
        index,
        ciphertext,
        value,
        small("challenge", CHALLENGE_BITS // 8),
        small("response", proof_nonce_bits(pk) // 8 + 2),
    )


__all__ = [
    "BATCH_COEFFICIENT_BITS",
    "BATCH_PARTIAL_KIND",
    "CHALLENGE_BITS",
    "KEY_SHARE_KIND",
    "MAX_BATCH_SIZE",
    "PARTIAL_KIND",
    "PUBLIC_KEY_KIND",
    "STATISTICAL_BITS",
    "BatchPartialDecryption",
    "InvalidPartialDecryptionError",
    "KeyShare",
    "PartialDecryption",
    "ThresholdPublicKey",
    "check_batches",
    "choose_batches",
    "combine",
    "combine_batch",
    "deal",
    "key_share_from_json",
    "key_share_to_json",
    "partial_from_json",
    "partial_to_json",
    "public_key_from_json",
    "public_key_to_json",
    "verify_batch",
    "verify_partial",
]

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
  p_j = c_j^(2 Δ s_i) and ONE proof, instead of one proof per ciphertext.

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

CHALLENGE_BITS = 256  # Fiat-Shamir challenge length (well below p', q')
STATISTICAL_BITS = 128  # slack that hides e·Δ·s_i inside the prover's random exponent
BATCH_COEFFICIENT_BITS = 128  # rho_j of the batched proof: soundness error ~2^-128 per try
MAX_BATCH_SIZE = 1 << 20  # most ciphertexts in one batched partial decryption
_DOMAIN = b"smpcloud/threshold-paillier/partial-decryption/v1"
_BATCH_DOMAIN = b"smpcloud/threshold-paillier/batch-partial-decryption/v1/transcript"
_COEFFICIENT_DOMAIN = b"smpcloud/threshold-paillier/batch-partial-decryption/v1/coefficients"
_BATCH_CHALLENGE_DOMAIN = b"smpcloud/threshold-paillier/batch-partial-decryption/v1/challenge"


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
    """

    public_key: PublicKey
    holders: int
    threshold: int
    v: int
    verification_keys: tuple[int, ...]
    delta: int = field(init=False, repr=False, compare=False)
    _fingerprint: bytes = field(init=False, repr=False, compare=False)

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
            h.update(_length_prefixed(value))
        object.__setattr__(self, "_fingerprint", h.digest())

    @property
    def n(self) -> int:
        """The Paillier modulus."""
        return self.public_key.n

    def encrypt(self, plaintext: int) -> Ciphertext:
        """Encrypt under the shared key (same as ``public_key.encrypt``)."""
        return self.public_key.encrypt(plaintext)

    def fingerprint(self) -> str:
        """A short hex digest that identifies the key (n, holders, threshold, v, v_i)."""
        return self._fingerprint.hex()[:16]


@dataclass(frozen=True, slots=True, repr=False)
class KeyShare:
    """Holder ``index``'s share s_i of the decryption exponent. Secret: redacted in ``repr``.

    Attributes:
        public: the threshold public key it belongs to.
        index: the holder's number, 1..holders.
        secret: s_i = f(index) mod n·m.
    """

    public: ThresholdPublicKey
    index: int
    secret: int

    def __post_init__(self) -> None:
        if not 1 <= self.index <= self.public.holders:
            raise InvalidInputError(
                f"key share index {self.index} outside 1..{self.public.holders}"
            )
        if not 0 <= self.secret < self.public.n**2:
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
        e, z = _prove_dleq(self, gmpy2.powmod(c, 4, n2), gmpy2.powmod(share, 2, n2))
        return PartialDecryption(self.index, ciphertext, int(share), e, z)

    def partial_decrypt_batch(self, ciphertexts: Sequence[Ciphertext]) -> BatchPartialDecryption:
        """Partially decrypt many ciphertexts (a vector aggregate) with ONE batched proof.

        Returns p_j = c_j^(2Δ s_i) mod n^2 for every j and one Chaum-Pedersen proof for the
        random linear combination of all of them (see "Batched proof and its soundness" in
        the module docstring): about one full exponentiation per ciphertext instead of three
        for :meth:`partial_decrypt` (the proof adds ~0.2 s for 1,177 ciphertexts at 2048
        bits), and one proof to check instead of one per ciphertext.

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
        cts = _ciphertext_values(self.public, ciphertexts)
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
        cts = _ciphertext_values(pk, ciphertexts)
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
        digest, rhos = _batch_coefficients(pk, self.index, cts, partials)
        big_c, big_p = _multi_pow([cts, partials], rhos, n2)
        if gmpy2.powmod(big_c, 2 * pk.delta * self.secret, n2) != big_p:
            raise VerificationError("partial values do not match this key share")
        e, z = _prove_dleq(
            self,
            gmpy2.powmod(big_c, 4, n2),
            gmpy2.powmod(big_p, 2, n2),
            domain=_BATCH_CHALLENGE_DOMAIN,
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


def _length_prefixed(value: int) -> bytes:
    raw = int(value).to_bytes((int(value).bit_length() + 7) // 8 or 1, "big")
    return len(raw).to_bytes(4, "big") + raw


def _proof_nonce_bits(pk: ThresholdPublicKey) -> int:
    # The witness Δ s_i < Δ n^2; r must exceed e · witness by STATISTICAL_BITS.
    return (pk.delta * pk.n**2).bit_length() + CHALLENGE_BITS + STATISTICAL_BITS


def _challenge(pk: ThresholdPublicKey, index: int, *values: object, domain: bytes = _DOMAIN) -> int:
    h = hashlib.sha256(domain)
    h.update(pk._fingerprint)  # the whole key, hashed once per key object
    h.update(_length_prefixed(index))
    h.update(_length_prefixed(pk.verification_keys[index - 1]))
    for value in values:
        h.update(_length_prefixed(int(value)))  # type: ignore[call-overload]
    return int.from_bytes(h.digest(), "big") >> (256 - CHALLENGE_BITS)


def _prove_dleq(
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
    """
    pk = share.public
    n2 = gmpy2.mpz(pk.public_key.n_squared)
    r = secrets.randbits(_proof_nonce_bits(pk))
    a = gmpy2.powmod(base, r, n2)
    b = gmpy2.powmod(gmpy2.mpz(pk.v), r, n2)
    e = _challenge(pk, share.index, *context, base, value, a, b, domain=domain)
    return e, r + e * pk.delta * share.secret


def _dleq_holds(
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
    """Check a proof made by :func:`_prove_dleq`; base and value must be units mod n^2."""
    if not 0 <= response < 1 << (_proof_nonce_bits(pk) + 1):
        return False
    if not 0 <= challenge < 1 << CHALLENGE_BITS:
        return False
    n2 = gmpy2.mpz(pk.public_key.n_squared)
    e, z = challenge, response
    v_i = gmpy2.mpz(pk.verification_keys[index - 1])
    a = gmpy2.powmod(base, z, n2) * gmpy2.powmod(value, -e, n2) % n2
    b = gmpy2.powmod(gmpy2.mpz(pk.v), z, n2) * gmpy2.powmod(v_i, -e, n2) % n2
    return _challenge(pk, index, *context, base, value, a, b, domain=domain) == e


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
    return _dleq_holds(
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
    return _combine_columns(pk, [i for i, _ in values], [[value] for _, value in values])[0]


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


def _combine_columns(
    pk: ThresholdPublicKey, indices: Sequence[int], columns: Sequence[Sequence[int]]
) -> list[int]:
    """Combine partial values: columns[k][j] is holder indices[k]'s partial of ciphertext j.

    For each j, c'_j = Π_k columns[k][j]^(2 μ_k) = (1 + n)^(4 Δ^2 M_j), so
    M_j = L(c'_j) (4 Δ^2)^-1 mod n. Negative exponents share one inversion per ciphertext.

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


# ------------------------------------------------------------ batched partial decryption


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
            small("response", _proof_nonce_bits(public) // 8 + 2),
        )


def _ciphertext_values(pk: ThresholdPublicKey, ciphertexts: object) -> list[gmpy2.mpz]:
    """Return the ciphertexts' values, checking type, count and key (positions in messages)."""
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


def _batch_coefficients(
    pk: ThresholdPublicKey, index: int, cts: Sequence[int], values: Sequence[int]
) -> tuple[int, list[int]]:
    """Return the transcript digest (as an int) and rho_1..rho_N (BATCH_COEFFICIENT_BITS each).

    digest = SHA-256(domain, key fingerprint, holder, v_i, N, c_1..c_N, p_1..p_N), every
    c_j and p_j as fixed-width (|n^2| bytes) big-endian, so the encoding is injective;
    rho = SHAKE-256(coefficient domain, digest) cut into 128-bit big-endian integers.
    """
    width = (pk.public_key.n_squared.bit_length() + 7) // 8
    h = hashlib.sha256(_BATCH_DOMAIN)
    h.update(pk._fingerprint)
    h.update(_length_prefixed(index))
    h.update(_length_prefixed(pk.verification_keys[index - 1]))
    h.update(len(cts).to_bytes(8, "big"))
    h.update(b"".join(int(c).to_bytes(width, "big") for c in cts))
    h.update(b"".join(int(v).to_bytes(width, "big") for v in values))
    digest = h.digest()
    step = BATCH_COEFFICIENT_BITS // 8
    stream = hashlib.shake_256(_COEFFICIENT_DOMAIN + digest).digest(step * len(cts))
    rhos = [int.from_bytes(stream[k : k + step], "big") for k in range(0, len(stream), step)]
    return int.from_bytes(digest, "big"), rhos


def _multi_pow(
    columns: Sequence[Sequence[gmpy2.mpz]], exponents: Sequence[int], modulus: gmpy2.mpz
) -> list[gmpy2.mpz]:
    """Return [Π_j column[j]^exponents[j] mod modulus for each column] (exponents >= 0).

    Pippenger's bucket method with a window w chosen to minimise ceil(bits/w)(N + 2^(w+1))
    multiplications: for N = 1177 bases and 128-bit exponents, ~23 multiplications per base
    instead of ~150 for one ``powmod`` per base (about 7x faster, measured). Small N falls
    back to ``powmod`` per base. The digits are shared by the columns.
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
    digest, rhos = _batch_coefficients(pk, batch.index, cts, values)
    big_c, big_p = _multi_pow([cts, values], rhos, n2)
    holds = _dleq_holds(
        pk,
        batch.index,
        gmpy2.powmod(big_c, 4, n2),
        gmpy2.powmod(big_p, 2, n2),
        batch.challenge,
        batch.response,
        domain=_BATCH_CHALLENGE_DOMAIN,
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
    cts = _ciphertext_values(public, ciphertexts)
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
    count = len(_ciphertext_values(public, ciphertexts))
    indices = [_check_batch_shape(public, item, count) for item in items]
    if len(set(indices)) != len(indices):
        raise InvalidInputError(f"duplicate key holder indices in {sorted(indices)}")
    return items


def _choose_batches(
    public: ThresholdPublicKey,
    items: Sequence[BatchPartialDecryption],
    bad: Sequence[int],
    exclude_invalid: bool,
) -> list[BatchPartialDecryption]:
    """Return the first t batches whose holder is not in ``bad`` (or raise, as combine does)."""
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
        cts = _ciphertext_values(public, ciphertexts)
        bad = [item.index for item in items if _batch_failure(public, cts, item) is not None]
    chosen = _choose_batches(public, items, bad, exclude_invalid)
    return _combine_columns(public, [b.index for b in chosen], [b.values for b in chosen])


# ---------------------------------------------------------------------- JSON wire formats

PUBLIC_KEY_KIND = "smpcloud.threshold.public_key"
KEY_SHARE_KIND = "smpcloud.threshold.key_share"
PARTIAL_KIND = "smpcloud.threshold.partial_decryption"
BATCH_PARTIAL_KIND = "smpcloud.threshold.batch_partial_decryption"


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
    secret = decode_int(obj["secret"], "secret", max_bytes=2 * pk.public_key.bits // 8 + 1)
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
        small("response", _proof_nonce_bits(pk) // 8 + 2),
    )

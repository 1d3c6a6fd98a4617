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

Reveals: a partial decryption reveals nothing about the key share beyond what the plaintext
reveals (the proof is honest-verifier zero-knowledge); t partials reveal the plaintext M.
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
from smpcloud.crypto.wire import JSON_VERSION, check_json_object, decode_int, encode_int
from smpcloud.errors import (
    InvalidInputError,
    KeyMismatchError,
    ThresholdNotMetError,
    VerificationError,
)

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
        exponent = 2 * pk.delta * self.secret
        share = gmpy2.powmod(c, exponent, n2)
        # Prove log_{c^4}(c_i^2) = log_v(v_i) = Δ s_i.
        c4 = gmpy2.powmod(c, 4, n2)
        ci2 = gmpy2.powmod(share, 2, n2)
        witness = pk.delta * self.secret
        r = secrets.randbits(_proof_nonce_bits(pk))
        a = gmpy2.powmod(c4, r, n2)
        b = gmpy2.powmod(gmpy2.mpz(pk.v), r, n2)
        e = _challenge(pk, self.index, c4, ci2, a, b)
        z = r + e * witness
        return PartialDecryption(self.index, ciphertext, int(share), e, int(z))


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


def _challenge(pk: ThresholdPublicKey, index: int, *values: object) -> int:
    h = hashlib.sha256(_DOMAIN)
    h.update(pk._fingerprint)  # the whole key, hashed once per key object
    h.update(_length_prefixed(index))
    h.update(_length_prefixed(pk.verification_keys[index - 1]))
    for value in values:
        h.update(_length_prefixed(int(value)))  # type: ignore[call-overload]
    return int.from_bytes(h.digest(), "big") >> (256 - CHALLENGE_BITS)


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
    if not 0 <= partial.response < 1 << (_proof_nonce_bits(pk) + 1):
        return False
    if not 0 <= partial.challenge < 1 << CHALLENGE_BITS:
        return False
    c = gmpy2.mpz(partial.ciphertext.value)
    c4 = gmpy2.powmod(c, 4, n2)
    ci2 = gmpy2.powmod(value, 2, n2)
    e, z = partial.challenge, partial.response
    v_i = gmpy2.mpz(pk.verification_keys[partial.index - 1])
    a = gmpy2.powmod(c4, z, n2) * gmpy2.powmod(ci2, -e, n2) % n2
    b = gmpy2.powmod(gmpy2.mpz(pk.v), z, n2) * gmpy2.powmod(v_i, -e, n2) % n2
    return _challenge(pk, partial.index, c4, ci2, a, b) == e


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
    n = gmpy2.mpz(pk.n)
    n2 = gmpy2.mpz(pk.public_key.n_squared)
    xs = [i for i, _ in values]
    acc = gmpy2.mpz(1)
    for i, value in values:
        num, den = pk.delta, 1
        for j in xs:
            if j != i:
                num *= j
                den *= j - i
        mu, rem = divmod(num, den)
        if rem:  # cannot happen: Δ = holders! clears every denominator
            raise VerificationError("non-integral Lagrange coefficient")
        acc = acc * gmpy2.powmod(gmpy2.mpz(value), 2 * mu, n2) % n2
    if (acc - 1) % n:
        raise VerificationError("combined value is not of the form 1 + kn: a partial is wrong")
    m = (acc - 1) // n * gmpy2.invert(4 * pk.delta * pk.delta, n) % n
    return int(m - n) if m > n // 2 else int(m)


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

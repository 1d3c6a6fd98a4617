"""Ed25519 signatures over domain-separated statements, and rosters of t-of-n signers.

Who uses it: every key holder has a long-term :class:`SigningKey` (made with its key share)
with which it certifies a task's key and parameters and attests the aggregate it verified; the
aggregation server signs upload receipts and its published report log. Whoever relies on those
statements pins the signers' :class:`VerifyKey` out of band — for the key holders, as a
:class:`Roster` (``holders.json`` from ``smpcloud keygen``) that also says how many of them
must agree (t).

**Statements.** A signature never covers raw bytes chosen by a caller: :func:`statement`
builds the signed message from a domain string (what the statement is, e.g.
``"smpcloud/task-certificate/v1"``) and a JSON object of its fields, canonically encoded
(sorted keys, no spaces, ASCII only, integers and strings only — no floats, whose spelling is
not canonical). A signature over one kind of statement therefore never verifies as another
kind, and two parties that agree on the fields agree on the bytes.

**Security.** Ed25519 (RFC 8032) through pyca/cryptography (OpenSSL): existentially
unforgeable under chosen-message attacks (EUF-CMA) in the random-oracle model, keys from the
OS CSPRNG. Verification is the strict RFC 8032 check of OpenSSL. The wire form of keys and
signatures is unpadded base64url (:mod:`smpcloud.crypto.wire`).

Pure: no files (``smpcloud.keyfiles`` reads and writes key files), no network.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from smpcloud.crypto.wire import b64url, check_json_object
from smpcloud.errors import InvalidInputError, SignatureError

SIGNING_KEY_KIND: Final = "smpcloud-ed25519-signing-key"
ROSTER_KIND: Final = "smpcloud-holder-roster"
KEY_BYTES: Final = 32
SIGNATURE_BYTES: Final = 64
#: Most signers a roster may hold (the service allows at most 100 key holders).
MAX_SIGNERS: Final = 100
_DOMAIN_RE: Final = re.compile(r"[a-z0-9][a-z0-9./_-]{0,99}")
_B64URL_RE: Final = re.compile(r"[A-Za-z0-9_-]*")


def _decode_fixed(text: object, what: str, size: int) -> bytes:
    """Decode unpadded base64url of exactly ``size`` bytes (canonical spelling only)."""
    if not isinstance(text, str) or not _B64URL_RE.fullmatch(text):
        raise InvalidInputError(f"{what}: expected unpadded base64url text")
    if len(text) != -(-4 * size // 3):
        raise InvalidInputError(f"{what}: expected {size} bytes")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:  # pragma: no cover - excluded by the checks
        raise InvalidInputError(f"{what}: not base64url") from exc
    if len(raw) != size or b64url(raw) != text:
        raise InvalidInputError(f"{what}: non-canonical base64url")
    return raw


def _check_value(value: object, where: str) -> None:
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, int | str):
        return
    if isinstance(value, list | tuple):
        for item in value:
            _check_value(item, where)
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidInputError(f"{where}: object keys must be strings")
            _check_value(item, where)
        return
    raise InvalidInputError(
        f"{where}: only integers, strings, booleans, null, lists and objects can be signed "
        f"(got {type(value).__name__})"
    )


def statement(domain: str, fields: Mapping[str, object]) -> bytes:
    """Return the canonical bytes of a statement: what a signature covers.

    ``domain`` + one zero byte + the canonical JSON of ``fields`` (sorted keys, ``,``/``:``
    separators, ASCII escapes). Floats are refused (their text is not canonical).

    Args:
        domain: what the statement is and its version, e.g. ``"smpcloud/receipt/v1"``
            (lower-case letters, digits and ``./_-``, at most 100 characters).
        fields: the statement's fields: integers, strings, booleans, null, lists, objects.

    Returns:
        The message to sign or verify.

    Raises:
        InvalidInputError: a malformed domain or a field of another type.
    """
    if not isinstance(domain, str) or not _DOMAIN_RE.fullmatch(domain):
        raise InvalidInputError(f"malformed statement domain {domain!r}")
    if not isinstance(fields, Mapping):
        raise InvalidInputError("a statement's fields must be an object")
    _check_value(fields, domain)
    body = json.dumps(dict(fields), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return domain.encode("ascii") + b"\x00" + body.encode("ascii")


@dataclass(frozen=True, slots=True)
class VerifyKey:
    """An Ed25519 public key: checks signatures.

    Attributes:
        raw: the 32-byte public key (RFC 8032 encoding).
    """

    raw: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.raw, bytes) or len(self.raw) != KEY_BYTES:
            raise InvalidInputError("an Ed25519 public key is 32 bytes")
        try:
            ed25519.Ed25519PublicKey.from_public_bytes(self.raw)
        except ValueError as exc:
            raise InvalidInputError("not an Ed25519 public key") from exc

    @classmethod
    def from_text(cls, text: object, what: str = "verify key") -> VerifyKey:
        """Parse the wire form (unpadded base64url of 32 bytes).

        Raises:
            InvalidInputError: not the canonical wire form of an Ed25519 public key.
        """
        return cls(_decode_fixed(text, what, KEY_BYTES))

    def to_text(self) -> str:
        """Return the wire form: unpadded base64url of the 32 bytes."""
        return b64url(self.raw)

    def fingerprint(self) -> str:
        """A short hex digest that identifies the key (SHA-256, first 16 hex digits)."""
        return hashlib.sha256(self.raw).hexdigest()[:16]

    def verify(self, signature: bytes, message: bytes) -> None:
        """Check ``signature`` on ``message`` (a :func:`statement`).

        Raises:
            SignatureError: the signature is malformed or does not verify under this key.
        """
        if not isinstance(signature, bytes) or len(signature) != SIGNATURE_BYTES:
            raise SignatureError("an Ed25519 signature is 64 bytes")
        try:
            ed25519.Ed25519PublicKey.from_public_bytes(self.raw).verify(signature, message)
        except InvalidSignature:
            raise SignatureError("the signature does not verify") from None


@dataclass(frozen=True, slots=True, repr=False)
class SigningKey:
    """An Ed25519 private key. Secret: redacted in ``repr``; never logged.

    Make one with :meth:`generate` (OS CSPRNG), keep it with :meth:`to_json` (a secret file,
    mode 0600: ``smpcloud.keyfiles.write_signing_key``).
    """

    _key: ed25519.Ed25519PrivateKey = field(compare=False)
    verify_key: VerifyKey

    @classmethod
    def generate(cls) -> SigningKey:
        """A new key from the OS CSPRNG."""
        key = ed25519.Ed25519PrivateKey.generate()
        return cls(key, VerifyKey(key.public_key().public_bytes_raw()))

    @classmethod
    def from_seed(cls, seed: bytes) -> SigningKey:
        """The key of a 32-byte RFC 8032 seed (a private key's stored form).

        Raises:
            InvalidInputError: not 32 bytes.
        """
        if not isinstance(seed, bytes) or len(seed) != KEY_BYTES:
            raise InvalidInputError("an Ed25519 private key seed is 32 bytes")
        key = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
        return cls(key, VerifyKey(key.public_key().public_bytes_raw()))

    def __repr__(self) -> str:
        return f"SigningKey(verify_key={self.verify_key.fingerprint()}, <secret>)"

    def sign(self, message: bytes) -> bytes:
        """Sign ``message`` (build it with :func:`statement`); returns 64 bytes."""
        return self._key.sign(message)

    def sign_statement(self, domain: str, fields: Mapping[str, object]) -> str:
        """Sign :func:`statement` (domain, fields); returns the signature's wire form."""
        return b64url(self.sign(statement(domain, fields)))

    def to_json(self) -> dict[str, object]:
        """The secret key file's JSON object (write it with mode 0600)."""
        seed = self._key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        return {
            "kind": SIGNING_KEY_KIND,
            "version": 1,
            "seed": b64url(seed),
            "verify_key": self.verify_key.to_text(),
        }

    @classmethod
    def from_json(cls, data: object) -> SigningKey:
        """Parse :meth:`to_json`'s object; the stored verify key must match the seed.

        Raises:
            InvalidInputError: malformed, or a verify key that is not the seed's.
        """
        obj = check_json_object(data, SIGNING_KEY_KIND, ("seed", "verify_key"))
        key = cls.from_seed(_decode_fixed(obj["seed"], "seed", KEY_BYTES))
        if key.verify_key != VerifyKey.from_text(obj["verify_key"]):
            raise InvalidInputError("the signing key file's verify_key is not its seed's")
        return key


def signature_from_text(text: object, what: str = "signature") -> bytes:
    """Parse a signature's wire form (unpadded base64url of 64 bytes).

    Raises:
        InvalidInputError: not the canonical wire form of 64 bytes.
    """
    return _decode_fixed(text, what, SIGNATURE_BYTES)


def verify_statement(
    key: VerifyKey, signature: object, domain: str, fields: Mapping[str, object]
) -> None:
    """Check a signature (wire form) on :func:`statement` (domain, fields).

    Raises:
        SignatureError: malformed, or it does not verify under ``key``.
    """
    try:
        raw = signature_from_text(signature)
    except InvalidInputError as exc:
        raise SignatureError(str(exc)) from None
    key.verify(raw, statement(domain, fields))


@dataclass(frozen=True, slots=True)
class Roster:
    """The pinned signers of a deployment: signer i's verify key, and how many must agree.

    For the key holders this is ``holders.json`` from ``smpcloud keygen``: a client that pins
    it accepts a task's key and parameters only if at least ``threshold`` of these holders
    signed them — a server cannot substitute a key, or claim other parameters, without t
    holders' signing keys.

    Attributes:
        threshold: signatures needed (t), 1 <= t <= len(keys).
        keys: signer index (1..n) -> verify key; distinct keys.
    """

    threshold: int
    keys: Mapping[int, VerifyKey]

    def __post_init__(self) -> None:
        if not isinstance(self.keys, Mapping) or not 1 <= len(self.keys) <= MAX_SIGNERS:
            raise InvalidInputError(f"a roster holds 1 to {MAX_SIGNERS} signers")
        for index, key in self.keys.items():
            if type(index) is not int or not 1 <= index <= MAX_SIGNERS:
                raise InvalidInputError(
                    f"roster: signer index {index!r} is not in 1..{MAX_SIGNERS}"
                )
            if not isinstance(key, VerifyKey):
                raise InvalidInputError(f"roster: signer {index}'s key is not a VerifyKey")
        if len({key.raw for key in self.keys.values()}) != len(self.keys):
            raise InvalidInputError("roster: two signers share one verify key")
        if type(self.threshold) is not int or not 1 <= self.threshold <= len(self.keys):
            raise InvalidInputError(
                f"roster: threshold {self.threshold!r} is not in 1..{len(self.keys)}"
            )

    @property
    def size(self) -> int:
        """Number of signers (n)."""
        return len(self.keys)

    def digest(self) -> str:
        """SHA-256 (hex, 64 digits) of the roster's canonical JSON: its fingerprint.

        Give it to whoever cannot receive the file itself: they check a served roster against
        it (``smpcloud submit --holders-fingerprint``).
        """
        return hashlib.sha256(statement("smpcloud/roster/v1", self.to_json())).hexdigest()

    def verify_quorum(
        self,
        signatures: Iterable[tuple[int, object]],
        domain: str,
        fields: Mapping[str, object],
    ) -> tuple[int, ...]:
        """Check that at least ``threshold`` distinct signers signed the statement.

        Signatures by unknown indices, duplicates and ones that do not verify are not counted
        (a server may pass on garbage; it cannot make up for a missing holder).

        Args:
            signatures: (signer index, signature wire form) pairs.
            domain: the statement's domain.
            fields: the statement's fields.

        Returns:
            The indices whose signatures verified, sorted.

        Raises:
            SignatureError: fewer than ``threshold`` valid signatures (the message says how
                many verified, of how many needed, and which indices failed).
        """
        message = statement(domain, fields)
        valid: set[int] = set()
        failed: set[int] = set()
        for index, text in signatures:
            key = self.keys.get(index) if type(index) is int else None
            if key is None or index in valid:
                continue
            try:
                key.verify(signature_from_text(text), message)
            except (InvalidInputError, SignatureError):
                failed.add(index)
                continue
            valid.add(index)
        if len(valid) < self.threshold:
            bad = f"; invalid signature(s) from {sorted(failed - valid)}" if failed - valid else ""
            raise SignatureError(
                f"{len(valid)} valid signature(s) from the pinned signers, {self.threshold} "
                f"needed{bad}"
            )
        return tuple(sorted(valid))

    def to_json(self) -> dict[str, object]:
        """The roster file's JSON object (public)."""
        return {
            "kind": ROSTER_KIND,
            "version": 1,
            "threshold": self.threshold,
            "signers": [
                {"index": index, "verify_key": self.keys[index].to_text()}
                for index in sorted(self.keys)
            ],
        }

    @classmethod
    def from_json(cls, data: object) -> Roster:
        """Parse :meth:`to_json`'s object.

        Raises:
            InvalidInputError: malformed, duplicate indices or keys, threshold out of range.
        """
        obj = check_json_object(data, ROSTER_KIND, ("threshold", "signers"))
        signers = obj["signers"]
        if not isinstance(signers, list) or len(signers) > MAX_SIGNERS:
            raise InvalidInputError(f"roster: signers must be a list of at most {MAX_SIGNERS}")
        keys: dict[int, VerifyKey] = {}
        for entry in signers:
            if not isinstance(entry, Mapping) or set(entry) != {"index", "verify_key"}:
                raise InvalidInputError("roster: each signer is {index, verify_key}")
            index = entry["index"]
            if type(index) is not int or index in keys:
                raise InvalidInputError(f"roster: bad or duplicate signer index {index!r}")
            keys[index] = VerifyKey.from_text(entry["verify_key"], f"signer {index}'s key")
        threshold = obj["threshold"]
        if type(threshold) is not int:
            raise InvalidInputError("roster: threshold must be an integer")
        return cls(threshold, keys)


__all__ = [
    "KEY_BYTES",
    "MAX_SIGNERS",
    "ROSTER_KIND",
    "SIGNATURE_BYTES",
    "SIGNING_KEY_KIND",
    "Roster",
    "SigningKey",
    "VerifyKey",
    "signature_from_text",
    "statement",
    "verify_statement",
]

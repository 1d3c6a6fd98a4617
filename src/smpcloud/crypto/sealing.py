"""Sealing a message to one recipient's public key: RFC 9180 HPKE, base mode, single shot.

Who uses it: a data owner of a Shamir task seals share j to server j's key, so that only server
j reads it, whatever carries the request (a proxy, a TLS terminator, one host posing as several
servers); see :mod:`smpcloud.protocol.sharing` for the context each share is bound to.

**Names.** An :class:`OpeningKey` is the recipient's private key: it opens. Its
:class:`SealingKey` is the public key others seal to (``OpeningKey.sealing_key``). The wire
form of a sealing key, of ``enc`` (the encapsulated key) and of a ciphertext is unpadded
base64url (:func:`smpcloud.crypto.wire.b64url`).

**Suite.** DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305 (RFC 9180 identifiers
0x0020, 0x0001, 0x0003), base mode (no sender key, no PSK), through the ``pyhpke`` library over
pyca/cryptography (OpenSSL). ChaCha20-Poly1305 rather than AES-128-GCM: it runs in constant
time in software on every CPU (AES-GCM is constant time only with AES instructions, which not
every client machine has), it has a 256-bit key, and one share is at most a few megabytes, so
the speed difference with hardware AES does not matter (``benchmarks/bench_shamir.py``
measures it).

**Security.** IND-CCA2 for the recipient under the Gap Diffie-Hellman assumption on X25519,
with HKDF modelled as a random oracle (RFC 9180, section 9.1). Every message gets a fresh
ephemeral key from the OS CSPRNG. ``info`` and ``aad`` bind the message to its context: a
message opens only with the same ``info`` and ``aad`` it was sealed with, and only with the
opening key of the sealing key it was sealed to. What it does **not** give: base mode does not
authenticate the sender (anyone may seal to a public key; the recipient authenticates senders
by other means, e.g. a bearer token); a sealed message reveals its length (plaintext + 16
bytes, plus the 32 bytes of ``enc``); the recipient's opening key opens every message ever
sealed to it (no forward secrecy for the recipient). Who holds the sealing key must be sure it
is the recipient's: sealing to a key an attacker substituted gives the plaintext to the
attacker (callers pin keys; see :mod:`smpcloud.client.shamir`).

Pure: no files, no network.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from dataclasses import dataclass, field
from typing import Final

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from pyhpke import AEADId, CipherSuite, KDFId, KEMId, KEMKey, KEMKeyInterface, KEMKeyPair
from pyhpke import OpenError as HpkeOpenError

from smpcloud.crypto.wire import b64url
from smpcloud.errors import InvalidInputError, SealError

#: The HPKE suite, in RFC 9180's words.
SUITE_NAME: Final = "DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305"
#: Size of an X25519 private or public key, and of ``enc``.
KEY_BYTES: Final = 32
#: Size of ``enc``, the encapsulated (ephemeral public) key.
ENC_BYTES: Final = 32
#: What sealing adds to a plaintext's length (the Poly1305 tag).
TAG_BYTES: Final = 16

_SUITE: Final = CipherSuite.new(
    KEMId.DHKEM_X25519_HKDF_SHA256, KDFId.HKDF_SHA256, AEADId.CHACHA20_POLY1305
)
_KEY_TEXT_RE: Final = re.compile(r"[A-Za-z0-9_-]{43}")
_NOT_OPENED: Final = (
    "the sealed message does not open: another key, a changed byte, or another context "
    "than it was sealed for"
)


def _decode_key_text(text: object, what: str) -> bytes:
    """Decode the canonical unpadded base64url of exactly :data:`KEY_BYTES` bytes."""
    if not isinstance(text, str) or not _KEY_TEXT_RE.fullmatch(text):
        raise InvalidInputError(f"{what}: expected 43 characters of unpadded base64url")
    try:
        raw = base64.urlsafe_b64decode(text + "=")
    except (binascii.Error, ValueError):  # pragma: no cover - excluded by the pattern
        raise InvalidInputError(f"{what}: not base64url") from None
    if b64url(raw) != text:
        raise InvalidInputError(f"{what}: non-canonical base64url (unused bits set)")
    return raw


@dataclass(frozen=True, slots=True)
class SealingKey:
    """A recipient's X25519 public key: what others seal to.

    Attributes:
        raw: the 32-byte public key (RFC 7748 encoding).

    Raises:
        InvalidInputError: not 32 bytes, or a point of small order (every shared secret with
            it would be zero, so nothing sealed to it would be secret).
    """

    raw: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.raw, bytes) or len(self.raw) != KEY_BYTES:
            raise InvalidInputError(f"an X25519 public key is {KEY_BYTES} bytes")
        try:
            X25519PrivateKey.generate().exchange(X25519PublicKey.from_public_bytes(self.raw))
        except ValueError:
            raise InvalidInputError("not a usable X25519 public key (small order)") from None

    @classmethod
    def from_text(cls, text: object, what: str = "sealing key") -> SealingKey:
        """Parse the wire form: unpadded base64url of the 32 bytes.

        Raises:
            InvalidInputError: not the canonical wire form of a usable X25519 public key.
        """
        return cls(_decode_key_text(text, what))

    def to_text(self) -> str:
        """Return the wire form: unpadded base64url of the 32 bytes (43 characters)."""
        return b64url(self.raw)

    def fingerprint(self) -> str:
        """A short hex digest that identifies the key (SHA-256, first 16 hex digits)."""
        return hashlib.sha256(self.raw).hexdigest()[:16]

    def _hpke(self) -> KEMKeyInterface:
        return _SUITE.kem.deserialize_public_key(self.raw)


@dataclass(frozen=True, slots=True, repr=False)
class OpeningKey:
    """A recipient's X25519 private key: opens what was sealed to :attr:`sealing_key`.

    Secret: redacted in ``repr``, never logged. Make one with :meth:`generate` (OS CSPRNG) or
    :meth:`from_bytes` (32 bytes kept elsewhere, e.g. ``smpcloud.service.server_keys``).
    """

    _key: X25519PrivateKey = field(compare=False)
    sealing_key: SealingKey

    @classmethod
    def from_bytes(cls, raw: bytes) -> OpeningKey:
        """The key whose RFC 7748 private scalar is ``raw`` (32 random bytes).

        Raises:
            InvalidInputError: not 32 bytes.
        """
        if not isinstance(raw, bytes) or len(raw) != KEY_BYTES:
            raise InvalidInputError(f"an X25519 private key is {KEY_BYTES} bytes")
        key = X25519PrivateKey.from_private_bytes(raw)
        return cls(key, SealingKey(key.public_key().public_bytes_raw()))

    @classmethod
    def generate(cls) -> OpeningKey:
        """A new key from the OS CSPRNG."""
        return cls.from_bytes(os.urandom(KEY_BYTES))

    @classmethod
    def derive(cls, ikm: bytes) -> OpeningKey:
        """The key RFC 9180's ``DeriveKeyPair(ikm)`` gives (known-answer tests).

        Raises:
            InvalidInputError: ``ikm`` shorter than 32 bytes.
        """
        if not isinstance(ikm, bytes) or len(ikm) < KEY_BYTES:
            raise InvalidInputError(f"DeriveKeyPair needs at least {KEY_BYTES} bytes of ikm")
        pair = _SUITE.kem.derive_key_pair(ikm)
        return cls.from_bytes(pair.private_key.to_private_bytes())

    def __repr__(self) -> str:
        return f"OpeningKey(sealing_key={self.sealing_key.fingerprint()}, <secret>)"

    def to_bytes(self) -> bytes:
        """Return the 32 secret bytes (to keep the key in a secret store; never log them)."""
        return self._key.private_bytes_raw()

    def _hpke(self) -> KEMKeyInterface:
        return KEMKey.from_pyca_cryptography_key(self._key)


def seal(
    key: SealingKey,
    plaintext: bytes,
    *,
    info: bytes,
    aad: bytes,
    ephemeral: OpeningKey | None = None,
) -> tuple[bytes, bytes]:
    """Seal ``plaintext`` to ``key`` (RFC 9180 ``SealBase``).

    Args:
        key: the recipient's sealing key (pinned: see the module docstring).
        plaintext: the message.
        info: the application's context string (the same for every message of one purpose).
        aad: associated data: what this one message is bound to (not secret, not sent).
        ephemeral: for known-answer tests only; by default a fresh key from the OS CSPRNG.
            Reusing an ephemeral key across messages breaks the scheme's security.

    Returns:
        ``(enc, ciphertext)``: the 32-byte encapsulated key and ``len(plaintext) + 16`` bytes.

    Raises:
        InvalidInputError: an argument of the wrong type.
    """
    if not isinstance(key, SealingKey):
        raise InvalidInputError("seal needs a SealingKey")
    for name, value in (("plaintext", plaintext), ("info", info), ("aad", aad)):
        if not isinstance(value, bytes):
            raise InvalidInputError(f"seal: {name} must be bytes")
    eph = ephemeral if ephemeral is not None else OpeningKey.generate()
    pair = KEMKeyPair(eph._hpke(), eph.sealing_key._hpke())
    enc, context = _SUITE.create_sender_context(key._hpke(), info, eks=pair)
    return enc, context.seal(plaintext, aad)


def open_(key: OpeningKey, enc: bytes, ciphertext: bytes, *, info: bytes, aad: bytes) -> bytes:
    """Open what :func:`seal` sealed to ``key.sealing_key`` (RFC 9180 ``OpenBase``).

    Args:
        key: the recipient's opening key.
        enc: the encapsulated key (32 bytes).
        ciphertext: the sealed message.
        info: the context string it was sealed with.
        aad: the associated data it was sealed with.

    Returns:
        The plaintext.

    Raises:
        SealError: it does not open (another key, a changed byte of ``enc`` or of the
            ciphertext, another ``info`` or ``aad``, a malformed ``enc``). The message does not
            say which.
        InvalidInputError: an argument of the wrong type.
    """
    if not isinstance(key, OpeningKey):
        raise InvalidInputError("open_ needs an OpeningKey")
    for name, value in (("enc", enc), ("ciphertext", ciphertext), ("info", info), ("aad", aad)):
        if not isinstance(value, bytes):
            raise InvalidInputError(f"open_: {name} must be bytes")
    if len(enc) != ENC_BYTES or len(ciphertext) < TAG_BYTES:
        raise SealError(_NOT_OPENED)
    try:
        context = _SUITE.create_recipient_context(enc, key._hpke(), info)
        return context.open(ciphertext, aad)
    except (HpkeOpenError, ValueError):  # ValueError: enc of small order (zero shared secret)
        raise SealError(_NOT_OPENED) from None


__all__ = [
    "ENC_BYTES",
    "KEY_BYTES",
    "SUITE_NAME",
    "TAG_BYTES",
    "OpeningKey",
    "SealingKey",
    "open_",
    "seal",
]

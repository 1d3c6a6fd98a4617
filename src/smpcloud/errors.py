"""One exception hierarchy for the whole package.

Every error raised on bad input from outside is a subclass of :class:`InvalidInputError` (and so
also of :class:`ValueError`), with a message that says what was wrong and never contains secret
material (keys, key shares, unopened shares, plaintexts).
"""

from __future__ import annotations


class SmpcError(Exception):
    """Root of every exception that smpcloud raises on purpose."""


class InvalidInputError(SmpcError, ValueError):
    """A bad parameter or a malformed value that arrived from outside."""


class MalformedCiphertextError(InvalidInputError):
    """A ciphertext not in [1, n^2), not coprime to n, or not decodable."""


class ShareError(InvalidInputError):
    """Shares that cannot be combined: wrong field, duplicate x, mixed lengths or sessions."""


class KeyMismatchError(InvalidInputError):
    """Operands that belong to different keys."""


class InvalidProofError(InvalidInputError):
    """A report's validity proof is missing, malformed or does not verify.

    Attributes:
        check: which check failed, a short stable name (for example ``"bit"``, ``"link"``,
            ``"challenge"``, ``"length"``, ``"point"``, ``"missing"``); the message says more
            (which element), never a value.
    """

    def __init__(self, message: str, *, check: str = "proof") -> None:
        super().__init__(message)
        self.check = check


class ThresholdNotMetError(SmpcError):
    """Fewer than t shares or partial decryptions were supplied."""


class OverflowDetectedError(SmpcError):
    """A value to encode, or a decoded value, lies outside its declared range."""


class VerificationError(SmpcError):
    """A proof or consistency check failed. Deliberately says little about which check."""


class SignatureError(VerificationError):
    """A signature that does not verify, or fewer valid signatures from a roster than its
    threshold: a statement nobody pinned vouches for."""


class SealError(VerificationError):
    """A sealed message (HPKE, :mod:`smpcloud.crypto.sealing`) that does not open: a wrong
    key, a changed byte, or another context (info or associated data) than it was sealed for.
    Deliberately says nothing about which."""


class ProtocolError(SmpcError):
    """An unexpected message, a peer that went silent, or an aborted protocol."""


class KeyGenerationError(ProtocolError):
    """Distributed key generation stopped: a key holder went silent or disconnected, sent a
    malformed message, or the result failed a check. The message names the step and, where
    it can be told, the holders; ``holders`` lists them (empty when no one can be named)."""

    def __init__(self, message: str, *, holders: tuple[int, ...] = ()) -> None:
        super().__init__(message)
        self.holders = holders

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_keygen_error, (str(self), self.holders))


def _rebuild_keygen_error(message: str, holders: tuple[int, ...]) -> KeyGenerationError:
    return KeyGenerationError(message, holders=holders)


class TransportError(SmpcError):
    """A connection was lost or a frame was too large."""


__all__ = [
    "InvalidInputError",
    "KeyGenerationError",
    "KeyMismatchError",
    "MalformedCiphertextError",
    "OverflowDetectedError",
    "ProtocolError",
    "SealError",
    "ShareError",
    "SignatureError",
    "SmpcError",
    "ThresholdNotMetError",
    "TransportError",
    "VerificationError",
]

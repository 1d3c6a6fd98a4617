"""What the SDK and the service must agree on about a Paillier report's validity proof.

The proof itself is :mod:`smpcloud.crypto.validity`. Both sides build from a task's public
parameters:

* the proof's **context** (:func:`proof_context`): the task id, the client (the SHA-256 digest
  of its bearer token, :func:`client_digest`: the digest under which the service stores and
  looks the token up, so the server knows it without knowing the token, and the client without
  knowing its numeric id) and the key (the threshold key's fingerprint). A proof made for one
  task, client or key does not verify for another;
* the **layout** (:func:`proof_layout`): what each ciphertext carries, from the task's encoding,
  length and packing, and the span limit of the proofs (a range too wide to prove is refused at
  task creation with a message saying to narrow it);
* the proof's **wire form** (:func:`encode_proof`, :func:`decode_proof`): unpadded base64url.

Reveals nothing (the context is hashed into every challenge, never sent).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from typing import Final

from smpcloud.crypto.packing_layout import Packing
from smpcloud.crypto.validity import ProofLayout
from smpcloud.crypto.wire import b64url
from smpcloud.errors import InvalidProofError
from smpcloud.protocol.task_encoding import TaskEncoding

#: Domain of the context bytes.
CONTEXT_DOMAIN: Final = b"smpcloud/report-context/v1"

_B64URL: Final = re.compile(r"[A-Za-z0-9_-]*")


def client_digest(token: str) -> bytes:
    """Return the 32-byte SHA-256 digest of a client's bearer token (UTF-8).

    This is the digest the service stores for the token (never the token itself).
    """
    return hashlib.sha256(token.encode("utf-8")).digest()


def proof_context(task_id: str, client: bytes, key_fingerprint: str) -> bytes:
    """Return the canonical context bytes of a report's proof.

    Args:
        task_id: the task's id.
        client: the client's token digest (:func:`client_digest`), 32 bytes.
        key_fingerprint: the task's threshold key fingerprint
            (``ThresholdPublicKey.fingerprint()``).

    Returns:
        Length-prefixed, domain-separated bytes.
    """
    parts = (task_id.encode("utf-8"), bytes(client), key_fingerprint.encode("utf-8"))
    return CONTEXT_DOMAIN + b"".join(len(p).to_bytes(4, "big") + p for p in parts)


def proof_layout(encoding: TaskEncoding, length: int, packing: Packing | None) -> ProofLayout:
    """Return the proof layout of a task: one value per ciphertext, or its packing's slots.

    Args:
        encoding: the task's encoding (ignored for a packed task, whose layout holds its range).
        length: values per report.
        packing: the task's packing, if any.

    Returns:
        The layout.

    Raises:
        InvalidInputError: a declared range too wide to prove (the message says to narrow it)
            or of a single value.
    """
    if packing is not None:
        return ProofLayout.packed(packing)
    lo, hi = encoding.encoded_bounds()
    return ProofLayout.unpacked(lo, hi, length)


def encode_proof(proof: bytes) -> str:
    """Return the proof's wire form: unpadded base64url."""
    return b64url(proof)


def decode_proof(text: str | None) -> bytes:
    """Decode a proof from the wire.

    Raises:
        InvalidProofError: no proof (check ``missing``), or not canonical unpadded base64url
            (check ``encoding``).
    """
    if text is None:
        raise InvalidProofError(
            "this task checks every report's validity: the report carries no proof "
            "(use the SDK, or send 'proof')",
            check="missing",
        )
    if not isinstance(text, str) or not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise InvalidProofError("proof: not unpadded base64url", check="encoding")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):  # pragma: no cover - excluded by the checks above
        raise InvalidProofError("proof: not base64url", check="encoding") from None
    if b64url(raw) != text:
        raise InvalidProofError(
            "proof: non-canonical base64url (unused bits set)", check="encoding"
        )
    return raw


__all__ = [
    "CONTEXT_DOMAIN",
    "client_digest",
    "decode_proof",
    "encode_proof",
    "proof_context",
    "proof_layout",
]

"""Shamir mode's wire contract: task parameters, the wire form of shares, their storage form.

The paper's secure sum in the cloud. A Shamir task lives on n independent, non-colluding
aggregation servers (separate processes and databases, possibly different operators); server j
is the x-coordinate j of every share it holds::

    admin     on each server j = 1..n: POST task (scheme "shamir", servers n, threshold t,
              server_index j, the same length/encoding/limits); POST clients (the same count on
              every server, so that client numbers 1..N line up)
    client    encode its vector, Shamir-share it (t of n, OS CSPRNG), POST share j to server j;
              it counts if at least t servers took its share
    admin     GET reporters from every reachable server; participants = the clients whose share
              every reachable server holds; POST close {clients: participants} to each of them
    server j  sum the participants' shares (field addition, vectorised): its share of the sum
    analyst   GET aggregate from any t servers; check they closed over the same participants;
              Lagrange at 0 -> the sum over the participants; divide by the count

What is revealed: each server sees uniformly random shares, who reported to it and the
participant set; the analyst (who holds the servers' admin tokens) learns the sum and the count
over the participant set, nothing else; fewer than t colluding servers learn nothing about any
input (:mod:`smpcloud.crypto.shamir`). Each server closes once, over one participant set, and
t > n/2 is required: any two groups of t servers then share a server, so no second sum over a
different set (which would give one client's value by differencing) can ever be reconstructed.

What it does **not** protect against: a malicious client can send an arbitrary share (there are
no range proofs) and bias or spoil the sum; an administrator who registers sybil clients with
known values can isolate a real client's value (as with the Paillier scheme); t or more
colluding servers learn every input.

Wire form of a share (client -> server j, and server j's share of the sum -> analyst): the
``VECTORS`` message of :mod:`smpcloud.mpc.codec` carrying one vector (the strict encoding the
peer MPC uses for the same residue vectors on its TLS mesh: field moduli in the header, exact
length, residues below their primes), as canonical base64url without padding. Servers store the
residues alone, as little-endian ``uint32`` words, ``k x m`` per report.

This module is pure (no I/O); the service and the client SDK both use it.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Final

import numpy as np

from smpcloud.crypto.field import DEFAULT_FIELD, Field, Residues
from smpcloud.crypto.wire import b64url
from smpcloud.errors import InvalidInputError, ShareError
from smpcloud.mpc.codec import decode_vectors, encode_vectors, vectors_size

#: The field of every Shamir task: three primes just below 2^32 (M ~ 2^96).
SHAMIR_FIELD: Final = DEFAULT_FIELD
#: Most aggregation servers of one Shamir task (a sanity cap: every client uploads to each).
MAX_SERVERS: Final = 64

_B64URL_RE: Final = re.compile(r"[A-Za-z0-9_-]+")


def check_shamir_parameters(servers: int, threshold: int, server_index: int | None = None) -> None:
    """Check the (n, t, j) of a Shamir task: 2 <= t <= n <= MAX_SERVERS, 2t > n, 1 <= j <= n.

    t >= 2 because with t = 1 every server would hold the client's value itself. t > n/2
    because each server closes once, over one participant set: with 2t > n any two groups of t
    servers overlap, so an administrator cannot close two disjoint groups over two sets that
    differ by one client and reconstruct both sums (the difference is that client's value).

    Args:
        servers: n, the number of aggregation servers.
        threshold: t, the number of servers' shares that reconstruct (degree t - 1).
        server_index: j, this server's x-coordinate (when checking one server's task).

    Raises:
        InvalidInputError: with a message that names the violated rule.
    """
    for name, value in (("servers", servers), ("threshold", threshold)):
        if type(value) is not int:
            raise InvalidInputError(f"{name} must be an integer")
    if not 2 <= servers <= MAX_SERVERS:
        raise InvalidInputError(f"servers={servers} must be in 2..{MAX_SERVERS}")
    if not 2 <= threshold <= servers:
        raise InvalidInputError(
            f"threshold={threshold} must be in 2..servers={servers} (with t = 1 each server "
            "would hold the values in the clear)"
        )
    if 2 * threshold <= servers:
        raise InvalidInputError(
            f"threshold={threshold} must exceed servers/2 = {servers / 2:g}: otherwise two "
            "disjoint groups of t servers could be closed over participant sets that differ by "
            "one client, and the difference of the two sums would reveal that client's value"
        )
    if server_index is not None and (
        type(server_index) is not int or not 1 <= server_index <= servers
    ):
        raise InvalidInputError(f"server_index={server_index} must be in 1..servers={servers}")


def check_sum_range(max_abs_encoded: int, max_clients: int, field: Field = SHAMIR_FIELD) -> None:
    """Refuse a task whose honest sums could wrap around modulo the field's modulus M.

    Sums are read back as signed integers in [-(M-1)/2, (M-1)/2], so the task must satisfy
    max_clients · max|encoded value| <= (M-1)/2.

    Raises:
        InvalidInputError: the declared range and max_clients allow larger sums.
    """
    reach = max_clients * max_abs_encoded
    if reach > field.signed_bound:
        raise InvalidInputError(
            f"max_clients={max_clients} times the largest encoded value allows sums up to "
            f"2^{reach.bit_length()}, beyond M/2 = 2^{field.signed_bound.bit_length()} of the "
            "Shamir field: narrow the range, lower frac_bits or lower max_clients"
        )


def share_bytes(length: int, field: Field = SHAMIR_FIELD) -> int:
    """Return the size in bytes of one encoded share of ``length`` elements (before base64)."""
    return vectors_size(field, 1, length)


def share_text_chars(length: int, field: Field = SHAMIR_FIELD) -> int:
    """Return the length of one share's base64url text (what a report body carries)."""
    return -(-4 * share_bytes(length, field) // 3)


def encode_share(residues: Residues, field: Field = SHAMIR_FIELD) -> str:
    """Encode one share vector (``uint64`` residues of shape ``(k, m)``) for JSON.

    Args:
        residues: reduced residues (each below its prime; not re-checked here).
        field: the field they belong to (its moduli go in the header).

    Returns:
        Canonical base64url text (no padding) of the ``VECTORS`` message.

    Raises:
        ShareError: a wrong shape.
    """
    return b64url(encode_vectors(field, residues))


def _b64url_bytes(text: object, what: str) -> bytes:
    """Decode canonical unpadded base64url strictly (the only spelling :func:`b64url` makes)."""
    if not isinstance(text, str):
        raise ShareError(f"{what}: expected a base64url string, got {type(text).__name__}")
    if not _B64URL_RE.fullmatch(text):
        raise ShareError(f"{what}: not unpadded base64url (allowed characters: A-Z a-z 0-9 - _)")
    if len(text) % 4 == 1:
        raise ShareError(f"{what}: impossible base64url length {len(text)}")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):  # pragma: no cover - excluded by the checks above
        raise ShareError(f"{what}: not base64url") from None
    if b64url(raw) != text:
        raise ShareError(f"{what}: non-canonical base64url (unused bits set)")
    return raw


def decode_share(
    text: object, *, length: int, field: Field = SHAMIR_FIELD, what: str = "share"
) -> Residues:
    """Decode one share vector strictly: base64url, header, field, length, residue ranges.

    Args:
        text: the JSON value received.
        length: the number of elements the task declares.
        field: the task's field.
        what: the name used in error messages (never the value itself).

    Returns:
        ``uint64`` residues of shape ``(k, length)``, each below its prime.

    Raises:
        ShareError: not canonical base64url; not a ``VECTORS`` message of exactly one vector;
            another field; a length other than ``length``; truncated or trailing bytes; a
            residue not below its prime. The message says which.
    """
    raw = _b64url_bytes(text, what)
    try:
        block = decode_vectors(raw, field, count=1, length=length)
    except ShareError as exc:
        raise ShareError(f"{what}: {exc}") from None
    vector: Residues = block[0]
    return vector


def residues_to_blob(residues: Residues) -> bytes:
    """Return the storage form of a share vector: its ``k x m`` residues as little-endian u32."""
    return residues.astype("<u4").tobytes()


def residues_from_blob(blob: bytes, *, length: int, field: Field = SHAMIR_FIELD) -> Residues:
    """Decode a stored share vector, re-checking its size and that residues are in the field.

    Raises:
        ShareError: the blob has the wrong size or holds a residue not below its prime.
    """
    if len(blob) != 4 * field.k * length:
        raise ShareError(
            f"stored share has {len(blob)} bytes; expected {4 * field.k * length} "
            f"({field.k} x {length} residues)"
        )
    words: Residues = np.frombuffer(blob, dtype="<u4").reshape(field.k, length).astype(np.uint64)
    if (words >= field.column).any():
        raise ShareError("stored share holds a residue outside the field")
    return words


__all__ = [
    "MAX_SERVERS",
    "SHAMIR_FIELD",
    "check_shamir_parameters",
    "check_sum_range",
    "decode_share",
    "encode_share",
    "residues_from_blob",
    "residues_to_blob",
    "share_bytes",
    "share_text_chars",
]

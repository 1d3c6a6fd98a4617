"""Shamir mode's wire contract: task parameters, the wire form of shares, their storage form.

The paper's secure sum in the cloud. A Shamir task lives on n independent, non-colluding
aggregation servers (separate processes and databases, possibly different operators); server j
is the x-coordinate j of every share it holds::

    admin     on each server j = 1..n: POST task (scheme "shamir", servers n, threshold t,
              server_index j, the same length/encoding/limits); GET task: pin server j's
              share_key; POST clients (the same count on every server, so that client numbers
              1..N line up); hand each client its credentials (URLs, tokens, pinned keys)
    client    check the servers serve the pinned keys; encode its vector, Shamir-share it
              (t of n, OS CSPRNG), seal share j to server j's key, POST it to server j;
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

What it does **not** protect against: on a task with validity ``none`` a malicious client can
send an arbitrary share and bias or spoil the sum (with ``range`` the servers' joint check drops
such a report, below; a client lying *within* the declared range is never detected, and the
check is sound only while every server follows the protocol); an administrator who registers
sybil clients with
known values can isolate a real client's value (as with the Paillier scheme); t or more
colluding servers learn every input. What carries the requests (a proxy, a TLS terminator, a
host posing as several servers) sees sealed shares only, with their sizes and timing (below).

Wire form of a share (client -> server j, and server j's share of the sum -> analyst): the
``VECTORS`` message of :mod:`smpcloud.mpc.codec` carrying one vector (the strict encoding the
peer MPC uses for the same residue vectors on its TLS mesh: field moduli in the header, exact
length, residues below their primes), as canonical base64url without padding. Servers store the
residues alone, as little-endian ``uint32`` words, ``k x m`` per report.

**Sealed shares.** A share never travels in the clear: the client seals share j to server j's
X25519 key (:mod:`smpcloud.crypto.sealing`, RFC 9180 HPKE base mode), which server j publishes
in its task info (``share_key``) and the administrator pins at creation in the task file and in
every client's credentials. The plaintext is the share's ``VECTORS`` message (bytes, not
base64); the HPKE ``info`` is :data:`SHARE_SEAL_INFO`; the associated data
(:func:`share_seal_aad`) binds the task's id on server j, j itself and the client's number, so
a sealed share opens only in the task, on the server and for the client it was made for (it
cannot be replayed into another task, to another server or as another client's report). A
report carries ``sealed_share: {"enc", "ciphertext"}`` (unpadded base64url); a plain ``share``
is refused. So a proxy, a TLS terminator in front of the servers, or one host posing as
several servers sees ciphertexts only; server j reads share j and nothing else. Trusted for
this: the administrator, who fetches the servers' keys at creation and writes the credentials
(a substituted key there would send the share to whoever holds it), and each server, to keep
its opening key (in its database) to itself.

**Validated tasks** (``validity="range"``): the wire and storage forms of their reports, and
the exchange of check values, are in :mod:`smpcloud.protocol.checked_shares`.

This module is pure (no I/O); the service and the client SDK both use it.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Final

import numpy as np

from smpcloud.crypto.field import DEFAULT_FIELD, Field, Residues
from smpcloud.crypto.sealing import ENC_BYTES, TAG_BYTES, OpeningKey, SealingKey, open_, seal
from smpcloud.crypto.shamir_validity import VALIDITY_FIELD
from smpcloud.crypto.signatures import statement
from smpcloud.crypto.wire import b64url
from smpcloud.errors import InvalidInputError, ShareError
from smpcloud.mpc.codec import decode_vectors, encode_vectors, vectors_size

#: The field of every Shamir task: three primes just below 2^32 (M ~ 2^96).
SHAMIR_FIELD: Final = DEFAULT_FIELD
#: Most aggregation servers of one Shamir task (a sanity cap: every client uploads to each).
MAX_SERVERS: Final = 64

#: The HPKE ``info`` of every sealed share (RFC 9180's application context string).
SHARE_SEAL_INFO: Final = b"smpcloud/shamir-share/v1"
#: The fields of a sealed share on the wire (``ReportIn.sealed_share``).
SEALED_SHARE_FIELDS: Final = ("enc", "ciphertext")

_SHARE_AAD_DOMAIN: Final = "smpcloud/shamir-share/v1"
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


def decode_b64url(text: object, what: str) -> bytes:
    """Decode canonical unpadded base64url strictly (the only spelling :func:`b64url` makes).

    Raises:
        ShareError: not a string, not unpadded base64url, or not canonical (``what`` names it).
    """
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
    raw = decode_b64url(text, what)
    try:
        block = decode_vectors(raw, field, count=1, length=length)
    except ShareError as exc:
        raise ShareError(f"{what}: {exc}") from None
    vector: Residues = block[0]
    return vector


def sealed_share_text_chars(length: int, field: Field = SHAMIR_FIELD) -> int:
    """Return the characters of one sealed share's two base64url texts (enc and ciphertext)."""
    enc = -(-4 * ENC_BYTES // 3)
    return enc + -(-4 * (share_bytes(length, field) + TAG_BYTES) // 3)


def share_seal_aad(task_id: str, server_index: int, client: int) -> bytes:
    """Return the associated data a share for server j is sealed with (client and server agree).

    The canonical statement (:func:`smpcloud.crypto.signatures.statement`) of the task's id on
    server j, j, and the client's number: a sealed share opens only there.

    Raises:
        InvalidInputError: a task id that is not text, or numbers that are not positive ints.
    """
    if not isinstance(task_id, str) or not task_id:
        raise InvalidInputError("a sealed share's task id must be non-empty text")
    for name, value in (("server_index", server_index), ("client", client)):
        if type(value) is not int or value < 1:
            raise InvalidInputError(f"a sealed share's {name} must be an int >= 1")
    return statement(
        _SHARE_AAD_DOMAIN, {"task_id": task_id, "server": server_index, "client": client}
    )


def seal_share(
    key: SealingKey,
    residues: Residues,
    *,
    task_id: str,
    server_index: int,
    client: int,
    field: Field = SHAMIR_FIELD,
) -> dict[str, str]:
    """Seal one share vector to server j's key, bound to (task, j, client).

    Args:
        key: server j's share key, as pinned by the administrator.
        residues: the share (``uint64`` residues of shape ``(k, m)``, reduced).
        task_id: the task's id on server j.
        server_index: j.
        client: the client's number in the task.
        field: the task's field.

    Returns:
        ``{"enc": ..., "ciphertext": ...}`` (unpadded base64url): a report's ``sealed_share``.

    Raises:
        ShareError: a wrong shape.
        InvalidInputError: bad task id or numbers.
    """
    aad = share_seal_aad(task_id, server_index, client)
    enc, ciphertext = seal(key, encode_vectors(field, residues), info=SHARE_SEAL_INFO, aad=aad)
    return {"enc": b64url(enc), "ciphertext": b64url(ciphertext)}


def open_share(
    key: OpeningKey,
    sealed: Mapping[str, object],
    *,
    task_id: str,
    server_index: int,
    client: int,
    length: int,
    field: Field = SHAMIR_FIELD,
) -> Residues:
    """Open a sealed share with server j's key and decode it strictly.

    Args:
        key: server j's opening key.
        sealed: the report's ``sealed_share`` (``enc`` and ``ciphertext``).
        task_id: the task's id on this server.
        server_index: this server's index j.
        client: the number of the client whose report this is.
        length: the number of elements the task declares.
        field: the task's field.

    Returns:
        ``uint64`` residues of shape ``(k, length)``, each below its prime.

    Raises:
        SealError: it does not open with this key for this task, server and client (sealed to
            another server's key, for another task or client, or changed on the way).
        ShareError: ``enc`` or ``ciphertext`` not canonical base64url, missing or extra
            fields; or what it holds is not a share of the task's field and length.
    """
    return open_sealed_vector(
        key, sealed, task_id=task_id, server_index=server_index, client=client, field=field,
        length=length,
    )  # fmt: skip


def open_sealed_vector(
    key: OpeningKey,
    sealed: Mapping[str, object],
    *,
    task_id: str,
    server_index: int,
    client: int,
    field: Field,
    length: int | None = None,
) -> Residues:
    """Open a sealed ``VECTORS`` message of one vector of ``field`` (of ``length`` elements,
    or any length with None): what :func:`open_share` and a checked task's opening share.

    Raises:
        SealError: as :func:`open_share`.
        ShareError: as :func:`open_share`.
    """
    if not isinstance(sealed, Mapping) or set(sealed) != set(SEALED_SHARE_FIELDS):
        raise ShareError("sealed_share: needs exactly enc and ciphertext")
    enc = decode_b64url(sealed["enc"], "sealed_share.enc")
    ciphertext = decode_b64url(sealed["ciphertext"], "sealed_share.ciphertext")
    aad = share_seal_aad(task_id, server_index, client)
    raw = open_(key, enc, ciphertext, info=SHARE_SEAL_INFO, aad=aad)
    try:
        block = decode_vectors(raw, field, count=1, length=length)
    except ShareError as exc:
        raise ShareError(f"sealed share: {exc}") from None
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


# ---------------------------------------------------------------------- validated tasks


def task_field(validity: str) -> Field:
    """The field of a Shamir task: GF(2^32 - 5) for ``range`` tasks, Z_M otherwise."""
    return VALIDITY_FIELD if validity == "range" else SHAMIR_FIELD


__all__ = [
    "MAX_SERVERS",
    "SEALED_SHARE_FIELDS",
    "SHAMIR_FIELD",
    "SHARE_SEAL_INFO",
    "VALIDITY_FIELD",
    "check_shamir_parameters",
    "check_sum_range",
    "decode_b64url",
    "decode_share",
    "encode_share",
    "open_sealed_vector",
    "open_share",
    "residues_from_blob",
    "residues_to_blob",
    "seal_share",
    "sealed_share_text_chars",
    "share_bytes",
    "share_seal_aad",
    "share_text_chars",
    "task_field",
]

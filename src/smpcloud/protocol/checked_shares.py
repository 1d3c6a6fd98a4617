"""The wire and storage forms of a validated Shamir report (a task with ``validity="range"``).

Part of the Shamir mode's wire contract (:mod:`smpcloud.protocol.sharing`); the checks
themselves are :mod:`smpcloud.crypto.shamir_validity`.

A validated task lives in GF(p), p = 2^32 - 5 (:func:`smpcloud.protocol.sharing.task_field`; the
residue ring Z_M is unsound for bit checks), needs n = 2t - 1 servers and max_clients U < p
(:func:`check_validated_task`). A client offset-encodes each value, u = enc(x) - lo in [0, U],
decomposes it into k weighted bits and seals to server j one ``VECTORS`` message of k L + 2R
elements (bit i of value l at index i L + l, then its shares of the R masks Z_r, then of the R
masks Y_r); every server gets the same list of the n sealed shares' digests
(:func:`sealed_share_digest`, ``share_digests`` of the report), which seeds the check
coefficients (:func:`report_seed`). Server j refuses a report whose own sealed share does not
hash to entry j (422 ``invalid-proof``, check ``digest``) or whose plaintext has the wrong
length (check ``length``); it stores its 2R check values and its L value shares sum_i w_i [b_i]
(:func:`checked_blob`), never the bits. The administrator fetches every server's check values
(``GET /v1/tasks/{id}/checks``, all n needed), decides each reporter, and closes every server
over the reporters that passed (``CloseIn.clients``), naming the others (``CloseIn.refused``)
and handing over all n servers' check values of both (``CloseIn.checks``,
:func:`encode_check_values`): each server re-checks its own entries and every verdict before
closing, so every server drops the same reports. The analyst adds count lo to the rebuilt sum. A
client that sends different digest lists to different servers only makes its own check fail.

What is revealed and trusted: as in :mod:`smpcloud.crypto.shamir_validity` (privacy against
fewer than t colluding servers; soundness while every server follows the protocol; all n
servers needed to decide a report). Bad input raises
:class:`~smpcloud.errors.InvalidProofError` (slug ``invalid-proof``; ``check`` says which:
``digest``, ``length``) for what a client sent, :class:`~smpcloud.errors.InvalidInputError`
for what an administrator sent, :class:`~smpcloud.errors.ShareError` for malformed encodings.
This module is pure (no I/O).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from smpcloud.crypto.field import Residues
from smpcloud.crypto.sealing import OpeningKey, SealingKey, seal
from smpcloud.crypto.shamir_validity import (
    DIGEST_BYTES,
    REPETITIONS,
    VALIDITY_FIELD,
    VALIDITY_PRIME,
    ValidityLayout,
    check_validity_parameters,
    check_validity_span,
    validity_seed,
)
from smpcloud.crypto.wire import b64url
from smpcloud.errors import InvalidInputError, InvalidProofError, ShareError
from smpcloud.mpc.codec import encode_vectors
from smpcloud.protocol.sharing import (
    SEALED_SHARE_FIELDS,
    SHARE_SEAL_INFO,
    decode_b64url,
    open_sealed_vector,
    share_seal_aad,
)
from smpcloud.protocol.task_encoding import TaskEncoding


def encoded_span(encoding: TaskEncoding) -> tuple[int, int]:
    """Return (lo, U): the encoded lower bound and span hi - lo of a task's declared range."""
    lo, hi = encoding.encoded_bounds()
    return lo, hi - lo


def check_validated_task(
    servers: int, threshold: int, encoding: TaskEncoding, max_clients: int
) -> int:
    """Refuse a ``range`` task the joint check cannot serve; return its encoded span U.

    Needs n = 2t - 1 and max_clients U < p (U the encoded span of the declared range).

    Raises:
        InvalidInputError: another (n, t), an empty range, or max_clients U >= p (the message
            says to narrow the range, lower frac_bits or max_clients, or use validity none).
    """
    check_validity_parameters(servers, threshold)
    _, span = encoded_span(encoding)
    check_validity_span(span, max_clients)
    return span


def validity_layout(length: int, encoding: TaskEncoding) -> ValidityLayout:
    """The layout (L, U, R) of a ``range`` task's shares.

    Raises:
        InvalidInputError: a bad length or an empty range.
    """
    _, span = encoded_span(encoding)
    if span < 1:
        raise InvalidInputError("a task with validity 'range' needs min_value below max_value")
    return ValidityLayout(length, span, REPETITIONS)


def sealed_share_digest(sealed: Mapping[str, object]) -> str:
    """The digest a report lists for one sealed share: SHA-256(enc || ciphertext), base64url.

    ``enc`` is always 32 bytes, so the concatenation is unambiguous.

    Raises:
        ShareError: not exactly ``enc`` and ``ciphertext``, or not canonical base64url.
    """
    if not isinstance(sealed, Mapping) or set(sealed) != set(SEALED_SHARE_FIELDS):
        raise ShareError("sealed_share: needs exactly enc and ciphertext")
    enc = decode_b64url(sealed["enc"], "sealed_share.enc")
    ciphertext = decode_b64url(sealed["ciphertext"], "sealed_share.ciphertext")
    return b64url(hashlib.sha256(enc + ciphertext).digest())


def seal_checked_share(
    key: SealingKey, residues: Residues, *, task_id: str, server_index: int, client: int
) -> tuple[dict[str, str], str]:
    """Seal one share of a ``range`` task (GF(p)) like :func:`seal_share`; also return its
    digest (:func:`sealed_share_digest`, computed from the bytes, without decoding them again).

    Raises:
        ShareError: a wrong shape.
        InvalidInputError: bad task id or numbers.
    """
    aad = share_seal_aad(task_id, server_index, client)
    enc, ciphertext = seal(
        key, encode_vectors(VALIDITY_FIELD, residues), info=SHARE_SEAL_INFO, aad=aad
    )
    digest = b64url(hashlib.sha256(enc + ciphertext).digest())
    return {"enc": b64url(enc), "ciphertext": b64url(ciphertext)}, digest


def decode_share_digests(texts: object, servers: int) -> list[bytes]:
    """Decode a report's ``share_digests`` strictly: n canonical base64url SHA-256 digests.

    Raises:
        InvalidProofError: missing, not n entries, or an entry that is not a digest (check
            ``digest``).
    """
    if not isinstance(texts, list) or len(texts) != servers:
        raise InvalidProofError(
            f"a report to a task with validity 'range' carries share_digests: one SHA-256 "
            f"digest of the sealed share sent to each of the {servers} servers, in order",
            check="digest",
        )
    out = []
    for j, text in enumerate(texts, start=1):
        try:
            raw = decode_b64url(text, f"share_digests[{j - 1}]")
        except ShareError as exc:
            raise InvalidProofError(str(exc), check="digest") from None
        if len(raw) != DIGEST_BYTES:
            raise InvalidProofError(
                f"share_digests[{j - 1}] is not a 32-byte SHA-256 digest", check="digest"
            )
        out.append(raw)
    return out


def report_seed(client: int, digests: list[bytes]) -> bytes:
    """The seed of a report's check coefficients (:func:`~smpcloud.crypto.shamir_validity.
    validity_seed`): the client's number and the n sealed shares' digests."""
    return validity_seed(client, digests)


def open_validated_share(
    key: OpeningKey,
    sealed: Mapping[str, object],
    *,
    task_id: str,
    server_index: int,
    client: int,
    layout: ValidityLayout,
) -> Residues:
    """Open a sealed share of a ``range`` task and decode it: ``(1, k L + 2R)`` residues.

    Raises:
        SealError: as :func:`open_share`.
        ShareError: not a ``VECTORS`` message of one vector of GF(p).
        InvalidProofError: a vector of another length than k L + 2R (check ``length``).
    """
    vector = open_sealed_vector(
        key, sealed, task_id=task_id, server_index=server_index, client=client,
        field=VALIDITY_FIELD,
    )  # fmt: skip
    if vector.shape != (1, layout.size):
        raise InvalidProofError(
            f"the sealed share holds {vector.shape[1]} elements; a report to this task holds "
            f"{layout.size} (k = {layout.bits} bits of each of {layout.length} values, then "
            f"{layout.checks} masks)",
            check="length",
        )
    return vector


def checked_blob(checks: npt.NDArray[np.uint64], values: Residues) -> bytes:
    """The storage form of a validated report: its 2R check values, then its L value shares
    (little-endian u32 each); the check values first, so that they are read without the rest."""
    return checks.astype("<u4").tobytes() + values.astype("<u4").tobytes()


def split_checked_blob(
    blob: bytes, *, length: int, checks: int
) -> tuple[npt.NDArray[np.uint64], Residues]:
    """Decode :func:`checked_blob`: (2R check values, ``(1, L)`` value shares).

    Raises:
        ShareError: the wrong size, or an element not below p.
    """
    if len(blob) != 4 * (checks + length):
        raise ShareError(f"stored report has {len(blob)} bytes; expected {4 * (checks + length)}")
    words = np.frombuffer(blob, dtype="<u4").astype(np.uint64)
    if (words >= np.uint64(VALIDITY_PRIME)).any():
        raise ShareError("stored report holds an element outside GF(p)")
    return words[:checks], words[checks:].reshape(1, length)


def encode_check_values(values: npt.NDArray[np.uint64]) -> str:
    """Encode check values (any shape, elements of GF(p)) as base64url of little-endian u32."""
    return b64url(np.ascontiguousarray(values, dtype=np.uint64).astype("<u4").tobytes())


def decode_check_values(
    text: object, *, rows: int, width: int, what: str
) -> npt.NDArray[np.uint64]:
    """Decode :func:`encode_check_values` strictly into ``(rows, width)`` elements of GF(p).

    Raises:
        InvalidInputError: not canonical base64url, another size, or an element not below p.
    """
    if rows == 0 and text == "":
        return np.zeros((0, width), dtype=np.uint64)
    try:
        raw = decode_b64url(text, what)
    except ShareError as exc:
        raise InvalidInputError(str(exc)) from None
    if len(raw) != 4 * rows * width:
        raise InvalidInputError(
            f"{what}: {len(raw)} bytes; expected {4 * rows * width} ({rows} reports x {width} "
            "check values, 4 bytes each)"
        )
    out = np.frombuffer(raw, dtype="<u4").astype(np.uint64).reshape(rows, width)
    if (out >= np.uint64(VALIDITY_PRIME)).any():
        raise InvalidInputError(f"{what}: a check value outside GF(p)")
    return out


__all__ = [
    "check_validated_task",
    "checked_blob",
    "decode_check_values",
    "decode_share_digests",
    "encode_check_values",
    "encoded_span",
    "open_validated_share",
    "report_seed",
    "seal_checked_share",
    "sealed_share_digest",
    "split_checked_blob",
    "validity_layout",
]

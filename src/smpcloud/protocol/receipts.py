"""The wire contract of receipts, the report log and key holders' attestations (Paillier tasks).

What each party signs and checks, as bytes everyone agrees on (:func:`smpcloud.crypto.signatures.
statement`, canonical JSON under a domain string):

* **Report record and leaf.** A report's log record is ``statement("smpcloud/report/v1",
  {"task_id", "client_id", "ciphertexts"})`` with the ciphertexts in their canonical wire form
  (:func:`smpcloud.crypto.wire.encode_int`, the only form the server accepts); its leaf in the
  log's Merkle tree is ``merkle.leaf_hash(record)`` (RFC 9162). Distinct reports have distinct
  records, so distinct leaves (SHA-256 collision resistance).
* **Receipt.** On every accepted upload the server signs ``statement("smpcloud/receipt/v1",
  {"task_id", "client_id", "leaf", "received_at", "server_key"})`` with its long-term Ed25519
  key: evidence that it accepted exactly that report.
* **Log root.** At close the server builds the Merkle tree over the leaves of the reports it
  aggregates, in client-id order, and signs ``statement("smpcloud/log-root/v1",
  {"task_id", "count", "root"})``.
* **Attestation.** A key holder that checked that the aggregate is the product of exactly the
  logged reports signs ``statement("smpcloud/aggregate-attestation/v1", {"task_id", "count",
  "root", "aggregate"})`` with its own signing key (``aggregate``: :func:`aggregate_digest`).

The response bodies of the receipts and the log (:class:`ReceiptOut`, :class:`ReportLogOut`,
:class:`ReportPageOut`, :class:`InclusionProofOut`, :class:`LogSummaryOut`,
:class:`AttestationOut`) are defined here and re-exported by :mod:`smpcloud.protocol.schemas`.
Hashes (leaves, roots, digests) travel as 64 lower-case hex digits; keys and signatures as
unpadded base64url (:mod:`smpcloud.crypto.signatures`).

**What it gives, and to whom (malicious server, honest key holders, Ed25519 and SHA-256
secure).** A client holding a receipt can prove the server accepted its report, and can check
that the published root includes it (an inclusion proof); a server that drops an accepted
report has signed two statements that contradict each other. A key holder that recomputes the
root and the product from the logged reports decrypts nothing but the product of exactly the
logged reports, with their true count; a client that pins the key holders' roster checks that
t of them attested the very root its report is under. **What it does not give:** it does not
stop the administrator from registering sybil clients with known values (the count is then
true, and still isolates a real client's value), and a client that never checks its receipt
learns nothing. Nothing here reveals more than the server already stores: hashes of ciphertexts.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Final

from smpcloud.crypto import merkle
from smpcloud.crypto.signatures import statement
from smpcloud.errors import InvalidInputError, VerificationError
from smpcloud.protocol._bases import Out

REPORT_DOMAIN: Final = "smpcloud/report/v1"
RECEIPT_DOMAIN: Final = "smpcloud/receipt/v1"
LOG_ROOT_DOMAIN: Final = "smpcloud/log-root/v1"
ATTESTATION_DOMAIN: Final = "smpcloud/aggregate-attestation/v1"
AGGREGATE_DOMAIN: Final = "smpcloud/aggregate/v1"

#: Most ciphertexts in one page of ``GET /v1/tasks/{id}/reports`` (a page stays under ~4 MiB
#: of JSON at 3072 bits; it always holds at least one report).
MAX_PAGE_CIPHERTEXTS: Final = 4096

_HEX64: Final = re.compile(r"[0-9a-f]{64}")


class AggregateVerificationError(VerificationError):
    """A key holder refused to decrypt: the served aggregate is not what the log says.

    The message names the failed check (the count, distinct clients, the Merkle root, the
    server's signature on it, or the product of the logged ciphertexts).
    """


class ReceiptVerificationError(VerificationError):
    """A client's receipt check failed; ``check`` names which one (``receipt``, ``log``,
    ``inclusion`` or ``attestations``)."""

    def __init__(self, check: str, message: str) -> None:
        super().__init__(f"{check}: {message}")
        self.check = check


def report_record(task_id: str, client_id: int, ciphertexts: Sequence[str]) -> bytes:
    """The log record of one report: what its leaf hashes.

    Args:
        task_id: the task.
        client_id: the client's id as the server names it.
        ciphertexts: the report's ciphertexts in canonical wire form, in order.

    Returns:
        ``statement(REPORT_DOMAIN, {task_id, client_id, ciphertexts})``.

    Raises:
        InvalidInputError: a field of the wrong type.
    """
    return statement(
        REPORT_DOMAIN,
        {"task_id": task_id, "client_id": client_id, "ciphertexts": list(ciphertexts)},
    )


def report_leaf(task_id: str, client_id: int, ciphertexts: Sequence[str]) -> bytes:
    """The Merkle leaf (32 bytes) of one report: ``merkle.leaf_hash(report_record(...))``."""
    return merkle.leaf_hash(report_record(task_id, client_id, ciphertexts))


def hash_from_hex(text: object, what: str) -> bytes:
    """Parse a 32-byte hash written as 64 lower-case hex digits.

    Raises:
        InvalidInputError: anything else (the message names ``what``).
    """
    if not isinstance(text, str) or not _HEX64.fullmatch(text):
        raise InvalidInputError(f"{what}: expected 64 lower-case hex digits")
    return bytes.fromhex(text)


def receipt_fields(
    task_id: str, client_id: int, leaf: str, received_at: str, server_key: str
) -> dict[str, object]:
    """The fields of a receipt statement (:data:`RECEIPT_DOMAIN`)."""
    return {
        "task_id": task_id,
        "client_id": client_id,
        "leaf": leaf,
        "received_at": received_at,
        "server_key": server_key,
    }


def log_root_fields(task_id: str, count: int, root: str) -> dict[str, object]:
    """The fields of a log root statement (:data:`LOG_ROOT_DOMAIN`)."""
    return {"task_id": task_id, "count": count, "root": root}


def attestation_fields(task_id: str, count: int, root: str, aggregate: str) -> dict[str, object]:
    """The fields of a key holder's attestation (:data:`ATTESTATION_DOMAIN`).

    Args:
        task_id: the task.
        count: the number of logged reports the holder checked.
        root: the published root (hex).
        aggregate: :func:`aggregate_digest` of the aggregate it checked and decrypted.
    """
    return {"task_id": task_id, "count": count, "root": root, "aggregate": aggregate}


def aggregate_digest(ciphertexts: Sequence[str]) -> str:
    """SHA-256 (hex) of ``statement(AGGREGATE_DOMAIN, {"ciphertexts": [...]})``: names an aggregate.

    Args:
        ciphertexts: the aggregate's ciphertexts in canonical wire form, in order.
    """
    body = statement(AGGREGATE_DOMAIN, {"ciphertexts": list(ciphertexts)})
    return hashlib.sha256(body).hexdigest()


# ------------------------------------------------------------------ response bodies
# (re-exported by smpcloud.protocol.schemas, where the bodies that carry them live)


class ReceiptOut(Out):
    """The server's signed receipt for an accepted Paillier report (smpcloud.protocol.receipts).

    ``signature`` is the server's Ed25519 signature (``server_key``) over
    ``statement("smpcloud/receipt/v1", {task_id, client_id, leaf, received_at, server_key})``;
    ``leaf`` (hex) is the report's Merkle leaf, which the published log must include.
    """

    task_id: str
    client_id: int
    leaf: str
    received_at: str
    server_key: str
    signature: str


class LogSummaryOut(Out):
    """The published report log a result was decrypted from: its count, root and aggregate.

    ``aggregate`` is ``smpcloud.protocol.receipts.aggregate_digest`` of the aggregate that was
    decrypted; key holders' attestations sign (task_id, count, root, aggregate).
    """

    count: int
    root: str
    aggregate: str


class AttestationOut(Out):
    """Key holder ``holder``'s signature over the aggregate attestation statement."""

    holder: int
    signature: str


class ReportLogOut(Out):
    """The published report log of a closed Paillier task (``GET /v1/tasks/{id}/log``).

    ``signature`` is the server's (``server_key``) over ``statement("smpcloud/log-root/v1",
    {task_id, count, root})``; ``leaves`` (hex, in log order) unless the request asked
    ``?leaves=false``.
    """

    task_id: str
    count: int
    root: str
    server_key: str
    signature: str
    leaves: list[str] | None = None


class LoggedReportOut(Out):
    """One logged report: its client id and ciphertexts (canonical wire form)."""

    client_id: int
    ciphertexts: list[str]


class ReportPageOut(Out):
    """A page of the logged reports, in log order (``GET /v1/tasks/{id}/reports``).

    ``count`` is the log's total; ``offset`` the position of the first report of the page;
    ``next_offset`` where the next page starts (None after the last).
    """

    task_id: str
    count: int
    offset: int
    next_offset: int | None
    reports: list[LoggedReportOut]


class InclusionProofOut(Out):
    """Where a leaf is in the published log, and its audit path (RFC 9162), with the signed root."""

    task_id: str
    leaf: str
    index: int
    count: int
    root: str
    path: list[str]
    server_key: str
    signature: str


__all__ = [
    "AGGREGATE_DOMAIN",
    "ATTESTATION_DOMAIN",
    "LOG_ROOT_DOMAIN",
    "MAX_PAGE_CIPHERTEXTS",
    "RECEIPT_DOMAIN",
    "REPORT_DOMAIN",
    "AggregateVerificationError",
    "AttestationOut",
    "InclusionProofOut",
    "LogSummaryOut",
    "LoggedReportOut",
    "ReceiptOut",
    "ReceiptVerificationError",
    "ReportLogOut",
    "ReportPageOut",
    "aggregate_digest",
    "attestation_fields",
    "hash_from_hex",
    "log_root_fields",
    "receipt_fields",
    "report_leaf",
    "report_record",
]

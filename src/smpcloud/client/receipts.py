"""A client's check that the published report log includes its report: ``verify_receipt``.

The server answers each accepted Paillier upload with a signed receipt
(:class:`~smpcloud.client.models.Receipt`) naming the report's Merkle leaf; at close it signs
the root of the log of the reports it aggregated (:mod:`smpcloud.protocol.receipts`).
:func:`verify_receipt` checks, in order, each check naming itself when it fails:

* ``receipt``: the server's signature on the receipt;
* ``log``: the published root is signed by the same server key as the receipt;
* ``inclusion``: the receipt's leaf is in the tree of that root (an RFC 9162 inclusion proof
  the server serves and the client checks; log(n) hashes);
* ``key`` (with the key holders' pinned roster): t pinned key holders certified the task with
  this receipt key, so the receipt proves the server accepted the report to anyone who pins
  them;
* ``attestations`` (with the key holders' pinned roster, once the task is decrypted): at
  least t pinned key holders attested that very root, its count and the aggregate they
  decrypted — they checked the aggregate is the product of exactly the logged reports.

**Model.** Malicious server; honest key holders (t of them, pinned); Ed25519 and SHA-256
secure. A server that dropped the client's accepted report from the log it published, or
served a log nobody decrypted from, is caught, and the receipt with the signed root are
evidence of it. Nothing is revealed to the server beyond the leaf the client asks about.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from smpcloud.client._http import DEFAULT_TIMEOUT, Connection, task_path
from smpcloud.client.models import Receipt
from smpcloud.crypto import merkle
from smpcloud.crypto.signatures import Roster, verify_statement
from smpcloud.errors import (
    InvalidInputError,
    SignatureError,
    ThresholdNotMetError,
    VerificationError,
)
from smpcloud.protocol.certificates import verify_certified
from smpcloud.protocol.problems import NotFoundError, TaskStateError
from smpcloud.protocol.receipts import (
    ATTESTATION_DOMAIN,
    LOG_ROOT_DOMAIN,
    ReceiptVerificationError,
    attestation_fields,
    hash_from_hex,
    log_root_fields,
)
from smpcloud.protocol.schemas import InclusionProofOut, ResultOut, TaskInfoOut


@dataclass(frozen=True, slots=True)
class ReceiptCheck:
    """What :func:`verify_receipt` checked.

    Attributes:
        lines: one line per check that passed (or was skipped, saying why), for people.
        index: the report's position in the log (0-based).
        count: the number of logged reports.
        root: the signed root (hex).
        attested_by: the pinned key holders whose attestations verified (empty if not checked).
    """

    lines: tuple[str, ...]
    index: int
    count: int
    root: str
    attested_by: tuple[int, ...] = ()


def _proof(conn: Connection, receipt: Receipt) -> InclusionProofOut:
    path = task_path(receipt.task_id, "log", "proof") + f"?leaf={receipt.leaf}"
    try:
        return conn.request("GET", path, InclusionProofOut)
    except NotFoundError:
        raise ReceiptVerificationError(
            "inclusion",
            f"your report (leaf {receipt.leaf[:16]}...) is not in the published log of task "
            f"{receipt.task_id}: the server accepted it (its receipt is signed) and left it out",
        ) from None
    except TaskStateError as exc:
        raise ReceiptVerificationError("log", f"no published log to check against: {exc}") from None


def _check_log(receipt: Receipt, proof: InclusionProofOut) -> bytes:
    if proof.server_key != receipt.server_key:
        raise ReceiptVerificationError(
            "log", "the published log is signed by another server key than your receipt"
        )
    try:
        root = hash_from_hex(proof.root, "root")
        key = receipt.verify_signature()
        fields = log_root_fields(receipt.task_id, proof.count, proof.root)
        verify_statement(key, proof.signature, LOG_ROOT_DOMAIN, fields)
    except (InvalidInputError, SignatureError) as exc:
        raise ReceiptVerificationError(
            "log", f"the server's signature on the published root does not verify ({exc})"
        ) from None
    return root


def _check_inclusion(receipt: Receipt, proof: InclusionProofOut, root: bytes) -> None:
    try:
        if proof.leaf != receipt.leaf:
            raise VerificationError("the proof is for another leaf")
        path = [hash_from_hex(node, "proof") for node in proof.path]
        merkle.verify_inclusion(
            hash_from_hex(receipt.leaf, "leaf"), proof.index, proof.count, path, root
        )
    except (InvalidInputError, VerificationError) as exc:
        raise ReceiptVerificationError(
            "inclusion", f"your report is not in the published log ({exc})"
        ) from None


def _check_receipt_key(conn: Connection, receipt: Receipt, holders: Roster) -> str:
    """Check that t pinned key holders certified the task with the key that signed the receipt.

    Raises:
        ReceiptVerificationError: (check ``key``) the task is not certified by the pinned
            holders, or its certified receipt key is not the receipt's.
    """
    info = conn.request("GET", task_path(receipt.task_id), TaskInfoOut)
    try:
        signers = verify_certified(info, holders)
    except SignatureError as exc:
        raise ReceiptVerificationError(
            "key", f"the task is not certified by the pinned key holders ({exc})"
        ) from None
    if info.receipt_key != receipt.server_key:
        raise ReceiptVerificationError(
            "key",
            "the receipt is signed by another key than the receipt key the key holders "
            "certified for this task",
        )
    names = ", ".join(map(str, signers))
    return f"key: the receipt key is the one key holders {names} certified for this task"


def _check_attestations(
    conn: Connection, receipt: Receipt, proof: InclusionProofOut, holders: Roster
) -> tuple[str, tuple[int, ...]]:
    try:
        result = conn.request("GET", task_path(receipt.task_id, "result"), ResultOut)
    except (ThresholdNotMetError, TaskStateError) as exc:
        return f"attestations: not checked yet: the task is not decrypted ({exc})", ()
    log = result.log
    if log is None or (log.count, log.root) != (proof.count, proof.root):
        raise ReceiptVerificationError(
            "attestations", "the result was not decrypted from the log that includes your report"
        )
    fields = attestation_fields(receipt.task_id, log.count, log.root, log.aggregate)
    try:
        signers = holders.verify_quorum(
            [(a.holder, a.signature) for a in result.attestations], ATTESTATION_DOMAIN, fields
        )
    except SignatureError as exc:
        raise ReceiptVerificationError(
            "attestations",
            f"the pinned key holders did not attest this log and aggregate ({exc})",
        ) from None
    names = ", ".join(map(str, signers))
    line = (
        f"attestations: key holders {names} (t = {holders.threshold} of the pinned roster) "
        f"checked and attested this root, its count and the aggregate they decrypted"
    )
    return line, signers


def verify_receipt(
    base_url: str,
    token: str,
    receipt: Receipt,
    *,
    holders: Roster | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    transport: httpx.BaseTransport | None = None,
) -> ReceiptCheck:
    """Check that the server's published log includes this client's report (see the module).

    Args:
        base_url: the service's root URL.
        token: this client's token (any token of the task reads its log).
        receipt: the receipt :meth:`Client.submit` returned (or ``Receipt.from_json``).
        holders: the key holders' pinned roster: also check, once the task is decrypted, that
            t of them attested the log and aggregate.
        timeout: seconds per HTTP request.
        transport: an ``httpx`` transport instead of the network.

    Returns:
        The checks passed, one line each.

    Raises:
        ReceiptVerificationError: a check failed; its ``check`` attribute names it
            (``receipt``, ``log``, ``inclusion``, ``key`` or ``attestations``).
        TransportError: the server could not be reached.
    """
    key = receipt.verify_signature()
    lines = [
        f"receipt: signed by the server key {key.fingerprint()} for client "
        f"{receipt.client_id}'s report to task {receipt.task_id}, received {receipt.received_at}"
    ]
    with Connection(base_url, token, timeout=timeout, transport=transport) as conn:
        proof = _proof(conn, receipt)
        root = _check_log(receipt, proof)
        lines.append(
            f"log: root {proof.root[:16]}... over {proof.count} reports, signed by the same "
            "server key"
        )
        _check_inclusion(receipt, proof, root)
        lines.append(
            f"inclusion: your report is leaf {proof.index} of {proof.count} under that root"
        )
        signers: tuple[int, ...] = ()
        if holders is not None:
            lines.append(_check_receipt_key(conn, receipt, holders))
            line, signers = _check_attestations(conn, receipt, proof, holders)
            lines.append(line)
    return ReceiptCheck(
        lines=tuple(lines),
        index=proof.index,
        count=proof.count,
        root=proof.root,
        attested_by=signers,
    )


__all__ = ["ReceiptCheck", "verify_receipt"]

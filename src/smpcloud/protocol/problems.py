"""Exceptions for the aggregation service, and the table that ties them to HTTP problem types.

This module is the error half of the wire contract (:mod:`smpcloud.protocol`) between
``smpcloud.service`` and ``smpcloud.client``: the server renders an exception as an RFC 9457
``application/problem+json`` body whose ``type`` is the URN listed in :data:`PROBLEM_TYPES`,
and the SDK raises the same class again with the server's ``detail`` as its message. It
imports only exception classes (from ``smpcloud.errors`` and ``smpcloud.crypto.threshold``), so
that both sides can depend on it.

New classes subclass the package hierarchy in :mod:`smpcloud.errors`, so ``except SmpcError``
(or ``except ValueError`` for bad input) keeps working for callers that do not care which
service error it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from smpcloud.crypto.threshold import InvalidPartialDecryptionError
from smpcloud.errors import (
    InvalidInputError,
    InvalidProofError,
    KeyMismatchError,
    MalformedCiphertextError,
    OverflowDetectedError,
    ProtocolError,
    SealError,
    ShareError,
    SignatureError,
    SmpcError,
    ThresholdNotMetError,
    TransportError,
    VerificationError,
)


class AuthenticationError(SmpcError):
    """No credentials were presented (HTTP 401): send ``Authorization: Bearer <token>``."""


class PermissionDeniedError(SmpcError):
    """The credentials are not valid for this task or this operation (HTTP 403)."""


class NotFoundError(SmpcError, LookupError):
    """The task (or route) does not exist (HTTP 404)."""


class PayloadTooLargeError(InvalidInputError):
    """The request body exceeds the server's limit (HTTP 413)."""


class ConflictError(ProtocolError):
    """The request conflicts with the task's current state (HTTP 409)."""


class DuplicateSubmissionError(ConflictError):
    """This client already uploaded its report, or this key holder its partial decryptions.

    The first submission is kept; the duplicate is discarded. Retrying an upload whose response
    was lost is therefore safe: this error then means the first attempt arrived.
    """


class TaskStateError(ConflictError):
    """The task is not in a state that allows the operation (closed, not closed yet, full...)."""


class InsufficientReportsError(TaskStateError):
    """The task closed with fewer reports than its minimum; it will never release a result."""


class UnsealedShareError(ShareError):
    """A Shamir report carried a plain ``share``: shares must be sealed to the server's
    ``share_key`` (``sealed_share``), so that nothing between the client and the server (a
    proxy, a TLS terminator) can read them. The report is discarded; nothing is stored."""


class NoRosterError(InvalidInputError):
    """The task was created without a key holders' roster, so nobody can certify it.

    Create the task with ``roster`` (``smpcloud task create --holders keys/holders.json``).
    """


class InvalidCertificateError(SignatureError):
    """A key holder's certificate does not verify under its key in the task's roster."""


class UncertifiedTaskError(SignatureError):
    """Fewer than t pinned key holders certified the task's key and parameters as served.

    Raised by the SDK (:meth:`smpcloud.client.Client.info`) before anything is encrypted: the
    server may have substituted the key, or changed the task's parameters, or the key holders
    have not certified the task yet (ask t of them to run ``smpcloud certify``).
    """


class ServiceError(SmpcError):
    """The server failed or answered something the SDK does not understand (HTTP 5xx, ...)."""


@dataclass(frozen=True, slots=True)
class ProblemType:
    """One row of the error contract: exception class, problem type URN, status, title."""

    exception: type[SmpcError]
    slug: str
    status: int
    title: str

    @property
    def uri(self) -> str:
        """The problem ``type`` member: ``urn:smpcloud:problem:<slug>``."""
        return PROBLEM_URN_PREFIX + self.slug


PROBLEM_URN_PREFIX: Final = "urn:smpcloud:problem:"

#: Most specific first: the server picks the first row whose class the exception is an
#: instance of; the SDK looks rows up by ``type``.
PROBLEM_TYPES: Final[tuple[ProblemType, ...]] = (
    ProblemType(AuthenticationError, "authentication-required", 401, "Authentication required"),
    ProblemType(PermissionDeniedError, "permission-denied", 403, "Permission denied"),
    ProblemType(NotFoundError, "not-found", 404, "Not found"),
    ProblemType(PayloadTooLargeError, "payload-too-large", 413, "Request body too large"),
    ProblemType(
        InvalidPartialDecryptionError,
        "invalid-partial-decryption",
        422,
        "Invalid partial decryption",
    ),
    ProblemType(MalformedCiphertextError, "malformed-ciphertext", 422, "Malformed ciphertext"),
    ProblemType(KeyMismatchError, "key-mismatch", 422, "Key mismatch"),
    ProblemType(
        UnsealedShareError, "share-not-sealed", 422, "Shares must be sealed to the server's key"
    ),
    ProblemType(SealError, "sealed-share-not-opened", 422, "Sealed share does not open"),
    ProblemType(ShareError, "invalid-share", 422, "Invalid share"),
    ProblemType(InvalidProofError, "invalid-proof", 422, "Invalid validity proof"),
    ProblemType(NoRosterError, "no-roster", 422, "The task has no key holders' roster"),
    ProblemType(InvalidInputError, "invalid-input", 422, "Invalid input"),
    ProblemType(OverflowDetectedError, "overflow", 422, "Value out of range"),
    ProblemType(InvalidCertificateError, "invalid-certificate", 422, "Invalid task certificate"),
    ProblemType(UncertifiedTaskError, "uncertified-task", 422, "Task not certified"),
    ProblemType(VerificationError, "verification-failed", 422, "Verification failed"),
    ProblemType(DuplicateSubmissionError, "duplicate-submission", 409, "Duplicate submission"),
    ProblemType(
        InsufficientReportsError, "insufficient-reports", 409, "Too few reports for a result"
    ),
    ProblemType(TaskStateError, "task-state", 409, "Operation not allowed in this task state"),
    ProblemType(ThresholdNotMetError, "threshold-not-met", 409, "Not enough partial decryptions"),
    ProblemType(ConflictError, "conflict", 409, "Conflict"),
    ProblemType(ProtocolError, "protocol-error", 409, "Protocol error"),
    ProblemType(TransportError, "transport-error", 502, "Transport error"),
    ProblemType(ServiceError, "internal-error", 500, "Internal server error"),
)

_BY_URI: Final = {row.uri: row for row in PROBLEM_TYPES}
_BY_STATUS: Final = {
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    405: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    422: InvalidInputError,
}


def problem_type_for(exc: BaseException) -> ProblemType:
    """Return the contract row for an exception (``internal-error`` for anything unknown)."""
    for row in PROBLEM_TYPES:
        if isinstance(exc, row.exception):
            return row
    return PROBLEM_TYPES[-1]


def exception_from_problem(status: int, problem: object) -> SmpcError:
    """Rebuild the exception a server reported, with the server's ``detail`` as message.

    Args:
        status: the HTTP status code.
        problem: the parsed body (a problem+json object, or anything else a proxy returned).

    Returns:
        An instance of the class registered for the problem's ``type``; failing that, of the
        class registered for the status code; failing that, :class:`ServiceError`.
    """
    detail = f"HTTP {status}"
    row = None
    holders: list[int] = []
    check = "proof"
    if isinstance(problem, dict):
        raw_detail = problem.get("detail") or problem.get("title")
        if isinstance(raw_detail, str) and raw_detail:
            detail = raw_detail
        raw_type = problem.get("type")
        if isinstance(raw_type, str):
            row = _BY_URI.get(raw_type)
        raw_holders = problem.get("holders")
        if isinstance(raw_holders, list):
            holders = [h for h in raw_holders if type(h) is int]
        raw_check = problem.get("check")
        if isinstance(raw_check, str) and raw_check.isidentifier() and len(raw_check) <= 32:
            check = raw_check
    if row is not None:
        cls: type[SmpcError] = row.exception
    elif status in _BY_STATUS:
        cls = _BY_STATUS[status]
    else:
        cls = ServiceError
    if cls is InvalidPartialDecryptionError:
        exc: SmpcError = InvalidPartialDecryptionError(holders)
        exc.args = (detail,)
        return exc
    if cls is InvalidProofError:
        return InvalidProofError(detail, check=check)
    return cls(detail)


__all__ = [
    "PROBLEM_TYPES",
    "PROBLEM_URN_PREFIX",
    "AuthenticationError",
    "ConflictError",
    "DuplicateSubmissionError",
    "InsufficientReportsError",
    "InvalidCertificateError",
    "NoRosterError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "ProblemType",
    "ServiceError",
    "TaskStateError",
    "UncertifiedTaskError",
    "UnsealedShareError",
    "exception_from_problem",
    "problem_type_for",
]

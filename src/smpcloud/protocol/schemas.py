"""Wire schemas of the aggregation service: what goes over HTTP, separate from table rows.

This module is the data half of the wire contract (:mod:`smpcloud.protocol`) between
``smpcloud.service`` (which validates requests with it) and ``smpcloud.client`` (which builds
requests and reads responses with it).
It depends on pydantic, the task encodings of :mod:`smpcloud.protocol.task_encoding`
(:class:`TaskEncoding` and its limits, re-exported here) and the pure helpers of
:mod:`smpcloud.protocol.sharing` only: no FastAPI, no SQLAlchemy.

Two schemes share these schemas: ``paillier`` (one server, clients encrypt under a threshold
key) and ``shamir`` (n servers, each client uploads one Shamir share to each; see
:mod:`smpcloud.protocol.sharing`).

Request bodies and limits are defined here; response bodies in
:mod:`smpcloud.protocol.responses`, re-exported here so that one import serves both.

Conventions: input schemas end in ``In``, public (response) schemas in ``Out``; unknown fields
are refused; integers are strict (``"5"``, ``5.0`` and ``true`` are not integers); free text
that the server stores is :data:`~smpcloud.protocol.text.DisplayText` (no control or bidi
characters); big integers (ciphertexts) travel as canonical base64url strings (minimal unsigned
big-endian bytes, no padding; see :func:`smpcloud.crypto.paillier.encode_int`); threshold keys
and partial decryptions as the JSON objects of :mod:`smpcloud.crypto.threshold`; times as
RFC 3339 with a UTC offset.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from pydantic import AwareDatetime, Field, StrictInt, model_validator

from smpcloud.protocol._bases import Schema
from smpcloud.protocol.certificates import check_task_roster
from smpcloud.protocol.receipts import (
    AttestationOut,
    InclusionProofOut,
    LoggedReportOut,
    LogSummaryOut,
    ReceiptOut,
    ReportLogOut,
    ReportPageOut,
)
from smpcloud.protocol.responses import (
    MAX_SUM_DIGITS,
    AggregateOut,
    ClientCredentialsOut,
    ClientsOut,
    ExactInteger,
    PartialsAcceptedOut,
    PartialsForm,
    ProblemOut,
    ReportAcceptedOut,
    ReportersOut,
    ResultOut,
    Scheme,
    ShamirAggregateOut,
    ShamirChecksOut,
    TaskCreatedOut,
    TaskInfoOut,
    TaskListOut,
    TaskState,
    TaskStatusOut,
    TaskSummaryOut,
)
from smpcloud.protocol.sharing import MAX_SERVERS
from smpcloud.protocol.task_encoding import INTEGER_ENCODING, MAX_FRAC_BITS, TaskEncoding
from smpcloud.protocol.task_encoding import MAX_ENCODED_BITS as MAX_ENCODED_BITS
from smpcloud.protocol.text import DisplayText

#: Default bound on the number of clients a task accepts (docs/architecture.md: 10^6 parties).
DEFAULT_MAX_CLIENTS: Final = 1_000_000
#: Hard cap on max_clients: the largest 32-bit signed integer (PostgreSQL's INTEGER column).
MAX_CLIENTS_LIMIT: Final = (1 << 31) - 1
#: Most client credentials made by one registration request.
MAX_REGISTRATIONS_PER_REQUEST: Final = 10_000
#: Most key holders of a task's threshold key (holders! appears in every proof exponent).
MAX_HOLDERS: Final = 64
#: How a task checks each report. ``range``: every report carries a validity proof that each of
#: its values lies in the declared range, checked before the report is acknowledged (Paillier:
#: a zero-knowledge proof the server verifies; Shamir: a proof the servers check jointly). A
#: report that fails is refused (422 ``invalid-proof``) and never enters the aggregate.
#: ``none``: reports are trusted (the range is checked only by honest clients' SDK), which is
#: faster but lets one forged report shift the sum, or block a packed task's result.
Validity = Literal["range", "none"]
#: The validity of a task created without saying.
DEFAULT_VALIDITY: Final = "range"
#: Largest Paillier validity proof accepted in one report, in base64url characters (a sanity
#: cap; the real limit is the server's body limit).
MAX_PROOF_CHARS: Final = 1 << 30

#: Tasks listed by ``GET /v1/tasks`` unless ``?limit=`` says otherwise, and the most it allows.
DEFAULT_TASK_LIST_LIMIT: Final = 100
MAX_TASK_LIST_LIMIT: Final = 1000

# -------------------------------------------------------------------------------------- input


class TaskIn(Schema):
    """Create a task (administrator).

    A ``paillier`` task (the default) takes ``public_key``. A ``shamir`` task takes ``servers``
    (n), ``threshold`` (t: 2 <= t <= n, t > n/2) and ``server_index`` (this server's j) and no
    key; the administrator creates it on each of the n servers with the same other fields.
    """

    name: Annotated[
        DisplayText,
        Field(
            min_length=1,
            max_length=200,
            description="A label for people: any script; no control or bidirectional-"
            "formatting characters.",
        ),
    ]
    scheme: Scheme = "paillier"
    public_key: dict[str, Any] | None = Field(
        default=None,
        description="Paillier tasks: the threshold Paillier public key, as made by "
        "smpcloud.crypto.threshold.public_key_to_json.",
    )
    length: Annotated[StrictInt, Field(ge=1, description="Values per client; 1 = scalar.")] = 1
    encoding: TaskEncoding = INTEGER_ENCODING
    min_clients: Annotated[
        StrictInt,
        Field(
            ge=2,
            description="No result is released with fewer reports (one report = one "
            "client's value, so at least 2).",
        ),
    ]
    max_clients: Annotated[StrictInt, Field(ge=2, le=MAX_CLIENTS_LIMIT)] = DEFAULT_MAX_CLIENTS
    deadline: AwareDatetime | None = Field(
        default=None,
        description="The task closes by itself at this time (with a UTC offset). A Shamir task "
        "only stops accepting uploads: the administrator closes it with the participant set.",
    )
    servers: Annotated[StrictInt, Field(ge=2, le=MAX_SERVERS)] | None = Field(
        default=None, description="Shamir tasks: n, the number of aggregation servers."
    )
    threshold: Annotated[StrictInt, Field(ge=2, le=MAX_SERVERS)] | None = Field(
        default=None,
        description="Shamir tasks: t, the number of servers' shares that rebuild the sum "
        "(t > n/2).",
    )
    server_index: Annotated[StrictInt, Field(ge=1, le=MAX_SERVERS)] | None = Field(
        default=None, description="Shamir tasks: this server's x-coordinate j, 1..n."
    )
    packing: dict[str, Any] | None = Field(
        default=None,
        description="Paillier tasks: a packing layout (smpcloud.crypto.packing.Packing.to_json) "
        "that puts many values in each ciphertext. `length` must equal its length, max_clients "
        "must not exceed its max_additions, and the encoding is implied by it (fixed point "
        "with its frac_bits and range; integers when frac_bits is 0 and the bounds are "
        "integers): an `encoding` given as well must be that one.",
    )
    validity: Validity = Field(
        default=DEFAULT_VALIDITY,
        description="'range' (the default): every report carries a validity proof that its "
        "values lie in the declared range, checked before it is acknowledged; a report that "
        "fails is refused. 'none': reports are trusted (one forged report can shift the sum).",
    )
    roster: dict[str, Any] | None = Field(
        default=None,
        description="Paillier tasks: the key holders' roster (holders.json from smpcloud "
        "keygen: each holder's Ed25519 verify key and the threshold t). Its threshold and size "
        "must be the key's t and n. With it, key holders certify the task "
        "(POST /v1/tasks/{id}/certificates) and clients check their signatures before "
        "encrypting anything.",
    )

    @model_validator(mode="after")
    def _check(self) -> TaskIn:
        if self.min_clients > self.max_clients:
            raise ValueError("min_clients must not exceed max_clients")
        if self.packing is not None and self.scheme != "paillier":
            raise ValueError("packing: only for scheme 'paillier'")
        if self.roster is not None:
            check_task_roster(self.roster, self.public_key, self.scheme)
        shamir_fields = {
            "servers": self.servers,
            "threshold": self.threshold,
            "server_index": self.server_index,
        }
        if self.scheme == "paillier":
            if self.public_key is None:
                raise ValueError("public_key is required for a Paillier task")
            given = [name for name, value in shamir_fields.items() if value is not None]
            if given:
                raise ValueError(f"{', '.join(given)}: only for scheme 'shamir'")
        else:
            if self.public_key is not None:
                raise ValueError("a Shamir task takes no public_key")
            missing = [name for name, value in shamir_fields.items() if value is None]
            if missing:
                raise ValueError(f"a Shamir task requires {', '.join(missing)}")
        return self


class ClientsIn(Schema):
    """Register clients (administrator): one secret token each, returned once."""

    count: Annotated[StrictInt, Field(ge=1, le=MAX_REGISTRATIONS_PER_REQUEST)]


class SealedShareIn(Schema):
    """A Shamir share sealed to one server's ``share_key`` (RFC 9180 HPKE; see
    :func:`smpcloud.protocol.sharing.seal_share`): both fields unpadded base64url."""

    enc: Annotated[str, Field(min_length=1, max_length=64)] = Field(
        description="The encapsulated key (32 bytes)."
    )
    ciphertext: Annotated[str, Field(min_length=1)] = Field(
        description="The sealed VECTORS message of one share (its bytes + 16)."
    )


class ReportIn(Schema):
    """One client's report: ciphertexts (Paillier task) or one Shamir share (Shamir task).

    A Paillier report carries ``key_id`` and one ciphertext per element, in order (a packed
    task: the ``packing.ciphertexts`` ciphertexts of its layout); a Shamir
    report carries ``sealed_share`` alone: this server's share of the client's whole vector,
    sealed to the server's ``share_key`` (see :func:`smpcloud.protocol.sharing.seal_share`); a
    plain ``share`` is accepted by the schema only so that the server can refuse it clearly.
    """

    key_id: Annotated[str, Field(max_length=64)] | None = Field(
        default=None, description="Paillier: PublicKey.key_id of the task key."
    )
    ciphertexts: list[str] | None = Field(
        default=None, description="Paillier: canonical base64url integers in [1, n^2)."
    )
    share: str | None = Field(
        default=None,
        description="Shamir, refused: base64url (no padding) of a VECTORS message holding one "
        "vector of `length` elements of the task's field. Servers refuse it: send "
        "sealed_share.",
    )
    sealed_share: SealedShareIn | None = Field(
        default=None,
        description="Shamir: this server's share sealed to its share_key (task info), bound to "
        "the task, the server and the client.",
    )
    proof: Annotated[str, Field(min_length=1, max_length=MAX_PROOF_CHARS)] | None = Field(
        default=None,
        description="Paillier tasks with validity 'range': the report's validity proof "
        "(smpcloud.crypto.validity), unpadded base64url; bound to the task, the client and "
        "the ciphertexts.",
    )
    share_digests: list[Annotated[str, Field(min_length=1, max_length=64)]] | None = Field(
        default=None,
        description="Shamir tasks with validity 'range': the SHA-256 digest (unpadded "
        "base64url) of the sealed share sent to each server, in server order; the same list "
        "goes to every server and seeds the servers' joint check.",
    )

    @model_validator(mode="after")
    def _check(self) -> ReportIn:
        paillier = self.key_id is not None and self.ciphertexts is not None
        shamir = self.share is not None or self.sealed_share is not None
        if not shamir and not paillier:
            raise ValueError(
                "a report carries key_id and ciphertexts (Paillier task) or sealed_share "
                "(Shamir task)"
            )
        if self.share is not None and self.sealed_share is not None:
            raise ValueError("a Shamir report carries sealed_share alone (no plain share)")
        if shamir and (self.key_id is not None or self.ciphertexts is not None):
            raise ValueError(
                "a Shamir report carries sealed_share alone (no key_id, no ciphertexts)"
            )
        return self


class CloseIn(Schema):
    """Close a task (administrator). Optional for Paillier tasks; required for Shamir tasks.

    ``clients`` is a Shamir task's participant set: the client numbers whose share every
    reachable server holds. The server sums exactly those shares; it closes once, so a second
    close with a different set is refused. A Shamir task with validity ``range`` also takes
    ``refused`` and ``checks`` (every server's check values of both sets): see
    :mod:`smpcloud.protocol.sharing`, "Validated tasks".
    """

    clients: list[Annotated[StrictInt, Field(ge=1)]] | None = Field(
        default=None,
        description="Shamir tasks: the participant set (client numbers). Not for Paillier "
        "tasks, which aggregate every report.",
    )
    refused: list[Annotated[StrictInt, Field(ge=1)]] | None = Field(
        default=None,
        description="Shamir tasks with validity 'range': the reporters held by every server "
        "whose joint check failed (dropped, and counted under 'invalid-proof').",
    )
    checks: list[str] | None = Field(
        default=None,
        description="Shamir tasks with validity 'range': one entry per server j = 1..n, in "
        "order: server j's check values (GET /v1/tasks/{id}/checks) of the clients of "
        "`clients` then of `refused`, in that order, 2R per client, as unpadded base64url of "
        "little-endian uint32 (smpcloud.protocol.sharing.encode_check_values). Each server "
        "re-checks its own entries and every verdict before closing.",
    )


class PartialsIn(Schema):
    """One key holder's partial decryptions of the aggregate ciphertexts: exactly one form.

    ``partials``: one object per aggregate ciphertext, in order, each with its own proof.
    ``batch``: one object for all of them with ONE proof
    (:meth:`smpcloud.crypto.threshold.KeyShare.partial_decrypt_batch`). All key holders of a
    task use the same form: the first accepted upload fixes it.
    """

    partials: list[dict[str, Any]] | None = Field(
        default=None,
        description="Objects made by smpcloud.crypto.threshold.partial_to_json, one per "
        "aggregate ciphertext.",
    )
    batch: dict[str, Any] | None = Field(
        default=None,
        description="One object made by smpcloud.crypto.threshold.BatchPartialDecryption."
        "to_json covering every aggregate ciphertext.",
    )

    @model_validator(mode="after")
    def _check(self) -> PartialsIn:
        if (self.partials is None) == (self.batch is None):
            raise ValueError("give exactly one of 'partials' (one per ciphertext) and 'batch'")
        return self

    attestation: str | None = Field(
        default=None,
        max_length=100,
        description="Optional: this key holder's Ed25519 signature (unpadded base64url) over "
        "statement('smpcloud/aggregate-attestation/v1', {task_id, count, root, aggregate}): it "
        "checked that the aggregate is the product of exactly the logged reports "
        "(smpcloud.protocol.receipts).",
    )

    @property
    def form(self) -> PartialsForm:
        """``"batch"`` or ``"partials"``: which of the two fields this upload uses."""
        return "batch" if self.batch is not None else "partials"


__all__ = [
    "DEFAULT_MAX_CLIENTS",
    "DEFAULT_TASK_LIST_LIMIT",
    "DEFAULT_VALIDITY",
    "INTEGER_ENCODING",
    "MAX_CLIENTS_LIMIT",
    "MAX_FRAC_BITS",
    "MAX_HOLDERS",
    "MAX_PROOF_CHARS",
    "MAX_REGISTRATIONS_PER_REQUEST",
    "MAX_SUM_DIGITS",
    "MAX_TASK_LIST_LIMIT",
    "AggregateOut",
    "AttestationOut",
    "ClientCredentialsOut",
    "ClientsIn",
    "ClientsOut",
    "CloseIn",
    "ExactInteger",
    "InclusionProofOut",
    "LogSummaryOut",
    "LoggedReportOut",
    "PartialsAcceptedOut",
    "PartialsForm",
    "PartialsIn",
    "ProblemOut",
    "ReceiptOut",
    "ReportAcceptedOut",
    "ReportIn",
    "ReportLogOut",
    "ReportPageOut",
    "ReportersOut",
    "ResultOut",
    "Scheme",
    "SealedShareIn",
    "ShamirAggregateOut",
    "ShamirChecksOut",
    "TaskCreatedOut",
    "TaskEncoding",
    "TaskIn",
    "TaskInfoOut",
    "TaskListOut",
    "TaskState",
    "TaskStatusOut",
    "TaskSummaryOut",
    "Validity",
]

"""Response bodies of the aggregation service: what the server answers, the SDK reads.

The other half of :mod:`smpcloud.protocol.schemas` (request bodies, limits, and the re-export
of everything here, so ``from smpcloud.protocol.schemas import TaskInfoOut`` keeps working).
Response schemas end in ``Out`` and ignore unknown fields, so that older clients read newer
servers; the task states and scheme names every response shares are defined here. Bodies of the
receipts and the report log live in :mod:`smpcloud.protocol.receipts`, a task's certificates in
:mod:`smpcloud.protocol.certificates`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, Field

from smpcloud.protocol._bases import Out
from smpcloud.protocol.certificates import CertificateOut
from smpcloud.protocol.receipts import AttestationOut, LogSummaryOut, ReceiptOut
from smpcloud.protocol.task_encoding import TaskEncoding

TaskState = Literal["open", "closed", "decrypted", "insufficient", "withheld"]
"""``open``: accepting reports. ``closed``: aggregate published, waiting for t partial
decryptions (Paillier), or this server's share of the sum published (Shamir). ``decrypted``:
result published (Paillier only). ``insufficient``: closed with fewer than min_clients reports;
nothing (no aggregate, no result) is ever released (Paillier only: a Shamir server refuses a
close over fewer than min_clients participants instead). A Shamir task stays ``open`` past its
deadline (uploads are refused then) until the administrator closes it with the participant set."""

PartialsForm = Literal["partials", "batch"]
"""How a key holder uploads partial decryptions: one proof per ciphertext, or one batch."""

Scheme = Literal["paillier", "shamir"]
"""``paillier``: one server adds ciphertexts under a threshold key (the default).
``shamir``: n servers each add one Shamir share per client (:mod:`smpcloud.protocol.sharing`)."""


# ------------------------------------------------------------------------------------- output


class ProblemOut(BaseModel):
    """An RFC 9457 problem document (``application/problem+json``)."""

    type: str
    title: str
    status: int
    detail: str
    holders: list[int] | None = None


class TaskCreatedOut(Out):
    """The new task's id and one secret token per key holder (position i = holder i + 1)."""

    task_id: str
    holder_tokens: list[str]


class ClientCredentialsOut(Out):
    """A client's id and secret token (shown once; the server keeps only its SHA-256).

    For a Shamir task the id is the client's number within the task (1, 2, ... in order of
    registration), so that the same client has the same number on every server.
    """

    client_id: int
    token: str


class ClientsOut(Out):
    """Credentials of newly registered clients."""

    clients: list[ClientCredentialsOut]


class TaskInfoOut(Out):
    """What a participant needs to take part: the key, the encoding, the vector length.

    Shamir tasks have no ``public_key`` and no key holders (``holders`` is 0); ``threshold`` is
    t, the number of servers' shares that rebuild the sum; ``field`` lists the field's primes.
    A packed task has ``packing`` (its layout, :class:`smpcloud.crypto.packing.Packing` JSON):
    a report then holds ``packing.ciphertexts`` ciphertexts for its ``length`` values.
    """

    task_id: str
    name: str
    state: TaskState
    length: int
    encoding: TaskEncoding
    public_key: dict[str, Any] | None = None
    holders: int
    threshold: int
    min_clients: int
    max_clients: int
    deadline: datetime | None
    scheme: Scheme = "paillier"
    servers: int | None = None
    server_index: int | None = None
    field: list[int] | None = None
    packing: dict[str, Any] | None = None
    partials_form: PartialsForm | None = Field(
        default=None,
        description="Paillier: the form of the key holders' uploads ('partials' or 'batch'), "
        "fixed by the first accepted one; None before it.",
    )
    receipt_key: str | None = Field(
        default=None,
        description="Paillier: the server's Ed25519 key (unpadded base64url) that signs upload "
        "receipts and the published report log; part of what the key holders certify, so a "
        "receipt signed by it proves to anyone who pins the holders that the server accepted "
        "the report.",
    )
    share_key: str | None = Field(
        default=None,
        description="Shamir: this server's X25519 public key (unpadded base64url) that clients "
        "seal their share to; the administrator pins it at creation.",
    )
    validity: Literal["range", "none"] = Field(
        default="none",
        description="How each report is checked: 'range' (a validity proof that every value "
        "lies in the declared range, checked before the report is acknowledged) or 'none'.",
    )
    roster: dict[str, Any] | None = Field(
        default=None,
        description="Paillier: the key holders' roster given at creation (holders.json), or "
        "null. A client that pins the roster's digest checks it against this one.",
    )
    certificates: list[CertificateOut] = Field(
        default_factory=list,
        description="Paillier: the key holders' signatures over this task's statement "
        "(smpcloud.protocol.certificates); a client encrypts only once t of them verify "
        "under its pinned roster.",
    )


class TaskStatusOut(Out):
    """Progress of a task."""

    task_id: str
    state: TaskState
    reports: int
    registered_clients: int
    min_clients: int
    max_clients: int
    partials_received: int
    threshold: int
    holders: int
    deadline: datetime | None
    created_at: datetime
    closed_at: datetime | None
    close_reason: Literal["admin", "deadline"] | None
    scheme: Scheme = "paillier"
    servers: int | None = None
    server_index: int | None = None
    reported: bool | None = Field(
        default=None,
        description="For a client's token: whether this server holds the client's report.",
    )
    partials_form: PartialsForm | None = Field(
        default=None,
        description="Paillier: the form of the key holders' uploads ('partials' or 'batch'), "
        "fixed by the first accepted one; None before it.",
    )
    certified_by: list[int] = Field(
        default_factory=list,
        description="Paillier: the key holders whose certificate of the task this server "
        "checked against the task's roster, in increasing order.",
    )
    refused: dict[str, int] = Field(
        default_factory=dict,
        description="Reports refused so far, by reason (the problem type's slug, for example "
        "'invalid-proof', 'malformed-ciphertext', 'duplicate-submission').",
    )


class TaskSummaryOut(Out):
    """One task in the administrator's task list: what it is and how far it got."""

    task_id: str
    name: str
    scheme: Scheme
    state: TaskState
    reports: int
    registered_clients: int
    min_clients: int
    max_clients: int
    created_at: datetime
    closed_at: datetime | None
    deadline: datetime | None


class TaskListOut(Out):
    """A page of the administrator's tasks, newest first, and how many there are in all."""

    tasks: list[TaskSummaryOut]
    total: int = Field(description="Tasks on this server (the page holds at most `limit`).")
    limit: int = Field(description="The most tasks this page could hold.")


class ReportAcceptedOut(Out):
    """Acknowledgement of a durable upload (committed before this response was sent).

    A Paillier report also gets the server's signed :class:`ReceiptOut`.
    """

    task_id: str
    client_id: int
    received_at: datetime
    receipt: ReceiptOut | None = None


class AggregateOut(Out):
    """The published aggregate: the product of all reports' ciphertexts, element-wise."""

    task_id: str
    key_id: str
    count: int
    ciphertexts: list[str]
    scheme: Literal["paillier"] = "paillier"


class ShamirAggregateOut(Out):
    """A Shamir server's share of the sum over the participant set (administrator only).

    ``share`` is this server's point (x = ``server_index``) of the sum's polynomial, in the
    form of :func:`smpcloud.protocol.sharing.encode_share`; t servers' shares rebuild the sum.
    Alone it reveals nothing about the sum or any input.
    """

    scheme: Literal["shamir"]
    task_id: str
    server_index: int
    servers: int
    threshold: int
    count: int
    clients: list[int]
    share: str


class ShamirChecksOut(Out):
    """A validated Shamir task's check values on this server (administrator only).

    ``values`` holds 2R check values per client of ``clients`` (in that order: sigma_1..R, then
    tau_1..R; :mod:`smpcloud.crypto.shamir_validity`) as unpadded base64url of little-endian
    uint32 (:func:`smpcloud.protocol.sharing.encode_check_values`). Every one of the n servers'
    values is needed to decide a report; given that the report passed they are uniformly
    random.
    """

    task_id: str
    server_index: int
    repetitions: int
    clients: list[int]
    values: str


class ReportersOut(Out):
    """The clients whose report this server holds (administrator only), in increasing order.

    Client numbers for Shamir tasks (1..N, the same on every server), client ids otherwise.
    """

    task_id: str
    count: int
    clients: list[int]


class PartialsAcceptedOut(Out):
    """Acknowledgement of a key holder's verified partial decryptions."""

    task_id: str
    holder: int
    partials_received: int
    threshold: int
    decrypted: bool


#: Longest decimal string of an exact sum (a 16384-bit modulus has 4,933 digits).
MAX_SUM_DIGITS: Final = 5000

ExactInteger = Annotated[str, Field(pattern=r"^-?(0|[1-9][0-9]*)$", max_length=MAX_SUM_DIGITS + 1)]
"""A signed integer of any size as a decimal string (JSON numbers lose precision in many
readers beyond 2^53)."""


class ResultOut(Out):
    """The released result: sum, count and average per element.

    ``within_declared_range`` is False if some sum lies outside [count · min, count · max]: proof
    that a client submitted a value outside the declared range (see :class:`TaskEncoding`).
    Such an element is listed in ``out_of_range``; its ``sum`` and ``average`` are ``null``
    (the value is meaningless, and may be up to n/2 in magnitude: no float holds it), and its
    exact decrypted integer is in ``encoded_sum``. A result is thus always readable.
    """

    task_id: str
    count: int
    sum: list[int | float | None] = Field(
        description="Per element: the decoded sum (an integer for integer tasks, a number for "
        "fixed-point ones); null where the element is out of range."
    )
    average: list[float | None] = Field(
        description="Per element: sum / count; null where the element is out of range."
    )
    holders: list[int]
    within_declared_range: bool
    out_of_range: list[int] = Field(
        default_factory=list,
        description="The (0-based) elements whose sum lies outside [count · min_value, "
        "count · max_value]: some client sent a value outside the declared range.",
    )
    encoded_sum: list[ExactInteger] = Field(
        default_factory=list,
        description="Per element: the exact decrypted sum of the encoded values as a decimal "
        "string (sum · 2^frac_bits for fixed-point tasks), out-of-range elements included.",
    )
    log: LogSummaryOut | None = Field(
        default=None,
        description="The signed report log the decrypted aggregate was checked against (None "
        "for tasks closed before logs existed).",
    )
    attestations: list[AttestationOut] = Field(
        default_factory=list,
        description="Key holders' signatures over (task_id, count, root, aggregate): each "
        "checked the aggregate against the log before decrypting.",
    )

    @classmethod
    def from_sums(
        cls,
        *,
        task_id: str,
        count: int,
        encoded_sums: list[int],
        holders: list[int],
        encoding: TaskEncoding,
        log: LogSummaryOut | None = None,
        attestations: list[AttestationOut] | None = None,
    ) -> ResultOut:
        """Build the result of decrypted sums: decode those in range, flag the others.

        Args:
            task_id: the task.
            count: the number of reports summed (at least 1).
            encoded_sums: the decrypted plaintext sums, signed, one per element.
            holders: the key holders whose partial decryptions were combined.
            encoding: the task's encoding (declares the range of each value).
            log: the signed report log the aggregate was checked against.
            attestations: the key holders' attestations of that log and aggregate.

        Returns:
            The result; never fails on a sum, however large.
        """
        sums: list[int | float | None] = []
        averages: list[float | None] = []
        out_of_range: list[int] = []
        for index, encoded in enumerate(encoded_sums):
            if encoding.sum_in_range(encoded, count):
                sums.append(encoding.decode_sum(encoded))
                averages.append(encoding.average(encoded, count))
            else:
                out_of_range.append(index)
                sums.append(None)
                averages.append(None)
        return cls(
            task_id=task_id,
            count=count,
            sum=sums,
            average=averages,
            holders=holders,
            within_declared_range=not out_of_range,
            out_of_range=out_of_range,
            encoded_sum=[str(int(s)) for s in encoded_sums],
            log=log,
            attestations=list(attestations or []),
        )


__all__ = [
    "MAX_SUM_DIGITS",
    "AggregateOut",
    "ClientCredentialsOut",
    "ClientsOut",
    "ExactInteger",
    "PartialsAcceptedOut",
    "PartialsForm",
    "ProblemOut",
    "ReportAcceptedOut",
    "ReportersOut",
    "ResultOut",
    "Scheme",
    "ShamirAggregateOut",
    "ShamirChecksOut",
    "TaskCreatedOut",
    "TaskInfoOut",
    "TaskListOut",
    "TaskState",
    "TaskStatusOut",
    "TaskSummaryOut",
]

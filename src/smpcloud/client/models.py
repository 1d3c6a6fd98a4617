"""What the Paillier SDK returns, and how it is read from the service's response bodies.

:class:`TaskCreated`, :class:`ClientCredentials`, :class:`TaskInfo`, :class:`TaskStatus`,
:class:`TaskResult`, :class:`TaskList` (of :class:`TaskSummary`) and :class:`PreparedReport`
are the value types of :class:`~smpcloud.client.Admin`, :class:`~smpcloud.client.Client` and
:class:`~smpcloud.client.KeyHolder`; :func:`read_task_info`, :func:`read_status`,
:func:`read_result` and :func:`read_task_list` turn the wire bodies
(:mod:`smpcloud.protocol.schemas`) into them. Secrets (tokens) are never shown in ``repr``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from smpcloud.crypto import threshold
from smpcloud.crypto.packing import Packing
from smpcloud.crypto.signatures import VerifyKey, verify_statement
from smpcloud.crypto.wire import check_json_object
from smpcloud.errors import InvalidInputError, KeyMismatchError, SignatureError
from smpcloud.protocol.receipts import (
    RECEIPT_DOMAIN,
    ReceiptVerificationError,
    hash_from_hex,
    receipt_fields,
)
from smpcloud.protocol.schemas import (
    PartialsForm,
    ReceiptOut,
    ReportIn,
    ResultOut,
    Scheme,
    TaskEncoding,
    TaskInfoOut,
    TaskListOut,
    TaskState,
    TaskStatusOut,
)


@dataclass(frozen=True, slots=True)
class TaskCreated:
    """A new task's id and its key holders' secret tokens (``holder_tokens[i]`` is holder i+1).

    Hand each token to its key holder over a private channel; they are not shown again.
    """

    task_id: str
    holder_tokens: list[str] = field(repr=False)

    def __repr__(self) -> str:
        redacted = f"<{len(self.holder_tokens)} redacted>"
        return f"TaskCreated(task_id={self.task_id!r}, holder_tokens={redacted})"


@dataclass(frozen=True, slots=True)
class ClientCredentials:
    """A client's id and secret token (shown once; the server keeps only its hash)."""

    client_id: int
    token: str = field(repr=False)

    def __repr__(self) -> str:
        return f"ClientCredentials(client_id={self.client_id}, token=<redacted>)"


@dataclass(frozen=True, slots=True)
class TaskInfo:
    """What a participant needs: the threshold public key, encoding, length and limits.

    Attributes:
        length: values per client.
        encoding: how values are encoded (for a packed task, implied by its layout).
        packing: a packed task's layout (None: one ciphertext per value).
        partials_form: how the task's key holders upload (``"partials"`` or ``"batch"``),
            fixed by the first accepted upload; None before it.
        certified_by: the key holders whose certificates of the task (its key and parameters
            exactly as served) verified under the client's pinned roster
            (:meth:`smpcloud.client.Client.info`); empty where nobody checked them
            (:meth:`smpcloud.client.Admin.info`, or a client that skipped certification).
        receipt_key: the server's key that signs receipts and the report log (part of what
            the key holders certify); None from a server that serves none.
        validity: ``"range"`` (each report carries a validity proof that the server checks
            before acknowledging it) or ``"none"`` (reports are trusted); part of what the key
            holders certify.
    """

    task_id: str
    name: str
    state: TaskState
    length: int
    encoding: TaskEncoding
    public_key: threshold.ThresholdPublicKey
    holders: int
    threshold: int
    min_clients: int
    max_clients: int
    deadline: datetime | None
    packing: Packing | None = None
    partials_form: PartialsForm | None = None
    certified_by: tuple[int, ...] = ()
    receipt_key: str | None = None
    validity: str = "none"

    @property
    def ciphertexts(self) -> int:
        """Ciphertexts per report and in the aggregate (``packing.ciphertexts`` or ``length``)."""
        return self.packing.ciphertexts if self.packing is not None else self.length


@dataclass(frozen=True, slots=True)
class TaskStatus:
    """State and counters of a task.

    Attributes:
        state: ``open``, ``closed`` (waiting for partial decryptions), ``decrypted`` (result
            published), ``insufficient`` (closed with fewer than min_clients reports) or
            ``withheld`` (a packed task whose decrypted sums left the layout's bounds, so some
            client forged its report: nothing is released, ever).
        reports: reports received so far.
        partials_received: key holders whose partial decryptions were accepted (k).
        threshold: partial decryptions needed (t); for a Shamir task, servers' shares needed.
        scheme: ``paillier`` or ``shamir``.
        servers: a Shamir task's number of servers n (None for Paillier tasks).
        server_index: a Shamir task's index j of this server (None for Paillier tasks).
        reported: asked with a client's token, whether this server holds its report.
        partials_form: how the key holders upload (``"partials"``: one partial decryption per
            ciphertext; ``"batch"``: one batch with one proof), fixed by the first accepted
            upload; None before it.
        certified_by: the key holders whose certificate of the task the server checked
            against the task's roster (the server's word: a client checks them itself).
        refused: uploads the server refused so far, by reason (the problem type's slug, for
            example ``"invalid-proof"``); refused reports are never stored.
    """

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
    reported: bool | None = None
    partials_form: PartialsForm | None = None
    certified_by: list[int] = field(default_factory=list)
    refused: dict[str, int] = field(default_factory=dict)

    @property
    def count(self) -> int:
        """The number of reports (same as ``reports``; named like ``TaskResult.count``)."""
        return self.reports


@dataclass(frozen=True, slots=True)
class CertificateAccepted:
    """The server's answer to a key holder's certificate (:meth:`KeyHolder.certify`).

    Attributes:
        holder: this key holder's index.
        certified_by: every holder whose certificate the server holds, in increasing order.
        threshold: certificates a client needs (t).
        signed: the statement's fields this holder signed
            (:func:`smpcloud.protocol.certificates.certificate_fields`): what it vouched for.
    """

    task_id: str
    holder: int
    certified_by: list[int]
    threshold: int
    signed: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TaskSummary:
    """One task in the administrator's list (:meth:`Admin.list_tasks`).

    Attributes:
        state: as in :class:`TaskStatus`.
        reports: reports received so far; ``min_clients`` are needed for a result.
        registered_clients: client tokens issued.
    """

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


@dataclass(frozen=True, slots=True)
class TaskList:
    """A page of tasks, newest first, and the number of tasks on the server (``total``).

    ``limit`` is the most tasks the page could hold: ``total > len(tasks)`` means there are
    more than were listed.
    """

    tasks: list[TaskSummary]
    total: int
    limit: int


@dataclass(frozen=True, slots=True)
class TaskResult:
    """The released result: per element, the sum and the average over ``count`` reports.

    ``sum`` holds ints for integer tasks and floats for fixed-point ones. ``holders`` are the
    key holders whose partial decryptions were combined. ``within_declared_range`` False proves
    that some client submitted a value outside the declared range (see TaskEncoding): the
    elements whose sum lies outside [count · min, count · max] are listed in ``out_of_range``,
    and their ``sum`` and ``average`` are NaN (the server sends null; the value means nothing
    and may be too large for a float). ``encoded_sum`` holds every element's exact decrypted
    integer (sum · 2^frac_bits), out-of-range ones included (empty from older servers).
    """

    task_id: str
    count: int
    sum: list[int | float]
    average: list[float]
    holders: list[int]
    within_declared_range: bool
    out_of_range: list[int] = field(default_factory=list)
    encoded_sum: list[int] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class PreparedReport:
    """One client's encrypted report, ready to upload (see :meth:`Client.prepare`).

    Holds ciphertexts only, nothing secret: anyone may carry it to the server.

    Attributes:
        task_id: the task it was prepared for.
        key_id: ``PublicKey.key_id`` of the key it is encrypted under.
        ciphertexts: one canonical base64url ciphertext per element, in order.
        proof: a ``range`` task's validity proof (unpadded base64url, bound to the task, the
            client and the ciphertexts); None for a ``none`` task.
    """

    task_id: str
    key_id: str
    ciphertexts: tuple[str, ...]
    proof: str | None = None

    def __repr__(self) -> str:
        proof = f", proof=<{len(self.proof)} chars>" if self.proof is not None else ""
        return (
            f"PreparedReport(task_id={self.task_id!r}, key_id={self.key_id!r}, "
            f"ciphertexts=<{len(self.ciphertexts)}>{proof})"
        )

    def request_body(self) -> dict[str, object]:
        """Return the JSON body of the upload, exactly as :meth:`Client.upload` sends it."""
        return ReportIn(
            key_id=self.key_id, ciphertexts=list(self.ciphertexts), proof=self.proof
        ).model_dump()


def read_status(out: TaskStatusOut) -> TaskStatus:
    """Return a task's status as the SDK shows it.

    Args:
        out: the service's status response.

    Returns:
        The same fields as a :class:`TaskStatus`.
    """
    return TaskStatus(**out.model_dump())


def read_task_list(out: TaskListOut) -> TaskList:
    """Return a page of the task list as the SDK shows it.

    Args:
        out: the service's task list response.

    Returns:
        A :class:`TaskList` of :class:`TaskSummary`.
    """
    return TaskList(
        tasks=[TaskSummary(**task.model_dump()) for task in out.tasks],
        total=out.total,
        limit=out.limit,
    )


def read_result(out: ResultOut) -> TaskResult:
    """Return a released result as the SDK shows it.

    Args:
        out: the service's result response.

    Returns:
        The same fields as a :class:`TaskResult`, with NaN for the null sums and averages of
        out-of-range elements and the exact sums as ints.
    """
    nan = float("nan")
    return TaskResult(
        task_id=out.task_id,
        count=out.count,
        sum=[nan if s is None else s for s in out.sum],
        average=[nan if a is None else a for a in out.average],
        holders=list(out.holders),
        within_declared_range=out.within_declared_range,
        out_of_range=list(out.out_of_range),
        encoded_sum=[int(s) for s in out.encoded_sum],
    )


def read_task_info(out: TaskInfoOut, *, insecure: bool) -> TaskInfo:
    """Return a Paillier task's info, its key and packing parsed and checked.

    Args:
        out: the service's task info response.
        insecure: accept keys below 2048 bits (tests only).

    Returns:
        The task's :class:`TaskInfo`.

    Raises:
        InvalidInputError: not a Paillier task, a malformed or (without ``insecure``) short
            key, or a packing that does not fit the task.
        KeyMismatchError: the served holders or threshold are not the served key's.
    """
    if out.scheme != "paillier" or out.public_key is None:
        raise InvalidInputError(
            f"task {out.task_id!r} uses the {out.scheme} scheme, not Paillier: use "
            "smpcloud.client.ShamirClient / ShamirAggregation"
        )
    public = threshold.public_key_from_json(out.public_key, insecure=insecure)
    if (public.holders, public.threshold) != (out.holders, out.threshold):
        raise KeyMismatchError(
            f"task {out.task_id!r}: the server says {out.threshold} of {out.holders} key "
            f"holders, but the key it serves is {public.threshold}-of-{public.holders}"
        )
    packing: Packing | None = None
    if out.packing is not None:
        # A layout that does not fit the task would misplace values: refuse it.
        packing = Packing.from_json(out.packing)
        if packing.length != out.length:
            raise InvalidInputError(
                f"task {out.task_id!r}: the served packing is for {packing.length} values, "
                f"the task has {out.length}"
            )
        packing.check_key_bits(public.public_key.bits)
    return TaskInfo(
        task_id=out.task_id,
        name=out.name,
        state=out.state,
        length=out.length,
        encoding=out.encoding,
        public_key=public,
        holders=out.holders,
        threshold=out.threshold,
        min_clients=out.min_clients,
        max_clients=out.max_clients,
        deadline=out.deadline,
        packing=packing,
        partials_form=out.partials_form,
        receipt_key=out.receipt_key,
        validity=out.validity,
    )


#: The ``kind`` of a receipt file (``smpcloud submit --receipt``).
RECEIPT_KIND = "smpcloud-receipt"


@dataclass(frozen=True, slots=True)
class Receipt:
    """The server's signed receipt for one accepted report (nothing secret: a public file).

    Keep it: with it the client checks that the published report log includes its report
    (:func:`smpcloud.client.verify_receipt`, ``smpcloud receipt verify``), and proves the
    server accepted it if not.

    Attributes:
        task_id: the task.
        client_id: the client's id as the server names it.
        leaf: the report's Merkle leaf (64 hex digits): a hash of the task, the client and
            the ciphertexts.
        received_at: when the server accepted it (ISO 8601, as signed).
        server_key: the server's Ed25519 verify key (unpadded base64url).
        signature: the server's signature over the receipt statement.
    """

    task_id: str
    client_id: int
    leaf: str
    received_at: str
    server_key: str
    signature: str

    def fields(self) -> dict[str, object]:
        """The signed statement's fields (:data:`smpcloud.protocol.receipts.RECEIPT_DOMAIN`)."""
        return receipt_fields(
            self.task_id, self.client_id, self.leaf, self.received_at, self.server_key
        )

    def verify_signature(self) -> VerifyKey:
        """Check the server's signature on this receipt; return the server's key.

        Raises:
            ReceiptVerificationError: (check ``receipt``) a malformed key or leaf, or a
                signature that does not verify.
        """
        try:
            hash_from_hex(self.leaf, "leaf")
            key = VerifyKey.from_text(self.server_key, "server key")
            verify_statement(key, self.signature, RECEIPT_DOMAIN, self.fields())
        except (InvalidInputError, SignatureError) as exc:
            raise ReceiptVerificationError(
                "receipt", f"the server's signature on the receipt does not verify ({exc})"
            ) from None
        return key

    def to_json(self) -> dict[str, object]:
        """The receipt file's JSON object."""
        return {"kind": RECEIPT_KIND, "version": 1, **self.fields(), "signature": self.signature}

    @classmethod
    def from_json(cls, data: object) -> Receipt:
        """Parse :meth:`to_json`'s object (the signature is not checked here).

        Raises:
            InvalidInputError: malformed.
        """
        names = ("task_id", "client_id", "leaf", "received_at", "server_key", "signature")
        obj = check_json_object(data, RECEIPT_KIND, names)
        client_id = obj["client_id"]
        texts = [obj[name] for name in names if name != "client_id"]
        if type(client_id) is not int or not all(isinstance(t, str) for t in texts):
            raise InvalidInputError("receipt: client_id must be an integer, the rest strings")
        return cls(
            task_id=str(obj["task_id"]),
            client_id=client_id,
            leaf=str(obj["leaf"]),
            received_at=str(obj["received_at"]),
            server_key=str(obj["server_key"]),
            signature=str(obj["signature"]),
        )


def read_receipt(out: ReceiptOut) -> Receipt:
    """Return a receipt as the SDK keeps it (the signature is checked by the caller)."""
    return Receipt(**out.model_dump())


__all__ = [
    "RECEIPT_KIND",
    "CertificateAccepted",
    "ClientCredentials",
    "PreparedReport",
    "Receipt",
    "TaskCreated",
    "TaskInfo",
    "TaskList",
    "TaskResult",
    "TaskStatus",
    "TaskSummary",
    "read_receipt",
    "read_result",
    "read_status",
    "read_task_info",
    "read_task_list",
]

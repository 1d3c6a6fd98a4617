"""Typed SDK for the aggregation service: :class:`Admin`, :class:`Client`, :class:`KeyHolder`.

Each object holds one HTTP connection (``httpx``) with one bearer token; use it as a context
manager or call :meth:`disconnect`. Everything secret stays local: clients encode and encrypt
their values on their own machine, key holders partial-decrypt with their own key share; only
ciphertexts, partial decryptions and proofs go over the wire. Tokens are never put in messages
or ``repr``.

Errors: the server's problem documents come back as the matching exception class (see
:mod:`smpcloud.protocol.problems`), carrying the server's message; an unreachable server or a broken
connection raises :class:`~smpcloud.errors.TransportError`.

Trust: a client encrypts under the key the server serves for the task. Pass ``public_key=`` to
:class:`Client` to pin the key obtained from the key ceremony instead; key holders always check
that the task's key is the one their share belongs to.

Packed vector tasks (``Admin.create_task(..., packing=Packing.for_key(...))``): clients'
vectors are packed many values to a ciphertext (:mod:`smpcloud.crypto.packing`), key holders
send one batched partial decryption with one proof, and the result holds one sum and average
per value; nothing else changes for the caller. Heavy local work (a client's encryption, a key
holder's exponentiations) can use every core through a :class:`smpcloud.parallel.CryptoPool`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import TracebackType
from typing import Final, Literal, Self, cast

import httpx
import numpy.typing as npt
from pydantic import ValidationError

from smpcloud.client._http import DEFAULT_TIMEOUT, Connection, task_path, validation_summary
from smpcloud.client._values import as_values
from smpcloud.crypto import threshold
from smpcloud.crypto.packing import Packing, encrypt_vector
from smpcloud.crypto.paillier import Ciphertext, PublicKey
from smpcloud.crypto.wire import decode_int, encode_int
from smpcloud.errors import InvalidInputError, KeyMismatchError, MalformedCiphertextError
from smpcloud.parallel import CryptoPool
from smpcloud.protocol.schemas import (
    DEFAULT_MAX_CLIENTS,
    INTEGER_ENCODING,
    MAX_REGISTRATIONS_PER_REQUEST,
    AggregateOut,
    ClientsIn,
    ClientsOut,
    PartialsAcceptedOut,
    PartialsForm,
    PartialsIn,
    ReportAcceptedOut,
    ReportIn,
    ResultOut,
    Scheme,
    TaskCreatedOut,
    TaskEncoding,
    TaskIn,
    TaskInfoOut,
    TaskState,
    TaskStatusOut,
)

#: Reports of up to this many values are encrypted the textbook way (one r^n each, ~8 ms at
#: 2048 bits) unless the key object already holds its fast-encryption table: building the table
#: costs ~85 ms, then ~0.6 ms per value (see :mod:`smpcloud.crypto.paillier`). Measured
#: break-even: about 11 values.
CLASSIC_ENCRYPTION_MAX: Final = 10
HOLDER_TIMEOUT: Final = 600.0


# ------------------------------------------------------------------------------ value types


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

    @property
    def count(self) -> int:
        """The number of reports (same as ``reports``; named like ``TaskResult.count``)."""
        return self.reports


@dataclass(frozen=True, slots=True)
class TaskResult:
    """The released result: per element, the sum and the average over ``count`` reports.

    ``sum`` holds ints for integer tasks and floats for fixed-point ones. ``holders`` are the
    key holders whose partial decryptions were combined. ``within_declared_range`` False proves
    that some client submitted a value outside the declared range (see TaskEncoding).
    """

    task_id: str
    count: int
    sum: list[int | float]
    average: list[float]
    holders: list[int]
    within_declared_range: bool


@dataclass(frozen=True, slots=True)
class PreparedReport:
    """One client's encrypted report, ready to upload (see :meth:`Client.prepare`).

    Holds ciphertexts only, nothing secret: anyone may carry it to the server.

    Attributes:
        task_id: the task it was prepared for.
        key_id: ``PublicKey.key_id`` of the key it is encrypted under.
        ciphertexts: one canonical base64url ciphertext per element, in order.
    """

    task_id: str
    key_id: str
    ciphertexts: tuple[str, ...]

    def __repr__(self) -> str:
        return (
            f"PreparedReport(task_id={self.task_id!r}, key_id={self.key_id!r}, "
            f"ciphertexts=<{len(self.ciphertexts)}>)"
        )

    def request_body(self) -> dict[str, object]:
        """Return the JSON body of the upload, exactly as :meth:`Client.upload` sends it."""
        return ReportIn(key_id=self.key_id, ciphertexts=list(self.ciphertexts)).model_dump()


# ---------------------------------------------------------------------------------- helpers


def _status(out: TaskStatusOut) -> TaskStatus:
    return TaskStatus(**out.model_dump())


def _result(out: ResultOut) -> TaskResult:
    return TaskResult(**out.model_dump())


def _task_info(out: TaskInfoOut, *, insecure: bool) -> TaskInfo:
    if out.scheme != "paillier" or out.public_key is None:
        raise InvalidInputError(
            f"task {out.task_id!r} uses the {out.scheme} scheme, not Paillier: use "
            "smpcloud.client.ShamirClient / ShamirAggregation"
        )
    public = threshold.public_key_from_json(out.public_key, insecure=insecure)
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
    )


def prepare_report(
    info: TaskInfo,
    values: float | int | Sequence[float | int] | npt.ArrayLike,
    *,
    pool: CryptoPool | None = None,
) -> PreparedReport:
    """Encode, range-check and encrypt one client's values for a task; no network.

    This is the local half of :meth:`Client.submit` (see :meth:`Client.prepare`), for callers
    that already hold the task's :class:`TaskInfo`.

    A packed task (``info.packing``): the vector (a list or a numpy array) is range-checked as a
    whole, packed and encrypted with the fast DJN path
    (:func:`smpcloud.crypto.packing.encrypt_vector`), ``info.packing.ciphertexts`` ciphertexts
    for ``info.length`` values; with ``pool`` the encryptions spread over its worker processes
    (:meth:`smpcloud.parallel.CryptoPool.encrypt_vector`, which builds the key's table once per
    worker).

    Encryption: the fast DJN path (:meth:`~smpcloud.crypto.paillier.PublicKey.encrypt`) when
    the key object ``info.public_key.public_key`` already holds its fast-encryption table
    (``has_table``) or the report has more than :data:`CLASSIC_ENCRYPTION_MAX` values; the
    classic r^n path otherwise, since one classic encryption (~8 ms at 2048 bits) costs less
    than building the table (~85 ms). A process that prepares many reports with one key object
    should call ``info.public_key.public_key.precompute()`` once: every report after that uses
    the table.

    Args:
        info: the task's info (:meth:`Client.info` or :meth:`Admin.info`).
        values: a scalar or ``info.length`` values.
        pool: a worker pool for a packed task's encryptions (default: this process).

    Returns:
        The report, ready for :meth:`Client.upload`.

    Raises:
        InvalidInputError: wrong number of values or a non-number.
        OverflowDetectedError: a value outside the declared range, NaN or infinite.
    """
    pk = info.public_key.public_key
    if info.packing is not None:
        scalar = isinstance(values, (int, float)) or getattr(values, "ndim", None) == 0
        vector = cast("npt.ArrayLike", [values] if scalar else values)
        if pool is not None:
            packed = pool.encrypt_vector(pk, vector, info.packing)
        else:
            packed = encrypt_vector(pk, vector, info.packing)
        return PreparedReport(
            task_id=info.task_id,
            key_id=pk.key_id,
            ciphertexts=tuple(encode_int(c.value) for c in packed),
        )
    items = as_values(values)
    if len(items) != info.length:
        raise InvalidInputError(
            f"this task takes {info.length} value(s) per client; got {len(items)}"
        )
    plaintexts = [info.encoding.encode(v, index=i) for i, v in enumerate(items)]
    if pk.has_table or len(plaintexts) > CLASSIC_ENCRYPTION_MAX:
        ciphertexts = [pk.encrypt(m) for m in plaintexts]
    else:
        ciphertexts = [pk.encrypt_classic(m) for m in plaintexts]
    return PreparedReport(
        task_id=info.task_id,
        key_id=pk.key_id,
        ciphertexts=tuple(encode_int(c.value) for c in ciphertexts),
    )


class _Participant:
    """Shared plumbing: one connection, context management."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float,
        transport: httpx.BaseTransport | None,
    ) -> None:
        self._conn = Connection(base_url, token, timeout=timeout, transport=transport)

    def disconnect(self) -> None:
        """Close the HTTP connection (the object is unusable afterwards)."""
        self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.disconnect()


# ------------------------------------------------------------------------------------ admin


class Admin(_Participant):
    """The task administrator: creates tasks, registers clients, closes, reads results.

    Args:
        base_url: the service's root URL, e.g. ``http://127.0.0.1:8000``.
        admin_token: the token the server was started with.
        timeout: seconds per HTTP request.
        transport: an ``httpx`` transport instead of the network (tests, in-process apps).
    """

    def __init__(
        self,
        base_url: str,
        admin_token: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, admin_token, timeout=timeout, transport=transport)

    def create_task(
        self,
        public_key: threshold.ThresholdPublicKey,
        *,
        name: str,
        length: int | None = None,
        encoding: TaskEncoding | None = None,
        min_clients: int,
        max_clients: int | None = None,
        deadline: datetime | None = None,
        packing: Packing | None = None,
    ) -> TaskCreated:
        """Create a task; return its id and one secret token per key holder.

        Args:
            public_key: the threshold public key from the key ceremony (``threshold.deal``);
                its holders and threshold t come with it.
            name: a label for people.
            length: values per client (1 = a scalar; more = element-wise vectors). Default:
                ``packing.length`` for a packed task, else 1.
            encoding: integers or fixed-point reals, with each value's declared range.
                Default: the one the packing implies (fixed point with its frac_bits and
                range; integers if frac_bits is 0 and the bounds are ints), else signed 64-bit
                integers. A packed task refuses any other.
            min_clients: fewer reports than this never release a result (at least 2).
            max_clients: most clients the task accepts. Default: ``packing.max_additions``
                for a packed task (it must not be more), else 10^6, for which the server checks
                that max_clients · max|value| · 2^frac_bits <= n/2 so that sums cannot wrap.
            deadline: an aware datetime at which the task closes by itself.
            packing: pack many values into each ciphertext with this layout (for example
                ``Packing.for_key(public_key.public_key, length=..., min_value=...,
                max_value=..., max_additions=..., frac_bits=...)``): 20x or more fewer
                ciphertexts to encrypt, upload, aggregate and decrypt for long vectors.

        Raises:
            InvalidInputError: bad parameters (checked locally, then by the server).
            PermissionDeniedError: wrong admin token.
        """
        if not isinstance(public_key, threshold.ThresholdPublicKey):
            raise InvalidInputError("public_key must be a threshold.ThresholdPublicKey")
        if packing is not None and not isinstance(packing, Packing):
            raise InvalidInputError("packing must be a smpcloud.crypto.packing.Packing")
        if length is None:
            length = packing.length if packing is not None else 1
        if max_clients is None:
            max_clients = packing.max_additions if packing is not None else DEFAULT_MAX_CLIENTS
        fields: dict[str, object] = {}
        if encoding is not None:
            fields["encoding"] = encoding
        elif packing is None:
            fields["encoding"] = INTEGER_ENCODING
        if packing is not None:
            fields["packing"] = packing.to_json()
        try:
            body = TaskIn(
                name=name,
                public_key=threshold.public_key_to_json(public_key),
                length=length,
                min_clients=min_clients,
                max_clients=max_clients,
                deadline=deadline,
                **fields,  # type: ignore[arg-type]
            )
        except ValidationError as exc:
            raise InvalidInputError(f"invalid task: {validation_summary(exc)}") from None
        payload = body.model_dump(mode="json")
        if packing is None:
            del payload["packing"]  # servers without packing refuse unknown fields
        elif encoding is None:
            del payload["encoding"]  # the server implies it from the layout
        out = self._conn.request("POST", "/v1/tasks", TaskCreatedOut, json=payload, expected=201)
        return TaskCreated(task_id=out.task_id, holder_tokens=list(out.holder_tokens))

    def register_clients(self, task_id: str, count: int) -> list[ClientCredentials]:
        """Register ``count`` clients; return their ids and tokens (shown only now).

        Large counts are sent in batches of 10 000.

        Raises:
            TaskStateError: the task is closed, or would exceed its max_clients.
        """
        if type(count) is not int or count < 1:
            raise InvalidInputError("count must be a positive integer")
        credentials: list[ClientCredentials] = []
        remaining = count
        while remaining:
            batch = min(remaining, MAX_REGISTRATIONS_PER_REQUEST)
            out = self._conn.request(
                "POST",
                task_path(task_id, "clients"),
                ClientsOut,
                json=ClientsIn(count=batch).model_dump(),
                expected=201,
            )
            credentials.extend(ClientCredentials(c.client_id, c.token) for c in out.clients)
            remaining -= batch
        return credentials

    def close(self, task_id: str) -> TaskStatus:
        """Close the task now (idempotent): publish the aggregate, or mark it insufficient."""
        return _status(self._conn.request("POST", task_path(task_id, "close"), TaskStatusOut))

    def status(self, task_id: str) -> TaskStatus:
        """Return the task's state and counters."""
        return _status(self._conn.request("GET", task_path(task_id, "status"), TaskStatusOut))

    def info(self, task_id: str, *, allow_insecure_keys: bool = False) -> TaskInfo:
        """Return the task's key, encoding and limits."""
        out = self._conn.request("GET", task_path(task_id), TaskInfoOut)
        return _task_info(out, insecure=allow_insecure_keys)

    def result(self, task_id: str) -> TaskResult:
        """Return the released sum, count and average per element.

        Raises:
            TaskStateError: the task is still open.
            InsufficientReportsError: it closed with fewer than min_clients reports.
            ThresholdNotMetError: fewer than t partial decryptions so far.
        """
        return _result(self._conn.request("GET", task_path(task_id, "result"), ResultOut))


# ----------------------------------------------------------------------------------- client


class Client(_Participant):
    """A data owner: encodes, encrypts and uploads its private values, once.

    Reveals to the server: that this client reported, and when. The values stay encrypted
    under the threshold key; only their sum over all clients is ever decrypted.

    :meth:`submit` does it all; :meth:`prepare` (encode, range check, encrypt: local work) and
    :meth:`upload` (one HTTP request) are its two halves, for callers that time or schedule
    them apart.

    Encryption: a short report (up to :data:`CLASSIC_ENCRYPTION_MAX` values) is encrypted the
    classic r^n way unless the key object already holds its fast-encryption table; a long one
    (or any report under a key object with a table) takes the fast DJN path. A process that
    simulates many clients should pin one key object for all of them (``public_key=pk``, the
    same object each time) and call ``pk.public_key.precompute()`` once: the table is then
    built once and used by every client (see :func:`prepare_report`).

    Args:
        base_url: the service's root URL.
        task_id: the task to report to.
        token: this client's token (from :meth:`Admin.register_clients`).
        public_key: pin the task's key: refuse to encrypt under anything else; this very object
            (and its fast-encryption table, if built) is used to encrypt.
        allow_insecure_keys: accept keys below 2048 bits (tests only).
        timeout: seconds per HTTP request.
        transport: an ``httpx`` transport instead of the network.
    """

    def __init__(
        self,
        base_url: str,
        task_id: str,
        token: str,
        *,
        public_key: threshold.ThresholdPublicKey | None = None,
        allow_insecure_keys: bool = False,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, token, timeout=timeout, transport=transport)
        self.task_id = task_id
        self._pinned = public_key
        self._insecure = allow_insecure_keys
        self._info: TaskInfo | None = None

    def info(self) -> TaskInfo:
        """Return the task's key, encoding and length (fetched once, then cached).

        Raises:
            KeyMismatchError: the served key is not the pinned one.
            InvalidInputError: the served key is malformed or (without
                ``allow_insecure_keys``) below 2048 bits.
        """
        if self._info is None:
            out = self._conn.request("GET", task_path(self.task_id), TaskInfoOut)
            info = _task_info(out, insecure=self._insecure)
            if self._pinned is not None:
                if info.public_key != self._pinned:
                    raise KeyMismatchError("the server serves a different key for this task")
                # Encrypt with the pinned object itself, so that its fast-encryption table
                # (built once) serves every client that shares it.
                info = replace(info, public_key=self._pinned)
            self._info = info
        return self._info

    def prepare(
        self,
        values: float | int | Sequence[float | int] | npt.ArrayLike,
        *,
        pool: CryptoPool | None = None,
    ) -> PreparedReport:
        """Encode, range-check and encrypt this client's values; send nothing.

        The only network use is fetching the task's info if this object does not know it yet.
        Which encryption is used is explained in :func:`prepare_report`: with a pinned key
        object (``public_key=``) that holds its table, every report takes the fast path; a
        packed task's vector is packed first, and ``pool`` spreads its encryptions over the
        pool's worker processes.

        Raises:
            InvalidInputError: wrong number of values or a non-number.
            OverflowDetectedError: a value outside the declared range, NaN or infinite.
            KeyMismatchError: the served key is not the pinned one.
            TransportError: the task's info could not be fetched.
        """
        return prepare_report(self.info(), values, pool=pool)

    def upload(self, prepared: PreparedReport) -> None:
        """Upload a report made by :meth:`prepare` (or :func:`prepare_report`) for this task.

        Retrying after a :class:`~smpcloud.errors.TransportError` is safe: if the first
        attempt arrived, the retry raises
        :class:`~smpcloud.protocol.problems.DuplicateSubmissionError`.

        Raises:
            InvalidInputError: not a PreparedReport, or prepared for another task.
            KeyMismatchError: prepared under another key than the task's (when known here).
            DuplicateSubmissionError: this client already reported (the first report stays).
            TaskStateError: the task is closed.
            TransportError: the service could not be reached.
        """
        if not isinstance(prepared, PreparedReport):
            raise InvalidInputError("upload takes a PreparedReport (from Client.prepare)")
        if prepared.task_id != self.task_id:
            raise InvalidInputError("this report was prepared for another task")
        info = self._info
        if info is not None and prepared.key_id != info.public_key.public_key.key_id:
            raise KeyMismatchError("this report is encrypted under another key than the task's")
        self._conn.request(
            "POST",
            task_path(self.task_id, "reports"),
            ReportAcceptedOut,
            json=prepared.request_body(),
            expected=201,
        )

    def submit(
        self,
        values: float | int | Sequence[float | int] | npt.ArrayLike,
        *,
        pool: CryptoPool | None = None,
    ) -> None:
        """Encode, encrypt and upload this client's values (a scalar or ``length`` values).

        Same as ``upload(prepare(values, pool=pool))``. A packed task takes its vector as a
        list or a numpy array. Everything is checked before anything is sent:
        the number of values, their types, and that each lies in the task's declared range.
        Retrying after a :class:`~smpcloud.errors.TransportError` is safe: if the first
        attempt arrived, the retry raises
        :class:`~smpcloud.protocol.problems.DuplicateSubmissionError`.

        Raises:
            InvalidInputError: wrong number of values or a non-number.
            OverflowDetectedError: a value outside the declared range, NaN or infinite.
            DuplicateSubmissionError: this client already reported (the first report stays).
            TaskStateError: the task is closed.
            TransportError: the service could not be reached.
        """
        self.upload(self.prepare(values, pool=pool))

    def status(self) -> TaskStatus:
        """Return the task's state and counters."""
        return _status(self._conn.request("GET", task_path(self.task_id, "status"), TaskStatusOut))

    def result(self) -> TaskResult:
        """Return the released result (see :meth:`Admin.result`)."""
        return _result(self._conn.request("GET", task_path(self.task_id, "result"), ResultOut))


# -------------------------------------------------------------------------------- key holder


class KeyHolder(_Participant):
    """A key holder: partial-decrypts the task's aggregate with its key share, with proofs.

    The key share never leaves this object (and the processes of a pool it is given); the
    server receives c^(2 Δ s_i) per aggregate ciphertext and a zero-knowledge proof that it was
    computed with this holder's share: one proof per ciphertext, or one for the whole batch.

    Args:
        base_url: the service's root URL.
        task_id: the task.
        token: this holder's token (from :meth:`Admin.create_task`).
        key_share: this holder's share from the key ceremony.
        timeout: seconds per HTTP request (default 10 minutes: in the per-ciphertext form the
            server verifies one proof per element before answering, ~40 ms each at 2048 bits).
        transport: an ``httpx`` transport instead of the network.
    """

    def __init__(
        self,
        base_url: str,
        task_id: str,
        token: str,
        key_share: threshold.KeyShare,
        *,
        timeout: float = HOLDER_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not isinstance(key_share, threshold.KeyShare):
            raise InvalidInputError("key_share must be a threshold.KeyShare")
        super().__init__(base_url, token, timeout=timeout, transport=transport)
        self.task_id = task_id
        self._share = key_share

    def __repr__(self) -> str:
        return f"KeyHolder(task_id={self.task_id!r}, index={self._share.index})"

    def contribute(
        self,
        *,
        batch: bool | None = None,
        pool: CryptoPool | None = None,
        workers: int | None = 1,
    ) -> None:
        """Fetch the aggregate, partial-decrypt every ciphertext, prove it, and upload.

        Two forms: a batch (one partial value per ciphertext and ONE proof for all,
        :meth:`~smpcloud.crypto.threshold.KeyShare.partial_decrypt_batch`: about a third of
        the exponentiations, and one proof for the server to check), or one partial
        decryption with its own proof per ciphertext. All key holders of a task use the same
        form (the server fixes it at the first accepted upload).

        Reveals to the server the partial values (what any partial decryption reveals) and
        zero-knowledge proofs; nothing about the key share.

        Args:
            batch: True for a batch, False for one proof per ciphertext; None (default):
                the form the task's key holders already use, else a batch for a packed task
                and one proof per ciphertext otherwise.
            pool: a worker pool for the exponentiations (its processes receive the key share).
            workers: without ``pool``: 1 (default) = this process; None = every CPU; N = N
                processes started for this call only.

        Raises:
            InvalidInputError: both ``pool`` and ``workers`` other than 1, or workers out of
                range.
            KeyMismatchError: the task's key is not the key this share belongs to.
            TaskStateError: the task is still open, or already decrypted.
            InsufficientReportsError: the task closed with too few reports.
            DuplicateSubmissionError: this holder already contributed.
            ConflictError: the other form than the one the task's key holders use.
            MalformedCiphertextError: the server sent an invalid aggregate.
        """
        if pool is not None and workers != 1:
            raise InvalidInputError("give either pool or workers, not both")
        info = _task_info(
            self._conn.request("GET", task_path(self.task_id), TaskInfoOut), insecure=True
        )
        if info.public_key != self._share.public:
            raise KeyMismatchError("this task's key is not the key this share belongs to")
        if batch is None:
            form = info.partials_form
            batch = form == "batch" if form is not None else info.packing is not None
        aggregate = self._conn.request("GET", task_path(self.task_id, "aggregate"), AggregateOut)
        ciphertexts = _aggregate_ciphertexts(aggregate, info)
        if pool is not None:
            body = self._partials(ciphertexts, batch, pool)
        else:
            with CryptoPool(workers) as own:
                body = self._partials(ciphertexts, batch, own)
        self._conn.request(
            "POST",
            task_path(self.task_id, "partials"),
            PartialsAcceptedOut,
            # Only the form used: servers that know no batches refuse unknown fields.
            json=body.model_dump(exclude_none=True),
            expected=201,
        )

    def _partials(self, ciphertexts: list[Ciphertext], batch: bool, pool: CryptoPool) -> PartialsIn:
        """Partially decrypt with proofs on ``pool``: one batch or one object per ciphertext."""
        if batch:
            return PartialsIn(batch=pool.partial_decrypt_batch(self._share, ciphertexts).to_json())
        partials = pool.partial_decrypt_many(self._share, ciphertexts)
        return PartialsIn(partials=[threshold.partial_to_json(p) for p in partials])

    def status(self) -> TaskStatus:
        """Return the task's state and counters."""
        return _status(self._conn.request("GET", task_path(self.task_id, "status"), TaskStatusOut))

    def result(self) -> TaskResult:
        """Return the released result (see :meth:`Admin.result`)."""
        return _result(self._conn.request("GET", task_path(self.task_id, "result"), ResultOut))


def _aggregate_ciphertexts(aggregate: AggregateOut, info: TaskInfo) -> list[Ciphertext]:
    pk: PublicKey = info.public_key.public_key
    if aggregate.key_id != pk.key_id:
        raise KeyMismatchError("the aggregate is under another key")
    if len(aggregate.ciphertexts) != info.ciphertexts:
        raise MalformedCiphertextError(
            f"the aggregate has {len(aggregate.ciphertexts)} ciphertexts; the task has "
            f"{info.ciphertexts}"
        )
    max_bytes = math.ceil(pk.n_squared.bit_length() / 8)
    return [
        Ciphertext(
            pk, decode_int(text, "aggregate", max_bytes=max_bytes, error=MalformedCiphertextError)
        )
        for text in aggregate.ciphertexts
    ]


__all__ = [
    "CLASSIC_ENCRYPTION_MAX",
    "Admin",
    "Client",
    "ClientCredentials",
    "KeyHolder",
    "PreparedReport",
    "TaskCreated",
    "TaskInfo",
    "TaskResult",
    "TaskStatus",
    "prepare_report",
]

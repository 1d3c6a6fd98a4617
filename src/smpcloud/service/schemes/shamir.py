"""The Shamir scheme of the aggregation service: this server is one of n non-colluding servers.

Protocol, what is revealed and the wire form of shares: :mod:`smpcloud.protocol.sharing`. This
server stores each client's share (no key, no key holders), lists who reported to the
administrator, and on close sums exactly the shares of the participant set the administrator
names (once: a second close with another set is refused), then publishes its share of the sum
to the administrator. It never learns the sum or any input. It never closes a Shamir task by
itself: past the deadline it refuses uploads and waits for the administrator's close, since
only the administrator sees every server and can name a participant set they all hold.

Shares arrive sealed to this server's share key (:mod:`smpcloud.protocol.sharing`, "Sealed
shares"): an X25519 key kept in the database (``server_keys``, name ``"shares"``), created on
first use and shared by every process on the database, published in every Shamir task's info
(``share_key``). The server opens each sealed share with the associated data of (task, its
index, the reporting client's number), so a share sealed for another task, server or client
does not open (422 ``sealed-share-not-opened``), and it refuses a plain ``share`` (422
``share-not-sealed``) instead of reading a share that crossed the network in the clear. What
this server sees: its own share of each client (uniformly random), who reported and when. What
a proxy or TLS terminator in front of it sees: sealed shares, their sizes, the tokens and
task ids in the requests. Whoever can read this server's database reads its opening key, and
with it every share sealed to this server (only this server's shares: fewer than t of them
reveal nothing).

Its tables: ``shamir_tasks`` (n, t, this server's index, the field, the participant set once
closed), ``shamir_clients`` (each client's number within its task, the same on every server
when the administrator registers the same counts everywhere) and ``shamir_aggregates`` (this
server's share of the sum).

**Validity checks** (``validity="range"``: GF(2^32 - 5), n = 2t - 1, max_clients U < p). On
upload the server refuses (422 ``invalid-proof``, counted in the task's status) a report with
a bad digest list or plaintext length, and stores its check values and value shares, never the
bits; at close it re-checks the administrator's verdicts and counts the refused reporters. See
:mod:`smpcloud.service.schemes.shamir_checks`, which does it.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import ClassVar, Final, Literal

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from smpcloud.crypto.field import Field
from smpcloud.crypto.sealing import KEY_BYTES, OpeningKey
from smpcloud.crypto.shamir_validity import ValidityLayout
from smpcloud.errors import InvalidInputError
from smpcloud.protocol.checked_shares import (
    check_validated_task,
    validity_layout,
)
from smpcloud.protocol.problems import (
    DuplicateSubmissionError,
    NotFoundError,
    PermissionDeniedError,
    TaskStateError,
    UnsealedShareError,
)
from smpcloud.protocol.schemas import (
    PartialsAcceptedOut,
    PartialsIn,
    ReportAcceptedOut,
    ReportIn,
    ResultOut,
    ShamirAggregateOut,
    ShamirChecksOut,
    TaskCreatedOut,
    TaskIn,
    TaskInfoOut,
)
from smpcloud.protocol.sharing import (
    SHAMIR_FIELD,
    check_shamir_parameters,
    check_sum_range,
    encode_share,
    open_share,
    residues_from_blob,
    residues_to_blob,
    sealed_share_text_chars,
    task_field,
)
from smpcloud.service.db import (
    ClientRow,
    ReportRow,
    ShamirAggregateRow,
    ShamirClientRow,
    ShamirTaskRow,
    TaskRow,
)
from smpcloud.service.meta import TaskMeta, common_fields, past_deadline
from smpcloud.service.schemes.base import (
    CloseReason,
    Scheme,
    SchemeStatus,
    check_deadline,
    check_length,
    new_task_id,
    new_task_row,
)
from smpcloud.service.schemes.shamir_checks import (
    check_close_arguments,
    checked_report,
    checked_total,
    checks_out,
    count_refused,
)
from smpcloud.service.server_keys import server_secret
from smpcloud.service.storage import duplicate_report

logger = logging.getLogger("smpcloud.service")

_AGGREGATE_BATCH: Final = 512
# JSON overhead of a Shamir report besides its sealed share's two texts.
_SHARE_JSON_OVERHEAD: Final = 96
# JSON characters of one entry of a report's share_digests (43 base64url characters, quotes).
_DIGEST_JSON_CHARS: Final = 46


@dataclass(frozen=True, slots=True)
class ShamirMeta(TaskMeta):
    """The immutable part of a Shamir task on this server (server ``server_index`` of ``servers``).

    Attributes:
        servers: n, the number of aggregation servers of the task.
        threshold: t, the number of servers' shares that rebuild the sum.
        server_index: j, this server's x-coordinate.
        field: the field of the shares.
    """

    servers: int
    threshold: int
    server_index: int
    field: Field

    @property
    def layout(self) -> ValidityLayout:
        """The shape of a validated share (``validity == "range"`` tasks only)."""
        return validity_layout(self.length, self.encoding)


def _field_of(moduli_json: str) -> Field:
    moduli = tuple(json.loads(moduli_json))
    known = {f.moduli: f for f in (SHAMIR_FIELD, task_field("range"))}
    return known.get(moduli) or Field(moduli)


def _reporters(task_id: str) -> Select[int]:
    """The numbers of a Shamir task's clients that reported, in increasing order."""
    return (
        select(ShamirClientRow.number)
        .join(ReportRow, ReportRow.client_id == ShamirClientRow.client_id)
        .where(ReportRow.task_id == task_id)
        .order_by(ShamirClientRow.number)
    )


class ShamirScheme(Scheme[ShamirMeta]):
    """Additive aggregation of Shamir shares, this server being one of n (module docstring)."""

    name: ClassVar[Literal["shamir"]] = "shamir"
    closes_at_deadline: ClassVar[bool] = False

    _opening_key: OpeningKey | None = None
    _key_lock: ClassVar[threading.Lock] = threading.Lock()

    def opening_key(self) -> OpeningKey:
        """This server's share key (private half), read from the database once per process.

        Created from the OS CSPRNG the first time any process on the database asks
        (:func:`smpcloud.service.server_keys.server_secret`, name ``"shares"``).
        """
        key = self._opening_key
        if key is None:
            with self._key_lock:
                key = self._opening_key
                if key is None:
                    secret = server_secret(
                        self.context.storage.engine, "shares", lambda: os.urandom(KEY_BYTES)
                    )
                    key = OpeningKey.from_bytes(secret)
                    self._opening_key = key
        return key

    def load_meta(self, session: Session, task: TaskRow) -> ShamirMeta:
        """Read the task's Shamir parameters.

        Raises:
            NotFoundError: the task has no Shamir row.
        """
        shamir = session.get(ShamirTaskRow, task.id)
        if shamir is None:
            raise NotFoundError(f"no Shamir task {task.id!r}")
        return ShamirMeta(
            **common_fields(task),
            servers=shamir.servers,
            threshold=shamir.threshold,
            server_index=shamir.server_index,
            field=_field_of(shamir.moduli_json),
        )

    # ------------------------------------------------------------------ creation

    def create(self, body: TaskIn) -> TaskCreatedOut:
        """Store this server's part of a Shamir task; there are no key holders' tokens.

        A task with validity ``range`` lives in GF(2^32 - 5) (its shares carry the bits and
        masks of the joint check); any other in the residue ring Z_M.

        Raises:
            InvalidInputError: Shamir parameters outside 2 <= t <= n, t > n/2,
                1 <= server_index <= n; a vector too long for the server's limits; a declared
                range that could make sums wrap modulo the field's modulus; a past deadline;
                for validity ``range``: n != 2t - 1, an empty range, or max_clients U >= p.
        """
        settings = self.context.settings
        servers, t, index = body.servers, body.threshold, body.server_index
        if servers is None or t is None or index is None:  # pragma: no cover - TaskIn checks
            raise InvalidInputError("a Shamir task requires servers, threshold and server_index")
        check_shamir_parameters(servers, t, index)
        encoding = body.encoding
        field = task_field(body.validity)
        check_length(settings, body.length)
        if body.validity == "range":
            check_validated_task(servers, t, encoding, body.max_clients)
            elements = validity_layout(body.length, encoding).size
            overhead = _SHARE_JSON_OVERHEAD + servers * _DIGEST_JSON_CHARS
        else:
            check_sum_range(encoding.max_abs_encoded(), body.max_clients, field)
            elements, overhead = body.length, _SHARE_JSON_OVERHEAD
        needed = sealed_share_text_chars(elements, field) + overhead
        if needed > settings.max_body_bytes:
            raise InvalidInputError(
                f"length {body.length}: each client's upload would take about {needed} bytes, "
                f"more than this server's body limit of {settings.max_body_bytes}"
            )
        now = self.context.clock()
        check_deadline(body, now)
        self.opening_key()  # this server's share key exists before any client asks for it
        task_id = new_task_id()
        with self.context.storage.write() as session:
            session.add(new_task_row(task_id, body, self.name, encoding, now))
            session.flush()
            session.add(
                ShamirTaskRow(
                    task_id=task_id,
                    servers=servers,
                    threshold=t,
                    server_index=index,
                    moduli_json=json.dumps(list(field.moduli)),
                    participants_json=None,
                )
            )
        logger.info(
            "created Shamir task %s: server %d of %d, threshold %d, length %d, min_clients %d, "
            "validity %s",
            task_id,
            index,
            servers,
            t,
            body.length,
            body.min_clients,
            body.validity,
        )
        return TaskCreatedOut(task_id=task_id, holder_tokens=[])

    def number_clients(
        self, session: Session, task_id: str, rows: list[ClientRow], registered: int
    ) -> list[int]:
        """Number the new clients within the task (registered + 1, ...), in order.

        Registering the same counts on every server of the task gives each client the same
        number everywhere.
        """
        first = registered + 1
        numbers = list(range(first, first + len(rows)))
        session.add_all(
            ShamirClientRow(client_id=row.id, task_id=task_id, number=number)
            for row, number in zip(rows, numbers, strict=True)
        )
        return numbers

    # ------------------------------------------------------------------ collection

    def accept_report(self, meta: ShamirMeta, client_id: int, body: ReportIn) -> ReportAcceptedOut:
        """Open one client's sealed Shamir share and store the share durably, once.

        Raises:
            InvalidInputError: a Paillier report (key_id and ciphertexts).
            UnsealedShareError: a plain ``share`` (shares must be sealed; nothing is stored).
            SealError: a sealed share that does not open with this server's key for this
                task, this server and this client (sealed to another key, replayed from
                another task, server or client, or changed on the way).
            ShareError: a sealed share whose texts are not canonical base64url, or whose
                content is not a share of the task's field and length.
            InvalidProofError: (validity ``range``) no or malformed share_digests, this
                server's sealed share not hashing to entry j (check ``digest``), or a plaintext
                of the wrong length (check ``length``).
            TaskStateError: the task passed its deadline or is closed.
            DuplicateSubmissionError: this client already reported (named by its number).
        """
        task_id = meta.task_id
        if body.share is not None:
            raise UnsealedShareError(
                f"task {task_id!r} is a Shamir task: shares must be sealed to this server's "
                "share_key (field 'sealed_share', see the task's info); a plain 'share' is "
                "refused, since whatever carried the request could read it"
            )
        if body.sealed_share is None:
            raise InvalidInputError(
                f"task {task_id!r} is a Shamir task: a report carries one sealed share (field "
                "'sealed_share'), not key_id and ciphertexts"
            )
        with self.context.storage.read() as session:
            number = session.scalar(
                select(ShamirClientRow.number).where(ShamirClientRow.client_id == client_id)
            )
        if number is None:  # pragma: no cover - every client of a Shamir task has a number
            raise PermissionDeniedError("this client has no number in the task")
        if meta.validity == "range":
            blob = checked_report(
                self.opening_key(),
                body,
                task_id=task_id,
                servers=meta.servers,
                server_index=meta.server_index,
                number=number,
                layout=meta.layout,
            )
        else:
            if body.share_digests is not None:
                raise InvalidInputError(
                    f"task {task_id!r} has validity 'none': its reports carry no share_digests"
                )
            share = open_share(
                self.opening_key(),
                body.sealed_share.model_dump(),
                task_id=task_id,
                server_index=meta.server_index,
                client=number,
                length=meta.length,
                field=meta.field,
            )
            blob = residues_to_blob(share)
        now = self.context.clock()
        if past_deadline(meta.deadline, now):
            raise TaskStateError(
                f"task {task_id!r} passed its deadline; reports are no longer accepted"
            )
        try:
            self.context.storage.store_report(task_id, client_id, blob, now)
        except DuplicateSubmissionError:
            raise duplicate_report(number) from None  # name the client by its task number
        return ReportAcceptedOut(task_id=task_id, client_id=number, received_at=now)

    def checks(self, meta: ShamirMeta) -> ShamirChecksOut:
        """This server's check values of every reporter, by client number (validated tasks).

        Raises:
            TaskStateError: the task has validity ``none`` (no checks).
        """
        if meta.validity != "range":
            raise TaskStateError(
                f"task {meta.task_id!r} has validity 'none': its reports carry no checks"
            )
        with self.context.storage.read() as session:
            return checks_out(
                session, task_id=meta.task_id, server_index=meta.server_index, layout=meta.layout
            )

    def reporters(self, session: Session, meta: ShamirMeta) -> list[int]:
        """The numbers of the clients that reported here (the administrator intersects these
        lists over the servers to form the participant set)."""
        return list(session.scalars(_reporters(meta.task_id)))

    # ------------------------------------------------------------------ closing

    def close(
        self,
        meta: ShamirMeta,
        clients: list[int] | None,
        reason: CloseReason,
        *,
        refused: list[int] | None = None,
        checks: list[str] | None = None,
    ) -> None:
        """Sum the shares of exactly ``clients`` and publish this server's share of the sum.

        A server closes once: closing again with the same set is a no-op (a retried request),
        with another set is refused, so that no second sum, which would differ from the first
        by one client's value, can be formed (with t > n/2 no t servers can be closed over a
        second set either).

        Validity ``range``: also ``refused`` and every server's ``checks`` of ``clients`` then
        ``refused``, re-checked first (:func:`~smpcloud.service.schemes.shamir_checks.
        checked_total`); the refused reporters are counted under ``invalid-proof``.

        Raises:
            InvalidInputError: no participant set; a client listed twice; fewer than
                min_clients clients; a client whose share this server does not hold;
                ``refused``/``checks`` missing (validity ``range``) or given (``none``), or
                malformed.
            InvalidProofError: (validity ``range``) a participant that fails the joint check, a
                refused reporter that passes it, or check values of this server that differ
                from what it stored (the client is named; nothing is closed).
            TaskStateError: already closed over another participant set.
        """
        task_id = meta.task_id
        check_close_arguments(task_id, meta.validity, refused, checks)
        if clients is None:
            raise InvalidInputError(
                f"task {task_id!r} is a Shamir task: closing it needs the participant set, "
                '{"clients": [client numbers whose share every reachable server holds]}'
            )
        wanted = sorted(set(clients))
        if len(wanted) != len(clients):
            raise InvalidInputError("the participant set lists a client more than once")
        if len(wanted) < meta.min_clients:
            raise InvalidInputError(
                f"the participant set has {len(wanted)} client(s), fewer than this task's "
                f"min_clients of {meta.min_clients}: no sum is formed"
            )
        now = self.context.clock()
        storage = self.context.storage
        with storage.write() as session:
            task = storage.lock_task(session, task_id)
            shamir = session.get(ShamirTaskRow, task_id)
            if shamir is None:  # pragma: no cover - meta says Shamir
                raise NotFoundError(f"no Shamir task {task_id!r}")
            if task.state != "open":
                closed_over = json.loads(shamir.participants_json or "[]")
                if closed_over == wanted:
                    return
                raise TaskStateError(
                    f"task {task_id!r} is already closed over a different participant set "
                    f"({len(closed_over)} clients): a server closes once, so that no second sum "
                    "can be formed"
                )
            held = set(session.scalars(_reporters(task_id)))
            dropped = list(refused or [])
            missing = [number for number in wanted + dropped if number not in held]
            if missing:
                shown = ", ".join(map(str, missing[:10])) + (", ..." if len(missing) > 10 else "")
                raise InvalidInputError(
                    f"{len(missing)} client(s) of the participant set have no report on this "
                    f"server (clients {shown}): list only clients whose share every closed "
                    "server holds"
                )
            started = time.perf_counter()
            members = set(wanted)
            rows = session.execute(
                select(ShamirClientRow.number, ReportRow.ciphertexts)
                .join(ShamirClientRow, ShamirClientRow.client_id == ReportRow.client_id)
                .where(ReportRow.task_id == task_id)
                .execution_options(yield_per=_AGGREGATE_BATCH)
            )
            if meta.validity == "range":
                total = checked_total(
                    rows,
                    field=meta.field,
                    servers=meta.servers,
                    threshold=meta.threshold,
                    server_index=meta.server_index,
                    layout=meta.layout,
                    clients=clients,
                    refused=dropped,
                    checks=checks or [],
                )
                count_refused(session, task_id, len(dropped))
            else:
                total = meta.field.sum(
                    residues_from_blob(blob, length=meta.length, field=meta.field)
                    for number, blob in rows
                    if number in members
                )
            task.state = "closed"
            task.closed_at = now
            task.close_reason = "admin"
            task.report_count = len(wanted)
            shamir.participants_json = json.dumps(wanted)
            session.add(
                ShamirAggregateRow(
                    task_id=task_id,
                    share=residues_to_blob(total),
                    count=len(wanted),
                    computed_at=now,
                )
            )
        logger.info(
            "closed Shamir task %s: summed %d shares x %d elements in %.3f s",
            task_id,
            len(wanted),
            meta.length,
            time.perf_counter() - started,
        )

    # ------------------------------------------------------------------ release

    def aggregate(self, meta: ShamirMeta) -> ShamirAggregateOut:
        """This server's share of the sum with the participant set.

        Raises:
            TaskStateError: the administrator has not closed the task yet.
        """
        task_id = meta.task_id
        with self.context.storage.read() as session:
            task = session.get(TaskRow, task_id)
            row = session.get(ShamirAggregateRow, task_id)
            shamir = session.get(ShamirTaskRow, task_id)
            if task is None or shamir is None:
                raise NotFoundError(f"no task {task_id!r}")
            if task.state == "open" or row is None or shamir.participants_json is None:
                raise TaskStateError(
                    f"task {task_id!r} is still open: this server's share of the sum is "
                    "published when the administrator closes it with the participant set"
                )
        share = residues_from_blob(row.share, length=meta.length, field=meta.field)
        return ShamirAggregateOut(
            scheme="shamir",
            task_id=task_id,
            server_index=meta.server_index,
            servers=meta.servers,
            threshold=meta.threshold,
            count=row.count,
            clients=json.loads(shamir.participants_json),
            share=encode_share(share, meta.field),
        )

    def submit_partials(
        self, meta: ShamirMeta, holder: int, body: PartialsIn
    ) -> PartialsAcceptedOut:
        """Refused: a Shamir task has no key holders.

        Raises:
            TaskStateError: always.
        """
        raise TaskStateError(f"task {meta.task_id!r} is a Shamir task: it has no key holders")

    def result(self, meta: ShamirMeta) -> ResultOut:
        """Refused: no server knows a Shamir task's result.

        Raises:
            TaskStateError: always.
        """
        raise TaskStateError(
            f"task {meta.task_id!r} is a Shamir task: no server knows its result; the analyst "
            "rebuilds the sum from t servers' shares of it "
            "(smpcloud.client.ShamirAggregation.result)"
        )

    # ------------------------------------------------------------------ views

    def info(self, meta: ShamirMeta) -> TaskInfoOut:
        """The Shamir parameters, encoding, length, limits, state and this server's share key
        (the public key clients seal their share to; no holders)."""
        task_id = meta.task_id
        with self.context.storage.read() as session:
            state = session.scalar(select(TaskRow.state).where(TaskRow.id == task_id))
        return TaskInfoOut(
            task_id=task_id,
            name=meta.name,
            state=state,  # type: ignore[arg-type]
            length=meta.length,
            encoding=meta.encoding,
            public_key=None,
            holders=0,
            threshold=meta.threshold,
            min_clients=meta.min_clients,
            max_clients=meta.max_clients,
            deadline=meta.deadline,
            scheme="shamir",
            servers=meta.servers,
            server_index=meta.server_index,
            field=list(meta.field.moduli),
            share_key=self.opening_key().sealing_key.to_text(),
            validity=meta.validity,  # type: ignore[arg-type]
        )

    def status(self, session: Session, meta: ShamirMeta) -> SchemeStatus:
        """t, n and this server's index; no key holders."""
        return SchemeStatus(
            scheme=self.name,
            threshold=meta.threshold,
            holders=0,
            servers=meta.servers,
            server_index=meta.server_index,
        )


__all__ = ["ShamirMeta", "ShamirScheme"]

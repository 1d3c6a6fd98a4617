"""The aggregation service's operations: a thin facade that finds a task's scheme and delegates.

Routes in :mod:`smpcloud.service.app` parse and authenticate, then call :class:`TaskService`,
whose methods are synchronous (they run in FastAPI's worker threads) and raise exceptions from
:mod:`smpcloud.errors` and :mod:`smpcloud.protocol.problems` that the app maps to problem
documents. All arithmetic on ciphertexts and shares goes through :mod:`smpcloud.crypto`.

Where things are:

* :mod:`~smpcloud.service.auth`: tokens, their digests, roles, principals;
* :mod:`~smpcloud.service.meta`: the cached immutable part of each task;
* :mod:`~smpcloud.service.storage`: transactions, the writer turn, the group commit of uploads;
* :mod:`~smpcloud.service.workers`: the worker processes for aggregation and combining;
* :mod:`~smpcloud.service.registration` and :mod:`~smpcloud.service.closing`: client
  registration and deadlines, common to every scheme;
* :mod:`~smpcloud.service.certification`: a Paillier task's key holders' roster and their
  certificates of the task (which clients verify themselves);
* :mod:`~smpcloud.service.schemes`: one module (or package) per aggregation scheme behind one
  interface, with the protocol, what the server learns and the measured figures of each:
  Paillier (:mod:`~smpcloud.service.schemes.paillier`, packed tasks as its variant) and Shamir
  (:mod:`~smpcloud.service.schemes.shamir`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from smpcloud.crypto.signatures import Roster
from smpcloud.errors import InvalidInputError, SmpcError
from smpcloud.protocol.certificates import CertificateAcceptedOut, CertificateIn
from smpcloud.protocol.problems import PermissionDeniedError, TaskStateError, problem_type_for
from smpcloud.protocol.schemas import (
    AggregateOut,
    ClientsIn,
    ClientsOut,
    InclusionProofOut,
    PartialsAcceptedOut,
    PartialsIn,
    ReportAcceptedOut,
    ReportersOut,
    ReportIn,
    ReportLogOut,
    ReportPageOut,
    ResultOut,
    ShamirAggregateOut,
    ShamirChecksOut,
    TaskCreatedOut,
    TaskIn,
    TaskInfoOut,
    TaskListOut,
    TaskStatusOut,
    TaskSummaryOut,
)
from smpcloud.service import metrics
from smpcloud.service.auth import Authenticator, Principal, Role, hash_token
from smpcloud.service.certification import Certification
from smpcloud.service.closing import Deadlines
from smpcloud.service.config import Settings
from smpcloud.service.db import ClientRow, ReportRow, TaskRow, is_sqlite, utcnow
from smpcloud.service.meta import MetaCache, TaskMeta
from smpcloud.service.registration import register_clients
from smpcloud.service.schemes import SCHEMES, Scheme, SchemeContext
from smpcloud.service.schemes.paillier import MAX_PACKED_VALUES, PaillierMeta, PaillierScheme
from smpcloud.service.schemes.shamir import ShamirMeta, ShamirScheme
from smpcloud.service.storage import Storage
from smpcloud.service.workers import Workers


class TaskService:
    """The service's operations over a database engine. Thread-safe; methods are blocking.

    Aggregation and combining run on a :class:`~smpcloud.parallel.CryptoPool`: inline until
    :meth:`start_pool` (the application's lifespan calls it), then on ``settings.workers``
    processes until :meth:`close_pool`.

    Args:
        engine: from :func:`smpcloud.service.db.make_engine`; tables must exist.
        settings: limits, the administrator token and the pool size.
        clock: returns the current aware UTC time (injectable for tests).
    """

    def __init__(
        self, engine: Engine, settings: Settings, *, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._storage = Storage(engine)
        self._workers = Workers(settings.workers, settings.dask_scheduler)
        self._schemes: dict[str, Scheme[Any]] = {}
        self._metas = MetaCache(self._storage, self._load_meta)
        self._deadlines = Deadlines(self._storage, clock, self.meta, self._schemes)
        self._auth = Authenticator(engine, settings.admin_token, self.meta)
        self._certification = Certification(self._storage, clock)
        context = SchemeContext(
            storage=self._storage,
            settings=settings,
            clock=clock,
            workers=self._workers,
            meta=self.meta,
            ensure_deadline=self._deadlines.ensure,
        )
        self._schemes.update({name: build(context) for name, build in SCHEMES.items()})

    # ------------------------------------------------------------------ worker pool

    def start_pool(self) -> None:
        """Create the worker pool (``settings.workers`` processes; they start on first use).

        With ``workers=1`` nothing changes: everything keeps running inline.
        """
        self._workers.start()

    def close_pool(self) -> None:
        """Stop the worker processes (waiting for running work) and go back to inline work."""
        self._workers.close()

    @property
    def reads_in_process(self) -> bool:
        """Whether a read costs no round trip (SQLite, a library in this process): cheap
        enough to do on the event loop. False for a database across a socket (PostgreSQL)."""
        return is_sqlite(self._storage.engine.url)

    @property
    def workers(self) -> int:
        """The number of processes the current pool uses (1: inline)."""
        return self._workers.count

    # ------------------------------------------------------------------ who and what

    def authenticate(
        self, token: str | None, task_id: str | None, allowed: frozenset[Role], action: str
    ) -> Principal:
        """Resolve a bearer token to a principal allowed to do ``action`` on ``task_id``.

        See :meth:`smpcloud.service.auth.Authenticator.authenticate`.

        Raises:
            AuthenticationError: no token.
            NotFoundError: unknown task, for the administrator only.
            PermissionDeniedError: unknown token, another task's token (whether or not the
                task exists: the same answer), or the wrong role.
        """
        return self._auth.authenticate(token, task_id, allowed, action)

    def meta(self, task_id: str) -> TaskMeta:
        """Return the task's immutable metadata (cached), of its scheme's metadata class.

        Raises:
            NotFoundError: unknown task.
        """
        return self._metas.get(task_id)

    def _load_meta(self, session: Session, task: TaskRow) -> TaskMeta:
        meta: TaskMeta = self._scheme(task.scheme).load_meta(session, task)
        return meta

    def _scheme(self, name: str) -> Scheme[Any]:
        scheme = self._schemes.get(name)
        if scheme is None:
            raise InvalidInputError(f"unknown scheme {name!r}")
        return scheme

    def _task(self, task_id: str) -> tuple[TaskMeta, Scheme[Any]]:
        meta = self.meta(task_id)
        return meta, self._scheme(meta.scheme)

    # ------------------------------------------------------------------ admin

    def create_task(self, body: TaskIn) -> TaskCreatedOut:
        """Validate and store a new task of ``body.scheme``; return its id and any tokens.

        A Paillier task returns one token per key holder; a Shamir task has no key and no key
        holders (the list of tokens is empty). A Paillier task's ``roster`` (the key holders'
        verify keys) is kept for :meth:`certify` (:mod:`smpcloud.service.certification`).

        Raises:
            InvalidInputError: what the task's scheme refuses (see its ``create``).
        """
        created = self._scheme(body.scheme).create(body)
        metrics.TASKS_CREATED.labels(body.scheme).inc()
        if body.roster is not None:  # checked by TaskIn against the key's t and n
            self._certification.store_roster(created.task_id, Roster.from_json(body.roster))
        return created

    def register_clients(self, task_id: str, body: ClientsIn) -> ClientsOut:
        """Create ``count`` client credentials; only the tokens' hashes are stored.

        For a Shamir task the returned ids are the clients' numbers within the task (1, 2, ...
        in order of registration): registering the same counts on every server of the task
        gives each client the same number everywhere.

        Raises:
            TaskStateError: the task is not open (or a Shamir task past its deadline), or would
                exceed its max_clients.
        """
        _meta, scheme = self._task(task_id)
        return register_clients(self._storage, self._deadlines, self._clock, scheme, task_id, body)

    def close(
        self,
        task_id: str,
        *,
        reason: Literal["admin", "deadline"] = "admin",
        clients: list[int] | None = None,
        refused: list[int] | None = None,
        checks: list[str] | None = None,
    ) -> None:
        """Close an open task now (idempotent): aggregate and publish, or mark insufficient.

        A Paillier task aggregates every report (on the worker pool, outside the write lock)
        and returns once the aggregate is stored; a Shamir task sums exactly the shares of
        ``clients``, its participant set; a Shamir task with validity ``range`` also takes the
        refused reporters and every server's check values (see
        :meth:`smpcloud.service.schemes.shamir.ShamirScheme.close`).

        Raises:
            InvalidInputError: ``clients`` given for a Paillier task or missing for a Shamir
                task; a participant set that is not acceptable; ``refused`` or ``checks``
                where they do not belong.
            InvalidProofError: a verdict this server's check values contradict.
            TaskStateError: a Shamir task already closed over another participant set.
        """
        meta, scheme = self._task(task_id)
        if refused is None and checks is None:
            scheme.close(meta, clients, reason)
            return
        if not isinstance(scheme, ShamirScheme) or not isinstance(meta, ShamirMeta):
            raise InvalidInputError(
                f"task {task_id!r} is not a Shamir task: closing it takes no refused and no checks"
            )
        scheme.close(meta, clients, reason, refused=refused, checks=checks)

    def checks(self, task_id: str) -> ShamirChecksOut:
        """Return this server's check values of every reporter of a validated Shamir task.

        Raises:
            TaskStateError: not a Shamir task with validity ``range``.
        """
        meta, scheme = self._task(task_id)
        if not isinstance(scheme, ShamirScheme) or not isinstance(meta, ShamirMeta):
            raise TaskStateError(f"task {task_id!r} is not a Shamir task: it has no checks")
        return scheme.checks(meta)

    def reporters(self, task_id: str) -> ReportersOut:
        """Return the clients whose report this server holds, in increasing order.

        Client numbers for a Shamir task (the administrator intersects these lists over the
        servers to form the participant set); client ids for a Paillier task.
        """
        self._deadlines.ensure(task_id)
        meta, scheme = self._task(task_id)
        with self._storage.read() as session:
            clients = scheme.reporters(session, meta)
        return ReportersOut(task_id=task_id, count=len(clients), clients=clients)

    def close_due_tasks(self) -> int:
        """Close every open task whose deadline has passed; return how many were closed.

        Then aggregate every closed Paillier task that has no aggregate yet (just closed here
        or lazily by a request, or left so by a crash between closing and storing the
        aggregate), unless another thread is already at it. Shamir tasks are left open.
        """
        return self._deadlines.close_due_tasks()

    # ------------------------------------------------------------------ views

    def list_tasks(self, limit: int) -> TaskListOut:
        """Return up to ``limit`` tasks, newest first, with their state and report counts.

        States are as stored: a task whose deadline passed a moment ago may still show
        ``open`` until the deadline loop (or a request about it) closes it.

        Args:
            limit: the most tasks to return (the route bounds it).

        Returns:
            The page and the total number of tasks.
        """
        with self._storage.read() as session:
            total = session.scalar(select(func.count()).select_from(TaskRow)) or 0
            rows = list(
                session.scalars(
                    select(TaskRow).order_by(TaskRow.created_at.desc(), TaskRow.id).limit(limit)
                )
            )
            ids = [row.id for row in rows]
            reports = self._count_by_task(session, ReportRow.task_id, ids)
            clients = self._count_by_task(session, ClientRow.task_id, ids)
        return TaskListOut(
            tasks=[
                TaskSummaryOut(
                    task_id=row.id,
                    name=row.name,
                    scheme=row.scheme,  # type: ignore[arg-type]
                    state=row.state,  # type: ignore[arg-type]
                    reports=reports.get(row.id, 0),
                    registered_clients=clients.get(row.id, 0),
                    min_clients=row.min_clients,
                    max_clients=row.max_clients,
                    created_at=row.created_at,
                    closed_at=row.closed_at,
                    deadline=row.deadline,
                )
                for row in rows
            ],
            total=total,
            limit=limit,
        )

    @staticmethod
    def _count_by_task(session: Session, column: Any, task_ids: list[str]) -> dict[str, int]:
        if not task_ids:
            return {}
        counted = session.execute(
            select(column, func.count()).where(column.in_(task_ids)).group_by(column)
        )
        return {task_id: count for task_id, count in counted.tuples()}

    def info(self, task_id: str) -> TaskInfoOut:
        """Return what participants need: key (or Shamir parameters), encoding, length, limits.

        A Paillier task's info also carries its roster (or None) and the key holders'
        certificates (:mod:`smpcloud.service.certification`).
        """
        self._deadlines.ensure(task_id)
        meta, scheme = self._task(task_id)
        info = scheme.info(meta)
        if meta.scheme != "paillier":
            return info
        return self._certification.with_certificates(info)

    def status(self, task_id: str, principal: Principal | None = None) -> TaskStatusOut:
        """Return the task's state and progress counters.

        Args:
            task_id: the task.
            principal: who asks; for a client, ``reported`` says whether its report is here.

        Raises:
            NotFoundError: unknown task.
        """
        self._deadlines.ensure(task_id)
        meta, scheme = self._task(task_id)
        reported: bool | None = None
        with self._storage.read() as session:
            task = self._storage.read_task(session, task_id)
            reports = session.scalar(
                select(func.count()).select_from(ReportRow).where(ReportRow.task_id == task_id)
            )
            clients = session.scalar(
                select(func.count()).select_from(ClientRow).where(ClientRow.task_id == task_id)
            )
            own = scheme.status(session, meta)
            certified_by = self._certification.certified_by(session, task_id)
            refused = self._storage.refusals(session, task_id)
            if principal is not None and principal.client_id is not None:
                reported = (
                    session.scalar(
                        select(ReportRow.id).where(
                            ReportRow.task_id == task_id,
                            ReportRow.client_id == principal.client_id,
                        )
                    )
                    is not None
                )
        return TaskStatusOut(
            task_id=task_id,
            state=task.state,  # type: ignore[arg-type]
            reports=reports or 0,
            registered_clients=clients or 0,
            min_clients=task.min_clients,
            max_clients=task.max_clients,
            partials_received=own.partials_received,
            threshold=own.threshold,
            holders=own.holders,
            deadline=task.deadline,
            created_at=task.created_at,
            closed_at=task.closed_at,
            close_reason=task.close_reason,  # type: ignore[arg-type]
            scheme=own.scheme,
            servers=own.servers,
            server_index=own.server_index,
            reported=reported,
            partials_form=own.partials_form,
            certified_by=certified_by,
            refused=refused,
        )

    # ------------------------------------------------------------------ clients

    def submit_report(
        self, task_id: str, principal: Principal, body: ReportIn
    ) -> ReportAcceptedOut:
        """Validate a client's report (ciphertexts or Shamir share) and store it durably, once.

        A task with validity ``range`` verifies the report's validity proof first (the scheme
        raises :class:`~smpcloud.errors.InvalidProofError`); every refusal is counted by its
        problem type in the task's status.

        Raises:
            KeyMismatchError: the report names another key.
            InvalidInputError: wrong number of ciphertexts; a report of the other scheme.
            MalformedCiphertextError: a ciphertext that is not canonical base64url, or not in
                [1, n^2), or not coprime to n (the message names the element).
            ShareError: a Shamir share that is not canonical base64url, not of the task's
                field or length, or holds a residue not below its prime.
            TaskStateError: the task is closed (by the admin or its deadline).
            DuplicateSubmissionError: this client already reported; the first report is kept.
        """
        meta, scheme = self._task(task_id)
        client_id = principal.client_id
        if client_id is None:  # pragma: no cover - guaranteed by authenticate(CLIENT)
            raise PermissionDeniedError("only clients upload reports")
        try:
            accepted = scheme.accept_report(meta, client_id, body)
        except SmpcError as exc:
            self._storage.count_refusal(task_id, problem_type_for(exc).slug)
            metrics.UPLOADS_REFUSED.labels(problem_type_for(exc).slug).inc()
            raise
        metrics.UPLOADS_ACCEPTED.labels(meta.scheme).inc()
        return accepted

    # ------------------------------------------------------------------ key holders

    def aggregate(self, task_id: str) -> AggregateOut | ShamirAggregateOut:
        """Return the published aggregate ciphertexts and the count (Paillier), or this
        server's share of the sum with the participant set (Shamir).

        A closed Paillier task whose aggregate is not stored yet gets it now (or once the
        thread computing it is done).

        Raises:
            TaskStateError: the task is still open.
            InsufficientReportsError: the task closed with too few reports.
        """
        self._deadlines.ensure(task_id)
        meta, scheme = self._task(task_id)
        return scheme.aggregate(meta)

    def submit_partials(
        self, task_id: str, principal: Principal, body: PartialsIn
    ) -> PartialsAcceptedOut:
        """Verify a key holder's partial decryptions; with t valid ones, decrypt the result.

        See :meth:`smpcloud.service.schemes.paillier.decryption.PaillierDecryption.submit_partials`.

        Raises:
            TaskStateError: a Shamir task (no key holders); the task is open, already
                decrypted or withheld.
            InsufficientReportsError: the task closed with too few reports.
            DuplicateSubmissionError: this holder already contributed.
            ConflictError: the other form than the task's first accepted upload.
            InvalidInputError: wrong number of partials, malformed objects, or a holder index
                other than the token's.
            InvalidPartialDecryptionError: a proof failed (names the holder).
            OverflowDetectedError: a packed task's combined sums leave the layout's bounds
                (a forged report on a ``none`` task; never a client's doing on a ``range``
                task, whose reports are all proven in range).
        """
        holder = principal.holder_index
        if holder is None:  # pragma: no cover - guaranteed by authenticate(HOLDER)
            raise PermissionDeniedError("only key holders upload partial decryptions")
        meta, scheme = self._task(task_id)
        try:
            accepted = scheme.submit_partials(meta, holder, body)
        except SmpcError as exc:
            metrics.PARTIALS_REFUSED.labels(problem_type_for(exc).slug).inc()
            raise
        metrics.PARTIALS_ACCEPTED.inc()
        return accepted

    def certify(
        self, task_id: str, principal: Principal, body: CertificateIn
    ) -> CertificateAcceptedOut:
        """Check a key holder's certificate of the task against its roster, and keep it.

        See :meth:`smpcloud.service.certification.Certification.accept`.

        Raises:
            NoRosterError: the task was created without a roster (or is a Shamir task).
            InvalidCertificateError: the signature does not verify under the holder's key.
            TaskStateError: the task is no longer open.
            DuplicateSubmissionError: this holder certified the task with another signature.
        """
        holder = principal.holder_index
        if holder is None:  # pragma: no cover - guaranteed by authenticate(HOLDER)
            raise PermissionDeniedError("only key holders certify tasks")
        return self._certification.accept(self.info(task_id), holder, body.signature)

    # ------------------------------------------------------------------ the report log

    def _paillier(self, task_id: str) -> tuple[PaillierMeta, PaillierScheme]:
        self._deadlines.ensure(task_id)
        meta, scheme = self._task(task_id)
        if not isinstance(scheme, PaillierScheme) or not isinstance(meta, PaillierMeta):
            raise TaskStateError(
                f"task {task_id!r} is a {meta.scheme} task: only Paillier tasks keep a report log"
            )
        return meta, scheme

    def report_log(self, task_id: str, *, leaves: bool = True) -> ReportLogOut:
        """Return the signed report log of a closed Paillier task (root, count, leaves).

        Raises:
            TaskStateError: a Shamir task; still open; closed before logs existed.
            InsufficientReportsError: closed with too few reports.
        """
        meta, scheme = self._paillier(task_id)
        return scheme.report_log(meta, leaves=leaves)

    def report_page(self, task_id: str, offset: int, limit: int | None) -> ReportPageOut:
        """Return a page of a closed Paillier task's logged reports, in log order.

        Raises:
            TaskStateError: a Shamir task; still open; closed before logs existed.
            InsufficientReportsError: closed with too few reports.
        """
        meta, scheme = self._paillier(task_id)
        return scheme.report_page(meta, offset, limit)

    def log_proof(self, task_id: str, leaf: str) -> InclusionProofOut:
        """Return the inclusion proof of ``leaf`` in a closed Paillier task's published log.

        Raises:
            InvalidInputError: a leaf that is not 64 hex digits.
            NotFoundError: no such leaf in the log.
            TaskStateError: a Shamir task; still open; closed before logs existed.
            InsufficientReportsError: closed with too few reports.
        """
        meta, scheme = self._paillier(task_id)
        return scheme.log_proof(meta, leaf)

    # ------------------------------------------------------------------ result

    def result(self, task_id: str) -> ResultOut:
        """Return the released sum, count and average per element.

        Raises:
            TaskStateError: still open; a Shamir task (no server knows its result); or a
                packed task whose result is withheld.
            InsufficientReportsError: closed with too few reports (never any result).
            ThresholdNotMetError: closed, but fewer than t partial decryptions so far.
        """
        self._deadlines.ensure(task_id)
        meta, scheme = self._task(task_id)
        return scheme.result(meta)


# Names this module exported before the schemes had modules of their own (TaskMeta is now the
# metadata every scheme shares; a Paillier task's is PaillierMeta).
__all__ = [
    "MAX_PACKED_VALUES",
    "PaillierMeta",
    "Principal",
    "ShamirMeta",
    "TaskMeta",
    "TaskService",
    "hash_token",
]

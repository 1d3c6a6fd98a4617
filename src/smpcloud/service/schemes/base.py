"""The one interface every aggregation scheme of the service implements, and what it gets.

A scheme (:class:`Scheme`) owns everything that depends on how clients protect their values:
its task parameters and its tables, the checks at creation, what a report is, what closing
does, what the aggregate is, and what (if anything) the server releases afterwards. The facade
(:class:`smpcloud.service.tasks.TaskService`) authenticates, finds a task's scheme from its
metadata and delegates; what every scheme shares (the ``tasks`` row, clients, the group commit
of reports, deadlines) stays outside the schemes.

A scheme gets a :class:`SchemeContext`: storage, settings, clock, worker pool, the metadata
cache and the lazy deadline check.
"""

from __future__ import annotations

import secrets
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar, Generic, Literal, TypeVar

from sqlalchemy.orm import Session

from smpcloud.errors import InvalidInputError
from smpcloud.protocol.schemas import (
    AggregateOut,
    PartialsAcceptedOut,
    PartialsForm,
    PartialsIn,
    ReportAcceptedOut,
    ReportIn,
    ResultOut,
    ShamirAggregateOut,
    TaskCreatedOut,
    TaskEncoding,
    TaskIn,
    TaskInfoOut,
)
from smpcloud.protocol.schemas import Scheme as SchemeName
from smpcloud.service.config import Settings
from smpcloud.service.db import ClientRow, TaskRow
from smpcloud.service.meta import TaskMeta
from smpcloud.service.storage import Storage
from smpcloud.service.workers import Workers

M = TypeVar("M", bound=TaskMeta)

CloseReason = Literal["admin", "deadline"]


@dataclass(frozen=True, slots=True)
class SchemeContext:
    """What the service hands every scheme.

    Attributes:
        storage: sessions, transactions and the group commit of reports.
        settings: the service's settings (limits, insecure keys).
        clock: the current aware UTC time.
        workers: the worker pool for heavy arithmetic.
        meta: a task's cached metadata (raises NotFoundError).
        ensure_deadline: closes a task lazily if its scheme closes at deadlines and it is due.
    """

    storage: Storage
    settings: Settings
    clock: Callable[[], datetime]
    workers: Workers
    meta: Callable[[str], TaskMeta]
    ensure_deadline: Callable[[str], None]


@dataclass(frozen=True, slots=True)
class SchemeStatus:
    """A scheme's part of a task's status (:class:`~smpcloud.protocol.schemas.TaskStatusOut`)."""

    scheme: SchemeName
    threshold: int
    holders: int
    partials_received: int = 0
    partials_form: PartialsForm | None = None
    servers: int | None = None
    server_index: int | None = None


def new_task_id() -> str:
    """A fresh random task id (96 bits, base64url)."""
    return secrets.token_urlsafe(12)


def check_length(settings: Settings, length: int) -> None:
    """Refuse more ciphertexts (or shared values) per report than the server's limit.

    Raises:
        InvalidInputError: ``length`` above ``settings.max_vector_length``.
    """
    limit = settings.max_vector_length
    if length > limit:
        raise InvalidInputError(
            f"length {length} exceeds this server's limit of {limit} ciphertexts per "
            "report (one per value; packing puts many values in one ciphertext)"
        )


def check_deadline(body: TaskIn, now: datetime) -> None:
    """Refuse a deadline that is not in the future.

    Raises:
        InvalidInputError: ``body.deadline`` at or before ``now``.
    """
    if body.deadline is not None and body.deadline <= now:
        raise InvalidInputError("deadline is not in the future")


def new_task_row(
    task_id: str, body: TaskIn, scheme: SchemeName, encoding: TaskEncoding, now: datetime
) -> TaskRow:
    """The common row of a new, open task (add it to the session and flush before the rest)."""
    return TaskRow(
        id=task_id,
        name=body.name,
        scheme=scheme,
        length=body.length,
        encoding_json=encoding.model_dump_json(),
        min_clients=body.min_clients,
        max_clients=body.max_clients,
        deadline=body.deadline,
        state="open",
        created_at=now,
        validity=body.validity,
    )


class Scheme(ABC, Generic[M]):
    """An aggregation scheme of the service (one instance per service, thread-safe).

    Subclasses set :attr:`name` (the ``scheme`` of :class:`~smpcloud.protocol.schemas.TaskIn`)
    and :attr:`closes_at_deadline`, and are registered in :data:`smpcloud.service.schemes.SCHEMES`.
    Every method that takes ``meta`` receives metadata this scheme's :meth:`load_meta` built.

    Args:
        context: what the service hands the scheme.
    """

    name: ClassVar[SchemeName]
    #: Whether the server closes an open task by itself once its deadline passed (else uploads
    #: are refused past the deadline and the task waits for the administrator's close).
    closes_at_deadline: ClassVar[bool]

    def __init__(self, context: SchemeContext) -> None:
        self.context = context

    # ------------------------------------------------------------------ setup

    @abstractmethod
    def load_meta(self, session: Session, task: TaskRow) -> M:
        """Build the task's metadata from its row and this scheme's tables (read session)."""

    @abstractmethod
    def create(self, body: TaskIn) -> TaskCreatedOut:
        """Validate and store a new task of this scheme; return its id and any tokens.

        Raises:
            InvalidInputError: parameters this scheme or this server refuses.
        """

    @abstractmethod
    def number_clients(
        self, session: Session, task_id: str, rows: list[ClientRow], registered: int
    ) -> list[int]:
        """Inside the registration's write transaction: the ids shown to new clients.

        Args:
            session: the write session (``rows`` are flushed: they have their row ids).
            task_id: the task.
            rows: the new clients' rows, in order.
            registered: how many clients the task had before.

        Returns:
            One id per row, as the clients will name themselves.
        """

    # ------------------------------------------------------------------ collection

    @abstractmethod
    def accept_report(self, meta: M, client_id: int, body: ReportIn) -> ReportAcceptedOut:
        """Validate a client's report and store it durably, once (group commit).

        Raises:
            InvalidInputError: a report this task cannot take (a subclass names the problem).
            TaskStateError: the task no longer takes reports.
            DuplicateSubmissionError: this client already reported; the first report is kept.
        """

    @abstractmethod
    def reporters(self, session: Session, meta: M) -> list[int]:
        """The clients whose report this server holds, in increasing order (read session)."""

    # ------------------------------------------------------------------ closing

    @abstractmethod
    def close(self, meta: M, clients: list[int] | None, reason: CloseReason) -> None:
        """Close the task now (idempotent) and form its aggregate.

        Args:
            meta: the task.
            clients: the participant set the administrator names, for schemes that need one.
            reason: who closes it.

        Raises:
            InvalidInputError: ``clients`` given where unused, or missing or unacceptable
                where needed.
            TaskStateError: a close this task refuses.
        """

    def close_locked(
        self, session: Session, task: TaskRow, now: datetime, reason: CloseReason
    ) -> None:
        """Inside a write transaction: close an open task at its deadline.

        Called only if :attr:`closes_at_deadline`; the default refuses.
        """
        raise NotImplementedError(f"the {self.name} scheme does not close tasks by itself")

    def catch_up(self) -> None:
        """After the deadline sweep: finish what closed tasks still lack (default: nothing)."""

    # ------------------------------------------------------------------ release

    @abstractmethod
    def aggregate(self, meta: M) -> AggregateOut | ShamirAggregateOut:
        """The published aggregate of a closed task.

        Raises:
            TaskStateError: the task is still open.
        """

    @abstractmethod
    def submit_partials(self, meta: M, holder: int, body: PartialsIn) -> PartialsAcceptedOut:
        """Take a key holder's partial decryptions (schemes without key holders refuse).

        Raises:
            TaskStateError: the task has no key holders or is not in a state to take them.
        """

    @abstractmethod
    def result(self, meta: M) -> ResultOut:
        """The released result (schemes whose server never learns it refuse).

        Raises:
            TaskStateError: no result here or not yet.
        """

    # ------------------------------------------------------------------ views

    @abstractmethod
    def info(self, meta: M) -> TaskInfoOut:
        """What participants need: key or parameters, encoding, length, limits, state."""

    @abstractmethod
    def status(self, session: Session, meta: M) -> SchemeStatus:
        """This scheme's part of the task's status (read session)."""


__all__ = [
    "CloseReason",
    "Scheme",
    "SchemeContext",
    "SchemeStatus",
    "check_deadline",
    "check_length",
    "new_task_id",
    "new_task_row",
]

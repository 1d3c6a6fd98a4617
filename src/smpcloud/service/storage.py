"""Transactions of the aggregation service and the group commit of uploads.

:class:`Storage` opens read sessions and write sessions over the engine. SQLite has one writer
at a time; queueing this process's writers on a lock (:meth:`Storage.writer_turn`) instead of
in SQLite's busy handler (which sleeps and polls) keeps latency low. Other processes still wait
on the busy timeout. Write transactions begin with ``BEGIN IMMEDIATE`` on SQLite
(:func:`smpcloud.service.db.write_engine`).

**Group commit of uploads** (:meth:`Storage.store_report`). An upload is one INSERT, so uploads
never contend for a shared row. One upload at a time leads: it takes the write turn and commits,
in one transaction, every report waiting at that moment, hands the lead to the oldest report
that arrived meanwhile, and wakes the uploads of its batch. The other uploads never touch the write
turn: each sleeps on an event of its own until its report is committed or the lead is handed to
it, so a commit of k reports costs one pass through the write turn, not k (before, every waiting
upload queued on the write turn only to find its report done: a chain of k lock hand-offs, each
needing the interpreter lock that the busy event loop holds, and the next commit waited behind
them; ``benchmarks/bench_load.py`` measures uploads per second against concurrent connections).

One statement checks the task states, one finds the clients that already reported, one
multi-row INSERT stores the rest; the statements are built once (through SQLAlchemy Core with
a prebuilt statement, with no ORM session, a group of reports is checked and stored with three
statements instead of three per report). Every upload returns only after the transaction holding its
report has committed (``synchronous=FULL`` on SQLite), so an acknowledged report survives a
crash; one fsync serves many uploads. The group commit does not look inside a report: each
scheme encodes its own (see :mod:`smpcloud.service.db`).

**Several writers (PostgreSQL: stateless server processes on one database).** The service's
write transactions (:meth:`Storage.write`: registering, closing, counting refusals, storing
aggregates, partial decryptions, certificates) read, decide and write, as SQLite's single
writer allowed. On PostgreSQL each takes a transaction-scoped advisory lock
(``pg_advisory_xact_lock``, :data:`WRITE_LOCK_KEY`) before its first statement: one such
transaction at a time across every process, each seeing what the previous one committed
(READ COMMITTED: every statement reads the latest commits), so two processes never both
insert the first refusal counter of a reason or a task's aggregate. Uploads do not take it: the
group commit holds ``FOR SHARE`` on its tasks' rows (a close, ``FOR UPDATE``, waits for the
uploads in flight, and uploads after it see the task closed), and ``UNIQUE(task_id,
client_id)`` decides between copies of one client's report racing through two processes (the
loser's batch is retried report by report); rows are inserted in (task, client) order, so two
batches never wait for each other's rows in opposite orders (a deadlock).

Several server processes on one database (``smpcloud serve --processes N``, or processes on
several machines sharing PostgreSQL): each process leads its own group commit. A report is
stored at most once whichever process receives it (UNIQUE(task_id, client_id), and the
savepoint retry above for a duplicate racing through another process: one 201, one 409); the
task row's shared lock taken with the batch orders uploads against a close in any process.

Durability: every write transaction commits (with ``synchronous=FULL`` on SQLite) before the
method returns, so a 201 means the upload survives a crash of the server process.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from sqlalchemy import Connection, Engine, bindparam, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from smpcloud.protocol.problems import DuplicateSubmissionError, NotFoundError, TaskStateError
from smpcloud.service import metrics
from smpcloud.service.db import RefusedReportRow, ReportRow, TaskRow, is_sqlite, write_engine

_TASK_STATES: Final = (
    select(TaskRow.id, TaskRow.state)
    .where(TaskRow.id.in_(bindparam("task_ids", expanding=True)))
    .with_for_update(read=True)
)
_REPORTED_CLIENTS: Final = select(ReportRow.task_id, ReportRow.client_id).where(
    ReportRow.task_id.in_(bindparam("task_ids", expanding=True)),
    ReportRow.client_id.in_(bindparam("client_ids", expanding=True)),
)
_INSERT_REPORT: Final = insert(ReportRow)
#: PostgreSQL's advisory lock key of :meth:`Storage.write` transactions (any constant: "smpw").
WRITE_LOCK_KEY: Final = 0x736D7077
_TAKE_WRITE_LOCK: Final = text("SELECT pg_advisory_xact_lock(:key)").bindparams(key=WRITE_LOCK_KEY)

_COUNT_REFUSAL: Final = (
    update(RefusedReportRow)
    .where(
        RefusedReportRow.task_id == bindparam("task"),
        RefusedReportRow.reason == bindparam("why"),
    )
    .values(count=RefusedReportRow.count + 1)
)


def duplicate_report(client_id: int) -> DuplicateSubmissionError:
    """The error for a client's second report (``client_id`` as the client knows itself)."""
    return DuplicateSubmissionError(
        f"client {client_id} has already submitted its report; the first report is kept"
    )


@dataclass(slots=True)
class _PendingReport:
    """A report waiting for the group commit, and its outcome once committed.

    ``wake`` is set once, either when the report's transaction has ended (``done``) or when
    the lead of the group commit is handed to its upload (``done`` still False).
    """

    task_id: str
    client_id: int
    blob: bytes = field(repr=False)
    now: datetime
    wake: threading.Event = field(default_factory=threading.Event)
    done: bool = False
    error: BaseException | None = None


class Storage:
    """Sessions and transactions over the service's engine. Thread-safe.

    Args:
        engine: from :func:`smpcloud.service.db.make_engine`; tables must exist.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.writer = write_engine(engine)
        self._write_lock: threading.Lock | None = (
            threading.Lock() if is_sqlite(engine.url) else None
        )
        self._advisory_lock = engine.dialect.name == "postgresql"
        # Reports waiting to be committed, and whether an upload leads the group commit (see
        # store_report); both guarded by _pending_lock.
        self._pending_reports: list[_PendingReport] = []
        self._pending_lock = threading.Lock()
        self._leading = False

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session in a read transaction (never waits for writers in WAL mode)."""
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A session in a write transaction, in this process's writer turn; commits on exit.

        One at a time across processes too: SQLite's ``BEGIN IMMEDIATE``, PostgreSQL's
        advisory lock (module docstring).
        """
        with self.writer_turn(), self._write_unlocked() as session:
            yield session

    def writer_turn(self) -> AbstractContextManager[object]:
        """This process's turn to write (SQLite: one writer at a time; others: no wait)."""
        return self._write_lock or nullcontext()

    @contextmanager
    def _write_unlocked(self) -> Iterator[Session]:
        with Session(self.writer, expire_on_commit=False) as session, session.begin():
            if self._advisory_lock:
                session.execute(_TAKE_WRITE_LOCK)
            yield session

    def count_refusal(self, task_id: str, reason: str) -> None:
        """Count one refused upload of ``task_id`` under ``reason`` (a problem type's slug).

        Its own short write transaction: the refused report itself is never stored. Safe with
        several server processes on one database: an UPDATE adds one to an existing counter
        (the row lock orders the increments); the first refusal of a reason inserts the row in
        a savepoint, and if another process inserted it meanwhile (UNIQUE on task and reason,
        possible on PostgreSQL) the savepoint is rolled back and the UPDATE done instead, so
        no refusal is lost and none is counted twice.
        """
        with self.write() as session:
            counted = session.connection().execute(_COUNT_REFUSAL, {"task": task_id, "why": reason})
            if counted.rowcount:
                return
            try:
                with session.begin_nested():
                    session.add(RefusedReportRow(task_id=task_id, reason=reason, count=1))
            except IntegrityError:  # another process counted the first one meanwhile
                session.connection().execute(_COUNT_REFUSAL, {"task": task_id, "why": reason})

    @staticmethod
    def refusals(session: Session, task_id: str) -> dict[str, int]:
        """The refused uploads of ``task_id`` by reason, reasons in alphabetical order."""
        rows = session.scalars(
            select(RefusedReportRow)
            .where(RefusedReportRow.task_id == task_id)
            .order_by(RefusedReportRow.reason)
        )
        return {row.reason: row.count for row in rows}

    @staticmethod
    def lock_task(session: Session, task_id: str) -> TaskRow:
        """Load a task row inside a write transaction, locking it (FOR UPDATE) where supported.

        Raises:
            NotFoundError: unknown task.
        """
        query = select(TaskRow).where(TaskRow.id == task_id).with_for_update()
        task = session.scalars(query).one_or_none()
        if task is None:
            raise NotFoundError(f"no task {task_id!r}")
        return task

    @staticmethod
    def read_task(session: Session, task_id: str) -> TaskRow:
        """Load a task row in any session.

        Raises:
            NotFoundError: unknown task.
        """
        task = session.get(TaskRow, task_id)
        if task is None:
            raise NotFoundError(f"no task {task_id!r}")
        return task

    # ------------------------------------------------------------------ group commit

    def store_report(self, task_id: str, client_id: int, blob: bytes, now: datetime) -> None:
        """Store a client's report durably, once, while the task is open.

        Group commit (see the module docstring): each report of a group fails alone (a
        duplicate, a closed task); every upload returns after its transaction committed.

        Args:
            task_id: the task.
            client_id: the client's row id.
            blob: the report as the task's scheme stores it.
            now: the upload's time.

        Raises:
            TaskStateError: the task is no longer open.
            DuplicateSubmissionError: this client already reported (the first report is kept).
        """
        item = _PendingReport(task_id, client_id, blob, now)
        with self._pending_lock:
            self._pending_reports.append(item)
            follow = self._leading
            self._leading = True
        if follow:
            item.wake.wait()  # committed, or the lead was handed to this upload
        if not item.done:
            self._lead()
        if item.error is not None:
            raise item.error

    def _lead(self) -> None:
        """Commit every waiting report (the leader's among them), then hand the lead on.

        Only the leader removes reports from the queue, and it leads while its own report is
        queued, so the batch it takes (once it has the write turn, so that the batch is as
        large as it can be) holds its report. The lead goes to the oldest report that arrived
        meanwhile (its upload is woken with ``done`` still False) before the uploads of the
        batch are woken, so that the next commit does not wait behind their wake-ups; with
        nothing waiting, the lead lapses.
        """
        batch: list[_PendingReport] = []
        try:
            with self.writer_turn():
                with self._pending_lock:
                    batch, self._pending_reports = self._pending_reports, []
                metrics.GROUP_COMMIT_BATCH.observe(len(batch))
                with metrics.GROUP_COMMIT_DURATION.time():
                    self._commit_reports(batch)
        finally:
            with self._pending_lock:
                if self._pending_reports:
                    self._pending_reports[0].wake.set()
                else:
                    self._leading = False
            for item in batch:
                item.done = True
                item.wake.set()

    def _commit_reports(self, batch: list[_PendingReport]) -> None:
        """Insert a batch of reports in one transaction; record each report's error, if any.

        One statement checks the task states, one finds the clients that already reported,
        one multi-row INSERT stores the rest (a repeat inside the batch fails like any
        duplicate: the first kept). If the INSERT still violates UNIQUE(task_id, client_id),
        possible only when another process writes the same database at the same time
        (PostgreSQL; on SQLite BEGIN IMMEDIATE excludes it), the transaction is retried with
        one savepoint per report, so that each duplicate fails alone.
        """
        try:
            try:
                with self.writer.begin() as conn:
                    self._insert_reports(conn, batch, savepoints=False)
            except IntegrityError:
                for item in batch:
                    item.error = None
                with self.writer.begin() as conn:
                    self._insert_reports(conn, batch, savepoints=True)
        except Exception as exc:  # the transaction failed: no report of the batch is stored
            for item in batch:
                item.error = item.error or exc
            raise

    @staticmethod
    def _insert_reports(conn: Connection, batch: list[_PendingReport], *, savepoints: bool) -> None:
        """Store the batch's acceptable reports on ``conn`` and set the others' errors."""
        task_ids = sorted({item.task_id for item in batch})
        # A shared lock on the task rows: uploads proceed together, close() (exclusive)
        # waits for them.
        states = {
            task_id: state for task_id, state in conn.execute(_TASK_STATES, {"task_ids": task_ids})
        }
        client_ids = sorted({item.client_id for item in batch})
        reported = {
            (task_id, client_id)
            for task_id, client_id in conn.execute(
                _REPORTED_CLIENTS, {"task_ids": task_ids, "client_ids": client_ids}
            )
        }
        rows: list[dict[str, object]] = []
        # In (task, client) order: two batches racing in two processes lock rows in one order.
        batch = sorted(batch, key=lambda item: (item.task_id, item.client_id))
        for item in batch:
            state = states.get(item.task_id)
            if state != "open":
                item.error = TaskStateError(
                    f"task {item.task_id!r} is {state}; reports are no longer accepted"
                )
            elif (item.task_id, item.client_id) in reported:
                item.error = duplicate_report(item.client_id)
            else:
                reported.add((item.task_id, item.client_id))
                rows.append(
                    {
                        "task_id": item.task_id,
                        "client_id": item.client_id,
                        "ciphertexts": item.blob,
                        "received_at": item.now,
                    }
                )
        if not rows:
            return
        if not savepoints:
            conn.execute(_INSERT_REPORT, rows)
            return
        for item, row in zip([i for i in batch if i.error is None], rows, strict=True):
            try:
                with conn.begin_nested():
                    conn.execute(_INSERT_REPORT, row)
            except IntegrityError:
                item.error = duplicate_report(item.client_id)


__all__ = ["WRITE_LOCK_KEY", "Storage", "duplicate_report"]

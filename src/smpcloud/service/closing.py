"""Deadlines: closing tasks whose deadline passed, lazily on requests and by the background loop.

Whether a task closes by itself at its deadline is its scheme's choice
(:attr:`smpcloud.service.schemes.base.Scheme.closes_at_deadline`): a Paillier task does (the
server has everything it needs), a Shamir task does not (past its deadline it refuses uploads
and waits for the administrator's close, since only the administrator sees every server and
can name a participant set they all hold).

**Several server processes.** Every process runs the deadline loop and closes lazily on
requests; closing is safe whichever does it, and however many at once: it takes the task's row
lock (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite's one writer) and does nothing to a task no
longer open, so a task closes once, with the report count read under that lock. Uploads hold a
shared lock on the task row until their reports commit, so a report is either committed before
the close counts the reports (and is aggregated) or refused with 409 (never acknowledged and
missing). The aggregate that follows may be computed by several processes; it is stored once
(:mod:`smpcloud.service.schemes.paillier.aggregation`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from smpcloud.service.db import TaskRow
from smpcloud.service.meta import TaskMeta, past_deadline
from smpcloud.service.schemes.base import Scheme
from smpcloud.service.storage import Storage


class Deadlines:
    """Closes due tasks of the schemes that close at their deadline.

    Args:
        storage: the service's storage.
        clock: the current aware UTC time.
        meta: a task's cached metadata.
        schemes: the service's schemes by name (may be filled after construction).
    """

    def __init__(
        self,
        storage: Storage,
        clock: Callable[[], datetime],
        meta: Callable[[str], TaskMeta],
        schemes: Mapping[str, Scheme[Any]],
    ) -> None:
        self._storage = storage
        self._clock = clock
        self._meta = meta
        self._schemes = schemes

    def close_if_due(self, session: Session, task: TaskRow, now: datetime) -> bool:
        """Inside a write transaction: close the task if it is open, past its deadline, and of
        a scheme that closes at deadlines.

        Returns:
            Whether it closed the task.
        """
        if task.state == "open" and past_deadline(task.deadline, now):
            scheme = self._schemes[task.scheme]
            if not scheme.closes_at_deadline:
                return False
            scheme.close_locked(session, task, now, "deadline")
            return True
        return False

    def ensure(self, task_id: str) -> None:
        """Lazily close a task whose deadline passed (cheap read first, write only if due)."""
        meta = self._meta(task_id)
        if (
            not self._schemes[meta.scheme].closes_at_deadline
            or meta.deadline is None
            or meta.deadline > self._clock()
        ):
            return
        with self._storage.read() as session:
            state = session.scalar(select(TaskRow.state).where(TaskRow.id == task_id))
        if state == "open":
            now = self._clock()
            with self._storage.write() as session:
                self.close_if_due(session, self._storage.lock_task(session, task_id), now)

    def close_due_tasks(self) -> int:
        """Close every open task whose deadline has passed; return how many were closed.

        Then let every scheme finish what its closed tasks still lack (a Paillier task's
        aggregate: see :meth:`smpcloud.service.schemes.base.Scheme.catch_up`). Tasks of schemes
        that do not close at deadlines are left open.
        """
        now = self._clock()
        closing = [name for name, scheme in self._schemes.items() if scheme.closes_at_deadline]
        with self._storage.read() as session:
            due = session.scalars(
                select(TaskRow.id).where(
                    TaskRow.state == "open",
                    TaskRow.deadline.is_not(None),
                    TaskRow.deadline <= now,
                    TaskRow.scheme.in_(closing),
                )
            ).all()
        closed = 0
        for task_id in due:
            with self._storage.write() as session:
                task = self._storage.lock_task(session, task_id)
                if self.close_if_due(session, task, now):
                    closed += 1
        for scheme in self._schemes.values():
            scheme.catch_up()
        return closed


__all__ = ["Deadlines"]

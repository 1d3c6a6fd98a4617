"""Certified tasks on the server's side: the key holders' roster and their certificates.

A Paillier task may be created with the key holders' roster (``holders.json``: each holder's
Ed25519 verify key and t). Each key holder then certifies the task: it signs the task's
statement (:func:`smpcloud.protocol.certificates.certificate_fields` of the task info as
served) and uploads the signature (``POST /v1/tasks/{id}/certificates``). The server checks
every certificate against the stored roster before storing it, serves the roster and the
certificates with the task's info, and counts the holders who certified in the status.

**What the server is trusted for here: nothing.** Clients do not rely on this module's checks:
they verify t certificates themselves against the roster *they* pinned
(:func:`smpcloud.protocol.certificates.verify_certified`), so a server that skips the check,
serves forged certificates or another roster is detected. The check here only keeps garbage
out and gives key holders and the administrator an honest count (``certified_by``).

Rules: a task without a roster cannot be certified (:class:`NoRosterError`, 422); a signature
that does not verify under the holder's roster key is refused
(:class:`InvalidCertificateError`, 422); uploading the same signature again is idempotent (a
retry), another signature from the same holder is refused (409); certificates are accepted
only while the task is open (a closed task takes no more reports). The roster is stored in a
second transaction right after the task's own (a crash between the two leaves a task without
a roster: clients that pin the roster then refuse it, which is safe; create another task).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from smpcloud.crypto.signatures import Roster
from smpcloud.errors import SignatureError
from smpcloud.protocol.certificates import CertificateAcceptedOut, CertificateOut, check_certificate
from smpcloud.protocol.problems import (
    DuplicateSubmissionError,
    InvalidCertificateError,
    NoRosterError,
    TaskStateError,
)
from smpcloud.protocol.schemas import TaskInfoOut
from smpcloud.service.db import CertificateRow, TaskRosterRow
from smpcloud.service.storage import Storage

logger = logging.getLogger("smpcloud.service")


class Certification:
    """The roster and certificates of the service's tasks (thread-safe; methods block).

    Args:
        storage: the service's storage.
        clock: the current aware UTC time.
    """

    def __init__(self, storage: Storage, clock: Callable[[], datetime]) -> None:
        self._storage = storage
        self._clock = clock

    def store_roster(self, task_id: str, roster: Roster) -> None:
        """Keep a new task's roster (called right after the task is created)."""
        with self._storage.write() as session:
            session.add(
                TaskRosterRow(
                    task_id=task_id,
                    roster_json=json.dumps(roster.to_json()),
                    digest=roster.digest(),
                )
            )

    @staticmethod
    def roster(session: Session, task_id: str) -> Roster | None:
        """The task's roster, or None if it was created without one."""
        row = session.get(TaskRosterRow, task_id)
        return Roster.from_json(json.loads(row.roster_json)) if row is not None else None

    @staticmethod
    def certificates(session: Session, task_id: str) -> list[CertificateOut]:
        """The task's stored (checked) certificates, by holder."""
        rows = session.scalars(
            select(CertificateRow)
            .where(CertificateRow.task_id == task_id)
            .order_by(CertificateRow.holder_index)
        )
        return [CertificateOut(holder=row.holder_index, signature=row.signature) for row in rows]

    def with_certificates(self, info: TaskInfoOut) -> TaskInfoOut:
        """Add the task's roster and certificates to its info."""
        with self._storage.read() as session:
            roster = self.roster(session, info.task_id)
            certificates = self.certificates(session, info.task_id)
        return info.model_copy(
            update={
                "roster": roster.to_json() if roster is not None else None,
                "certificates": certificates,
            }
        )

    def certified_by(self, session: Session, task_id: str) -> list[int]:
        """The holders whose certificate of the task is stored, in increasing order."""
        return [cert.holder for cert in self.certificates(session, task_id)]

    def accept(self, info: TaskInfoOut, holder: int, signature: str) -> CertificateAcceptedOut:
        """Check holder ``holder``'s certificate of the task (``info`` as served) and keep it.

        Args:
            info: the task's info as the server serves it (the statement is rebuilt from it).
            holder: the key holder (from its token).
            signature: the signature's wire form.

        Returns:
            Who has certified so far, and how many are needed.

        Raises:
            NoRosterError: the task was created without a roster.
            InvalidCertificateError: the signature does not verify under the holder's key.
            TaskStateError: the task is no longer open.
            DuplicateSubmissionError: this holder certified the task with another signature.
        """
        task_id = info.task_id
        with self._storage.read() as session:
            roster = self.roster(session, task_id)
        if roster is None:
            raise NoRosterError(
                f"task {task_id!r} was created without the key holders' roster, so it cannot "
                "be certified: create the task with roster (smpcloud task create --holders "
                "keys/holders.json)"
            )
        try:
            check_certificate(info, roster, holder, signature)
        except SignatureError as exc:
            raise InvalidCertificateError(
                f"holder {holder}'s certificate of task {task_id!r} does not verify under its "
                f"key in the task's roster ({exc}): sign the task as served, with "
                f"signing_key_{holder}.json"
            ) from None
        with self._storage.write() as session:
            task = self._storage.read_task(session, task_id)
            existing = session.scalar(
                select(CertificateRow).where(
                    CertificateRow.task_id == task_id, CertificateRow.holder_index == holder
                )
            )
            if existing is not None:
                if existing.signature != signature:
                    raise DuplicateSubmissionError(
                        f"holder {holder} already certified task {task_id!r} with another "
                        "signature; the first one is kept"
                    )
            elif task.state != "open":
                raise TaskStateError(
                    f"task {task_id!r} is {task.state}: certificates are accepted only while "
                    "it is open"
                )
            else:
                session.add(
                    CertificateRow(
                        task_id=task_id,
                        holder_index=holder,
                        signature=signature,
                        received_at=self._clock(),
                    )
                )
                session.flush()
                logger.info("task %s: certified by holder %d", task_id, holder)
            certified = self.certified_by(session, task_id)
        return CertificateAcceptedOut(
            task_id=task_id, holder=holder, certified_by=certified, threshold=roster.threshold
        )


__all__ = ["Certification"]

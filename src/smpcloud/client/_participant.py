"""The base of the SDK's roles: one authenticated HTTP connection, used as a context manager.

:class:`~smpcloud.client.Admin`, :class:`~smpcloud.client.Client` and
:class:`~smpcloud.client.KeyHolder` each hold one connection with one bearer token
(:class:`~smpcloud.client._http.Connection`); the two roles bound to one task (a client, a key
holder) also share that task's status and result views.
"""

from __future__ import annotations

from types import TracebackType
from typing import Self

import httpx

from smpcloud.client._http import Connection, task_path
from smpcloud.client.models import TaskResult, TaskStatus, read_result, read_status
from smpcloud.protocol.schemas import ResultOut, TaskStatusOut


class Participant:
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


class TaskParticipant(Participant):
    """A participant bound to one task: adds the task's status and released result."""

    def __init__(
        self,
        base_url: str,
        task_id: str,
        token: str,
        *,
        timeout: float,
        transport: httpx.BaseTransport | None,
    ) -> None:
        super().__init__(base_url, token, timeout=timeout, transport=transport)
        self.task_id = task_id

    def status(self) -> TaskStatus:
        """Return the task's state and counters."""
        return read_status(
            self._conn.request("GET", task_path(self.task_id, "status"), TaskStatusOut)
        )

    def result(self) -> TaskResult:
        """Return the released result (see :meth:`Admin.result`)."""
        return read_result(self._conn.request("GET", task_path(self.task_id, "result"), ResultOut))


__all__ = ["Participant", "TaskParticipant"]

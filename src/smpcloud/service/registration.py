"""Registration of a task's clients, common to every scheme: one token per client, shown once.

Only the tokens' SHA-256 digests are stored (:mod:`smpcloud.service.auth`). The scheme names
the new clients (:meth:`smpcloud.service.schemes.base.Scheme.number_clients`): a Paillier task
by their row ids, a Shamir task by their numbers within the task.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from smpcloud.errors import SmpcError
from smpcloud.protocol.problems import TaskStateError
from smpcloud.protocol.schemas import ClientCredentialsOut, ClientsIn, ClientsOut
from smpcloud.service.auth import CLIENT_TOKEN_PREFIX, hash_token, new_token
from smpcloud.service.closing import Deadlines
from smpcloud.service.db import ClientRow
from smpcloud.service.meta import past_deadline
from smpcloud.service.schemes.base import Scheme
from smpcloud.service.storage import Storage

logger = logging.getLogger("smpcloud.service")


def register_clients(
    storage: Storage,
    deadlines: Deadlines,
    clock: Callable[[], datetime],
    scheme: Scheme[Any],
    task_id: str,
    body: ClientsIn,
) -> ClientsOut:
    """Create ``body.count`` client credentials for a task of ``scheme``.

    Args:
        storage: the service's storage.
        deadlines: closes the task first if it is due.
        clock: the current aware UTC time.
        scheme: the task's scheme.
        task_id: the task.
        body: how many clients.

    Returns:
        The new clients' ids (as the scheme names them) and tokens.

    Raises:
        TaskStateError: the task is not open (or, for a scheme that does not close at its
            deadline, past its deadline), or would exceed its max_clients.
    """
    tokens = [new_token(CLIENT_TOKEN_PREFIX) for _ in range(body.count)]
    now = clock()
    error: SmpcError
    with storage.write() as session:
        task = storage.lock_task(session, task_id)
        if deadlines.close_if_due(session, task, now):
            error = TaskStateError(f"task {task_id!r} closed: its deadline passed")
        elif (
            not scheme.closes_at_deadline
            and task.state == "open"
            and past_deadline(task.deadline, now)
        ):
            error = TaskStateError(
                f"task {task_id!r} passed its deadline: no more clients can be registered"
            )
        elif task.state != "open":
            error = TaskStateError(
                f"task {task_id!r} is {task.state}: no more clients can be registered"
            )
        else:
            registered = session.scalar(
                select(func.count()).select_from(ClientRow).where(ClientRow.task_id == task_id)
            )
            if (registered or 0) + body.count > task.max_clients:
                error = TaskStateError(
                    f"task {task_id!r} accepts at most {task.max_clients} clients; "
                    f"{registered} already registered"
                )
            else:
                rows = [
                    ClientRow(task_id=task_id, token_hash=hash_token(token), created_at=now)
                    for token in tokens
                ]
                session.add_all(rows)
                session.flush()
                ids = scheme.number_clients(session, task_id, rows, registered or 0)
                out = ClientsOut(
                    clients=[
                        ClientCredentialsOut(client_id=client_id, token=token)
                        for client_id, token in zip(ids, tokens, strict=True)
                    ]
                )
                logger.info("registered %d clients for task %s", body.count, task_id)
                return out
    raise error


__all__ = ["register_clients"]

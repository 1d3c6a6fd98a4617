"""Task metadata: the immutable part of a task, parsed once per process and cached.

Every request needs its task's metadata (authentication checks the task exists; every scheme
reads its key or parameters), and none of it changes after creation, so :class:`MetaCache`
reads it once per task and process. :class:`TaskMeta` holds what every task has; each scheme
extends it with its own parameters (:mod:`smpcloud.service.schemes`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy.orm import Session

from smpcloud.protocol.problems import NotFoundError
from smpcloud.protocol.schemas import TaskEncoding
from smpcloud.service.db import TaskRow
from smpcloud.service.storage import Storage

_META_CACHE_SIZE: Final = 1024


def past_deadline(deadline: datetime | None, now: datetime) -> bool:
    """Whether ``deadline`` (None: none) has passed at ``now``."""
    return deadline is not None and deadline <= now


@dataclass(frozen=True, slots=True)
class TaskMeta:
    """The immutable part of any task, whatever its scheme.

    Attributes:
        scheme: the scheme's name ("paillier", "shamir"), which finds its implementation.
        length: values per client.
        validity: how reports are checked: "range" (validity proofs) or "none".
    """

    task_id: str
    name: str
    scheme: str
    encoding: TaskEncoding
    length: int
    min_clients: int
    max_clients: int
    deadline: datetime | None
    validity: str


def common_fields(task: TaskRow) -> dict[str, Any]:
    """The fields of :class:`TaskMeta` read from a task row, for a scheme's metadata."""
    return {
        "task_id": task.id,
        "name": task.name,
        "scheme": task.scheme,
        "encoding": TaskEncoding.model_validate_json(task.encoding_json),
        "length": task.length,
        "min_clients": task.min_clients,
        "max_clients": task.max_clients,
        "deadline": task.deadline,
        "validity": task.validity,
    }


class MetaCache:
    """Reads each task's metadata once (up to 1024 tasks, then starts over). Thread-safe.

    Args:
        storage: the service's storage.
        load: builds a task's metadata from its row in a read session (the task's scheme).
    """

    def __init__(self, storage: Storage, load: Callable[[Session, TaskRow], TaskMeta]) -> None:
        self._storage = storage
        self._load = load
        self._cache: dict[str, TaskMeta] = {}
        self._lock = threading.Lock()

    def get(self, task_id: str) -> TaskMeta:
        """Return the task's metadata (cached).

        Raises:
            NotFoundError: unknown task.
        """
        cached = self._cache.get(task_id)
        if cached is not None:
            return cached
        with self._storage.read() as session:
            row = session.get(TaskRow, task_id)
            if row is None:
                raise NotFoundError(f"no task {task_id!r}")
            meta = self._load(session, row)
        with self._lock:
            if len(self._cache) >= _META_CACHE_SIZE:
                self._cache.clear()
            self._cache[task_id] = meta
        return meta


__all__ = ["MetaCache", "TaskMeta", "common_fields", "past_deadline"]

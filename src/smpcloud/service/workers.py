"""The service's worker processes: the :class:`~smpcloud.parallel.CryptoPool` it computes on.

Aggregation and combining go through a :class:`~smpcloud.parallel.CryptoPool`
(``Settings.workers`` processes, started by the application's lifespan; work too small to
gain from processes runs inline). All of it runs in worker threads, never on the event loop.
Until :meth:`Workers.start` (and after :meth:`Workers.close`) everything runs inline in the
calling thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

from smpcloud.parallel import CryptoPool
from smpcloud.service.metrics import pool_job

logger = logging.getLogger("smpcloud.service")

_T = TypeVar("_T")


class Workers:
    """The current worker pool, replaced if a worker process dies. Thread-safe.

    Args:
        workers: processes once started (None: every CPU this process may use; 1: inline).
    """

    def __init__(self, workers: int | None) -> None:
        self._size = workers
        self.inline = CryptoPool(1)
        self._pool = self.inline
        self._lock = threading.Lock()

    def start(self) -> None:
        """Create the worker pool (``workers`` processes; they start on first use).

        With ``workers=1`` nothing changes: everything keeps running inline.
        """
        with self._lock:
            if self._pool is self.inline:
                self._pool = CryptoPool(self._size)

    def close(self) -> None:
        """Stop the worker processes (waiting for running work) and go back to inline work."""
        with self._lock:
            pool, self._pool = self._pool, self.inline
        if pool is not self.inline:
            pool.close()

    @property
    def count(self) -> int:
        """The number of processes the current pool uses (1: inline)."""
        return self._pool.workers

    def run(self, work: Callable[[CryptoPool], _T]) -> _T:
        """Run ``work`` on the pool; if a worker process died, replace the pool and retry once.

        Counted in ``smpcloud_pool_jobs_in_progress`` while it runs.

        Args:
            work: called with the pool.

        Returns:
            What ``work`` returns.
        """
        with pool_job():
            return self._run(work)

    def _run(self, work: Callable[[CryptoPool], _T]) -> _T:
        pool = self._pool
        try:
            return work(pool)
        except BrokenProcessPool:
            logger.error("a worker process died; replacing the worker pool and retrying")
            with self._lock:
                if self._pool is pool:
                    self._pool = CryptoPool(self._size)
            pool.close()
            return work(self._pool)


__all__ = ["Workers"]

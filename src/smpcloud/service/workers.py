"""The service's worker processes: the :class:`~smpcloud.parallel.CryptoPool` it computes on.

Aggregation and combining go through a :class:`~smpcloud.parallel.CryptoPool`
(``Settings.workers`` processes, started by the application's lifespan; work too small to
gain from processes runs inline). All of it runs in worker threads, never on the event loop.
Until :meth:`Workers.start` (and after :meth:`Workers.close`) everything runs inline in the
calling thread.

With a Dask scheduler (``Settings.dask_scheduler``, ``serve --dask-scheduler``), the pool is a
:class:`~smpcloud.parallel.dask_pool.DaskPool` on that cluster instead: same operations and
results; :meth:`Workers.start` connects (and fails with
:class:`~smpcloud.parallel.dask_pool.DaskClusterError` if the scheduler does not answer), and
the cluster's workers see what the server sees (ciphertexts, proofs, public keys), never more.
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
        dask_scheduler: a Dask scheduler's address: once started, compute on that cluster
            instead of local processes.
    """

    def __init__(self, workers: int | None, dask_scheduler: str | None = None) -> None:
        self._size = workers
        self._scheduler = dask_scheduler
        self.inline = CryptoPool(1)
        self._pool = self.inline
        self._lock = threading.Lock()

    def _new_pool(self) -> CryptoPool:
        if self._scheduler is not None:
            from smpcloud.parallel.dask_pool import DaskPool

            return DaskPool(self._scheduler)
        return CryptoPool(self._size)

    def start(self) -> None:
        """Create the worker pool (``workers`` processes; they start on first use).

        With ``workers=1`` nothing changes: everything keeps running inline. With a Dask
        scheduler, connect to it.

        Raises:
            DaskClusterError: the Dask scheduler did not answer (or dask is not installed).
        """
        with self._lock:
            if self._pool is self.inline:
                self._pool = self._new_pool()

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
                    self._pool = self._new_pool()
            pool.close()
            return work(self._pool)


__all__ = ["Workers"]

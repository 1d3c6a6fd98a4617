"""The life of a pool of worker processes: start, run pieces of work, close; inline for one.

:class:`WorkerPool` owns the processes (a ``ProcessPoolExecutor`` started with ``spawn`` or
``forkserver``, never ``fork``, which is unsafe in a process that runs threads) and runs pieces
of work on them, or inline in the calling process when it has no workers (``workers=1``, or
after :meth:`WorkerPool.close`). It knows nothing about cryptography: the batch operations
(``paillier_ops``, ``threshold_ops``) cut the work and :class:`smpcloud.parallel.CryptoPool`
puts them together. The worker initializer and the per-process key caches are in ``jobs``.

What is revealed: nothing; the processes are children of the caller.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from types import TracebackType
from typing import Final, Literal, Self, TypeVar

from smpcloud.crypto.paillier import PublicKey
from smpcloud.errors import InvalidInputError
from smpcloud.parallel.chunks import check_public_key
from smpcloud.parallel.jobs import init_worker, ping

#: Largest pool accepted (bounds the processes a configuration value can start).
MAX_WORKERS: Final = 256
_CHUNKS_PER_WORKER: Final = 4

StartMethod = Literal["spawn", "forkserver"]
_T = TypeVar("_T")


def default_workers() -> int:
    """Return the number of CPUs this process may run on (its affinity mask, else cpu_count)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)  # pragma: no cover - non-Linux


def _resolve_workers(workers: object) -> int:
    if workers is None:
        return default_workers()
    if type(workers) is not int or not 1 <= workers <= MAX_WORKERS:
        raise InvalidInputError(f"workers must be None or an int in 1..{MAX_WORKERS}")
    return workers


def _gather(futures: Sequence[Future[_T]]) -> list[_T]:
    """Return the results in order; on the first error cancel the rest and re-raise it."""
    try:
        return [future.result() for future in futures]
    except BaseException:
        for future in futures:
            future.cancel()
        raise


class WorkerPool:
    """A pool of worker processes, or none (see the module docstring).

    Use as a context manager, or call :meth:`close`. The workers start on first use (or by
    :meth:`start`) and live until :meth:`close`; after that the pool runs everything inline.
    Thread-safe. If a worker process dies, the call raises
    ``concurrent.futures.process.BrokenProcessPool`` and the pool must be replaced.

    Args:
        workers: number of worker processes; None = every CPU this process may use
            (:func:`default_workers`); 1 = no processes, everything inline.
        start_method: ``"spawn"`` (default, portable) or ``"forkserver"`` (POSIX, faster
            start). ``"fork"`` is not offered: it is unsafe in a process that runs threads.
        preload: public keys whose fast-encryption tables every worker builds when it starts.

    Raises:
        InvalidInputError: workers outside 1..256, an unknown start method, or a preload entry
            that is not a PublicKey.
    """

    def __init__(
        self,
        workers: int | None = None,
        *,
        start_method: StartMethod = "spawn",
        preload: Sequence[PublicKey] = (),
    ) -> None:
        self.workers: int = _resolve_workers(workers)
        if start_method not in ("spawn", "forkserver"):
            raise InvalidInputError('start_method must be "spawn" or "forkserver"')
        moduli = tuple(check_public_key(key).n for key in preload)
        self._executor: ProcessPoolExecutor | None = None
        if self.workers > 1:
            self._executor = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context(start_method),
                initializer=init_worker,
                initargs=(moduli,),
            )

    def __repr__(self) -> str:
        mode = "inline" if self._executor is None else "processes"
        return f"{type(self).__name__}(workers={self.workers}, {mode})"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        """Start every worker process now (and build preloaded tables) instead of on first use."""
        if self._executor is not None:
            _gather([self._executor.submit(ping) for _ in range(self.workers)])

    def close(self) -> None:
        """Stop the workers (waiting for running work; queued work is cancelled). Idempotent."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)

    @property
    def inline(self) -> bool:
        """Return True when the pool has no worker processes (workers=1, or closed)."""
        return self._executor is None

    @property
    def parts(self) -> int:
        """Return how many pieces to cut a batch into: a few per worker, to balance the load."""
        return self.workers * _CHUNKS_PER_WORKER

    def run(
        self,
        inline: Callable[..., _T],
        job: Callable[..., _T],
        calls: Sequence[tuple[tuple[object, ...], tuple[object, ...]]],
    ) -> list[_T]:
        """Run inline(*inline_args) or job(*job_args) for each call, in order.

        The calls run on the workers, each call one task, unless the pool is inline or there
        is only one call: then ``inline`` runs in the calling process (it may take key
        objects, where ``job`` takes what pickles cheaply, such as a modulus).

        Args:
            inline: the function for the calling process.
            job: the module-level function for a worker (pickled by name).
            calls: (inline_args, job_args) per piece of work.

        Returns:
            The results, in the order of the calls.

        Raises:
            Exception: the first call's error (the remaining calls are cancelled).
        """
        executor = self._executor
        if executor is None or len(calls) < 2:
            return [inline(*args) for args, _ in calls]
        return _gather([executor.submit(job, *args) for _, args in calls])

    def stream(self, job: Callable[..., _T], calls: Iterable[tuple[object, ...]]) -> list[_T]:
        """Run job(*args) for each args, submitting each as soon as it is produced.

        Producing the next arguments (in the calling process) overlaps with the work already
        running on the workers. Inline in the calling process if the pool has no workers.

        Args:
            job: a module-level function.
            calls: the arguments of each call, produced lazily.

        Returns:
            The results, in order.

        Raises:
            Exception: the first call's error (the remaining calls are cancelled).
        """
        executor = self._executor
        if executor is None:
            return [job(*args) for args in calls]
        return _gather([executor.submit(job, *args) for args in calls])


__all__ = ["MAX_WORKERS", "StartMethod", "WorkerPool", "default_workers"]

"""DaskPool: the CryptoPool's operations on a Dask cluster, for batch work across machines.

:class:`DaskPool` is a :class:`~smpcloud.parallel.CryptoPool` whose transport is a Dask
``distributed`` cluster instead of a local process pool: one interface, two transports. Every
batch operation (``paillier_ops``, ``threshold_ops``, ``validity_ops``) cuts its work exactly
as it does for processes and hands the pieces to :meth:`DaskPool.run` / :meth:`DaskPool.stream`,
which submit them to the cluster's workers and gather the results in order; the results are
the same as the local pool's (same functions from ``smpcloud.parallel.jobs`` on the same
pieces). Aggregation (:meth:`DaskPool.aggregate`, :meth:`DaskPool.aggregate_vectors`) is a
tree reduction on the cluster: each worker multiplies a chunk (or a tile of reports x
positions) mod n^2, validating it as the local pool does, then the partial products are
multiplied pairwise on the workers, level by level, and only the root travels back.

Transport: ciphertexts travel as ints or fixed-width big-endian bytes (never pickled
``Ciphertext`` objects), public keys as their modulus (each Dask worker process keeps the key
objects and report bases in the same per-process caches as a pool worker, so tables are built
once per worker process). A holder's :class:`~smpcloud.crypto.threshold.KeyShare` (partial
decryption) is scattered to every worker once per pool and key (cached by the key's
fingerprint and holder index) and tasks refer to it, instead of travelling with each task.

Failures: an error raised by the work (a malformed ciphertext, a failing proof) is raised as
the local pool raises it (the first failing piece, in order). If a Dask worker dies, the
scheduler reruns its tasks on other workers (up to Dask's ``allowed-failures``); an
aggregation whose shipped data died with a worker is run once more from the start (it is a
pure function of its inputs); a job that still cannot run, a lost scheduler or a cancelled job
raises :class:`DaskClusterError`: never a partial or wrong result. A scheduler that does not
answer within ``connect_timeout`` seconds raises :class:`DaskClusterError` at construction,
never hangs. (A cluster with no worker at all makes a job wait until one joins.)

What a Dask worker sees: the ciphertexts and reports it multiplies or verifies, public keys,
and, for a key holder's partial decryption, that holder's key share (kept in the workers'
memory until the pool is closed). So the cluster a holder uses for partial decryption must
be the holder's own machines, and the server's cluster must be machines the server's operator
trusts as much as the server itself (they see what the server sees: ciphertexts, never
plaintexts of single reports). Dask's own traffic is not encrypted unless the cluster is set
up with TLS (``tls://`` addresses and Dask's security settings). Nothing secret is logged.

Needs the ``dask`` extra (``pip install 'smpcloud[dask]'``, i.e. ``dask[distributed]``),
imported only when a DaskPool is created.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final, TypeAlias, TypeVar

from gmpy2 import mpz

from smpcloud.crypto.paillier import Ciphertext, PublicKey, raw_ciphertext
from smpcloud.crypto.threshold import KeyShare
from smpcloud.errors import InvalidInputError, SmpcError
from smpcloud.parallel import paillier_ops
from smpcloud.parallel.chunks import (
    CiphertextBatch,
    batch_length,
    check_public_key,
    payload,
    spans,
)
from smpcloud.parallel.crypto_pool import CryptoPool
from smpcloud.parallel.jobs import do_column_products, do_product, init_worker, ping
from smpcloud.parallel.pool import WorkerPool

# distributed is an optional dependency (and only partly typed): its objects are typed loosely.
Client: TypeAlias = Any  # distributed.Client
Future: TypeAlias = Any  # distributed.Future

_T = TypeVar("_T")

logger = logging.getLogger("smpcloud.parallel")

#: Seconds to wait for the scheduler to answer when connecting.
DEFAULT_CONNECT_TIMEOUT: Final = 10.0
#: Pieces of work per worker thread (balances the load, as the local pool does).
CHUNKS_PER_THREAD: Final = 4
#: The most partial products one node of the aggregation tree multiplies (a few milliseconds):
#: the tree's depth is log_FAN_IN(leaves), each level one round of scheduling.
FAN_IN: Final = 8
#: The fewest ciphertexts in one leaf of the aggregation tree (~8 ms of work at 2048 bits).
MIN_LEAF_CIPHERTEXTS: Final = 2048

INSTALL_HINT: Final = "the Dask back end needs dask[distributed]: pip install 'smpcloud[dask]'"


class DaskClusterError(SmpcError):
    """The Dask cluster cannot be used: not installed, unreachable, or a job could not run."""


def _distributed() -> Any:
    """Return the ``distributed`` module, or raise the install hint."""
    try:
        import distributed
    except ImportError:
        raise DaskClusterError(INSTALL_HINT) from None
    return distributed


def _lost(exc: BaseException) -> bool:
    """Return True if exc is Dask's way of saying a job could not run (not the work's error)."""
    import asyncio
    import concurrent.futures

    distributed = _distributed()
    from distributed.comm.core import CommClosedError

    lost = (
        distributed.KilledWorker,
        CommClosedError,
        asyncio.CancelledError,
        concurrent.futures.CancelledError,
        TimeoutError,
    )
    return isinstance(exc, lost) and not isinstance(exc, SmpcError)


def multiply_values(modulus: int, *values: int) -> int:
    """Return the product mod modulus of partial products (one node of the aggregation tree)."""
    mod = mpz(modulus)
    acc = mpz(1)
    for value in values:
        acc = acc * value % mod
    return int(acc)


def multiply_columns(modulus: int, *columns: list[int]) -> list[int]:
    """Return the element-wise products mod modulus of tiles' column products (one node)."""
    mod = mpz(modulus)
    accs = [mpz(1)] * len(columns[0])
    for column in columns:
        accs = [acc * value % mod for acc, value in zip(accs, column, strict=True)]
    return [int(acc) for acc in accs]


def check_scheduler(address: str, timeout: float = DEFAULT_CONNECT_TIMEOUT) -> int:
    """Connect to a Dask scheduler, count its worker threads, and disconnect.

    Args:
        address: the scheduler's address, e.g. ``tcp://10.0.0.5:8786``.
        timeout: seconds to wait for the scheduler to answer.

    Returns:
        The number of worker threads the cluster has now (0 is allowed: workers may join later).

    Raises:
        DaskClusterError: dask[distributed] is not installed, or the scheduler did not answer
            within ``timeout`` seconds (the message names the address).
    """
    with DaskPool(address, connect_timeout=timeout) as pool:
        return pool.threads()


class DaskPool(CryptoPool):
    """A :class:`~smpcloud.parallel.CryptoPool` that computes on a Dask cluster.

    Same methods, checks and results as the local pool (see the module docstring for the
    transport, the failures and what the workers see). Use as a context manager, or call
    :meth:`close`; after :meth:`close` everything runs inline in the calling process.
    Thread-safe (a Dask client may be shared by threads).

    Args:
        scheduler: the scheduler's address (``tcp://HOST:PORT``; the pool connects and owns
            the connection), or a ``distributed.Client`` (the caller keeps owning it; for a
            ``LocalCluster`` in tests).
        connect_timeout: seconds to wait for the scheduler when connecting by address.
        preload: public keys whose fast-encryption tables every worker builds at :meth:`start`.

    Raises:
        DaskClusterError: dask[distributed] is not installed, or the scheduler did not answer
            within ``connect_timeout`` seconds.
        InvalidInputError: a scheduler that is neither an address nor a Client, a timeout
            that is not positive, or a preload entry that is not a PublicKey.
    """

    def __init__(
        self,
        scheduler: str | Client,
        *,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        preload: Sequence[PublicKey] = (),
    ) -> None:
        WorkerPool.__init__(self, 1)  # no local processes: the cluster is the transport
        self._moduli = tuple(check_public_key(key).n for key in preload)
        if not isinstance(connect_timeout, (int, float)) or not 0 < connect_timeout <= 3600:
            raise InvalidInputError("connect_timeout must be in (0, 3600] seconds")
        distributed = _distributed()
        self._lock = threading.Lock()
        self._shares: dict[tuple[str, int], tuple[KeyShare, Future]] = {}
        self._direct = True
        if isinstance(scheduler, str):
            if not scheduler.strip():
                raise InvalidInputError("the Dask scheduler address is empty")
            self.address = scheduler
            try:
                client = distributed.Client(
                    scheduler, timeout=connect_timeout, set_as_default=False
                )
            except (OSError, TimeoutError, ValueError) as exc:
                reason = str(exc).strip().splitlines()
                raise DaskClusterError(
                    f"cannot connect to the Dask scheduler at {scheduler} within "
                    f"{connect_timeout:g} s ({reason[0] if reason else type(exc).__name__})"
                ) from None
            self._owns = True
        elif isinstance(scheduler, distributed.Client):
            client = scheduler
            self.address = str(client.scheduler.address)
            self._owns = False
        else:
            raise InvalidInputError(
                "scheduler must be an address or a distributed.Client, "
                f"got {type(scheduler).__name__}"
            )
        self._client: Client | None = client
        self.workers = max(1, self.threads())

    def __repr__(self) -> str:
        mode = "closed" if self._client is None else self.address
        return f"DaskPool({mode}, threads={self.workers})"

    # ------------------------------------------------------------------ the transport

    def threads(self) -> int:
        """Return the number of worker threads the cluster has now (0 if closed or none)."""
        client = self._client
        if client is None:
            return 0
        return sum(client.nthreads().values())

    def start(self) -> None:
        """Build the preloaded keys' tables on every worker now (and count the threads)."""
        client = self._client
        if client is None:
            return
        self.workers = max(1, self.threads())
        if self._moduli:
            client.run(init_worker, self._moduli)
        else:
            client.run(ping)

    def close(self) -> None:
        """Release the key shares held by the workers and disconnect (if owned). Idempotent."""
        with self._lock:
            client, self._client = self._client, None
            shares = [future for _, future in self._shares.values()]
            self._shares.clear()
        if client is None:
            return
        try:
            if shares:
                client.cancel(shares)
        finally:
            if self._owns:
                client.close()

    @property
    def inline(self) -> bool:
        """Return True once the pool is closed (then everything runs in the calling process)."""
        return self._client is None

    @property
    def parts(self) -> int:
        """Return how many pieces to cut a batch into: a few per worker thread of the cluster."""
        return max(1, self.workers) * CHUNKS_PER_THREAD

    def _live(self) -> Client:
        client = self._client
        if client is None:
            raise DaskClusterError("the Dask pool is closed")
        return client

    def _share_ref(self, client: Client, share: KeyShare) -> Future:
        """Return the cluster's copy of a key share, scattered to every worker on first use."""
        ident = (share.public.fingerprint(), share.index)
        with self._lock:
            held = self._shares.get(ident)
            # A copy lost with every worker that held it is sent again.
            if held is not None and held[0] == share and held[1].status == "finished":
                return held[1]
            future = client.scatter(share, broadcast=True, hash=False)
            self._shares[ident] = (share, future)
            return future

    def _ship(self, client: Client, items: list[Any]) -> list[Future]:
        """Send the leaves' data to the workers (spread over them) in one call.

        Straight to the workers when they can be reached from here: the data crosses the
        network once and does not load the scheduler (as task arguments it would go through
        the scheduler); otherwise the scheduler relays it.
        """
        if self._direct:
            try:
                return list(client.scatter(items, direct=True, hash=False))
            except OSError:
                self._direct = False
        return list(client.scatter(items, direct=False, hash=False))

    def _refs(self, client: Client, args: tuple[object, ...]) -> tuple[object, ...]:
        """Replace key shares in a job's arguments by references to the workers' copies."""
        return tuple(
            self._share_ref(client, arg) if isinstance(arg, KeyShare) else arg for arg in args
        )

    def _gather(self, futures: Sequence[Future]) -> list[Any]:
        """Return the futures' results in order; raise the first failure in order."""
        client = self._live()
        try:
            try:
                return list(client.gather(list(futures)))
            except BaseException:
                # Some job failed: find the first failing one in order, as the local pool does.
                for future in futures:
                    future.result()
                raise  # pragma: no cover - gather failed, so some future did
        except BaseException as exc:
            client.cancel(list(futures))
            if _lost(exc):
                first = str(exc).splitlines()[0] if str(exc) else "no detail"
                raise DaskClusterError(
                    f"a job could not run on the Dask cluster ({type(exc).__name__}: {first})"
                ) from None
            raise

    def run(
        self,
        inline: Callable[..., _T],
        job: Callable[..., _T],
        calls: Sequence[tuple[tuple[object, ...], tuple[object, ...]]],
    ) -> list[_T]:
        """Run job(*job_args) for each call on the cluster, or inline(*inline_args) when closed.

        Like :meth:`smpcloud.parallel.pool.WorkerPool.run`: a single call runs inline too.

        Args:
            inline: the function for the calling process.
            job: the module-level function for a worker.
            calls: (inline_args, job_args) per piece of work.

        Returns:
            The results, in the order of the calls.

        Raises:
            DaskClusterError: a job could not run on the cluster.
            Exception: the first call's error (the remaining calls are cancelled).
        """
        client = self._client
        if client is None or len(calls) < 2:
            return [inline(*args) for args, _ in calls]
        futures = [client.submit(job, *self._refs(client, args), pure=False) for _, args in calls]
        return self._gather(futures)

    def stream(self, job: Callable[..., _T], calls: Iterable[tuple[object, ...]]) -> list[_T]:
        """Run job(*args) for each args on the cluster, submitting each as it is produced.

        Args:
            job: a module-level function.
            calls: the arguments of each call, produced lazily.

        Returns:
            The results, in order.

        Raises:
            DaskClusterError: a job could not run on the cluster.
            Exception: the first call's error (the remaining calls are cancelled).
        """
        client = self._client
        if client is None:
            return [job(*args) for args in calls]
        futures = [client.submit(job, *self._refs(client, args), pure=False) for args in calls]
        return self._gather(futures)

    # ------------------------------------------------------------------ tree reductions

    def _reduce(self, leaves: list[Future], node: Callable[..., Any], modulus: int) -> Future:
        """Multiply the leaves' results on the workers, level by level, up to FAN_IN per node.

        Returns:
            The root (the leaf itself if there is one).
        """
        client = self._live()
        level = leaves
        while len(level) > 1:
            level = [
                client.submit(node, modulus, *level[i : i + FAN_IN], pure=False)
                for i in range(0, len(level), FAN_IN)
            ]
        return level[0]

    def _root_result(self, leaves: list[Future], root: Future) -> Any:
        """Return the root's result; if it failed, raise the first failing leaf's error."""
        try:
            return self._gather([root])[0]
        except DaskClusterError:
            raise
        except BaseException:
            self._gather(leaves)  # raises the first failing leaf's error, in order
            raise  # pragma: no cover - a failing root has a failing leaf

    def _retried(self, work: Callable[[], _T]) -> _T:
        """Run an aggregation; if the cluster lost a worker (and with it shipped data), once more.

        Aggregation is a pure function of its inputs: running it again gives the same result.
        """
        try:
            return work()
        except DaskClusterError:
            if self._client is None:
                raise
            logger.warning("the Dask cluster lost a job's data or worker; running it once more")
            return work()

    def aggregate(self, public_key: PublicKey, ciphertexts: CiphertextBatch) -> Ciphertext:
        """Add many ciphertexts homomorphically by a tree reduction on the cluster.

        Same checks, errors and result as :func:`smpcloud.parallel.paillier_ops.aggregate`
        (the first invalid ciphertext is named by index). Reveals nothing; the result is not
        re-randomised.

        Args:
            public_key: the key.
            ciphertexts: at least one ciphertext (objects, integers, or one bytes object of
                concatenated fixed-width big-endian ciphertexts).

        Returns:
            The aggregate ciphertext.

        Raises:
            InvalidInputError: no ciphertexts, or neither a sequence nor bytes.
            MalformedCiphertextError: the first invalid ciphertext, by index.
            KeyMismatchError: a Ciphertext under another key, by index.
            DaskClusterError: the job could not run on the cluster (twice: a job whose worker
                was lost is run once more).
        """
        return self._retried(lambda: self._aggregate_once(public_key, ciphertexts))

    def _aggregate_once(self, public_key: PublicKey, ciphertexts: CiphertextBatch) -> Ciphertext:
        pk = check_public_key(public_key)
        total = batch_length(pk, ciphertexts, "ciphertexts")
        client = self._client
        if client is None or total < paillier_ops.MIN_PARALLEL_PRODUCT:
            return paillier_ops.aggregate(self, pk, ciphertexts)
        n2 = pk.n_squared
        pieces = spans(total, self.parts, MIN_LEAF_CIPHERTEXTS)
        refs = self._ship(client, [payload(pk, ciphertexts, a, b) for a, b in pieces])
        leaves = [
            client.submit(do_product, pk.n, ref, a, n2, pure=False)
            for ref, (a, _) in zip(refs, pieces, strict=True)
        ]
        root = self._reduce(leaves, multiply_values, n2)
        return raw_ciphertext(pk, mpz(self._root_result(leaves, root)))

    def aggregate_vectors(
        self, public_key: PublicKey, reports: Sequence[CiphertextBatch]
    ) -> list[Ciphertext]:
        """Add vectors of ciphertexts element-wise by a tree reduction on the cluster.

        Same checks, errors and result as
        :func:`smpcloud.parallel.paillier_ops.aggregate_vectors`: tiles of reports x
        positions are multiplied (and validated) on the workers, then each column span's
        tiles are multiplied pairwise on the workers. Reveals nothing; results are not
        re-randomised.

        Args:
            public_key: the key.
            reports: at least one report, all of the same number of ciphertexts.

        Returns:
            One aggregate ciphertext per position.

        Raises:
            InvalidInputError: no reports, reports of different lengths or empty, or a
                report that is neither a sequence nor bytes.
            MalformedCiphertextError: an invalid ciphertext, by report and position.
            KeyMismatchError: a Ciphertext under another key.
            DaskClusterError: the job could not run on the cluster (twice: a job whose worker
                was lost is run once more).
        """
        return self._retried(lambda: self._aggregate_vectors_once(public_key, reports))

    def _aggregate_vectors_once(
        self, public_key: PublicKey, reports: Sequence[CiphertextBatch]
    ) -> list[Ciphertext]:
        pk = check_public_key(public_key)
        client = self._client
        if client is None or not reports:
            return paillier_ops.aggregate_vectors(self, pk, reports)
        lengths = [batch_length(pk, report, f"report {i}") for i, report in enumerate(reports)]
        length = lengths[0]
        if length == 0 or any(other != length for other in lengths):
            return paillier_ops.aggregate_vectors(self, pk, reports)  # raises the same error
        if len(reports) * length < paillier_ops.MIN_PARALLEL_PRODUCT:
            return paillier_ops.aggregate_vectors(self, pk, reports)
        parts = self.parts
        row_spans = spans(len(reports), min(len(reports), parts), 1)
        col_spans = spans(length, max(1, -(-parts // len(row_spans))), 1)
        n2 = pk.n_squared
        out: list[Ciphertext] = []
        columns: list[tuple[list[Future], Future]] = []
        tiles = [(rows, cols) for cols in col_spans for rows in row_spans]
        refs = self._ship(
            client,
            [
                [payload(pk, reports[r], c0, c1) for r in range(r0, r1)]
                for (r0, r1), (c0, c1) in tiles
            ],
        )
        for index, (c0, c1) in enumerate(col_spans):
            leaves = [
                client.submit(do_column_products, pk.n, ref, r0, c0, c1 - c0, pure=False)
                for ref, ((r0, _), _) in zip(
                    refs[index * len(row_spans) : (index + 1) * len(row_spans)],
                    tiles[index * len(row_spans) : (index + 1) * len(row_spans)],
                    strict=True,
                )
            ]
            columns.append((leaves, self._reduce(leaves, multiply_columns, n2)))
        # A failure is reported as the local pool reports it: the first failing tile in
        # (row span, column span) order.
        roots = [root for _, root in columns]
        try:
            values = self._gather(roots)
        except DaskClusterError:
            raise
        except BaseException:
            by_rows = [columns[c][0][r] for r in range(len(row_spans)) for c in range(len(columns))]
            self._gather(by_rows)
            raise  # pragma: no cover - a failing root has a failing leaf
        for column in values:
            out.extend(raw_ciphertext(pk, mpz(v)) for v in column)
        return out


__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "INSTALL_HINT",
    "DaskClusterError",
    "DaskPool",
    "check_scheduler",
    "multiply_columns",
    "multiply_values",
]

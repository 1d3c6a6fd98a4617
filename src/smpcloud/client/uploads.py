"""Bulk upload: many clients' prepared reports, for simulations, benchmarks and gateways.

A caller that carries the reports of many clients (each prepared on its owner's side with
:func:`~smpcloud.client.prepare_report` or :func:`~smpcloud.client.prepare_shares`, each with
its owner's token) uploads them here instead of opening one SDK object per client by hand:

* :func:`upload_reports`: Paillier tasks, one :class:`~smpcloud.client.PreparedReport` per
  client, each sent by :meth:`smpcloud.client.Client.upload` with that client's token;
* :func:`upload_shares`: Shamir tasks, one :class:`~smpcloud.client.ShamirPreparedReport` per
  client, share j sent to server j with the client's token there, as
  :class:`~smpcloud.client.ShamirClient` sends it.

The request body, the authentication (each client's own bearer token) and the error mapping
are the SDK's own. ``connections`` worker threads share the work, each with one keep-alive
connection pool; the first refusal stops them all and raises :class:`UploadError`, which names
the first failed client (never its token) and carries the SDK's exception as its cause.

Retries: a request that failed in transit (:class:`~smpcloud.errors.TransportError`) is sent
again, up to ``retries`` times. If the first attempt did arrive, the server answers the retry
with :class:`~smpcloud.protocol.problems.DuplicateSubmissionError`, which then counts as
accepted (as :meth:`ShamirClient.retry <smpcloud.client.ShamirClient.retry>` does); a duplicate
on a first attempt is a refusal (the client had already reported), as in
:meth:`~smpcloud.client.Client.upload`.

Reveals to the server(s) exactly what the clients' own uploads reveal: that each client
reported, and when; the reports are ciphertexts or uniformly random shares.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Final

import httpx

from smpcloud.client._http import DEFAULT_TIMEOUT, Connection, task_path
from smpcloud.client.sdk import Client, PreparedReport
from smpcloud.client.shamir import ShamirCredentials, ShamirPreparedReport
from smpcloud.errors import InvalidInputError, SmpcError, TransportError
from smpcloud.protocol.problems import DuplicateSubmissionError
from smpcloud.protocol.schemas import ReportAcceptedOut

#: Worker threads (one keep-alive connection pool each) unless the caller says otherwise.
DEFAULT_CONNECTIONS: Final = 16
MAX_CONNECTIONS: Final = 256
MAX_RETRIES: Final = 10


class UploadError(SmpcError):
    """A bulk upload stopped at a refused (or unreachable) report.

    The message names the first failed client by its position in the caller's list (and, for
    Shamir, its client number and the server); the SDK's exception is ``error`` and
    ``__cause__``.

    Attributes:
        index: position (from 0) of the first failed report in the caller's list.
        accepted: requests the server(s) accepted before the upload stopped.
        error: the exception the SDK raised for that report.
    """

    def __init__(self, message: str, *, index: int, accepted: int, error: SmpcError) -> None:
        super().__init__(message)
        self.index = index
        self.accepted = accepted
        self.error = error


@dataclass(frozen=True, slots=True)
class UploadSummary:
    """What a bulk upload did.

    Attributes:
        reports: reports uploaded (clients).
        requests: HTTP requests the server(s) accepted (``reports`` for Paillier, n per
            report for Shamir).
        seconds: from the first request to the last answer (the connection pools are made
            before the clock starts; connecting is timed).
        connections: worker threads used.
    """

    reports: int
    requests: int
    seconds: float
    connections: int

    @property
    def rate(self) -> float:
        """Accepted requests per second (0 when nothing was sent)."""
        return self.requests / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True, slots=True)
class _Job:
    index: int
    label: str
    send: Callable[[httpx.BaseTransport], None]


class _Pooled(httpx.BaseTransport):
    """A worker's keep-alive pool, lent to one SDK object after another (closing is a no-op)."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self._inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self._inner.handle_request(request)

    def close(self) -> None:
        """Keep the pool open for the worker's next request; :meth:`release` closes it."""

    def release(self) -> None:
        """Close the underlying pool."""
        self._inner.close()


def _check_url(base_url: object) -> None:
    """Refuse a URL the way :class:`~smpcloud.client._http.Connection` does (before sending)."""
    if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
        raise InvalidInputError("base_url must start with http:// or https://")


def _check_connections(connections: int, retries: int) -> None:
    if type(connections) is not int or not 1 <= connections <= MAX_CONNECTIONS:
        raise InvalidInputError(f"connections must be an int in 1..{MAX_CONNECTIONS}")
    if type(retries) is not int or not 0 <= retries <= MAX_RETRIES:
        raise InvalidInputError(f"retries must be an int in 0..{MAX_RETRIES}")


def _send_with_retries(job: _Job, transport: httpx.BaseTransport, retries: int) -> None:
    attempts = 0
    while True:
        try:
            job.send(transport)
            return
        except DuplicateSubmissionError:
            if attempts:  # an earlier attempt arrived; only its answer was lost
                return
            raise
        except TransportError:
            if attempts >= retries:
                raise
            attempts += 1


def _run(
    jobs: Sequence[_Job],
    *,
    reports: int,
    connections: int,
    retries: int,
    transport: httpx.BaseTransport | None,
    https: bool,
) -> UploadSummary:
    """Send every job on ``connections`` threads (job i on thread i mod width); time it.

    Each thread gets its own keep-alive pool (or lends the caller's ``transport``).
    """
    width = max(1, min(connections, len(jobs)))
    if not jobs:
        return UploadSummary(reports, 0, 0.0, width)
    if transport is not None:
        pools = [_Pooled(transport) for _ in range(width)]
    else:
        verify: ssl.SSLContext | bool = httpx.create_ssl_context() if https else True
        pools = [_Pooled(httpx.HTTPTransport(verify=verify)) for _ in range(width)]
    stop = threading.Event()
    failures: list[tuple[int, str, SmpcError]] = []
    lock = threading.Lock()

    def work(worker: int) -> int:
        pool = pools[worker]
        sent = 0
        for job in jobs[worker::width]:
            if stop.is_set():
                break
            try:
                _send_with_retries(job, pool, retries)
            except SmpcError as exc:
                stop.set()
                with lock:
                    failures.append((job.index, job.label, exc))
                break
            sent += 1
        return sent

    try:
        with ThreadPoolExecutor(width, thread_name_prefix="smpcloud-upload") as executor:
            start = time.perf_counter()
            accepted = sum(executor.map(work, range(width)))
            elapsed = time.perf_counter() - start
    finally:
        if transport is None:
            for pool in pools:
                pool.release()
    if failures:
        index, label, error = min(failures, key=lambda failure: failure[0])
        raise UploadError(
            f"{label} failed: {type(error).__name__}: {error} "
            f"({accepted} of {len(jobs)} request(s) accepted before the upload stopped)",
            index=index,
            accepted=accepted,
            error=error,
        ) from error
    return UploadSummary(reports, accepted, elapsed, width)


def upload_reports(
    base_url: str,
    task_id: str,
    reports: Sequence[tuple[str, PreparedReport]],
    *,
    connections: int = DEFAULT_CONNECTIONS,
    retries: int = 1,
    timeout: float = DEFAULT_TIMEOUT,
    transport: httpx.BaseTransport | None = None,
) -> UploadSummary:
    """Upload many clients' Paillier reports, each with its own token, concurrently.

    Each report goes in its own request, sent by :meth:`smpcloud.client.Client.upload` with
    that client's token; ``connections`` threads share the work (report i on thread
    i mod connections), each over one keep-alive connection pool. Everything is checked before
    anything is sent.

    Args:
        base_url: the service's root URL.
        task_id: the task every report was prepared for.
        reports: (client token, report from :func:`~smpcloud.client.prepare_report`) pairs.
        connections: worker threads, 1..256 (default 16).
        retries: extra attempts after a :class:`~smpcloud.errors.TransportError` (0..10).
        timeout: seconds per HTTP request.
        transport: an ``httpx`` transport instead of the network (shared by the threads).

    Returns:
        The counts and the seconds from the first request to the last answer.

    Raises:
        InvalidInputError: a bad argument, an empty token, or a report prepared for another
            task (nothing was sent).
        UploadError: a report was refused or could not be delivered; names the first failed
            one, with the SDK's exception (e.g. ``DuplicateSubmissionError``,
            ``TaskStateError``, ``TransportError``) as its cause.
    """
    _check_connections(connections, retries)
    _check_url(base_url)
    if not isinstance(task_id, str) or not task_id:
        raise InvalidInputError("task_id must be a non-empty string")
    jobs: list[_Job] = []
    total = len(reports)
    for i, item in enumerate(reports):
        if not isinstance(item, tuple) or len(item) != 2:
            raise InvalidInputError(f"reports[{i}] must be a (token, PreparedReport) pair")
        token, report = item
        if not isinstance(token, str) or not token:
            raise InvalidInputError(f"reports[{i}] has an empty token")
        if not isinstance(report, PreparedReport):
            raise InvalidInputError(f"reports[{i}] is not a PreparedReport")
        if report.task_id != task_id:
            raise InvalidInputError(f"reports[{i}] was prepared for another task")

        def send(
            pool: httpx.BaseTransport, token: str = token, report: PreparedReport = report
        ) -> None:
            with Client(base_url, task_id, token, timeout=timeout, transport=pool) as client:
                client.upload(report)

        label = f"the report of client {i + 1} of {total} (reports[{i}]) to {base_url}"
        jobs.append(_Job(i, label, send))
    return _run(
        jobs,
        reports=total,
        connections=connections,
        retries=retries,
        transport=transport,
        https=base_url.startswith("https://"),
    )


def upload_shares(
    reports: Sequence[tuple[ShamirCredentials, ShamirPreparedReport]],
    *,
    connections: int = DEFAULT_CONNECTIONS,
    retries: int = 1,
    timeout: float = DEFAULT_TIMEOUT,
    transports: Mapping[int, httpx.BaseTransport] | None = None,
) -> UploadSummary:
    """Upload many clients' Shamir shares: share j of each client to server j, concurrently.

    Each share goes in its own request to its own server with the client's token there, the
    body :meth:`~smpcloud.client.ShamirPreparedReport.request_body` (as
    :class:`~smpcloud.client.ShamirClient` sends it). Unlike ``ShamirClient``, which settles
    for t servers, every share must be accepted: the first refusal stops the upload. Report
    i's shares are requests n i .. n i + n - 1, spread over the threads like
    :func:`upload_reports`'s. Everything is checked before anything is sent.

    Args:
        reports: (credentials from :meth:`~smpcloud.client.ShamirAggregation.register`, shares
            from :func:`~smpcloud.client.prepare_shares`) pairs.
        connections: worker threads, 1..256 (default 16).
        retries: extra attempts after a :class:`~smpcloud.errors.TransportError` (0..10).
        timeout: seconds per HTTP request.
        transports: ``httpx`` transports instead of the network, by server index j (tests);
            every server needs one when given.

    Returns:
        The counts (requests: n per client) and the seconds from the first request to the last
        answer.

    Raises:
        InvalidInputError: a bad argument, or shares that do not match their credentials'
            servers (nothing was sent).
        UploadError: a share was refused or could not be delivered; names the first failed
            client and server, with the SDK's exception as its cause.
    """
    _check_connections(connections, retries)
    jobs: list[_Job] = []
    total = len(reports)
    lent = {j: _Pooled(t) for j, t in transports.items()} if transports is not None else None
    urls: set[str] = set()
    for i, item in enumerate(reports):
        if not isinstance(item, tuple) or len(item) != 2:
            raise InvalidInputError(
                f"reports[{i}] must be a (ShamirCredentials, ShamirPreparedReport) pair"
            )
        credentials, report = item
        if not isinstance(credentials, ShamirCredentials):
            raise InvalidInputError(f"reports[{i}] has no ShamirCredentials")
        if not isinstance(report, ShamirPreparedReport):
            raise InvalidInputError(f"reports[{i}] is not a ShamirPreparedReport")
        if len(report.shares) != len(credentials.endpoints):
            raise InvalidInputError(
                f"reports[{i}] holds {len(report.shares)} shares for "
                f"{len(credentials.endpoints)} servers"
            )
        for endpoint in credentials.endpoints:
            urls.add(endpoint.base_url)
            body = report.request_body(endpoint.server)
            path = task_path(endpoint.task_id, "reports")
            chosen = lent.get(endpoint.server) if lent is not None else None
            if lent is not None and chosen is None:
                raise InvalidInputError(f"no transport for server {endpoint.server}")

            def send(
                pool: httpx.BaseTransport,
                url: str = endpoint.base_url,
                token: str = endpoint.token,
                path: str = path,
                body: dict[str, object] = body,
                chosen: httpx.BaseTransport | None = chosen,
            ) -> None:
                with Connection(url, token, timeout=timeout, transport=chosen or pool) as conn:
                    conn.request("POST", path, ReportAcceptedOut, json=body, expected=201)

            label = (
                f"the share of client {credentials.client_id} (reports[{i}]) to server "
                f"{endpoint.server} ({endpoint.base_url})"
            )
            jobs.append(_Job(i, label, send))
    for url in urls:
        _check_url(url)
    return _run(
        jobs,
        reports=total,
        connections=connections,
        retries=retries,
        transport=_NoTransport() if lent is not None else None,
        https=any(url.startswith("https://") for url in urls),
    )


class _NoTransport(httpx.BaseTransport):
    """Stands in for the per-thread pools when every server has the caller's transport."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:  # pragma: no cover
        raise TransportError("no transport for this server")


__all__ = [
    "DEFAULT_CONNECTIONS",
    "MAX_CONNECTIONS",
    "UploadError",
    "UploadSummary",
    "upload_reports",
    "upload_shares",
]

"""Bulk upload: many clients' prepared reports, for simulations, benchmarks and gateways.

A caller that carries the reports of many clients (each prepared on its owner's side with
:func:`~smpcloud.client.prepare_report` or :func:`~smpcloud.client.prepare_shares`, each with
its owner's token) uploads them here instead of opening one SDK object per client by hand:

* :func:`upload_reports`: Paillier tasks, one :class:`~smpcloud.client.PreparedReport` per
  client, each sent as :meth:`smpcloud.client.Client.upload` sends it, with that client's
  token;
* :func:`upload_shares`: Shamir tasks, one :class:`~smpcloud.client.ShamirPreparedReport` per
  client, share j sent to server j with the client's token there, as
  :class:`~smpcloud.client.ShamirClient` sends it.

The request body, the authentication (each client's own bearer token) and the error mapping
are the SDK's own (:class:`~smpcloud.client._http.Connection`). ``connections`` worker threads
share the work, each with one keep-alive connection pool and one SDK connection per server,
which sends each request with the token of the client it belongs to. The first refusal stops
them all and raises :class:`UploadError`, which names the first failed client (never its
token) and carries the SDK's exception as its cause.

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
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Final

import httpx

from smpcloud.client._http import DEFAULT_TIMEOUT, Connection, task_path
from smpcloud.client.sdk import PreparedReport
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
    """One request: the body ``body`` posted to ``path`` on ``url`` with ``token``."""

    index: int
    label: str
    url: str
    token: str = field(repr=False)
    path: str
    body: dict[str, object] = field(repr=False)
    transport: httpx.BaseTransport | None = None


class _Pooled(httpx.BaseTransport):
    """A worker's keep-alive pool, lent to its connections (closing them leaves it open)."""

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


def _send(session: Connection, job: _Job, retries: int) -> None:
    """Post one job's body as its client; a duplicate after a lost answer counts as accepted."""
    attempts = 0
    while True:
        try:
            session.request(
                "POST", job.path, ReportAcceptedOut, json=job.body, expected=201, token=job.token
            )
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
    timeout: float,
) -> UploadSummary:
    """Send every job on ``connections`` threads (job i on thread i mod width); time it.

    Each thread has its own keep-alive pool (unless the caller gave transports) and one
    :class:`Connection` per server, all made before the clock starts.
    """
    width = max(1, min(connections, len(jobs)))
    if not jobs:
        return UploadSummary(reports, 0, 0.0, width)
    https = any(job.url.startswith("https://") for job in jobs)
    verify: ssl.SSLContext | bool = httpx.create_ssl_context() if https else True
    owned: list[_Pooled] = []
    sessions: list[dict[str, Connection]] = []
    for worker in range(width):
        pool: _Pooled | None = None
        mine: dict[str, Connection] = {}
        for job in jobs[worker::width]:
            if job.url in mine:
                continue
            if job.transport is not None:
                lent = _Pooled(job.transport)
            else:
                if pool is None:
                    pool = _Pooled(httpx.HTTPTransport(verify=verify))
                    owned.append(pool)
                lent = pool
            mine[job.url] = Connection(job.url, job.token, timeout=timeout, transport=lent)
        sessions.append(mine)
    stop = threading.Event()
    failures: list[tuple[int, str, SmpcError]] = []
    lock = threading.Lock()

    def work(worker: int) -> int:
        mine = sessions[worker]
        sent = 0
        for job in jobs[worker::width]:
            if stop.is_set():
                break
            try:
                _send(mine[job.url], job, retries)
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
        for mine in sessions:
            for session in mine.values():
                session.close()
        for pool in owned:
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

    Each report goes in its own request with that client's token, the request
    :meth:`smpcloud.client.Client.upload` sends (body :meth:`PreparedReport.request_body
    <smpcloud.client.PreparedReport.request_body>`); ``connections`` threads share the work
    (report i on thread i mod connections), each over one keep-alive connection pool.
    Everything is checked, and every body serialised, before anything is sent. Nothing here
    checks who vouches for the key: the reports must have been prepared from a verified
    :meth:`smpcloud.client.Client.info` (the key holders' certificates checked against the
    pinned roster) or the caller's own check
    (:func:`~smpcloud.protocol.certificates.verify_certified`), never from an unchecked
    :meth:`~smpcloud.client.Admin.info`.

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
    path = task_path(task_id, "reports")  # refuses an empty task id
    base_url = base_url.rstrip("/")
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
        label = f"the report of client {i + 1} of {total} (reports[{i}]) to {base_url}"
        jobs.append(_Job(i, label, base_url, token, path, report.request_body(), transport))
    return _run(jobs, reports=total, connections=connections, retries=retries, timeout=timeout)


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
            _check_url(endpoint.base_url)
            chosen = None
            if transports is not None:
                chosen = transports.get(endpoint.server)
                if chosen is None:
                    raise InvalidInputError(f"no transport for server {endpoint.server}")
            label = (
                f"the share of client {credentials.client_id} (reports[{i}]) to server "
                f"{endpoint.server} ({endpoint.base_url})"
            )
            jobs.append(
                _Job(
                    i,
                    label,
                    endpoint.base_url.rstrip("/"),
                    endpoint.token,
                    task_path(endpoint.task_id, "reports"),
                    report.request_body(endpoint.server),
                    chosen,
                )
            )
    return _run(jobs, reports=total, connections=connections, retries=retries, timeout=timeout)


__all__ = [
    "DEFAULT_CONNECTIONS",
    "MAX_CONNECTIONS",
    "UploadError",
    "UploadSummary",
    "upload_reports",
    "upload_shares",
]

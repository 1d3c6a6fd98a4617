"""SDK of the service's Shamir mode: n aggregation servers, one Shamir share of each client each.

The paper's secure sum in the cloud (protocol in :mod:`smpcloud.protocol.sharing`)::

    from smpcloud.client import ShamirAggregation, ShamirClient, ShamirServer, TaskEncoding

    servers = [ShamirServer(url, admin_token) for url, admin_token in deployment]   # n = 3
    with ShamirAggregation.create_on_servers(
        servers, name="average BMI", threshold=2, min_clients=10,
        encoding=TaskEncoding.fixed(16, 0.0, 100.0),
    ) as aggregation:
        credentials = aggregation.register(100)      # hand credentials[i] to client i privately
        ...                                          # on each client's machine:
        with ShamirClient(credentials[0]) as client:
            client.submit(23.4)                      # share j goes to server j
        aggregation.close_all()                      # one participant set on every server
        result = aggregation.result()                # sum, count, average from any t servers

What is revealed: each server sees uniformly random shares, who reported to it and the
participant set; the analyst (the holder of the servers' admin tokens) learns the sum and the
count over the participant set; fewer than t colluding servers learn nothing about any input.
Every server closes once, over one participant set, and t > n/2 is required, so no second sum
over a set that differs by one client (which would reveal that client's value) can be
reconstructed. Not protected against: malicious clients (no range proofs), an administrator
who registers sybil clients with known values, t or more colluding servers.

Drop-outs: a client counts if its shares reach at least t servers *and* every server the
administrator reaches at close holds its share (the participant set is the intersection); up to
n - t servers may be offline at any step. A client keeps its shares in memory until all n
servers have them: :meth:`ShamirClient.retry` re-sends the *same* shares to the servers it
missed. Sharing again from a fresh object after a partial upload would mix two sharings, so
:meth:`ShamirClient.submit` first asks every reachable server whether it already holds this
client's report and sends nothing if one does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Final, Self, TypeVar

import httpx
import numpy as np
from pydantic import BaseModel, ValidationError

from smpcloud.client._http import DEFAULT_TIMEOUT, Connection, task_path, validation_summary
from smpcloud.client._values import as_values
from smpcloud.crypto.shamir import Share, reconstruct_elements, share_elements
from smpcloud.crypto.wire import JSON_VERSION, check_json_object
from smpcloud.errors import (
    InvalidInputError,
    SmpcError,
    ThresholdNotMetError,
    TransportError,
    VerificationError,
)
from smpcloud.protocol.problems import DuplicateSubmissionError
from smpcloud.protocol.schemas import (
    DEFAULT_MAX_CLIENTS,
    INTEGER_ENCODING,
    MAX_REGISTRATIONS_PER_REQUEST,
    ClientsIn,
    ClientsOut,
    CloseIn,
    ReportAcceptedOut,
    ReportersOut,
    ReportIn,
    ShamirAggregateOut,
    TaskCreatedOut,
    TaskEncoding,
    TaskIn,
    TaskInfoOut,
    TaskStatusOut,
)
from smpcloud.protocol.sharing import (
    SHAMIR_FIELD,
    check_shamir_parameters,
    check_sum_range,
    decode_share,
    encode_share,
)

T = TypeVar("T")
ModelT = TypeVar("ModelT", bound=BaseModel)

_REASON_CHARS: Final = 300
#: The ``kind`` of :meth:`ShamirCredentials.to_json` objects.
CREDENTIALS_KIND: Final = "smpcloud-shamir-credentials"


# ------------------------------------------------------------------------------ value types


@dataclass(frozen=True, slots=True)
class ShamirServer:
    """One aggregation server as the administrator reaches it: its URL and admin token."""

    base_url: str
    admin_token: str = field(repr=False)

    def __repr__(self) -> str:
        return f"ShamirServer(base_url={self.base_url!r}, admin_token=<redacted>)"


@dataclass(frozen=True, slots=True)
class ShamirTask:
    """Where a Shamir task lives: ``task_ids[j - 1]`` on ``base_urls[j - 1]`` is server j's part."""

    base_urls: tuple[str, ...]
    task_ids: tuple[str, ...]
    threshold: int

    @property
    def servers(self) -> int:
        """n, the number of servers."""
        return len(self.task_ids)


@dataclass(frozen=True, slots=True)
class ShamirEndpoint:
    """Where a client uploads its share for server ``server`` (j): URL, task id, token there."""

    server: int
    base_url: str
    task_id: str
    token: str = field(repr=False)

    def __repr__(self) -> str:
        return (
            f"ShamirEndpoint(server={self.server}, base_url={self.base_url!r}, "
            f"task_id={self.task_id!r}, token=<redacted>)"
        )


@dataclass(frozen=True, slots=True)
class ShamirCredentials:
    """A client's number in the task and its token on each server (hand over privately).

    Attributes:
        client_id: the client's number, the same on every server.
        threshold: t, as set by the administrator (the client refuses servers that say else).
        endpoints: one per server, in server order (``endpoints[j - 1].server == j``).
    """

    client_id: int
    threshold: int
    endpoints: tuple[ShamirEndpoint, ...]

    def to_json(self) -> dict[str, object]:
        """Return the JSON object (kind ``smpcloud-shamir-credentials``, version 1).

        It holds the client's secret tokens: store it with mode 0600, send it privately.
        """
        return {
            "kind": CREDENTIALS_KIND,
            "version": JSON_VERSION,
            "client_id": self.client_id,
            "threshold": self.threshold,
            "endpoints": [
                {"server": e.server, "base_url": e.base_url, "task_id": e.task_id, "token": e.token}
                for e in self.endpoints
            ],
        }

    @classmethod
    def from_json(cls, data: object) -> ShamirCredentials:
        """Parse :meth:`to_json` output strictly.

        Raises:
            InvalidInputError: wrong kind or version, missing or extra fields, wrong types,
                servers not listed 1..n in order, (n, t) not allowed.
        """
        obj = check_json_object(data, CREDENTIALS_KIND, ("client_id", "threshold", "endpoints"))
        client_id, t, items = obj["client_id"], obj["threshold"], obj["endpoints"]
        if type(client_id) is not int or client_id < 1 or type(t) is not int:
            raise InvalidInputError(f"{CREDENTIALS_KIND}: client_id and threshold are integers")
        if not isinstance(items, list):
            raise InvalidInputError(f"{CREDENTIALS_KIND}: endpoints must be a list")
        endpoints = []
        for j, item in enumerate(items, start=1):
            if not isinstance(item, dict) or set(item) != {
                "server",
                "base_url",
                "task_id",
                "token",
            }:
                raise InvalidInputError(
                    f"{CREDENTIALS_KIND}: endpoints[{j - 1}] needs server, base_url, task_id, token"
                )
            server, url, task_id, token = (
                item["server"],
                item["base_url"],
                item["task_id"],
                item["token"],
            )
            if server != j or type(server) is not int:
                raise InvalidInputError(f"{CREDENTIALS_KIND}: endpoints must list servers 1..n")
            if not all(isinstance(v, str) and v for v in (url, task_id, token)):
                raise InvalidInputError(
                    f"{CREDENTIALS_KIND}: endpoints[{j - 1}] has an empty or non-text field"
                )
            endpoints.append(ShamirEndpoint(server, url, task_id, token))
        check_shamir_parameters(len(endpoints), t)
        return cls(client_id=client_id, threshold=t, endpoints=tuple(endpoints))


@dataclass(frozen=True, slots=True)
class ShamirTaskInfo:
    """What the servers of a Shamir task agree on: encoding, length, n, t, limits."""

    name: str
    length: int
    encoding: TaskEncoding
    servers: int
    threshold: int
    min_clients: int
    max_clients: int
    deadline: datetime | None


@dataclass(frozen=True, slots=True)
class ShamirPreparedReport:
    """One client's Shamir shares, ready to upload: ``shares[j - 1]`` goes to server j.

    Secret: any t of the shares rebuild the client's values. Keep it in memory only, send each
    share to its own server only, and drop it once every server holds its share. Its ``repr``
    shows no share.
    """

    shares: tuple[str, ...] = field(repr=False)

    def __repr__(self) -> str:
        return f"ShamirPreparedReport(servers={len(self.shares)}, shares=<redacted>)"

    def request_body(self, server: int) -> dict[str, object]:
        """Return the JSON body of the upload to server ``server`` (j, from 1), as sent.

        Raises:
            InvalidInputError: no server j.
        """
        if type(server) is not int or not 1 <= server <= len(self.shares):
            raise InvalidInputError(f"server must be an int in 1..{len(self.shares)}")
        return ReportIn(share=self.shares[server - 1]).model_dump(exclude_none=True)


@dataclass(frozen=True, slots=True)
class ShamirSubmission:
    """Which servers hold this client's share.

    Attributes:
        client_id: the client's number.
        reached: servers that hold its share (at least t, or submit raised).
        failed: servers that do not, with the reason (unreachable, refused...).
    """

    client_id: int
    reached: tuple[int, ...]
    failed: Mapping[int, str]

    @property
    def complete(self) -> bool:
        """True when every server holds the share (nothing left to retry)."""
        return not self.failed


@dataclass(frozen=True, slots=True)
class ShamirClosed:
    """The outcome of :meth:`ShamirAggregation.close_all`.

    Attributes:
        participants: the participant set every closed server summed over.
        closed: servers closed over that set (at least t).
        unavailable: servers not closed, with the reason (offline, refused...).
    """

    participants: tuple[int, ...]
    closed: tuple[int, ...]
    unavailable: Mapping[int, str]

    @property
    def count(self) -> int:
        """The number of participants."""
        return len(self.participants)


@dataclass(frozen=True, slots=True)
class ShamirResult:
    """The reconstructed result: per element, the sum and the average over ``count`` clients.

    Attributes:
        count: the number of participants.
        sum: ints for integer tasks, floats for fixed-point ones, one per element.
        average: sum / count per element.
        participants: the client numbers summed over.
        servers: the servers whose shares of the sum were combined (or cross-checked).
        unavailable: servers that did not give a usable share, with the reason.
        within_declared_range: False proves some client sent a value outside the declared
            range (see :class:`~smpcloud.protocol.schemas.TaskEncoding`).
    """

    count: int
    sum: list[int | float]
    average: list[float]
    participants: list[int]
    servers: list[int]
    unavailable: Mapping[int, str]
    within_declared_range: bool


# ---------------------------------------------------------------------------------- helpers


def _reason(exc: BaseException) -> str:
    kind = "unreachable" if isinstance(exc, TransportError) else type(exc).__name__
    text = f"{kind}: {exc}"
    return text if len(text) <= _REASON_CHARS else text[: _REASON_CHARS - 3] + "..."


def _describe(failures: Mapping[int, str]) -> str:
    return "; ".join(f"server {j}: {why}" for j, why in sorted(failures.items()))


def _named(exc: SmpcError, server: int, base_url: str) -> SmpcError:
    exc.add_note(f"server {server} ({base_url})")
    return exc


def _task_info(out: TaskInfoOut) -> ShamirTaskInfo:
    if out.scheme != "shamir" or out.servers is None or out.server_index is None:
        raise InvalidInputError(f"task {out.task_id!r} is not a Shamir task")
    if out.field != list(SHAMIR_FIELD.moduli):
        raise VerificationError(f"task {out.task_id!r} uses a field other than the Shamir field")
    return ShamirTaskInfo(
        name=out.name,
        length=out.length,
        encoding=out.encoding,
        servers=out.servers,
        threshold=out.threshold,
        min_clients=out.min_clients,
        max_clients=out.max_clients,
        deadline=out.deadline,
    )


def _agreed_info(
    infos: Mapping[int, TaskInfoOut], *, servers: int, threshold: int
) -> ShamirTaskInfo:
    """Check that every server answered for its own index and that all agree; return the info.

    Raises:
        VerificationError: a server that disagrees (named) on n, t, its index, the field, the
            length, the encoding or the limits.
    """
    agreed: ShamirTaskInfo | None = None
    for j, out in sorted(infos.items()):
        info = _task_info(out)
        if out.server_index != j:
            raise VerificationError(f"server {j} says it is server {out.server_index}")
        if (info.servers, info.threshold) != (servers, threshold):
            raise VerificationError(
                f"server {j} has n={info.servers}, t={info.threshold}; expected n={servers}, "
                f"t={threshold}"
            )
        if agreed is None:
            agreed = info
        elif info != agreed:
            raise VerificationError(
                f"server {j} disagrees with server {min(infos)} on the task (length, encoding "
                "or limits)"
            )
    if agreed is None:
        raise ThresholdNotMetError("no server answered")
    return agreed


def _each(
    targets: Sequence[tuple[int, T]], call: Callable[[int, T], ModelT]
) -> tuple[dict[int, ModelT], dict[int, str]]:
    """Call every server; return the answers and, for the others, why they did not answer."""
    answers: dict[int, ModelT] = {}
    failures: dict[int, str] = {}
    for j, target in targets:
        try:
            answers[j] = call(j, target)
        except SmpcError as exc:
            failures[j] = _reason(exc)
    return answers, failures


def prepare_shares(
    info: ShamirTaskInfo, values: float | int | Sequence[float | int]
) -> ShamirPreparedReport:
    """Encode, range-check and Shamir-share one client's values (t-of-n); no network.

    The local half of :meth:`ShamirClient.prepare`, for callers that already hold the task's
    info. Shares come from the OS CSPRNG; fewer than t of them reveal nothing about the values.

    Args:
        info: what the servers agree on (:meth:`ShamirClient.info` or
            :meth:`ShamirAggregation.info`): encoding, length, n and t.
        values: a scalar or ``info.length`` values.

    Returns:
        The n shares, as the report bodies carry them.

    Raises:
        InvalidInputError: wrong number of values or a non-number.
        OverflowDetectedError: a value outside the declared range, NaN or infinite.
    """
    items = as_values(values)
    if len(items) != info.length:
        raise InvalidInputError(
            f"this task takes {info.length} value(s) per client; got {len(items)}"
        )
    encoded = [info.encoding.encode(v, index=i) for i, v in enumerate(items)]
    try:
        plain = np.array(encoded, dtype=np.int64)
    except OverflowError:  # encodings beyond 64 bits: exact Python ints
        plain = np.array(encoded, dtype=object)
    secret = SHAMIR_FIELD.from_ints(plain)
    blocks = share_elements(SHAMIR_FIELD, secret, n=info.servers, t=info.threshold)
    report = ShamirPreparedReport(tuple(encode_share(y) for y in blocks))
    del secret, blocks
    return report


# ------------------------------------------------------------------------------ aggregation


class ShamirAggregation:
    """The administrator and analyst of a Shamir task on n servers.

    Creates the task on every server, registers clients, closes every reachable server over
    one participant set and rebuilds the sum from any t servers' shares of it. Learns the sum
    and the count over the participant set, and who reported to which server; never a
    client's value (unless the administrator cheats with sybil clients, see the module doc).

    Args:
        servers: the n servers, in order: server j is ``servers[j - 1]``.
        task_ids: the task's id on each server, in the same order.
        threshold: t, the number of servers' shares that rebuild the sum (t > n/2).
        timeout: seconds per HTTP request.
        transports: ``httpx`` transports instead of the network, one per server (tests).

    Raises:
        InvalidInputError: mismatched lengths or (n, t) outside 2 <= t <= n, t > n/2.
    """

    def __init__(
        self,
        servers: Sequence[ShamirServer],
        task_ids: Sequence[str],
        *,
        threshold: int,
        timeout: float = DEFAULT_TIMEOUT,
        transports: Sequence[httpx.BaseTransport | None] | None = None,
    ) -> None:
        if len(task_ids) != len(servers):
            raise InvalidInputError(f"{len(servers)} servers but {len(task_ids)} task ids")
        check_shamir_parameters(len(servers), threshold)
        self.task = ShamirTask(
            tuple(s.base_url for s in servers), tuple(task_ids), threshold=threshold
        )
        self._conns = _connections(servers, timeout, transports)
        self._info: ShamirTaskInfo | None = None

    @classmethod
    def create_on_servers(
        cls,
        servers: Sequence[ShamirServer],
        *,
        name: str,
        threshold: int,
        length: int = 1,
        encoding: TaskEncoding = INTEGER_ENCODING,
        min_clients: int,
        max_clients: int = DEFAULT_MAX_CLIENTS,
        deadline: datetime | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        transports: Sequence[httpx.BaseTransport | None] | None = None,
    ) -> ShamirAggregation:
        """Create the task on every server (server j gets index j) and return its handle.

        Every server must be reachable. The parameters are those of
        :meth:`smpcloud.client.Admin.create_task`, with ``threshold`` t instead of a key.

        Raises:
            InvalidInputError: bad parameters (checked locally first, then by each server):
                t outside 2..n or t <= n/2, sums that could wrap modulo the field's modulus.
            SmpcError: a server refused or could not be reached (the note names it; the task
                may already exist on the servers before it, unused).
        """
        n = len(servers)
        check_shamir_parameters(n, threshold)
        check_sum_range(encoding.max_abs_encoded(), max_clients)
        conns = _connections(servers, timeout, transports)
        task_ids: list[str] = []
        try:
            for j, conn in enumerate(conns, start=1):
                try:
                    body = TaskIn(
                        name=name,
                        scheme="shamir",
                        servers=n,
                        threshold=threshold,
                        server_index=j,
                        length=length,
                        encoding=encoding,
                        min_clients=min_clients,
                        max_clients=max_clients,
                        deadline=deadline,
                    )
                except ValidationError as exc:
                    raise InvalidInputError(f"invalid task: {validation_summary(exc)}") from None
                try:
                    out = conn.request(
                        "POST",
                        "/v1/tasks",
                        TaskCreatedOut,
                        json=body.model_dump(mode="json"),
                        expected=201,
                    )
                except SmpcError as exc:
                    raise _named(exc, j, conn.base_url) from None
                task_ids.append(out.task_id)
        finally:
            for conn in conns:
                conn.close()
        return cls(servers, task_ids, threshold=threshold, timeout=timeout, transports=transports)

    # ------------------------------------------------------------------ plumbing

    def disconnect(self) -> None:
        """Close the HTTP connections (the object is unusable afterwards)."""
        for conn in self._conns:
            conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.disconnect()

    def _targets(self) -> list[tuple[int, tuple[Connection, str]]]:
        return [
            (j, (conn, task_id))
            for j, (conn, task_id) in enumerate(
                zip(self._conns, self.task.task_ids, strict=True), start=1
            )
        ]

    def _get_all(
        self, suffix: tuple[str, ...], model: type[ModelT], *, only: set[int] | None = None
    ) -> tuple[dict[int, ModelT], dict[int, str]]:
        def call(_j: int, target: tuple[Connection, str]) -> ModelT:
            conn, task_id = target
            return conn.request("GET", task_path(task_id, *suffix), model)

        targets = [t for t in self._targets() if only is None or t[0] in only]
        return _each(targets, call)

    # ------------------------------------------------------------------ views

    def info(self) -> ShamirTaskInfo:
        """Return what the reachable servers agree on (fetched once, then cached).

        Raises:
            VerificationError: servers disagree on the task.
            ThresholdNotMetError: no server answered (the message names why).
        """
        if self._info is None:
            infos, failures = self._get_all((), TaskInfoOut)
            if not infos:
                raise ThresholdNotMetError(f"no server answered: {_describe(failures)}")
            self._info = _agreed_info(
                infos, servers=self.task.servers, threshold=self.task.threshold
            )
        return self._info

    def statuses(self) -> tuple[dict[int, TaskStatusOut], dict[int, str]]:
        """Return each reachable server's status, and why the others did not answer."""
        return self._get_all(("status",), TaskStatusOut)

    def reporters(self) -> tuple[dict[int, list[int]], dict[int, str]]:
        """Return, per reachable server, the client numbers whose share it holds."""
        answers, failures = self._get_all(("reporters",), ReportersOut)
        return {j: list(out.clients) for j, out in answers.items()}, failures

    # ------------------------------------------------------------------ admin

    def register(self, count: int) -> list[ShamirCredentials]:
        """Register ``count`` clients on every server; return each client's credentials.

        Every server must be reachable, open and have as many clients as the others, so that
        client numbers line up. Tokens are shown only now.

        Raises:
            TransportError, SmpcError: a server could not be reached or refused (named in a
                note); VerificationError: servers with different client counts or numbering.
        """
        if type(count) is not int or count < 1:
            raise InvalidInputError("count must be a positive integer")
        statuses, failures = self.statuses()
        if failures:
            raise ThresholdNotMetError(
                f"registration needs every server, to keep client numbers aligned: "
                f"{_describe(failures)}"
            )
        registered = {j: status.registered_clients for j, status in statuses.items()}
        if len(set(registered.values())) != 1:
            raise VerificationError(
                f"servers have different numbers of registered clients {registered}: client "
                "numbers no longer line up"
            )
        per_server: list[list[tuple[int, str]]] = []
        for j, (conn, task_id) in self._targets():
            issued: list[tuple[int, str]] = []
            remaining = count
            while remaining:
                batch = min(remaining, MAX_REGISTRATIONS_PER_REQUEST)
                try:
                    out = conn.request(
                        "POST",
                        task_path(task_id, "clients"),
                        ClientsOut,
                        json=ClientsIn(count=batch).model_dump(),
                        expected=201,
                    )
                except SmpcError as exc:
                    raise _named(exc, j, conn.base_url) from None
                issued.extend((c.client_id, c.token) for c in out.clients)
                remaining -= batch
            per_server.append(issued)
        numbers = [number for number, _ in per_server[0]]
        for j, issued in enumerate(per_server, start=1):
            if [number for number, _ in issued] != numbers:
                raise VerificationError(f"server {j} numbered the new clients differently")
        return [
            ShamirCredentials(
                client_id=number,
                threshold=self.task.threshold,
                endpoints=tuple(
                    ShamirEndpoint(j, base_url, task_id, per_server[j - 1][i][1])
                    for j, (base_url, task_id) in enumerate(
                        zip(self.task.base_urls, self.task.task_ids, strict=True), start=1
                    )
                ),
            )
            for i, number in enumerate(numbers)
        ]

    def close_all(self) -> ShamirClosed:
        """Close every reachable server over one participant set; return the set and servers.

        The set is the clients whose share every reachable server holds (or, when some
        servers are already closed, the set they were closed over: running close_all again
        after a partial failure finishes the job). Servers that cannot be reached are skipped
        and named. Nothing is closed unless at least t servers can be and the set has at
        least min_clients clients.

        Reveals to each server the participant set.

        Raises:
            ThresholdNotMetError: fewer than t servers reachable or closed (named, with why).
            InvalidInputError: the participant set is smaller than min_clients (nothing closed).
            VerificationError: servers already closed over different sets.
        """
        t = self.task.threshold
        statuses, unavailable = self.statuses()
        if len(statuses) < t:
            raise ThresholdNotMetError(
                f"only {len(statuses)} of {self.task.servers} servers answer; closing needs at "
                f"least t={t}: {_describe(unavailable)}"
            )
        closed = {j for j, status in statuses.items() if status.state != "open"}
        held, failed = self.reporters()
        unavailable.update(failed)
        participants: list[int]
        if closed:
            aggregates, failed = self._get_all(("aggregate",), ShamirAggregateOut, only=closed)
            unavailable.update(failed)
            sets = {tuple(out.clients) for out in aggregates.values()}
            if not sets:
                raise ThresholdNotMetError(
                    f"servers {sorted(closed)} are closed but none tells its participant set: "
                    f"{_describe(unavailable)}"
                )
            if len(sets) > 1:
                raise VerificationError(
                    f"servers {sorted(aggregates)} were closed over different participant sets"
                )
            participants = list(sets.pop())
        else:
            if len(held) < t:
                raise ThresholdNotMetError(
                    f"only {len(held)} server(s) list their reports, fewer than t={t}: "
                    f"{_describe(unavailable)}"
                )
            common = set.intersection(*(set(clients) for clients in held.values()))
            participants = sorted(common)
        min_clients = min(status.min_clients for status in statuses.values())
        if len(participants) < min_clients:
            raise InvalidInputError(
                f"only {len(participants)} client(s) have a share on every reachable server, "
                f"fewer than min_clients={min_clients}: nothing was closed"
            )
        done = {j for j in closed if j not in unavailable}
        body = CloseIn(clients=participants).model_dump()
        for j, (conn, task_id) in self._targets():
            if j in done or j in unavailable or j not in held:
                continue
            try:
                conn.request("POST", task_path(task_id, "close"), TaskStatusOut, json=body)
                done.add(j)
            except SmpcError as exc:
                unavailable[j] = _reason(exc)
        for j in done:
            unavailable.pop(j, None)
        if len(done) < t:
            raise ThresholdNotMetError(
                f"only {len(done)} server(s) closed over the participant set, fewer than t={t}: "
                f"{_describe(unavailable)}"
            )
        return ShamirClosed(tuple(participants), tuple(sorted(done)), dict(unavailable))

    # ------------------------------------------------------------------ analyst

    def result(self) -> ShamirResult:
        """Rebuild the sum from any t servers' shares of it; return sum, count and average.

        Servers that are offline, still open or give an unusable answer are skipped and named.
        With more than t usable shares the sum is rebuilt from two different groups of t and
        both must agree, which detects a server that returns a wrong share.

        Reveals to the caller the sum and the count over the participant set.

        Raises:
            ThresholdNotMetError: fewer than t servers gave a share of the same sum (the
                message names the others and why).
            VerificationError: servers disagree on the task, or their shares are inconsistent.
        """
        t = self.task.threshold
        info = self.info()
        aggregates, unavailable = self._get_all(("aggregate",), ShamirAggregateOut)
        shares: dict[int, Share] = {}
        for j, out in sorted(aggregates.items()):
            try:
                shares[j] = self._share_of(j, out, info)
            except SmpcError as exc:
                unavailable[j] = _reason(exc)
        groups: dict[tuple[int, ...], list[int]] = {}
        for j in shares:
            groups.setdefault(tuple(aggregates[j].clients), []).append(j)
        chosen = next((g for g in groups.items() if len(g[1]) >= t), None)
        if chosen is None:
            for servers in groups.values():
                for j in servers:
                    unavailable[j] = "closed over a participant set fewer than t servers share"
            raise ThresholdNotMetError(
                f"{len(shares)} server(s) gave a share of the sum, fewer than t={t} of the same "
                f"sum: {_describe(unavailable)}"
            )
        participants, servers = chosen
        for others in groups.values():
            for j in others:
                if j not in servers:
                    unavailable[j] = "closed over another participant set"
        used = [shares[j] for j in servers]
        total = reconstruct_elements(used[:t], field=SHAMIR_FIELD)
        if len(used) > t and not np.array_equal(
            total, reconstruct_elements(used[-t:], field=SHAMIR_FIELD)
        ):
            raise VerificationError(
                f"the shares of servers {servers} do not lie on one polynomial of degree "
                f"{t - 1}: some server returned a wrong share of the sum"
            )
        count = len(participants)
        sums = [int(v) for v in SHAMIR_FIELD.to_ints(total)]
        encoding = info.encoding
        lo, hi = encoding.encoded_bounds()
        return ShamirResult(
            count=count,
            sum=[encoding.decode_sum(s) for s in sums],
            average=[encoding.average(s, count) for s in sums],
            participants=list(participants),
            servers=list(servers),
            unavailable=dict(sorted(unavailable.items())),
            within_declared_range=all(count * lo <= s <= count * hi for s in sums),
        )

    def _share_of(self, j: int, out: ShamirAggregateOut, info: ShamirTaskInfo) -> Share:
        """Validate server j's answer and return its share of the sum."""
        if out.server_index != j or out.servers != self.task.servers:
            raise VerificationError(f"answered as server {out.server_index} of {out.servers}")
        if out.threshold != self.task.threshold:
            raise VerificationError(f"answered with threshold {out.threshold}")
        if out.count != len(out.clients) or len(set(out.clients)) != len(out.clients):
            raise VerificationError("its count does not match its participant set")
        y = decode_share(out.share, length=info.length, field=SHAMIR_FIELD, what="share of the sum")
        return Share(j, y, SHAMIR_FIELD, self.task.threshold)


def _connections(
    servers: Sequence[ShamirServer],
    timeout: float,
    transports: Sequence[httpx.BaseTransport | None] | None,
) -> list[Connection]:
    if transports is not None and len(transports) != len(servers):
        raise InvalidInputError("one transport per server, or none")
    for s in servers:
        if not isinstance(s, ShamirServer):
            raise InvalidInputError("servers must be ShamirServer(base_url, admin_token) values")
    return [
        Connection(
            s.base_url,
            s.admin_token,
            timeout=timeout,
            transport=transports[i] if transports is not None else None,
        )
        for i, s in enumerate(servers)
    ]


# ----------------------------------------------------------------------------------- client


class ShamirClient:
    """A data owner of a Shamir task: shares its values t-of-n and uploads share j to server j.

    Reveals to each server: that this client reported, when, and one share, which is uniformly
    random and independent of the values. Fewer than t servers together learn nothing.

    :meth:`submit` does it all; :meth:`prepare` (check the task, share the values) and
    :meth:`upload` (one request per server) are its two halves.

    Args:
        credentials: from :meth:`ShamirAggregation.register`.
        timeout: seconds per HTTP request.
        transports: ``httpx`` transports instead of the network, by server index (tests).
    """

    def __init__(
        self,
        credentials: ShamirCredentials,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        transports: Mapping[int, httpx.BaseTransport] | None = None,
    ) -> None:
        if not isinstance(credentials, ShamirCredentials):
            raise InvalidInputError("credentials must be ShamirCredentials")
        endpoints = credentials.endpoints
        if [e.server for e in endpoints] != list(range(1, len(endpoints) + 1)):
            raise InvalidInputError("credentials must list servers 1..n in order")
        check_shamir_parameters(len(endpoints), credentials.threshold)
        self.client_id = credentials.client_id
        self._threshold = credentials.threshold
        self._endpoints = endpoints
        self._conns = {
            e.server: Connection(
                e.base_url,
                e.token,
                timeout=timeout,
                transport=(transports or {}).get(e.server),
            )
            for e in endpoints
        }
        self._pending: dict[int, str] | None = None  # share texts not yet stored (secret)
        self._prepared: ShamirPreparedReport | None = None
        self._attempted: set[int] = set()
        self._reached: set[int] = set()

    def __repr__(self) -> str:
        return f"ShamirClient(client_id={self.client_id}, servers={len(self._endpoints)})"

    def disconnect(self) -> None:
        """Close the HTTP connections and forget unsent shares."""
        self._pending = None
        self._prepared = None
        for conn in self._conns.values():
            conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.disconnect()

    def _get(
        self, suffix: tuple[str, ...], model: type[ModelT]
    ) -> tuple[dict[int, ModelT], dict[int, str]]:
        def call(_j: int, endpoint: ShamirEndpoint) -> ModelT:
            conn = self._conns[endpoint.server]
            return conn.request("GET", task_path(endpoint.task_id, *suffix), model)

        return _each([(e.server, e) for e in self._endpoints], call)

    def info(self) -> ShamirTaskInfo:
        """Return what the reachable servers agree on: encoding, length, n, t, limits.

        Raises:
            VerificationError: a server disagrees (on t, n, its index, the field, ...).
            ThresholdNotMetError: no server answered.
        """
        infos, failures = self._get((), TaskInfoOut)
        if not infos:
            raise ThresholdNotMetError(f"no server answered: {_describe(failures)}")
        return _agreed_info(infos, servers=len(self._endpoints), threshold=self._threshold)

    def prepare(self, values: float | int | Sequence[float | int]) -> ShamirPreparedReport:
        """Check the task with the servers, then encode and Shamir-share this client's values.

        Sends no share. Checks, in order: that at least t servers answer and agree on the task,
        that none already holds a report of this client, the number of values, their types and
        the declared range. The shares (OS CSPRNG) are kept in this object, in memory only,
        until every server holds its own; :meth:`upload` sends them.

        Returns:
            The shares (secret: see :class:`ShamirPreparedReport`).

        Raises:
            InvalidInputError: wrong number of values or a non-number.
            OverflowDetectedError: a value outside the declared range, NaN or infinite.
            DuplicateSubmissionError: this client already shared its values (this object: use
                upload or retry; or an earlier one: some server already holds a report).
            ThresholdNotMetError: fewer than t servers answer.
            VerificationError: the servers disagree on the task.
        """
        if self._pending is not None or self._reached:
            raise DuplicateSubmissionError(
                "this client already shared its values; call retry() to send the same shares "
                "to the servers it has not reached"
            )
        t, n = self._threshold, len(self._endpoints)
        infos, failures = self._get((), TaskInfoOut)
        if len(infos) < t:
            raise ThresholdNotMetError(
                f"only {len(infos)} of {n} servers answer, {t} needed: nothing sent; "
                f"{_describe(failures)}"
            )
        info = _agreed_info(infos, servers=n, threshold=t)
        statuses, _ = self._get(("status",), TaskStatusOut)
        already = sorted(j for j, status in statuses.items() if status.reported)
        if already:
            raise DuplicateSubmissionError(
                f"server(s) {already} already hold a report of this client from an earlier "
                "submission; new shares would not match it, so nothing was sent"
            )
        report = prepare_shares(info, values)
        self._pending = dict(enumerate(report.shares, start=1))
        self._prepared = report
        return report

    def upload(self, prepared: ShamirPreparedReport) -> ShamirSubmission:
        """Upload share j of the report made by :meth:`prepare` to server j.

        Only the report this object prepared is accepted: shares made elsewhere skipped the
        check that no server already holds a report of this client. Calling it again sends
        the same shares to the servers not reached yet (like :meth:`retry`).

        Returns:
            Which servers hold the share (at least t) and why the others do not.

        Raises:
            InvalidInputError: not the report this client prepared.
            ThresholdNotMetError: fewer than t servers took the share (named, with why; call
                retry later).
        """
        if self._prepared is None or prepared is not self._prepared:
            raise InvalidInputError("upload takes the report this client's prepare() returned")
        return self._upload()

    def submit(self, values: float | int | Sequence[float | int]) -> ShamirSubmission:
        """Encode and Shamir-share this client's values; upload share j to server j.

        Same as ``upload(prepare(values))``. Everything is checked before anything is sent:
        that at least t servers answer and agree on the task, that none already holds a report
        of this client, the number of values, their types and the declared range. Shares come
        from the OS CSPRNG. The shares are kept (in memory only) until every server holds one;
        :meth:`retry` re-sends the same ones to the servers not reached.

        Returns:
            Which servers hold the share (at least t) and why the others do not.

        Raises:
            InvalidInputError: wrong number of values or a non-number.
            OverflowDetectedError: a value outside the declared range, NaN or infinite.
            DuplicateSubmissionError: this client already shared its values (this object: use
                retry; or an earlier one: some server already holds a report, nothing sent).
            ThresholdNotMetError: fewer than t servers answer, or took the share (named, with
                why; call retry later).
            VerificationError: the servers disagree on the task.
        """
        return self.upload(self.prepare(values))

    def retry(self) -> ShamirSubmission:
        """Send the shares made by :meth:`submit` to the servers that do not hold theirs yet.

        Raises:
            InvalidInputError: nothing was shared yet.
            ThresholdNotMetError: still fewer than t servers hold a share.
        """
        if self._pending is None and not self._reached:
            raise InvalidInputError("nothing to retry: call submit() first")
        return self._upload()

    def _upload(self) -> ShamirSubmission:
        failed: dict[int, str] = {}
        pending = self._pending or {}
        for j, text in sorted(pending.items()):
            if j in self._reached:
                continue
            endpoint = self._endpoints[j - 1]
            try:
                self._conns[j].request(
                    "POST",
                    task_path(endpoint.task_id, "reports"),
                    ReportAcceptedOut,
                    json=ReportIn(share=text).model_dump(exclude_none=True),
                    expected=201,
                )
                self._reached.add(j)
            except DuplicateSubmissionError as exc:
                if j in self._attempted:  # our earlier attempt arrived; its answer was lost
                    self._reached.add(j)
                else:
                    failed[j] = _reason(exc)
            except SmpcError as exc:
                failed[j] = _reason(exc)
            self._attempted.add(j)
        if len(self._reached) == len(self._endpoints):
            self._pending = None  # every server holds its share: forget them
            self._prepared = None
        outcome = ShamirSubmission(self.client_id, tuple(sorted(self._reached)), failed)
        if len(self._reached) < self._threshold:
            raise ThresholdNotMetError(
                f"this client's shares reached {len(self._reached)} server(s) "
                f"{sorted(self._reached)}, fewer than t={self._threshold}: {_describe(failed)}; "
                "call retry() to send the same shares again"
            )
        return outcome

    def status(self) -> tuple[dict[int, TaskStatusOut], dict[int, str]]:
        """Return each reachable server's status (``reported``: it holds this client's share)."""
        return self._get(("status",), TaskStatusOut)


__all__ = [
    "CREDENTIALS_KIND",
    "ShamirAggregation",
    "ShamirClient",
    "ShamirClosed",
    "ShamirCredentials",
    "ShamirEndpoint",
    "ShamirPreparedReport",
    "ShamirResult",
    "ShamirServer",
    "ShamirSubmission",
    "ShamirTask",
    "ShamirTaskInfo",
    "prepare_shares",
]

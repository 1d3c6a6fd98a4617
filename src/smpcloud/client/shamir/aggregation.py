"""The administrator and analyst of a Shamir task: create on n servers, register, close, rebuild.

:class:`ShamirAggregation` learns the sum and the count over the participant set, and who
reported to which server; never a client's value (unless the administrator cheats with sybil
clients, see :mod:`smpcloud.client.shamir`).

At creation it reads each server's share key from the task's info and pins it in the task
(:attr:`ShamirTask.share_keys`, the task file) and in every client's credentials: clients seal
share j to that key and refuse a server that later serves another. The administrator is trusted
for these keys: it reaches the servers over its own channel at creation (https, or loopback)
and hands the credentials to the clients unaltered.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from types import TracebackType
from typing import Self

import httpx
import numpy as np
from pydantic import ValidationError

from smpcloud.client._http import DEFAULT_TIMEOUT, Connection, task_path, validation_summary
from smpcloud.client.shamir._servers import (
    ModelT,
    admin_connections,
    agreed_info,
    call_each,
    describe_failures,
    failure_reason,
    name_server,
)
from smpcloud.client.shamir.checks import close_body, decide
from smpcloud.client.shamir.models import (
    ShamirClosed,
    ShamirCredentials,
    ShamirEndpoint,
    ShamirResult,
    ShamirServer,
    ShamirTask,
    ShamirTaskInfo,
)
from smpcloud.client.shamir.pinning import (
    check_served_key,
    check_server_urls,
    check_share_keys,
)
from smpcloud.crypto.sealing import SealingKey
from smpcloud.crypto.shamir import Share, reconstruct_elements
from smpcloud.errors import InvalidInputError, SmpcError, ThresholdNotMetError, VerificationError
from smpcloud.protocol.checked_shares import (
    check_validated_task,
    encoded_span,
    validity_layout,
)
from smpcloud.protocol.schemas import (
    DEFAULT_MAX_CLIENTS,
    DEFAULT_VALIDITY,
    INTEGER_ENCODING,
    MAX_REGISTRATIONS_PER_REQUEST,
    ClientsIn,
    ClientsOut,
    CloseIn,
    ReportersOut,
    ShamirAggregateOut,
    ShamirChecksOut,
    TaskCreatedOut,
    TaskEncoding,
    TaskIn,
    TaskInfoOut,
    TaskStatusOut,
    Validity,
)
from smpcloud.protocol.sharing import (
    check_shamir_parameters,
    check_sum_range,
    decode_share,
    task_field,
)


def _served_key(server: int, url: str, info: TaskInfoOut) -> SealingKey:
    """Server j's share key from its task info (what the administrator pins).

    Raises:
        VerificationError: none, or not a usable X25519 public key (the server is named).
    """
    try:
        return SealingKey.from_text(info.share_key, "share_key")
    except InvalidInputError as exc:
        raise VerificationError(
            f"server {server} ({url}) serves no usable share key ({exc}): is it an smpcloud "
            "server that seals Shamir shares?"
        ) from None


class ShamirAggregation:
    """The administrator and analyst of a Shamir task on n servers.

    Creates the task on every server, registers clients, closes every reachable server over
    one participant set and rebuilds the sum from any t servers' shares of it. Learns the sum
    and the count over the participant set, and who reported to which server; never a
    client's value (unless the administrator cheats with sybil clients, see
    :mod:`smpcloud.client.shamir`).

    Args:
        servers: the n servers, in order: server j is ``servers[j - 1]``.
        task_ids: the task's id on each server, in the same order.
        threshold: t, the number of servers' shares that rebuild the sum (t > n/2).
        share_keys: each server's share key, pinned when the task was created, in the same
            order (:attr:`ShamirTask.share_keys` of :meth:`create_on_servers`).
        timeout: seconds per HTTP request.
        transports: ``httpx`` transports instead of the network, one per server (tests).

    Raises:
        InvalidInputError: mismatched lengths or (n, t) outside 2 <= t <= n, t > n/2; plain
            http to a non-loopback host, two servers on one non-loopback host, or two servers
            with one share key (:mod:`smpcloud.client.shamir.pinning`).
    """

    def __init__(
        self,
        servers: Sequence[ShamirServer],
        task_ids: Sequence[str],
        *,
        threshold: int,
        share_keys: Sequence[SealingKey],
        timeout: float = DEFAULT_TIMEOUT,
        transports: Sequence[httpx.BaseTransport | None] | None = None,
    ) -> None:
        if len(task_ids) != len(servers):
            raise InvalidInputError(f"{len(servers)} servers but {len(task_ids)} task ids")
        check_shamir_parameters(len(servers), threshold)
        urls = [s.base_url for s in servers]
        check_server_urls(urls)
        check_share_keys(list(share_keys), urls)
        self.task = ShamirTask(
            tuple(urls), tuple(task_ids), threshold=threshold, share_keys=tuple(share_keys)
        )
        self._conns = admin_connections(servers, timeout, transports)
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
        validity: Validity = DEFAULT_VALIDITY,
        timeout: float = DEFAULT_TIMEOUT,
        transports: Sequence[httpx.BaseTransport | None] | None = None,
    ) -> ShamirAggregation:
        """Create the task on every server (server j gets index j) and return its handle.

        Every server must be reachable. The parameters are those of
        :meth:`smpcloud.client.Admin.create_task`, with ``threshold`` t instead of a key. Each
        server's share key is read from the new task's info and pinned
        (:attr:`ShamirTask.share_keys`): the administrator's view of the servers at creation is
        what every client will trust.

        ``validity="range"``: the servers check jointly that each value lies in the declared
        range (:mod:`smpcloud.crypto.shamir_validity`); needs n = 2t - 1, max_clients U < p.

        Raises:
            InvalidInputError: bad parameters (checked locally first, then by each server):
                t outside 2..n or t <= n/2, sums that could wrap modulo the field's modulus;
                for validity ``range``: n != 2t - 1, an empty range, max_clients U >= p.
            InsecureServerURLError, SharedHostError: plain http to a non-loopback host, or two
                servers on one non-loopback host (nothing sent).
            DuplicateShareKeyError: two servers serve one share key (the task then exists on
                the servers, unused).
            VerificationError: a server that serves no share key or a malformed one.
            SmpcError: a server refused or could not be reached (the note names it; the task
                may already exist on the servers before it, unused).
        """
        n = len(servers)
        check_shamir_parameters(n, threshold)
        if validity == "range":
            check_validated_task(n, threshold, encoding, max_clients)
        else:
            check_sum_range(encoding.max_abs_encoded(), max_clients)
        check_server_urls([s.base_url for s in servers if isinstance(s, ShamirServer)])
        conns = admin_connections(servers, timeout, transports)
        task_ids: list[str] = []
        share_keys: list[SealingKey] = []
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
                        validity=validity,
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
                    info = conn.request("GET", task_path(out.task_id), TaskInfoOut)
                except SmpcError as exc:
                    raise name_server(exc, j, conn.base_url) from None
                task_ids.append(out.task_id)
                share_keys.append(_served_key(j, conn.base_url, info))
        finally:
            for conn in conns:
                conn.close()
        return cls(
            servers,
            task_ids,
            threshold=threshold,
            share_keys=share_keys,
            timeout=timeout,
            transports=transports,
        )

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
        return call_each(targets, call)

    # ------------------------------------------------------------------ views

    def info(self) -> ShamirTaskInfo:
        """Return what the reachable servers agree on (fetched once, then cached).

        Raises:
            ShareKeyMismatchError: a server serves another share key than the pinned one.
            VerificationError: servers disagree on the task.
            ThresholdNotMetError: no server answered (the message names why).
        """
        if self._info is None:
            infos, failures = self._get_all((), TaskInfoOut)
            if not infos:
                raise ThresholdNotMetError(f"no server answered: {describe_failures(failures)}")
            for j, out in sorted(infos.items()):
                url, pinned = self.task.base_urls[j - 1], self.task.share_keys[j - 1]
                check_served_key(j, url, pinned, out.share_key)
            self._info = agreed_info(
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

        Every server must be reachable, open, serve the share key pinned at creation and have
        as many clients as the others, so that client numbers line up. Tokens are shown only
        now; each client's credentials carry the pinned share keys.

        Raises:
            ShareKeyMismatchError: a server serves another share key than the pinned one.
            TransportError, SmpcError: a server could not be reached or refused (named in a
                note); VerificationError: servers with different client counts or numbering.
        """
        if type(count) is not int or count < 1:
            raise InvalidInputError("count must be a positive integer")
        statuses, failures = self.statuses()
        if failures:
            raise ThresholdNotMetError(
                f"registration needs every server, to keep client numbers aligned: "
                f"{describe_failures(failures)}"
            )
        self._info = None
        self.info()  # every server answered: each serves its pinned share key
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
                    raise name_server(exc, j, conn.base_url) from None
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
                    ShamirEndpoint(j, base_url, task_id, per_server[j - 1][i][1], key)
                    for j, (base_url, task_id, key) in enumerate(
                        zip(
                            self.task.base_urls,
                            self.task.task_ids,
                            self.task.share_keys,
                            strict=True,
                        ),
                        start=1,
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

        Validity ``range``: every server is needed; the reporters they all hold that fail the
        joint check are dropped by every server (:attr:`ShamirClosed.refused`;
        :mod:`smpcloud.client.shamir.checks`).

        Reveals to each server the participant set (and the refused reporters).

        Raises:
            ThresholdNotMetError: fewer than t servers reachable or closed (named, with why);
                for validity ``range``, a server that does not answer.
            InvalidInputError: the participant set is smaller than min_clients (nothing closed).
            VerificationError: servers already closed over different sets, or a server whose
                check values are not well formed.
        """
        t = self.task.threshold
        statuses, unavailable = self.statuses()
        if len(statuses) < t:
            raise ThresholdNotMetError(
                f"only {len(statuses)} of {self.task.servers} servers answer; closing needs at "
                f"least t={t}: {describe_failures(unavailable)}"
            )
        if self.info().validity == "range":
            return self._close_checked(statuses, unavailable)
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
                    f"{describe_failures(unavailable)}"
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
                    f"{describe_failures(unavailable)}"
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
                unavailable[j] = failure_reason(exc)
        for j in done:
            unavailable.pop(j, None)
        if len(done) < t:
            raise ThresholdNotMetError(
                f"only {len(done)} server(s) closed over the participant set, fewer than t={t}: "
                f"{describe_failures(unavailable)}"
            )
        return ShamirClosed(tuple(participants), tuple(sorted(done)), dict(unavailable))

    def _close_checked(
        self, statuses: dict[int, TaskStatusOut], unavailable: dict[int, str]
    ) -> ShamirClosed:
        """:meth:`close_all` for a task with validity ``range`` (every server needed)."""
        n, t = self.task.servers, self.task.threshold
        if unavailable:
            raise ThresholdNotMetError(
                f"a task with validity 'range' is closed with all {n} servers (each report's "
                f"joint check needs every server's check values): {describe_failures(unavailable)}"
            )
        info = self.info()
        width = validity_layout(info.length, info.encoding).checks
        answers, failed = self._get_all(("checks",), ShamirChecksOut)
        if failed:
            raise ThresholdNotMetError(f"all servers' checks needed: {describe_failures(failed)}")
        decision = decide(answers, servers=n, threshold=t, width=width)
        participants = decision.passed
        closed = {j for j, status in statuses.items() if status.state != "open"}
        if closed:
            aggregates, failed = self._get_all(("aggregate",), ShamirAggregateOut, only=closed)
            sets = {tuple(out.clients) for out in aggregates.values()}
            if failed or len(sets) != 1:
                raise VerificationError(
                    f"servers {sorted(closed)} are closed but do not tell one participant set: "
                    f"{describe_failures(failed)}"
                )
            participants = list(sets.pop())
        min_clients = min(status.min_clients for status in statuses.values())
        body, dropped = close_body(decision, participants, min_clients=min_clients, width=width)
        done = set(closed)
        problems: dict[int, str] = {}
        for j, (conn, task_id) in self._targets():
            if j in done:
                continue
            try:
                conn.request("POST", task_path(task_id, "close"), TaskStatusOut, json=body)
                done.add(j)
            except SmpcError as exc:
                problems[j] = failure_reason(exc)
        if len(done) < t:
            raise ThresholdNotMetError(
                f"only {len(done)} server(s) closed over the participant set, fewer than t={t}: "
                f"{describe_failures(problems)}"
            )
        return ShamirClosed(tuple(participants), tuple(sorted(done)), problems, dropped)

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
                unavailable[j] = failure_reason(exc)
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
                f"sum: {describe_failures(unavailable)}"
            )
        participants, servers = chosen
        for others in groups.values():
            for j in others:
                if j not in servers:
                    unavailable[j] = "closed over another participant set"
        used = [shares[j] for j in servers]
        field = task_field(info.validity)
        total = reconstruct_elements(used[:t], field=field)
        if len(used) > t and not np.array_equal(
            total, reconstruct_elements(used[-t:], field=field)
        ):
            raise VerificationError(
                f"the shares of servers {servers} do not lie on one polynomial of degree "
                f"{t - 1}: some server returned a wrong share of the sum"
            )
        count = len(participants)
        encoding = info.encoding
        if info.validity == "range":  # sums of offsets u = enc(x) - lo, in [0, count U] < p
            lo, _ = encoded_span(encoding)
            sums = [int(v) + count * lo for v in field.to_ints(total, signed=False)]
        else:
            sums = [int(v) for v in field.to_ints(total)]
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
        field = task_field(info.validity)
        y = decode_share(out.share, length=info.length, field=field, what="share of the sum")
        return Share(j, y, field, self.task.threshold)


__all__ = ["ShamirAggregation"]

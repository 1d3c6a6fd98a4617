"""A data owner of a Shamir task: shares its values t-of-n and uploads share j to server j.

:func:`prepare_shares` is the local half (no network); :class:`ShamirClient` checks the task with
the servers, keeps its shares in memory until every server holds its own, and re-sends the same
shares to the servers it missed. Reveals to each server: that this client reported, when, and
one uniformly random share; fewer than t servers together learn nothing. Share j is sealed to
server j's share key as pinned in the credentials, so whatever carries the request (a proxy, a
TLS terminator, a host posing as several servers) sees a ciphertext, its size and its timing
only; before anything is sent the client refuses plain http to a non-loopback host, two servers
on one non-loopback host, two servers with one key, and a server that serves another key than
the pinned one (:mod:`smpcloud.client.shamir.pinning`). Trusted: the administrator, who pinned
the keys and wrote the credentials; fewer than t of the servers (t colluding servers rebuild
every input). On a task with validity ``range`` the client shares each value's weighted bits
and the masks of the servers' joint check (:mod:`smpcloud.crypto.shamir_validity`) instead of
the value, and lists the digests of its n sealed shares in every upload; what each server
learns is unchanged (uniformly random shares), plus, once every server's check values are
opened, that the report passed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Self

import httpx
import numpy as np

from smpcloud.client._http import DEFAULT_TIMEOUT, Connection, task_path
from smpcloud.client._values import as_values
from smpcloud.client.shamir._servers import (
    ModelT,
    agreed_info,
    call_each,
    describe_failures,
    failure_reason,
)
from smpcloud.client.shamir.models import (
    ShamirCredentials,
    ShamirEndpoint,
    ShamirPreparedReport,
    ShamirSubmission,
    ShamirTaskInfo,
)
from smpcloud.client.shamir.pinning import (
    check_served_key,
    check_server_urls,
    check_share_keys,
)
from smpcloud.crypto.shamir import share_elements
from smpcloud.crypto.shamir_validity import share_report
from smpcloud.errors import InvalidInputError, SmpcError, ThresholdNotMetError
from smpcloud.protocol.checked_shares import (
    encoded_span,
    seal_checked_share,
    validity_layout,
)
from smpcloud.protocol.problems import DuplicateSubmissionError
from smpcloud.protocol.schemas import (
    ReportAcceptedOut,
    ReportIn,
    SealedShareIn,
    TaskInfoOut,
    TaskStatusOut,
)
from smpcloud.protocol.sharing import (
    SHAMIR_FIELD,
    check_shamir_parameters,
    seal_share,
)


def check_credentials(credentials: ShamirCredentials) -> None:
    """Refuse credentials a client must not send shares with (no request is made).

    Raises:
        InvalidInputError: not :class:`ShamirCredentials`, or servers not listed 1..n.
        InsecureServerURLError: plain http to a non-loopback host.
        SharedHostError: two servers on one non-loopback host.
        DuplicateShareKeyError: two servers with one share key.
    """
    if not isinstance(credentials, ShamirCredentials):
        raise InvalidInputError("credentials must be ShamirCredentials")
    endpoints = credentials.endpoints
    if [e.server for e in endpoints] != list(range(1, len(endpoints) + 1)):
        raise InvalidInputError("credentials must list servers 1..n in order")
    urls = [e.base_url for e in endpoints]
    check_server_urls(urls)
    check_share_keys([e.share_key for e in endpoints], urls)


def prepare_shares(
    info: ShamirTaskInfo,
    values: float | int | Sequence[float | int],
    credentials: ShamirCredentials,
) -> ShamirPreparedReport:
    """Encode, range-check, Shamir-share (t-of-n) and seal one client's values; no network.

    The local half of :meth:`ShamirClient.prepare`, for callers that already hold the task's
    info (bulk uploads, simulations). Shares come from the OS CSPRNG; fewer than t of them
    reveal nothing about the values. Share j is sealed to server j's share key pinned in
    ``credentials``, bound to the task's id on server j, j and the client's number. For a task
    with validity ``range`` the shares are of each value's weighted bits and of the masks of
    the servers' joint check, over GF(2^32 - 5), and the report lists every sealed share's
    digest (:mod:`smpcloud.crypto.shamir_validity`).

    Args:
        info: what the servers agree on (:meth:`ShamirClient.info` or
            :meth:`ShamirAggregation.info`): encoding, length, n and t.
        values: a scalar or ``info.length`` values.
        credentials: the client's credentials (its number; each server's URL, task id and
            pinned share key). Checked as :class:`ShamirClient` checks them.

    Returns:
        The n sealed shares, as the report bodies carry them.

    Raises:
        InvalidInputError: wrong number of values or a non-number; credentials for another
            number of servers or threshold than ``info``'s; refused credentials (see
            :func:`check_credentials`: http, shared hosts, duplicate keys).
        OverflowDetectedError: a value outside the declared range, NaN or infinite.
    """
    check_credentials(credentials)
    if (len(credentials.endpoints), credentials.threshold) != (info.servers, info.threshold):
        raise InvalidInputError(
            f"credentials for n={len(credentials.endpoints)}, t={credentials.threshold} but the "
            f"task has n={info.servers}, t={info.threshold}"
        )
    items = as_values(values)
    if len(items) != info.length:
        raise InvalidInputError(
            f"this task takes {info.length} value(s) per client; got {len(items)}"
        )
    encoded = [info.encoding.encode(v, index=i) for i, v in enumerate(items)]
    if info.validity == "range":
        return _prepare_checked(info, encoded, credentials)
    try:
        plain = np.array(encoded, dtype=np.int64)
    except OverflowError:  # encodings beyond 64 bits: exact Python ints
        plain = np.array(encoded, dtype=object)
    secret = SHAMIR_FIELD.from_ints(plain)
    blocks = share_elements(SHAMIR_FIELD, secret, n=info.servers, t=info.threshold)
    sealed = tuple(
        seal_share(
            e.share_key,
            y,
            task_id=e.task_id,
            server_index=e.server,
            client=credentials.client_id,
        )
        for e, y in zip(credentials.endpoints, blocks, strict=True)
    )
    del secret, blocks
    return ShamirPreparedReport(credentials.client_id, sealed)


def _prepare_checked(
    info: ShamirTaskInfo, encoded: list[int], credentials: ShamirCredentials
) -> ShamirPreparedReport:
    """A report to a task with validity ``range``: bits and masks shared, sealed, digested.

    Each value becomes u = enc(x) - lo in [0, U], its k weighted bits are Shamir-shared with
    the masks of the servers' joint check (:func:`smpcloud.crypto.shamir_validity.share_report`)
    and share j is sealed to server j; the digest list goes to every server.
    """
    lo, _ = encoded_span(info.encoding)
    layout = validity_layout(info.length, info.encoding)
    offsets = np.array([v - lo for v in encoded], dtype=np.uint64)
    blocks = share_report(offsets, layout, servers=info.servers, threshold=info.threshold)
    pairs = [
        seal_checked_share(
            e.share_key, y, task_id=e.task_id, server_index=e.server, client=credentials.client_id
        )
        for e, y in zip(credentials.endpoints, blocks, strict=True)
    ]
    del offsets, blocks
    sealed = tuple(box for box, _ in pairs)
    return ShamirPreparedReport(credentials.client_id, sealed, tuple(d for _, d in pairs))


class ShamirClient:
    """A data owner of a Shamir task: shares its values t-of-n and uploads share j to server j.

    Reveals to each server: that this client reported, when, and one share, which is uniformly
    random and independent of the values. Fewer than t servers together learn nothing. Share j
    is sealed to server j's pinned share key: what carries the requests sees ciphertexts only.

    Refused at construction, before any request (:func:`check_credentials`): plain http to a
    non-loopback host, two servers on one non-loopback host (loopback is the one exception, for
    local demonstrations), two servers with one share key. Refused by :meth:`prepare` before
    any share is sent: a server serving another share key than the pinned one.

    :meth:`submit` does it all; :meth:`prepare` (check the task, share the values) and
    :meth:`upload` (one request per server) are its two halves.

    Args:
        credentials: from :meth:`ShamirAggregation.register`.
        timeout: seconds per HTTP request.
        transports: ``httpx`` transports instead of the network, by server index (tests).

    Raises:
        InvalidInputError: refused credentials (:func:`check_credentials`).
    """

    def __init__(
        self,
        credentials: ShamirCredentials,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        transports: Mapping[int, httpx.BaseTransport] | None = None,
    ) -> None:
        check_credentials(credentials)
        endpoints = credentials.endpoints
        check_shamir_parameters(len(endpoints), credentials.threshold)
        self._credentials = credentials
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
        self._pending: dict[int, dict[str, str]] | None = None  # sealed shares not yet stored
        self._digests: tuple[str, ...] | None = None  # their digests (validity "range")
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

        return call_each([(e.server, e) for e in self._endpoints], call)

    def info(self) -> ShamirTaskInfo:
        """Return what the reachable servers agree on: encoding, length, n, t, limits.

        Raises:
            VerificationError: a server disagrees (on t, n, its index, the field, ...).
            ThresholdNotMetError: no server answered.
        """
        infos, failures = self._get((), TaskInfoOut)
        if not infos:
            raise ThresholdNotMetError(f"no server answered: {describe_failures(failures)}")
        return agreed_info(infos, servers=len(self._endpoints), threshold=self._threshold)

    def prepare(self, values: float | int | Sequence[float | int]) -> ShamirPreparedReport:
        """Check the task with the servers, then encode and Shamir-share this client's values.

        Sends no share. Checks, in order: that at least t servers answer and agree on the task,
        that each of them serves the share key pinned in the credentials, that none already
        holds a report of this client, the number of values, their types and the declared
        range. The shares (OS CSPRNG) are kept in this object, in memory only,
        until every server holds its own; :meth:`upload` sends them.

        Returns:
            The shares (secret: see :class:`ShamirPreparedReport`).

        Raises:
            InvalidInputError: wrong number of values or a non-number.
            OverflowDetectedError: a value outside the declared range, NaN or infinite.
            DuplicateSubmissionError: this client already shared its values (this object: use
                upload or retry; or an earlier one: some server already holds a report).
            ThresholdNotMetError: fewer than t servers answer.
            ShareKeyMismatchError: a server serves another share key than the pinned one
                (named; nothing sent).
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
                f"{describe_failures(failures)}"
            )
        info = agreed_info(infos, servers=n, threshold=t)
        for j, out in sorted(infos.items()):
            endpoint = self._endpoints[j - 1]
            check_served_key(j, endpoint.base_url, endpoint.share_key, out.share_key)
        statuses, _ = self._get(("status",), TaskStatusOut)
        already = sorted(j for j, status in statuses.items() if status.reported)
        if already:
            raise DuplicateSubmissionError(
                f"server(s) {already} already hold a report of this client from an earlier "
                "submission; new shares would not match it, so nothing was sent"
            )
        report = prepare_shares(info, values, self._credentials)
        self._pending = dict(enumerate(report.shares, start=1))
        self._digests = report.share_digests
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
        digests = list(self._digests) if self._digests is not None else None
        for j, sealed in sorted(pending.items()):
            if j in self._reached:
                continue
            endpoint = self._endpoints[j - 1]
            body = ReportIn(
                sealed_share=SealedShareIn.model_validate(sealed), share_digests=digests
            )
            try:
                self._conns[j].request(
                    "POST",
                    task_path(endpoint.task_id, "reports"),
                    ReportAcceptedOut,
                    json=body.model_dump(exclude_none=True),
                    expected=201,
                )
                self._reached.add(j)
            except DuplicateSubmissionError as exc:
                if j in self._attempted:  # our earlier attempt arrived; its answer was lost
                    self._reached.add(j)
                else:
                    failed[j] = failure_reason(exc)
            except SmpcError as exc:
                failed[j] = failure_reason(exc)
            self._attempted.add(j)
        if len(self._reached) == len(self._endpoints):
            self._pending = None  # every server holds its share: forget them
            self._prepared = None
        outcome = ShamirSubmission(self.client_id, tuple(sorted(self._reached)), failed)
        if len(self._reached) < self._threshold:
            raise ThresholdNotMetError(
                f"this client's shares reached {len(self._reached)} server(s) "
                f"{sorted(self._reached)}, fewer than t={self._threshold}: "
                f"{describe_failures(failed)}; "
                "call retry() to send the same shares again"
            )
        return outcome

    def status(self) -> tuple[dict[int, TaskStatusOut], dict[int, str]]:
        """Return each reachable server's status (``reported``: it holds this client's share)."""
        return self._get(("status",), TaskStatusOut)


__all__ = ["ShamirClient", "check_credentials", "prepare_shares"]

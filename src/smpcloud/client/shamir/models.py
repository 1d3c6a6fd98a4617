"""What the Shamir SDK hands around: servers, a task's place on them, credentials, results.

Value types of :class:`~smpcloud.client.shamir.ShamirAggregation` and
:class:`~smpcloud.client.shamir.ShamirClient`. Secrets (admin tokens, client tokens, shares)
are never shown in ``repr``; :meth:`ShamirCredentials.to_json` holds a client's tokens and must
be handed over privately. A task and a client's credentials also carry each server's share key
as the administrator pinned it at creation (public, but it must reach the client unaltered: a
substituted key sends the share to whoever holds it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from smpcloud.crypto.sealing import SealingKey
from smpcloud.crypto.wire import JSON_VERSION, check_json_object
from smpcloud.errors import InvalidInputError
from smpcloud.protocol.schemas import ReportIn, SealedShareIn, TaskEncoding, Validity
from smpcloud.protocol.sharing import check_shamir_parameters

#: The ``kind`` of :meth:`ShamirCredentials.to_json` objects.
CREDENTIALS_KIND: Final = "smpcloud-shamir-credentials"
_ENDPOINT_FIELDS: Final = frozenset({"server", "base_url", "task_id", "token", "share_key"})


@dataclass(frozen=True, slots=True)
class ShamirServer:
    """One aggregation server as the administrator reaches it: its URL and admin token."""

    base_url: str
    admin_token: str = field(repr=False)

    def __repr__(self) -> str:
        return f"ShamirServer(base_url={self.base_url!r}, admin_token=<redacted>)"


@dataclass(frozen=True, slots=True)
class ShamirTask:
    """Where a Shamir task lives: ``task_ids[j - 1]`` on ``base_urls[j - 1]`` is server j's part,
    and ``share_keys[j - 1]`` is server j's share key, pinned at creation."""

    base_urls: tuple[str, ...]
    task_ids: tuple[str, ...]
    threshold: int
    share_keys: tuple[SealingKey, ...]

    @property
    def servers(self) -> int:
        """n, the number of servers."""
        return len(self.task_ids)


@dataclass(frozen=True, slots=True)
class ShamirEndpoint:
    """Where a client uploads its share for server ``server`` (j): URL, task id, token there,
    and the share key (pinned by the administrator) that the share is sealed to."""

    server: int
    base_url: str
    task_id: str
    token: str = field(repr=False)
    share_key: SealingKey

    def __post_init__(self) -> None:
        if not isinstance(self.share_key, SealingKey):
            raise InvalidInputError("ShamirEndpoint.share_key must be a SealingKey")

    def __repr__(self) -> str:
        return (
            f"ShamirEndpoint(server={self.server}, base_url={self.base_url!r}, "
            f"task_id={self.task_id!r}, token=<redacted>, "
            f"share_key={self.share_key.fingerprint()})"
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
                {
                    "server": e.server,
                    "base_url": e.base_url,
                    "task_id": e.task_id,
                    "token": e.token,
                    "share_key": e.share_key.to_text(),
                }
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
            if isinstance(item, dict) and set(item) == _ENDPOINT_FIELDS - {"share_key"}:
                raise InvalidInputError(
                    f"{CREDENTIALS_KIND}: endpoints[{j - 1}] has no share_key: these credentials "
                    "were written before shares were sealed to each server; ask the "
                    "administrator for new ones (smpcloud shamir register)"
                )
            if not isinstance(item, dict) or set(item) != _ENDPOINT_FIELDS:
                raise InvalidInputError(
                    f"{CREDENTIALS_KIND}: endpoints[{j - 1}] needs server, base_url, task_id, "
                    "token, share_key"
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
            key = SealingKey.from_text(item["share_key"], f"endpoints[{j - 1}].share_key")
            endpoints.append(ShamirEndpoint(server, url, task_id, token, key))
        check_shamir_parameters(len(endpoints), t)
        return cls(client_id=client_id, threshold=t, endpoints=tuple(endpoints))


@dataclass(frozen=True, slots=True)
class ShamirTaskInfo:
    """What the servers of a Shamir task agree on: encoding, length, n, t, limits, validity
    (``"range"``: every report carries the bits and masks of the servers' joint check)."""

    name: str
    length: int
    encoding: TaskEncoding
    servers: int
    threshold: int
    min_clients: int
    max_clients: int
    deadline: datetime | None
    validity: Validity = "none"


@dataclass(frozen=True, slots=True)
class ShamirPreparedReport:
    """One client's Shamir shares, each sealed to its server: ``shares[j - 1]`` goes to server j.

    Share j is sealed to server j's pinned share key and bound to the task's id there, j and
    the client's number (:func:`smpcloud.protocol.sharing.seal_share`): only server j opens it,
    and only as this client's report in this task. Keep it until every server holds its share
    (:meth:`ShamirClient.retry` sends the same sealed shares again). Its ``repr`` shows none.

    Attributes:
        client_id: the number of the client the shares were sealed for.
        shares: ``{"enc", "ciphertext"}`` per server (a report's ``sealed_share``).
        share_digests: for a task with validity ``range``, the digest of each sealed share
            (:func:`smpcloud.protocol.sharing.sealed_share_digest`), in server order: every
            server gets the whole list; None otherwise.
    """

    client_id: int
    shares: tuple[dict[str, str], ...] = field(repr=False)
    share_digests: tuple[str, ...] | None = None

    def __repr__(self) -> str:
        return (
            f"ShamirPreparedReport(client_id={self.client_id}, servers={len(self.shares)}, "
            "shares=<sealed>)"
        )

    def request_body(self, server: int) -> dict[str, object]:
        """Return the JSON body of the upload to server ``server`` (j, from 1), as sent.

        Raises:
            InvalidInputError: no server j.
        """
        if type(server) is not int or not 1 <= server <= len(self.shares):
            raise InvalidInputError(f"server must be an int in 1..{len(self.shares)}")
        sealed = SealedShareIn.model_validate(self.shares[server - 1])
        digests = list(self.share_digests) if self.share_digests is not None else None
        return ReportIn(sealed_share=sealed, share_digests=digests).model_dump(exclude_none=True)


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
        refused: (validity ``range``) the reporters held by every server whose report failed
            the servers' joint check, with the check that failed (``"bit"``: a value outside
            the declared range; ``"degree"``: shares not on one polynomial); dropped by every
            server.
    """

    participants: tuple[int, ...]
    closed: tuple[int, ...]
    unavailable: Mapping[int, str]
    refused: Mapping[int, str] = field(default_factory=dict)

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


__all__ = [
    "CREDENTIALS_KIND",
    "ShamirClosed",
    "ShamirCredentials",
    "ShamirEndpoint",
    "ShamirPreparedReport",
    "ShamirResult",
    "ShamirServer",
    "ShamirSubmission",
    "ShamirTask",
    "ShamirTaskInfo",
]

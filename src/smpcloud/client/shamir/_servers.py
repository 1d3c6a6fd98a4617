"""Talking to the n servers of a Shamir task: call each, say why the others failed, agree.

Shared by the administrator (:mod:`smpcloud.client.shamir.aggregation`) and the data owner
(:mod:`smpcloud.client.shamir.data_owner`): a call to every server that collects the answers
and, for the servers that did not answer, a short reason; the check that every server answered
for its own index and that all agree on the task.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Final, TypeVar

import httpx
from pydantic import BaseModel

from smpcloud.client._http import Connection
from smpcloud.client.shamir.models import ShamirServer, ShamirTaskInfo
from smpcloud.errors import (
    InvalidInputError,
    SmpcError,
    ThresholdNotMetError,
    TransportError,
    VerificationError,
)
from smpcloud.protocol.schemas import TaskInfoOut
from smpcloud.protocol.sharing import task_field

T = TypeVar("T")
ModelT = TypeVar("ModelT", bound=BaseModel)

#: Longest reason given for a server that failed, in characters.
REASON_CHARS: Final = 300


def failure_reason(exc: BaseException) -> str:
    """Why a server did not answer, in at most :data:`REASON_CHARS` characters."""
    kind = "unreachable" if isinstance(exc, TransportError) else type(exc).__name__
    text = f"{kind}: {exc}"
    return text if len(text) <= REASON_CHARS else text[: REASON_CHARS - 3] + "..."


def describe_failures(failures: Mapping[int, str]) -> str:
    """List the servers that failed and why, in server order (for error messages)."""
    return "; ".join(f"server {j}: {why}" for j, why in sorted(failures.items()))


def name_server(exc: SmpcError, server: int, base_url: str) -> SmpcError:
    """Add a note naming the server that raised ``exc``; return ``exc``."""
    exc.add_note(f"server {server} ({base_url})")
    return exc


def read_shamir_info(out: TaskInfoOut) -> ShamirTaskInfo:
    """Read one server's task info as a :class:`ShamirTaskInfo`.

    Raises:
        InvalidInputError: not a Shamir task.
        VerificationError: a field other than the Shamir field of the task's validity
            (Z_M for ``none``, GF(2^32 - 5) for ``range``).
    """
    if out.scheme != "shamir" or out.servers is None or out.server_index is None:
        raise InvalidInputError(f"task {out.task_id!r} is not a Shamir task")
    if out.field != list(task_field(out.validity).moduli):
        raise VerificationError(
            f"task {out.task_id!r} uses a field other than the Shamir field of validity "
            f"{out.validity!r}"
        )
    return ShamirTaskInfo(
        name=out.name,
        length=out.length,
        encoding=out.encoding,
        servers=out.servers,
        threshold=out.threshold,
        min_clients=out.min_clients,
        max_clients=out.max_clients,
        deadline=out.deadline,
        validity=out.validity,
    )


def agreed_info(
    infos: Mapping[int, TaskInfoOut], *, servers: int, threshold: int
) -> ShamirTaskInfo:
    """Check that every server answered for its own index and that all agree; return the info.

    Raises:
        VerificationError: a server that disagrees (named) on n, t, its index, the field, the
            length, the encoding or the limits.
    """
    agreed: ShamirTaskInfo | None = None
    for j, out in sorted(infos.items()):
        info = read_shamir_info(out)
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


def call_each(
    targets: Sequence[tuple[int, T]], call: Callable[[int, T], ModelT]
) -> tuple[dict[int, ModelT], dict[int, str]]:
    """Call every server; return the answers and, for the others, why they did not answer."""
    answers: dict[int, ModelT] = {}
    failures: dict[int, str] = {}
    for j, target in targets:
        try:
            answers[j] = call(j, target)
        except SmpcError as exc:
            failures[j] = failure_reason(exc)
    return answers, failures


def admin_connections(
    servers: Sequence[ShamirServer],
    timeout: float,
    transports: Sequence[httpx.BaseTransport | None] | None,
) -> list[Connection]:
    """Open one connection per server with its admin token (and transport, if given).

    Raises:
        InvalidInputError: not one transport per server, or a server that is not a
            :class:`ShamirServer`.
    """
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


__all__ = [
    "REASON_CHARS",
    "ModelT",
    "admin_connections",
    "agreed_info",
    "call_each",
    "describe_failures",
    "failure_reason",
    "name_server",
    "read_shamir_info",
]

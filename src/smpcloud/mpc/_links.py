"""One authenticated connection of the TLS mesh, and the stream helpers both of its halves use.

:class:`Link` is what connection setup (:mod:`smpcloud.mpc.mesh_setup`) hands to the transport
(:mod:`smpcloud.mpc.tcp`); :func:`describe_error` turns a connection error into a short reason for
logs and messages (never a payload), :func:`abort_stream` drops a connection at once.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field


def describe_error(exc: BaseException) -> str:
    """A short reason for a connection error (at most 300 characters, then "...")."""
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, asyncio.IncompleteReadError):
        return "connection closed by the peer"
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 300 else text[:300] + "..."


def abort_stream(writer: asyncio.StreamWriter) -> None:
    """Drop the connection now, without the TLS close exchange."""
    writer.transport.abort()


@dataclass(eq=False, slots=True)
class Link:
    """One authenticated connection to one peer."""

    peer: int
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    task: asyncio.Task[None] | None = None
    lost: str | None = None


__all__ = ["Link", "abort_stream", "describe_error"]

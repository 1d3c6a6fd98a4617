"""The only thing protocols know about the network: send and receive bytes by party and tag.

Parties are numbered 1..n; party 0, when present, is the dealer (a trusted source of Beaver
triples and truncation pairs). Every message carries a :data:`Tag` = (session, step): a
receiver asks for a specific (sender, tag) and gets exactly that message, whatever order the
messages arrived in (MPyC's program-counter idea). Payloads are opaque bytes; protocols encode
them with a strict codec (never pickle).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

#: (session, step): a session name shared by all parties of one computation, and a counter
#: that every party advances identically as the program runs.
Tag = tuple[str, int]

#: What may be sent: bytes, or a buffer such as a read-only memoryview of an encoded vector.
Payload = bytes | bytearray | memoryview

#: Default seconds to wait for one message before naming the silent party.
DEFAULT_TIMEOUT = 30.0


@runtime_checkable
class Transport(Protocol):
    """A party's connection to its peers.

    Attributes:
        party: this party's id (0 = dealer, 1..n = computing parties).
        peers: the ids of every other endpoint it can talk to.
    """

    party: int
    peers: tuple[int, ...]

    async def send(self, to: int, tag: Tag, payload: Payload) -> None:
        """Send ``payload`` to party ``to`` under ``tag``.

        The payload may be a read-only memoryview (sent without a copy); the transport must not
        keep a reference to it after returning unless it copied it.

        Raises:
            InvalidInputError: unknown party.
            TransportError: the connection is lost or the payload exceeds the frame limit.
        """
        ...

    async def recv(self, frm: int, tag: Tag, *, timeout: float | None = None) -> bytes:
        """Wait for the message from ``frm`` under ``tag`` and return its payload.

        Raises:
            InvalidInputError: unknown party.
            ProtocolError: nothing arrived within ``timeout`` seconds (the message names the
                party that went silent), or a second message arrived under the same tag.
            TransportError: the connection to ``frm`` was lost.
        """
        ...

    async def close(self) -> None:
        """Close every connection; pending receives fail with TransportError."""
        ...

"""All parties in one event loop: an in-memory :class:`~smpcloud.mpc.transport.Transport` for tests.

``MemoryNetwork(n, dealer=True).transports()`` returns one transport per party. Messages are
delivered by reference through mailboxes, so protocols run exactly as over sockets, minus the
bytes on the wire. ``silence(party)`` drops everything a party sends, to test drop-outs.
"""

from __future__ import annotations

from smpcloud.errors import InvalidInputError, TransportError
from smpcloud.mpc.mailbox import Mailbox
from smpcloud.mpc.transport import DEFAULT_TIMEOUT, Payload, Tag

MAX_PAYLOAD = 1 << 30


class MemoryTransport:
    """One party's endpoint on a :class:`MemoryNetwork`."""

    def __init__(self, network: MemoryNetwork, party: int) -> None:
        self.network = network
        self.party = party
        self.peers = tuple(p for p in network.ids if p != party)
        self.mailbox = Mailbox(party, self.peers, network.timeout)
        self.closed = False

    async def send(self, to: int, tag: Tag, payload: Payload) -> None:
        """Deliver ``payload`` to ``to``'s mailbox (dropped if this party is silenced)."""
        if to not in self.peers:
            raise InvalidInputError(f"party {self.party} has no peer {to}")
        if self.closed:
            raise TransportError(f"party {self.party}'s transport is closed")
        if len(payload) > MAX_PAYLOAD:
            raise TransportError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
        if self.party in self.network.silenced:
            return
        self.network.endpoints[to].mailbox.deliver(self.party, tag, bytes(payload))

    async def recv(self, frm: int, tag: Tag, *, timeout: float | None = None) -> bytes:
        """Wait for the message from ``frm`` under ``tag``."""
        return await self.mailbox.receive(frm, tag, timeout)

    async def close(self) -> None:
        """Close this endpoint; peers waiting on it see a lost connection."""
        self.closed = True
        for peer in self.peers:
            self.network.endpoints[peer].mailbox.fail(self.party, "peer closed")


class MemoryNetwork:
    """A set of in-memory endpoints: parties 1..n and, optionally, dealer 0.

    Raises:
        InvalidInputError: n < 1.
    """

    def __init__(self, n: int, *, dealer: bool = False, timeout: float = DEFAULT_TIMEOUT) -> None:
        if n < 1:
            raise InvalidInputError("a network needs at least one party")
        self.ids = ((0,) if dealer else ()) + tuple(range(1, n + 1))
        self.timeout = timeout
        self.silenced: set[int] = set()
        self.endpoints = {p: MemoryTransport(self, p) for p in self.ids}

    def transports(self) -> list[MemoryTransport]:
        """Return the endpoints of parties 1..n, in order."""
        return [self.endpoints[p] for p in self.ids if p != 0]

    def dealer(self) -> MemoryTransport:
        """Return the dealer's endpoint (party 0)."""
        if 0 not in self.endpoints:
            raise InvalidInputError("this network was built without a dealer")
        return self.endpoints[0]

    def silence(self, party: int) -> None:
        """Drop every message ``party`` sends from now on (a crashed or silent party)."""
        self.silenced.add(party)

"""Per-(sender, tag) mailboxes: the receive side shared by every transport implementation."""

from __future__ import annotations

import asyncio

from smpcloud.errors import InvalidInputError, ProtocolError, TransportError
from smpcloud.mpc.transport import DEFAULT_TIMEOUT, Tag


class Mailbox:
    """Holds messages that arrived before anyone asked for them, keyed by (sender, tag).

    Args:
        party: the owner's id (for messages).
        peers: ids allowed to deliver.
        timeout: default seconds a receive waits.
    """

    def __init__(
        self, party: int, peers: tuple[int, ...], timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        self.party = party
        self.peers = peers
        self.timeout = timeout
        self._slots: dict[tuple[int, Tag], asyncio.Future[bytes]] = {}
        self._taken: set[tuple[int, Tag]] = set()
        self._lost: dict[int, str] = {}

    def _slot(self, key: tuple[int, Tag]) -> asyncio.Future[bytes]:
        fut = self._slots.get(key)
        if fut is None:
            fut = asyncio.get_running_loop().create_future()
            self._slots[key] = fut
        return fut

    def deliver(self, frm: int, tag: Tag, payload: bytes) -> None:
        """Store a message that arrived from ``frm``.

        Raises:
            ProtocolError: a second message under the same (sender, tag).
        """
        key = (frm, tag)
        if key in self._taken or (key in self._slots and self._slots[key].done()):
            raise ProtocolError(f"party {frm} sent two messages under tag {tag}")
        self._slot(key).set_result(payload)

    def fail(self, frm: int, reason: str) -> None:
        """Mark the connection to ``frm`` as lost: its pending and future receives fail."""
        self._lost[frm] = reason
        for (sender, _tag), fut in self._slots.items():
            if sender == frm and not fut.done():
                fut.set_exception(TransportError(f"connection to party {frm} lost: {reason}"))
                # A slot whose receive timed out has no reader left: mark the exception as
                # retrieved so asyncio does not log "Future exception was never retrieved".
                # Waiting receivers still get it (through their shield).
                fut.exception()

    async def receive(self, frm: int, tag: Tag, timeout: float | None = None) -> bytes:
        """Wait for the message from ``frm`` under ``tag``.

        Raises:
            InvalidInputError: ``frm`` is not a peer.
            ProtocolError: timeout (names the silent party) or a tag read twice.
            TransportError: the connection to ``frm`` was lost.
        """
        if frm not in self.peers:
            raise InvalidInputError(f"party {self.party} has no peer {frm}")
        key = (frm, tag)
        if key in self._taken:
            raise ProtocolError(f"message from party {frm} under tag {tag} was already read")
        fut = self._slot(key)
        if not fut.done() and frm in self._lost:
            raise TransportError(f"connection to party {frm} lost: {self._lost[frm]}")
        wait = self.timeout if timeout is None else timeout
        try:
            payload = await asyncio.wait_for(asyncio.shield(fut), wait)
        except TimeoutError:
            raise ProtocolError(
                f"party {frm} went silent: no message under tag {tag} within {wait:g} s"
            ) from None
        del self._slots[key]
        self._taken.add(key)
        return payload

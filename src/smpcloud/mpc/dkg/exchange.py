"""The rounds of key generation: every holder sends to every other, and names the silent ones.

One :class:`Exchange` per holder, over any :class:`~smpcloud.mpc.transport.Transport` (the
mutually authenticated TLS mesh in production, :class:`~smpcloud.mpc.memory.MemoryNetwork` in
tests). Each round has its own tag ("session:round name", step), the step advanced identically
by every holder; the name is also used in errors. A round waits for every peer: key generation
needs all n holders, so a holder that stays silent past the timeout, or whose connection drops,
stops the ceremony with a :class:`~smpcloud.errors.KeyGenerationError` naming it (all of them,
if several) and the round.

Also the fixed-width integer codec of the rounds (big-endian, width from the field; signed for
the integer shares): strict, so a malformed message is refused with the sender named.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence

from smpcloud.errors import KeyGenerationError, ProtocolError, TransportError
from smpcloud.mpc.transport import Transport

#: Progress callback: one line for the operator.
Progress = Callable[[str], None]


class Exchange:
    """One holder's rounds with the other holders.

    Args:
        transport: this holder's connection (its ``party`` is the holder's id).
        holders: every holder's id, this one's included (1..n).
        session: the ceremony's name; part of every tag.
        timeout: seconds to wait for each peer in each round before naming it.
    """

    def __init__(
        self, transport: Transport, holders: Sequence[int], *, session: str, timeout: float
    ) -> None:
        self.transport = transport
        self.me = transport.party
        self.holders = tuple(sorted(holders))
        self.peers = tuple(h for h in self.holders if h != self.me)
        missing = [p for p in self.peers if p not in transport.peers]
        if self.me not in self.holders or missing:
            raise KeyGenerationError(
                f"holder {self.me} has no connection to holders {missing}", holders=tuple(missing)
            )
        self.session = session
        self.timeout = timeout
        self.step = 0
        self.bytes_sent = 0

    async def swap(self, what: str, payloads: Mapping[int, bytes]) -> dict[int, bytes]:
        """Send ``payloads[peer]`` to each peer and return what each peer sent back.

        Raises:
            KeyGenerationError: some peers went silent or disconnected (named, with ``what``).
        """
        tag = (f"{self.session}:{what}", self.step)  # the round's name travels in its tag
        self.step += 1
        sends = await asyncio.gather(
            *(self.transport.send(p, tag, payloads[p]) for p in self.peers),
            return_exceptions=True,
        )
        self.bytes_sent += sum(len(payloads[p]) for p in self.peers)
        received = await asyncio.gather(
            *(self.transport.recv(p, tag, timeout=self.timeout) for p in self.peers),
            return_exceptions=True,
        )
        failed: dict[int, BaseException] = {}
        for peer, sent, got in zip(self.peers, sends, received, strict=True):
            for outcome in (sent, got):
                if isinstance(outcome, BaseException):
                    if not isinstance(outcome, (ProtocolError, TransportError)):
                        raise outcome
                    failed.setdefault(peer, outcome)
        if failed:
            names = ", ".join(str(p) for p in failed)
            details = "; ".join(str(e) for e in failed.values())
            plural = "s" if len(failed) > 1 else ""
            raise KeyGenerationError(
                f"key generation stopped at '{what}': holder{plural} {names} did not answer "
                f"({details})",
                holders=tuple(failed),
            )
        return {p: got for p, got in zip(self.peers, received, strict=True)}  # type: ignore[misc]

    async def broadcast(self, what: str, payload: bytes) -> dict[int, bytes]:
        """Send the same ``payload`` to every peer; return each peer's payload."""
        return await self.swap(what, {p: payload for p in self.peers})


def pack(values: Sequence[int], width: int, *, signed: bool = False) -> bytes:
    """Concatenate ``values`` as ``width``-byte big-endian integers."""
    return b"".join(int(v).to_bytes(width, "big", signed=signed) for v in values)


def unpack(
    data: bytes, width: int, count: int, *, sender: int, what: str, signed: bool = False
) -> list[int]:
    """Split ``data`` into ``count`` integers of ``width`` bytes.

    Raises:
        KeyGenerationError: the length is not count * width (names the sender).
    """
    if len(data) != width * count:
        raise KeyGenerationError(
            f"holder {sender} sent {len(data)} bytes in '{what}', expected {width * count}",
            holders=(sender,),
        )
    return [
        int.from_bytes(data[i : i + width], "big", signed=signed)
        for i in range(0, len(data), width)
    ]


def width_of(bound: int) -> int:
    """Bytes for an unsigned integer below ``bound`` (add one byte for a sign)."""
    return (bound.bit_length() + 7) // 8


__all__ = ["Exchange", "Progress", "pack", "unpack", "width_of"]

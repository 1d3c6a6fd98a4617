"""One party's rounds of messages: send to its peers, gather their answers in time, open shares.

The communication half of :class:`~smpcloud.mpc.runtime.Party`, on top of a
:class:`~smpcloud.mpc.transport.Transport`: a send to several peers that tolerates a
dropped-out minority, a receive that waits for the first ``need`` well-formed messages within
the timeout (and names the silent or disconnected parties otherwise), and the **checked**
opening of a block of shares. Receives not consumed finish in the background;
:meth:`Rounds.close` cancels them.

Checked openings. An opening needs t shares (its own and t - 1 peers'), but it waits for the
shares of every live peer, and when more than t are at hand it checks that they all lie on one
polynomial of degree t - 1 (:func:`~smpcloud.mpc.consistency.check_shares`) before it
interpolates: a party whose share disagrees is named (with at least t + 2 shares) or the
inconsistency is reported (with t + 1), as a :class:`~smpcloud.errors.ProtocolError`, and the
value is not used. How long it waits: once t shares are in, at most ``grace`` seconds more
(default: the round's timeout) for the peers that are live — connected and not silent in an
earlier round. A peer whose connection is lost is not waited for; a peer that stayed silent
through an opening's wait is not waited for in later openings (its share still counts, and is
still checked, whenever it arrives in time) until it answers again. So drop-outs of n - t
parties are tolerated as before: a crashed peer costs nothing, a hung but connected one costs
one wait of ``grace`` seconds.

What the check detects: any change to at most n - t of the shares of an opened value, if the
parties that did not change theirs all answer (t + 1 shares suffice to detect one changed
share, t + 2 to name it). What it does not: fewer than t + 1 shares at hand (n = t, or
drop-outs), shares of a value that was wrong before it was opened (a party that dealt
inconsistent input shares makes later openings inconsistent, and the party then named may be
one that received them), and wrong but consistent values (no MACs: a party can still choose
its own input freely).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import TypeAlias

import numpy as np

from smpcloud.crypto.field import Field, Residues
from smpcloud.crypto.shamir import interpolate
from smpcloud.errors import InvalidInputError, ProtocolError, ShareError, TransportError
from smpcloud.mpc import codec
from smpcloud.mpc.consistency import check_shares
from smpcloud.mpc.transport import Tag, Transport

_EMPTY: Residues = np.zeros((0, 0), dtype=np.uint64)

#: Turns one received payload into residues (raises ShareError or ProtocolError if malformed).
Decoder: TypeAlias = Callable[[bytes], Residues]


class Rounds:
    """The message rounds of one party (its id is ``transport.party``).

    Args:
        transport: this party's connection.
        peers: the other computing parties' ids.
        t: threshold: t shares reconstruct (an opening waits for t - 1 peers).
        field: the field of the shares.
        timeout: seconds to wait for any one round before naming the silent parties.
        grace: seconds an opening keeps waiting, once t shares are in, for the shares of the
            other live peers (to check them); None: the round's timeout.
    """

    def __init__(
        self,
        transport: Transport,
        *,
        peers: tuple[int, ...],
        t: int,
        field: Field,
        timeout: float,
        grace: float | None = None,
    ) -> None:
        if grace is not None and grace < 0:
            raise InvalidInputError("grace must be non-negative")
        self.transport = transport
        self.id = transport.party
        self.peers = peers
        self.t = t
        self.field = field
        self.timeout = timeout
        self.grace = timeout if grace is None else min(grace, timeout)
        self._absent: set[int] = set()  # peers not waited for beyond ``need`` (see the docstring)
        self._lost: set[int] = set()  # peers whose connection was lost
        self._background: set[asyncio.Future[bytes]] = set()

    def keep(self, task: asyncio.Future[bytes]) -> None:
        """Track a receive until it finishes; :meth:`close` cancels what is left."""
        self._background.add(task)
        task.add_done_callback(_forget(self._background))

    async def send_all(self, tag: Tag, payloads: dict[int, memoryview]) -> None:
        """Send to several peers concurrently; a peer whose connection is gone is skipped.

        Raises:
            TransportError: no send succeeded (every peer is gone, or the payload is larger
                than the transport accepts); a dropped-out minority is tolerated silently.
        """
        results = await asyncio.gather(
            # Read-only views of fresh buffers (codec.encode_vectors_view): transports treat
            # them as bytes (TlsTransport sends them without a copy, others copy them).
            *(self.transport.send(to, tag, p) for to, p in payloads.items()),
            return_exceptions=True,
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        for error in errors:
            if not isinstance(error, TransportError):
                raise error
        if errors and len(errors) == len(results):
            raise errors[0]

    async def gather(
        self,
        tag: Tag,
        senders: Sequence[int],
        need: int,
        decode: Decoder,
        what: str,
        *,
        wait_for_live: bool = False,
        grace: float | None = None,
        wait_for_silent: bool = False,
    ) -> dict[int, Residues]:
        """Receive from ``senders`` until ``need`` decoded messages arrived, within the timeout.

        With ``wait_for_live``, keep waiting after that, up to ``grace`` seconds (default:
        this party's :attr:`grace`), for the messages of the senders that are live (see the
        module docstring), and update which senders are: those that stayed silent are not
        waited for next time. With ``wait_for_silent`` too, wait as well for the senders that
        were silent before (all but those whose connection was lost).

        Returns the messages in arrival order. Receives still running are left to finish in
        the background.

        Raises:
            ProtocolError: fewer than ``need`` arrive in time (names the missing parties).
            ShareError: a sender's message is malformed (names the sender).
        """
        got: dict[int, Residues] = {}
        tasks = {
            asyncio.ensure_future(self.transport.recv(j, tag, timeout=self.timeout)): j
            for j in senders
        }
        for task in tasks:
            # Receives not consumed below finish in the background (draining the mailbox);
            # their results and errors are then dropped.
            self.keep(task)
        skip = self._lost if wait_for_silent else self._absent | self._lost
        awaited = {j for j in senders if j not in skip} if wait_for_live else set()
        failed: dict[int, str] = {}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        settle: float | None = None  # when to stop waiting for the live peers beyond ``need``
        pending = set(tasks)
        while pending:
            if len(got) >= need:
                if awaited <= set(got) | set(failed):
                    break
                if settle is None:
                    extra = self.grace if grace is None else grace
                    settle = min(deadline, loop.time() + extra)
                stop = settle
            elif len(got) + len(pending) < need:
                break
            else:
                stop = deadline
            remaining = stop - loop.time()
            if remaining <= 0:
                break
            done, pending = await asyncio.wait(
                pending, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
            )
            if not done:
                break
            for task in done:
                sender = tasks[task]
                exc = task.exception()
                if exc is None:
                    try:
                        got[sender] = decode(task.result())
                    except (ShareError, ProtocolError) as bad:
                        raise ShareError(
                            f"party {sender} sent a malformed message for {what} (tag {tag}): {bad}"
                        ) from None
                elif isinstance(exc, TransportError):
                    failed[sender] = "connection lost"
                elif isinstance(exc, ProtocolError):
                    failed[sender] = "silent"
                else:
                    raise exc
        if len(got) < need:
            missing = sorted(set(senders) - set(got))
            lost = [p for p in missing if failed.get(p) == "connection lost"]
            detail = f" (connection lost: {lost})" if lost else ""
            raise ProtocolError(
                f"{what}: only {len(got)} of the {need} peer messages needed arrived within "
                f"{self.timeout:g} s; missing parties {missing}{detail}"
            )
        self._lost |= {p for p, why in failed.items() if why == "connection lost"}
        if wait_for_live:
            self._absent -= set(got)
            self._absent |= set(senders) - set(got)
        return got

    async def open_block(self, block: Residues, tag: Tag, what: str) -> Residues:
        """Open a (v, k, m) block of shares: send it to every peer, check, rebuild from t.

        Raises:
            ProtocolError: fewer than t shares in time (names the missing parties), or the
                shares at hand do not lie on one polynomial of degree t - 1 (names the party
                whose share disagrees when it can be told).
            ShareError: a peer's message is malformed.
        """
        payload = codec.encode_vectors_view(self.field, block)
        v, _, m = block.shape

        def decode(data: bytes) -> Residues:
            return codec.decode_vectors(data, self.field, count=v, length=m)

        sending = asyncio.ensure_future(self.send_all(tag, dict.fromkeys(self.peers, payload)))
        try:
            got = await self.gather(tag, self.peers, self.t - 1, decode, what, wait_for_live=True)
        finally:
            await sending
        xs = [self.id, *got]
        shares = [block, *got.values()]
        check_shares(self.field, xs, shares, self.t, f"{what} (tag {tag})")
        return interpolate(self.field, xs[: self.t], shares[: self.t])

    async def barrier(self, tag: Tag) -> None:
        """Tell every peer this party is done and wait until every live peer says so too.

        Waits up to the timeout for every peer whose connection is not lost (whatever
        ``grace`` is, and even those silent in an earlier opening), tolerating drop-outs as an
        opening does: it needs t - 1 peers.

        Raises:
            ProtocolError: fewer than t - 1 peers answered in time (names the missing ones).
        """
        payload = memoryview(codec.encode_ints([0]))

        def decode(data: bytes) -> Residues:
            codec.decode_ints(data, count=1)
            return _EMPTY

        sending = asyncio.ensure_future(self.send_all(tag, dict.fromkeys(self.peers, payload)))
        try:
            await self.gather(
                tag,
                self.peers,
                self.t - 1,
                decode,
                "closing round",
                wait_for_live=True,
                grace=self.timeout,
                wait_for_silent=True,
            )
        finally:
            await sending

    def close(self) -> None:
        """Cancel the receives still running in the background."""
        for task in list(self._background):
            task.cancel()
        self._background.clear()


def _forget(tasks: set[asyncio.Future[bytes]]) -> Callable[[asyncio.Future[bytes]], None]:
    def done(task: asyncio.Future[bytes]) -> None:
        tasks.discard(task)
        if not task.cancelled():
            task.exception()  # retrieve it: a late or failed receive is not an error here

    return done


__all__ = ["Decoder", "Rounds"]

"""Beaver triples and truncation pairs without a dealer: oblivious transfer between the parties.

:class:`OTTriples` implements :class:`~smpcloud.mpc.triples.TripleSource`, so a
:class:`~smpcloud.mpc.runtime.Party` built with it runs every protocol exactly as with the
dealer, and nobody - no dealer, no party - ever knows a triple in the clear.

How a batch of triples is made (every computing party runs the same steps, SPMD):

1. Party i draws its own additive shares a_i, b_i, uniform in the field (``os.urandom``).
2. For every pair (i, j), Gilboa multiplication over IKNP OT extension
   (:mod:`smpcloud.crypto.ot_extension`) in both directions gives additive shares of
   a_i b_j and of a_j b_i. Party i adds them to a_i b_i: its additive share c_i of
   c = (sum a_i)(sum b_i), since sum_i c_i = sum_i a_i b_i + sum_{i != j} a_i b_j.
3. Each party Shamir-shares (a_i, b_i, c_i) to all (t of n, :func:`share_elements`) and adds
   up the shares it receives: Shamir shares of a, b and c = ab.

Setup, once per pair and direction, on first use: 128 base OTs (Chou-Orlandi over Ed25519).
Messages of batch s use the tag session ``<session>/ot`` and steps s (OT requests), s + 1
(Gilboa corrections) and s + 2 (Shamir shares); s is also the OT-extension batch number.

Truncation pairs (r, r >> f): each party draws r_i uniform in [0, 2^b) - party 1 draws two
when n is even, so that an odd number n' (n, or n + 1) of values is summed - and Shamir-shares
r_i and r_i >> f; the parties add up what they receive. With b = R - ceil(log2(n' + 1)), R =
``mask_bits``, and the public d = floor(n/2) = (n' - 1)/2, the pair is r = sum r_i + d and
r' = sum (r_i >> f) + d. The parties cannot see the carry floor(sum (r_i mod 2^f) / 2^f), so r'
is not exactly r >> f, and :meth:`~smpcloud.mpc.runtime.Party.truncate` returns
floor(x / 2^f) + E with

    E in [-floor(n/2), floor(n/2) + 1]   (the dealer's: E in {0, 1}),

and E[result] = x / 2^f **exactly**, as with the dealer: S = (x mod 2^f) + sum (r_i mod 2^f) + d
has S mod 2^f uniform (one uniform r_i suffices), so E[floor(S / 2^f)] = (x mod 2^f) / 2^f +
((n' - 1)(2^f - 1)/2 + d) / 2^f, which is (x mod 2^f) / 2^f + d exactly when n' is odd. In fixed
point with f fractional bits the error is at most floor(n/2) + 1 units of 2^-f: 2 units
(3.1e-5 at f = 16) for two or three parties, 3 for four or five (:func:`truncation_error_bound`).
The runtime's tracked bound on |y|, (bound >> f) + 1, may be exceeded by up to floor(n/2)
units; this matters only for values within a few units of their declared bound. The mask also
has b instead of R bits: the statistical distance of the opened c = x + 2^(ell-1) + r from
uniform is at most 2^(ell - b) = 2^-(kappa - ceil(log2(n' + 1))) when ell + kappa = R, so use
``Party(kappa=40 + ceil(log2(n' + 1)))`` to keep 2^-40 in the worst case (a single product of
two 64-bit values in MPC_FIELD leaves 22 bits of room above kappa = 40 anyway).

Security model: semi-honest parties, at most t - 1 of them colluding (as the runtime). Step 2
is secure against any coalition of n - 1 parties (each honest party's a_i, b_i stay hidden:
the OT receiver's choice bits, the sender's factors, see :mod:`~smpcloud.crypto.ot_extension`);
step 3 reveals nothing to fewer than t parties. What the messages reveal: OT requests and
corrections are pseudorandom; Shamir shares of fewer than t parties are uniform; so every
party learns nothing but its own shares. Unlike the dealer, no single machine holds a, b or r.

Availability: every one of the n parties must take part in making triples (a silent party
stalls the batch until ``timeout`` and is named in the :class:`~smpcloud.errors.ProtocolError`);
drop-out tolerance applies only to openings, not to this preprocessing.

Cost per triple and per pair of parties: 2 sum(bit_length(p)) OTs (128 for a 64-bit field of
two 32-bit primes, 384 for :data:`~smpcloud.mpc.runtime.MPC_FIELD`), that is about 20 bytes and
a few hundred nanoseconds per OT. Heavy numpy/AES work runs in a worker thread, one batch at a
time per source, so the event loop keeps serving the network.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from typing import Final, TypeVar

import numpy as np

from smpcloud.crypto.field import Field, Residues, random_bits
from smpcloud.crypto.ot_extension import (
    MAX_BATCH_ID,
    ExtensionReceiver,
    ExtensionSender,
    ProductReceiver,
    ProductSender,
    max_product_count,
    product_ots,
)
from smpcloud.crypto.shamir import check_parameters, share_elements
from smpcloud.errors import InvalidInputError, ProtocolError, ShareError
from smpcloud.mpc import codec
from smpcloud.mpc.runtime import mask_bits as field_mask_bits
from smpcloud.mpc.transport import DEFAULT_TIMEOUT, Tag, Transport

#: OTs per direction and pair in one batch (each batch's request is 16 bytes per OT: 16 MiB).
DEFAULT_BATCH_OTS: Final = 1 << 20

#: Tag steps each batch reserves: OT requests, corrections, Shamir shares (and one spare).
_PHASES: Final = 4

T = TypeVar("T")


def ot_session(session: str) -> str:
    """Return the tag session of dealer-free triple generation for a computation ``session``."""
    return f"{session}/ot"


def truncation_error_bound(n: int) -> tuple[int, int]:
    """Return (lowest, highest) truncation error E, in units of the result, for n parties.

    :meth:`~smpcloud.mpc.runtime.Party.truncate` with pairs from :class:`OTTriples` returns
    floor(x / 2^f) + E with E in this range (see the module docstring).
    """
    return -(n // 2), n // 2 + 1


class OTTriples:
    """A :class:`~smpcloud.mpc.triples.TripleSource` that makes triples by OT between parties.

    Args:
        transport: this party's transport (reaches parties 1..n; a dealer, if any, is unused).
        n, t: the computation's parameters (t of n shares reconstruct).
        field: the field of the shares (the runtime's).
        session: the computation's name (messages use the tag session ``<session>/ot``, so
            the source can share the transport with the runtime).
        timeout: seconds to wait for any one peer message.
        max_batch: most triples made in one batch (default: what fits
            :data:`DEFAULT_BATCH_OTS` OTs); larger requests are split.

    Raises:
        InvalidInputError: bad parameters, a transport that is not party 1..n, or peers that
            the transport cannot reach.
    """

    def __init__(
        self,
        transport: Transport,
        *,
        n: int,
        t: int,
        field: Field,
        session: str = "smpc",
        timeout: float = DEFAULT_TIMEOUT,
        max_batch: int | None = None,
    ) -> None:
        check_parameters(n, t, field)
        if not 1 <= transport.party <= n:
            raise InvalidInputError(f"party id {transport.party} outside 1..{n}")
        missing = set(range(1, n + 1)) - {transport.party} - set(transport.peers)
        if missing:
            raise InvalidInputError(f"transport cannot reach parties {sorted(missing)}")
        if timeout <= 0:
            raise InvalidInputError("timeout must be positive")
        limit = max_product_count(field)
        if max_batch is None:
            max_batch = max(1, min(limit, DEFAULT_BATCH_OTS // product_ots(field, 1)))
        if not 1 <= max_batch <= limit:
            raise InvalidInputError(f"max_batch must be in 1..{limit}")
        self.transport = transport
        self.id = transport.party
        self.n = n
        self.t = t
        self.field = field
        self.session = ot_session(session)
        self.timeout = timeout
        self.max_batch = max_batch
        self.peers = tuple(p for p in range(1, n + 1) if p != self.id)
        self._next_step = _PHASES  # steps 0 and 1 belong to the setup
        self._receivers: dict[int, ExtensionReceiver] = {}
        self._senders: dict[int, ExtensionSender] = {}
        self._ready = False
        self._failed: str | None = None
        self._tail: asyncio.Future[None] | None = None
        self._closed = False

    def __repr__(self) -> str:
        return (
            f"OTTriples(party={self.id}, n={self.n}, t={self.t}, ready={self._ready}, "
            f"session={self.session!r})"
        )

    # ------------------------------------------------------------------ plumbing

    def _plan(self, count: int, size: int) -> list[tuple[int, int]]:
        """Reserve tag steps for ``count`` items in batches of ``size`` (before any await)."""
        if self._closed:
            raise ProtocolError("triple source already closed")
        if not isinstance(count, int) or count < 0:
            raise InvalidInputError("count must be a non-negative integer")
        plan = []
        left = count
        while left > 0:
            if self._next_step > MAX_BATCH_ID:
                raise ProtocolError("dealer-free triple source exhausted its batch numbers")
            take = min(left, size)
            plan.append((self._next_step, take))
            self._next_step += _PHASES
            left -= take
        return plan

    def _turn(self) -> tuple[asyncio.Future[None] | None, asyncio.Future[None]]:
        """Take the next place in line (batches of triples are made one call at a time)."""
        previous = self._tail
        mine: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._tail = mine
        return previous, mine

    def _tag(self, step: int) -> Tag:
        return (self.session, step)

    async def _recv(self, peer: int, step: int) -> bytes:
        return await self.transport.recv(peer, self._tag(step), timeout=self.timeout)

    async def _all(self, jobs: Sequence[Awaitable[T]]) -> list[T]:
        """Run jobs concurrently; on the first failure cancel the rest and raise it."""
        tasks = [asyncio.ensure_future(job) for job in jobs]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    # ------------------------------------------------------------------ setup

    async def _ensure_setup(self) -> None:
        if self._ready:
            return
        if self._failed is not None:
            raise ProtocolError(f"dealer-free triple setup failed earlier: {self._failed}")
        try:
            await self._all([self._setup_with(peer) for peer in self.peers])
        except BaseException as exc:
            self._failed = str(exc) or type(exc).__name__
            raise
        self._ready = True

    async def _setup_with(self, peer: int) -> None:
        """Base OTs with ``peer`` in both directions (steps 0 and 1)."""
        receiver, sender = ExtensionReceiver(), ExtensionSender()
        await self.transport.send(peer, self._tag(0), receiver.setup())
        setup = await self._recv(peer, 0)
        await self.transport.send(peer, self._tag(1), await asyncio.to_thread(sender.setup, setup))
        reply = await self._recv(peer, 1)
        await asyncio.to_thread(receiver.finish_setup, reply)
        self._receivers[peer] = receiver
        self._senders[peer] = sender

    # ------------------------------------------------------------------ triples

    async def triples(self, count: int) -> tuple[Residues, Residues, Residues]:
        """Return this party's Shamir shares of ``count`` Beaver triples (a, b, c = ab).

        Reveals nothing to any coalition of fewer than t parties (see the module docstring).

        Raises:
            ProtocolError: a peer went silent or sent a malformed message, or the setup
                failed; the source is closed.
            TransportError: a connection was lost.
        """
        plan = self._plan(count, self.max_batch)
        previous, mine = self._turn()
        try:
            if previous is not None and not previous.done():
                await asyncio.wait([previous])
            if not plan:
                empty = np.zeros((self.field.k, 0), dtype=np.uint64)
                return empty, empty.copy(), empty.copy()
            await self._ensure_setup()
            blocks = [await self._triple_batch(step, size) for step, size in plan]
        finally:
            if not mine.done():
                mine.set_result(None)
        block = blocks[0] if len(blocks) == 1 else np.concatenate(blocks, axis=2)
        return block[0], block[1], block[2]

    async def _triple_batch(self, step: int, count: int) -> Residues:
        field = self.field
        a = field.random(count)
        b = field.random(count)
        c = field.mul(a, b)
        for term in await self._all([self._cross_terms(peer, step, a, b) for peer in self.peers]):
            c = field.add(c, term)
        return await self._reshare(step + 2, np.stack([a, b, c]))

    async def _cross_terms(self, peer: int, step: int, a: Residues, b: Residues) -> Residues:
        """Return this party's additive share of a_me b_peer + a_peer b_me (steps s, s + 1)."""
        field = self.field
        receiver = ProductReceiver(self._receivers[peer], field, a, batch=step)
        await self.transport.send(peer, self._tag(step), await asyncio.to_thread(receiver.request))
        request = await self._recv(peer, step)
        sender = ProductSender(self._senders[peer], field, b, batch=step)
        corrections, mine = await asyncio.to_thread(sender.respond, request)
        await self.transport.send(peer, self._tag(step + 1), corrections)
        received = await self._recv(peer, step + 1)
        theirs = await asyncio.to_thread(receiver.finish, received)
        return field.add(mine, theirs)

    async def _reshare(self, step: int, block: Residues) -> Residues:
        """Turn additive shares (v, k, m) into Shamir shares: share to all, add up (step s)."""
        field = self.field
        shares = share_elements(field, block, n=self.n, t=self.t)
        tag = self._tag(step)
        for peer in self.peers:
            await self.transport.send(peer, tag, codec.encode_vectors(field, shares[peer - 1]))
        total = shares[self.id - 1]
        vectors, _, length = block.shape
        for peer in self.peers:
            data = await self._recv(peer, step)
            try:
                received = codec.decode_vectors(data, field, count=vectors, length=length)
            except ShareError as exc:
                raise ProtocolError(f"malformed shares from party {peer}: {exc}") from None
            total += received
            total %= field.column
        return total

    # ------------------------------------------------------------------ truncation pairs

    async def truncation_pairs(
        self, count: int, *, frac_bits: int, mask_bits: int
    ) -> tuple[Residues, Residues]:
        """Return shares of ``count`` pairs (r, r') with r' = r >> frac_bits up to the carry.

        r is the sum of the parties' r_i (each uniform in [0, 2^b), b = mask_bits -
        ceil(log2(n' + 1)), n' = n rounded up to odd) plus a public offset;
        :meth:`Party.truncate` with these pairs is exactly unbiased and has the error range
        of :func:`truncation_error_bound` (see the module docstring). One round, no OT.
        Reveals nothing to fewer than t parties.

        Raises:
            InvalidInputError: frac_bits, mask_bits out of range for this field and n.
            ProtocolError, TransportError: as :meth:`triples`.
        """
        room = field_mask_bits(self.field)
        if not 0 < frac_bits < mask_bits <= room:
            raise InvalidInputError(
                f"need 0 < frac_bits={frac_bits} < mask_bits={mask_bits} <= {room}"
            )
        draws = self.n + 1 - self.n % 2  # n', odd: party 1 draws twice when n is even
        bits = mask_bits - draws.bit_length()  # draws * 2^bits + d <= (n' + 1) 2^bits <= 2^R
        if bits <= frac_bits:
            raise InvalidInputError(
                f"mask_bits={mask_bits} leaves no room for {self.n} parties' masks of "
                f"more than frac_bits={frac_bits} bits"
            )
        plan = self._plan(count, max(self.max_batch, 1 << 15))
        mine = 2 if self.id == 1 and self.n % 2 == 0 else 1
        blocks = []
        for step, size in plan:
            r, shifted = random_bits(self.field, size, bits, frac_bits)
            for _ in range(mine - 1):
                more, more_shifted = random_bits(self.field, size, bits, frac_bits)
                r, shifted = self.field.add(r, more), self.field.add(shifted, more_shifted)
            blocks.append(await self._reshare(step, np.stack([r, shifted])))
        if not blocks:
            empty = np.zeros((self.field.k, 0), dtype=np.uint64)
            return empty, empty.copy()
        block = blocks[0] if len(blocks) == 1 else np.concatenate(blocks, axis=2)
        centre = self.n // 2  # d: centres the carry, making the truncation exactly unbiased
        return self.field.add_int(block[0], centre), self.field.add_int(block[1], centre)

    async def close(self) -> None:
        """Say that this party needs nothing more (nothing is sent). Idempotent."""
        self._closed = True


__all__ = [
    "DEFAULT_BATCH_OTS",
    "OTTriples",
    "ot_session",
    "truncation_error_bound",
]

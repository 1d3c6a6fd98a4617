"""The trusted dealer (party 0): Beaver triples and truncation pairs on request.

Like CrypTen's trusted third party, the dealer takes part only in preprocessing: it never sees
an input, a share of an input or an output. Computing parties (1..n) run the same program, so
they ask for the same batches in the same order; each batch is numbered by the tag step
(session ``<session>/dealer``). The dealer serves a batch once, when the *first* request for it
arrives, and sends every party its shares; a party that dropped out therefore does not hold the
others up, and later copies of the request are ignored.

Trust: the dealer learns nothing about the inputs, because the values it generates are
independent of them. But it knows every a, b and r in the clear, and the parties open
d = x - a, e = y - b and c = x + 2^(ell-1) + r: a dealer that colludes with even **one**
computing party (or reads its traffic) learns every multiplied and truncated value. Run it
somewhere none of the parties controls, or use a dealer-free triple source.

Randomness: OS CSPRNG only (:func:`~smpcloud.mpc.runtime.random_elements`, ``os.urandom``).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import numpy as np

from smpcloud.crypto import shamir
from smpcloud.crypto.field import Field, Residues, random_bits
from smpcloud.errors import InvalidInputError, ProtocolError, TransportError
from smpcloud.mpc import codec
from smpcloud.mpc.codec import Request, RequestOp
from smpcloud.mpc.runtime import MPC_FIELD, mask_bits, random_elements, share_elements
from smpcloud.mpc.transport import Tag, Transport
from smpcloud.mpc.triples import MAX_BATCH, dealer_session


@dataclass(slots=True)
class DealerStats:
    """What a dealer run served.

    Attributes:
        batches: batches served (including refusals).
        triples: Beaver triples dealt.
        pairs: truncation pairs dealt.
        refused: requests answered with an error.
    """

    batches: int = 0
    triples: int = 0
    pairs: int = 0
    refused: int = 0


# ====================================================================== pure generation


def deal_triples(field: Field, count: int, *, n: int, t: int) -> list[Residues]:
    """Generate ``count`` Beaver triples and Shamir-share them.

    a and b are uniform field elements, c = ab; each of the three is shared t-of-n.

    Returns:
        n blocks of shape (3, k, count): party j's shares of (a, b, c) at index j - 1.
    """
    secret = np.empty((3, field.k, count), dtype=np.uint64)
    secret[:2] = random_elements(field, (2, field.k, count))
    np.multiply(secret[0], secret[1], out=secret[2])
    secret[2] %= field.column
    return share_elements(field, secret, n=n, t=t)


def deal_truncation_pairs(
    field: Field, count: int, *, n: int, t: int, frac_bits: int, mask_bits: int
) -> list[Residues]:
    """Generate ``count`` pairs (r, r >> frac_bits), r uniform in [0, 2^mask_bits), shared.

    Returns:
        n blocks of shape (2, k, count): party j's shares of (r, r >> frac_bits).
    """
    r, shifted = random_bits(field, count, mask_bits, frac_bits)
    return share_elements(field, np.stack([r, shifted]), n=n, t=t)


def check_request(request: Request, field: Field, max_batch: int = MAX_BATCH) -> None:
    """Check a request against the field and the batch limit.

    Raises:
        ProtocolError: a count outside 1..max_batch or truncation parameters the field does
            not allow (0 < frac_bits < mask_bits <= M.bit_length() - 2).
    """
    if request.op == RequestOp.DONE:
        return
    if not 1 <= request.count <= max_batch:
        raise ProtocolError(f"batch of {request.count} outside 1..{max_batch}")
    if request.op == RequestOp.TRUNCATION_PAIRS:
        room = mask_bits(field)
        if not 0 < request.frac_bits < request.mask_bits <= room:
            raise ProtocolError(
                f"truncation pair parameters frac_bits={request.frac_bits}, "
                f"mask_bits={request.mask_bits} not within 0 < f < mask_bits <= {room}"
            )


def deal(request: Request, field: Field, *, n: int, t: int) -> list[Residues]:
    """Generate the shares that answer a (checked) request: one block per party 1..n."""
    if request.op == RequestOp.TRIPLES:
        return deal_triples(field, request.count, n=n, t=t)
    return deal_truncation_pairs(
        field,
        request.count,
        n=n,
        t=t,
        frac_bits=request.frac_bits,
        mask_bits=request.mask_bits,
    )


# ====================================================================== the service loop


async def run_dealer(
    transport: Transport,
    *,
    n: int,
    t: int,
    field: Field = MPC_FIELD,
    session: str = "smpc",
    max_batch: int = MAX_BATCH,
    idle_timeout: float | None = None,
    poll: float = 5.0,
) -> DealerStats:
    """Serve triple and truncation-pair requests until every party is done or gone.

    Each computing party's requests are read in batch order by its own reader task, which
    hands them to one queue (the same effect as ``asyncio.wait(FIRST_COMPLETED)`` over the
    parties, with n long-lived tasks instead of n new ones per batch); a batch is served as
    soon as the first request for it arrives, from any party, so silent parties do not block
    the rest. Generation and encoding run in a worker thread (numpy and ``os.urandom`` release
    the GIL) while the previous batch is still being sent. Invalid requests are answered with
    an error message to every party, and the dealer keeps running.

    Args:
        transport: the dealer's endpoint (``transport.party == 0``).
        n, t: the computation's parameters (t of n shares reconstruct).
        field: the field of the shares (must match the parties').
        session: the computation's name (the parties' ``Party.session``).
        max_batch: refuse larger batches.
        idle_timeout: stop after this many seconds without a new request (None: never).
        poll: how often (seconds) each reader re-arms its receive.

    Returns:
        What was served.

    Stops when every party has sent "done" or its connection closed, or after
    ``idle_timeout``. Reveals nothing to anyone: every party receives only its own shares.

    Raises:
        InvalidInputError: bad parameters or a transport that is not party 0.
    """
    shamir.check_parameters(n, t, field)
    if transport.party != 0:
        raise InvalidInputError("the dealer must be party 0")
    if not 1 <= max_batch <= MAX_BATCH:
        raise InvalidInputError(f"max_batch must be in 1..{MAX_BATCH}")
    tags = dealer_session(session)
    queue: asyncio.Queue[tuple[int, int, bytes | None]] = asyncio.Queue()
    stats = DealerStats()

    async def reader(party: int) -> None:
        batch = 0
        while True:
            try:
                data = await transport.recv(party, (tags, batch), timeout=poll)
            except ProtocolError:
                continue  # nothing yet: wait again
            except TransportError:
                await queue.put((party, batch, None))
                return
            await queue.put((party, batch, data))
            if _is_done(data):
                return
            batch += 1

    readers = [asyncio.ensure_future(reader(p)) for p in range(1, n + 1)]
    live = set(range(1, n + 1))
    served = 0
    sending: asyncio.Future[None] | None = None  # the previous batch, still being sent
    try:
        while live:
            try:
                party, batch, data = await asyncio.wait_for(queue.get(), idle_timeout)
            except TimeoutError:
                break
            if data is None or _is_done(data):
                live.discard(party)
                continue
            if batch < served:
                continue  # this batch was already served on another party's request
            served += 1
            stats.batches += 1
            try:
                request = codec.decode_request(data)
                check_request(request, field, max_batch)
            except ProtocolError as exc:
                stats.refused += 1
                payloads = dict.fromkeys(live, codec.encode_error(str(exc)))
            else:
                # Generate (and encode) in a worker thread while the previous batch is sent.
                payloads = await asyncio.to_thread(_deal_encoded, request, field, n, t, set(live))
                if request.op == RequestOp.TRIPLES:
                    stats.triples += request.count
                else:
                    stats.pairs += request.count
            if sending is not None:
                await sending
            sending = asyncio.ensure_future(_send_all(transport, (tags, batch), payloads))
        if sending is not None:
            await sending
    finally:
        if sending is not None and not sending.done():
            sending.cancel()
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
    return stats


def _deal_encoded(
    request: Request, field: Field, n: int, t: int, parties: set[int]
) -> dict[int, bytes]:
    blocks = deal(request, field, n=n, t=t)
    return {p: codec.encode_vectors(field, blocks[p - 1]) for p in sorted(parties)}


def _is_done(data: bytes) -> bool:
    if codec.kind_of(data) != codec.Kind.REQUEST:
        return False
    try:
        return codec.decode_request(data).op == RequestOp.DONE
    except ProtocolError:
        return False


async def _send_all(transport: Transport, tag: Tag, payloads: dict[int, bytes]) -> None:
    """Send each party its payload; a party that went away is skipped."""
    for party in sorted(payloads):
        with contextlib.suppress(TransportError, ProtocolError):
            await transport.send(party, tag, payloads[party])


__all__ = [
    "DealerStats",
    "check_request",
    "deal",
    "deal_triples",
    "deal_truncation_pairs",
    "run_dealer",
]

"""The trusted dealer (party 0): Beaver triples and truncation pairs, as the session fixes them.

Like CrypTen's trusted third party, the dealer takes part only in preprocessing: it never sees
an input, a share of an input or an output. Computing parties (1..n) run the same program, so
they ask for the same batches in the same order; each batch is numbered by the tag step
(session ``<session>/dealer``).

What a batch is, is fixed by the session, not by a requester. The dealer is started with the
session's parameters (:class:`~smpcloud.mpc.session.SessionParameters`, computed from the
deployment exactly as the parties compute theirs) and checks every request against them: the
count within 1..max_batch, truncation masks of exactly the field's size (``mask_bits``, so
that the opened c = x + 2^(ell-1) + r hides x to within 2^-kappa) and a truncation shift the
session uses. The first request for a batch that passes defines the batch; it is generated
then, and every party receives its shares when its own request for that batch arrives and is
identical to the first. A request that disagrees — with the session or with the batch's first
request — is refused with an error frame to that party (naming it, what it asked for and what
was fixed; the party then fails at once with that message), and no one is served a batch built
from it. A party that dropped out (said "done" or lost its connection) does not hold the
others up: nobody waits for its request.

So a deviating computing party can no longer choose the parameters of anyone's correlated
randomness (for example ask for masks of f + 1 bits, which would let it read every truncated
product from the opened c, or for batches of another size or kind): at worst its own requests
are refused, or, if its request was the first for a batch and the honest parties' requests
differ from it (another count or kind, which the session does not fix), the honest parties are
refused naming it and the computation stops; privacy is kept either way.

What the dealer can still do: it is trusted. It learns nothing about the inputs, because the
values it generates are independent of them; but it knows every a, b and r in the clear, and
the parties open d = x - a, e = y - b and c = x + 2^(ell-1) + r, so a dealer that colludes
with even **one** computing party (or reads its traffic) learns every multiplied and truncated
value, and a dealer that deals inconsistent or wrong triples can make results wrong
(inconsistent shares are detected by checked openings when more than t shares arrive, see
:mod:`smpcloud.mpc.rounds`; consistent but wrong triples are not). Run it somewhere none of the
parties controls, or use a dealer-free triple source.

Randomness: OS CSPRNG only (:func:`~smpcloud.mpc.runtime.random_elements`, ``os.urandom``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from dataclasses import dataclass

import numpy as np

from smpcloud.crypto.field import Field, Residues, random_bits
from smpcloud.errors import InvalidInputError, ProtocolError, TransportError
from smpcloud.mpc import codec
from smpcloud.mpc.codec import Request, RequestOp
from smpcloud.mpc.runtime import random_elements, share_elements
from smpcloud.mpc.session import MPC_FIELD, SessionParameters, describe_request
from smpcloud.mpc.transport import Tag, Transport
from smpcloud.mpc.triples import MAX_BATCH, dealer_session


@dataclass(slots=True)
class DealerStats:
    """What a dealer run served.

    Attributes:
        batches: batches dealt.
        triples: Beaver triples dealt.
        pairs: truncation pairs dealt.
        refused: requests answered with an error.
        refusals: why, one line per refused request (names the party).
    """

    batches: int = 0
    triples: int = 0
    pairs: int = 0
    refused: int = 0
    refusals: list[str] = dataclasses.field(default_factory=list)


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


def deal(request: Request, field: Field, *, n: int, t: int) -> list[Residues]:
    """Generate the shares that answer a request checked against the session: one block per
    party 1..n."""
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


@dataclass(slots=True)
class _Batch:
    """A batch dealt on its first valid request, waiting for the other parties' requests."""

    request: Request
    first: int  # the party whose request defined it
    payloads: dict[int, bytes]  # party -> its encoded shares, until that party asks


async def run_dealer(
    transport: Transport,
    *,
    parameters: SessionParameters | None = None,
    n: int | None = None,
    t: int | None = None,
    field: Field = MPC_FIELD,
    session: str = "smpc",
    max_batch: int = MAX_BATCH,
    idle_timeout: float | None = None,
    poll: float = 5.0,
) -> DealerStats:
    """Serve triple and truncation-pair requests until every party is done or gone.

    Each computing party's requests are read in batch order by its own reader task, which
    hands them to one queue. The first request for a batch that agrees with the session's
    parameters defines the batch: the dealer generates it then (in a worker thread, while the
    previous reply is still being sent) and answers every party when *its own* request for
    that batch arrives, if that request is identical; a party that dropped out therefore does
    not hold the others up. A request that disagrees with the session, or with the batch's
    first request, is answered with an error frame to that party only (naming it, what it
    asked for and what was fixed), and the dealer keeps serving the others.

    Args:
        transport: the dealer's endpoint (``transport.party == 0``).
        parameters: the session's parameters (:class:`~smpcloud.mpc.session.SessionParameters`,
            computed the same way the parties compute theirs). Without them, ``n`` and ``t``
            are required and ``field``, ``session`` and ``max_batch`` complete them (every
            truncation shift allowed; masks always the field's full size).
        n, t: the computation's parameters (t of n shares reconstruct), without ``parameters``.
        field: the field of the shares (must match the parties'), without ``parameters``.
        session: the computation's name (the parties' ``Party.session``), likewise.
        max_batch: refuse larger batches, likewise.
        idle_timeout: stop after this many seconds without a new request (None: never).
        poll: how often (seconds) each reader re-arms its receive.

    Returns:
        What was served, and the refusals.

    Stops when every party has sent "done" or its connection closed, or after
    ``idle_timeout``. Reveals nothing to anyone: every party receives only its own shares.

    Raises:
        InvalidInputError: bad parameters (or both ``parameters`` and ``n``/``t``), or a
            transport that is not party 0.
    """
    if parameters is None:
        if n is None or t is None:
            raise InvalidInputError("run_dealer needs the session's parameters (or n and t)")
        parameters = SessionParameters(n=n, t=t, field=field, session=session, max_batch=max_batch)
    elif n is not None or t is not None:
        raise InvalidInputError("pass either the session's parameters or n and t, not both")
    if transport.party != 0:
        raise InvalidInputError("the dealer must be party 0")
    params = parameters
    tags = dealer_session(params.session)
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

    readers = [asyncio.ensure_future(reader(p)) for p in range(1, params.n + 1)]
    live = set(range(1, params.n + 1))
    batches: dict[int, _Batch] = {}
    sending: asyncio.Future[None] | None = None  # the previous reply, still being sent

    def refuse(reason: str) -> bytes:
        stats.refused += 1
        stats.refusals.append(reason)
        return codec.encode_error(reason)

    try:
        while live:
            try:
                party, batch, data = await asyncio.wait_for(queue.get(), idle_timeout)
            except TimeoutError:
                break
            if data is None or _is_done(data):
                live.discard(party)
                _forget_party(batches, party)
                continue
            entry = batches.get(batch)
            reply: bytes
            try:
                request = codec.decode_request(data)
            except ProtocolError as exc:
                reply = refuse(f"party {party} sent a malformed request for batch {batch}: {exc}")
                _take(batches, batch, party)
            else:
                if entry is None:
                    try:
                        params.check_request(request, party=party, batch=batch)
                    except ProtocolError as exc:
                        reply = refuse(str(exc))
                    else:
                        # Generate (and encode) in a worker thread while the previous reply
                        # is sent.
                        payloads = await asyncio.to_thread(_deal_encoded, request, params, live)
                        batches[batch] = _Batch(request, party, payloads)
                        stats.batches += 1
                        if request.op == RequestOp.TRIPLES:
                            stats.triples += request.count
                        else:
                            stats.pairs += request.count
                        reply = _take(batches, batch, party) or refuse(_gone(party, batch))
                elif request != entry.request:
                    reply = refuse(
                        f"party {party} asked for {describe_request(request)} (batch {batch}), "
                        f"but party {entry.first} asked for {describe_request(entry.request)} "
                        "first: every party of a session must ask for the same batches"
                    )
                    _take(batches, batch, party)
                else:
                    reply = _take(batches, batch, party) or refuse(_gone(party, batch))
            if sending is not None:
                await sending
            sending = asyncio.ensure_future(_send(transport, party, (tags, batch), reply))
        if sending is not None:
            await sending
    finally:
        if sending is not None and not sending.done():
            sending.cancel()
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
    return stats


def _take(batches: dict[int, _Batch], batch: int, party: int) -> bytes | None:
    """Remove and return ``party``'s shares of ``batch``; drop the batch once all are taken."""
    entry = batches.get(batch)
    if entry is None:
        return None
    payload = entry.payloads.pop(party, None)
    if not entry.payloads:
        del batches[batch]
    return payload


def _gone(party: int, batch: int) -> str:
    return f"party {party} asked for batch {batch} after leaving the session"


def _forget_party(batches: dict[int, _Batch], party: int) -> None:
    """Drop a departed party's shares of every batch still waiting."""
    for batch in list(batches):
        _take(batches, batch, party)


def _deal_encoded(
    request: Request, params: SessionParameters, parties: set[int]
) -> dict[int, bytes]:
    blocks = deal(request, params.field, n=params.n, t=params.t)
    return {p: codec.encode_vectors(params.field, blocks[p - 1]) for p in sorted(parties)}


def _is_done(data: bytes) -> bool:
    if codec.kind_of(data) != codec.Kind.REQUEST:
        return False
    try:
        return codec.decode_request(data).op == RequestOp.DONE
    except ProtocolError:
        return False


async def _send(transport: Transport, party: int, tag: Tag, payload: bytes) -> None:
    """Send one party its reply; a party that went away is skipped."""
    with contextlib.suppress(TransportError, ProtocolError):
        await transport.send(party, tag, payload)


__all__ = [
    "DealerStats",
    "deal",
    "deal_triples",
    "deal_truncation_pairs",
    "run_dealer",
]

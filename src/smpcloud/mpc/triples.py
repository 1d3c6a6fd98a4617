"""Where correlated randomness comes from: Beaver triples and truncation pairs.

:class:`TripleSource` is the interface the runtime needs; :class:`DealerTriples` fetches from
the trusted dealer (:mod:`smpcloud.mpc.dealer`) over the party's transport. A dealer-free source
(triples from oblivious transfer between the parties) can implement the same interface.

Ordering contract: all computing parties call a source's methods with the same arguments in
the same order (SPMD), and each call reserves its place in that order *before its first await*
so that calls started together (``asyncio.gather``) keep program order. The shares returned to
party j are its Shamir shares (x = j) of the same t-of-n sharings as every other party's.
"""

from __future__ import annotations

from typing import Final, Protocol, runtime_checkable

import numpy as np

from smpcloud.crypto.field import Field, Residues
from smpcloud.errors import InvalidInputError, ProtocolError, ShareError, TransportError
from smpcloud.mpc import codec
from smpcloud.mpc.codec import Request, RequestOp
from smpcloud.mpc.transport import DEFAULT_TIMEOUT, Tag, Transport

#: The dealer's id on every transport.
DEALER: Final = 0

#: Most triples or pairs the dealer serves in one batch (a reply of 3 x k x 4 bytes each; with
#: six primes, 2^21 triples are 151 MB).
MAX_BATCH: Final = 1 << 21

#: Batch size :class:`DealerTriples` asks for: larger requests are split into batches of this
#: size, all requested at once, so that the dealer sends one batch while generating the next.
DEFAULT_BATCH: Final = 1 << 15


def dealer_session(session: str) -> str:
    """Return the tag session of the dealer's batches for a computation named ``session``."""
    return f"{session}/dealer"


@runtime_checkable
class TripleSource(Protocol):
    """A source of Beaver triples and truncation pairs, as this party's shares."""

    async def triples(self, count: int) -> tuple[Residues, Residues, Residues]:
        """Return shares of ``count`` triples (a, b, c) with c = ab, each of shape (k, count).

        a and b are uniform in the field and unknown to every coalition of fewer than t
        parties.

        Raises:
            ProtocolError: the source could not deliver within its timeout.
        """
        ...

    async def truncation_pairs(
        self, count: int, *, frac_bits: int, mask_bits: int
    ) -> tuple[Residues, Residues]:
        """Return shares of ``count`` pairs (r, r >> frac_bits), r uniform in [0, 2^mask_bits).

        Raises:
            ProtocolError: the source could not deliver within its timeout.
        """
        ...

    async def close(self) -> None:
        """Say that this party needs nothing more."""
        ...


class DealerTriples:
    """Fetch triples and truncation pairs from the trusted dealer (party 0).

    Every request carries a batch number (the tag step, counted identically by every party);
    the dealer deals each batch once, on the first request for it that agrees with the
    session, and answers each party's own identical request with that party's shares, so a
    party that dropped out does not hold the others up. A refusal (this party's request
    disagreed with the session or with the batch's first request) is a
    :class:`~smpcloud.errors.ProtocolError` carrying the dealer's reason.

    Args:
        transport: this party's transport (must reach party 0).
        field: the field of the shares.
        session: the computation's name (batches use the tag session ``session/dealer``).
        timeout: seconds to wait for the dealer's answer.
        max_batch: split requests larger than this into batches (at most :data:`MAX_BATCH`).

    Raises:
        InvalidInputError: the transport cannot reach the dealer.
    """

    def __init__(
        self,
        transport: Transport,
        *,
        field: Field,
        session: str = "smpc",
        timeout: float = DEFAULT_TIMEOUT,
        max_batch: int = DEFAULT_BATCH,
    ) -> None:
        if DEALER not in transport.peers:
            raise InvalidInputError("this transport has no dealer (party 0) to ask for triples")
        if not 1 <= max_batch <= MAX_BATCH:
            raise InvalidInputError(f"max_batch must be in 1..{MAX_BATCH}")
        self.transport = transport
        self.field = field
        self.session = dealer_session(session)
        self.timeout = timeout
        self.max_batch = max_batch
        self._batch = 0
        self._closed = False

    def _reserve(self, count: int) -> list[tuple[Tag, int]]:
        if self._closed:
            raise ProtocolError("triple source already closed")
        if count < 0:
            raise InvalidInputError("count must be non-negative")
        plan = []
        left = count
        while left > 0:
            size = min(left, self.max_batch)
            plan.append(((self.session, self._batch), size))
            self._batch += 1
            left -= size
        return plan

    async def _fetch(self, plan: list[tuple[Tag, int]], request: Request, vectors: int) -> Residues:
        if not plan:
            return np.zeros((vectors, self.field.k, 0), dtype=np.uint64)
        for tag, size in plan:
            await self.transport.send(DEALER, tag, codec.encode_request(_sized(request, size)))
        blocks = []
        for tag, size in plan:
            data = await self.transport.recv(DEALER, tag, timeout=self.timeout)
            if codec.kind_of(data) == codec.Kind.ERROR:
                reason = codec.decode_error(data)
                raise ProtocolError(f"the dealer refused batch {tag[1]}: {reason}")
            try:
                blocks.append(codec.decode_vectors(data, self.field, count=vectors, length=size))
            except ShareError as exc:
                raise ProtocolError(
                    f"malformed reply from the dealer for batch {tag[1]}: {exc}"
                ) from None
        return blocks[0] if len(blocks) == 1 else np.concatenate(blocks, axis=2)

    async def triples(self, count: int) -> tuple[Residues, Residues, Residues]:
        """Return this party's shares of ``count`` Beaver triples from the dealer."""
        plan = self._reserve(count)
        block = await self._fetch(plan, Request(RequestOp.TRIPLES), 3)
        return block[0], block[1], block[2]

    async def truncation_pairs(
        self, count: int, *, frac_bits: int, mask_bits: int
    ) -> tuple[Residues, Residues]:
        """Return this party's shares of ``count`` pairs (r, r >> frac_bits) from the dealer."""
        if not 0 < frac_bits < mask_bits:
            raise InvalidInputError(f"need 0 < frac_bits={frac_bits} < mask_bits={mask_bits}")
        plan = self._reserve(count)
        request = Request(RequestOp.TRUNCATION_PAIRS, 0, frac_bits, mask_bits)
        block = await self._fetch(plan, request, 2)
        return block[0], block[1]

    async def close(self) -> None:
        """Tell the dealer this party is done (it stops serving). Idempotent."""
        if self._closed:
            return
        self._closed = True
        tag = (self.session, self._batch)
        self._batch += 1
        try:
            await self.transport.send(DEALER, tag, codec.encode_request(Request(RequestOp.DONE)))
        except (TransportError, ProtocolError):
            return  # best effort: the dealer also stops when every connection closes


def _sized(request: Request, count: int) -> Request:
    return Request(request.op, count, request.frac_bits, request.mask_bits)


__all__ = [
    "DEALER",
    "DEFAULT_BATCH",
    "MAX_BATCH",
    "DealerTriples",
    "TripleSource",
    "dealer_session",
]

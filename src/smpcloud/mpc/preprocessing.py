"""The offline phase of a party: Beaver triples and truncation pairs, fetched and reserved.

A :class:`MaterialPool` takes what :meth:`~smpcloud.mpc.runtime.Party.prefetch` asked for ahead
of time and hands it out, in program order, to the multiplications and truncations that need
it, asking the triple source (:class:`~smpcloud.mpc.triples.TripleSource`) only for what is
missing. Every reservation takes its place when the operation is *called*, so every party
reserves the same material for the same operation (see the ordering rule of
:mod:`smpcloud.mpc.runtime`). The material is secret shares: never logged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeAlias

import numpy as np

from smpcloud.crypto.field import Field, Residues
from smpcloud.errors import InvalidInputError
from smpcloud.mpc.rns import mask_bits
from smpcloud.mpc.triples import TripleSource

#: A slice of prefetched material: (the fetch, first index, count).
Pooled: TypeAlias = tuple["asyncio.Future[tuple[Residues, ...]]", int, int]


class MaterialPool:
    """Prefetched triples and truncation pairs of one party, handed out in call order.

    Args:
        source: returns the party's triple source, or raises
            :class:`~smpcloud.errors.ProtocolError` if it has none.
        field: the field of the shares (it sets the size of truncation masks).
    """

    def __init__(self, source: Callable[[], TripleSource], field: Field) -> None:
        self._source = source
        self._field = field
        self._triples: list[Pooled] = []
        self._pairs: dict[int, list[Pooled]] = {}

    def prefetch(
        self, *, triples: int = 0, truncation_pairs: int = 0, frac_bits: int = 16
    ) -> asyncio.Future[None]:
        """Start fetching material; see :meth:`smpcloud.mpc.runtime.Party.prefetch`.

        Raises:
            InvalidInputError: a negative count.
            ProtocolError: no triple source (the future raises if the source fails).
        """
        if triples < 0 or truncation_pairs < 0:
            raise InvalidInputError("counts must be non-negative")
        source = self._source()
        fetching: list[asyncio.Future[tuple[Residues, ...]]] = []
        if triples:
            fut = asyncio.ensure_future(_as_tuple(source.triples(triples)))
            self._triples.append((fut, 0, triples))
            fut.add_done_callback(_retrieve)
            fetching.append(fut)
        if truncation_pairs:
            fut = asyncio.ensure_future(
                _as_tuple(
                    source.truncation_pairs(
                        truncation_pairs, frac_bits=frac_bits, mask_bits=mask_bits(self._field)
                    )
                )
            )
            self._pairs.setdefault(frac_bits, []).append((fut, 0, truncation_pairs))
            fut.add_done_callback(_retrieve)
            fetching.append(fut)
        done = asyncio.ensure_future(_wait_all(fetching))
        done.add_done_callback(_retrieve)
        return done

    def reserve_triples(self, count: int) -> asyncio.Future[tuple[Residues, ...]]:
        """Take ``count`` triples: from the pool now, the rest from the source (in order)."""
        return self._reserve(self._triples, count, lambda n: self._source().triples(n))

    def reserve_pairs(self, count: int, shift: int) -> asyncio.Future[tuple[Residues, ...]]:
        """Take ``count`` truncation pairs for ``shift``: pool first, then the source."""
        room = mask_bits(self._field)
        return self._reserve(
            self._pairs.setdefault(shift, []),
            count,
            lambda n: self._source().truncation_pairs(n, frac_bits=shift, mask_bits=room),
        )

    def _reserve(
        self,
        pool: list[Pooled],
        count: int,
        fetch: Callable[[int], Awaitable[tuple[Residues, ...]]],
    ) -> asyncio.Future[tuple[Residues, ...]]:
        taken: list[Pooled] = []
        need = count
        while need and pool:
            fut, start, size = pool[0]
            take = min(size, need)
            taken.append((fut, start, take))
            if take == size:
                pool.pop(0)
            else:
                pool[0] = (fut, start + take, size - take)
            need -= take
        rest: asyncio.Future[tuple[Residues, ...]] | None = None
        if need:
            self._source()  # fail now, before anything is reserved elsewhere
            # Ask the source now, not after the pooled part arrives: its reservation must take
            # its place in program order at every party, whatever the pool's timing.
            rest = asyncio.ensure_future(_as_tuple(fetch(need)))
            rest.add_done_callback(_retrieve)

        async def get() -> tuple[Residues, ...]:
            parts: list[tuple[Residues, ...]] = []
            for fut, start, size in taken:
                whole = await asyncio.shield(fut)  # shared with other reservations
                parts.append(tuple(p[:, start : start + size] for p in whole))
            if rest is not None:
                parts.append(await rest)
            if len(parts) == 1:
                return parts[0]
            return tuple(
                np.concatenate([part[i] for part in parts], axis=1) for i in range(len(parts[0]))
            )

        return asyncio.ensure_future(get())


async def _as_tuple(fetch: Awaitable[tuple[Residues, ...]]) -> tuple[Residues, ...]:
    return tuple(await fetch)


async def _wait_all(futures: Sequence[asyncio.Future[tuple[Residues, ...]]]) -> None:
    for fut in futures:
        await asyncio.shield(fut)


def _retrieve(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()  # a failed prefetch is reported where its material is used


__all__ = ["MaterialPool", "Pooled"]

"""Run an SPMD program for all parties in one event loop (tests, examples, benchmarks).

Example::

    async def program(party: Party) -> float:
        return await secure_sum(party, [party.id * 10])

    results = asyncio.run(run_local(3, 2, program))   # one result per party
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Collection
from typing import Literal, TypeAlias, TypeVar, overload

from smpcloud.crypto.field import Field
from smpcloud.errors import InvalidInputError
from smpcloud.mpc.dealer import run_dealer
from smpcloud.mpc.memory import MemoryNetwork, MemoryTransport
from smpcloud.mpc.ot_triples import OTTriples
from smpcloud.mpc.runtime import Party
from smpcloud.mpc.session import DEFAULT_KAPPA, MPC_FIELD, SessionParameters
from smpcloud.mpc.transport import DEFAULT_TIMEOUT
from smpcloud.mpc.triples import DealerTriples, TripleSource

R = TypeVar("R")

#: Where the parties' Beaver triples come from: the trusted dealer, OT between the parties
#: (:class:`~smpcloud.mpc.ot_triples.OTTriples`, no dealer), or nowhere (linear work only).
TripleMode: TypeAlias = Literal["dealer", "ot", "none"]


@overload
async def run_local(
    n: int,
    t: int,
    program: Callable[[Party], Awaitable[R]],
    *,
    dealer: bool = ...,
    triples: TripleMode | None = ...,
    field: Field = ...,
    timeout: float = ...,
    session: str = ...,
    kappa: int = ...,
    silent: Collection[int] = ...,
    return_exceptions: Literal[False] = ...,
) -> list[R]: ...


@overload
async def run_local(
    n: int,
    t: int,
    program: Callable[[Party], Awaitable[R]],
    *,
    dealer: bool = ...,
    triples: TripleMode | None = ...,
    field: Field = ...,
    timeout: float = ...,
    session: str = ...,
    kappa: int = ...,
    silent: Collection[int] = ...,
    return_exceptions: Literal[True],
) -> list[R | BaseException]: ...


async def run_local(
    n: int,
    t: int,
    program: Callable[[Party], Awaitable[R]],
    *,
    dealer: bool = True,
    triples: TripleMode | None = None,
    field: Field = MPC_FIELD,
    timeout: float = DEFAULT_TIMEOUT,
    session: str = "smpc",
    kappa: int = DEFAULT_KAPPA,
    silent: Collection[int] = (),
    return_exceptions: bool = False,
) -> list[R] | list[R | BaseException]:
    """Run ``program(party)`` for parties 1..n on a :class:`MemoryNetwork`.

    Args:
        n, t: parties and threshold (t of n reconstruct).
        program: the SPMD program; called once per party, concurrently.
        dealer: run the trusted dealer (party 0) and give every party a :class:`DealerTriples`
            (False: no triple source); ignored when ``triples`` is given.
        triples: ``"dealer"`` (as ``dealer=True``), ``"ot"`` (dealer-free triples by oblivious
            transfer between the parties, :class:`~smpcloud.mpc.ot_triples.OTTriples`; no
            dealer runs) or ``"none"`` (linear work only); None follows ``dealer``.
        field: the field of the shares.
        timeout: seconds any one round waits before naming silent parties.
        session: the computation's name.
        kappa: statistical security of truncation masks.
        silent: parties whose messages are all dropped from the start (simulated drop-outs;
            they still run the program and receive).
        return_exceptions: return a party's exception in its slot instead of raising the first.

    Returns:
        The programs' results, party 1 first.

    Raises:
        InvalidInputError: an unknown ``triples`` mode.
        The first party's exception, unless ``return_exceptions``.
    """
    mode: TripleMode = triples if triples is not None else ("dealer" if dealer else "none")
    if mode not in ("dealer", "ot", "none"):
        raise InvalidInputError(f"triples must be 'dealer', 'ot' or 'none', got {mode!r}")
    dealer = mode == "dealer"
    # One value for the parties and the dealer: the dealer serves what the session fixes.
    params = SessionParameters(n=n, t=t, field=field, session=session, kappa=kappa)
    network = MemoryNetwork(n, dealer=dealer, timeout=timeout)
    for p in silent:
        network.silence(p)

    def source(transport: MemoryTransport) -> TripleSource | None:
        if mode == "dealer":
            return DealerTriples(transport, field=field, session=session, timeout=timeout)
        if mode == "ot":
            return OTTriples(transport, n=n, t=t, field=field, session=session, timeout=timeout)
        return None

    parties = [
        Party.from_parameters(transport, params, triples=source(transport), timeout=timeout)
        for transport in network.transports()
    ]
    dealer_task = (
        asyncio.ensure_future(run_dealer(network.dealer(), parameters=params)) if dealer else None
    )

    async def one(party: Party) -> R:
        try:
            return await program(party)
        finally:
            await party.close()

    tasks = [asyncio.ensure_future(one(p)) for p in parties]
    try:
        results = await asyncio.gather(*tasks, return_exceptions=return_exceptions)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    finally:
        for transport in network.transports():
            await transport.close()
        if dealer_task is not None:
            with contextlib.suppress(TimeoutError):  # wait_for cancels it on timeout
                await asyncio.wait_for(dealer_task, timeout)
    return list(results)


__all__ = ["TripleMode", "run_local"]

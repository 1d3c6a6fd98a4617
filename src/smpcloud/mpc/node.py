"""Run one party (or the dealer) of a deployment over the TLS mesh: the glue for real runs.

``run_party(config, party_id, program)`` connects this process to every peer listed in the
deployment file (mutual TLS, certificates from the deployment CA), builds the :class:`Party`
with a dealer triple source when the deployment has a dealer (or dealer-free triples by OT between
the parties when it has none, or when asked), runs the SPMD ``program`` and shuts everything down
cleanly. ``run_dealer_node`` does the same for the dealer (id 0).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from typing import Literal, TypeVar

from smpcloud.crypto.field import Field
from smpcloud.errors import InvalidInputError
from smpcloud.mpc.config import DeploymentConfig
from smpcloud.mpc.dealer import DealerStats, run_dealer
from smpcloud.mpc.ot_triples import OTTriples
from smpcloud.mpc.runtime import Party
from smpcloud.mpc.session import MPC_FIELD, SessionParameters
from smpcloud.mpc.tcp import TlsTransport, connect_mesh
from smpcloud.mpc.triples import DealerTriples, TripleSource

R = TypeVar("R")


async def connect(
    config: DeploymentConfig,
    party: int,
    *,
    connect_deadline: float | None = None,
    include_dealer: bool = True,
    progress: Callable[[str], None] | None = None,
) -> TlsTransport:
    """Open the TLS mesh for ``party`` (listening on its own address, dialling the others).

    Args:
        config: the deployment.
        party: this endpoint's id.
        connect_deadline: seconds to wait for every peer (default: the deployment's).
        include_dealer: also connect to the dealer (id 0) when the deployment lists one;
            False for dealer-free computations, which never talk to it.
        progress: called with one line naming the peers still awaited and their addresses,
            every few seconds while some are missing (see
            :func:`~smpcloud.mpc.tcp.connect_mesh`).

    Raises:
        InvalidInputError: ``party`` is not in the deployment.
        TransportError: some peers were unreachable by ``connect_deadline`` (named, with their
            addresses).
    """
    me = config.endpoint(party)
    addresses = config.addresses()
    if not include_dealer and party != 0:
        addresses.pop(0, None)
    return await connect_mesh(
        party,
        addresses,
        cert=me.cert,
        key=me.key,
        ca=config.ca,
        timeout=config.timeout,
        connect_deadline=config.connect_timeout if connect_deadline is None else connect_deadline,
        progress=progress,
    )


async def run_party(
    config: DeploymentConfig,
    party: int,
    program: Callable[[Party], Awaitable[R]],
    *,
    session: str = "smpc",
    field: Field = MPC_FIELD,
    connect_deadline: float | None = None,
    triples: Literal["dealer", "ot"] | None = None,
    progress: Callable[[str], None] | None = None,
    truncation_shifts: Collection[int] | None = None,
    grace: float | None = None,
) -> R:
    """Run ``program`` as computing party ``party`` (1..n) of the deployment and return its result.

    Every party must run the same program (SPMD) with the same ``session`` and ``triples``.

    Args:
        config: the deployment.
        party: this party's id (1..n).
        program: the SPMD program.
        session: the computation's name.
        field: the field of the shares.
        connect_deadline: seconds to wait for every peer (default: the deployment's).
        triples: where Beaver triples come from: ``"dealer"`` (the deployment's dealer, id 0)
            or ``"ot"`` (dealer-free, by oblivious transfer between the parties:
            :class:`~smpcloud.mpc.ot_triples.OTTriples`); None picks the dealer when the
            deployment has one and OT otherwise. With ``"ot"`` the dealer, if the deployment
            lists one, is neither awaited nor contacted.
        progress: called with one line naming the peers still awaited, every few seconds
            while the mesh forms (a command prints it on stderr).
        truncation_shifts: the truncation shifts the program uses (default: the deployment's
            ``truncation_shifts``, or every shift); the dealer must be started with the same.
        grace: seconds an opening keeps waiting, once t shares are in, for the other live
            peers' shares, to check them (default: the deployment's timeout; see
            :mod:`smpcloud.mpc.rounds`).

    Raises:
        InvalidInputError: ``party`` is the dealer's id or not in the deployment, or
            ``triples="dealer"`` in a deployment without a dealer.
        TransportError, ProtocolError: peers unreachable or silent (named in the message).
    """
    if party == 0:
        raise InvalidInputError("id 0 is the dealer: run it with run_dealer_node")
    mode = triples if triples is not None else ("dealer" if config.has_dealer else "ot")
    if mode not in ("dealer", "ot"):
        raise InvalidInputError(f"triples must be 'dealer' or 'ot', got {mode!r}")
    if mode == "dealer" and not config.has_dealer:
        raise InvalidInputError("this deployment has no dealer (id 0): use dealer-free triples")
    # The dealer computes the same value from the same file (run_dealer_node).
    params = SessionParameters.from_deployment(
        config, session=session, field=field, shifts=truncation_shifts
    )
    transport = await connect(
        config,
        party,
        connect_deadline=connect_deadline,
        include_dealer=mode == "dealer",
        progress=progress,
    )
    try:
        source: TripleSource
        if mode == "dealer":
            source = DealerTriples(transport, field=field, session=session, timeout=config.timeout)
        else:
            source = OTTriples(
                transport,
                n=config.parties,
                t=config.threshold,
                field=field,
                session=session,
                timeout=config.timeout,
            )
        async with Party.from_parameters(
            transport, params, triples=source, timeout=config.timeout, grace=grace
        ) as me:
            result = await program(me)
            await me.barrier()  # no party closes its connections while others still read
            return result
    finally:
        await transport.close()


async def run_dealer_node(
    config: DeploymentConfig,
    *,
    session: str = "smpc",
    field: Field = MPC_FIELD,
    connect_deadline: float | None = None,
    progress: Callable[[str], None] | None = None,
    truncation_shifts: Collection[int] | None = None,
) -> DealerStats:
    """Serve Beaver triples and truncation pairs as the deployment's dealer (id 0) until every
    party is done.

    The batches are those the session fixes: the dealer computes the session's parameters
    from the deployment exactly as the parties do
    (:meth:`~smpcloud.mpc.session.SessionParameters.from_deployment`, with the same
    ``session``, ``field`` and ``truncation_shifts``) and refuses, naming the party, any
    request that disagrees with them. ``progress`` is called with one line naming the parties
    still awaited, every few seconds while the mesh forms.

    Raises:
        InvalidInputError: the deployment has no dealer.
        TransportError: some parties were unreachable by ``connect_deadline``.
    """
    if not config.has_dealer:
        raise InvalidInputError("this deployment has no dealer (no [[party]] with id = 0)")
    params = SessionParameters.from_deployment(
        config, session=session, field=field, shifts=truncation_shifts
    )
    transport = await connect(config, 0, connect_deadline=connect_deadline, progress=progress)
    try:
        return await run_dealer(transport, parameters=params)
    finally:
        await transport.close()

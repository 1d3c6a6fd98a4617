"""The whole ceremony on one machine: n holder processes over mutual TLS on 127.0.0.1.

For the demo (``smpcloud demo --distributed-key``), the benchmark and the tests: the same
protocol and transport as n machines, with every holder in its own OS process (spawned, so
nothing is shared but the TLS connections) and the certificates of a local deployment made by
the one-machine convenience path (:func:`smpcloud.mpc.certs.create_deployment`: this machine
sees every TLS key, which is acceptable for a local demo only). The caller receives every
holder's key share at the end, as a local demo must; in a real deployment each holder runs
``smpcloud keygen --distributed`` and keeps its share.

Ports: a free range is chosen outside the ephemeral range; if a holder cannot listen (another
program took the port in the meantime), the ceremony is run again on another range.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import multiprocessing
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from smpcloud.crypto import threshold
from smpcloud.crypto.signatures import Roster, SigningKey
from smpcloud.errors import InvalidInputError, TransportError
from smpcloud.mpc.certs import create_deployment
from smpcloud.mpc.dkg.ceremony import KeygenResult, KeygenStats, check_parameters, generate_key
from smpcloud.mpc.tcp import connect_mesh
from smpcloud.ports import free_port_range

#: Attempts with fresh ports when a holder cannot listen on its port.
PORT_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class LocalCeremony:
    """Every holder's outcome of a local ceremony, and how long it took.

    Attributes:
        results: holder i's result at index i - 1.
        seconds: wall time of the ceremony proper (connected mesh to verified key), the
            slowest holder's.
        wall_seconds: everything: certificates, process start, connections, ceremony.
    """

    results: tuple[KeygenResult, ...]
    seconds: float
    wall_seconds: float

    @property
    def public_key(self) -> threshold.ThresholdPublicKey:
        """The shared public key."""
        return self.results[0].public_key

    @property
    def shares(self) -> list[threshold.KeyShare]:
        """Every holder's key share, by index."""
        return [r.share for r in self.results]

    @property
    def roster(self) -> Roster:
        """The holders' roster."""
        return self.results[0].roster


def _holder(
    holder: int,
    addresses: dict[int, tuple[str, int]],
    directory: str,
    threshold_t: int,
    bits: int,
    insecure: bool,
    timeout: float,
) -> dict[str, object]:
    """One holder process: connect, run the ceremony, return its result as JSON-ready data."""
    folder = Path(directory)

    async def main() -> KeygenResult:
        transport = await connect_mesh(
            holder,
            addresses,
            cert=folder / f"party-{holder}.pem",
            key=folder / f"party-{holder}-key.pem",
            ca=folder / "ca.pem",
            timeout=timeout,
            connect_deadline=60.0,
        )
        async with transport:
            return await generate_key(
                transport,
                tuple(sorted(addresses)),
                threshold_t=threshold_t,
                bits=bits,
                timeout=timeout,
                insecure=insecure,
            )

    result = asyncio.run(main())
    stats = result.stats
    return {
        "share": threshold.key_share_to_json(result.share),
        "roster": result.roster.to_json(),
        "signing_key": result.signing_key.to_json(),
        "stats": [
            stats.seconds,
            stats.batches,
            stats.candidates,
            stats.biprimality_tests,
            stats.sieve_rounds,
            stats.bytes_sent,
            stats.restarts,
            stats.search_seconds,
            stats.expected_candidates,
        ],
    }


def _decode(data: dict[str, object], insecure: bool) -> KeygenResult:
    share = threshold.key_share_from_json(data["share"], insecure=insecure)
    numbers = data["stats"]
    if not isinstance(numbers, list):
        raise InvalidInputError("malformed holder result")
    return KeygenResult(
        share.public,
        share,
        Roster.from_json(data["roster"]),
        SigningKey.from_json(data["signing_key"]),
        KeygenStats(*numbers),
    )


def run_local_ceremony(
    holders: int,
    threshold_t: int,
    bits: int = 2048,
    *,
    insecure: bool = False,
    timeout: float = 120.0,
) -> LocalCeremony:
    """Run the ceremony with ``holders`` processes on this machine, over mutual TLS.

    Args:
        holders: n (at least 3).
        threshold_t: t.
        bits: modulus size (below 2048 only with ``insecure``).
        insecure: allow small test keys.
        timeout: seconds any holder waits for another in one round.

    Returns:
        Every holder's result and the timings.

    Raises:
        InvalidInputError: bad parameters.
        KeyGenerationError: the ceremony failed (the message names the holders).
        TransportError: no ports could be bound in PORT_ATTEMPTS tries.
    """
    check_parameters(holders, threshold_t, bits, insecure=insecure)
    started = time.perf_counter()
    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="smpcloud-dkg-") as directory:
        create_deployment(directory, parties=holders, dealer=False)
        for attempt in range(1, PORT_ATTEMPTS + 1):
            base = free_port_range(holders)
            addresses = {i: ("127.0.0.1", base + i - 1) for i in range(1, holders + 1)}
            with concurrent.futures.ProcessPoolExecutor(holders, mp_context=context) as pool:
                futures = [
                    pool.submit(
                        _holder, i, addresses, directory, threshold_t, bits, insecure, timeout
                    )
                    for i in range(1, holders + 1)
                ]
                try:
                    outcomes = [f.result() for f in futures]
                except TransportError as exc:
                    if "cannot listen" in str(exc) and attempt < PORT_ATTEMPTS:
                        for f in futures:
                            f.cancel()
                        continue
                    raise
            results = tuple(_decode(o, insecure) for o in outcomes)
            return LocalCeremony(
                results,
                max(r.stats.seconds for r in results),
                time.perf_counter() - started,
            )
    raise TransportError("no free ports for the local ceremony")  # pragma: no cover


__all__ = ["PORT_ATTEMPTS", "LocalCeremony", "run_local_ceremony"]

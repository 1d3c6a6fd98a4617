"""Certificates issued by ``smpcloud certs sign`` on the real TLS mesh (issue 16).

Every endpoint makes its own key (``smpcloud certs request``, in a subprocess, each in its own
directory) and the CA signs the requests (``smpcloud certs sign``). The endpoints then connect
with :func:`smpcloud.mpc.tcp.connect_mesh` over real sockets on 127.0.0.1, in one event loop so
that the refusals can be watched: a certificate signed by another CA is refused, and so is the
certificate of party 2 used as party 3.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import ssl
import subprocess
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest

from smpcloud.errors import InvalidInputError, TransportError
from smpcloud.mpc.certs import create_ca
from smpcloud.mpc.csr import create_request, sign_request
from smpcloud.mpc.tcp import HEADER_SIZE, TlsTransport, connect_mesh
from smpcloud.ports import free_port_range

LOGGER = "smpcloud.mpc.tcp"
T = TypeVar("T")
Addresses = dict[int, tuple[str, int]]
Outcome = TlsTransport | BaseException


@dataclass(frozen=True)
class Identity:
    """What one endpoint holds on its own machine."""

    cert: Path
    key: Path
    ca: Path


def smpcloud(*args: str | Path) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "smpcloud", *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.fixture(scope="module")
def genuine(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Identity]:
    """The dealer 0 and parties 1..3, each with its own key, signed by one CA via the CLI."""
    root = tmp_path_factory.mktemp("per-party")
    smpcloud("certs", "ca", "--out", root / "ca")
    identities = {}
    for pid in (0, 1, 2, 3):
        machine = root / f"machine-{pid}"
        smpcloud("certs", "request", "--id", str(pid), "--host", "127.0.0.1", "--out", machine)
        smpcloud(
            "certs", "sign", "--ca", root / "ca", "--id", str(pid), machine / f"party-{pid}.csr"
        )
        shutil.copy(root / "ca" / "ca.pem", machine)
        identities[pid] = Identity(
            machine / f"party-{pid}.pem", machine / f"party-{pid}-key.pem", machine / "ca.pem"
        )
    return identities


@pytest.fixture(scope="module")
def foreign(tmp_path_factory: pytest.TempPathFactory) -> Identity:
    """Party 3 by the same flow, but signed by another deployment's CA."""
    root = tmp_path_factory.mktemp("foreign")
    ca = create_ca(root / "ca")
    request = create_request(root / "machine-3", 3, ["127.0.0.1"])
    signed = sign_request(ca.directory, request.csr)
    return Identity(signed.cert, request.key, ca.cert)


def run(coro: Awaitable[T], limit: float = 30.0) -> T:
    """Run a scenario with a hard time limit, so that a hang fails instead of blocking CI."""

    async def bounded() -> T:
        return await asyncio.wait_for(coro, limit)

    return asyncio.run(bounded())


def connect(who: Identity, pid: int, addresses: Addresses, **kwargs: float) -> Awaitable[Outcome]:
    return connect_mesh(pid, addresses, cert=who.cert, key=who.key, ca=who.ca, **kwargs)


async def close_all(outcomes: Sequence[Outcome]) -> None:
    for outcome in outcomes:
        if isinstance(outcome, TlsTransport):
            await outcome.close()


async def with_ports(
    ids: Sequence[int], scenario: Callable[[Addresses], Awaitable[T]], attempts: int = 3
) -> T:
    """Run ``scenario`` on ports that were free a moment ago; if one was taken since (a party
    cannot listen), try again on others."""
    for attempt in range(attempts):
        base = free_port_range(len(ids))
        addresses = {pid: ("127.0.0.1", base + k) for k, pid in enumerate(ids)}
        try:
            return await scenario(addresses)
        except TransportError as exc:
            if "cannot listen" not in str(exc) or attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


async def gather_checked(coros: Sequence[Awaitable[Outcome]]) -> list[Outcome]:
    """Gather connections; re-raise a failure to listen (for :func:`with_ports`)."""
    outcomes = list(await asyncio.gather(*coros, return_exceptions=True))
    for outcome in outcomes:
        if isinstance(outcome, TransportError) and "cannot listen" in str(outcome):
            await close_all(outcomes)
            raise outcome
    return outcomes


def test_per_party_certificates_form_the_mesh(genuine: dict[int, Identity]) -> None:
    async def scenario(addresses: Addresses) -> None:
        outcomes = await gather_checked([connect(genuine[p], p, addresses) for p in addresses])
        try:
            transports = {}
            for outcome in outcomes:
                assert isinstance(outcome, TlsTransport), outcome
                transports[outcome.party] = outcome
            for pid, transport in transports.items():
                for peer in transport.peers:
                    await transport.send(peer, ("hi", 0), f"{pid}->{peer}".encode())
            for pid, transport in transports.items():
                for peer in transport.peers:
                    assert await transport.recv(peer, ("hi", 0)) == f"{peer}->{pid}".encode()
        finally:
            await close_all(outcomes)

    run(with_ports([0, 1, 2, 3], scenario))


def test_a_certificate_from_another_ca_is_refused(
    genuine: dict[int, Identity], foreign: Identity, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)

    async def scenario(addresses: Addresses) -> None:
        outcomes = await gather_checked(
            [
                connect(genuine[1], 1, addresses, connect_deadline=2.0),
                connect(genuine[2], 2, addresses, connect_deadline=2.0),
                connect(foreign, 3, addresses, connect_deadline=2.0),
            ]
        )
        try:
            for outcome in outcomes[:2]:
                assert isinstance(outcome, TransportError)
                assert "could not connect to party 3" in str(outcome)
            assert isinstance(outcomes[2], TransportError)
        finally:
            await close_all(outcomes)

    run(with_ports([1, 2, 3], scenario))
    messages = [r.getMessage() for r in caplog.records]
    assert any("certificate verify failed" in m for m in messages)
    assert not any("accepted party 3" in m for m in messages)


def test_party_2_certificate_used_as_party_3_is_refused(
    genuine: dict[int, Identity], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)

    async def locally(addresses: Addresses) -> None:
        with pytest.raises(InvalidInputError, match="certificate of party 2, not party 3"):
            await connect(genuine[2], 3, addresses)

    run(with_ports([1, 2, 3], locally))

    def impostor_context() -> ssl.SSLContext:
        """Party 2's genuine certificate and key, in the hands of whoever plays party 3."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        context.check_hostname = False
        context.load_verify_locations(genuine[2].ca)
        context.load_cert_chain(genuine[2].cert, genuine[2].key)
        return context

    async def on_the_wire(addresses: Addresses) -> None:
        # Party 2 dials party 1 and waits to accept party 3 only.
        tasks = [asyncio.ensure_future(connect(genuine[p], p, addresses)) for p in (1, 2)]
        try:
            reader = writer = None
            for _ in range(200):  # until party 2 listens
                try:
                    reader, writer = await asyncio.open_connection(
                        *addresses[2], ssl=impostor_context()
                    )
                    break
                except (ConnectionRefusedError, ssl.SSLError):
                    await asyncio.sleep(0.05)
            assert reader is not None and writer is not None
            try:
                data = await asyncio.wait_for(reader.read(HEADER_SIZE), 5)
            except (ConnectionError, ssl.SSLError):
                data = b""
            assert data == b""  # dropped after the handshake: no READY
            writer.close()
            assert not any(task.done() for task in tasks)
            # The genuine party 3 still gets in.
            third = await connect(genuine[3], 3, addresses)
            first, second = await asyncio.gather(*tasks)
            await third.send(2, ("who", 0), b"the genuine 3")
            assert await second.recv(3, ("who", 0)) == b"the genuine 3"
            await close_all([first, second, third])
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    run(with_ports([1, 2, 3], on_the_wire))
    assert any(
        "certificate of party 2, which is not expected here" in r.getMessage()
        for r in caplog.records
    )

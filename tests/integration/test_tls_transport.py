"""The TLS mesh transport over real sockets on 127.0.0.1, in real processes where it matters.

Multi-process scenarios run a worker function of this module in fresh interpreters
(multiprocessing "spawn"); scenarios about one endpoint's reactions (refusals, limits, timeouts,
close) run several endpoints in one event loop, still over real TLS sockets, so that they can
watch the logs and time things precisely.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import multiprocessing
import ssl
import struct
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest

from smpcloud.errors import InvalidInputError, ProtocolError, TransportError
from smpcloud.mpc.certs import Deployment, create_deployment
from smpcloud.mpc.tcp import (
    HEADER_SIZE,
    FrameHeader,
    TlsTransport,
    connect_mesh,
    decode_frame_header,
    encode_frame_header,
)
from smpcloud.mpc.transport import Transport
from smpcloud.ports import free_port_range

LOGGER = "smpcloud.mpc.tcp"
T = TypeVar("T")
Addresses = dict[int, tuple[str, int]]


# -- helpers ---------------------------------------------------------------------------------


def free_ports(count: int) -> list[int]:
    """Distinct ports that were free a moment ago, outside the ephemeral range (smpcloud.ports)."""
    base = free_port_range(count)
    return list(range(base, base + count))


def addresses_for(ids: Sequence[int]) -> Addresses:
    return {pid: ("127.0.0.1", port) for pid, port in zip(ids, free_ports(len(ids)))}


def run(coro: Awaitable[T], limit: float = 20.0) -> T:
    """Run a scenario with a hard time limit, so that a hang fails instead of blocking CI."""

    async def bounded() -> T:
        return await asyncio.wait_for(coro, limit)

    return asyncio.run(bounded())


def connect(
    dep: Deployment, pid: int, addresses: Addresses, *, ca: Path | None = None, **kwargs: Any
) -> Awaitable[TlsTransport]:
    files = dep.endpoint(pid)
    return connect_mesh(
        pid, addresses, cert=files.cert, key=files.key, ca=ca or dep.ca_cert, **kwargs
    )


def client_context(dep: Deployment, pid: int) -> ssl.SSLContext:
    """A TLS 1.3 client context holding ``pid``'s certificate (to play a peer by hand)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.check_hostname = False
    context.load_verify_locations(dep.ca_cert)
    context.load_cert_chain(dep.endpoint(pid).cert, dep.endpoint(pid).key)
    return context


def server_context(dep: Deployment, pid: int) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(dep.ca_cert)
    context.load_cert_chain(dep.endpoint(pid).cert, dep.endpoint(pid).key)
    return context


async def read_ready(reader: asyncio.StreamReader) -> None:
    header = decode_frame_header(await asyncio.wait_for(reader.readexactly(HEADER_SIZE), 5))
    assert header == FrameHeader(kind=1, session_length=0, step=0, payload_length=0)


async def assert_refused(reader: asyncio.StreamReader) -> None:
    """The other side dropped us after the handshake: no READY, just EOF or a reset."""
    try:
        data = await asyncio.wait_for(reader.read(HEADER_SIZE), 5)
    except (ConnectionError, ssl.SSLError):
        return
    assert data == b""


async def wait_for_log(caplog: pytest.LogCaptureFixture, text: str, limit: float = 5.0) -> None:
    deadline = time.monotonic() + limit
    while not any(text in r.getMessage() for r in caplog.records):
        assert time.monotonic() < deadline, f"no log line containing {text!r}"
        await asyncio.sleep(0.02)


def logged(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


async def close_all(*transports: TlsTransport | BaseException | None) -> None:
    for transport in transports:
        if isinstance(transport, TlsTransport):
            await transport.close()


def payload(frm: int, to: int, label: str, size: int) -> bytes:
    """A deterministic payload that depends on who sends it to whom."""
    return hashlib.shake_256(f"{frm}->{to}:{label}".encode()).digest(size)


BIG = 3 * 1024 * 1024 + 17


@pytest.fixture(scope="module")
def dep(tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    return create_deployment(tmp_path_factory.mktemp("deployment"), parties=3, dealer=True)


@pytest.fixture(scope="module")
def other_dep(tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    """Certificates for the same ids, issued by another CA."""
    return create_deployment(tmp_path_factory.mktemp("other"), parties=3, dealer=True)


# -- worker processes --------------------------------------------------------------------------


async def _exchange(pid: int, addresses: Addresses, directory: str) -> dict[str, Any]:
    base = Path(directory)
    started = time.monotonic()
    transport = await connect_mesh(
        pid,
        addresses,
        cert=base / f"party-{pid}.pem",
        key=base / f"party-{pid}-key.pem",
        ca=base / "ca.pem",
        timeout=20.0,
        connect_deadline=20.0,
    )
    connected = time.monotonic() - started
    async with transport:
        for peer in transport.peers:  # step 2 goes out before step 1
            await transport.send(peer, ("hello", 2), payload(pid, peer, "2", 40))
            await transport.send(peer, ("hello", 1), payload(pid, peer, "1", 40))
            await transport.send(peer, ("big", 0), payload(pid, peer, "big", BIG))
            await transport.send(peer, ("empty", 0), b"")
        received: dict[str, Any] = {}
        for peer in transport.peers:
            first = await transport.recv(peer, ("hello", 1))
            second = await transport.recv(peer, ("hello", 2))
            big = await transport.recv(peer, ("big", 0))
            empty = await transport.recv(peer, ("empty", 0))
            received[str(peer)] = [
                first.hex(),
                second.hex(),
                len(big),
                hashlib.sha256(big).hexdigest(),
                empty.hex(),
            ]
        # Barrier: nobody closes before everyone has everything.
        for peer in transport.peers:
            await transport.send(peer, ("done", 0), b"")
        for peer in transport.peers:
            await transport.recv(peer, ("done", 0))
    return {"pid": pid, "peers": list(transport.peers), "received": received, "t": connected}


def _worker(pid: int, addresses: Addresses, directory: str, results: Any) -> None:
    try:
        outcome = asyncio.run(_exchange(pid, addresses, directory))
    except BaseException as exc:  # reported to the parent, which fails the test
        outcome = {"pid": pid, "error": f"{type(exc).__name__}: {exc}"}
    results.put(outcome)


def _run_processes(dep: Deployment, delays: dict[int, float]) -> dict[int, dict[str, Any]]:
    ids = sorted(delays)
    addresses = addresses_for(ids)
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    processes = {
        pid: ctx.Process(
            target=_worker, args=(pid, addresses, str(dep.directory), results), daemon=True
        )
        for pid in ids
    }
    started = time.monotonic()
    try:
        for pid in sorted(ids, key=lambda p: delays[p]):
            pause = started + delays[pid] - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            processes[pid].start()
        outcomes = [results.get(timeout=60) for _ in ids]
        for process in processes.values():
            process.join(timeout=10)
            assert process.exitcode == 0
    finally:
        for process in processes.values():
            if process.is_alive():
                process.kill()
    return {o["pid"]: o for o in outcomes}


def _expected(pid: int, peers: Sequence[int]) -> dict[str, Any]:
    return {
        str(peer): [
            payload(peer, pid, "1", 40).hex(),
            payload(peer, pid, "2", 40).hex(),
            BIG,
            hashlib.sha256(payload(peer, pid, "big", BIG)).hexdigest(),
            "",
        ]
        for peer in peers
    }


# -- (1) a mesh of separate processes ----------------------------------------------------------


def test_mesh_of_processes_exchanges_tagged_messages(dep: Deployment) -> None:
    outcomes = _run_processes(dep, {0: 0.0, 1: 0.0, 2: 0.0, 3: 0.0})
    for pid in range(4):
        outcome = outcomes[pid]
        assert "error" not in outcome, outcome.get("error")
        peers = [p for p in range(4) if p != pid]
        assert outcome["peers"] == peers
        assert outcome["received"] == _expected(pid, peers)


# -- (6) a party that starts late ---------------------------------------------------------------


def test_connection_setup_waits_for_a_late_party(dep: Deployment) -> None:
    outcomes = _run_processes(dep, {1: 0.0, 2: 0.0, 3: 1.5})
    for pid in (1, 2, 3):
        assert "error" not in outcomes[pid], outcomes[pid].get("error")
        peers = [p for p in (1, 2, 3) if p != pid]
        assert outcomes[pid]["received"] == _expected(pid, peers)
    # The early parties kept retrying / listening until party 3 came up.
    # (party 3's process starts 1.5 s after theirs; 0.5 s leaves room for slow spawns).
    assert outcomes[1]["t"] >= 0.5
    assert outcomes[2]["t"] >= 0.5


def test_late_party_in_one_loop(dep: Deployment) -> None:
    async def scenario() -> None:
        addresses = addresses_for([1, 2, 3])
        early = [asyncio.ensure_future(connect(dep, pid, addresses)) for pid in (1, 2)]
        await asyncio.sleep(1.0)
        assert not any(task.done() for task in early)
        t3 = await connect(dep, 3, addresses)
        t1, t2 = await asyncio.gather(*early)
        await t3.send(1, ("late", 0), b"hi")
        assert await t1.recv(3, ("late", 0)) == b"hi"
        await close_all(t1, t2, t3)

    run(scenario())


# -- (2) a certificate from another CA ----------------------------------------------------------


def test_certificate_from_another_ca_is_refused(
    dep: Deployment, other_dep: Deployment, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)

    async def scenario() -> None:
        addresses = addresses_for([1, 2, 3])
        genuine = [connect(dep, pid, addresses, connect_deadline=2.0) for pid in (1, 2)]
        rogue = connect(other_dep, 3, addresses, connect_deadline=2.0)
        r1, r2, r3 = await asyncio.gather(*genuine, rogue, return_exceptions=True)
        try:
            # The genuine parties never accepted the rogue party 3 ...
            for outcome in (r1, r2):
                assert isinstance(outcome, TransportError)
                assert "could not connect to party 3" in str(outcome)
            # ... and it could connect to nobody (it does not trust their CA either).
            assert isinstance(r3, TransportError)
            assert "parties 1, 2" in str(r3)
        finally:
            await close_all(r1, r2, r3)

    run(scenario())
    refusals = logged(caplog, "TLS handshake failed")
    assert any(m.startswith("party 1 refused") for m in refusals)
    assert any(m.startswith("party 2 refused") for m in refusals)
    assert not logged(caplog, "accepted party 3")
    assert logged(caplog, "certificate verify failed")


def test_foreign_ca_cannot_join_while_the_genuine_mesh_forms(
    dep: Deployment, other_dep: Deployment, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)

    async def scenario() -> None:
        addresses = addresses_for([1, 2])
        task1 = asyncio.ensure_future(connect(dep, 1, addresses))
        await asyncio.sleep(0.2)
        # Another deployment's party 2 dials party 1 by hand: the handshake fails.
        host, port = addresses[1]
        with pytest.raises((ssl.SSLError, ConnectionError)):
            reader, writer = await asyncio.open_connection(
                host, port, ssl=client_context(other_dep, 2)
            )
            try:
                await read_ready(reader)
            finally:
                writer.close()
        await wait_for_log(caplog, "party 1 refused")
        assert not task1.done()
        t2 = await connect(dep, 2, addresses)
        t1 = await task1
        await t2.send(1, ("ok", 0), b"genuine")
        assert await t1.recv(2, ("ok", 0)) == b"genuine"
        await close_all(t1, t2)

    run(scenario())


def test_plain_tcp_is_refused(dep: Deployment, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)

    async def scenario() -> None:
        addresses = addresses_for([1, 2])
        task1 = asyncio.ensure_future(connect(dep, 1, addresses))
        await asyncio.sleep(0.2)
        reader, writer = await asyncio.open_connection(*addresses[1])
        writer.write(b"GET / HTTP/1.0\r\n\r\n")
        await assert_refused(reader)
        writer.close()
        await wait_for_log(caplog, "TLS handshake failed")
        t2 = await connect(dep, 2, addresses)
        t1 = await task1
        await close_all(t1, t2)

    run(scenario())
    assert logged(caplog, "party 1 refused a connection from 127.0.0.1")


# -- (3) the certificate of another id ----------------------------------------------------------


def test_own_certificate_of_another_id_is_refused_locally(dep: Deployment) -> None:
    async def scenario() -> None:
        addresses = addresses_for([1, 2, 3])
        files = dep.endpoint(2)
        with pytest.raises(InvalidInputError, match="certificate of party 2, not party 3"):
            await connect_mesh(3, addresses, cert=files.cert, key=files.key, ca=dep.ca_cert)

    run(scenario())


def test_acceptor_refuses_unexpected_and_duplicate_ids(
    dep: Deployment, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)

    async def scenario() -> None:
        addresses = addresses_for([1, 2, 3])
        task1 = asyncio.ensure_future(connect(dep, 1, addresses))
        task2 = asyncio.ensure_future(connect(dep, 2, addresses))
        # Party 2 accepts only party 3: an impostor holding party 2's certificate is refused.
        await wait_for_log(caplog, "party 1 accepted party 2")
        reader, writer = await asyncio.open_connection(*addresses[2], ssl=client_context(dep, 2))
        await assert_refused(reader)
        writer.close()
        await wait_for_log(caplog, "certificate of party 2, which is not expected here")
        # Party 1 already has party 2: a second party-2 connection is a duplicate.
        reader, writer = await asyncio.open_connection(*addresses[1], ssl=client_context(dep, 2))
        await assert_refused(reader)
        writer.close()
        await wait_for_log(caplog, "certificate of party 2, which is already connected")
        assert not task1.done() and not task2.done()
        # The genuine party 3 still gets in, and messages go to the right parties.
        t3 = await connect(dep, 3, addresses)
        t1, t2 = await asyncio.gather(task1, task2)
        await t3.send(1, ("who", 0), b"3 to 1")
        await t3.send(2, ("who", 0), b"3 to 2")
        await t2.send(1, ("who", 0), b"2 to 1")
        assert await t1.recv(3, ("who", 0)) == b"3 to 1"
        assert await t2.recv(3, ("who", 0)) == b"3 to 2"
        assert await t1.recv(2, ("who", 0)) == b"2 to 1"
        await close_all(t1, t2, t3)

    run(scenario())
    assert len(logged(caplog, "accepted party 2")) == 1


def test_dialer_refuses_a_server_with_the_wrong_id(
    dep: Deployment, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)

    async def scenario() -> None:
        addresses = addresses_for([1, 2])
        host, port = addresses[1]
        # Party 3's certificate answers at party 1's address.
        impostor = await asyncio.start_server(
            lambda r, w: None, host, port, ssl=server_context(dep, 3)
        )
        task2 = asyncio.ensure_future(connect(dep, 2, addresses, connect_deadline=10.0))
        await wait_for_log(caplog, "presented the certificate of party 3")
        impostor.close()
        await impostor.wait_closed()
        assert not task2.done()
        # Party 2 keeps trying until the genuine party 1 answers.
        t1 = await connect(dep, 1, addresses)
        t2 = await task2
        await t1.send(2, ("ok", 0), b"from 1")
        assert await t2.recv(1, ("ok", 0)) == b"from 1"
        await close_all(t1, t2)

    run(scenario())
    assert logged(caplog, "party 2 refused 127.0.0.1")


def test_check_hostname(dep: Deployment, tmp_path: Path) -> None:
    elsewhere = create_deployment(tmp_path, parties=2, dealer=False, hosts=["10.1.2.3"])

    async def scenario() -> None:
        # dep's certificates list 127.0.0.1: hostname checks pass.
        addresses = addresses_for([1, 2])
        pair = await asyncio.gather(
            *(connect(dep, p, addresses, check_hostname=True) for p in (1, 2))
        )
        await close_all(*pair)
        # Certificates issued for 10.1.2.3 only: the dialler refuses 127.0.0.1.
        addresses = addresses_for([1, 2])
        outcomes = await asyncio.gather(
            *(
                connect(elsewhere, p, addresses, check_hostname=True, connect_deadline=1.0)
                for p in (1, 2)
            ),
            return_exceptions=True,
        )
        await close_all(*outcomes)
        assert isinstance(outcomes[1], TransportError)
        assert "IP address mismatch" in str(outcomes[1])

    run(scenario())


# -- (4) a silent party ---------------------------------------------------------------------------


def test_silent_party_is_named_within_the_timeout(dep: Deployment) -> None:
    async def scenario() -> None:
        addresses = addresses_for([1, 2])
        t1, t2 = await asyncio.gather(
            connect(dep, 1, addresses, timeout=0.4), connect(dep, 2, addresses)
        )
        started = time.monotonic()
        with pytest.raises(ProtocolError, match="party 2 went silent"):
            await t1.recv(2, ("quiet", 0))  # the transport's default timeout
        assert 0.35 <= time.monotonic() - started < 0.4 + 0.5
        started = time.monotonic()
        with pytest.raises(ProtocolError, match="party 1 went silent"):
            await t2.recv(1, ("quiet", 1), timeout=0.3)
        assert 0.25 <= time.monotonic() - started < 0.3 + 0.5
        # Still connected: a late message under another tag arrives.
        await t2.send(1, ("quiet", 2), b"late")
        assert await t1.recv(2, ("quiet", 2)) == b"late"
        await close_all(t1, t2)

    run(scenario())


# -- (5) frame limits and strict decoding ----------------------------------------------------------


def test_oversized_send_is_refused_before_anything_is_sent(dep: Deployment) -> None:
    async def scenario() -> None:
        addresses = addresses_for([1, 2])
        t1, t2 = await asyncio.gather(
            connect(dep, 1, addresses, max_frame=1024), connect(dep, 2, addresses)
        )
        with pytest.raises(TransportError, match="exceeds the frame limit 1024"):
            await t1.send(2, ("limit", 0), b"x" * 1025)
        await t1.send(2, ("limit", 0), b"x" * 1024)  # same tag: the first one never left
        assert await t2.recv(1, ("limit", 0)) == b"x" * 1024
        await close_all(t1, t2)

    run(scenario())


def test_oversized_frame_from_a_peer_drops_the_connection(dep: Deployment) -> None:
    async def scenario() -> None:
        addresses = addresses_for([1, 2])
        t1, t2 = await asyncio.gather(
            connect(dep, 1, addresses, max_frame=4096), connect(dep, 2, addresses)
        )
        pending = asyncio.ensure_future(t1.recv(2, ("big", 0)))
        await t2.send(1, ("big", 0), b"y" * 4097)
        with pytest.raises(TransportError, match="over the limit of 4096"):
            await pending
        with pytest.raises(TransportError, match="connection to party 2 lost"):
            await t1.send(2, ("after", 0), b"")
        # Party 2 sees the connection dropped, too.
        with pytest.raises(TransportError, match="connection to party 1 lost"):
            await t2.recv(1, ("after", 0), timeout=5)
        await close_all(t1, t2)

    run(scenario())


def _frame(
    session: bytes, step: int, length: int, *, magic: bytes = b"SC", version: int = 1
) -> bytes:
    return struct.pack("!2sBBHQQ", magic, version, 0, len(session), step, length) + session


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (_frame(b"s", 0, 1 << 40), "announced a frame of 1099511627776 bytes"),
        (_frame(b"s", 0, 2**64 - 1), "over the limit"),
        (_frame(b"s", 0, 1, magic=b"XX") + b"z", "bad frame magic"),
        (_frame(b"s", 0, 1, version=2) + b"z", "unsupported wire version 2"),
        (_frame(b"\xff\xfe", 0, 1) + b"z", "not valid UTF-8"),
        (struct.pack("!2sBBHQQ", b"SC", 1, 0, 300, 0, 0) + b"s" * 300, "exceeds 256"),
        (struct.pack("!2sBBHQQ", b"SC", 1, 1, 0, 0, 0), "unexpected READY"),
        (struct.pack("!2sBBHQQ", b"SC", 1, 7, 0, 0, 0), "unknown frame kind"),
        (_frame(b"s", 0, 10) + b"only5", "closed inside a frame"),
    ],
    ids=[
        "huge",
        "max-u64",
        "magic",
        "version",
        "utf8",
        "session",
        "ready",
        "kind",
        "truncated",
    ],
)
def test_malformed_frames_from_a_peer_drop_it(dep: Deployment, frame: bytes, reason: str) -> None:
    async def scenario() -> None:
        addresses = addresses_for([1, 2])
        task1 = asyncio.ensure_future(connect(dep, 1, addresses))
        # Party 2, played by hand with its genuine certificate, turns malicious after READY.
        reader, writer = None, None
        for _ in range(100):
            try:
                reader, writer = await asyncio.open_connection(
                    *addresses[1], ssl=client_context(dep, 2)
                )
                break
            except ConnectionRefusedError:
                await asyncio.sleep(0.05)
        assert reader is not None and writer is not None
        await read_ready(reader)
        t1 = await task1
        pending = asyncio.ensure_future(t1.recv(2, ("s", 0)))
        await asyncio.sleep(0.05)
        writer.write(frame)
        await writer.drain()
        if reason == "closed inside a frame":
            writer.close()
        with pytest.raises(TransportError, match=reason):
            await pending
        with pytest.raises(TransportError):
            await t1.recv(2, ("s", 1))
        if reason != "closed inside a frame":
            await assert_refused(reader)
        writer.close()
        await close_all(t1)

    run(scenario())


def test_duplicate_tag_from_a_peer_is_a_protocol_violation(dep: Deployment) -> None:
    async def scenario() -> None:
        addresses = addresses_for([1, 2])
        t1, t2 = await asyncio.gather(connect(dep, 1, addresses), connect(dep, 2, addresses))
        await t2.send(1, ("dup", 0), b"first")
        await t2.send(1, ("dup", 0), b"second")
        with pytest.raises(TransportError, match="two messages under tag"):
            await t1.recv(2, ("dup", 1), timeout=5)
        assert await t1.recv(2, ("dup", 0)) == b"first"  # what arrived before stays readable
        await close_all(t1, t2)

    run(scenario())


def test_send_cancelled_mid_frame_drops_the_connection(dep: Deployment) -> None:
    async def scenario() -> None:
        addresses = addresses_for([1, 2])
        t1, t2 = await asyncio.gather(connect(dep, 1, addresses), connect(dep, 2, addresses))
        pending = asyncio.ensure_future(t2.recv(1, ("cut", 0), timeout=10))
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(t1.send(2, ("cut", 0), bytes(64 << 20)), 0.001)
        with pytest.raises(TransportError, match="cancelled in the middle of a frame"):
            await t1.send(2, ("cut", 1), b"")
        with pytest.raises(TransportError, match="connection to party 1 lost"):
            await pending
        await close_all(t1, t2)

    run(scenario())


def test_frame_codec_round_trip_and_strictness() -> None:
    head = encode_frame_header(("sëssion", 2**64 - 1), 12345)
    assert len(head) == HEADER_SIZE + len("sëssion".encode())
    assert decode_frame_header(head[:HEADER_SIZE]) == FrameHeader(
        0, len("sëssion".encode()), 2**64 - 1, 12345
    )
    for bad in [("s" * 257, 0), ("s", -1), ("s", 2**64), ("\ud800", 0), (b"s", 0), ("s", True)]:
        with pytest.raises(InvalidInputError):
            encode_frame_header(bad, 0)  # type: ignore[arg-type]
    with pytest.raises(ProtocolError):
        decode_frame_header(head[: HEADER_SIZE - 1])
    with pytest.raises(ProtocolError, match="READY"):
        decode_frame_header(struct.pack("!2sBBHQQ", b"SC", 1, 1, 0, 5, 0))


def test_bad_tags_and_peers_on_send(dep: Deployment) -> None:
    async def scenario() -> None:
        addresses = addresses_for([1, 2])
        t1, t2 = await asyncio.gather(connect(dep, 1, addresses), connect(dep, 2, addresses))
        assert isinstance(t1, Transport)
        with pytest.raises(InvalidInputError, match="no peer 5"):
            await t1.send(5, ("s", 0), b"")
        with pytest.raises(InvalidInputError, match="no peer 5"):
            await t1.recv(5, ("s", 0))
        with pytest.raises(InvalidInputError, match="256"):
            await t1.send(2, ("s" * 300, 0), b"")
        with pytest.raises(InvalidInputError):
            await t1.send(2, ("s", -1), b"")
        await t1.send(2, ("view", 0), memoryview(b"abc"))
        assert await t2.recv(1, ("view", 0)) == b"abc"
        await close_all(t1, t2)

    run(scenario())


# -- (7) clean close -------------------------------------------------------------------------------


def test_close_fails_pending_receives_and_is_idempotent(dep: Deployment) -> None:
    async def scenario() -> None:
        addresses = addresses_for([0, 1, 2])
        t0, t1, t2 = await asyncio.gather(*(connect(dep, p, addresses) for p in (0, 1, 2)))
        await t2.send(1, ("kept", 0), b"arrived before close")
        await asyncio.sleep(0.05)
        mine = asyncio.ensure_future(t1.recv(2, ("never", 0)))
        theirs = asyncio.ensure_future(t2.recv(1, ("never", 0)))
        dealer_waits = asyncio.ensure_future(t0.recv(1, ("never", 0)))
        await asyncio.sleep(0.05)
        started = time.monotonic()
        await t1.close()
        assert time.monotonic() - started < 3.0
        with pytest.raises(TransportError, match="transport is closed"):
            await mine
        with pytest.raises(TransportError, match="connection to party 1 lost"):
            await theirs
        with pytest.raises(TransportError, match="connection to party 1 lost"):
            await dealer_waits
        await t1.close()  # idempotent
        assert t1.closed
        assert await t1.recv(2, ("kept", 0)) == b"arrived before close"
        with pytest.raises(TransportError):
            await t1.recv(2, ("later", 0))
        with pytest.raises(TransportError, match="closed"):
            await t1.send(2, ("later", 0), b"")
        with pytest.raises(TransportError, match="connection to party 1 lost"):
            await t2.send(1, ("later", 0), b"x" * (4 << 20))
        # The others still talk to each other.
        await t0.send(2, ("still", 0), b"yes")
        assert await t2.recv(0, ("still", 0)) == b"yes"
        await close_all(t0, t2)
        ours = {asyncio.current_task()} | {t for t in asyncio.all_tasks() if "bounded" in repr(t)}
        assert asyncio.all_tasks() <= ours, asyncio.all_tasks() - ours  # no reader left behind

    run(scenario(), limit=15)


def test_async_with_closes(dep: Deployment) -> None:
    async def scenario() -> None:
        addresses = addresses_for([1, 2])
        t1, t2 = await asyncio.gather(connect(dep, 1, addresses), connect(dep, 2, addresses))
        async with t1, t2:
            await t1.send(2, ("a", 0), b"x")
            assert await t2.recv(1, ("a", 0)) == b"x"
        assert t1.closed and t2.closed

    run(scenario())


def test_connect_deadline_names_the_missing_parties(dep: Deployment) -> None:
    async def scenario() -> None:
        addresses = addresses_for([0, 1, 2, 3])
        started = time.monotonic()
        with pytest.raises(TransportError, match="could not connect to parties 0, 3"):
            await asyncio.gather(
                *(connect(dep, p, addresses, connect_deadline=1.0) for p in (1, 2)),
            )
        assert time.monotonic() - started < 1.0 + 2.0

    run(scenario())


def test_bad_parameters(dep: Deployment) -> None:
    async def scenario() -> None:
        good = addresses_for([1, 2])
        cases: list[tuple[Callable[[], Awaitable[TlsTransport]], str]] = [
            (lambda: connect(dep, 3, good), "no address"),
            (lambda: connect(dep, 1, {**good, 2: good[1]}), "share a host and port"),
            (lambda: connect(dep, 1, {**good, 2: ("127.0.0.1", 0)}), "port"),
            (lambda: connect(dep, 1, good, timeout=0), "positive"),
            (lambda: connect(dep, 1, good, max_frame=0), "max_frame"),
            (lambda: connect(dep, 1, good, ca=dep.endpoint(1).key), "CA certificate"),
        ]
        for make, message in cases:
            with pytest.raises(InvalidInputError, match=message):
                await make()
        files = dep.endpoint(1)
        with pytest.raises(InvalidInputError, match="matching private key"):
            await connect_mesh(1, good, cert=files.cert, key=dep.endpoint(2).key, ca=dep.ca_cert)

    run(scenario())


# -- throughput (slow; prints its figure) ---------------------------------------------------


async def _throughput(pid: int, addresses: Addresses, directory: str, rounds: int) -> float:
    base = Path(directory)
    transport = await connect_mesh(
        pid,
        addresses,
        cert=base / f"party-{pid}.pem",
        key=base / f"party-{pid}-key.pem",
        ca=base / "ca.pem",
    )
    message = payload(1, 2, "throughput", 16 * 1024 * 1024)
    async with transport:
        started = time.perf_counter()
        for step in range(rounds):
            if pid == 1:
                await transport.send(2, ("tp", step), message)
            else:
                assert await transport.recv(1, ("tp", step)) == message
        if pid == 1:
            await transport.recv(2, ("ack", 0))
        else:
            await transport.send(1, ("ack", 0), b"")
        return time.perf_counter() - started


def _throughput_worker(pid: int, addresses: Addresses, directory: str, results: Any) -> None:
    results.put((pid, asyncio.run(_throughput(pid, addresses, directory, 20))))


@pytest.mark.slow
def test_throughput_of_16_mib_messages_between_processes(dep: Deployment) -> None:
    addresses = addresses_for([1, 2])
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    processes = [
        ctx.Process(
            target=_throughput_worker,
            args=(pid, addresses, str(dep.directory), results),
            daemon=True,
        )
        for pid in (1, 2)
    ]
    for process in processes:
        process.start()
    elapsed = dict(results.get(timeout=120) for _ in processes)
    for process in processes:
        process.join(timeout=10)
    rate = 20 * 16 * 1024 * 1024 / elapsed[1]
    print(
        f"\nTLS mesh: 20 x 16 MiB from party 1 to party 2 in {elapsed[1]:.2f} s: "
        f"{rate / 1e6:.0f} MB/s, {elapsed[1] / 20 * 1000:.1f} ms per message"
    )
    assert rate > 20e6


# -- quiet logs for abandoned handshakes -------------------------------------------------------


def _assert_quiet(caplog: pytest.LogCaptureFixture, connections: int) -> None:
    """No traceback anywhere in the log, and at most a few lines per silent connection."""
    assert "Traceback" not in caplog.text
    assert not [r for r in caplog.records if r.exc_info or r.stack_info]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text[:2000]
    assert len(caplog.records) <= 2 * connections + 10, caplog.text[:2000]


@pytest.mark.parametrize("how", ["deadline", "cancelled"])
def test_silent_connections_to_a_listening_party_log_no_traceback(
    dep: Deployment, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    """100 TCP connections that never start TLS, then the listening party stops waiting."""
    connections = 100
    caplog.set_level(logging.DEBUG)

    async def scenario() -> None:
        addresses = addresses_for([1, 2])
        waiting = asyncio.ensure_future(connect(dep, 1, addresses, connect_deadline=3.0))
        host, port = addresses[1]
        streams: list[asyncio.StreamWriter] = []
        for _ in range(50):  # until the party listens
            try:
                streams.append((await asyncio.open_connection(host, port))[1])
                break
            except OSError:
                await asyncio.sleep(0.05)
        for _ in range(connections - 1):
            streams.append((await asyncio.open_connection(host, port))[1])
        await asyncio.sleep(0.3)  # every handshake is pending now
        if how == "cancelled":
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
        else:
            with pytest.raises(TransportError, match="could not connect to party 2"):
                await waiting
        for writer in streams:
            writer.close()
        await asyncio.sleep(0.2)  # let the loop report whatever it would report

    run(scenario())
    _assert_quiet(caplog, connections)

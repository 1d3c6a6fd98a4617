"""Connection setup of the TLS mesh: TLS contexts, address checks, handshakes, retries.

:func:`~smpcloud.mpc.tcp.connect_mesh` connects one endpoint to every other endpoint of a
deployment (parties 1..n and, optionally, the dealer 0), one TCP connection per pair: the higher
id dials the lower id, the lower id accepts. It retries while peers are still starting and
returns once every connection is up, authenticated and acknowledged.

**Authentication.** TLS 1.3 only, mutual: each side presents its endpoint certificate (see
:mod:`smpcloud.mpc.certs`) and verifies the other's against the deployment CA, the only trust
anchor (the system store is never loaded). After the handshake each side reads the peer's party
id from its certificate: the dialer requires exactly the id it dialed; the acceptor requires one
of the ids it expects to accept that is not connected yet. It then sends a READY frame, and the
dialer counts the connection as up only once READY arrives (in TLS 1.3 a client finishes its
handshake before the server has checked the client certificate, so READY is what tells the
dialer it was accepted). Anything else (a certificate from another CA, a wrong or duplicate id,
plain TCP, a silent client) is logged and dropped, and both sides keep waiting for the genuine
peer until ``connect_deadline``. Hostname checks are optional (``check_hostname``): the
identity that matters is the party id in a CA-signed certificate.

The dialler retries with backoff (50 ms doubling to 1 s) until ``connect_deadline``; failed
attempts are logged (never a payload) and remembered per peer for the final error message.
While peers are missing, :meth:`MeshSetup.report_waiting` tells a ``progress`` callback who is
still awaited and at which address, first after :data:`WAIT_REPORT_FIRST` seconds and then
every :data:`WAIT_REPORT_EVERY` seconds (a command prints it on stderr); :func:`describe_missing`
gives the same names and addresses to the final error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Final

from smpcloud.errors import InvalidInputError, ProtocolError
from smpcloud.mpc._links import Link, abort_stream, describe_error
from smpcloud.mpc.certs import MAX_PARTY_ID, party_id_from_certificate
from smpcloud.mpc.frames import HEADER_SIZE, KIND_READY, READY_FRAME, decode_frame_header

# The mesh logs under one name, the transport's, whichever half of it speaks.
log = logging.getLogger("smpcloud.mpc.tcp")

#: Seconds allowed for one TLS handshake plus the READY acknowledgement.
HANDSHAKE_TIMEOUT: Final = 10.0
#: StreamReader buffer limit: how much is read ahead before the socket is paused.
READ_LIMIT: Final = 1 << 20
_RETRY_FIRST: Final = 0.05
_RETRY_MAX: Final = 1.0
#: Seconds before the first "waiting for ..." progress message (a fast mesh prints none).
WAIT_REPORT_FIRST: Final = 1.0
#: Seconds between two "waiting for ..." progress messages.
WAIT_REPORT_EVERY: Final = 5.0


def endpoint_name(pid: int) -> str:
    """``party <id>``, or ``the dealer (id 0)``."""
    return "the dealer (id 0)" if pid == 0 else f"party {pid}"


def describe_missing(missing: list[int], addresses: Mapping[int, tuple[str, int]]) -> str:
    """Name each missing endpoint with its address: ``party 3 at 127.0.0.1:9103, ...``."""
    return ", ".join(
        f"{endpoint_name(p)} at {addresses[p][0]}:{addresses[p][1]}" for p in sorted(missing)
    )


def peer_id(writer: asyncio.StreamWriter) -> int:
    """Party id of the verified certificate the TLS peer presented (InvalidInputError if none)."""
    sslobj = writer.get_extra_info("ssl_object")
    der = sslobj.getpeercert(binary_form=True) if sslobj is not None else None
    if not der:
        raise InvalidInputError("the peer presented no certificate")
    return party_id_from_certificate(der)


def peername(writer: asyncio.StreamWriter) -> str:
    """The peer's address as ``host:port`` (for logs)."""
    peer = writer.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer)


def tls_contexts(
    cert: Path, key: Path, ca: Path, check_hostname: bool
) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """Return the server and client contexts: TLS 1.3 only, mutual, the deployment CA only.

    Raises:
        InvalidInputError: the CA, certificate or key files are not PEM, or do not match.
    """
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    for context in (server, client):
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        context.verify_mode = ssl.CERT_REQUIRED
        try:
            context.load_verify_locations(cafile=str(ca))
        except (ssl.SSLError, ValueError):
            raise InvalidInputError(f"{ca}: not a PEM CA certificate") from None
        try:
            context.load_cert_chain(str(cert), str(key))
        except (ssl.SSLError, ValueError):
            raise InvalidInputError(
                f"{cert}, {key}: not a PEM certificate and its matching private key"
            ) from None
    server.num_tickets = 0  # no session resumption: every connection is a full handshake
    client.check_hostname = check_hostname
    return server, client


def check_addresses(
    party: int, addresses: Mapping[int, tuple[str, int]]
) -> dict[int, tuple[str, int]]:
    """Check every endpoint's id and (host, port); return them as a plain dict.

    Raises:
        InvalidInputError: an id outside 0..MAX_PARTY_ID, a malformed address, no address for
            ``party``, or two endpoints on one host and port.
    """
    checked: dict[int, tuple[str, int]] = {}
    for pid, address in addresses.items():
        if not isinstance(pid, int) or isinstance(pid, bool) or not 0 <= pid <= MAX_PARTY_ID:
            raise InvalidInputError(f"party id {pid!r} is not an int in 0..{MAX_PARTY_ID}")
        try:
            host, port = address
        except (TypeError, ValueError):
            raise InvalidInputError(f"address of party {pid} must be (host, port)") from None
        if not isinstance(host, str) or not host:
            raise InvalidInputError(f"host of party {pid} must be a non-empty str")
        if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
            raise InvalidInputError(f"port of party {pid} must be in 1..65535")
        checked[pid] = (host, port)
    if party not in checked:
        raise InvalidInputError(f"party {party} has no address in the mesh")
    if len(set(checked.values())) != len(checked):
        raise InvalidInputError("two endpoints share a host and port")
    return checked


class MeshSetup:
    """The connection phase of :func:`~smpcloud.mpc.tcp.connect_mesh` (one per call).

    Args:
        party: this endpoint's id.
        peers: every other endpoint's id, sorted.
        addresses: every endpoint's checked (host, port).
        server_ctx, client_ctx: the TLS contexts of :func:`tls_contexts`.
        deadline: the event loop time by which every connection must be up.
        register: hands an authenticated connection to the transport.
        is_closed: whether the transport was closed meanwhile.
    """

    def __init__(
        self,
        party: int,
        peers: tuple[int, ...],
        addresses: dict[int, tuple[str, int]],
        server_ctx: ssl.SSLContext,
        client_ctx: ssl.SSLContext,
        deadline: float,
        *,
        register: Callable[[Link], None],
        is_closed: Callable[[], bool],
    ) -> None:
        self.party = party
        self.peers = peers
        self.connected: set[int] = set()
        self._register = register
        self.is_closed = is_closed
        self.addresses = addresses
        self.server_ctx = server_ctx
        self.client_ctx = client_ctx
        self.deadline = deadline
        self.accept_from = {p for p in peers if p > self.party}
        self.dial_to = [p for p in peers if p < self.party]
        self.claimed: set[int] = set()
        self.all_accepted = asyncio.Event()
        self.handshakes: set[asyncio.Task[None]] = set()
        self.last_error: dict[int, str] = {}
        self.refused = 0
        if not self.accept_from:
            self.all_accepted.set()

    def remaining(self) -> float:
        """Seconds left until the deadline (negative once it passed)."""
        return self.deadline - asyncio.get_running_loop().time()

    def register(self, link: Link) -> None:
        """Hand an authenticated connection to the transport and count its peer as connected."""
        self.connected.add(link.peer)
        self._register(link)

    def missing(self) -> list[int]:
        """The peers not connected yet, sorted."""
        return [p for p in self.peers if p not in self.connected]

    async def report_waiting(self, progress: Callable[[str], None], total: float) -> None:
        """Call ``progress`` with who is still awaited, until cancelled or nobody is missing.

        Messages look like ``party 1: waiting for party 3 at 127.0.0.1:9103 (6 s of 60 s)``;
        the first comes after :data:`WAIT_REPORT_FIRST` seconds, then one every
        :data:`WAIT_REPORT_EVERY` seconds. A callback that raises is not called again.
        """
        loop = asyncio.get_running_loop()
        started = loop.time()
        delay = WAIT_REPORT_FIRST
        while True:
            await asyncio.sleep(delay)
            delay = WAIT_REPORT_EVERY
            missing = self.missing()
            if not missing or self.remaining() <= 0:
                return
            me = "dealer" if self.party == 0 else f"party {self.party}"
            try:
                progress(
                    f"{me}: waiting for {describe_missing(missing, self.addresses)} "
                    f"({loop.time() - started:.0f} s of {total:g} s)"
                )
            except Exception:  # a broken progress callback must not break the mesh
                log.debug("party %d: the progress callback failed", self.party, exc_info=True)
                return

    def _refuse(self, writer: asyncio.StreamWriter, who: str, why: str) -> None:
        self.refused += 1
        log.warning("party %d refused a connection from %s: %s", self.party, who, why)
        abort_stream(writer)

    # -- accepting side ---------------------------------------------------------------------

    async def on_accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.handshakes.add(task)
        try:
            await self._accept(reader, writer)
        except asyncio.CancelledError:
            # Connection setup ended (every peer is connected, the deadline passed, or the
            # caller gave up) while this handshake was pending: expected, so one DEBUG line and
            # no re-raise. This task is asyncio's client_connected_cb, which nobody awaits; a
            # cancelled one makes asyncio log a full traceback per connection (Python 3.11).
            abort_stream(writer)
            log.debug(
                "party %d dropped a pending connection from %s: connection setup ended",
                self.party,
                peername(writer),
            )
        finally:
            if task is not None:
                self.handshakes.discard(task)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        who = peername(writer)
        if self.all_accepted.is_set() or self.is_closed():
            self._refuse(writer, who, "no more connections expected")
            return
        budget = max(0.1, min(HANDSHAKE_TIMEOUT, self.remaining()))
        try:
            # Our own timer, so that a silent client surfaces as TimeoutError (asyncio's
            # handshake timeout aborts with a ConnectionAbortedError like any other failure).
            async with asyncio.timeout(budget):
                await writer.start_tls(self.server_ctx, ssl_handshake_timeout=budget + 1.0)
        except TimeoutError:
            # A connection that never completes a handshake (a port scanner, a stalled peer):
            # expected on an open port, so DEBUG only; the genuine peer is still awaited.
            self.refused += 1
            log.debug(
                "party %d dropped a silent connection from %s: no TLS handshake within %.3g s",
                self.party,
                who,
                budget,
            )
            abort_stream(writer)
            return
        except (OSError, EOFError, asyncio.IncompleteReadError) as exc:
            self._refuse(writer, who, f"TLS handshake failed ({describe_error(exc)})")
            return
        try:
            pid = peer_id(writer)
        except InvalidInputError as exc:
            self._refuse(writer, who, f"certificate without a party id ({exc})")
            return
        if pid not in self.accept_from:
            self._refuse(writer, who, f"certificate of party {pid}, which is not expected here")
            return
        if pid in self.claimed:
            self._refuse(writer, who, f"certificate of party {pid}, which is already connected")
            return
        self.claimed.add(pid)
        try:
            writer.write(READY_FRAME)
            await asyncio.wait_for(writer.drain(), budget)
        except (OSError, EOFError, RuntimeError) as exc:
            self.claimed.discard(pid)
            self.last_error[pid] = f"connection dropped before READY ({describe_error(exc)})"
            abort_stream(writer)
            return
        self.register(Link(pid, reader, writer))
        log.info("party %d accepted party %d from %s", self.party, pid, who)
        if self.claimed >= self.accept_from:
            self.all_accepted.set()

    async def wait_accepted(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.all_accepted.wait(), max(0.0, self.remaining()))

    # -- dialling side ----------------------------------------------------------------------

    async def dial(self, peer: int) -> None:
        host, port = self.addresses[peer]
        delay = _RETRY_FIRST
        while True:
            remaining = self.remaining()
            if remaining <= 0:
                return
            budget = min(HANDSHAKE_TIMEOUT, remaining)
            try:
                link = await asyncio.wait_for(self._dial_once(peer, host, port, budget), budget)
            except (OSError, EOFError, asyncio.IncompleteReadError) as exc:
                self.last_error[peer] = describe_error(exc)
                if isinstance(exc, ssl.SSLError):
                    log.warning(
                        "party %d: TLS with %s:%d (party %d) failed: %s",
                        self.party,
                        host,
                        port,
                        peer,
                        describe_error(exc),
                    )
                else:
                    log.debug("party %d: party %d not reachable yet: %s", self.party, peer, exc)
                link = None
            except (InvalidInputError, ProtocolError) as exc:
                self.last_error[peer] = str(exc)
                log.warning(
                    "party %d refused %s:%d (dialled as party %d): %s",
                    self.party,
                    host,
                    port,
                    peer,
                    exc,
                )
                link = None
            if link is not None:
                self.register(link)
                log.info("party %d connected to party %d at %s:%d", self.party, peer, host, port)
                return
            await asyncio.sleep(min(delay, max(0.0, self.remaining())))
            delay = min(delay * 2, _RETRY_MAX)

    async def _dial_once(self, peer: int, host: str, port: int, budget: float) -> Link:
        reader, writer = await asyncio.open_connection(
            host,
            port,
            ssl=self.client_ctx,
            ssl_handshake_timeout=budget,
            limit=READ_LIMIT,
        )
        try:
            pid = peer_id(writer)
            if pid != peer:
                raise InvalidInputError(f"it presented the certificate of party {pid}")
            try:
                raw = await reader.readexactly(HEADER_SIZE)
            except asyncio.IncompleteReadError:
                raise ProtocolError("it closed the connection instead of sending READY") from None
            if decode_frame_header(raw).kind != KIND_READY:
                raise ProtocolError("it sent data before READY")
        except BaseException:
            abort_stream(writer)
            raise
        return Link(peer, reader, writer)

    async def cleanup(self) -> None:
        for task in list(self.handshakes):
            task.cancel()
        await asyncio.gather(*self.handshakes, return_exceptions=True)


__all__ = [
    "HANDSHAKE_TIMEOUT",
    "READ_LIMIT",
    "WAIT_REPORT_EVERY",
    "WAIT_REPORT_FIRST",
    "MeshSetup",
    "check_addresses",
    "describe_missing",
    "endpoint_name",
    "peer_id",
    "peername",
    "tls_contexts",
]

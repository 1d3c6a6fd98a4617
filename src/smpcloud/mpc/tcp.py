"""TLS-over-TCP mesh: a :class:`~smpcloud.mpc.transport.Transport` between real processes.

:func:`connect_mesh` connects one endpoint to every other endpoint of a deployment (parties
1..n and, optionally, the dealer 0), one TCP connection per pair: the higher id dials the lower
id, the lower id accepts. It retries while peers are still starting and returns once every
connection is up, authenticated and acknowledged.

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

**Wire format** (all integers big-endian), one frame per message::

    offset  size  field
    0       2     magic b"SC"
    2       1     version (1)
    3       1     kind: 0 = data, 1 = READY (sent once by the acceptor, all other fields 0)
    4       2     session length L, 0..256
    6       8     step (unsigned 64-bit)
    14      8     payload length P, 0..max_frame
    22      L     session name, UTF-8
    22+L    P     payload

Decoding is strict: a wrong magic, version or kind, a session longer than 256 bytes or not
valid UTF-8, or a second message under the same (sender, tag) is a protocol violation; a payload
longer than ``max_frame`` is refused before any of it is read. Either way the connection is
dropped and receives from that peer fail with :class:`~smpcloud.errors.TransportError` (the
reason is in the message), so a peer cannot make us allocate more than ``max_frame`` bytes.

What the transport reveals on the network: to outsiders, who talks to whom, when, and the
sizes of the frames; to an authenticated peer, nothing beyond the frames sent to it. Payloads
and session names are never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Final, Self

from smpcloud.errors import InvalidInputError, ProtocolError, TransportError
from smpcloud.mpc.certs import MAX_PARTY_ID, load_certificate, party_id_from_certificate
from smpcloud.mpc.mailbox import Mailbox
from smpcloud.mpc.transport import DEFAULT_TIMEOUT, Tag

log = logging.getLogger(__name__)

MAGIC: Final = b"SC"
WIRE_VERSION: Final = 1
KIND_DATA: Final = 0
KIND_READY: Final = 1
#: magic, version, kind, session length, step, payload length.
HEADER: Final = struct.Struct("!2sBBHQQ")
HEADER_SIZE: Final = HEADER.size
#: Longest session name on the wire, in UTF-8 bytes.
MAX_SESSION_BYTES: Final = 256
#: Default largest payload accepted or sent, in bytes.
DEFAULT_MAX_FRAME: Final = 256 * 1024 * 1024
MAX_STEP: Final = (1 << 64) - 1

#: Seconds allowed for one TLS handshake plus the READY acknowledgement.
HANDSHAKE_TIMEOUT: Final = 10.0
#: Seconds ``close()`` waits for the TLS close_notify exchange before aborting a connection.
CLOSE_TIMEOUT: Final = 2.0
#: Payloads are written in slices of this size, draining in between: encryption of the next
#: slice overlaps with the kernel sending (and the peer decrypting) the previous one.
WRITE_CHUNK: Final = 1 << 20
#: StreamReader buffer limit: how much is read ahead before the socket is paused.
READ_LIMIT: Final = 1 << 20
#: Payloads up to this size are copied behind the header and written in one piece.
_COALESCE: Final = 1 << 14
_RETRY_FIRST: Final = 0.05
_RETRY_MAX: Final = 1.0

_READY_FRAME: Final = HEADER.pack(MAGIC, WIRE_VERSION, KIND_READY, 0, 0, 0)


@dataclass(frozen=True, slots=True)
class FrameHeader:
    """A decoded frame header (see the wire format in the module docstring)."""

    kind: int
    session_length: int
    step: int
    payload_length: int


def encode_frame_header(tag: Tag, payload_length: int) -> bytes:
    """Return the header and session name of a data frame carrying ``payload_length`` bytes.

    Raises:
        InvalidInputError: the session is not a str of at most 256 UTF-8 bytes, or the step is
            not an int in [0, 2^64).
    """
    session, step = tag
    if not isinstance(session, str):
        raise InvalidInputError("the session of a tag must be a str")
    if not isinstance(step, int) or isinstance(step, bool) or not 0 <= step <= MAX_STEP:
        raise InvalidInputError("the step of a tag must be an int in [0, 2^64)")
    try:
        raw = session.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInputError("the session of a tag is not encodable as UTF-8") from None
    if len(raw) > MAX_SESSION_BYTES:
        raise InvalidInputError(
            f"session name of {len(raw)} bytes exceeds {MAX_SESSION_BYTES} bytes"
        )
    return HEADER.pack(MAGIC, WIRE_VERSION, KIND_DATA, len(raw), step, payload_length) + raw


def decode_frame_header(data: bytes) -> FrameHeader:
    """Decode and check the fixed 22-byte header (the payload length is checked by the caller).

    Raises:
        ProtocolError: wrong length, magic, version or kind, or a session length over 256.
    """
    if len(data) != HEADER_SIZE:
        raise ProtocolError(f"frame header must be {HEADER_SIZE} bytes, got {len(data)}")
    magic, version, kind, session_length, step, payload_length = HEADER.unpack(data)
    if magic != MAGIC:
        raise ProtocolError("bad frame magic")
    if version != WIRE_VERSION:
        raise ProtocolError(f"unsupported wire version {version}")
    if kind not in (KIND_DATA, KIND_READY):
        raise ProtocolError(f"unknown frame kind {kind}")
    if session_length > MAX_SESSION_BYTES:
        raise ProtocolError(f"session name of {session_length} bytes exceeds {MAX_SESSION_BYTES}")
    if kind == KIND_READY and (session_length or step or payload_length):
        raise ProtocolError("READY frame with non-zero fields")
    return FrameHeader(kind, session_length, step, payload_length)


def _peer_id(writer: asyncio.StreamWriter) -> int:
    """Party id of the verified certificate the TLS peer presented (InvalidInputError if none)."""
    sslobj = writer.get_extra_info("ssl_object")
    der = sslobj.getpeercert(binary_form=True) if sslobj is not None else None
    if not der:
        raise InvalidInputError("the peer presented no certificate")
    return party_id_from_certificate(der)


def _peername(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, asyncio.IncompleteReadError):
        return "connection closed by the peer"
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 300 else text[:300] + "..."


def _abort(writer: asyncio.StreamWriter) -> None:
    writer.transport.abort()


@dataclass(eq=False, slots=True)
class _Link:
    """One authenticated connection to one peer."""

    peer: int
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    task: asyncio.Task[None] | None = None
    lost: str | None = None


class TlsTransport:
    """One endpoint of a TLS 1.3 mesh; build it with :func:`connect_mesh`.

    Behaves like :class:`~smpcloud.mpc.memory.MemoryTransport`: ``send`` to a peer, ``recv``
    by (sender, tag) in any order, ``close``; usable as ``async with``.

    Attributes:
        party: this endpoint's id.
        peers: every other endpoint's id, sorted.
        max_frame: largest payload sent or accepted, in bytes.
    """

    def __init__(
        self, party: int, peers: tuple[int, ...], *, timeout: float, max_frame: int
    ) -> None:
        self.party = party
        self.peers = peers
        self.max_frame = max_frame
        self.mailbox = Mailbox(party, peers, timeout)
        self._links: dict[int, _Link] = {}
        self._server: asyncio.Server | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"TlsTransport(party={self.party}, peers={self.peers}, closed={self._closed})"

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- sending ----------------------------------------------------------------------------

    async def send(self, to: int, tag: Tag, payload: bytes | bytearray | memoryview) -> None:
        """Send ``payload`` to party ``to`` under ``tag``.

        Returns once the frame is handed to the kernel (or buffered below the write limit);
        frames to one peer go out whole and in call order. A mutable payload (bytearray,
        writable memoryview) is copied first; bytes and read-only C-contiguous memoryviews (for
        example :func:`~smpcloud.mpc.codec.encode_vectors_view`) are sent without a copy.

        Raises:
            InvalidInputError: unknown party, or a tag that cannot be encoded (session over 256
                UTF-8 bytes, step outside [0, 2^64)).
            TransportError: the transport is closed, the connection is lost, or the payload is
                larger than ``max_frame`` (then nothing is sent).
        """
        if to not in self.peers:
            raise InvalidInputError(f"party {self.party} has no peer {to}")
        if self._closed:
            raise TransportError(f"party {self.party}'s transport is closed")
        data: bytes | memoryview
        if isinstance(payload, bytes):
            data = payload
        elif isinstance(payload, memoryview) and payload.readonly and payload.c_contiguous:
            data = payload if payload.format == "B" and payload.ndim == 1 else payload.cast("B")
        else:
            data = bytes(payload)
        size = len(data)
        if size > self.max_frame:
            raise TransportError(
                f"payload of {size} bytes exceeds the frame limit {self.max_frame}"
            )
        head = encode_frame_header(tag, size)
        link = self._links[to]
        async with link.lock:
            if link.lost is not None:
                raise TransportError(f"connection to party {to} lost: {link.lost}")
            writer = link.writer
            if writer.is_closing():
                self._drop(link, "peer closed the connection")
                raise TransportError(f"connection to party {to} lost: peer closed the connection")
            partial = False  # True while only part of the frame is in the transport's buffer
            try:
                if size <= _COALESCE:  # one TLS record / TCP segment for small messages
                    writer.write(head + data)
                    await writer.drain()
                elif size <= WRITE_CHUNK:
                    writer.write(head)
                    writer.write(data)
                    await writer.drain()
                else:
                    writer.write(head)
                    view = data if isinstance(data, memoryview) else memoryview(data)
                    for start in range(0, size, WRITE_CHUNK):
                        writer.write(view[start : start + WRITE_CHUNK])
                        partial = start + WRITE_CHUNK < size
                        await writer.drain()
            except asyncio.CancelledError:
                if partial:  # the rest of the frame will never follow: the stream is broken
                    self._drop(link, "a send was cancelled in the middle of a frame")
                raise
            except (OSError, RuntimeError, EOFError, AttributeError) as exc:
                # AttributeError: asyncio's SSL transport can lose its protocol under a write
                # racing with the peer's close (seen on Python 3.11); it is a lost connection.
                reason = _describe(exc)
                self._drop(link, reason)
                raise TransportError(f"connection to party {to} lost: {reason}") from None

    # -- receiving --------------------------------------------------------------------------

    async def recv(self, frm: int, tag: Tag, *, timeout: float | None = None) -> bytes:
        """Wait for the message from ``frm`` under ``tag`` (see :class:`Mailbox`).

        Raises:
            InvalidInputError: unknown party.
            ProtocolError: nothing within ``timeout`` (names the silent party), tag read twice.
            TransportError: the connection to ``frm`` was lost or the transport closed.
        """
        return await self.mailbox.receive(frm, tag, timeout)

    async def _read_loop(self, link: _Link) -> None:
        reader = link.reader
        peer = link.peer
        try:
            while True:
                try:
                    raw = await reader.readexactly(HEADER_SIZE)
                except asyncio.IncompleteReadError as exc:
                    if exc.partial:
                        raise ProtocolError("connection closed inside a frame header") from None
                    self._drop(link, "peer closed the connection", abort=False)
                    return
                header = decode_frame_header(raw)
                if header.kind != KIND_DATA:
                    raise ProtocolError("unexpected READY frame")
                if header.payload_length > self.max_frame:
                    raise TransportError(
                        f"party {peer} announced a frame of {header.payload_length} bytes,"
                        f" over the limit of {self.max_frame}"
                    )
                session_raw = (
                    await reader.readexactly(header.session_length)
                    if header.session_length
                    else b""
                )
                try:
                    session = session_raw.decode("utf-8")
                except UnicodeDecodeError:
                    raise ProtocolError("session name is not valid UTF-8") from None
                payload = (
                    await reader.readexactly(header.payload_length)
                    if header.payload_length
                    else b""
                )
                self.mailbox.deliver(peer, (session, header.step), payload)
        except asyncio.CancelledError:
            raise
        except asyncio.IncompleteReadError:
            reason = "connection closed inside a frame"
            log.warning("party %d: connection to party %d: %s", self.party, peer, reason)
            self._drop(link, reason)
        except ProtocolError as exc:
            reason = f"protocol violation: {exc}"
            log.warning("party %d: dropping party %d: %s", self.party, peer, reason)
            self._drop(link, reason)
        except TransportError as exc:
            log.warning("party %d: dropping party %d: %s", self.party, peer, exc)
            self._drop(link, str(exc))
        except (OSError, EOFError) as exc:
            self._drop(link, _describe(exc))
        except Exception as exc:  # a bug must not leave receivers waiting for their timeout
            log.exception("party %d: reader for party %d failed", self.party, peer)
            self._drop(link, f"internal error ({type(exc).__name__})")

    def _drop(self, link: _Link, reason: str, *, abort: bool = True) -> None:
        """Mark ``link`` lost: pending and later receives from the peer fail, sends refuse."""
        if link.lost is not None:
            return
        link.lost = reason
        if link.peer in self._links and self._links[link.peer] is link:
            self.mailbox.fail(link.peer, reason)
        if abort:
            _abort(link.writer)
        else:
            link.writer.close()

    # -- lifetime ---------------------------------------------------------------------------

    def _register(self, link: _Link) -> None:
        self._links[link.peer] = link
        link.task = asyncio.get_running_loop().create_task(
            self._read_loop(link), name=f"smpcloud-tls-reader-{self.party}-{link.peer}"
        )

    async def close(self) -> None:
        """Close every connection and stop listening; idempotent.

        Pending and later receives fail with TransportError (messages that already arrived
        can still be read); peers see a closed connection.
        """
        if self._closed:
            return
        self._closed = True
        if self._server is not None:
            self._server.close()
        links = list(self._links.values())
        for link in links:
            if link.lost is None:
                link.lost = "transport closed"
                self.mailbox.fail(link.peer, f"party {self.party}'s transport is closed")
            link.writer.close()
        for peer in self.peers:
            if peer not in self._links:
                self.mailbox.fail(peer, f"party {self.party}'s transport is closed")
        tasks = [link.task for link in links if link.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await _wait_closed([link.writer for link in links], CLOSE_TIMEOUT)


async def _wait_closed(writers: list[asyncio.StreamWriter], timeout: float) -> None:
    """Wait for the TLS shutdown of ``writers`` (already closed); abort whatever is left."""

    async def one(writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, EOFError, RuntimeError):
            await writer.wait_closed()

    if not writers:
        return
    waits = {asyncio.ensure_future(one(w)): w for w in writers}
    _, still = await asyncio.wait(waits, timeout=timeout)
    for task in still:
        _abort(waits[task])
        task.cancel()
    await asyncio.gather(*still, return_exceptions=True)


def _contexts(
    cert: Path, key: Path, ca: Path, check_hostname: bool
) -> tuple[ssl.SSLContext, ssl.SSLContext]:
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


def _check_addresses(
    party: int, addresses: Mapping[int, tuple[str, int]]
) -> dict[int, tuple[str, int]]:
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


class _MeshSetup:
    """The connection phase of :func:`connect_mesh` (one per call)."""

    def __init__(
        self,
        transport: TlsTransport,
        addresses: dict[int, tuple[str, int]],
        server_ctx: ssl.SSLContext,
        client_ctx: ssl.SSLContext,
        deadline: float,
    ) -> None:
        self.transport = transport
        self.party = transport.party
        self.addresses = addresses
        self.server_ctx = server_ctx
        self.client_ctx = client_ctx
        self.deadline = deadline
        self.accept_from = {p for p in transport.peers if p > self.party}
        self.dial_to = [p for p in transport.peers if p < self.party]
        self.claimed: set[int] = set()
        self.all_accepted = asyncio.Event()
        self.handshakes: set[asyncio.Task[None]] = set()
        self.last_error: dict[int, str] = {}
        self.refused = 0
        if not self.accept_from:
            self.all_accepted.set()

    def remaining(self) -> float:
        return self.deadline - asyncio.get_running_loop().time()

    def _refuse(self, writer: asyncio.StreamWriter, who: str, why: str) -> None:
        self.refused += 1
        log.warning("party %d refused a connection from %s: %s", self.party, who, why)
        _abort(writer)

    # -- accepting side ---------------------------------------------------------------------

    async def on_accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.handshakes.add(task)
        try:
            await self._accept(reader, writer)
        except asyncio.CancelledError:
            _abort(writer)
            raise
        finally:
            if task is not None:
                self.handshakes.discard(task)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        who = _peername(writer)
        if self.all_accepted.is_set() or self.transport.closed:
            self._refuse(writer, who, "no more connections expected")
            return
        budget = max(0.1, min(HANDSHAKE_TIMEOUT, self.remaining()))
        try:
            await writer.start_tls(self.server_ctx, ssl_handshake_timeout=budget)
        except (OSError, EOFError, asyncio.IncompleteReadError) as exc:
            self._refuse(writer, who, f"TLS handshake failed ({_describe(exc)})")
            return
        try:
            pid = _peer_id(writer)
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
            writer.write(_READY_FRAME)
            await asyncio.wait_for(writer.drain(), budget)
        except (OSError, EOFError, RuntimeError) as exc:
            self.claimed.discard(pid)
            self.last_error[pid] = f"connection dropped before READY ({_describe(exc)})"
            _abort(writer)
            return
        self.transport._register(_Link(pid, reader, writer))
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
                self.last_error[peer] = _describe(exc)
                if isinstance(exc, ssl.SSLError):
                    log.warning(
                        "party %d: TLS with %s:%d (party %d) failed: %s",
                        self.party,
                        host,
                        port,
                        peer,
                        _describe(exc),
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
                self.transport._register(link)
                log.info("party %d connected to party %d at %s:%d", self.party, peer, host, port)
                return
            await asyncio.sleep(min(delay, max(0.0, self.remaining())))
            delay = min(delay * 2, _RETRY_MAX)

    async def _dial_once(self, peer: int, host: str, port: int, budget: float) -> _Link:
        reader, writer = await asyncio.open_connection(
            host,
            port,
            ssl=self.client_ctx,
            ssl_handshake_timeout=budget,
            limit=READ_LIMIT,
        )
        try:
            pid = _peer_id(writer)
            if pid != peer:
                raise InvalidInputError(f"it presented the certificate of party {pid}")
            try:
                raw = await reader.readexactly(HEADER_SIZE)
            except asyncio.IncompleteReadError:
                raise ProtocolError("it closed the connection instead of sending READY") from None
            if decode_frame_header(raw).kind != KIND_READY:
                raise ProtocolError("it sent data before READY")
        except BaseException:
            _abort(writer)
            raise
        return _Link(peer, reader, writer)

    async def cleanup(self) -> None:
        for task in list(self.handshakes):
            task.cancel()
        await asyncio.gather(*self.handshakes, return_exceptions=True)


async def connect_mesh(
    party: int,
    addresses: Mapping[int, tuple[str, int]],
    *,
    cert: Path,
    key: Path,
    ca: Path,
    timeout: float = DEFAULT_TIMEOUT,
    connect_deadline: float = 30.0,
    max_frame: int = DEFAULT_MAX_FRAME,
    check_hostname: bool = False,
) -> TlsTransport:
    """Connect ``party`` to every other endpoint in ``addresses`` over mutual TLS 1.3.

    Listens on ``addresses[party]`` for the higher ids and dials the lower ids, retrying with
    backoff (50 ms doubling to 1 s) while they are still starting. Returns only when every
    connection is up; the listening socket is closed then.

    Args:
        party: this endpoint's id (0 = dealer, 1..n = parties).
        addresses: every endpoint's (host, port), this one's included.
        cert: this endpoint's certificate (``party-<id>.pem``); it must carry ``party``.
        key: its private key (``party-<id>-key.pem``).
        ca: the deployment CA certificate (``ca.pem``), the only trust anchor.
        timeout: default seconds :meth:`TlsTransport.recv` waits for a message.
        connect_deadline: seconds to get every connection up.
        max_frame: largest payload sent or accepted, in bytes.
        check_hostname: also require the dialled host to be in the peer certificate's SANs.

    Raises:
        InvalidInputError: bad parameters, unreadable TLS files, or a certificate that is not
            ``party``'s.
        TransportError: cannot listen on the address, or some peers were not connected by the
            deadline (the message names them and the last error seen for each).
    """
    if timeout <= 0 or connect_deadline <= 0:
        raise InvalidInputError("timeout and connect_deadline must be positive")
    if not isinstance(max_frame, int) or max_frame < 1:
        raise InvalidInputError("max_frame must be a positive int")
    checked = _check_addresses(party, addresses)
    own = party_id_from_certificate(load_certificate(cert))
    if own != party:
        raise InvalidInputError(f"{cert} is the certificate of party {own}, not party {party}")
    server_ctx, client_ctx = _contexts(Path(cert), Path(key), Path(ca), check_hostname)

    loop = asyncio.get_running_loop()
    peers = tuple(sorted(p for p in checked if p != party))
    transport = TlsTransport(party, peers, timeout=timeout, max_frame=max_frame)
    setup = _MeshSetup(transport, checked, server_ctx, client_ctx, loop.time() + connect_deadline)
    ok = False
    try:
        if setup.accept_from:
            host, port = checked[party]
            try:
                transport._server = await asyncio.start_server(
                    setup.on_accept, host, port, limit=READ_LIMIT
                )
            except OSError as exc:
                raise TransportError(
                    f"party {party} cannot listen on {host}:{port}: {_describe(exc)}"
                ) from None
        await asyncio.gather(setup.wait_accepted(), *(setup.dial(p) for p in setup.dial_to))
        missing = [p for p in peers if p not in transport._links]
        if missing:
            details = "; ".join(
                f"party {p}: {setup.last_error.get(p, 'never connected')}" for p in missing
            )
            raise TransportError(
                f"party {party} could not connect to part{'y' if len(missing) == 1 else 'ies'} "
                f"{', '.join(map(str, missing))} within {connect_deadline:g} s ({details})"
            )
        ok = True
    finally:
        if transport._server is not None:
            transport._server.close()
        await setup.cleanup()
        if not ok:
            await transport.close()
    return transport


__all__ = [
    "DEFAULT_MAX_FRAME",
    "HEADER",
    "HEADER_SIZE",
    "MAGIC",
    "MAX_SESSION_BYTES",
    "WIRE_VERSION",
    "FrameHeader",
    "TlsTransport",
    "connect_mesh",
    "decode_frame_header",
    "encode_frame_header",
]

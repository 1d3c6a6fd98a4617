"""TLS-over-TCP mesh: a :class:`~smpcloud.mpc.transport.Transport` between real processes.

:func:`connect_mesh` connects one endpoint to every other endpoint of a deployment (parties
1..n and, optionally, the dealer 0), one TCP connection per pair: the higher id dials the lower
id, the lower id accepts. It retries while peers are still starting and returns once every
connection is up, authenticated and acknowledged.

**Authentication.** TLS 1.3 only, mutual, against the deployment CA alone; each side reads the
peer's party id from its certificate, and the acceptor confirms with a READY frame. Anything
else is logged and dropped while both sides keep waiting for the genuine peer (the full rules:
:mod:`smpcloud.mpc.mesh_setup`).

**Wire format**: one frame per message, a 22-byte header (magic, version, kind, session
length, step, payload length), the session name and the payload (:mod:`smpcloud.mpc.frames`).

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
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Final, Self

from smpcloud.errors import InvalidInputError, ProtocolError, TransportError
from smpcloud.mpc._links import Link, abort_stream, describe_error
from smpcloud.mpc.certs import load_certificate, party_id_from_certificate
from smpcloud.mpc.frames import (
    HEADER,
    HEADER_SIZE,
    KIND_DATA,
    MAGIC,
    MAX_SESSION_BYTES,
    WIRE_VERSION,
    FrameHeader,
    decode_frame_header,
    encode_frame_header,
)
from smpcloud.mpc.frames import KIND_READY as KIND_READY
from smpcloud.mpc.frames import MAX_STEP as MAX_STEP
from smpcloud.mpc.mailbox import Mailbox
from smpcloud.mpc.mesh_setup import HANDSHAKE_TIMEOUT as HANDSHAKE_TIMEOUT
from smpcloud.mpc.mesh_setup import (
    READ_LIMIT,
    MeshSetup,
    check_addresses,
    describe_missing,
    endpoint_name,
    tls_contexts,
)
from smpcloud.mpc.transport import DEFAULT_TIMEOUT, Tag

log = logging.getLogger(__name__)

#: Default largest payload accepted or sent, in bytes.
DEFAULT_MAX_FRAME: Final = 256 * 1024 * 1024
#: Seconds ``close()`` waits for the TLS close_notify exchange before aborting a connection.
CLOSE_TIMEOUT: Final = 2.0
#: Payloads are written in slices of this size, draining in between: encryption of the next
#: slice overlaps with the kernel sending (and the peer decrypting) the previous one.
WRITE_CHUNK: Final = 1 << 20
#: Payloads up to this size are copied behind the header and written in one piece.
_COALESCE: Final = 1 << 14


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
        self._links: dict[int, Link] = {}
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
                reason = describe_error(exc)
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

    async def _read_loop(self, link: Link) -> None:
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
            self._drop(link, describe_error(exc))
        except Exception as exc:  # a bug must not leave receivers waiting for their timeout
            log.exception("party %d: reader for party %d failed", self.party, peer)
            self._drop(link, f"internal error ({type(exc).__name__})")

    def _drop(self, link: Link, reason: str, *, abort: bool = True) -> None:
        """Mark ``link`` lost: pending and later receives from the peer fail, sends refuse."""
        if link.lost is not None:
            return
        link.lost = reason
        if link.peer in self._links and self._links[link.peer] is link:
            self.mailbox.fail(link.peer, reason)
        if abort:
            abort_stream(link.writer)
        else:
            link.writer.close()

    # -- lifetime ---------------------------------------------------------------------------

    def _register(self, link: Link) -> None:
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
        abort_stream(waits[task])
        task.cancel()
    await asyncio.gather(*still, return_exceptions=True)


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
    progress: Callable[[str], None] | None = None,
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
        progress: called with a one-line message naming the peers still awaited and their
            addresses, after a second of waiting and then every few seconds
            (:meth:`~smpcloud.mpc.mesh_setup.MeshSetup.report_waiting`).

    Raises:
        InvalidInputError: bad parameters, unreadable TLS files, or a certificate that is not
            ``party``'s.
        TransportError: cannot listen on the address, or some peers were not connected by the
            deadline (the message names them, their addresses and the last error seen for
            each).
    """
    if timeout <= 0 or connect_deadline <= 0:
        raise InvalidInputError("timeout and connect_deadline must be positive")
    if not isinstance(max_frame, int) or max_frame < 1:
        raise InvalidInputError("max_frame must be a positive int")
    checked = check_addresses(party, addresses)
    own = party_id_from_certificate(load_certificate(cert))
    if own != party:
        raise InvalidInputError(f"{cert} is the certificate of party {own}, not party {party}")
    server_ctx, client_ctx = tls_contexts(Path(cert), Path(key), Path(ca), check_hostname)

    loop = asyncio.get_running_loop()
    peers = tuple(sorted(p for p in checked if p != party))
    transport = TlsTransport(party, peers, timeout=timeout, max_frame=max_frame)
    setup = MeshSetup(
        party,
        peers,
        checked,
        server_ctx,
        client_ctx,
        loop.time() + connect_deadline,
        register=transport._register,
        is_closed=lambda: transport.closed,
    )
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
                    f"party {party} cannot listen on {host}:{port}: {describe_error(exc)}"
                ) from None
        reporter = (
            asyncio.ensure_future(setup.report_waiting(progress, connect_deadline))
            if progress is not None
            else None
        )
        try:
            await asyncio.gather(setup.wait_accepted(), *(setup.dial(p) for p in setup.dial_to))
        finally:
            if reporter is not None:
                reporter.cancel()
                await asyncio.gather(reporter, return_exceptions=True)
        missing = setup.missing()
        if missing:
            details = "; ".join(
                f"{endpoint_name(p)}: {setup.last_error.get(p, 'it never connected')}"
                for p in missing
            )
            raise TransportError(
                f"{endpoint_name(party)} could not connect to "
                f"part{'y' if len(missing) == 1 else 'ies'} {', '.join(map(str, missing))} "
                f"within {connect_deadline:g} s: waited for {describe_missing(missing, checked)} "
                f"({details}); is every one of them running with this deployment file?"
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

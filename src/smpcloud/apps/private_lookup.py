"""Private lookup: a client reads rows of a server's table; the server does not learn which.

Built on 1-out-of-N oblivious transfer (:class:`~smpcloud.crypto.ot.OneOfNSender`,
Naor-Pinkas over Chou-Orlandi base OTs): for each row the client wants, the server encrypts
*every* row under keys derived from ceil(log2 N) base OTs, and the client can derive the key of
exactly one row - the one it chose.

Messages (tag session ``<session>``, steps 0..4, over any
:class:`~smpcloud.mpc.transport.Transport`, for example the TLS mesh):

====  ==================  ==========================================================
step  direction           content
====  ==================  ==========================================================
0     client -> server    how many rows it wants (k)
1     server -> client    the table's shape: N rows of L bytes
2     server -> client    base-OT setup (one random group element)
3     client -> server    base-OT reply (k ceil(log2 N) uniformly random group elements)
4     server -> client    k N ciphertexts of L bytes
====  ==================  ==========================================================

What each side learns (semi-honest model):

* The **server** learns k, the number of rows fetched, and nothing about which: every point
  of the reply is uniform in the group whatever the index.
* The **client** learns the rows it chose and the table's shape (N, L), nothing about the
  other rows (their ciphertexts stay pseudorandom under AES keys it cannot derive).

Rows of different lengths are stored length-prefixed and zero-padded to a common width
(:func:`encode_rows`), so the width L is public but each row's own length is not.
Communication is linear in the table (k N L bytes): this is OT, not sublinear private
information retrieval.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Sequence
from typing import Final

import numpy as np

from smpcloud.crypto.ot import (
    MAX_CHOICES,
    MAX_PAYLOAD_BYTES,
    ByteRows,
    OneOfNReceiver,
    OneOfNSender,
)
from smpcloud.errors import InvalidInputError, ProtocolError
from smpcloud.mpc import codec
from smpcloud.mpc.transport import DEFAULT_TIMEOUT, Transport

#: Most rows a client may fetch in one session (bounds the server's work).
MAX_LOOKUPS: Final = 1024
#: Widest row, in bytes (after the 4-byte length prefix).
MAX_ROW_BYTES: Final = 1 << 20

_LENGTH: Final = struct.Struct("<I")


def encode_rows(rows: Sequence[bytes | str], *, width: int | None = None) -> ByteRows:
    """Return the table as a ``uint8`` array (N, L): each row length-prefixed, zero-padded.

    Args:
        rows: the rows (``str`` is UTF-8 encoded), at least two.
        width: L, the stored width (at least 4 + the longest row); default: just enough.

    Raises:
        InvalidInputError: fewer than two or too many rows, or a row wider than ``width``.
    """
    raw = [r.encode("utf-8") if isinstance(r, str) else bytes(r) for r in rows]
    if not 2 <= len(raw) <= MAX_CHOICES:
        raise InvalidInputError(f"a table needs 2..{MAX_CHOICES} rows, got {len(raw)}")
    need = _LENGTH.size + max(len(r) for r in raw)
    width = need if width is None else width
    if width < need or width > _LENGTH.size + MAX_ROW_BYTES:
        raise InvalidInputError(f"rows need a width of {need}..{_LENGTH.size + MAX_ROW_BYTES}")
    table = np.zeros((len(raw), width), dtype=np.uint8)
    for i, row in enumerate(raw):
        record = _LENGTH.pack(len(row)) + row
        table[i, : len(record)] = np.frombuffer(record, dtype=np.uint8)
    return table


def decode_row(stored: ByteRows | bytes) -> bytes:
    """Return the row stored by :func:`encode_rows` (without its prefix and padding).

    Raises:
        InvalidInputError: the length prefix does not fit the stored width.
    """
    data = bytes(np.asarray(stored, dtype=np.uint8).tobytes())
    if len(data) < _LENGTH.size:
        raise InvalidInputError("stored row too short")
    (length,) = _LENGTH.unpack_from(data)
    if _LENGTH.size + length > len(data):
        raise InvalidInputError("stored row has a bad length prefix")
    return data[_LENGTH.size : _LENGTH.size + length]


async def serve_lookup(
    transport: Transport,
    client: int,
    table: ByteRows,
    *,
    session: str = "lookup",
    timeout: float = DEFAULT_TIMEOUT,
) -> int:
    """Answer one session of private lookups from ``client``; return how many rows it fetched.

    Args:
        transport: the server's transport.
        client: the client's party id.
        table: the rows, ``uint8`` array of shape (N, L) (see :func:`encode_rows`).
        session: the tag session both sides use.
        timeout: seconds to wait for each client message.

    Reveals to the client: the table's shape and the rows it chose; the server learns only
    how many rows were fetched.

    Raises:
        InvalidInputError: a table that is not a (N >= 2, L >= 1) ``uint8`` array.
        ProtocolError: the client asked for 0 or more than :data:`MAX_LOOKUPS` rows (or more
            than :data:`~smpcloud.crypto.ot.MAX_PAYLOAD_BYTES` of ciphertexts), went silent,
            or sent a malformed message.
    """
    if not isinstance(table, np.ndarray) or table.dtype != np.uint8 or table.ndim != 2:
        raise InvalidInputError("the table must be a uint8 array of shape (N, L)")
    size, width = table.shape
    if not 2 <= size <= MAX_CHOICES or width < 1:
        raise InvalidInputError(f"the table needs 2..{MAX_CHOICES} rows of at least one byte")
    (count,) = codec.decode_ints(
        await transport.recv(client, (session, 0), timeout=timeout), count=1
    )
    if not 1 <= count <= MAX_LOOKUPS or count * size * width > MAX_PAYLOAD_BYTES:
        raise ProtocolError(f"party {client} asked for {count} rows: too many for this table")
    await transport.send(client, (session, 1), codec.encode_ints([size, width]))
    sender = OneOfNSender(np.broadcast_to(table, (int(count), size, width)).copy())
    await transport.send(client, (session, 2), sender.setup())
    reply = await transport.recv(client, (session, 3), timeout=timeout)
    await transport.send(client, (session, 4), await asyncio.to_thread(sender.finish, reply))
    return int(count)


async def private_lookup(
    transport: Transport,
    server: int,
    indices: Sequence[int],
    *,
    session: str = "lookup",
    timeout: float = DEFAULT_TIMEOUT,
) -> list[ByteRows]:
    """Fetch rows ``indices`` of ``server``'s table without revealing them; return the rows.

    Args:
        transport: the client's transport.
        server: the server's party id.
        indices: row numbers wanted (1..:data:`MAX_LOOKUPS` of them, repeats allowed).
        session: the tag session both sides use.
        timeout: seconds to wait for each server message.

    Returns:
        One ``uint8`` row of L bytes per index (:func:`decode_row` strips the padding).

    Raises:
        InvalidInputError: no indices or too many, or an index outside the table.
        ProtocolError: the server went silent or sent a malformed message.
    """
    wanted = [int(i) for i in indices]
    if not 1 <= len(wanted) <= MAX_LOOKUPS:
        raise InvalidInputError(f"ask for 1..{MAX_LOOKUPS} rows at a time")
    await transport.send(server, (session, 0), codec.encode_ints([len(wanted)]))
    shape = codec.decode_ints(await transport.recv(server, (session, 1), timeout=timeout), count=2)
    size, width = int(shape[0]), int(shape[1])
    if not 2 <= size <= MAX_CHOICES or not 1 <= width <= _LENGTH.size + MAX_ROW_BYTES:
        raise ProtocolError(f"the server announced an impossible table of {size} x {width}")
    if any(not 0 <= i < size for i in wanted):
        raise InvalidInputError(f"row indices must lie in 0..{size - 1}")
    receiver = OneOfNReceiver(wanted, size=size, length=width)
    setup = await transport.recv(server, (session, 2), timeout=timeout)
    await transport.send(server, (session, 3), await asyncio.to_thread(receiver.reply, setup))
    payload = await transport.recv(server, (session, 4), timeout=timeout)
    rows = await asyncio.to_thread(receiver.finish, payload)
    return list(rows)


__all__ = [
    "MAX_LOOKUPS",
    "MAX_ROW_BYTES",
    "decode_row",
    "encode_rows",
    "private_lookup",
    "serve_lookup",
]

"""Frames of the TLS mesh (:mod:`smpcloud.mpc.tcp`): header layout, encoding, strict decoding.

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


Decoding is strict: a wrong magic, version or kind, or a session longer than 256 bytes is a
protocol violation (:class:`~smpcloud.errors.ProtocolError`); the transport then drops the
connection. Pure functions: no I/O.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from smpcloud.errors import InvalidInputError, ProtocolError
from smpcloud.mpc.transport import Tag

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
MAX_STEP: Final = (1 << 64) - 1

#: The READY frame the acceptor sends once a connection is authenticated.
READY_FRAME: Final = HEADER.pack(MAGIC, WIRE_VERSION, KIND_READY, 0, 0, 0)


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


__all__ = [
    "HEADER",
    "HEADER_SIZE",
    "KIND_DATA",
    "KIND_READY",
    "MAGIC",
    "MAX_SESSION_BYTES",
    "MAX_STEP",
    "READY_FRAME",
    "WIRE_VERSION",
    "FrameHeader",
    "decode_frame_header",
    "encode_frame_header",
]

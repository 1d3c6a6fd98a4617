"""Strict, versioned binary encoding of what MPC parties exchange (never pickle).

Every message starts with the same 6 bytes: magic ``SMPC``, a version byte and a kind byte.
All integers are **little-endian** (the byte order numpy uses natively on x86 and ARM, so field
vectors encode with one cast and decode with a zero-copy ``frombuffer``).

Kinds:

``VECTORS`` (1) - a block of ``v`` vectors of ``m`` field elements::

    magic(4) version(1) kind(1) k(1) v(1) m(u32)  k x modulus(u32)  v x k x m residues(u32)

  Residues are below 2^32 because every prime of a :class:`~smpcloud.crypto.field.Field` is.
  The moduli are repeated in every message so a share from another field is rejected by name.

``INTS`` (2) - a list of signed 64-bit integers: ``count(u32)`` then ``count x i64``.

``REQUEST`` (3) - a request to the dealer: ``op(u8) count(u32) frac_bits(u8) mask_bits(u16)``.

``ERROR`` (4) - a refusal, for example from the dealer: ``length(u16)`` then UTF-8 text.

Decoding is strict: wrong magic, version or kind, another field, a length that does not match
the header (truncated or trailing bytes) and residues outside their prime all raise.
:func:`decode_vectors` raises :class:`~smpcloud.errors.ShareError` (the bytes cannot be used as
shares); the control messages raise :class:`~smpcloud.errors.ProtocolError`. Messages never
include the offending secret bytes.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

import numpy as np
import numpy.typing as npt

from smpcloud.crypto.field import Field, Residues
from smpcloud.errors import ProtocolError, ShareError

MAGIC: Final = b"SMPC"
VERSION: Final = 1

_PREFIX: Final = struct.Struct("<4sBB")  # magic, version, kind
_VECTORS: Final = struct.Struct("<4sBBBBI")  # prefix, k, v, m
_INTS: Final = struct.Struct("<4sBBI")  # prefix, count
_REQUEST: Final = struct.Struct("<4sBBBIBH")  # prefix, op, count, frac_bits, mask_bits
_ERROR: Final = struct.Struct("<4sBBH")  # prefix, length

#: Most vectors in one ``VECTORS`` message (the count is one byte).
MAX_VECTORS: Final = 255
#: Longest error text.
MAX_ERROR_TEXT: Final = 1024


class Kind(enum.IntEnum):
    """The message kinds (the sixth byte of every message)."""

    VECTORS = 1
    INTS = 2
    REQUEST = 3
    ERROR = 4


class RequestOp(enum.IntEnum):
    """What a party asks the dealer for."""

    TRIPLES = 1
    TRUNCATION_PAIRS = 2
    DONE = 3


@dataclass(frozen=True, slots=True)
class Request:
    """A request to the dealer (all computing parties send the same requests in order).

    Attributes:
        op: what is asked for.
        count: how many triples or pairs (0 for ``DONE``).
        frac_bits: for truncation pairs, the shift f (pairs are ([r], [r >> f])).
        mask_bits: for truncation pairs, r is uniform in [0, 2^mask_bits).
    """

    op: RequestOp
    count: int = 0
    frac_bits: int = 0
    mask_bits: int = 0


@lru_cache(maxsize=32)
def _moduli_u32(field: Field) -> npt.NDArray[np.uint32]:
    return np.array(field.moduli, dtype=np.uint32).reshape(field.k, 1)


def vectors_size(field: Field, count: int, length: int) -> int:
    """Return the encoded size in bytes of ``count`` vectors of ``length`` elements."""
    return _VECTORS.size + 4 * field.k + 4 * count * field.k * length


def encode_vectors(field: Field, block: Residues | Sequence[Residues]) -> bytes:
    """Encode one or more vectors of field elements of the same length.

    See :func:`encode_vectors_view` (the same message as a read-only view, without the copy
    into a ``bytes`` object).

    Args:
        field: the field the residues belong to (its moduli go in the header).
        block: a ``(k, m)`` array, a ``(v, k, m)`` array, or a sequence of ``(k, m)`` arrays;
            residues must already be reduced (below their prime); this is not re-checked.

    Returns:
        The ``VECTORS`` message.

    Raises:
        ShareError: wrong shape, more than 255 vectors or more than 2^32 - 1 elements.
    """
    return _encode_array(field, block).tobytes()


def _encode_array(field: Field, block: Residues | Sequence[Residues]) -> npt.NDArray[np.uint32]:
    """Return the ``VECTORS`` message as a little-endian ``uint32`` array (see encode_vectors)."""
    arrays: Sequence[Residues]
    if isinstance(block, np.ndarray):
        arrays = [block] if block.ndim == 2 else list(block)
    else:
        arrays = list(block)
    if not arrays or len(arrays) > MAX_VECTORS:
        raise ShareError(f"a message carries 1..{MAX_VECTORS} vectors, got {len(arrays)}")
    k = field.k
    shape = arrays[0].shape
    if len(shape) != 2 or shape[0] != k or any(a.shape != shape for a in arrays):
        raise ShareError(f"vectors must all have shape ({k}, m); got {[a.shape for a in arrays]}")
    m = int(shape[1])
    if m >= 1 << 32:
        raise ShareError(f"vector of {m} elements is too long to encode")
    head_words = (_VECTORS.size + 4 * k) // 4
    out = np.empty(head_words + len(arrays) * k * m, dtype="<u4")
    header = _VECTORS.pack(MAGIC, VERSION, Kind.VECTORS, k, len(arrays), m)
    header += struct.pack(f"<{k}I", *field.moduli)
    out[:head_words] = np.frombuffer(header, dtype="<u4")
    body = out[head_words:].reshape(len(arrays), k, m)
    for i, a in enumerate(arrays):
        body[i] = a  # uint64 -> uint32 cast in place; residues are < 2^32
    return out


def encode_vectors_view(field: Field, block: Residues | Sequence[Residues]) -> memoryview:
    """Encode like :func:`encode_vectors` into a fresh buffer and return a read-only view of it.

    Saves the copy into a ``bytes`` object for large blocks. Nothing else references the
    buffer, so the view's content never changes; transports accept read-only views as payloads
    (:class:`~smpcloud.mpc.tcp.TlsTransport` sends them without copying).

    Raises:
        ShareError: as :func:`encode_vectors`.
    """
    out = _encode_array(field, block)
    out.flags.writeable = False
    return out.data.cast("B")


def decode_vectors(
    data: bytes, field: Field, *, count: int | None = None, length: int | None = None
) -> Residues:
    """Decode a ``VECTORS`` message strictly and return a ``(v, k, m)`` ``uint64`` block.

    Args:
        data: the bytes received.
        field: the field the sender must be using.
        count: the number of vectors expected (checked when given).
        length: the number of elements per vector expected (checked when given).

    Raises:
        ShareError: wrong magic, version or kind; another field (different number of moduli or
            different moduli); unexpected count or length; truncated or trailing bytes; a
            residue not below its prime.
    """
    if len(data) < _VECTORS.size:
        raise ShareError(f"share message too short ({len(data)} bytes)")
    magic, version, kind, k, v, m = _VECTORS.unpack_from(data)
    if magic != MAGIC:
        raise ShareError("not a smpcloud MPC message (bad magic)")
    if version != VERSION:
        raise ShareError(f"unsupported MPC message version {version} (expected {VERSION})")
    if kind != Kind.VECTORS:
        raise ShareError(f"expected a share message, got message kind {kind}")
    if k != field.k:
        raise ShareError(f"shares from another field: {k} moduli, expected {field.k}")
    if count is not None and v != count:
        raise ShareError(f"expected {count} shared vector(s), got {v}")
    if v < 1:
        raise ShareError("share message carries no vectors")
    if length is not None and m != length:
        raise ShareError(f"expected shared vectors of length {length}, got {m}")
    expected = vectors_size(field, v, m)
    if len(data) != expected:
        raise ShareError(f"share message has {len(data)} bytes, expected {expected}")
    moduli = struct.unpack_from(f"<{k}I", data, _VECTORS.size)
    if tuple(moduli) != field.moduli:
        raise ShareError("shares from another field (moduli differ)")
    raw = np.frombuffer(data, dtype="<u4", offset=_VECTORS.size + 4 * k).reshape(v, k, m)
    if (raw >= _moduli_u32(field)).any():
        raise ShareError("share message holds a residue outside the field")
    return raw.astype(np.uint64)


def _check_prefix(data: bytes, kind: Kind, size: int, what: str) -> None:
    if len(data) < _PREFIX.size:
        raise ProtocolError(f"{what} message too short ({len(data)} bytes)")
    magic, version, got = _PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise ProtocolError(f"{what} message: not a smpcloud MPC message (bad magic)")
    if version != VERSION:
        raise ProtocolError(f"{what} message: unsupported version {version}")
    if got != kind:
        raise ProtocolError(f"expected a {what} message, got message kind {got}")
    if len(data) < size:
        raise ProtocolError(f"{what} message truncated ({len(data)} bytes)")


def encode_ints(values: Sequence[int] | npt.NDArray[np.int64]) -> bytes:
    """Encode a list of signed 64-bit integers (lengths, counts, flags).

    Raises:
        ProtocolError: a value outside the signed 64-bit range or more than 2^32 - 1 values.
    """
    try:
        arr = np.asarray(values, dtype=np.int64)
    except OverflowError:
        raise ProtocolError("integer outside the signed 64-bit range") from None
    if arr.ndim != 1 or arr.size >= 1 << 32:
        raise ProtocolError("expected a 1-D list of integers")
    return _INTS.pack(MAGIC, VERSION, Kind.INTS, arr.size) + arr.astype("<i8").tobytes()


def decode_ints(data: bytes, *, count: int | None = None) -> npt.NDArray[np.int64]:
    """Decode an ``INTS`` message strictly.

    Raises:
        ProtocolError: bad header, unexpected count, truncated or trailing bytes.
    """
    _check_prefix(data, Kind.INTS, _INTS.size, "integer list")
    (n,) = struct.unpack_from("<I", data, _PREFIX.size)
    if count is not None and n != count:
        raise ProtocolError(f"expected {count} integers, got {n}")
    if len(data) != _INTS.size + 8 * n:
        raise ProtocolError(f"integer list has {len(data)} bytes, expected {_INTS.size + 8 * n}")
    return np.frombuffer(data, dtype="<i8", offset=_INTS.size).astype(np.int64)


def encode_request(request: Request) -> bytes:
    """Encode a request to the dealer.

    Raises:
        ProtocolError: a field out of its wire range.
    """
    if not (
        0 <= request.count < 1 << 32
        and 0 <= request.frac_bits < 256
        and 0 <= request.mask_bits < 1 << 16
    ):
        raise ProtocolError("request parameters out of range")
    return _REQUEST.pack(
        MAGIC,
        VERSION,
        Kind.REQUEST,
        int(request.op),
        request.count,
        request.frac_bits,
        request.mask_bits,
    )


def decode_request(data: bytes) -> Request:
    """Decode a request strictly.

    Raises:
        ProtocolError: bad header, unknown operation, wrong length.
    """
    _check_prefix(data, Kind.REQUEST, _REQUEST.size, "request")
    if len(data) != _REQUEST.size:
        raise ProtocolError(f"request has {len(data)} bytes, expected {_REQUEST.size}")
    _, _, _, op, count, frac_bits, mask_bits = _REQUEST.unpack(data)
    try:
        kind = RequestOp(op)
    except ValueError:
        raise ProtocolError(f"unknown request operation {op}") from None
    return Request(kind, count, frac_bits, mask_bits)


def encode_error(reason: str) -> bytes:
    """Encode a refusal; the text is cut to :data:`MAX_ERROR_TEXT` bytes."""
    text = reason.encode("utf-8")[:MAX_ERROR_TEXT].decode("utf-8", "ignore").encode("utf-8")
    return _ERROR.pack(MAGIC, VERSION, Kind.ERROR, len(text)) + text


def decode_error(data: bytes) -> str:
    """Decode a refusal and return its text.

    Raises:
        ProtocolError: bad header, wrong length or text that is not UTF-8.
    """
    _check_prefix(data, Kind.ERROR, _ERROR.size, "error")
    (n,) = struct.unpack_from("<H", data, _PREFIX.size)
    if n > MAX_ERROR_TEXT or len(data) != _ERROR.size + n:
        raise ProtocolError("error message has a wrong length")
    try:
        return data[_ERROR.size :].decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError("error message text is not UTF-8") from None


def kind_of(data: bytes) -> Kind | None:
    """Return the kind of a message with a valid prefix, or None."""
    if len(data) < _PREFIX.size:
        return None
    magic, version, kind = _PREFIX.unpack_from(data)
    if magic != MAGIC or version != VERSION:
        return None
    try:
        return Kind(kind)
    except ValueError:
        return None


__all__ = [
    "MAGIC",
    "MAX_VECTORS",
    "VERSION",
    "Kind",
    "Request",
    "RequestOp",
    "decode_error",
    "decode_ints",
    "decode_request",
    "decode_vectors",
    "encode_error",
    "encode_ints",
    "encode_request",
    "encode_vectors",
    "encode_vectors_view",
    "kind_of",
    "vectors_size",
]

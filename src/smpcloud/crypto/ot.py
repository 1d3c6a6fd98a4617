"""Oblivious transfer (OT): batched base 1-out-of-2 OT over Ed25519, and 1-out-of-N OT.

In a 1-out-of-2 OT the *sender* holds two messages (m_0, m_1), the *receiver* a choice bit c;
afterwards the receiver knows m_c and nothing about m_(1-c), and the sender knows nothing about
c. This module holds the pure protocol logic as **message-passing state machines** (in the
style of libprio's ping-pong topology): each endpoint is an object whose methods take the
peer's message bytes and return the next message bytes, or the final output. Nothing here
opens a socket; a thin layer (for example :mod:`smpcloud.mpc.ot_triples`) carries the bytes.

Protocols:

* :class:`BaseOTSender` / :class:`BaseOTReceiver` - **random** 1-out-of-2 OT, batched: the
  "simplest OT" of Chou and Orlandi (LATINCRYPT 2015, fig. 1) in the prime-order subgroup of
  Ed25519 (libsodium through PyNaCl). The sender ends with two random 128-bit keys per OT, the
  receiver with the key of its choice. Two messages::

      sender -> receiver   BASE_SETUP   A = aG                       (one point per batch)
      receiver -> sender   BASE_REPLY   B_i = c_i A + b_i G          (one point per OT)
      sender's keys   k_i^0 = H(i, A, B_i, a B_i),  k_i^1 = H(i, A, B_i, a (B_i - A))
      receiver's key  k_i^{c_i} = H(i, A, B_i, b_i A)

* :class:`OneOfNSender` / :class:`OneOfNReceiver` - **chosen-message** 1-out-of-N OT, batched:
  Naor and Pinkas ("Oblivious transfer and polynomial evaluation", STOC 1999, sec. 3.1;
  "Computationally secure oblivious transfer", J. Cryptology 2005): ell = ceil(log2 N) random
  1-out-of-2 OTs on keys (K_j^0, K_j^1); message I is encrypted under
  F(K_1^{I_1}, I) xor ... xor F(K_ell^{I_ell}, I), where I_j is bit j of I and F is AES-128 in
  counter mode keyed by K (a PRF). The receiver holds exactly the ell keys of its index.
  N = 2 gives chosen-message 1-out-of-2 OT. A third message carries the N ciphertexts::

      sender -> receiver   CHOSEN_PAYLOAD   N ciphertexts of L bytes per OT

The OT extension (IKNP) that turns 128 base OTs into millions is in
:mod:`smpcloud.crypto.ot_extension`.

Security model: **semi-honest** (honest-but-curious) parties; a malicious party that deviates
from the protocol is not detected. Assumptions: computational Diffie-Hellman in the Ed25519
prime-order group with H a random oracle (BLAKE2b) for the base OT - the gaps found in
Chou-Orlandi's UC proof (Genc, Iovino and Rial, "'The simplest protocol for oblivious
transfer' revisited", 2017; Hauck and Loss, 2017) concern malicious and
adaptive settings, not the semi-honest use here; AES as a PRF for 1-out-of-N. Not hardened
against timing side channels (Python selects on secret bits).

What the messages reveal:

* ``BASE_SETUP`` (A): a uniformly random group element; nothing.
* ``BASE_REPLY`` (B_i): B_i is uniform in the group whatever c_i is: the sender learns nothing
  about the choices (perfect receiver privacy).
* ``CHOSEN_PAYLOAD``: N ciphertexts per OT; the receiver can open only the one at its index,
  the others stay pseudorandom. N and L (message count and length) are public.

Every point received is validated (canonical encoding, on the curve, in the prime-order
subgroup, not of small order) and every message is decoded strictly (magic, version, kind,
counts, exact length); anything else, and every call out of order, raises
:class:`~smpcloud.errors.ProtocolError`. A state machine that raised is spent: the protocol is
aborted and must be started again with new objects. Randomness: ``os.urandom`` only.
"""

from __future__ import annotations

import enum
import hashlib
import os
import struct
from collections.abc import Sequence
from typing import Final

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from nacl import bindings as sodium
from nacl import exceptions as sodium_errors

from smpcloud.errors import InvalidInputError, ProtocolError

#: Bytes of an OT key (128-bit computational security).
KEY_BYTES: Final = 16
#: Bytes of an encoded Ed25519 point.
POINT_BYTES: Final = 32
#: Most base OTs in one batch (each costs three scalar multiplications, ~0.2 ms).
MAX_BASE_OTS: Final = 1 << 20
#: Largest N of a 1-out-of-N OT.
MAX_CHOICES: Final = 1 << 24
#: Largest payload a chosen-message OT carries (bytes of all ciphertexts of a batch).
MAX_PAYLOAD_BYTES: Final = 1 << 30

#: Wire prefix of every OT message: magic, version, kind.
MAGIC: Final = b"SMOT"
VERSION: Final = 1

_PREFIX: Final = struct.Struct("<4sBB")
_COUNT: Final = struct.Struct("<I")
_CHOSEN: Final = struct.Struct("<III")  # batch, N, L
_IDENTITY: Final = b"\x01" + bytes(31)  # canonical encoding of the neutral element
_KEY_PERSON: Final = b"smpcloud/baseOT1"  # BLAKE2b personalisation (16 bytes): domain tag

#: A vector of OT keys or messages, ``uint8`` of shape (count, bytes).
ByteRows = npt.NDArray[np.uint8]


class MessageKind(enum.IntEnum):
    """The kinds of OT messages (the sixth byte of every message)."""

    BASE_SETUP = 1
    BASE_REPLY = 2
    CHOSEN_PAYLOAD = 3
    EXTENSION = 4
    EXTENSION_PAYLOAD = 5
    CORRECTIONS = 6


class _Stage(enum.Enum):
    NEW = "new"
    WAITING = "waiting for the peer"
    DONE = "done"
    FAILED = "failed"


# ====================================================================== framing


def frame(kind: MessageKind, header: bytes, *bodies: bytes | memoryview) -> bytes:
    """Return an OT message: the prefix (magic, version, kind), ``header`` and the bodies."""
    return b"".join([_PREFIX.pack(MAGIC, VERSION, int(kind)), header, *bodies])


def unframe(
    data: bytes, kind: MessageKind, header: struct.Struct, what: str
) -> tuple[tuple[int, ...], memoryview]:
    """Check an OT message's prefix and return its header fields and the body after them.

    Raises:
        ProtocolError: not bytes, too short, wrong magic, version or kind.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ProtocolError(f"{what}: expected bytes, got {type(data).__name__}")
    view = memoryview(data).cast("B")
    if len(view) < _PREFIX.size + header.size:
        raise ProtocolError(f"{what}: message too short ({len(view)} bytes)")
    magic, version, got = _PREFIX.unpack_from(view)
    if magic != MAGIC:
        raise ProtocolError(f"{what}: not a smpcloud OT message (bad magic)")
    if version != VERSION:
        raise ProtocolError(f"{what}: unsupported OT message version {version}")
    if got != kind:
        raise ProtocolError(f"{what}: expected message kind {int(kind)}, got {got}")
    fields = header.unpack_from(view, _PREFIX.size)
    return tuple(int(f) for f in fields), view[_PREFIX.size + header.size :]


def expect_length(body: memoryview, size: int, what: str) -> None:
    """Raise :class:`ProtocolError` unless ``body`` has exactly ``size`` bytes."""
    if len(body) != size:
        raise ProtocolError(f"{what}: body of {len(body)} bytes, expected {size}")


# ====================================================================== small helpers


def as_bits(choices: Sequence[int] | npt.ArrayLike, what: str = "choices") -> npt.NDArray[np.uint8]:
    """Return choice bits as a 1-D ``uint8`` array of 0s and 1s (a copy).

    Raises:
        InvalidInputError: not a 1-D vector of 0/1 (or booleans).
    """
    arr = np.asarray(choices)
    if arr.ndim != 1:
        raise InvalidInputError(f"{what} must be a 1-D vector of bits, got shape {arr.shape}")
    if arr.dtype != np.bool_ and arr.dtype.kind not in "iu":
        raise InvalidInputError(f"{what} must be bits (0/1), got dtype {arr.dtype}")
    if arr.size and (arr.dtype != np.bool_) and ((arr < 0) | (arr > 1)).any():
        raise InvalidInputError(f"{what} must be bits (0 or 1)")
    return arr.astype(np.uint8)


def random_scalar() -> bytes:
    """Return a uniform non-zero scalar modulo the Ed25519 group order L (32 bytes).

    64 bytes of ``os.urandom`` reduced modulo L (~2^252): bias below 2^-250.
    """
    while True:
        scalar: bytes = sodium.crypto_core_ed25519_scalar_reduce(os.urandom(64))
        if any(scalar):
            return scalar


def is_valid_point(point: bytes | memoryview) -> bool:
    """Return whether ``point`` encodes an element of the prime-order subgroup, not the identity.

    libsodium's check: canonical encoding, on the curve, in the main subgroup, not of small
    order (which excludes the identity).
    """
    raw = bytes(point)
    return len(raw) == POINT_BYTES and bool(sodium.crypto_core_ed25519_is_valid_point(raw))


def _scalarmult(scalar: bytes, point: bytes) -> bytes:
    try:
        out: bytes = sodium.crypto_scalarmult_ed25519_noclamp(scalar, point)
    except sodium_errors.RuntimeError:
        raise ProtocolError("a received point gave the identity") from None
    return out


def _point_key(index: int, setup: bytes, reply: bytes, shared: bytes) -> bytes:
    """H(i, A, B_i, P): BLAKE2b-128 with a domain tag, binding the key to the transcript."""
    h = hashlib.blake2b(digest_size=KEY_BYTES, person=_KEY_PERSON)
    h.update(index.to_bytes(8, "little"))
    h.update(setup)
    h.update(reply)
    h.update(shared)
    return h.digest()


def _check_count(count: int, limit: int, what: str) -> None:
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= limit:
        raise InvalidInputError(f"{what} must be an integer in 1..{limit}, got {count!r}")


def aes_ctr_stream(key: bytes, start: int, length: int) -> npt.NDArray[np.uint8]:
    """Return ``length`` bytes of AES-128-CTR keystream under ``key`` from byte ``start`` on.

    The counter block is the 128-bit big-endian block index (block 0 at byte 0), so the
    stream can be entered at any offset. Used as a PRF (Naor-Pinkas' F) and as the PRG of OT
    extension.
    """
    block, skip = divmod(start, 16)
    encryptor = Cipher(algorithms.AES(key), modes.CTR(block.to_bytes(16, "big"))).encryptor()
    raw = encryptor.update(bytes(skip + length))
    return np.frombuffer(raw, dtype=np.uint8, offset=skip)


# ====================================================================== base OT (Chou-Orlandi)


class BaseOTSender:
    """The sender of ``count`` random 1-out-of-2 OTs (Chou-Orlandi "simplest OT", batched).

    Usage: ``setup()`` -> send; peer's reply -> ``finish(reply)`` -> keys. The sender learns
    nothing about the receiver's choices; it ends with two independent random keys per OT and
    does not know which one the receiver holds.

    Args:
        count: number of OTs, 1..:data:`MAX_BASE_OTS`.

    Raises:
        InvalidInputError: count out of range.
    """

    def __init__(self, count: int) -> None:
        _check_count(count, MAX_BASE_OTS, "base OT count")
        self.count = count
        self._stage = _Stage.NEW
        self._secret: bytes | None = None
        self._setup: bytes | None = None

    def __repr__(self) -> str:
        return f"BaseOTSender(count={self.count}, stage={self._stage.value}, secret=<redacted>)"

    def setup(self) -> bytes:
        """Draw the secret scalar a and return the first message (``BASE_SETUP``: A = aG).

        Reveals: A, a uniformly random group element.

        Raises:
            ProtocolError: called twice.
        """
        if self._stage is not _Stage.NEW:
            raise ProtocolError(f"base OT sender: setup() called when {self._stage.value}")
        self._secret = random_scalar()
        self._setup = sodium.crypto_scalarmult_ed25519_base_noclamp(self._secret)
        self._stage = _Stage.WAITING
        return frame(MessageKind.BASE_SETUP, _COUNT.pack(self.count), self._setup)

    def finish(self, reply: bytes) -> ByteRows:
        """Read the receiver's points and return the keys, shape (count, 2, 16).

        ``keys[i, b]`` is k_i^b; the receiver holds ``keys[i, c_i]``.

        Raises:
            ProtocolError: called before :meth:`setup` or twice; a malformed reply (wrong
                kind, count or length, a point that is not a valid prime-order element, or
                B_i = A).
        """
        if self._stage is not _Stage.WAITING or self._secret is None or self._setup is None:
            raise ProtocolError(f"base OT sender: finish() called when {self._stage.value}")
        self._stage = _Stage.FAILED  # until it succeeds
        (count,), body = unframe(reply, MessageKind.BASE_REPLY, _COUNT, "base OT reply")
        if count != self.count:
            raise ProtocolError(f"base OT reply: {count} OTs, expected {self.count}")
        expect_length(body, POINT_BYTES * count, "base OT reply")
        secret, setup = self._secret, self._setup
        keys = np.empty((count, 2, KEY_BYTES), dtype=np.uint8)
        raw = bytes(body)
        for i in range(count):
            point = raw[POINT_BYTES * i : POINT_BYTES * (i + 1)]
            if not is_valid_point(point):
                raise ProtocolError(f"base OT reply: point {i} is not a valid group element")
            other = sodium.crypto_core_ed25519_sub(point, setup)
            if other == _IDENTITY:
                raise ProtocolError(f"base OT reply: point {i} equals the sender's point")
            keys[i, 0] = np.frombuffer(
                _point_key(i, setup, point, _scalarmult(secret, point)), dtype=np.uint8
            )
            keys[i, 1] = np.frombuffer(
                _point_key(i, setup, point, _scalarmult(secret, other)), dtype=np.uint8
            )
        self._secret = None
        self._stage = _Stage.DONE
        return keys


class BaseOTReceiver:
    """The receiver of random 1-out-of-2 OTs with the given choice bits (Chou-Orlandi).

    Usage: sender's setup -> ``reply(setup)`` -> send; then ``output()`` -> its keys. The
    receiver learns k_i^{c_i} and nothing about k_i^{1-c_i} (under CDH, H a random oracle).

    Args:
        choices: the choice bits c_i (1-D, 0/1), 1..:data:`MAX_BASE_OTS` of them.

    Raises:
        InvalidInputError: not a vector of bits, or too many.
    """

    def __init__(self, choices: Sequence[int] | npt.ArrayLike) -> None:
        bits = as_bits(choices)
        _check_count(int(bits.size), MAX_BASE_OTS, "base OT count")
        self.count = int(bits.size)
        self._choices = bits
        self._stage = _Stage.NEW
        self._keys: ByteRows | None = None

    def __repr__(self) -> str:
        return f"BaseOTReceiver(count={self.count}, stage={self._stage.value}, choices=<redacted>)"

    def reply(self, setup: bytes) -> bytes:
        """Read the sender's A and return the reply (``BASE_REPLY``: one point B_i per OT).

        Reveals: the points B_i, each uniform in the group whatever the choice bit.

        Raises:
            ProtocolError: called twice; a malformed setup (wrong kind, count or length, or A
                not a valid prime-order element).
        """
        if self._stage is not _Stage.NEW:
            raise ProtocolError(f"base OT receiver: reply() called when {self._stage.value}")
        self._stage = _Stage.FAILED  # until it succeeds
        (count,), body = unframe(setup, MessageKind.BASE_SETUP, _COUNT, "base OT setup")
        if count != self.count:
            raise ProtocolError(f"base OT setup: {count} OTs, expected {self.count}")
        expect_length(body, POINT_BYTES, "base OT setup")
        point = bytes(body)
        if not is_valid_point(point):
            raise ProtocolError("base OT setup: the sender's point is not a valid group element")
        keys = np.empty((self.count, KEY_BYTES), dtype=np.uint8)
        points = []
        for i, choice in enumerate(self._choices.tolist()):
            b = random_scalar()
            plain = sodium.crypto_scalarmult_ed25519_base_noclamp(b)
            shifted = sodium.crypto_core_ed25519_add(point, plain)  # computed either way
            mine = shifted if choice else plain
            points.append(mine)
            keys[i] = np.frombuffer(
                _point_key(i, point, mine, _scalarmult(b, point)), dtype=np.uint8
            )
        self._keys = keys
        self._stage = _Stage.DONE
        return frame(MessageKind.BASE_REPLY, _COUNT.pack(self.count), *points)

    def output(self) -> ByteRows:
        """Return the chosen keys k_i^{c_i}, shape (count, 16).

        Raises:
            ProtocolError: :meth:`reply` has not succeeded yet.
        """
        if self._stage is not _Stage.DONE or self._keys is None:
            raise ProtocolError(f"base OT receiver: output() called when {self._stage.value}")
        return self._keys


# ====================================================================== 1-out-of-N (Naor-Pinkas)


def _index_bits(size: int) -> int:
    """ell = ceil(log2 N), at least 1."""
    return max(1, (size - 1).bit_length())


def _as_message_block(messages: object) -> ByteRows:
    """Return chosen messages as ``uint8`` (batch, N, L)."""
    if isinstance(messages, np.ndarray):
        if messages.dtype != np.uint8 or messages.ndim != 3:
            raise InvalidInputError("messages must be a uint8 array of shape (batch, N, L)")
        return np.ascontiguousarray(messages)
    if not isinstance(messages, Sequence) or not messages:
        raise InvalidInputError("messages must be a non-empty sequence of lists of bytes")
    rows = []
    for ot in messages:
        if not isinstance(ot, Sequence) or not all(isinstance(m, bytes) for m in ot):
            raise InvalidInputError("each OT's messages must be a sequence of bytes objects")
        rows.append(list(ot))
    lengths = {len(m) for ot in rows for m in ot}
    sizes = {len(ot) for ot in rows}
    if len(lengths) != 1 or len(sizes) != 1:
        raise InvalidInputError("every message must have the same length, every OT the same N")
    (length,) = lengths
    return np.frombuffer(b"".join(m for ot in rows for m in ot), dtype=np.uint8).reshape(
        len(rows), sizes.pop(), length
    )


class OneOfNSender:
    """The sender of a batch of chosen-message 1-out-of-N OTs (Naor-Pinkas over base OT).

    Usage: ``setup()`` -> send; peer's reply -> ``finish(reply)`` -> send (the ciphertexts).
    The sender learns nothing about the receiver's indices.

    Args:
        messages: ``uint8`` array of shape (batch, N, L) - or a sequence of ``batch``
            sequences of N ``bytes`` of one length L - with 2 <= N <= :data:`MAX_CHOICES`.
            Message I of OT b is ``messages[b, I]``.

    Raises:
        InvalidInputError: ragged, empty or oversized messages.
    """

    def __init__(self, messages: ByteRows | Sequence[Sequence[bytes]]) -> None:
        block = _as_message_block(messages)
        batch, size, length = block.shape
        if batch < 1 or not 2 <= size <= MAX_CHOICES or length < 1:
            raise InvalidInputError(
                f"need at least one OT, 2..{MAX_CHOICES} messages each, non-empty messages"
            )
        if block.nbytes > MAX_PAYLOAD_BYTES:
            raise InvalidInputError(f"messages exceed {MAX_PAYLOAD_BYTES} bytes in total")
        self.batch, self.size, self.length = batch, size, length
        self._messages = block
        self._bits = _index_bits(size)
        self._base = BaseOTSender(batch * self._bits)

    def __repr__(self) -> str:
        return (
            f"OneOfNSender(batch={self.batch}, N={self.size}, length={self.length}, "
            "messages=<redacted>)"
        )

    def setup(self) -> bytes:
        """Return the first message (the base OTs' ``BASE_SETUP``).

        Raises:
            ProtocolError: called twice.
        """
        return self._base.setup()

    def finish(self, reply: bytes) -> bytes:
        """Read the receiver's base-OT reply and return the ciphertexts (``CHOSEN_PAYLOAD``).

        Reveals: N ciphertexts per OT, of which the receiver can decrypt exactly one.

        Raises:
            ProtocolError: out of order, or a malformed reply (see :meth:`BaseOTSender.finish`).
        """
        keys = self._base.finish(reply).reshape(self.batch, self._bits, 2, KEY_BYTES)
        size, length = self.size, self.length
        selector = np.arange(size, dtype=np.int64)
        out = self._messages.copy()
        for b in range(self.batch):
            pads = np.zeros((size, length), dtype=np.uint8)
            for j in range(self._bits):
                bit = ((selector >> j) & 1).astype(bool)[:, None]
                zero = aes_ctr_stream(keys[b, j, 0].tobytes(), 0, size * length)
                one = aes_ctr_stream(keys[b, j, 1].tobytes(), 0, size * length)
                pads ^= np.where(bit, one.reshape(size, length), zero.reshape(size, length))
            out[b] ^= pads
        self._messages = np.empty((0, 0, 0), dtype=np.uint8)
        header = _CHOSEN.pack(self.batch, size, length)
        return frame(MessageKind.CHOSEN_PAYLOAD, header, out.tobytes())


class OneOfNReceiver:
    """The receiver of a batch of chosen-message 1-out-of-N OTs.

    Usage: sender's setup -> ``reply(setup)`` -> send; sender's ciphertexts -> ``finish(...)``
    -> the chosen messages. Learns message ``indices[b]`` of OT b and nothing about the others.

    Args:
        indices: the chosen index of each OT, each in 0..size-1.
        size: N, the number of messages per OT (public).
        length: L, the bytes of each message (public).

    Raises:
        InvalidInputError: indices out of range, bad size or length.
    """

    def __init__(self, indices: Sequence[int] | npt.ArrayLike, *, size: int, length: int) -> None:
        if not isinstance(size, int) or not 2 <= size <= MAX_CHOICES:
            raise InvalidInputError(f"N must be in 2..{MAX_CHOICES}, got {size!r}")
        if not isinstance(length, int) or length < 1:
            raise InvalidInputError(f"message length must be positive, got {length!r}")
        idx = np.asarray(indices)
        if idx.ndim != 1 or idx.size == 0 or idx.dtype.kind not in "iu":
            raise InvalidInputError("indices must be a non-empty 1-D vector of integers")
        if ((idx < 0) | (idx >= size)).any():
            raise InvalidInputError(f"indices must lie in 0..{size - 1}")
        if idx.size * size * length > MAX_PAYLOAD_BYTES:
            raise InvalidInputError(f"the ciphertexts would exceed {MAX_PAYLOAD_BYTES} bytes")
        self.size, self.length, self.batch = size, length, int(idx.size)
        self._indices = idx.astype(np.int64)
        self._bits = _index_bits(size)
        choices = (self._indices[:, None] >> np.arange(self._bits, dtype=np.int64)) & 1
        self._base = BaseOTReceiver(choices.reshape(-1))
        self._stage = _Stage.NEW

    def __repr__(self) -> str:
        return (
            f"OneOfNReceiver(batch={self.batch}, N={self.size}, length={self.length}, "
            "indices=<redacted>)"
        )

    def reply(self, setup: bytes) -> bytes:
        """Read the sender's setup and return the base-OT reply (reveals nothing).

        Raises:
            ProtocolError: called twice or a malformed setup.
        """
        message = self._base.reply(setup)
        self._stage = _Stage.WAITING
        return message

    def finish(self, payload: bytes) -> ByteRows:
        """Decrypt the chosen messages, shape (batch, L).

        Raises:
            ProtocolError: called before :meth:`reply` or twice; a malformed payload (wrong
                kind, batch, N, L or length).
        """
        if self._stage is not _Stage.WAITING:
            raise ProtocolError(f"1-out-of-N receiver: finish() called when {self._stage.value}")
        self._stage = _Stage.FAILED
        (batch, size, length), body = unframe(
            payload, MessageKind.CHOSEN_PAYLOAD, _CHOSEN, "1-out-of-N payload"
        )
        if (batch, size, length) != (self.batch, self.size, self.length):
            raise ProtocolError(
                f"1-out-of-N payload for {batch} OTs of {size} x {length} bytes, expected "
                f"{self.batch} OTs of {self.size} x {self.length} bytes"
            )
        expect_length(body, batch * size * length, "1-out-of-N payload")
        cipher = np.frombuffer(body, dtype=np.uint8).reshape(batch, size, length)
        keys = self._base.output().reshape(batch, self._bits, KEY_BYTES)
        out = np.empty((batch, length), dtype=np.uint8)
        for b, index in enumerate(self._indices.tolist()):
            row = cipher[b, index].copy()
            for j in range(self._bits):
                row ^= aes_ctr_stream(keys[b, j].tobytes(), index * length, length)
            out[b] = row
        self._stage = _Stage.DONE
        return out


__all__ = [
    "KEY_BYTES",
    "MAGIC",
    "MAX_BASE_OTS",
    "MAX_CHOICES",
    "MAX_PAYLOAD_BYTES",
    "POINT_BYTES",
    "VERSION",
    "BaseOTReceiver",
    "BaseOTSender",
    "ByteRows",
    "MessageKind",
    "OneOfNReceiver",
    "OneOfNSender",
    "aes_ctr_stream",
    "as_bits",
    "expect_length",
    "frame",
    "is_valid_point",
    "random_scalar",
    "unframe",
]

"""OT extension (IKNP) and Gilboa's OT-based multiplication, vectorised with numpy.

**IKNP** (Ishai, Kilian, Nissim and Petrank, "Extending oblivious transfers efficiently",
CRYPTO 2003, sec. 3, semi-honest version): kappa = 128 base OTs (:mod:`smpcloud.crypto.ot`)
are stretched into any number m of OTs with symmetric cryptography only. The roles of the base
OTs are reversed: the extension *receiver* is the base-OT sender and holds seed pairs
(k_j^0, k_j^1), j < 128; the extension *sender* draws s in {0,1}^128 and learns k_j^{s_j}.

Per batch of m OTs with choice bits r (one message, receiver -> sender, 16 bytes per OT)::

    receiver: t_j = G(k_j^0), u_j = t_j xor G(k_j^1) xor r            (columns of m bits)
              sends u (EXTENSION); its OT i outputs H(i, t_i)           (t_i: row i of t)
    sender:   q_j = G(k_j^{s_j}) xor s_j u_j, so that q_i = t_i xor r_i s  (rows)
              OT i outputs x_i^0 = H(i, q_i) and x_i^1 = H(i, q_i xor s)

so the receiver holds x_i^{r_i}. G is AES-128-CTR keyed by the seed (the batch number in the
counter block: every batch draws fresh stream); H is the **tweakable correlation-robust hash**
from fixed-key AES of Guo, Katz, Wang and Yu ("Efficient and secure multiparty computation
from fixed-key block ciphers", IEEE S&P 2020, sec. 7.4): H(tau, x) = pi(pi(x) xor tau) xor
pi(x), pi = AES-128 under a public key, tau = (batch, i, block). Rows <-> columns is a bit-matrix
transposition (:func:`transpose_bits`), done on 64-bit words with numpy.

Variants: *random OT* (:meth:`ExtensionReceiver.extend` / :meth:`ExtensionSender.extend`:
outputs of any width), *chosen-message OT* (``request_chosen`` / ``send_chosen`` /
``receive_chosen``: the sender sends m_i^b xor x_i^b, Beaver's derandomisation) and, on top,
**Gilboa multiplication** (:class:`ProductReceiver` / :class:`ProductSender`; Gilboa,
"Two party RSA key generation", CRYPTO 1999, sec. 3.1): for x held by the OT receiver and y by
the sender, one *correlated* OT per bit x_l of x (mod p) with sender pair (s_l, s_l + 2^l y)
gives additive shares sum_l (s_l + x_l 2^l y) and -sum_l s_l of x y mod p. With a field of
several primes (:class:`~smpcloud.crypto.field.Field`) it runs per prime: bit_length(p) OTs per
prime per product, 64 OTs for a 64-bit element (two 32-bit primes). The sender's mask s_l is
x_l^0 reduced modulo p from 128 bits (bias below 2^-96), and it sends the correction
tau_l = s_l + 2^l y - (x_l^1 mod p) (CORRECTIONS, 4 bytes per OT).

Security model: **semi-honest** parties, computational security kappa = 128 (the base OTs,
AES as PRG and as an ideal permutation for H). What each message reveals:

* ``EXTENSION`` (u): each column is t_j xor G(k_j^1) xor r with k_j^1 pseudorandom to the
  sender for s_j = 0 (and k_j^0 for s_j = 1): pseudorandom, hides r.
* ``EXTENSION_PAYLOAD``: m_i^{1-r_i} is masked by H(i, t_i xor s), pseudorandom to a receiver
  that does not know s: only the chosen messages are readable.
* ``CORRECTIONS`` (tau): tau_l is masked by x_l^1 mod p, pseudorandom when x_l = 0, and equals
  s_l + 2^l y - x_l^1 with s_l unknown when x_l = 1: uniform either way; the receiver's output
  is s_l + x_l 2^l y, uniform. Together: the sender learns nothing about x, the receiver
  nothing about y, and each holds a uniformly random share of x y.

Batch numbers (< 2^48) must be unique per extension instance: reusing one would reuse the PRG
stream with different choice bits and reveal r xor r' to the sender, so a second use raises
:class:`~smpcloud.errors.ProtocolError`. Every message is decoded strictly (kind, batch, count,
width, exact length, residues below their primes); a malformed or out-of-order message raises
:class:`~smpcloud.errors.ProtocolError`. Randomness: ``os.urandom`` only.

Why this is one file past 600 lines: it reads like the protocol's description top to bottom,
kernels, IKNP, then Gilboa on top, and the security argument above covers its three messages
together. Gilboa's layer shares the extension's batch-number discipline, stage machine and
message framing, which stay private to this module instead of becoming public API.
"""

from __future__ import annotations

import enum
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from smpcloud.crypto.field import Field, Residues
from smpcloud.crypto.ot import (
    KEY_BYTES,
    BaseOTReceiver,
    BaseOTSender,
    ByteRows,
    MessageKind,
    as_bits,
    expect_length,
    frame,
    unframe,
)
from smpcloud.errors import InvalidInputError, ProtocolError

#: Number of base OTs and width of the IKNP matrix (computational security, bits).
KAPPA: Final = 128
#: Most OTs in one extension batch (the EXTENSION message is 16 bytes per OT: 128 MiB).
MAX_EXTENSION_OTS: Final = 1 << 23
#: Batch numbers lie in 0..MAX_BATCH_ID.
MAX_BATCH_ID: Final = (1 << 48) - 1
#: Widest random-OT output or chosen message, in bytes.
MAX_WIDTH: Final = 16 * 256

#: pi's key: public by design (H is secure with pi modelled as a random permutation). Nothing
#: up the sleeve: BLAKE2b-128 of b"smpcloud: fixed AES key of the OT-extension hash".
FIXED_KEY: Final = bytes.fromhex("b0f5ed131ea964360519343a5cd551d6")

_ROW_BYTES: Final = KAPPA // 8
_EXTENSION: Final = struct.Struct("<QI")  # batch, m
_PAYLOAD: Final = struct.Struct("<QII")  # batch, m, width
_CORRECTIONS: Final = struct.Struct("<QIB")  # batch, count, k
_TWEAK_DOMAIN: Final = 0x5A << 56  # top byte of the tweak's high word: IKNP hash


class _Stage(enum.Enum):
    NEW = "new"
    WAITING = "waiting for the peer"
    READY = "ready"
    DONE = "done"
    FAILED = "failed"


# ====================================================================== vectorised kernels


def transpose_bits(columns: ByteRows) -> ByteRows:
    """Transpose a 128 x m bit matrix: return its m rows of 128 bits, shape (m, 16).

    Bits are little-endian within bytes (``np.packbits(..., bitorder="little")``): bit i of
    column j is bit i % 8 of ``columns[j, i // 8]``, and it lands in bit j % 8 of
    ``rows[i, j // 8]``. m = 8 * columns.shape[1] must be a multiple of 64.

    Method: three rounds of masked shifts swap 4-, 2- and 1-bit blocks between rows j and
    j + 4, j + 2, j + 1 of each group of eight (an 8 x 8 transpose of every byte block, 64
    bytes per numpy operation), then one byte-level transpose. About 40 ms for m = 2^20,
    ten times faster than ``unpackbits`` / ``packbits``.

    Raises:
        InvalidInputError: wrong dtype or shape.
    """
    if columns.dtype != np.uint8 or columns.ndim != 2 or columns.shape[0] != KAPPA:
        raise InvalidInputError(f"expected a uint8 array of shape ({KAPPA}, m/8)")
    width = columns.shape[1]
    if width % 8:
        raise InvalidInputError("the number of rows must be a multiple of 64")
    work = np.array(columns, dtype=np.uint8, order="C", copy=True)
    words = work.view(np.uint64).reshape(KAPPA // 8, 2, 2, 2, width // 8)
    for shift, mask in ((4, 0x0F0F0F0F0F0F0F0F), (2, 0x3333333333333333), (1, 0x5555555555555555)):
        if shift == 4:
            low, high = words[:, 0], words[:, 1]
        elif shift == 2:
            low, high = words[:, :, 0], words[:, :, 1]
        else:
            low, high = words[:, :, :, 0], words[:, :, :, 1]
        swap = low >> np.uint64(shift)
        swap ^= high
        swap &= np.uint64(mask)
        high ^= swap
        swap <<= np.uint64(shift)
        low ^= swap
    blocks = work.reshape(_ROW_BYTES, 8, width)  # [byte h of a row, bit b of a byte, i // 8]
    return np.ascontiguousarray(blocks.transpose(2, 1, 0)).reshape(8 * width, _ROW_BYTES)


def expand_seeds(seeds: ByteRows, batch: int, nbytes: int) -> ByteRows:
    """Return G(seed_j) for each seed: ``nbytes`` of AES-128-CTR stream, shape (len, nbytes).

    The counter block starts at batch * 2^64, so every batch number gives fresh stream.
    """
    count = seeds.shape[0]
    flat = np.empty(count * nbytes + 16, dtype=np.uint8)  # update_into wants 15 spare bytes
    zeros = bytes(nbytes)
    nonce = (batch << 64).to_bytes(16, "big")
    view = flat.data
    for j in range(count):
        encryptor = Cipher(algorithms.AES(seeds[j].tobytes()), modes.CTR(nonce)).encryptor()
        encryptor.update_into(zeros, view[j * nbytes :])
    return flat[: count * nbytes].reshape(count, nbytes)


def hash_rows(rows: ByteRows, *, batch: int, width: int = KEY_BYTES) -> ByteRows:
    """Return H(tau_i, row_i) for 16-byte rows, ``width`` bytes each (shape (m, width)).

    H(tau, x) = pi(pi(x) xor tau) xor pi(x) with pi = AES-128 under :data:`FIXED_KEY` (the
    tweakable correlation-robust hash of Guo et al., S&P 2020, sec. 7.4); tau holds the row
    index i, the batch number and the 16-byte block number (outputs wider than 16 bytes are
    several blocks). All rows go through AES-ECB in one call per block.

    Raises:
        InvalidInputError: wrong shape, a batch outside 0..MAX_BATCH_ID or width outside
            1..MAX_WIDTH.
    """
    if rows.dtype != np.uint8 or rows.ndim != 2 or rows.shape[1] != _ROW_BYTES:
        raise InvalidInputError("rows must be a uint8 array of shape (m, 16)")
    _check_batch(batch)
    if not 1 <= width <= MAX_WIDTH:
        raise InvalidInputError(f"width must be in 1..{MAX_WIDTH}, got {width}")
    m = rows.shape[0]
    blocks = -(-width // 16)
    # ECB is right here: pi is AES applied to independent blocks, not an encryption mode.
    ecb = Cipher(algorithms.AES(FIXED_KEY), modes.ECB()).encryptor()  # noqa: S305
    first = np.frombuffer(ecb.update(np.ascontiguousarray(rows).data), dtype=np.uint64)
    first = first.reshape(m, 2)
    index = np.arange(m, dtype=np.uint64)
    out = np.empty((m, blocks, 2), dtype=np.uint64)
    tweaked = np.empty((m, 2), dtype=np.uint64)
    for block in range(blocks):
        np.bitwise_xor(first[:, 0], index, out=tweaked[:, 0])
        np.bitwise_xor(first[:, 1], np.uint64(_TWEAK_DOMAIN | (batch << 8) | block), tweaked[:, 1])
        second = np.frombuffer(ecb.update(tweaked.view(np.uint8).data), dtype=np.uint64).reshape(
            m, 2
        )
        np.bitwise_xor(second, first, out=out[:, block])
    flat = out.view(np.uint8).reshape(m, 16 * blocks)
    return flat if width == 16 * blocks else np.ascontiguousarray(flat[:, :width])


def _check_batch(batch: int) -> None:
    if not isinstance(batch, int) or isinstance(batch, bool) or not 0 <= batch <= MAX_BATCH_ID:
        raise InvalidInputError(f"batch number must be an integer in 0..{MAX_BATCH_ID}")


def _check_width(width: int) -> None:
    if not isinstance(width, int) or isinstance(width, bool) or not 1 <= width <= MAX_WIDTH:
        raise InvalidInputError(f"OT width must be in 1..{MAX_WIDTH} bytes, got {width!r}")


def _padded_bytes(m: int) -> int:
    """Bytes per column for m OTs: m rounded up to a multiple of 64 bits."""
    return -(-m // 64) * 8


def _claim(used: set[int], batch: int, who: str) -> None:
    _check_batch(batch)
    if batch in used:
        raise ProtocolError(f"{who}: batch {batch} was already used (a PRG stream is used once)")
    used.add(batch)


# ====================================================================== IKNP


class ExtensionReceiver:
    """The receiver of IKNP OT extension (the base-OT *sender* during setup).

    Setup (once): ``setup()`` -> send; sender's reply -> ``finish_setup(reply)``. Then any
    number of batches, each with a fresh batch number agreed with the sender:
    ``extend(choices, batch=...)`` -> (message to send, this side's random-OT outputs), or the
    chosen-message pair ``request_chosen`` / ``receive_chosen``.

    Raises (every method):
        ProtocolError: called out of order, a reused batch number, or a malformed message.
    """

    def __init__(self) -> None:
        self._base = BaseOTSender(KAPPA)
        self._stage = _Stage.NEW
        self._seeds: ByteRows | None = None  # (128, 2, 16): k_j^0, k_j^1
        self._used: set[int] = set()
        self._pending: dict[int, tuple[npt.NDArray[np.uint8], ByteRows]] = {}

    def __repr__(self) -> str:
        return f"ExtensionReceiver(stage={self._stage.value}, seeds=<redacted>)"

    @property
    def ready(self) -> bool:
        """Whether setup has finished and batches can be extended."""
        return self._stage is _Stage.READY

    def setup(self) -> bytes:
        """Return the base OTs' first message (``BASE_SETUP``; reveals nothing).

        Raises:
            ProtocolError: called twice.
        """
        message = self._base.setup()
        self._stage = _Stage.WAITING
        return message

    def finish_setup(self, reply: bytes) -> None:
        """Read the sender's base-OT reply; afterwards batches can be extended.

        Raises:
            ProtocolError: before :meth:`setup`, twice, or a malformed reply.
        """
        if self._stage is not _Stage.WAITING:
            raise ProtocolError(f"OT extension receiver: finish_setup() when {self._stage.value}")
        self._stage = _Stage.FAILED
        self._seeds = self._base.finish(reply)
        self._stage = _Stage.READY

    def _require_ready(self, what: str) -> ByteRows:
        if self._stage is not _Stage.READY or self._seeds is None:
            raise ProtocolError(f"OT extension receiver: {what}() when {self._stage.value}")
        return self._seeds

    def extend(
        self, choices: Sequence[int] | npt.ArrayLike, *, batch: int, width: int = KEY_BYTES
    ) -> tuple[bytes, ByteRows]:
        """Run this side of a batch of random OTs with choice bits r.

        Args:
            choices: m choice bits (1..:data:`MAX_EXTENSION_OTS`).
            batch: this batch's number, unique for this instance and the same at the sender.
            width: bytes of each OT output.

        Returns:
            The ``EXTENSION`` message for the sender (reveals nothing about r), and the outputs
            x_i^{r_i}, shape (m, width).

        Raises:
            ProtocolError: before setup, or a reused batch number.
            InvalidInputError: bad choices, batch number or width.
        """
        seeds = self._require_ready("extend")
        bits = as_bits(choices)
        m = int(bits.size)
        if not 1 <= m <= MAX_EXTENSION_OTS:
            raise InvalidInputError(f"an extension batch has 1..{MAX_EXTENSION_OTS} OTs, got {m}")
        _check_width(width)
        _claim(self._used, batch, "OT extension receiver")
        nbytes = _padded_bytes(m)
        packed = np.zeros(nbytes, dtype=np.uint8)
        packed[: -(-m // 8)] = np.packbits(bits, bitorder="little")
        t = expand_seeds(seeds[:, 0], batch, nbytes)
        u = expand_seeds(seeds[:, 1], batch, nbytes)
        u ^= t
        u ^= packed
        outputs = hash_rows(transpose_bits(t)[:m], batch=batch, width=width)
        message = frame(MessageKind.EXTENSION, _EXTENSION.pack(batch, m), u.data)
        return message, outputs

    def request_chosen(
        self, choices: Sequence[int] | npt.ArrayLike, *, batch: int, length: int
    ) -> bytes:
        """Start a batch of chosen-message OTs of ``length`` bytes; return the request.

        Raises:
            ProtocolError, InvalidInputError: as :meth:`extend`.
        """
        message, pads = self.extend(choices, batch=batch, width=length)
        self._pending[batch] = (as_bits(choices), pads)
        return message

    def receive_chosen(self, payload: bytes) -> ByteRows:
        """Decrypt the chosen messages of a batch started with :meth:`request_chosen`.

        Returns:
            m_i^{r_i} for every OT i, shape (m, length).

        Raises:
            ProtocolError: no pending request for the payload's batch, or a malformed payload.
        """
        self._require_ready("receive_chosen")
        (batch, m, width), body = unframe(
            payload, MessageKind.EXTENSION_PAYLOAD, _PAYLOAD, "OT extension payload"
        )
        pending = self._pending.pop(batch, None)
        if pending is None:
            raise ProtocolError(f"OT extension payload for batch {batch}, which was not requested")
        bits, pads = pending
        if (m, width) != pads.shape:
            raise ProtocolError(
                f"OT extension payload of {m} x {width} bytes, expected {pads.shape[0]} x "
                f"{pads.shape[1]}"
            )
        expect_length(body, 2 * m * width, "OT extension payload")
        both = np.frombuffer(body, dtype=np.uint8).reshape(2, m, width)
        chosen: ByteRows = np.where(bits.astype(bool)[:, None], both[1], both[0])
        chosen ^= pads
        return chosen


class ExtensionSender:
    """The sender of IKNP OT extension (the base-OT *receiver* during setup).

    Setup (once): receiver's first message -> ``setup(message)`` -> send. Then, per batch:
    ``extend(message, batch=..., count=...)`` -> both random-OT outputs, or
    ``send_chosen(message, m0, m1, batch=...)`` -> the chosen-message payload.

    Raises (every method):
        ProtocolError: called out of order, a reused batch number, or a malformed message.
    """

    def __init__(self) -> None:
        secret = np.frombuffer(os.urandom(_ROW_BYTES), dtype=np.uint8)
        self._bits = np.unpackbits(secret, bitorder="little")  # s_j, j < 128
        self._row = secret.copy().view(np.uint64)  # s as a row of the matrix (two words)
        self._ones = np.flatnonzero(self._bits)
        self._base = BaseOTReceiver(self._bits)
        self._stage = _Stage.NEW
        self._seeds: ByteRows | None = None  # (128, 16): k_j^{s_j}
        self._used: set[int] = set()

    def __repr__(self) -> str:
        return f"ExtensionSender(stage={self._stage.value}, secret=<redacted>)"

    @property
    def ready(self) -> bool:
        """Whether setup has finished and batches can be extended."""
        return self._stage is _Stage.READY

    def setup(self, message: bytes) -> bytes:
        """Read the receiver's base-OT setup and return the reply (``BASE_REPLY``).

        Reveals nothing about s (the base OTs hide the receiver's choices perfectly).

        Raises:
            ProtocolError: called twice or a malformed message.
        """
        if self._stage is not _Stage.NEW:
            raise ProtocolError(f"OT extension sender: setup() when {self._stage.value}")
        self._stage = _Stage.FAILED
        reply = self._base.reply(message)
        self._seeds = self._base.output()
        self._stage = _Stage.READY
        return reply

    def extend(
        self, message: bytes, *, batch: int, count: int, width: int = KEY_BYTES
    ) -> tuple[ByteRows, ByteRows]:
        """Answer a batch of random OTs: return (x^0, x^1), each of shape (count, width).

        Args:
            message: the receiver's ``EXTENSION`` message for this batch.
            batch: the batch number expected (unique for this instance).
            count: the number of OTs expected.
            width: bytes of each output.

        Raises:
            ProtocolError: before setup, a reused batch number, or a malformed message (wrong
                kind, batch, count or length).
            InvalidInputError: bad batch number or width.
        """
        if self._stage is not _Stage.READY or self._seeds is None:
            raise ProtocolError(f"OT extension sender: extend() when {self._stage.value}")
        _check_width(width)
        _claim(self._used, batch, "OT extension sender")
        (got, m), body = unframe(message, MessageKind.EXTENSION, _EXTENSION, "OT extension")
        if got != batch:
            raise ProtocolError(f"OT extension message for batch {got}, expected batch {batch}")
        if m != count or not 1 <= m <= MAX_EXTENSION_OTS:
            raise ProtocolError(f"OT extension message for {m} OTs, expected {count}")
        nbytes = _padded_bytes(m)
        expect_length(body, KAPPA * nbytes, "OT extension message")
        u = np.frombuffer(body, dtype=np.uint8).reshape(KAPPA, nbytes)
        q = expand_seeds(self._seeds, batch, nbytes)
        for j in self._ones.tolist():
            q[j] ^= u[j]
        rows = transpose_bits(q)[:m]
        zero = hash_rows(rows, batch=batch, width=width)
        flipped = rows.view(np.uint64) ^ self._row
        one = hash_rows(flipped.view(np.uint8), batch=batch, width=width)
        return zero, one

    def send_chosen(self, message: bytes, zero: ByteRows, one: ByteRows, *, batch: int) -> bytes:
        """Answer a chosen-message batch: return the payload (``EXTENSION_PAYLOAD``).

        Args:
            message: the receiver's request (from :meth:`ExtensionReceiver.request_chosen`).
            zero, one: the messages m_i^0 and m_i^1, ``uint8`` arrays of shape (m, length).
            batch: the batch number expected.

        Reveals: m_i^{r_i} to the receiver; m_i^{1-r_i} stays hidden under H(i, t_i xor s).

        Raises:
            ProtocolError: as :meth:`extend`.
            InvalidInputError: messages of different or bad shapes.
        """
        if (
            not isinstance(zero, np.ndarray)
            or not isinstance(one, np.ndarray)
            or zero.dtype != np.uint8
            or zero.ndim != 2
            or zero.shape != one.shape
            or one.dtype != np.uint8
        ):
            raise InvalidInputError("chosen messages must be two uint8 arrays of one shape (m, L)")
        m, length = zero.shape
        pad0, pad1 = self.extend(message, batch=batch, count=m, width=length)
        pad0 ^= zero
        pad1 ^= one
        header = _PAYLOAD.pack(batch, m, length)
        return frame(MessageKind.EXTENSION_PAYLOAD, header, pad0.tobytes(), pad1.tobytes())


# ====================================================================== Gilboa multiplication


@dataclass(frozen=True, slots=True)
class _BitLayout:
    """OT rows of a product: one row per (prime, bit), ``bits`` rows in all.

    OT number ``row * count + e`` multiplies by bit ``shift[row]`` of element e's residue
    modulo ``prime[row]``.
    """

    rows: int
    prime_index: npt.NDArray[np.intp]  # (rows,)
    shift: npt.NDArray[np.uint64]  # (rows, 1)
    prime: npt.NDArray[np.uint64]  # (rows, 1)
    power: npt.NDArray[np.uint64]  # (rows, 1): 2^shift mod p
    wrap: npt.NDArray[np.uint64]  # (rows, 1): 2^64 mod p
    starts: npt.NDArray[np.intp]  # (k,): first row of each prime


@lru_cache(maxsize=32)
def _layout(field: Field) -> _BitLayout:
    index: list[int] = []
    shift: list[int] = []
    starts: list[int] = []
    for i, p in enumerate(field.moduli):
        starts.append(len(index))
        for bit in range(p.bit_length()):
            index.append(i)
            shift.append(bit)
    primes = [field.moduli[i] for i in index]

    def column(values: list[int]) -> npt.NDArray[np.uint64]:
        return np.array(values, dtype=np.uint64).reshape(-1, 1)

    return _BitLayout(
        rows=len(index),
        prime_index=np.array(index, dtype=np.intp),
        shift=column(shift),
        prime=column(primes),
        power=column([pow(2, s, p) for s, p in zip(shift, primes, strict=True)]),
        wrap=column([(1 << 64) % p for p in primes]),
        starts=np.array(starts, dtype=np.intp),
    )


def product_ots(field: Field, count: int) -> int:
    """Return the OTs one Gilboa product of ``count`` elements takes: count * sum bit_length(p)."""
    return count * _layout(field).rows


def max_product_count(field: Field) -> int:
    """Return the most elements one Gilboa batch may multiply (its OTs fit one extension)."""
    return MAX_EXTENSION_OTS // _layout(field).rows


def _reduce_outputs(outputs: ByteRows, layout: _BitLayout, count: int) -> Residues:
    """Map 128-bit OT outputs to residues, shape (rows, count): (hi 2^64 + lo) mod p."""
    words = outputs.view(np.uint64).reshape(layout.rows, count, 2)
    prime = layout.prime
    value = words[:, :, 1] % prime
    value *= layout.wrap  # both below 2^32: no overflow
    value %= prime
    value += words[:, :, 0] % prime
    value %= prime
    return value


def _sum_per_prime(values: Residues, field: Field, layout: _BitLayout) -> Residues:
    """Sum the rows of each prime (at most 32 residues < 2^32 each: no overflow)."""
    total: Residues = np.add.reduceat(values, layout.starts, axis=0)
    total %= field.column
    return total


def _check_factor(field: Field, values: Residues, what: str) -> None:
    field.validate(values)
    if values.shape[1] < 1 or values.shape[1] > max_product_count(field):
        raise InvalidInputError(
            f"{what}: a Gilboa batch multiplies 1..{max_product_count(field)} elements"
        )


class ProductReceiver:
    """The OT receiver's side of one batch of Gilboa products x * y (it holds x).

    Usage: ``request()`` -> send; sender's corrections -> ``finish(corrections)`` -> this
    side's additive share of x * y. The two shares add up to x * y in the field.

    Args:
        ot: a ready :class:`ExtensionReceiver` (shared by many batches).
        field: the field of x and y.
        x: this side's factors, residues of shape (k, count).
        batch: the batch number (unique per extension instance, agreed with the sender).

    Raises:
        InvalidInputError: x not in the field or too many elements.
    """

    def __init__(self, ot: ExtensionReceiver, field: Field, x: Residues, *, batch: int) -> None:
        _check_factor(field, x, "Gilboa receiver")
        _check_batch(batch)
        self.field = field
        self.batch = batch
        self.count = int(x.shape[1])
        self._ot = ot
        self._layout = _layout(field)
        self._x = x
        self._stage = _Stage.NEW
        self._bits: npt.NDArray[np.uint64] | None = None
        self._masks: Residues | None = None

    def __repr__(self) -> str:
        return f"ProductReceiver(batch={self.batch}, count={self.count}, x=<redacted>)"

    def request(self) -> bytes:
        """Return the ``EXTENSION`` message: one OT per bit of every residue of x.

        Reveals nothing about x (see :meth:`ExtensionReceiver.extend`).

        Raises:
            ProtocolError: called twice, the extension is not ready, or a reused batch.
        """
        if self._stage is not _Stage.NEW:
            raise ProtocolError(f"Gilboa receiver: request() when {self._stage.value}")
        self._stage = _Stage.FAILED
        layout = self._layout
        bits = (self._x[layout.prime_index] >> layout.shift) & np.uint64(1)
        message, outputs = self._ot.extend(bits.reshape(-1), batch=self.batch)
        self._bits = bits
        self._masks = _reduce_outputs(outputs, layout, self.count)
        self._stage = _Stage.WAITING
        return message

    def finish(self, corrections: bytes) -> Residues:
        """Read the sender's corrections and return this side's share of x * y, (k, count).

        Raises:
            ProtocolError: before :meth:`request` or twice; a malformed message (wrong kind,
                batch, count, field or length, or a correction outside its prime).
        """
        if self._stage is not _Stage.WAITING or self._bits is None or self._masks is None:
            raise ProtocolError(f"Gilboa receiver: finish() when {self._stage.value}")
        self._stage = _Stage.FAILED
        field, layout, count = self.field, self._layout, self.count
        (batch, got, k), body = unframe(
            corrections, MessageKind.CORRECTIONS, _CORRECTIONS, "Gilboa corrections"
        )
        if batch != self.batch or got != count or k != field.k:
            raise ProtocolError(
                f"Gilboa corrections for batch {batch}, {got} elements, {k} primes; expected "
                f"batch {self.batch}, {count} elements, {field.k} primes"
            )
        expect_length(body, 4 * k + 4 * layout.rows * count, "Gilboa corrections")
        moduli = struct.unpack_from(f"<{k}I", body)
        if tuple(moduli) != field.moduli:
            raise ProtocolError("Gilboa corrections from another field (moduli differ)")
        tau = np.frombuffer(body, dtype="<u4", offset=4 * k).reshape(layout.rows, count)
        tau = tau.astype(np.uint64)
        if (tau >= layout.prime).any():
            raise ProtocolError("Gilboa corrections hold a value outside its prime")
        tau *= self._bits  # x_l * tau_l
        tau += self._masks
        tau %= layout.prime
        self._bits = self._masks = None
        self._stage = _Stage.DONE
        return _sum_per_prime(tau, field, layout)


class ProductSender:
    """The OT sender's side of one batch of Gilboa products x * y (it holds y).

    Usage: receiver's request -> ``respond(request)`` -> (corrections to send, this side's
    additive share of x * y).

    Args:
        ot: a ready :class:`ExtensionSender`.
        field: the field of x and y.
        y: this side's factors, residues of shape (k, count).
        batch: the batch number (agreed with the receiver).

    Raises:
        InvalidInputError: y not in the field or too many elements.
    """

    def __init__(self, ot: ExtensionSender, field: Field, y: Residues, *, batch: int) -> None:
        _check_factor(field, y, "Gilboa sender")
        _check_batch(batch)
        self.field = field
        self.batch = batch
        self.count = int(y.shape[1])
        self._ot = ot
        self._layout = _layout(field)
        self._y = y
        self._stage = _Stage.NEW

    def __repr__(self) -> str:
        return f"ProductSender(batch={self.batch}, count={self.count}, y=<redacted>)"

    def respond(self, request: bytes) -> tuple[bytes, Residues]:
        """Answer the receiver's request.

        Returns:
            The ``CORRECTIONS`` message (uniformly random to the receiver) and this side's
            share of x * y, shape (k, count).

        Raises:
            ProtocolError: called twice, the extension is not ready, a reused batch, or a
                malformed request.
        """
        if self._stage is not _Stage.NEW:
            raise ProtocolError(f"Gilboa sender: respond() when {self._stage.value}")
        self._stage = _Stage.FAILED
        field, layout, count = self.field, self._layout, self.count
        zero, one = self._ot.extend(request, batch=self.batch, count=layout.rows * count)
        masks = _reduce_outputs(zero, layout, count)
        tau = self._y[layout.prime_index] * layout.power  # below 2^64
        tau %= layout.prime
        tau += masks
        tau += layout.prime
        tau -= _reduce_outputs(one, layout, count)
        tau %= layout.prime
        share = field.neg(_sum_per_prime(masks, field, layout))
        header = _CORRECTIONS.pack(self.batch, count, field.k)
        moduli = struct.pack(f"<{field.k}I", *field.moduli)
        message = frame(MessageKind.CORRECTIONS, header, moduli, tau.astype("<u4").tobytes())
        self._stage = _Stage.DONE
        return message, share


__all__ = [
    "FIXED_KEY",
    "KAPPA",
    "MAX_BATCH_ID",
    "MAX_EXTENSION_OTS",
    "MAX_WIDTH",
    "ExtensionReceiver",
    "ExtensionSender",
    "ProductReceiver",
    "ProductSender",
    "expand_seeds",
    "hash_rows",
    "max_product_count",
    "product_ots",
    "transpose_bits",
]

"""Paillier plaintext packing: many signed fixed-point values (slots) in one ciphertext.

A 2048-bit Paillier plaintext can hold far more than one 64-bit value. Packing puts ``slots``
values side by side in one plaintext, each in a field of ``slot_bits`` bits, so a vector of k
values costs ceil(k / slots) encryptions, uploads and decryptions instead of k. Adding packed
ciphertexts adds every slot at once (E(a) E(b) = E(a + b) acts on the whole packed integer).

**Layout** (:class:`Packing`, defined in ``crypto/packing_layout`` and re-exported here). The
declared range [min_value, max_value] of each value is first mapped to fixed-point integers with
``frac_bits`` fractional bits (see ``crypto/encoding``):
lo = round(min_value 2^f), hi = round(max_value 2^f), span = hi - lo. Each value x becomes its
*offset* encoding u = round(x 2^f) - lo in [0, span], which is non-negative: this is how signed
values are handled, no sign bit and no two's complement. A sum of ``count`` packed vectors holds
U = sum of u in [0, count span] in every slot, and the caller recovers the sum of the encoded
values as U + count lo, which is why decoding needs ``count`` (the number of vectors added)::

    value_bits    = bit length of span                      (at least 1)
    slot_bits     = bit length of max_additions * span      (at least value_bits)
    headroom_bits = slot_bits - value_bits                  (<= ceil(log2(max_additions)))
    slots         = floor((key_bits - 2) / slot_bits)       (values per plaintext)
    plaintext     = sum over i of u_i 2^(i slot_bits),  i = 0 .. slots - 1

The packed plaintext is below 2^(slots slot_bits) <= 2^(key_bits - 2) < n/2, even after
max_additions additions: a sum never wraps modulo n and never carries from one slot into the next.
The last plaintext of a vector is padded with zero slots.

Example: values in [-1, 1] with 16 fractional bits, 100 reports, 2048-bit key: span = 2^17,
slot_bits = 24, 85 slots per plaintext; a vector of 10^5 values needs 1177 ciphertexts.

**Overflow is detected, not wrapped.** Before anything is encrypted, every value must be finite
and inside [min_value, max_value], else :class:`~smpcloud.errors.OverflowDetectedError` (the
message gives how many and the first index, never a value). After decryption every plaintext
must lie in [0, 2^(slots slot_bits)), every slot in [0, count span] and every padding slot be
0, else :class:`~smpcloud.errors.OverflowDetectedError`. This catches honest mistakes (too many
reports added, a wrong count, a wrong layout) and some forged reports, but it is no range
proof: a client that bypasses :func:`encrypt_vector` can move a sum anywhere inside its
possible range, or shift slots while keeping every slot in bounds (+x in one slot, -x in
another; a carry into the next slot that wraps back). What stops forged reports is a validity
proof per report (:mod:`smpcloud.crypto.validity`: each slot value proven in [0, span] and the
ciphertext proven to carry exactly those slots), which a task with validity ``range`` requires.

What is revealed: a packed ciphertext reveals nothing about its slots (it is an ordinary
Paillier ciphertext). A decrypted aggregate reveals the per-slot sums (so also the per-slot
averages, given the count) and nothing about individual vectors beyond what those sums imply.
The layout itself (:class:`Packing`) is public.

Pure module: no sockets, no files, no global mutable state; randomness only through
:meth:`PublicKey.encrypt` (OS CSPRNG).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Final

import numpy as np
import numpy.typing as npt

from smpcloud.crypto import threshold
from smpcloud.crypto.encoding import FixedPoint
from smpcloud.crypto.packing_layout import (
    FIXED_POINT_BITS,
    MAX_ADDITIONS,
    MAX_LENGTH,
    PACKING_KIND,
    RESERVED_BITS,
    Packing,
)
from smpcloud.crypto.paillier import Ciphertext, PrivateKey, PublicKey
from smpcloud.crypto.wire import as_int
from smpcloud.errors import InvalidInputError, OverflowDetectedError

_INT64_MIN: Final = -(1 << 63)
_INT64_MAX: Final = (1 << 63) - 1
_UINT64: Final = 1 << 64

SlotValues = npt.NDArray[np.uint64]


# ---------------------------------------------------------------------------- encoding


def _range_error(bad: npt.NDArray[np.bool_], packing: Packing) -> OverflowDetectedError:
    first = int(np.flatnonzero(bad)[0])
    return OverflowDetectedError(
        # Bounds are public; the values themselves stay out of the message.
        f"{int(bad.sum())} value(s) outside the declared range "
        f"[{packing.min_value}, {packing.max_value}] or not finite (first at index {first})"
    )


def _wide_integers(items: list[object], packing: Packing) -> npt.NDArray[np.int64]:
    """Range-check Python ints too wide for numpy (exactly) and return them as int64."""
    if not all(type(v) is int for v in items):
        raise InvalidInputError("expected a 1-D vector of ints or floats")
    lo, hi = math.ceil(packing.min_value), math.floor(packing.max_value)
    bad = np.array([not lo <= v <= hi for v in items], dtype=np.bool_)  # type: ignore[operator]
    if bad.any():
        raise _range_error(bad, packing)
    return np.array(items, dtype=np.int64)  # in range, so within int64


def to_slots(values: Sequence[float] | npt.ArrayLike, packing: Packing) -> SlotValues:
    """Validate and offset-encode a vector: u_i = round(x_i 2^f) - lo, in [0, span].

    Every value is checked before anything else happens, so an out-of-range vector is refused
    as a whole. Integers are encoded exactly; floats are rounded to the nearest multiple of
    2^-f (half to even), an error of at most 2^-(f+1) per value.

    Args:
        values: a 1-D vector of ``packing.length`` ints or floats (list, tuple or numpy array).
        packing: the layout.

    Returns:
        The slot values as a numpy uint64 array of ``packing.length`` entries.

    Raises:
        InvalidInputError: not a 1-D numeric vector, or the wrong length.
        OverflowDetectedError: a value that is NaN, infinite or outside
            [min_value, max_value] (the message gives how many and the first index).
    """
    arr = np.asarray(values)
    if arr.ndim == 1 and arr.dtype == object:
        arr = _wide_integers(arr.tolist(), packing)
    if arr.ndim != 1 or arr.dtype.kind not in "iuf":
        raise InvalidInputError("expected a 1-D vector of ints or floats")
    if arr.shape[0] != packing.length:
        raise InvalidInputError(
            f"vector has {arr.shape[0]} values; the packing declares {packing.length}"
        )
    if arr.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(arr) | (arr < packing.min_value) | (arr > packing.max_value)
    else:
        if arr.dtype == np.uint64:
            too_big = arr > np.uint64(_INT64_MAX)
            if too_big.any():
                raise _range_error(too_big, packing)
        arr = arr.astype(np.int64)
        # Exact integer bounds: v >= min iff v >= ceil(min); clamped to int64 for numpy.
        lo_int = max(math.ceil(packing.min_value), _INT64_MIN)
        hi_int = min(math.floor(packing.max_value), _INT64_MAX)
        bad = (arr < lo_int) | (arr > hi_int)
    if bad.any():
        raise _range_error(bad, packing)
    encoded = FixedPoint(packing.frac_bits, FIXED_POINT_BITS).encode_array(arr)
    # Rounding is monotone, so encodings of in-range values lie in [lo, hi]; checked anyway.
    bad = (encoded < packing.lo) | (encoded > packing.hi)
    if bad.any():  # pragma: no cover - excluded by the checks above
        raise _range_error(bad, packing)
    # encoded - lo in [0, span] with span < 2^64: exact in wrapping uint64 arithmetic.
    return encoded.view(np.uint64) - np.uint64(packing.lo % _UINT64)


def pack_slots(slot_values: SlotValues, packing: Packing) -> list[int]:
    """Pack slot values into plaintexts, ``packing.slots`` per plaintext, zero-padded.

    Plaintext j is the sum over i of u_(j slots + i) 2^(i slot_bits). Any number of slot values
    is accepted, so a vector can be packed in pieces cut at multiples of ``packing.slots``
    (this is how :mod:`smpcloud.parallel` spreads a vector over processes).

    Args:
        slot_values: a 1-D numpy uint64 array, each entry in [0, span] (from :func:`to_slots`).
        packing: the layout.

    Returns:
        ceil(len(slot_values) / slots) non-negative integers below 2^(slots slot_bits).

    Raises:
        InvalidInputError: not a 1-D uint64 array.
        OverflowDetectedError: an entry above span.
    """
    arr = np.asarray(slot_values)
    if arr.ndim != 1 or arr.dtype != np.uint64:
        raise InvalidInputError("slot values must be a 1-D numpy uint64 array")
    if arr.size and int(arr.max()) > packing.span:
        raise OverflowDetectedError("a slot value above the layout's span")
    width, per = packing.slot_bits, packing.slots
    items = arr.tolist()
    plaintexts: list[int] = []
    for start in range(0, len(items), per):
        x = 0
        for u in reversed(items[start : start + per]):
            x = (x << width) | u
        plaintexts.append(x)
    return plaintexts


def pack(values: Sequence[float] | npt.ArrayLike, packing: Packing) -> list[int]:
    """Validate, encode and pack a vector into ``packing.ciphertexts`` plaintexts.

    Args:
        values: ``packing.length`` ints or floats in [min_value, max_value].
        packing: the layout.

    Returns:
        The plaintexts, each in [0, 2^(slots slot_bits)).

    Raises:
        InvalidInputError: not a 1-D numeric vector of the declared length.
        OverflowDetectedError: a value not finite or outside the declared range.
    """
    return pack_slots(to_slots(values, packing), packing)


def unpack_sums(plaintexts: Sequence[int], packing: Packing, count: int) -> list[int]:
    """Unpack decrypted sums of ``count`` packed vectors into exact fixed-point sums.

    Each returned integer is the sum over the count vectors of round(x 2^f) at that position,
    i.e. U + count lo for the slot sum U. With frac_bits = 0 these are the exact integer sums.

    Args:
        plaintexts: the ``packing.ciphertexts`` decrypted plaintexts (from
            :meth:`PrivateKey.decrypt` or :func:`smpcloud.crypto.threshold.combine`).
        packing: the layout the vectors were packed with.
        count: how many vectors were added (1 .. max_additions).

    Returns:
        ``packing.length`` Python ints.

    Raises:
        InvalidInputError: a wrong number of plaintexts, a non-integer, or a bad count.
        OverflowDetectedError: a plaintext outside [0, 2^(slots slot_bits)), a slot above
            count span, or a non-zero padding slot: some addend was outside its declared range,
            more vectors were added than ``count`` says, or the layout is not the one used.
    """
    count = packing.check_count(count)
    if len(plaintexts) != packing.ciphertexts:
        raise InvalidInputError(
            f"{len(plaintexts)} plaintexts; the packing declares {packing.ciphertexts}"
        )
    width, per = packing.slot_bits, packing.slots
    mask = (1 << width) - 1
    top = 1 << (per * width)
    limit = count * packing.span
    shift = count * packing.lo
    sums: list[int] = []
    remaining = packing.length
    for index, plaintext in enumerate(plaintexts):
        x = as_int(plaintext)
        if x is None:
            raise InvalidInputError(f"plaintext {index} is not an integer")
        if not 0 <= x < top:
            raise OverflowDetectedError(
                f"packed plaintext {index} outside [0, 2^{per * width}): an addend was out of "
                "range or the layout does not match"
            )
        used = min(per, remaining)
        for slot in range(used):
            u = x & mask
            if u > limit:
                raise OverflowDetectedError(
                    f"slot {index * per + slot} exceeds the largest possible sum of {count} "
                    "in-range values: an addend was out of range or the count is wrong"
                )
            sums.append(u + shift)
            x >>= width
        if x:
            raise OverflowDetectedError(
                f"padding slots of packed plaintext {index} are not zero: the layout or the "
                "vector length does not match"
            )
        remaining -= used
    return sums


def unpack(plaintexts: Sequence[int], packing: Packing, count: int) -> npt.NDArray[np.float64]:
    """Unpack decrypted sums of ``count`` packed vectors into real sums (floats).

    Same checks as :func:`unpack_sums`; each exact fixed-point sum S becomes the float nearest
    to S / 2^f. The encoding error of a sum is at most count 2^-(f+1).

    Args:
        plaintexts: the ``packing.ciphertexts`` decrypted plaintexts.
        packing: the layout the vectors were packed with.
        count: how many vectors were added (1 .. max_additions).

    Returns:
        A float64 array of ``packing.length`` element-wise sums.

    Raises:
        InvalidInputError: as for :func:`unpack_sums`.
        OverflowDetectedError: as for :func:`unpack_sums`.
    """
    sums = unpack_sums(plaintexts, packing, count)
    scale = packing.scale
    return np.fromiter((s / scale for s in sums), dtype=np.float64, count=len(sums))


# ---------------------------------------------------------------------------- encryption


def encrypt_vector(
    public_key: PublicKey, values: Sequence[float] | npt.ArrayLike, packing: Packing
) -> list[Ciphertext]:
    """Encrypt a vector as ``packing.ciphertexts`` packed ciphertexts (one process).

    Every value is range-checked before the first encryption. Uses the fast DJN encryption of
    :meth:`PublicKey.encrypt` (OS CSPRNG). For all cores see :mod:`smpcloud.parallel`.

    Reveals nothing about the values (each ciphertext is an ordinary Paillier ciphertext); the
    number of ciphertexts reveals only the public length.

    Args:
        public_key: the key; at least ``packing.key_bits`` bits.
        values: ``packing.length`` ints or floats in [min_value, max_value].
        packing: the layout.

    Returns:
        The ciphertexts, in order.

    Raises:
        InvalidInputError: a key too small for the layout, or values not a 1-D numeric vector
            of the declared length.
        OverflowDetectedError: a value not finite or outside the declared range.
    """
    if not isinstance(public_key, PublicKey):
        raise InvalidInputError(f"public_key must be a PublicKey, got {type(public_key).__name__}")
    packing.check_key_bits(public_key.bits)
    return [public_key.encrypt(m) for m in pack(values, packing)]


def decrypt_vector(
    private_key: PrivateKey, ciphertexts: Sequence[Ciphertext], packing: Packing, count: int
) -> npt.NDArray[np.float64]:
    """Decrypt the sum of ``count`` packed vectors and unpack it (one process).

    Reveals to the key holder the per-slot sums (not the individual vectors).

    Args:
        private_key: the private key.
        ciphertexts: the ``packing.ciphertexts`` aggregated ciphertexts.
        packing: the layout the vectors were packed with.
        count: how many vectors were added (1 .. max_additions).

    Returns:
        A float64 array of ``packing.length`` element-wise sums.

    Raises:
        InvalidInputError: a key too small for the layout, a wrong number of ciphertexts, or a
            bad count.
        KeyMismatchError: a ciphertext under another key.
        OverflowDetectedError: a decrypted slot outside its possible range (see
            :func:`unpack_sums`).
    """
    if not isinstance(private_key, PrivateKey):
        raise InvalidInputError(
            f"private_key must be a PrivateKey, got {type(private_key).__name__}"
        )
    packing.check_aggregate(private_key.public_key.bits, len(ciphertexts), count)
    return unpack([private_key.decrypt(c) for c in ciphertexts], packing, count)


def combine_vector(
    public: threshold.ThresholdPublicKey,
    partials: Sequence[Iterable[threshold.PartialDecryption]],
    packing: Packing,
    count: int,
    *,
    verify: bool = True,
) -> npt.NDArray[np.float64]:
    """Combine threshold partial decryptions of a packed aggregate and unpack it.

    For each aggregated ciphertext j, ``partials[j]`` holds the partial decryptions of at
    least t key holders; :func:`smpcloud.crypto.threshold.combine` turns them into the packed
    plaintext, which is then unpacked. Reveals the per-slot sums to whoever combines.

    Args:
        public: the threshold public key.
        partials: one collection of partial decryptions per aggregated ciphertext, in order.
        packing: the layout the vectors were packed with.
        count: how many vectors were added (1 .. max_additions).
        verify: check every partial decryption's proof (default).

    Returns:
        A float64 array of ``packing.length`` element-wise sums.

    Raises:
        InvalidInputError: a key too small for the layout, a wrong number of ciphertexts, a bad
            count, or partials that do not belong together.
        ThresholdNotMetError: fewer than t valid partials for some ciphertext.
        VerificationError: a partial decryption's proof failed.
        OverflowDetectedError: a decrypted slot outside its possible range.
    """
    packing.check_aggregate(public.public_key.bits, len(partials), count)
    plaintexts = [threshold.combine(public, group, verify=verify) for group in partials]
    return unpack(plaintexts, packing, count)


def combine_vector_batches(
    public: threshold.ThresholdPublicKey,
    ciphertexts: Sequence[Ciphertext],
    batches: Iterable[threshold.BatchPartialDecryption],
    packing: Packing,
    count: int,
    *,
    verify: bool = True,
    exclude_invalid: bool = False,
) -> npt.NDArray[np.float64]:
    """Combine batched partial decryptions of a packed aggregate and unpack it.

    Each of at least t key holders sends ONE batched partial decryption of the whole
    aggregate (:meth:`~smpcloud.crypto.threshold.KeyShare.partial_decrypt_batch`: one proof
    per holder, not one per ciphertext); :func:`smpcloud.crypto.threshold.combine_batch`
    checks the proofs and turns them into the packed plaintexts, which are then unpacked.
    Reveals the per-slot sums to whoever combines. On every core:
    :meth:`smpcloud.parallel.CryptoPool.combine_vector_batches`.

    Args:
        public: the threshold public key.
        ciphertexts: the ``packing.ciphertexts`` aggregated ciphertexts, in order.
        batches: t or more holders' batched partial decryptions of them.
        packing: the layout the vectors were packed with.
        count: how many vectors were added (1 .. max_additions).
        verify: check every batch's proof (default).
        exclude_invalid: drop batches whose proof fails and use the valid ones.

    Returns:
        A float64 array of ``packing.length`` element-wise sums.

    Raises:
        InvalidInputError: a key too small for the layout, a wrong number of ciphertexts, a bad
            count, or batches that do not belong together.
        ThresholdNotMetError: fewer than t (valid) batches.
        VerificationError: a proof failed (InvalidPartialDecryptionError names the holders).
        OverflowDetectedError: a decrypted slot outside its possible range.
    """
    packing.check_aggregate(public.public_key.bits, len(ciphertexts), count)
    plaintexts = threshold.combine_batch(
        public, ciphertexts, batches, verify=verify, exclude_invalid=exclude_invalid
    )
    return unpack(plaintexts, packing, count)


__all__ = [
    "FIXED_POINT_BITS",
    "MAX_ADDITIONS",
    "MAX_LENGTH",
    "PACKING_KIND",
    "RESERVED_BITS",
    "Packing",
    "SlotValues",
    "combine_vector",
    "combine_vector_batches",
    "decrypt_vector",
    "encrypt_vector",
    "pack",
    "pack_slots",
    "to_slots",
    "unpack",
    "unpack_sums",
]

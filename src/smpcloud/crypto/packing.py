"""Paillier plaintext packing: many signed fixed-point values (slots) in one ciphertext.

A 2048-bit Paillier plaintext can hold far more than one 64-bit value. Packing puts ``slots``
values side by side in one plaintext, each in a field of ``slot_bits`` bits, so a vector of k
values costs ceil(k / slots) encryptions, uploads and decryptions instead of k. Adding packed
ciphertexts adds every slot at once (E(a) E(b) = E(a + b) acts on the whole packed integer).

**Layout** (:class:`Packing`). The declared range [min_value, max_value] of each value is first
mapped to fixed-point integers with ``frac_bits`` fractional bits (see ``crypto/encoding``):
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
reports added, a wrong count, a wrong layout) and many forged reports, but it is no range proof:
a client that bypasses :func:`encrypt_vector` can still move a sum inside its possible range.

What is revealed: a packed ciphertext reveals nothing about its slots (it is an ordinary
Paillier ciphertext). A decrypted aggregate reveals the per-slot sums (so also the per-slot
averages, given the count) and nothing about individual vectors beyond what those sums imply.
The layout itself (:class:`Packing`) is public.

Pure module: no sockets, no files, no global mutable state; randomness only through
:meth:`PublicKey.encrypt` (OS CSPRNG).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

from smpcloud.crypto import threshold
from smpcloud.crypto.encoding import FixedPoint
from smpcloud.crypto.paillier import MAX_BITS, MIN_INSECURE_BITS, Ciphertext, PrivateKey, PublicKey
from smpcloud.crypto.wire import JSON_VERSION, as_int, check_json_object
from smpcloud.errors import InvalidInputError, OverflowDetectedError

PACKING_KIND: Final = "smpcloud.paillier.packing"
#: Largest vector length a layout accepts (bounds the work a declared layout can cause).
MAX_LENGTH: Final = 1 << 27
#: Largest number of packed vectors that a layout can be declared to add.
MAX_ADDITIONS: Final = 1 << 40
#: Fixed-point encodings are signed 64-bit integers (``FixedPoint(frac_bits, bits=64)``).
FIXED_POINT_BITS: Final = 64
#: Bits of a plaintext kept free: packed values stay below 2^(key_bits - 2) < n/2.
RESERVED_BITS: Final = 2

_INT64_MIN: Final = -(1 << 63)
_INT64_MAX: Final = (1 << 63) - 1
_UINT64: Final = 1 << 64

SlotValues = npt.NDArray[np.uint64]


def _is_number(value: object) -> bool:
    return type(value) in (int, float)


def _json_int(obj: Mapping[str, object], name: str) -> int:
    value = obj[name]
    if type(value) is not int:
        raise InvalidInputError(f"{PACKING_KIND}: {name} must be an integer")
    return value


def _json_number(obj: Mapping[str, object], name: str) -> int | float:
    value = obj[name]
    if type(value) is not int and type(value) is not float:
        raise InvalidInputError(f"{PACKING_KIND}: {name} must be a number")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class Packing:
    """A public packing layout: how a vector of ``length`` values fills Paillier plaintexts.

    Construct with keywords, or with :meth:`for_key`. All fields are public and are meant to be
    declared by whoever sets up a computation (for example an aggregation task).

    Attributes:
        length: number of values in a vector (1 .. 2^27).
        key_bits: bit length of the modulus n the layout is computed for (128 .. 16384); any key
            with at least this many bits can carry it.
        min_value: smallest admissible value (int or finite float).
        max_value: largest admissible value (int or finite float, >= min_value).
        max_additions: most packed vectors whose ciphertexts will be added together (for
            example the number of clients); decoding accepts a count in 1 .. max_additions.
        frac_bits: fixed-point fractional bits f (0 .. 63); 0 for integers.
        lo: round(min_value 2^f), the offset subtracted from every encoded value.
        hi: round(max_value 2^f).
        span: hi - lo; each slot of one vector holds an integer in [0, span].
        value_bits: bit length of span (at least 1).
        slot_bits: bit length of max_additions span: room for the largest possible sum.
        headroom_bits: slot_bits - value_bits, the bits reserved for carries of additions.
        slots: values per plaintext, floor((key_bits - 2) / slot_bits).
        ciphertexts: ciphertexts per vector, ceil(length / slots).

    Raises:
        InvalidInputError: a field of the wrong type or out of range, bounds whose fixed-point
            encoding does not fit in signed 64 bits, or a slot wider than a plaintext.
    """

    length: int
    key_bits: int
    min_value: int | float
    max_value: int | float
    max_additions: int
    frac_bits: int = 0
    lo: int = field(init=False, compare=False)
    hi: int = field(init=False, compare=False)
    span: int = field(init=False, compare=False)
    value_bits: int = field(init=False, compare=False)
    slot_bits: int = field(init=False, compare=False)
    headroom_bits: int = field(init=False, compare=False)
    slots: int = field(init=False, compare=False)
    ciphertexts: int = field(init=False, compare=False)

    def __post_init__(self) -> None:
        if type(self.length) is not int or not 1 <= self.length <= MAX_LENGTH:
            raise InvalidInputError(f"packing length must be an int in 1..{MAX_LENGTH}")
        if type(self.key_bits) is not int or not MIN_INSECURE_BITS <= self.key_bits <= MAX_BITS:
            raise InvalidInputError(
                f"packing key_bits must be an int in {MIN_INSECURE_BITS}..{MAX_BITS}"
            )
        if type(self.frac_bits) is not int or not 0 <= self.frac_bits < FIXED_POINT_BITS:
            raise InvalidInputError(
                f"packing frac_bits must be an int in 0..{FIXED_POINT_BITS - 1}"
            )
        if type(self.max_additions) is not int or not 1 <= self.max_additions <= MAX_ADDITIONS:
            raise InvalidInputError(f"packing max_additions must be an int in 1..{MAX_ADDITIONS}")
        for name in ("min_value", "max_value"):
            bound = getattr(self, name)
            if not _is_number(bound) or (isinstance(bound, float) and not math.isfinite(bound)):
                raise InvalidInputError(f"packing {name} must be a finite int or float")
        if self.min_value > self.max_value:
            raise InvalidInputError("packing min_value must not exceed max_value")
        fixed = FixedPoint(self.frac_bits, FIXED_POINT_BITS)
        try:
            lo, hi = fixed.encode(self.min_value), fixed.encode(self.max_value)
        except OverflowDetectedError as exc:
            raise InvalidInputError(
                f"packing bounds times 2^{self.frac_bits} must fit in signed 64 bits"
            ) from exc
        span = hi - lo
        value_bits = max(1, span.bit_length())
        slot_bits = max(value_bits, (self.max_additions * span).bit_length())
        slots = (self.key_bits - RESERVED_BITS) // slot_bits
        # slot_bits <= 64 + 40 < key_bits - 2 for every valid field, so this cannot happen.
        if slots < 1:  # pragma: no cover
            raise InvalidInputError("a slot does not fit in one plaintext of this key size")
        derived = {
            "lo": lo,
            "hi": hi,
            "span": span,
            "value_bits": value_bits,
            "slot_bits": slot_bits,
            "headroom_bits": slot_bits - value_bits,
            "slots": slots,
            "ciphertexts": -(-self.length // slots),
        }
        for name, value in derived.items():
            object.__setattr__(self, name, value)

    @classmethod
    def for_key(
        cls,
        public_key: PublicKey,
        *,
        length: int,
        min_value: int | float,
        max_value: int | float,
        max_additions: int,
        frac_bits: int = 0,
    ) -> Packing:
        """Return the layout for vectors of ``length`` values under public_key's modulus size.

        Args:
            public_key: the Paillier key the vectors will be encrypted under.
            length: number of values per vector.
            min_value: smallest admissible value.
            max_value: largest admissible value.
            max_additions: most vectors that will be added together.
            frac_bits: fixed-point fractional bits (0 for integers).

        Returns:
            The layout.

        Raises:
            InvalidInputError: as for the constructor.
        """
        if not isinstance(public_key, PublicKey):
            raise InvalidInputError(
                f"public_key must be a PublicKey, got {type(public_key).__name__}"
            )
        return cls(
            length=length,
            key_bits=public_key.bits,
            min_value=min_value,
            max_value=max_value,
            max_additions=max_additions,
            frac_bits=frac_bits,
        )

    @property
    def scale(self) -> int:
        """Return 2^frac_bits, the fixed-point scale."""
        return 1 << self.frac_bits

    def check_key_bits(self, bits: int) -> None:
        """Check that a modulus of ``bits`` bits can carry this layout.

        Raises:
            InvalidInputError: if bits < key_bits.
        """
        if bits < self.key_bits:
            raise InvalidInputError(
                f"a {bits}-bit key cannot carry a packing laid out for {self.key_bits}-bit keys"
            )

    def check_count(self, count: object) -> int:
        """Return count if it is a valid number of added vectors (1 .. max_additions).

        Raises:
            InvalidInputError: if count is not an int in 1 .. max_additions.
        """
        if type(count) is not int or not 1 <= count <= self.max_additions:
            raise InvalidInputError(
                f"count must be an int in 1..{self.max_additions} (the layout's max_additions)"
            )
        return count

    def check_aggregate(self, key_bits: int, ciphertexts: int, count: object) -> int:
        """Check an aggregate before it is decrypted: key size, number of ciphertexts, count.

        Args:
            key_bits: bit length of the key's modulus n.
            ciphertexts: how many ciphertexts (or groups of partials) the aggregate has.
            count: how many vectors were added.

        Returns:
            count (validated).

        Raises:
            InvalidInputError: a key too small for the layout, a number of ciphertexts other
                than :attr:`ciphertexts`, or a count outside 1 .. max_additions.
        """
        self.check_key_bits(key_bits)
        if ciphertexts != self.ciphertexts:
            raise InvalidInputError(
                f"{ciphertexts} ciphertexts; the packing declares {self.ciphertexts}"
            )
        return self.check_count(count)

    # ------------------------------------------------------------------ JSON

    def to_json(self) -> dict[str, object]:
        """Return ``{"kind", "version", "length", "key_bits", "min_value", "max_value",
        "max_additions", "frac_bits"}``; the derived fields are recomputed on decoding.
        """
        return {
            "kind": PACKING_KIND,
            "version": JSON_VERSION,
            "length": self.length,
            "key_bits": self.key_bits,
            "min_value": self.min_value,
            "max_value": self.max_value,
            "max_additions": self.max_additions,
            "frac_bits": self.frac_bits,
        }

    @classmethod
    def from_json(cls, data: object) -> Packing:
        """Decode :meth:`to_json` output strictly.

        Args:
            data: the parsed JSON object.

        Returns:
            The layout.

        Raises:
            InvalidInputError: a wrong kind or version, missing or extra fields, a field of the
                wrong JSON type (booleans are not numbers) or out of range.
        """
        obj = check_json_object(
            data,
            PACKING_KIND,
            ("length", "key_bits", "min_value", "max_value", "max_additions", "frac_bits"),
        )
        return cls(
            length=_json_int(obj, "length"),
            key_bits=_json_int(obj, "key_bits"),
            min_value=_json_number(obj, "min_value"),
            max_value=_json_number(obj, "max_value"),
            max_additions=_json_int(obj, "max_additions"),
            frac_bits=_json_int(obj, "frac_bits"),
        )


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

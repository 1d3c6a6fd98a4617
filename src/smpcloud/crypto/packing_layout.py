"""The public packing layout: how a vector of signed fixed-point values fills Paillier plaintexts.

A :class:`Packing` is declared by whoever sets up a computation (for example an aggregation
task) from the value range, the fixed-point precision, the number of additions and the key size;
it derives the slot width, the slots per plaintext and the ciphertexts per vector, and travels
as JSON. The formulas, the encoding that uses them and what packing reveals are in
``smpcloud.crypto.packing``, which re-exports everything here. The layout itself is public.

Pure module: no sockets, no files, no randomness, no global mutable state.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from smpcloud.crypto.encoding import FixedPoint
from smpcloud.crypto.paillier import MAX_BITS, MIN_INSECURE_BITS, PublicKey
from smpcloud.crypto.wire import JSON_VERSION, check_json_object
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


__all__ = [
    "FIXED_POINT_BITS",
    "MAX_ADDITIONS",
    "MAX_LENGTH",
    "PACKING_KIND",
    "RESERVED_BITS",
    "Packing",
]

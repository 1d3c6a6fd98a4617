"""Signed fixed-point encoding between floats/ints and integers for the field, ring and Paillier.

A real x is encoded as the integer round(x · 2^f) (f = ``frac_bits``), which must lie in the
signed range [-2^(bits-1), 2^(bits-1)). Out-of-range values, NaN and infinities raise
:class:`~smpcloud.errors.OverflowDetectedError`; nothing wraps silently. The absolute encoding
error of one value is at most 2^-(f+1); a sum of k encoded values carries at most k · 2^-(f+1).

Floats have 53 significant bits: values larger than 2^(53-f) are rounded by the float itself
before encoding. Python ints are encoded exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from smpcloud.crypto.field import DEFAULT_FIELD, Field, Residues
from smpcloud.errors import InvalidInputError, OverflowDetectedError


@dataclass(frozen=True, slots=True)
class FixedPoint:
    """A signed fixed-point format: ``frac_bits`` fractional bits in a ``bits``-bit integer.

    Attributes:
        frac_bits: number of fractional bits f (resolution 2^-f), 0 <= f < bits.
        bits: total bits of the signed encoded integer (64 by default, at most 1024).

    Raises:
        InvalidInputError: for parameters out of range.
    """

    frac_bits: int = 16
    bits: int = 64

    def __post_init__(self) -> None:
        if not 1 <= self.bits <= 1024:
            raise InvalidInputError(f"fixed-point width bits={self.bits} must be in 1..1024")
        if not 0 <= self.frac_bits < self.bits:
            raise InvalidInputError(
                f"frac_bits={self.frac_bits} must be in 0..{self.bits - 1} for bits={self.bits}"
            )

    @property
    def scale(self) -> int:
        """2^frac_bits."""
        return 1 << self.frac_bits

    @property
    def min_int(self) -> int:
        """Smallest encodable integer, -2^(bits-1)."""
        return -(1 << (self.bits - 1))

    @property
    def max_int(self) -> int:
        """Largest encodable integer, 2^(bits-1) - 1."""
        return (1 << (self.bits - 1)) - 1

    @property
    def max_value(self) -> float:
        """Largest encodable real."""
        return self.max_int / self.scale

    # ------------------------------------------------------------------ scalars

    def encode(self, value: float | int) -> int:
        """Encode one real (or int, exactly) as a signed integer.

        Raises:
            OverflowDetectedError: NaN, infinite, or outside the representable range.
        """
        if isinstance(value, bool):
            raise InvalidInputError("cannot encode a boolean")
        if isinstance(value, (int, np.integer)):
            encoded = int(value) << self.frac_bits
        elif isinstance(value, (float, np.floating)):
            if not math.isfinite(value):
                raise OverflowDetectedError("cannot encode a NaN or infinite value")
            encoded = round(float(value) * self.scale)
        else:
            raise InvalidInputError(f"cannot encode {type(value).__name__} as fixed-point")
        if not self.min_int <= encoded <= self.max_int:
            raise OverflowDetectedError(
                # The value itself stays out of the message: it may be someone's private input.
                f"a value outside the fixed-point range ±{self.max_value:.6g}"
            )
        return encoded

    def decode(self, encoded: int) -> float:
        """Decode one signed integer (possibly a sum beyond ``bits``) to a float."""
        return int(encoded) / self.scale

    # ------------------------------------------------------------------ vectors

    def encode_array(self, values: Sequence[float] | npt.ArrayLike) -> npt.NDArray[np.int64]:
        """Encode a 1-D vector of reals as int64 (requires bits <= 64).

        Raises:
            OverflowDetectedError: a NaN, infinity or out-of-range entry (the message says how
                many and the first index).
            InvalidInputError: bits > 64 or non-numeric input.
        """
        if self.bits > 64:
            raise InvalidInputError("encode_array needs bits <= 64; use encode() per value")
        arr = np.asarray(values)
        if arr.dtype.kind not in "iuf" or arr.ndim != 1:
            raise InvalidInputError("expected a 1-D numeric vector")
        if arr.dtype.kind in "iu":
            # Exact for integers: v << f, in range iff min_int >> f <= v <= max_int >> f.
            lo, hi = self.min_int >> self.frac_bits, self.max_int >> self.frac_bits
            wide = arr.astype(object) if arr.dtype == np.uint64 else arr.astype(np.int64)
            bad = (wide < lo) | (wide > hi)
            if np.any(bad):
                first = int(np.flatnonzero(bad)[0])
                raise OverflowDetectedError(
                    f"{int(np.sum(bad))} value(s) outside the fixed-point range "
                    f"±{self.max_value:.6g} (first at index {first})"
                )
            return np.left_shift(wide.astype(np.int64), self.frac_bits)
        scaled = np.rint(arr.astype(np.float64) * self.scale)
        bad = ~np.isfinite(scaled) | (scaled < self.min_int) | (scaled > float(self.max_int))
        # float(max_int) rounds up to 2^(bits-1) for bits > 53: exclude that value explicitly.
        bad |= scaled >= float(1 << (self.bits - 1))
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise OverflowDetectedError(
                f"{int(bad.sum())} value(s) outside the fixed-point range ±{self.max_value:.6g} "
                f"or not finite (first at index {first})"
            )
        return scaled.astype(np.int64)

    def decode_array(self, encoded: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Decode a vector of signed integers (int64 or exact Python ints) to floats."""
        arr = np.asarray(encoded)
        if arr.dtype == object:
            return np.array([int(v) / self.scale for v in arr.tolist()], dtype=np.float64)
        return arr.astype(np.float64) / self.scale

    # ------------------------------------------------------------------ targets

    def to_field(
        self, values: Sequence[float] | npt.ArrayLike, field: Field = DEFAULT_FIELD
    ) -> Residues:
        """Encode reals straight into field elements."""
        return field.from_ints(self.encode_array(values))

    def from_field(
        self, elements: Residues, field: Field = DEFAULT_FIELD
    ) -> npt.NDArray[np.float64]:
        """Decode signed field elements (e.g. a reconstructed sum) to floats."""
        return field.to_float(elements, scale=float(self.scale))

    def to_ring(self, values: Sequence[float] | npt.ArrayLike) -> npt.NDArray[np.uint64]:
        """Encode reals into Z_2^64 (two's complement)."""
        return self.encode_array(values).view(np.uint64)

    def from_ring(self, words: npt.NDArray[np.uint64]) -> npt.NDArray[np.float64]:
        """Decode Z_2^64 elements (two's complement) to floats."""
        return np.asarray(words, dtype=np.uint64).view(np.int64).astype(np.float64) / self.scale

"""A party's Shamir shares of a secret vector, with the local (linear) operations on them.

:class:`SharedVector` holds this party's shares and a public bound on the encoded values, so
that a product or truncation that could wrap around the field is refused before it runs;
addition, subtraction, multiplication by a public integer, slices and sums are local (no
communication). :func:`encode_plain` encodes a party's plaintext inputs (integers or
fixed-point reals within a signed bit width), :func:`decode_opened` turns opened field
elements back into numbers; :func:`check_bound` is the overflow check the
runtime applies to every result. Shares are secret: never logged, redacted from ``repr``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

import numpy as np
import numpy.typing as npt

from smpcloud.crypto.encoding import FixedPoint
from smpcloud.crypto.field import Field, Residues
from smpcloud.errors import (
    InvalidInputError,
    OverflowDetectedError,
    ShareError,
)
from smpcloud.mpc.rns import from_int64, small_to_int64

#: Bits of a default input: signed 64-bit integers, or 64-bit fixed-point encodings.
DEFAULT_BITS: Final = 64


@dataclass(frozen=True, slots=True, eq=False)
class SharedVector:
    """This party's Shamir shares of a vector of secret values.

    Attributes:
        shares: the share residues, ``uint64`` of shape ``(k, m)``. Secret: never logged.
        field: the field of the shares.
        frac_bits: None for integers; f for fixed-point values v / 2^f.
        bound: a public bound, |v| <= bound for every encoded value v, tracked through every
            operation so that a product or a truncation that could wrap around the field is
            refused (:class:`~smpcloud.errors.OverflowDetectedError`) before it runs.

    Operators (local, no communication): ``x + y``, ``x - y``, ``-x``, ``x + c``, ``x - c``,
    ``c * x`` for a public int c (or a public float added to a fixed-point vector), and
    ``sum(list_of_vectors)``. ``x[i:j]`` slices; :meth:`sum` adds the elements up;
    :meth:`concat` joins vectors. Multiplication of two shared vectors needs a round of
    communication: ``await party.mul(x, y)``.
    """

    shares: Residues
    field: Field
    frac_bits: int | None = None
    bound: int = 1 << 63

    __array_ufunc__ = None  # make numpy defer to our reflected operators

    def __repr__(self) -> str:
        kind = "int" if self.frac_bits is None else f"fixed(f={self.frac_bits})"
        return f"SharedVector(length={self.length}, {kind}, shares=<redacted>)"

    @property
    def length(self) -> int:
        """Number of values."""
        return int(self.shares.shape[1])

    def __len__(self) -> int:
        return self.length

    @property
    def is_fixed(self) -> bool:
        """True for fixed-point values."""
        return self.frac_bits is not None

    def _with(self, shares: Residues, bound: int) -> SharedVector:
        check_bound(self.field, bound, "result")
        return SharedVector(shares, self.field, self.frac_bits, bound)

    def _check_other(self, other: SharedVector) -> None:
        if other.field != self.field:
            raise ShareError("shared vectors from different fields")
        if other.length != self.length:
            raise ShareError(f"shared vectors of different lengths: {self.length}, {other.length}")
        if other.frac_bits != self.frac_bits:
            raise ShareError(
                f"cannot combine shared values with frac_bits {self.frac_bits} and "
                f"{other.frac_bits}"
            )

    def _public(self, value: object) -> tuple[Residues, int] | None:
        """Encode a public constant at this vector's scale; None if unsupported."""
        f = self.frac_bits
        if isinstance(value, bool):
            return None
        if isinstance(value, (int, np.integer)):
            encoded = int(value) << (f or 0)
            return self.field.from_int(encoded), abs(encoded)
        if isinstance(value, (float, np.floating)) and f is not None:
            if not math.isfinite(value):
                raise OverflowDetectedError(f"cannot encode non-finite constant {value!r}")
            encoded = round(float(value) * (1 << f))
            return self.field.from_int(encoded), abs(encoded)
        if isinstance(value, np.ndarray) and value.ndim == 1:
            if value.shape[0] != self.length:
                raise ShareError(
                    f"public vector of length {value.shape[0]} for a shared vector of "
                    f"length {self.length}"
                )
            ints = encode_plain(value, f, DEFAULT_BITS)
            return from_int64(self.field, ints), max_abs(ints)
        return None

    def __add__(self, other: object) -> SharedVector:
        if isinstance(other, SharedVector):
            self._check_other(other)
            return self._with(self.field.add(self.shares, other.shares), self.bound + other.bound)
        if isinstance(other, (int, np.integer)) and not isinstance(other, bool) and other == 0:
            return self
        public = self._public(other)
        if public is None:
            return NotImplemented
        residues, size = public
        return self._with(self.field.add(self.shares, residues), self.bound + size)

    __radd__ = __add__

    def __neg__(self) -> SharedVector:
        return SharedVector(self.field.neg(self.shares), self.field, self.frac_bits, self.bound)

    def __sub__(self, other: object) -> SharedVector:
        if isinstance(other, SharedVector):
            self._check_other(other)
            return self._with(self.field.sub(self.shares, other.shares), self.bound + other.bound)
        public = self._public(other)
        if public is None:
            return NotImplemented
        residues, size = public
        return self._with(self.field.sub(self.shares, residues), self.bound + size)

    def __rsub__(self, other: object) -> SharedVector:
        public = self._public(other)
        if public is None:
            return NotImplemented
        residues, size = public
        return self._with(self.field.sub(residues, self.shares), self.bound + size)

    def __mul__(self, other: object) -> SharedVector:
        """Multiply by a public integer (exact; no truncation needed)."""
        if isinstance(other, (int, np.integer)) and not isinstance(other, bool):
            c = int(other)
            return self._with(self.field.mul_int(self.shares, c), self.bound * abs(c))
        return NotImplemented

    __rmul__ = __mul__

    def __getitem__(self, index: slice) -> SharedVector:
        if not isinstance(index, slice):
            raise TypeError("shared vectors support slices only, e.g. x[2:5]")
        return SharedVector(self.shares[:, index], self.field, self.frac_bits, self.bound)

    def take(self, indices: Sequence[int] | npt.NDArray[np.integer[Any]]) -> SharedVector:
        """Return the elements at ``indices`` (in that order, repeats allowed; local).

        Raises:
            InvalidInputError: an index outside 0 .. length - 1.
        """
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= self.length):
            raise InvalidInputError(f"indices outside 0..{self.length - 1}")
        return SharedVector(self.shares[:, idx], self.field, self.frac_bits, self.bound)

    def with_bound(self, bound: int) -> SharedVector:
        """Return the same shares with a tighter public bound that the caller can prove.

        The runtime's bound only grows (every product multiplies bounds); when the mathematics
        of an algorithm guarantees a smaller one (a correlation is at most 1, an iterate
        converges), declaring it keeps later products inside the field. The values are not
        checked (they are secret): a wrong bound can make a later product wrap around.

        Raises:
            InvalidInputError: a bound that is not a positive int.
        """
        if type(bound) is not int or bound < 1:
            raise InvalidInputError("bound must be a positive int")
        return SharedVector(self.shares, self.field, self.frac_bits, min(bound, self.bound))

    def sum(self) -> SharedVector:
        """Return a length-1 vector holding the sum of all elements (local)."""
        column = self.field.column
        total = self.shares.sum(axis=1, dtype=np.uint64).reshape(self.field.k, 1) % column
        return self._with(total, self.bound * self.length)

    @staticmethod
    def concat(parts: Sequence[SharedVector]) -> SharedVector:
        """Join vectors end to end (same field and scale).

        Raises:
            ShareError: no parts, or parts from different fields or scales.
        """
        if not parts:
            raise ShareError("nothing to concatenate")
        first = parts[0]
        for p in parts[1:]:
            if p.field != first.field or p.frac_bits != first.frac_bits:
                raise ShareError("cannot concatenate vectors of different fields or scales")
        shares = np.concatenate([p.shares for p in parts], axis=1)
        return SharedVector(shares, first.field, first.frac_bits, max(p.bound for p in parts))


def max_abs(ints: npt.NDArray[np.int64]) -> int:
    """Return max |v| over ``ints`` (0 for an empty array)."""
    return max(int(ints.max()), -int(ints.min())) if ints.size else 0


def check_bound(field: Field, bound: int, what: str) -> None:
    """Refuse a public bound that could wrap around ``field`` (2 · bound >= M).

    Raises:
        OverflowDetectedError: the bound is too large (the message names ``what``).
    """
    if 2 * bound >= field.modulus:
        raise OverflowDetectedError(
            f"{what} could reach 2^{bound.bit_length()} and wrap around the field "
            f"(~2^{field.modulus.bit_length()}); use a larger field or declare smaller inputs "
            "(bits=...)"
        )


def encode_plain(values: object, frac_bits: int | None, bits: int) -> npt.NDArray[np.int64]:
    """Encode a party's plaintext values as int64 integers within a signed ``bits``-bit range.

    Raises:
        InvalidInputError: not a 1-D vector of integers or reals, booleans, or reals without
            ``frac_bits``.
        OverflowDetectedError: a value outside the signed ``bits``-bit range once encoded.
    """
    arr = np.atleast_1d(np.asarray(values))
    if arr.ndim != 1:
        raise InvalidInputError(f"expected a 1-D vector of values, got shape {arr.shape}")
    if arr.dtype == np.bool_:
        raise InvalidInputError("booleans are not values; convert them to integers")
    if arr.dtype == object:  # Python ints too large for int64, or mixed objects
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in arr.tolist()):
            raise InvalidInputError("values must be integers or reals")
        if arr.size and max(abs(int(v)) for v in arr.tolist()) >= 1 << 63:
            raise OverflowDetectedError(f"input outside the signed {bits}-bit range")
        arr = arr.astype(np.int64)
    if arr.dtype.kind in "iu":
        if arr.dtype == np.uint64 and arr.size and int(arr.max()) >= 1 << 63:
            raise OverflowDetectedError(f"input outside the signed {bits}-bit range")
        ints = arr.astype(np.int64)
        shift = frac_bits or 0
        reach = 1 << (bits - 1 - shift)  # v << shift must fit a signed bits-bit integer
        if ints.size and (int(ints.min()) < -reach or int(ints.max()) > reach - 1):
            raise OverflowDetectedError(
                f"input outside the {'fixed-point' if shift else 'integer'} range of "
                f"{bits}-bit values"
            )
        return ints << np.int64(shift) if shift else ints
    if arr.dtype.kind == "f":
        if frac_bits is None:
            raise InvalidInputError("real-valued inputs need a fixed-point scale: frac_bits=...")
        return FixedPoint(frac_bits=frac_bits, bits=bits).encode_array(arr)
    raise InvalidInputError(f"values must be integers or reals, got dtype {arr.dtype}")


#: What :meth:`~smpcloud.mpc.runtime.Party.open` returns: int64, exact Python ints (object) or
#: float64.
Opened: TypeAlias = npt.NDArray[np.int64] | npt.NDArray[np.object_] | npt.NDArray[np.float64]


def decode_opened(elements: Residues, x: SharedVector) -> Opened:
    """Return the opened elements of ``x`` as numbers.

    Args:
        elements: the opened field elements, shape (k, m).
        x: the shared vector they open (its field, fixed-point scale and public bound).

    Returns:
        For integers, int64 when every value fits (always when the public bound is below
        2^63), else exact Python ints (numpy object array); for fixed-point values, float64
        (v / 2^f).
    """
    ints = _opened_int64(x.field, elements, x.bound)
    if x.frac_bits is None:
        return x.field.to_ints(elements) if ints is None else ints
    scale = float(1 << x.frac_bits)
    if ints is None:
        return x.field.to_float(elements, scale=scale)
    return ints.astype(np.float64) / scale


def _opened_int64(field: Field, elements: Residues, bound: int) -> npt.NDArray[np.int64] | None:
    """Return opened values as int64 if they all fit, else None (exact path needed)."""
    if field.modulus < 1 << 66:  # a small field: the generic conversion is exact
        try:
            return field.to_int64(elements)
        except OverflowDetectedError:
            return None
    candidate = small_to_int64(field, elements)
    if bound < 1 << 63 and 4 * bound < field.modulus:
        return candidate  # guaranteed exact by the public bound
    # The bound allows larger values: keep the candidate only if it is the value.
    if np.array_equal(from_int64(field, candidate), elements):
        return candidate
    return None


__all__ = [
    "DEFAULT_BITS",
    "Opened",
    "SharedVector",
    "check_bound",
    "decode_opened",
    "encode_plain",
    "max_abs",
]

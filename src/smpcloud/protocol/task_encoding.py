"""Task encodings: how a client's numbers become plaintexts or field elements, and their range.

Part of the wire contract (:mod:`smpcloud.protocol`): a task's :class:`TaskEncoding` travels in
the task's creation request and info response (:mod:`smpcloud.protocol.schemas`), and both the
SDK (which encodes and range-checks each value before anything is sent) and the service (which
checks that sums cannot wrap and decodes them) use it. Depends on pydantic and
``smpcloud.crypto.encoding`` only.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Final, Literal

from pydantic import Field, StrictFloat, StrictInt, ValidationError, model_validator

from smpcloud.crypto.encoding import FixedPoint
from smpcloud.errors import InvalidInputError, OverflowDetectedError
from smpcloud.protocol._bases import Schema

#: Largest number of fractional bits of a fixed-point task (resolution 2^-64).
MAX_FRAC_BITS: Final = 64
#: Largest |bound| · 2^frac_bits of a declared range, in bits (a sanity cap; the real limit is
#: the n/2 check at task creation).
MAX_ENCODED_BITS: Final = 512

_FIXED_POINT_WIDTH: Final = 1024  # FixedPoint's own range check is moot: see TaskEncoding.encode


class TaskEncoding(Schema):
    """How a client's numbers become plaintexts (Paillier) or field elements (Shamir), and range.

    ``integer``: values are integers, encoded as themselves. ``fixed_point``: values are reals,
    encoded as round(x · 2^frac_bits); each value's encoding error is at most 2^-(frac_bits+1),
    so a sum over k clients is off by at most k · 2^-(frac_bits+1) and the average by at most
    2^-(frac_bits+1) (plus float rounding of the final division).

    ``[min_value, max_value]`` is the declared range of *each client's value* (each element of
    a vector). The SDK refuses to encode values outside it
    (:class:`~smpcloud.errors.OverflowDetectedError`, before anything is sent), and the server
    refuses to create a task unless max_clients · max(|min|, |max|) · 2^frac_bits <= n/2 (the
    Shamir field's (M-1)/2 for Shamir tasks), so a sum of honest reports can never wrap around.

    What this alone does **not** give: the server cannot see inside ciphertexts, so on a task
    with validity ``none`` a malicious client (one that does not use the SDK) can encrypt any
    plaintext mod n and bias the sum arbitrarily, even wrap it. The published result flags a
    decrypted sum that lies outside [count · min, count · max] (``within_declared_range``),
    which proves some client cheated; a sum inside that interval proves nothing. A task with
    validity ``range`` closes this: every Paillier report carries a validity proof that each
    encoded value lies in [min, max] (:mod:`smpcloud.crypto.validity`,
    :mod:`smpcloud.protocol.report_proofs`), verified before the report is accepted, so no
    client can move a sum by more than an in-range value can (lying *within* the range stays
    possible and undetectable).

    Build with :meth:`integer` or :meth:`fixed`; direct construction raises pydantic's
    ``ValidationError`` on bad fields.
    """

    kind: Literal["integer", "fixed_point"] = "integer"
    frac_bits: Annotated[StrictInt, Field(ge=0, le=MAX_FRAC_BITS)] = 0
    min_value: StrictInt | StrictFloat = -(1 << 63)
    max_value: StrictInt | StrictFloat = (1 << 63) - 1

    @model_validator(mode="after")
    def _check(self) -> TaskEncoding:
        lo, hi = self.min_value, self.max_value
        if self.kind == "integer":
            if self.frac_bits != 0:
                raise ValueError("integer encoding takes frac_bits = 0")
            if not isinstance(lo, int) or not isinstance(hi, int):
                raise ValueError("integer encoding takes integer bounds")
        for bound in (lo, hi):
            if isinstance(bound, float) and not math.isfinite(bound):
                raise ValueError("range bounds must be finite")
            if abs(bound) * (1 << self.frac_bits) >= 1 << MAX_ENCODED_BITS:
                raise ValueError(f"|bound| · 2^frac_bits must be below 2^{MAX_ENCODED_BITS}")
        if lo > hi:
            raise ValueError("min_value must not exceed max_value")
        return self

    @classmethod
    def integer(cls, min_value: int = -(1 << 63), max_value: int = (1 << 63) - 1) -> TaskEncoding:
        """Integers in [min_value, max_value] (default: signed 64-bit).

        Raises:
            InvalidInputError: bounds that are not integers or not ordered.
        """
        return cls._build(kind="integer", frac_bits=0, min_value=min_value, max_value=max_value)

    @classmethod
    def fixed(cls, frac_bits: int, min_value: float, max_value: float) -> TaskEncoding:
        """Reals in [min_value, max_value] with ``frac_bits`` fractional bits (0..64).

        Raises:
            InvalidInputError: frac_bits out of range, or bounds not finite or not ordered.
        """
        return cls._build(
            kind="fixed_point", frac_bits=frac_bits, min_value=min_value, max_value=max_value
        )

    @classmethod
    def _build(cls, **fields: Any) -> TaskEncoding:
        try:
            return cls(**fields)
        except ValidationError as exc:
            raise InvalidInputError(f"invalid task encoding: {_summary(exc)}") from None

    @property
    def scale(self) -> int:
        """2^frac_bits."""
        return 1 << self.frac_bits

    def _fixed_point(self) -> FixedPoint:
        return FixedPoint(frac_bits=self.frac_bits, bits=_FIXED_POINT_WIDTH)

    def encoded_bounds(self) -> tuple[int, int]:
        """Return the encodings of min_value and max_value (every valid value lies between)."""
        codec = self._fixed_point()
        return codec.encode(self.min_value), codec.encode(self.max_value)

    def max_abs_encoded(self) -> int:
        """Return the largest |encoding| of a value in the declared range."""
        lo, hi = self.encoded_bounds()
        return max(abs(lo), abs(hi))

    def encode(self, value: object, *, index: int = 0) -> int:
        """Encode one client value after checking its type and the declared range.

        Args:
            value: an int (either kind) or a float (fixed_point only); numpy scalars accepted.
            index: the element's position, used in error messages (never the value itself).

        Returns:
            The plaintext integer.

        Raises:
            InvalidInputError: a bool, a non-number, or a float for an integer task.
            OverflowDetectedError: NaN, infinity, or outside [min_value, max_value].
        """
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            value = _numpy_scalar(value, index)
        if self.kind == "integer" and not isinstance(value, int):
            raise InvalidInputError(f"element {index}: this task takes integers, got a float")
        if isinstance(value, float) and not math.isfinite(value):
            raise OverflowDetectedError(f"element {index}: not a finite number")
        if not self.min_value <= value <= self.max_value:
            raise OverflowDetectedError(
                f"element {index}: outside the declared range "
                f"[{self.min_value}, {self.max_value}] of this task"
            )
        return self._fixed_point().encode(value)

    def sum_in_range(self, encoded_sum: int, count: int) -> bool:
        """Return whether a sum of ``count`` values can come from values in the declared range.

        Honest reports (each value in [min_value, max_value]) always sum into
        [count · min, count · max] (encoded); a sum outside proves that some client sent a value
        outside the range (a forged report; on a task with validity ``range`` every report
        is proven in range, so such a sum cannot come from a client). Such a sum may be
        anything mod n, up to n/2 in magnitude, far beyond what a float holds.
        """
        lo, hi = self.encoded_bounds()
        return count * lo <= int(encoded_sum) <= count * hi

    def decode_sum(self, encoded: int) -> int | float:
        """Decode a plaintext sum: an int for integer tasks, a float for fixed-point ones.

        Raises:
            OverflowDetectedError: a fixed-point sum too large for a float (only a sum outside
                the declared range can be: see :meth:`sum_in_range`).
        """
        if self.kind == "integer":
            return int(encoded)
        try:
            return self._fixed_point().decode(encoded)
        except OverflowError:
            raise OverflowDetectedError("the sum is too large for a float") from None

    def average(self, encoded_sum: int, count: int) -> float:
        """Return the average sum / count / 2^frac_bits, correctly rounded to a float.

        Raises:
            InvalidInputError: ``count`` below 1.
            OverflowDetectedError: an average too large for a float (only a sum outside the
                declared range can give one: see :meth:`sum_in_range`).
        """
        if count < 1:
            raise InvalidInputError("average over zero reports")
        try:
            return int(encoded_sum) / (count << self.frac_bits)
        except OverflowError:
            raise OverflowDetectedError("the average is too large for a float") from None


def _numpy_scalar(value: object, index: int) -> int | float:
    """Accept numpy integer and floating scalars (as Python numbers); refuse everything else."""
    kind = getattr(getattr(value, "dtype", None), "kind", None)
    item = getattr(value, "item", None)
    if kind in ("i", "u") and callable(item) and getattr(value, "ndim", 1) == 0:
        return int(item())
    if kind == "f" and callable(item) and getattr(value, "ndim", 1) == 0:
        return float(item())
    raise InvalidInputError(f"element {index}: expected a number, got {type(value).__name__}")


def _summary(exc: ValidationError) -> str:
    """Summarise a pydantic error by location and message, never by input value."""
    parts = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = ".".join(str(p) for p in err["loc"])
        parts.append(f"{loc}: {err['msg']}" if loc else str(err["msg"]))
    return "; ".join(parts[:5])


INTEGER_ENCODING: Final = TaskEncoding()
"""Signed 64-bit integers: the default encoding of a task."""

__all__ = ["INTEGER_ENCODING", "MAX_ENCODED_BITS", "MAX_FRAC_BITS", "TaskEncoding"]

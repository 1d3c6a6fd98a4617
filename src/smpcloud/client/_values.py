"""What the SDK accepts as "values": one number, a sequence of numbers or a 1-D array."""

from __future__ import annotations

from collections.abc import Iterable

from smpcloud.errors import InvalidInputError


def as_values(values: object) -> list[object]:
    """A scalar becomes [scalar]; a sequence or 1-D array becomes a list of its elements."""
    if isinstance(values, (str, bytes, bytearray)):
        raise InvalidInputError(f"expected numbers, got {type(values).__name__}")
    if isinstance(values, (int, float)) or getattr(values, "ndim", None) == 0:
        return [values]
    if isinstance(values, Iterable):
        return list(values)
    raise InvalidInputError(
        f"expected a number or a sequence of numbers, got {type(values).__name__}"
    )


__all__ = ["as_values"]

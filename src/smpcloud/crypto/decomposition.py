"""Decomposing an integer of [0, U] into weighted bits: the shape of every range check.

A value u lies in [0, U] (U >= 1) exactly when it can be written as

    u = sum_i w_i b_i,   b_i in {0, 1},

with the k = bit_length(U) weights w_i = 2^i for i < k - 1 and w_(k-1) = U - 2^(k-1) + 1
(the classic trick for intervals that are not a power of two: the low k - 1 bits cover
[0, 2^(k-1) - 1], the top weight shifts that window to end exactly at U, and the two windows
meet because w_(k-1) <= 2^(k-1)). So "every b_i is a bit" is the whole range statement: no
second decomposition of U - u is needed. Both validity checks use it: the Paillier range proofs
(:mod:`smpcloud.crypto.range_proof`) prove each b_i is a bit in zero knowledge, and the Shamir
servers check jointly that each shared b_i is a bit (:mod:`smpcloud.crypto.shamir_validity`).

Pure module: integers and numpy only; no randomness.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import numpy.typing as npt

from smpcloud.errors import InvalidInputError, OverflowDetectedError

#: Largest span (in bits) a decomposition is built for: a sanity cap, far above any task's.
MAX_SPAN_BITS = 512


@lru_cache(maxsize=64)
def bit_weights(span: int) -> tuple[int, ...]:
    """Return the weights w_0, ..., w_(k-1) whose 0/1 combinations are exactly [0, span].

    Args:
        span: U >= 1, the largest value.

    Returns:
        k = bit_length(span) positive weights (a tuple; cached: the same span gives the same
        object).

    Raises:
        InvalidInputError: span not an int in 1 .. 2^MAX_SPAN_BITS - 1.
    """
    if type(span) is not int or not 1 <= span < 1 << MAX_SPAN_BITS:
        raise InvalidInputError(
            f"a range check needs an integer span in 1..2^{MAX_SPAN_BITS} - 1 (min_value must be "
            "below max_value)"
        )
    k = span.bit_length()
    return (*(1 << i for i in range(k - 1)), span - (1 << (k - 1)) + 1)


def decompose(value: int, span: int) -> list[int]:
    """Return bits b_i with sum_i w_i b_i = value, for the weights of :func:`bit_weights`.

    Raises:
        OverflowDetectedError: value outside [0, span].
        InvalidInputError: a bad span.
    """
    weights = bit_weights(span)
    if type(value) is not int or not 0 <= value <= span:
        raise OverflowDetectedError("value outside [0, span]: it has no decomposition")
    top = weights[-1]
    bits = [0] * len(weights)
    if value > (1 << (len(weights) - 1)) - 1:
        bits[-1] = 1
        value -= top
    for i in range(len(weights) - 1):
        bits[i] = (value >> i) & 1
    return bits


def decompose_array(values: npt.NDArray[np.uint64], span: int) -> npt.NDArray[np.uint8]:
    """Vectorised :func:`decompose`: a (k, m) array of bits for m values (span < 2^63).

    Raises:
        OverflowDetectedError: an entry above span.
        InvalidInputError: a bad span, or span >= 2^63, or not a 1-D uint64 array.
    """
    weights = bit_weights(span)
    arr = np.asarray(values)
    if arr.ndim != 1 or arr.dtype != np.uint64:
        raise InvalidInputError("values must be a 1-D numpy uint64 array")
    if span >= 1 << 63:
        raise InvalidInputError("decompose_array takes spans below 2^63")
    if arr.size and int(arr.max()) > span:
        raise OverflowDetectedError("a value outside [0, span]: it has no decomposition")
    k = len(weights)
    high = arr > np.uint64((1 << (k - 1)) - 1)
    rest = np.where(high, arr - np.uint64(weights[-1]), arr)
    bits = np.empty((k, arr.size), dtype=np.uint8)
    for i in range(k - 1):
        bits[i] = (rest >> np.uint64(i)) & np.uint64(1)
    bits[k - 1] = high
    return bits


def recompose(bits: list[int], span: int) -> int:
    """Return sum_i w_i b_i (the inverse of :func:`decompose` on bits).

    Raises:
        InvalidInputError: a bad span or the wrong number of bits.
    """
    weights = bit_weights(span)
    if len(bits) != len(weights):
        raise InvalidInputError(f"expected {len(weights)} bits, got {len(bits)}")
    return sum(w * b for w, b in zip(weights, bits, strict=True))


__all__ = ["MAX_SPAN_BITS", "bit_weights", "decompose", "decompose_array", "recompose"]

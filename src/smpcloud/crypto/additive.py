"""Additive n-of-n secret sharing over the ring Z_2^64 (numpy ``uint64``, wrapping arithmetic).

A value v is split into n shares s_1..s_n, uniform subject to Σ s_i = v (mod 2^64): the first
n - 1 shares are independent uniform words from ``os.urandom`` and the last is v minus their sum.
All n shares are needed; any n - 1 of them are uniformly random and reveal nothing about v.

Signed integers use two's complement: int64 values are reinterpreted as uint64 and back, so
negative values and their sums wrap correctly as long as the true result fits in int64. This
ring carries Beaver triples and OT-based multiplication in the MPC runtime.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from smpcloud.crypto.field import random_words
from smpcloud.errors import InvalidInputError, ShareError, ThresholdNotMetError

RingVector = npt.NDArray[np.uint64]


@dataclass(frozen=True, slots=True, eq=False)
class AdditiveShare:
    """Party ``index``'s additive share (0-based, of ``n`` parties) of a vector in Z_2^64.

    Attributes:
        index: this share's position, 0..n-1.
        n: the number of shares; all of them are needed to reconstruct.
        y: the share words (secret: redacted in ``repr``).
    """

    index: int
    n: int
    y: RingVector

    def __repr__(self) -> str:
        return f"AdditiveShare(index={self.index}, n={self.n}, length={self.y.size}, y=<redacted>)"


def to_ring(values: int | Sequence[int] | npt.ArrayLike) -> RingVector:
    """Map signed (or unsigned) 64-bit integers to Z_2^64, two's complement.

    Raises:
        InvalidInputError: non-integer input or a value outside [-2^63, 2^64).
    """
    arr = np.atleast_1d(np.asarray(values))
    if arr.ndim != 1:
        raise InvalidInputError(f"expected a 1-D vector, got shape {arr.shape}")
    if arr.dtype == np.uint64:
        return arr.copy()
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64).view(np.uint64).copy()
    if arr.dtype == object:
        out = np.empty(arr.size, dtype=np.uint64)
        for i, v in enumerate(arr.tolist()):
            if not isinstance(v, int) or isinstance(v, bool):
                raise InvalidInputError("ring values must be integers")
            if not -(1 << 63) <= v < (1 << 64):
                raise InvalidInputError("ring value outside [-2^63, 2^64)")
            out[i] = v % (1 << 64)
        return out
    raise InvalidInputError(f"ring values must be integers, got dtype {arr.dtype}")


def from_ring(words: RingVector) -> npt.NDArray[np.int64]:
    """Interpret ring elements as signed int64 (two's complement)."""
    return np.asarray(words, dtype=np.uint64).view(np.int64)


def random_ring(m: int) -> RingVector:
    """Return m uniform elements of Z_2^64 from the OS CSPRNG."""
    return random_words(m)


def share(values: int | Sequence[int] | npt.ArrayLike, *, n: int) -> list[AdditiveShare]:
    """Split values into n additive shares over Z_2^64; all n are needed to reconstruct.

    Reveals nothing to any n - 1 holders. Randomness: OS CSPRNG.

    Raises:
        InvalidInputError: n < 1, or values that are not 64-bit integers.
    """
    if not isinstance(n, int) or n < 1:
        raise InvalidInputError(f"number of additive shares n={n} must be at least 1")
    secret = to_ring(values)
    masks = [random_ring(secret.size) for _ in range(n - 1)]
    last = secret.copy()
    for r in masks:
        last -= r  # wraps mod 2^64 by design
    return [AdditiveShare(i, n, y) for i, y in enumerate([*masks, last])]


def reconstruct(shares: Sequence[AdditiveShare]) -> npt.NDArray[np.int64]:
    """Add all n shares and return the values as signed int64.

    Raises:
        ThresholdNotMetError: fewer than n shares.
        ShareError: duplicate indices, mixed n, or mixed lengths.
    """
    if not shares:
        raise ThresholdNotMetError("no additive shares supplied")
    n = shares[0].n
    if any(s.n != n for s in shares):
        raise ShareError("additive shares from sharings with different n")
    if len({s.index for s in shares}) != len(shares):
        raise ShareError("duplicate additive share indices")
    if len(shares) < n:
        raise ThresholdNotMetError(f"{len(shares)} of {n} additive shares supplied; all needed")
    size = shares[0].y.size
    if any(s.y.size != size for s in shares):
        raise ShareError("additive shares of different lengths")
    total = np.zeros(size, dtype=np.uint64)
    for s in shares:
        total += s.y
    return from_ring(total)

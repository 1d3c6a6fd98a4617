"""Vectorised residue-number-system conversions of the MPC runtime (exact, numpy only).

Field elements are stored as residues modulo word-size primes (``uint64`` arrays of shape
``(k, m)``, :mod:`smpcloud.crypto.field`); these helpers map signed 64-bit integers into them,
read small signed values and low bits back out with the CRT (a floating-point quotient, checked
or corrected where it could be ambiguous), and give the size of truncation masks. They hold no
secret state; :mod:`smpcloud.mpc.runtime` and the triple sources use them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Final

import numpy as np
import numpy.typing as npt

from smpcloud.crypto.field import Field, Residues

_WORD: Final = 1 << 64
_TAU: Final = 2.0**-30  # float margin in CRT lifting (the true error is below 2^-47)


@dataclass(frozen=True, slots=True)
class _FieldConstants:
    crt_weight: npt.NDArray[np.uint64]  # (k, 1): (M/p_i)^-1 mod p_i
    crt_inv_p: npt.NDArray[np.float64]  # (k, 1): 1/p_i
    crt_cofactor64: npt.NDArray[np.uint64]  # (k, 1): (M/p_i) mod 2^64
    modulus64: np.uint64  # M mod 2^64


@lru_cache(maxsize=32)
def _constants(field: Field) -> _FieldConstants:
    ps = field.moduli
    modulus = field.modulus
    k = field.k
    return _FieldConstants(
        crt_weight=np.array([pow(modulus // p, -1, p) for p in ps], dtype=np.uint64).reshape(k, 1),
        crt_inv_p=np.array([1.0 / p for p in ps], dtype=np.float64).reshape(k, 1),
        crt_cofactor64=np.array([(modulus // p) % _WORD for p in ps], dtype=np.uint64).reshape(
            k, 1
        ),
        modulus64=np.uint64(modulus % _WORD),
    )


def mask_bits(field: Field) -> int:
    """Return R, the bit size of truncation masks in ``field``: 2^(R+1) <= M."""
    return field.modulus.bit_length() - 2


def from_int64(field: Field, values: npt.NDArray[np.int64]) -> Residues:
    """Map signed 64-bit integers to field elements, vectorised (shape ``(k, m)``)."""
    shifted = values.view(np.uint64) ^ np.uint64(1 << 63)  # v + 2^63, in [0, 2^64)
    out = np.empty((field.k, values.shape[0]), dtype=np.uint64)
    scratch = np.empty_like(shifted)
    for i, p in enumerate(field.moduli):
        row = out[i]
        prime = np.uint64(p)
        np.remainder(shifted, prime, out=row)
        row += np.uint64((p - (1 << 63) % p) % p)  # subtract 2^63 again: row < 2p now
        np.subtract(row, prime, out=scratch)
        np.minimum(row, scratch, out=row)  # conditional subtraction (unsigned wrap)
    return out


def _crt_lift(field: Field, x: Residues) -> tuple[Residues, npt.NDArray[np.float64]]:
    """Return c_i = x_i (M/p_i)^-1 mod p_i and sum_i c_i / p_i (a float).

    The integer value is X = sum_i c_i (M/p_i) - q M with q = floor(sum_i c_i / p_i).
    """
    consts = _constants(field)
    c = x * consts.crt_weight
    c %= field.column
    frac = np.multiply(c, consts.crt_inv_p, dtype=np.float64).sum(axis=0)
    return c, frac


def small_to_int64(field: Field, x: Residues) -> npt.NDArray[np.int64]:
    """Return signed elements known to satisfy |v| < 2^63 and 4|v| < M, as int64, exactly.

    CRT with a floating-point quotient: sum c_i / p_i lies within |v|/M <= 1/4 of an
    integer, far more than the float error (< 2^-47), so rounding it gives the exact quotient.
    The caller guarantees the bound (the tracked public bound of a :class:`SharedVector`).
    """
    consts = _constants(field)
    c, frac = _crt_lift(field, x)
    q = np.rint(frac).astype(np.uint64)
    c *= consts.crt_cofactor64  # c is ours: scale in place (wraps mod 2^64)
    low = c.sum(axis=0, dtype=np.uint64)  # wraps mod 2^64
    low -= q * consts.modulus64
    out: npt.NDArray[np.int64] = low.view(np.int64)
    return out


def low_bits(field: Field, x: Residues, bits: int) -> npt.NDArray[np.uint64]:
    """Return X mod 2^bits for elements read as unsigned integers X in [0, M), exactly.

    CRT with a floating-point quotient; the rare elements whose quotient is ambiguous (X
    within 2^-30 M of 0 or M) are converted exactly instead. Requires 0 <= bits <= 64.
    """
    consts = _constants(field)
    c, frac = _crt_lift(field, x)
    q = np.floor(frac)
    rest = frac - q
    c *= consts.crt_cofactor64  # c is ours: scale in place (wraps mod 2^64)
    low = c.sum(axis=0, dtype=np.uint64)
    low -= q.astype(np.uint64) * consts.modulus64
    unsure = np.flatnonzero((rest < _TAU) | (rest > 1.0 - _TAU))
    if unsure.size:
        exact = field.to_ints(x[:, unsure], signed=False)
        low[unsure] = np.array([int(v) % _WORD for v in exact.tolist()], dtype=np.uint64)
    if bits < 64:
        low &= np.uint64((1 << bits) - 1)
    result: npt.NDArray[np.uint64] = low
    return result


__all__ = ["from_int64", "low_bits", "mask_bits", "small_to_int64"]

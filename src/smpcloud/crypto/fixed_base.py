"""Fixed-base exponentiation tables: the fast-encryption table of Paillier's DJN randomiser.

:meth:`smpcloud.crypto.paillier.PublicKey.encrypt` computes h_s^r mod n^2 for a fixed base h_s
and a fresh short exponent r every time (Damgård, Jurik and Nielsen 2010, Sec. 4; the scheme,
its security assumption and what it reveals are in ``smpcloud.crypto.paillier``). With the base
fixed, h_s^r comes from a table T[i][j] = h_s^(j 2^(w i)) with one modular multiplication per
w-bit digit of r: about ceil(k/2)/w multiplications instead of a k-bit exponentiation. This
module holds that table (:class:`FixedBaseTable`) and the choice of its window size
(:func:`choose_window`); it knows nothing about Paillier keys.

*Window size, chosen by measurement.* The table holds ceil(ceil(k/2)/w) rows of 2^w residues mod
n^2 (about 64 bytes of overhead per gmpy2 integer, measured by RSS). Encryptions per second on one
core of the reference machine (gmpy2 2.3.2 / GMP 6.3.0), table size and build time, as printed by
``benchmarks/bench_paillier.py --sweep-windows``:

    ==  =============================  =============================
    w   k = 2048                       k = 3072
    ==  =============================  =============================
    4   1075/s,   2.2 MiB,   22 ms      375/s,   4.9 MiB,   67 ms
    5   1279/s,   3.6 MiB,   32 ms      451/s,   7.8 MiB,   94 ms
    6   1491/s,   6.0 MiB,   48 ms      529/s,  13.0 MiB,  144 ms
    7   1694/s,  10.3 MiB,   80 ms      608/s,  22.3 MiB,  229 ms
    8   1886/s,  18.0 MiB,  135 ms      685/s,  39.0 MiB,  385 ms
    ==  =============================  =============================

(phe 1.5, classic r^n encryption: about 121/s at 2048 bits and 39/s at 3072 bits.) Each extra
window bit gains ~12-15% while the memory doubles, so the largest window whose table fits in
16 MiB is used: w = 7 at 2048 bits (10.3 MiB), w = 6 at 3072 bits (13.0 MiB), w = 5 at 4096
bits; from about 8192 bits no table fits and each encryption does one short-exponent powmod.

Pure module: no sockets, no files, no randomness, no global mutable state.
"""

from __future__ import annotations

from typing import Final

import gmpy2
from gmpy2 import mpz

#: Memory budget of one table, in bytes: the largest window whose table fits is chosen.
TABLE_BUDGET_BYTES: Final = 16 << 20
_MPZ_OVERHEAD_BYTES: Final = 64  # per gmpy2.mpz: object header + malloc slack (measured by RSS)
_WINDOWS: Final = (8, 7, 6, 5, 4, 3, 2)
_ONE: Final = mpz(1)


def choose_window(exponent_bits: int, modulus_bytes: int) -> int:
    """Pick the largest window whose fixed-base table fits the memory budget (see module doc).

    Args:
        exponent_bits: the largest exponent the table serves has fewer bits than this.
        modulus_bytes: byte length of the modulus (of n^2 for Paillier).

    Returns:
        The window w in bits; 0 (no table: one short-exponent powmod per encryption) for
        moduli so large that no window fits, about 8192 bits and up for Paillier.
    """
    for window in _WINDOWS:
        rows = -(-exponent_bits // window)
        table_bytes = rows * (1 << window) * (modulus_bytes + _MPZ_OVERHEAD_BYTES)
        if table_bytes <= TABLE_BUDGET_BYTES:
            return window
    return 0


class FixedBaseTable:
    """Fixed-base exponentiation: rows[i][j] = base^(j 2^(w i)) mod modulus.

    base^e for e < 2^exponent_bits is the product over the w-bit digits d_i of e of rows[i][d_i],
    so one modular multiplication per non-zero digit (BGMW-style fixed-base windowing). Window 0
    means no table: a plain powmod per call.

    Args:
        base: the fixed base, a unit mod modulus.
        modulus: the modulus (n^2 for Paillier).
        exponent_bits: exponents passed to :meth:`mul_pow` are below 2^exponent_bits.
        window: digit size w in bits (0 = no table); see :func:`choose_window`.
    """

    __slots__ = ("base", "exponent_bits", "modulus", "rows", "window")

    def __init__(self, base: mpz, modulus: mpz, exponent_bits: int, window: int) -> None:
        self.base = base
        self.modulus = modulus
        self.exponent_bits = exponent_bits
        self.window = window
        self.rows: tuple[tuple[mpz, ...], ...] = ()
        if window == 0:
            return
        size = 1 << window
        rows: list[tuple[mpz, ...]] = []
        b = base
        for _ in range(-(-exponent_bits // window)):
            row = [_ONE] * size
            x = _ONE
            for j in range(1, size):
                x = x * b % modulus
                row[j] = x
            rows.append(tuple(row))
            b = x * b % modulus  # base^(2^(w (i + 1)))
        self.rows = tuple(rows)

    def table_bytes(self) -> int:
        """Return the approximate memory held by the table."""
        entry = (int(self.modulus).bit_length() + 7) // 8 + _MPZ_OVERHEAD_BYTES
        return max(len(self.rows) * (1 << self.window), 1) * entry

    def mul_pow(self, acc: mpz, exponent: int) -> mpz:
        """Return acc * base^exponent mod modulus, for 0 <= exponent < 2^exponent_bits."""
        modulus = self.modulus
        window = self.window
        if not window:
            return acc * gmpy2.powmod(self.base, exponent, modulus) % modulus
        mask = (1 << window) - 1
        for row in self.rows:
            digit = exponent & mask
            if digit:
                acc = acc * row[digit] % modulus
            exponent >>= window
        return acc


__all__ = ["TABLE_BUDGET_BYTES", "FixedBaseTable", "choose_window"]

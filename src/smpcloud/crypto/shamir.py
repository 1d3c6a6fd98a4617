"""Shamir t-of-n secret sharing with Lagrange reconstruction (Shamir 1979), vectorised.

A secret s is the constant term of a random polynomial f of degree t - 1; party i receives
f(i) for i = 1..n. Any t shares determine f and so s = f(0) by Lagrange interpolation; any t - 1
shares are uniformly distributed and independent of s. Vectors share element-wise with
independent polynomials, so one ``Share`` object carries one party's share of a whole vector.

Conventions (docs/architecture.md): **t shares reconstruct** (degree t - 1); x-coordinates are 1..n.
Values are signed integers (use :mod:`smpcloud.crypto.encoding` for floats); they are mapped
into the field as v mod M and come back signed.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

import numpy as np
import numpy.typing as npt

from smpcloud.crypto.field import DEFAULT_FIELD, Field, Residues, random_elements
from smpcloud.errors import InvalidInputError, ShareError, ThresholdNotMetError

_MAGIC: Final = b"SMPS"
_VERSION: Final = 1
_HEADER: Final = struct.Struct(">4sBIIIIB")  # magic, version, x, t, k, m, scalar


@dataclass(frozen=True, slots=True, eq=False)
class Share:
    """One party's Shamir share of a scalar or a vector.

    Attributes:
        x: the evaluation point, 1..n (the party's index).
        y: the share values f(x), field residues of shape ``(field.k, m)``. Secret: never logged.
        field: the field the polynomial lives in.
        t: the reconstruction threshold (number of shares needed).
        scalar: True when the shared value was a single int (reconstruct returns an int).
    """

    x: int
    y: Residues
    field: Field
    t: int
    scalar: bool = False

    def __repr__(self) -> str:
        return f"Share(x={self.x}, t={self.t}, length={self.length}, y=<redacted>)"

    @property
    def length(self) -> int:
        """Number of shared values (1 for a scalar)."""
        return int(self.y.shape[1])

    def __add__(self, other: object) -> Share:
        """Add two shares of the same party (shares of a + b), or a public int to the share."""
        if isinstance(other, Share):
            _check_compatible([self, other], same_x=True)
            return Share(self.x, self.field.add(self.y, other.y), self.field, self.t, self.scalar)
        if isinstance(other, int):
            return Share(self.x, self.field.add_int(self.y, other), self.field, self.t, self.scalar)
        return NotImplemented

    __radd__ = __add__

    def __sub__(self, other: object) -> Share:
        if isinstance(other, Share):
            _check_compatible([self, other], same_x=True)
            return Share(self.x, self.field.sub(self.y, other.y), self.field, self.t, self.scalar)
        if isinstance(other, int):
            return Share(
                self.x, self.field.add_int(self.y, -other), self.field, self.t, self.scalar
            )
        return NotImplemented

    def __mul__(self, other: object) -> Share:
        """Multiply by a public integer (a share of c * s)."""
        if isinstance(other, int) and not isinstance(other, bool):
            return Share(self.x, self.field.mul_int(self.y, other), self.field, self.t, self.scalar)
        return NotImplemented

    __rmul__ = __mul__

    def to_bytes(self) -> bytes:
        """Encode as ``SMPS`` header, the field's moduli, then residues (big-endian uint32)."""
        k, m = self.y.shape
        head = _HEADER.pack(_MAGIC, _VERSION, self.x, self.t, k, m, int(self.scalar))
        moduli = struct.pack(f">{k}I", *self.field.moduli)
        return head + moduli + self.y.astype(">u4").tobytes()

    @classmethod
    def from_bytes(cls, data: bytes, *, field: Field = DEFAULT_FIELD) -> Share:
        """Decode strictly: header, expected field, exact length, residues inside the field.

        Raises:
            ShareError: wrong magic/version, a share from another field, x or t out of range,
                truncated or trailing bytes, or a residue outside the field.
        """
        if len(data) < _HEADER.size:
            raise ShareError("share encoding too short")
        magic, version, x, t, k, m, scalar = _HEADER.unpack_from(data)
        if magic != _MAGIC or version != _VERSION:
            raise ShareError("not a smpcloud share encoding (bad magic or version)")
        if k != field.k:
            raise ShareError(f"share from another field: {k} moduli, expected {field.k}")
        expected = _HEADER.size + 4 * k + 4 * k * m
        if len(data) != expected:
            raise ShareError(f"share encoding has {len(data)} bytes, expected {expected}")
        moduli = struct.unpack_from(f">{k}I", data, _HEADER.size)
        if tuple(moduli) != field.moduli:
            raise ShareError("share from another field (moduli differ)")
        if scalar not in (0, 1) or (scalar and m != 1):
            raise ShareError("bad scalar flag in share encoding")
        if not 1 <= x < field.min_modulus or not 1 <= t < field.min_modulus:
            raise ShareError(f"share x={x} or t={t} out of range")
        y = (
            np.frombuffer(data, dtype=">u4", offset=_HEADER.size + 4 * k)
            .astype(np.uint64)
            .reshape(k, m)
        )
        if (y >= np.array(field.moduli, dtype=np.uint64).reshape(k, 1)).any():
            raise ShareError("share value outside the field")
        return cls(x=x, y=y, field=field, t=t, scalar=bool(scalar))


def check_parameters(n: int, t: int, field: Field = DEFAULT_FIELD) -> None:
    """Check 1 <= t <= n < min modulus of the field.

    Raises:
        InvalidInputError: if the parameters are out of range.
    """
    if not isinstance(n, int) or not isinstance(t, int):
        raise InvalidInputError("n and t must be integers")
    if t < 1:
        raise InvalidInputError(f"threshold t={t} must be at least 1")
    if t > n:
        raise InvalidInputError(f"threshold t={t} exceeds the number of shares n={n}")
    if n >= field.min_modulus:
        raise InvalidInputError(f"n={n} must be smaller than the field's prime moduli")


def share(
    values: int | Sequence[int] | npt.NDArray[np.integer] | npt.NDArray[np.object_],
    *,
    n: int,
    t: int,
    field: Field = DEFAULT_FIELD,
) -> list[Share]:
    """Split values into n Shamir shares; any t of them rebuild the values (degree t - 1).

    Args:
        values: a signed int, or a 1-D list / numpy array of signed ints.
        n: number of shares, x-coordinates 1..n.
        t: reconstruction threshold, 1 <= t <= n.
        field: the field to share in (default: :data:`DEFAULT_FIELD`).

    Returns:
        n shares, share i (0-based) for party x = i + 1.

    Reveals nothing to fewer than t holders. Randomness: OS CSPRNG.

    Raises:
        InvalidInputError: unless 1 <= t <= n < the field's moduli, or for non-integer values.
    """
    check_parameters(n, t, field)
    scalar = isinstance(values, (int, np.integer)) and not isinstance(values, bool)
    blocks = share_elements(field, field.from_ints(values), n=n, t=t)
    return [Share(x, y, field, t, scalar) for x, y in enumerate(blocks, start=1)]


def lagrange_coefficients(
    xs: Sequence[int], field: Field = DEFAULT_FIELD, *, at: int = 0
) -> list[int]:
    """Return λ_j with f(at) = Σ λ_j f(x_j) for distinct non-zero points xs, as ints mod M.

    λ_j = Π_{m≠j} (at - x_m) / (x_j - x_m)  (Lagrange interpolation at ``at``, 0 by default:
    the secret).

    Raises:
        ShareError: duplicate or out-of-range x-coordinates.
    """
    modulus = field.modulus
    if len(set(xs)) != len(xs):
        raise ShareError(f"duplicate share x-coordinates in {sorted(xs)}")
    if any(not 1 <= x < field.min_modulus for x in xs):
        raise ShareError("share x-coordinate out of range")
    out = []
    for j, xj in enumerate(xs):
        num, den = 1, 1
        for mi, xm in enumerate(xs):
            if mi != j:
                num = num * (at - xm) % modulus
                den = den * (xj - xm) % modulus
        out.append(num * pow(den, -1, modulus) % modulus)
    return out


def _evaluate_shares(
    field: Field, secret: Residues, coefficients: Sequence[Residues], x: int
) -> Residues:
    """Horner: secret + c_1 x + ... + c_{t-1} x^{t-1} at x (x < 2^31 keeps products < 2^64)."""
    column = field.column
    point = np.uint64(x)
    acc = secret.copy()
    if len(coefficients) == 1 and x <= 3:
        # Degree 1 at a small point: secret + x c_1 by repeated addition (no division).
        for _ in range(x):
            acc += coefficients[0]
            np.minimum(acc, acc - column, out=acc)  # conditional subtraction (unsigned wrap)
        return acc
    if coefficients:
        # acc = (((c_{t-1} x + c_{t-2}) x + ...) x + c_1) x + secret, reduced after each step
        acc = coefficients[-1] * point
        for c in reversed(coefficients[:-1]):
            acc += c
            acc %= column
            acc *= point
        acc += secret
        acc %= column
    return acc


def share_elements(field: Field, secret: Residues, *, n: int, t: int) -> list[Residues]:
    """Shamir-share field elements of shape (..., k, m); return the shares for x = 1..n.

    Any t shares rebuild the elements (degree t - 1); t - 1 reveal nothing. Randomness: OS
    CSPRNG (:func:`random_elements`).

    Raises:
        InvalidInputError: unless 1 <= t <= n < 2^31 and n below the field's primes.
    """
    check_parameters(n, t, field)
    if n >= 1 << 31:
        raise InvalidInputError("n must be below 2^31")
    coefficients = [random_elements(field, secret.shape) for _ in range(t - 1)]
    if t == 2:
        # Degree 1: f(x) = f(x - 1) + c_1, one modular addition per share (no products, and
        # a single scratch buffer for the conditional subtractions).
        column = field.column
        slope = coefficients[0]
        scratch = np.empty_like(slope)
        shares: list[Residues] = []
        previous = secret
        for _ in range(n):
            share = np.add(previous, slope)
            np.subtract(share, column, out=scratch)
            np.minimum(share, scratch, out=share)  # conditional subtraction (unsigned wrap)
            shares.append(share)
            previous = share
        return shares
    return [_evaluate_shares(field, secret, coefficients, x) for x in range(1, n + 1)]


@lru_cache(maxsize=1024)
def _lagrange_columns(field: Field, xs: tuple[int, ...]) -> list[npt.NDArray[np.uint64]]:
    lambdas = lagrange_coefficients(xs, field)
    return [
        np.array([lam % p for p in field.moduli], dtype=np.uint64).reshape(field.k, 1)
        for lam in lambdas
    ]


def interpolate(field: Field, xs: Sequence[int], shares: Sequence[Residues]) -> Residues:
    """Return f(0) from shares f(x_j) (Lagrange at 0), for blocks of shape (..., k, m).

    Raises:
        ShareError: duplicate or out-of-range x, or mismatched shapes.
    """
    if len(xs) != len(shares) or not shares:
        raise ShareError("need one share per x-coordinate")
    shape = shares[0].shape
    if any(s.shape != shape for s in shares):
        raise ShareError("shares of different shapes")
    column = field.column
    lambdas = _lagrange_columns(field, tuple(xs))
    acc: Residues = np.multiply(shares[0], lambdas[0])
    acc %= column
    if len(shares) > 1:
        term = np.empty_like(acc)  # one scratch buffer for every further term
        for lam, s in zip(lambdas[1:], shares[1:], strict=True):
            np.multiply(s, lam, out=term)
            term %= column
            acc += term  # both below p < 2^32: no overflow
            np.subtract(acc, column, out=term)
            np.minimum(acc, term, out=acc)  # conditional subtraction keeps acc < p
    return acc


def _check_compatible(shares: Sequence[Share], *, same_x: bool = False) -> None:
    first = shares[0]
    for s in shares[1:]:
        if s.field != first.field:
            raise ShareError(f"shares from different fields (x={first.x} and x={s.x})")
        if s.y.shape != first.y.shape:
            raise ShareError(
                f"shares of different lengths: {first.length} (x={first.x}) and "
                f"{s.length} (x={s.x})"
            )
        if s.t != first.t:
            raise ShareError(f"shares with different thresholds: t={first.t} and t={s.t}")
        if same_x and s.x != first.x:
            raise ShareError(f"cannot add shares of different parties x={first.x} and x={s.x}")


def reconstruct_elements(shares: Sequence[Share], *, field: Field | None = None) -> Residues:
    """Interpolate f(0) from t or more shares and return it as field residues ``(k, m)``.

    Uses the first t shares (all supplied shares are checked for consistency).

    Raises:
        ThresholdNotMetError: fewer than t shares.
        ShareError: duplicate x, mixed fields, thresholds or lengths, or shares not in ``field``.
    """
    if not shares:
        raise ThresholdNotMetError("no shares supplied")
    _check_compatible(shares)
    first = shares[0]
    if field is not None and first.field != field:
        raise ShareError("shares are from a different field than expected")
    if len({s.x for s in shares}) != len(shares):
        raise ShareError(f"duplicate share x-coordinates in {sorted(s.x for s in shares)}")
    if len(shares) < first.t:
        raise ThresholdNotMetError(
            f"{len(shares)} of {first.t} shares needed to reconstruct were supplied"
        )
    use = list(shares[: first.t])
    fld = first.field
    for s in use:
        fld.validate(s.y)
    return interpolate(fld, [s.x for s in use], [s.y for s in use])


def reconstruct(
    shares: Sequence[Share], *, exact: bool = False
) -> int | npt.NDArray[np.int64] | npt.NDArray[np.object_]:
    """Rebuild the shared values from any t (or more) shares.

    Args:
        shares: shares of the same secret, distinct x-coordinates.
        exact: for vectors, return a numpy object array of exact Python ints instead of int64
            (needed when a value, such as a large sum, does not fit in 64 bits).

    Returns:
        An int for a shared scalar; otherwise a 1-D numpy int64 array (or object array if exact).

    Raises:
        ThresholdNotMetError: fewer than t shares ("k of t shares needed ...").
        ShareError: duplicate x, mixed fields, thresholds or lengths.
        OverflowDetectedError: a vector value outside int64 while ``exact`` is False.
    """
    elements = reconstruct_elements(shares)
    fld = shares[0].field
    if shares[0].scalar:
        return fld.to_int(elements)
    return fld.to_ints(elements) if exact else fld.to_int64(elements)

"""Statistics over the union of the parties' private values (peer MPC, SPMD).

Every function is called by every computing party with its own values (for example one
hospital's patients); all inputs travel in **one** ``input_all`` round, and the result is
computed over all parties' values together. What each function reveals is stated in its
docstring; vector lengths (how many values each party contributes) are always public.

Fixed-point: reals are encoded as round(v * 2^f) with ``frac_bits`` f (default 16, resolution
1.5e-5) in a signed ``bits``-bit integer (default 64: |v| < 2^(63-f)); each input carries an
encoding error of at most 2^-(f+1). Beyond that, :func:`mean`, :func:`dot_product`,
:func:`sum_of_squares`, :func:`variance` and :func:`weighted_mean` are **exact** on the encoded
values: products are kept at 2f fractional bits (no truncation) and only the final statistic is
opened, then divided publicly in float64. This needs the field to hold the unreduced result;
with :data:`~smpcloud.mpc.runtime.MPC_FIELD` (2^192) and 64-bit inputs the variance works for
up to 2^31 values in total; the runtime raises :class:`~smpcloud.errors.OverflowDetectedError`
before sending anything if a bound could be exceeded (declare smaller ``bits`` then).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence

import numpy as np

from smpcloud.errors import InvalidInputError, ShareError
from smpcloud.mpc.runtime import DEFAULT_BITS, Opened, Party, SharedVector

DEFAULT_FRAC_BITS = 16


async def secure_sum(
    party: Party, values: object, *, frac_bits: int | None = None, bits: int = DEFAULT_BITS
) -> Opened:
    """Return the element-wise sum of every party's vector (the paper's secure sum).

    1. Each party Shamir-shares its input vector to all parties (one round).
    2. Each party adds up the shares it holds (local).
    3. The sum is opened (one round): every live party's share is checked to lie on one
       polynomial of degree t - 1 and the sum is interpolated from t of them; up to n - t
       parties may drop out of this step.

    Args:
        party: this party's context.
        values: this party's vector; every party's must have the same length.
        frac_bits: None for integers (exact); f for reals in fixed-point.
        bits: inputs fit a signed ``bits``-bit integer (after fixed-point encoding).

    Returns:
        int64 (or exact ints if the bound exceeds 63 bits) or float64 vector of sums.

    Reveals: the sum vector, and nothing else (beyond the public vector length).

    Raises:
        ShareError: parties contributed vectors of different lengths.
        ProtocolError: a party went silent in the input round, or fewer than t answered.
    """
    inputs = await party.input_all(values, frac_bits=frac_bits, bits=bits)
    lengths = {x.length for x in inputs}
    if len(lengths) != 1:
        raise ShareError(f"secure sum needs vectors of one length, got lengths {sorted(lengths)}")
    total = inputs[0]
    for x in inputs[1:]:
        total = total + x
    return await party.open(total)


async def _columns(
    party: Party,
    columns: Sequence[object],
    frac_bits: int | None,
    bits: int,
) -> list[SharedVector]:
    """Share several equally long columns of every party in one round; return each column
    over the union of all parties (party 1's rows first)."""
    arrays = [np.atleast_1d(np.asarray(c)) for c in columns]
    if len({a.shape for a in arrays}) != 1 or arrays[0].ndim != 1:
        raise InvalidInputError("the columns must be 1-D vectors of the same length")
    joined = np.concatenate(arrays) if len(arrays) > 1 else arrays[0]
    inputs = await party.input_all(joined, frac_bits=frac_bits, bits=bits)
    width = len(arrays)
    out: list[list[SharedVector]] = [[] for _ in range(width)]
    for owner, x in zip(party.parties, inputs, strict=True):
        if x.length % width:
            raise ShareError(f"party {owner} contributed a vector that does not split in {width}")
        rows = x.length // width
        for i in range(width):
            out[i].append(x[i * rows : (i + 1) * rows])
    return [SharedVector.concat(parts) for parts in out]


def _count(x: SharedVector) -> int:
    if x.length == 0:
        raise InvalidInputError("no values at all: the statistic is undefined")
    return x.length


async def mean(
    party: Party,
    values: object,
    *,
    frac_bits: int | None = DEFAULT_FRAC_BITS,
    bits: int = DEFAULT_BITS,
) -> float:
    """Return the mean of all parties' values: the secure sum divided by the public count.

    Reveals: the total (equivalently the mean) and the count N, nothing else.
    """
    (x,) = await _columns(party, [values], frac_bits, bits)
    count = _count(x)
    total = (await party.open(x.sum()))[0]
    return float(total) / count


async def sum_of_squares(
    party: Party,
    values: object,
    *,
    frac_bits: int | None = DEFAULT_FRAC_BITS,
    bits: int = DEFAULT_BITS,
) -> float:
    """Return sum_i x_i^2 over all parties' values (squares by Beaver multiplication).

    Reveals: the sum of squares only.
    """
    (x,) = await _columns(party, [values], frac_bits, bits)
    squares = await party.sum_of_squares(x, truncate=False)
    return float((await party.open(squares))[0])


async def dot_product(
    party: Party,
    xs: object,
    ys: object,
    *,
    frac_bits: int | None = DEFAULT_FRAC_BITS,
    bits: int = DEFAULT_BITS,
) -> float:
    """Return sum_i x_i y_i over all parties' rows (each party holds pairs (x_i, y_i)).

    One input round carries both columns; one Beaver round computes the products.

    Reveals: the dot product only.
    """
    x, y = await _columns(party, [xs, ys], frac_bits, bits)
    product = await party.dot(x, y, truncate=False)
    return float((await party.open(product))[0])


async def variance(
    party: Party,
    values: object,
    *,
    sample: bool = False,
    frac_bits: int | None = DEFAULT_FRAC_BITS,
    bits: int = DEFAULT_BITS,
) -> float:
    """Return the variance of all parties' values, E[x^2] - E[x]^2, opening only the result.

    In the field: S1 = sum x (local), S2 = sum x^2 and S1^2 by Beaver multiplication (two
    concurrent rounds), then N S2 - S1^2 = N^2 var (exact, 2f fractional bits) is the only
    value opened; it is divided by N^2 (population) or N(N - 1) (``sample``) in float64.
    Exact on the encoded inputs, so no cancellation error however large the mean.

    Reveals: the variance (and the public count N), nothing else.

    Raises:
        InvalidInputError: no values, or a sample variance of one value.
    """
    (x,) = await _columns(party, [values], frac_bits, bits)
    count = _count(x)
    if sample and count < 2:
        raise InvalidInputError("the sample variance needs at least two values")
    s1 = x.sum()
    s2, s1_squared = await asyncio.gather(
        party.sum_of_squares(x, truncate=False), party.mul(s1, s1, truncate=False)
    )
    scaled = s2 * count - s1_squared
    opened = float((await party.open(scaled))[0])
    return opened / (count * (count - 1) if sample else count * count)


async def standard_deviation(
    party: Party,
    values: object,
    *,
    sample: bool = False,
    frac_bits: int | None = DEFAULT_FRAC_BITS,
    bits: int = DEFAULT_BITS,
) -> float:
    """Return the square root of :func:`variance`.

    Reveals: the variance (the standard deviation is its public square root) and N.
    """
    var = await variance(party, values, sample=sample, frac_bits=frac_bits, bits=bits)
    return math.sqrt(max(var, 0.0))


async def weighted_mean(
    party: Party,
    values: object,
    weights: object,
    *,
    frac_bits: int | None = DEFAULT_FRAC_BITS,
    bits: int = DEFAULT_BITS,
) -> float:
    """Return sum w_i x_i / sum w_i over all parties' rows; the weights are secret too.

    One input round (values and weights together), one Beaver round for the products, one
    opening round for numerator and denominator together; the division is public.

    Reveals: the weighted sum sum w_i x_i and the total weight sum w_i (hence the weighted
    mean), nothing else. (Dividing inside MPC would hide the total weight but needs a secure
    division protocol, which this runtime does not have.)

    Raises:
        InvalidInputError: the weights sum to zero.
    """
    x, w = await _columns(party, [values, weights], frac_bits, bits)
    numerator = await party.dot(x, w, truncate=False)
    num, den = await party.open_many([numerator, w.sum()])
    if float(den[0]) == 0.0:
        raise InvalidInputError("the weights sum to zero: the weighted mean is undefined")
    return float(num[0]) / float(den[0])


__all__ = [
    "DEFAULT_FRAC_BITS",
    "dot_product",
    "mean",
    "secure_sum",
    "standard_deviation",
    "sum_of_squares",
    "variance",
    "weighted_mean",
]

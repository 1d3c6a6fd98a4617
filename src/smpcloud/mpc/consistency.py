"""Do the shares of an opened value lie on one polynomial of degree t - 1? (checked openings)

When more than t Shamir shares of a value are at hand, t of them determine the polynomial and
every further share must equal its value at that share's x. :func:`check_shares` checks this,
vectorised over a whole block (Lagrange weights at each further x, numpy residues, no
per-element loop), and when the check fails says who disagrees: with at least t + 2 shares,
the one party whose removal leaves the rest consistent; with exactly t + 1, only that some share
among them is inconsistent. Pure: no I/O, no randomness.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from smpcloud.crypto.field import Field, Residues
from smpcloud.crypto.shamir import lagrange_coefficients
from smpcloud.errors import ProtocolError, ShareError


@lru_cache(maxsize=1024)
def _weights(field: Field, xs: tuple[int, ...], at: int) -> tuple[npt.NDArray[np.uint64], ...]:
    """Lagrange weights L_i(at) for the points ``xs``, one (k, 1) residue column per point."""
    columns = []
    for weight in lagrange_coefficients(xs, field, at=at):
        columns.append(
            np.array([weight % p for p in field.moduli], dtype=np.uint64).reshape(field.k, 1)
        )
    return tuple(columns)


def evaluate_at(field: Field, xs: Sequence[int], shares: Sequence[Residues], at: int) -> Residues:
    """Return f(at) for the polynomial of degree len(xs) - 1 through the shares f(x_j).

    Args:
        field: the field of the shares.
        xs: distinct x-coordinates (each below every prime of the field).
        shares: one block per x, all of one shape (..., k, m).
        at: where to evaluate.

    Returns:
        A block of the shares' shape.

    Raises:
        ShareError: duplicate x-coordinates, or a share count that does not match.
    """
    if len(xs) != len(shares) or not shares:
        raise ShareError("need one share per x-coordinate")
    if len(set(xs)) != len(xs):
        raise ShareError(f"duplicate x-coordinates in {list(xs)}")
    column = field.column
    weights = _weights(field, tuple(xs), at)
    acc: Residues = np.multiply(shares[0], weights[0])
    acc %= column
    term = np.empty_like(acc)
    for weight, share in zip(weights[1:], shares[1:], strict=True):
        np.multiply(share, weight, out=term)
        term %= column
        acc += term  # both below p < 2^32: no overflow
        np.subtract(acc, column, out=term)
        np.minimum(acc, term, out=acc)  # conditional subtraction keeps acc < p
    return acc


def consistent(field: Field, xs: Sequence[int], shares: Sequence[Residues], t: int) -> bool:
    """Return whether the shares all lie on one polynomial of degree t - 1.

    Interpolates from the first t shares and compares every further share with the
    polynomial's value at its x. Fewer than t + 1 shares are always consistent.

    Raises:
        ShareError: mismatched shapes or duplicate x-coordinates.
    """
    if len(xs) != len(shares):
        raise ShareError("need one share per x-coordinate")
    if len(shares) <= t:
        return True
    base_x, base = list(xs[:t]), list(shares[:t])
    for x, share in zip(xs[t:], shares[t:], strict=True):
        if share.shape != base[0].shape:
            raise ShareError("shares of different shapes")
        if not np.array_equal(evaluate_at(field, base_x, base, x), share):
            return False
    return True


def check_shares(
    field: Field, xs: Sequence[int], shares: Sequence[Residues], t: int, what: str
) -> None:
    """Check that the shares of an opening lie on one polynomial of degree t - 1.

    Args:
        field: the field of the shares.
        xs: the parties' x-coordinates (their ids), distinct.
        shares: each party's share, one block per x (any shape (..., k, m), the same for all).
        t: threshold (t shares reconstruct).
        what: the opening, for the message.

    Raises:
        ProtocolError: the shares disagree. With at least t + 2 shares the message names the
            party whose share disagrees (the one whose removal makes the rest consistent),
            or says that several do; with t + 1 it says that a share among them is
            inconsistent.
        ShareError: mismatched shapes or duplicate x-coordinates.
    """
    if consistent(field, xs, shares, t):
        return
    parties = sorted(xs)
    if len(xs) >= t + 2:
        culprits = [
            x
            for i, x in enumerate(xs)
            if consistent(field, [*xs[:i], *xs[i + 1 :]], [*shares[:i], *shares[i + 1 :]], t)
        ]
        if len(culprits) == 1:
            raise ProtocolError(
                f"{what}: party {culprits[0]}'s share disagrees with the shares of parties "
                f"{[p for p in parties if p != culprits[0]]} (they lie on one polynomial of "
                f"degree {t - 1}, its share does not)"
            )
        raise ProtocolError(
            f"{what}: the shares of parties {parties} do not lie on one polynomial of degree "
            f"{t - 1}, and no single party's share explains it (several are inconsistent)"
        )
    raise ProtocolError(
        f"{what}: an inconsistent share among parties {parties} (they do not lie on one "
        f"polynomial of degree {t - 1}; with {len(xs)} shares the party cannot be told)"
    )


__all__ = ["check_shares", "consistent", "evaluate_at"]

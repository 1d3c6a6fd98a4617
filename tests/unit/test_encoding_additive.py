"""Fixed-point range checks and additive-sharing error paths."""

from __future__ import annotations

import math

import numpy as np
import pytest

from smpcloud.crypto import additive
from smpcloud.crypto.encoding import FixedPoint
from smpcloud.errors import (
    InvalidInputError,
    OverflowDetectedError,
    ShareError,
    ThresholdNotMetError,
)


def test_encode_is_signed_and_exact_for_ints() -> None:
    fp = FixedPoint(frac_bits=8, bits=32)
    assert fp.encode(-3) == -3 * 256
    assert fp.encode(1.5) == 384
    assert fp.decode(fp.encode(-2.25)) == -2.25


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, 2.0**23, -(2.0**23) - 1])
def test_out_of_range_or_non_finite_raises(bad: float) -> None:
    fp = FixedPoint(frac_bits=8, bits=32)
    with pytest.raises(OverflowDetectedError):
        fp.encode(bad)
    with pytest.raises(OverflowDetectedError):
        fp.encode_array([0.0, bad])


def test_range_edges_for_64_bits() -> None:
    fp = FixedPoint(frac_bits=0, bits=64)
    assert fp.encode(2**63 - 1) == 2**63 - 1
    with pytest.raises(OverflowDetectedError):
        fp.encode(2**63)
    with pytest.raises(OverflowDetectedError):
        fp.encode_array([2.0**63])  # float(2^63 - 1) rounds to 2^63: must not wrap to -2^63
    assert fp.encode_array([-(2.0**63)])[0] == -(2**63)


def test_bad_parameters_and_types() -> None:
    with pytest.raises(InvalidInputError):
        FixedPoint(frac_bits=64, bits=64)
    with pytest.raises(InvalidInputError):
        FixedPoint(frac_bits=-1)
    with pytest.raises(InvalidInputError):
        FixedPoint().encode("1.0")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        FixedPoint().encode(True)


def test_ring_round_trip_with_negatives() -> None:
    fp = FixedPoint(frac_bits=16)
    vals = np.array([-1.5, 0.0, 3.25, -1e6])
    assert np.array_equal(fp.from_ring(fp.to_ring(vals)), vals)


def test_additive_needs_every_share() -> None:
    shares = additive.share([5, -6], n=3)
    with pytest.raises(ThresholdNotMetError, match="2 of 3"):
        additive.reconstruct(shares[:2])
    with pytest.raises(ShareError, match="duplicate"):
        additive.reconstruct([shares[0], shares[0], shares[1]])
    with pytest.raises(InvalidInputError):
        additive.share([1], n=0)
    with pytest.raises(InvalidInputError):
        additive.share([2**64], n=2)


def test_additive_shares_look_random() -> None:
    shares = additive.share(np.zeros(1000, dtype=np.int64), n=2)
    assert len(np.unique(shares[0].y)) == 1000
    assert "redacted" in repr(shares[0])

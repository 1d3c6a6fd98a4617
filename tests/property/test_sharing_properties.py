"""Hypothesis: the algebraic laws of Shamir and additive sharing and of fixed-point encoding."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from smpcloud.crypto import additive, shamir
from smpcloud.crypto.encoding import FixedPoint
from smpcloud.crypto.field import DEFAULT_FIELD

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
BIG = st.integers(min_value=-(DEFAULT_FIELD.modulus // 2), max_value=DEFAULT_FIELD.modulus // 2)


@st.composite
def n_and_t(draw: st.DrawFn) -> tuple[int, int]:
    n = draw(st.integers(min_value=1, max_value=7))
    return n, draw(st.integers(min_value=1, max_value=n))


@given(nt=n_and_t(), value=BIG)
def test_any_t_of_n_reconstruct_a_scalar(nt: tuple[int, int], value: int) -> None:
    n, t = nt
    shares = shamir.share(value, n=n, t=t)
    for subset in itertools.combinations(shares, t):
        assert shamir.reconstruct(subset) == value


@given(nt=n_and_t(), values=st.lists(INT64, min_size=1, max_size=20))
def test_any_t_of_n_reconstruct_a_vector(nt: tuple[int, int], values: list[int]) -> None:
    n, t = nt
    shares = shamir.share(np.array(values, dtype=np.int64), n=n, t=t)
    for subset in itertools.combinations(shares, t):
        assert shamir.reconstruct(subset).tolist() == values


@given(
    a=st.lists(INT64, min_size=3, max_size=3),
    b=st.lists(INT64, min_size=3, max_size=3),
    c=st.integers(min_value=-(2**20), max_value=2**20),
)
def test_shares_are_linear(a: list[int], b: list[int], c: int) -> None:
    sa = shamir.share(np.array(a), n=4, t=3)
    sb = shamir.share(np.array(b), n=4, t=3)
    combined = [x * c + y for x, y in zip(sa, sb)]
    got = shamir.reconstruct(combined[1:], exact=True).tolist()
    assert got == [x * c + y for x, y in zip(a, b)]


@given(nt=n_and_t(), values=st.lists(INT64, min_size=1, max_size=5))
def test_share_bytes_round_trip(nt: tuple[int, int], values: list[int]) -> None:
    n, t = nt
    for s in shamir.share(np.array(values, dtype=np.int64), n=n, t=t):
        back = shamir.Share.from_bytes(s.to_bytes())
        assert (back.x, back.t, back.scalar) == (s.x, s.t, s.scalar)
        assert np.array_equal(back.y, s.y)


@given(n=st.integers(min_value=1, max_value=8), values=st.lists(INT64, min_size=1, max_size=10))
def test_additive_shares_reconstruct(n: int, values: list[int]) -> None:
    shares = additive.share(values, n=n)
    assert additive.reconstruct(shares).tolist() == values


@given(a=st.lists(INT64, min_size=4, max_size=4), b=st.lists(INT64, min_size=4, max_size=4))
def test_additive_sum_wraps_like_int64(a: list[int], b: list[int]) -> None:
    sa, sb = additive.share(a, n=3), additive.share(b, n=3)
    summed = [additive.AdditiveShare(x.index, 3, x.y + y.y) for x, y in zip(sa, sb)]
    expected = [((x + y + 2**63) % 2**64) - 2**63 for x, y in zip(a, b)]
    assert additive.reconstruct(summed).tolist() == expected


@given(f=st.integers(min_value=0, max_value=40), x=st.floats(-1e6, 1e6))
def test_fixed_point_round_trip_error_is_half_ulp(f: int, x: float) -> None:
    fp = FixedPoint(frac_bits=f, bits=64)
    assert abs(fp.decode(fp.encode(x)) - x) <= 2.0 ** -(f + 1) + abs(x) * 2.0**-52
    back = fp.decode_array(fp.encode_array([x]))[0]
    assert abs(back - x) <= 2.0 ** -(f + 1) + abs(x) * 2.0**-52


@given(values=st.lists(st.floats(-1e9, 1e9), min_size=1, max_size=30), nt=n_and_t())
def test_fixed_point_through_shamir(values: list[float], nt: tuple[int, int]) -> None:
    n, t = nt
    fp = FixedPoint(frac_bits=16)
    shares = shamir.share(fp.encode_array(values), n=n, t=t)
    back = fp.from_field(shamir.reconstruct_elements(shares[-t:]))
    assert np.all(np.abs(back - np.array(values)) <= 2.0**-17 + np.abs(values) * 2.0**-52)

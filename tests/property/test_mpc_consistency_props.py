"""Hypothesis: the check of checked openings (``smpcloud.mpc.consistency``).

Consistent shares of any polynomial of degree t - 1 always pass; a single changed share is
always caught when n > t, and named when n >= t + 2. Polynomials are drawn by hypothesis
(Python ints mod M, evaluated independently of the code under test).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smpcloud.crypto.field import DEFAULT_FIELD, Field
from smpcloud.errors import ProtocolError
from smpcloud.mpc.consistency import check_shares, consistent, evaluate_at
from smpcloud.mpc.runtime import MPC_FIELD

FIELDS = st.sampled_from([MPC_FIELD, DEFAULT_FIELD])


@st.composite
def sharings(draw: st.DrawFn, min_extra: int = 0) -> tuple[Field, int, list[int], list[np.ndarray]]:
    """A field, t, the parties' x (shuffled) and their shares of m values (shape (2, k, m))."""
    field = draw(FIELDS)
    t = draw(st.integers(min_value=1, max_value=5))
    n = draw(st.integers(min_value=t + min_extra, max_value=t + 4))
    m = draw(st.integers(min_value=1, max_value=6))
    modulus = field.modulus
    element = st.integers(min_value=0, max_value=modulus - 1)
    # 2 x m polynomials of degree t - 1: coefficients[v][e] = [c_0, ..., c_{t-1}]
    coefficients = [
        [draw(st.lists(element, min_size=t, max_size=t)) for _ in range(m)] for _ in range(2)
    ]
    xs = draw(st.permutations(list(range(1, n + 1))))

    def share(x: int) -> np.ndarray:
        rows = [
            [sum(c * pow(x, i, modulus) for i, c in enumerate(poly)) % modulus for poly in vector]
            for vector in coefficients
        ]
        return np.stack([field.from_ints(np.array(row, dtype=object)) for row in rows])

    return field, t, list(xs), [share(x) for x in xs]


@settings(max_examples=150, deadline=None)
@given(case=sharings())
def test_consistent_shares_always_pass(
    case: tuple[Field, int, list[int], list[np.ndarray]],
) -> None:
    field, t, xs, shares = case
    assert consistent(field, xs, shares, t)
    check_shares(field, xs, shares, t, "opening")  # does not raise
    if len(xs) > t:  # and the polynomial through any t of them predicts the others
        assert np.array_equal(evaluate_at(field, xs[:t], shares[:t], xs[t]), shares[t])


@settings(max_examples=150, deadline=None)
@given(case=sharings(min_extra=1), data=st.data())
def test_a_single_changed_share_is_always_caught_and_named_when_it_can_be(
    case: tuple[Field, int, list[int], list[np.ndarray]], data: st.DataObject
) -> None:
    field, t, xs, shares = case
    who = data.draw(st.integers(min_value=0, max_value=len(xs) - 1))
    vector = data.draw(st.integers(min_value=0, max_value=1))
    position = data.draw(st.integers(min_value=0, max_value=shares[0].shape[2] - 1))
    delta = data.draw(st.integers(min_value=1, max_value=field.modulus - 1))
    changed = [s.copy() for s in shares]
    old = field.to_ints(changed[who][vector][:, position : position + 1], signed=False)[0]
    changed[who][vector][:, position : position + 1] = field.from_ints(
        np.array([(int(old) + delta) % field.modulus], dtype=object)
    )
    assert not consistent(field, xs, changed, t)
    with pytest.raises(ProtocolError) as caught:
        check_shares(field, xs, changed, t, "opening")
    message = str(caught.value)
    if len(xs) >= t + 2:
        assert f"party {xs[who]}'s share disagrees" in message
    else:
        assert "an inconsistent share among parties" in message

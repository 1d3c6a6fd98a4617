"""Hypothesis: threshold combine with any t of n equals the plaintext of E(a) + E(b)."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from smpcloud.crypto import threshold

_KEYS: dict[tuple[int, int], tuple] = {}


def key_for(n: int, t: int) -> tuple:
    if (n, t) not in _KEYS:
        _KEYS[(n, t)] = threshold.deal(256, n=n, t=t, insecure=True)
    return _KEYS[(n, t)]


@st.composite
def n_and_t(draw: st.DrawFn) -> tuple[int, int]:
    n = draw(st.integers(min_value=1, max_value=5))
    return n, draw(st.integers(min_value=1, max_value=n))


VALUES = st.integers(min_value=-(2**100), max_value=2**100)


@given(nt=n_and_t(), a=VALUES, b=VALUES)
def test_any_t_of_n_decrypts_a_sum(nt: tuple[int, int], a: int, b: int) -> None:
    pk, shares = key_for(*nt)
    c = pk.encrypt(a) + pk.encrypt(b)
    partials = [s.partial_decrypt(c) for s in shares]
    for subset in itertools.combinations(partials, pk.threshold):
        assert threshold.combine(pk, subset) == a + b

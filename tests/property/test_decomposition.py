"""Laws of the weighted bit decomposition that every range check rests on."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from smpcloud.crypto.decomposition import bit_weights, decompose, decompose_array, recompose
from smpcloud.errors import InvalidInputError, OverflowDetectedError


@given(st.integers(1, 1 << 200), st.data())
def test_decompose_then_recompose_is_identity(span: int, data: st.DataObject) -> None:
    value = data.draw(st.integers(0, span))
    bits = decompose(value, span)
    assert set(bits) <= {0, 1}
    assert recompose(bits, span) == value


@pytest.mark.parametrize("span", [1, 2, 3, 5, 7, 8, 9, 100, 255, 256, 1000])
def test_every_bit_pattern_lands_in_range_and_covers_it(span: int) -> None:
    """Exactly the completeness and soundness a range check needs: the image is [0, span]."""
    k = len(bit_weights(span))
    image = {recompose(list(bits), span) for bits in itertools.product((0, 1), repeat=k)}
    assert image == set(range(span + 1))


@given(st.integers(1, (1 << 62)), st.lists(st.integers(0, 1 << 62), min_size=1, max_size=30))
def test_vectorised_matches_scalar(span: int, raw: list[int]) -> None:
    values = [v % (span + 1) for v in raw]
    bits = decompose_array(np.array(values, dtype=np.uint64), span)
    for j, value in enumerate(values):
        assert [int(b) for b in bits[:, j]] == decompose(value, span)


def test_bad_input_is_refused() -> None:
    with pytest.raises(InvalidInputError):
        bit_weights(0)
    with pytest.raises(OverflowDetectedError):
        decompose(6, 5)
    with pytest.raises(OverflowDetectedError):
        decompose(-1, 5)
    with pytest.raises(OverflowDetectedError):
        decompose_array(np.array([6], dtype=np.uint64), 5)

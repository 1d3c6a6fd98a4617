"""Hypothesis: packed Paillier vectors add slot-wise, exactly, and overflow is raised, not wrapped.

For random layouts (range, fractional bits, number of additions, length) and random signed
vectors inside the declared range, range edges included: pack -> encrypt -> add k ciphertext
vectors -> decrypt -> unpack equals the element-wise sum of round(x 2^f), computed here with
Python ints. Values outside the range raise before encryption; decoding with a count smaller than
the number of vectors added raises instead of returning a wrapped sum.
"""

from __future__ import annotations

import functools
import math

from hypothesis import assume, given
from hypothesis import strategies as st

from smpcloud.crypto import packing, paillier
from smpcloud.crypto.packing import Packing
from smpcloud.errors import OverflowDetectedError

KEY_BITS = 512


@functools.cache
def keys() -> tuple[paillier.PublicKey, paillier.PrivateKey]:
    return paillier.generate_keypair(KEY_BITS, insecure=True)


@st.composite
def layouts(draw: st.DrawFn, *, max_length: int = 40, integers: bool | None = None) -> Packing:
    if integers is None:
        integers = draw(st.booleans())
    if integers:
        lo = draw(st.integers(min_value=-(2**40), max_value=2**40))
        hi = draw(st.integers(min_value=lo, max_value=lo + 2**41))
        frac_bits = draw(st.integers(min_value=0, max_value=8))
        min_value: int | float = lo
        max_value: int | float = hi
    else:
        frac_bits = draw(st.integers(min_value=0, max_value=30))
        bound = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
        a, b = draw(bound), draw(bound)
        min_value, max_value = min(a, b), max(a, b)
    return Packing(
        length=draw(st.integers(min_value=1, max_value=max_length)),
        key_bits=KEY_BITS,
        min_value=min_value,
        max_value=max_value,
        max_additions=draw(st.integers(min_value=1, max_value=64)),
        frac_bits=frac_bits,
    )


def values_in(layout: Packing) -> st.SearchStrategy[int | float]:
    lo, hi = layout.min_value, layout.max_value
    edges = st.sampled_from([lo, hi])
    if isinstance(lo, int) and isinstance(hi, int):
        return st.one_of(edges, st.integers(min_value=lo, max_value=hi))
    inside = st.floats(min_value=lo, max_value=hi, allow_nan=False, allow_infinity=False)
    return st.one_of(edges, inside)


@st.composite
def layout_and_vectors(
    draw: st.DrawFn, *, max_vectors: int = 6, max_length: int = 40
) -> tuple[Packing, list[list[int | float]]]:
    layout = draw(layouts(max_length=max_length))
    k = draw(st.integers(min_value=1, max_value=min(layout.max_additions, max_vectors)))
    element = values_in(layout)
    vector = st.lists(element, min_size=layout.length, max_size=layout.length)
    return layout, draw(st.lists(vector, min_size=k, max_size=k))


def encoded(value: int | float, frac_bits: int) -> int:
    if isinstance(value, int):
        return value << frac_bits
    return round(value * 2**frac_bits)  # half to even, like numpy.rint


def expected_sums(layout: Packing, vectors: list[list[int | float]]) -> list[int]:
    return [sum(encoded(v[i], layout.frac_bits) for v in vectors) for i in range(layout.length)]


@given(data=layout_and_vectors())
def test_encrypt_add_decrypt_unpack_is_the_elementwise_sum(
    data: tuple[Packing, list[list[int | float]]],
) -> None:
    layout, vectors = data
    pk, sk = keys()
    cts = [packing.encrypt_vector(pk, v, layout) for v in vectors]
    total = [functools.reduce(lambda a, b: a + b, column) for column in zip(*cts)]
    plaintexts = [sk.decrypt(c) for c in total]
    sums = packing.unpack_sums(plaintexts, layout, len(vectors))
    assert sums == expected_sums(layout, vectors)
    floats = packing.decrypt_vector(sk, total, layout, len(vectors))
    assert floats.tolist() == [s / 2**layout.frac_bits for s in sums]


@given(data=layout_and_vectors(max_vectors=64, max_length=6))
def test_packed_plaintexts_add_like_integers_up_to_max_additions(
    data: tuple[Packing, list[list[int | float]]],
) -> None:
    layout, vectors = data
    packed = [packing.pack(v, layout) for v in vectors]
    sums = [sum(column) for column in zip(*packed)]
    # Never reaches the plaintext's sign band: no wrap-around modulo n is possible.
    assert all(0 <= s < 2 ** (KEY_BITS - 2) for s in sums)
    assert packing.unpack_sums(sums, layout, len(vectors)) == expected_sums(layout, vectors)


@given(layout=layouts(), data=st.data())
def test_values_outside_the_range_raise_before_encryption(
    layout: Packing, data: st.DataObject
) -> None:
    index = data.draw(st.integers(min_value=0, max_value=layout.length - 1))
    lo, hi = layout.min_value, layout.max_value
    if isinstance(lo, int) and isinstance(hi, int):
        bad: int | float = data.draw(
            st.one_of(
                st.integers(max_value=lo - 1, min_value=lo - 2**20),
                st.integers(min_value=hi + 1, max_value=hi + 2**20),
            )
        )
    else:
        bad = data.draw(
            st.one_of(
                st.floats(max_value=lo, exclude_max=True, allow_nan=False, min_value=-1e12),
                st.floats(min_value=hi, exclude_min=True, allow_nan=False, max_value=1e12),
                st.sampled_from([math.nan, math.inf, -math.inf]),
            )
        )
    vector: list[int | float] = [lo] * layout.length
    vector[index] = bad
    pk, _ = keys()
    try:
        packing.encrypt_vector(pk, vector, layout)
    except OverflowDetectedError as exc:
        assert f"first at index {index}" in str(exc)
    else:
        raise AssertionError("an out-of-range value was encrypted")


@given(data=layout_and_vectors(max_vectors=64, max_length=6))
def test_an_understated_count_is_detected_not_wrapped(
    data: tuple[Packing, list[list[int | float]]],
) -> None:
    layout, vectors = data
    assume(len(vectors) >= 2 and layout.span > 0)
    # Make one position maximal in every vector so that its slot sum exceeds (k - 1) span.
    for vector in vectors:
        vector[0] = layout.max_value
    packed = [packing.pack(v, layout) for v in vectors]
    sums = [sum(column) for column in zip(*packed)]
    try:
        packing.unpack_sums(sums, layout, len(vectors) - 1)
    except OverflowDetectedError:
        pass
    else:
        raise AssertionError("a sum of k vectors decoded as a sum of k - 1")


@given(layout=layouts())
def test_json_round_trip(layout: Packing) -> None:
    again = Packing.from_json(layout.to_json())
    assert again == layout
    assert (again.slots, again.slot_bits, again.lo, again.hi) == (
        layout.slots,
        layout.slot_bits,
        layout.lo,
        layout.hi,
    )

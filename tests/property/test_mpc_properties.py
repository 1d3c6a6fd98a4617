"""Hypothesis: the peer MPC runtime agrees with plain arithmetic, and the codec is strict.

Each example runs a whole SPMD computation on the in-memory network (``asyncio.run``).
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from smpcloud.crypto.field import DEFAULT_FIELD
from smpcloud.errors import ShareError
from smpcloud.mpc import codec
from smpcloud.mpc.local import run_local
from smpcloud.mpc.protocols import statistics as stats
from smpcloud.mpc.runtime import (
    MPC_FIELD,
    Party,
    SharedVector,
    from_int64,
    low_bits,
    small_to_int64,
)

F = MPC_FIELD
INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
INT32 = st.integers(min_value=-(2**31), max_value=2**31 - 1)

# Each example is a full multi-party run: fewer examples than the pure property tests.
mpc_settings = settings(max_examples=25, deadline=None)


@st.composite
def n_and_t(draw: st.DrawFn, max_n: int = 7) -> tuple[int, int]:
    n = draw(st.integers(min_value=2, max_value=max_n))
    return n, draw(st.integers(min_value=1, max_value=n))


def run(n: int, t: int, program: Any, **kwargs: Any) -> list[Any]:
    return asyncio.run(run_local(n, t, program, **kwargs))


@mpc_settings
@given(nt=n_and_t(), pairs=st.lists(st.tuples(INT64, INT64), min_size=1, max_size=30))
def test_beaver_product_equals_the_integer_product(
    nt: tuple[int, int], pairs: list[tuple[int, int]]
) -> None:
    n, t = nt
    a = np.array([p for p, _ in pairs], dtype=np.int64)
    b = np.array([q for _, q in pairs], dtype=np.int64)

    async def program(party: Party) -> list[int]:
        x = await party.input(a, owner=1)
        y = await party.input(b, owner=n)
        return [int(v) for v in await party.open(await party.mul(x, y))]

    expected = [p * q for p, q in pairs]
    assert all(result == expected for result in run(n, t, program))


@mpc_settings
@given(nt=n_and_t(5), rows=st.lists(st.tuples(INT32, INT32), min_size=1, max_size=40))
def test_dot_product_equals_the_plain_one(nt: tuple[int, int], rows: list[tuple[int, int]]) -> None:
    n, t = nt

    async def program(party: Party) -> int:
        x = await party.input(np.array([r[0] for r in rows]), owner=1, bits=32)
        y = await party.input(np.array([r[1] for r in rows]), owner=2, bits=32)
        return int((await party.open(await party.dot(x, y)))[0])

    assert run(n, t, program) == [sum(p * q for p, q in rows)] * n


@mpc_settings
@given(
    f=st.integers(min_value=1, max_value=30),
    pairs=st.lists(
        st.tuples(
            st.integers(min_value=-(2**45), max_value=2**45),
            st.integers(min_value=-(2**45), max_value=2**45),
        ),
        min_size=1,
        max_size=20,
    ),
)
def test_fixed_point_product_is_within_one_unit(f: int, pairs: list[tuple[int, int]]) -> None:
    # The encoded integers p, q are drawn, so the inputs p / 2^f, q / 2^f are exact and the
    # only error left is the truncation's: the result is floor(pq / 2^f) or one unit more.
    a = np.array([p for p, _ in pairs], dtype=np.float64) / 2**f
    b = np.array([q for _, q in pairs], dtype=np.float64) / 2**f

    async def program(party: Party) -> tuple[list[int], list[float]]:
        x = await party.input(a, owner=1, frac_bits=f)
        y = await party.input(b, owner=2, frac_bits=f)
        z = await party.mul(x, y)
        assert z.frac_bits == f
        as_integers = SharedVector(z.shares, z.field, None, z.bound)  # the encoded integers
        encoded, reals = await party.open_many([as_integers, z])
        return [int(v) for v in encoded], [float(v) for v in reals]

    for encoded, reals in run(3, 2, program):
        for (p, q), got, real in zip(pairs, encoded, reals, strict=True):
            assert got in ((p * q) >> f, ((p * q) >> f) + 1)
            assert abs(real - (p * q) / 2 ** (2 * f)) < 2.0**-f * (1 + 1e-9) + 1e-15 * abs(real)


@mpc_settings
@given(
    shift=st.integers(min_value=1, max_value=60),
    scale=st.integers(min_value=1, max_value=2**40),
    values=st.lists(INT64, min_size=1, max_size=20),
)
def test_truncation_is_floor_or_floor_plus_one(shift: int, scale: int, values: list[int]) -> None:
    async def program(party: Party) -> list[int]:
        x = await party.input(np.array(values, dtype=np.int64), owner=1)
        return [int(v) for v in await party.open(await party.truncate(x * scale, shift))]

    for result in run(3, 2, program):
        for v, got in zip(values, result, strict=True):
            assert got in ((v * scale) >> shift, ((v * scale) >> shift) + 1)


@mpc_settings
@given(nt=n_and_t(5), data=st.data())
def test_secure_sum_equals_the_plain_sum(nt: tuple[int, int], data: st.DataObject) -> None:
    n, t = nt
    length = data.draw(st.integers(min_value=1, max_value=10))
    vectors = [data.draw(st.lists(INT64, min_size=length, max_size=length)) for _ in range(n)]

    async def program(party: Party) -> list[int]:
        return [int(v) for v in await stats.secure_sum(party, vectors[party.id - 1])]

    expected = [sum(column) for column in zip(*vectors, strict=True)]
    assert run(n, t, program, dealer=False) == [expected] * n


@mpc_settings
@given(
    values=st.lists(
        st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), min_size=2, max_size=30
    )
)
def test_variance_equals_numpy_on_the_encoded_values(values: list[float]) -> None:
    half = len(values) // 2
    parts = {1: values[:half], 2: values[half:], 3: []}

    async def program(party: Party) -> float:
        return await stats.variance(party, np.array(parts[party.id], dtype=np.float64))

    encoded = np.rint(np.array(values) * 2**16) / 2**16
    expected = float(encoded.var())
    for result in run(3, 2, program):
        assert abs(result - expected) <= 1e-9 * max(1.0, expected)


# ============================================================================ pure helpers


@given(values=st.lists(INT64, min_size=1, max_size=50))
def test_int64_round_trip_through_residues(values: list[int]) -> None:
    arr = np.array(values, dtype=np.int64)
    elements = from_int64(F, arr)
    assert np.array_equal(elements, F.from_ints(arr))
    assert small_to_int64(F, elements).tolist() == values


@given(
    values=st.lists(st.integers(min_value=0, max_value=F.modulus - 1), min_size=1, max_size=30),
    bits=st.integers(min_value=0, max_value=64),
)
def test_low_bits_of_any_element(values: list[int], bits: int) -> None:
    elements = F.from_ints(np.array(values, dtype=object))
    assert low_bits(F, elements, bits).tolist() == [v % 2**bits for v in values]


@given(
    v=st.integers(min_value=1, max_value=4),
    m=st.integers(min_value=0, max_value=20),
    data=st.data(),
)
def test_codec_round_trip_and_strict_rejection(v: int, m: int, data: st.DataObject) -> None:
    field = data.draw(st.sampled_from([F, DEFAULT_FIELD]))
    block = np.array(
        [
            [
                data.draw(st.lists(st.integers(0, p - 1), min_size=m, max_size=m))
                for p in field.moduli
            ]
            for _ in range(v)
        ],
        dtype=np.uint64,
    ).reshape(v, field.k, m)
    encoded = codec.encode_vectors(field, block)
    assert np.array_equal(codec.decode_vectors(encoded, field, count=v, length=m), block)
    # Any change of length is rejected.
    cut = data.draw(st.integers(min_value=0, max_value=len(encoded) - 1))
    for bad in (encoded[:cut], encoded + data.draw(st.binary(min_size=1, max_size=8))):
        try:
            codec.decode_vectors(bad, field)
        except ShareError:
            pass
        else:
            raise AssertionError("a truncated or extended encoding was accepted")
    # Any change to the header is rejected by a receiver that knows what to expect (as the
    # runtime always does); a change to the body is rejected or changes the values.
    pos = data.draw(st.integers(min_value=0, max_value=len(encoded) - 1))
    flip = data.draw(st.integers(min_value=1, max_value=255))
    mutated = bytearray(encoded)
    mutated[pos] ^= flip
    try:
        back = codec.decode_vectors(bytes(mutated), field, count=v, length=m)
    except ShareError:
        return
    header = 12 + 4 * field.k
    assert pos >= header, "a header mutation was accepted"
    assert not np.array_equal(back, block)

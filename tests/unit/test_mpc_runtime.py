"""The peer MPC runtime on the in-memory network: sharing, opening, Beaver multiplication,
truncation, statistics, drop-outs, the dealer and malformed messages.

Expected values are computed independently with Python ints and numpy. pytest-asyncio is not
installed: every test drives its coroutines with ``asyncio.run``.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

import gmpy2
import numpy as np
import pytest

from smpcloud.crypto.field import DEFAULT_FIELD, Field, random_bits
from smpcloud.errors import (
    InvalidInputError,
    OverflowDetectedError,
    ProtocolError,
    ShareError,
    TransportError,
)
from smpcloud.mpc import codec, memory
from smpcloud.mpc.codec import Request, RequestOp
from smpcloud.mpc.dealer import deal_triples, deal_truncation_pairs, run_dealer
from smpcloud.mpc.local import run_local
from smpcloud.mpc.memory import MemoryNetwork
from smpcloud.mpc.protocols import statistics as stats
from smpcloud.mpc.runtime import (
    MPC_FIELD,
    Party,
    SharedVector,
    from_int64,
    interpolate,
    low_bits,
    mask_bits,
    random_elements,
    share_elements,
    small_to_int64,
)
from smpcloud.mpc.triples import DealerTriples, TripleSource, dealer_session

F = MPC_FIELD
M = F.modulus
Program = Callable[[Party], Awaitable[Any]]


def run(n: int, t: int, program: Program, **kwargs: Any) -> list[Any]:
    return asyncio.run(run_local(n, t, program, **kwargs))


def data(seed: int, size: int, low: int = -(10**6), high: int = 10**6) -> np.ndarray:
    # Test data only (not secret): seeded so that failures reproduce.
    return np.random.default_rng(seed).integers(low, high, size=size, dtype=np.int64)


def exact(values: np.ndarray) -> list[int]:
    return [int(v) for v in values]


# ============================================================================ the field


def test_mpc_field_is_the_six_largest_primes_below_2_32() -> None:
    ps = F.moduli
    assert len(ps) == 6 and all(gmpy2.is_prime(p, 50) for p in ps)
    assert gmpy2.next_prime(ps[0]) > 2**32
    for larger, smaller in itertools.pairwise(ps):
        assert gmpy2.next_prime(smaller) == larger  # no prime skipped
    # Room for a truncated product of two 64-bit fixed-point values with kappa = 40:
    assert mask_bits(F) >= 2 * 64 + 40
    assert 2 ** (mask_bits(F) + 1) <= M


# ============================================================================ RNS helpers


def test_from_int64_matches_exact_reduction() -> None:
    values = np.array([0, 1, -1, 2**63 - 1, -(2**63), 123456789, -987654321], dtype=np.int64)
    got = from_int64(F, values)
    for i, p in enumerate(F.moduli):
        assert got[i].tolist() == [int(v) % p for v in values]


def test_small_to_int64_inverts_from_int64_at_the_extremes() -> None:
    values = np.concatenate(
        [
            np.array([0, 1, -1, 2**63 - 1, -(2**63) + 1], dtype=np.int64),
            data(5, 1000, -(2**62), 2**62),
        ]
    )
    assert np.array_equal(small_to_int64(F, from_int64(F, values)), values)


def test_low_bits_is_exact_even_near_zero_and_near_m() -> None:
    ints = [0, 1, 2**16 - 1, 2**64 + 5, 3**100, M // 2, M - 1, M - 2**20, 12345]
    ints += [int(v) for v in data(6, 50, 0, 2**62)]
    elements = F.from_ints(np.array(ints, dtype=object))
    for bits in (1, 16, 40, 63, 64):
        assert low_bits(F, elements, bits).tolist() == [v % 2**bits for v in ints]


def test_random_elements_are_reduced_and_vary() -> None:
    block = random_elements(F, (2, F.k, 5000))
    p = np.array(F.moduli, dtype=np.uint64).reshape(F.k, 1)
    assert block.dtype == np.uint64 and (block < p).all()
    assert len(np.unique(block[0, 0])) > 4990  # 32-bit values: collisions are rare


def test_random_elements_reject_out_of_range_words_in_a_small_field() -> None:
    small = Field((2147483647, 65521, 251))  # rejection rates of ~0%, ~0% and 2%
    block = random_elements(small, (small.k, 20000))
    for row, p in zip(block, small.moduli):
        assert int(row.max()) < p
        # uniform: the mean is p/2 within 6 standard deviations
        assert abs(float(row.mean()) - (p - 1) / 2) < 6 * p / math.sqrt(12 * row.size)
    assert len(np.unique(block[2])) == 251  # every residue mod 251 occurs


def test_share_elements_any_t_of_n_interpolate() -> None:
    secret = F.from_ints(data(7, 20))
    for n, t in [(3, 2), (5, 3), (7, 4), (4, 1), (4, 4)]:
        shares = share_elements(F, secret, n=n, t=t)
        for xs in itertools.combinations(range(1, n + 1), t):
            got = interpolate(F, xs, [shares[x - 1] for x in xs])
            assert np.array_equal(got, secret)
        if t > 1:  # t - 1 shares of different secrets differ from the secret itself
            assert not np.array_equal(shares[0], secret)


def test_random_bits_and_their_shift() -> None:
    r, shifted = random_bits(F, 2000, 150, 37)
    rs = F.to_ints(r, signed=False).tolist()
    assert all(0 <= v < 2**150 for v in rs)
    assert max(rs) > 2**148  # uniform over 150 bits: the top bits are used
    assert F.to_ints(shifted, signed=False).tolist() == [v >> 37 for v in rs]


def test_dealt_triples_multiply() -> None:
    blocks = deal_triples(F, 300, n=5, t=3)
    abc = interpolate(F, [2, 4, 5], [blocks[1], blocks[3], blocks[4]])
    assert np.array_equal(F.mul(abc[0], abc[1]), abc[2])
    assert len({int(v) for v in abc[0, 0]}) > 290


def test_dealt_truncation_pairs() -> None:
    blocks = deal_truncation_pairs(F, 200, n=3, t=2, frac_bits=16, mask_bits=mask_bits(F))
    pair = interpolate(F, [1, 3], [blocks[0], blocks[2]])
    r = F.to_ints(pair[0], signed=False).tolist()
    assert F.to_ints(pair[1], signed=False).tolist() == [v >> 16 for v in r]


# ============================================================================ input and open


@pytest.mark.parametrize(("n", "t"), [(3, 1), (3, 2), (3, 3), (5, 2), (5, 3), (7, 4), (7, 7)])
def test_input_and_open_for_every_owner(n: int, t: int) -> None:
    values = {i: data(i, 9) for i in range(1, n + 1)}

    async def program(party: Party) -> list[np.ndarray]:
        out = []
        for owner in party.parties:
            x = await party.input(values[party.id], owner=owner)
            out.append(await party.open(x))
        return out

    for result in run(n, t, program, dealer=False):
        for owner, opened in zip(range(1, n + 1), result):
            assert opened.dtype == np.int64
            assert np.array_equal(opened, values[owner])


def test_input_all_gives_every_partys_vector_with_their_own_lengths() -> None:
    values = {1: [1, 2, 3], 2: [-5], 3: [7, 8]}

    async def program(party: Party) -> list[list[int]]:
        xs = await party.input_all(values[party.id])
        return [exact(await party.open(x)) for x in xs]

    for result in run(3, 2, program, dealer=False):
        assert result == [values[1], values[2], values[3]]


def test_linear_operations_are_local_and_exact() -> None:
    a, b = data(1, 50), data(2, 50)

    async def program(party: Party) -> dict[str, list[int]]:
        x = await party.input(a, owner=1)
        y = await party.input(b, owner=2)
        steps_before = party._step
        results = {
            "add": x + y,
            "sub": x - y,
            "neg": -x,
            "const": 3 * x - 7 + y * -2,
            "rsub": 100 - x,
            "vector": x + np.arange(50),
            "sum": sum([x, y, x]),
            "total": x.sum(),
            "slice": SharedVector.concat([x[10:20], y[:5]]),
        }
        assert party._step == steps_before  # no communication happened
        return {k: exact(await party.open(v)) for k, v in results.items()}

    expect = {
        "add": exact(a + b),
        "sub": exact(a - b),
        "neg": exact(-a),
        "const": exact(3 * a - 7 - 2 * b),
        "rsub": exact(100 - a),
        "vector": exact(a + np.arange(50)),
        "sum": exact(2 * a + b),
        "total": [int(a.sum())],
        "slice": exact(np.concatenate([a[10:20], b[:5]])),
    }
    for result in run(3, 2, program, dealer=False):
        assert result == expect


def test_fixed_point_linear_operations() -> None:
    async def program(party: Party) -> list[float]:
        x = await party.input([1.5, -2.25], owner=1, frac_bits=16)
        y = x * 4 + 0.125 - party.constant([1.0, 1.0], frac_bits=16)
        return list(await party.open(y))

    for result in run(3, 2, program, dealer=False):
        assert result == [5.125, -9.875]


def test_open_returns_exact_ints_beyond_64_bits() -> None:
    async def program(party: Party) -> np.ndarray:
        x = await party.input(np.array([2**62, -(2**63), 5], dtype=np.int64), owner=1)
        big = x * (2**40) + x
        return await party.open(big)

    for result in run(3, 2, program, dealer=False):
        assert result.dtype == object
        assert result.tolist() == [2**102 + 2**62, -(2**103) - 2**63, 5 * 2**40 + 5]


def test_open_with_large_bound_but_small_values_stays_int64() -> None:
    async def program(party: Party) -> np.ndarray:
        xs = await party.input_all(np.array([party.id, -party.id], dtype=np.int64))
        return await party.open(sum(xs[1:], xs[0]))  # bound 3 * 2^63, values tiny

    for result in run(3, 2, program, dealer=False):
        assert result.dtype == np.int64 and result.tolist() == [6, -6]


def test_input_validation() -> None:
    async def owner_without_values(party: Party) -> None:
        await party.input(None, owner=party.id)

    with pytest.raises(InvalidInputError, match="must supply values"):
        run(1, 1, owner_without_values, dealer=False)

    async def floats_without_scale(party: Party) -> None:
        await party.input([1.5], owner=1)

    with pytest.raises(InvalidInputError, match="frac_bits"):
        run(1, 1, floats_without_scale, dealer=False)

    async def out_of_range(party: Party) -> None:
        await party.input([2**20], owner=1, bits=16)

    with pytest.raises(OverflowDetectedError):
        run(1, 1, out_of_range, dealer=False)

    async def sixteen_bit(party: Party) -> list[int]:
        x = await party.input([32767, -32768], owner=1, bits=16)
        with pytest.raises(OverflowDetectedError):
            await party.input([32768], owner=1, bits=16)
        with pytest.raises(OverflowDetectedError):
            await party.input([128], owner=1, bits=16, frac_bits=8)  # 128 * 2^8 = 2^15
        with pytest.raises(OverflowDetectedError):
            await party.input(np.array([2**64 - 1], dtype=np.uint64), owner=1)
        with pytest.raises(OverflowDetectedError):
            await party.input([2**70], owner=1)
        assert (await party.input([127.99], owner=1, bits=16, frac_bits=8)).bound == 2**15
        return exact(await party.open(x))

    assert run(1, 1, sixteen_bit, dealer=False) == [[32767, -32768]]

    async def too_wide_for_field(party: Party) -> None:
        await party.input([1], owner=1, bits=64)

    with pytest.raises(OverflowDetectedError, match="wrap"):
        run(1, 1, too_wide_for_field, dealer=False, field=Field((4294967291, 4294967279)))


def test_mixing_scales_fields_or_lengths_is_refused() -> None:
    async def program(party: Party) -> None:
        x = party.constant([1, 2])
        with pytest.raises(ShareError, match="frac_bits"):
            _ = x + party.constant([1.0, 2.0], frac_bits=8)
        with pytest.raises(ShareError, match="lengths"):
            _ = x + party.constant([1, 2, 3])
        with pytest.raises(TypeError):
            _ = x * 0.5  # needs truncation: await party.mul(...) instead
        with pytest.raises(TypeError):
            _ = x + 0.5  # a real added to an integer vector
        other = SharedVector(x.shares[:3], DEFAULT_FIELD)
        with pytest.raises(ShareError, match="fields"):
            _ = x + other

    run(1, 1, program, dealer=False)


def test_shared_vector_repr_hides_shares() -> None:
    x = SharedVector(from_int64(F, np.array([123456789], dtype=np.int64)), F, 16)
    assert "redacted" in repr(x) and "123456789" not in repr(x)
    assert str(int(x.shares[0, 0])) not in repr(x)


# ============================================================================ multiplication


@pytest.mark.parametrize(("n", "t"), [(3, 2), (5, 3), (7, 4), (4, 1), (3, 3)])
def test_beaver_multiplication_is_exact(n: int, t: int) -> None:
    a, b = data(11, 200, -(2**31), 2**31), data(12, 200, -(2**31), 2**31)

    async def program(party: Party) -> tuple[np.ndarray, np.ndarray]:
        x = await party.input(a, owner=1)
        y = await party.input(b, owner=n)
        z = await party.mul(x, y)
        w = await party.mul(z, x)  # a product of a product
        return await party.open(z), await party.open(w)

    for z, w in run(n, t, program):
        assert exact(z) == [int(p) * int(q) for p, q in zip(a, b)]
        assert exact(w) == [int(p) * int(q) * int(p) for p, q in zip(a, b)]


def test_multiplication_at_the_int64_extremes_is_exact() -> None:
    a = np.array([-(2**63), 2**63 - 1, -(2**63), 0, -1], dtype=np.int64)
    b = np.array([-(2**63), 2**63 - 1, 2**63 - 1, 5, -1], dtype=np.int64)

    async def program(party: Party) -> np.ndarray:
        x = await party.input(a, owner=1)
        y = await party.input(b, owner=2)
        return await party.open(await party.mul(x, y))

    for result in run(3, 2, program):
        assert result.tolist() == [int(p) * int(q) for p, q in zip(a, b)]


def test_dot_product_and_sum_of_squares() -> None:
    a, b = data(21, 1000), data(22, 1000)

    async def program(party: Party) -> tuple[list[int], list[int]]:
        x = await party.input(a, owner=2)
        y = await party.input(b, owner=3)
        d = await party.dot(x, y)
        s = await party.sum_of_squares(x)
        return exact(await party.open(d)), exact(await party.open(s))

    for d, s in run(3, 2, program):
        assert d == [sum(int(p) * int(q) for p, q in zip(a, b))]
        assert s == [sum(int(p) ** 2 for p in a)]


def test_concurrent_multiplications_keep_program_order() -> None:
    a, b, c = data(31, 64), data(32, 64), data(33, 64)

    async def program(party: Party) -> list[list[int]]:
        x = await party.input(a, owner=1)
        y = await party.input(b, owner=2)
        z = await party.input(c, owner=3)
        products = await asyncio.gather(party.mul(x, y), party.mul(y, z), party.dot(x, z))
        return [exact(v) for v in await party.open_many(list(products))]

    for xy, yz, xz in run(3, 2, program):
        assert xy == exact(a * b) and yz == exact(b * c)
        assert xz == [int(np.dot(a.astype(object), c.astype(object)))]


def test_prefetched_triples_are_used_first_and_topped_up() -> None:
    a, b = data(41, 13), data(42, 13)

    async def program(party: Party) -> tuple[list[int], int]:
        await party.prefetch(triples=10)
        assert party.triples is not None
        before = party.triples._batch  # type: ignore[attr-defined]
        x = await party.input(a, owner=1)
        y = await party.input(b, owner=2)
        first = await party.mul(x[:6], y[:6])  # all 6 from the pool
        after_first = party.triples._batch  # type: ignore[attr-defined]
        second = await party.mul(x[6:], y[6:])  # 4 from the pool, 3 fetched
        opened = exact(await party.open(SharedVector.concat([first, second])))
        return opened, (after_first - before) * 10 + party.triples._batch - after_first  # type: ignore[attr-defined]

    for opened, batches in run(3, 2, program):
        assert opened == exact(a * b)
        assert batches == 1  # no batch for the first product, one for the top-up


def test_partly_pooled_requests_keep_program_order_at_every_party() -> None:
    # Two concurrent products, the first partly served by a prefetch still in flight: the
    # source must be asked for the rest in program order at every party, whatever the
    # pool's timing (it used to ask only after the pooled part arrived).
    a, b = data(45, 10), data(46, 10)

    async def program(party: Party) -> list[list[int]]:
        party.prefetch(triples=5)  # not awaited
        x = await party.input(a, owner=1)
        y = await party.input(b, owner=2)
        xy, yy = await asyncio.gather(party.mul(x, y), party.mul(y, y))
        return [exact(v) for v in await party.open_many([xy, yy])]

    for _ in range(5):
        for xy, yy in run(3, 2, program):
            assert xy == exact(a * b)
            assert yy == exact(b * b)


def test_prefetch_overlaps_with_the_input_round() -> None:
    a, b = data(43, 500), data(44, 500)

    async def program(party: Party) -> list[int]:
        party.prefetch(triples=500)  # not awaited: the dealer works during the inputs
        x = await party.input(a, owner=1)
        y = await party.input(b, owner=3)
        return exact(await party.open(await party.mul(x, y)))

    for result in run(3, 2, program):
        assert result == exact(a * b)


def test_multiplication_without_a_triple_source_is_a_protocol_error() -> None:
    async def program(party: Party) -> None:
        x = party.constant([1, 2])
        await party.mul(x, x)

    with pytest.raises(ProtocolError, match="triple source"):
        run(2, 2, program, dealer=False)


def test_product_that_could_wrap_is_refused_before_anything_is_sent() -> None:
    async def program(party: Party) -> int:
        x = await party.input([1], owner=1)  # 64-bit bound: the product needs 127 bits
        with pytest.raises(OverflowDetectedError, match="wrap"):
            await party.mul(x, x)
        return party._step

    assert run(3, 2, program, field=DEFAULT_FIELD) == [1, 1, 1]


# ============================================================================ fixed point


def test_fixed_point_product_is_within_one_ulp() -> None:
    f = 16
    # Inputs that are exact multiples of 2^-f, so the only error is the truncation's.
    a = data(51, 500, -(2**30), 2**30) / 2**f
    b = data(52, 500, -(2**30), 2**30) / 2**f

    async def program(party: Party) -> np.ndarray:
        x = await party.input(a, owner=1, frac_bits=f)
        y = await party.input(b, owner=2, frac_bits=f)
        z = await party.mul(x, y)
        assert z.frac_bits == f
        return await party.open(z)

    expected = [
        (int(p * 2**f) * int(q * 2**f)) / 2 ** (2 * f) for p, q in zip(a, b)
    ]  # exact rational
    for result in run(3, 2, program):
        err = np.abs(result - np.array(expected))
        assert (err < 2.0**-f + 1e-9 * np.abs(expected)).all()


def test_fixed_point_64_bit_extremes_multiply_and_truncate() -> None:
    f = 16
    big = float(2**46)  # near the top of a 64-bit format with 16 fractional bits

    async def program(party: Party) -> np.ndarray:
        x = await party.input([big, -big, 0.5], owner=1, frac_bits=f)
        y = await party.input([big, big, -0.25], owner=2, frac_bits=f)
        return await party.open(await party.mul(x, y))

    for result in run(3, 2, program):
        assert result[0] == pytest.approx(2.0**92) and result[1] == pytest.approx(-(2.0**92))
        assert abs(result[2] + 0.125) <= 2.0**-f


def test_truncation_rounds_up_with_probability_equal_to_the_fraction() -> None:
    count = 4000

    async def program(party: Party) -> tuple[np.ndarray, np.ndarray]:
        half = party.constant(np.ones(count, dtype=np.int64))  # 1 / 2 = 0.5
        three_quarters = party.constant(np.full(count, -3, dtype=np.int64))  # -3 / 4
        a = await party.truncate(half, 1)
        b = await party.truncate(three_quarters, 2)
        return await party.open(a), await party.open(b)

    a, b = run(3, 2, program)[0]
    assert set(a.tolist()) <= {0, 1} and set(b.tolist()) <= {-1, 0}
    sd = math.sqrt(count * 0.25)
    assert abs(int(a.sum()) - count * 0.5) < 6 * sd  # E = 0.5 each
    sd = math.sqrt(count * 0.75 * 0.25)
    assert abs(int(b.sum()) + count * 0.75) < 6 * sd  # E = -0.75 each


def test_truncation_needing_more_room_than_the_field_has_is_refused() -> None:
    async def program(party: Party) -> None:
        x = await party.input([1.0], owner=1, frac_bits=16, bits=40)  # product: 78 bits
        with pytest.raises(OverflowDetectedError, match="kappa"):
            await party.mul(x, x)  # 80 + 40 bits of mask > 94 bits of room
        z = await party.mul(x, x, truncate=False)  # exact 2f result is fine
        assert z.frac_bits == 32
        assert (await party.open(z)).tolist() == [1.0]

    run(3, 2, program, field=DEFAULT_FIELD)


def test_truncate_validates_its_shift() -> None:
    async def program(party: Party) -> None:
        with pytest.raises(InvalidInputError):
            await party.truncate(party.constant([1]))  # integers need an explicit shift
        with pytest.raises(InvalidInputError):
            await party.truncate(party.constant([1.0], frac_bits=8), 9)
        same = party.constant([1.0], frac_bits=8)
        assert await party.truncate(same, 0) is same

    run(2, 2, program)


# ============================================================================ statistics


def _rows(seed: int, n: int) -> dict[int, np.ndarray]:
    rng = np.random.default_rng(seed)  # test data only
    return {i: np.round(rng.normal(50.0, 12.0, size=20 + 7 * i), 3) for i in range(1, n + 1)}


def _encoded(values: np.ndarray, f: int = 16) -> np.ndarray:
    """What the parties actually compute on: the fixed-point rounding of the inputs."""
    return np.rint(values * 2**f) / 2**f


def test_secure_sum_is_the_element_wise_sum() -> None:
    values = {i: data(60 + i, 1000, -(2**62), 2**62) for i in range(1, 6)}

    async def program(party: Party) -> np.ndarray:
        return await stats.secure_sum(party, values[party.id])

    expected = [sum(int(values[i][j]) for i in values) for j in range(1000)]
    for result in run(5, 3, program, dealer=False):
        assert result.tolist() == expected


def test_secure_sum_of_reals() -> None:
    async def program(party: Party) -> np.ndarray:
        return await stats.secure_sum(party, [0.25 * party.id, -1.5], frac_bits=8)

    for result in run(3, 2, program, dealer=False):
        assert result.tolist() == [1.5, -4.5]


def test_secure_sum_refuses_different_lengths() -> None:
    async def program(party: Party) -> np.ndarray:
        return await stats.secure_sum(party, list(range(party.id)))

    with pytest.raises(ShareError, match="one length"):
        run(3, 2, program, dealer=False)


def test_statistics_equal_the_plaintext_computation() -> None:
    rows = _rows(70, 4)
    weights = {i: np.round(np.linspace(0.5, 2.0, len(r)), 3) for i, r in rows.items()}

    async def program(party: Party) -> dict[str, float]:
        mine, w = rows[party.id], weights[party.id]
        return {
            "mean": await stats.mean(party, mine),
            "var": await stats.variance(party, mine),
            "svar": await stats.variance(party, mine, sample=True),
            "std": await stats.standard_deviation(party, mine),
            "sstd": await stats.standard_deviation(party, mine, sample=True),
            "ss": await stats.sum_of_squares(party, mine),
            "dot": await stats.dot_product(party, mine, w),
            "wmean": await stats.weighted_mean(party, mine, w),
        }

    x = _encoded(np.concatenate([rows[i] for i in sorted(rows)]))
    w = _encoded(np.concatenate([weights[i] for i in sorted(weights)]))
    expected = {
        "mean": x.mean(),
        "var": x.var(),
        "svar": x.var(ddof=1),
        "std": x.std(),
        "sstd": x.std(ddof=1),
        "ss": float((x * x).sum()),
        "dot": float((x * w).sum()),
        "wmean": float((x * w).sum() / w.sum()),
    }
    for result in run(4, 3, program):
        for key, value in expected.items():
            assert result[key] == pytest.approx(value, rel=1e-12), key


def test_variance_is_exact_despite_a_huge_mean() -> None:
    # E[x^2] - E[x]^2 in floats would lose every digit here; in the field it is exact.
    values = {1: [1e9 + 1, 1e9 + 2], 2: [1e9 + 3], 3: [1e9 + 4, 1e9 + 5]}

    async def program(party: Party) -> float:
        return await stats.variance(party, values[party.id])

    for result in run(3, 2, program):
        assert result == pytest.approx(2.0, rel=1e-12)


def test_integer_statistics() -> None:
    values = {1: [1, 2, 3], 2: [4], 3: [5, 6]}

    async def program(party: Party) -> tuple[float, float]:
        m = await stats.mean(party, values[party.id], frac_bits=None)
        v = await stats.variance(party, values[party.id], frac_bits=None, sample=True)
        return m, v

    for m, v in run(3, 2, program):
        assert m == 3.5 and v == pytest.approx(3.5)


def test_statistics_refuse_undefined_cases() -> None:
    async def empty(party: Party) -> float:
        return await stats.mean(party, np.array([], dtype=np.float64))

    with pytest.raises(InvalidInputError, match="no values"):
        run(2, 2, empty)

    async def zero_weights(party: Party) -> float:
        return await stats.weighted_mean(party, [1.0, 2.0], [0.0, 0.0])

    with pytest.raises(InvalidInputError, match="zero"):
        run(2, 2, zero_weights)


# ============================================================================ drop-outs


def test_open_succeeds_with_two_of_five_parties_silent() -> None:
    values = data(80, 100)

    async def program(party: Party) -> np.ndarray:
        x = await party.input(values, owner=1)
        y = await party.mul(x, x)  # the dealer serves the live parties on their own requests
        return await party.open(y + x)

    results = run(5, 3, program, silent={4, 5}, timeout=2.0, return_exceptions=True)
    for result in results[:3]:
        assert exact(result) == [int(v) ** 2 + int(v) for v in values]
    for silent in results[3:]:  # their requests never reached the dealer: nothing for them
        assert isinstance(silent, ProtocolError) and "party 0" in str(silent)


def test_open_names_the_missing_parties_when_fewer_than_t_answer() -> None:
    async def program(party: Party) -> np.ndarray:
        x = await party.input([1, 2, 3], owner=1)
        return await party.open(x)

    start = time.monotonic()
    results = run(5, 3, program, silent={3, 4, 5}, timeout=0.5, return_exceptions=True)
    elapsed = time.monotonic() - start
    for live in results[:2]:
        assert isinstance(live, ProtocolError)
        assert "missing parties [3, 4, 5]" in str(live)
    for silent in results[2:]:  # the silent ones still hear t - 1 = 2 live peers
        assert isinstance(silent, np.ndarray) and silent.tolist() == [1, 2, 3]
    assert elapsed < 3.0


def test_a_silent_input_owner_is_named() -> None:
    async def program(party: Party) -> list[Any]:
        return await party.input_all([party.id])

    results = run(3, 2, program, silent={2}, timeout=0.3, return_exceptions=True)
    assert isinstance(results[0], ProtocolError) and "[2]" in str(results[0])


def test_a_party_that_closes_its_connection_drops_out() -> None:
    async def main() -> list[Any]:
        network = MemoryNetwork(3, dealer=True, timeout=2.0)
        dealer = asyncio.ensure_future(run_dealer(network.dealer(), n=3, t=2))
        transports = network.transports()

        async def live(i: int) -> list[int]:
            tr = transports[i - 1]
            party = Party(tr, n=3, t=2, triples=DealerTriples(tr, field=F), timeout=2.0)
            x = await party.input([3, -4], owner=1)
            y = await party.mul(x, x)
            out = exact(await party.open(y))
            await party.close()
            return out

        async def crash() -> None:
            await transports[2].close()

        results = await asyncio.gather(live(1), live(2), crash())
        served = await asyncio.wait_for(dealer, 5.0)
        return [*results[:2], served]

    first, second, served = asyncio.run(main())
    assert first == second == [9, 16]
    assert served.triples == 2 and served.batches == 1


def test_a_silent_dealer_is_named() -> None:
    async def main() -> None:
        network = MemoryNetwork(2, dealer=True, timeout=0.3)
        tr = network.transports()
        parties = [Party(t, n=2, t=2, triples=DealerTriples(t, field=F, timeout=0.3)) for t in tr]
        x = [p.constant([1]) for p in parties]
        await asyncio.gather(*(p.mul(v, v) for p, v in zip(parties, x)))

    with pytest.raises(ProtocolError, match="party 0"):
        asyncio.run(main())


# ============================================================================ malformed messages


def _two_live_one_rogue(rogue: Callable[[Any], Awaitable[None]], t: int) -> list[Any]:
    async def main() -> list[Any]:
        network = MemoryNetwork(3, timeout=1.0)
        tr = network.transports()
        parties = [Party(tr[i], n=3, t=t, timeout=1.0) for i in range(2)]

        async def honest(party: Party) -> Any:
            return await party.open(party.constant([1, 2, 3]))

        return await asyncio.gather(
            *(honest(p) for p in parties), rogue(tr[2]), return_exceptions=True
        )

    return asyncio.run(main())


@pytest.mark.parametrize(
    "payload",
    [
        b"garbage",
        codec.encode_vectors(F, np.zeros((F.k, 4), dtype=np.uint64)),  # wrong length
        codec.encode_vectors(DEFAULT_FIELD, np.zeros((3, 3), dtype=np.uint64)),  # wrong field
        codec.encode_ints([1, 2, 3]),
    ],
)
def test_garbage_under_the_expected_tag_is_a_share_error_naming_the_sender(payload: bytes) -> None:
    async def rogue(transport: Any) -> None:
        for peer in (1, 2):
            await transport.send(peer, ("smpc", 1), payload)

    results = _two_live_one_rogue(rogue, t=3)
    for result in results[:2]:
        assert isinstance(result, ShareError)
        assert "party 3 sent a malformed message" in str(result)


def test_out_of_range_residue_from_a_peer_is_rejected() -> None:
    async def rogue(transport: Any) -> None:
        bad = np.zeros((F.k, 3), dtype=np.uint64)
        data = bytearray(codec.encode_vectors(F, bad))
        data[-4:] = (F.moduli[-1]).to_bytes(4, "little")  # residue == its prime
        for peer in (1, 2):
            await transport.send(peer, ("smpc", 1), bytes(data))

    for result in _two_live_one_rogue(rogue, t=3)[:2]:
        assert isinstance(result, ShareError) and "outside the field" in str(result)


def test_the_dealer_refuses_bad_requests_and_keeps_serving() -> None:
    async def main() -> tuple[list[str], np.ndarray, Any]:
        network = MemoryNetwork(2, dealer=True, timeout=2.0)
        dealer = asyncio.ensure_future(run_dealer(network.dealer(), n=2, t=2))
        p1, p2 = network.transports()
        session = dealer_session("smpc")
        refusals = []
        # batches 0 and 1: party 1 asks first with garbage, then with a batch that is too
        # large: it alone is refused, and the batch is dealt on party 2's good request.
        bad = [b"not a request", codec.encode_request(Request(RequestOp.TRIPLES, 2**30))]
        for step in (0, 1):
            await p1.send(0, (session, step), bad[step])
            refusals.append(codec.decode_error(await p1.recv(0, (session, step))))
            await p2.send(0, (session, step), codec.encode_request(Request(RequestOp.TRIPLES, 5)))
            got = codec.decode_vectors(await p2.recv(0, (session, step)), F, count=3, length=5)
            assert got.shape == (3, F.k, 5)
        # batch 2: the same good request from both parties; both get their shares
        for party in (p1, p2):
            await party.send(0, (session, 2), codec.encode_request(Request(RequestOp.TRIPLES, 50)))
        blocks = [
            codec.decode_vectors(await party.recv(0, (session, 2)), F, count=3, length=50)
            for party in (p1, p2)
        ]
        for party in (p1, p2):
            await party.close()
        served = await asyncio.wait_for(dealer, 5.0)
        return refusals, interpolate(F, [1, 2], blocks), served

    refusals, abc, served = asyncio.run(main())
    assert "party 1 sent a malformed request for batch 0" in refusals[0]
    assert "magic" in refusals[0]
    assert "party 1 asked for 1073741824 triples (batch 1)" in refusals[1]
    assert "outside 1.." in refusals[1]
    assert np.array_equal(F.mul(abc[0], abc[1]), abc[2])
    assert (served.refused, served.triples, served.batches) == (2, 60, 3)
    assert served.refusals == refusals


def test_a_malformed_dealer_reply_is_a_protocol_error() -> None:
    async def main() -> None:
        network = MemoryNetwork(1, dealer=True, timeout=1.0)
        (tr,) = network.transports()
        source = DealerTriples(tr, field=F, timeout=1.0)
        fetch = asyncio.ensure_future(source.triples(5))
        await network.dealer().send(1, (dealer_session("smpc"), 0), b"SMPC junk")
        await fetch

    with pytest.raises(ProtocolError, match="malformed reply from the dealer"):
        asyncio.run(main())


def test_the_dealer_stops_when_every_party_is_done() -> None:
    async def program(party: Party) -> int:
        x = party.constant([2, 3])
        return exact(await party.open(await party.mul(x, x)))[1]

    async def main() -> tuple[list[int], Any]:
        network = MemoryNetwork(3, dealer=True)
        dealer = asyncio.ensure_future(run_dealer(network.dealer(), n=3, t=2))
        parties = [
            Party(tr, n=3, t=2, triples=DealerTriples(tr, field=F)) for tr in network.transports()
        ]
        results = await asyncio.gather(*(program(p) for p in parties))
        for p in parties:
            await p.close()  # sends "done"; the transports stay open
        return results, await asyncio.wait_for(dealer, 5.0)

    results, served = asyncio.run(main())
    assert results == [9, 9, 9] and served.triples == 2


def test_dealer_triples_is_a_triple_source() -> None:
    network = MemoryNetwork(1, dealer=True)
    assert isinstance(DealerTriples(network.transports()[0], field=F), TripleSource)
    with pytest.raises(InvalidInputError, match="dealer"):
        DealerTriples(MemoryNetwork(2).transports()[0], field=F)


def test_party_parameter_checks() -> None:
    tr = MemoryNetwork(3).transports()
    with pytest.raises(InvalidInputError):
        Party(tr[0], n=3, t=4)
    with pytest.raises(InvalidInputError, match="outside"):
        Party(tr[2], n=2, t=1)
    with pytest.raises(InvalidInputError, match="reach"):
        Party(tr[0], n=4, t=2)
    with pytest.raises(InvalidInputError, match="kappa"):
        Party(tr[0], n=3, t=2, kappa=20)


def test_large_requests_are_split_into_batches_and_joined_in_order() -> None:
    a, b = data(90, 20), data(91, 20)

    async def main() -> list[tuple[list[int], int]]:
        network = MemoryNetwork(3, dealer=True)
        dealer = asyncio.ensure_future(run_dealer(network.dealer(), n=3, t=2))
        sources = [DealerTriples(tr, field=F, max_batch=7) for tr in network.transports()]

        async def program(party: Party, source: DealerTriples) -> tuple[list[int], int]:
            async with party:
                x = await party.input(a, owner=1)
                y = await party.input(b, owner=2)
                z = await party.mul(x, y)  # 20 triples: batches of 7, 7 and 6
                return exact(await party.open(z)), source._batch

        parties = [Party(tr, n=3, t=2, triples=s) for tr, s in zip(network.transports(), sources)]
        results = await asyncio.gather(*(program(p, s) for p, s in zip(parties, sources)))
        served = await asyncio.wait_for(dealer, 5.0)
        assert served.batches == 3 and served.triples == 20
        return list(results)

    for opened, batches in asyncio.run(main()):
        assert opened == exact(a * b)
        assert batches == 3  # read before "async with" sent "done"


@pytest.mark.slow
def test_secure_sum_of_a_million_values_per_party_at_full_size() -> None:
    m = 10**6

    async def program(party: Party) -> np.ndarray:
        return await stats.secure_sum(party, np.arange(m, dtype=np.int64) * (2**40 + party.id))

    expected = np.arange(m, dtype=np.int64) * (3 * 2**40 + 6)
    for result in run(3, 2, program, dealer=False):
        assert result.dtype == np.int64 and np.array_equal(result, expected)


@pytest.mark.slow
def test_fixed_point_products_of_a_hundred_thousand_values_at_full_size() -> None:
    m, f = 10**5, 16
    a = data(92, m, -(2**40), 2**40) / 2**f
    b = data(93, m, -(2**40), 2**40) / 2**f

    async def program(party: Party) -> np.ndarray:
        x = await party.input(a, owner=1, frac_bits=f)
        y = await party.input(b, owner=2, frac_bits=f)
        return await party.open(await party.mul(x, y))

    expected = a * b
    for result in run(3, 2, program):
        assert (np.abs(result - expected) < 2.0**-f + 1e-15 * np.abs(expected)).all()


def test_a_payload_no_peer_accepts_is_an_error_not_a_silent_drop_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(memory, "MAX_PAYLOAD", 100)  # smaller than one share message

    async def main() -> None:
        network = MemoryNetwork(3, timeout=1.0)
        party = Party(network.transports()[0], n=3, t=2, timeout=1.0)
        await party.open(party.constant(np.zeros(10, dtype=np.int64)))

    with pytest.raises(TransportError, match="exceeds"):
        asyncio.run(main())


def test_take_rearranges_elements_and_with_bound_tightens_the_public_bound() -> None:
    a = data(47, 6)

    async def program(party: Party) -> tuple[list[int], int, int]:
        x = await party.input(a, owner=1)
        picked = x.take([5, 0, 0, 3])
        tighter = picked.with_bound(10**6)
        looser = picked.with_bound(1 << 70)  # never loosens
        return exact(await party.open(picked)), tighter.bound, looser.bound

    for opened, tighter, looser in run(3, 2, program):
        assert opened == exact(a[[5, 0, 0, 3]])
        assert tighter == 10**6
        assert looser == 1 << 63  # the bound of a default (64-bit) input


def test_take_and_with_bound_reject_bad_arguments() -> None:
    async def program(party: Party) -> list[str]:
        x = await party.input(data(48, 3), owner=1)
        errors = []
        for bad in (lambda: x.take([3]), lambda: x.take([-1]), lambda: x.with_bound(0)):
            try:
                bad()
            except InvalidInputError as exc:
                errors.append(str(exc))
        return errors

    for errors in run(3, 2, program):
        assert len(errors) == 3

"""Laws of the jointly generated modulus: sieving by construction, trial division, biprimality."""

from __future__ import annotations

import math

import gmpy2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smpcloud.crypto.biprime import (
    TRIAL_DIVISION_BOUND,
    assemble_shares,
    biprimality_base,
    biprimality_exponent,
    biprimality_value,
    check_modulus,
    has_small_factor,
    passes_biprimality,
    sieve_parameters,
)
from smpcloud.crypto.primes import random_prime
from smpcloud.errors import InvalidInputError

SIZES = [(256, 3), (512, 3), (512, 5), (1024, 4), (2048, 3), (3072, 7)]


@pytest.mark.parametrize(("bits", "parties"), SIZES, ids=[f"{b}-{n}" for b, n in SIZES])
def test_sieve_leaves_room_for_64_random_bits_and_skips_primes_up_to_n(
    bits: int, parties: int
) -> None:
    params = sieve_parameters(bits, parties)
    assert all(p > parties and p % 2 for p in params.primes)
    assert list(params.primes) == sorted(set(params.primes))
    assert math.prod(params.primes) == params.modulus
    assert params.fixed == tuple(p for p in (3, 5, 7) if p <= parties)
    assert params.crt_modulus == 4 * math.prod(params.fixed) * params.modulus
    assert params.high_range >= 1 << 64
    assert parties * params.share_bound + params.offset <= 1 << params.half
    assert params.offset >= 3 << (params.half - 2)
    for k, prime in enumerate(params.primes):
        basis = params.basis[k]
        assert basis % prime == 1 and basis % 4 == 0
        assert all(
            basis % other == 0 for other in (*params.primes, *params.fixed) if other != prime
        )
    constant = params.first_constant + params.offset
    assert constant % 4 == 3 and constant % params.modulus == params.offset % params.modulus
    assert all(constant % f == f - 1 for f in params.fixed)


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(SIZES[:4]), st.data())
def test_shares_sum_to_the_chosen_residues_and_keep_p_3_mod_4(
    size: tuple[int, int], data: st.DataObject
) -> None:
    bits, parties = size
    params = sieve_parameters(bits, parties)
    count = data.draw(st.integers(1, 4))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    residues = [
        np.stack([rng.integers(0, p, size=count) for p in params.primes], axis=1)
        for _ in range(parties)
    ]
    shares = [assemble_shares(params, r, first=i == 0) for i, r in enumerate(residues)]
    for k in range(count):
        p = sum(s[k] for s in shares)
        assert p % 4 == 3
        assert all(p % f == f - 1 for f in params.fixed)  # the public residues
        assert all(s[k] % f == 0 for s in shares[1:] for f in params.fixed)
        assert 3 << (params.half - 2) <= p < 1 << params.half
        for column, prime in enumerate(params.primes):
            assert p % prime == sum(int(r[k, column]) for r in residues) % prime
        assert shares[0][k] - params.offset in range(params.share_bound)
        assert all(s[k] % 4 == 0 and 0 <= s[k] < params.share_bound for s in shares[1:])


def test_assembly_refuses_residues_of_another_sieve() -> None:
    params = sieve_parameters(512, 3)
    with pytest.raises(InvalidInputError):
        assemble_shares(params, np.zeros((2, len(params.primes) - 1), dtype=np.int64), first=True)
    bad = np.zeros((1, len(params.primes)), dtype=np.int64)
    bad[0, 0] = params.primes[0]
    with pytest.raises(InvalidInputError):
        assemble_shares(params, bad, first=False)


@settings(max_examples=200, deadline=None)
@given(st.integers(3, 1 << 80))
def test_trial_division_agrees_with_naive_division(value: int) -> None:
    naive = any(value % p == 0 for p in _PRIMES)
    assert has_small_factor(value) == naive


def _sieve(bound: int) -> list[int]:
    flags = np.ones(bound, dtype=bool)
    flags[:2] = False
    for i in range(2, int(bound**0.5) + 1):
        if flags[i]:
            flags[i * i :: i] = False
    return [int(p) for p in np.flatnonzero(flags)]


_PRIMES = _sieve(TRIAL_DIVISION_BOUND)


def _split(value: int, parties: int, *, first_mod_4: int) -> list[int]:
    """Additive shares with the protocol's convention: first = first_mod_4, others 0 mod 4."""
    others = [4 * (i + 7) ** 5 for i in range(parties - 1)]
    first = value - sum(others)
    assert first % 4 == first_mod_4
    return [first, *others]


def _shares(n_value: int, p: int, q: int, parties: int) -> tuple[list[int], list[int]]:
    return _split(p, parties, first_mod_4=3), _split(q, parties, first_mod_4=3)


@pytest.fixture(scope="module")
def blum_primes() -> list[int]:
    return [random_prime(256, blum=True) for _ in range(4)]


def _test_values(modulus: int, ps: list[int], qs: list[int], index: int) -> list[int]:
    g = biprimality_base(modulus, b"test", index)
    return [
        biprimality_value(modulus, g, biprimality_exponent(modulus, ps[i], qs[i], first=i == 0))
        for i in range(len(ps))
    ]


@pytest.mark.parametrize("parties", [2, 3, 5])
def test_a_product_of_two_blum_primes_passes_every_base(
    blum_primes: list[int], parties: int
) -> None:
    """Completeness of the distributed Boneh-Franklin test."""
    p, q = blum_primes[0], blum_primes[1]
    ps, qs = _shares(p * q, p, q, parties)
    for index in range(40):
        assert passes_biprimality(p * q, _test_values(p * q, ps, qs, index))


def test_a_product_of_three_primes_fails_most_bases(blum_primes: list[int]) -> None:
    """Soundness: N = (p r s) q, a composite posing as one factor, fails at least half the bases."""
    p, q, r = blum_primes[:3]
    fake_p = p * r * blum_primes[3]  # three factors that are 3 mod 4: 3 mod 4 itself
    modulus = fake_p * q
    ps, qs = _shares(modulus, fake_p, q, 3)
    passed = sum(passes_biprimality(modulus, _test_values(modulus, ps, qs, i)) for i in range(40))
    assert passed <= 20


def test_bases_are_derived_alike_and_have_jacobi_one(blum_primes: list[int]) -> None:
    modulus = blum_primes[0] * blum_primes[1]
    for index in range(10):
        g = biprimality_base(modulus, b"ctx", index)
        assert g == biprimality_base(modulus, b"ctx", index)
        assert gmpy2.jacobi(g, modulus) == 1
    assert biprimality_base(modulus, b"ctx", 0) != biprimality_base(modulus, b"other", 0)


def test_exponents_refuse_shares_that_break_the_mod_4_convention() -> None:
    with pytest.raises(InvalidInputError):
        biprimality_exponent(77, 2, 4, first=False)


def test_check_modulus_passes_a_dealer_like_modulus_and_names_each_failure(
    blum_primes: list[int],
) -> None:
    p, q = blum_primes[0], blum_primes[1]
    modulus = p * q
    check_modulus(modulus, modulus.bit_length())
    for bad, bits, why in [
        (modulus, modulus.bit_length() + 2, "bits"),
        (modulus * 3, (modulus * 3).bit_length(), "1 mod 4"),  # 3 mod 4
        (p * p, (p * p).bit_length(), "square"),
        (modulus * 5 * 3 * 3, (modulus * 45).bit_length(), "factor below"),
    ]:
        with pytest.raises(InvalidInputError, match=why):
            check_modulus(bad, bits)


@settings(max_examples=15, deadline=None)
@given(st.sampled_from([(3, 1), (4, 1), (5, 2)]), st.integers(1, 40))
def test_the_sieve_rounds_leave_every_prime_out_of_p_and_q(
    shape: tuple[int, int], count: int
) -> None:
    """The sieving sub-protocol over real rounds: for every candidate and every sieved prime l,
    the holders' residues add up to p mod l != 0 and q mod l != 0, and each holder's residues
    are in range."""
    import asyncio

    from smpcloud.mpc.dkg.exchange import Exchange
    from smpcloud.mpc.dkg.sieve import sieve
    from smpcloud.mpc.memory import MemoryNetwork

    n, tau = shape
    params = sieve_parameters(512, n)
    net = MemoryNetwork(n)
    holders = tuple(range(1, n + 1))

    async def main() -> list[tuple[np.ndarray, np.ndarray, int]]:
        return await asyncio.gather(
            *(
                sieve(Exchange(tr, holders, session="s", timeout=10), params, count, tau)
                for tr in net.transports()
            )
        )

    results = asyncio.run(main())
    primes = np.array(params.primes)
    p_mod = sum(r[0] for r in results) % primes
    q_mod = sum(r[1] for r in results) % primes
    assert p_mod.shape == (count, len(primes))
    assert (p_mod != 0).all() and (q_mod != 0).all()
    for a, b, _ in results:
        assert (a >= 0).all() and (a < primes).all() and (b < primes).all()
    assert len({r[2] for r in results}) == 1  # every holder ran the same number of rounds

"""Laws of the Shamir servers' joint validity check: completeness, soundness, privacy sanity.

Reports are built by :func:`share_report` and then tampered with the way a client that
bypasses the SDK could: every tampering must be caught by the verdict over the n servers'
check values, and every honest report must pass.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smpcloud.crypto import shamir_validity as sv
from smpcloud.crypto.field import DEFAULT_FIELD
from smpcloud.crypto.shamir import interpolate, share_elements
from smpcloud.errors import InvalidInputError, OverflowDetectedError

P = sv.VALIDITY_PRIME
SHAPES = st.sampled_from([(3, 2), (5, 3)])


def seed() -> bytes:
    return sv.validity_seed(7, [os.urandom(32) for _ in range(3)])


def opened(shares: list[np.ndarray], layout: sv.ValidityLayout, s: bytes) -> np.ndarray:
    """Every server's check values of one report, shape (n, 1, 2R)."""
    return np.stack([sv.check_values(y, s, layout) for y in shares]).reshape(
        len(shares), 1, layout.checks
    )


def verdict(shares: list[np.ndarray], layout: sv.ValidityLayout, t: int) -> int:
    return int(sv.verdicts(opened(shares, layout, seed()), threshold=t)[0])


def random_offsets(span: int, length: int) -> np.ndarray:
    return np.array(
        [int.from_bytes(os.urandom(8), "big") % (span + 1) for _ in range(length)],
        dtype=np.uint64,
    )


def add_everywhere(shares: list[np.ndarray], index: int, delta: int) -> list[np.ndarray]:
    """Add delta to every server's share at ``index``: the secret moves by delta, degree kept."""
    out = [y.copy() for y in shares]
    for y in out:
        y[0, index] = (int(y[0, index]) + delta) % P
    return out


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 1 << 20), st.integers(1, 12), SHAPES, st.data())
def test_every_in_range_report_passes_and_sums_exactly(
    span: int, length: int, shape: tuple[int, int], data: st.DataObject
) -> None:
    n, t = shape
    layout = sv.ValidityLayout(length, span)
    offsets = np.array(
        data.draw(st.lists(st.integers(0, span), min_size=length, max_size=length)),
        dtype=np.uint64,
    )
    shares = sv.share_report(offsets, layout, servers=n, threshold=t)
    assert all(y.shape == (1, layout.size) for y in shares)
    assert verdict(shares, layout, t) == sv.PASSED
    values = [sv.value_shares(y, layout) for y in shares]
    for group in ([*range(1, t + 1)], [*range(n - t + 1, n + 1)]):
        rebuilt = interpolate(sv.VALIDITY_FIELD, group, [values[j - 1] for j in group])
        assert rebuilt[0].tolist() == offsets.tolist()


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 1 << 18), st.integers(1, 6), SHAPES, st.data())
def test_a_non_bit_is_caught(
    span: int, length: int, shape: tuple[int, int], data: st.DataObject
) -> None:
    """A shared 'bit' of 2 (a value above U) or of p - 1 (a negative value) fails the bit check."""
    n, t = shape
    layout = sv.ValidityLayout(length, span)
    offsets = random_offsets(span, length)
    shares = sv.share_report(offsets, layout, servers=n, threshold=t)
    index = data.draw(st.integers(0, layout.bit_elements - 1))
    delta = data.draw(st.sampled_from([1, 2, -2, P - 1 - 1, 12345]))
    forged = add_everywhere(shares, index, delta)
    rebuilt = interpolate(sv.VALIDITY_FIELD, list(range(1, t + 1)), forged[:t])
    if int(rebuilt[0, index]) in (0, 1):  # delta happened to map the bit onto the other bit
        return
    assert verdict(forged, layout, t) == sv.BIT_CHECK_FAILED


def test_out_of_range_values_are_caught() -> None:
    """All bits 1 plus a top 'bit' of 2, and the value p - 1 (a negative offset)."""
    span = 131072
    layout = sv.ValidityLayout(1, span)
    for n, t in ((3, 2), (5, 3)):
        honest = sv.share_report(np.array([span], dtype=np.uint64), layout, servers=n, threshold=t)
        assert verdict(honest, layout, t) == sv.PASSED
        top = layout.bits - 1
        assert verdict(add_everywhere(honest, top, 1), layout, t) == sv.BIT_CHECK_FAILED
        zero = sv.share_report(np.array([0], dtype=np.uint64), layout, servers=n, threshold=t)
        assert verdict(add_everywhere(zero, 0, P - 1), layout, t) == sv.BIT_CHECK_FAILED


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 1 << 18), st.integers(1, 6), SHAPES, st.data())
def test_shares_off_the_polynomial_are_caught(
    span: int, length: int, shape: tuple[int, int], data: st.DataObject
) -> None:
    n, t = shape
    layout = sv.ValidityLayout(length, span)
    shares = sv.share_report(random_offsets(span, length), layout, servers=n, threshold=t)
    index = data.draw(st.integers(0, layout.bit_elements - 1))
    server = data.draw(st.integers(0, n - 1))
    delta = data.draw(st.integers(1, P - 1))
    forged = [y.copy() for y in shares]
    forged[server][0, index] = (int(forged[server][0, index]) + delta) % P
    assert verdict(forged, layout, t) == sv.DEGREE_CHECK_FAILED


@settings(max_examples=20, deadline=None)
@given(SHAPES, st.integers(1, P - 1), st.integers(0, sv.REPETITIONS - 1))
def test_a_mask_with_a_non_zero_constant_is_caught(
    shape: tuple[int, int], constant: int, r: int
) -> None:
    n, t = shape
    layout = sv.ValidityLayout(3, 1000)
    shares = sv.share_report(random_offsets(1000, 3), layout, servers=n, threshold=t)
    forged = add_everywhere(shares, layout.bit_elements + r, constant)
    assert verdict(forged, layout, t) == sv.BIT_CHECK_FAILED


def test_zero_masks_still_pass_when_honest() -> None:
    layout = sv.ValidityLayout(4, 255)
    offsets = np.array([0, 1, 254, 255], dtype=np.uint64)
    shares = sv.share_report(offsets, layout, servers=3, threshold=2, zero_masks=True)
    assert verdict(shares, layout, 2) == sv.PASSED
    assert verdict(add_everywhere(shares, 0, 1), layout, 2) in (sv.PASSED, sv.BIT_CHECK_FAILED)


def test_the_single_prime_is_needed_idempotents_pass_a_bit_check_in_z_m() -> None:
    """In Z_M (three primes), e = 1 mod p1, 0 mod p2, p3 satisfies e^2 = e: a huge 'bit'."""
    field = DEFAULT_FIELD
    p1, p2, p3 = field.moduli
    m = field.modulus
    e = (p2 * p3) * pow(p2 * p3, -1, p1) % m
    assert e * e % m == e and e not in (0, 1) and e > 1 << 60
    # Shared over Z_M, the servers' local b^2 - b interpolates to 0 at x = 0: the check passes.
    secret = field.from_ints(np.array([e], dtype=object))
    shares = share_elements(field, secret, n=3, t=2)
    quadratic = [field.sub(field.mul(y, y), y) for y in shares]
    assert field.to_int(interpolate(field, [1, 2, 3], quadratic)) == 0
    # In GF(p) the only roots of b^2 = b are 0 and 1, and the module refuses any other field.
    with pytest.raises(InvalidInputError, match="idempotents"):
        sv.check_validity_field(field)
    sv.check_validity_field(sv.VALIDITY_FIELD)


def test_opened_check_values_are_fresh_each_time() -> None:
    """Privacy sanity: the same honest values open to different, constant-0 sigma polynomials
    and to different tau values on every run (the masks are uniform and used once)."""
    layout = sv.ValidityLayout(2, 100)
    offsets = np.array([3, 97], dtype=np.uint64)
    s = seed()
    runs = [
        opened(sv.share_report(offsets, layout, servers=3, threshold=2), layout, s)
        for _ in range(6)
    ]
    sigmas = {tuple(run[:, 0, 0].tolist()) for run in runs}
    taus = {tuple(run[:, 0, sv.REPETITIONS].tolist()) for run in runs}
    assert len(sigmas) == 6 and len(taus) == 6
    for run in runs:  # every opened sigma polynomial is 0 at x = 0
        at_zero = interpolate(
            sv.VALIDITY_FIELD, [1, 2, 3], [run[j, :, :].reshape(1, -1) for j in range(3)]
        )
        assert not at_zero[0, : sv.REPETITIONS].any()
    # Its linear coefficient (of degree 2t - 2 = 2) is not constant across runs.
    slopes = set()
    for run in runs:
        y1, y2, y3 = (int(run[j, 0, 0]) for j in range(3))
        inv2 = pow(2, -1, P)
        a2 = (y3 - 2 * y2 + y1) * inv2 % P
        slopes.add((y1 - a2) % P)
    assert len(slopes) == 6


def test_coefficients_are_deterministic_and_bound_to_the_seed() -> None:
    layout = sv.ValidityLayout(5, 9)
    digests = [os.urandom(32) for _ in range(3)]
    a = sv.coefficients(sv.validity_seed(1, digests), layout)
    b = sv.coefficients(sv.validity_seed(1, digests), layout)
    c = sv.coefficients(sv.validity_seed(2, digests), layout)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[0], c[0])
    assert a[0].shape == (sv.REPETITIONS, layout.bit_elements) and int(a[0].max()) < P
    assert np.array_equal(sv.expand(b"x", 10), sv.expand(b"x", 100)[:10])


def test_bad_input_is_refused() -> None:
    layout = sv.ValidityLayout(2, 10)
    with pytest.raises(InvalidInputError, match="n = 2t - 1"):
        sv.share_report(np.zeros(2, dtype=np.uint64), layout, servers=4, threshold=3)
    with pytest.raises(OverflowDetectedError):
        sv.share_report(np.array([0, 11], dtype=np.uint64), layout, servers=3, threshold=2)
    with pytest.raises(InvalidInputError):
        sv.split_share(np.zeros((1, 3), dtype=np.uint64), layout)
    with pytest.raises(InvalidInputError, match="outside GF"):
        sv.split_share(np.full((1, layout.size), P, dtype=np.uint64), layout)
    with pytest.raises(InvalidInputError, match="narrow the range"):
        sv.check_validity_span(131072, 1_000_000)
    sv.check_validity_span(131072, 32767)
    with pytest.raises(InvalidInputError, match="min_value below"):
        sv.check_validity_span(0, 10)
    with pytest.raises(InvalidInputError):
        sv.validity_seed(1, [b"short"])
    with pytest.raises(InvalidInputError):
        sv.verdicts(np.zeros((4, 1, 6), dtype=np.uint64), threshold=3)
    with pytest.raises(InvalidInputError):
        sv.verdicts(np.full((3, 1, 6), P, dtype=np.uint64), threshold=2)

"""Unit tests for smpcloud.parallel with real worker processes (no mocks, no timing asserts).

The pool's results must equal the inline (workers=1) results: exactly for aggregation and
validation (deterministic), and after decryption for encryption (randomised). Batches are made
large enough (>= MIN_PARALLEL_PRODUCT) that the pool really splits them over processes.
"""

from __future__ import annotations

import functools
import os
import secrets
from collections.abc import Iterator

import numpy as np
import pytest

from smpcloud import parallel
from smpcloud.crypto import packing, paillier, threshold
from smpcloud.crypto.packing import Packing
from smpcloud.errors import (
    InvalidInputError,
    KeyMismatchError,
    MalformedCiphertextError,
    OverflowDetectedError,
    ThresholdNotMetError,
)

BITS = 1024
BIG = parallel.MIN_PARALLEL_PRODUCT + 904  # 5000: split into several chunks


@pytest.fixture(scope="module")
def keys() -> tuple[paillier.PublicKey, paillier.PrivateKey]:
    return paillier.generate_keypair(BITS, insecure=True)


@pytest.fixture(scope="module")
def pool(keys: tuple[paillier.PublicKey, paillier.PrivateKey]) -> Iterator[parallel.CryptoPool]:
    with parallel.CryptoPool(2, preload=[keys[0]]) as running:
        running.start()
        yield running


@pytest.fixture(scope="module")
def inline() -> parallel.CryptoPool:
    return parallel.CryptoPool(1)


@pytest.fixture(params=["inline", "pool"])
def runner(
    request: pytest.FixtureRequest, pool: parallel.CryptoPool, inline: parallel.CryptoPool
) -> parallel.CryptoPool:
    return pool if request.param == "pool" else inline


@pytest.fixture(scope="module")
def units(keys: tuple[paillier.PublicKey, paillier.PrivateKey]) -> list[int]:
    """BIG random elements of Z*_{n^2}: each is a valid ciphertext of some plaintext."""
    n2 = keys[0].n_squared
    return [secrets.randbelow(n2 - 1) + 1 for _ in range(BIG)]


def product(values: list[int], modulus: int) -> int:
    return functools.reduce(lambda a, b: a * b % modulus, values, 1)


def to_blob(pk: paillier.PublicKey, values: list[int]) -> bytes:
    width = (pk.n_squared.bit_length() + 7) // 8
    return b"".join(v.to_bytes(width, "big") for v in values)


# ------------------------------------------------------------------------- configuration


def test_pool_sizes() -> None:
    assert parallel.CryptoPool(1).workers == 1
    with parallel.CryptoPool() as default:
        assert default.workers == parallel.default_workers() >= 1
    for bad in (0, -1, True, 1.5, "2", parallel.MAX_WORKERS + 1):
        with pytest.raises(InvalidInputError):
            parallel.CryptoPool(bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        parallel.CryptoPool(2, start_method="fork")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        parallel.CryptoPool(2, preload=["key"])  # type: ignore[list-item]


def test_pool_really_uses_other_processes(pool: parallel.CryptoPool) -> None:
    executor = pool._executor
    assert executor is not None
    pids = {executor.submit(os.getpid).result() for _ in range(8)}
    assert os.getpid() not in pids


def test_closed_pool_runs_inline(keys: tuple[paillier.PublicKey, paillier.PrivateKey]) -> None:
    pk, sk = keys
    started = parallel.CryptoPool(2)
    started.close()
    started.close()  # idempotent
    assert sk.decrypt(started.aggregate(pk, [pk.encrypt(2), pk.encrypt(3)])) == 5


# ---------------------------------------------------------------------------- aggregation


def test_aggregate_equals_the_sequential_product(
    runner: parallel.CryptoPool,
    keys: tuple[paillier.PublicKey, paillier.PrivateKey],
    units: list[int],
) -> None:
    pk, _ = keys
    expected = product(units, pk.n_squared)
    objects = [paillier.Ciphertext(pk, v) for v in units[:200]] + units[200:]
    for batch in (units, to_blob(pk, units), objects):
        result = runner.aggregate(pk, batch)
        assert isinstance(result, paillier.Ciphertext)
        assert result.public_key == pk
        assert result.value == expected


def test_aggregate_adds_plaintexts(
    runner: parallel.CryptoPool, keys: tuple[paillier.PublicKey, paillier.PrivateKey]
) -> None:
    pk, sk = keys
    plain = [secrets.randbelow(2**40) - 2**39 for _ in range(300)]
    cts = [pk.encrypt(m) for m in plain]
    # Repeat to cross the parallel threshold; the sum is then 20 times the sum.
    total = runner.aggregate(pk, cts * 20)
    assert sk.decrypt(total) == 20 * sum(plain)
    assert sk.decrypt(runner.aggregate(pk, cts[:1])) == plain[0]


def test_aggregate_vectors_equals_columnwise_products(
    runner: parallel.CryptoPool,
    keys: tuple[paillier.PublicKey, paillier.PrivateKey],
    units: list[int],
) -> None:
    pk, _ = keys
    n2 = pk.n_squared
    for rows, width in ((5, 1000), (2, 2500), (1000, 5)):
        matrix = [units[r * width : (r + 1) * width] for r in range(rows)]
        expected = [product([row[j] for row in matrix], n2) for j in range(width)]
        reports: list[object] = [
            to_blob(pk, row) if r % 2 else [paillier.Ciphertext(pk, v) for v in row]
            for r, row in enumerate(matrix)
        ]
        result = runner.aggregate_vectors(pk, reports)  # type: ignore[arg-type]
        assert [c.value for c in result] == expected


def test_aggregate_vectors_of_packed_reports(
    runner: parallel.CryptoPool, keys: tuple[paillier.PublicKey, paillier.PrivateKey]
) -> None:
    pk, sk = keys
    layout = Packing.for_key(
        pk, length=400, min_value=-1.0, max_value=1.0, max_additions=20, frac_bits=12
    )
    vectors = [np.linspace(-1, 1, 400) * ((k % 5) - 2) / 2 for k in range(20)]
    reports = [packing.encrypt_vector(pk, v, layout) for v in vectors]
    aggregate = runner.aggregate_vectors(pk, reports)
    expected = sum(np.rint(v * 2**12).astype(np.int64) for v in vectors) / 2**12
    assert runner.decrypt_vector(sk, aggregate, layout, 20).tolist() == expected.tolist()


@pytest.mark.parametrize("where", [0, 1, BIG // 2, BIG - 1])
def test_bad_ciphertexts_are_named_by_index(
    runner: parallel.CryptoPool,
    keys: tuple[paillier.PublicKey, paillier.PrivateKey],
    units: list[int],
    where: int,
) -> None:
    pk, sk = keys
    n2 = pk.n_squared
    for bad, reason in ((0, "outside"), (n2, "outside"), (sk.p * 12345, "not coprime")):
        values = list(units)
        values[where] = bad
        with pytest.raises(MalformedCiphertextError, match=f"ciphertext {where}: {reason}"):
            runner.aggregate(pk, values)
        with pytest.raises(MalformedCiphertextError, match=f"ciphertext {where}: {reason}"):
            runner.validate_many(pk, values)
        if bad < n2:  # representable in the fixed width
            with pytest.raises(MalformedCiphertextError, match=f"ciphertext {where}: {reason}"):
                runner.aggregate(pk, to_blob(pk, values))


def test_the_first_bad_ciphertext_is_named(
    runner: parallel.CryptoPool,
    keys: tuple[paillier.PublicKey, paillier.PrivateKey],
    units: list[int],
) -> None:
    pk, sk = keys
    values = list(units)
    values[4000] = 0
    values[3000] = sk.q
    with pytest.raises(MalformedCiphertextError, match="ciphertext 3000: not coprime"):
        runner.aggregate(pk, values)


def test_bad_ciphertexts_in_vector_reports_name_report_and_position(
    runner: parallel.CryptoPool,
    keys: tuple[paillier.PublicKey, paillier.PrivateKey],
    units: list[int],
) -> None:
    pk, sk = keys
    matrix = [units[r * 1000 : (r + 1) * 1000] for r in range(5)]
    matrix[3][777] = sk.p
    with pytest.raises(MalformedCiphertextError, match="report 3, ciphertext 777: not coprime"):
        runner.aggregate_vectors(pk, matrix)
    matrix[3][777] = pk.n_squared + 1
    with pytest.raises(MalformedCiphertextError, match="report 3, ciphertext 777: outside"):
        runner.aggregate_vectors(pk, matrix)


def test_malformed_batches(
    runner: parallel.CryptoPool, keys: tuple[paillier.PublicKey, paillier.PrivateKey]
) -> None:
    pk, _ = keys
    other_pk, _ = paillier.generate_keypair(BITS, insecure=True)
    good = pk.encrypt(1)
    with pytest.raises(InvalidInputError, match="no ciphertexts"):
        runner.aggregate(pk, [])
    with pytest.raises(MalformedCiphertextError, match="whole number"):
        runner.aggregate(pk, good.to_bytes() + b"\x01")
    with pytest.raises(MalformedCiphertextError, match="ciphertext 1: expected"):
        runner.aggregate(pk, [good, "7"])  # type: ignore[list-item]
    with pytest.raises(MalformedCiphertextError, match="ciphertext 1: expected"):
        runner.validate_many(pk, [good.value, 2.5])  # type: ignore[list-item]
    with pytest.raises(KeyMismatchError, match="ciphertext 2"):
        runner.aggregate(pk, [good, good, other_pk.encrypt(1)])
    with pytest.raises(InvalidInputError):
        runner.aggregate(pk, "not ciphertexts")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        runner.aggregate("pk", [good])  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="no reports"):
        runner.aggregate_vectors(pk, [])
    with pytest.raises(InvalidInputError, match="report 1 has 1"):
        runner.aggregate_vectors(pk, [[good, good], [good]])
    with pytest.raises(InvalidInputError, match="empty"):
        runner.aggregate_vectors(pk, [[], []])


def test_validate_many_returns_ciphertexts(
    runner: parallel.CryptoPool,
    keys: tuple[paillier.PublicKey, paillier.PrivateKey],
    units: list[int],
) -> None:
    pk, _ = keys
    for batch in (units, to_blob(pk, units)):
        out = runner.validate_many(pk, batch)
        assert [c.value for c in out] == units
        assert all(c.public_key == pk for c in out)
    assert runner.validate_many(pk, []) == []


# ------------------------------------------------------------------ encryption, decryption


def test_encrypt_and_decrypt_many(
    runner: parallel.CryptoPool, keys: tuple[paillier.PublicKey, paillier.PrivateKey]
) -> None:
    pk, sk = keys
    plain = [secrets.randbelow(2**100) - 2**99 for _ in range(60)] + [pk.max_int, -pk.max_int]
    cts = runner.encrypt_many(pk, plain)
    assert [sk.decrypt(c) for c in cts] == plain
    assert len({c.value for c in cts}) == len(cts)  # fresh randomness each
    assert runner.decrypt_many(sk, cts) == plain
    assert runner.encrypt_many(pk, []) == []
    assert runner.decrypt_many(sk, []) == []


def test_encrypt_many_checks_every_plaintext_first(
    runner: parallel.CryptoPool, keys: tuple[paillier.PublicKey, paillier.PrivateKey]
) -> None:
    pk, _ = keys
    with pytest.raises(OverflowDetectedError, match="plaintext 40"):
        runner.encrypt_many(pk, [1] * 40 + [pk.max_int + 1])
    with pytest.raises(InvalidInputError, match="plaintext 3"):
        runner.encrypt_many(pk, [1, 2, 3, 4.0])  # type: ignore[list-item]


def test_decrypt_many_checks_its_inputs(
    runner: parallel.CryptoPool, keys: tuple[paillier.PublicKey, paillier.PrivateKey]
) -> None:
    pk, sk = keys
    other_pk, _ = paillier.generate_keypair(BITS, insecure=True)
    with pytest.raises(InvalidInputError, match="ciphertext 1"):
        runner.decrypt_many(sk, [pk.encrypt(1), 5])  # type: ignore[list-item]
    with pytest.raises(KeyMismatchError, match="ciphertext 1"):
        runner.decrypt_many(sk, [pk.encrypt(1), other_pk.encrypt(1)])
    with pytest.raises(InvalidInputError):
        runner.decrypt_many("sk", [])  # type: ignore[arg-type]


def test_encrypt_vector_equals_the_inline_packing(
    runner: parallel.CryptoPool, keys: tuple[paillier.PublicKey, paillier.PrivateKey]
) -> None:
    pk, sk = keys
    layout = Packing.for_key(
        pk, length=2000, min_value=-3, max_value=3, max_additions=2, frac_bits=8
    )
    values = np.linspace(-3, 3, 2000)
    cts = runner.encrypt_vector(pk, values, layout)
    assert len(cts) == layout.ciphertexts > 8
    reference = packing.encrypt_vector(pk, values, layout)
    assert [sk.decrypt(c) for c in cts] == [sk.decrypt(c) for c in reference]
    assert [sk.decrypt(c) for c in cts] == packing.pack(values, layout)
    sums = runner.decrypt_vector(sk, [a + b for a, b in zip(cts, reference)], layout, 2)
    assert sums.tolist() == (2 * np.rint(values * 256) / 256).tolist()


def test_encrypt_vectors_checks_every_vector_before_encrypting(
    runner: parallel.CryptoPool, keys: tuple[paillier.PublicKey, paillier.PrivateKey]
) -> None:
    pk, _ = keys
    layout = Packing.for_key(pk, length=10, min_value=0, max_value=1, max_additions=3)
    with pytest.raises(OverflowDetectedError, match="index 4"):
        runner.encrypt_vectors(pk, [[0] * 10, [0] * 4 + [2] + [0] * 5], layout)
    with pytest.raises(InvalidInputError):
        runner.encrypt_vectors(pk, [[0] * 9], layout)
    small = Packing(length=10, key_bits=2048, min_value=0, max_value=1, max_additions=3)
    with pytest.raises(InvalidInputError):
        runner.encrypt_vectors(pk, [[0] * 10], small)
    many = runner.encrypt_vectors(pk, [[k % 2] * 10 for k in range(3)], layout)
    assert [len(c) for c in many] == [layout.ciphertexts] * 3


def test_decrypt_vector_checks_count_and_length(
    runner: parallel.CryptoPool, keys: tuple[paillier.PublicKey, paillier.PrivateKey]
) -> None:
    pk, sk = keys
    layout = Packing.for_key(pk, length=10, min_value=0, max_value=1, max_additions=3)
    cts = runner.encrypt_vector(pk, [1] * 10, layout)
    with pytest.raises(InvalidInputError):
        runner.decrypt_vector(sk, cts, layout, 0)
    with pytest.raises(InvalidInputError):
        runner.decrypt_vector(sk, cts + cts, layout, 1)
    with pytest.raises(OverflowDetectedError):
        runner.decrypt_vector(sk, [c * 3 for c in cts], layout, 2)


# ------------------------------------------------------------------------ one-shot helpers


def test_one_shot_helpers(
    keys: tuple[paillier.PublicKey, paillier.PrivateKey], units: list[int]
) -> None:
    pk, sk = keys
    assert parallel.aggregate(pk, units, workers=2).value == product(units, pk.n_squared)
    layout = Packing.for_key(pk, length=50, min_value=-1, max_value=1, max_additions=1)
    cts = parallel.encrypt_vector(pk, [1, -1] * 25, layout, workers=1)
    assert parallel.decrypt_vector(sk, cts, layout, 1, workers=1).tolist() == [1.0, -1.0] * 25
    assert parallel.decrypt_many(sk, parallel.encrypt_many(pk, [5, 6], workers=1)) == [5, 6]
    assert len(parallel.validate_many(pk, units[:10], workers=1)) == 10
    rows = [units[:3], units[3:6]]
    assert len(parallel.aggregate_vectors(pk, rows, workers=1)) == 3


def test_reference_key_size(pool: parallel.CryptoPool) -> None:
    pk, sk = paillier.generate_keypair(2048)
    layout = Packing.for_key(
        pk, length=3000, min_value=-1.0, max_value=1.0, max_additions=100, frac_bits=16
    )
    assert layout.slots == 85
    vectors = [np.linspace(-1, 1, 3000) ** (k + 1) for k in range(3)]
    reports = pool.encrypt_vectors(pk, vectors, layout)
    stored = [b"".join(c.to_bytes() for c in report) for report in reports]
    aggregate = pool.aggregate_vectors(pk, stored)
    expected = sum(np.rint(v * 2**16).astype(np.int64) for v in vectors) / 2**16
    assert pool.decrypt_vector(sk, aggregate, layout, 3).tolist() == expected.tolist()


# ------------------------------------------------------------------- threshold decryption


@pytest.fixture(scope="module")
def dealt() -> tuple[threshold.ThresholdPublicKey, list[threshold.KeyShare]]:
    return threshold.deal(512, n=3, t=2, insecure=True)


def test_threshold_partials_and_combine_many(
    runner: parallel.CryptoPool,
    dealt: tuple[threshold.ThresholdPublicKey, list[threshold.KeyShare]],
) -> None:
    tpk, shares = dealt
    plain = [secrets.randbelow(2**64) - 2**63 for _ in range(24)]
    cts = [tpk.encrypt(m) for m in plain]
    by_holder = [runner.partial_decrypt_many(share, cts) for share in shares[1:]]
    for share, partials in zip(shares[1:], by_holder):
        assert [p.index for p in partials] == [share.index] * len(cts)
        assert all(p.ciphertext is c for p, c in zip(partials, cts))
        assert all(threshold.verify_partial(tpk, p) for p in partials)
    groups = [list(group) for group in zip(*by_holder)]
    assert runner.combine_many(tpk, groups) == plain
    assert runner.combine_many(tpk, groups, verify=False) == plain


def test_threshold_combine_many_reports_bad_proofs_and_missing_partials(
    runner: parallel.CryptoPool,
    dealt: tuple[threshold.ThresholdPublicKey, list[threshold.KeyShare]],
) -> None:
    tpk, shares = dealt
    cts = [tpk.encrypt(m) for m in range(12)]
    groups = [[shares[0].partial_decrypt(c), shares[2].partial_decrypt(c)] for c in cts]
    good = groups[9][1]
    groups[9][1] = threshold.PartialDecryption(
        good.index, good.ciphertext, good.value, good.challenge, good.response + 1
    )
    with pytest.raises(threshold.InvalidPartialDecryptionError) as info:
        runner.combine_many(tpk, groups)
    assert info.value.holders == (3,)
    with pytest.raises(ThresholdNotMetError, match="ciphertext 2"):
        runner.combine_many(tpk, [*groups[:2], [], *groups[3:]])
    with pytest.raises(InvalidInputError, match="different ciphertexts"):
        runner.combine_many(tpk, [[groups[0][0], groups[1][1]]])
    with pytest.raises(InvalidInputError):
        runner.partial_decrypt_many("share", cts)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="ciphertext 1"):
        runner.partial_decrypt_many(shares[0], [cts[0], 5])  # type: ignore[list-item]


def test_threshold_decryption_of_a_packed_aggregate_on_the_pool(
    runner: parallel.CryptoPool,
    dealt: tuple[threshold.ThresholdPublicKey, list[threshold.KeyShare]],
) -> None:
    tpk, shares = dealt
    layout = Packing.for_key(
        tpk.public_key, length=600, min_value=-2.0, max_value=2.0, max_additions=4, frac_bits=8
    )
    vectors = [np.linspace(-2, 2, 600) * (k - 1.5) / 1.5 for k in range(4)]
    reports = runner.encrypt_vectors(tpk.public_key, vectors, layout)
    aggregate = runner.aggregate_vectors(tpk.public_key, reports)
    by_holder = [runner.partial_decrypt_many(share, aggregate) for share in shares[:2]]
    groups = [list(group) for group in zip(*by_holder)]
    sums = runner.combine_vector(tpk, groups, layout, 4)
    expected = sum(np.rint(v * 2**8).astype(np.int64) for v in vectors) / 2**8
    assert sums.tolist() == expected.tolist()
    assert packing.combine_vector(tpk, groups, layout, 4).tolist() == expected.tolist()
    with pytest.raises(InvalidInputError):
        runner.combine_vector(tpk, groups[1:], layout, 4)

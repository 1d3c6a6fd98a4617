"""Batched threshold decryption: one proof per key holder for a whole vector of ciphertexts."""

from __future__ import annotations

import dataclasses
import itertools
import json
import secrets
from collections.abc import Iterator

import gmpy2
import numpy as np
import pytest

from smpcloud import parallel
from smpcloud.crypto import packing, paillier, threshold, threshold_batch, threshold_proofs
from smpcloud.crypto.packing import Packing
from smpcloud.crypto.threshold import (
    BatchPartialDecryption,
    InvalidPartialDecryptionError,
    KeyShare,
    ThresholdPublicKey,
)
from smpcloud.errors import (
    InvalidInputError,
    KeyMismatchError,
    ThresholdNotMetError,
    VerificationError,
)

COUNT = 40

Key = tuple[ThresholdPublicKey, list[KeyShare]]


@pytest.fixture(scope="module")
def key() -> Key:
    return threshold.deal(512, n=5, t=3, insecure=True)


@pytest.fixture(scope="module")
def plaintexts() -> list[int]:
    return [secrets.randbelow(2**90) - 2**89 for _ in range(COUNT)]


@pytest.fixture(scope="module")
def ciphertexts(key: Key, plaintexts: list[int]) -> list[paillier.Ciphertext]:
    pk, _ = key
    return [pk.encrypt(m) for m in plaintexts]


@pytest.fixture(scope="module")
def batches(key: Key, ciphertexts: list[paillier.Ciphertext]) -> list[BatchPartialDecryption]:
    _, shares = key
    return [share.partial_decrypt_batch(ciphertexts) for share in shares]


def with_value(batch: BatchPartialDecryption, j: int, value: int) -> BatchPartialDecryption:
    values = list(batch.values)
    values[j] = value
    return dataclasses.replace(batch, values=tuple(values))


def reprove(
    share: KeyShare, ciphertexts: list[paillier.Ciphertext], values: list[int]
) -> BatchPartialDecryption:
    """A malicious holder: a fresh batched proof, made with its real key share, for ANY values.

    Follows KeyShare.prove_batch without its self-check, so the proof is computed honestly
    on a transcript that contains the tampered values.
    """
    pk = share.public
    n2 = gmpy2.mpz(pk.public_key.n_squared)
    cts = [gmpy2.mpz(c.value) for c in ciphertexts]
    vals = [gmpy2.mpz(v) for v in values]
    digest, rhos = threshold_batch.batch_coefficients(pk, share.index, cts, vals)
    big_c, big_p = threshold_batch.multi_pow([cts, vals], rhos, n2)
    e, z = threshold_proofs.prove_dleq(
        share,
        gmpy2.powmod(big_c, 4, n2),
        gmpy2.powmod(big_p, 2, n2),
        domain=threshold_batch.BATCH_CHALLENGE_DOMAIN,
        context=(digest,),
    )
    return BatchPartialDecryption(share.index, tuple(values), e, z)


# ----------------------------------------------------------------------------- honest runs


def test_every_3_subset_of_5_holders_decrypts(key: Key, ciphertexts, batches, plaintexts) -> None:
    pk, _ = key
    for batch in batches:
        threshold.verify_batch(pk, ciphertexts, batch)
        assert batch.index in range(1, 6) and len(batch.values) == COUNT
    for subset in itertools.combinations(batches, 3):
        assert threshold.combine_batch(pk, ciphertexts, subset) == plaintexts


def test_more_than_t_batches_in_any_order(key: Key, ciphertexts, batches, plaintexts) -> None:
    pk, _ = key
    assert threshold.combine_batch(pk, ciphertexts, list(reversed(batches))) == plaintexts
    assert threshold.combine_batch(pk, ciphertexts, iter(batches[1:]), verify=False) == plaintexts


def test_batch_values_equal_the_single_partial_decryptions(key: Key, ciphertexts, batches) -> None:
    _, shares = key
    single = [shares[2].partial_decrypt(c).value for c in ciphertexts[:5]]
    assert list(batches[2].values[:5]) == single
    # Fresh proof randomness every time, same values; both verify.
    again = shares[2].partial_decrypt_batch(ciphertexts)
    assert again.values == batches[2].values and again.response != batches[2].response
    threshold.verify_batch(key[0], ciphertexts, again)


def test_homomorphic_vector_sum_then_batch_threshold_decrypt(key: Key) -> None:
    pk, shares = key
    vectors = [[secrets.randbelow(1000) - 500 for _ in range(7)] for _ in range(4)]
    aggregate = [sum(pk.encrypt(v[j]) for v in vectors) for j in range(7)]
    chosen = [shares[i].partial_decrypt_batch(aggregate) for i in (4, 0, 2)]
    assert threshold.combine_batch(pk, aggregate, chosen) == [
        sum(v[j] for v in vectors) for j in range(7)
    ]


def test_one_ciphertext_and_t_of_one() -> None:
    pk, shares = threshold.deal(256, n=1, t=1, insecure=True)
    c = [pk.encrypt(-5)]
    assert threshold.combine_batch(pk, c, [shares[0].partial_decrypt_batch(c)]) == [-5]


# ------------------------------------------------------------------------------ cheating


@pytest.mark.parametrize("position", [0, 1, 17, COUNT - 1])
@pytest.mark.parametrize("holder", [1, 4])
def test_a_single_tampered_partial_is_caught_and_its_holder_named(
    key: Key, ciphertexts, batches, position: int, holder: int
) -> None:
    pk, shares = key
    n2 = pk.public_key.n_squared
    honest = batches[holder - 1]
    for factor in (4, 1 + pk.n, pow(secrets.randbelow(n2 - 2) + 2, 2, n2)):
        forged = with_value(honest, position, honest.values[position] * factor % n2)
        # The old proof no longer fits (the transcript changed) ...
        with pytest.raises(InvalidPartialDecryptionError, match=f"holder\\(s\\) {holder}") as info:
            threshold.verify_batch(pk, ciphertexts, forged)
        assert info.value.holders == (holder,)
        # ... and a fresh proof by the holder itself, with its real key share, fails too.
        reproved = reprove(shares[holder - 1], ciphertexts, list(forged.values))
        with pytest.raises(InvalidPartialDecryptionError, match=f"holder\\(s\\) {holder}"):
            threshold.verify_batch(pk, ciphertexts, reproved)
        with pytest.raises(VerificationError, match="do not match"):
            shares[holder - 1].prove_batch(ciphertexts, list(forged.values))


def test_reprove_helper_makes_valid_proofs_for_honest_values(
    key: Key, ciphertexts, batches
) -> None:
    pk, shares = key
    threshold.verify_batch(
        pk, ciphertexts, reprove(shares[3], ciphertexts, list(batches[3].values))
    )


def test_negating_a_partial_is_harmless_because_only_its_square_is_used(
    key: Key, ciphertexts, batches, plaintexts
) -> None:
    # -p_j has the same square as p_j: a holder that sends it can prove it (the statement is
    # about squares, as in Shoup), and the combiner, which raises p_j to the even power
    # 2 mu_i, still gets the right plaintext.
    pk, shares = key
    n2 = pk.public_key.n_squared
    values = list(batches[0].values)
    values[3] = n2 - values[3]
    negated = reprove(shares[0], ciphertexts, values)
    threshold.verify_batch(pk, ciphertexts, negated)
    assert threshold.combine_batch(pk, ciphertexts, [negated, *batches[1:3]]) == plaintexts


def test_tampered_proof_fails(key: Key, ciphertexts, batches) -> None:
    pk, _ = key
    batch = batches[1]
    bound = 1 << (threshold_proofs.proof_nonce_bits(pk) + 1)
    for forged in (
        dataclasses.replace(batch, challenge=batch.challenge ^ 1),
        dataclasses.replace(batch, challenge=batch.challenge + (1 << 256)),
        dataclasses.replace(batch, response=batch.response + 1),
        dataclasses.replace(batch, response=batch.response + bound),
        dataclasses.replace(batch, response=0),
    ):
        with pytest.raises(InvalidPartialDecryptionError, match="holder\\(s\\) 2"):
            threshold.verify_batch(pk, ciphertexts, forged)
    # Another holder's index on the same values and proof: fails, naming the claimed holder.
    with pytest.raises(InvalidPartialDecryptionError, match="holder\\(s\\) 3"):
        threshold.verify_batch(pk, ciphertexts, dataclasses.replace(batch, index=3))


def test_reordered_ciphertexts_or_values_fail(key: Key, ciphertexts, batches) -> None:
    pk, _ = key
    swapped = list(ciphertexts)
    swapped[2], swapped[9] = swapped[9], swapped[2]
    with pytest.raises(InvalidPartialDecryptionError):
        threshold.verify_batch(pk, swapped, batches[0])
    values = list(batches[0].values)
    values[2], values[9] = values[9], values[2]
    with pytest.raises(InvalidPartialDecryptionError):
        threshold.verify_batch(
            pk, ciphertexts, dataclasses.replace(batches[0], values=tuple(values))
        )
    # Both swapped consistently: the per-position statements hold, but the proof binds the
    # order of the transcript, so it still fails.
    with pytest.raises(InvalidPartialDecryptionError):
        threshold.verify_batch(pk, swapped, dataclasses.replace(batches[0], values=tuple(values)))
    other = [*ciphertexts[:-1], pk.encrypt(1)]
    with pytest.raises(InvalidPartialDecryptionError):
        threshold.verify_batch(pk, other, batches[0])


def test_values_outside_the_group_are_named(key: Key, ciphertexts, batches) -> None:
    pk, _ = key
    n2 = pk.public_key.n_squared
    for value, detail in ((pk.n, "not coprime"), (n2, "outside"), (0, "outside")):
        with pytest.raises(InvalidPartialDecryptionError, match=detail) as info:
            threshold.verify_batch(pk, ciphertexts, with_value(batches[4], 5, value))
        assert info.value.holders == (5,)


def test_single_and_batch_proofs_are_not_interchangeable(key: Key, ciphertexts) -> None:
    pk, shares = key
    c = ciphertexts[0]
    single = shares[0].partial_decrypt(c)
    batch = shares[0].partial_decrypt_batch([c])
    assert batch.values == (single.value,)
    assert not threshold.verify_partial(
        pk, dataclasses.replace(single, challenge=batch.challenge, response=batch.response)
    )
    with pytest.raises(InvalidPartialDecryptionError):
        threshold.verify_batch(
            pk,
            [c],
            dataclasses.replace(batch, challenge=single.challenge, response=single.response),
        )


def test_exclude_invalid_drops_the_cheater(key: Key, ciphertexts, batches, plaintexts) -> None:
    pk, _ = key
    n2 = pk.public_key.n_squared
    forged = with_value(batches[1], 11, batches[1].values[11] * 9 % n2)
    with pytest.raises(InvalidPartialDecryptionError, match="holder\\(s\\) 2") as info:
        threshold.combine_batch(pk, ciphertexts, [batches[0], forged, batches[2]])
    assert info.value.holders == (2,)
    four = [batches[0], forged, batches[2], batches[3]]
    assert threshold.combine_batch(pk, ciphertexts, four, exclude_invalid=True) == plaintexts
    with pytest.raises(ThresholdNotMetError, match=r"2 of 3 valid .*excluded holders 2"):
        threshold.combine_batch(
            pk, ciphertexts, [batches[0], forged, batches[2]], exclude_invalid=True
        )
    forged4 = dataclasses.replace(batches[3], response=batches[3].response + 1)
    with pytest.raises(InvalidPartialDecryptionError, match="holder\\(s\\) 2, 4") as info:
        threshold.combine_batch(pk, ciphertexts, [batches[0], forged, batches[2], forged4])
    assert info.value.holders == (2, 4)
    # Without verification, a wrong partial breaks the 1 + kn form: still no wrong plaintext.
    with pytest.raises(VerificationError):
        threshold.combine_batch(pk, ciphertexts, [batches[0], forged, batches[2]], verify=False)


# ------------------------------------------------------------------------- input checks


def test_fewer_than_t_batches(key: Key, ciphertexts, batches) -> None:
    pk, _ = key
    with pytest.raises(ThresholdNotMetError, match="2 of 3"):
        threshold.combine_batch(pk, ciphertexts, batches[:2])
    with pytest.raises(ThresholdNotMetError, match="0 of 3"):
        threshold.combine_batch(pk, ciphertexts, [])


def test_batches_that_do_not_belong_together(key: Key, ciphertexts, batches) -> None:
    pk, shares = key
    with pytest.raises(InvalidInputError, match="duplicate"):
        threshold.combine_batch(pk, ciphertexts, [batches[0], batches[0], batches[1]])
    short = dataclasses.replace(batches[1], values=batches[1].values[:-1])
    with pytest.raises(InvalidInputError, match=f"holder 2 holds {COUNT - 1} partial values"):
        threshold.combine_batch(pk, ciphertexts, [batches[0], short, batches[2]])
    with pytest.raises(InvalidInputError, match=f"for {COUNT - 1} ciphertexts"):
        threshold.verify_batch(pk, ciphertexts[:-1], batches[0])
    with pytest.raises(InvalidInputError, match=r"outside 1\.\.5"):
        threshold.verify_batch(pk, ciphertexts, dataclasses.replace(batches[0], index=6))
    with pytest.raises(InvalidInputError, match="BatchPartialDecryption"):
        threshold.verify_batch(pk, ciphertexts, shares[0].partial_decrypt(ciphertexts[0]))  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="ciphertext 1: expected a Ciphertext"):
        threshold.verify_batch(pk, [ciphertexts[0], 5], batches[0])  # type: ignore[list-item]
    with pytest.raises(InvalidInputError, match=r"1\.\."):
        shares[0].partial_decrypt_batch([])
    with pytest.raises(InvalidInputError, match="sequence"):
        shares[0].partial_decrypt_batch(ciphertexts[0])  # type: ignore[arg-type]


def test_ciphertexts_under_another_key(key: Key, ciphertexts, batches) -> None:
    pk, shares = key
    other_pk, _ = paillier.generate_keypair(512, insecure=True)
    foreign = [*ciphertexts[:3], other_pk.encrypt(1), *ciphertexts[4:]]
    with pytest.raises(KeyMismatchError, match="ciphertext 3"):
        shares[0].partial_decrypt_batch(foreign)
    with pytest.raises(KeyMismatchError, match="ciphertext 3"):
        threshold.verify_batch(pk, foreign, batches[0])
    with pytest.raises(KeyMismatchError):
        threshold.combine_batch(pk, foreign, batches[:3])


def test_prove_batch_refuses_wrong_values(key: Key, ciphertexts, batches) -> None:
    _, shares = key
    values = list(batches[0].values)
    proved = shares[0].prove_batch(ciphertexts, values)
    assert proved.values == batches[0].values
    with pytest.raises(VerificationError, match="do not match"):
        shares[1].prove_batch(ciphertexts, values)  # holder 1's values, holder 2's key share
    with pytest.raises(InvalidInputError, match="partial values for"):
        shares[0].prove_batch(ciphertexts, values[:-1])
    with pytest.raises(InvalidInputError, match="partial value 0"):
        shares[0].prove_batch(ciphertexts, [0, *values[1:]])


def test_repr_is_short(batches) -> None:
    text = repr(batches[0])
    assert text == f"BatchPartialDecryption(index=1, values=<{COUNT} values>)"


# ---------------------------------------------------------------------------------- JSON


def test_json_round_trip(key: Key, ciphertexts, batches) -> None:
    pk, _ = key
    for batch in batches:
        data = json.loads(json.dumps(batch.to_json()))
        assert data["kind"] == threshold.BATCH_PARTIAL_KIND and data["version"] == 1
        back = BatchPartialDecryption.from_json(pk, data, count=COUNT)
        assert back == batch
        threshold.verify_batch(pk, ciphertexts, back)
    zero = dataclasses.replace(batches[0], challenge=0, response=0)
    assert BatchPartialDecryption.from_json(pk, zero.to_json()) == zero


def test_json_decoding_is_strict(key: Key, ciphertexts, batches) -> None:
    pk, _ = key
    good = batches[2].to_json()
    values = good["values"]
    assert isinstance(values, list)
    n2 = pk.public_key.n_squared
    too_big = threshold.encode_int(n2)
    mutations: list[object] = [
        [],
        "not an object",
        {**good, "kind": threshold.PARTIAL_KIND},
        {**good, "version": 2},
        {**good, "version": True},
        {**good, "extra": 1},
        {k: v for k, v in good.items() if k != "response"},
        {**good, "index": 0},
        {**good, "index": 6},
        {**good, "index": True},
        {**good, "index": "3"},
        {**good, "values": []},
        {**good, "values": "AQAB"},
        {**good, "values": {"0": values[0]}},
        {**good, "values": [*values[:-1], values[-1] + "="]},
        {**good, "values": ["AA" + values[0], *values[1:]]},
        {**good, "values": [too_big, *values[1:]]},
        {**good, "values": [1, *values[1:]]},
        {**good, "values": ["+" + values[0][1:], *values[1:]]},  # never a no-op
        {**good, "challenge": threshold.encode_int(1 << 256)},
        {**good, "challenge": 5},
        {**good, "response": " " + str(good["response"])},
    ]
    for index, data in enumerate(mutations):
        with pytest.raises(InvalidInputError):
            BatchPartialDecryption.from_json(pk, data)
            pytest.fail(f"mutation {index} was accepted")
    with pytest.raises(InvalidInputError, match="39 ciphertexts expected"):
        BatchPartialDecryption.from_json(pk, good, count=COUNT - 1)
    # A well-formed but different value decodes, and then fails verification.
    changed = {**good, "values": [threshold.encode_int(5), *values[1:]]}
    decoded = BatchPartialDecryption.from_json(pk, changed, count=COUNT)
    with pytest.raises(InvalidPartialDecryptionError, match="holder\\(s\\) 3"):
        threshold.verify_batch(pk, ciphertexts, decoded)


# ------------------------------------------------------------------ packed vectors, pool


@pytest.fixture(scope="module")
def pool() -> Iterator[parallel.CryptoPool]:
    with parallel.CryptoPool(2) as running:
        yield running


@pytest.fixture(params=["inline", "pool"])
def runner(request: pytest.FixtureRequest, pool: parallel.CryptoPool) -> parallel.CryptoPool:
    return pool if request.param == "pool" else parallel.CryptoPool(1)


def test_packed_aggregate_with_one_batch_per_holder(runner: parallel.CryptoPool, key: Key) -> None:
    pk, shares = key
    layout = Packing.for_key(
        pk.public_key, length=700, min_value=-2.0, max_value=2.0, max_additions=4, frac_bits=8
    )
    vectors = [np.linspace(-2, 2, 700) * (k - 1.5) / 1.5 for k in range(4)]
    reports = runner.encrypt_vectors(pk.public_key, vectors, layout)
    aggregate = runner.aggregate_vectors(pk.public_key, reports)
    assert len(aggregate) == layout.ciphertexts == 18
    batches = [runner.partial_decrypt_batch(shares[i], aggregate) for i in (1, 3, 4)]
    for batch in batches:
        runner.verify_batch(pk, aggregate, batch)
        threshold.verify_batch(pk, aggregate, batch)
    assert batches[0].values == shares[1].partial_decrypt_batch(aggregate).values
    expected = sum(np.rint(v * 2**8).astype(np.int64) for v in vectors) / 2**8
    sums = runner.combine_vector_batches(pk, aggregate, batches, layout, 4)
    assert sums.tolist() == expected.tolist()
    assert packing.combine_vector_batches(pk, aggregate, batches, layout, 4).tolist() == (
        expected.tolist()
    )
    with pytest.raises(InvalidInputError, match="packing declares"):
        runner.combine_vector_batches(pk, aggregate[1:], batches, layout, 4)
    with pytest.raises(InvalidInputError, match="packing declares"):
        packing.combine_vector_batches(pk, aggregate[1:], batches, layout, 4)


def test_pool_combine_batch_names_and_excludes_cheaters(
    runner: parallel.CryptoPool, key: Key, ciphertexts, batches, plaintexts
) -> None:
    pk, shares = key
    n2 = pk.public_key.n_squared
    forged = with_value(batches[2], COUNT - 1, batches[2].values[-1] * 4 % n2)
    assert runner.combine_batch(pk, ciphertexts, batches[:3]) == plaintexts
    assert runner.combine_batch(pk, ciphertexts, batches[2:], verify=False) == plaintexts
    with pytest.raises(InvalidPartialDecryptionError, match="holder\\(s\\) 3") as info:
        runner.combine_batch(pk, ciphertexts, [batches[0], batches[1], forged])
    assert info.value.holders == (3,)
    with pytest.raises(InvalidPartialDecryptionError, match="holder\\(s\\) 3"):
        runner.verify_batch(pk, ciphertexts, forged)
    four = [forged, batches[0], batches[4], batches[1]]
    assert runner.combine_batch(pk, ciphertexts, four, exclude_invalid=True) == plaintexts
    with pytest.raises(ThresholdNotMetError, match="2 of 3 valid"):
        runner.combine_batch(pk, ciphertexts, four[:3], exclude_invalid=True)
    with pytest.raises(ThresholdNotMetError, match="0 of 3"):
        runner.combine_batch(pk, ciphertexts, [])
    with pytest.raises(InvalidInputError, match="duplicate"):
        runner.combine_batch(pk, ciphertexts, [batches[0], batches[0], batches[1]])
    with pytest.raises(InvalidInputError):
        runner.partial_decrypt_batch("share", ciphertexts)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="ciphertext 1"):
        runner.partial_decrypt_batch(shares[0], [ciphertexts[0], 5])  # type: ignore[list-item]
    with pytest.raises(InvalidInputError, match="no ciphertexts"):
        runner.partial_decrypt_batch(shares[0], [])


# ---------------------------------------------------------------------------- real sizes


def test_2048_bit_batch_threshold_decrypt() -> None:
    pk, shares = threshold.deal(2048, n=3, t=2)
    cts = [pk.encrypt(123456789) + pk.encrypt(-9), pk.encrypt(-(10**40)), pk.encrypt(0)]
    chosen = [shares[2].partial_decrypt_batch(cts), shares[0].partial_decrypt_batch(cts)]
    assert threshold.combine_batch(pk, cts, chosen) == [123456780, -(10**40), 0]
    restored = BatchPartialDecryption.from_json(pk, json.loads(json.dumps(chosen[0].to_json())))
    assert restored == chosen[0]


@pytest.mark.slow
def test_default_size_batch_threshold_decrypt() -> None:
    pk, shares = threshold.deal(3072, n=5, t=3)
    cts = [pk.encrypt(m) for m in (-(10**30), 7, 2**100)]
    batches = [s.partial_decrypt_batch(cts) for s in shares[2:]]
    assert threshold.combine_batch(pk, cts, batches) == [-(10**30), 7, 2**100]
    forged = with_value(batches[0], 1, batches[0].values[1] * 4 % pk.public_key.n_squared)
    with pytest.raises(InvalidPartialDecryptionError, match="holder\\(s\\) 3"):
        threshold.verify_batch(pk, cts, forged)


def test_multi_exponentiation_matches_powmod() -> None:
    modulus = gmpy2.mpz(secrets.randbits(512) | 1)
    for count in (1, 3, 40, 300):
        bases = [gmpy2.mpz(secrets.randbelow(int(modulus))) for _ in range(count)]
        others = [gmpy2.mpz(secrets.randbelow(int(modulus))) for _ in range(count)]
        exponents = [secrets.randbits(128) for _ in range(count)]
        exponents[0] = 0
        expected = [gmpy2.mpz(1), gmpy2.mpz(1)]
        for k, column in enumerate((bases, others)):
            for b, e in zip(column, exponents):
                expected[k] = expected[k] * gmpy2.powmod(b, e, modulus) % modulus
        assert threshold_batch.multi_pow([bases, others], exponents, modulus) == expected
    assert threshold_batch.multi_pow([[gmpy2.mpz(3)]], [0], modulus) == [1]

"""Threshold Paillier: dealing, partial decryption with proofs, combining from any t of n."""

from __future__ import annotations

import dataclasses
import itertools
import math

import gmpy2
import pytest

from smpcloud.crypto import paillier, threshold
from smpcloud.crypto.threshold import InvalidPartialDecryptionError, ThresholdPublicKey
from smpcloud.errors import InvalidInputError, KeyMismatchError, ThresholdNotMetError


@pytest.fixture(scope="module")
def key() -> tuple[ThresholdPublicKey, list[threshold.KeyShare]]:
    return threshold.deal(512, n=5, t=3, insecure=True)


def test_modulus_is_a_product_of_two_safe_primes_hidden_from_the_holders(key) -> None:
    pk, shares = key
    assert pk.n.bit_length() == 512
    assert not gmpy2.is_prime(pk.n)
    # Nothing the dealer returns contains a factor of n.
    assert all(math.gcd(s.secret, pk.n) == 1 for s in shares)


def test_every_3_subset_of_5_decrypts(key) -> None:
    pk, shares = key
    c = pk.encrypt(-271828)
    partials = [s.partial_decrypt(c) for s in shares]
    for subset in itertools.combinations(partials, 3):
        assert threshold.combine(pk, subset) == -271828


def test_more_than_t_partials_are_fine_and_order_does_not_matter(key) -> None:
    pk, shares = key
    c = pk.encrypt(99)
    partials = [s.partial_decrypt(c) for s in shares]
    assert threshold.combine(pk, list(reversed(partials))) == 99


def test_homomorphic_sum_then_threshold_decrypt(key) -> None:
    pk, shares = key
    values = [5, -17, 1000, 0, 42]
    aggregate = sum(pk.encrypt(v) for v in values)
    partials = [shares[i].partial_decrypt(aggregate) for i in (4, 1, 2)]
    assert threshold.combine(pk, partials) == sum(values)


def test_fewer_than_t_partials(key) -> None:
    pk, shares = key
    c = pk.encrypt(1)
    with pytest.raises(ThresholdNotMetError, match="2 of 3"):
        threshold.combine(pk, [shares[0].partial_decrypt(c), shares[1].partial_decrypt(c)])
    with pytest.raises(ThresholdNotMetError, match="0 of 3"):
        threshold.combine(pk, [])


def test_duplicate_holder_and_different_ciphertexts(key) -> None:
    pk, shares = key
    c1, c2 = pk.encrypt(1), pk.encrypt(2)
    p = shares[0].partial_decrypt(c1)
    with pytest.raises(InvalidInputError, match="duplicate"):
        threshold.combine(pk, [p, p, shares[1].partial_decrypt(c1)])
    with pytest.raises(InvalidInputError, match="different ciphertext"):
        threshold.combine(pk, [p, shares[1].partial_decrypt(c2), shares[2].partial_decrypt(c1)])


def test_cheating_holder_is_named_and_can_be_excluded(key) -> None:
    pk, shares = key
    c = pk.encrypt(7)
    partials = [s.partial_decrypt(c) for s in shares]
    n2 = pk.public_key.n_squared
    forged = dataclasses.replace(partials[1], value=partials[1].value * 4 % n2)
    assert threshold.verify_partial(pk, partials[1])
    assert not threshold.verify_partial(pk, forged)
    with pytest.raises(InvalidPartialDecryptionError, match="holder\\(s\\) 2") as info:
        threshold.combine(pk, [partials[0], forged, partials[2]])
    assert info.value.holders == (2,)
    assert (
        threshold.combine(pk, [partials[0], forged, partials[2], partials[3]], exclude_invalid=True)
        == 7
    )
    with pytest.raises(ThresholdNotMetError, match="excluded holders 2"):
        threshold.combine(pk, [partials[0], forged, partials[2]], exclude_invalid=True)


def test_a_proof_for_one_holder_does_not_pass_for_another(key) -> None:
    pk, shares = key
    c = pk.encrypt(3)
    p = shares[0].partial_decrypt(c)
    assert not threshold.verify_partial(pk, dataclasses.replace(p, index=2))
    assert not threshold.verify_partial(pk, dataclasses.replace(p, response=p.response + 1))
    assert not threshold.verify_partial(pk, dataclasses.replace(p, challenge=p.challenge ^ 1))
    other = pk.encrypt(4)
    assert not threshold.verify_partial(pk, dataclasses.replace(p, ciphertext=other))


def test_ciphertext_under_another_key_is_refused(key) -> None:
    _, shares = key
    other_pk, _ = paillier.generate_keypair(512, insecure=True)
    with pytest.raises(KeyMismatchError):
        shares[0].partial_decrypt(other_pk.encrypt(1))


def test_deal_parameter_checks() -> None:
    with pytest.raises(InvalidInputError, match="insecure"):
        threshold.deal(1024, n=3, t=2)
    with pytest.raises(InvalidInputError):
        threshold.deal(512, n=3, t=4, insecure=True)
    with pytest.raises(InvalidInputError):
        threshold.deal(512, n=0, t=0, insecure=True)


def test_t_of_one_and_n_of_n() -> None:
    pk, shares = threshold.deal(256, n=1, t=1, insecure=True)
    assert threshold.combine(pk, [shares[0].partial_decrypt(pk.encrypt(-5))]) == -5
    pk, shares = threshold.deal(256, n=4, t=4, insecure=True)
    c = pk.encrypt(12)
    assert threshold.combine(pk, [s.partial_decrypt(c) for s in shares]) == 12


def test_json_round_trips_and_strictness(key) -> None:
    pk, shares = key
    data = threshold.public_key_to_json(pk)
    assert threshold.public_key_from_json(data, insecure=True) == pk
    with pytest.raises(InvalidInputError, match="insecure"):
        threshold.public_key_from_json(data)
    with pytest.raises(InvalidInputError):
        threshold.public_key_from_json(
            {**data, "verification_keys": data["verification_keys"][:4]}, insecure=True
        )
    with pytest.raises(InvalidInputError):
        threshold.public_key_from_json({**data, "extra": 1}, insecure=True)
    restored = threshold.key_share_from_json(threshold.key_share_to_json(shares[2]), insecure=True)
    assert restored.index == 3 and restored.secret == shares[2].secret
    c = pk.encrypt(11)
    p = restored.partial_decrypt(c)
    back = threshold.partial_from_json(pk, c, threshold.partial_to_json(p))
    assert back == p and threshold.verify_partial(pk, back)
    with pytest.raises(InvalidInputError, match="index"):
        threshold.partial_from_json(pk, c, {**threshold.partial_to_json(p), "index": 9})


def test_key_share_repr_redacts_the_secret(key) -> None:
    _, shares = key
    assert str(shares[0].secret) not in repr(shares[0]) and "redacted" in repr(shares[0])


@pytest.mark.slow
def test_default_size_deal_and_decrypt() -> None:
    pk, shares = threshold.deal(3072, n=5, t=3)
    c = pk.encrypt(-(10**30))
    assert threshold.combine(pk, [s.partial_decrypt(c) for s in shares[2:]]) == -(10**30)


def test_2048_bit_threshold_decrypt() -> None:
    pk, shares = threshold.deal(2048, n=3, t=2)
    c = pk.encrypt(123456789) + pk.encrypt(-9)
    assert (
        threshold.combine(pk, [shares[2].partial_decrypt(c), shares[0].partial_decrypt(c)])
        == 123456780
    )

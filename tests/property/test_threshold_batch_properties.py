"""Hypothesis: batched threshold decryption (one proof per holder) with any t of n holders.

* combining the batches of any t (or more, in any order) of the n holders gives back the
  plaintexts of a vector of sums;
* multiplying any one partial value by any unit whose square is not 1 makes the batch fail
  verification, naming its holder (this is the batch soundness property: the small-exponent
  test catches a single wrong position);
* a strict JSON decode rejects any one-character change of an encoded integer, or the batch
  decodes and then fails verification.
"""

from __future__ import annotations

import json
import math

import gmpy2
from hypothesis import assume, given
from hypothesis import strategies as st

from smpcloud.crypto import threshold, threshold_batch, threshold_proofs
from smpcloud.crypto.threshold import BatchPartialDecryption, InvalidPartialDecryptionError
from smpcloud.errors import InvalidInputError

_KEYS: dict[tuple[int, int], tuple] = {}
_B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def key_for(n: int, t: int) -> tuple:
    if (n, t) not in _KEYS:
        _KEYS[(n, t)] = threshold.deal(256, n=n, t=t, insecure=True)
    return _KEYS[(n, t)]


@st.composite
def n_and_t(draw: st.DrawFn) -> tuple[int, int]:
    n = draw(st.integers(min_value=1, max_value=5))
    return n, draw(st.integers(min_value=1, max_value=n))


def reprove(share: threshold.KeyShare, cts: list, values: list[int]) -> BatchPartialDecryption:
    """A malicious holder's fresh proof, with its real key share, for ANY values."""
    pk = share.public
    n2 = gmpy2.mpz(pk.public_key.n_squared)
    c_values = [gmpy2.mpz(c.value) for c in cts]
    p_values = [gmpy2.mpz(v) for v in values]
    digest, rhos = threshold_batch.batch_coefficients(pk, share.index, c_values, p_values)
    big_c, big_p = threshold_batch.multi_pow([c_values, p_values], rhos, n2)
    e, z = threshold_proofs.prove_dleq(
        share,
        gmpy2.powmod(big_c, 4, n2),
        gmpy2.powmod(big_p, 2, n2),
        domain=threshold_batch.BATCH_CHALLENGE_DOMAIN,
        context=(digest,),
    )
    return BatchPartialDecryption(share.index, tuple(values), e, z)


VALUES = st.integers(min_value=-(2**100), max_value=2**100)
VECTORS = st.lists(st.tuples(VALUES, VALUES), min_size=1, max_size=6)


@given(nt=n_and_t(), pairs=VECTORS, data=st.data())
def test_any_t_or_more_of_n_holders_decrypt_a_vector_of_sums(
    nt: tuple[int, int], pairs: list[tuple[int, int]], data: st.DataObject
) -> None:
    pk, shares = key_for(*nt)
    cts = [pk.encrypt(a) + pk.encrypt(b) for a, b in pairs]
    chosen = data.draw(
        st.permutations(shares).flatmap(
            lambda order: st.integers(min_value=pk.threshold, max_value=len(order)).map(
                lambda k: order[:k]
            )
        )
    )
    batches = [share.partial_decrypt_batch(cts) for share in chosen]
    assert threshold.combine_batch(pk, cts, batches) == [a + b for a, b in pairs]
    assert threshold.combine_batch(pk, cts, batches[::-1], verify=False) == [
        a + b for a, b in pairs
    ]


@given(
    nt=n_and_t(),
    pairs=VECTORS,
    holder=st.integers(min_value=0, max_value=4),
    position=st.integers(min_value=0, max_value=5),
    factor=st.integers(min_value=2),
)
def test_one_wrong_partial_anywhere_fails_naming_its_holder(
    nt: tuple[int, int], pairs: list[tuple[int, int]], holder: int, position: int, factor: int
) -> None:
    pk, shares = key_for(*nt)
    n2 = pk.public_key.n_squared
    share = shares[holder % len(shares)]
    cts = [pk.encrypt(a) + pk.encrypt(b) for a, b in pairs]
    position %= len(cts)
    factor %= n2
    assume(math.gcd(factor, pk.n) == 1 and factor * factor % n2 != 1)
    honest = share.partial_decrypt_batch(cts)
    values = list(honest.values)
    values[position] = values[position] * factor % n2
    stale = BatchPartialDecryption(share.index, tuple(values), honest.challenge, honest.response)
    # The honest proof on the changed values, and a fresh proof made for them by the holder
    # itself (with its real key share): both must fail.
    for forged in (stale, reprove(share, cts, values)):
        try:
            threshold.verify_batch(pk, cts, forged)
        except InvalidPartialDecryptionError as exc:
            assert exc.holders == (share.index,)
        else:
            raise AssertionError("a wrong partial value passed verification")


@given(
    field=st.sampled_from(["value", "challenge", "response"]),
    position=st.integers(min_value=0),
    char=st.sampled_from(_B64URL),
)
def test_strict_json_rejects_one_character_changes(field: str, position: int, char: str) -> None:
    pk, shares = key_for(3, 2)
    cts = [pk.encrypt(m) for m in (5, -6, 7)]
    batch = shares[1].partial_decrypt_batch(cts)
    data = json.loads(json.dumps(batch.to_json()))
    if field == "value":
        j = position % len(cts)
        text = data["values"][j]
    else:
        text = data[field]
    k = position % len(text)
    assume(text[k] != char)
    mutated = text[:k] + char + text[k + 1 :]
    if field == "value":
        data["values"][j] = mutated
    else:
        data[field] = mutated
    try:
        decoded = BatchPartialDecryption.from_json(pk, data, count=len(cts))
    except InvalidInputError:
        return
    assert decoded != batch
    try:
        threshold.verify_batch(pk, cts, decoded)
    except InvalidPartialDecryptionError as exc:
        assert exc.holders == (2,)
    else:
        raise AssertionError("a mutated batch was accepted")

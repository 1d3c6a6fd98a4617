"""Property tests of the Pedersen helpers and the bit OR-proofs (crypto.pedersen, range_proof).

Known-answer / structure checks of the generators; the commitment's homomorphism; completeness
of the OR-proof for both bits and its failure for any other committed value; the derived value
commitment; and the decoding of points and scalars from outside.
"""

from __future__ import annotations

import hashlib
import secrets

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nacl.bindings import crypto_core_ed25519_from_uniform, crypto_core_ed25519_is_valid_point

from smpcloud.crypto import pedersen
from smpcloud.crypto.decomposition import bit_weights
from smpcloud.crypto.range_proof import (
    BIT_PROOF_BYTES,
    BitWitness,
    commit_bit,
    commit_value,
    recompute_first,
    respond_bit,
    value_commitment,
)
from smpcloud.errors import InvalidProofError

scalars = st.integers(0, pedersen.L - 1)
#: The RFC 8032 base point's encoding (y = 4/5).
BASE_POINT_HEX = "58" + "66" * 31


def test_generators_are_as_documented() -> None:
    assert pedersen.B.hex() == BASE_POINT_HEX
    seed = hashlib.sha512(b"smpcloud/pedersen/H/v1").digest()[:32]
    assert bytes(crypto_core_ed25519_from_uniform(seed)) == pedersen.H
    assert crypto_core_ed25519_is_valid_point(pedersen.H)
    assert pedersen.H != pedersen.B
    # H has prime order l: l H is the identity, computed as (l - 1) H + H.
    assert pedersen.add(pedersen.mul(pedersen.L - 1, pedersen.H), pedersen.H) == pedersen.IDENTITY


@given(a=st.integers(-(2**80), 2**80), b=st.integers(-(2**80), 2**80), r=scalars, s=scalars)
def test_commitments_add(a: int, b: int, r: int, s: int) -> None:
    assert pedersen.add(pedersen.commit(a, r), pedersen.commit(b, s)) == pedersen.commit(
        a + b, r + s
    )


def test_zero_scalars_give_the_identity() -> None:
    assert pedersen.base_mul(0) == pedersen.IDENTITY
    assert pedersen.mul(pedersen.L, pedersen.H) == pedersen.IDENTITY
    assert pedersen.commit(0, 0) == pedersen.IDENTITY
    assert pedersen.commit(0, 5) == pedersen.base_mul(5)
    assert pedersen.commit(1, 0) == pedersen.H


@given(bit=st.sampled_from([0, 1]), challenge=scalars)
def test_or_proof_is_complete(bit: int, challenge: int) -> None:
    witness = commit_bit(bit)
    proof = respond_bit(witness, challenge)
    assert len(proof) == BIT_PROOF_BYTES
    c = proof[:32]
    e0, z0, z1 = (int.from_bytes(proof[i : i + 32], "little") for i in (32, 64, 96))
    assert recompute_first(c, challenge, e0, z0, z1) == b"".join(witness.first)


@given(value=st.integers(-(2**64), 2**64).filter(lambda v: v not in (0, 1)), challenge=scalars)
def test_or_proof_of_a_non_bit_fails(value: int, challenge: int) -> None:
    # The best a cheater can do without the challenge: prove as if it were 1, or as if 0.
    for as_bit in (0, 1):
        r = pedersen.random_scalar()
        c = pedersen.commit(value, r)
        w, e_fake, z_fake = (pedersen.random_scalar() for _ in range(3))
        other = c if as_bit else pedersen.sub(c, pedersen.H)
        a_fake = pedersen.sub(pedersen.base_mul(z_fake), pedersen.mul(e_fake, other))
        first = (a_fake, pedersen.base_mul(w)) if as_bit else (pedersen.base_mul(w), a_fake)
        forged = BitWitness(as_bit, r, c, w, e_fake, z_fake, first)
        proof = respond_bit(forged, challenge)
        e0, z0, z1 = (int.from_bytes(proof[i : i + 32], "little") for i in (32, 64, 96))
        assert recompute_first(c, challenge, e0, z0, z1) != b"".join(first)


@given(data=st.data(), span=st.one_of(st.integers(1, 300), st.integers(1, 2**71)))
def test_value_commitment_is_the_weighted_sum(data: st.DataObject, span: int) -> None:
    u = data.draw(st.integers(0, span))
    witnesses, blinding = commit_value(u, span)
    assert len(witnesses) == len(bit_weights(span)) == span.bit_length()
    derived = value_commitment([w.commitment for w in witnesses], span)
    assert derived == pedersen.commit(u, blinding)


def test_points_from_outside_are_checked() -> None:
    with pytest.raises(InvalidProofError) as info:
        pedersen.decode_point(pedersen.IDENTITY, "x")
    assert info.value.check == "point"
    for bad in (bytes(32), b"\xff" * 32, pedersen.B[:31], secrets.token_bytes(33)):
        with pytest.raises(InvalidProofError):
            pedersen.decode_point(bad, "x")
    # The point of order 2, (0, -1), is refused too.
    small = ((1 << 255) - 20).to_bytes(32, "little")
    with pytest.raises(InvalidProofError):
        pedersen.decode_point(small, "x")
    assert pedersen.decode_point(pedersen.H, "x") == pedersen.H


def test_scalars_from_outside_are_canonical() -> None:
    assert pedersen.decode_scalar((pedersen.L - 1).to_bytes(32, "little"), "s", check="bit") == (
        pedersen.L - 1
    )
    with pytest.raises(InvalidProofError) as info:
        pedersen.decode_scalar(pedersen.L.to_bytes(32, "little"), "s", check="bit")
    assert info.value.check == "bit"

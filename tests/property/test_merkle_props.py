"""Merkle tree laws (RFC 9162): every leaf proves its inclusion, and nothing else does."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smpcloud.crypto import merkle
from smpcloud.errors import InvalidInputError, VerificationError

records = st.lists(st.binary(max_size=40), min_size=1, max_size=70)


def _rfc_mth(leaves: list[bytes]) -> bytes:
    """RFC 9162's recursive definition, split at the largest power of two below n."""
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return merkle.node_hash(_rfc_mth(leaves[:k]), _rfc_mth(leaves[k:]))


@given(records)
def test_root_is_rfc_9162_mth(data: list[bytes]) -> None:
    leaves = [merkle.leaf_hash(d) for d in data]
    assert merkle.root(leaves) == _rfc_mth(leaves)


def test_empty_tree_and_known_answer() -> None:
    assert merkle.root([]) == hashlib.sha256(b"").digest()
    # RFC 6962 test vector: the tree of the single empty record.
    assert merkle.root([merkle.leaf_hash(b"")]).hex() == (
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    )


@settings(max_examples=200)
@given(records, st.data())
def test_every_leaf_proves_its_inclusion(data: list[bytes], draw: st.DataObject) -> None:
    leaves = [merkle.leaf_hash(d) for d in data]
    index = draw.draw(st.integers(0, len(leaves) - 1))
    proof = merkle.inclusion_proof(leaves, index)
    merkle.verify_inclusion(leaves[index], index, len(leaves), proof, merkle.root(leaves))
    assert len(proof) <= max(1, (len(leaves) - 1).bit_length())


@settings(max_examples=200)
@given(records, st.data())
def test_tampering_is_detected(data: list[bytes], draw: st.DataObject) -> None:
    leaves = [merkle.leaf_hash(d) for d in data]
    index = draw.draw(st.integers(0, len(leaves) - 1))
    proof = merkle.inclusion_proof(leaves, index)
    top = merkle.root(leaves)
    # another record at that position
    with pytest.raises(VerificationError):
        merkle.verify_inclusion(
            merkle.leaf_hash(b"forged" + data[index]), index, len(leaves), proof, top
        )
    # a root of the log without that leaf
    rest = leaves[:index] + leaves[index + 1 :]
    if rest:
        with pytest.raises(VerificationError):
            merkle.verify_inclusion(leaves[index], index, len(leaves), proof, merkle.root(rest))
    # a flipped bit in the path
    if proof:
        at = draw.draw(st.integers(0, len(proof) - 1))
        bad = list(proof)
        bad[at] = bytes([bad[at][0] ^ 1]) + bad[at][1:]
        with pytest.raises(VerificationError):
            merkle.verify_inclusion(leaves[index], index, len(leaves), bad, top)


def test_malformed_arguments() -> None:
    leaves = [merkle.leaf_hash(bytes([i])) for i in range(5)]
    with pytest.raises(InvalidInputError):
        merkle.root([b"short"])
    with pytest.raises(InvalidInputError):
        merkle.inclusion_proof(leaves, 5)
    with pytest.raises(InvalidInputError):
        merkle.verify_inclusion(leaves[0], 7, 5, [], merkle.root(leaves))

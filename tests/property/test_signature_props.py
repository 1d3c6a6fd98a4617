"""Ed25519 statements and rosters: completeness, domain separation, and t-of-n quorums."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smpcloud.crypto.signatures import (
    Roster,
    SigningKey,
    VerifyKey,
    signature_from_text,
    statement,
    verify_statement,
)
from smpcloud.errors import InvalidInputError, SignatureError

KEYS = [SigningKey.generate() for _ in range(5)]
fields = st.dictionaries(
    st.text(max_size=8), st.one_of(st.integers(), st.text(max_size=20), st.booleans()), max_size=5
)


@settings(max_examples=50)
@given(fields)
def test_every_statement_verifies_and_no_other(payload: dict[str, object]) -> None:
    key = KEYS[0]
    signature = key.sign_statement("smpcloud/test/v1", payload)
    verify_statement(key.verify_key, signature, "smpcloud/test/v1", payload)
    with pytest.raises(SignatureError):  # another domain
        verify_statement(key.verify_key, signature, "smpcloud/other/v1", payload)
    with pytest.raises(SignatureError):  # another field
        verify_statement(key.verify_key, signature, "smpcloud/test/v1", {**payload, "x!": 1})
    with pytest.raises(SignatureError):  # another key
        verify_statement(KEYS[1].verify_key, signature, "smpcloud/test/v1", payload)


def test_statement_is_canonical_and_refuses_floats() -> None:
    assert statement("a/v1", {"b": 1, "a": "x"}) == statement("a/v1", {"a": "x", "b": 1})
    with pytest.raises(InvalidInputError):
        statement("a/v1", {"x": 0.5})
    with pytest.raises(InvalidInputError):
        statement("Bad Domain", {})


def test_signing_key_round_trip_and_redacted_repr() -> None:
    key = SigningKey.generate()
    again = SigningKey.from_json(key.to_json())
    assert again.verify_key == key.verify_key
    assert key.to_json()["seed"] not in repr(key)
    tampered = {**key.to_json(), "verify_key": KEYS[0].verify_key.to_text()}
    with pytest.raises(InvalidInputError):
        SigningKey.from_json(tampered)
    with pytest.raises(InvalidInputError):
        VerifyKey.from_text("AAAA")
    with pytest.raises(InvalidInputError):
        signature_from_text("not base64!")


@settings(max_examples=30)
@given(st.integers(1, 5), st.sets(st.integers(1, 5)))
def test_quorum_counts_only_valid_distinct_pinned_signers(t: int, signers: set[int]) -> None:
    roster = Roster(t, {i + 1: KEYS[i].verify_key for i in range(5)})
    payload = {"task": "abc", "n": 5}
    sigs = [(i, KEYS[i - 1].sign_statement("smpcloud/q/v1", payload)) for i in sorted(signers)]
    # duplicates, forgeries and strangers never count
    noise = [(i, s) for i, s in sigs] + [(9, KEYS[0].sign_statement("smpcloud/q/v1", payload))]
    if sigs:
        noise.append((sigs[0][0] % 5 + 1, sigs[0][1]))  # a signature under the wrong index
    if len(signers) >= t:
        assert roster.verify_quorum(noise, "smpcloud/q/v1", payload) == tuple(sorted(signers))
    else:
        with pytest.raises(SignatureError):
            roster.verify_quorum(noise, "smpcloud/q/v1", payload)


def test_roster_round_trip_and_checks() -> None:
    roster = Roster(2, {i + 1: KEYS[i].verify_key for i in range(3)})
    assert Roster.from_json(roster.to_json()) == roster
    assert Roster.from_json(roster.to_json()).digest() == roster.digest()
    assert Roster(3, roster.keys).digest() != roster.digest()
    with pytest.raises(InvalidInputError):
        Roster(4, roster.keys)
    with pytest.raises(InvalidInputError):
        Roster(1, {1: KEYS[0].verify_key, 2: KEYS[0].verify_key})

"""Property tests of Paillier report validity proofs (crypto.validity), on small test keys.

Completeness: every in-range value or vector, unpacked or packed, proves and verifies, and its
ciphertexts decrypt to what the layout says. Soundness against tampering: any flipped byte, two
values' proofs swapped, a changed ciphertext, another context or layout: refused with
InvalidProofError. The layout's limits, and "m = n" (0 mod n: the same ciphertext as 0).
"""

from __future__ import annotations

import secrets

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smpcloud.crypto import paillier
from smpcloud.crypto.packing import Packing
from smpcloud.crypto.paillier import PrivateKey, PublicKey
from smpcloud.crypto.validity import (
    MAX_SPAN_BITS,
    ProofLayout,
    ReportBase,
    prove_chunk,
    prove_report,
    verify_chunk,
    verify_report,
)
from smpcloud.errors import InvalidInputError, InvalidProofError, OverflowDetectedError

BITS = 768
CONTEXT = b"task|client|key"


@pytest.fixture(scope="module")
def keys() -> tuple[PublicKey, PrivateKey, ReportBase]:
    pk, sk = paillier.generate_keypair(BITS, insecure=True)
    return pk, sk, ReportBase(pk.n)


def plaintext(sk: PrivateKey, c: int) -> int:
    return sk.raw_decrypt(c)


@settings(max_examples=25)
@given(
    data=st.data(),
    span=st.one_of(st.integers(1, 40), st.integers(1, 2**20), st.integers(1, 2**MAX_SPAN_BITS - 1)),
    lo=st.integers(-(2**70), 2**70),
    length=st.integers(1, 3),
)
def test_unpacked_reports_are_complete(
    keys: tuple[PublicKey, PrivateKey, ReportBase],
    data: st.DataObject,
    span: int,
    lo: int,
    length: int,
) -> None:
    pk, sk, base = keys
    values = data.draw(st.lists(st.integers(0, span), min_size=length, max_size=length))
    layout = ProofLayout.unpacked(lo, lo + span, length)
    cts, proof = prove_report(base, layout, values, CONTEXT)
    assert len(cts) == length and len(proof) == layout.proof_bytes(BITS)
    verify_report(base, layout, cts, proof, CONTEXT)
    assert [plaintext(sk, c) for c in cts] == [(lo + u) % pk.n for u in values]


@settings(max_examples=10)
@given(data=st.data(), length=st.integers(1, 30), clients=st.integers(1, 1000))
def test_packed_reports_are_complete(
    keys: tuple[PublicKey, PrivateKey, ReportBase],
    data: st.DataObject,
    length: int,
    clients: int,
) -> None:
    _, sk, base = keys
    packing = Packing(
        length=length, key_bits=BITS, min_value=-3, max_value=4, max_additions=clients
    )
    layout = ProofLayout.packed(packing)
    values = data.draw(st.lists(st.integers(0, packing.span), min_size=length, max_size=length))
    cts, proof = prove_report(base, layout, values, CONTEXT)
    assert len(cts) == packing.ciphertexts
    verify_report(base, layout, cts, proof, CONTEXT)
    for j, c in enumerate(cts):
        slots = values[j * packing.slots : (j + 1) * packing.slots]
        assert plaintext(sk, c) == sum(u << (s * packing.slot_bits) for s, u in enumerate(slots))


@pytest.fixture(scope="module")
def packed_report(
    keys: tuple[PublicKey, PrivateKey, ReportBase],
) -> tuple[ProofLayout, list[int], bytes]:
    _, _, base = keys
    packing = Packing(length=7, key_bits=BITS, min_value=0, max_value=20, max_additions=10)
    layout = ProofLayout.packed(packing)
    values = [3, 20, 0, 7, 11, 1, 19]
    cts, proof = prove_report(base, layout, values, CONTEXT)
    return layout, cts, proof


@settings(max_examples=40)
@given(position=st.integers(0, 10**9), bit=st.integers(0, 7))
def test_any_flipped_bit_is_refused(
    keys: tuple[PublicKey, PrivateKey, ReportBase],
    packed_report: tuple[ProofLayout, list[int], bytes],
    position: int,
    bit: int,
) -> None:
    _, _, base = keys
    layout, cts, proof = packed_report
    forged = bytearray(proof)
    forged[position % len(proof)] ^= 1 << bit
    with pytest.raises(InvalidProofError) as info:
        verify_report(base, layout, cts, bytes(forged), CONTEXT)
    assert info.value.check in {"challenge", "point", "bit", "link", "range"}


def test_swapped_values_changed_ciphertexts_contexts_and_layouts_are_refused(
    keys: tuple[PublicKey, PrivateKey, ReportBase],
    packed_report: tuple[ProofLayout, list[int], bytes],
) -> None:
    _, _, base = keys
    layout, cts, proof = packed_report
    verify_report(base, layout, cts, proof, CONTEXT)
    per = layout.slot_proof_bytes() - 64 - layout.zs_bytes()  # one value's bit proofs
    swapped = (
        proof[:64] + proof[64 + per : 64 + 2 * per] + proof[64 : 64 + per] + proof[64 + 2 * per :]
    )
    with pytest.raises(InvalidProofError, match="ciphertext 0") as info:
        verify_report(base, layout, cts, swapped, CONTEXT)
    assert info.value.check == "challenge"
    bumped = [cts[0] * base.encrypt(0, secrets.randbits(64)) % int(base.n_squared)]
    for ciphertexts, context in ((bumped, CONTEXT), (cts, CONTEXT + b"!")):
        with pytest.raises(InvalidProofError) as info:
            verify_report(base, layout, ciphertexts, proof, context)
        assert info.value.check == "challenge"
    other = ProofLayout(span=21, offset=0, length=7, slots=layout.slots, slot_bits=layout.slot_bits)
    with pytest.raises(InvalidProofError) as info:
        verify_report(base, other, cts, proof, CONTEXT)
    assert info.value.check == "challenge"
    for cut in (proof[:-1], proof + b"\0", b""):
        with pytest.raises(InvalidProofError) as info:
            verify_report(base, layout, cts, cut, CONTEXT)
        assert info.value.check == "length"
    with pytest.raises(InvalidProofError) as info:
        verify_report(base, layout, cts + cts, proof, CONTEXT)
    assert info.value.check == "length"


def test_chunks_verify_alone_and_together(keys: tuple[PublicKey, PrivateKey, ReportBase]) -> None:
    _, _, base = keys
    layout = ProofLayout.unpacked(-5, 5, 5)
    a, pa = prove_chunk(base, layout, 0, [0, 1, 2], CONTEXT)
    b, pb = prove_chunk(base, layout, 3, [9, 10], CONTEXT)
    verify_report(base, layout, a + b, pa + pb, CONTEXT)
    verify_chunk(base, layout, 3, b, pb, CONTEXT)
    with pytest.raises(InvalidProofError):  # the chunk proved as ciphertexts 3-4, not 0-1
        verify_chunk(base, layout, 0, b, pb, CONTEXT)
    with pytest.raises(InvalidInputError):
        prove_chunk(base, layout, 4, [1, 2], CONTEXT)  # runs past the last ciphertext
    with pytest.raises(OverflowDetectedError):
        prove_report(base, layout, [0, 1, 2, 3, 11], CONTEXT)


def test_m_equal_to_n_is_the_ciphertext_of_zero(
    keys: tuple[PublicKey, PrivateKey, ReportBase],
) -> None:
    pk, _, base = keys
    rho = secrets.randbits(base.rho_bits)
    assert base.encrypt(pk.n, rho) == base.encrypt(0, rho)


def test_layout_limits() -> None:
    ProofLayout.unpacked(0, (1 << MAX_SPAN_BITS) - 1, 1)
    with pytest.raises(InvalidInputError, match="narrow the range"):
        ProofLayout.unpacked(0, 1 << MAX_SPAN_BITS, 1)
    with pytest.raises(InvalidInputError, match="above min_value"):
        ProofLayout.unpacked(3, 3, 1)
    # The default integer range of a task (a 65-bit span) fits.
    assert ProofLayout.unpacked(-(1 << 63), (1 << 63) - 1, 1).bits == 64


def test_far_offsets_prove_and_verify(keys: tuple[PublicKey, PrivateKey, ReportBase]) -> None:
    pk, sk, base = keys
    # An integer range far from 0 (allowed by task encodings up to 2^512): a short span, a
    # huge offset K, both hashed into the challenge.
    lo = -(2**300) + 7
    layout = ProofLayout.unpacked(lo, lo + 10, 1)
    cts, proof = prove_report(base, layout, [4], CONTEXT)
    verify_report(base, layout, cts, proof, CONTEXT)
    assert sk.raw_decrypt(cts[0]) == (lo + 4) % pk.n
    shifted = ProofLayout.unpacked(lo + 1, lo + 11, 1)
    with pytest.raises(InvalidProofError):
        verify_report(base, shifted, cts, proof, CONTEXT)

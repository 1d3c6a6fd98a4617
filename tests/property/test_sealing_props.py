"""crypto.sealing: every sealed message opens, and nothing else does (HPKE, RFC 9180)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smpcloud.crypto.sealing import OpeningKey, open_, seal
from smpcloud.errors import SealError

KEYS = [OpeningKey.generate() for _ in range(2)]
small = st.binary(max_size=64)


@settings(max_examples=60)
@given(st.binary(max_size=4096), small, small)
def test_every_plaintext_opens_to_itself(plaintext: bytes, info: bytes, aad: bytes) -> None:
    enc, ct = seal(KEYS[0].sealing_key, plaintext, info=info, aad=aad)
    assert open_(KEYS[0], enc, ct, info=info, aad=aad) == plaintext


@settings(max_examples=60)
@given(st.binary(min_size=0, max_size=256), st.data())
def test_any_changed_byte_of_enc_or_ciphertext_fails(plaintext: bytes, data: st.DataObject) -> None:
    enc, ct = seal(KEYS[0].sealing_key, plaintext, info=b"info", aad=b"aad")
    blob = bytearray(enc + ct)
    where = data.draw(st.integers(0, len(blob) - 1))
    blob[where] ^= data.draw(st.integers(1, 255))
    with pytest.raises(SealError):
        open_(KEYS[0], bytes(blob[:32]), bytes(blob[32:]), info=b"info", aad=b"aad")


@settings(max_examples=60)
@given(small, small, small, small)
def test_another_info_aad_or_key_fails(info: bytes, aad: bytes, info2: bytes, aad2: bytes) -> None:
    enc, ct = seal(KEYS[0].sealing_key, b"share", info=info, aad=aad)
    if (info2, aad2) != (info, aad):
        with pytest.raises(SealError):
            open_(KEYS[0], enc, ct, info=info2, aad=aad2)
    with pytest.raises(SealError):
        open_(KEYS[1], enc, ct, info=info, aad=aad)

"""crypto.sealing: RFC 9180 known answers (A.2.1), key forms, redaction and refusals."""

from __future__ import annotations

import pytest

from smpcloud.crypto.sealing import (
    ENC_BYTES,
    TAG_BYTES,
    OpeningKey,
    SealingKey,
    open_,
    seal,
)
from smpcloud.errors import InvalidInputError, SealError, VerificationError

# RFC 9180, Appendix A.2.1: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20Poly1305, base
# mode, the first encryption (sequence number 0: what a single-shot seal is).
INFO = bytes.fromhex("4f6465206f6e2061204772656369616e2055726e")
IKM_E = bytes.fromhex("909a9b35d3dc4713a5e72a4da274b55d3d3821a37e5d099e74a647db583a904b")
SK_RM = bytes.fromhex("8057991eef8f1f1af18f4a9491d16a1ce333f695d4db8e38da75975c4478e0fb")
PK_RM = bytes.fromhex("4310ee97d88cc1f088a5576c77ab0cf5c3ac797f3d95139c6c84b5429c59662a")
ENC = bytes.fromhex("1afa08d3dec047a643885163f1180476fa7ddb54c6a8029ea33f95796bf2ac4a")
PT = bytes.fromhex("4265617574792069732074727574682c20747275746820626561757479")
AAD_0 = bytes.fromhex("436f756e742d30")
CT_0 = bytes.fromhex(
    "1c5250d8034ec2b784ba2cfd69dbdb8af406cfe3ff938e131f0def8c8b60b4db21993c62ce81883d2dd1b51a28"
)


def test_rfc9180_a21_seal_gives_the_published_enc_and_ciphertext() -> None:
    recipient = OpeningKey.from_bytes(SK_RM)
    assert recipient.sealing_key.raw == PK_RM
    ephemeral = OpeningKey.derive(IKM_E)
    assert ephemeral.sealing_key.raw == ENC
    enc, ct = seal(recipient.sealing_key, PT, info=INFO, aad=AAD_0, ephemeral=ephemeral)
    assert (enc, ct) == (ENC, CT_0)


def test_rfc9180_a21_open_gives_the_published_plaintext() -> None:
    assert open_(OpeningKey.from_bytes(SK_RM), ENC, CT_0, info=INFO, aad=AAD_0) == PT


def test_a_fresh_seal_uses_a_fresh_ephemeral_key() -> None:
    key = OpeningKey.generate()
    first = seal(key.sealing_key, b"x", info=b"i", aad=b"a")
    second = seal(key.sealing_key, b"x", info=b"i", aad=b"a")
    assert first[0] != second[0] and first[1] != second[1]
    assert len(first[0]) == ENC_BYTES and len(first[1]) == 1 + TAG_BYTES


def test_opening_key_is_redacted_and_round_trips() -> None:
    key = OpeningKey.generate()
    assert key.to_bytes().hex() not in repr(key)
    assert "secret" in repr(key)
    assert OpeningKey.from_bytes(key.to_bytes()).sealing_key == key.sealing_key
    text = key.sealing_key.to_text()
    assert len(text) == 43
    assert SealingKey.from_text(text) == key.sealing_key
    assert len(key.sealing_key.fingerprint()) == 16


@pytest.mark.parametrize(
    "text",
    [None, 5, "", "A" * 42, "A" * 44, "+" * 43, PK_RM.hex()[:43], "A" * 42 + "B"],
)
def test_sealing_key_text_is_strict(text: object) -> None:
    with pytest.raises(InvalidInputError):
        SealingKey.from_text(text)


def test_small_order_public_keys_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="small order"):
        SealingKey(bytes(32))
    with pytest.raises(InvalidInputError):
        SealingKey(b"short")
    with pytest.raises(InvalidInputError):
        OpeningKey.from_bytes(b"short")
    with pytest.raises(InvalidInputError):
        OpeningKey.derive(b"short")


def test_malformed_enc_or_short_ciphertext_do_not_open() -> None:
    key = OpeningKey.generate()
    enc, ct = seal(key.sealing_key, b"message", info=b"i", aad=b"a")
    for bad_enc, bad_ct in ((enc[:31], ct), (bytes(32), ct), (enc, ct[:15]), (enc, b"")):
        with pytest.raises(SealError):
            open_(key, bad_enc, bad_ct, info=b"i", aad=b"a")
    assert issubclass(SealError, VerificationError)


def test_wrong_types_are_refused() -> None:
    key = OpeningKey.generate()
    with pytest.raises(InvalidInputError):
        seal(key, b"x", info=b"", aad=b"")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        seal(key.sealing_key, "x", info=b"", aad=b"")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        open_(key.sealing_key, b"", b"", info=b"", aad=b"")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        open_(key, b"", b"", info="i", aad=b"")  # type: ignore[arg-type]

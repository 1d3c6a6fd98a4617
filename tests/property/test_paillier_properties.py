"""Property tests for Paillier: homomorphisms, encodings, strict decoding.

One 1024-bit key (insecure=True, tests only) is generated per module. n has exactly 1024 bits, so
every integer in [-2^1022, 2^1022] is a valid plaintext; sums and products may leave
(-n/2, n/2] and must then wrap exactly like arithmetic mod n.
"""

from __future__ import annotations

import json
import string
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smpcloud.crypto import paillier
from smpcloud.crypto.paillier import Ciphertext, PrivateKey, PublicKey
from smpcloud.errors import InvalidInputError, OverflowDetectedError

BITS = 1024
LIMIT = 2 ** (BITS - 2)  # <= n // 2 for every 1024-bit n

plaintexts = st.one_of(
    st.integers(-(2**64), 2**64),
    st.integers(-LIMIT, LIMIT),
    st.sampled_from([0, 1, -1, LIMIT, -LIMIT]),
)
scalars = st.one_of(st.integers(-(2**70), 2**70), st.integers(-(2**2100), 2**2100))


@pytest.fixture(scope="module")
def keys() -> tuple[PublicKey, PrivateKey]:
    pk, sk = paillier.generate_keypair(BITS, insecure=True)
    pk.precompute()
    return pk, sk


def signed(x: int, n: int) -> int:
    r = x % n
    return r - n if r > n // 2 else r


@given(a=plaintexts)
def test_decrypt_encrypt(keys: tuple[PublicKey, PrivateKey], a: int) -> None:
    pk, sk = keys
    assert sk.decrypt(pk.encrypt(a)) == a
    assert sk.decrypt(pk.encrypt_classic(a)) == a


@given(a=plaintexts, b=plaintexts)
def test_sum_of_ciphertexts(keys: tuple[PublicKey, PrivateKey], a: int, b: int) -> None:
    pk, sk = keys
    assert sk.decrypt(pk.encrypt(a) + pk.encrypt(b)) == signed(a + b, pk.n)
    assert sk.decrypt(pk.encrypt(a) + pk.encrypt_classic(b)) == signed(a + b, pk.n)


@given(a=plaintexts, b=plaintexts)
def test_difference_of_ciphertexts(keys: tuple[PublicKey, PrivateKey], a: int, b: int) -> None:
    pk, sk = keys
    assert sk.decrypt(pk.encrypt(a) - pk.encrypt(b)) == signed(a - b, pk.n)


@given(a=plaintexts, k=scalars)
def test_scalar_product(keys: tuple[PublicKey, PrivateKey], a: int, k: int) -> None:
    pk, sk = keys
    c = pk.encrypt(a)
    assert sk.decrypt(c * k) == signed(k * a, pk.n)
    assert sk.decrypt(k * c) == signed(k * a, pk.n)


@given(a=plaintexts, k=plaintexts)
def test_plaintext_addition(keys: tuple[PublicKey, PrivateKey], a: int, k: int) -> None:
    pk, sk = keys
    c = pk.encrypt(a)
    assert sk.decrypt(c + k) == signed(a + k, pk.n)
    assert sk.decrypt(k + c) == signed(a + k, pk.n)
    assert sk.decrypt(c - k) == signed(a - k, pk.n)
    assert sk.decrypt(k - c) == signed(k - a, pk.n)


@given(offset=st.one_of(st.integers(0, 3), st.integers(0, 2**64)), sign=st.sampled_from([1, -1]))
def test_range_boundaries(keys: tuple[PublicKey, PrivateKey], offset: int, sign: int) -> None:
    pk, sk = keys
    inside = sign * (pk.max_int - offset)
    assert sk.decrypt(pk.encrypt(inside)) == inside
    with pytest.raises(OverflowDetectedError):
        pk.encrypt(sign * (pk.max_int + 1 + offset))


@given(a=plaintexts)
def test_negation(keys: tuple[PublicKey, PrivateKey], a: int) -> None:
    pk, sk = keys
    assert sk.decrypt(-pk.encrypt(a)) == -a


@given(values=st.lists(plaintexts, max_size=12))
def test_sum_builtin(keys: tuple[PublicKey, PrivateKey], values: list[int]) -> None:
    pk, sk = keys
    assert sk.decrypt(sum((pk.encrypt(v) for v in values), pk.encrypt(0))) == signed(
        sum(values), pk.n
    )
    if values:
        assert sk.decrypt(sum(pk.encrypt(v) for v in values)) == signed(sum(values), pk.n)


@given(a=plaintexts)
def test_rerandomized_keeps_plaintext(keys: tuple[PublicKey, PrivateKey], a: int) -> None:
    pk, sk = keys
    c = pk.encrypt(a)
    fresh = c.rerandomized()
    assert fresh != c
    assert sk.decrypt(fresh) == a


@given(a=plaintexts)
def test_ciphertext_encodings_round_trip(keys: tuple[PublicKey, PrivateKey], a: int) -> None:
    pk, sk = keys
    c = pk.encrypt(a)
    via_json = Ciphertext.from_json(pk, json.loads(json.dumps(c.to_json())))
    via_bytes = Ciphertext.from_bytes(pk, c.to_bytes())
    assert via_json == via_bytes == c
    assert sk.decrypt(via_json) == a


@given(value=st.integers(1, 2**4096))
def test_int_encoding_round_trip(value: int) -> None:
    text = paillier.encode_int(value)
    assert set(text) <= set(string.ascii_letters + string.digits + "-_")
    assert paillier.decode_int(text, "x", max_bytes=513) == value


def _b64url(raw: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(raw).decode()


candidate_texts = st.one_of(
    st.text(alphabet=string.ascii_letters + string.digits + "-_=+/ ", max_size=40),
    st.binary(max_size=30).map(_b64url),  # padded, often with leading zero bytes
    st.binary(max_size=30).map(lambda raw: _b64url(raw).rstrip("=")),
    st.binary(max_size=30).map(lambda raw: _b64url(b"\x00" + raw).rstrip("=")),
)


@given(text=candidate_texts)
def test_int_decoding_is_canonical(text: str) -> None:
    """Whatever decodes must be exactly what the encoder would write: one spelling per value."""
    try:
        value = paillier.decode_int(text, "x", max_bytes=64)
    except InvalidInputError:
        return
    assert paillier.encode_int(value) == text


# ---------------------------------------------------------------- strict decoding of mutations

_ODD_VALUES: list[object] = [None, 0, 2, 12345, -1, 1.0, True, "", "1", [], {}, [1], "AQAB="]


@st.composite
def mutated(draw: st.DrawFn, data: dict[str, object]) -> tuple[str, dict[str, object]]:
    """Return (field touched, mutated copy of data) with exactly one change."""
    out = dict(data)
    action = draw(st.sampled_from(["delete", "add", "replace", "edit"]))
    if action == "add":
        name = draw(st.text(min_size=1, max_size=8).filter(lambda s: s not in data))
        out[name] = draw(st.sampled_from(_ODD_VALUES))
        return name, out
    key = draw(st.sampled_from(sorted(data)))
    if action == "delete":
        del out[key]
    elif action == "replace" or not isinstance(data[key], str):
        old = data[key]
        out[key] = draw(
            st.sampled_from(_ODD_VALUES).filter(lambda v: type(v) is not type(old) or v != old)
        )
    else:
        text = data[key]
        assert isinstance(text, str)
        pos = draw(st.integers(0, len(text)))
        char = draw(st.sampled_from(string.ascii_letters + string.digits + "-_=+/ .é\n"))
        how = draw(st.sampled_from(["insert", "overwrite", "remove"]))
        if how == "insert":
            text = text[:pos] + char + text[pos:]
        elif how == "overwrite" and pos < len(text):
            text = text[:pos] + char + text[pos + 1 :]
        else:
            text = text[: max(pos - 1, 0)] + text[pos:] if text else "x"
        if text == data[key]:
            text += "="
        out[key] = text
    return key, out


def _check_mutation(
    decode: Callable[[dict[str, object]], object],
    original: object,
    key: str,
    data: dict[str, object],
    may_decode: set[str],
) -> None:
    try:
        decoded = decode(data)
    except InvalidInputError:
        return
    # Only a big-integer field may still decode, and then to a different value (canonical
    # encodings make decoding injective).
    assert key in may_decode
    assert decoded != original


@given(st.data())
def test_public_key_json_rejects_mutations(
    keys: tuple[PublicKey, PrivateKey], data: st.DataObject
) -> None:
    pk, _ = keys
    key, broken = data.draw(mutated(pk.to_json()))
    _check_mutation(lambda d: PublicKey.from_json(d, insecure=True), pk, key, broken, {"n"})


@given(st.data())
def test_private_key_json_rejects_mutations(
    keys: tuple[PublicKey, PrivateKey], data: st.DataObject
) -> None:
    _, sk = keys
    _, broken = data.draw(mutated(sk.to_json()))
    # No single change can keep p q = n: every mutation must be refused, without leaking p, q.
    with pytest.raises(InvalidInputError) as info:
        PrivateKey.from_json(broken, insecure=True)
    assert str(sk.p) not in str(info.value) and str(sk.q) not in str(info.value)
    assert paillier.encode_int(sk.p) not in str(info.value)


@given(st.data(), plaintexts)
def test_ciphertext_json_rejects_mutations(
    keys: tuple[PublicKey, PrivateKey], data: st.DataObject, a: int
) -> None:
    pk, _ = keys
    c = pk.encrypt(a)
    key, broken = data.draw(mutated(c.to_json()))
    _check_mutation(lambda d: Ciphertext.from_json(pk, d), c, key, broken, {"value"})


@given(st.data(), plaintexts)
def test_ciphertext_bytes_reject_length_changes(
    keys: tuple[PublicKey, PrivateKey], data: st.DataObject, a: int
) -> None:
    pk, _ = keys
    raw = pk.encrypt(a).to_bytes()
    cut = data.draw(st.integers(1, len(raw)))
    with pytest.raises(InvalidInputError):
        Ciphertext.from_bytes(pk, raw[:-cut])
    with pytest.raises(InvalidInputError):
        Ciphertext.from_bytes(pk, raw + bytes(cut))

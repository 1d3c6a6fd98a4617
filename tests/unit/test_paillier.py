"""Unit tests for smpcloud.crypto.paillier: keys, encryption, operators, encodings, errors.

Expected values never come from the code under test: plaintexts are compared with plain integer
arithmetic, and ciphertexts are checked with an independent textbook decryption below and with
phe (python-paillier) where it is installed.
"""

from __future__ import annotations

import copy
import json
import math
import pickle

import gmpy2
import pytest

from smpcloud.crypto import fixed_base, paillier
from smpcloud.crypto.paillier import Ciphertext, PrivateKey, PublicKey
from smpcloud.errors import (
    InvalidInputError,
    KeyMismatchError,
    MalformedCiphertextError,
    OverflowDetectedError,
)

BITS = 1024


@pytest.fixture(scope="module")
def keys() -> tuple[PublicKey, PrivateKey]:
    return paillier.generate_keypair(BITS, insecure=True)


@pytest.fixture(scope="module")
def pk(keys: tuple[PublicKey, PrivateKey]) -> PublicKey:
    return keys[0]


@pytest.fixture(scope="module")
def sk(keys: tuple[PublicKey, PrivateKey]) -> PrivateKey:
    return keys[1]


@pytest.fixture(scope="module")
def other_keys() -> tuple[PublicKey, PrivateKey]:
    return paillier.generate_keypair(BITS, insecure=True)


def textbook_decrypt(c: int, p: int, q: int) -> int:
    """Paillier 1999 decryption with plain Python ints: m = L(c^lambda mod n^2) mu mod n."""
    n = p * q
    n2 = n * n
    lam = (p - 1) * (q - 1) // math.gcd(p - 1, q - 1)

    def L(x: int) -> int:
        assert (x - 1) % n == 0
        return (x - 1) // n

    mu = pow(L(pow(n + 1, lam, n2)), -1, n)
    return L(pow(c, lam, n2)) * mu % n


def signed(x: int, n: int) -> int:
    """The representative of x mod n in (-n/2, n/2]."""
    r = x % n
    return r - n if r > n // 2 else r


def b64(raw: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def int_b64(x: int) -> str:
    return b64(x.to_bytes((x.bit_length() + 7) // 8, "big"))


# ------------------------------------------------------------------------ key generation


def test_keypair_structure(pk: PublicKey, sk: PrivateKey) -> None:
    p, q, n = sk.p, sk.q, pk.n
    assert p * q == n
    assert n.bit_length() == BITS
    assert p.bit_length() == q.bit_length() == BITS // 2
    assert p < q
    assert gmpy2.is_prime(p, 50) and gmpy2.is_prime(q, 50)
    assert p % 4 == 3 and q % 4 == 3
    assert math.gcd(p - 1, q - 1) == 2
    assert q - p > 2 ** (BITS // 2 - 100)
    assert math.gcd(n, (p - 1) * (q - 1)) == 1
    assert pk.n_squared == n * n
    assert pk.max_int == n // 2
    assert sk.public_key is pk


def test_keypairs_are_fresh(pk: PublicKey, other_keys: tuple[PublicKey, PrivateKey]) -> None:
    assert pk.n != other_keys[0].n


@pytest.mark.parametrize("bits", [512, 1024, 2046])
def test_keygen_refuses_small_keys_without_flag(bits: int) -> None:
    with pytest.raises(InvalidInputError, match="insecure"):
        paillier.generate_keypair(bits)


@pytest.mark.parametrize("bits", [0, 64, 126, 513, 1023, 16386, -2048])
def test_keygen_refuses_bad_sizes_even_when_insecure(bits: int) -> None:
    with pytest.raises(InvalidInputError):
        paillier.generate_keypair(bits, insecure=True)


@pytest.mark.parametrize("bits", [2048.0, "2048", True, None])
def test_keygen_refuses_non_int_bits(bits: object) -> None:
    with pytest.raises(InvalidInputError):
        paillier.generate_keypair(bits, insecure=True)  # type: ignore[arg-type]


def test_keygen_smallest_insecure_size() -> None:
    pk, sk = paillier.generate_keypair(128, insecure=True)
    assert pk.n.bit_length() == 128
    assert sk.decrypt(pk.encrypt(-5)) == -5


def test_default_key_size_3072() -> None:
    pk, sk = paillier.generate_keypair()
    assert pk.n.bit_length() == 3072 == paillier.DEFAULT_BITS
    assert sk.p.bit_length() == sk.q.bit_length() == 1536
    values = [0, 1, -1, 2**100, -(2**200), pk.max_int, -pk.max_int]
    cts = [pk.encrypt(v) for v in values]
    assert [sk.decrypt(c) for c in cts] == values
    assert sk.decrypt(sum(cts) * 3) == signed(3 * sum(values), pk.n)
    assert textbook_decrypt(cts[3].value, sk.p, sk.q) == 2**100


@pytest.mark.slow
def test_4096_bit_keys() -> None:
    pk, sk = paillier.generate_keypair(4096)
    assert pk.n.bit_length() == 4096
    assert sk.p % 4 == 3 and sk.q % 4 == 3 and math.gcd(sk.p - 1, sk.q - 1) == 2
    a, b = pk.encrypt(-(2**2000)), pk.encrypt_classic(2**1999)
    assert sk.decrypt(a + b) == -(2**1999)
    assert textbook_decrypt((a * -3).value, sk.p, sk.q) == 3 * 2**2000
    again = PrivateKey.from_json(json.loads(json.dumps(sk.to_json())))
    assert again.decrypt(Ciphertext.from_bytes(pk, b.to_bytes())) == 2**1999


# --------------------------------------------------------------------------- encryption


@pytest.mark.parametrize("value", [0, 1, -1, 42, -42, 2**63 - 1, -(2**63), 2**500, -(2**500)])
def test_round_trip(pk: PublicKey, sk: PrivateKey, value: int) -> None:
    assert sk.decrypt(pk.encrypt(value)) == value
    assert sk.decrypt(pk.encrypt_classic(value)) == value


def test_range_edges_round_trip(pk: PublicKey, sk: PrivateKey) -> None:
    for value in (pk.max_int, -pk.max_int, pk.max_int - 1, -pk.max_int + 1):
        assert sk.decrypt(pk.encrypt(value)) == value


@pytest.mark.parametrize("delta", [1, 2, 10**6])
def test_out_of_range_plaintext(pk: PublicKey, delta: int) -> None:
    for value in (pk.max_int + delta, -pk.max_int - delta):
        for encrypt in (pk.encrypt, pk.encrypt_classic):
            with pytest.raises(OverflowDetectedError) as info:
                encrypt(value)
            assert str(value) not in str(info.value)  # never echo the plaintext
        with pytest.raises(OverflowDetectedError):
            pk.raw_encrypt(value, 5)


def test_plaintext_n_is_out_of_range(pk: PublicKey) -> None:
    with pytest.raises(OverflowDetectedError):
        pk.encrypt(pk.n)


@pytest.mark.parametrize("value", [1.0, "3", None, True, False, 2 + 0j, [1]])
def test_non_integer_plaintext(pk: PublicKey, value: object) -> None:
    with pytest.raises(InvalidInputError):
        pk.encrypt(value)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        pk.encrypt_classic(value)  # type: ignore[arg-type]


def test_mpz_plaintext(pk: PublicKey, sk: PrivateKey) -> None:
    assert sk.decrypt(pk.encrypt(gmpy2.mpz(-77))) == -77


def test_encryption_is_randomised(pk: PublicKey) -> None:
    values = {pk.encrypt(7).value for _ in range(10)} | {pk.encrypt_classic(7).value}
    assert len(values) == 11


def test_fast_and_classic_paths_decrypt_identically(pk: PublicKey, sk: PrivateKey) -> None:
    for value in (0, 5, -5, pk.max_int):
        fast, classic = pk.encrypt(value), pk.encrypt_classic(value)
        assert fast != classic
        assert sk.decrypt(fast) == sk.decrypt(classic) == value
        assert textbook_decrypt(fast.value, sk.p, sk.q) == value % pk.n
        assert textbook_decrypt(classic.value, sk.p, sk.q) == value % pk.n
        assert sk.decrypt(fast + classic) == signed(2 * value, pk.n)


def test_fast_randomiser_is_an_nth_residue(pk: PublicKey, sk: PrivateKey) -> None:
    # c (1 + m n)^-1 must be an n-th residue: exactly the x with x^lambda = 1 mod n^2.
    lam = (sk.p - 1) * (sk.q - 1) // 2
    n, n2 = pk.n, pk.n_squared
    m = 123456789
    c = pk.encrypt(m).value
    obfuscator = c * pow(1 + m * n, -1, n2) % n2
    assert obfuscator != 1
    assert pow(obfuscator, lam, n2) == 1


@pytest.mark.parametrize("window", [0, 1, 2, 3, 5, 8])
def test_explicit_windows(pk: PublicKey, sk: PrivateKey, window: int) -> None:
    fresh = PublicKey(pk.n)
    size = fresh.precompute(window=window)
    assert size > 0
    for value in (0, 1, -99, pk.max_int):
        c = fresh.encrypt(value)
        assert sk.decrypt(c) == value
        assert textbook_decrypt(c.value, sk.p, sk.q) == value % pk.n


@pytest.mark.parametrize("window", [13, -1, 4.0, "6", True])
def test_bad_window(pk: PublicKey, window: object) -> None:
    with pytest.raises(InvalidInputError):
        PublicKey(pk.n).precompute(window=window)  # type: ignore[arg-type]


def test_raw_encrypt_is_textbook(pk: PublicKey, sk: PrivateKey) -> None:
    n, n2 = pk.n, pk.n_squared
    m, r = 31337, 1234567
    expected = pow(n + 1, m, n2) * pow(r, n, n2) % n2  # g^m r^n, computed independently
    assert pk.raw_encrypt(m, r).value == expected
    assert pk.raw_encrypt(-m, r).value == pow(n + 1, n - m, n2) * pow(r, n, n2) % n2
    assert sk.decrypt(pk.raw_encrypt(-m, r)) == -m


def test_raw_encrypt_rejects_bad_randomiser(pk: PublicKey, sk: PrivateKey) -> None:
    for r in (0, -1, pk.n, pk.n + 1, sk.p, sk.q * 3, 1.5, True):
        with pytest.raises(InvalidInputError):
            pk.raw_encrypt(1, r)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- ciphertext checks


def test_ciphertext_validation_accepts_valid(pk: PublicKey) -> None:
    c = pk.encrypt(3)
    again = Ciphertext(pk, c.value)
    assert again == c and hash(again) == hash(c)
    assert pk.ciphertext(c.value) == c
    assert Ciphertext.validated(pk, gmpy2.mpz(c.value)) == c
    assert isinstance(c.value, int) and type(c.value) is int
    assert Ciphertext(pk, 1).value == 1  # the trivial encryption of 0 is a valid ciphertext


def test_ciphertext_zero_and_negative(pk: PublicKey) -> None:
    for value in (0, -1, -pk.n_squared):
        with pytest.raises(MalformedCiphertextError, match=r"\[1, n\^2\)"):
            Ciphertext(pk, value)


def test_ciphertext_too_large(pk: PublicKey) -> None:
    for value in (pk.n_squared, pk.n_squared + 1, 2 * pk.n_squared + 1):
        with pytest.raises(MalformedCiphertextError, match=r"\[1, n\^2\)"):
            pk.ciphertext(value)


def test_ciphertext_not_coprime(pk: PublicKey, sk: PrivateKey) -> None:
    for value in (sk.p, sk.q, pk.n, sk.p * 12345, pk.n_squared - pk.n):
        with pytest.raises(MalformedCiphertextError, match="coprime") as info:
            Ciphertext(pk, value)
        assert str(sk.p) not in str(info.value)


@pytest.mark.parametrize("value", [1.0, "5", None, True, b"\x01", [3]])
def test_ciphertext_not_an_integer(pk: PublicKey, value: object) -> None:
    with pytest.raises(MalformedCiphertextError, match="integer"):
        Ciphertext(pk, value)  # type: ignore[arg-type]


def test_ciphertext_needs_public_key(pk: PublicKey) -> None:
    with pytest.raises(InvalidInputError):
        Ciphertext(pk.n, 5)  # type: ignore[arg-type]


def test_ciphertext_is_frozen(pk: PublicKey) -> None:
    c = pk.encrypt(1)
    with pytest.raises(AttributeError):
        c.public_key = pk  # type: ignore[misc]


# ---------------------------------------------------------------------------- operators


def test_addition(pk: PublicKey, sk: PrivateKey) -> None:
    assert sk.decrypt(pk.encrypt(40) + pk.encrypt(2)) == 42
    assert sk.decrypt(pk.encrypt(40) + pk.encrypt_classic(-50)) == -10


def test_design_example(pk: PublicKey, sk: PrivateKey) -> None:
    c = pk.encrypt(42)
    c2 = c + pk.encrypt(-2)
    c3 = c2 * 3
    assert sk.decrypt(c3) == 120


def test_negative_sums_come_back_negative(pk: PublicKey, sk: PrivateKey) -> None:
    assert sk.decrypt(pk.encrypt(5) + pk.encrypt(-9)) == -4
    assert sk.decrypt(pk.encrypt(-(2**80)) + pk.encrypt(-(2**80))) == -(2**81)


def test_sum_of_ciphertexts(pk: PublicKey, sk: PrivateKey) -> None:
    values = [3, -10, 2**40, -(2**39), 0, 17]
    cts = [pk.encrypt(v) for v in values]
    assert sk.decrypt(sum(cts)) == sum(values)
    assert sk.decrypt(sum(cts, 1000)) == sum(values) + 1000
    assert sk.decrypt(sum(cts[:1])) == values[0]


def test_plus_constant(pk: PublicKey, sk: PrivateKey) -> None:
    c = pk.encrypt(10)
    assert sk.decrypt(c + 5) == 15
    assert sk.decrypt(5 + c) == 15
    assert sk.decrypt(c + (-25)) == -15
    assert sk.decrypt(c + gmpy2.mpz(7)) == 17
    assert (c + 0) is c  # adding 0 is the identity, no new randomness needed
    assert sk.decrypt(c + pk.max_int) == signed(10 + pk.max_int, pk.n)


def test_plus_constant_out_of_range(pk: PublicKey) -> None:
    c = pk.encrypt(1)
    with pytest.raises(OverflowDetectedError):
        c + (pk.max_int + 1)
    with pytest.raises(OverflowDetectedError):
        (-pk.max_int - 1) + c
    with pytest.raises(OverflowDetectedError):
        c - (pk.max_int + 1)


def test_subtraction(pk: PublicKey, sk: PrivateKey) -> None:
    a, b = pk.encrypt(100), pk.encrypt(30)
    assert sk.decrypt(a - b) == 70
    assert sk.decrypt(b - a) == -70
    assert sk.decrypt(a - 1) == 99
    assert sk.decrypt(1 - a) == -99
    assert sk.decrypt(a - a) == 0


def test_negation(pk: PublicKey, sk: PrivateKey) -> None:
    assert sk.decrypt(-pk.encrypt(8)) == -8
    assert sk.decrypt(-pk.encrypt(-8)) == 8
    assert sk.decrypt(-pk.encrypt(0)) == 0
    c = pk.encrypt(5)
    assert (c.value * (-c).value) % pk.n_squared == 1


@pytest.mark.parametrize("k", [0, 1, 2, 3, -1, -2, -12345, 2**70, -(2**70)])
def test_scalar_multiplication(pk: PublicKey, sk: PrivateKey, k: int) -> None:
    for a in (7, -7, 0):
        c = pk.encrypt(a)
        assert sk.decrypt(c * k) == signed(k * a, pk.n)
        assert sk.decrypt(k * c) == signed(k * a, pk.n)


def test_scalar_multiplication_huge_factors(pk: PublicKey, sk: PrivateKey) -> None:
    c = pk.encrypt(9)
    for k in (pk.n, pk.n + 3, -pk.n - 3, 5 * pk.n + 1, pk.n_squared * 7 - 2):
        assert sk.decrypt(c * k) == signed(9 * k, pk.n)
    assert sk.decrypt(c * gmpy2.mpz(-4)) == -36


def test_scalar_multiplication_by_zero_is_the_trivial_encryption(pk: PublicKey) -> None:
    assert (pk.encrypt(77) * 0).value == 1


@pytest.mark.parametrize("other", [1.5, "1", None, [1], True, 1j])
def test_unsupported_operands(pk: PublicKey, other: object) -> None:
    c = pk.encrypt(1)
    for op in (
        lambda: c + other,
        lambda: other + c,
        lambda: c - other,
        lambda: other - c,
        lambda: c * other,
        lambda: other * c,
    ):
        with pytest.raises(TypeError):
            op()


def test_numpy_integers(pk: PublicKey, sk: PrivateKey) -> None:
    np = pytest.importorskip("numpy")
    c = pk.encrypt(np.int64(-6))
    assert sk.decrypt(c * np.int64(7)) == -42
    assert sk.decrypt(c + np.int32(10)) == 4
    with pytest.raises(TypeError):
        c * np.float64(2.0)


def test_ciphertext_times_ciphertext_is_unsupported(pk: PublicKey) -> None:
    with pytest.raises(TypeError):
        pk.encrypt(2) * pk.encrypt(3)  # type: ignore[operator]


def test_key_mismatch(
    pk: PublicKey, sk: PrivateKey, other_keys: tuple[PublicKey, PrivateKey]
) -> None:
    other_pk, other_sk = other_keys
    a, b = pk.encrypt(1), other_pk.encrypt(1)
    with pytest.raises(KeyMismatchError):
        a + b
    with pytest.raises(KeyMismatchError):
        b + a
    with pytest.raises(KeyMismatchError):
        a - b
    with pytest.raises(KeyMismatchError):
        sk.decrypt(b)
    with pytest.raises(KeyMismatchError):
        other_sk.decrypt(a)


def test_same_n_different_key_objects_mix(pk: PublicKey, sk: PrivateKey) -> None:
    twin = PublicKey(pk.n)
    assert twin == pk and hash(twin) == hash(pk) and twin is not pk
    c = pk.encrypt(2) + twin.encrypt(3)
    assert sk.decrypt(c) == 5
    assert sk.decrypt(twin.encrypt(-4)) == -4
    assert len({pk, twin}) == 1


def test_rerandomized(pk: PublicKey, sk: PrivateKey) -> None:
    for c in (pk.encrypt(-31), pk.encrypt_classic(31), pk.encrypt(5) * 0):
        fresh = c.rerandomized()
        assert fresh.value != c.value
        assert fresh.public_key == c.public_key
        assert sk.decrypt(fresh) == sk.decrypt(c)
        assert textbook_decrypt(fresh.value, sk.p, sk.q) == textbook_decrypt(c.value, sk.p, sk.q)
        Ciphertext(pk, fresh.value)  # still a valid ciphertext


def test_homomorphic_results_are_valid_ciphertexts(pk: PublicKey, sk: PrivateKey) -> None:
    a, b = pk.encrypt(3), pk.encrypt(-4)
    for c in (a + b, a - b, -a, a * -5, a + 9, 9 - a, sum([a, b])):
        assert 1 <= c.value < pk.n_squared
        assert math.gcd(c.value, pk.n) == 1
        assert textbook_decrypt(c.value, sk.p, sk.q) == sk.decrypt(c) % pk.n


def test_decrypt_rejects_non_ciphertexts(pk: PublicKey, sk: PrivateKey) -> None:
    c = pk.encrypt(1)
    with pytest.raises(InvalidInputError):
        sk.decrypt(c.value)  # type: ignore[arg-type]


def test_raw_decrypt(pk: PublicKey, sk: PrivateKey) -> None:
    assert sk.raw_decrypt(pk.encrypt(-3).value) == pk.n - 3
    with pytest.raises(MalformedCiphertextError):
        sk.raw_decrypt(0)
    with pytest.raises(MalformedCiphertextError):
        sk.raw_decrypt(sk.p)


# ---------------------------------------------------------------------- public / private key


@pytest.mark.parametrize(
    "n",
    [0, -15, 2**200, 2**200 + 2, 15, 2**127 - 1, 2**16385 + 1],
    ids=["zero", "negative", "even", "even2", "tiny", "127-bit", "16386-bit"],
)
def test_public_key_rejects_bad_moduli(n: int) -> None:
    with pytest.raises(InvalidInputError):
        PublicKey(n)


@pytest.mark.parametrize("n", [1.0, "12345", None, True])
def test_public_key_rejects_non_int(n: object) -> None:
    with pytest.raises(InvalidInputError):
        PublicKey(n)  # type: ignore[arg-type]


def test_public_key_repr_and_id(pk: PublicKey, other_keys: tuple[PublicKey, PrivateKey]) -> None:
    assert str(pk.n) not in repr(pk)  # short, not a 300-digit number
    assert pk.key_id in repr(pk)
    assert pk.key_id == PublicKey(pk.n).key_id
    assert pk.key_id != other_keys[0].key_id


def test_private_key_repr_redacts_factors(sk: PrivateKey) -> None:
    text = repr(sk)
    for secret in (sk.p, sk.q):
        assert str(secret) not in text
        assert format(secret, "x") not in text
        assert int_b64(secret) not in text
    assert "redacted" in text
    assert str(sk) == text


def test_private_key_validation(pk: PublicKey, sk: PrivateKey) -> None:
    with pytest.raises(InvalidInputError):
        PrivateKey(pk, sk.p + 2, sk.q)
    with pytest.raises(InvalidInputError):
        PrivateKey(pk, 1, pk.n)
    with pytest.raises(InvalidInputError):
        PrivateKey(pk, -sk.p, -sk.q)
    with pytest.raises(InvalidInputError):
        PrivateKey(pk.n, sk.p, sk.q)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        PrivateKey(pk, float(sk.p), sk.q)  # type: ignore[arg-type]


def test_private_key_rejects_equal_or_composite_factors() -> None:
    p = int(gmpy2.next_prime(2**80 + 12345))
    with pytest.raises(InvalidInputError, match="distinct"):
        PrivateKey(PublicKey(p * p), p, p)
    a, b = int(gmpy2.next_prime(2**70)), int(gmpy2.next_prime(2**71))
    q = int(gmpy2.next_prime(2**141))
    with pytest.raises(InvalidInputError, match="prime"):
        PrivateKey(PublicKey(a * b * q), a * b, q)


def test_private_key_orders_factors(pk: PublicKey, sk: PrivateKey) -> None:
    swapped = PrivateKey(pk, sk.q, sk.p)
    assert (swapped.p, swapped.q) == (sk.p, sk.q)
    assert swapped == sk
    assert swapped.decrypt(pk.encrypt(-12)) == -12


def test_default_window_follows_the_memory_budget() -> None:
    sizes = {}
    for bits in (1024, 2048, 3072, 4096, 8192):
        pk = PublicKey(2**bits - 1)  # any odd n works for sizing; nothing is decrypted
        if bits >= 4096:
            table_bytes = pk.precompute()
            sizes[bits] = table_bytes
            assert table_bytes <= 16 << 20
        assert (
            fixed_base.choose_window((bits + 1) // 2, (2 * bits + 7) // 8)
            == {
                1024: 8,
                2048: 7,
                3072: 6,
                4096: 5,
                8192: 0,
            }[bits]
        )
    assert sizes[8192] < sizes[4096]


def test_pickle_and_copy(pk: PublicKey, sk: PrivateKey) -> None:
    pk.encrypt(1)  # make sure the table exists on the original
    for clone in (pickle.loads(pickle.dumps(pk)), copy.copy(pk), copy.deepcopy(pk)):
        assert clone == pk
        assert sk.decrypt(clone.encrypt(-6)) == -6
    assert len(pickle.dumps(pk)) < 4 * (pk.n.bit_length() // 8)  # the table is not pickled
    sk2 = pickle.loads(pickle.dumps(sk))
    assert sk2 == sk and sk2.decrypt(pk.encrypt(3)) == 3
    c = pk.encrypt(11)
    c2 = pickle.loads(pickle.dumps(c))
    assert c2 == c and sk.decrypt(c2) == 11


# ------------------------------------------------------------------------------- encodings


def test_encode_int_known_answers() -> None:
    assert paillier.encode_int(65537) == "AQAB"
    assert paillier.encode_int(1) == "AQ"
    assert paillier.encode_int(255) == "_w"
    assert paillier.encode_int(2**64) == "AQAAAAAAAAAA"
    for bad in (0, -1, 1.0, True):
        with pytest.raises(InvalidInputError):
            paillier.encode_int(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text",
    [
        "AQAB=",  # padding
        "AQ==",
        "AAEAAQ",  # leading zero byte
        "AA",  # zero
        "",
        "AR",  # unused bits set (decodes to 0x01 like "AQ")
        "AQ AB",
        " AQAB",
        "AQAB\n",
        "+w",  # standard alphabet
        "/w",
        "A",  # impossible length
        "AQABé",
    ],
)
def test_decode_int_rejects_non_canonical(text: str) -> None:
    with pytest.raises(InvalidInputError):
        paillier.decode_int(text, "x", max_bytes=64)


def test_decode_int_rejects_non_strings_and_long_values() -> None:
    for value in (65537, None, b"AQAB", ["AQAB"]):
        with pytest.raises(InvalidInputError, match="string"):
            paillier.decode_int(value, "x", max_bytes=64)
    with pytest.raises(InvalidInputError, match="longer"):
        paillier.decode_int(paillier.encode_int(2**520), "x", max_bytes=64)
    assert paillier.decode_int("AQAB", "x", max_bytes=3) == 65537


def test_public_key_json_round_trip(pk: PublicKey) -> None:
    data = pk.to_json()
    assert data == {"kind": "smpcloud.paillier.public_key", "version": 1, "n": int_b64(pk.n)}
    again = PublicKey.from_json(json.loads(json.dumps(data)), insecure=True)
    assert again == pk


def test_public_key_json_size_policy(pk: PublicKey) -> None:
    with pytest.raises(InvalidInputError, match="2048"):
        PublicKey.from_json(pk.to_json())  # 1024 bits needs insecure=True
    big_pk, _ = paillier.generate_keypair(2048)
    assert PublicKey.from_json(big_pk.to_json()) == big_pk


def test_private_key_json_round_trip(pk: PublicKey, sk: PrivateKey) -> None:
    data = sk.to_json()
    assert set(data) == {"kind", "version", "n", "p", "q"}
    assert data["kind"] == "smpcloud.paillier.private_key" and data["version"] == 1
    assert (data["n"], data["p"], data["q"]) == (int_b64(pk.n), int_b64(sk.p), int_b64(sk.q))
    again = PrivateKey.from_json(json.loads(json.dumps(data)), insecure=True)
    assert again == sk and again.public_key == pk
    assert again.decrypt(pk.encrypt(-1)) == -1
    with pytest.raises(InvalidInputError):
        PrivateKey.from_json(data)  # 1024-bit key without insecure=True


def test_ciphertext_json_round_trip(pk: PublicKey, sk: PrivateKey) -> None:
    c = pk.encrypt(-123)
    data = c.to_json()
    assert data == {
        "kind": "smpcloud.paillier.ciphertext",
        "version": 1,
        "key_id": pk.key_id,
        "value": int_b64(c.value),
    }
    again = Ciphertext.from_json(pk, json.loads(json.dumps(data)))
    assert again == c and sk.decrypt(again) == -123


def test_ciphertext_bytes_round_trip(pk: PublicKey, sk: PrivateKey) -> None:
    width = (pk.n_squared.bit_length() + 7) // 8
    for c in (pk.encrypt(5), Ciphertext(pk, 1), Ciphertext(pk, pk.n_squared - 1)):
        raw = c.to_bytes()
        assert len(raw) == width
        assert int.from_bytes(raw, "big") == c.value
        assert Ciphertext.from_bytes(pk, raw) == c
        assert Ciphertext.from_bytes(pk, bytearray(raw)) == c


def test_ciphertext_from_bytes_errors(pk: PublicKey, sk: PrivateKey) -> None:
    raw = pk.encrypt(5).to_bytes()
    width = len(raw)
    for bad in (raw[1:], raw + b"\x00", b"", b"\x00" + raw):
        with pytest.raises(MalformedCiphertextError, match="bytes"):
            Ciphertext.from_bytes(pk, bad)
    with pytest.raises(MalformedCiphertextError):
        Ciphertext.from_bytes(pk, bytes(width))  # zero
    with pytest.raises(MalformedCiphertextError):
        Ciphertext.from_bytes(pk, b"\xff" * width)  # >= n^2
    with pytest.raises(MalformedCiphertextError):
        Ciphertext.from_bytes(pk, sk.p.to_bytes(width, "big"))  # not coprime
    with pytest.raises(MalformedCiphertextError):
        Ciphertext.from_bytes(pk, raw.hex())  # type: ignore[arg-type]


def _envelope_cases(data: dict[str, object]) -> list[dict[str, object]]:
    """Broken variants of a valid JSON object: every one must be rejected."""
    cases: list[dict[str, object]] = []
    cases.append({**data, "kind": "smpcloud.paillier.something"})
    cases.append({**data, "kind": None})
    cases.append({**data, "version": 2})
    cases.append({**data, "version": 0})
    cases.append({**data, "version": "1"})
    cases.append({**data, "version": 1.0})
    cases.append({**data, "version": True})
    cases.append({**data, "extra": 1})
    for key in data:
        cases.append({k: v for k, v in data.items() if k != key})
    for key, value in data.items():
        if key in ("kind", "version") or not isinstance(value, str):
            continue
        cases.append({**data, key: value + "="})
        cases.append({**data, key: "AA" + value})
        cases.append({**data, key: 12345})
        cases.append({**data, key: value.replace("-", "+").replace("_", "/") + "+/"})
        cases.append({**data, key: " " + value})
    return cases


def test_public_key_json_rejects_broken_envelopes(pk: PublicKey) -> None:
    for case in _envelope_cases(pk.to_json()):
        with pytest.raises(InvalidInputError):
            PublicKey.from_json(case, insecure=True)


def test_public_key_json_rejects_bad_moduli() -> None:
    base = {"kind": "smpcloud.paillier.public_key", "version": 1}
    for n, reason in ((2**3000, "odd"), (2**100 + 1, "bits"), (2**16400 + 1, "longer")):
        with pytest.raises(InvalidInputError, match=reason):
            PublicKey.from_json({**base, "n": int_b64(n)}, insecure=True)
    for data in ([], "{}", None, 5):
        with pytest.raises(InvalidInputError, match="object"):
            PublicKey.from_json(data)


def test_private_key_json_rejects_broken_envelopes(sk: PrivateKey) -> None:
    for case in _envelope_cases(sk.to_json()):
        with pytest.raises(InvalidInputError) as info:
            PrivateKey.from_json(case, insecure=True)
        message = str(info.value)
        for secret in (sk.p, sk.q):
            assert str(secret) not in message and int_b64(secret) not in message


def test_private_key_json_rejects_wrong_factors(pk: PublicKey, sk: PrivateKey) -> None:
    data = sk.to_json()
    for p in (sk.p + 2, sk.q, 1):
        with pytest.raises(InvalidInputError):
            PrivateKey.from_json({**data, "p": int_b64(p)}, insecure=True)
    other_n = int_b64(pk.n + 2)
    with pytest.raises(InvalidInputError):
        PrivateKey.from_json({**data, "n": other_n}, insecure=True)


def test_ciphertext_json_rejects_broken_envelopes(pk: PublicKey) -> None:
    data = pk.encrypt(9).to_json()
    for case in _envelope_cases(data):
        with pytest.raises(InvalidInputError):
            Ciphertext.from_json(pk, case)


def test_ciphertext_json_errors_are_specific(
    pk: PublicKey, sk: PrivateKey, other_keys: tuple[PublicKey, PrivateKey]
) -> None:
    data = pk.encrypt(9).to_json()
    with pytest.raises(MalformedCiphertextError):
        Ciphertext.from_json(pk, {**data, "version": 2})
    with pytest.raises(MalformedCiphertextError):
        Ciphertext.from_json(pk, {**data, "value": int_b64(pk.n_squared)})
    with pytest.raises(MalformedCiphertextError, match="coprime"):
        Ciphertext.from_json(pk, {**data, "value": int_b64(sk.q)})
    with pytest.raises(MalformedCiphertextError, match="leading zero"):
        Ciphertext.from_json(pk, {**data, "value": b64(b"\x00" + bytes.fromhex("05"))})
    with pytest.raises(KeyMismatchError):
        Ciphertext.from_json(other_keys[0], data)
    with pytest.raises(KeyMismatchError):
        Ciphertext.from_json(pk, {**data, "key_id": other_keys[0].key_id})


# ------------------------------------------------------------------------- phe interop


def test_interop_ours_to_phe(pk: PublicKey, sk: PrivateKey) -> None:
    phe = pytest.importorskip("phe")
    phe_pk = phe.paillier.PaillierPublicKey(pk.n)
    phe_sk = phe.paillier.PaillierPrivateKey(phe_pk, sk.p, sk.q)
    for m in (0, 1, 99, 2**300, pk.n - 1 - pk.max_int):
        for c in (pk.raw_encrypt(signed(m, pk.n), 987654321), pk.encrypt_classic(signed(m, pk.n))):
            assert phe_sk.raw_decrypt(c.value) == m
        assert phe_sk.raw_decrypt(pk.encrypt(signed(m, pk.n)).value) == m
    # A negative value is m mod n for phe's raw layer.
    assert phe_sk.raw_decrypt(pk.encrypt(-5).value) == pk.n - 5
    # The same (m, r) gives the same ciphertext in both libraries.
    assert pk.raw_encrypt(77, 5555).value == phe_pk.raw_encrypt(77, r_value=5555)


def test_interop_phe_to_ours(pk: PublicKey, sk: PrivateKey) -> None:
    phe = pytest.importorskip("phe")
    phe_pk = phe.paillier.PaillierPublicKey(pk.n)
    for m in (0, 1, 99, 2**300, pk.n - 5):
        c = Ciphertext(pk, phe_pk.raw_encrypt(m))
        assert sk.decrypt(c) == signed(m, pk.n)
    # phe's high-level encrypt (with its own obfuscation) also decrypts under ours.
    enc = phe_pk.encrypt(-42)
    assert enc.exponent == 0
    assert sk.decrypt(Ciphertext(pk, enc.ciphertext())) == -42


def test_interop_phe_keys_decrypt_ours() -> None:
    phe = pytest.importorskip("phe")
    phe_pk, phe_sk = phe.paillier.generate_paillier_keypair(n_length=1024)
    pk = PublicKey(phe_pk.n)
    sk = PrivateKey(pk, phe_sk.p, phe_sk.q)  # phe's primes are not Blum primes: still fine
    c = pk.encrypt(-2024) + pk.encrypt(24)
    assert sk.decrypt(c) == -2000
    assert phe_sk.raw_decrypt(c.value) == pk.n - 2000

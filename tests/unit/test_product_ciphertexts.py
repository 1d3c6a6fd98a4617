"""CryptoPool.product_ciphertexts: a key holder's product of logged reports in wire form."""

from __future__ import annotations

import pytest

from smpcloud.crypto import paillier
from smpcloud.crypto.wire import encode_int
from smpcloud.errors import InvalidInputError, MalformedCiphertextError
from smpcloud.parallel import CryptoPool


@pytest.fixture(scope="module")
def pk() -> paillier.PublicKey:
    return paillier.generate_keypair(1024, insecure=True)[0]


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("shape", [(2, 3), (2100, 2), (5, 1000)])
def test_it_is_the_element_wise_product(
    pk: paillier.PublicKey, workers: int, shape: tuple[int, int]
) -> None:
    rows, cols = shape
    values = [[pk.encrypt(r + c).value for c in range(cols)] for r in range(3)]
    reports = [values[r % 3] for r in range(rows)]
    texts = [[encode_int(v) for v in row] for row in reports]
    with CryptoPool(workers) as pool:
        got = pool.product_ciphertexts(pk, texts)
        expected = [int(c.value) for c in pool.aggregate_vectors(pk, reports)]
    assert got == expected


def test_it_names_a_malformed_text(pk: paillier.PublicKey) -> None:
    good = encode_int(pk.encrypt(1).value)
    with CryptoPool(1) as pool:
        with pytest.raises(MalformedCiphertextError, match="report 1, ciphertext 0"):
            pool.product_ciphertexts(pk, [[good], ["AAAA"]])
        with pytest.raises(MalformedCiphertextError, match="outside"):
            pool.product_ciphertexts(pk, [[encode_int(pk.n_squared)]])
        with pytest.raises(InvalidInputError, match="report 1 has 2"):
            pool.product_ciphertexts(pk, [[good], [good, good]])
        with pytest.raises(InvalidInputError):
            pool.product_ciphertexts(pk, [])

"""One-shot batch operations: a worker pool started for one call and closed after it.

Each function is the :class:`~smpcloud.parallel.CryptoPool` method of the same name run on a
pool of ``workers`` processes that lives for this call only; hold a ``CryptoPool`` for repeated
calls (starting processes and building key tables costs far more than one small batch).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from smpcloud.crypto.packing import Packing
from smpcloud.crypto.paillier import Ciphertext, PrivateKey, PublicKey
from smpcloud.parallel.chunks import CiphertextBatch
from smpcloud.parallel.crypto_pool import CryptoPool


def encrypt_many(
    public_key: PublicKey, plaintexts: Sequence[int], *, workers: int | None = None
) -> list[Ciphertext]:
    """Encrypt many integers on ``workers`` processes (a pool started for this call only).

    See :meth:`CryptoPool.encrypt_many`; hold a :class:`CryptoPool` for repeated calls.
    """
    with CryptoPool(workers) as pool:
        return pool.encrypt_many(public_key, plaintexts)


def encrypt_vector(
    public_key: PublicKey,
    values: Sequence[float] | npt.ArrayLike,
    packing: Packing,
    *,
    workers: int | None = None,
) -> list[Ciphertext]:
    """Pack and encrypt a vector on ``workers`` processes (a pool for this call only).

    See :meth:`CryptoPool.encrypt_vector`.
    """
    with CryptoPool(workers) as pool:
        return pool.encrypt_vector(public_key, values, packing)


def validate_many(
    public_key: PublicKey, values: CiphertextBatch, *, workers: int | None = None
) -> list[Ciphertext]:
    """Validate ciphertexts from outside on ``workers`` processes (a pool for this call only).

    See :meth:`CryptoPool.validate_many`.
    """
    with CryptoPool(workers) as pool:
        return pool.validate_many(public_key, values)


def aggregate(
    public_key: PublicKey, ciphertexts: CiphertextBatch, *, workers: int | None = None
) -> Ciphertext:
    """Add ciphertexts by a product tree on ``workers`` processes (a pool for this call only).

    See :meth:`CryptoPool.aggregate`.
    """
    with CryptoPool(workers) as pool:
        return pool.aggregate(public_key, ciphertexts)


def aggregate_vectors(
    public_key: PublicKey, reports: Sequence[CiphertextBatch], *, workers: int | None = None
) -> list[Ciphertext]:
    """Add vector reports element-wise on ``workers`` processes (a pool for this call only).

    See :meth:`CryptoPool.aggregate_vectors`.
    """
    with CryptoPool(workers) as pool:
        return pool.aggregate_vectors(public_key, reports)


def decrypt_many(
    private_key: PrivateKey, ciphertexts: Sequence[Ciphertext], *, workers: int | None = None
) -> list[int]:
    """Decrypt many ciphertexts on ``workers`` processes (a pool for this call only).

    See :meth:`CryptoPool.decrypt_many`.
    """
    with CryptoPool(workers) as pool:
        return pool.decrypt_many(private_key, ciphertexts)


def decrypt_vector(
    private_key: PrivateKey,
    ciphertexts: Sequence[Ciphertext],
    packing: Packing,
    count: int,
    *,
    workers: int | None = None,
) -> npt.NDArray[np.float64]:
    """Decrypt and unpack a packed aggregate on ``workers`` processes (a pool for this call).

    See :meth:`CryptoPool.decrypt_vector`.
    """
    with CryptoPool(workers) as pool:
        return pool.decrypt_vector(private_key, ciphertexts, packing, count)


__all__ = [
    "aggregate",
    "aggregate_vectors",
    "decrypt_many",
    "decrypt_vector",
    "encrypt_many",
    "encrypt_vector",
    "validate_many",
]

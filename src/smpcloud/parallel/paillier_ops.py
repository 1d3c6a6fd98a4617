"""Batch Paillier operations on a worker pool: encryption, validation, aggregation, decryption.

Each function takes a :class:`~smpcloud.parallel.pool.WorkerPool` and gives the result of the
one-process code in ``smpcloud.crypto.paillier`` and ``smpcloud.crypto.packing`` (where the
math, the assumptions and what each operation reveals are stated), cut into chunks for the
workers; :class:`smpcloud.parallel.CryptoPool` offers them as methods. Inputs are checked in
the calling process before any work is sent (an out-of-range plaintext is refused before
anything is encrypted); ciphertexts from outside are validated on the workers, chunk by chunk
(range per value, coprimality once per chunk, see ``smpcloud.parallel.jobs``). Aggregation is
a product tree of depth two: each worker multiplies its chunk mod n^2, the calling process
multiplies the few partial products. Batches too small to gain from processes run inline.

What is revealed: what the underlying operations reveal, nothing more. Decryption sends the
private key's factors to the workers (children of the caller).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
import numpy.typing as npt
from gmpy2 import mpz

from smpcloud.crypto.packing import Packing, to_slots, unpack
from smpcloud.crypto.paillier import Ciphertext, PrivateKey, PublicKey, raw_ciphertext
from smpcloud.crypto.wire import as_int
from smpcloud.errors import InvalidInputError, OverflowDetectedError
from smpcloud.parallel.chunks import (
    CiphertextBatch,
    Payload,
    batch_length,
    check_public_key,
    ciphertext_ints,
    ciphertext_width,
    iter_values,
    payload,
    spans,
)
from smpcloud.parallel.jobs import (
    do_column_products,
    do_decrypt,
    do_encrypt,
    do_encrypt_slots,
    do_product,
    do_text_products,
    job_decrypt,
    job_encrypt,
    job_encrypt_slots,
)
from smpcloud.parallel.pool import WorkerPool

#: Products of fewer ciphertexts run inline (a few milliseconds of work).
MIN_PARALLEL_PRODUCT: Final = 4096
#: Encryptions or decryptions below this count run inline.
MIN_PARALLEL_CRYPT: Final = 8

_MIN_PRODUCT_CHUNK: Final = 2048
_MIN_CRYPT_CHUNK: Final = 4


def encrypt_many(
    pool: WorkerPool, public_key: PublicKey, plaintexts: Sequence[int]
) -> list[Ciphertext]:
    """Encrypt many integers in chunks on the workers, each with :meth:`PublicKey.encrypt`.

    That is the fast DJN randomiser (its assumption and what it reveals are stated in
    ``smpcloud.crypto.paillier``). Every plaintext is checked in the calling process before the
    first encryption.

    Args:
        pool: the worker pool (``self`` of the CryptoPool method).
        public_key: the key.
        plaintexts: integers in (-n/2, n/2].

    Returns:
        One fresh ciphertext per plaintext, in order.

    Raises:
        InvalidInputError: a non-integer plaintext (the message gives its index).
        OverflowDetectedError: a plaintext outside (-n/2, n/2] (the message gives its index).
    """
    pk = check_public_key(public_key)
    values: list[int] = []
    for index, item in enumerate(plaintexts):
        m = as_int(item)
        if m is None:
            raise InvalidInputError(f"plaintext {index} must be an int, got {type(item).__name__}")
        if not -pk.max_int <= m <= pk.max_int:
            raise OverflowDetectedError(f"plaintext {index} outside (-n/2, n/2]")
        values.append(m)
    if len(values) < MIN_PARALLEL_CRYPT:
        return [pk.encrypt(m) for m in values]
    calls = [
        ((pk, values[a:b]), (pk.n, values[a:b]))
        for a, b in spans(len(values), pool.parts, _MIN_CRYPT_CHUNK)
    ]
    chunks = pool.run(do_encrypt, job_encrypt, calls)
    return [raw_ciphertext(pk, mpz(c)) for chunk in chunks for c in chunk]


def encrypt_vectors(
    pool: WorkerPool,
    public_key: PublicKey,
    vectors: Sequence[Sequence[float] | npt.ArrayLike],
    packing: Packing,
) -> list[list[Ciphertext]]:
    """Pack and encrypt several vectors on the workers (for example many clients' in a simulation).

    Each vector gets what :func:`smpcloud.crypto.packing.encrypt_vector` gives (and reveals).
    Every value of every vector is range-checked in the calling process before the first
    encryption (see :func:`smpcloud.crypto.packing.to_slots`); all pieces of all vectors are
    queued at once so the cores stay busy.

    Args:
        pool: the worker pool (``self`` of the CryptoPool method).
        public_key: the key; at least ``packing.key_bits`` bits.
        vectors: vectors of ``packing.length`` ints or floats in [min_value, max_value].
        packing: the layout.

    Returns:
        For each vector, its ``packing.ciphertexts`` ciphertexts.

    Raises:
        InvalidInputError: a key too small for the layout, or a vector that is not 1-D
            numeric of the declared length.
        OverflowDetectedError: a value not finite or outside the declared range.
    """
    pk = check_public_key(public_key)
    packing.check_key_bits(pk.bits)
    encoded = [to_slots(values, packing) for values in vectors]
    per, length = packing.slots, packing.length
    pieces = spans(packing.ciphertexts, pool.parts, 1)
    calls = []
    for slots in encoded:
        for a, b in pieces:
            piece = slots[a * per : min(b * per, length)]
            calls.append(((pk, packing, piece), (pk.n, packing, piece)))
    if packing.ciphertexts * len(encoded) < MIN_PARALLEL_CRYPT:
        chunks = [do_encrypt_slots(*args) for args, _ in calls]
    else:
        chunks = pool.run(do_encrypt_slots, job_encrypt_slots, calls)
    out: list[list[Ciphertext]] = []
    for index in range(len(encoded)):
        group = chunks[index * len(pieces) : (index + 1) * len(pieces)]
        out.append([raw_ciphertext(pk, mpz(c)) for chunk in group for c in chunk])
    return out


def encrypt_vector(
    pool: WorkerPool,
    public_key: PublicKey,
    values: Sequence[float] | npt.ArrayLike,
    packing: Packing,
) -> list[Ciphertext]:
    """Pack and encrypt one vector; same as ``encrypt_vectors(pool, public_key, [values], ...)``.

    Args:
        pool: the worker pool (``self`` of the CryptoPool method).
        public_key: the key; at least ``packing.key_bits`` bits.
        values: ``packing.length`` ints or floats in [min_value, max_value].
        packing: the layout.

    Returns:
        The ``packing.ciphertexts`` ciphertexts.

    Raises:
        InvalidInputError: as for :func:`encrypt_vectors`.
        OverflowDetectedError: a value not finite or outside the declared range.
    """
    return encrypt_vectors(pool, public_key, [values], packing)[0]


def validate_many(
    pool: WorkerPool, public_key: PublicKey, values: CiphertextBatch
) -> list[Ciphertext]:
    """Validate ciphertexts from outside on the workers: each in [1, n^2) and coprime to n.

    The same check as ``Ciphertext(public_key, c)``, done per chunk: the range per value,
    coprimality once on the chunk's product (see ``smpcloud.parallel.jobs``). Reveals nothing.

    Args:
        pool: the worker pool (``self`` of the CryptoPool method).
        public_key: the key they must belong to.
        values: integers, ``Ciphertext`` objects (their key is checked), or one bytes
            object of concatenated fixed-width big-endian ciphertexts.

    Returns:
        The ciphertexts as ``Ciphertext`` objects, in order.

    Raises:
        MalformedCiphertextError: naming the index of the first value that is not an
            integer, outside [1, n^2) or not coprime to n; or bytes of a size that is not a
            multiple of the ciphertext width.
        KeyMismatchError: a Ciphertext under another key (its index is named).
        InvalidInputError: values is neither a sequence nor bytes.
    """
    pk = check_public_key(public_key)
    total = batch_length(pk, values, "ciphertexts")
    pieces = spans(total, pool.parts, _MIN_PRODUCT_CHUNK)
    payloads = [payload(pk, values, a, b) for a, b in pieces]
    calls = [
        ((pk.n, data, a, pk.n), (pk.n, data, a, pk.n))
        for (a, _), data in zip(pieces, payloads, strict=True)
    ]
    if total < MIN_PARALLEL_PRODUCT:
        for args, _ in calls:
            do_product(*args)
    else:
        pool.run(do_product, do_product, calls)
    width = ciphertext_width(pk.n)
    return [raw_ciphertext(pk, mpz(c)) for data in payloads for c in iter_values(data, width)]


def aggregate(pool: WorkerPool, public_key: PublicKey, ciphertexts: CiphertextBatch) -> Ciphertext:
    """Add many ciphertexts homomorphically: their product mod n^2, E(sum of plaintexts).

    The sum of :class:`Ciphertext` objects, as a product tree of depth two: each worker
    multiplies a chunk, the calling process the partial products. Integers and bytes are
    validated on the way (range per value, coprimality per chunk); the first bad one is named
    by index. Reveals nothing; the result is *not* re-randomised (see
    :meth:`Ciphertext.rerandomized`).

    Args:
        pool: the worker pool (``self`` of the CryptoPool method).
        public_key: the key.
        ciphertexts: at least one ciphertext: ``Ciphertext`` objects, integers, or one
            bytes object of concatenated fixed-width big-endian ciphertexts.

    Returns:
        The aggregate ciphertext.

    Raises:
        InvalidInputError: no ciphertexts, or neither a sequence nor bytes.
        MalformedCiphertextError: the first invalid ciphertext, by index.
        KeyMismatchError: a Ciphertext under another key, by index.
    """
    pk = check_public_key(public_key)
    total = batch_length(pk, ciphertexts, "ciphertexts")
    if total == 0:
        raise InvalidInputError("nothing to aggregate: no ciphertexts")
    n2 = pk.n_squared
    if pool.inline or total < MIN_PARALLEL_PRODUCT:
        data = payload(pk, ciphertexts, 0, total)
        return raw_ciphertext(pk, mpz(do_product(pk.n, data, 0, n2)))
    # Each chunk is submitted as soon as it is converted: conversion overlaps the work.
    calls = (
        (pk.n, payload(pk, ciphertexts, a, b), a, n2)
        for a, b in spans(total, pool.parts, _MIN_PRODUCT_CHUNK)
    )
    acc = mpz(1)
    for partial in pool.stream(do_product, calls):
        acc = acc * partial % n2
    return raw_ciphertext(pk, acc)


def aggregate_vectors(
    pool: WorkerPool, public_key: PublicKey, reports: Sequence[CiphertextBatch]
) -> list[Ciphertext]:
    """Add vectors of ciphertexts element-wise: result[j] = product over reports of r[j].

    This is the server's aggregation of (packed) vector reports. The work is cut into tiles
    of reports x positions; each worker multiplies its tile's columns mod n^2 and the
    calling process multiplies the partial products. Reveals nothing; results are not
    re-randomised.

    Args:
        pool: the worker pool (``self`` of the CryptoPool method).
        public_key: the key.
        reports: at least one report; every report has the same number of ciphertexts,
            given as ``Ciphertext`` objects, integers, or one bytes object of concatenated
            fixed-width big-endian ciphertexts.

    Returns:
        One aggregate ciphertext per position.

    Raises:
        InvalidInputError: no reports, reports of different lengths, or a report that is
            neither a sequence nor bytes.
        MalformedCiphertextError: an invalid ciphertext, by report and position (the first
            found in the first piece of work that has one).
        KeyMismatchError: a Ciphertext under another key.
    """
    pk = check_public_key(public_key)
    if not reports:
        raise InvalidInputError("nothing to aggregate: no reports")
    lengths = [batch_length(pk, report, f"report {i}") for i, report in enumerate(reports)]
    length = lengths[0]
    for index, other in enumerate(lengths):
        if other != length:
            raise InvalidInputError(
                f"report {index} has {other} ciphertexts; report 0 has {length}"
            )
    if length == 0:
        raise InvalidInputError("nothing to aggregate: reports are empty")
    calls: list[tuple[int, tuple[int, list[Payload], int, int, int]]] = []
    for (r0, r1), (c0, c1) in _tiles(pool, len(reports), length):
        rows = [payload(pk, reports[r], c0, c1) for r in range(r0, r1)]
        calls.append((c0, (pk.n, rows, r0, c0, c1 - c0)))
    partials = pool.run(do_column_products, do_column_products, [(a, a) for _, a in calls])
    accs = _combine_tiles(pk, length, [c0 for c0, _ in calls], partials)
    return [raw_ciphertext(pk, acc) for acc in accs]


def _tiles(
    pool: WorkerPool, rows: int, length: int
) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Split a rows x length product into tiles (row span, column span), about one per part."""
    parts = 1 if pool.inline or rows * length < MIN_PARALLEL_PRODUCT else pool.parts
    row_parts = min(rows, parts)
    col_parts = min(length, -(-parts // row_parts))
    return [
        (row_span, col_span)
        for row_span in spans(rows, row_parts, 1)
        for col_span in spans(length, col_parts, 1)
    ]


def _combine_tiles(
    pk: PublicKey, length: int, starts: list[int], partials: Sequence[Sequence[object]]
) -> list[mpz]:
    """Multiply the tiles' column products (tile i starts at column starts[i]) mod n^2."""
    n2 = mpz(pk.n_squared)
    accs = [mpz(1)] * length
    for c0, partial in zip(starts, partials, strict=True):
        for offset, value in enumerate(partial):
            accs[c0 + offset] = accs[c0 + offset] * value % n2
    return accs


def product_ciphertexts(
    pool: WorkerPool, public_key: PublicKey, rows: Sequence[Sequence[str]]
) -> list[int]:
    """Element-wise product mod n^2 of reports given in canonical wire form (a key holder's check).

    ``result[j]`` = product over rows of ``rows[r][j]``: what the server's aggregate must be if
    it is the product of exactly these reports. The texts are decoded on the workers (tiles of
    rows x positions, like :func:`aggregate_vectors`), each strictly canonical and in
    [1, n^2); the calling process multiplies the tiles' products. Reveals nothing.

    Args:
        pool: the worker pool (``self`` of the CryptoPool method).
        public_key: the task's key.
        rows: at least one report, each a sequence of the same number of wire texts.

    Returns:
        The products as integers (one per position), not validated as ciphertexts.

    Raises:
        InvalidInputError: no rows, or rows of different lengths.
        MalformedCiphertextError: a text that is not canonical or out of range (by report
            and position).
    """
    pk = check_public_key(public_key)
    if not rows:
        raise InvalidInputError("nothing to multiply: no reports")
    length = len(rows[0])
    for index, row in enumerate(rows):
        if len(row) != length:
            raise InvalidInputError(
                f"report {index} has {len(row)} ciphertexts; report 0 has {length}"
            )
    if length == 0:
        raise InvalidInputError("nothing to multiply: reports are empty")
    calls: list[tuple[int, tuple[int, list[list[str]], int, int, int]]] = []
    for (r0, r1), (c0, c1) in _tiles(pool, len(rows), length):
        tile = [list(rows[r][c0:c1]) for r in range(r0, r1)]
        calls.append((c0, (pk.n, tile, r0, c0, c1 - c0)))
    partials = pool.run(do_text_products, do_text_products, [(a, a) for _, a in calls])
    return [int(acc) for acc in _combine_tiles(pk, length, [c0 for c0, _ in calls], partials)]


def decrypt_many(
    pool: WorkerPool, private_key: PrivateKey, ciphertexts: Sequence[Ciphertext]
) -> list[int]:
    """Decrypt many ciphertexts in chunks on the workers, each with :meth:`PrivateKey.decrypt`.

    Reveals the plaintexts to the caller. The workers receive the key's factors.

    Args:
        pool: the worker pool (``self`` of the CryptoPool method).
        private_key: the private key.
        ciphertexts: ``Ciphertext`` objects under its public key.

    Returns:
        The plaintexts in (-n/2, n/2], in order.

    Raises:
        InvalidInputError: private_key is not a PrivateKey, or an item is not a Ciphertext.
        KeyMismatchError: a ciphertext under another key (by index).
    """
    if not isinstance(private_key, PrivateKey):
        raise InvalidInputError(
            f"private_key must be a PrivateKey, got {type(private_key).__name__}"
        )
    pk = private_key.public_key
    for index, item in enumerate(ciphertexts):
        if not isinstance(item, Ciphertext):
            raise InvalidInputError(
                f"ciphertext {index}: expected a Ciphertext, got {type(item).__name__}"
            )
    values = ciphertext_ints(pk, ciphertexts, 0)
    if len(values) < MIN_PARALLEL_CRYPT:
        return do_decrypt(private_key, values)
    calls = [
        ((private_key, values[a:b]), (pk.n, private_key.p, private_key.q, values[a:b]))
        for a, b in spans(len(values), pool.parts, _MIN_CRYPT_CHUNK)
    ]
    return [m for chunk in pool.run(do_decrypt, job_decrypt, calls) for m in chunk]


def decrypt_vector(
    pool: WorkerPool,
    private_key: PrivateKey,
    ciphertexts: Sequence[Ciphertext],
    packing: Packing,
    count: int,
) -> npt.NDArray[np.float64]:
    """Decrypt the sum of ``count`` packed vectors on the workers and unpack it.

    Parallel form of :func:`smpcloud.crypto.packing.decrypt_vector`. Reveals to the key holder
    the per-slot sums, not the individual vectors.

    Args:
        pool: the worker pool (``self`` of the CryptoPool method).
        private_key: the private key.
        ciphertexts: the ``packing.ciphertexts`` aggregated ciphertexts.
        packing: the layout the vectors were packed with.
        count: how many vectors were added (1 .. max_additions).

    Returns:
        A float64 array of ``packing.length`` element-wise sums.

    Raises:
        InvalidInputError: a key too small for the layout, a wrong number of ciphertexts,
            or a bad count.
        KeyMismatchError: a ciphertext under another key.
        OverflowDetectedError: a decrypted slot outside its possible range.
    """
    if not isinstance(private_key, PrivateKey):
        raise InvalidInputError(
            f"private_key must be a PrivateKey, got {type(private_key).__name__}"
        )
    packing.check_aggregate(private_key.public_key.bits, len(ciphertexts), count)
    return unpack(decrypt_many(pool, private_key, ciphertexts), packing, count)


__all__ = [
    "MIN_PARALLEL_CRYPT",
    "MIN_PARALLEL_PRODUCT",
    "aggregate",
    "aggregate_vectors",
    "decrypt_many",
    "decrypt_vector",
    "encrypt_many",
    "encrypt_vector",
    "encrypt_vectors",
    "product_ciphertexts",
    "validate_many",
]

"""Threshold Paillier decryption on a worker pool: partial decryptions, proofs, combining.

Each function takes a :class:`~smpcloud.parallel.pool.WorkerPool` and gives the result of the
one-process code in ``smpcloud.crypto.threshold`` (the scheme, the proofs and what each step
reveals are stated there and in ``crypto/threshold_batch``), spread over the workers;
:class:`smpcloud.parallel.CryptoPool` offers them as methods. Costs at 2048 bits: one partial
decryption with its proof ~48 ms, checking one proof ~37 ms; for a batch (one proof per
holder), the exponentiations c_j^(2Δ s_i) ~15 ms each run on the workers and the one batched
proof (~0.2 s for 1,177 ciphertexts) in the calling process; checking several batches runs one
batch per worker task (~0.2 s each), and combining runs on slices of the ciphertexts (~0.2 ms
per ciphertext for t = 3).

What is revealed: what the underlying operations reveal, nothing more. A key holder's workers
receive its key share (the holder's own processes).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

import numpy as np
import numpy.typing as npt

from smpcloud.crypto import threshold
from smpcloud.crypto.packing import Packing, unpack
from smpcloud.crypto.paillier import Ciphertext
from smpcloud.crypto.threshold import (
    BatchPartialDecryption,
    KeyShare,
    PartialDecryption,
    ThresholdPublicKey,
    check_batches,
    choose_batches,
)
from smpcloud.errors import InvalidInputError, KeyMismatchError, ThresholdNotMetError
from smpcloud.parallel.chunks import PartialFields, ciphertext_ints, ciphertext_objects, spans
from smpcloud.parallel.jobs import (
    do_batch_failure,
    do_combine,
    do_combine_columns,
    do_partial_decrypt,
    do_partial_values,
)
from smpcloud.parallel.pool import WorkerPool

_MIN_COMBINE_CHUNK: Final = 256  # ~50 ms of combining at 2048 bits, t = 3


def partial_decrypt_many(
    pool: WorkerPool, key_share: KeyShare, ciphertexts: Sequence[Ciphertext]
) -> list[PartialDecryption]:
    """Partially decrypt many ciphertexts with one holder's key share, with proofs.

    Same as ``[key_share.partial_decrypt(c) for c in ciphertexts]``
    (:meth:`smpcloud.crypto.threshold.KeyShare.partial_decrypt`), spread over the workers.
    Each partial reveals nothing about the key share beyond the eventual plaintext. The
    workers receive the key share (the holder's own processes).

    Args:
        pool: the worker pool (``self`` of the CryptoPool method).
        key_share: the holder's key share.
        ciphertexts: ``Ciphertext`` objects under the threshold key.

    Returns:
        One partial decryption per ciphertext, in order.

    Raises:
        InvalidInputError: key_share is not a KeyShare, or an item is not a Ciphertext.
        KeyMismatchError: a ciphertext under another key (by index).
    """
    if not isinstance(key_share, KeyShare):
        raise InvalidInputError(f"expected a KeyShare, got {type(key_share).__name__}")
    pk = key_share.public.public_key
    items = list(ciphertexts)
    for index, item in enumerate(items):
        if not isinstance(item, Ciphertext):
            raise InvalidInputError(
                f"ciphertext {index}: expected a Ciphertext, got {type(item).__name__}"
            )
    values = ciphertext_ints(pk, items, 0)
    calls = [
        ((key_share, values[a:b]), (key_share, values[a:b]))
        for a, b in spans(len(values), pool.parts, 1)
    ]
    chunks = pool.run(do_partial_decrypt, do_partial_decrypt, calls)
    fields = [f for chunk in chunks for f in chunk]
    return [
        PartialDecryption(i, ct, v, e, z) for ct, (i, v, e, z) in zip(items, fields, strict=True)
    ]


def combine_many(
    pool: WorkerPool,
    public: ThresholdPublicKey,
    partials: Sequence[Iterable[PartialDecryption]],
    *,
    verify: bool = True,
) -> list[int]:
    """Combine partial decryptions of many ciphertexts (verifying the proofs by default).

    ``partials[j]`` holds at least t holders' partial decryptions of ciphertext j; each
    group goes through :func:`smpcloud.crypto.threshold.combine`. Verifying the proofs is
    the costly part and is what the workers share. Reveals the plaintexts to the caller.

    Args:
        pool: the worker pool (``self`` of the CryptoPool method).
        public: the threshold public key.
        partials: one collection of partial decryptions per ciphertext, in order.
        verify: check every proof (default); skip only for partials already verified.

    Returns:
        The plaintexts in (-n/2, n/2], in order.

    Raises:
        ThresholdNotMetError: fewer than t (valid) partials for a ciphertext.
        InvalidPartialDecryptionError: a proof failed (names the holders).
        InvalidInputError: partials in one group for different ciphertexts, an item that
            is not a PartialDecryption, or duplicate holders.
        KeyMismatchError: partials under another key.
    """
    if not isinstance(public, ThresholdPublicKey):
        raise InvalidInputError(f"expected a ThresholdPublicKey, got {type(public).__name__}")
    pk = public.public_key
    groups: list[tuple[int, list[PartialFields]]] = []
    for j, group in enumerate(partials):
        items = list(group)
        if not items:
            raise ThresholdNotMetError(
                f"ciphertext {j}: 0 of {public.threshold} partial decryptions"
            )
        for item in items:
            if not isinstance(item, PartialDecryption):
                raise InvalidInputError(
                    f"ciphertext {j}: expected PartialDecryption objects, got {type(item).__name__}"
                )
            if item.ciphertext.public_key != pk:
                raise KeyMismatchError(f"ciphertext {j}: a partial under another key")
            if item.ciphertext.value != items[0].ciphertext.value:
                raise InvalidInputError(
                    f"ciphertext {j}: partial decryptions of different ciphertexts"
                )
        fields = [(p.index, p.value, p.challenge, p.response) for p in items]
        groups.append((items[0].ciphertext.value, fields))
    calls = [
        ((public, groups[a:b], verify), (public, groups[a:b], verify))
        for a, b in spans(len(groups), pool.parts, 1)
    ]
    return [m for chunk in pool.run(do_combine, do_combine, calls) for m in chunk]


def combine_vector(
    pool: WorkerPool,
    public: ThresholdPublicKey,
    partials: Sequence[Iterable[PartialDecryption]],
    packing: Packing,
    count: int,
    *,
    verify: bool = True,
) -> npt.NDArray[np.float64]:
    """Combine the partial decryptions of a packed aggregate and unpack it.

    Parallel form of :func:`smpcloud.crypto.packing.combine_vector`. Reveals the per-slot
    sums to whoever combines.

    Args:
        pool: the worker pool (``self`` of the CryptoPool method).
        public: the threshold public key.
        partials: one collection of partial decryptions per aggregated ciphertext.
        packing: the layout the vectors were packed with.
        count: how many vectors were added (1 .. max_additions).
        verify: check every proof (default).

    Returns:
        A float64 array of ``packing.length`` element-wise sums.

    Raises:
        InvalidInputError: a key too small for the layout, a wrong number of groups, a bad
            count, or partials that do not belong together.
        ThresholdNotMetError: fewer than t valid partials for some ciphertext.
        VerificationError: a proof failed.
        OverflowDetectedError: a decrypted slot outside its possible range.
    """
    packing.check_aggregate(public.public_key.bits, len(partials), count)
    return unpack(combine_many(pool, public, partials, verify=verify), packing, count)


def partial_decrypt_batch(
    pool: WorkerPool, key_share: KeyShare, ciphertexts: Sequence[Ciphertext]
) -> BatchPartialDecryption:
    """Partially decrypt many ciphertexts with one holder's key share and ONE proof.

    Same result as :meth:`smpcloud.crypto.threshold.KeyShare.partial_decrypt_batch`: the
    exponentiations c_j^(2Δ s_i) (one per ciphertext, the whole cost) run on the
    workers; the batched proof (two multi-exponentiations with 128-bit exponents and
    one Chaum-Pedersen proof, ~0.2 s for 1,177 ciphertexts at 2048 bits) runs in the
    calling process. Reveals what the per-ciphertext partial decryptions reveal. The
    workers receive the key share (the holder's own processes).

    Args:
        pool: the worker pool (``self`` of the CryptoPool method).
        key_share: the holder's key share.
        ciphertexts: ``Ciphertext`` objects under the threshold key, in order.

    Returns:
        The holder's batch.

    Raises:
        InvalidInputError: key_share is not a KeyShare, no ciphertexts, or an item is not
            a Ciphertext (by index).
        KeyMismatchError: a ciphertext under another key (by index).
    """
    if not isinstance(key_share, KeyShare):
        raise InvalidInputError(f"expected a KeyShare, got {type(key_share).__name__}")
    pk = key_share.public.public_key
    items = ciphertext_objects(ciphertexts)
    values = ciphertext_ints(pk, items, 0)
    calls = [
        ((key_share, values[a:b]), (key_share, values[a:b]))
        for a, b in spans(len(values), pool.parts, 1)
    ]
    chunks = pool.run(do_partial_values, do_partial_values, calls)
    return key_share.prove_batch(items, [v for chunk in chunks for v in chunk])


def verify_batch(
    pool: WorkerPool,
    public: ThresholdPublicKey,
    ciphertexts: Sequence[Ciphertext],
    batch: BatchPartialDecryption,
) -> None:
    """Check one holder's batched partial decryption (see ``threshold.verify_batch``).

    One batch is checked in the calling process: its cost (~0.2 s for 1,177 ciphertexts
    at 2048 bits) is two multi-exponentiations and one proof, too little to gain from
    shipping the values to workers. :func:`combine_batch` checks several batches on the
    workers at once. Reveals nothing.

    Args:
        pool: the worker pool (``self`` of the CryptoPool method); not used.
        public: the threshold public key.
        ciphertexts: the ciphertexts, in the order the holder decrypted them.
        batch: the holder's batch.

    Raises:
        InvalidPartialDecryptionError: the proof fails (names the holder).
        InvalidInputError: as for :func:`smpcloud.crypto.threshold.verify_batch`.
        KeyMismatchError: a ciphertext under another key.
    """
    if not isinstance(public, ThresholdPublicKey):
        raise InvalidInputError(f"expected a ThresholdPublicKey, got {type(public).__name__}")
    threshold.verify_batch(public, ciphertexts, batch)


def combine_batch(
    pool: WorkerPool,
    public: ThresholdPublicKey,
    ciphertexts: Sequence[Ciphertext],
    batches: Iterable[BatchPartialDecryption],
    *,
    verify: bool = True,
    exclude_invalid: bool = False,
) -> list[int]:
    """Combine t (or more) holders' batched partial decryptions on the workers.

    Same result and checks as :func:`smpcloud.crypto.threshold.combine_batch`. The
    batches' proofs are checked one batch per worker task; then the ciphertexts are cut
    into slices and each worker combines its slice (per ciphertext, t exponentiations
    with exponents 2 μ_i of a few bits). Reveals the plaintexts to the caller.

    Args:
        pool: the worker pool (``self`` of the CryptoPool method).
        public: the threshold public key.
        ciphertexts: the ciphertexts, in the order the holders decrypted them.
        batches: batched partial decryptions of them by distinct holders.
        verify: check every batch's proof first (default).
        exclude_invalid: drop batches whose proof fails instead of raising.

    Returns:
        The plaintexts in (-n/2, n/2], in order.

    Raises:
        ThresholdNotMetError: fewer than t (valid) batches ("k of t").
        InvalidPartialDecryptionError: a proof failed (names the holders), not excluding.
        InvalidInputError: as for :func:`smpcloud.crypto.threshold.check_batches`.
        KeyMismatchError: a ciphertext under another key.
        VerificationError: with ``verify=False``, a wrong partial value.
    """
    if not isinstance(public, ThresholdPublicKey):
        raise InvalidInputError(f"expected a ThresholdPublicKey, got {type(public).__name__}")
    items = check_batches(public, ciphertexts, batches)
    cts = list(ciphertexts)
    values = ciphertext_ints(public.public_key, cts, 0)
    bad: list[int] = []
    if verify:
        checks = [((public, values, item), (public, values, item)) for item in items]
        failures = pool.run(do_batch_failure, do_batch_failure, checks)
        bad = [
            item.index for item, failure in zip(items, failures, strict=True) if failure is not None
        ]
    chosen = choose_batches(public, items, bad, exclude_invalid)
    calls = []
    for a, b in spans(len(values), pool.parts, _MIN_COMBINE_CHUNK):
        columns = [(item.index, tuple(item.values[a:b])) for item in chosen]
        args = (public, values[a:b], columns)
        calls.append((args, args))
    return [m for chunk in pool.run(do_combine_columns, do_combine_columns, calls) for m in chunk]


def combine_vector_batches(
    pool: WorkerPool,
    public: ThresholdPublicKey,
    ciphertexts: Sequence[Ciphertext],
    batches: Iterable[BatchPartialDecryption],
    packing: Packing,
    count: int,
    *,
    verify: bool = True,
    exclude_invalid: bool = False,
) -> npt.NDArray[np.float64]:
    """Combine batched partial decryptions of a packed aggregate and unpack it.

    Parallel form of :func:`smpcloud.crypto.packing.combine_vector_batches`. Reveals the
    per-slot sums to whoever combines.

    Args:
        pool: the worker pool (``self`` of the CryptoPool method).
        public: the threshold public key.
        ciphertexts: the ``packing.ciphertexts`` aggregated ciphertexts, in order.
        batches: t or more holders' batched partial decryptions of them.
        packing: the layout the vectors were packed with.
        count: how many vectors were added (1 .. max_additions).
        verify: check every batch's proof (default).
        exclude_invalid: drop batches whose proof fails instead of raising.

    Returns:
        A float64 array of ``packing.length`` element-wise sums.

    Raises:
        InvalidInputError: a key too small for the layout, a wrong number of ciphertexts,
            a bad count, or batches that do not belong together.
        ThresholdNotMetError: fewer than t (valid) batches.
        VerificationError: a proof failed (InvalidPartialDecryptionError names the holders).
        OverflowDetectedError: a decrypted slot outside its possible range.
    """
    packing.check_aggregate(public.public_key.bits, len(ciphertexts), count)
    plaintexts = combine_batch(
        pool, public, ciphertexts, batches, verify=verify, exclude_invalid=exclude_invalid
    )
    return unpack(plaintexts, packing, count)


__all__ = [
    "combine_batch",
    "combine_many",
    "combine_vector",
    "combine_vector_batches",
    "partial_decrypt_batch",
    "partial_decrypt_many",
    "verify_batch",
]

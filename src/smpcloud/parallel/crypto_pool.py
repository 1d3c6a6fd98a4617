"""CryptoPool: a worker pool with the batch Paillier, threshold and proof operations as methods.

The class adds no code of its own: the lifecycle is :class:`~smpcloud.parallel.pool.WorkerPool`
and each method is a function of ``paillier_ops``, ``threshold_ops`` or ``validity_ops`` taking
the pool as its first argument (documented there), so ``pool.aggregate(pk, cts)`` is
``paillier_ops.aggregate(pool, pk, cts)``.
"""

from __future__ import annotations

from smpcloud.parallel import paillier_ops, threshold_ops, validity_ops
from smpcloud.parallel.pool import WorkerPool


class CryptoPool(WorkerPool):
    """A pool of worker processes for batch Paillier work (see :mod:`smpcloud.parallel`).

    Use as a context manager, or call :meth:`close`. The workers start on first use (or by
    :meth:`start`) and live until :meth:`close`; after that the pool runs everything inline.
    Thread-safe. If a worker process dies, the call raises
    ``concurrent.futures.process.BrokenProcessPool`` and the pool must be replaced.

    Args:
        workers: number of worker processes; None = every CPU this process may use
            (:func:`~smpcloud.parallel.default_workers`); 1 = no processes, everything inline.
        start_method: ``"spawn"`` (default, portable) or ``"forkserver"`` (POSIX, faster
            start). ``"fork"`` is not offered: it is unsafe in a process that runs threads.
        preload: public keys whose fast-encryption tables every worker builds when it starts.

    Raises:
        InvalidInputError: workers outside 1..256, an unknown start method, or a preload entry
            that is not a PublicKey.
    """

    # Paillier (smpcloud.parallel.paillier_ops)
    encrypt_many = paillier_ops.encrypt_many
    encrypt_vectors = paillier_ops.encrypt_vectors
    encrypt_vector = paillier_ops.encrypt_vector
    validate_many = paillier_ops.validate_many
    aggregate = paillier_ops.aggregate
    aggregate_vectors = paillier_ops.aggregate_vectors
    product_ciphertexts = paillier_ops.product_ciphertexts
    decrypt_many = paillier_ops.decrypt_many
    decrypt_vector = paillier_ops.decrypt_vector

    # Threshold Paillier (smpcloud.parallel.threshold_ops)
    partial_decrypt_many = threshold_ops.partial_decrypt_many
    combine_many = threshold_ops.combine_many
    combine_vector = threshold_ops.combine_vector
    partial_decrypt_batch = threshold_ops.partial_decrypt_batch
    verify_batch = threshold_ops.verify_batch
    combine_batch = threshold_ops.combine_batch
    combine_vector_batches = threshold_ops.combine_vector_batches

    # Report validity proofs (smpcloud.parallel.validity_ops)
    prove_report = validity_ops.prove_report
    verify_report = validity_ops.verify_report


__all__ = ["CryptoPool"]

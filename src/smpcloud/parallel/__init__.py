"""Process pools for batch Paillier work, so that every core of the machine is used.

Paillier arithmetic is CPU-bound pure-Python-over-GMP code: one process uses one core. This
module spreads the batch operations over a pool of worker processes:

* **Encryption** (:meth:`CryptoPool.encrypt_many`, :meth:`CryptoPool.encrypt_vectors`): the
  values are validated, encoded and (for vectors) offset-encoded in the calling process, so an
  out-of-range value is refused before anything is encrypted; workers pack and encrypt pieces.
* **Validation** (:meth:`CryptoPool.validate_many`): ciphertexts from outside must lie in
  [1, n^2) and be coprime to n. The range is checked per value; coprimality is checked *once
  per chunk* on the product of the chunk mod n (gcd(prod c_i mod n, n) = 1 iff every c_i is
  coprime to n, since p | prod c_i iff p divides some c_i), and only a failing chunk is scanned
  to name the first bad index. At 2048 bits one gcd takes ~12 us and one multiplication mod
  n^2 ~4 us (reference machine), so a gcd per ciphertext would make aggregation 4x slower.
* **Aggregation** (:meth:`CryptoPool.aggregate`, :meth:`CryptoPool.aggregate_vectors`): a
  product tree of depth two. Each worker multiplies its chunk mod n^2 (validating as above on
  the chunk product), the calling process multiplies the few partial products.
* **Checking an aggregate** (:meth:`CryptoPool.product_ciphertexts`): a key holder's product
  of the logged reports, given in wire form and decoded on the workers, to compare with the
  aggregate the server serves.
* **Decryption** (:meth:`CryptoPool.decrypt_many`, :meth:`CryptoPool.decrypt_vector`), and
  threshold decryption: one holder's partial decryptions with proofs
  (:meth:`CryptoPool.partial_decrypt_many`, ~48 ms each at 2048 bits) and the verification and
  combination of many ciphertexts' partials (:meth:`CryptoPool.combine_many`,
  :meth:`CryptoPool.combine_vector`; ~37 ms per proof).
* **Batched threshold decryption** of a vector (a packed aggregate), one proof per holder
  instead of one per ciphertext: :meth:`CryptoPool.partial_decrypt_batch` runs the
  exponentiations c_j^(2Δ s_i) (~15 ms each at 2048 bits) on the workers and the one batched
  proof (~0.2 s for 1,177 ciphertexts) in the calling process; :meth:`CryptoPool.combine_batch`
  and :meth:`CryptoPool.combine_vector_batches` check one batch per worker task (~0.2 s each)
  and combine slices of the ciphertexts on the workers (~0.2 ms per ciphertext for t = 3).

The package: ``pool`` (the life of the processes, :class:`WorkerPool`), ``jobs`` (what runs in
them), ``chunks`` (cutting batches, the forms data travels in), ``paillier_ops`` and
``threshold_ops`` (the batch operations, functions of a pool), ``crypto_pool``
(:class:`CryptoPool`, those operations as methods) and ``one_shot`` (a pool for one call).

Ciphertexts travel to workers as Python ints or as slices of fixed-width big-endian bytes (the
storage format of ``Ciphertext.to_bytes``), never as pickled ``Ciphertext`` objects; keys travel
as their modulus (and factors). Each worker keeps a small per-process cache of key objects keyed
by n, so the fast-encryption table of a public key (up to 16 MiB, ~80 ms at 2048 bits, see
``smpcloud.crypto.fixed_base``) is built once per worker, not once per chunk; pass the keys as
``preload`` to build the tables when the pool starts. Workers are started with the ``spawn``
(or ``forkserver``) method, which is safe in a process that runs threads (``fork`` is refused).

``workers=1`` runs everything inline in the calling process, with the same checks and results
(no processes are started). Batches too small to gain from a pool also run inline.

Using it from an asyncio server: the methods block until the work is done, so call them through
``await asyncio.to_thread(pool.aggregate_vectors, public_key, reports)``; the event loop keeps
serving while the workers compute. A pool may be shared by several threads.

What is revealed: nothing beyond what the underlying operations reveal. Worker processes are
children of the caller and receive the same data the inline code would use, including the
private key's factors for decryption (cached in the worker until the pool is closed).
"""

from smpcloud.parallel.chunks import CiphertextBatch
from smpcloud.parallel.crypto_pool import CryptoPool
from smpcloud.parallel.one_shot import (
    aggregate,
    aggregate_vectors,
    decrypt_many,
    decrypt_vector,
    encrypt_many,
    encrypt_vector,
    validate_many,
)
from smpcloud.parallel.paillier_ops import MIN_PARALLEL_CRYPT, MIN_PARALLEL_PRODUCT
from smpcloud.parallel.pool import MAX_WORKERS, StartMethod, WorkerPool, default_workers

__all__ = [
    "MAX_WORKERS",
    "MIN_PARALLEL_CRYPT",
    "MIN_PARALLEL_PRODUCT",
    "CiphertextBatch",
    "CryptoPool",
    "StartMethod",
    "WorkerPool",
    "aggregate",
    "aggregate_vectors",
    "decrypt_many",
    "decrypt_vector",
    "default_workers",
    "encrypt_many",
    "encrypt_vector",
    "validate_many",
]

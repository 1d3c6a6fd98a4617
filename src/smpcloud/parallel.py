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

Ciphertexts travel to workers as Python ints or as slices of fixed-width big-endian bytes (the
storage format of ``Ciphertext.to_bytes``), never as pickled ``Ciphertext`` objects; keys travel
as their modulus (and factors). Each worker keeps a small per-process cache of key objects keyed
by n, so the fast-encryption table of a public key (up to 16 MiB, ~80 ms at 2048 bits, see
``smpcloud.crypto.paillier``) is built once per worker, not once per chunk; pass the keys as
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

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from types import TracebackType
from typing import Final, Literal, Self, TypeVar

import gmpy2
import numpy as np
import numpy.typing as npt
from gmpy2 import mpz

from smpcloud.crypto import threshold
from smpcloud.crypto.packing import Packing, pack_slots, to_slots, unpack
from smpcloud.crypto.paillier import Ciphertext, PrivateKey, PublicKey
from smpcloud.crypto.paillier import raw_ciphertext as _trusted_ciphertext
from smpcloud.crypto.threshold import (
    BatchPartialDecryption,
    InvalidPartialDecryptionError,
    KeyShare,
    PartialDecryption,
    ThresholdPublicKey,
)
from smpcloud.crypto.threshold import choose_batches as _choose_threshold_batches
from smpcloud.crypto.wire import as_int
from smpcloud.errors import (
    InvalidInputError,
    KeyMismatchError,
    MalformedCiphertextError,
    OverflowDetectedError,
    ThresholdNotMetError,
)

#: Largest pool accepted (bounds the processes a configuration value can start).
MAX_WORKERS: Final = 256
#: Products of fewer ciphertexts run inline (a few milliseconds of work).
MIN_PARALLEL_PRODUCT: Final = 4096
#: Encryptions or decryptions below this count run inline.
MIN_PARALLEL_CRYPT: Final = 8

_CHUNKS_PER_WORKER: Final = 4
_MIN_PRODUCT_CHUNK: Final = 2048
_MIN_CRYPT_CHUNK: Final = 4
_MIN_COMBINE_CHUNK: Final = 256  # ~50 ms of combining at 2048 bits, t = 3
_PUBLIC_CACHE_SIZE: Final = 4
_PRIVATE_CACHE_SIZE: Final = 2

StartMethod = Literal["spawn", "forkserver"]
#: Ciphertexts as objects or integers, or as one bytes object of concatenated fixed-width
#: big-endian values (``Ciphertext.to_bytes`` of each, in order).
CiphertextBatch = bytes | bytearray | memoryview | Sequence[Ciphertext | int]
_Payload = bytes | list[int]
# A partial decryption without its ciphertext: (holder index, value, challenge, response).
_PartialFields = tuple[int, int, int, int]
_T = TypeVar("_T")


def default_workers() -> int:
    """Return the number of CPUs this process may run on (its affinity mask, else cpu_count)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)  # pragma: no cover - non-Linux


def _resolve_workers(workers: object) -> int:
    if workers is None:
        return default_workers()
    if type(workers) is not int or not 1 <= workers <= MAX_WORKERS:
        raise InvalidInputError(f"workers must be None or an int in 1..{MAX_WORKERS}")
    return workers


def _spans(total: int, parts: int, minimum: int) -> list[tuple[int, int]]:
    """Split range(total) into at most ``parts`` contiguous pieces of at least ``minimum``."""
    parts = max(1, min(parts, total // max(minimum, 1)))
    base, extra = divmod(total, parts)
    spans = []
    start = 0
    for index in range(parts):
        stop = start + base + (1 if index < extra else 0)
        spans.append((start, stop))
        start = stop
    return spans


def _width(n: int) -> int:
    return ((n * n).bit_length() + 7) // 8


# ------------------------------------------------------------------ per-process key caches
#
# Used only by the job functions below, which run in worker processes. Each pool worker is a
# separate process with its own copy; inline calls pass the caller's key objects instead.

_WORKER_PUBLIC_KEYS: dict[int, PublicKey] = {}
_WORKER_PRIVATE_KEYS: dict[tuple[int, int, int], PrivateKey] = {}


def _cached_public_key(n: int) -> PublicKey:
    key = _WORKER_PUBLIC_KEYS.pop(n, None)
    if key is None:
        key = PublicKey(n)
        while len(_WORKER_PUBLIC_KEYS) >= _PUBLIC_CACHE_SIZE:
            _WORKER_PUBLIC_KEYS.pop(next(iter(_WORKER_PUBLIC_KEYS)))
    _WORKER_PUBLIC_KEYS[n] = key  # most recently used last
    return key


def _cached_private_key(n: int, p: int, q: int) -> PrivateKey:
    ident = (n, p, q)
    key = _WORKER_PRIVATE_KEYS.pop(ident, None)
    if key is None:
        key = PrivateKey(_cached_public_key(n), p, q)
        while len(_WORKER_PRIVATE_KEYS) >= _PRIVATE_CACHE_SIZE:
            _WORKER_PRIVATE_KEYS.pop(next(iter(_WORKER_PRIVATE_KEYS)))
    _WORKER_PRIVATE_KEYS[ident] = key
    return key


def _init_worker(moduli: tuple[int, ...]) -> None:
    """Pool initializer: build the fast-encryption tables of the preloaded keys."""
    for n in moduli:
        _cached_public_key(n).precompute()


def _ping() -> int:
    return os.getpid()


# --------------------------------------------------------------------- the work, per chunk
#
# The _do_* functions do the work, inline or in a worker process (all are top-level, so they
# pickle by name). Where a key object is needed, the _job_* entry point used in workers takes
# the modulus instead and finds the key in the per-process cache (built once per worker).


def _iter_values(data: _Payload, width: int) -> Iterator[int]:
    if isinstance(data, list):
        return iter(data)
    view = memoryview(data)
    from_bytes = int.from_bytes
    return (from_bytes(view[i : i + width], "big") for i in range(0, len(view), width))


def _value_at(data: _Payload, index: int, width: int) -> int:
    if isinstance(data, list):
        return data[index]
    return int.from_bytes(data[index * width : (index + 1) * width], "big")


def _not_coprime_error(n: int, data: _Payload, width: int, start: int) -> MalformedCiphertextError:
    """Return the error naming the first ciphertext of data (known to hold one) not coprime to n."""
    n_mpz = mpz(n)
    for offset, c in enumerate(_iter_values(data, width)):
        if gmpy2.gcd(c, n_mpz) != 1:
            return MalformedCiphertextError(f"ciphertext {start + offset}: not coprime to n")
    return MalformedCiphertextError("a ciphertext is not coprime to n")  # pragma: no cover


def _do_product(n: int, data: _Payload, start: int, modulus: int) -> int:
    """Return the product mod ``modulus`` (n or n^2) of validated ciphertexts.

    Coprimality to n is checked once, on the product (see the module docstring).

    Raises:
        MalformedCiphertextError: naming the absolute index of the first ciphertext that is
            outside [1, n^2) or not coprime to n.
    """
    width = _width(n)
    n2 = n * n
    mod = mpz(modulus)
    acc = mpz(1)
    for offset, c in enumerate(_iter_values(data, width)):
        if not 0 < c < n2:
            if gmpy2.gcd(acc, n) != 1:  # an earlier one is bad too: name the first
                head = data[: offset * width] if isinstance(data, bytes) else data[:offset]
                raise _not_coprime_error(n, head, width, start)
            raise MalformedCiphertextError(f"ciphertext {start + offset}: outside [1, n^2)")
        acc = acc * c % mod
    if gmpy2.gcd(acc, n) != 1:
        raise _not_coprime_error(n, data, width, start)
    return int(acc)


def _do_column_products(
    n: int, rows: list[_Payload], first_row: int, first_col: int, columns: int
) -> list[int]:
    """Return, for each of ``columns`` columns, the product mod n^2 over the given rows.

    Raises:
        MalformedCiphertextError: naming the report (row) and position (column) of the first
            ciphertext outside [1, n^2) in row order, else of a ciphertext not coprime to n
            (the first in the first failing column).
    """
    width = _width(n)
    n2 = n * n
    mod = mpz(n2)
    accs = [mpz(1)] * columns
    for r, row in enumerate(rows):
        for j, c in enumerate(_iter_values(row, width)):
            if not 0 < c < n2:
                raise MalformedCiphertextError(
                    f"report {first_row + r}, ciphertext {first_col + j}: outside [1, n^2)"
                )
            accs[j] = accs[j] * c % mod
    n_mpz = mpz(n)
    for j, acc in enumerate(accs):
        if gmpy2.gcd(acc, n_mpz) != 1:
            for r, row in enumerate(rows):
                if gmpy2.gcd(_value_at(row, j, width), n_mpz) != 1:
                    raise MalformedCiphertextError(
                        f"report {first_row + r}, ciphertext {first_col + j}: not coprime to n"
                    )
    return [int(acc) for acc in accs]


def _do_encrypt(public_key: PublicKey, plaintexts: list[int]) -> list[int]:
    return [public_key.encrypt(m).value for m in plaintexts]


def _job_encrypt(n: int, plaintexts: list[int]) -> list[int]:
    return _do_encrypt(_cached_public_key(n), plaintexts)


def _do_encrypt_slots(
    public_key: PublicKey, packing: Packing, slot_values: npt.NDArray[np.uint64]
) -> list[int]:
    return [public_key.encrypt(m).value for m in pack_slots(slot_values, packing)]


def _job_encrypt_slots(n: int, packing: Packing, slot_values: npt.NDArray[np.uint64]) -> list[int]:
    return _do_encrypt_slots(_cached_public_key(n), packing, slot_values)


def _do_decrypt(private_key: PrivateKey, values: list[int]) -> list[int]:
    public_key = private_key.public_key
    return [private_key.decrypt(Ciphertext(public_key, c)) for c in values]


def _job_decrypt(n: int, p: int, q: int, values: list[int]) -> list[int]:
    return _do_decrypt(_cached_private_key(n, p, q), values)


def _do_partial_decrypt(share: KeyShare, values: list[int]) -> list[_PartialFields]:
    public_key = share.public.public_key
    out = []
    for c in values:
        partial = share.partial_decrypt(Ciphertext(public_key, c))
        out.append((partial.index, partial.value, partial.challenge, partial.response))
    return out


def _do_combine(
    public: ThresholdPublicKey, groups: list[tuple[int, list[_PartialFields]]], verify: bool
) -> list[int]:
    public_key = public.public_key
    out = []
    for c, fields in groups:
        ciphertext = Ciphertext(public_key, c)
        partials = [PartialDecryption(i, ciphertext, v, e, z) for i, v, e, z in fields]
        out.append(threshold.combine(public, partials, verify=verify))
    return out


def _wrap_all(public_key: PublicKey, values: list[int]) -> list[Ciphertext]:
    # Values taken from Ciphertext objects in the calling process: valid by construction.
    return [_trusted_ciphertext(public_key, mpz(c)) for c in values]


def _do_partial_values(share: KeyShare, values: list[int]) -> list[int]:
    return share.raw_partial_values(_wrap_all(share.public.public_key, values))


def _do_batch_failure(
    public: ThresholdPublicKey, values: list[int], batch: BatchPartialDecryption
) -> str | None:
    """Return None if the batch verifies, else the failure detail ("" = the proof)."""
    try:
        threshold.verify_batch(public, _wrap_all(public.public_key, values), batch)
    except InvalidPartialDecryptionError as exc:
        return exc.detail
    return None


def _do_combine_columns(
    public: ThresholdPublicKey, values: list[int], columns: list[tuple[int, tuple[int, ...]]]
) -> list[int]:
    """Combine already verified partial values of a slice of the ciphertexts."""
    # The slices carry no proof; they were verified whole (or verify=False was asked for).
    batches = [BatchPartialDecryption(index, part, 0, 0) for index, part in columns]
    cts = _wrap_all(public.public_key, values)
    return threshold.combine_batch(public, cts, batches, verify=False)


# ----------------------------------------------------------------- parent-side conversions


def _ciphertext_ints(public_key: PublicKey, items: Sequence[object], start: int) -> list[int]:
    """Return items as ints, checking key and type; indices in messages start at ``start``."""
    n = public_key.n
    out: list[int] = []
    append = out.append
    for offset, item in enumerate(items):
        if isinstance(item, Ciphertext):
            other = item.public_key
            if other is not public_key and other.n != n:
                raise KeyMismatchError(f"ciphertext {start + offset} is under another key")
            append(item.value)
        else:
            c = as_int(item)
            if c is None:
                raise MalformedCiphertextError(
                    f"ciphertext {start + offset}: expected a Ciphertext or an integer, "
                    f"got {type(item).__name__}"
                )
            append(c)
    return out


def _batch_length(public_key: PublicKey, batch: object, what: str) -> int:
    """Return the number of ciphertexts in a batch (checking a bytes batch's size)."""
    if isinstance(batch, (bytes, bytearray, memoryview)):
        width = _width(public_key.n)
        size = memoryview(batch).nbytes
        if size % width:
            raise MalformedCiphertextError(
                f"{what}: {size} bytes is not a whole number of {width}-byte ciphertexts"
            )
        return size // width
    if isinstance(batch, (str, dict)) or not isinstance(batch, Sequence):
        raise InvalidInputError(
            f"{what}: expected a sequence of ciphertexts or bytes, got {type(batch).__name__}"
        )
    return len(batch)


def _payload(public_key: PublicKey, batch: CiphertextBatch, start: int, stop: int) -> _Payload:
    if isinstance(batch, (bytes, bytearray, memoryview)):
        width = _width(public_key.n)
        return bytes(memoryview(batch).cast("B")[start * width : stop * width])
    return _ciphertext_ints(public_key, batch[start:stop], start)


def _check_public_key(public_key: object) -> PublicKey:
    if not isinstance(public_key, PublicKey):
        raise InvalidInputError(f"public_key must be a PublicKey, got {type(public_key).__name__}")
    return public_key


def _gather(futures: Sequence[Future[_T]]) -> list[_T]:
    """Return the results in order; on the first error cancel the rest and re-raise it."""
    try:
        return [future.result() for future in futures]
    except BaseException:
        for future in futures:
            future.cancel()
        raise


# --------------------------------------------------------------------------------- the pool


class CryptoPool:
    """A pool of worker processes for batch Paillier work (see the module docstring).

    Use as a context manager, or call :meth:`close`. The workers start on first use (or by
    :meth:`start`) and live until :meth:`close`; after that the pool runs everything inline.
    Thread-safe. If a worker process dies, the call raises
    ``concurrent.futures.process.BrokenProcessPool`` and the pool must be replaced.

    Args:
        workers: number of worker processes; None = every CPU this process may use
            (:func:`default_workers`); 1 = no processes, everything inline.
        start_method: ``"spawn"`` (default, portable) or ``"forkserver"`` (POSIX, faster
            start). ``"fork"`` is not offered: it is unsafe in a process that runs threads.
        preload: public keys whose fast-encryption tables every worker builds when it starts.

    Raises:
        InvalidInputError: workers outside 1..256, an unknown start method, or a preload entry
            that is not a PublicKey.
    """

    def __init__(
        self,
        workers: int | None = None,
        *,
        start_method: StartMethod = "spawn",
        preload: Sequence[PublicKey] = (),
    ) -> None:
        self.workers: int = _resolve_workers(workers)
        if start_method not in ("spawn", "forkserver"):
            raise InvalidInputError('start_method must be "spawn" or "forkserver"')
        moduli = tuple(_check_public_key(key).n for key in preload)
        self._executor: ProcessPoolExecutor | None = None
        if self.workers > 1:
            self._executor = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context(start_method),
                initializer=_init_worker,
                initargs=(moduli,),
            )

    def __repr__(self) -> str:
        mode = "inline" if self._executor is None else "processes"
        return f"CryptoPool(workers={self.workers}, {mode})"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        """Start every worker process now (and build preloaded tables) instead of on first use."""
        if self._executor is not None:
            _gather([self._executor.submit(_ping) for _ in range(self.workers)])

    def close(self) -> None:
        """Stop the workers (waiting for running work; queued work is cancelled). Idempotent."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)

    def _run(
        self,
        inline: Callable[..., _T],
        job: Callable[..., _T],
        calls: Sequence[tuple[tuple[object, ...], tuple[object, ...]]],
    ) -> list[_T]:
        """Run inline(*inline_args) or job(*job_args) for each call, in order."""
        executor = self._executor
        if executor is None or len(calls) < 2:
            return [inline(*args) for args, _ in calls]
        return _gather([executor.submit(job, *args) for _, args in calls])

    def _parts(self) -> int:
        return self.workers * _CHUNKS_PER_WORKER

    # ------------------------------------------------------------------ encryption

    def encrypt_many(self, public_key: PublicKey, plaintexts: Sequence[int]) -> list[Ciphertext]:
        """Encrypt many integers with the fast DJN randomiser of :meth:`PublicKey.encrypt`.

        Every plaintext is checked before the first encryption. Reveals nothing about them.

        Args:
            public_key: the key.
            plaintexts: integers in (-n/2, n/2].

        Returns:
            One fresh ciphertext per plaintext, in order.

        Raises:
            InvalidInputError: a non-integer plaintext (the message gives its index).
            OverflowDetectedError: a plaintext outside (-n/2, n/2] (the message gives its index).
        """
        pk = _check_public_key(public_key)
        values: list[int] = []
        for index, item in enumerate(plaintexts):
            m = as_int(item)
            if m is None:
                raise InvalidInputError(
                    f"plaintext {index} must be an int, got {type(item).__name__}"
                )
            if not -pk.max_int <= m <= pk.max_int:
                raise OverflowDetectedError(f"plaintext {index} outside (-n/2, n/2]")
            values.append(m)
        if len(values) < MIN_PARALLEL_CRYPT:
            return [pk.encrypt(m) for m in values]
        calls = [
            ((pk, values[a:b]), (pk.n, values[a:b]))
            for a, b in _spans(len(values), self._parts(), _MIN_CRYPT_CHUNK)
        ]
        chunks = self._run(_do_encrypt, _job_encrypt, calls)
        return [_trusted_ciphertext(pk, mpz(c)) for chunk in chunks for c in chunk]

    def encrypt_vectors(
        self,
        public_key: PublicKey,
        vectors: Sequence[Sequence[float] | npt.ArrayLike],
        packing: Packing,
    ) -> list[list[Ciphertext]]:
        """Pack and encrypt several vectors (for example many clients' in a simulation).

        Every value of every vector is range-checked before the first encryption (see
        :func:`smpcloud.crypto.packing.to_slots`); all pieces of all vectors are queued at once
        so the cores stay busy. Reveals nothing about the values.

        Args:
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
        pk = _check_public_key(public_key)
        packing.check_key_bits(pk.bits)
        encoded = [to_slots(values, packing) for values in vectors]
        per, length = packing.slots, packing.length
        spans = _spans(packing.ciphertexts, self._parts(), 1)
        calls = []
        for slots in encoded:
            for a, b in spans:
                piece = slots[a * per : min(b * per, length)]
                calls.append(((pk, packing, piece), (pk.n, packing, piece)))
        if packing.ciphertexts * len(encoded) < MIN_PARALLEL_CRYPT:
            chunks = [_do_encrypt_slots(*args) for args, _ in calls]
        else:
            chunks = self._run(_do_encrypt_slots, _job_encrypt_slots, calls)
        out: list[list[Ciphertext]] = []
        for index in range(len(encoded)):
            group = chunks[index * len(spans) : (index + 1) * len(spans)]
            out.append([_trusted_ciphertext(pk, mpz(c)) for chunk in group for c in chunk])
        return out

    def encrypt_vector(
        self, public_key: PublicKey, values: Sequence[float] | npt.ArrayLike, packing: Packing
    ) -> list[Ciphertext]:
        """Pack and encrypt one vector; same as ``encrypt_vectors(public_key, [values], ...)``.

        Args:
            public_key: the key; at least ``packing.key_bits`` bits.
            values: ``packing.length`` ints or floats in [min_value, max_value].
            packing: the layout.

        Returns:
            The ``packing.ciphertexts`` ciphertexts.

        Raises:
            InvalidInputError: as for :meth:`encrypt_vectors`.
            OverflowDetectedError: a value not finite or outside the declared range.
        """
        return self.encrypt_vectors(public_key, [values], packing)[0]

    # ------------------------------------------------------------------ validation

    def validate_many(self, public_key: PublicKey, values: CiphertextBatch) -> list[Ciphertext]:
        """Validate ciphertexts from outside: each in [1, n^2) and coprime to n.

        Args:
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
        pk = _check_public_key(public_key)
        total = _batch_length(pk, values, "ciphertexts")
        spans = _spans(total, self._parts(), _MIN_PRODUCT_CHUNK)
        payloads = [_payload(pk, values, a, b) for a, b in spans]
        calls = [
            ((pk.n, data, a, pk.n), (pk.n, data, a, pk.n))
            for (a, _), data in zip(spans, payloads, strict=True)
        ]
        if total < MIN_PARALLEL_PRODUCT:
            for args, _ in calls:
                _do_product(*args)
        else:
            self._run(_do_product, _do_product, calls)
        width = _width(pk.n)
        return [
            _trusted_ciphertext(pk, mpz(c)) for data in payloads for c in _iter_values(data, width)
        ]

    # ------------------------------------------------------------------ aggregation

    def aggregate(self, public_key: PublicKey, ciphertexts: CiphertextBatch) -> Ciphertext:
        """Add many ciphertexts homomorphically: their product mod n^2, E(sum of plaintexts).

        Integers and bytes are validated on the way (range per value, coprimality per chunk);
        the first bad one is named by index. Reveals nothing; the result is *not*
        re-randomised (see :meth:`Ciphertext.rerandomized`).

        Args:
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
        pk = _check_public_key(public_key)
        total = _batch_length(pk, ciphertexts, "ciphertexts")
        if total == 0:
            raise InvalidInputError("nothing to aggregate: no ciphertexts")
        n2 = pk.n_squared
        if self._executor is None or total < MIN_PARALLEL_PRODUCT:
            data = _payload(pk, ciphertexts, 0, total)
            return _trusted_ciphertext(pk, mpz(_do_product(pk.n, data, 0, n2)))
        executor = self._executor
        futures = [
            executor.submit(_do_product, pk.n, _payload(pk, ciphertexts, a, b), a, n2)
            for a, b in _spans(total, self._parts(), _MIN_PRODUCT_CHUNK)
        ]
        acc = mpz(1)
        for partial in _gather(futures):
            acc = acc * partial % n2
        return _trusted_ciphertext(pk, acc)

    def aggregate_vectors(
        self, public_key: PublicKey, reports: Sequence[CiphertextBatch]
    ) -> list[Ciphertext]:
        """Add vectors of ciphertexts element-wise: result[j] = product over reports of r[j].

        This is the server's aggregation of (packed) vector reports. The work is cut into tiles
        of reports x positions; each worker multiplies its tile's columns mod n^2 and the
        calling process multiplies the partial products. Reveals nothing; results are not
        re-randomised.

        Args:
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
        pk = _check_public_key(public_key)
        if not reports:
            raise InvalidInputError("nothing to aggregate: no reports")
        lengths = [_batch_length(pk, report, f"report {i}") for i, report in enumerate(reports)]
        length = lengths[0]
        for index, other in enumerate(lengths):
            if other != length:
                raise InvalidInputError(
                    f"report {index} has {other} ciphertexts; report 0 has {length}"
                )
        if length == 0:
            raise InvalidInputError("nothing to aggregate: reports are empty")
        total = length * len(reports)
        parts = 1 if self._executor is None or total < MIN_PARALLEL_PRODUCT else self._parts()
        row_parts = min(len(reports), parts)
        col_parts = min(length, -(-parts // row_parts))
        row_spans = _spans(len(reports), row_parts, 1)
        col_spans = _spans(length, col_parts, 1)
        calls: list[tuple[int, tuple[int, list[_Payload], int, int, int]]] = []
        for r0, r1 in row_spans:
            for c0, c1 in col_spans:
                rows = [_payload(pk, reports[r], c0, c1) for r in range(r0, r1)]
                calls.append((c0, (pk.n, rows, r0, c0, c1 - c0)))
        executor = self._executor
        if executor is None or len(calls) < 2:
            partials = [_do_column_products(*args) for _, args in calls]
        else:
            partials = _gather([executor.submit(_do_column_products, *args) for _, args in calls])
        n2 = mpz(pk.n_squared)
        accs = [mpz(1)] * length
        for (c0, _), partial in zip(calls, partials, strict=True):
            for offset, value in enumerate(partial):
                accs[c0 + offset] = accs[c0 + offset] * value % n2
        return [_trusted_ciphertext(pk, acc) for acc in accs]

    # ------------------------------------------------------------------ decryption

    def decrypt_many(self, private_key: PrivateKey, ciphertexts: Sequence[Ciphertext]) -> list[int]:
        """Decrypt many ciphertexts (CRT decryption, :meth:`PrivateKey.decrypt`).

        Reveals the plaintexts to the caller. The workers receive the key's factors.

        Args:
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
        values = _ciphertext_ints(pk, ciphertexts, 0)
        if len(values) < MIN_PARALLEL_CRYPT:
            return _do_decrypt(private_key, values)
        calls = [
            ((private_key, values[a:b]), (pk.n, private_key.p, private_key.q, values[a:b]))
            for a, b in _spans(len(values), self._parts(), _MIN_CRYPT_CHUNK)
        ]
        return [m for chunk in self._run(_do_decrypt, _job_decrypt, calls) for m in chunk]

    def decrypt_vector(
        self,
        private_key: PrivateKey,
        ciphertexts: Sequence[Ciphertext],
        packing: Packing,
        count: int,
    ) -> npt.NDArray[np.float64]:
        """Decrypt the sum of ``count`` packed vectors and unpack it.

        Reveals to the key holder the per-slot sums, not the individual vectors.

        Args:
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
        return unpack(self.decrypt_many(private_key, ciphertexts), packing, count)

    # ------------------------------------------------------------ threshold decryption

    def partial_decrypt_many(
        self, key_share: KeyShare, ciphertexts: Sequence[Ciphertext]
    ) -> list[PartialDecryption]:
        """Partially decrypt many ciphertexts with one holder's key share, with proofs.

        Same as ``[key_share.partial_decrypt(c) for c in ciphertexts]``
        (:meth:`smpcloud.crypto.threshold.KeyShare.partial_decrypt`), spread over the workers.
        Each partial reveals nothing about the key share beyond the eventual plaintext. The
        workers receive the key share (the holder's own processes).

        Args:
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
        values = _ciphertext_ints(pk, items, 0)
        calls = [
            ((key_share, values[a:b]), (key_share, values[a:b]))
            for a, b in _spans(len(values), self._parts(), 1)
        ]
        chunks = self._run(_do_partial_decrypt, _do_partial_decrypt, calls)
        fields = [f for chunk in chunks for f in chunk]
        return [
            PartialDecryption(i, ct, v, e, z)
            for ct, (i, v, e, z) in zip(items, fields, strict=True)
        ]

    def combine_many(
        self,
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
        groups: list[tuple[int, list[_PartialFields]]] = []
        for j, group in enumerate(partials):
            items = list(group)
            if not items:
                raise ThresholdNotMetError(
                    f"ciphertext {j}: 0 of {public.threshold} partial decryptions"
                )
            for item in items:
                if not isinstance(item, PartialDecryption):
                    raise InvalidInputError(
                        f"ciphertext {j}: expected PartialDecryption objects, "
                        f"got {type(item).__name__}"
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
            for a, b in _spans(len(groups), self._parts(), 1)
        ]
        return [m for chunk in self._run(_do_combine, _do_combine, calls) for m in chunk]

    def combine_vector(
        self,
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
        return unpack(self.combine_many(public, partials, verify=verify), packing, count)

    # ------------------------------------------------- batched threshold decryption

    def partial_decrypt_batch(
        self, key_share: KeyShare, ciphertexts: Sequence[Ciphertext]
    ) -> BatchPartialDecryption:
        """Partially decrypt many ciphertexts with one holder's key share and ONE proof.

        Same result as :meth:`smpcloud.crypto.threshold.KeyShare.partial_decrypt_batch`: the
        exponentiations c_j^(2Δ s_i) (one per ciphertext, the whole cost) run on the
        workers; the batched proof (two multi-exponentiations with 128-bit exponents and
        one Chaum-Pedersen proof, ~0.2 s for 1,177 ciphertexts at 2048 bits) runs in the
        calling process. Reveals what the per-ciphertext partial decryptions reveal. The
        workers receive the key share (the holder's own processes).

        Args:
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
        items = self._ciphertext_objects(ciphertexts)
        values = _ciphertext_ints(pk, items, 0)
        calls = [
            ((key_share, values[a:b]), (key_share, values[a:b]))
            for a, b in _spans(len(values), self._parts(), 1)
        ]
        chunks = self._run(_do_partial_values, _do_partial_values, calls)
        return key_share.prove_batch(items, [v for chunk in chunks for v in chunk])

    def verify_batch(
        self,
        public: ThresholdPublicKey,
        ciphertexts: Sequence[Ciphertext],
        batch: BatchPartialDecryption,
    ) -> None:
        """Check one holder's batched partial decryption (see ``threshold.verify_batch``).

        One batch is checked in the calling process: its cost (~0.2 s for 1,177 ciphertexts
        at 2048 bits) is two multi-exponentiations and one proof, too little to gain from
        shipping the values to workers. :meth:`combine_batch` checks several batches on the
        workers at once. Reveals nothing.

        Raises:
            InvalidPartialDecryptionError: the proof fails (names the holder).
            InvalidInputError: as for :func:`smpcloud.crypto.threshold.verify_batch`.
            KeyMismatchError: a ciphertext under another key.
        """
        if not isinstance(public, ThresholdPublicKey):
            raise InvalidInputError(f"expected a ThresholdPublicKey, got {type(public).__name__}")
        threshold.verify_batch(public, ciphertexts, batch)

    def combine_batch(
        self,
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
        items = threshold.check_batches(public, ciphertexts, batches)
        cts = list(ciphertexts)
        values = _ciphertext_ints(public.public_key, cts, 0)
        bad: list[int] = []
        if verify:
            checks = [((public, values, item), (public, values, item)) for item in items]
            failures = self._run(_do_batch_failure, _do_batch_failure, checks)
            bad = [
                item.index
                for item, failure in zip(items, failures, strict=True)
                if failure is not None
            ]
        chosen = _choose_threshold_batches(public, items, bad, exclude_invalid)
        calls = []
        for a, b in _spans(len(values), self._parts(), _MIN_COMBINE_CHUNK):
            columns = [(item.index, tuple(item.values[a:b])) for item in chosen]
            args = (public, values[a:b], columns)
            calls.append((args, args))
        return [
            m for chunk in self._run(_do_combine_columns, _do_combine_columns, calls) for m in chunk
        ]

    def combine_vector_batches(
        self,
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
        plaintexts = self.combine_batch(
            public, ciphertexts, batches, verify=verify, exclude_invalid=exclude_invalid
        )
        return unpack(plaintexts, packing, count)

    @staticmethod
    def _ciphertext_objects(ciphertexts: Sequence[Ciphertext]) -> list[Ciphertext]:
        if isinstance(ciphertexts, (str, bytes)) or not isinstance(ciphertexts, Sequence):
            raise InvalidInputError(
                f"expected a sequence of ciphertexts, got {type(ciphertexts).__name__}"
            )
        items = list(ciphertexts)
        if not items:
            raise InvalidInputError("no ciphertexts")
        for index, item in enumerate(items):
            if not isinstance(item, Ciphertext):
                raise InvalidInputError(
                    f"ciphertext {index}: expected a Ciphertext, got {type(item).__name__}"
                )
        return items


# ------------------------------------------------------------------------ one-shot helpers


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
    "MAX_WORKERS",
    "MIN_PARALLEL_CRYPT",
    "MIN_PARALLEL_PRODUCT",
    "CiphertextBatch",
    "CryptoPool",
    "StartMethod",
    "aggregate",
    "aggregate_vectors",
    "decrypt_many",
    "decrypt_vector",
    "default_workers",
    "encrypt_many",
    "encrypt_vector",
    "validate_many",
]

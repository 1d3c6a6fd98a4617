"""The work that runs in the worker processes: per-process key caches and one job per chunk.

Every function here is module-level, so a process pool pickles it by name. The ``do_*``
functions do the work on one chunk, inline in the calling process or in a worker; where a key
object is needed, the ``job_*`` entry point used in workers takes the modulus (and factors)
instead and finds the key in the per-process cache, so that the fast-encryption table of a
public key (up to 16 MiB, ~80 ms at 2048 bits, see ``smpcloud.crypto.fixed_base``) is built once
per worker, not once per chunk. :func:`init_worker` builds the tables of preloaded keys when a
worker starts.

Validation of ciphertexts from outside happens here, on the chunk: the range [1, n^2) is
checked per value, coprimality to n *once per chunk* on the product of the chunk (gcd(prod c_i
mod n, n) = 1 iff every c_i is coprime to n, since p | prod c_i iff p divides some c_i); only a
failing chunk is scanned to name the first bad index. At 2048 bits one gcd takes ~12 us and one
multiplication mod n^2 ~4 us (reference machine), so a gcd per ciphertext would make
aggregation 4x slower.

What is revealed: nothing beyond what the underlying crypto operations reveal. A worker receives
the same data the inline code would use, including the private key's factors and key shares
for decryption (cached in the worker process until the pool is closed).
"""

from __future__ import annotations

import os
import threading
from typing import Final

import gmpy2
import numpy as np
import numpy.typing as npt
from gmpy2 import mpz

from smpcloud.crypto import threshold
from smpcloud.crypto.packing import Packing, pack_slots
from smpcloud.crypto.paillier import Ciphertext, PrivateKey, PublicKey, raw_ciphertext
from smpcloud.crypto.threshold import (
    BatchPartialDecryption,
    InvalidPartialDecryptionError,
    KeyShare,
    PartialDecryption,
    ThresholdPublicKey,
)
from smpcloud.crypto.validity import ProofLayout, ReportBase, prove_chunk, verify_chunk
from smpcloud.crypto.wire import decode_int
from smpcloud.errors import InvalidProofError, MalformedCiphertextError
from smpcloud.parallel.chunks import (
    PartialFields,
    Payload,
    ciphertext_width,
    iter_values,
    value_at,
)

_PUBLIC_CACHE_SIZE: Final = 4
_BASE_CACHE_SIZE: Final = 2
_PRIVATE_CACHE_SIZE: Final = 2

# ------------------------------------------------------------------ per-process key caches
#
# Used only by the job functions, which run in worker processes. Each pool worker is a separate
# process with its own copy; inline calls pass the caller's key objects instead.

_WORKER_PUBLIC_KEYS: dict[int, PublicKey] = {}
_WORKER_PRIVATE_KEYS: dict[tuple[int, int, int], PrivateKey] = {}
_WORKER_REPORT_BASES: dict[int, ReportBase] = {}
_BASE_LOCK = threading.Lock()


def cached_public_key(n: int) -> PublicKey:
    """Return this process's key object for modulus n (a small LRU cache of PublicKey)."""
    key = _WORKER_PUBLIC_KEYS.pop(n, None)
    if key is None:
        key = PublicKey(n)
        while len(_WORKER_PUBLIC_KEYS) >= _PUBLIC_CACHE_SIZE:
            _WORKER_PUBLIC_KEYS.pop(next(iter(_WORKER_PUBLIC_KEYS)))
    _WORKER_PUBLIC_KEYS[n] = key  # most recently used last
    return key


def cached_private_key(n: int, p: int, q: int) -> PrivateKey:
    """Return this process's private key object for (n, p, q) (a small LRU cache)."""
    ident = (n, p, q)
    key = _WORKER_PRIVATE_KEYS.pop(ident, None)
    if key is None:
        key = PrivateKey(cached_public_key(n), p, q)
        while len(_WORKER_PRIVATE_KEYS) >= _PRIVATE_CACHE_SIZE:
            _WORKER_PRIVATE_KEYS.pop(next(iter(_WORKER_PRIVATE_KEYS)))
    _WORKER_PRIVATE_KEYS[ident] = key
    return key


def cached_report_base(n: int) -> ReportBase:
    """Return this process's report base for modulus n, with its table (a small LRU cache).

    Also used by the calling process of an inline pool (the server verifies every report with
    one), so a key's base and table (~0.3 s, up to 16 MiB at 2048 bits) are built once.
    """
    with _BASE_LOCK:  # the service's request threads share the calling process's cache
        base = _WORKER_REPORT_BASES.pop(n, None)
        if base is None:
            base = ReportBase(n)
            while len(_WORKER_REPORT_BASES) >= _BASE_CACHE_SIZE:
                _WORKER_REPORT_BASES.pop(next(iter(_WORKER_REPORT_BASES)))
        _WORKER_REPORT_BASES[n] = base
        return base


def init_worker(moduli: tuple[int, ...]) -> None:
    """Pool initializer: build the fast-encryption tables of the preloaded keys."""
    for n in moduli:
        cached_public_key(n).precompute()


def ping() -> int:
    """Return the worker's process id (used to start every worker)."""
    return os.getpid()


# --------------------------------------------------------------------- the work, per chunk


def not_coprime_error(n: int, data: Payload, width: int, start: int) -> MalformedCiphertextError:
    """Return the error naming the first ciphertext of data (known to hold one) not coprime to n."""
    n_mpz = mpz(n)
    for offset, c in enumerate(iter_values(data, width)):
        if gmpy2.gcd(c, n_mpz) != 1:
            return MalformedCiphertextError(f"ciphertext {start + offset}: not coprime to n")
    return MalformedCiphertextError("a ciphertext is not coprime to n")  # pragma: no cover


def do_product(n: int, data: Payload, start: int, modulus: int) -> int:
    """Return the product mod ``modulus`` (n or n^2) of validated ciphertexts.

    Coprimality to n is checked once, on the product (see the module docstring).

    Raises:
        MalformedCiphertextError: naming the absolute index of the first ciphertext that is
            outside [1, n^2) or not coprime to n.
    """
    width = ciphertext_width(n)
    n2 = n * n
    mod = mpz(modulus)
    acc = mpz(1)
    for offset, c in enumerate(iter_values(data, width)):
        if not 0 < c < n2:
            if gmpy2.gcd(acc, n) != 1:  # an earlier one is bad too: name the first
                head = data[: offset * width] if isinstance(data, bytes) else data[:offset]
                raise not_coprime_error(n, head, width, start)
            raise MalformedCiphertextError(f"ciphertext {start + offset}: outside [1, n^2)")
        acc = acc * c % mod
    if gmpy2.gcd(acc, n) != 1:
        raise not_coprime_error(n, data, width, start)
    return int(acc)


def do_column_products(
    n: int, rows: list[Payload], first_row: int, first_col: int, columns: int
) -> list[int]:
    """Return, for each of ``columns`` columns, the product mod n^2 over the given rows.

    Raises:
        MalformedCiphertextError: naming the report (row) and position (column) of the first
            ciphertext outside [1, n^2) in row order, else of a ciphertext not coprime to n
            (the first in the first failing column).
    """
    width = ciphertext_width(n)
    n2 = n * n
    mod = mpz(n2)
    accs = [mpz(1)] * columns
    for r, row in enumerate(rows):
        for j, c in enumerate(iter_values(row, width)):
            if not 0 < c < n2:
                raise MalformedCiphertextError(
                    f"report {first_row + r}, ciphertext {first_col + j}: outside [1, n^2)"
                )
            accs[j] = accs[j] * c % mod
    n_mpz = mpz(n)
    for j, acc in enumerate(accs):
        if gmpy2.gcd(acc, n_mpz) != 1:
            for r, row in enumerate(rows):
                if gmpy2.gcd(value_at(row, j, width), n_mpz) != 1:
                    raise MalformedCiphertextError(
                        f"report {first_row + r}, ciphertext {first_col + j}: not coprime to n"
                    )
    return [int(acc) for acc in accs]


def do_text_products(
    n: int, rows: list[list[str]], first_row: int, first_col: int, columns: int
) -> list[int]:
    """Return, per column, the product mod n^2 of ciphertexts given in canonical wire form.

    ``rows[r][j]`` is the wire text of report ``first_row + r`` at position ``first_col + j``.
    Each text is decoded strictly (:func:`smpcloud.crypto.wire.decode_int`) and range-checked;
    coprimality is not checked (a product that must equal a given value needs none).

    Raises:
        MalformedCiphertextError: naming the report and position of the first text that is
            not canonical or not in [1, n^2).
    """
    width = ciphertext_width(n)
    n2 = n * n
    mod = mpz(n2)
    accs = [mpz(1)] * columns
    for r, row in enumerate(rows):
        for j, text in enumerate(row):
            where = f"report {first_row + r}, ciphertext {first_col + j}"
            c = decode_int(text, where, max_bytes=width, error=MalformedCiphertextError)
            if c >= n2:
                raise MalformedCiphertextError(f"{where}: outside [1, n^2)")
            accs[j] = accs[j] * c % mod
    return [int(acc) for acc in accs]


def do_encrypt(public_key: PublicKey, plaintexts: list[int]) -> list[int]:
    """Encrypt a chunk of plaintexts (in range) with ``public_key.encrypt``; return the values."""
    return [public_key.encrypt(m).value for m in plaintexts]


def job_encrypt(n: int, plaintexts: list[int]) -> list[int]:
    """Worker form of :func:`do_encrypt`: the key by its modulus, from the cache."""
    return do_encrypt(cached_public_key(n), plaintexts)


def do_encrypt_slots(
    public_key: PublicKey, packing: Packing, slot_values: npt.NDArray[np.uint64]
) -> list[int]:
    """Pack a piece of slot values and encrypt each plaintext; return the values."""
    return [public_key.encrypt(m).value for m in pack_slots(slot_values, packing)]


def job_encrypt_slots(n: int, packing: Packing, slot_values: npt.NDArray[np.uint64]) -> list[int]:
    """Worker form of :func:`do_encrypt_slots`: the key by its modulus, from the cache."""
    return do_encrypt_slots(cached_public_key(n), packing, slot_values)


def do_prove_chunk(
    base: ReportBase, layout: ProofLayout, start: int, values: list[int], context: bytes
) -> tuple[list[int], bytes]:
    """Encrypt and prove a chunk of a report (see :func:`smpcloud.crypto.validity.prove_chunk`)."""
    return prove_chunk(base, layout, start, values, context)


def job_prove_chunk(
    n: int, layout: ProofLayout, start: int, values: list[int], context: bytes
) -> tuple[list[int], bytes]:
    """Worker entry of :func:`do_prove_chunk`: the base comes from the per-process cache."""
    return prove_chunk(cached_report_base(n), layout, start, values, context)


#: A chunk's verdict: None, or the failed check's (message, check name). Returned rather than
#: raised because an InvalidProofError loses its keyword-only ``check`` when pickled.
ChunkVerdict = tuple[str, str] | None


def do_verify_chunk(
    base: ReportBase,
    layout: ProofLayout,
    start: int,
    ciphertexts: list[int],
    proof: bytes,
    context: bytes,
) -> ChunkVerdict:
    """Verify a chunk of a report's proof (see :func:`smpcloud.crypto.validity.verify_chunk`).

    Returns:
        None if it verifies, else the error's message and check name.

    Raises:
        MalformedCiphertextError: a ciphertext outside [1, n^2).
    """
    try:
        verify_chunk(base, layout, start, ciphertexts, proof, context)
    except InvalidProofError as exc:
        return str(exc), exc.check
    return None


def job_verify_chunk(
    n: int,
    layout: ProofLayout,
    start: int,
    ciphertexts: list[int],
    proof: bytes,
    context: bytes,
) -> ChunkVerdict:
    """Worker entry of :func:`do_verify_chunk`: the base comes from the per-process cache."""
    return do_verify_chunk(cached_report_base(n), layout, start, ciphertexts, proof, context)


def do_decrypt(private_key: PrivateKey, values: list[int]) -> list[int]:
    """Decrypt a chunk of ciphertext values (taken from Ciphertext objects) with the key."""
    public_key = private_key.public_key
    return [private_key.decrypt(Ciphertext(public_key, c)) for c in values]


def job_decrypt(n: int, p: int, q: int, values: list[int]) -> list[int]:
    """Worker form of :func:`do_decrypt`: the key by n, p, q, from the cache."""
    return do_decrypt(cached_private_key(n, p, q), values)


def do_partial_decrypt(share: KeyShare, values: list[int]) -> list[PartialFields]:
    """Partially decrypt a chunk with proofs (``KeyShare.partial_decrypt``), as plain fields."""
    public_key = share.public.public_key
    out = []
    for c in values:
        partial = share.partial_decrypt(Ciphertext(public_key, c))
        out.append((partial.index, partial.value, partial.challenge, partial.response))
    return out


def do_combine(
    public: ThresholdPublicKey, groups: list[tuple[int, list[PartialFields]]], verify: bool
) -> list[int]:
    """Combine each (ciphertext, partials) group with ``threshold.combine``."""
    public_key = public.public_key
    out = []
    for c, fields in groups:
        ciphertext = Ciphertext(public_key, c)
        partials = [PartialDecryption(i, ciphertext, v, e, z) for i, v, e, z in fields]
        out.append(threshold.combine(public, partials, verify=verify))
    return out


def trusted_ciphertexts(public_key: PublicKey, values: list[int]) -> list[Ciphertext]:
    """Wrap values taken from Ciphertext objects in the calling process (valid by construction)."""
    return [raw_ciphertext(public_key, mpz(c)) for c in values]


def do_partial_values(share: KeyShare, values: list[int]) -> list[int]:
    """Return the share's unproved partial values of a chunk (``KeyShare.raw_partial_values``)."""
    return share.raw_partial_values(trusted_ciphertexts(share.public.public_key, values))


def do_batch_failure(
    public: ThresholdPublicKey, values: list[int], batch: BatchPartialDecryption
) -> str | None:
    """Return None if the batch verifies, else the failure detail ("" = the proof)."""
    try:
        threshold.verify_batch(public, trusted_ciphertexts(public.public_key, values), batch)
    except InvalidPartialDecryptionError as exc:
        return exc.detail
    return None


def do_combine_columns(
    public: ThresholdPublicKey, values: list[int], columns: list[tuple[int, tuple[int, ...]]]
) -> list[int]:
    """Combine already verified partial values of a slice of the ciphertexts."""
    # The slices carry no proof; they were verified whole (or verify=False was asked for).
    batches = [BatchPartialDecryption(index, part, 0, 0) for index, part in columns]
    cts = trusted_ciphertexts(public.public_key, values)
    return threshold.combine_batch(public, cts, batches, verify=False)


__all__ = [
    "cached_private_key",
    "cached_public_key",
    "do_batch_failure",
    "do_column_products",
    "do_combine",
    "do_combine_columns",
    "do_decrypt",
    "do_encrypt",
    "do_encrypt_slots",
    "do_partial_decrypt",
    "do_partial_values",
    "do_product",
    "do_text_products",
    "init_worker",
    "job_decrypt",
    "job_encrypt",
    "job_encrypt_slots",
    "not_coprime_error",
    "ping",
    "trusted_ciphertexts",
]

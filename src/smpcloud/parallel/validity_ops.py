"""Report validity proofs on a worker pool: prove and verify a report's ciphertexts in chunks.

Each ciphertext of a report has its own Fiat-Shamir challenge
(:mod:`smpcloud.crypto.validity`, where what is proved, the assumptions and what is revealed
are stated), so a report is cut into chunks of whole ciphertexts, each proved or verified on a
worker with the key's :class:`~smpcloud.crypto.validity.ReportBase` from the worker's cache
(built once per worker and key); the calling process uses the base it is given (an inline
pool). A pool with processes takes every report, even a one-piece one, so that a server's
request threads verify many short reports at once. :class:`smpcloud.parallel.CryptoPool`
offers these as methods (``pool.prove_report``, ``pool.verify_report``).

Reveals nothing beyond the proofs themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final, TypeVar

from smpcloud.crypto.validity import ProofLayout, ReportBase
from smpcloud.errors import InvalidInputError, InvalidProofError
from smpcloud.parallel.chunks import spans
from smpcloud.parallel.jobs import (
    do_prove_chunk,
    do_verify_chunk,
    job_prove_chunk,
    job_verify_chunk,
)
from smpcloud.parallel.pool import WorkerPool

_T = TypeVar("_T")

#: Reports of fewer values than this are proved or verified in one piece (on one worker, or
#: inline for an inline pool).
MIN_PARALLEL_VALUES: Final = 16
#: The fewest values a worker's chunk holds (~10 ms of work each at 2048 bits).
_MIN_CHUNK_VALUES: Final = 8


def _pieces(pool: WorkerPool, layout: ProofLayout) -> list[tuple[int, int]]:
    if pool.inline or layout.length < MIN_PARALLEL_VALUES:
        return [(0, layout.ciphertexts)]
    minimum = max(1, _MIN_CHUNK_VALUES // layout.slots)
    return spans(layout.ciphertexts, pool.parts, minimum)


def _run(
    pool: WorkerPool,
    inline: Callable[..., _T],
    job: Callable[..., _T],
    calls: Sequence[tuple[tuple[object, ...], tuple[object, ...]]],
) -> list[_T]:
    """Run the calls inline (an inline pool) or on the workers, even a single call.

    A pool with processes takes even a one-piece report: the server verifies many clients'
    short reports at once from its request threads, and each on a worker frees the GIL.
    """
    if pool.inline:
        return [inline(*args) for args, _ in calls]
    return pool.stream(job, (args for _, args in calls))


def prove_report(
    pool: WorkerPool,
    base: ReportBase,
    layout: ProofLayout,
    values: Sequence[int],
    context: bytes,
) -> tuple[list[int], bytes]:
    """Encrypt a report's values and prove each in [0, U], in chunks on the workers.

    Same result as :func:`smpcloud.crypto.validity.prove_report`.

    Args:
        pool: the worker pool (``self`` of the CryptoPool method).
        base: the key's report base (used in the calling process).
        layout: the report's layout.
        values: ``layout.length`` values in [0, U], as ints.
        context: the proof's context bytes.

    Returns:
        The ciphertexts (ints) and the proof (bytes).

    Raises:
        InvalidInputError: not ``layout.length`` values.
        OverflowDetectedError: a value outside [0, U].
    """
    items = [int(v) for v in values]
    if len(items) != layout.length:
        raise InvalidInputError(f"{len(items)} values; the layout declares {layout.length}")
    calls = []
    for a, b in _pieces(pool, layout):
        piece = items[a * layout.slots : min(b * layout.slots, layout.length)]
        calls.append(((base, layout, a, piece, context), (int(base.n), layout, a, piece, context)))
    results = _run(pool, do_prove_chunk, job_prove_chunk, calls)
    ciphertexts: list[int] = []
    for chunk, _ in results:
        ciphertexts.extend(chunk)
    return ciphertexts, b"".join(proof for _, proof in results)


def verify_report(
    pool: WorkerPool,
    base: ReportBase,
    layout: ProofLayout,
    ciphertexts: Sequence[int],
    proof: bytes,
    context: bytes,
) -> None:
    """Verify a report's validity proof in chunks on the workers.

    Same verdict as :func:`smpcloud.crypto.validity.verify_report`; the number of ciphertexts
    and the proof's length are checked first, in the calling process. When several chunks
    fail, the error of the first failing chunk is raised.

    Args:
        pool: the worker pool (``self`` of the CryptoPool method).
        base: the key's report base (used in the calling process).
        layout: the report's layout.
        ciphertexts: the report's ciphertexts (ints in [1, n^2)).
        proof: the report's proof.
        context: the context bytes the prover must have used.

    Raises:
        InvalidProofError: the proof does not verify (its ``check`` names the failed check).
        MalformedCiphertextError: a ciphertext outside [1, n^2).
    """
    if len(ciphertexts) != layout.ciphertexts:
        raise InvalidProofError(
            f"{len(ciphertexts)} ciphertexts; the layout takes {layout.ciphertexts}",
            check="length",
        )
    total = layout.proof_bytes(base.bits)
    if len(proof) != total:
        raise InvalidProofError(
            f"the proof has {len(proof)} bytes; this layout and key take exactly {total}",
            check="length",
        )
    items = [int(c) for c in ciphertexts]
    calls = []
    for a, b in _pieces(pool, layout):
        piece = proof[layout.proof_offset(base.bits, a) : layout.proof_offset(base.bits, b)]
        args = (layout, a, items[a:b], piece, context)
        calls.append(((base, *args), (int(base.n), *args)))
    for verdict in _run(pool, do_verify_chunk, job_verify_chunk, calls):
        if verdict is not None:
            message, check = verdict
            raise InvalidProofError(message, check=check)


__all__ = ["MIN_PARALLEL_VALUES", "prove_report", "verify_report"]

"""The validity check of a Paillier task's reports: no report enters the aggregate unproved.

A task created with ``validity="range"`` takes only reports whose proof
(:mod:`smpcloud.crypto.validity`) shows that every value each ciphertext carries lies in the
task's declared range; the proof is verified on the worker pool before anything is stored or a
receipt signed, and a report that fails is refused (422 ``invalid-proof``, with the failed
check's name; :class:`~smpcloud.service.tasks.TaskService` counts the refusal by its problem
type). So no client can shift a sum beyond what an in-range value can, and no client can make
a packed task's sums leave their slots (such a task can no longer be ``withheld``). A client
lying *within* its range is never detected.

A task created with ``validity="none"`` checks nothing, and refuses a report that carries a
proof (check ``unexpected``), so that nobody believes a proof was checked.

At creation, a ``range`` task's declared range must be narrow enough to prove (span below
2^72 encoded values; the message says to narrow it).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select

from smpcloud.crypto.packing_layout import Packing
from smpcloud.crypto.validity import ProofLayout
from smpcloud.errors import InvalidProofError
from smpcloud.parallel import CryptoPool
from smpcloud.parallel.jobs import cached_report_base
from smpcloud.protocol.report_proofs import (
    decode_proof,
    proof_context,
    proof_layout,
)
from smpcloud.protocol.schemas import ReportIn, TaskIn
from smpcloud.protocol.task_encoding import TaskEncoding
from smpcloud.service.db import ClientRow
from smpcloud.service.schemes.base import SchemeContext
from smpcloud.service.schemes.paillier.meta import PaillierMeta


def creation_layout(
    body: TaskIn, encoding: TaskEncoding, packing: Packing | None
) -> ProofLayout | None:
    """Return the proof layout of a task being created (None for a ``none`` task).

    Raises:
        InvalidInputError: a ``range`` task whose declared range is too wide to prove, or
            holds a single value.
    """
    if body.validity != "range":
        return None
    return proof_layout(encoding, body.length, packing)


class ReportValidity:
    """Verifies the validity proofs of a Paillier task's reports (see the module docstring)."""

    def __init__(self, context: SchemeContext) -> None:
        self.context = context

    def check(
        self, meta: PaillierMeta, client_id: int, ciphertexts: Sequence[int], body: ReportIn
    ) -> None:
        """Verify the report's proof, or refuse a proof on a task that checks none.

        Args:
            meta: the task.
            client_id: the reporting client (its token digest is in the proof's context).
            ciphertexts: the report's ciphertexts, already validated (in [1, n^2), units).
            body: the report.

        Raises:
            InvalidProofError: a ``range`` task's report without a proof (``missing``), with
                a proof that is not base64url (``encoding``) or that does not verify (the
                check that failed); a ``none`` task's report with a proof (``unexpected``).
        """
        if meta.validity != "range":
            if body.proof is not None:
                raise InvalidProofError(
                    f"task {meta.task_id!r} does not check validity proofs (validity 'none'): "
                    "a report with a proof is refused so that nobody believes it was checked",
                    check="unexpected",
                )
            return
        proof = decode_proof(body.proof)
        layout = proof_layout(meta.encoding, meta.length, meta.packing)
        with self.context.storage.read() as session:
            digest = session.scalar(select(ClientRow.token_hash).where(ClientRow.id == client_id))
        if digest is None:  # pragma: no cover - the client was just authenticated
            raise InvalidProofError("unknown client", check="context")
        context = proof_context(meta.task_id, digest, meta.public.fingerprint())
        base = cached_report_base(meta.public.public_key.n)

        def verify(pool: CryptoPool) -> None:
            pool.verify_report(base, layout, ciphertexts, proof, context)

        self.context.workers.run(verify)


__all__ = ["ReportValidity", "creation_layout"]

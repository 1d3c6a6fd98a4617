"""Threshold decryption of a Paillier task's aggregate, and its result.

Each key holder i fetches the aggregate and uploads c_i, its partial decryption with a proof;
the server verifies every proof and, with t valid uploads, combines them into the sums, stores
the result and releases the sum, count and average per element.

**Attestations.** A key holder's upload may carry its signature over the log and aggregate it
checked (:mod:`smpcloud.protocol.receipts`); the server stores it with the partials (it cannot
check it: it does not know the holders' keys) and publishes it with the result, next to the
log's count and root and the aggregate's digest, for clients that pin the holders' roster.

**Batched partial decryptions.** A key holder uploads either one partial decryption with its
own proof per aggregate ciphertext, or one batch with ONE proof for all of them
(:meth:`~smpcloud.crypto.threshold.KeyShare.partial_decrypt_batch`; the proof is checked, outside
the write lock, by :func:`~smpcloud.crypto.threshold.verify_batch`). The first accepted upload
fixes the form for the task's other holders.

A packed task's combined plaintexts are unpacked and checked slot by slot
(:mod:`smpcloud.service.schemes.paillier.packed`); a slot out of bounds withholds the result
for good.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from smpcloud.crypto import threshold
from smpcloud.crypto.paillier import Ciphertext
from smpcloud.crypto.signatures import signature_from_text
from smpcloud.errors import InvalidInputError, OverflowDetectedError, ThresholdNotMetError
from smpcloud.parallel import CryptoPool
from smpcloud.protocol.problems import (
    ConflictError,
    DuplicateSubmissionError,
    NotFoundError,
    TaskStateError,
)
from smpcloud.protocol.schemas import PartialsAcceptedOut, PartialsForm, PartialsIn, ResultOut
from smpcloud.service.db import AttestationRow, PartialRow, ResultRow, TaskRow
from smpcloud.service.schemes.base import SchemeContext
from smpcloud.service.schemes.paillier.aggregation import PaillierAggregation, insufficient_error
from smpcloud.service.schemes.paillier.log import ReportLog
from smpcloud.service.schemes.paillier.meta import PaillierMeta
from smpcloud.service.schemes.paillier.packed import unpack_checked, withheld_error

logger = logging.getLogger("smpcloud.service")


def form_of(partials_json: str) -> PartialsForm:
    """The form of a stored key holder's upload: a JSON object is a batch, a list is not."""
    return "batch" if partials_json.lstrip().startswith("{") else "partials"


def stored_form(session: Session, task_id: str) -> PartialsForm | None:
    """The form of the task's accepted uploads (None before the first one)."""
    first = session.scalar(
        select(func.substr(PartialRow.partials_json, 1, 1))
        .where(PartialRow.task_id == task_id)
        .limit(1)
    )
    return None if first is None else form_of(first)


def _duplicate_partial(holder: int) -> DuplicateSubmissionError:
    return DuplicateSubmissionError(
        f"key holder {holder} has already submitted its partial decryptions"
    )


def _has_partial(session: Session, task_id: str, holder: int) -> bool:
    """Whether key holder ``holder`` has an accepted upload for the task."""
    found = session.scalar(
        select(PartialRow.id).where(
            PartialRow.task_id == task_id, PartialRow.holder_index == holder
        )
    )
    return found is not None


def _add_partial(
    session: Session,
    task_id: str,
    holder: int,
    payload: str,
    now: datetime,
    attestation: str | None = None,
) -> None:
    """Add key holder ``holder``'s verified upload (JSON), and its attestation, to the session."""
    session.add(
        PartialRow(task_id=task_id, holder_index=holder, partials_json=payload, received_at=now)
    )
    if attestation is not None:
        session.add(
            AttestationRow(
                task_id=task_id, holder_index=holder, signature=attestation, received_at=now
            )
        )


def _check_decryptable(task: TaskRow) -> None:
    if task.state == "withheld":
        raise withheld_error(task.id)
    if task.state == "open":
        raise TaskStateError(f"task {task.id!r} is still open: nothing to decrypt until it closes")
    if task.state == "insufficient":
        raise insufficient_error(task)
    if task.state == "decrypted":
        raise TaskStateError(
            f"task {task.id!r} is already decrypted: its result has been published"
        )


def _check_form(session: Session, task_id: str, form: PartialsForm) -> None:
    """Refuse an upload in another form than the task's first accepted one (409)."""
    fixed = stored_form(session, task_id)
    if fixed is not None and fixed != form:
        described = {
            "batch": "as one batch with one proof (field 'batch')",
            "partials": "one partial decryption per ciphertext (field 'partials')",
        }
        raise ConflictError(
            f"the key holders of task {task_id!r} upload {described[fixed]}: the first "
            f"accepted upload used that form, and all of them must use the same one; this "
            f"upload is {described[form]}"
        )


def _verified_partials(
    meta: PaillierMeta, holder: int, aggregate: list[Ciphertext], items: list[dict[str, Any]]
) -> str:
    """Parse and verify per-ciphertext partial decryptions; return the JSON to store.

    Raises:
        InvalidInputError: wrong number, malformed objects, another holder's index.
        InvalidPartialDecryptionError: a proof failed (names the holder).
    """
    if len(items) != meta.ciphertexts:
        packed = " (ciphertexts of its packed aggregate)" if meta.packing is not None else ""
        raise InvalidInputError(
            f"{len(items)} partial decryptions; this task has {meta.ciphertexts} elements{packed}"
        )
    partials = []
    for i, (item, ciphertext) in enumerate(zip(items, aggregate, strict=True)):
        try:
            partial = threshold.partial_from_json(meta.public, ciphertext, item)
        except InvalidInputError as exc:
            raise type(exc)(f"partials[{i}]: {exc}") from None
        if partial.index != holder:
            raise InvalidInputError(
                f"partials[{i}] claims key holder {partial.index}, but the token belongs to "
                f"key holder {holder}"
            )
        partials.append(partial)
    bad = [i for i, p in enumerate(partials) if not threshold.verify_partial(meta.public, p)]
    if bad:
        logger.warning(
            "rejected partial decryptions from key holder %d of task %s: proof failed "
            "for %d of %d elements",
            holder,
            meta.task_id,
            len(bad),
            len(partials),
        )
        shown = ", ".join(map(str, bad[:10])) + (", ..." if len(bad) > 10 else "")
        raise threshold.InvalidPartialDecryptionError([holder], f"element(s) {shown}")
    return json.dumps([threshold.partial_to_json(p) for p in partials])


def _verified_batch(
    meta: PaillierMeta, holder: int, aggregate: list[Ciphertext], data: dict[str, Any]
) -> str:
    """Parse and verify a batched partial decryption; return the JSON to store.

    One proof check for all ciphertexts (:func:`smpcloud.crypto.threshold.verify_batch`:
    ~0.2 s for 1,177 ciphertexts at 2048 bits), in the calling worker thread.

    Raises:
        InvalidInputError: a malformed batch, another number of values than the aggregate
            has ciphertexts, or another holder's index.
        InvalidPartialDecryptionError: the proof failed (names the holder).
    """
    try:
        batch = threshold.BatchPartialDecryption.from_json(
            meta.public, data, count=meta.ciphertexts
        )
    except InvalidInputError as exc:
        raise type(exc)(f"batch: {exc}") from None
    if batch.index != holder:
        raise InvalidInputError(
            f"the batch claims key holder {batch.index}, but the token belongs to key "
            f"holder {holder}"
        )
    try:
        threshold.verify_batch(meta.public, aggregate, batch)
    except threshold.InvalidPartialDecryptionError as exc:
        logger.warning(
            "rejected the batched partial decryption of key holder %d of task %s "
            "(%d ciphertexts): %s",
            holder,
            meta.task_id,
            meta.ciphertexts,
            exc.detail or "proof failed",
        )
        raise
    return json.dumps(batch.to_json())


class PaillierDecryption:
    """Takes key holders' partial decryptions, combines t of them, serves the result.

    Args:
        context: what the service hands its schemes.
        aggregation: the scheme's aggregation (the aggregate the partials decrypt).
        log: the scheme's report log (the result names the log its aggregate was checked
            against, with the key holders' attestations).
    """

    def __init__(
        self, context: SchemeContext, aggregation: PaillierAggregation, log: ReportLog
    ) -> None:
        self._ctx = context
        self._aggregation = aggregation
        self._log = log

    def submit_partials(
        self, meta: PaillierMeta, holder: int, body: PartialsIn
    ) -> PartialsAcceptedOut:
        """Verify a key holder's partial decryptions; with t valid ones, decrypt the result.

        Two forms (see :class:`~smpcloud.protocol.schemas.PartialsIn`): one partial decryption
        with its own proof per aggregate ciphertext, or one batch with ONE proof for all of
        them. The first accepted upload of a task fixes the form for its other key holders.
        Proofs are verified before the write transaction (they are the expensive part), so a
        slow verification never holds the database's write lock. The t-th upload combines the
        first t (by holder index) inside the write transaction, on the worker pool: about
        0.3 s for the packed reference case (1,177 ciphertexts at 2048 bits, t = 3, unpacking
        10^5 sums included).

        Raises:
            TaskStateError: the task is open or already decrypted.
            InsufficientReportsError: the task closed with too few reports.
            DuplicateSubmissionError: this holder already contributed.
            ConflictError: the other form than the task's first accepted upload.
            InvalidInputError: wrong number of partials, malformed objects, a holder index
                other than the token's, or a malformed attestation (not a 64-byte signature).
            InvalidPartialDecryptionError: a proof failed (names the holder).
            OverflowDetectedError: a packed task's combined sums leave the layout's bounds
                (on a ``none`` task, some client forged its report; on a ``range`` task no
                client can cause it, every report being proven in range): nothing is
                released, this upload is stored and the task's state becomes ``withheld``
                for good.
            TaskStateError: also for a task already ``withheld``.
        """
        task_id = meta.task_id
        storage = self._ctx.storage
        form = body.form
        if body.attestation is not None:
            # Its statement is the holder's business (clients check it against the roster
            # they pin); the server keeps only well-formed signatures.
            signature_from_text(body.attestation, "attestation")
        with storage.read() as session:
            task = session.get(TaskRow, task_id)
            if task is None:
                raise NotFoundError(f"no task {task_id!r}")
            _check_decryptable(task)
            if _has_partial(session, task_id, holder):
                raise _duplicate_partial(holder)
            _check_form(session, task_id, form)
        task, row = self._aggregation.read_aggregate(meta)
        if row is None:  # pragma: no cover - closed tasks get their aggregate above
            raise insufficient_error(task)
        aggregate = meta.split(row.ciphertexts)
        started = time.perf_counter()
        if body.batch is not None:
            payload = _verified_batch(meta, holder, aggregate, body.batch)
        else:
            payload = _verified_partials(meta, holder, aggregate, body.partials or [])
        verified = time.perf_counter() - started
        now = self._ctx.clock()
        try:
            with storage.write() as session:
                task = storage.lock_task(session, task_id)
                _check_decryptable(task)
                if _has_partial(session, task_id, holder):
                    raise _duplicate_partial(holder)
                _check_form(session, task_id, form)
                _add_partial(session, task_id, holder, payload, now, body.attestation)
                session.flush()
                received = session.scalar(
                    select(func.count())
                    .select_from(PartialRow)
                    .where(PartialRow.task_id == task_id)
                )
                received = received or 0
                decrypted = received >= meta.public.threshold
                if decrypted:
                    self._decrypt_locked(session, task, meta, aggregate, now)
        except IntegrityError:
            raise _duplicate_partial(holder) from None
        except OverflowDetectedError:
            if meta.packing is not None:  # only unpacking the sums raises it
                self._withhold(task_id, holder, payload, now)
            raise
        logger.info(
            "accepted %s from key holder %d of task %s (%d of %d; verified in %.3f s)",
            "a batched partial decryption" if form == "batch" else "partial decryptions",
            holder,
            task_id,
            received,
            meta.public.threshold,
            verified,
        )
        return PartialsAcceptedOut(
            task_id=task_id,
            holder=holder,
            partials_received=received,
            threshold=meta.public.threshold,
            decrypted=decrypted,
        )

    def _withhold(self, task_id: str, holder: int, payload: str, now: datetime) -> None:
        """Mark a closed packed task ``withheld`` for good, storing the t-th holder's upload.

        Called after the transaction whose combination overflowed rolled back. Every later
        request sees the state: no result is ever released, no further upload is taken.
        Idempotent (two holders may race to be the t-th).
        """
        storage = self._ctx.storage
        with storage.write() as session:
            task = storage.lock_task(session, task_id)
            if task.state != "closed":
                return
            if not _has_partial(session, task_id, holder):
                _add_partial(session, task_id, holder, payload, now)
            task.state = "withheld"

    def _decrypt_locked(
        self,
        session: Session,
        task: TaskRow,
        meta: PaillierMeta,
        aggregate: list[Ciphertext],
        now: datetime,
    ) -> None:
        """Combine the first t stored (already verified) uploads; store the result.

        For a packed task the plaintexts are unpacked into one sum per value, each slot
        checked against the layout's bounds.

        Raises:
            OverflowDetectedError: a packed task's sums leave the layout's bounds; nothing is
                stored (the caller's transaction rolls back).
        """
        started = time.perf_counter()
        rows = session.scalars(
            select(PartialRow)
            .where(PartialRow.task_id == task.id)
            .order_by(PartialRow.holder_index)
            .limit(meta.public.threshold)
        ).all()
        uploads = [json.loads(row.partials_json) for row in rows]
        plaintexts: list[int]
        if all(isinstance(upload, dict) for upload in uploads):
            batches = [
                threshold.BatchPartialDecryption.from_json(
                    meta.public, upload, count=meta.ciphertexts
                )
                for upload in uploads
            ]
            plaintexts = self._ctx.workers.run(
                functools.partial(
                    CryptoPool.combine_batch,
                    public=meta.public,
                    ciphertexts=aggregate,
                    batches=batches,
                    verify=False,
                )
            )
        else:
            groups = [
                [
                    threshold.partial_from_json(meta.public, ciphertext, items[i])
                    for items in uploads
                ]
                for i, ciphertext in enumerate(aggregate)
            ]
            plaintexts = self._ctx.workers.run(
                functools.partial(
                    CryptoPool.combine_many, public=meta.public, partials=groups, verify=False
                )
            )
        count = task.report_count or 0
        sums = plaintexts
        if meta.packing is not None:
            sums = unpack_checked(task.id, plaintexts, meta.packing, count, meta.validity)
        session.add(
            ResultRow(
                task_id=task.id,
                sums_json=json.dumps([str(s) for s in sums]),
                count=count,
                holders_json=json.dumps([row.holder_index for row in rows]),
                computed_at=now,
            )
        )
        task.state = "decrypted"
        logger.info(
            "task %s decrypted: result released (count %d, %d values; combined in %.3f s)",
            task.id,
            count,
            len(sums),
            time.perf_counter() - started,
        )

    # ------------------------------------------------------------------ result

    def result(self, meta: PaillierMeta) -> ResultOut:
        """Return the released sum, count and average per element.

        Raises:
            TaskStateError: still open; or a packed task whose result is withheld (its sums
                left the layout's bounds: a forged report).
            InsufficientReportsError: closed with too few reports (never any result).
            ThresholdNotMetError: closed, but fewer than t partial decryptions so far
                ("k of t partial decryptions received").
        """
        task_id = meta.task_id
        with self._ctx.storage.read() as session:
            task = session.get(TaskRow, task_id)
            if task is None:
                raise NotFoundError(f"no task {task_id!r}")
            row = session.get(ResultRow, task_id)
            if task.state == "insufficient":
                raise insufficient_error(task)
            if task.state == "withheld":
                raise withheld_error(task.id)
            if task.state in ("open", "closed") or row is None:
                received = session.scalar(
                    select(func.count())
                    .select_from(PartialRow)
                    .where(PartialRow.task_id == task_id)
                )
                t = meta.public.threshold
                if task.state == "open":
                    raise TaskStateError(
                        f"task {task_id!r} is still open; the result needs it closed and "
                        f"{t} partial decryptions (0 of {t} partial decryptions received)"
                    )
                raise ThresholdNotMetError(
                    f"{received or 0} of {t} partial decryptions received; the result is "
                    f"released when {t} valid ones are in"
                )
            log, attestations = self._log.summary(session, meta)
        # A forged report can make a sum anything mod n: from_sums flags what is out of the
        # declared range instead of failing on it, so the result stays readable.
        return ResultOut.from_sums(
            task_id=task_id,
            count=row.count,
            encoded_sums=[int(s) for s in json.loads(row.sums_json)],
            holders=json.loads(row.holders_json),
            encoding=meta.encoding,
            log=log,
            attestations=attestations,
        )


__all__ = ["PaillierDecryption", "form_of", "stored_form"]

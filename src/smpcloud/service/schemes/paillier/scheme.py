"""The Paillier scheme of the service: one server, a threshold key, t of n key holders.

Task creation (the key's and the layout's checks), what a report is (one fixed-width
ciphertext per element, or per packed ciphertext), the task's views; closing and the aggregate
are in :mod:`~smpcloud.service.schemes.paillier.aggregation`, threshold decryption and the
result in :mod:`~smpcloud.service.schemes.paillier.decryption`, what differs for a packed task
in :mod:`~smpcloud.service.schemes.paillier.packed`.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import datetime
from typing import ClassVar, Final, Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from smpcloud.crypto import threshold
from smpcloud.crypto.packing import Packing
from smpcloud.crypto.validity import ProofLayout
from smpcloud.crypto.wire import decode_int
from smpcloud.errors import (
    InvalidInputError,
    KeyMismatchError,
    MalformedCiphertextError,
    SmpcError,
)
from smpcloud.protocol.problems import TaskStateError
from smpcloud.protocol.schemas import (
    MAX_HOLDERS,
    AggregateOut,
    InclusionProofOut,
    PartialsAcceptedOut,
    PartialsIn,
    ReportAcceptedOut,
    ReportIn,
    ReportLogOut,
    ReportPageOut,
    ResultOut,
    TaskCreatedOut,
    TaskIn,
    TaskInfoOut,
)
from smpcloud.service.auth import HOLDER_TOKEN_PREFIX, hash_token, new_token
from smpcloud.service.db import (
    ClientRow,
    HolderRow,
    PackedTaskRow,
    PaillierTaskRow,
    PartialRow,
    ReportRow,
    TaskRow,
)
from smpcloud.service.schemes.base import (
    CloseReason,
    Scheme,
    SchemeContext,
    SchemeStatus,
    check_deadline,
    check_length,
    new_task_id,
    new_task_row,
)
from smpcloud.service.schemes.paillier.aggregation import PaillierAggregation
from smpcloud.service.schemes.paillier.decryption import PaillierDecryption, stored_form
from smpcloud.service.schemes.paillier.log import ReportLog
from smpcloud.service.schemes.paillier.meta import PaillierMeta, load_paillier_meta
from smpcloud.service.schemes.paillier.packed import (
    check_packed_length,
    check_packing,
    implied_encoding,
)
from smpcloud.service.schemes.paillier.validity import ReportValidity, creation_layout

logger = logging.getLogger("smpcloud.service")

# JSON overhead of one partial decryption object besides its three integers (kind, names...).
_PARTIAL_JSON_OVERHEAD: Final = 160


def _b64_chars(nbytes: int) -> int:
    return -(-4 * nbytes // 3)


class PaillierScheme(Scheme[PaillierMeta]):
    """Threshold Paillier tasks, packed or not (see :mod:`smpcloud.service.schemes.paillier`)."""

    name: ClassVar[Literal["paillier"]] = "paillier"
    closes_at_deadline: ClassVar[bool] = True

    def __init__(self, context: SchemeContext) -> None:
        super().__init__(context)
        self._log = ReportLog(context)
        self._aggregation = PaillierAggregation(context, self._log)
        self._decryption = PaillierDecryption(context, self._aggregation, self._log)
        self._validity = ReportValidity(context)

    def load_meta(self, session: Session, task: TaskRow) -> PaillierMeta:
        """Read the task's key and layout (see :func:`load_paillier_meta`)."""
        return load_paillier_meta(session, task)

    # ------------------------------------------------------------------ creation

    def create(self, body: TaskIn) -> TaskCreatedOut:
        """Validate and store a new task; return its id and the key holders' tokens.

        A packed task (``body.packing``) is checked by
        :func:`~smpcloud.service.schemes.paillier.packed.check_packing`.

        Raises:
            InvalidInputError: a malformed or insecure key, a declared range that could make
                sums wrap modulo n, a vector too long for the server's limits, a past deadline,
                a packing layout that is malformed or does not fit the task; for a ``range``
                task, a declared range too wide to prove, or reports that with their proofs
                would exceed the body limit.
        """
        settings = self.context.settings
        try:
            public = threshold.public_key_from_json(
                body.public_key, insecure=settings.allow_insecure_keys
            )
        except SmpcError:
            raise
        except (TypeError, ValueError, OverflowError):
            raise InvalidInputError("public_key: not a valid threshold public key") from None
        if public.holders > MAX_HOLDERS:
            raise InvalidInputError(
                f"public_key: {public.holders} key holders; this server accepts at most "
                f"{MAX_HOLDERS}"
            )
        packing: Packing | None = None
        if body.packing is not None:
            packing = check_packing(body, public)
            encoding = implied_encoding(packing)
            check_packed_length(settings, packing.ciphertexts)
            self._check_body_budget(public, packing.ciphertexts, packed=True)
            self._check_proof_budget(
                public, packing.ciphertexts, creation_layout(body, encoding, packing)
            )
        else:
            check_length(settings, body.length)
            self._check_body_budget(public, body.length)
            encoding = body.encoding
            self._check_proof_budget(public, body.length, creation_layout(body, encoding, None))
            reach = body.max_clients * encoding.max_abs_encoded()
            if reach > public.public_key.max_int:
                raise InvalidInputError(
                    f"the declared range [{encoding.min_value}, {encoding.max_value}] with "
                    f"frac_bits={encoding.frac_bits} and max_clients={body.max_clients} allows "
                    f"sums up to 2^{reach.bit_length()}, beyond n/2 = "
                    f"2^{public.n.bit_length() - 1} of this key: narrow the range, lower "
                    "max_clients, use a larger key, or pack the values (packing)"
                )
        now = self.context.clock()
        check_deadline(body, now)
        task_id = new_task_id()
        holder_tokens = [new_token(HOLDER_TOKEN_PREFIX) for _ in range(public.holders)]
        with self.context.storage.write() as session:
            session.add(new_task_row(task_id, body, self.name, encoding, now))
            session.flush()
            session.add(
                PaillierTaskRow(
                    task_id=task_id,
                    public_key_json=json.dumps(threshold.public_key_to_json(public)),
                    key_fingerprint=public.fingerprint(),
                    holders=public.holders,
                    threshold=public.threshold,
                )
            )
            session.add_all(
                HolderRow(task_id=task_id, holder_index=i, token_hash=hash_token(token))
                for i, token in enumerate(holder_tokens, start=1)
            )
            if packing is not None:
                session.add(
                    PackedTaskRow(task_id=task_id, packing_json=json.dumps(packing.to_json()))
                )
        logger.info(
            "created task %s: %d-of-%d %d-bit key, length %d%s, min_clients %d",
            task_id,
            public.threshold,
            public.holders,
            public.n.bit_length(),
            body.length,
            f" packed in {packing.ciphertexts} ciphertexts" if packing is not None else "",
            body.min_clients,
        )
        return TaskCreatedOut(task_id=task_id, holder_tokens=holder_tokens)

    def _check_body_budget(
        self, public: threshold.ThresholdPublicKey, ciphertexts: int, *, packed: bool = False
    ) -> None:
        """Refuse a task whose uploads could not fit in the body limit.

        An unpacked task must fit a key holder's per-ciphertext partial decryptions (the
        largest upload). A packed task must fit a client's report and a key holder's batch
        (both about one base64url ciphertext per aggregate ciphertext); its holders use the
        batch form when the per-ciphertext form would not fit (the SDK does by default).
        """
        nsq_bytes = (public.public_key.n_squared.bit_length() + 7) // 8
        if packed:
            per_element = _b64_chars(nsq_bytes) + 3
            who = "each client's report and key holder's batch"
        else:
            delta_bits = public.delta.bit_length()
            response_bytes = (nsq_bytes * 8 + delta_bits + 384 + 7) // 8 + 1
            per_element = (
                _b64_chars(nsq_bytes)
                + _b64_chars(threshold.CHALLENGE_BITS // 8)
                + _b64_chars(response_bytes)
                + _PARTIAL_JSON_OVERHEAD
            )
            who = "each key holder's upload"
        needed = ciphertexts * per_element + 2048
        if needed > self.context.settings.max_body_bytes:
            raise InvalidInputError(
                f"{ciphertexts} ciphertexts per report: {who} would take about {needed} bytes, "
                f"more than this server's body limit of {self.context.settings.max_body_bytes}"
            )

    def _check_proof_budget(
        self, public: threshold.ThresholdPublicKey, ciphertexts: int, layout: ProofLayout | None
    ) -> None:
        """Refuse a ``range`` task whose reports with their proofs would exceed the body limit."""
        if layout is None:
            return
        bits = public.n.bit_length()
        nsq_bytes = (public.public_key.n_squared.bit_length() + 7) // 8
        needed = (
            ciphertexts * (_b64_chars(nsq_bytes) + 3) + _b64_chars(layout.proof_bytes(bits)) + 2048
        )
        limit = self.context.settings.max_body_bytes
        if needed > limit:
            raise InvalidInputError(
                f"each client's report with its validity proof would take about {needed} "
                f"bytes ({layout.length} values of {layout.bits} bits each), more than this "
                f"server's body limit of {limit}: shorten the vector, narrow the range or use "
                "fewer fractional bits, or raise the server's --max-body-bytes"
            )

    def number_clients(
        self, session: Session, task_id: str, rows: list[ClientRow], registered: int
    ) -> list[int]:
        """A Paillier task's clients are named by their row ids (unique on the server)."""
        return [row.id for row in rows]

    # ------------------------------------------------------------------ collection

    def accept_report(
        self, meta: PaillierMeta, client_id: int, body: ReportIn
    ) -> ReportAcceptedOut:
        """Validate a client's ciphertexts and store them durably, once; sign a receipt.

        The receipt (:meth:`ReportLog.receipt`) is signed before the report enters the group
        commit (outside the write lock) and returned only once the report is committed.

        A ``range`` task's report must carry a validity proof that verifies
        (:class:`~smpcloud.service.schemes.paillier.validity.ReportValidity`), checked after the
        ciphertexts' own checks and before anything is stored or signed.

        Raises:
            KeyMismatchError: the report names another key.
            InvalidProofError: a ``range`` task's report without a valid proof, or a ``none``
                task's report with a proof (``check`` names the failed check).
            InvalidInputError: wrong number of ciphertexts; a Shamir share.
            MalformedCiphertextError: a ciphertext that is not canonical base64url, or not in
                [1, n^2), or not coprime to n (the message names the element).
            TaskStateError: the task is closed (by the admin or its deadline).
            DuplicateSubmissionError: this client already reported; the first report is kept.
        """
        task_id = meta.task_id
        key_id, texts = body.key_id, body.ciphertexts
        if key_id is None or texts is None:
            raise InvalidInputError(
                f"task {task_id!r} is a Paillier task: a report carries key_id and ciphertexts, "
                "not a share"
            )
        pk = meta.public.public_key
        if key_id != pk.key_id:
            raise KeyMismatchError(
                f"report is for key {key_id[:32]!r}; this task's key is {pk.key_id!r}"
            )
        if len(texts) != meta.ciphertexts:
            packed = (
                f" (its {meta.length} values packed by its layout)"
                if meta.packing is not None
                else ""
            )
            raise InvalidInputError(
                f"report has {len(texts)} ciphertexts; this task takes {meta.ciphertexts}{packed}"
            )
        values = []
        for i, text in enumerate(texts):
            try:
                values.append(
                    decode_int(
                        text, "ciphertext", max_bytes=meta.width, error=MalformedCiphertextError
                    )
                )
            except MalformedCiphertextError as exc:
                raise MalformedCiphertextError(f"ciphertexts[{i}]: {exc}") from None
        # Range and coprimality of the whole report at once (one gcd on the product, instead
        # of one per ciphertext: a packed report has ~1,200); the first bad one is named.
        try:
            ciphertexts = self.context.workers.inline.validate_many(pk, values)
        except MalformedCiphertextError as exc:
            raise MalformedCiphertextError(
                re.sub(r"^ciphertext (\d+):", r"ciphertexts[\1]:", str(exc))
            ) from None
        # Validity: a range task's proof is verified (on the worker pool) before anything is
        # stored or signed; a none task refuses a proof nobody would check.
        self._validity.check(meta, client_id, [c.value for c in ciphertexts], body)
        blob = b"".join(c.to_bytes() for c in ciphertexts)
        now = self.context.clock()
        if meta.deadline is not None and meta.deadline <= now:
            self.context.ensure_deadline(task_id)
            raise TaskStateError(
                f"task {task_id!r} closed at its deadline; reports are no longer accepted"
            )
        receipt = self._log.receipt(task_id, client_id, texts, now)
        self.context.storage.store_report(task_id, client_id, blob, now)
        return ReportAcceptedOut(
            task_id=task_id, client_id=client_id, received_at=now, receipt=receipt
        )

    def reporters(self, session: Session, meta: PaillierMeta) -> list[int]:
        """The ids of the clients that reported, in increasing order."""
        return list(
            session.scalars(
                select(ReportRow.client_id)
                .where(ReportRow.task_id == meta.task_id)
                .order_by(ReportRow.client_id)
            )
        )

    # ------------------------------------------------------------------ closing

    def close(self, meta: PaillierMeta, clients: list[int] | None, reason: CloseReason) -> None:
        """Close now and aggregate every report (see :class:`PaillierAggregation`)."""
        self._aggregation.close(meta, clients, reason)

    def close_locked(
        self, session: Session, task: TaskRow, now: datetime, reason: CloseReason
    ) -> None:
        """Close to uploads at the deadline (the aggregate follows outside the write lock)."""
        self._aggregation.close_locked(session, task, now, reason)

    def catch_up(self) -> None:
        """Aggregate every closed task that has no aggregate yet (unless already at it)."""
        self._aggregation.catch_up(self.name)

    # ------------------------------------------------------------------ release

    def aggregate(self, meta: PaillierMeta) -> AggregateOut:
        """The aggregate ciphertexts and the count (see :meth:`PaillierAggregation.aggregate`)."""
        return self._aggregation.aggregate(meta)

    def report_log(self, meta: PaillierMeta, *, leaves: bool = True) -> ReportLogOut:
        """The signed report log of a closed task (see :class:`ReportLog`).

        Raises:
            TaskStateError: still open, or closed before logs existed.
            InsufficientReportsError: closed with too few reports (nothing is published).
        """
        self._aggregation.require_published(meta)
        return self._log.published(meta, leaves=leaves)

    def report_page(self, meta: PaillierMeta, offset: int, limit: int | None) -> ReportPageOut:
        """A page of the logged reports of a closed task, in log order.

        Raises:
            TaskStateError: still open, or closed before logs existed.
            InsufficientReportsError: closed with too few reports.
        """
        self._aggregation.require_published(meta)
        return self._log.page(meta, offset, limit)

    def log_proof(self, meta: PaillierMeta, leaf: str) -> InclusionProofOut:
        """The inclusion proof of a leaf in the published log of a closed task.

        Raises:
            InvalidInputError: a leaf that is not 64 hex digits.
            NotFoundError: no such leaf in the log.
            TaskStateError: still open, or closed before logs existed.
            InsufficientReportsError: closed with too few reports.
        """
        self._aggregation.require_published(meta)
        return self._log.proof(meta, leaf)

    def submit_partials(
        self, meta: PaillierMeta, holder: int, body: PartialsIn
    ) -> PartialsAcceptedOut:
        """See :meth:`PaillierDecryption.submit_partials`."""
        return self._decryption.submit_partials(meta, holder, body)

    def result(self, meta: PaillierMeta) -> ResultOut:
        """See :meth:`PaillierDecryption.result`."""
        return self._decryption.result(meta)

    # ------------------------------------------------------------------ views

    def info(self, meta: PaillierMeta) -> TaskInfoOut:
        """The key, encoding, length, limits, layout and the key holders' upload form."""
        task_id = meta.task_id
        with self.context.storage.read() as session:
            state = session.scalar(select(TaskRow.state).where(TaskRow.id == task_id))
            form = stored_form(session, task_id)
        return TaskInfoOut(
            task_id=task_id,
            name=meta.name,
            state=state,  # type: ignore[arg-type]
            length=meta.length,
            encoding=meta.encoding,
            public_key=meta.public_key_json,
            holders=meta.public.holders,
            threshold=meta.public.threshold,
            min_clients=meta.min_clients,
            max_clients=meta.max_clients,
            deadline=meta.deadline,
            packing=meta.packing.to_json() if meta.packing is not None else None,
            partials_form=form,
            receipt_key=self._log.signing_key().verify_key.to_text(),
            validity=meta.validity,  # type: ignore[arg-type]
        )

    def status(self, session: Session, meta: PaillierMeta) -> SchemeStatus:
        """The key's threshold and holders, and the partial decryptions received so far."""
        partials = session.scalar(
            select(func.count()).select_from(PartialRow).where(PartialRow.task_id == meta.task_id)
        )
        return SchemeStatus(
            scheme=self.name,
            threshold=meta.public.threshold,
            holders=meta.public.holders,
            partials_received=partials or 0,
            partials_form=stored_form(session, meta.task_id) if partials else None,
        )


__all__ = ["PaillierScheme"]

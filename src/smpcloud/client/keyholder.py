"""A key holder of the Paillier service: partial-decrypts a task's aggregate, with proofs.

The key share never leaves :class:`KeyHolder` (and the processes of a pool it is given); the
server receives partial decryptions and zero-knowledge proofs that they were computed with
this holder's share, nothing about the share itself.

Before decrypting, the holder checks by default that the aggregate is the product of exactly
the reports of the server's signed log, from distinct clients, as many as the count says and
at least ``min_clients`` (:mod:`smpcloud.client.aggregate_check`), and, given its signing key,
attests what it checked with its upload.
"""

from __future__ import annotations

import math
from typing import Final

import httpx

from smpcloud.client._http import task_path
from smpcloud.client._participant import TaskParticipant
from smpcloud.client.aggregate_check import AggregateCheck, check_aggregate
from smpcloud.client.models import CertificateAccepted, TaskInfo, read_task_info
from smpcloud.crypto import threshold
from smpcloud.crypto.paillier import Ciphertext, PublicKey
from smpcloud.crypto.signatures import Roster, SigningKey
from smpcloud.crypto.wire import decode_int
from smpcloud.errors import InvalidInputError, KeyMismatchError, MalformedCiphertextError
from smpcloud.parallel import CryptoPool
from smpcloud.protocol.certificates import (
    CertificateAcceptedOut,
    certificate_fields,
    sign_certificate,
    verify_certified,
)
from smpcloud.protocol.receipts import ATTESTATION_DOMAIN, attestation_fields
from smpcloud.protocol.schemas import AggregateOut, PartialsAcceptedOut, PartialsIn, TaskInfoOut

#: Default seconds per HTTP request of a key holder (see :class:`KeyHolder`).
HOLDER_TIMEOUT: Final = 600.0


class KeyHolder(TaskParticipant):
    """A key holder: partial-decrypts the task's aggregate with its key share, with proofs.

    The key share never leaves this object (and the processes of a pool it is given); the
    server receives c^(2 Δ s_i) per aggregate ciphertext and a zero-knowledge proof that it was
    computed with this holder's share: one proof per ciphertext, or one for the whole batch.

    Args:
        base_url: the service's root URL.
        task_id: the task.
        token: this holder's token (from :meth:`Admin.create_task`).
        key_share: this holder's share from the key ceremony.
        timeout: seconds per HTTP request (default 10 minutes: in the per-ciphertext form the
            server verifies one proof per element before answering, ~40 ms each at 2048 bits).
        transport: an ``httpx`` transport instead of the network.
        signing_key: this holder's long-term signing key: :meth:`contribute` then attests
            the log and aggregate it checked (clients that pin the holders' roster check it).
        holders: the key holders' roster (``holders.json``): :meth:`contribute` then first
            checks that t of them certified the task exactly as it is served now, so that the
            minimum of clients it checks the count against is the certified one (a server
            that lowered ``min_clients`` after the clients reported, and kept one report, is
            refused). Without it, the minimum is the server's word at decryption time.
    """

    def __init__(
        self,
        base_url: str,
        task_id: str,
        token: str,
        key_share: threshold.KeyShare,
        *,
        timeout: float = HOLDER_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
        signing_key: SigningKey | None = None,
        holders: Roster | None = None,
    ) -> None:
        if not isinstance(key_share, threshold.KeyShare):
            raise InvalidInputError("key_share must be a threshold.KeyShare")
        if signing_key is not None and not isinstance(signing_key, SigningKey):
            raise InvalidInputError("signing_key must be a SigningKey")
        if holders is not None and not isinstance(holders, Roster):
            raise InvalidInputError("holders must be a smpcloud.crypto.signatures.Roster")
        super().__init__(base_url, task_id, token, timeout=timeout, transport=transport)
        self._share = key_share
        self._signing_key = signing_key
        self._holders = holders

    def __repr__(self) -> str:
        return f"KeyHolder(task_id={self.task_id!r}, index={self._share.index})"

    def certify(
        self, signing_key: SigningKey | None = None, *, min_clients_at_least: int | None = None
    ) -> CertificateAccepted:
        """Certify the task as served: sign its key and parameters, and upload the signature.

        Fetches the task's info and refuses unless the served key is the key this share
        belongs to, the served holders and threshold are that key's, and (when the server
        serves a roster) this holder's entry in it is ``signing_key``'s. Then signs the task's
        statement (:func:`smpcloud.protocol.certificates.certificate_fields`: key digest,
        holders, threshold, length, encoding, packing, min_clients, max_clients) and uploads
        it. Clients encrypt only once t holders of their pinned roster did this.

        What the holder vouches for: that the key is its own key and that these are the
        parameters it agrees to. It reveals nothing secret (a signature over public data).

        Args:
            signing_key: this holder's signing key (``signing_key_<i>.json`` from
                ``smpcloud keygen``); default: the one this object was given.
            min_clients_at_least: this holder's policy: refuse to sign a task that releases a
                sum over fewer clients (the server chose ``min_clients``; over one or two
                clients a sum gives their values away).

        Returns:
            Who has certified the task so far, and how many are needed.

        Raises:
            KeyMismatchError: the served key is not this share's, or the served roster names
                another verify key for this holder.
            NoRosterError: the task was created without a roster.
            InvalidInputError: no signing key, or the task's min_clients is below
                ``min_clients_at_least``.
            InvalidCertificateError: the server's roster does not accept the signature.
            TaskStateError: the task is no longer open.
            DuplicateSubmissionError: this holder certified the task with another signature.
        """
        if signing_key is None:
            signing_key = self._signing_key
        if not isinstance(signing_key, SigningKey):
            raise InvalidInputError(
                "certify needs this holder's signing key (smpcloud.crypto.signatures.SigningKey)"
            )
        if min_clients_at_least is not None and (
            type(min_clients_at_least) is not int or min_clients_at_least < 2
        ):
            raise InvalidInputError("min_clients_at_least must be an integer >= 2")
        out = self._conn.request("GET", task_path(self.task_id), TaskInfoOut)
        info = read_task_info(out, insecure=True)
        if info.public_key != self._share.public:
            raise KeyMismatchError(
                "this task's key is not the key this share belongs to: refusing to certify it"
            )
        if min_clients_at_least is not None and out.min_clients < min_clients_at_least:
            raise InvalidInputError(
                f"the task releases a sum over as few as {out.min_clients} client(s), below "
                f"this holder's minimum of {min_clients_at_least}: refusing to certify it"
            )
        index = self._share.index
        if out.roster is not None:
            served = Roster.from_json(out.roster)
            if served.keys.get(index) != signing_key.verify_key:
                raise KeyMismatchError(
                    f"the task's roster does not name this signing key as holder {index}'s: "
                    "use signing_key_<i>.json of the same keygen as this key share"
                )
        accepted = self._conn.request(
            "POST",
            task_path(self.task_id, "certificates"),
            CertificateAcceptedOut,
            json=sign_certificate(out, signing_key).model_dump(),
        )
        return CertificateAccepted(
            task_id=accepted.task_id,
            holder=accepted.holder,
            certified_by=list(accepted.certified_by),
            threshold=accepted.threshold,
            signed=certificate_fields(out),
        )

    def contribute(
        self,
        *,
        batch: bool | None = None,
        pool: CryptoPool | None = None,
        workers: int | None = 1,
        verify_aggregate: bool = True,
    ) -> AggregateCheck | None:
        """Check the aggregate, partial-decrypt every ciphertext, prove it, and upload.

        First (unless ``verify_aggregate`` is False) the aggregate is checked against the
        server's signed report log: fetched with every logged report, it must be their
        element-wise product, from distinct clients, as many as its count, at least
        ``min_clients``, under the signed Merkle root (see
        :mod:`smpcloud.client.aggregate_check`). Nothing is decrypted or uploaded otherwise.
        With the holder's ``signing_key``, the upload carries its attestation of the root,
        count and aggregate it checked.

        Two forms: a batch (one partial value per ciphertext and ONE proof for all,
        :meth:`~smpcloud.crypto.threshold.KeyShare.partial_decrypt_batch`: about a third of
        the exponentiations, and one proof for the server to check), or one partial
        decryption with its own proof per ciphertext. All key holders of a task use the same
        form (the server fixes it at the first accepted upload).

        Reveals to the server the partial values (what any partial decryption reveals) and
        zero-knowledge proofs; nothing about the key share.

        Args:
            batch: True for a batch, False for one proof per ciphertext; None (default):
                the form the task's key holders already use, else a batch for a packed task
                and one proof per ciphertext otherwise.
            pool: a worker pool for the exponentiations (its processes receive the key share).
            workers: without ``pool``: 1 (default) = this process; None = every CPU; N = N
                processes started for this call only.
            verify_aggregate: False skips the check and TRUSTS THE SERVER to serve the product
                of all reports with their true count (no attestation is sent then).

        Returns:
            What was checked (None with ``verify_aggregate=False``).

        Raises:
            AggregateVerificationError: the aggregate failed a check (the message names it);
                nothing was decrypted or uploaded.
            InvalidInputError: both ``pool`` and ``workers`` other than 1, or workers out of
                range.
            KeyMismatchError: the task's key is not the key this share belongs to.
            UncertifiedTaskError: (with ``holders``) the task as served now is not what t
                pinned key holders certified; nothing was decrypted.
            TaskStateError: the task is still open, or already decrypted.
            InsufficientReportsError: the task closed with too few reports.
            DuplicateSubmissionError: this holder already contributed.
            ConflictError: the other form than the one the task's key holders use.
            MalformedCiphertextError: the server sent an invalid aggregate.
        """
        if pool is not None and workers != 1:
            raise InvalidInputError("give either pool or workers, not both")
        out = self._conn.request("GET", task_path(self.task_id), TaskInfoOut)
        info = read_task_info(out, insecure=True)
        if info.public_key != self._share.public:
            raise KeyMismatchError("this task's key is not the key this share belongs to")
        if self._holders is not None:  # the terms as served now are the certified ones
            verify_certified(out, self._holders, self._share.public)
        if batch is None:
            form = info.partials_form
            batch = form == "batch" if form is not None else info.packing is not None
        aggregate = self._conn.request("GET", task_path(self.task_id, "aggregate"), AggregateOut)
        ciphertexts = _aggregate_ciphertexts(aggregate, info)
        if pool is not None:
            checked, body = self._checked_partials(
                info, aggregate, ciphertexts, batch, pool, verify_aggregate
            )
        else:
            with CryptoPool(workers) as own:
                checked, body = self._checked_partials(
                    info, aggregate, ciphertexts, batch, own, verify_aggregate
                )
        self._conn.request(
            "POST",
            task_path(self.task_id, "partials"),
            PartialsAcceptedOut,
            # Only the form used: servers that know no batches refuse unknown fields.
            json=body.model_dump(exclude_none=True),
            expected=201,
        )
        return checked

    def _checked_partials(
        self,
        info: TaskInfo,
        aggregate: AggregateOut,
        ciphertexts: list[Ciphertext],
        batch: bool,
        pool: CryptoPool,
        verify: bool,
    ) -> tuple[AggregateCheck | None, PartialsIn]:
        """Check the aggregate (unless told not to), then partially decrypt and attest."""
        checked = None
        if verify:
            checked = check_aggregate(self._conn, info, aggregate, ciphertexts, pool)
        body = self._partials(ciphertexts, batch, pool)
        if checked is not None and self._signing_key is not None:
            fields = attestation_fields(
                self.task_id, checked.count, checked.root, checked.aggregate
            )
            attestation = self._signing_key.sign_statement(ATTESTATION_DOMAIN, fields)
            body = body.model_copy(update={"attestation": attestation})
        return checked, body

    def _partials(self, ciphertexts: list[Ciphertext], batch: bool, pool: CryptoPool) -> PartialsIn:
        """Partially decrypt with proofs on ``pool``: one batch or one object per ciphertext."""
        if batch:
            return PartialsIn(batch=pool.partial_decrypt_batch(self._share, ciphertexts).to_json())
        partials = pool.partial_decrypt_many(self._share, ciphertexts)
        return PartialsIn(partials=[threshold.partial_to_json(p) for p in partials])


def _aggregate_ciphertexts(aggregate: AggregateOut, info: TaskInfo) -> list[Ciphertext]:
    pk: PublicKey = info.public_key.public_key
    if aggregate.key_id != pk.key_id:
        raise KeyMismatchError("the aggregate is under another key")
    if len(aggregate.ciphertexts) != info.ciphertexts:
        raise MalformedCiphertextError(
            f"the aggregate has {len(aggregate.ciphertexts)} ciphertexts; the task has "
            f"{info.ciphertexts}"
        )
    max_bytes = math.ceil(pk.n_squared.bit_length() / 8)
    return [
        Ciphertext(
            pk, decode_int(text, "aggregate", max_bytes=max_bytes, error=MalformedCiphertextError)
        )
        for text in aggregate.ciphertexts
    ]


__all__ = ["HOLDER_TIMEOUT", "KeyHolder"]

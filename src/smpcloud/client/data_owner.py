"""A data owner of the Paillier service: encodes, range-checks, encrypts and uploads its values.

:func:`prepare_report` is the local half (no network): encode, range-check and encrypt one
client's values under the task's threshold key; :class:`Client` fetches the task's info,
checks that t of the key holders it pinned certified that key and those parameters
(:mod:`smpcloud.protocol.certificates`), then prepares and uploads its one report.

Reveals to the server: that this client reported, and when; the values stay encrypted under the
threshold key. Model: the server may be malicious. It cannot make a client encrypt under a key
of its choosing, or for a lowered min_clients, another range, length, layout or threshold:
without t certificates from the pinned roster the client refuses before encrypting anything
(:class:`~smpcloud.protocol.problems.UncertifiedTaskError`). Trusted: the roster (or its
digest) the client pinned, received out of band, and t of the key holders.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from functools import lru_cache
from typing import Final, cast

import httpx
import numpy.typing as npt

from smpcloud.client._http import DEFAULT_TIMEOUT, task_path
from smpcloud.client._participant import TaskParticipant
from smpcloud.client._values import as_values
from smpcloud.client.models import PreparedReport, Receipt, TaskInfo, read_receipt, read_task_info
from smpcloud.crypto import threshold
from smpcloud.crypto.packing import encrypt_vector, to_slots
from smpcloud.crypto.signatures import Roster
from smpcloud.crypto.validity import ReportBase, prove_report
from smpcloud.crypto.wire import encode_int
from smpcloud.errors import InvalidInputError, KeyMismatchError
from smpcloud.parallel import CryptoPool
from smpcloud.protocol.certificates import verify_certified
from smpcloud.protocol.problems import UncertifiedTaskError
from smpcloud.protocol.receipts import ReceiptVerificationError, report_leaf
from smpcloud.protocol.report_proofs import (
    client_digest,
    encode_proof,
    proof_context,
    proof_layout,
)
from smpcloud.protocol.schemas import ReportAcceptedOut, TaskInfoOut

#: Reports of up to this many values are encrypted the textbook way (one r^n each, ~8 ms at
#: 2048 bits) unless the key object already holds its fast-encryption table: building the table
#: costs ~85 ms, then ~0.6 ms per value (see :mod:`smpcloud.crypto.paillier`). Measured
#: break-even: about 11 values.
CLASSIC_ENCRYPTION_MAX: Final = 10


@lru_cache(maxsize=4)
def report_base(n: int, *, table: bool) -> ReportBase:
    """Return this process's report base for modulus n (a small cache: the base of a 2048-bit
    key costs ~20 ms, its table ~0.25 s more; see :class:`~smpcloud.crypto.validity.ReportBase`).
    """
    return ReportBase(n, table=table)


def _proved_report(
    info: TaskInfo,
    values: float | int | Sequence[float | int] | npt.ArrayLike,
    token: str | None,
    pool: CryptoPool | None,
) -> PreparedReport:
    """Encode, range-check, encrypt and prove a ``range`` task's report (see prepare_report)."""
    if not isinstance(token, str) or not token:
        raise InvalidInputError(
            f"task {info.task_id!r} checks every report's validity: preparing its report "
            "needs the client's token (prepare_report(..., token=...)), which the proof is "
            "bound to"
        )
    tpk = info.public_key
    pk = tpk.public_key
    if info.packing is not None:
        scalar = isinstance(values, (int, float)) or getattr(values, "ndim", None) == 0
        vector = cast("npt.ArrayLike", [values] if scalar else values)
        slots = [int(u) for u in to_slots(vector, info.packing).tolist()]
    else:
        items = as_values(values)
        if len(items) != info.length:
            raise InvalidInputError(
                f"this task takes {info.length} value(s) per client; got {len(items)}"
            )
        lo, _ = info.encoding.encoded_bounds()
        slots = [info.encoding.encode(v, index=i) - lo for i, v in enumerate(items)]
    layout = proof_layout(info.encoding, info.length, info.packing)
    context = proof_context(info.task_id, client_digest(token), tpk.fingerprint())
    table = pk.has_table or len(slots) > CLASSIC_ENCRYPTION_MAX
    base = report_base(pk.n, table=table)
    if pool is not None:
        ciphertexts, proof = pool.prove_report(base, layout, slots, context)
    else:
        ciphertexts, proof = prove_report(base, layout, slots, context)
    return PreparedReport(
        task_id=info.task_id,
        key_id=pk.key_id,
        ciphertexts=tuple(encode_int(c) for c in ciphertexts),
        proof=encode_proof(proof),
    )


def prepare_report(
    info: TaskInfo,
    values: float | int | Sequence[float | int] | npt.ArrayLike,
    *,
    pool: CryptoPool | None = None,
    token: str | None = None,
) -> PreparedReport:
    """Encode, range-check and encrypt one client's values for a task; no network.

    This is the local half of :meth:`Client.submit` (see :meth:`Client.prepare`), for callers
    that already hold the task's :class:`TaskInfo`. It checks nothing about who vouches for
    the key: ``info`` must come from a verified :meth:`Client.info` (which checks the key
    holders' certificates against the pinned roster) or from the caller's own check;
    :meth:`Admin.info` does not verify certificates.

    A packed task (``info.packing``): the vector (a list or a numpy array) is range-checked as a
    whole, packed and encrypted with the fast DJN path
    (:func:`smpcloud.crypto.packing.encrypt_vector`), ``info.packing.ciphertexts`` ciphertexts
    for ``info.length`` values; with ``pool`` the encryptions spread over its worker processes
    (:meth:`smpcloud.parallel.CryptoPool.encrypt_vector`, which builds the key's table once per
    worker).

    Encryption: the fast DJN path (:meth:`~smpcloud.crypto.paillier.PublicKey.encrypt`) when
    the key object ``info.public_key.public_key`` already holds its fast-encryption table
    (``has_table``) or the report has more than :data:`CLASSIC_ENCRYPTION_MAX` values; the
    classic r^n path otherwise, since one classic encryption (~8 ms at 2048 bits) costs less
    than building the table (~85 ms). A process that prepares many reports with one key object
    should call ``info.public_key.public_key.precompute()`` once: every report after that uses
    the table.

    A ``range`` task (``info.validity``): the values are encrypted by the prover itself on the
    key's report base (:mod:`smpcloud.crypto.validity`, the same DJN short-exponent encryption)
    and the report carries a validity proof bound to the task, this client (``token``) and the
    ciphertexts; the server refuses a report without one. Proving costs ~0.4 ms per value bit
    (e.g. ~8 ms per value in [-1, 1] with 16 fractional bits, 2048-bit key); ``pool`` spreads a
    long report over its workers.

    Args:
        info: the task's info (:meth:`Client.info` or :meth:`Admin.info`).
        values: a scalar or ``info.length`` values.
        pool: a worker pool for a packed task's encryptions, or a ``range`` task's proof
            (default: this process).
        token: the client's bearer token; required for a ``range`` task (its digest is in the
            proof's context).

    Returns:
        The report, ready for :meth:`Client.upload`.

    Raises:
        InvalidInputError: wrong number of values or a non-number; a ``range`` task without
            ``token``, or whose range is too wide to prove.
        OverflowDetectedError: a value outside the declared range, NaN or infinite.
    """
    if info.validity == "range":
        return _proved_report(info, values, token, pool)
    pk = info.public_key.public_key
    if info.packing is not None:
        scalar = isinstance(values, (int, float)) or getattr(values, "ndim", None) == 0
        vector = cast("npt.ArrayLike", [values] if scalar else values)
        if pool is not None:
            packed = pool.encrypt_vector(pk, vector, info.packing)
        else:
            packed = encrypt_vector(pk, vector, info.packing)
        return PreparedReport(
            task_id=info.task_id,
            key_id=pk.key_id,
            ciphertexts=tuple(encode_int(c.value) for c in packed),
        )
    items = as_values(values)
    if len(items) != info.length:
        raise InvalidInputError(
            f"this task takes {info.length} value(s) per client; got {len(items)}"
        )
    plaintexts = [info.encoding.encode(v, index=i) for i, v in enumerate(items)]
    if pk.has_table or len(plaintexts) > CLASSIC_ENCRYPTION_MAX:
        ciphertexts = [pk.encrypt(m) for m in plaintexts]
    else:
        ciphertexts = [pk.encrypt_classic(m) for m in plaintexts]
    return PreparedReport(
        task_id=info.task_id,
        key_id=pk.key_id,
        ciphertexts=tuple(encode_int(c.value) for c in ciphertexts),
    )


class Client(TaskParticipant):
    """A data owner: encodes, encrypts and uploads its private values, once.

    Reveals to the server: that this client reported, and when. The values stay encrypted
    under the threshold key; only their sum over all clients is ever decrypted.

    :meth:`submit` does it all; :meth:`prepare` (encode, range check, encrypt: local work) and
    :meth:`upload` (one HTTP request) are its two halves, for callers that time or schedule
    them apart.

    Encryption: a short report (up to :data:`CLASSIC_ENCRYPTION_MAX` values) is encrypted the
    classic r^n way unless the key object already holds its fast-encryption table; a long one
    (or any report under a key object with a table) takes the fast DJN path. A process that
    simulates many clients should pin one key object for all of them (``public_key=pk``, the
    same object each time) and call ``pk.public_key.precompute()`` once: the table is then
    built once and used by every client (see :func:`prepare_report`).

    Certification: the client must pin the key holders, with ``holders`` (the roster,
    ``holders.json`` from ``smpcloud keygen``) or ``holders_fingerprint`` (its
    :meth:`~smpcloud.crypto.signatures.Roster.digest`, when the file itself cannot be handed
    over: the served roster must then have that digest). :meth:`info` then verifies that t of
    those holders signed the task's key and parameters exactly as served, before anything is
    encrypted. ``insecure_skip_certification=True`` skips that check: for tests that are not
    about certification only — a client that skips it encrypts under whatever key the server
    serves.

    Args:
        base_url: the service's root URL.
        task_id: the task to report to.
        token: this client's token (from :meth:`Admin.register_clients`).
        holders: the pinned key holders' roster.
        holders_fingerprint: the pinned roster's digest (64 hex digits).
        insecure_skip_certification: do not check certificates (tests only).
        public_key: pin the task's key: refuse to encrypt under anything else; this very object
            (and its fast-encryption table, if built) is used to encrypt.
        allow_insecure_keys: accept keys below 2048 bits (tests only).
        timeout: seconds per HTTP request.
        transport: an ``httpx`` transport instead of the network.

    Raises:
        InvalidInputError: neither ``holders`` nor ``holders_fingerprint`` nor
            ``insecure_skip_certification``; a malformed fingerprint, or one that is not
            ``holders``'s digest.
    """

    def __init__(
        self,
        base_url: str,
        task_id: str,
        token: str,
        *,
        holders: Roster | None = None,
        holders_fingerprint: str | None = None,
        insecure_skip_certification: bool = False,
        public_key: threshold.ThresholdPublicKey | None = None,
        allow_insecure_keys: bool = False,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._holders, self._fingerprint = _pinned_holders(
            holders, holders_fingerprint, insecure_skip_certification
        )
        self._skip_certification = insecure_skip_certification
        super().__init__(base_url, task_id, token, timeout=timeout, transport=transport)
        self._pinned = public_key
        self._token = token
        self._insecure = allow_insecure_keys
        self._info: TaskInfo | None = None

    def info(self) -> TaskInfo:
        """Return the task's key, encoding and length (fetched once, then cached), certified.

        Verifies, before returning (so before anything is encrypted), that t holders of the
        pinned roster signed the task's statement rebuilt from the info as served (key digest,
        holders, threshold, length, encoding, packing, min_clients, max_clients), and that the
        served holders and threshold are the key's and the roster's.

        Raises:
            UncertifiedTaskError: fewer than t valid certificates from the pinned holders; a
                served roster that is not the pinned fingerprint's; served holders/threshold
                that are not the roster's.
            KeyMismatchError: the served key is not the pinned one, or not of the served
                holders and threshold.
            InvalidInputError: the served key is malformed or (without
                ``allow_insecure_keys``) below 2048 bits.
        """
        if self._info is None:
            out = self._conn.request("GET", task_path(self.task_id), TaskInfoOut)
            certified: tuple[int, ...] = ()
            if not self._skip_certification:  # first: nothing served is used before this
                # With a pinned key object, the check is that exactly that key was certified
                # (and the served key is compared with it below): no second parse.
                certified = verify_certified(out, self._roster_for(out), self._pinned)
            info = replace(read_task_info(out, insecure=self._insecure), certified_by=certified)
            if self._pinned is not None:
                if info.public_key != self._pinned:
                    raise KeyMismatchError("the server serves a different key for this task")
                # Encrypt with the pinned object itself, so that its fast-encryption table
                # (built once) serves every client that shares it.
                info = replace(info, public_key=self._pinned)
            self._info = info
        return self._info

    def _roster_for(self, out: TaskInfoOut) -> Roster:
        """The pinned roster, or the served one if it has the pinned fingerprint."""
        if self._holders is not None:
            return self._holders
        if out.roster is None:
            raise UncertifiedTaskError(
                f"task {out.task_id!r}: the server serves no key holders' roster, so the "
                "pinned holders fingerprint cannot be checked; ask the administrator to "
                "create the task with the roster (smpcloud task create --holders)"
            )
        try:
            served = Roster.from_json(out.roster)
        except InvalidInputError as exc:
            raise UncertifiedTaskError(
                f"task {out.task_id!r}: the served roster is malformed ({exc})"
            ) from None
        if served.digest() != self._fingerprint:
            raise UncertifiedTaskError(
                f"task {out.task_id!r}: the served key holders' roster has digest "
                f"{served.digest()}, not the pinned {self._fingerprint}: do not report to "
                "this task"
            )
        return served

    def prepare(
        self,
        values: float | int | Sequence[float | int] | npt.ArrayLike,
        *,
        pool: CryptoPool | None = None,
    ) -> PreparedReport:
        """Encode, range-check and encrypt this client's values; send nothing.

        The only network use is fetching the task's info if this object does not know it yet.
        Which encryption is used is explained in :func:`prepare_report`: with a pinned key
        object (``public_key=``) that holds its table, every report takes the fast path; a
        packed task's vector is packed first, and ``pool`` spreads its encryptions over the
        pool's worker processes.

        Raises:
            InvalidInputError: wrong number of values or a non-number.
            OverflowDetectedError: a value outside the declared range, NaN or infinite.
            UncertifiedTaskError: t pinned key holders did not certify the task as served
                (nothing is encrypted).
            KeyMismatchError: the served key is not the pinned one.
            TransportError: the task's info could not be fetched.
        """
        return prepare_report(self.info(), values, pool=pool, token=self._token)

    def upload(self, prepared: PreparedReport) -> Receipt | None:
        """Upload a report made by :meth:`prepare` (or :func:`prepare_report`) for this task.

        Retrying after a :class:`~smpcloud.errors.TransportError` is safe: if the first
        attempt arrived, the retry raises
        :class:`~smpcloud.protocol.problems.DuplicateSubmissionError`.

        Returns:
            The server's signed receipt, checked here: signed by the key it names, for this
            task and client and for exactly the ciphertexts sent (keep it, and check later
            that the published log includes it: :func:`smpcloud.client.verify_receipt`).
            None from a server that issues no receipts.

        Raises:
            ReceiptVerificationError: the server's receipt is not for this report, or its
                signature does not verify (the report may be stored all the same).
            InvalidInputError: not a PreparedReport, or prepared for another task.
            KeyMismatchError: prepared under another key than the task's (when known here).
            DuplicateSubmissionError: this client already reported (the first report stays).
            TaskStateError: the task is closed.
            TransportError: the service could not be reached.
        """
        if not isinstance(prepared, PreparedReport):
            raise InvalidInputError("upload takes a PreparedReport (from Client.prepare)")
        if prepared.task_id != self.task_id:
            raise InvalidInputError("this report was prepared for another task")
        info = self._info
        if info is not None and prepared.key_id != info.public_key.public_key.key_id:
            raise KeyMismatchError("this report is encrypted under another key than the task's")
        out = self._conn.request(
            "POST",
            task_path(self.task_id, "reports"),
            ReportAcceptedOut,
            json=prepared.request_body(),
            expected=201,
        )
        return _checked_receipt(out, prepared, info.receipt_key if info is not None else None)

    def submit(
        self,
        values: float | int | Sequence[float | int] | npt.ArrayLike,
        *,
        pool: CryptoPool | None = None,
    ) -> Receipt | None:
        """Encode, encrypt and upload this client's values (a scalar or ``length`` values).

        Same as ``upload(prepare(values, pool=pool))``. A packed task takes its vector as a
        list or a numpy array. Everything is checked before anything is sent:
        the number of values, their types, and that each lies in the task's declared range.
        Retrying after a :class:`~smpcloud.errors.TransportError` is safe: if the first
        attempt arrived, the retry raises
        :class:`~smpcloud.protocol.problems.DuplicateSubmissionError`.

        Returns:
            The server's signed receipt, checked (see :meth:`upload`).

        Raises:
            InvalidInputError: wrong number of values or a non-number.
            OverflowDetectedError: a value outside the declared range, NaN or infinite.
            UncertifiedTaskError: t pinned key holders did not certify the task as served
                (nothing is encrypted or sent).
            DuplicateSubmissionError: this client already reported (the first report stays).
            TaskStateError: the task is closed.
            TransportError: the service could not be reached.
            ReceiptVerificationError: the receipt is not for this report (see :meth:`upload`).
        """
        return self.upload(self.prepare(values, pool=pool))


def _checked_receipt(
    out: ReportAcceptedOut, prepared: PreparedReport, receipt_key: str | None
) -> Receipt | None:
    """The receipt of an accepted upload, checked against what was sent.

    ``receipt_key``: the server's receipt key as the task's info served it (certified by the
    key holders when the client pins them); the receipt must be signed by it.

    Raises:
        ReceiptVerificationError: another task or client than the acknowledgement's, another
            leaf than the report sent, another key than the task's receipt key, or a
            signature that does not verify.
    """
    if out.receipt is None:
        return None
    receipt = read_receipt(out.receipt)
    if receipt_key is not None and receipt.server_key != receipt_key:
        raise ReceiptVerificationError(
            "receipt",
            "the receipt is signed by another key than the task's receipt key (the one the key "
            "holders certified): it would prove nothing",
        )
    if receipt.task_id != prepared.task_id or receipt.client_id != out.client_id:
        raise ReceiptVerificationError(
            "receipt", "the server's receipt names another task or client than this upload"
        )
    leaf = report_leaf(receipt.task_id, receipt.client_id, prepared.ciphertexts).hex()
    if receipt.leaf != leaf:
        raise ReceiptVerificationError(
            "receipt", "the server's receipt is for other ciphertexts than the report sent"
        )
    receipt.verify_signature()
    return receipt


def _pinned_holders(
    holders: Roster | None, fingerprint: str | None, skip: bool
) -> tuple[Roster | None, str | None]:
    """Check a client's pinning arguments; return the roster and the normalised fingerprint."""
    if holders is not None and not isinstance(holders, Roster):
        raise InvalidInputError("holders must be a smpcloud.crypto.signatures.Roster")
    if fingerprint is not None:
        if not isinstance(fingerprint, str) or not re.fullmatch(
            r"[0-9a-f]{64}", fingerprint.strip().lower()
        ):
            raise InvalidInputError(
                "holders_fingerprint: expected the roster's digest, 64 hex digits (printed by "
                "smpcloud keygen as the holders fingerprint)"
            )
        fingerprint = fingerprint.strip().lower()
        if holders is not None and holders.digest() != fingerprint:
            raise InvalidInputError("holders_fingerprint is not the digest of holders")
    if holders is None and fingerprint is None and not skip:
        raise InvalidInputError(
            "pin the key holders before reporting: pass holders=load_roster('keys/holders.json') "
            "(holders.json from smpcloud keygen) or holders_fingerprint='<64 hex digits>' (the "
            "holders fingerprint smpcloud keygen printed); a client that pins neither would "
            "encrypt under whatever key the server serves"
        )
    return holders, fingerprint


__all__ = ["CLASSIC_ENCRYPTION_MAX", "Client", "prepare_report", "report_base"]

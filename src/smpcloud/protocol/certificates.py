"""Task certificates: what a key holder signs about a task, so clients need not trust the server.

**Who signs what.** Each key holder has a long-term Ed25519 signing key (``signing_key_<i>.json``
from ``smpcloud keygen``); the clients pin the holders' verify keys and the threshold t as a
:class:`~smpcloud.crypto.signatures.Roster` (``holders.json``, or its digest). Before a task
takes reports, t key holders each fetch the task's info from the server, check that the served
threshold key is the key their share belongs to, and sign the task's *statement*
(:func:`certificate_fields`) under the domain :data:`CERTIFICATE_DOMAIN`; the server stores
the signatures and serves them with the task's info. A client rebuilds the statement from the
info it was served and encrypts only if t holders of its pinned roster signed exactly that.

**The statement** binds everything a client acts on: the task id, its name and scheme, the
threshold key (its full SHA-256 digest, :attr:`ThresholdPublicKey.digest`, over n, the number of
holders, t, v and every verification key), the holders and threshold the server claims, the
vector length, the encoding (kind, fixed point, declared range), the packing layout (or null),
min_clients and max_clients. Not the deadline or the state, which change or are the server's
to enforce. Encoding and packing are signed as canonical JSON text (their bounds may be
floats, which :func:`~smpcloud.crypto.signatures.statement` refuses as numbers).

**What it protects against (model).** A malicious server (or anyone on the path) that serves
another key — a 1-of-1 key it holds, claiming 3-of-5 — or lowers min_clients, widens the
range, changes the length, the layout or the threshold, is detected by every client before it
encrypts: forging t signatures needs t holders' signing keys (EUF-CMA of Ed25519). Trusted: the
roster the client pinned (received out of band) and t of the key holders (they sign only the
key their share belongs to). Not covered: a server that withholds certificates (clients then
refuse to report: denial of service, detected), and the dealer of ``smpcloud keygen``, which
makes the signing keys along with the key shares (a trusted-dealer limitation).

Both sides build the statement with the one function :func:`certificate_fields` on the served
:class:`~smpcloud.protocol.schemas.TaskInfoOut`: the key holder (to sign), the server (to check
an uploaded certificate against the task's roster) and the client (to verify a quorum).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any, Final

from pydantic import Field

from smpcloud.crypto import threshold
from smpcloud.crypto.signatures import Roster, SigningKey, verify_statement
from smpcloud.errors import InvalidInputError, SignatureError
from smpcloud.protocol._bases import Out, Schema
from smpcloud.protocol.problems import UncertifiedTaskError

if TYPE_CHECKING:  # schemas imports this module (TaskInfoOut carries CertificateOut)
    from smpcloud.protocol.schemas import TaskInfoOut

#: The domain of a task certificate's statement (what the signature says it is).
CERTIFICATE_DOMAIN: Final = "smpcloud/task-certificate/v1"


class CertificateIn(Schema):
    """A key holder's certificate of a task (its token says which holder it is).

    ``signature``: the wire form (unpadded base64url of 64 bytes) of the holder's Ed25519
    signature over the task's statement (:func:`certificate_fields`).
    """

    signature: Annotated[str, Field(min_length=1, max_length=100)]


class CertificateOut(Out):
    """A key holder's certificate of a task, as served: ``{holder, signature}``.

    The signature is over :func:`certificate_fields` of the served task info, under the
    domain :data:`CERTIFICATE_DOMAIN`.
    """

    holder: int
    signature: str


class CertificateAcceptedOut(Out):
    """Acknowledgement of a key holder's verified certificate, and who has certified so far."""

    task_id: str
    holder: int
    certified_by: list[int]
    threshold: int


def check_task_roster(
    roster: dict[str, Any], public_key: dict[str, Any] | None, scheme: str
) -> None:
    """Refuse a task's roster that is malformed or not of the key's t-of-n (``TaskIn``'s check).

    Args:
        roster: the roster's JSON (``holders.json``).
        public_key: the task's threshold key JSON (its ``holders`` and ``threshold``).
        scheme: the task's scheme (only Paillier tasks have key holders).

    Raises:
        ValueError: what is wrong (pydantic turns it into a 422).
    """
    if scheme != "paillier":
        raise ValueError("roster: only for scheme 'paillier' (a Shamir task has no key holders)")
    try:
        parsed = Roster.from_json(roster)
    except InvalidInputError as exc:
        raise ValueError(f"roster: {exc}") from None
    key = public_key or {}
    holders, t = key.get("holders"), key.get("threshold")
    if type(holders) is int and type(t) is int:
        if parsed.size != holders or parsed.threshold != t:
            raise ValueError(
                f"roster: {parsed.threshold}-of-{parsed.size} signers, but the key is "
                f"{t}-of-{holders}: give the holders.json made with this key"
            )
        if sorted(parsed.keys) != list(range(1, holders + 1)):
            raise ValueError(f"roster: signer indices must be 1..{holders}, one per key holder")


def canonical_json(value: object) -> str:
    """The canonical JSON text of a value: sorted keys, no spaces, ASCII, no NaN.

    Args:
        value: a JSON-serialisable value (floats allowed: Python's shortest round-trip text).

    Returns:
        The text.

    Raises:
        InvalidInputError: the value is not JSON-serialisable or holds NaN or an infinity.
    """
    try:
        return json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
        )
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"not canonical JSON: {exc}") from None


def certificate_fields(
    info: TaskInfoOut, key: threshold.ThresholdPublicKey | None = None
) -> dict[str, object]:
    """The fields of a task's statement, rebuilt from the task's info as served.

    Args:
        info: the task's info (``GET /v1/tasks/{id}``), as the server serves it.
        key: the caller's parse of the served key, to save parsing it again (the statement
            then names this key's digest: a caller that encrypts under ``key`` checks that
            exactly this key was certified). Default: parsed from ``info``.

    Returns:
        The statement's fields (sign or verify them under :data:`CERTIFICATE_DOMAIN`).

    Raises:
        InvalidInputError: not a Paillier task, or its served key is malformed.
    """
    if info.scheme != "paillier" or info.public_key is None:
        raise InvalidInputError(
            f"task {info.task_id!r} uses the {info.scheme} scheme: only Paillier tasks are "
            "certified by key holders"
        )
    # Only the digest is needed here: the key's size is the caller's policy.
    if key is None:
        key = threshold.public_key_from_json(info.public_key, insecure=True)
    return {
        "task_id": info.task_id,
        "name": info.name,
        "scheme": info.scheme,
        "key_digest": key.digest.hex(),
        "holders": info.holders,
        "threshold": info.threshold,
        "length": info.length,
        "encoding": canonical_json(info.encoding.model_dump(mode="json")),
        "packing": canonical_json(info.packing) if info.packing is not None else None,
        "min_clients": info.min_clients,
        "max_clients": info.max_clients,
        "receipt_key": info.receipt_key,
        "validity": info.validity,
    }


def sign_certificate(info: TaskInfoOut, signing_key: SigningKey) -> CertificateIn:
    """A key holder's certificate of the task as served (the caller checks the key first).

    Args:
        info: the served task info.
        signing_key: the key holder's signing key.

    Returns:
        The upload body of ``POST /v1/tasks/{id}/certificates``.

    Raises:
        InvalidInputError: not a Paillier task, or a malformed served key.
    """
    fields = certificate_fields(info)
    return CertificateIn(signature=signing_key.sign_statement(CERTIFICATE_DOMAIN, fields))


def check_certificate(info: TaskInfoOut, roster: Roster, holder: int, signature: str) -> None:
    """Check one holder's certificate of the task against a roster (the server's check).

    Raises:
        SignatureError: the holder is not in the roster, or the signature does not verify.
        InvalidInputError: not a Paillier task, or a malformed served key.
    """
    key = roster.keys.get(holder)
    if key is None:
        raise SignatureError(f"holder {holder} is not in the task's roster")
    verify_statement(key, signature, CERTIFICATE_DOMAIN, certificate_fields(info))


def verify_certified(
    info: TaskInfoOut, roster: Roster, key: threshold.ThresholdPublicKey | None = None
) -> tuple[int, ...]:
    """Check that t holders of the pinned ``roster`` certified the task exactly as served.

    Also checks that the served holders and threshold are the roster's (a server claiming a
    3-of-5 key to clients that pinned a 3-of-5 roster must serve a 3-of-5 key: its digest is
    signed, and the key's own n and t must match the served ones, which the caller checks).

    Args:
        info: the served task info (its certificates included).
        roster: the key holders' roster the client pinned.
        key: the key the caller will encrypt under (its parse of the served key), if it has
            it: the check is then that exactly this key was certified (see
            :func:`certificate_fields`).

    Returns:
        The holders whose certificates verified, in increasing order.

    Raises:
        UncertifiedTaskError: fewer than ``roster.threshold`` valid certificates, or served
            holders/threshold other than the roster's; the message says how many signed, of
            how many needed, and what to do.
        InvalidInputError: not a Paillier task, or a malformed served key.
    """
    if info.holders != roster.size or info.threshold != roster.threshold:
        raise UncertifiedTaskError(
            f"task {info.task_id!r}: the server says the key is {info.threshold}-of-"
            f"{info.holders}, but the pinned roster is {roster.threshold}-of-{roster.size}: "
            "this is not the key holders' key; do not report to this task"
        )
    fields = certificate_fields(info, key)
    pairs = [(cert.holder, cert.signature) for cert in info.certificates]
    try:
        return roster.verify_quorum(pairs, CERTIFICATE_DOMAIN, fields)
    except SignatureError as exc:
        raise UncertifiedTaskError(
            f"task {info.task_id!r} is not certified by the pinned key holders ({exc}): "
            f"the server may have changed its key or parameters, or the holders have not "
            f"certified it yet; ask {roster.threshold} key holders to run `smpcloud certify` "
            "for this task"
        ) from None


__all__ = [
    "CERTIFICATE_DOMAIN",
    "CertificateAcceptedOut",
    "CertificateIn",
    "CertificateOut",
    "canonical_json",
    "certificate_fields",
    "check_certificate",
    "check_task_roster",
    "sign_certificate",
    "verify_certified",
]

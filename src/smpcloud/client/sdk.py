"""Typed SDK for the aggregation service: :class:`Admin`, :class:`Client`, :class:`KeyHolder`.

Each object holds one HTTP connection (``httpx``) with one bearer token; use it as a context
manager or call :meth:`disconnect`. Everything secret stays local: clients encode and encrypt
their values on their own machine, key holders partial-decrypt with their own key share; only
ciphertexts, partial decryptions and proofs go over the wire. Tokens are never put in messages
or ``repr``.

Errors: the server's problem documents come back as the matching exception class (see
:mod:`smpcloud.protocol.problems`), carrying the server's message; an unreachable server or a broken
connection raises :class:`~smpcloud.errors.TransportError`.

Trust: a client encrypts under the key the server serves for the task. Pass ``public_key=`` to
:class:`Client` to pin the key obtained from the key ceremony instead; key holders always check
that the task's key is the one their share belongs to.

Packed vector tasks (``Admin.create_task(..., packing=Packing.for_key(...))``): clients'
vectors are packed many values to a ciphertext (:mod:`smpcloud.crypto.packing`), key holders
send one batched partial decryption with one proof, and the result holds one sum and average
per value; nothing else changes for the caller. Heavy local work (a client's encryption, a key
holder's exponentiations) can use every core through a :class:`smpcloud.parallel.CryptoPool`.

Where the parts live: the value types in :mod:`smpcloud.client.models`, the administrator in
:mod:`smpcloud.client.admin`, the data owner (and :func:`prepare_report`) in
:mod:`smpcloud.client.data_owner`, the key holder in :mod:`smpcloud.client.keyholder`, the
shared connection plumbing in ``smpcloud.client._participant``. This module gathers them, so
that ``from smpcloud.client.sdk import Admin`` keeps working.
"""

from smpcloud.client.admin import Admin
from smpcloud.client.data_owner import CLASSIC_ENCRYPTION_MAX, Client, prepare_report
from smpcloud.client.keyholder import HOLDER_TIMEOUT as HOLDER_TIMEOUT
from smpcloud.client.keyholder import KeyHolder
from smpcloud.client.models import (
    ClientCredentials,
    PreparedReport,
    TaskCreated,
    TaskInfo,
    TaskList,
    TaskResult,
    TaskStatus,
    TaskSummary,
)

__all__ = [
    "CLASSIC_ENCRYPTION_MAX",
    "Admin",
    "Client",
    "ClientCredentials",
    "KeyHolder",
    "PreparedReport",
    "TaskCreated",
    "TaskInfo",
    "TaskList",
    "TaskResult",
    "TaskStatus",
    "TaskSummary",
    "prepare_report",
]

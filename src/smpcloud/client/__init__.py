"""Client SDK of the aggregation service: administrators, clients (data owners), key holders.

```python
from smpcloud.client import Admin, Client, KeyHolder, TaskEncoding
from smpcloud.crypto import threshold
from smpcloud.crypto.signatures import Roster, SigningKey

public_key, shares = threshold.deal(3072, n=5, t=3)          # key ceremony
signing = [SigningKey.generate() for _ in shares]             # one per key holder
roster = Roster(3, {s.index: k.verify_key for s, k in zip(shares, signing)})  # holders.json
with Admin(url, admin_token) as admin:
    task = admin.create_task(public_key, name="average BMI", min_clients=10,
                             encoding=TaskEncoding.fixed(16, 0.0, 100.0), roster=roster)
    creds = admin.register_clients(task.task_id, 100)
for i in (0, 2, 4):                                           # t holders certify the task
    with KeyHolder(url, task.task_id, task.holder_tokens[i], shares[i]) as holder:
        holder.certify(signing[i])
with Client(url, task.task_id, creds[0].token, holders=roster) as client:  # pins the holders
    client.submit(23.4)                                       # refuses an uncertified task
admin.close(task.task_id)
with KeyHolder(url, task.task_id, task.holder_tokens[0], shares[0]) as holder:
    holder.contribute()                                       # t of the n holders do this
admin.result(task.task_id)                                    # sum, count, average
```

Shamir mode (n aggregation servers, one Shamir share of each client each; any t rebuild the
sum): :class:`ShamirAggregation` (administrator and analyst) and :class:`ShamirClient`, see
:mod:`smpcloud.client.shamir`.

Bulk upload, for callers that carry many clients' prepared reports (simulations, benchmarks,
gateways): :func:`upload_reports` and :func:`upload_shares`, see :mod:`smpcloud.client.uploads`.

Receipts and the report log (Paillier tasks): :meth:`Client.submit` returns the server's
signed :class:`Receipt`; :func:`verify_receipt` checks that the published log includes the
report (and, with the key holders' roster, that t of them attested it); :meth:`KeyHolder.
contribute` refuses to decrypt an aggregate that is not the product of exactly the logged
reports (:class:`AggregateVerificationError`), see :mod:`smpcloud.client.aggregate_check`.

Server errors come back as exceptions (:mod:`smpcloud.protocol.problems`), connection problems as
:class:`~smpcloud.errors.TransportError`.
"""

from smpcloud.client.aggregate_check import AggregateCheck
from smpcloud.client.models import CertificateAccepted, Receipt
from smpcloud.client.receipts import ReceiptCheck, verify_receipt
from smpcloud.client.sdk import (
    CLASSIC_ENCRYPTION_MAX,
    Admin,
    Client,
    ClientCredentials,
    KeyHolder,
    PreparedReport,
    TaskCreated,
    TaskInfo,
    TaskList,
    TaskResult,
    TaskStatus,
    TaskSummary,
    prepare_report,
)
from smpcloud.client.shamir import (
    DuplicateShareKeyError,
    InsecureServerURLError,
    ShamirAggregation,
    ShamirClient,
    ShamirClosed,
    ShamirCredentials,
    ShamirEndpoint,
    ShamirPreparedReport,
    ShamirResult,
    ShamirServer,
    ShamirSubmission,
    ShamirTask,
    ShamirTaskInfo,
    SharedHostError,
    ShareKeyMismatchError,
    check_credentials,
    prepare_shares,
)
from smpcloud.client.uploads import UploadError, UploadSummary, upload_reports, upload_shares
from smpcloud.protocol.problems import (
    AuthenticationError,
    ConflictError,
    DuplicateSubmissionError,
    InsufficientReportsError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    ServiceError,
    TaskStateError,
    UncertifiedTaskError,
)
from smpcloud.protocol.receipts import AggregateVerificationError, ReceiptVerificationError
from smpcloud.protocol.schemas import INTEGER_ENCODING, TaskEncoding

__all__ = [
    "CLASSIC_ENCRYPTION_MAX",
    "INTEGER_ENCODING",
    "Admin",
    "AggregateCheck",
    "AggregateVerificationError",
    "AuthenticationError",
    "CertificateAccepted",
    "Client",
    "ClientCredentials",
    "ConflictError",
    "DuplicateShareKeyError",
    "DuplicateSubmissionError",
    "InsecureServerURLError",
    "InsufficientReportsError",
    "KeyHolder",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "PreparedReport",
    "Receipt",
    "ReceiptCheck",
    "ReceiptVerificationError",
    "ServiceError",
    "ShamirAggregation",
    "ShamirClient",
    "ShamirClosed",
    "ShamirCredentials",
    "ShamirEndpoint",
    "ShamirPreparedReport",
    "ShamirResult",
    "ShamirServer",
    "ShamirSubmission",
    "ShamirTask",
    "ShamirTaskInfo",
    "ShareKeyMismatchError",
    "SharedHostError",
    "TaskCreated",
    "TaskEncoding",
    "TaskInfo",
    "TaskList",
    "TaskResult",
    "TaskStateError",
    "TaskStatus",
    "TaskSummary",
    "UncertifiedTaskError",
    "UploadError",
    "UploadSummary",
    "check_credentials",
    "prepare_report",
    "prepare_shares",
    "upload_reports",
    "upload_shares",
    "verify_receipt",
]

"""The service's exceptions as the SDK raises them again.

They are defined in the wire contract, :mod:`smpcloud.protocol.problems`, which the service
also depends on; this module re-exports them under the SDK's name so that
``from smpcloud.client.errors import TaskStateError`` keeps working.
"""

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
)

__all__ = [
    "AuthenticationError",
    "ConflictError",
    "DuplicateSubmissionError",
    "InsufficientReportsError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "ServiceError",
    "TaskStateError",
]

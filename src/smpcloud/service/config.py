"""Settings of the aggregation service. Built explicitly (never at import time) and validated."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Final, Literal

from smpcloud.errors import InvalidInputError
from smpcloud.service.logs import LOG_FORMATS, LogFormat

MetricsAccess = Literal["admin", "public"]
METRICS_ACCESS: Final[tuple[MetricsAccess, ...]] = ("admin", "public")

DEFAULT_DB_URL: Final = "sqlite:///smpcloud.db"
# A packed report of 10^5 values (1,177 ciphertexts at 2048 bits) is ~0.8 MB of JSON, a key
# holder's batch about the same, its per-ciphertext partials with proofs ~1.9 MB.
DEFAULT_MAX_BODY_BYTES: Final = 8 << 20
# Ciphertexts per report. 2048 admits the packed reference case (10^5 values in 1,177
# ciphertexts at 2048 bits) with room to spare. A key holder's upload costs the server one
# batched proof check (~0.2 s for 1,177 ciphertexts) or, in the per-ciphertext form, one proof
# check per ciphertext (~40 ms each: ~80 s for 2048, in a worker thread).
DEFAULT_MAX_VECTOR_LENGTH: Final = 2048
MIN_ADMIN_TOKEN_CHARS: Final = 16

# Lower-cased fragments that mark a placeholder, not a secret.
_PLACEHOLDER_FRAGMENTS: Final = (
    "changeme",
    "change-me",
    "change_me",
    "changethis",
    "placeholder",
    "replaceme",
    "example",
    "yourtoken",
    "your-token",
    "your_token",
    "insecure",
)
# Words whose mere repetition (with digits or punctuation) is not a secret.
_PLACEHOLDER_WORDS: Final = frozenset(
    {"password", "secret", "admin", "token", "test", "default", "x", "a", "abc", "qwerty"}
)
_MIN_DISTINCT_CHARS: Final = 8


def _is_repetition(letters: str) -> bool:
    for word in _PLACEHOLDER_WORDS:
        if (
            letters
            and len(letters) % len(word) == 0
            and word * (len(letters) // len(word)) == letters
        ):
            return True
    return False


def check_admin_token(token: str) -> None:
    """Refuse an administrator token that is empty, short or a well-known placeholder.

    Rules: at least 16 characters, at least 8 distinct characters, no surrounding whitespace,
    no fragment such as "changeme" or "example", not a repetition of words like "secret".

    Raises:
        InvalidInputError: with a message that never repeats the token.
    """
    if not isinstance(token, str) or not token.strip():
        raise InvalidInputError("the administrator token is empty")
    if token != token.strip():
        raise InvalidInputError("the administrator token has leading or trailing whitespace")
    if len(token) < MIN_ADMIN_TOKEN_CHARS:
        raise InvalidInputError(
            f"the administrator token must have at least {MIN_ADMIN_TOKEN_CHARS} characters "
            "(make one with: python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    lowered = token.lower()
    letters = "".join(ch for ch in lowered if ch.isalpha())
    if (
        any(fragment in lowered for fragment in _PLACEHOLDER_FRAGMENTS)
        or _is_repetition(letters)
        or len(set(token)) < _MIN_DISTINCT_CHARS
    ):
        raise InvalidInputError(
            "the administrator token looks like a placeholder; use a random one"
        )


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the service needs to start.

    Attributes:
        admin_token: the administrator's bearer token (at least 16 characters, not a
            placeholder). Redacted in ``repr``.
        db_url: any SQLAlchemy URL; SQLite files get WAL, synchronous=FULL and a busy timeout.
        max_body_bytes: largest request body accepted (413 above it).
        max_vector_length: largest number of ciphertexts per report a task may declare (its
            length, or for a packed task the layout's number of ciphertexts).
        allow_insecure_keys: accept threshold keys below 2048 bits (tests only).
        deadline_poll_seconds: how often the background loop closes tasks whose deadline passed
            (requests also close them lazily).
        db_busy_timeout_seconds: how long a SQLite writer waits for another process's lock.
        workers: processes for aggregation and combining (:class:`smpcloud.parallel.CryptoPool`);
            None = every CPU this process may use, 1 = inline in the request's thread.
        log_format: ``"text"`` (uvicorn's access log) or ``"json"`` (one JSON object per
            line; the service writes its own access line per request, with its request id,
            route template, status and duration: :mod:`smpcloud.service.logs`).
        metrics: who may read ``GET /metrics``: ``"admin"`` (the administrator's bearer token)
            or ``"public"`` (anyone who reaches the server; see :mod:`smpcloud.service.metrics`
            for what the metrics reveal).
        dask_scheduler: the address of a Dask scheduler (``tcp://HOST:PORT``); when given,
            aggregation, report verification and combining run on that cluster
            (:class:`smpcloud.parallel.dask_pool.DaskPool`) instead of ``workers`` processes.
            Its workers see the ciphertexts the server sees.

    Raises:
        InvalidInputError: for a weak admin token or out-of-range limits.
    """

    admin_token: str = field(repr=False)
    db_url: str = DEFAULT_DB_URL
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_vector_length: int = DEFAULT_MAX_VECTOR_LENGTH
    allow_insecure_keys: bool = False
    deadline_poll_seconds: float = 1.0
    db_busy_timeout_seconds: float = 30.0
    workers: int | None = None
    log_format: LogFormat = "text"
    metrics: MetricsAccess = "admin"
    dask_scheduler: str | None = None

    def __post_init__(self) -> None:
        check_admin_token(self.admin_token)
        if self.log_format not in LOG_FORMATS:
            raise InvalidInputError(f"log_format must be one of {', '.join(LOG_FORMATS)}")
        if self.metrics not in METRICS_ACCESS:
            raise InvalidInputError(f"metrics must be one of {', '.join(METRICS_ACCESS)}")
        if not self.db_url:
            raise InvalidInputError("db_url is empty")
        if not 1024 <= self.max_body_bytes <= 1 << 30:
            raise InvalidInputError("max_body_bytes must be in [1 KiB, 1 GiB]")
        if not 1 <= self.max_vector_length <= 1 << 20:
            raise InvalidInputError("max_vector_length must be in [1, 2^20]")
        # Imported here: smpcloud.parallel loads numpy, which `smpcloud --help` need not pay for.
        from smpcloud.parallel import MAX_WORKERS

        if self.workers is not None and (
            type(self.workers) is not int or not 1 <= self.workers <= MAX_WORKERS
        ):
            raise InvalidInputError(f"workers must be None or an int in [1, {MAX_WORKERS}]")
        if self.dask_scheduler is not None and (
            not isinstance(self.dask_scheduler, str)
            or not self.dask_scheduler
            or any(ch.isspace() for ch in self.dask_scheduler)
        ):
            raise InvalidInputError("dask_scheduler must be an address such as tcp://HOST:8786")
        for name in ("deadline_poll_seconds", "db_busy_timeout_seconds"):
            value = getattr(self, name)
            if not math.isfinite(value) or not 0.01 <= value <= 3600:
                raise InvalidInputError(f"{name} must be in [0.01, 3600]")


__all__ = [
    "DEFAULT_DB_URL",
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_VECTOR_LENGTH",
    "METRICS_ACCESS",
    "MetricsAccess",
    "Settings",
    "check_admin_token",
]

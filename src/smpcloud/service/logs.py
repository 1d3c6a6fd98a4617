"""The service's logs: the request id of the request being served, and JSON lines.

:data:`REQUEST_ID` is a context variable that
:class:`~smpcloud.service.middleware.RequestContextMiddleware` sets for the duration of each
HTTP request (from a sane ``X-Request-ID`` header, or a fresh uuid4 hex), so that every log
record emitted while serving the request, by any logger, can carry it.

:class:`JsonFormatter` writes one JSON object per line::

    {"time": "2026-12-03T20:01:02.345Z", "level": "INFO", "logger": "smpcloud.access",
     "message": "POST /v1/tasks/{task_id}/reports 201", "request_id": "9f1c...",
     "method": "POST", "route": "/v1/tasks/{task_id}/reports", "status": 201,
     "duration_ms": 2.31, "task_id": "3b0e..."}

What a line may hold is a fixed list (:data:`LOG_FIELDS`): the formatter never dumps a
record's other attributes, so whatever a caller passes in ``extra`` does not reach the log
unless it is one of these fields. Tokens, request bodies, ciphertexts and shares are never
among them; the messages themselves follow the package's rule that no exception message or
log message holds a secret. A small class of our own rather than ``python-json-logger``: that
library writes every ``extra`` attribute by default, the opposite of the whitelist wanted here,
and forty lines do not justify a dependency.

:func:`configure_logging` installs the root handler for ``smpcloud serve`` in either format.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Final, Literal

LogFormat = Literal["text", "json"]
LOG_FORMATS: Final[tuple[LogFormat, ...]] = ("text", "json")

#: The id of the HTTP request being served in this context, None outside a request.
REQUEST_ID: Final[ContextVar[str | None]] = ContextVar("smpcloud_request_id", default=None)

#: The record attributes a JSON line may carry besides time, level, logger, message and
#: request_id (set as ``extra`` by the access log of
#: :class:`~smpcloud.service.middleware.RequestContextMiddleware`).
LOG_FIELDS: Final = ("method", "route", "status", "duration_ms", "task_id")

#: A request id a client may choose: at most 64 characters of [A-Za-z0-9._-].
_SANE_REQUEST_ID: Final = re.compile(r"[A-Za-z0-9._-]{1,64}")

TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def sane_request_id(value: str | None) -> str | None:
    """Return ``value`` if it is an acceptable request id (<= 64 of [A-Za-z0-9._-]), else None.

    Args:
        value: the ``X-Request-ID`` header's value, if any.

    Returns:
        The value, or None when it is missing, empty, too long or has another character.
    """
    if value is None or _SANE_REQUEST_ID.fullmatch(value) is None:
        return None
    return value


def current_request_id() -> str | None:
    """Return the id of the request being served in this context, or None."""
    return REQUEST_ID.get()


class JsonFormatter(logging.Formatter):
    """Format each record as one JSON object on one line (see the module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as a JSON line: the fixed fields, and an exception if any.

        Args:
            record: the log record.

        Returns:
            One line of JSON (non-ASCII characters escaped, so the line is plain ASCII).
        """
        moment = datetime.fromtimestamp(record.created, tz=UTC)
        line: dict[str, object] = {
            "time": moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or REQUEST_ID.get()
        if request_id is not None:
            line["request_id"] = request_id
        for name in LOG_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure_logging(level: str, log_format: LogFormat) -> None:
    """Send every log record to standard error, as human text or as JSON lines.

    Args:
        level: a :mod:`logging` level name (``"info"``, ``"DEBUG"``, ...).
        log_format: ``"text"`` (``time LEVEL logger: message``) or ``"json"``.
    """
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)


__all__ = [
    "LOG_FIELDS",
    "LOG_FORMATS",
    "REQUEST_ID",
    "TEXT_FORMAT",
    "JsonFormatter",
    "LogFormat",
    "configure_logging",
    "current_request_id",
    "sane_request_id",
]

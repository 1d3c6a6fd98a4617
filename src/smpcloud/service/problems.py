"""The one place where exceptions become HTTP statuses and ``application/problem+json`` bodies.

Every error response of the service is an RFC 9457 problem document::

    {"type": "urn:smpcloud:problem:duplicate-submission", "title": "Duplicate submission",
     "status": 409, "detail": "client 7 has already submitted its report; ..."}

``type``, ``status`` and ``title`` come from :data:`smpcloud.protocol.problems.PROBLEM_TYPES`
(shared with the SDK, which raises the same exception class again); ``detail`` is the exception's
message, which by the package's conventions never contains secrets. Invalid partial
decryptions add a ``holders`` member (the 1-based indices of the key holders at fault);
invalid validity proofs a ``check`` member (the failed check's stable name).
Unexpected exceptions give a 500 whose detail says nothing about the cause (it is logged).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from smpcloud.crypto.threshold import InvalidPartialDecryptionError
from smpcloud.errors import InvalidProofError, SmpcError
from smpcloud.protocol.problems import (
    PROBLEM_URN_PREFIX,
    AuthenticationError,
    problem_type_for,
)

logger = logging.getLogger("smpcloud.service")

PROBLEM_MEDIA_TYPE: Final = "application/problem+json"

_HTTP_SLUGS: Final = {
    400: ("bad-request", "Bad request"),
    401: ("authentication-required", "Authentication required"),
    403: ("permission-denied", "Permission denied"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    413: ("payload-too-large", "Request body too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
    422: ("invalid-input", "Invalid input"),
}


def problem_response(
    status: int,
    slug: str,
    title: str,
    detail: str,
    *,
    extra: dict[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """Build a problem+json response."""
    body: dict[str, Any] = {
        "type": PROBLEM_URN_PREFIX + slug,
        "title": title,
        "status": status,
        "detail": detail,
    }
    if extra:
        body.update(extra)
    if status == 401:
        headers = {**(headers or {}), "WWW-Authenticate": "Bearer"}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def problem_for_exception(
    exc: SmpcError, *, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """Map an smpcloud exception to its problem response (see the module docstring).

    Args:
        exc: the exception.
        headers: extra response headers (e.g. ``Connection: close``).

    Returns:
        The problem+json response.
    """
    row = problem_type_for(exc)
    extra: dict[str, Any] | None = None
    if isinstance(exc, InvalidPartialDecryptionError):
        extra = {"holders": list(exc.holders)}
    elif isinstance(exc, InvalidProofError):
        extra = {"check": exc.check}
    if row.status >= 500:
        logger.error("internal error: %s", type(exc).__name__)
        return problem_response(
            row.status, row.slug, row.title, "internal server error", headers=headers
        )
    return problem_response(
        row.status, row.slug, row.title, str(exc) or row.title, extra=extra, headers=headers
    )


def summarize_validation_error(exc: RequestValidationError) -> str:
    """Describe request validation errors by location and message, never by input value."""
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ()))
        msg = str(err.get("msg", "invalid"))
        ctx = err.get("ctx") or {}
        if err.get("type") == "json_invalid" and "error" in ctx:
            msg = f"{msg} ({ctx['error']})"
        parts.append(f"{loc}: {msg}" if loc else msg)
    more = len(exc.errors()) - 5
    if more > 0:
        parts.append(f"and {more} more")
    return "invalid request: " + "; ".join(parts)


def install_problem_handlers(app: FastAPI) -> None:
    """Register the handlers that turn every error into a problem document."""

    async def on_smpc_error(_request: Request, exc: Exception) -> JSONResponse:
        if not isinstance(exc, SmpcError):  # pragma: no cover - registered for SmpcError
            raise exc
        return problem_for_exception(exc)

    async def on_validation_error(_request: Request, exc: Exception) -> JSONResponse:
        if not isinstance(exc, RequestValidationError):  # pragma: no cover
            raise exc
        return problem_response(
            422, "invalid-input", "Invalid input", summarize_validation_error(exc)
        )

    async def on_http_error(_request: Request, exc: Exception) -> JSONResponse:
        if not isinstance(exc, StarletteHTTPException):  # pragma: no cover
            raise exc
        slug, title = _HTTP_SLUGS.get(exc.status_code, ("http-error", "HTTP error"))
        detail = exc.detail if isinstance(exc.detail, str) else title
        if exc.status_code == 401:
            return problem_for_exception(AuthenticationError(detail))
        return problem_response(exc.status_code, slug, title, detail, headers=exc.headers)

    async def on_unexpected(_request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unexpected %s while serving a request", type(exc).__name__)
        return problem_response(
            500, "internal-error", "Internal server error", "internal server error"
        )

    app.add_exception_handler(SmpcError, on_smpc_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)


__all__ = [
    "PROBLEM_MEDIA_TYPE",
    "install_problem_handlers",
    "problem_for_exception",
    "problem_response",
    "summarize_validation_error",
]

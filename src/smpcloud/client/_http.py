"""One authenticated HTTP connection to the service; server errors become smpcloud exceptions."""

from __future__ import annotations

import functools
import ssl
from types import TracebackType
from typing import Any, Final, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from smpcloud import __version__
from smpcloud.errors import InvalidInputError, TransportError
from smpcloud.protocol.problems import ServiceError, exception_from_problem

DEFAULT_TIMEOUT: Final = 60.0
ModelT = TypeVar("ModelT", bound=BaseModel)


@functools.cache
def _default_ssl_context() -> ssl.SSLContext:
    """httpx's default verifying context, built once per process (loading CAs takes ~20 ms)."""
    return httpx.create_ssl_context()


class Connection:
    """An ``httpx.Client`` bound to a base URL and a bearer token (never shown in messages).

    Args:
        base_url: the service's root, e.g. ``http://127.0.0.1:8000``.
        token: the bearer token.
        timeout: seconds for connecting, reading and writing.
        transport: an ``httpx`` transport to use instead of the network (e.g. to route the
            SDK to an in-process ASGI app).
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise InvalidInputError("base_url must start with http:// or https://")
        if not isinstance(token, str) or not token:
            raise InvalidInputError("a token is required")
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=timeout,
            transport=transport,
            verify=_default_ssl_context(),
            headers={
                "Authorization": f"Bearer {token}",
                "User-Agent": f"smpcloud/{__version__}",
                "Accept": "application/json, application/problem+json",
            },
        )

    def close(self) -> None:
        """Close the underlying connections."""
        self._http.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def request(
        self,
        method: str,
        path: str,
        model: type[ModelT],
        *,
        json: Any = None,
        expected: int = 200,
        token: str | None = None,
    ) -> ModelT:
        """Send a request and parse the expected response with ``model``.

        ``token`` authenticates this one request with another bearer token than the
        connection's (a gateway or a simulation uploading many clients' reports over one
        keep-alive connection, each with its own client's token).

        Raises:
            TransportError: the service could not be reached, or the connection broke.
            SmpcError: the class the server reported (see :mod:`smpcloud.protocol.problems`),
                with the server's detail as its message.
            ServiceError: a response that is not what the API promises.
        """
        try:
            headers = None if token is None else {"Authorization": f"Bearer {token}"}
            response = self._http.request(method, path, json=json, headers=headers)
        except httpx.TransportError as exc:
            raise TransportError(
                f"{method} {self.base_url}{path}: {type(exc).__name__}: {exc}"
            ) from exc
        if response.status_code != expected:
            try:
                problem: object = response.json()
            except ValueError:
                problem = None
            error = exception_from_problem(response.status_code, problem)
            error.add_note(f"{method} {path} -> HTTP {response.status_code}")
            raise error
        try:
            return model.model_validate_json(response.content)
        except ValidationError as exc:
            raise ServiceError(
                f"{method} {path}: unexpected response ({exc.error_count()} schema error(s))"
            ) from None


def task_path(task_id: str, *rest: str) -> str:
    """The API path of a task (``/v1/tasks/<id>/<rest...>``), the id percent-encoded."""
    if not isinstance(task_id, str) or not task_id:
        raise InvalidInputError("task_id must be a non-empty string")
    return "/".join(("/v1/tasks", quote(task_id, safe=""), *rest))


def validation_summary(exc: ValidationError) -> str:
    """Describe up to five schema errors by location and message, never by input value."""
    parts = []
    for err in exc.errors(include_url=False, include_input=False)[:5]:
        loc = ".".join(str(p) for p in err["loc"])
        parts.append(f"{loc}: {err['msg']}" if loc else str(err["msg"]))
    return "; ".join(parts)


__all__ = ["DEFAULT_TIMEOUT", "Connection", "task_path", "validation_summary"]

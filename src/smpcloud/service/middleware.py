"""ASGI middleware: request ids and timing; authenticate before a large body, then bound its size.

:class:`RequestContextMiddleware` (outermost of all). Gives each HTTP request an id (the
client's ``X-Request-ID`` when it is a sane token, <= 64 characters of [A-Za-z0-9._-], else a
fresh uuid4 hex), sets it in :data:`smpcloud.service.logs.REQUEST_ID` while the request is
served (so every JSON log line of the request carries it), returns it in the ``X-Request-ID``
response header (of every answer, problem documents included; not in their bodies, so that
two refusals of the same kind stay byte-identical), and reports the request's method, route
template, status and duration to a callback (metrics, the JSON access log) once the response
is sent.

:class:`AuthenticateFirstMiddleware` (outermost). FastAPI reads and parses a route's whole
body before its dependencies run, authentication included, so without this layer anyone could
make the server hold ``max_body_bytes`` per connection without a token (measured: 32
unauthenticated 8 MiB posts took the server from 100 to 253 MB). A request whose body may
exceed :data:`PREAUTH_BODY_BYTES` (a larger ``Content-Length``, or a chunked body) is therefore
authenticated from its headers first, with the same check as the routes (one SHA-256 and one
indexed read): the administrator's token, or a token of the task named in the path. Anything
else is answered 401/403 (with ``Connection: close``) before a byte of the body is read. The
route still checks the token's role afterwards. Small bodies cost nothing extra.

:class:`BodySizeLimitMiddleware`. Two checks, so that neither an honest ``Content-Length`` nor
a chunked stream can get past:

1. a declared ``Content-Length`` above the limit is refused before reading anything;
2. the body is read here, counting bytes as they stream in, and refused as soon as the count
   passes the limit; otherwise it is handed to the application in one piece.

Buffering here costs nothing extra: every route reads its whole (JSON) body anyway.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from smpcloud.errors import SmpcError
from smpcloud.service.logs import REQUEST_ID, sane_request_id
from smpcloud.service.problems import problem_for_exception, problem_response

#: Bodies up to this size are read before authentication (as FastAPI does); larger ones after.
PREAUTH_BODY_BYTES: Final = 64 << 10

_TASK_PATH: Final = re.compile(r"^/v1/tasks/([^/]+)(?:/.*)?$")

Authenticate = Callable[[str | None, str | None], object]
"""``(token, task_id) -> anything``: raises an :class:`~smpcloud.errors.SmpcError` (401, 403,
404) unless the token may act on the task (``task_id`` None: the administrator's only)."""


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value)
    return None


def bearer_token(scope: Scope) -> str | None:
    """Return the token of an ``Authorization: Bearer <token>`` header, else None."""
    raw = _header(scope, b"authorization")
    if raw is None:
        return None
    scheme, _, token = raw.decode("latin-1").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def task_of_path(scope: Scope) -> str | None:
    """Return the task id of a ``/v1/tasks/{task_id}/...`` path, else None."""
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    match = _TASK_PATH.match(path)
    return match.group(1) if match else None


def body_may_exceed(scope: Scope, size: int) -> bool:
    """Whether the request's body may be larger than ``size`` bytes, judged by its headers."""
    declared = _header(scope, b"content-length")
    if declared is not None:
        return not declared.isdigit() or int(declared) > size
    return _header(scope, b"transfer-encoding") is not None


#: The route label of a request that matched no route (its raw path is never a label).
UNMATCHED_ROUTE: Final = "unmatched"


@dataclass(frozen=True, slots=True)
class RequestDone:
    """What :class:`RequestContextMiddleware` reports about an answered request.

    Attributes:
        request_id: the request's id (also in the ``X-Request-ID`` response header).
        method: the HTTP method.
        route: the matched route's template (``/v1/tasks/{task_id}``), or
            :data:`UNMATCHED_ROUTE`.
        status: the response's status (500 if the application raised before answering).
        seconds: from the request's arrival here to the end of its response.
        task_id: the task id of a ``/v1/tasks/{task_id}/...`` path, else None (a client's
            string until the route found the task: log it only for a status that proves it).
    """

    request_id: str
    method: str
    route: str
    status: int
    seconds: float
    task_id: str | None


def route_template(scope: Scope) -> str:
    """Return the template of the route that served ``scope`` (after the call), or unmatched."""
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) and path else UNMATCHED_ROUTE


class RequestContextMiddleware:
    """Give each HTTP request an id and report it when answered (see the module docstring).

    Args:
        app: the application.
        on_done: called (on the event loop: keep it cheap) once per answered request.
    """

    def __init__(self, app: ASGIApp, on_done: Callable[[RequestDone], None]) -> None:
        self.app = app
        self.on_done = on_done

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = _header(scope, b"x-request-id")
        request_id = sane_request_id(given.decode("latin-1") if given is not None else None)
        if request_id is None:
            request_id = uuid.uuid4().hex
        header = (b"x-request-id", request_id.encode("ascii"))
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message = {**message, "headers": [*message.get("headers", ()), header]}
            await send(message)

        token = REQUEST_ID.set(request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            REQUEST_ID.reset(token)
            self.on_done(
                RequestDone(
                    request_id=request_id,
                    method=str(scope.get("method", "")),
                    route=route_template(scope),
                    status=status,
                    seconds=time.perf_counter() - started,
                    task_id=task_of_path(scope),
                )
            )


class AuthenticateFirstMiddleware:
    """Authenticate a request from its headers before reading a body that may be large.

    Args:
        app: the application.
        authenticate: see :data:`Authenticate`.
        threshold: bodies that may exceed this many bytes are authenticated first.
    """

    def __init__(
        self, app: ASGIApp, authenticate: Authenticate, threshold: int = PREAUTH_BODY_BYTES
    ) -> None:
        self.app = app
        self.authenticate = authenticate
        self.threshold = threshold

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and body_may_exceed(scope, self.threshold):
            # On the event loop, like the routes' authentication (see smpcloud.service.app).
            try:
                self.authenticate(bearer_token(scope), task_of_path(scope))
            except SmpcError as exc:
                response = problem_for_exception(exc, headers={"Connection": "close"})
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class BodySizeLimitMiddleware:
    """Refuse HTTP requests whose body exceeds ``max_body_bytes`` (413), pass others on."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_body_bytes
        declared = None
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                declared = value
                break
        if declared is not None:
            if not declared.isdigit() or len(declared) > 18:
                response = problem_response(
                    400, "bad-request", "Bad request", "invalid Content-Length header"
                )
                await response(scope, receive, send)
                return
            if int(declared) > limit:
                await self._too_large(scope, receive, send, f"{int(declared)} bytes declared")
                return
        chunks: list[bytes] = []
        total = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # http.disconnect: nobody to answer
                return
            body = message.get("body", b"")
            total += len(body)
            if total > limit:
                await self._too_large(scope, receive, send, f"more than {limit} bytes sent")
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        replayed = False
        whole = b"".join(chunks)

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": whole, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send, what: str) -> None:
        response = problem_response(
            413,
            "payload-too-large",
            "Request body too large",
            f"request body too large ({what}); this server accepts at most "
            f"{self.max_body_bytes} bytes",
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)


__all__ = [
    "PREAUTH_BODY_BYTES",
    "UNMATCHED_ROUTE",
    "Authenticate",
    "AuthenticateFirstMiddleware",
    "BodySizeLimitMiddleware",
    "RequestContextMiddleware",
    "RequestDone",
    "bearer_token",
    "body_may_exceed",
    "route_template",
    "task_of_path",
]

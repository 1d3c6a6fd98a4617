"""ASGI middleware that bounds request bodies (HTTP 413 with a problem document).

Two checks, so that neither an honest ``Content-Length`` nor a chunked stream can get past:

1. a declared ``Content-Length`` above the limit is refused before reading anything;
2. the body is read here, counting bytes as they stream in, and refused as soon as the count
   passes the limit; otherwise it is handed to the application in one piece.

Buffering here costs nothing extra: every route reads its whole (JSON) body anyway.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from smpcloud.service.problems import problem_response


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


__all__ = ["BodySizeLimitMiddleware"]

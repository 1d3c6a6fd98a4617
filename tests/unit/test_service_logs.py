"""Request ids and JSON log lines: the formatter, the id's rules, the middleware on its own."""

from __future__ import annotations

import asyncio
import json
import logging
import sys

import pytest

from smpcloud.service.logs import (
    REQUEST_ID,
    JsonFormatter,
    current_request_id,
    sane_request_id,
)
from smpcloud.service.middleware import UNMATCHED_ROUTE, RequestContextMiddleware, RequestDone


def record(message: str = "hello %s", *args: object, **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("smpcloud.test", logging.INFO, __file__, 1, message, args, None)
    for name, value in extra.items():
        setattr(rec, name, value)
    return rec


@pytest.mark.parametrize("good", ["a", "abc-DEF_123.x", "9f1c" * 16])
def test_sane_request_ids_are_kept(good: str) -> None:
    assert sane_request_id(good) == good


@pytest.mark.parametrize(
    "bad", [None, "", "x" * 65, "has space", "semi;colon", "new\nline", "é", "a/b", "tab\t"]
)
def test_other_request_ids_are_refused(bad: str | None) -> None:
    assert sane_request_id(bad) is None


def test_a_json_line_holds_the_fixed_fields_and_nothing_else() -> None:
    rec = record(
        "POST %s %d",
        "/v1/tasks/{task_id}/reports",
        201,
        method="POST",
        route="/v1/tasks/{task_id}/reports",
        status=201,
        duration_ms=2.5,
        task_id="t1",
        token="s3cret-token",  # a test value: must not reach the line
        body='{"ciphertexts": ["AAAA"]}',
    )
    line = JsonFormatter().format(rec)
    assert "\n" not in line
    data = json.loads(line)
    assert data.pop("time").endswith("Z")
    assert data == {
        "level": "INFO",
        "logger": "smpcloud.test",
        "message": "POST /v1/tasks/{task_id}/reports 201",
        "method": "POST",
        "route": "/v1/tasks/{task_id}/reports",
        "status": 201,
        "duration_ms": 2.5,
        "task_id": "t1",
    }
    assert "s3cret" not in line and "ciphertexts" not in line


def test_the_request_id_comes_from_the_context_or_the_record() -> None:
    formatter = JsonFormatter()
    assert "request_id" not in json.loads(formatter.format(record()))
    token = REQUEST_ID.set("rid-1")
    try:
        assert current_request_id() == "rid-1"
        assert json.loads(formatter.format(record()))["request_id"] == "rid-1"
        explicit = record(request_id="rid-2")
        assert json.loads(formatter.format(explicit))["request_id"] == "rid-2"
    finally:
        REQUEST_ID.reset(token)
    assert current_request_id() is None


def test_exceptions_and_odd_messages_stay_on_one_line() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        rec = logging.LogRecord(
            "x", logging.ERROR, __file__, 1, "multi\nline \u00e9 %r", (b"\x00",), sys.exc_info()
        )
    line = JsonFormatter().format(rec)
    assert "\n" not in line and line.isascii()
    data = json.loads(line)
    assert data["message"] == "multi\nline \u00e9 b'\\x00'"
    assert "RuntimeError: boom" in data["exception"]


# ------------------------------------------------------------------ the middleware alone


async def _call(
    headers: list[tuple[bytes, bytes]], path: str = "/v1/tasks/abc/status"
) -> tuple[list[dict[str, object]], list[RequestDone], list[str | None]]:
    seen_ids: list[str | None] = []

    async def app(scope: dict, receive: object, send: object) -> None:  # type: ignore[type-arg]
        seen_ids.append(current_request_id())
        await send({"type": "http.response.start", "status": 204, "headers": [(b"a", b"b")]})  # type: ignore[operator]
        await send({"type": "http.response.body", "body": b""})  # type: ignore[operator]

    sent: list[dict[str, object]] = []
    done: list[RequestDone] = []

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    middleware = RequestContextMiddleware(app, on_done=done.append)  # type: ignore[arg-type]
    scope = {"type": "http", "method": "GET", "path": path, "headers": headers}
    await middleware(scope, receive, send)  # type: ignore[arg-type]
    return sent, done, seen_ids


def test_the_middleware_keeps_a_sane_id_and_reports_the_request() -> None:
    sent, done, seen = asyncio.run(_call([(b"x-request-id", b"given.1")]))
    assert seen == ["given.1"]
    assert sent[0]["headers"] == [(b"a", b"b"), (b"x-request-id", b"given.1")]
    (request,) = done
    assert request.request_id == "given.1"
    assert (request.method, request.route, request.status) == ("GET", UNMATCHED_ROUTE, 204)
    assert request.task_id == "abc"
    assert request.seconds >= 0
    assert current_request_id() is None  # reset after the request


def test_the_middleware_replaces_an_insane_id() -> None:
    sent, done, seen = asyncio.run(_call([(b"x-request-id", b"no spaces allowed")]))
    new = done[0].request_id
    assert new != "no spaces allowed" and len(new) == 32
    assert seen == [new]
    assert (b"x-request-id", new.encode()) in sent[0]["headers"]  # type: ignore[operator]

"""Unit-level checks of the service and SDK: problem+json mapping, settings, encodings, CLI.

The HTTP flows run against a real server process in tests/integration; here FastAPI's
TestClient drives the application in-process.
"""

from __future__ import annotations

import secrets
import warnings
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from fastapi import FastAPI

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from smpcloud.client import KeyHolder, TaskEncoding
from smpcloud.crypto import threshold
from smpcloud.crypto.wire import encode_int
from smpcloud.errors import (
    InvalidInputError,
    MalformedCiphertextError,
    OverflowDetectedError,
    SmpcError,
)
from smpcloud.protocol.problems import PROBLEM_TYPES, exception_from_problem
from smpcloud.service.__main__ import serve_command
from smpcloud.service.app import create_app
from smpcloud.service.config import Settings
from smpcloud.service.migrations import upgrade
from smpcloud.service.problems import install_problem_handlers

TOKEN = secrets.token_urlsafe(32)


def make_exception(cls: type[SmpcError]) -> SmpcError:
    if cls is threshold.InvalidPartialDecryptionError:
        return threshold.InvalidPartialDecryptionError([4])
    return cls("what went wrong")


@pytest.mark.parametrize("row", PROBLEM_TYPES, ids=lambda row: row.slug)
def test_every_exception_maps_to_its_problem_and_back(row) -> None:
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/boom")
    def boom() -> None:
        raise make_exception(row.exception)

    with TestClient(app, raise_server_exceptions=False) as http:
        response = http.get("/boom")
    assert response.status_code == row.status
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == f"urn:smpcloud:problem:{row.slug}"
    assert (body["status"], body["title"]) == (row.status, row.title)
    if row.status < 500:
        assert body["detail"] == str(make_exception(row.exception))
        again = exception_from_problem(response.status_code, body)
        assert type(again) is row.exception
        assert str(again) == body["detail"]
    else:
        assert body["detail"] == "internal server error"
    if row.status == 401:
        assert response.headers["www-authenticate"] == "Bearer"
    if row.exception is threshold.InvalidPartialDecryptionError:
        assert body["holders"] == [4]
        assert again.holders == (4,)  # type: ignore[attr-defined]


def test_unexpected_errors_are_opaque_500s() -> None:
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/bug")
    def bug() -> None:
        raise RuntimeError("internal detail that must not leak")

    with TestClient(app, raise_server_exceptions=False) as http:
        response = http.get("/bug")
    assert response.status_code == 500
    assert response.json()["detail"] == "internal server error"
    assert "must not leak" not in response.text


def test_unknown_problems_fall_back_by_status() -> None:
    assert type(exception_from_problem(409, {"detail": "x"})).__name__ == "ConflictError"
    assert type(exception_from_problem(502, "<html>")).__name__ == "ServiceError"
    assert str(exception_from_problem(418, None)) == "HTTP 418"


@pytest.fixture
def app_client(tmp_path: Path):
    settings = Settings(admin_token=TOKEN, db_url=f"sqlite:///{tmp_path / 'db.sqlite'}")
    upgrade(settings.db_url)
    with TestClient(create_app(settings)) as http:
        yield http


def test_strict_server_refuses_insecure_keys(app_client) -> None:
    public = threshold.deal(512, n=3, t=2, insecure=True)[0]
    body = {"name": "t", "public_key": threshold.public_key_to_json(public), "min_clients": 2}
    response = app_client.post("/v1/tasks", json=body, headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 422
    assert "insecure" in response.json()["detail"]
    response = app_client.post("/v1/tasks", json={})
    assert response.status_code == 401  # authentication before body validation


@pytest.mark.parametrize(
    "token",
    [
        "",
        "short",
        pytest.param(" " + TOKEN, id="leading-space"),  # a stable id: xdist workers agree
        "changeme-changeme-changeme",
        "secretsecretsecretsecret",
        "admin123admin123admin123",
        "a" * 40,
        "abababababababababab",
        "put-your-token-here-example",
    ],
)
def test_settings_refuse_weak_admin_tokens(token: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        Settings(admin_token=token)
    if len(token) > 8:
        assert token.strip() not in str(info.value)


def test_settings_accept_random_tokens_and_hide_them() -> None:
    settings = Settings(admin_token=TOKEN)
    assert TOKEN not in repr(settings)
    with pytest.raises(InvalidInputError):
        Settings(admin_token=TOKEN, max_body_bytes=10)


def test_settings_workers() -> None:
    assert Settings(admin_token=TOKEN).workers is None  # every CPU
    assert Settings(admin_token=TOKEN, workers=1).workers == 1
    for bad in (0, 257, 1.5, True):
        with pytest.raises(InvalidInputError, match="workers"):
            Settings(admin_token=TOKEN, workers=bad)  # type: ignore[arg-type]


def test_task_encoding() -> None:
    fixed = TaskEncoding.fixed(8, -2.0, 3.5)
    assert fixed.encode(1.5) == 384
    assert fixed.encoded_bounds() == (-512, 896)
    assert fixed.decode_sum(384 + 128) == 2.0
    assert fixed.average(3 * 256, 3) == 1.0
    with pytest.raises(OverflowDetectedError, match="element 2"):
        fixed.encode(3.6, index=2)
    with pytest.raises(OverflowDetectedError):
        fixed.encode(float("inf"))
    with pytest.raises(InvalidInputError):
        fixed.encode("1")
    integer = TaskEncoding.integer(-5, 5)
    assert integer.encode(-5) == -5
    assert integer.decode_sum(7) == 7
    with pytest.raises(InvalidInputError):
        TaskEncoding.integer(5, -5)
    with pytest.raises(InvalidInputError):
        TaskEncoding.fixed(65, 0.0, 1.0)
    with pytest.raises(InvalidInputError):
        TaskEncoding.fixed(16, float("nan"), 1.0)
    np = pytest.importorskip("numpy")
    assert fixed.encode(np.float32(0.5)) == 128
    assert integer.encode(np.int64(3)) == 3


def test_key_holder_refuses_a_malicious_aggregate() -> None:
    """A fake, malicious server (httpx.MockTransport) serves an invalid 'aggregate'."""
    public, shares = threshold.deal(512, n=3, t=2, insecure=True)
    info = {
        "task_id": "t",
        "name": "t",
        "state": "closed",
        "length": 1,
        "encoding": TaskEncoding.integer().model_dump(),
        "public_key": threshold.public_key_to_json(public),
        "holders": 3,
        "threshold": 2,
        "min_clients": 2,
        "max_clients": 10,
        "deadline": None,
    }
    aggregate = {"task_id": "t", "key_id": public.public_key.key_id, "count": 2}
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.url.path)
        if request.url.path.endswith("/aggregate"):
            return httpx.Response(200, json=aggregate | {"ciphertexts": [encode_int(public.n)]})
        return httpx.Response(200, json=info)

    transport = httpx.MockTransport(handler)
    with (
        KeyHolder("http://fake", "t", "token", shares[0], transport=transport) as holder,
        pytest.raises(MalformedCiphertextError, match="coprime"),
    ):
        holder.contribute()
    assert not any(path.endswith("/partials") for path in sent)


def test_serve_refuses_to_start_without_a_good_token(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(serve_command, [], env={"SMPCLOUD_ADMIN_TOKEN": ""})
    assert result.exit_code == 2
    assert "no administrator token" in result.output
    result = runner.invoke(serve_command, [], env={"SMPCLOUD_ADMIN_TOKEN": "changeme"})
    assert result.exit_code == 2
    assert "at least 16 characters" in result.output
    token_file = tmp_path / "token"
    token_file.write_text("changeme-please-changeme\n")
    result = runner.invoke(serve_command, ["--admin-token-file", str(token_file)])
    assert result.exit_code == 2 and "placeholder" in result.output
    assert "changeme-please" not in result.output
    help_text = runner.invoke(serve_command, ["--help"]).output
    for option in (
        "--db",
        "--port",
        "--admin-token-file",
        "--allow-insecure-keys",
        "TESTING",
        "--workers",
    ):
        assert option in help_text


def test_in_memory_sqlite_is_refused() -> None:
    from smpcloud.service.db import make_engine

    for url in ("sqlite://", "sqlite:///:memory:"):
        with pytest.raises(InvalidInputError, match="in-memory"):
            make_engine(url)

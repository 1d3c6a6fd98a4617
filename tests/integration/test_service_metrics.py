"""Observability against real server processes: /metrics, request ids, JSON logs, /readyz.

Each test starts its own server (``python -m smpcloud.service``) so that the counts it reads
are exactly those of the requests it made. Metrics are parsed with prometheus_client's own
parser, logs line by line with ``json.loads``.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from service_harness import Key, ServerProcess, assert_problem, start_server

from smpcloud.crypto.wire import encode_int
from smpcloud.service.readiness import check_schema, missing_for_readiness

StartServer = Callable[..., ServerProcess]
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

REPORTS_ROUTE = "/v1/tasks/{task_id}/reports"


@pytest.fixture
def start(tmp_path: Path, key: Key) -> Iterator[StartServer]:
    """Start servers of this test (each in its own directory); stop them and check their logs."""
    servers: list[ServerProcess] = []

    def starter(*args: str) -> ServerProcess:
        directory = tmp_path / f"server{len(servers)}"
        directory.mkdir()
        server = start_server(directory, *args)
        servers.append(server)
        return server

    yield starter
    for server in servers:
        server.stop()
        server.check_log_has_no_secrets(key)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def report(key: Key, *values: int) -> dict[str, object]:
    pk = key[0].public_key
    return {"key_id": pk.key_id, "ciphertexts": [encode_int(pk.encrypt(v).value) for v in values]}


def scrape(server: ServerProcess, token: str | None = None) -> tuple[str, Samples]:
    """GET /metrics (with the admin token unless another is given); its text and samples."""
    response = httpx.get(
        f"{server.base_url}/metrics", headers=bearer(token or server.admin_token), timeout=30.0
    )
    assert response.status_code == 200, response.text[:500]
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return response.text, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def labelled(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: v for (n, labels), v in samples.items() if n == name}


def wait_for_log_line(server: ServerProcess, match: Callable[[dict[str, object]], bool]) -> dict:
    """The first JSON log line ``match`` accepts, waiting for the server to write it."""
    for _ in range(200):
        for line in server.log_text().splitlines():
            record = json.loads(line)
            if match(record):
                return record
        time.sleep(0.05)
    raise AssertionError(f"no such log line; log:\n{server.log_text()[-2000:]}")


# ----------------------------------------------------------------------------- /metrics


def test_metrics_count_a_known_sequence_of_uploads(start: StartServer, key: Key) -> None:
    server = start("--log-format", "json", "--workers", "1")
    created, creds = server.new_task(key, 4, min_clients=2)
    url = f"{server.base_url}/v1/tasks/{created.task_id}/reports"
    for cred in creds[:3]:
        assert httpx.post(url, headers=bearer(cred.token), json=report(key, 1)).status_code == 201
    duplicate = httpx.post(url, headers=bearer(creds[0].token), json=report(key, 2))
    assert_problem(duplicate, 409, "duplicate-submission")
    forged = {"key_id": key[0].public_key.key_id, "ciphertexts": ["AA"]}
    assert_problem(
        httpx.post(url, headers=bearer(creds[3].token), json=forged), 422, "malformed-ciphertext"
    )

    text, samples = scrape(server)
    assert labelled(samples, "smpcloud_uploads_accepted_total") == {
        frozenset({("scheme", "paillier")}): 3.0
    }
    assert labelled(samples, "smpcloud_uploads_refused_total") == {
        frozenset({("reason", "duplicate-submission")}): 1.0,
        frozenset({("reason", "malformed-ciphertext")}): 1.0,
    }
    assert value(samples, "smpcloud_tasks_created_total", scheme="paillier") == 1.0
    assert value(samples, "smpcloud_tasks", scheme="paillier", state="open") == 1.0
    assert labelled(samples, "smpcloud_task_reports") == {
        frozenset({("task_id", created.task_id)}): 3.0
    }
    assert value(samples, "smpcloud_metrics_database_up") == 1.0
    # The histogram counts exactly the requests made, by route template and status class.
    count = "smpcloud_http_request_duration_seconds_count"
    assert value(samples, count, method="POST", route=REPORTS_ROUTE, status="2xx") == 3.0
    assert value(samples, count, method="POST", route=REPORTS_ROUTE, status="4xx") == 2.0
    assert value(samples, count, method="POST", route="/v1/tasks", status="2xx") == 1.0
    assert (
        value(samples, count, method="POST", route="/v1/tasks/{task_id}/clients", status="2xx")
        == 1.0
    )
    bucket = "smpcloud_http_request_duration_seconds_bucket"
    assert (
        value(samples, bucket, method="POST", route=REPORTS_ROUTE, status="2xx", le="+Inf") == 3.0
    )
    # Every upload that reached the store went through a group commit: 3 stored, 1 duplicate.
    assert value(samples, "smpcloud_group_commit_batch_size_sum") == 4.0
    commits = value(samples, "smpcloud_group_commit_batch_size_count")
    assert 1.0 <= commits <= 4.0
    assert value(samples, "smpcloud_group_commit_duration_seconds_count") == commits
    # No raw path, and so no task id, in the request histogram's labels.
    assert created.task_id not in "".join(
        str(labels) for (name, labels) in samples if name.startswith("smpcloud_http")
    )
    # Nothing secret in the exposition.
    for secret in [server.admin_token, *server.secrets_handed_out]:
        assert secret not in text

    with server.admin() as admin:
        admin.close(created.task_id)
    _, samples = scrape(server)
    assert value(samples, "smpcloud_tasks", scheme="paillier", state="closed") == 1.0
    assert value(samples, "smpcloud_tasks", scheme="paillier", state="open") == 0.0
    assert labelled(samples, "smpcloud_task_reports") == {}  # only open tasks are listed
    assert value(samples, "smpcloud_pool_jobs_in_progress") == 0.0
    # The previous scrape is counted too (admin-only route, 200).
    assert value(samples, count, method="GET", route="/metrics", status="2xx") == 1.0


def test_metrics_need_the_admin_token_unless_public(start: StartServer, key: Key) -> None:
    server = start()
    created, creds = server.new_task(key, 1)
    assert_problem(httpx.get(f"{server.base_url}/metrics"), 401, "authentication-required")
    assert_problem(
        httpx.get(f"{server.base_url}/metrics", headers=bearer(creds[0].token)),
        403,
        "permission-denied",
    )
    assert_problem(
        httpx.get(f"{server.base_url}/metrics", headers=bearer(created.holder_tokens[0])),
        403,
        "permission-denied",
    )
    scrape(server)

    public = start("--metrics", "public")
    response = httpx.get(f"{public.base_url}/metrics")
    assert response.status_code == 200
    assert "smpcloud_http_request_duration_seconds" in response.text


def test_metrics_option_is_checked(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "s.db", tmp_path / "s.log", extra_args=("--metrics", "all"))
    with pytest.raises(RuntimeError, match="server did not start"):
        server.start(timeout=10.0)
    assert "Invalid value for '--metrics'" in server.log_text()
    assert "Traceback" not in server.log_text()


def test_multiprocess_mode_reports_the_sum_over_processes(
    tmp_path: Path, key: Key, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two server processes on one database and one PROMETHEUS_MULTIPROC_DIR (what
    # `serve --processes N` sets up): each one's /metrics reports the uploads of both.
    directory = tmp_path / "prometheus"
    directory.mkdir()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(directory))
    first = ServerProcess(tmp_path / "shared.db", tmp_path / "first.log")
    second = ServerProcess(first.db_path, tmp_path / "second.log", admin_token=first.admin_token)
    first.start()
    try:
        second.start()
        try:
            created, creds = first.new_task(key, 3)
            second.secrets_handed_out.extend(first.secrets_handed_out)
            for server, cred in zip((first, second, second), creds, strict=True):
                response = httpx.post(
                    f"{server.base_url}/v1/tasks/{created.task_id}/reports",
                    headers=bearer(cred.token),
                    json=report(key, 1),
                )
                assert response.status_code == 201
            for server in (first, second):
                _, samples = scrape(server)
                assert value(samples, "smpcloud_uploads_accepted_total", scheme="paillier") == 3
                assert value(samples, "smpcloud_tasks_created_total", scheme="paillier") == 1
                count = "smpcloud_http_request_duration_seconds_count"
                assert value(samples, count, method="POST", route=REPORTS_ROUTE, status="2xx") == 3
                assert value(samples, "smpcloud_task_reports", task_id=created.task_id) == 3
        finally:
            second.stop()
    finally:
        first.stop()
    assert list(directory.glob("*.db")), "the processes wrote their counters there"
    first.check_log_has_no_secrets(key)
    second.check_log_has_no_secrets(key)


# ----------------------------------------------------------------------- request ids, logs


def test_request_id_is_echoed_logged_and_in_problems(start: StartServer, key: Key) -> None:
    server = start("--log-format", "json")
    created, creds = server.new_task(key, 1)
    status_url = f"{server.base_url}/v1/tasks/{created.task_id}/status"
    given = "trace.A-1_b"
    response = httpx.get(status_url, headers={**bearer(creds[0].token), "X-Request-ID": given})
    assert response.status_code == 200
    assert response.headers["x-request-id"] == given
    line = wait_for_log_line(server, lambda r: r.get("request_id") == given)
    assert line["logger"] == "smpcloud.access"
    assert line["method"] == "GET"
    assert line["route"] == "/v1/tasks/{task_id}/status"
    assert line["status"] == 200
    assert line["task_id"] == created.task_id
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0

    # A refused request has its id too (in the header only: two refusals of the same kind
    # keep identical bodies, see test_service_hardening).
    refused = httpx.get(status_url, headers={"X-Request-ID": "problem-1"})
    body = assert_problem(refused, 401, "authentication-required")
    assert refused.headers["x-request-id"] == "problem-1"
    assert "request_id" not in body
    line = wait_for_log_line(server, lambda r: r.get("request_id") == "problem-1")
    assert line["status"] == 401
    assert "task_id" not in line  # the path's "task id" is not proven to be one before auth

    # An id that is not a sane token is replaced by a fresh one.
    for bad in ("has space", "x" * 65, "semi;colon", "é"):
        response = httpx.get(
            f"{server.base_url}/healthz", headers={"X-Request-ID": bad.encode("utf-8")}
        )
        new = response.headers["x-request-id"]
        assert new != bad and re.fullmatch(r"[0-9a-f]{32}", new), new
        wait_for_log_line(server, lambda r, new=new: r.get("request_id") == new)
    assert "has space" not in server.log_text()
    # Without a header, every request gets a different id.
    ids = {httpx.get(f"{server.base_url}/healthz").headers["x-request-id"] for _ in range(3)}
    assert len(ids) == 3


def test_json_logs_parse_line_by_line_and_hold_no_secret(start: StartServer, key: Key) -> None:
    server = start("--log-format", "json")
    created, creds = server.new_task(key, 2)
    with server.client(created.task_id, creds[0].token) as client:
        client.submit(3)
    url = f"{server.base_url}/v1/tasks/{created.task_id}/reports"
    httpx.post(url, headers=bearer(creds[0].token), json=report(key, 4))  # a duplicate
    httpx.get(f"{server.base_url}/no/such/route")
    wait_for_log_line(server, lambda r: r.get("route") == "unmatched")
    server.stop()
    lines = server.log_text().splitlines()
    assert lines
    routes = set()
    for line in lines:
        record = json.loads(line)
        assert {"time", "level", "logger", "message"} <= record.keys(), record
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record["time"])
        if record["logger"] == "smpcloud.access":
            assert {"request_id", "method", "route", "status", "duration_ms"} <= record.keys()
            routes.add((record["method"], record["route"], record["status"]))
    assert ("POST", REPORTS_ROUTE, 201) in routes
    assert ("POST", REPORTS_ROUTE, 409) in routes
    assert ("GET", "unmatched", 404) in routes
    # The start's and shutdown's lines (uvicorn's) are JSON as well.
    assert any("Application startup complete" in line for line in lines)


def test_text_logs_stay_the_default(start: StartServer, key: Key) -> None:
    server = start()
    created, creds = server.new_task(key, 1)
    with server.client(created.task_id, creds[0].token) as client:
        client.submit(1)
    text = server.log_text()
    assert "Application startup complete" in text
    assert not text.lstrip().startswith("{")
    assert "POST /v1/tasks/" in text  # uvicorn's access log, as before


# ----------------------------------------------------------------------------- /readyz


def test_readyz_is_200_when_ready_and_503_without_the_schema(start: StartServer) -> None:
    server = start()
    ready = httpx.get(f"{server.base_url}/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready"}
    # The database is no longer at the expected schema revision (its record is gone).
    with sqlite3.connect(server.db_path) as conn:
        conn.execute("DROP TABLE alembic_version")
    not_ready = httpx.get(f"{server.base_url}/readyz")
    body = assert_problem(not_ready, 503, "not-ready", "smpcloud db upgrade")
    assert len(body["missing"]) == 1 and "smpcloud db upgrade" in body["missing"][0]
    assert httpx.get(f"{server.base_url}/healthz").status_code == 200  # still alive
    _, samples = scrape(server)
    count = "smpcloud_http_request_duration_seconds_count"
    assert value(samples, count, method="GET", route="/readyz", status="5xx") == 1.0


def test_readiness_of_a_database_that_does_not_answer(tmp_path: Path) -> None:
    from smpcloud.service.db import make_engine

    gone = tmp_path / "gone"
    gone.mkdir()
    engine = make_engine(f"sqlite:///{gone / 'x.db'}")
    shutil.rmtree(gone)  # the file and its directory: SQLite cannot open it any more
    try:
        missing = missing_for_readiness(engine, pool_ready=True)
    finally:
        engine.dispose()
    assert missing == ["the database does not answer (OperationalError)"]
    # An empty database answers but has none of the tables; a stopped pool is reported too.
    empty = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    try:
        assert len(check_schema(empty)) == 1
        missing = missing_for_readiness(empty, pool_ready=False)
    finally:
        empty.dispose()
    assert missing[-1] == "the worker pool is not started, or is shutting down"
    assert "smpcloud db upgrade" in missing[0]


def test_openapi_documents_readyz_and_metrics(start: StartServer) -> None:
    server = start()
    paths = httpx.get(f"{server.base_url}/openapi.json").json()["paths"]
    assert "Readiness" in paths["/readyz"]["get"]["summary"]
    assert "503" in paths["/readyz"]["get"]["responses"]
    assert "--metrics public" in paths["/metrics"]["get"]["description"]
    assert "liveness" in paths["/healthz"]["get"]["summary"].lower()

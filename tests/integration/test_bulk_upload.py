"""The SDK's bulk upload: many clients' reports, each with its own token, over a few connections."""

from __future__ import annotations

import json
import threading

import httpx
import pytest
from service_harness import Key, ServerProcess

from smpcloud.client import (
    DuplicateSubmissionError,
    ShamirCredentials,
    ShamirEndpoint,
    ShamirTaskInfo,
    TaskEncoding,
    TaskStateError,
    UploadError,
    prepare_report,
    prepare_shares,
    upload_reports,
    upload_shares,
)
from smpcloud.crypto.sealing import OpeningKey
from smpcloud.errors import InvalidInputError


def prepared(server: ServerProcess, key: Key, clients: int) -> tuple[str, list, list[int]]:
    task, creds = server.new_task(key, clients)
    with server.admin() as admin:
        info = admin.info(task.task_id, allow_insecure_keys=True)
    values = [10 * i + 3 for i in range(clients)]
    pairs = [(c.token, prepare_report(info, v)) for c, v in zip(creds, values)]
    return task.task_id, pairs, values


def test_every_report_arrives_with_its_own_token(server: ServerProcess, key: Key) -> None:
    task_id, pairs, values = prepared(server, key, 12)
    summary = upload_reports(server.base_url, task_id, pairs, connections=4)
    assert (summary.reports, summary.requests, summary.connections) == (12, 12, 4)
    assert summary.seconds > 0 and summary.rate > 0
    with server.admin() as admin:
        status = admin.close(task_id)
        assert status.reports == 12
    # each client is marked as reported under its own id: 12 distinct reporters
    rows = server.db_query(
        "SELECT COUNT(DISTINCT client_id) FROM reports WHERE task_id = ?", task_id
    )
    assert rows == [(12,)]
    del values


def test_first_refusal_names_the_client_and_keeps_the_sdk_error(
    server: ServerProcess, key: Key
) -> None:
    task_id, pairs, _ = prepared(server, key, 5)
    upload_reports(server.base_url, task_id, pairs[:2], connections=2)
    with pytest.raises(UploadError) as caught:
        upload_reports(server.base_url, task_id, [pairs[3], pairs[1]], connections=1)
    error = caught.value
    assert error.index == 1 and error.accepted == 1
    assert isinstance(error.error, DuplicateSubmissionError)
    assert isinstance(error.__cause__, DuplicateSubmissionError)
    assert "client 2 of 2 (reports[1])" in str(error)
    assert pairs[1][0] not in str(error)  # never the token
    with server.admin() as admin:
        admin.close(task_id)
    with pytest.raises(UploadError) as closed:
        upload_reports(server.base_url, task_id, [pairs[4]])
    assert isinstance(closed.value.error, TaskStateError)


def test_bad_input_is_refused_before_anything_is_sent(server: ServerProcess, key: Key) -> None:
    task_id, pairs, _ = prepared(server, key, 3)
    other_id, other_pairs, _ = prepared(server, key, 1)
    for bad in (
        [*pairs, other_pairs[0]],  # prepared for another task
        [("", pairs[0][1])],  # no token
        [(pairs[0][0], "not a report")],
    ):
        with pytest.raises(InvalidInputError):
            upload_reports(server.base_url, task_id, bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        upload_reports(server.base_url, task_id, pairs, connections=0)
    with pytest.raises(InvalidInputError):
        upload_reports("ftp://nowhere", task_id, pairs)
    with server.admin() as admin:
        assert admin.status(task_id).reports == 0
        assert admin.status(other_id).reports == 0


class LosesFirstAnswer(httpx.BaseTransport):
    """Delivers every request, but loses the answer of the first one (a broken connection)."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.lost = False
        self.lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        with self.lock:
            lose, self.lost = not self.lost, True
        if lose:
            response.read()
            raise httpx.ReadError("connection reset", request=request)
        return response

    def close(self) -> None:
        self.inner.close()


def test_a_retry_whose_first_attempt_arrived_counts_as_accepted(
    server: ServerProcess, key: Key
) -> None:
    task_id, pairs, _ = prepared(server, key, 3)
    transport = LosesFirstAnswer()
    summary = upload_reports(server.base_url, task_id, pairs, connections=1, transport=transport)
    assert summary.requests == 3
    with server.admin() as admin:
        assert admin.status(task_id).reports == 3
    task_id, pairs, _ = prepared(server, key, 1)
    with pytest.raises(UploadError) as caught:
        upload_reports(server.base_url, task_id, pairs, retries=0, transport=LosesFirstAnswer())
    assert type(caught.value.error).__name__ == "TransportError"
    transport.close()


# ---------------------------------------------------------------------------------- Shamir


def shamir_reports(clients: int) -> list[tuple[ShamirCredentials, object]]:
    info = ShamirTaskInfo(
        name="bulk",
        length=1,
        encoding=TaskEncoding.integer(0, 100),
        servers=3,
        threshold=2,
        min_clients=2,
        max_clients=100,
        deadline=None,
    )
    out = []
    keys = {j: OpeningKey.generate().sealing_key for j in (1, 2, 3)}
    for c in range(1, clients + 1):
        endpoints = tuple(
            ShamirEndpoint(j, f"https://server{j}.test", f"task-{j}", f"token-{c}-{j}", keys[j])
            for j in (1, 2, 3)
        )
        credentials = ShamirCredentials(c, 2, endpoints)
        out.append((credentials, prepare_shares(info, c, credentials)))
    return out


def recording(
    seen: list[tuple[int, str, str, dict]], server: int, refuse: str = ""
) -> httpx.MockTransport:
    lock = threading.Lock()

    def handle(request: httpx.Request) -> httpx.Response:
        token = request.headers["Authorization"].removeprefix("Bearer ")
        body = json.loads(request.content)
        with lock:
            seen.append((server, token, request.url.path, body))
        if token == refuse:
            problem = {
                "type": "urn:smpcloud:problem:duplicate-submission",
                "title": "Duplicate submission",
                "status": 409,
                "detail": "this client already reported",
            }
            return httpx.Response(409, json=problem)
        return httpx.Response(
            201,
            json={
                "task_id": f"task-{server}",
                "client_id": 1,
                "received_at": "2030-01-01T00:00:00Z",
            },
        )

    return httpx.MockTransport(handle)


def test_shares_go_each_to_its_server_with_the_clients_token_there() -> None:
    reports = shamir_reports(7)
    seen: list[tuple[int, str, str, dict]] = []
    transports = {j: recording(seen, j) for j in (1, 2, 3)}
    summary = upload_shares(reports, connections=3, transports=transports)  # type: ignore[arg-type]
    assert (summary.reports, summary.requests) == (7, 21)
    expected = {
        (j, f"token-{c}-{j}", f"/v1/tasks/task-{j}/reports", json.dumps(report.request_body(j)))
        for (creds, report) in reports
        for c in [creds.client_id]
        for j in (1, 2, 3)
    }
    assert {(j, t, p, json.dumps(b)) for j, t, p, b in seen} == expected


def test_a_refused_share_names_the_client_and_the_server() -> None:
    reports = shamir_reports(4)
    seen: list[tuple[int, str, str, dict]] = []
    transports = {j: recording(seen, j, refuse="token-3-2" if j == 2 else "") for j in (1, 2, 3)}
    with pytest.raises(UploadError) as caught:
        upload_shares(reports, connections=1, transports=transports)  # type: ignore[arg-type]
    message = str(caught.value)
    assert "client 3 (reports[2]) to server 2" in message
    assert "token-3-2" not in message
    assert isinstance(caught.value.error, DuplicateSubmissionError)
    assert caught.value.index == 2 and caught.value.accepted == 7
    with pytest.raises(InvalidInputError):
        upload_shares(reports, transports={1: transports[1]})  # type: ignore[arg-type]

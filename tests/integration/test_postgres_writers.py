"""Several writers on one PostgreSQL database: two server processes, many connections each.

Stateless servers meet only in the database, so what SQLite's single writer guaranteed must
hold with row locks: every client's report is stored exactly once however many copies race
through both processes (the others get 409), every refusal is counted exactly once (no 5xx
when two processes count the first refusal of a reason at once), and a close racing uploads
counts exactly the reports it aggregates. Skipped without ``SMPCLOUD_TEST_POSTGRES_URL``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from service_harness import (
    Key,
    ServerProcess,
    postgres_database,
    postgres_url,
)

from smpcloud.crypto.wire import encode_int

pytestmark = pytest.mark.skipif(
    postgres_url() is None,
    reason="PostgreSQL: SMPCLOUD_TEST_POSTGRES_URL is not set (.ci/run starts a server)",
)

CONNECTIONS = 32


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory, key: Key) -> Iterator[list[ServerProcess]]:
    """Two server processes on one fresh PostgreSQL database (one admin token)."""
    tmp = tmp_path_factory.mktemp("writers")
    with postgres_database() as url:
        first = ServerProcess(tmp / "unused.db", tmp / "a.log", database_url=url)
        second = ServerProcess(
            tmp / "unused.db", tmp / "b.log", database_url=url, admin_token=first.admin_token
        )
        started: list[ServerProcess] = []
        try:
            for server in (first, second):
                server.start()
                started.append(server)
            yield started
        finally:
            for server in started:
                server.stop()
    for server in started:
        server.secrets_handed_out = first.secrets_handed_out
        server.check_log_has_no_secrets(key)


def race(
    attempts: list[tuple[ServerProcess, str, str]],
    body: dict[str, object],
    on_response: Callable[[httpx.Response], None] = lambda _response: None,
) -> list[httpx.Response]:
    """POST ``body`` as each (server, task, token) at once from CONNECTIONS connections;
    ``on_response`` sees each response as it arrives."""
    start = threading.Barrier(min(CONNECTIONS, len(attempts)))
    local = threading.local()
    opened: list[httpx.Client] = []

    def upload(attempt: tuple[ServerProcess, str, str]) -> httpx.Response:
        server, task_id, token = attempt
        if not hasattr(local, "http"):
            local.http = {}
            start.wait(timeout=60)
        http = local.http.get(server.base_url)
        if http is None:
            http = local.http[server.base_url] = httpx.Client(base_url=server.base_url, timeout=60)
            opened.append(http)
        response = http.post(
            f"/v1/tasks/{task_id}/reports", headers={"Authorization": f"Bearer {token}"}, json=body
        )
        on_response(response)
        return response

    try:
        with ThreadPoolExecutor(min(CONNECTIONS, len(attempts))) as pool:
            return list(pool.map(upload, attempts))
    finally:
        for http in opened:
            http.close()


def test_copies_racing_through_two_processes_are_stored_once_and_refused_once(
    servers: list[ServerProcess], key: Key
) -> None:
    a, b = servers
    clients, copies = 30, 4
    task, creds = a.new_task(key, clients, min_clients=2)
    pk = key[0].public_key
    body = {"key_id": pk.key_id, "ciphertexts": [encode_int(pk.encrypt(1).value)]}
    attempts = [(servers[i % 2], task.task_id, cred.token) for cred in creds for i in range(copies)]
    responses = race(attempts, body)
    statuses: dict[str, list[int]] = {}
    for (_server, _task, token), response in zip(attempts, responses, strict=True):
        statuses.setdefault(token, []).append(response.status_code)
    assert all(sorted(seen) == [201] + [409] * (copies - 1) for seen in statuses.values()), {
        i: seen for i, seen in enumerate(statuses.values())
    }
    assert a.db_query(
        "SELECT COUNT(*), COUNT(DISTINCT client_id) FROM reports WHERE task_id = ?", task.task_id
    ) == [(clients, clients)]
    with b.admin() as admin:
        status = admin.status(task.task_id)
    assert status.reports == clients
    assert status.refused == {"duplicate-submission": clients * (copies - 1)}
    with b.admin() as admin:
        assert admin.close(task.task_id).reports == clients


def test_first_refusals_racing_through_two_processes_are_counted_once(
    servers: list[ServerProcess], key: Key
) -> None:
    """The first refusal of a reason creates its counter: two processes doing it at once
    must not collide (a 500 and a lost count before refusals were counted under a lock)."""
    a, b = servers
    tasks = [a.new_task(key, 8, min_clients=2) for _ in range(6)]
    body = {"key_id": key[0].public_key.key_id, "ciphertexts": ["AA"]}  # malformed
    attempts = [
        (servers[i % 2], task.task_id, cred.token)
        for task, creds in tasks
        for i, cred in enumerate(creds)
    ]
    responses = race(attempts, body)
    assert sorted({r.status_code for r in responses}) == [422], [
        (r.status_code, r.text[:200]) for r in responses if r.status_code != 422
    ]
    with b.admin() as admin:
        for task, creds in tasks:
            assert admin.status(task.task_id).refused == {"malformed-ciphertext": len(creds)}


def test_a_close_racing_uploads_counts_exactly_what_it_aggregates(
    servers: list[ServerProcess], key: Key
) -> None:
    a, b = servers
    clients = 40
    task, creds = a.new_task(key, clients, min_clients=2)
    pk = key[0].public_key
    body = {"key_id": pk.key_id, "ciphertexts": [encode_int(pk.encrypt(2).value)]}
    attempts = [(servers[i % 2], task.task_id, cred.token) for i, cred in enumerate(creds)]
    closed: list[int] = []
    lock = threading.Lock()
    seen: list[int] = []

    def close() -> None:
        with b.admin() as admin:
            closed.append(admin.close(task.task_id).reports)

    closer = threading.Thread(target=close)

    def close_after_ten(response: httpx.Response) -> None:
        with lock:
            seen.append(response.status_code)
            if len(seen) == 10:  # uploads are still arriving on both processes
                closer.start()

    responses = race(attempts, body, close_after_ten)
    closer.join(timeout=60)
    accepted = sum(r.status_code == 201 for r in responses)
    assert all(r.status_code in (201, 409) for r in responses), [
        (r.status_code, r.text[:200]) for r in responses if r.status_code not in (201, 409)
    ]
    stored = a.db_query("SELECT COUNT(*) FROM reports WHERE task_id = ?", task.task_id)
    assert closed == [accepted] and stored == [(accepted,)] and accepted >= 10
    for share in key[1][:3]:
        with a.holder(task, share) as holder:
            holder.contribute()
    with b.admin() as admin:
        result = admin.result(task.task_id)
    assert (result.count, result.sum) == (accepted, [2 * accepted])


def test_the_two_processes_share_one_receipt_key(servers: list[ServerProcess]) -> None:
    """Both processes created the service's keys at start; one of them is stored, once."""
    a, _b = servers
    assert a.db_query("SELECT name FROM server_keys ORDER BY name") in (
        [("receipts",)],
        [("receipts",), ("shares",)],
    )


def test_unused_path_is_never_created(servers: list[ServerProcess], tmp_path: Path) -> None:
    """A PostgreSQL server writes no SQLite file beside its log."""
    assert not any(server.db_path.exists() for server in servers)

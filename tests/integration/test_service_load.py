"""Many concurrent connections against a real server: nothing lost, nothing counted twice.

48 connections at once upload to two tasks, every client of the first task three times at
once (racing duplicates): each client gets exactly one 201, its copies 409, and the server
stores exactly one report per client (read from its database and from its counters), on
SQLite and on PostgreSQL.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from service_harness import Key, ServerProcess

from smpcloud.crypto.wire import encode_int

pytestmark = pytest.mark.backends("sqlite", "postgres")

CONNECTIONS = 48


def test_racing_uploads_from_48_connections_store_each_client_once(
    server: ServerProcess, key: Key
) -> None:
    first, first_creds = server.new_task(key, 40, min_clients=2)
    second, second_creds = server.new_task(key, 24, min_clients=2)
    pk = key[0].public_key
    ciphertext = encode_int(pk.encrypt(1).value)
    body = {"key_id": pk.key_id, "ciphertexts": [ciphertext]}
    attempts = [(first.task_id, c) for c in first_creds for _ in range(3)] + [
        (second.task_id, c) for c in second_creds
    ]
    start = threading.Barrier(CONNECTIONS)
    local = threading.local()
    clients: list[httpx.Client] = []

    def upload(attempt: tuple[str, object]) -> int:
        task_id, cred = attempt
        if not hasattr(local, "http"):
            local.http = httpx.Client(base_url=server.base_url, timeout=60.0)
            clients.append(local.http)
            start.wait(timeout=60)  # every connection starts together
        response = local.http.post(
            f"/v1/tasks/{task_id}/reports",
            headers={"Authorization": f"Bearer {cred.token}"},  # type: ignore[attr-defined]
            json=body,
        )
        return response.status_code

    try:
        with ThreadPoolExecutor(CONNECTIONS) as pool:
            statuses = list(pool.map(upload, attempts))
    finally:
        for http in clients:
            http.close()
    by_client: dict[tuple[str, int], list[int]] = {}
    for (task_id, cred), status in zip(attempts, statuses, strict=True):
        by_client.setdefault((task_id, cred.client_id), []).append(status)  # type: ignore[attr-defined]
    for (task_id, _client), seen in by_client.items():
        expected = [201, 409, 409] if task_id == first.task_id else [201]
        assert sorted(seen) == expected, by_client
    for task, count in ((first, 40), (second, 24)):
        stored = server.db_query(
            "SELECT COUNT(*), COUNT(DISTINCT client_id) FROM reports WHERE task_id = ?",
            task.task_id,
        )
        assert stored == [(count, count)]
        with server.admin() as admin:
            assert admin.close(task.task_id).reports == count
    assert server.alive()

"""Durability: kill -9 the server mid-collection (and mid-decryption), restart on the same file."""

from __future__ import annotations

import contextlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from service_harness import Key, ServerProcess

from smpcloud.client import DuplicateSubmissionError
from smpcloud.errors import TransportError

pytestmark = pytest.mark.backends("sqlite", "postgres")


def test_kill_9_mid_collection_then_restart_gives_the_same_result(
    fresh_server: ServerProcess, key: Key
) -> None:
    server = fresh_server
    values = [(-1) ** i * (37 * i % 101) for i in range(60)]
    task, creds = server.new_task(key, len(values), length=2, min_clients=3)
    acknowledged: set[int] = set()
    lock = threading.Lock()
    enough = threading.Event()

    def upload(i: int) -> None:
        try:
            with server.client(task.task_id, creds[i].token) as client:
                client.submit([values[i], 1])
        except TransportError:
            return  # the server died under us: not acknowledged
        with lock:
            acknowledged.add(i)
            if len(acknowledged) >= 8:
                enough.set()

    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [pool.submit(upload, i) for i in range(len(values))]
        assert enough.wait(timeout=30)
        server.kill()  # SIGKILL while uploads are in flight
        for future in futures:
            future.result()
    assert 8 <= len(acknowledged) < len(values), len(acknowledged)

    server.start(port=server.port)
    with server.admin() as admin:
        assert admin.status(task.task_id).reports >= len(acknowledged)
    for i in range(len(values)):
        with server.client(task.task_id, creds[i].token) as client:
            if i in acknowledged:
                # Every acknowledged upload survived the crash and is kept.
                with pytest.raises(DuplicateSubmissionError):
                    client.submit([0, 0])
            else:
                # Either it was committed before the crash (then the retry is a duplicate
                # of the same values), or it never arrived: retrying is always safe.
                with contextlib.suppress(DuplicateSubmissionError):
                    client.submit([values[i], 1])

    with server.admin() as admin:
        status = admin.close(task.task_id)
    assert (status.state, status.reports) == ("closed", len(values))

    shares = key[1]
    with server.holder(task, shares[4]) as holder:
        holder.contribute()
    server.kill()  # mid-decryption
    server.start(port=server.port)
    with server.admin() as admin:
        status = admin.status(task.task_id)
        assert (status.state, status.partials_received) == ("closed", 1)
    for share in shares[:2]:
        with server.holder(task, share) as holder:
            holder.contribute()
    with server.admin() as admin:
        result = admin.result(task.task_id)
    assert result.sum == [sum(values), len(values)]
    assert result.count == len(values)
    assert result.holders == [1, 2, 5]
    assert server.alive()


def test_deadline_passing_while_the_server_is_down(fresh_server: ServerProcess, key: Key) -> None:
    server = fresh_server
    deadline = datetime.now(UTC) + timedelta(seconds=3.0)  # the two uploads come first
    task, creds = server.new_task(key, 3, min_clients=2, deadline=deadline)
    for cred, value in zip(creds[:2], [20, 22]):
        with server.client(task.task_id, cred.token) as client:
            client.submit(value)
    server.kill()
    time.sleep(max(0.0, (deadline - datetime.now(UTC)).total_seconds()) + 0.2)
    server.start(port=server.port)
    query = "SELECT state, close_reason, report_count FROM tasks WHERE id = ?"
    end = time.monotonic() + 10
    while server.db_query(query, task.task_id)[0][0] == "open" and time.monotonic() < end:
        time.sleep(0.05)
    assert server.db_query(query, task.task_id) == [("closed", "deadline", 2)]
    for share in key[1][1:4]:
        with server.holder(task, share) as holder:
            holder.contribute()
    with server.admin() as admin:
        result = admin.result(task.task_id)
    assert (result.sum, result.count, result.average) == ([42], 2, [21.0])

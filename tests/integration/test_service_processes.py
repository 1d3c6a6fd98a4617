"""Several stateless server processes on one database: nothing acknowledged lost, nothing twice.

Two ``python -m smpcloud.service`` processes on two ports share one database (a SQLite file,
or a fresh PostgreSQL database from ``$SMPCLOUD_TEST_POSTGRES_URL``; those are skipped when it
is unset). Uploads are split across both, the same report races to both, a close races uploads,
and one process is killed with SIGKILL mid-collection: every 201 is counted in the decrypted
result, exactly once. Two tests interleave two processes' transactions deterministically (two
services in this process on engines of their own, one statement held back until the other
process reaches the same point): the first count of a refusal, and storing the aggregate.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from service_harness import (
    Key,
    ServerProcess,
    db_rows,
    postgres_database,
    start_servers,
)
from sqlalchemy import Engine, event

from smpcloud.client import ClientCredentials, TaskCreated, prepare_report
from smpcloud.service.config import Settings
from smpcloud.service.db import make_engine
from smpcloud.service.storage import Storage
from smpcloud.service.tasks import TaskService

UPLOAD_TIMEOUT = 30.0


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The database both servers share."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'shared.db'}"
    else:
        with postgres_database() as url:
            yield url


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database (the deterministic interleavings need row locks)."""
    with postgres_database() as url:
        yield url


@pytest.fixture
def pair(tmp_path: Path, db_url: str, key: Key) -> Iterator[list[ServerProcess]]:
    """Two server processes on one database, one administrator token."""
    servers = start_servers(tmp_path, db_url, 2)
    try:
        yield servers
    finally:
        for server in servers:
            server.stop()
    for server in servers:
        server.check_log_has_no_secrets(key)


def _bodies(server: ServerProcess, task: TaskCreated, values: list[int]) -> list[dict[str, Any]]:
    with server.admin() as admin:
        info = admin.info(task.task_id, allow_insecure_keys=True)
    return [prepare_report(info, [v]).request_body() for v in values]


def _post(server: ServerProcess, task_id: str, token: str, body: dict[str, Any]) -> int:
    """POST one report; its status, or 0 when no answer came (the server died)."""
    try:
        response = httpx.post(
            f"{server.base_url}/v1/tasks/{task_id}/reports",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
            timeout=UPLOAD_TIMEOUT,
        )
    except httpx.TransportError:
        return 0
    assert response.status_code in (201, 409), (response.status_code, response.text[:300])
    return response.status_code


def _decrypt(server: ServerProcess, task: TaskCreated, key: Key) -> tuple[list[int], int]:
    """Three key holders contribute through ``server``; the released sums and count."""
    for share in key[1][:3]:
        with server.holder(task, share) as holder:
            holder.contribute()
    with server.admin() as admin:
        result = admin.result(task.task_id)
    return [int(s) for s in result.sum], result.count


def _task(
    server: ServerProcess, key: Key, clients: int
) -> tuple[TaskCreated, list[ClientCredentials], list[int]]:
    task, creds = server.new_task(key, clients, length=1, min_clients=2)
    values = [(-1) ** i * (7 * i % 23) for i in range(clients)]
    return task, creds, values


def _check_published_once(db_url: str, task_id: str, count: int) -> None:
    """One stored aggregate and one report log, of ``count`` reports; as many report rows."""
    assert db_rows(db_url, "SELECT count FROM aggregates WHERE task_id = :t", t=task_id) == [
        (count,)
    ]
    assert db_rows(db_url, "SELECT count FROM report_logs WHERE task_id = :t", t=task_id) == [
        (count,)
    ]
    rows = db_rows(db_url, "SELECT count(*) FROM reports WHERE task_id = :t", t=task_id)
    assert rows == [(count,)]


def test_uploads_split_across_two_processes_are_all_counted(
    pair: list[ServerProcess], db_url: str, key: Key
) -> None:
    a, b = pair
    task, creds, values = _task(a, key, 40)
    bodies = _bodies(a, task, values)
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(
            pool.map(
                lambda i: _post(pair[i % 2], task.task_id, creds[i].token, bodies[i]),
                range(len(values)),
            )
        )
    assert statuses == [201] * len(values)
    with b.admin() as admin:
        status = admin.close(task.task_id)
    assert (status.state, status.reports) == ("closed", len(values))
    assert _decrypt(a, task, key) == ([sum(values)], len(values))
    _check_published_once(db_url, task.task_id, len(values))


def test_the_same_report_sent_to_both_processes_at_once_is_stored_once(
    pair: list[ServerProcess], db_url: str, key: Key
) -> None:
    a, b = pair
    task, creds, values = _task(a, key, 16)
    bodies = _bodies(a, task, values)

    def race(i: int) -> list[int]:
        start = threading.Barrier(2)

        def send(server: ServerProcess) -> int:
            start.wait(timeout=UPLOAD_TIMEOUT)
            return _post(server, task.task_id, creds[i].token, bodies[i])

        with ThreadPoolExecutor(max_workers=2) as two:
            return sorted(two.map(send, (a, b)))

    with ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = list(pool.map(race, range(len(values))))
    assert outcomes == [[201, 409]] * len(values)
    with a.admin() as admin:
        status = admin.status(task.task_id)
        assert status.reports == len(values)
        assert status.refused == {"duplicate-submission": len(values)}
        admin.close(task.task_id)
    assert _decrypt(b, task, key) == ([sum(values)], len(values))
    _check_published_once(db_url, task.task_id, len(values))


def test_a_close_racing_uploads_on_two_processes_counts_every_201_once(
    pair: list[ServerProcess], db_url: str, key: Key
) -> None:
    a, b = pair
    task, creds, values = _task(a, key, 60)
    bodies = _bodies(a, task, values)
    accepted: dict[int, int] = {}
    lock = threading.Lock()
    enough = threading.Event()

    def upload(i: int) -> None:
        code = _post(pair[i % 2], task.task_id, creds[i].token, bodies[i])
        with lock:
            accepted[i] = code
            if sum(1 for c in accepted.values() if c == 201) >= 15:
                enough.set()

    with ThreadPoolExecutor(max_workers=6) as pool:
        futures = [pool.submit(upload, i) for i in range(len(values))]
        assert enough.wait(timeout=60)
        with b.admin() as admin:
            admin.close(task.task_id)
        for future in futures:
            future.result()
    acked = sorted(i for i, code in accepted.items() if code == 201)
    assert set(accepted.values()) <= {201, 409}
    assert len(acked) >= 15
    with a.admin() as admin:
        status = admin.status(task.task_id)
    assert (status.state, status.reports) == ("closed", len(acked))
    assert _decrypt(a, task, key) == ([sum(values[i] for i in acked)], len(acked))
    _check_published_once(db_url, task.task_id, len(acked))


def test_kill_9_of_one_process_loses_none_of_its_201s(
    pair: list[ServerProcess], db_url: str, key: Key
) -> None:
    a, b = pair
    task, creds, values = _task(a, key, 60)
    bodies = _bodies(a, task, values)
    accepted: dict[int, int] = {}
    lock = threading.Lock()
    enough = threading.Event()

    def upload(i: int) -> None:
        code = _post(pair[i % 2], task.task_id, creds[i].token, bodies[i])
        with lock:
            accepted[i] = code
            if sum(1 for j, c in accepted.items() if c == 201 and j % 2 == 0) >= 10:
                enough.set()

    with ThreadPoolExecutor(max_workers=6) as pool:
        futures = [pool.submit(upload, i) for i in range(len(values))]
        assert enough.wait(timeout=60)
        a.kill()  # SIGKILL while uploads to it are in flight
        for future in futures:
            future.result()
    by_killed = {i for i, code in accepted.items() if code == 201 and i % 2 == 0}
    assert len(by_killed) >= 10
    # The clients that got no answer retry on the survivor: stored once either way.
    for i, code in sorted(accepted.items()):
        if code == 0:
            accepted[i] = _post(b, task.task_id, creds[i].token, bodies[i])
    assert set(accepted.values()) <= {201, 409}
    with b.admin() as admin:
        status = admin.close(task.task_id)
    reporters = set(
        httpx.get(
            f"{b.base_url}/v1/tasks/{task.task_id}/reporters",
            headers={"Authorization": f"Bearer {b.admin_token}"},
            timeout=UPLOAD_TIMEOUT,
        ).json()["clients"]
    )
    assert (status.state, status.reports) == ("closed", len(values))
    assert {creds[i].client_id for i in by_killed} <= reporters
    assert _decrypt(b, task, key) == ([sum(values)], len(values))
    _check_published_once(db_url, task.task_id, len(values))


# ----------------------------------------------------------------- deterministic interleavings


def _hold_first(engine: Engine, prefixes: tuple[str, ...], meet: threading.Barrier) -> None:
    """Hold this engine's first statement starting with one of ``prefixes`` until the other
    engine reaches its own (or, when the other is blocked behind this one, a few seconds)."""
    held = threading.Event()

    @event.listens_for(engine, "before_cursor_execute")
    def _before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not held.is_set() and statement.lstrip().startswith(prefixes):
            held.set()
            with contextlib.suppress(threading.BrokenBarrierError):
                meet.wait(timeout=3)


def _run_both(first: Callable[[], object], second: Callable[[], object]) -> list[object]:
    with ThreadPoolExecutor(max_workers=2) as two:
        futures = [two.submit(first), two.submit(second)]
        return [future.result(timeout=60) for future in futures]


def _collect_task(tmp_path: Path, url: str, key: Key, clients: int) -> tuple[str, str, int]:
    """A task on ``url`` with ``clients`` reports, uploaded through a server then stopped."""
    (server,) = start_servers(tmp_path, url, 1)
    try:
        task, creds, values = _task(server, key, clients)
        for cred, value in zip(creds, values, strict=True):
            with server.client(task.task_id, cred.token) as client:
                client.submit([value])
    finally:
        server.stop()
    return task.task_id, server.admin_token, clients


def test_two_processes_counting_a_first_refusal_at_once_count_both(
    tmp_path: Path, pg_url: str, key: Key
) -> None:
    task_id, _token, _n = _collect_task(tmp_path, pg_url, key, 2)
    engines = [make_engine(pg_url), make_engine(pg_url)]
    meet = threading.Barrier(2)
    try:
        for engine in engines:
            _hold_first(engine, ("INSERT INTO refused_reports",), meet)
        one, two = (Storage(engine) for engine in engines)
        _run_both(
            lambda: one.count_refusal(task_id, "task-state"),
            lambda: two.count_refusal(task_id, "task-state"),
        )
    finally:
        for engine in engines:
            engine.dispose()
    sql = "SELECT count FROM refused_reports WHERE task_id = :t AND reason = 'task-state'"
    assert db_rows(pg_url, sql, t=task_id) == [(2,)]


def test_two_processes_finishing_one_aggregate_at_once_store_it_once(
    tmp_path: Path, pg_url: str, key: Key
) -> None:
    task_id, token, count = _collect_task(tmp_path, pg_url, key, 6)
    engines = [make_engine(pg_url), make_engine(pg_url)]
    settings = Settings(admin_token=token, db_url=pg_url, workers=1, allow_insecure_keys=True)
    meet = threading.Barrier(2)
    try:
        for engine in engines:
            _hold_first(engine, ("INSERT INTO report_logs", "INSERT INTO aggregates"), meet)
        closer, reader = (TaskService(engine, settings) for engine in engines)

        def read_once_closed() -> object:
            state_sql = "SELECT state FROM tasks WHERE id = :t"
            for _ in range(600):
                if db_rows(pg_url, state_sql, t=task_id) == [("closed",)]:
                    break
                time.sleep(0.05)
            return reader.aggregate(task_id)

        _none, published = _run_both(lambda: closer.close(task_id), read_once_closed)
    finally:
        for engine in engines:
            engine.dispose()
    assert getattr(published, "count", None) == count
    _check_published_once(pg_url, task_id, count)


# ----------------------------------------------------------------- serve --processes N


def _worker_pids(server: ServerProcess, count: int) -> list[int]:
    """The pids of the server's ``count`` uvicorn workers once all have started (from its log:
    the first to start answers /healthz before the others are up)."""
    for _ in range(1200):
        text = server.log_text()
        if text.count("Application startup complete") >= count:
            break
        time.sleep(0.05)
    pids = re.findall(r"Started server process \[(\d+)\]", server.log_text())
    return [int(pid) for pid in pids]


def test_serve_processes_2_shares_one_socket_and_survives_a_killed_worker(
    tmp_path: Path, db_url: str, key: Key
) -> None:
    (server,) = start_servers(tmp_path, db_url, 1, "--processes", "2")
    try:
        workers = _worker_pids(server, 2)
        assert len(workers) == 2
        for pid in [server.proc.pid if server.proc else 0, *workers]:
            # The administrator's token is in the environment, never on a command line.
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            assert server.admin_token.encode() not in cmdline
        task, creds, values = _task(server, key, 40)
        bodies = _bodies(server, task, values)
        accepted: dict[int, int] = {}
        lock = threading.Lock()
        enough = threading.Event()

        def upload(i: int) -> None:
            code = _post(server, task.task_id, creds[i].token, bodies[i])
            with lock:
                accepted[i] = code
                if sum(1 for c in accepted.values() if c == 201) >= 10:
                    enough.set()

        with ThreadPoolExecutor(max_workers=6) as pool:
            futures = [pool.submit(upload, i) for i in range(len(values))]
            assert enough.wait(timeout=60)
            os.kill(workers[0], signal.SIGKILL)  # one worker dies; the other keeps serving
            for future in futures:
                future.result()
        for i, code in sorted(accepted.items()):
            if code == 0:  # no answer from the killed worker: the client retries
                accepted[i] = _post(server, task.task_id, creds[i].token, bodies[i])
        assert set(accepted.values()) <= {201, 409}
        with server.admin() as admin:
            status = admin.close(task.task_id)
        assert (status.state, status.reports) == ("closed", len(values))
        assert _decrypt(server, task, key) == ([sum(values)], len(values))
        _check_published_once(db_url, task.task_id, len(values))
    finally:
        server.stop()
    server.check_log_has_no_secrets(key)


def test_postgresql_uploads_reuse_pooled_connections(tmp_path: Path, pg_url: str, key: Key) -> None:
    """Concurrent uploads do not open a database connection after another: a new PostgreSQL
    session costs a backend process (measured: one per ~4 uploads at 32 connections with a
    pool of 5 + 10 overflow, whose overflow connections are closed as soon as they return)."""
    (server,) = start_servers(tmp_path, pg_url, 1)
    try:
        task, creds, values = _task(server, key, 300)
        bodies = _bodies(server, task, values)
        name = pg_url.rsplit("/", 1)[1]
        sessions_sql = "SELECT sessions FROM pg_stat_database WHERE datname = :d"

        def sessions() -> int:
            time.sleep(1.5)  # backends report their statistics at most once a second
            ((count,),) = db_rows(pg_url, sessions_sql, d=name)
            return int(count)  # type: ignore[call-overload]

        before = sessions()
        with ThreadPoolExecutor(max_workers=32) as pool:
            statuses = list(
                pool.map(
                    lambda i: _post(server, task.task_id, creds[i].token, bodies[i]),
                    range(len(values)),
                )
            )
        assert statuses == [201] * len(values)
        opened = sessions() - before - 2  # the two reads of the counter
    finally:
        server.stop()
    assert opened <= 40, opened

"""The group commit of uploads (:mod:`smpcloud.service.storage`) on a real SQLite file.

Threads upload at once through one :class:`Storage`; commits are observed through SQLAlchemy's
``commit`` event, passes through the write turn through :meth:`Storage.writer_turn`.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, select

from smpcloud.crypto import threshold
from smpcloud.protocol.problems import DuplicateSubmissionError, TaskStateError
from smpcloud.protocol.schemas import ClientsIn, TaskEncoding, TaskIn
from smpcloud.service.config import Settings
from smpcloud.service.db import ReportRow, make_engine
from smpcloud.service.migrations import upgrade
from smpcloud.service.storage import Storage
from smpcloud.service.tasks import TaskService

TOKEN = secrets.token_urlsafe(32)
UPLOADERS = 24
LIVENESS_SECONDS = 120.0  # only bounds a hung test; nothing is asserted about time


class CountingStorage(Storage):
    """A Storage that counts the uploads' passes through the write turn."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.upload_turns = 0
        self._count_lock = threading.Lock()

    def writer_turn(self) -> AbstractContextManager[object]:
        if threading.current_thread().name.startswith("upload-"):
            with self._count_lock:
                self.upload_turns += 1
        return super().writer_turn()


@pytest.fixture(scope="module")
def public_key() -> threshold.ThresholdPublicKey:
    return threshold.deal(1024, n=2, t=1, insecure=True)[0]


@pytest.fixture(scope="module")
def blob(public_key: threshold.ThresholdPublicKey) -> bytes:
    """A stored report: one valid ciphertext (the group commit does not look inside it)."""
    return public_key.public_key.encrypt(1).to_bytes()


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'storage.db'}")
    upgrade(engine)
    yield engine
    engine.dispose()


def open_task(
    engine: Engine, public_key: threshold.ThresholdPublicKey, clients: int
) -> tuple[TaskService, str, list[int]]:
    settings = Settings(
        admin_token=TOKEN, db_url=str(engine.url), allow_insecure_keys=True, workers=1
    )
    service = TaskService(engine, settings)
    body = TaskIn(
        name="storage",
        public_key=threshold.public_key_to_json(public_key),
        encoding=TaskEncoding.integer(0, 10),
        min_clients=2,
        max_clients=1000,
    )
    task_id = service.create_task(body).task_id
    ids = [c.client_id for c in service.register_clients(task_id, ClientsIn(count=clients)).clients]
    return service, task_id, ids


def stored(engine: Engine, task_id: str) -> tuple[int, int]:
    with engine.connect() as conn:
        row = conn.execute(
            select(func.count(), func.count(ReportRow.client_id.distinct())).where(
                ReportRow.task_id == task_id
            )
        ).one()
    return int(row[0]), int(row[1])


def run_uploads(
    storage: Storage,
    jobs: list[tuple[str, int]],
    blob: bytes,
    started: threading.Semaphore | None = None,
) -> list[BaseException | None]:
    """Upload ``blob`` for every (task, client) from a thread of its own; return the errors."""
    outcomes: list[BaseException | None] = [None] * len(jobs)
    now = datetime.now(UTC)

    def upload(i: int) -> None:
        task_id, client_id = jobs[i]
        if started is not None:
            started.release()
        try:
            storage.store_report(task_id, client_id, blob, now)
        except BaseException as exc:
            outcomes[i] = exc

    threads = [
        threading.Thread(target=upload, args=(i,), name=f"upload-{i}") for i in range(len(jobs))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(LIVENESS_SECONDS)
    if any(thread.is_alive() for thread in threads):
        raise AssertionError("an upload never returned")
    return outcomes


def test_waiting_uploads_do_not_queue_on_the_write_turn(
    engine: Engine, public_key: threshold.ThresholdPublicKey, blob: bytes
) -> None:
    # The finding: every upload took the write turn, even one whose report another upload had
    # already committed; under load a commit of k reports was followed by k lock hand-offs.
    # Now only the upload that commits a group takes the turn: one pass per transaction.
    _service, task_id, ids = open_task(engine, public_key, UPLOADERS)
    storage = CountingStorage(engine)
    commits = 0
    started = threading.Semaphore(0)

    def on_commit(_conn: Any) -> None:
        nonlocal commits
        commits += 1
        if commits == 1:
            # Hold the first group's commit until every other upload has set off, so that
            # they all wait together for the next one.
            for _ in range(UPLOADERS):
                if not started.acquire(timeout=LIVENESS_SECONDS):
                    raise AssertionError("an upload thread did not start")
            for _ in range(UPLOADERS):
                started.release()
            threading.Event().wait(0.2)

    event.listen(engine, "commit", on_commit)
    try:
        outcomes = run_uploads(storage, [(task_id, i) for i in ids], blob, started)
    finally:
        event.remove(engine, "commit", on_commit)
    assert outcomes == [None] * UPLOADERS
    assert stored(engine, task_id) == (UPLOADERS, UPLOADERS)
    assert commits < UPLOADERS  # reports were grouped
    assert storage.upload_turns == commits


def test_racing_duplicates_and_two_tasks_in_one_group(
    engine: Engine, public_key: threshold.ThresholdPublicKey, blob: bytes
) -> None:
    service, first, first_ids = open_task(engine, public_key, 16)
    _service, second, second_ids = open_task(engine, public_key, 16)
    storage = Storage(engine)
    jobs = [(first, i) for i in first_ids for _ in range(3)] + [(second, i) for i in second_ids]
    outcomes = run_uploads(storage, jobs, blob)
    for task_id, ids in ((first, first_ids), (second, second_ids)):
        for client_id in ids:
            mine = [o for job, o in zip(jobs, outcomes, strict=True) if job == (task_id, client_id)]
            assert sum(o is None for o in mine) == 1
            assert all(isinstance(o, DuplicateSubmissionError) for o in mine if o is not None)
    assert stored(engine, first) == (16, 16)
    assert stored(engine, second) == (16, 16)
    service.close(first)
    late = run_uploads(storage, [(first, first_ids[0]), (second, second_ids[0])], blob)
    assert isinstance(late[0], TaskStateError)
    assert isinstance(late[1], DuplicateSubmissionError)


def test_a_failed_transaction_fails_its_group_and_the_next_group_commits(
    engine: Engine, public_key: threshold.ThresholdPublicKey, blob: bytes
) -> None:
    _service, task_id, ids = open_task(engine, public_key, 4)
    storage = Storage(engine)

    def refuse(_conn: Any) -> None:
        raise RuntimeError("the disk is full")

    event.listen(engine, "commit", refuse)
    try:
        outcomes = run_uploads(storage, [(task_id, ids[0]), (task_id, ids[1])], blob)
    finally:
        event.remove(engine, "commit", refuse)
    assert all(isinstance(o, RuntimeError) for o in outcomes)
    assert stored(engine, task_id) == (0, 0)
    # The lead was handed on (or lapsed): later uploads still commit.
    assert run_uploads(storage, [(task_id, i) for i in ids], blob) == [None] * 4
    assert stored(engine, task_id) == (4, 4)

"""The Shamir scheme of the service below HTTP: the facade on a real SQLite file, no mocks.

One server (j = 2 of n = 3) runs a whole task: create, register, accept shares, list
reporters, close over a participant set, serve its share of the sum; a second close over
another set is refused; the deadline stops uploads but never closes the task. Shares arrive
sealed to the server's share key: a plain share, or a sealed one made for another client, task
or server, is refused.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from smpcloud.crypto.field import Residues
from smpcloud.crypto.sealing import SealingKey, seal
from smpcloud.crypto.shamir import Share, reconstruct_elements, share_elements
from smpcloud.crypto.wire import b64url
from smpcloud.errors import InvalidInputError, SealError, ShareError
from smpcloud.protocol.problems import (
    DuplicateSubmissionError,
    TaskStateError,
    UnsealedShareError,
)
from smpcloud.protocol.schemas import (
    ClientsIn,
    PartialsIn,
    ReportIn,
    SealedShareIn,
    ShamirAggregateOut,
    TaskIn,
)
from smpcloud.protocol.sharing import (
    SHAMIR_FIELD,
    SHARE_SEAL_INFO,
    decode_share,
    encode_share,
    seal_share,
    share_seal_aad,
)
from smpcloud.service.auth import CLIENT, Principal
from smpcloud.service.config import Settings
from smpcloud.service.db import make_engine
from smpcloud.service.migrations import upgrade
from smpcloud.service.tasks import TaskService

TOKEN = secrets.token_urlsafe(32)
FIELD = SHAMIR_FIELD
SERVER = 2


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2030, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def service(tmp_path: Path, clock: Clock) -> Iterator[TaskService]:
    settings = Settings(admin_token=TOKEN, db_url=f"sqlite:///{tmp_path / 's.db'}", workers=1)
    engine = make_engine(settings.db_url)
    upgrade(engine)
    yield TaskService(engine, settings, clock=clock)
    engine.dispose()


def shamir_task(**extra: object) -> TaskIn:
    extra.setdefault("validity", "none")  # checked reports: tests/integration/test_shamir_forged.py
    return TaskIn(
        name="s",
        scheme="shamir",
        servers=3,
        threshold=2,
        server_index=SERVER,
        length=2,
        min_clients=2,
        **extra,  # type: ignore[arg-type]
    )


def clients(service: TaskService, task_id: str, count: int) -> list[Principal]:
    out = service.register_clients(task_id, ClientsIn(count=count)).clients
    return [service.authenticate(c.token, task_id, CLIENT, "upload reports") for c in out]


def share_for_this_server(values: list[int]) -> Residues:
    blocks = share_elements(FIELD, FIELD.from_ints(np.array(values, dtype=object)), n=3, t=2)
    block: Residues = blocks[SERVER - 1]
    return block


def sealed(
    service: TaskService, task_id: str, number: int, block: Residues, server: int = SERVER
) -> ReportIn:
    """The report of client ``number``: ``block`` sealed to the server's published key."""
    share_key = service.info(task_id).share_key
    assert share_key is not None
    box = seal_share(
        SealingKey.from_text(share_key), block, task_id=task_id, server_index=server, client=number
    )
    return ReportIn(sealed_share=SealedShareIn.model_validate(box))


def test_a_whole_shamir_task(service: TaskService, tmp_path: Path) -> None:
    created = service.create_task(shamir_task())
    assert created.holder_tokens == []
    task_id = created.task_id
    who = clients(service, task_id, 3) + clients(service, task_id, 1)
    values = {1: [5, -1], 2: [7, 2], 3: [100, 100], 4: [0, 0]}
    for number, principal in enumerate(who[:3], start=1):
        accepted = service.submit_report(
            task_id,
            principal,
            sealed(service, task_id, number, share_for_this_server(values[number])),
        )
        assert accepted.client_id == number  # clients are named by their number in the task
    with pytest.raises(DuplicateSubmissionError, match="client 2 has already submitted"):
        service.submit_report(
            task_id, who[1], sealed(service, task_id, 2, share_for_this_server([0, 0]))
        )
    plain = encode_share(share_for_this_server([1, 1]), FIELD)
    with pytest.raises(UnsealedShareError, match="shares must be sealed"):
        service.submit_report(task_id, who[3], ReportIn(share=plain))
    block = share_for_this_server([1, 1])
    for wrong in (  # sealed for client 3 (replayed as client 4's), for server 1, for a task
        sealed(service, task_id, 3, block),
        sealed(service, task_id, 4, block, server=1),
    ):
        with pytest.raises(SealError, match="does not open"):
            service.submit_report(task_id, who[3], wrong)
    with pytest.raises(ShareError, match=r"sealed_share\.enc"):
        bad = SealedShareIn(enc="A+", ciphertext="AAAA")
        service.submit_report(task_id, who[3], ReportIn(sealed_share=bad))
    share_key = SealingKey.from_text(service.info(task_id).share_key)
    enc, ct = seal(
        share_key, b"not a share", info=SHARE_SEAL_INFO, aad=share_seal_aad(task_id, SERVER, 4)
    )
    with pytest.raises(ShareError, match="sealed share"):
        garbage = SealedShareIn(enc=b64url(enc), ciphertext=b64url(ct))
        service.submit_report(task_id, who[3], ReportIn(sealed_share=garbage))
    with pytest.raises(InvalidInputError, match="is a Shamir task: a report carries one sealed"):
        service.submit_report(task_id, who[3], ReportIn(key_id="k", ciphertexts=["AQ"]))
    assert service.reporters(task_id).clients == [1, 2, 3]
    status = service.status(task_id, who[0])
    assert (status.scheme, status.servers, status.server_index, status.holders) == (
        "shamir",
        3,
        SERVER,
        0,
    )
    assert (status.threshold, status.reports, status.reported) == (2, 3, True)
    info = service.info(task_id)
    assert info.public_key is None and info.field == list(FIELD.moduli)

    with pytest.raises(TaskStateError, match="still open"):
        service.aggregate(task_id)
    with pytest.raises(InvalidInputError, match="needs the participant set"):
        service.close(task_id)
    with pytest.raises(InvalidInputError, match="more than once"):
        service.close(task_id, clients=[1, 1, 2])
    with pytest.raises(InvalidInputError, match="fewer than this task's min_clients"):
        service.close(task_id, clients=[1])
    with pytest.raises(InvalidInputError, match=r"no report on this server \(clients 4\)"):
        service.close(task_id, clients=[1, 4])
    service.close(task_id, clients=[2, 1])
    service.close(task_id, clients=[1, 2])  # the same set again: a retried request
    with pytest.raises(TaskStateError, match="already closed over a different participant set"):
        service.close(task_id, clients=[1, 2, 3])

    aggregate = service.aggregate(task_id)
    assert isinstance(aggregate, ShamirAggregateOut)
    assert (aggregate.clients, aggregate.count, aggregate.server_index) == ([1, 2], 2, SERVER)
    assert decode_share(aggregate.share, length=2, field=FIELD).shape == (FIELD.k, 2)
    assert service.status(task_id).state == "closed"
    with pytest.raises(TaskStateError, match="no server knows its result"):
        service.result(task_id)
    with pytest.raises(TaskStateError, match="it has no key holders"):
        service.submit_partials(
            task_id, Principal("holder", task_id, holder_index=1), PartialsIn(batch={})
        )
    with pytest.raises(TaskStateError, match="is closed: no more clients"):
        service.register_clients(task_id, ClientsIn(count=1))

    # The Shamir task wrote nothing into the Paillier tables.
    with sqlite3.connect(tmp_path / "s.db") as conn:
        for table in (
            "paillier_tasks",
            "packed_tasks",
            "key_holders",
            "aggregates",
            "partial_decryptions",
            "results",
        ):
            assert conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone() == (0,), table
        assert conn.execute("SELECT scheme FROM tasks").fetchall() == [("shamir",)]
        assert conn.execute("SELECT count FROM shamir_aggregates").fetchall() == [(2,)]


def test_the_sum_of_t_servers_shares_is_the_sum(tmp_path: Path, clock: Clock) -> None:
    """Two servers of three (j = 1 and 3) close over the same set; their shares rebuild the sum."""
    values = [[3, -4], [10, 20], [-1, 1]]
    blocks = [
        share_elements(FIELD, FIELD.from_ints(np.array(row, dtype=object)), n=3, t=2)
        for row in values
    ]
    points = []
    for j in (1, 3):
        settings = Settings(
            admin_token=TOKEN, db_url=f"sqlite:///{tmp_path / f'{j}.db'}", workers=1
        )
        engine = make_engine(settings.db_url)
        upgrade(engine)
        server = TaskService(engine, settings, clock=clock)
        body = TaskIn(
            name="s", scheme="shamir", servers=3, threshold=2, server_index=j, length=2,
            min_clients=2, validity="none",
        )  # fmt: skip
        task_id = server.create_task(body).task_id
        for number, (principal, block) in enumerate(
            zip(clients(server, task_id, 3), blocks, strict=True), start=1
        ):
            report = sealed(server, task_id, number, block[j - 1], server=j)
            server.submit_report(task_id, principal, report)
        server.close(task_id, clients=[1, 2, 3])
        aggregate = server.aggregate(task_id)
        assert isinstance(aggregate, ShamirAggregateOut)
        points.append(Share(j, decode_share(aggregate.share, length=2, field=FIELD), FIELD, 2))
        engine.dispose()
    total = FIELD.to_ints(reconstruct_elements(points))
    assert [int(v) for v in total] == [12, 17]


def test_the_deadline_stops_uploads_but_never_closes(service: TaskService, clock: Clock) -> None:
    task_id = service.create_task(shamir_task(deadline=clock.now + timedelta(minutes=5))).task_id
    who = clients(service, task_id, 3)
    for number, principal in enumerate(who[:2], start=1):
        report = sealed(service, task_id, number, share_for_this_server([1, 1]))
        service.submit_report(task_id, principal, report)
    clock.now += timedelta(minutes=6)
    assert service.close_due_tasks() == 0
    assert service.status(task_id).state == "open"
    with pytest.raises(TaskStateError, match="passed its deadline; reports are no longer"):
        service.submit_report(
            task_id, who[2], sealed(service, task_id, 3, share_for_this_server([1, 1]))
        )
    with pytest.raises(TaskStateError, match="passed its deadline: no more clients"):
        service.register_clients(task_id, ClientsIn(count=1))
    service.close(task_id, clients=[1, 2])
    assert service.status(task_id).state == "closed"

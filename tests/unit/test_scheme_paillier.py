"""The Paillier scheme of the service below HTTP: the facade on a real SQLite file, no mocks.

Whole tasks run through :class:`smpcloud.service.tasks.TaskService` (create, register, upload,
close, aggregate, partial decryptions from t holders, result), unpacked and packed; then the
upgrade of a database made by the previous layout (Paillier columns in ``tasks``).
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, inspect

from smpcloud.crypto import threshold
from smpcloud.crypto.packing import Packing, encrypt_vector
from smpcloud.crypto.paillier import Ciphertext
from smpcloud.crypto.wire import decode_int, encode_int
from smpcloud.errors import InvalidInputError, MalformedCiphertextError, ThresholdNotMetError
from smpcloud.protocol.problems import (
    DuplicateSubmissionError,
    InsufficientReportsError,
    TaskStateError,
)
from smpcloud.protocol.schemas import (
    AggregateOut,
    ClientsIn,
    PartialsIn,
    ReportIn,
    ShamirAggregateOut,
    TaskEncoding,
    TaskIn,
)
from smpcloud.protocol.sharing import SHAMIR_FIELD, encode_share, residues_to_blob
from smpcloud.service.auth import CLIENT, Principal
from smpcloud.service.config import Settings
from smpcloud.service.db import make_engine
from smpcloud.service.migrations import upgrade
from smpcloud.service.schema import is_previous_layout
from smpcloud.service.tasks import TaskService

TOKEN = secrets.token_urlsafe(32)
Key = tuple[threshold.ThresholdPublicKey, list[threshold.KeyShare]]


@pytest.fixture(scope="module")
def key() -> Key:
    """A small (insecure, fast) 2-of-3 threshold key."""
    return threshold.deal(1024, n=3, t=2, insecure=True)


def open_service(path: Path) -> tuple[TaskService, Engine]:
    settings = Settings(
        admin_token=TOKEN, db_url=f"sqlite:///{path}", allow_insecure_keys=True, workers=1
    )
    engine = make_engine(settings.db_url)
    upgrade(engine)
    return TaskService(engine, settings), engine


@pytest.fixture
def service(tmp_path: Path) -> Iterator[TaskService]:
    svc, engine = open_service(tmp_path / "s.db")
    yield svc
    engine.dispose()


def client_of(service: TaskService, task_id: str, token: str) -> Principal:
    return service.authenticate(token, task_id, CLIENT, "upload reports")


def report(public: threshold.ThresholdPublicKey, values: list[int]) -> ReportIn:
    pk = public.public_key
    return ReportIn(key_id=pk.key_id, ciphertexts=[encode_int(pk.encrypt(v).value) for v in values])


def aggregate_ciphertexts(
    service: TaskService, task_id: str, public: threshold.ThresholdPublicKey
) -> list[Ciphertext]:
    out = service.aggregate(task_id)
    assert isinstance(out, AggregateOut)
    width = (public.public_key.n_squared.bit_length() + 7) // 8
    return [
        Ciphertext(public.public_key, decode_int(c, "ciphertext", max_bytes=width))
        for c in out.ciphertexts
    ]


def test_a_whole_paillier_task(service: TaskService, key: Key, tmp_path: Path) -> None:
    public, shares = key
    body = TaskIn(
        name="t",
        public_key=threshold.public_key_to_json(public),
        length=2,
        min_clients=2,
        validity="none",
    )
    created = service.create_task(body)
    assert len(created.holder_tokens) == 3
    task_id = created.task_id
    clients = service.register_clients(task_id, ClientsIn(count=3)).clients
    who = [client_of(service, task_id, c.token) for c in clients]
    values = [[3, -1], [4, 10], [5, 0]]
    for principal, row in zip(who[:2], values[:2], strict=True):
        accepted = service.submit_report(task_id, principal, report(public, row))
        assert accepted.client_id == principal.client_id
    with pytest.raises(DuplicateSubmissionError, match="already submitted"):
        service.submit_report(task_id, who[0], report(public, [0, 0]))
    with pytest.raises(InvalidInputError, match="report has 1 ciphertexts; this task takes 2"):
        service.submit_report(task_id, who[2], report(public, [1]))
    bad = ReportIn(key_id=public.public_key.key_id, ciphertexts=[encode_int(public.n), "AQ"])
    with pytest.raises(MalformedCiphertextError, match=r"ciphertexts\[0\]"):
        service.submit_report(task_id, who[2], bad)
    with pytest.raises(InvalidInputError, match="is a Paillier task"):
        service.submit_report(task_id, who[2], ReportIn(share="AAAA"))
    service.submit_report(task_id, who[2], report(public, values[2]))
    assert service.reporters(task_id).clients == sorted(p.client_id or 0 for p in who)
    with pytest.raises(TaskStateError, match="still open"):
        service.aggregate(task_id)
    with pytest.raises(InvalidInputError, match="only for Shamir tasks"):
        service.close(task_id, clients=[1, 2])

    service.close(task_id)
    service.close(task_id)  # idempotent
    status = service.status(task_id, who[0])
    assert (status.state, status.reports, status.registered_clients) == ("closed", 3, 3)
    assert (status.threshold, status.holders, status.scheme, status.reported) == (
        2,
        3,
        "paillier",
        True,
    )
    with pytest.raises(TaskStateError, match="no more clients"):
        service.register_clients(task_id, ClientsIn(count=1))
    aggregate = aggregate_ciphertexts(service, task_id, public)
    with pytest.raises(ThresholdNotMetError, match="0 of 2 partial decryptions"):
        service.result(task_id)

    holders = [
        service.authenticate(token, task_id, frozenset({"holder"}), "upload partial decryptions")
        for token in created.holder_tokens
    ]
    first = [threshold.partial_to_json(shares[0].partial_decrypt(c)) for c in aggregate]
    accepted = service.submit_partials(task_id, holders[0], PartialsIn(partials=first))
    assert (accepted.partials_received, accepted.decrypted) == (1, False)
    with pytest.raises(DuplicateSubmissionError, match="key holder 1"):
        service.submit_partials(task_id, holders[0], PartialsIn(partials=first))
    assert service.info(task_id).partials_form == "partials"
    third = [threshold.partial_to_json(shares[2].partial_decrypt(c)) for c in aggregate]
    accepted = service.submit_partials(task_id, holders[2], PartialsIn(partials=third))
    assert accepted.decrypted
    result = service.result(task_id)
    assert (result.sum, result.count, result.holders) == ([12, 9], 3, [1, 3])
    assert service.status(task_id).state == "decrypted"
    with pytest.raises(TaskStateError, match="already decrypted"):
        service.submit_partials(task_id, holders[1], PartialsIn(partials=third))

    # The Paillier task wrote its key into paillier_tasks and nothing into Shamir's tables.
    with sqlite3.connect(tmp_path / "s.db") as conn:
        assert conn.execute("SELECT holders, threshold FROM paillier_tasks").fetchall() == [(3, 2)]
        for table in ("shamir_tasks", "shamir_clients", "shamir_aggregates"):
            assert conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone() == (0,)
        assert conn.execute("SELECT scheme FROM tasks").fetchall() == [("paillier",)]


def test_too_few_reports_give_no_aggregate(service: TaskService, key: Key) -> None:
    public, _shares = key
    body = TaskIn(
        name="t", public_key=threshold.public_key_to_json(public), min_clients=3, validity="none"
    )
    task_id = service.create_task(body).task_id
    service.close(task_id)
    assert service.status(task_id).state == "insufficient"
    with pytest.raises(InsufficientReportsError, match="fewer than its minimum of 3"):
        service.aggregate(task_id)


def test_a_packed_task_with_batched_partials(service: TaskService, key: Key) -> None:
    public, shares = key
    length, count = 20, 3
    packing = Packing.for_key(
        public.public_key, length=length, min_value=-5, max_value=5, max_additions=count
    )
    body = TaskIn(
        name="packed",
        public_key=threshold.public_key_to_json(public),
        length=length,
        min_clients=2,
        max_clients=count,
        packing=packing.to_json(),
        validity="none",
    )
    created = service.create_task(body)
    task_id = created.task_id
    info = service.info(task_id)
    assert info.packing == packing.to_json()
    assert info.encoding == TaskEncoding.integer(-5, 5)
    rows = [[(i * 7 + j) % 11 - 5 for j in range(length)] for i in range(count)]
    for token, row in zip(
        (c.token for c in service.register_clients(task_id, ClientsIn(count=count)).clients),
        rows,
        strict=True,
    ):
        texts = [encode_int(c.value) for c in encrypt_vector(public.public_key, row, packing)]
        assert len(texts) == packing.ciphertexts < length
        service.submit_report(
            task_id,
            client_of(service, task_id, token),
            ReportIn(key_id=public.public_key.key_id, ciphertexts=texts),
        )
    service.close(task_id)
    aggregate = aggregate_ciphertexts(service, task_id, public)
    assert len(aggregate) == packing.ciphertexts
    for index in (2, 3):
        holder = service.authenticate(
            created.holder_tokens[index - 1], task_id, frozenset({"holder"}), "upload"
        )
        batch = shares[index - 1].partial_decrypt_batch(aggregate).to_json()
        service.submit_partials(task_id, holder, PartialsIn(batch=batch))
    result = service.result(task_id)
    assert result.sum == [sum(column) for column in zip(*rows, strict=True)]
    assert result.holders == [2, 3] and result.within_declared_range


# ------------------------------------------------------------------- the previous layout

# The DDL of the previous layout's tables, as SQLAlchemy created them on SQLite (commit c38c865).
PREVIOUS_DDL = """
CREATE TABLE tasks (
    id VARCHAR(64) NOT NULL, name VARCHAR(200) NOT NULL, public_key_json TEXT NOT NULL,
    key_fingerprint VARCHAR(64) NOT NULL, holders INTEGER NOT NULL, threshold INTEGER NOT NULL,
    length INTEGER NOT NULL, encoding_json TEXT NOT NULL, min_clients INTEGER NOT NULL,
    max_clients INTEGER NOT NULL, deadline DATETIME, state VARCHAR(16) NOT NULL,
    created_at DATETIME NOT NULL, closed_at DATETIME, close_reason VARCHAR(16),
    report_count INTEGER, PRIMARY KEY (id)
);
CREATE INDEX ix_tasks_deadline ON tasks (deadline);
CREATE INDEX ix_tasks_state ON tasks (state);
CREATE TABLE clients (
    id INTEGER NOT NULL, task_id VARCHAR(64) NOT NULL, token_hash BLOB NOT NULL,
    created_at DATETIME NOT NULL, PRIMARY KEY (id), FOREIGN KEY(task_id) REFERENCES tasks (id),
    UNIQUE (token_hash)
);
CREATE INDEX ix_clients_task_id ON clients (task_id);
CREATE TABLE key_holders (
    id INTEGER NOT NULL, task_id VARCHAR(64) NOT NULL, holder_index INTEGER NOT NULL,
    token_hash BLOB NOT NULL, PRIMARY KEY (id), UNIQUE (task_id, holder_index),
    FOREIGN KEY(task_id) REFERENCES tasks (id), UNIQUE (token_hash)
);
CREATE INDEX ix_key_holders_task_id ON key_holders (task_id);
CREATE TABLE aggregates (
    task_id VARCHAR(64) NOT NULL, ciphertexts BLOB NOT NULL, count INTEGER NOT NULL,
    computed_at DATETIME NOT NULL, PRIMARY KEY (task_id), FOREIGN KEY(task_id) REFERENCES tasks (id)
);
CREATE TABLE partial_decryptions (
    id INTEGER NOT NULL, task_id VARCHAR(64) NOT NULL, holder_index INTEGER NOT NULL,
    partials_json TEXT NOT NULL, received_at DATETIME NOT NULL, PRIMARY KEY (id),
    UNIQUE (task_id, holder_index), FOREIGN KEY(task_id) REFERENCES tasks (id)
);
CREATE INDEX ix_partial_decryptions_task_id ON partial_decryptions (task_id);
CREATE TABLE results (
    task_id VARCHAR(64) NOT NULL, sums_json TEXT NOT NULL, count INTEGER NOT NULL,
    holders_json TEXT NOT NULL, computed_at DATETIME NOT NULL, PRIMARY KEY (task_id),
    FOREIGN KEY(task_id) REFERENCES tasks (id)
);
CREATE TABLE packed_tasks (
    task_id VARCHAR(64) NOT NULL, packing_json TEXT NOT NULL, PRIMARY KEY (task_id),
    FOREIGN KEY(task_id) REFERENCES tasks (id)
);
CREATE TABLE shamir_tasks (
    task_id VARCHAR(64) NOT NULL, servers INTEGER NOT NULL, threshold INTEGER NOT NULL,
    server_index INTEGER NOT NULL, moduli_json TEXT NOT NULL, participants_json TEXT,
    PRIMARY KEY (task_id), FOREIGN KEY(task_id) REFERENCES tasks (id)
);
CREATE TABLE reports (
    id INTEGER NOT NULL, task_id VARCHAR(64) NOT NULL, client_id INTEGER NOT NULL,
    ciphertexts BLOB NOT NULL, received_at DATETIME NOT NULL, PRIMARY KEY (id),
    UNIQUE (task_id, client_id), FOREIGN KEY(task_id) REFERENCES tasks (id),
    FOREIGN KEY(client_id) REFERENCES clients (id)
);
CREATE TABLE shamir_clients (
    client_id INTEGER NOT NULL, task_id VARCHAR(64) NOT NULL, number INTEGER NOT NULL,
    PRIMARY KEY (client_id), UNIQUE (task_id, number),
    FOREIGN KEY(client_id) REFERENCES clients (id), FOREIGN KEY(task_id) REFERENCES tasks (id)
);
CREATE INDEX ix_shamir_clients_task_id ON shamir_clients (task_id);
"""


def previous_database(path: Path, key: Key) -> None:
    """A database as the previous version left it: a decrypted Paillier task (sums 7 and -2 of
    two clients) and a closed Shamir task (server 1 of 3) with its share of the sum."""
    public, _shares = key
    now = "2030-01-01 00:00:00.000000"
    encoding = TaskEncoding.integer().model_dump_json()
    aggregate = public.public_key.encrypt(7).to_bytes() + public.public_key.encrypt(-2).to_bytes()
    shamir_sum = residues_to_blob(SHAMIR_FIELD.from_ints([11]))
    with sqlite3.connect(path) as conn:
        conn.executescript(PREVIOUS_DDL)
        conn.executemany(
            "INSERT INTO tasks VALUES (?, ?, ?, ?, ?, ?, ?, ?, 2, 10, NULL, ?, ?, ?, 'admin', 2)",
            [
                ("p", "paillier task", json.dumps(threshold.public_key_to_json(public)),
                 public.fingerprint(), 3, 2, 2, encoding, "decrypted", now, now),
                ("s", "shamir task", "null", "", 0, 2, 1, encoding, "closed", now, now),
            ],
        )  # fmt: skip
        conn.executemany(
            "INSERT INTO clients (id, task_id, token_hash, created_at) VALUES (?, ?, ?, ?)",
            [(i, task, secrets.token_bytes(32), now) for i, task in enumerate("ppss", 1)],
        )
        conn.executemany(
            "INSERT INTO key_holders (task_id, holder_index, token_hash) VALUES ('p', ?, ?)",
            [(i, secrets.token_bytes(32)) for i in (1, 2, 3)],
        )
        conn.execute(
            "INSERT INTO shamir_tasks VALUES ('s', 3, 2, 1, ?, '[1, 2]')",
            (json.dumps(list(SHAMIR_FIELD.moduli)),),
        )
        conn.executemany("INSERT INTO shamir_clients VALUES (?, 's', ?)", [(3, 1), (4, 2)])
        conn.executemany(
            "INSERT INTO reports (task_id, client_id, ciphertexts, received_at) "
            "VALUES (?, ?, ?, ?)",
            [("p", 1, b"x", now), ("p", 2, b"y", now), ("s", 3, b"z", now), ("s", 4, b"w", now)],
        )
        conn.executemany(
            "INSERT INTO aggregates VALUES (?, ?, 2, ?)",
            [("p", aggregate, now), ("s", shamir_sum, now)],
        )
        conn.execute(
            "INSERT INTO results VALUES ('p', ?, 2, '[1, 3]', ?)", (json.dumps(["7", "-2"]), now)
        )


def test_a_database_of_the_previous_layout_is_upgraded_in_place(tmp_path: Path, key: Key) -> None:
    path = tmp_path / "s.db"
    previous_database(path, key)
    for _start in range(2):  # the second start finds the new layout and changes nothing
        service, engine = open_service(path)
        with engine.connect() as conn:
            assert not is_previous_layout(conn)
            columns = {c["name"] for c in inspect(conn).get_columns("tasks")}
        assert "public_key_json" not in columns and "scheme" in columns
        result = service.result("p")
        assert (result.sum, result.count, result.holders) == ([7, -2], 2, [1, 3])
        status = service.status("p")
        assert (status.state, status.threshold, status.holders, status.reports) == (
            "decrypted",
            2,
            3,
            2,
        )
        public = key[0]
        assert service.info("p").public_key == threshold.public_key_to_json(public)
        paillier = service.aggregate("p")
        assert isinstance(paillier, AggregateOut) and paillier.count == 2
        assert paillier.key_id == public.public_key.key_id
        shamir = service.aggregate("s")
        assert isinstance(shamir, ShamirAggregateOut)
        assert shamir.clients == [1, 2] and shamir.count == 2
        assert shamir.share == encode_share(SHAMIR_FIELD.from_ints([11]))
        status = service.status("s")
        assert (status.scheme, status.threshold, status.holders, status.servers) == (
            "shamir",
            2,
            0,
            3,
        )
        assert service.reporters("s").clients == [1, 2]
        engine.dispose()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT id, scheme FROM tasks ORDER BY id").fetchall() == [
            ("p", "paillier"),
            ("s", "shamir"),
        ]
        assert conn.execute("SELECT task_id, holders FROM paillier_tasks").fetchall() == [("p", 3)]
        assert conn.execute("SELECT task_id FROM aggregates").fetchall() == [("p",)]
        assert conn.execute("SELECT task_id FROM shamir_aggregates").fetchall() == [("s",)]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        indexes = {row[1] for row in conn.execute("PRAGMA index_list(tasks)")}
        assert {"ix_tasks_deadline", "ix_tasks_state"} <= indexes

"""The report log's routes in-process (FastAPI's TestClient, a real SQLite file): who may read
what, and when — a client never pages the logged reports, nothing is served before close — and
receipts on every Paillier upload."""

from __future__ import annotations

import secrets
import sqlite3
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from smpcloud.crypto import merkle, threshold
from smpcloud.crypto.signatures import VerifyKey, verify_statement
from smpcloud.crypto.wire import encode_int
from smpcloud.protocol.receipts import (
    LOG_ROOT_DOMAIN,
    MAX_PAGE_CIPHERTEXTS,
    RECEIPT_DOMAIN,
    log_root_fields,
    receipt_fields,
    report_leaf,
)
from smpcloud.service.app import create_app
from smpcloud.service.config import Settings
from smpcloud.service.migrations import upgrade

ADMIN = secrets.token_urlsafe(32)
Key = tuple[threshold.ThresholdPublicKey, list[threshold.KeyShare]]


@pytest.fixture(scope="module")
def key() -> Key:
    return threshold.deal(1024, n=3, t=2, insecure=True)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "db.sqlite"


@pytest.fixture
def http(db: Path) -> Iterator[TestClient]:
    settings = Settings(
        admin_token=ADMIN, db_url=f"sqlite:///{db}", allow_insecure_keys=True, workers=1
    )
    upgrade(settings.db_url)
    with TestClient(create_app(settings)) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def new_task(http: TestClient, key: Key, clients: int, min_clients: int = 2) -> dict[str, Any]:
    public = key[0]
    body = {
        "name": "t",
        "public_key": threshold.public_key_to_json(public),
        "min_clients": min_clients,
        "validity": "none",
    }
    created = http.post("/v1/tasks", json=body, headers=bearer(ADMIN)).json()
    task_id = created["task_id"]
    creds = http.post(
        f"/v1/tasks/{task_id}/clients", json={"count": clients}, headers=bearer(ADMIN)
    ).json()["clients"]
    return {"id": task_id, "holders": created["holder_tokens"], "clients": creds}


def upload(http: TestClient, key: Key, task: dict[str, Any], index: int, value: int) -> Any:
    pk = key[0].public_key
    body = {"key_id": pk.key_id, "ciphertexts": [encode_int(pk.encrypt(value).value)]}
    response = http.post(
        f"/v1/tasks/{task['id']}/reports",
        json=body,
        headers=bearer(task["clients"][index]["token"]),
    )
    assert response.status_code == 201, response.text
    return response.json() | {"sent": body["ciphertexts"]}


def close(http: TestClient, task: dict[str, Any]) -> None:
    response = http.post(f"/v1/tasks/{task['id']}/close", headers=bearer(ADMIN))
    assert response.status_code == 200, response.text


def problem(response: Any, status: int, slug: str) -> str:
    assert response.status_code == status, response.text
    assert response.json()["type"] == f"urn:smpcloud:problem:{slug}"
    return str(response.json()["detail"])


def test_every_paillier_upload_gets_a_signed_receipt_of_what_was_sent(
    http: TestClient, key: Key
) -> None:
    task = new_task(http, key, 2)
    accepted = upload(http, key, task, 0, 5)
    receipt = accepted["receipt"]
    client_id = task["clients"][0]["client_id"]
    assert receipt["client_id"] == client_id == accepted["client_id"]
    assert receipt["leaf"] == report_leaf(task["id"], client_id, accepted["sent"]).hex()
    fields = receipt_fields(
        task["id"], client_id, receipt["leaf"], receipt["received_at"], receipt["server_key"]
    )
    server_key = VerifyKey.from_text(receipt["server_key"])
    verify_statement(server_key, receipt["signature"], RECEIPT_DOMAIN, fields)
    other = upload(http, key, task, 1, 6)["receipt"]
    assert other["server_key"] == receipt["server_key"]  # one long-term key


def test_nothing_is_served_before_close(http: TestClient, key: Key) -> None:
    task = new_task(http, key, 2)
    accepted = upload(http, key, task, 0, 5)
    client, holder = task["clients"][0]["token"], task["holders"][0]
    base = f"/v1/tasks/{task['id']}"
    for path, token in [
        ("/log", client),
        ("/reports", holder),
        (f"/log/proof?leaf={accepted['receipt']['leaf']}", client),
    ]:
        assert "still open" in problem(
            http.get(base + path, headers=bearer(token)), 409, "task-state"
        )


def test_who_reads_the_log_and_the_reports(http: TestClient, key: Key) -> None:
    task = new_task(http, key, 3)
    receipts = [upload(http, key, task, i, 10 + i)["receipt"] for i in range(3)]
    close(http, task)
    base = f"/v1/tasks/{task['id']}"
    client, holder = task["clients"][0]["token"], task["holders"][1]

    problem(http.get(base + "/reports", headers=bearer(client)), 403, "permission-denied")
    problem(http.get(base + "/reports"), 401, "authentication-required")
    stranger = new_task(http, key, 1)["clients"][0]["token"]
    problem(http.get(base + "/log", headers=bearer(stranger)), 403, "permission-denied")

    for token in (client, holder, ADMIN):
        log = http.get(base + "/log", headers=bearer(token)).json()
        assert log["count"] == 3
        assert log["leaves"] == [r["leaf"] for r in receipts]
    leaves = [bytes.fromhex(r["leaf"]) for r in receipts]
    assert log["root"] == merkle.root(leaves).hex()
    verify_statement(
        VerifyKey.from_text(log["server_key"]),
        log["signature"],
        LOG_ROOT_DOMAIN,
        log_root_fields(task["id"], 3, log["root"]),
    )
    short = http.get(base + "/log?leaves=false", headers=bearer(client)).json()
    assert short["leaves"] is None and short["root"] == log["root"]

    for token in (holder, ADMIN):
        page = http.get(base + "/reports?offset=1&limit=1", headers=bearer(token)).json()
        assert page["count"] == 3 and page["offset"] == 1 and page["next_offset"] == 2
        assert [r["client_id"] for r in page["reports"]] == [task["clients"][1]["client_id"]]
    last = http.get(base + "/reports?offset=2", headers=bearer(holder)).json()
    assert last["next_offset"] is None and len(last["reports"]) == 1
    for bad in ("offset=-1", f"offset={2**64}", "limit=0"):
        problem(http.get(f"{base}/reports?{bad}", headers=bearer(holder)), 422, "invalid-input")

    proof = http.get(base + f"/log/proof?leaf={receipts[2]['leaf']}", headers=bearer(client))
    body = proof.json()
    assert body["index"] == 2 and body["count"] == 3
    path = [bytes.fromhex(node) for node in body["path"]]
    merkle.verify_inclusion(leaves[2], 2, 3, path, bytes.fromhex(body["root"]))
    unknown = "ab" * 32
    problem(http.get(base + f"/log/proof?leaf={unknown}", headers=bearer(client)), 404, "not-found")
    problem(
        http.get(base + f"/log/proof?leaf={'zz' * 32}", headers=bearer(client)),
        422,
        "invalid-input",
    )


def test_pages_stay_under_a_few_mebibytes(http: TestClient, key: Key) -> None:
    task = new_task(http, key, 2)
    for i in range(2):
        upload(http, key, task, i, i)
    close(http, task)
    page = http.get(
        f"/v1/tasks/{task['id']}/reports?limit=100000", headers=bearer(task["holders"][0])
    )
    assert len(page.json()["reports"]) == 2  # capped at MAX_PAGE_CIPHERTEXTS, here all of them
    assert MAX_PAGE_CIPHERTEXTS * 1024 < 5 * 2**20  # 3072-bit n^2: 1,024 base64url characters


def test_no_log_for_insufficient_or_shamir_tasks(http: TestClient, key: Key) -> None:
    task = new_task(http, key, 3, min_clients=3)
    upload(http, key, task, 0, 1)
    close(http, task)
    response = http.get(f"/v1/tasks/{task['id']}/log", headers=bearer(ADMIN))
    problem(response, 409, "insufficient-reports")
    shamir = {
        "name": "s",
        "scheme": "shamir",
        "servers": 3,
        "threshold": 2,
        "server_index": 1,
        "min_clients": 2,
        "validity": "none",
    }
    task_id = http.post("/v1/tasks", json=shamir, headers=bearer(ADMIN)).json()["task_id"]
    detail = problem(http.get(f"/v1/tasks/{task_id}/log", headers=bearer(ADMIN)), 409, "task-state")
    assert "only Paillier tasks" in detail


def test_a_task_aggregated_before_logs_existed_gets_its_log(
    http: TestClient, key: Key, db: Path
) -> None:
    task = new_task(http, key, 2)
    receipts = [upload(http, key, task, i, i + 1)["receipt"] for i in range(2)]
    close(http, task)
    conn = sqlite3.connect(db)
    try:
        conn.execute("DELETE FROM report_logs")
        conn.commit()
    finally:
        conn.close()
    log = http.get(f"/v1/tasks/{task['id']}/log", headers=bearer(ADMIN)).json()
    assert log["leaves"] == [r["leaf"] for r in receipts]


def test_a_malformed_attestation_is_refused(http: TestClient, key: Key) -> None:
    task = new_task(http, key, 2)
    for i in range(2):
        upload(http, key, task, i, i)
    close(http, task)
    response = http.post(
        f"/v1/tasks/{task['id']}/partials",
        json={"partials": [], "attestation": "not-a-signature"},
        headers=bearer(task["holders"][0]),
    )
    assert "attestation" in problem(response, 422, "invalid-input")

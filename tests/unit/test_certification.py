"""The certificates endpoint against the real application and a real SQLite file (in-process).

``POST /v1/tasks/{id}/certificates``: a key holder's signature over the task's statement,
checked against the task's roster: 422 for a bad signature or a task without roster, 409 for a
second, different signature, 403 for a client's token, idempotent for the same signature.
"""

from __future__ import annotations

import secrets
import sqlite3
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from smpcloud.crypto import threshold
from smpcloud.crypto.signatures import Roster, SigningKey
from smpcloud.protocol.certificates import (
    CERTIFICATE_DOMAIN,
    certificate_fields,
    sign_certificate,
)
from smpcloud.protocol.schemas import TaskInfoOut
from smpcloud.service.app import create_app
from smpcloud.service.config import Settings
from smpcloud.service.migrations import upgrade

TOKEN = secrets.token_urlsafe(32)
ADMIN = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def key() -> tuple[threshold.ThresholdPublicKey, list[threshold.KeyShare]]:
    return threshold.deal(512, n=3, t=2, insecure=True)


@pytest.fixture(scope="module")
def signers() -> list[SigningKey]:
    return [SigningKey.generate() for _ in range(3)]


@pytest.fixture
def http(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(
        admin_token=TOKEN,
        db_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
        allow_insecure_keys=True,
    )
    upgrade(settings.db_url)
    with TestClient(create_app(settings)) as client:
        yield client


def roster_of(signers: list[SigningKey], t: int = 2) -> Roster:
    return Roster(t, {i: s.verify_key for i, s in enumerate(signers, start=1)})


def create(http: TestClient, key, roster: Roster | None) -> dict:
    body: dict = {
        "name": "certified",
        "public_key": threshold.public_key_to_json(key[0]),
        "min_clients": 2,
    }
    if roster is not None:
        body["roster"] = roster.to_json()
    response = http.post("/v1/tasks", json=body, headers=ADMIN)
    assert response.status_code == 201, response.text
    return response.json()


def info(http: TestClient, task_id: str) -> TaskInfoOut:
    response = http.get(f"/v1/tasks/{task_id}", headers=ADMIN)
    assert response.status_code == 200
    return TaskInfoOut.model_validate(response.json())


def certify(http: TestClient, task: dict, holder: int, signature: str):
    return http.post(
        f"/v1/tasks/{task['task_id']}/certificates",
        json={"signature": signature},
        headers={"Authorization": f"Bearer {task['holder_tokens'][holder - 1]}"},
    )


def test_holders_certify_and_the_info_and_status_show_it(http, key, signers) -> None:
    roster = roster_of(signers)
    task = create(http, key, roster)
    served = info(http, task["task_id"])
    assert served.roster == roster.to_json()
    assert served.certificates == []
    first = sign_certificate(served, signers[0]).signature
    response = certify(http, task, 1, first)
    assert response.status_code == 200, response.text
    assert response.json()["certified_by"] == [1]
    assert response.json()["threshold"] == 2
    again = certify(http, task, 1, first)  # a retry: idempotent
    assert again.status_code == 200 and again.json()["certified_by"] == [1]
    assert certify(http, task, 3, sign_certificate(served, signers[2]).signature).status_code == 200
    served = info(http, task["task_id"])
    assert (served.certificates[0].holder, served.certificates[0].signature) == (1, first)
    assert roster.verify_quorum(
        [(c.holder, c.signature) for c in served.certificates],
        CERTIFICATE_DOMAIN,
        certificate_fields(served),
    ) == (1, 3)
    status = http.get(f"/v1/tasks/{task['task_id']}/status", headers=ADMIN).json()
    assert status["certified_by"] == [1, 3]


def test_a_bad_signature_is_422(http, key, signers) -> None:
    task = create(http, key, roster_of(signers))
    served = info(http, task["task_id"])
    # Holder 2 signs with holder 1's key: does not verify under holder 2's roster key.
    wrong = sign_certificate(served, signers[0]).signature
    response = certify(http, task, 2, wrong)
    assert response.status_code == 422
    assert response.json()["type"] == "urn:smpcloud:problem:invalid-certificate"
    assert "holder 2" in response.json()["detail"]
    response = certify(http, task, 2, "not-a-signature")
    assert response.status_code == 422
    assert response.json()["type"] == "urn:smpcloud:problem:invalid-certificate"
    # A signature over another statement (another min_clients).
    fields = {**certificate_fields(served), "min_clients": 1}
    other = signers[1].sign_statement(CERTIFICATE_DOMAIN, fields)
    assert certify(http, task, 2, other).status_code == 422
    assert (
        http.get(f"/v1/tasks/{task['task_id']}/status", headers=ADMIN).json()["certified_by"] == []
    )


def test_a_different_second_signature_is_409(http, key, signers, tmp_path) -> None:
    task = create(http, key, roster_of(signers))
    served = info(http, task["task_id"])
    signature = sign_certificate(served, signers[0]).signature
    assert certify(http, task, 1, signature).status_code == 200
    # A signature by another key over the same statement does not verify: 422 first.
    other = SigningKey.generate().sign_statement(CERTIFICATE_DOMAIN, certificate_fields(served))
    assert certify(http, task, 1, other).status_code == 422
    # Ed25519 is deterministic: one key has one signature per statement. A stored signature
    # other than the (valid) one sent again: the stored one stays, the new one is a conflict.
    with sqlite3.connect(tmp_path / "db.sqlite") as db:
        db.execute("UPDATE task_certificates SET signature = 'stored-earlier'")
    response = certify(http, task, 1, signature)
    assert response.status_code == 409
    assert response.json()["type"] == "urn:smpcloud:problem:duplicate-submission"


def test_a_task_without_roster_cannot_be_certified(http, key, signers) -> None:
    task = create(http, key, None)
    served = info(http, task["task_id"])
    assert served.roster is None
    response = certify(http, task, 1, sign_certificate(served, signers[0]).signature)
    assert response.status_code == 422
    assert response.json()["type"] == "urn:smpcloud:problem:no-roster"
    assert "--holders" in response.json()["detail"]


def test_only_key_holders_certify(http, key, signers) -> None:
    task = create(http, key, roster_of(signers))
    served = info(http, task["task_id"])
    signature = sign_certificate(served, signers[0]).signature
    client = http.post(
        f"/v1/tasks/{task['task_id']}/clients", json={"count": 1}, headers=ADMIN
    ).json()["clients"][0]
    for token in (client["token"], TOKEN):
        response = http.post(
            f"/v1/tasks/{task['task_id']}/certificates",
            json={"signature": signature},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 403, response.text


def test_a_closed_task_takes_no_certificate(http, key, signers) -> None:
    task = create(http, key, roster_of(signers))
    served = info(http, task["task_id"])
    assert http.post(f"/v1/tasks/{task['task_id']}/close", headers=ADMIN).status_code == 200
    response = certify(http, task, 1, sign_certificate(served, signers[0]).signature)
    assert response.status_code == 409
    assert response.json()["type"] == "urn:smpcloud:problem:task-state"


@pytest.mark.parametrize(
    ("t", "size", "fragment"),
    [(3, 3, "2-of-3"), (2, 2, "2-of-3")],
)
def test_a_roster_of_another_t_or_n_is_422(http, key, t, size, fragment) -> None:
    roster = Roster(t, {i: SigningKey.generate().verify_key for i in range(1, size + 1)})
    body = {
        "name": "x",
        "public_key": threshold.public_key_to_json(key[0]),
        "min_clients": 2,
        "roster": roster.to_json(),
    }
    response = http.post("/v1/tasks", json=body, headers=ADMIN)
    assert response.status_code == 422
    assert fragment in response.json()["detail"]
    body["roster"] = {"kind": "smpcloud-holder-roster", "version": 1}
    assert http.post("/v1/tasks", json=body, headers=ADMIN).status_code == 422

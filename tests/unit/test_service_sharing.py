"""Shamir mode of the service: share encoding, parameter checks, schemas, in-process rules.

Real server processes run in tests/integration/test_service_shamir.py; here the pure helpers of
smpcloud.protocol.sharing and, through FastAPI's TestClient, what needs an injected clock.
"""

from __future__ import annotations

import base64
import json
import secrets
import struct
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from smpcloud.client import ShamirCredentials, ShamirEndpoint, ShamirServer
from smpcloud.client.shamir import CREDENTIALS_KIND
from smpcloud.crypto import threshold
from smpcloud.crypto.field import DEFAULT_FIELD, Field
from smpcloud.crypto.sealing import OpeningKey, SealingKey
from smpcloud.crypto.shamir import Share, reconstruct_elements, share_elements
from smpcloud.errors import InvalidInputError, ShareError
from smpcloud.mpc.codec import encode_vectors
from smpcloud.protocol.schemas import CloseIn, ReportIn, TaskEncoding, TaskIn
from smpcloud.protocol.sharing import (
    MAX_SERVERS,
    check_shamir_parameters,
    check_sum_range,
    decode_share,
    encode_share,
    residues_from_blob,
    residues_to_blob,
    seal_share,
    share_bytes,
    share_text_chars,
)
from smpcloud.service.app import create_app
from smpcloud.service.config import Settings
from smpcloud.service.migrations import upgrade

FIELD = DEFAULT_FIELD
TOKEN = secrets.token_urlsafe(32)


def _raw(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _text(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


# ------------------------------------------------------------------------------- encoding


@pytest.mark.parametrize("length", [1, 7, 1000])
def test_share_round_trip_and_sizes(length: int) -> None:
    residues = FIELD.random(length)
    text = encode_share(residues)
    assert len(text) == share_text_chars(length) and len(_raw(text)) == share_bytes(length)
    decoded = decode_share(text, length=length)
    assert decoded.dtype == np.uint64 and np.array_equal(decoded, residues)
    blob = residues_to_blob(residues)
    assert len(blob) == 4 * FIELD.k * length
    assert np.array_equal(residues_from_blob(blob, length=length), residues)


@given(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=1, max_size=20))
def test_shares_of_the_wire_rebuild_the_values(values: list[int]) -> None:
    """Share, encode, decode, rebuild from any 2 of 3: the values come back."""
    blocks = share_elements(FIELD, FIELD.from_ints(np.array(values, dtype=object)), n=3, t=2)
    wire = [decode_share(encode_share(b), length=len(values)) for b in blocks]
    for pair in ([0, 1], [0, 2], [1, 2]):
        shares = [Share(i + 1, wire[i], FIELD, 2) for i in pair]
        assert [int(v) for v in FIELD.to_ints(reconstruct_elements(shares))] == values


def _mutations() -> list[tuple[str, object, str]]:
    good = encode_share(FIELD.from_ints([1, 2, 3]))
    raw = _raw(good)
    header = 12 + 4 * FIELD.k
    residue_p = bytearray(raw)
    residue_p[header + 8 : header + 12] = struct.pack("<I", FIELD.moduli[0])
    last = bytearray(raw)
    last[-4:] = struct.pack("<I", FIELD.moduli[-1] + 1)
    two = np.zeros((2, FIELD.k, 3), dtype=np.uint64)
    return [
        ("other length", encode_share(FIELD.from_ints([1, 2])), "length 3, got 2"),
        ("residue = p", _text(bytes(residue_p)), "residue outside the field"),
        ("last residue > p", _text(bytes(last)), "residue outside the field"),
        (
            "other primes",
            encode_share(np.zeros((3, 3), np.uint64), Field((65521, 65519, 65497))),
            "another field",
        ),
        (
            "fewer primes",
            encode_share(np.zeros((2, 3), np.uint64), Field((65521, 65519))),
            "2 moduli, expected 3",
        ),
        ("two vectors", _text(encode_vectors(FIELD, two)), "expected 1 shared vector(s), got 2"),
        ("trailing bytes", _text(raw + b"\0" * 4), "bytes, expected"),
        ("truncated", _text(raw[:-1]), "bytes, expected"),
        ("header only", _text(raw[:8]), "too short"),
        ("bad magic", _text(b"SMPX" + raw[4:]), "bad magic"),
        ("bad version", _text(raw[:4] + b"\x09" + raw[5:]), "version"),
        ("bad characters", good[:-2] + "+/", "not unpadded base64url"),
        ("padding", good + "==", "not unpadded base64url"),
        ("whitespace", good[:10] + " " + good[10:], "not unpadded base64url"),
        ("impossible length", good + "A", "impossible base64url length"),
        ("empty", "", "not unpadded base64url"),
        ("a number", 12, "expected a base64url string, got int"),
        ("bytes", b"AAAA", "expected a base64url string, got bytes"),
    ]


@pytest.mark.parametrize(("name", "text", "message"), _mutations(), ids=lambda v: str(v)[:20])
def test_decode_share_is_strict(name: str, text: object, message: str) -> None:
    with pytest.raises(ShareError, match="share") as info:
        decode_share(text, length=3)
    assert message in str(info.value), name
    assert str(info.value).startswith("share: ")


def test_non_canonical_base64_is_refused() -> None:
    """Spare bits in the last character (possible when the size is not a multiple of 3)."""
    field = Field((65521, 65519))  # 12 + 8 + 8 bytes: 28, so 4 spare bits
    text = encode_share(np.ones((2, 1), np.uint64), field)
    assert len(_raw(text)) % 3
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    spare = alphabet[alphabet.index(text[-1]) + 1]
    with pytest.raises(ShareError, match="non-canonical"):
        decode_share(text[:-1] + spare, length=1, field=field)
    assert decode_share(text, length=1, field=field).tolist() == [[1], [1]]


def test_stored_blobs_are_rechecked() -> None:
    with pytest.raises(ShareError, match="stored share has 8 bytes; expected 12"):
        residues_from_blob(b"\0" * 8, length=1)
    bad = struct.pack("<3I", 0, FIELD.moduli[1], 0)
    with pytest.raises(ShareError, match="outside the field"):
        residues_from_blob(bad, length=1)


# ------------------------------------------------------------------------------ parameters


@pytest.mark.parametrize(("n", "t"), [(2, 2), (3, 2), (3, 3), (4, 3), (5, 3), (64, 33)])
def test_accepted_parameters(n: int, t: int) -> None:
    check_shamir_parameters(n, t)
    for j in (1, n):
        check_shamir_parameters(n, t, j)


@pytest.mark.parametrize(
    ("n", "t", "j", "message"),
    [
        (4, 2, None, "must exceed servers/2 = 2"),
        (5, 2, None, "must exceed servers/2 = 2.5"),
        (3, 1, None, "in the clear"),
        (2, 3, None, "threshold=3 must be in 2..servers=2"),
        (1, 1, None, "servers=1 must be in 2..64"),
        (MAX_SERVERS + 1, 40, None, "servers=65"),
        (3, 2, 0, "server_index=0 must be in 1..servers=3"),
        (3, 2, 4, "server_index=4"),
        (3, True, None, "threshold must be an integer"),
    ],
)
def test_refused_parameters(n: int, t: int, j: int | None, message: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        check_shamir_parameters(n, t, j)
    assert message in str(info.value)


def test_sum_range_is_checked_against_the_field() -> None:
    int64 = TaskEncoding.integer()
    check_sum_range(
        int64.max_abs_encoded(), 1_000_000
    )  # docs/architecture.md: 10^6 parties, 64 bits
    check_sum_range(int64.max_abs_encoded(), 2**31)
    with pytest.raises(InvalidInputError, match="beyond M/2"):
        check_sum_range(TaskEncoding.integer(0, 2**90).max_abs_encoded(), 1_000_000)
    with pytest.raises(InvalidInputError, match="beyond M/2"):
        check_sum_range(TaskEncoding.fixed(64, -1.0, 2.0**31).max_abs_encoded(), 2)


# ------------------------------------------------------------------------------- schemas


def test_schemas_of_the_shamir_mode() -> None:
    shamir = {"name": "t", "scheme": "shamir", "servers": 3, "threshold": 2, "min_clients": 2}
    assert TaskIn(**shamir, server_index=1).public_key is None
    with pytest.raises(ValidationError, match="requires server_index"):
        TaskIn(**shamir)
    with pytest.raises(ValidationError, match="public_key is required"):
        TaskIn(name="t", min_clients=2)
    assert ReportIn(share="AAAA").share == "AAAA"
    assert ReportIn(key_id="k", ciphertexts=[]).ciphertexts == []
    for bad in ({}, {"ciphertexts": []}, {"key_id": "k"}):
        with pytest.raises(ValidationError, match="key_id and ciphertexts"):
            ReportIn(**bad)
    with pytest.raises(ValidationError, match="share alone"):
        ReportIn(share="AAAA", ciphertexts=[])
    box = {"enc": "AAAA", "ciphertext": "BBBB"}
    assert ReportIn.model_validate({"sealed_share": box}).sealed_share is not None
    with pytest.raises(ValidationError, match="sealed_share alone"):
        ReportIn.model_validate({"sealed_share": box, "share": "AAAA"})
    with pytest.raises(ValidationError, match="sealed_share alone"):
        ReportIn.model_validate({"sealed_share": box, "key_id": "k", "ciphertexts": []})
    with pytest.raises(ValidationError):
        ReportIn.model_validate({"sealed_share": {"enc": "AAAA"}})
    assert CloseIn().clients is None
    assert CloseIn.model_validate_json('{"clients": [3, 1]}').clients == [3, 1]
    for bad_json in ('{"clients": [true]}', '{"clients": ["1"]}', '{"clients": [0]}'):
        with pytest.raises(ValidationError):
            CloseIn.model_validate_json(bad_json)


# ------------------------------------------------------------------- in-process service


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2030, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def app(tmp_path: Path):
    clock = Clock()
    settings = Settings(
        admin_token=TOKEN,
        db_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
        allow_insecure_keys=True,
        deadline_poll_seconds=3600,
    )
    upgrade(settings.db_url)
    application = create_app(settings, clock=clock)
    with TestClient(application) as http:
        yield http, clock, application.state.service


ADMIN = {"Authorization": f"Bearer {TOKEN}"}


def test_deadline_stops_uploads_but_leaves_the_close_to_the_administrator(app) -> None:
    http, clock, service = app
    body = {
        "name": "t",
        "scheme": "shamir",
        "servers": 3,
        "threshold": 2,
        "server_index": 2,
        "min_clients": 2,
        "validity": "none",
        "deadline": (clock.now + timedelta(minutes=5)).isoformat(),
    }
    task_id = http.post("/v1/tasks", json=body, headers=ADMIN).json()["task_id"]
    clients = http.post(f"/v1/tasks/{task_id}/clients", json={"count": 3}, headers=ADMIN).json()
    assert [c["client_id"] for c in clients["clients"]] == [1, 2, 3]
    tokens = [c["token"] for c in clients["clients"]]
    key = SealingKey.from_text(http.get(f"/v1/tasks/{task_id}", headers=ADMIN).json()["share_key"])

    def sealed(number: int) -> dict[str, object]:
        box = seal_share(key, FIELD.random(1), task_id=task_id, server_index=2, client=number)
        return {"sealed_share": box}

    for number, token in enumerate(tokens[:2], start=1):
        response = http.post(
            f"/v1/tasks/{task_id}/reports",
            json=sealed(number),
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 201
    clock.now += timedelta(minutes=6)
    assert service.close_due_tasks() == 0
    late = http.post(
        f"/v1/tasks/{task_id}/reports",
        json=sealed(3),
        headers={"Authorization": f"Bearer {tokens[2]}"},
    )
    assert late.status_code == 409 and "passed its deadline" in late.json()["detail"]
    more = http.post(f"/v1/tasks/{task_id}/clients", json={"count": 1}, headers=ADMIN)
    assert more.status_code == 409 and "passed its deadline" in more.json()["detail"]
    status = http.get(f"/v1/tasks/{task_id}/status", headers=ADMIN).json()
    assert (status["state"], status["reports"], status["server_index"]) == ("open", 2, 2)
    closed = http.post(f"/v1/tasks/{task_id}/close", json={"clients": [1, 2]}, headers=ADMIN)
    assert closed.status_code == 200 and closed.json()["state"] == "closed"
    aggregate = http.get(f"/v1/tasks/{task_id}/aggregate", headers=ADMIN).json()
    assert aggregate["clients"] == [1, 2] and aggregate["count"] == 2
    assert decode_share(aggregate["share"], length=1).shape == (FIELD.k, 1)


def test_client_numbers_are_per_task_and_paillier_tasks_are_unchanged(app) -> None:
    http, _clock, _service = app
    public = threshold.deal(512, n=3, t=2, insecure=True)[0]
    paillier = {
        "name": "p",
        "public_key": threshold.public_key_to_json(public),
        "min_clients": 2,
        "validity": "none",
    }
    p_task = http.post("/v1/tasks", json=paillier, headers=ADMIN).json()
    assert len(p_task["holder_tokens"]) == 3
    shamir = {
        "name": "s",
        "scheme": "shamir",
        "servers": 2,
        "threshold": 2,
        "server_index": 1,
        "min_clients": 2,
        "validity": "none",
    }
    s_task = http.post("/v1/tasks", json=shamir, headers=ADMIN).json()
    p_ids = http.post(
        f"/v1/tasks/{p_task['task_id']}/clients", json={"count": 2}, headers=ADMIN
    ).json()
    s_ids = http.post(
        f"/v1/tasks/{s_task['task_id']}/clients", json={"count": 2}, headers=ADMIN
    ).json()
    p_more = http.post(
        f"/v1/tasks/{p_task['task_id']}/clients", json={"count": 1}, headers=ADMIN
    ).json()
    s_more = http.post(
        f"/v1/tasks/{s_task['task_id']}/clients", json={"count": 1}, headers=ADMIN
    ).json()
    # Shamir numbers count within the task; Paillier ids are the server's row ids, as before.
    assert [c["client_id"] for c in s_ids["clients"] + s_more["clients"]] == [1, 2, 3]
    assert [c["client_id"] for c in p_ids["clients"] + p_more["clients"]] == [1, 2, 5]
    info = http.get(f"/v1/tasks/{p_task['task_id']}", headers=ADMIN).json()
    assert info["scheme"] == "paillier" and info["servers"] is None
    response = http.post(
        f"/v1/tasks/{p_task['task_id']}/close", json={"clients": [1, 2]}, headers=ADMIN
    )
    assert response.status_code == 422 and "only for Shamir tasks" in response.json()["detail"]
    share_to_paillier = http.post(
        f"/v1/tasks/{p_task['task_id']}/reports",
        json={"share": encode_share(FIELD.random(1))},
        headers={"Authorization": f"Bearer {p_ids['clients'][0]['token']}"},
    )
    assert share_to_paillier.status_code == 422
    assert "Paillier task" in share_to_paillier.json()["detail"]
    assert http.post(f"/v1/tasks/{p_task['task_id']}/close", headers=ADMIN).json()["state"] == (
        "insufficient"
    )


# --------------------------------------------------------------------------- SDK values


def test_credentials_json_round_trip_and_redaction() -> None:
    keys = [OpeningKey.generate().sealing_key for _ in range(3)]
    creds = ShamirCredentials(
        client_id=7,
        threshold=2,
        endpoints=tuple(
            ShamirEndpoint(
                j, f"http://127.0.0.1:{8000 + j}", f"task{j}", f"smpc_c_secret{j}", keys[j - 1]
            )
            for j in (1, 2, 3)
        ),
    )
    data = json.loads(json.dumps(creds.to_json()))
    assert data["kind"] == CREDENTIALS_KIND and data["version"] == 1
    assert ShamirCredentials.from_json(data) == creds
    assert "secret" not in repr(creds)
    assert "secret" not in repr(ShamirServer("http://x", "smpc_admin_secret"))
    bad_cases = [
        (data | {"kind": "other"}, "unexpected kind"),
        (data | {"extra": 1}, "unexpected field"),
        ({k: v for k, v in data.items() if k != "threshold"}, "missing field"),
        (data | {"threshold": 1}, "in the clear"),
        (data | {"client_id": "7"}, "integers"),
        (data | {"endpoints": data["endpoints"][::-1]}, "servers 1..n"),
        (
            data | {"endpoints": [data["endpoints"][0] | {"token": ""}, *data["endpoints"][1:]]},
            "empty",
        ),
        (data | {"endpoints": [{"server": 1}]}, "needs server, base_url"),
        (
            data | {"endpoints": [data["endpoints"][0] | {"share_key": "AAAA"}]},
            "share_key",
        ),
        (  # written before shares were sealed: the message says what to do
            data
            | {
                "endpoints": [
                    {k: v for k, v in e.items() if k != "share_key"} for e in data["endpoints"]
                ]
            },
            "smpcloud shamir register",
        ),
    ]
    for bad, message in bad_cases:
        with pytest.raises(InvalidInputError, match=message):
            ShamirCredentials.from_json(bad)

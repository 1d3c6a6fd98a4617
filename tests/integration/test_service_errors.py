"""Every bad request gets a precise 4xx problem document, and the server keeps serving."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from service_harness import MAX_BODY_BYTES, Key, ServerProcess, assert_problem, free_port

from smpcloud.client import (
    Admin,
    Client,
    DuplicateSubmissionError,
    NotFoundError,
    PermissionDeniedError,
    TaskEncoding,
    TaskStateError,
)
from smpcloud.crypto import threshold
from smpcloud.crypto.wire import encode_int
from smpcloud.errors import (
    InvalidInputError,
    ThresholdNotMetError,
    TransportError,
)

pytestmark = pytest.mark.backends("sqlite", "postgres")


@pytest.fixture(autouse=True)
def server_survives(server: ServerProcess) -> Iterator[None]:
    """After every test here, the server process still runs and answers."""
    yield
    assert server.alive()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def task(server: ServerProcess, key: Key):
    """An open scalar task with 4 registered clients."""
    return server.new_task(key, 4, min_clients=2)


def report(key: Key, *values: int) -> dict[str, object]:
    pk = key[0].public_key
    return {"key_id": pk.key_id, "ciphertexts": [encode_int(pk.encrypt(v).value) for v in values]}


# ------------------------------------------------------------------------- authentication


def test_missing_token_is_401(server: ServerProcess, task) -> None:
    created, _ = task
    for method, path in [
        ("GET", f"/v1/tasks/{created.task_id}/status"),
        ("POST", f"/v1/tasks/{created.task_id}/reports"),
        ("POST", "/v1/tasks"),
    ]:
        response = httpx.request(method, server.base_url + path, json={})
        assert_problem(response, 401, "authentication-required", "bearer token")
        assert response.headers["www-authenticate"] == "Bearer"
    response = httpx.get(
        f"{server.base_url}/v1/tasks/{created.task_id}", headers={"Authorization": "Basic eDp5"}
    )
    assert_problem(response, 401, "authentication-required")


def test_wrong_token_is_403(server: ServerProcess, key: Key, task) -> None:
    created, creds = task
    other, other_creds = server.new_task(key, 1)
    url = f"{server.base_url}/v1/tasks/{created.task_id}"
    cases = [
        ("POST", "/reports", "not-a-token-at-all", report(key, 1), "not valid for this task"),
        ("POST", "/reports", other_creds[0].token, report(key, 1), "not valid for this task"),
        ("POST", "/reports", created.holder_tokens[0], report(key, 1), "holder token may not"),
        ("POST", "/close", creds[0].token, None, "client token may not"),
        ("POST", "/clients", created.holder_tokens[0], {"count": 1}, "holder token may not"),
        ("GET", "/aggregate", creds[1].token, None, "client token may not"),
        ("POST", "/partials", creds[1].token, {"partials": []}, "client token may not"),
        ("GET", "/status", other.holder_tokens[0], None, "not valid for this task"),
    ]
    for method, path, token, body, fragment in cases:
        response = httpx.request(method, url + path, headers=bearer(token), json=body)
        assert_problem(response, 403, "permission-denied", fragment)
        assert token not in response.text
    with (
        Client(
            server.base_url, created.task_id, "wrong-token", insecure_skip_certification=True
        ) as client,
        pytest.raises(PermissionDeniedError, match="not valid for this task"),
    ):
        client.submit(1)
    with Admin(server.base_url, "x" * 40) as admin, pytest.raises(PermissionDeniedError):
        admin.status(created.task_id)


def test_unknown_task_is_404(server: ServerProcess, key: Key, task) -> None:
    _, creds = task
    for method, path, token in [
        ("GET", "/v1/tasks/nope/status", server.admin_token),
        ("POST", "/v1/tasks/nope/reports", server.admin_token),
        ("GET", "/v1/tasks/nope/result", server.admin_token),
    ]:
        response = httpx.request(
            method, server.base_url + path, headers=bearer(token), json=report(key, 1)
        )
        assert_problem(response, 404, "not-found", "no task 'nope'")
    # Only to the administrator: to a client it is the answer of a foreign task (403).
    response = httpx.post(
        f"{server.base_url}/v1/tasks/nope/reports", headers=bearer(creds[0].token), json={}
    )
    assert_problem(response, 403, "permission-denied", "not valid for this task")
    with server.admin() as admin, pytest.raises(NotFoundError, match="no task"):
        admin.close("does-not-exist")
    response = httpx.get(f"{server.base_url}/no/such/route")
    assert_problem(response, 404, "not-found")


# ------------------------------------------------------------------------------ reports


def test_second_upload_is_409_and_the_first_is_kept(server: ServerProcess, key: Key, task) -> None:
    created, creds = task
    url = f"{server.base_url}/v1/tasks/{created.task_id}/reports"
    first = httpx.post(url, headers=bearer(creds[0].token), json=report(key, 10))
    assert first.status_code == 201
    assert first.json()["client_id"] == creds[0].client_id
    second = httpx.post(url, headers=bearer(creds[0].token), json=report(key, 99))
    assert_problem(second, 409, "duplicate-submission", "first report is kept")
    with (
        server.client(created.task_id, creds[0].token) as client,
        pytest.raises(DuplicateSubmissionError),
    ):
        client.submit(5)
    with server.client(created.task_id, creds[1].token) as client:
        client.submit(1)
    with server.admin() as admin:
        assert admin.close(created.task_id).reports == 2
    for share in key[1][:3]:
        with server.holder(created, share) as holder:
            holder.contribute()
    with server.admin() as admin:
        assert admin.result(created.task_id).sum == [11]  # 10 + 1: the first report counted


def _bad_ciphertexts(key: Key) -> list[tuple[str, object, str, str]]:
    public = key[0]
    n, n2 = public.n, public.public_key.n_squared
    return [
        ("zero", "AA", "malformed-ciphertext", "leading zero"),
        ("n^2", encode_int(n2), "malformed-ciphertext", "outside [1, n^2)"),
        ("above n^2", encode_int(n2 + 5), "malformed-ciphertext", "outside [1, n^2)"),
        ("multiple of n", encode_int(3 * n), "malformed-ciphertext", "not coprime"),
        ("bad base64", "not base64!", "malformed-ciphertext", "base64url"),
        ("padding", encode_int(12345) + "=", "malformed-ciphertext", "base64url"),
        ("too long", "A" * 2000, "malformed-ciphertext", "longer than"),
        ("number", 12345, "invalid-input", "ciphertexts.0"),
    ]


def test_malformed_ciphertexts_are_422(server: ServerProcess, key: Key, task) -> None:
    created, creds = task
    url = f"{server.base_url}/v1/tasks/{created.task_id}/reports"
    for name, value, slug, fragment in _bad_ciphertexts(key):
        body = {"key_id": key[0].public_key.key_id, "ciphertexts": [value]}
        response = httpx.post(url, headers=bearer(creds[0].token), json=body)
        assert_problem(response, 422, slug, fragment)
        if slug == "malformed-ciphertext":
            assert "ciphertexts[0]" in response.json()["detail"], name
    # Nothing was stored, so the client can still upload once.
    assert httpx.post(url, headers=bearer(creds[0].token), json=report(key, 1)).status_code == 201


def test_wrong_length_key_and_shape_are_422(server: ServerProcess, key: Key) -> None:
    created, creds = server.new_task(key, 1, length=3)
    url = f"{server.base_url}/v1/tasks/{created.task_id}/reports"
    auth = bearer(creds[0].token)
    assert_problem(
        httpx.post(url, headers=auth, json=report(key, 1, 2)),
        422,
        "invalid-input",
        "report has 2 ciphertexts; this task takes 3",
    )
    assert_problem(
        httpx.post(url, headers=auth, json=report(key, 1, 2, 3, 4)), 422, "invalid-input", "4"
    )
    other_key = threshold.deal(512, n=2, t=1, insecure=True)[0]
    body = report(key, 1, 2, 3) | {"key_id": other_key.public_key.key_id}
    assert_problem(httpx.post(url, headers=auth, json=body), 422, "key-mismatch", "this task's key")
    assert_problem(
        httpx.post(url, headers=auth | {"content-type": "application/json"}, content=b"{not json"),
        422,
        "invalid-input",
        "JSON",
    )
    assert_problem(
        httpx.post(url, headers=auth, json={"ciphertexts": []}),
        422,
        "invalid-input",
        "key_id",
    )
    assert_problem(
        httpx.post(url, headers=auth, json=report(key, 1, 2, 3) | {"extra": 1}),
        422,
        "invalid-input",
        "extra",
    )
    assert httpx.post(url, headers=auth, json=report(key, 1, 2, 3)).status_code == 201


def test_oversized_bodies_are_413(server: ServerProcess, key: Key, task) -> None:
    created, creds = task
    url = f"{server.base_url}/v1/tasks/{created.task_id}/reports"
    big = b'{"key_id": "x", "ciphertexts": ["' + b"A" * MAX_BODY_BYTES + b'"]}'
    # 1. Declared by Content-Length.
    response = httpx.post(
        url, headers=bearer(creds[0].token) | {"content-type": "application/json"}, content=big
    )
    assert_problem(response, 413, "payload-too-large", "declared", str(MAX_BODY_BYTES))

    # 2. Streamed (chunked transfer encoding: no Content-Length), counted as it arrives.
    def chunks() -> Iterator[bytes]:
        for start in range(0, len(big), 16384):
            yield big[start : start + 16384]

    response = httpx.post(
        url,
        headers=bearer(creds[0].token) | {"content-type": "application/json"},
        content=chunks(),
    )
    assert "content-length" not in response.request.headers
    assert_problem(response, 413, "payload-too-large", "more than")
    # Just below the limit is parsed normally (here: a malformed ciphertext, so 422).
    small = {"key_id": key[0].public_key.key_id, "ciphertexts": ["A" * 1000]}
    assert httpx.post(url, headers=bearer(creds[0].token), json=small).status_code == 422


def test_closed_task_refuses_reports_and_registrations(
    server: ServerProcess, key: Key, task
) -> None:
    created, creds = task
    url = f"{server.base_url}/v1/tasks/{created.task_id}"
    for cred in creds[:2]:
        with server.client(created.task_id, cred.token) as client:
            client.submit(3)
    with server.admin() as admin:
        admin.close(created.task_id)
    response = httpx.post(f"{url}/reports", headers=bearer(creds[2].token), json=report(key, 1))
    assert_problem(response, 409, "task-state", "is closed", "no longer accepted")
    response = httpx.post(f"{url}/clients", headers=bearer(server.admin_token), json={"count": 1})
    assert_problem(response, 409, "task-state", "no more clients")
    with (
        server.client(created.task_id, creds[3].token) as client,
        pytest.raises(TaskStateError, match="no longer accepted"),
    ):
        client.submit(1)


def test_registration_limits(server: ServerProcess, key: Key) -> None:
    created, _ = server.new_task(key, 0, min_clients=2, max_clients=3)
    url = f"{server.base_url}/v1/tasks/{created.task_id}/clients"
    auth = bearer(server.admin_token)
    assert_problem(httpx.post(url, headers=auth, json={"count": 0}), 422, "invalid-input", "count")
    assert httpx.post(url, headers=auth, json={"count": 2}).status_code == 201
    assert_problem(
        httpx.post(url, headers=auth, json={"count": 2}), 409, "task-state", "at most 3 clients"
    )


# ------------------------------------------------------------------------ decryption phase


def test_decryption_phase_errors(server: ServerProcess, key: Key, task) -> None:
    created, creds = task
    public, shares = key
    url = f"{server.base_url}/v1/tasks/{created.task_id}"
    holder_auth = bearer(created.holder_tokens[0])
    # Before close: no aggregate, no partials, no result.
    assert_problem(
        httpx.get(f"{url}/aggregate", headers=holder_auth), 409, "task-state", "still open"
    )
    assert_problem(
        httpx.post(f"{url}/partials", headers=holder_auth, json={"partials": []}),
        409,
        "task-state",
        "still open",
    )
    assert_problem(
        httpx.get(f"{url}/result", headers=bearer(server.admin_token)),
        409,
        "task-state",
        "0 of 3 partial decryptions received",
    )
    for cred, value in zip(creds, [4, 5, 6]):
        with server.client(created.task_id, cred.token) as client:
            client.submit(value)
    with server.admin() as admin:
        admin.close(created.task_id)
    with server.holder(created, shares[0]) as holder:
        holder.contribute()
        # Duplicate partial from the same holder.
        with pytest.raises(DuplicateSubmissionError, match="key holder 1 has already"):
            holder.contribute()
    aggregate = httpx.get(f"{url}/aggregate", headers=holder_auth).json()
    assert aggregate["count"] == 3
    agg = public.public_key.ciphertext(int.from_bytes(_unb64(aggregate["ciphertexts"][0]), "big"))
    partial_json = threshold.partial_to_json(shares[0].partial_decrypt(agg))
    assert_problem(
        httpx.post(f"{url}/partials", headers=holder_auth, json={"partials": [partial_json]}),
        409,
        "duplicate-submission",
        "key holder 1",
    )
    # Result too early: k of t.
    response = httpx.get(f"{url}/result", headers=bearer(creds[0].token))
    assert_problem(response, 409, "threshold-not-met", "1 of 3 partial decryptions received")
    with server.admin() as admin, pytest.raises(ThresholdNotMetError, match="1 of 3"):
        admin.result(created.task_id)
    # Holder 2 sends holder 3's partial (index mismatch), a wrong count, a malformed object.
    auth2 = bearer(created.holder_tokens[1])
    p3 = threshold.partial_to_json(shares[2].partial_decrypt(agg))
    p2 = threshold.partial_to_json(shares[1].partial_decrypt(agg))
    assert_problem(
        httpx.post(f"{url}/partials", headers=auth2, json={"partials": [p3]}),
        422,
        "invalid-input",
        "claims key holder 3, but the token belongs to key holder 2",
    )
    assert_problem(
        httpx.post(f"{url}/partials", headers=auth2, json={"partials": [p2, p2]}),
        422,
        "invalid-input",
        "2 partial decryptions; this task has 1",
    )
    assert_problem(
        httpx.post(f"{url}/partials", headers=auth2, json={"partials": [p2 | {"value": "!"}]}),
        422,
        "invalid-input",
        "partials[0]",
    )
    # Holder 2 is still welcome with a correct partial, and so is holder 4.
    assert httpx.post(f"{url}/partials", headers=auth2, json={"partials": [p2]}).status_code == 201
    with server.holder(created, shares[3]) as holder:
        holder.contribute()
    with server.admin() as admin:
        assert admin.result(created.task_id).sum == [15]


def _unb64(text: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# ---------------------------------------------------------------------------- task creation


def test_task_creation_errors(server: ServerProcess, key: Key) -> None:
    public, _ = key
    url = f"{server.base_url}/v1/tasks"
    auth = bearer(server.admin_token)
    good = {
        "name": "t",
        "public_key": threshold.public_key_to_json(public),
        "min_clients": 2,
        "validity": "none",
    }
    assert httpx.post(url, headers=auth, json=good).status_code == 201
    broken_key = threshold.public_key_to_json(public) | {"n": "AAAA"}
    tiny_public = threshold.deal(256, n=3, t=2, insecure=True)[0]
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    cases: list[tuple[dict[str, object], str, str]] = [
        (good | {"public_key": {"kind": "nope"}}, "invalid-input", "unexpected kind"),
        (good | {"public_key": broken_key}, "invalid-input", "n"),
        (good | {"min_clients": 1}, "invalid-input", "min_clients"),
        (good | {"min_clients": 10, "max_clients": 5}, "invalid-input", "max_clients"),
        (good | {"length": 0}, "invalid-input", "length"),
        (good | {"length": 100_000}, "invalid-input", "length 100000"),
        (good | {"deadline": past}, "invalid-input", "deadline is not in the future"),
        (good | {"deadline": "2030-01-01T00:00:00"}, "invalid-input", "timezone"),
        (
            good | {"encoding": {"kind": "integer", "frac_bits": 3}},
            "invalid-input",
            "frac_bits = 0",
        ),
        (
            good | {"encoding": {"kind": "fixed_point", "min_value": 5, "max_value": 1}},
            "invalid-input",
            "min_value must not exceed",
        ),
        (
            good
            | {
                "public_key": threshold.public_key_to_json(tiny_public),
                "encoding": {"kind": "integer", "min_value": 0, "max_value": 2**240},
            },
            "invalid-input",
            "beyond n/2",
        ),
    ]
    for body, slug, fragment in cases:
        assert_problem(httpx.post(url, headers=auth, json=body), 422, slug, fragment)
    with server.admin() as admin, pytest.raises(InvalidInputError, match="beyond n/2"):
        admin.create_task(
            tiny_public,
            name="t",
            min_clients=2,
            encoding=TaskEncoding.integer(0, 2**240),
            validity="none",  # a range task refuses the span first (test_forged_reports.py)
        )


def test_the_largest_limits_fit_every_backend(server: ServerProcess, key: Key) -> None:
    """The largest max_clients the API accepts is stored on PostgreSQL too (its INTEGER is
    32-bit signed: 2^31 was accepted by the schema and failed there with a 500)."""
    from smpcloud.protocol.schemas import MAX_CLIENTS_LIMIT

    url = f"{server.base_url}/v1/tasks"
    auth = bearer(server.admin_token)
    good = {
        "name": "t",
        "public_key": threshold.public_key_to_json(key[0]),
        "min_clients": 2,
        "validity": "none",
    }
    created = httpx.post(url, headers=auth, json=good | {"max_clients": MAX_CLIENTS_LIMIT})
    assert created.status_code == 201, created.text
    task_id = created.json()["task_id"]
    status = httpx.get(f"{url}/{task_id}/status", headers=auth)
    assert status.status_code == 200 and status.json()["max_clients"] == MAX_CLIENTS_LIMIT
    too_many = good | {"max_clients": MAX_CLIENTS_LIMIT + 1}
    assert_problem(httpx.post(url, headers=auth, json=too_many), 422, "invalid-input")


# -------------------------------------------------------------------------------- transport


def test_unreachable_server_is_a_transport_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with Admin(url, "x" * 40, timeout=2.0) as admin, pytest.raises(TransportError, match="Connect"):
        admin.status("any")


def test_sdk_refuses_an_insecure_key_unless_allowed(server: ServerProcess, key: Key) -> None:
    created, creds = server.new_task(key, 1)
    with (
        Client(
            server.base_url, created.task_id, creds[0].token, insecure_skip_certification=True
        ) as client,
        pytest.raises(InvalidInputError, match="insecure"),
    ):
        client.submit(1)
    with server.client(created.task_id, creds[0].token) as client:
        client.submit(1)


def test_client_pins_the_key(server: ServerProcess, key: Key) -> None:
    created, creds = server.new_task(key, 1)
    other = threshold.deal(512, n=2, t=1, insecure=True)[0]
    with (
        Client(
            server.base_url,
            created.task_id,
            creds[0].token,
            public_key=other,
            allow_insecure_keys=True,
            insecure_skip_certification=True,
        ) as client,
        pytest.raises(InvalidInputError, match="different key"),
    ):
        client.submit(1)


def test_concurrent_uploads_with_duplicates_store_each_client_once(
    server: ServerProcess, key: Key
) -> None:
    # Uploads arriving together are committed together (group commit): a duplicate or a
    # second copy racing the first must fail alone, and every other report must be stored.
    from concurrent.futures import ThreadPoolExecutor

    created, creds = server.new_task(key, 12, min_clients=2)
    url = f"{server.base_url}/v1/tasks/{created.task_id}/reports"
    bodies = {c.client_id: report(key, c.client_id) for c in creds}
    attempts = [c for c in creds for _ in range(3)]  # every client uploads three times at once

    def upload(cred) -> int:
        return httpx.post(url, headers=bearer(cred.token), json=bodies[cred.client_id]).status_code

    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(upload, attempts))
    by_client: dict[int, list[int]] = {}
    for cred, status in zip(attempts, statuses, strict=True):
        by_client.setdefault(cred.client_id, []).append(status)
    assert all(sorted(s) == [201, 409, 409] for s in by_client.values()), by_client
    stored = server.db_query(
        "SELECT COUNT(*), COUNT(DISTINCT client_id) FROM reports WHERE task_id = ?",
        created.task_id,
    )
    assert stored == [(12, 12)]
    with server.admin() as admin:
        assert admin.close(created.task_id).reports == 12

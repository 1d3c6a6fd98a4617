"""End-to-end flows through a real server process: scalar, vector, subsets, cheaters, deadlines."""

from __future__ import annotations

import copy
import itertools
import math
import random
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from service_harness import Key, ServerProcess, assert_problem, start_server

from smpcloud.client import (
    DuplicateSubmissionError,
    InsufficientReportsError,
    TaskEncoding,
    TaskStateError,
)
from smpcloud.crypto import threshold
from smpcloud.errors import InvalidInputError, OverflowDetectedError, ThresholdNotMetError

pytestmark = pytest.mark.backends("sqlite", "postgres")


def contribute(server: ServerProcess, task, key: Key, holders: list[int]) -> None:
    for index in holders:
        with server.holder(task, key[1][index - 1]) as holder:
            holder.contribute()


def test_scalar_integer_flow(server: ServerProcess, key: Key) -> None:
    values = [17, -4, 250, 0, 9]
    task, creds = server.new_task(key, len(values), min_clients=3)
    with server.admin() as admin:
        status = admin.status(task.task_id)
        assert (status.state, status.reports, status.registered_clients) == ("open", 0, 5)
        for cred, value in zip(creds, values):
            with server.client(task.task_id, cred.token) as client:
                client.submit(value)
        assert admin.status(task.task_id).reports == 5

        closed = admin.close(task.task_id)
        assert (closed.state, closed.reports, closed.close_reason) == ("closed", 5, "admin")
        assert closed.closed_at is not None
        assert admin.close(task.task_id).state == "closed"  # idempotent

        contribute(server, task, key, [5, 1])
        status = admin.status(task.task_id)
        assert (status.state, status.partials_received, status.threshold) == ("closed", 2, 3)
        with pytest.raises(ThresholdNotMetError, match="2 of 3 partial decryptions received"):
            admin.result(task.task_id)

        contribute(server, task, key, [3])
        assert admin.status(task.task_id).state == "decrypted"
        result = admin.result(task.task_id)
    assert result.count == 5
    assert result.sum == [sum(values)]
    assert isinstance(result.sum[0], int)
    assert result.average == [sum(values) / 5]
    assert result.holders == [1, 3, 5]
    assert result.within_declared_range
    # Everybody of the task may read the released result; it is the same.
    with server.client(task.task_id, creds[0].token) as client:
        assert client.result() == result


def test_vector_fixed_point_flow(server: ServerProcess, key: Key) -> None:
    rng = random.Random(7)
    length, clients, frac_bits = 6, 8, 20
    rows = [[rng.uniform(-1000, 1000) for _ in range(length)] for _ in range(clients)]
    rows[0][0] = -1000.0  # the declared bounds themselves are accepted
    rows[1][1] = 1000.0
    encoding = TaskEncoding.fixed(frac_bits, -1000.0, 1000.0)
    task, creds = server.new_task(key, clients, length=length, encoding=encoding, min_clients=4)
    for cred, row in zip(creds, rows):
        with server.client(task.task_id, cred.token) as client:
            client.submit(row)
    with server.admin() as admin:
        admin.close(task.task_id)
        contribute(server, task, key, [2, 3, 4])
        result = admin.result(task.task_id)
    assert result.count == clients
    # Documented bound: each value is off by at most 2^-(f+1), the sum by count times that.
    tolerance = clients * 2.0 ** -(frac_bits + 1) + 1e-9
    for j in range(length):
        exact = math.fsum(row[j] for row in rows)
        assert abs(result.sum[j] - exact) <= tolerance
        assert abs(result.average[j] - exact / clients) <= tolerance / clients + 1e-12
    assert result.within_declared_range


def test_every_threshold_subset_gives_the_same_result(server: ServerProcess, key: Key) -> None:
    values = [[3, -1], [10, 20], [-7, 5]]
    expected = [sum(col) for col in zip(*values)]
    subsets = list(itertools.combinations(range(1, 6), 3))
    assert len(subsets) == 10
    for subset in subsets:
        task, creds = server.new_task(key, 3, length=2, min_clients=3)
        for cred, row in zip(creds, values):
            with server.client(task.task_id, cred.token) as client:
                client.submit(row)
        with server.admin() as admin:
            admin.close(task.task_id)
            contribute(server, task, key, list(subset))
            result = admin.result(task.task_id)
        assert result.sum == expected, subset
        assert result.holders == list(subset)


def test_every_subset_decrypts_the_stored_aggregate(server: ServerProcess, key: Key) -> None:
    """All 10 subsets of partials of one task's published aggregate combine to the same sum."""
    public, shares = key
    task, creds = server.new_task(key, 4, min_clients=2)
    for cred, value in zip(creds, [5, 6, 7, -100]):
        with server.client(task.task_id, cred.token) as client:
            client.submit(value)
    with server.admin() as admin:
        admin.close(task.task_id)
    with server.holder(task, shares[0]) as holder:
        holder.contribute()
    response = httpx.get(
        f"{server.base_url}/v1/tasks/{task.task_id}/aggregate",
        headers={"Authorization": f"Bearer {task.holder_tokens[1]}"},
    )
    body = response.json()
    assert response.status_code == 200 and body["count"] == 4
    ciphertext = public.public_key.ciphertext(int.from_bytes(_b64(body["ciphertexts"][0]), "big"))
    partials = [share.partial_decrypt(ciphertext) for share in shares]
    for subset in itertools.combinations(partials, 3):
        assert threshold.combine(public, subset) == 5 + 6 + 7 - 100


def _b64(text: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@pytest.mark.parametrize("cheat", ["wrong_value", "tampered_proof"])
def test_cheating_key_holder_is_named_and_task_completes(
    server: ServerProcess, key: Key, cheat: str
) -> None:
    public, shares = key
    task, creds = server.new_task(key, 3, min_clients=3)
    for cred, value in zip(creds, [1, 2, 3]):
        with server.client(task.task_id, cred.token) as client:
            client.submit(value)
    with server.admin() as admin:
        admin.close(task.task_id)
    url = f"{server.base_url}/v1/tasks/{task.task_id}"
    cheater = shares[1]  # key holder 2
    auth = {"Authorization": f"Bearer {task.holder_tokens[1]}"}
    aggregate = httpx.get(f"{url}/aggregate", headers=auth).json()
    agg = public.public_key.ciphertext(int.from_bytes(_b64(aggregate["ciphertexts"][0]), "big"))
    honest = cheater.partial_decrypt(agg)
    if cheat == "wrong_value":
        # A correct partial decryption of another ciphertext, passed off as this one.
        other = cheater.partial_decrypt(public.encrypt(1000))
        forged = threshold.PartialDecryption(2, agg, other.value, honest.challenge, honest.response)
    else:
        forged = threshold.PartialDecryption(
            2, agg, honest.value, honest.challenge, honest.response + 1
        )
    response = httpx.post(
        f"{url}/partials", headers=auth, json={"partials": [threshold.partial_to_json(forged)]}
    )
    body = assert_problem(response, 422, "invalid-partial-decryption", "key holder(s) 2")
    assert body["holders"] == [2]
    assert server.alive()
    with server.admin() as admin:
        assert admin.status(task.task_id).partials_received == 0
    with server.holder(task, shares[0]) as holder:
        holder.contribute()
    contribute(server, task, key, [4, 5])
    with server.admin() as admin:
        result = admin.result(task.task_id)
    assert (result.sum, result.count, result.holders) == ([6], 3, [1, 4, 5])
    # Too late now, even for an honest contribution from holder 2.
    with server.holder(task, cheater) as holder, pytest.raises(TaskStateError):
        holder.contribute()


def test_sdk_raises_invalid_partial_class(server: ServerProcess, key: Key) -> None:
    """A key holder using a share of another key is refused locally; a bad proof surfaces as
    InvalidPartialDecryptionError through the SDK's error mapping."""
    public, shares = key
    task, creds = server.new_task(key, 2, min_clients=2)
    for cred in creds:
        with server.client(task.task_id, cred.token) as client:
            client.submit(1)
    with server.admin() as admin:
        admin.close(task.task_id)
    forged_share = threshold.KeyShare(public, 3, (shares[2].secret + 1) % public.n**2)
    with (
        server.holder(task, forged_share) as holder,
        pytest.raises(threshold.InvalidPartialDecryptionError, match="key holder") as info,
    ):
        holder.contribute()
    assert info.value.holders == (3,)
    assert server.alive()


def test_client_checks_values_before_sending(server: ServerProcess, key: Key) -> None:
    encoding = TaskEncoding.fixed(16, 0.0, 100.0)
    task, creds = server.new_task(key, 2, length=2, encoding=encoding)
    with server.client(task.task_id, creds[0].token) as client:
        with pytest.raises(OverflowDetectedError, match="element 1: outside the declared range"):
            client.submit([50.0, 100.5])
        with pytest.raises(OverflowDetectedError, match="finite"):
            client.submit([float("nan"), 1.0])
        with pytest.raises(InvalidInputError, match="2 value"):
            client.submit([1.0])
        with pytest.raises(InvalidInputError):
            client.submit("12")  # type: ignore[arg-type]
        with server.admin() as admin:
            assert admin.status(task.task_id).reports == 0  # nothing was sent
        client.submit([0.0, 100.0])
        with pytest.raises(DuplicateSubmissionError, match="first report is kept"):
            client.submit([1.0, 2.0])
    int_task, int_creds = server.new_task(key, 2, encoding=TaskEncoding.integer(0, 10))
    with server.client(int_task.task_id, int_creds[0].token) as client:
        with pytest.raises(InvalidInputError, match="integers"):
            client.submit(1.5)
        with pytest.raises(OverflowDetectedError):
            client.submit(11)
        with pytest.raises(InvalidInputError):
            client.submit(True)  # type: ignore[arg-type]


def test_min_clients_not_reached_never_releases(server: ServerProcess, key: Key) -> None:
    task, creds = server.new_task(key, 3, min_clients=3)
    for cred in creds[:2]:
        with server.client(task.task_id, cred.token) as client:
            client.submit(42)
    with server.admin() as admin:
        status = admin.close(task.task_id)
        assert (status.state, status.reports) == ("insufficient", 2)
        with pytest.raises(InsufficientReportsError, match="fewer than its minimum of 3"):
            admin.result(task.task_id)
    with server.holder(task, key[1][0]) as holder, pytest.raises(InsufficientReportsError):
        holder.contribute()
    assert not server.db_query("SELECT * FROM aggregates WHERE task_id = ?", task.task_id)


def test_deadline_closes_the_task_in_the_background(server: ServerProcess, key: Key) -> None:
    deadline = datetime.now(UTC) + timedelta(seconds=1.5)
    task, creds = server.new_task(key, 4, min_clients=3, deadline=deadline)
    late_task, late_creds = server.new_task(
        key, 3, min_clients=3, deadline=datetime.now(UTC) + timedelta(seconds=1.5)
    )
    for cred, value in zip(creds[:3], [1, 2, 3]):
        with server.client(task.task_id, cred.token) as client:
            client.submit(value)
    with server.client(late_task.task_id, late_creds[0].token) as client:
        client.submit(5)
    # No request touches the tasks: the background loop must close them by itself.
    query = "SELECT state, close_reason FROM tasks WHERE id = ?"
    end = time.monotonic() + 10
    while server.db_query(query, task.task_id)[0][0] == "open" and time.monotonic() < end:
        time.sleep(0.1)
    assert server.db_query(query, task.task_id) == [("closed", "deadline")]
    while server.db_query(query, late_task.task_id)[0][0] == "open" and time.monotonic() < end:
        time.sleep(0.1)
    assert server.db_query(query, late_task.task_id) == [("insufficient", "deadline")]
    # A client that comes too late is refused; the task completes with the others.
    with server.client(task.task_id, creds[3].token) as client, pytest.raises(TaskStateError):
        client.submit(100)
    contribute(server, task, key, [1, 2, 3])
    with server.admin() as admin:
        result = admin.result(task.task_id)
        assert (result.sum, result.count) == ([6], 3)
        assert admin.status(task.task_id).close_reason == "deadline"


def test_upload_after_deadline_is_refused_lazily(
    tmp_path_factory: pytest.TempPathFactory, key: Key
) -> None:
    """With a background loop too slow to matter, a request past the deadline closes the task."""
    slow = start_server(tmp_path_factory.mktemp("slow"), "--deadline-poll-seconds", "3600")
    try:
        task, creds = slow.new_task(
            key, 3, min_clients=2, deadline=datetime.now(UTC) + timedelta(seconds=1.0)
        )
        for cred in creds[:2]:
            with slow.client(task.task_id, cred.token) as client:
                client.submit(7)
        time.sleep(1.2)
        response = httpx.post(
            f"{slow.base_url}/v1/tasks/{task.task_id}/reports",
            headers={"Authorization": f"Bearer {creds[2].token}"},
            json={"key_id": key[0].public_key.key_id, "ciphertexts": ["Aw"]},
        )
        assert_problem(response, 409, "task-state", "deadline")
        with slow.admin() as admin:
            status = admin.status(task.task_id)
        assert (status.state, status.reports, status.close_reason) == ("closed", 2, "deadline")
    finally:
        slow.stop()
    slow.check_log_has_no_secrets(key)


def test_openapi_and_docs_are_served(server: ServerProcess) -> None:
    spec = httpx.get(f"{server.base_url}/openapi.json").json()
    for path in (
        "/v1/tasks",
        "/v1/tasks/{task_id}",
        "/v1/tasks/{task_id}/status",
        "/v1/tasks/{task_id}/clients",
        "/v1/tasks/{task_id}/close",
        "/v1/tasks/{task_id}/reports",
        "/v1/tasks/{task_id}/aggregate",
        "/v1/tasks/{task_id}/partials",
        "/v1/tasks/{task_id}/result",
    ):
        assert path in spec["paths"], path
    assert "409" in spec["paths"]["/v1/tasks/{task_id}/reports"]["post"]["responses"]
    assert httpx.get(f"{server.base_url}/docs").status_code == 200


def test_default_size_key_flow(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The whole flow once with a 2048-bit key, on a server that refuses insecure keys."""
    big_key = threshold.deal(2048, n=3, t=2)
    secure = start_server(tmp_path_factory.mktemp("secure"), insecure_keys=False)
    try:
        task, creds = secure.new_task(big_key, 3, length=2, min_clients=3)
        for cred, row in zip(creds, [[1, 2], [3, 4], [5, -6]]):
            with secure.client(task.task_id, cred.token) as client:
                client.submit(row)
        with secure.admin() as admin:
            admin.close(task.task_id)
            contribute(secure, task, big_key, [3, 1])
            result = admin.result(task.task_id)
        assert (result.sum, result.count, result.holders) == ([9, 0], 3, [1, 3])
    finally:
        secure.stop()
    secure.check_log_has_no_secrets(big_key)


def test_prepare_then_upload_equals_submit(
    server: ServerProcess, key: Key, monkeypatch: pytest.MonkeyPatch
) -> None:
    from smpcloud.client import Client, PreparedReport
    from smpcloud.crypto.paillier import PublicKey

    classic_calls: list[int] = []
    original = PublicKey.encrypt_classic

    def spy(self: PublicKey, plaintext: int) -> object:
        classic_calls.append(plaintext)
        return original(self, plaintext)

    monkeypatch.setattr(PublicKey, "encrypt_classic", spy)
    values = [2.5, 7.25, 1.0]
    task, creds = server.new_task(
        key, len(values), min_clients=3, encoding=TaskEncoding.fixed(16, 0.0, 10.0)
    )
    pinned = copy.deepcopy(key[0])  # a key object of its own: no table built yet
    assert pinned == key[0] and not pinned.public_key.has_table
    # No table on the pinned object: a short report is encrypted the classic way.
    with Client(
        server.base_url,
        task.task_id,
        creds[0].token,
        public_key=pinned,
        allow_insecure_keys=True,
        insecure_skip_certification=True,
    ) as client:
        prepared = client.prepare(values[0])
        assert isinstance(prepared, PreparedReport) and len(prepared.ciphertexts) == 1
        assert "ciphertexts=<1>" in repr(prepared)
        client.upload(prepared)
        with pytest.raises(DuplicateSubmissionError):
            client.upload(prepared)
    assert len(classic_calls) == 1
    # Once the pinned object holds its table, every client that shares it takes the DJN path.
    pinned.public_key.precompute()
    assert pinned.public_key.has_table
    for cred, value in zip(creds[1:], values[1:]):
        with Client(
            server.base_url,
            task.task_id,
            cred.token,
            public_key=pinned,
            allow_insecure_keys=True,
            insecure_skip_certification=True,
        ) as client:
            client.submit(value)
    assert len(classic_calls) == 1
    with server.client(task.task_id, creds[0].token) as client:
        foreign = PreparedReport("another-task", prepared.key_id, prepared.ciphertexts)
        with pytest.raises(InvalidInputError, match="another task"):
            client.upload(foreign)
    with server.admin() as admin:
        admin.close(task.task_id)
        contribute(server, task, key, [1, 2, 3])
        result = admin.result(task.task_id)
    assert result.count == 3 and result.sum == [sum(values)]

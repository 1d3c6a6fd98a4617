"""Shamir mode end to end: three real server processes (t = 2), each with its own SQLite file.

The paper's secure sum in the cloud: every client Shamir-shares its vector and uploads share j
to server j; the administrator closes every reachable server over one participant set; the
analyst rebuilds the sum from any two servers' shares of it.
"""

from __future__ import annotations

import base64
import math
import random
import struct
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import numpy as np
import pytest
from service_harness import ServerProcess, assert_problem, free_port

from smpcloud.client import (
    DuplicateSubmissionError,
    ShamirAggregation,
    ShamirClient,
    ShamirCredentials,
    ShamirEndpoint,
    ShamirServer,
    TaskEncoding,
)
from smpcloud.crypto.field import DEFAULT_FIELD, Field
from smpcloud.crypto.sealing import seal
from smpcloud.crypto.shamir import share_elements
from smpcloud.errors import InvalidInputError, ThresholdNotMetError
from smpcloud.mpc.codec import encode_vectors
from smpcloud.protocol.sharing import SHARE_SEAL_INFO, encode_share, share_seal_aad

N, T = 3, 2


def start_servers(tmp: Path, count: int) -> list[ServerProcess]:
    """Start ``count`` servers side by side (each its own directory, database and log)."""
    servers = []
    for j in range(1, count + 1):
        directory = tmp / f"server{j}"
        directory.mkdir()
        servers.append(ServerProcess(directory / "server.db", directory / "server.log"))
    errors: list[BaseException] = []

    def start(server: ServerProcess) -> None:
        try:
            server.start()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(s,)) for s in servers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        for server in servers:
            server.stop()
        raise errors[0]
    return servers


def stop_servers(servers: list[ServerProcess]) -> None:
    for server in servers:
        server.stop()
    for server in servers:
        server.check_log_has_no_secrets()


@pytest.fixture(scope="module")
def trio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[ServerProcess]]:
    """Three servers for the module (tests create their own tasks)."""
    servers = start_servers(tmp_path_factory.mktemp("shamir"), N)
    try:
        yield servers
    finally:
        stop_servers(servers)


def endpoints(servers: list[ServerProcess]) -> list[ShamirServer]:
    return [ShamirServer(s.base_url, s.admin_token) for s in servers]


def new_task(
    servers: list[ServerProcess], clients: int, **kwargs: object
) -> tuple[ShamirAggregation, list[ShamirCredentials]]:
    kwargs.setdefault("name", "shamir test")
    kwargs.setdefault("min_clients", 2)
    kwargs.setdefault(
        "validity", "none"
    )  # checked reports: tests/integration/test_shamir_forged.py
    aggregation = ShamirAggregation.create_on_servers(
        endpoints(servers),
        threshold=T,
        timeout=30.0,
        **kwargs,  # type: ignore[arg-type]
    )
    creds = aggregation.register(clients) if clients else []
    for cred in creds:
        for server, endpoint in zip(servers, cred.endpoints):
            server.secrets_handed_out.append(endpoint.token)
    return aggregation, creds


def submit(cred: ShamirCredentials, values: object) -> None:
    with ShamirClient(cred, timeout=30.0) as client:
        outcome = client.submit(values)  # type: ignore[arg-type]
    assert outcome.reached == (1, 2, 3) and outcome.complete


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def with_dead_servers(cred: ShamirCredentials, dead: set[int]) -> ShamirCredentials:
    """The same credentials, but servers in ``dead`` point at a port nobody listens on."""
    nowhere = f"http://127.0.0.1:{free_port()}"
    return replace(
        cred,
        endpoints=tuple(
            replace(e, base_url=nowhere) if e.server in dead else e for e in cred.endpoints
        ),
    )


# ------------------------------------------------------------------------------------ sums


def test_scalar_integer_sum(trio: list[ServerProcess]) -> None:
    values = [17, -4, 250, 0, 9]
    aggregation, creds = new_task(trio, len(values), min_clients=3)
    with aggregation:
        for cred, value in zip(creds, values):
            submit(cred, value)
        statuses, unavailable = aggregation.statuses()
        assert not unavailable
        assert [statuses[j].server_index for j in (1, 2, 3)] == [1, 2, 3]
        assert {(s.scheme, s.servers, s.threshold, s.reports) for s in statuses.values()} == {
            ("shamir", 3, 2, 5)
        }
        closed = aggregation.close_all()
        assert closed.participants == (1, 2, 3, 4, 5) and closed.closed == (1, 2, 3)
        assert not closed.unavailable
        assert aggregation.close_all().participants == closed.participants  # idempotent
        result = aggregation.result()
    assert result.sum == [sum(values)] and isinstance(result.sum[0], int)
    assert result.count == 5 and result.average == [sum(values) / 5]
    assert result.participants == [1, 2, 3, 4, 5] and result.servers == [1, 2, 3]
    assert result.within_declared_range and not result.unavailable
    # A server stores only its share: random residues, unrelated to the value (client 4 sent 0).
    server = trio[0]
    task_id = aggregation.task.task_ids[0]
    blobs = [
        row[0]
        for row in server.db_query("SELECT ciphertexts FROM reports WHERE task_id = ?", task_id)
    ]
    assert len(blobs) == 5 and len(set(blobs)) == 5
    assert all(len(blob) == 4 * DEFAULT_FIELD.k for blob in blobs)


def test_scalar_fixed_point_sum_beyond_64_bits(trio: list[ServerProcess]) -> None:
    """64 fractional bits: encodings and their sum exceed int64; the field holds them exactly."""
    values = [1.5, -0.25, 12345.125, 2.0**20]
    encoding = TaskEncoding.fixed(64, -(2.0**20), 2.0**20)
    aggregation, creds = new_task(trio, len(values), encoding=encoding, max_clients=100)
    with aggregation:
        for cred, value in zip(creds, values):
            submit(cred, value)
        aggregation.close_all()
        result = aggregation.result()
    assert result.sum == [math.fsum(values)] and result.count == 4
    assert result.average == [math.fsum(values) / 4]


@pytest.mark.parametrize("kind", ["integer", "fixed_point"])
def test_vector_sum_of_1000_elements(trio: list[ServerProcess], kind: str) -> None:
    rng = random.Random(kind)
    length, clients = 1000, 4
    if kind == "integer":
        encoding = TaskEncoding.integer(-(10**12), 10**12)
        rows: list[list[float]] = [
            [rng.randint(-(10**12), 10**12) for _ in range(length)] for _ in range(clients)
        ]
    else:
        encoding = TaskEncoding.fixed(20, -1000.0, 1000.0)
        rows = [[rng.uniform(-1000, 1000) for _ in range(length)] for _ in range(clients)]
        rows[0][0], rows[1][1] = -1000.0, 1000.0  # the declared bounds themselves are accepted
    aggregation, creds = new_task(trio, clients, length=length, encoding=encoding)
    with aggregation:
        for cred, row in zip(creds, rows):
            submit(cred, np.array(row) if kind == "fixed_point" else row)
        aggregation.close_all()
        result = aggregation.result()
    assert result.count == clients and len(result.sum) == length
    if kind == "integer":
        assert result.sum == [sum(column) for column in zip(*rows)]
    else:
        tolerance = clients * 2.0**-21 + 1e-9  # each value is off by at most 2^-(f+1)
        for j in range(length):
            exact = math.fsum(row[j] for row in rows)
            assert abs(result.sum[j] - exact) <= tolerance
            assert abs(result.average[j] - exact / clients) <= tolerance / clients + 1e-12


# ------------------------------------------------------------------------------- drop-outs


def test_client_that_reached_only_some_servers_is_excluded(trio: list[ServerProcess]) -> None:
    aggregation, creds = new_task(trio, 4)
    with aggregation:
        submit(creds[0], 10)
        submit(creds[1], 20)
        # Client 3 cannot reach server 3: t = 2 servers took its share, so it succeeds.
        with ShamirClient(with_dead_servers(creds[2], {3}), timeout=10.0) as client:
            outcome = client.submit(1000)
        assert outcome.reached == (1, 2) and not outcome.complete
        assert list(outcome.failed) == [3] and "unreachable" in outcome.failed[3]
        # Client 4 reaches only server 1: fewer than t, an error naming the others.
        with (
            ShamirClient(with_dead_servers(creds[3], {2, 3}), timeout=10.0) as client,
            pytest.raises(ThresholdNotMetError, match=r"only 1 of 3 servers answer.*server 2"),
        ):
            client.submit(5)
        held, _ = aggregation.reporters()
        assert held == {1: [1, 2, 3], 2: [1, 2, 3], 3: [1, 2]}
        closed = aggregation.close_all()
        assert closed.participants == (1, 2)
        result = aggregation.result()
    # Client 3 is left out on every server alike, so the sum is exactly 10 + 20.
    assert (result.sum, result.count, result.participants) == ([30], 2, [1, 2])


# ------------------------------------------------------------------------------ bad input


def _share_text(length: int, *, field: Field = DEFAULT_FIELD) -> str:
    secret = field.from_ints(list(range(length)))
    return encode_share(share_elements(field, secret, n=N, t=T)[0], field)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _raw(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sealed(endpoint: ShamirEndpoint, client: int, plaintext: bytes) -> dict[str, object]:
    """A report body: ``plaintext`` sealed to the endpoint's server for ``client``, as the SDK
    seals a share (any bytes: to reach the server's checks of what a sealed share holds)."""
    aad = share_seal_aad(endpoint.task_id, endpoint.server, client)
    enc, ct = seal(endpoint.share_key, plaintext, info=SHARE_SEAL_INFO, aad=aad)
    return {"sealed_share": {"enc": _b64(enc), "ciphertext": _b64(ct)}}


def test_duplicate_upload_is_409_and_the_first_share_is_kept(trio: list[ServerProcess]) -> None:
    aggregation, creds = new_task(trio, 3)
    endpoint = creds[0].endpoints[0]
    url = f"{endpoint.base_url}/v1/tasks/{endpoint.task_id}/reports"
    with aggregation:
        submit(creds[0], 7)
        body = _sealed(endpoint, 1, _raw(_share_text(1)))
        again = httpx.post(url, headers=bearer(endpoint.token), json=body)
        assert_problem(again, 409, "duplicate-submission", "client 1", "first report is kept")
        # A fresh client object with the same credentials sends nothing at all.
        with (
            ShamirClient(creds[0]) as client,
            pytest.raises(DuplicateSubmissionError, match=r"server\(s\) \[1, 2, 3\] already hold"),
        ):
            client.submit(99)
        submit(creds[1], 5)
        aggregation.close_all()
        assert aggregation.result().sum == [12]


def test_malformed_shares_are_422(trio: list[ServerProcess]) -> None:
    aggregation, creds = new_task(trio, 2, length=3)
    endpoint = creds[0].endpoints[1]
    url = f"{endpoint.base_url}/v1/tasks/{endpoint.task_id}/reports"
    auth = bearer(endpoint.token)
    good = _share_text(3)
    raw = base64.urlsafe_b64decode(good + "=" * (-len(good) % 4))
    header = 12 + 4 * DEFAULT_FIELD.k
    too_big = bytearray(raw)
    too_big[header : header + 4] = struct.pack("<I", DEFAULT_FIELD.moduli[0])  # residue = p_1
    other_field = Field((4294967291, 4294967279, 65521))
    cases: list[tuple[bytes, str]] = [  # what a sealed share holds, once opened
        (_raw(_share_text(2)), "expected shared vectors of length 3, got 2"),
        (_raw(_share_text(4)), "length 3, got 4"),
        (bytes(too_big), "residue outside the field"),
        (_raw(_share_text(3, field=other_field)), "another field"),
        (encode_vectors(Field((65521, 65519)), np.zeros((2, 3), np.uint64)), "2 moduli"),
        (raw + b"\0\0\0\0", "bytes, expected"),
        (raw[:-4], "bytes, expected"),
        (b"XMPC" + raw[4:], "bad magic"),
    ]
    sealed_good = _sealed(endpoint, 1, raw)["sealed_share"]
    other = _sealed(endpoint, 1, raw)["sealed_share"]  # another ephemeral key
    assert isinstance(sealed_good, dict) and isinstance(other, dict)
    other_enc = other["enc"]
    texts: list[tuple[object, str, str]] = [  # the sealed share's own texts
        ({**sealed_good, "enc": "not base64!"}, "invalid-share", "sealed_share.enc"),
        ({**sealed_good, "ciphertext": "AAAA="}, "invalid-share", "sealed_share.ciphertext"),
        ({**sealed_good, "enc": other_enc}, "sealed-share-not-opened", "does not open"),
        ({"enc": sealed_good["enc"]}, "invalid-input", "ciphertext"),
        (12345, "invalid-input", "sealed_share"),
    ]
    with aggregation:
        for plaintext, fragment in cases:
            response = httpx.post(url, headers=auth, json=_sealed(endpoint, 1, plaintext))
            body = assert_problem(response, 422, "invalid-share", fragment)
            assert body["detail"].startswith("sealed share: "), body
        for value, slug, fragment in texts:
            response = httpx.post(url, headers=auth, json={"sealed_share": value})
            assert_problem(response, 422, slug, fragment)
        # A plain share, however well formed, is refused: shares must be sealed.
        for value in (good, "not base64!"):
            response = httpx.post(url, headers=auth, json={"share": value})
            body = assert_problem(response, 422, "share-not-sealed", "must be sealed")
            assert body["title"] == "Shares must be sealed to the server's key"
        # A Paillier report to a Shamir task, and a report with both forms.
        response = httpx.post(url, headers=auth, json={"key_id": "k", "ciphertexts": ["Aw"]})
        assert_problem(response, 422, "invalid-input", "Shamir task", "'sealed_share'")
        response = httpx.post(url, headers=auth, json={"share": good, "key_id": "k"})
        assert_problem(response, 422, "invalid-input", "share alone")
        both = {"share": good, "sealed_share": sealed_good}
        assert_problem(httpx.post(url, headers=auth, json=both), 422, "invalid-input", "alone")
        # Nothing was stored: the client can still upload its (good) shares once.
        assert all(server.alive() for server in trio)
        submit(creds[0], [1, 2, 3])


def test_close_rules(trio: list[ServerProcess]) -> None:
    aggregation, creds = new_task(trio, 4, min_clients=3)
    server = trio[0]
    url = f"{server.base_url}/v1/tasks/{aggregation.task.task_ids[0]}"
    admin = bearer(server.admin_token)
    with aggregation:
        for cred, value in zip(creds, [1, 2, 4, 8]):
            submit(cred, value)
        assert_problem(
            httpx.get(f"{url}/aggregate", headers=admin), 409, "task-state", "still open"
        )
        for body, fragment in [
            (None, "needs the participant set"),
            ({"clients": [1, 2]}, "fewer than this task's min_clients of 3"),
            ({"clients": [1, 2, 2]}, "more than once"),
            ({"clients": [1, 2, 9]}, "clients 9"),
            ({"clients": [0, 1, 2]}, "clients.0"),
            ({"clients": ["1", 2, 3]}, "clients.0"),
        ]:
            response = httpx.post(f"{url}/close", headers=admin, json=body)
            assert_problem(response, 422, "invalid-input", fragment)
        assert server.db_query(
            "SELECT state FROM tasks WHERE id = ?", aggregation.task.task_ids[0]
        ) == [("open",)]
        first = httpx.post(f"{url}/close", headers=admin, json={"clients": [1, 2, 3]})
        assert first.status_code == 200 and first.json()["state"] == "closed"
        assert first.json()["reports"] == 4
        again = httpx.post(f"{url}/close", headers=admin, json={"clients": [3, 2, 1]})
        assert again.status_code == 200  # the same set again: a retried request
        other = httpx.post(f"{url}/close", headers=admin, json={"clients": [1, 2, 3, 4]})
        assert_problem(other, 409, "task-state", "different participant set", "closes once")
        aggregate = httpx.get(f"{url}/aggregate", headers=admin).json()
        assert (aggregate["scheme"], aggregate["server_index"], aggregate["count"]) == (
            "shamir",
            1,
            3,
        )
        assert aggregate["clients"] == [1, 2, 3]
        # close_all adopts the set server 1 was closed over for the other servers.
        closed = aggregation.close_all()
        assert (closed.participants, closed.closed) == ((1, 2, 3), (1, 2, 3))
        assert aggregation.result().sum == [7]
        # Too late for uploads and registrations now.
        endpoint = creds[3].endpoints[0]
        response = httpx.post(
            f"{url}/reports",
            headers=bearer(endpoint.token),
            json=_sealed(endpoint, 4, _raw(_share_text(1))),
        )
        assert_problem(response, 409, "task-state", "is closed", "no longer accepted")
        response = httpx.post(f"{url}/clients", headers=admin, json={"count": 1})
        assert_problem(response, 409, "task-state", "no more clients")


def test_participant_set_below_min_clients_is_refused(trio: list[ServerProcess]) -> None:
    aggregation, creds = new_task(trio, 3, min_clients=3)
    with aggregation:
        submit(creds[0], 1)
        submit(creds[1], 2)
        with ShamirClient(with_dead_servers(creds[2], {2}), timeout=10.0) as client:
            client.submit(3)
        with pytest.raises(InvalidInputError, match="fewer than min_clients=3: nothing was closed"):
            aggregation.close_all()
        statuses, _ = aggregation.statuses()
        assert {s.state for s in statuses.values()} == {"open"}
        with pytest.raises(ThresholdNotMetError, match="server 1: TaskStateError"):
            aggregation.result()


def test_roles_and_paillier_only_routes(trio: list[ServerProcess]) -> None:
    aggregation, creds = new_task(trio, 2)
    server = trio[1]
    task_id = aggregation.task.task_ids[1]
    url = f"{server.base_url}/v1/tasks/{task_id}"
    client_auth = bearer(creds[0].endpoints[1].token)
    admin = bearer(server.admin_token)
    with aggregation:
        info = httpx.get(url, headers=client_auth).json()
        assert (info["scheme"], info["servers"], info["server_index"], info["threshold"]) == (
            "shamir",
            3,
            2,
            2,
        )
        assert info["public_key"] is None and info["holders"] == 0
        assert info["field"] == list(DEFAULT_FIELD.moduli)
        status = httpx.get(f"{url}/status", headers=client_auth).json()
        assert status["reported"] is False
        for method, path, auth, slug, fragment in [
            ("GET", "/reporters", client_auth, "permission-denied", "client token may not"),
            ("POST", "/close", client_auth, "permission-denied", "client token may not"),
            ("GET", "/aggregate", client_auth, "permission-denied", "client token may not"),
            ("POST", "/partials", admin, "permission-denied", "admin token may not"),
            ("GET", "/result", admin, "task-state", "Shamir task"),
        ]:
            response = httpx.request(
                method,
                url + path,
                headers=auth,
                json={"partials": []} if path == "/partials" else None,
            )
            status_code = 409 if slug == "task-state" else 403
            assert_problem(response, status_code, slug, fragment)
        submit(creds[0], 3)
        assert httpx.get(f"{url}/status", headers=client_auth).json()["reported"] is True
        assert httpx.get(f"{url}/reporters", headers=admin).json()["clients"] == [1]


def test_task_creation_errors(trio: list[ServerProcess]) -> None:
    server = trio[2]
    url = f"{server.base_url}/v1/tasks"
    admin = bearer(server.admin_token)
    good = {
        "name": "t",
        "scheme": "shamir",
        "servers": 3,
        "threshold": 2,
        "server_index": 3,
        "min_clients": 2,
        "validity": "none",
    }
    assert httpx.post(url, headers=admin, json=good).json()["holder_tokens"] == []
    cases = [
        (good | {"servers": 4}, "must exceed servers/2 = 2"),
        (good | {"threshold": 1}, "threshold"),
        (good | {"threshold": 4}, "threshold=4 must be in 2..servers=3"),
        (good | {"server_index": 4}, "server_index=4 must be in 1..servers=3"),
        ({k: v for k, v in good.items() if k != "server_index"}, "requires server_index"),
        (good | {"public_key": {"kind": "x"}}, "takes no public_key"),
        (
            good | {"encoding": {"kind": "integer", "min_value": 0, "max_value": 2**90}},
            "beyond M/2",
        ),
        (good | {"length": 100_000}, "length 100000"),
        ({"name": "t", "min_clients": 2}, "public_key is required"),
        (
            {"name": "t", "min_clients": 2, "public_key": {}, "servers": 3},
            "only for scheme 'shamir'",
        ),
    ]
    for body, fragment in cases:
        assert_problem(httpx.post(url, headers=admin, json=body), 422, "invalid-input", fragment)
    with pytest.raises(InvalidInputError, match="must exceed servers/2"):
        ShamirAggregation.create_on_servers(
            endpoints(trio[:2] + trio[:2]), name="t", threshold=2, min_clients=2, validity="none"
        )


# ---------------------------------------------------------------------- servers going down


def test_servers_go_down_and_come_back(tmp_path: Path) -> None:
    servers = start_servers(tmp_path, N)
    try:
        aggregation, creds = new_task(servers, 5, length=2)
        with aggregation:
            for cred, row in zip(creds, [[1, -1], [10, -10], [100, -100], [1000, -1000]]):
                submit(cred, row)
            # Server 1 is down while client 5 submits: t = 2 servers take its shares.
            servers[0].kill()
            client = ShamirClient(creds[4], timeout=10.0)
            outcome = client.submit([10000, -10000])
            assert outcome.reached == (2, 3) and "unreachable" in outcome.failed[1]
            # Server 1 comes back (same database, same port): retry() sends the same shares.
            servers[0].start(port=servers[0].port)
            assert client.retry().reached == (1, 2, 3)
            with pytest.raises(DuplicateSubmissionError, match="retry"):
                client.submit([1, 1])
            client.disconnect()
            # Server 3 is killed before the close: the sum comes from servers 1 and 2.
            servers[2].kill()
            closed = aggregation.close_all()
            assert closed.closed == (1, 2) and closed.participants == (1, 2, 3, 4, 5)
            assert list(closed.unavailable) == [3] and "unreachable" in closed.unavailable[3]
            result = aggregation.result()
            assert (result.sum, result.count, result.servers) == ([11111, -11111], 5, [1, 2])
            assert list(result.unavailable) == [3]
            servers[1].kill()
            with pytest.raises(ThresholdNotMetError) as info:
                aggregation.result()
            message = str(info.value)
            assert "1 server(s) gave a share of the sum, fewer than t=2" in message
            assert "server 2: unreachable" in message and "server 3: unreachable" in message
            # The live server refuses nothing and reveals nothing on its own: one share.
            assert servers[0].alive()
    finally:
        stop_servers(servers)


def test_prepare_then_upload(trio: list[ServerProcess]) -> None:
    from smpcloud.client import ShamirPreparedReport

    values = [3, 4, 5]
    aggregation, creds = new_task(trio, len(values), min_clients=3)
    with aggregation:
        with ShamirClient(creds[0], timeout=30.0) as client:
            prepared = client.prepare(values[0])
            assert isinstance(prepared, ShamirPreparedReport) and len(prepared.shares) == N
            assert "sealed" in repr(prepared)
            assert prepared.shares[0]["ciphertext"] not in repr(prepared)
            assert set(prepared.request_body(2)) == {"sealed_share"}
            with pytest.raises(DuplicateSubmissionError):
                client.prepare(values[0])  # a second sharing would not match the first
            with pytest.raises(InvalidInputError, match="prepare"):
                client.upload(ShamirPreparedReport(1, prepared.shares))  # not its own object
            outcome = client.upload(prepared)
            assert outcome.complete
        for cred, value in zip(creds[1:], values[1:]):
            submit(cred, value)
        aggregation.close_all()
        result = aggregation.result()
    assert (result.count, result.sum) == (3, [12])

"""What a Shamir client refuses before it sends anything (client.shamir.pinning).

Plain http to a non-loopback host, two servers on one non-loopback host, two servers with one
share key: refused when the client (or the administrator's handle) is built, before any
request — the transports below record every request, and the hosts do not resolve. A server
that serves another key than the pinned one: refused after the task check, before any share.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from smpcloud.cli.shamir_files import load_task, write_task
from smpcloud.client import (
    ShamirAggregation,
    ShamirClient,
    ShamirCredentials,
    ShamirEndpoint,
    ShamirServer,
    ShamirTask,
    ShamirTaskInfo,
    TaskEncoding,
    prepare_shares,
)
from smpcloud.client.shamir import (
    DuplicateShareKeyError,
    InsecureServerURLError,
    SharedHostError,
    ShareKeyMismatchError,
)
from smpcloud.client.shamir.pinning import is_loopback, normalized_host
from smpcloud.crypto.sealing import OpeningKey
from smpcloud.errors import InvalidInputError

KEYS = [OpeningKey.generate() for _ in range(4)]
INFO = ShamirTaskInfo(
    name="t",
    length=1,
    encoding=TaskEncoding.integer(0, 100),
    servers=3,
    threshold=2,
    min_clients=2,
    max_clients=100,
    deadline=None,
)


def credentials(urls: list[str], keys: list[OpeningKey] | None = None) -> ShamirCredentials:
    chosen = keys or KEYS[: len(urls)]
    return ShamirCredentials(
        1,
        2,
        tuple(
            ShamirEndpoint(j, url, f"task-{j}", f"token-{j}", chosen[j - 1].sealing_key)
            for j, url in enumerate(urls, start=1)
        ),
    )


class Recorder:
    """httpx transports that record every request and answer as an honest server would."""

    def __init__(self, served: dict[int, str] | None = None) -> None:
        self.requests: list[tuple[int, str, str]] = []
        self.served = served or {}

    def transport(self, j: int) -> httpx.MockTransport:
        def handle(request: httpx.Request) -> httpx.Response:
            self.requests.append((j, request.method, request.url.path))
            if request.method == "GET" and request.url.path.endswith("/status"):
                return httpx.Response(
                    200,
                    json={
                        "task_id": f"task-{j}",
                        "state": "open",
                        "reports": 0,
                        "registered_clients": 1,
                        "min_clients": 2,
                        "max_clients": 100,
                        "scheme": "shamir",
                        "threshold": 2,
                        "holders": 0,
                        "reported": False,
                    },
                )
            if request.method == "GET":
                return httpx.Response(200, json=self.info(j))
            return httpx.Response(500)

        return httpx.MockTransport(handle)

    def info(self, j: int) -> dict[str, object]:
        return {
            "task_id": f"task-{j}",
            "name": "t",
            "state": "open",
            "length": 1,
            "encoding": json.loads(TaskEncoding.integer(0, 100).model_dump_json()),
            "holders": 0,
            "threshold": 2,
            "min_clients": 2,
            "max_clients": 100,
            "deadline": None,
            "scheme": "shamir",
            "servers": 3,
            "server_index": j,
            "field": [4294967291, 4294967279, 4294967231],
            "share_key": self.served.get(j, KEYS[j - 1].sealing_key.to_text()),
        }


def refused(creds: ShamirCredentials, error: type[Exception], *fragments: str) -> None:
    recorder = Recorder()
    transports = {j: recorder.transport(j) for j in (1, 2, 3)}
    with pytest.raises(error) as caught:
        ShamirClient(creds, transports=transports)
    for fragment in fragments:
        assert fragment in str(caught.value)
    with pytest.raises(error):
        prepare_shares(INFO, 1, creds)  # the bulk path checks the same
    assert recorder.requests == []


def test_plain_http_to_a_non_loopback_host_is_refused() -> None:
    urls = ["https://a.invalid", "http://10.1.2.3:8000", "https://c.invalid"]
    refused(credentials(urls), InsecureServerURLError, "server 2 (http://10.1.2.3:8000)", "https")


def test_two_servers_on_one_host_are_refused() -> None:
    urls = ["https://a.example.invalid", "https://b.invalid", "https://A.EXAMPLE.invalid.:8443"]
    refused(credentials(urls), SharedHostError, "servers 1 (https://a.example.invalid) and 3")
    mapped = ["https://10.0.0.1:1", "https://[::ffff:10.0.0.1]:2", "https://b.invalid"]
    refused(credentials(mapped), SharedHostError, "servers 1", "and 2", "'10.0.0.1'")


def test_two_servers_with_one_key_are_refused() -> None:
    urls = ["https://a.invalid", "https://b.invalid", "https://c.invalid"]
    creds = credentials(urls, [KEYS[0], KEYS[1], KEYS[0]])
    refused(creds, DuplicateShareKeyError, "servers 1 (https://a.invalid) and 3", "same share key")


def test_loopback_is_the_one_exception() -> None:
    for urls in (
        ["http://127.0.0.1:8001", "http://127.0.0.1:8002", "http://127.0.0.1:8003"],
        ["http://localhost:1", "http://[::1]:2", "http://127.0.0.2:3"],
    ):
        ShamirClient(credentials(urls)).disconnect()
        assert len(prepare_shares(INFO, 1, credentials(urls)).shares) == 3
    assert is_loopback(normalized_host("http://LOCALHOST.:80"))
    assert is_loopback(normalized_host("http://[::ffff:127.0.0.1]:80"))
    assert not is_loopback(normalized_host("https://127.example"))
    with pytest.raises(InvalidInputError):
        normalized_host("ftp://a.invalid")


def test_a_server_serving_another_key_gets_no_share() -> None:
    urls = ["https://a.invalid", "https://b.invalid", "https://c.invalid"]
    recorder = Recorder(served={2: KEYS[3].sealing_key.to_text()})
    transports = {j: recorder.transport(j) for j in (1, 2, 3)}
    with (
        ShamirClient(credentials(urls), transports=transports) as client,
        pytest.raises(ShareKeyMismatchError) as caught,
    ):
        client.submit(5)
    message = str(caught.value)
    assert "server 2 (https://b.invalid)" in message
    assert KEYS[3].sealing_key.fingerprint() in message
    assert KEYS[1].sealing_key.fingerprint() in message
    assert {method for _, method, _ in recorder.requests} == {"GET"}  # no share was posted
    for served in (None, "not a key"):
        recorder = Recorder(served={1: served})  # type: ignore[dict-item]
        transports = {j: recorder.transport(j) for j in (1, 2, 3)}
        with (
            ShamirClient(credentials(urls), transports=transports) as client,
            pytest.raises(ShareKeyMismatchError, match="server 1"),
        ):
            client.prepare(5)


def test_the_administrator_refuses_the_same_deployments_before_any_request() -> None:
    recorder = Recorder()
    servers = [
        ShamirServer("https://a.invalid", "admin-1"),
        ShamirServer("http://b.invalid", "admin-2"),
        ShamirServer("https://c.invalid", "admin-3"),
    ]
    transports = [recorder.transport(j) for j in (1, 2, 3)]
    with pytest.raises(InsecureServerURLError, match="server 2"):
        ShamirAggregation.create_on_servers(
            servers, name="t", threshold=2, min_clients=2, transports=transports, validity="none"
        )
    shared = [replace(servers[1], base_url="https://A.invalid"), *servers[::2]]
    with pytest.raises(SharedHostError, match="servers 1"):
        ShamirAggregation.create_on_servers(
            shared, name="t", threshold=2, min_clients=2, transports=transports, validity="none"
        )
    keys = [KEYS[0].sealing_key, KEYS[0].sealing_key, KEYS[1].sealing_key]
    with pytest.raises(DuplicateShareKeyError, match="servers 1"):
        ShamirAggregation(
            [replace(servers[1], base_url="https://b.invalid"), *servers[::2]],
            ["t1", "t2", "t3"],
            threshold=2,
            share_keys=keys,
            transports=transports,
        )
    assert recorder.requests == []


def test_task_files_carry_the_keys_and_old_ones_are_refused(tmp_path: Path) -> None:
    urls = ("https://a.invalid", "https://b.invalid", "https://c.invalid")
    keys = tuple(k.sealing_key for k in KEYS[:3])
    task = ShamirTask(urls, ("t1", "t2", "t3"), 2, keys)
    path = tmp_path / "task.json"
    write_task(path, task)
    assert load_task(path) == task
    data = json.loads(path.read_text())
    for server in data["servers"]:
        del server["share_key"]
    old = tmp_path / "old.json"
    old.write_text(json.dumps(data))
    with pytest.raises(InvalidInputError, match="re-run smpcloud shamir create"):
        load_task(old)
    data["servers"][0]["share_key"] = "AAAA"
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(data))
    with pytest.raises(InvalidInputError):
        load_task(broken)

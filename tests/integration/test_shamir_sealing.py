"""Finding 3 of issue 14: Shamir shares are sealed to each server, so a proxy sees ciphertexts only.

A real TCP forwarder (asyncio, in a thread) sits in front of a real Shamir server process and
records every byte the client sends through it — what a shared proxy, a TLS terminator in front
of the servers, or one host posing as several servers sees. Before the fix the share the server
stored travelled in the clear; now the capture holds only the sealed share, which opens with the
server's key (read from its database, as only the server can) to exactly the stored share.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import replace

import httpx
import numpy as np
import pytest
from service_harness import ServerProcess, assert_problem
from test_service_shamir import new_task, start_servers, stop_servers

from smpcloud.client import ShamirClient
from smpcloud.client.shamir import ShareKeyMismatchError
from smpcloud.crypto.sealing import OpeningKey
from smpcloud.ports import free_port
from smpcloud.protocol.sharing import (
    SHAMIR_FIELD,
    encode_share,
    open_share,
    residues_from_blob,
)

N, T = 3, 2


class RecordingProxy:
    """A TCP forwarder on 127.0.0.1 to ``upstream``'s port that keeps what clients send."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.sent = bytearray()
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, record: bool
    ) -> None:
        try:
            while data := await reader.read(65536):
                if record:
                    self.sent.extend(data)
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        await asyncio.gather(
            self._pipe(reader, up_writer, True), self._pipe(up_reader, writer, False)
        )

    def start(self) -> None:
        self._thread.start()
        for _attempt in range(5):  # the port may be taken between free_port and bind: retry
            self.port = free_port()
            future = asyncio.run_coroutine_threadsafe(
                asyncio.start_server(self._handle, "127.0.0.1", self.port), self._loop
            )
            try:
                self._server = future.result(timeout=10)
                return
            except OSError:
                continue
        raise RuntimeError("no port for the proxy")

    def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def trio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[ServerProcess]]:
    servers = start_servers(tmp_path_factory.mktemp("sealing"), N)
    try:
        yield servers
    finally:
        stop_servers(servers)


@pytest.fixture
def proxy(trio: list[ServerProcess]) -> Iterator[RecordingProxy]:
    forwarder = RecordingProxy(trio[0].port)
    forwarder.start()
    try:
        yield forwarder
    finally:
        forwarder.stop()


def stored_share_text(server: ServerProcess, task_id: str, length: int) -> str:
    """The share the server stored for the task's only report, in its wire form."""
    [(blob,)] = server.db_query("SELECT ciphertexts FROM reports WHERE task_id = ?", task_id)
    assert isinstance(blob, bytes)
    return encode_share(residues_from_blob(blob, length=length, field=SHAMIR_FIELD))


def server_opening_key(server: ServerProcess) -> OpeningKey:
    """The server's share key, read from its database (what only the server holds)."""
    [(secret,)] = server.db_query("SELECT secret FROM server_keys WHERE name = 'shares'")
    assert isinstance(secret, bytes)
    return OpeningKey.from_bytes(secret)


def reports_of(server: ServerProcess, task_id: str) -> int:
    [(count,)] = server.db_query("SELECT COUNT(*) FROM reports WHERE task_id = ?", task_id)
    assert isinstance(count, int)
    return count


def test_a_proxy_in_front_of_a_server_sees_no_share(
    trio: list[ServerProcess], proxy: RecordingProxy
) -> None:
    aggregation, [cred] = new_task(trio, 1, length=4)
    with aggregation:
        through_proxy = replace(
            cred,
            endpoints=(
                replace(cred.endpoints[0], base_url=proxy.base_url),
                *cred.endpoints[1:],
            ),
        )
        with ShamirClient(through_proxy, timeout=30.0) as client:
            outcome = client.submit([1, 2, 3, 4])
        assert outcome.reached == (1, 2, 3)
        task_id = cred.endpoints[0].task_id
        share = stored_share_text(trio[0], task_id, 4)
        capture = bytes(proxy.sent)
        assert task_id.encode() in capture  # the proxy did carry the upload
        assert share.encode() not in capture, "the proxy read server 1's share in the clear"
        body = json.loads(capture[capture.rindex(b"\r\n\r\n") + 4 :])
        assert set(body) == {"sealed_share"}
        # The sealed share the proxy saw opens, with the server's key only, to the stored share.
        opened = open_share(
            server_opening_key(trio[0]),
            body["sealed_share"],
            task_id=task_id,
            server_index=1,
            client=cred.client_id,
            length=4,
        )
        assert encode_share(opened) == share
        [(blob,)] = trio[0].db_query("SELECT ciphertexts FROM reports WHERE task_id = ?", task_id)
        assert isinstance(blob, bytes)
        assert np.array_equal(opened, residues_from_blob(blob, length=4, field=SHAMIR_FIELD))


def test_a_plain_share_upload_is_refused_and_nothing_is_stored(trio: list[ServerProcess]) -> None:
    aggregation, [cred] = new_task(trio, 1)
    endpoint = cred.endpoints[0]
    with aggregation, ShamirClient(cred, timeout=30.0) as client:
        prepared = client.prepare(5)
        plain = {"share": encode_share(SHAMIR_FIELD.random(1))}
        response = httpx.post(
            f"{endpoint.base_url}/v1/tasks/{endpoint.task_id}/reports",
            headers={"Authorization": f"Bearer {endpoint.token}"},
            json=plain,
        )
        assert_problem(response, 422, "share-not-sealed", "must be sealed", "share_key")
        assert reports_of(trio[0], endpoint.task_id) == 0
        assert client.upload(prepared).complete  # the sealed shares are still welcome


def test_a_sealed_share_replayed_elsewhere_does_not_open(trio: list[ServerProcess]) -> None:
    """Client 1's sealed share for server 1, replayed as client 2's report, into another task
    (as that task's client 1, on the same server) or to another server, is refused (422)."""
    aggregation, creds = new_task(trio, 2)
    other, [other_cred] = new_task(trio, 1)
    with aggregation, other, ShamirClient(creds[0], timeout=30.0) as client:
        prepared = client.prepare(7)
        body = prepared.request_body(1)
        attempts = [
            (creds[1].endpoints[0], "as client 2"),
            (other_cred.endpoints[0], "into another task"),
            (creds[0].endpoints[1], "to server 2"),
        ]
        for endpoint, what in attempts:
            response = httpx.post(
                f"{endpoint.base_url}/v1/tasks/{endpoint.task_id}/reports",
                headers={"Authorization": f"Bearer {endpoint.token}"},
                json=body,
            )
            problem = assert_problem(response, 422, "sealed-share-not-opened", "does not open")
            assert problem["title"] == "Sealed share does not open", what
        assert reports_of(trio[0], creds[0].endpoints[0].task_id) == 0
        assert reports_of(trio[0], other_cred.endpoints[0].task_id) == 0
        assert client.upload(prepared).complete


def test_a_server_that_serves_another_key_gets_nothing(trio: list[ServerProcess]) -> None:
    """The cheating server: server 3's key is replaced in its database (a substituted server)
    after the task was created; the client refuses before sending any share to anyone."""
    aggregation, [cred] = new_task(trio, 1)
    server = trio[2]
    server.stop()
    with sqlite3.connect(server.db_path) as conn:
        conn.execute("UPDATE server_keys SET secret = ? WHERE name = 'shares'", (os.urandom(32),))
    server.start(port=server.port)
    with aggregation, ShamirClient(cred, timeout=30.0) as client:
        with pytest.raises(ShareKeyMismatchError, match=r"server 3 \(http://127\.0\.0\.1:"):
            client.submit(1)
        for j, s in enumerate(trio):
            assert reports_of(s, cred.endpoints[j].task_id) == 0
        with pytest.raises(ShareKeyMismatchError, match="server 3"):
            aggregation.register(1)  # the administrator notices too

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
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from test_service_shamir import new_task, start_servers, stop_servers

from smpcloud.client import ShamirClient
from smpcloud.ports import free_port
from smpcloud.protocol.sharing import SHAMIR_FIELD, encode_share, residues_from_blob
from service_harness import ServerProcess

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


def test_a_proxy_in_front_of_a_server_sees_no_share(
    trio: list[ServerProcess], proxy: RecordingProxy, tmp_path: Path
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

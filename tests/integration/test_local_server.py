"""smpcloud.service.local.local_server: a server subprocess, and a port taken under its feet."""

from __future__ import annotations

import secrets
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from smpcloud.errors import TransportError
from smpcloud.ports import free_port
from smpcloud.service import local


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port some other process holds (listening) for the whole test."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_a_taken_port_is_retried_on_a_new_one(
    tmp_path: Path, taken_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    ports = iter([taken_port, free_port()])
    monkeypatch.setattr(local, "free_port", lambda: next(ports))
    with local.local_server(tmp_path / "s.db", secrets.token_urlsafe(16)) as url:
        assert not url.endswith(f":{taken_port}")
        assert httpx.get(f"{url}/openapi.json", timeout=5).status_code == 200
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/openapi.json", timeout=1)  # stopped when the block ends


def test_a_port_taken_every_time_fails_with_a_clear_error(
    tmp_path: Path, taken_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local, "free_port", lambda: taken_port)
    monkeypatch.setattr(local, "PORT_ATTEMPTS", 2)
    with (
        pytest.raises(TransportError, match="port taken 2 times"),
        local.local_server(tmp_path / "s.db", secrets.token_urlsafe(16)),
    ):
        pytest.fail("the server cannot have started")

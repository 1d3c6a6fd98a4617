"""smpcloud.ports: the ports it returns can be bound on 127.0.0.1."""

from __future__ import annotations

import socket

import pytest

from smpcloud.errors import InvalidInputError
from smpcloud.ports import free_port, free_port_range


def test_free_port_can_be_bound() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
        assert sock.getsockname()[1] == port


def test_free_port_range_gives_consecutive_bindable_ports() -> None:
    base = free_port_range(4)
    sockets = [socket.socket() for _ in range(4)]
    try:
        for offset, sock in enumerate(sockets):
            sock.bind(("127.0.0.1", base + offset))
    finally:
        for sock in sockets:
            sock.close()


@pytest.mark.parametrize("count", [0, -3, 1001, 2.5])
def test_free_port_range_refuses_a_bad_count(count: object) -> None:
    with pytest.raises(InvalidInputError, match="count"):
        free_port_range(count)  # type: ignore[arg-type]

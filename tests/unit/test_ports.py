"""smpcloud.ports: the ports it returns can be bound on 127.0.0.1."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from smpcloud.errors import InvalidInputError
from smpcloud.ports import ephemeral_range, free_port, free_port_range


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


def test_ports_avoid_the_kernels_ephemeral_range() -> None:
    # Outgoing connections take their local port from that range: a port handed out from it
    # could be taken before the server it is meant for binds it.
    first, last = ephemeral_range()
    for _ in range(50):
        port = free_port()
        assert not first <= port <= last
        base = free_port_range(8)
        assert base + 7 < first or base > last


def test_the_ephemeral_range_is_read_from_the_kernel() -> None:
    first, last = ephemeral_range()
    proc = Path("/proc/sys/net/ipv4/ip_local_port_range")
    if proc.exists():
        assert (first, last) == tuple(int(v) for v in proc.read_text().split())
    assert 0 < first <= last <= 65535

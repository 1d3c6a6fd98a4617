"""Free TCP ports on 127.0.0.1, for local deployments, examples, benchmarks and tests.

A port is handed out by number and bound later by another process (a party of the TLS mesh, a
uvicorn subprocess), so there is a window in which someone else may take it. The usual way of
finding a free port, binding port 0 and reading the number back, makes that window dangerous:
the kernel answers from its *ephemeral* range (32768-60999 on Linux), the very range it also
draws from for the local end of every outgoing connection. On a busy machine (a test suite that
opens thousands of connections) an outgoing connection then takes the port before the server
binds it: "address already in use".

So these functions pick ports *outside* the ephemeral range (read from
``/proc/sys/net/ipv4/ip_local_port_range`` where it exists), at random, and check that every
port of the range can be bound right now. Outgoing connections never take such a port, and two
callers are unlikely to draw the same one. What is left of the race (another program binding
the same number by hand) is why a caller that starts a server still retries or fails with a
clear message.
"""

from __future__ import annotations

import secrets
import socket
from pathlib import Path
from typing import Final

from smpcloud.errors import InvalidInputError, TransportError

_EPHEMERAL_RANGE_FILE: Final = Path("/proc/sys/net/ipv4/ip_local_port_range")
_DEFAULT_EPHEMERAL: Final = (32768, 60999)  # Linux's default; IANA's is 49152-65535
_LOWEST: Final = 10000  # below: well-known and registered services are likelier
_HIGHEST: Final = 65000  # the highest base port a deployment (smpcloud certs) accepts
_MOST_PORTS: Final = 1000


def ephemeral_range() -> tuple[int, int]:
    """Return the kernel's range of ephemeral ports (first, last), or Linux's default."""
    try:
        first, last = (int(v) for v in _EPHEMERAL_RANGE_FILE.read_text().split())
    except (OSError, ValueError):
        return _DEFAULT_EPHEMERAL
    return (first, last) if 0 < first <= last <= 65535 else _DEFAULT_EPHEMERAL


def _bases(count: int) -> list[int]:
    """Every base port whose range of ``count`` ports avoids the ephemeral range."""
    first, last = ephemeral_range()
    below = range(_LOWEST, first - count + 1)
    above = range(last + 1, _HIGHEST - count + 2)
    return [*below, *above]


def _bindable(base: int, count: int) -> bool:
    held: list[socket.socket] = []
    try:
        for port in range(base, base + count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            held.append(sock)
            sock.bind(("127.0.0.1", port))
    except OSError:
        return False
    finally:
        for sock in held:
            sock.close()
    return True


def free_port_range(count: int, *, attempts: int = 100) -> int:
    """Return a base port such that base .. base + count - 1 are all free on 127.0.0.1 now.

    The ports lie outside the kernel's ephemeral range (see the module docstring).

    Args:
        count: how many consecutive ports, 1 to 1000.
        attempts: how many random bases to try.

    Raises:
        InvalidInputError: count not in 1 .. 1000.
        TransportError: no such range was found in ``attempts`` tries.
    """
    if type(count) is not int or not 1 <= count <= _MOST_PORTS:
        raise InvalidInputError(f"count must be an int in 1..{_MOST_PORTS}")
    bases = _bases(count)
    for _ in range(attempts if bases else 0):
        base = bases[secrets.randbelow(len(bases))]
        if _bindable(base, count):
            return base
    raise TransportError(f"no {count} consecutive free ports found on 127.0.0.1")


def free_port() -> int:
    """Return a TCP port on 127.0.0.1, outside the ephemeral range, that is free right now.

    Raises:
        TransportError: none was found.
    """
    return free_port_range(1)


__all__ = ["ephemeral_range", "free_port", "free_port_range"]

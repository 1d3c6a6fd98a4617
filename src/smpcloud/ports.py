"""Free TCP ports on 127.0.0.1, for local deployments, examples, benchmarks and tests.

Best effort: a port found free may be taken by another process before it is bound again.
Callers that start servers on it retry or fail with a clear message.
"""

from __future__ import annotations

import socket

from smpcloud.errors import InvalidInputError, TransportError

_HIGHEST_BASE = 65000
_MOST_PORTS = 1000


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_port_range(count: int, *, attempts: int = 100) -> int:
    """Return a base port such that base .. base + count - 1 are all free on 127.0.0.1 now.

    Raises:
        InvalidInputError: count not in 1 .. 1000.
        TransportError: no such range was found in ``attempts`` tries.
    """
    if type(count) is not int or not 1 <= count <= _MOST_PORTS:
        raise InvalidInputError(f"count must be an int in 1..{_MOST_PORTS}")
    for _ in range(attempts):
        base = free_port()
        if base + count > _HIGHEST_BASE:
            continue
        held: list[socket.socket] = []
        try:
            for port in range(base, base + count):
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                held.append(sock)
                sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for sock in held:
                sock.close()
        return base
    raise TransportError(f"no {count} consecutive free ports found on 127.0.0.1")

"""The aggregation server as a local subprocess on 127.0.0.1, for demos, evaluations and tests.

:func:`local_server` brings its SQLite file to the schema's head revision
(:func:`smpcloud.service.migrations.upgrade`, what ``smpcloud db upgrade`` does), runs
``python -m smpcloud.service`` (uvicorn) on it on a free port, and yields its base URL once it
answers. A port found free may be taken by another
process before the child binds it: when the child exits because the address is in use, it is
started again on a new port, up to :data:`PORT_ATTEMPTS` times.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Final

import httpx

from smpcloud.errors import TransportError
from smpcloud.ports import free_port
from smpcloud.service.migrations import upgrade

#: Start-up attempts on a fresh port when the previous one turned out to be taken.
PORT_ATTEMPTS: Final = 5
_ADDRESS_IN_USE: Final = ("address already in use", "errno 98", "[errno 48]", "10048")
_STDERR_TAIL: Final = 500


def _address_in_use(stderr: str) -> bool:
    text = stderr.lower()
    return any(marker in text for marker in _ADDRESS_IN_USE)


def _command(db_url: str, port: int, allow_insecure_keys: bool) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "smpcloud.service",
        "--db",
        db_url,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    if allow_insecure_keys:
        cmd.append("--allow-insecure-keys")
    return cmd


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _wait_ready(
    proc: subprocess.Popen[bytes], url: str, timeout: float, log: IO[bytes]
) -> str | None:
    """Poll until the server answers; return None, or its stderr (``log``) if it exited.

    Raises:
        TransportError: it neither answered nor exited within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            log.seek(0)
            return log.read().decode(errors="replace")
        try:
            if httpx.get(f"{url}/openapi.json", timeout=1.0).status_code == 200:
                return None
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise TransportError(f"the server did not answer on {url} within {timeout} s")
        time.sleep(0.05)


@contextmanager
def local_server(
    db_path: Path,
    admin_token: str,
    *,
    timeout: float = 30.0,
    allow_insecure_keys: bool = False,
    db_url: str | None = None,
) -> Iterator[str]:
    """Run the aggregation server as a subprocess on 127.0.0.1; yield its base URL.

    The database is migrated first (the server refuses an unmigrated one); the server is
    stopped (terminated, then killed after 10 s) when the block ends.

    Args:
        db_path: the SQLite file of the server (created if missing).
        admin_token: the administrator's token (passed in the environment, never in argv).
        timeout: seconds to wait for the server to answer, per attempt.
        allow_insecure_keys: start it with ``--allow-insecure-keys`` (keys below 2048 bits;
            fast tests only).
        db_url: a database URL to use instead of ``db_path`` (e.g. PostgreSQL's).

    Raises:
        InvalidInputError: ``db_path`` cannot be created (e.g. a missing directory).
        TransportError: the server exited during start-up (for a reason other than a taken
            port, or on a taken port :data:`PORT_ATTEMPTS` times), or did not answer in time.
    """
    upgrade(db_url or f"sqlite:///{db_path}")  # what smpcloud db upgrade does
    env = {**os.environ, "SMPCLOUD_ADMIN_TOKEN": admin_token}
    stderr = ""
    for _attempt in range(PORT_ATTEMPTS):
        port = free_port()
        # stderr goes to an anonymous temporary file, not a pipe: nobody reads the server's
        # log while it runs, and a full pipe would block the server.
        log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in the finally below
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            _command(db_url or f"sqlite:///{db_path}", port, allow_insecure_keys),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            exited = _wait_ready(proc, url, timeout, log)
        except BaseException:
            _stop(proc)
            log.close()
            raise
        if exited is None:
            break
        stderr = exited
        _stop(proc)
        log.close()
        if not _address_in_use(stderr):
            raise TransportError(f"the server exited during start-up: {stderr[-_STDERR_TAIL:]}")
    else:
        raise TransportError(
            f"the server found its port taken {PORT_ATTEMPTS} times in a row: "
            f"{stderr[-_STDERR_TAIL:]}"
        )
    try:
        yield url
    finally:
        _stop(proc)
        log.close()


__all__ = ["PORT_ATTEMPTS", "local_server"]

"""The service's own keys: created once, shared by every process on the database."""

from __future__ import annotations

import multiprocessing
import secrets
from pathlib import Path

import pytest

from smpcloud.errors import InvalidInputError
from smpcloud.service.db import make_engine
from smpcloud.service.migrations import upgrade
from smpcloud.service.server_keys import server_secret


def _read(url: str, queue: multiprocessing.Queue[bytes]) -> None:
    engine = make_engine(url)
    queue.put(server_secret(engine, "receipts", lambda: secrets.token_bytes(32)))


def test_created_once_and_read_back_by_another_process(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'k.db'}"
    engine = make_engine(url)
    upgrade(engine)
    first = server_secret(engine, "receipts", lambda: secrets.token_bytes(32))
    assert server_secret(engine, "receipts", lambda: b"other") == first
    assert server_secret(engine, "shares", lambda: b"s" * 32) == b"s" * 32
    context = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue[bytes] = context.Queue()
    child = context.Process(target=_read, args=(url, queue))
    child.start()
    child.join(60)
    assert queue.get(timeout=5) == first
    with pytest.raises(InvalidInputError):
        server_secret(engine, "nope", lambda: b"")

"""Fixtures for the service's integration tests (helpers live in service_harness.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from service_harness import Key, ServerProcess, start_server

from smpcloud.crypto import threshold


@pytest.fixture(scope="module")
def key() -> Key:
    """A small (insecure, fast) 3-of-5 threshold key, dealt once per module."""
    return threshold.deal(1024, n=5, t=3, insecure=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, key: Key) -> Iterator[ServerProcess]:
    """One server per test module (tests create their own tasks)."""
    proc = start_server(tmp_path_factory.mktemp("server"))
    try:
        yield proc
    finally:
        proc.stop()
    proc.check_log_has_no_secrets(key)


@pytest.fixture
def fresh_server(tmp_path: Path, key: Key) -> Iterator[ServerProcess]:
    """A server of its own for one test (restarts, kills)."""
    proc = start_server(tmp_path)
    try:
        yield proc
    finally:
        proc.stop()
    proc.check_log_has_no_secrets(key)

"""Fixtures for the service's integration tests (helpers live in service_harness.py).

A module marked ``pytestmark = pytest.mark.backends("sqlite", "postgres")`` runs every test
whose server comes from the ``server`` or ``fresh_server`` fixture once per backend (ids
``[sqlite]`` and ``[postgres]``); the PostgreSQL runs are skipped, with the reason, unless
``SMPCLOUD_TEST_POSTGRES_URL`` names a server (``.ci/run`` starts one). Unmarked modules run on
SQLite only.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from service_harness import (
    BACKENDS,
    POSTGRES_URL_ENV,
    Key,
    ServerProcess,
    postgres_url,
    server_database,
    start_server,
)

from smpcloud.crypto import threshold


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "backends(*names): run the module's servers on each of these database backends "
        f"({', '.join(BACKENDS)}; postgres needs {POSTGRES_URL_ENV})",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marker = metafunc.definition.get_closest_marker("backends")
    if marker is None or "backend" not in metafunc.fixturenames:
        return
    names = list(marker.args)
    unknown = set(names) - set(BACKENDS)
    if unknown:
        raise pytest.UsageError(f"unknown backend(s) {sorted(unknown)}; known: {BACKENDS}")
    metafunc.parametrize("backend", names, indirect=True, scope="module", ids=names)


@pytest.fixture(scope="module")
def backend(request: pytest.FixtureRequest) -> str:
    """The database backend of this module's servers ("sqlite" unless parametrized)."""
    name: str = getattr(request, "param", "sqlite")
    if name == "postgres" and postgres_url() is None:
        pytest.skip(f"PostgreSQL: {POSTGRES_URL_ENV} is not set (.ci/run starts a server)")
    return name


@pytest.fixture(scope="module")
def key() -> Key:
    """A small (insecure, fast) 3-of-5 threshold key, dealt once per module."""
    return threshold.deal(1024, n=5, t=3, insecure=True)


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, key: Key, backend: str
) -> Iterator[ServerProcess]:
    """One server per test module and backend (tests create their own tasks)."""
    with server_database(backend) as url:
        proc = start_server(tmp_path_factory.mktemp("server"), database_url=url)
        try:
            yield proc
        finally:
            proc.stop()
    proc.check_log_has_no_secrets(key)


@pytest.fixture
def fresh_server(tmp_path: Path, key: Key, backend: str) -> Iterator[ServerProcess]:
    """A server of its own for one test (restarts, kills)."""
    with server_database(backend) as url:
        proc = start_server(tmp_path, database_url=url)
        try:
            yield proc
        finally:
            proc.stop()
    proc.check_log_has_no_secrets(key)

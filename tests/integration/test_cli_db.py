"""``smpcloud db upgrade|current`` as subprocesses, and the server refusing an unmigrated database.

On SQLite always; on PostgreSQL too when ``SMPCLOUD_TEST_POSTGRES_URL`` names a server.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from service_harness import BACKENDS, ServerProcess, postgres_database, postgres_url

SMPCLOUD = [sys.executable, "-m", "smpcloud"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SMPCLOUD_ADMIN_TOKEN": secrets.token_urlsafe(32)}
    return subprocess.run(
        list(args), capture_output=True, text=True, env=env, timeout=120, check=False
    )


def one_line_error(out: subprocess.CompletedProcess[str]) -> str:
    """The command failed with status 1 and one line on stderr, no traceback."""
    assert out.returncode == 1, (out.returncode, out.stdout, out.stderr)
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    return lines[0]


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'tasks.db'}"
        return
    if postgres_url() is None:
        pytest.skip("PostgreSQL: SMPCLOUD_TEST_POSTGRES_URL is not set (.ci/run starts a server)")
    with postgres_database() as url:
        yield url


def test_upgrade_then_current_then_upgrade_again(db_url: str) -> None:
    first = run(*SMPCLOUD, "db", "upgrade", "--db", db_url)
    assert first.returncode == 0, first.stderr
    assert "upgraded from an empty or unversioned database to revision 0001" in first.stdout
    current = run(*SMPCLOUD, "db", "current", "--db", db_url)
    assert current.returncode == 0, current.stderr
    assert "revision 0001 (this version of smpcloud needs 0001)" in current.stdout
    again = run(*SMPCLOUD, "db", "upgrade", "--db", db_url)
    assert again.returncode == 0, again.stderr
    assert "already at revision 0001" in again.stdout


def test_the_server_refuses_an_unmigrated_database_and_names_the_command(
    db_url: str, tmp_path: Path
) -> None:
    for serve in ([*SMPCLOUD, "serve"], [sys.executable, "-m", "smpcloud.service"]):
        out = run(*serve, "--db", db_url, "--port", "1")
        line = one_line_error(out)
        assert f"run smpcloud db upgrade --db {db_url}" in line, line
    current = run(*SMPCLOUD, "db", "current", "--db", db_url)
    assert "revision none" in current.stdout
    assert f"smpcloud db upgrade --db {db_url}" in one_line_error(current)


def test_a_server_on_a_migrated_database_starts(db_url: str, tmp_path: Path) -> None:
    assert run(*SMPCLOUD, "db", "upgrade", "--db", db_url).returncode == 0
    sqlite = db_url.startswith("sqlite")
    server = ServerProcess(
        Path(db_url.removeprefix("sqlite:///")) if sqlite else tmp_path / "unused.db",
        tmp_path / "server.log",
        database_url=None if sqlite else db_url,
        migrate=False,
    )
    server.start()
    try:
        assert server.alive()
    finally:
        server.stop()


def test_current_on_a_missing_sqlite_file_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "missing.db"
    line = one_line_error(run(*SMPCLOUD, "db", "current", "--db", f"sqlite:///{path}"))
    assert "does not exist yet" in line and f"smpcloud db upgrade --db sqlite:///{path}" in line
    assert not path.exists()


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("just-a-file.db", "is not a database URL"),
        ("foo://x", "unknown kind of database"),
        ("sqlite:////nonexistent/dir/x.db", "does not exist"),
        ("postgresql+psycopg://u@127.0.0.1:1/db", "cannot connect"),
    ],
    ids=["not-a-url", "unknown-kind", "missing-directory", "refused-connection"],
)
def test_a_bad_url_is_one_line(url: str, fragment: str) -> None:
    for command in ("upgrade", "current"):
        assert fragment in one_line_error(run(*SMPCLOUD, "db", command, "--db", url))


def test_help_says_when_to_run_it() -> None:
    out = run(*SMPCLOUD, "db", "--help")
    assert out.returncode == 0
    text = " ".join(out.stdout.split())
    assert "before the first `smpcloud serve`" in text and "after every upgrade" in text
    upgrade_help = run(*SMPCLOUD, "db", "upgrade", "--help").stdout
    assert "smpcloud db upgrade --db sqlite:///tasks.db" in upgrade_help

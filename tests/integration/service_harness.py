"""Helpers for the service's integration tests: a real uvicorn subprocess on 127.0.0.1.

A server runs on a SQLite file of its own, or on a fresh PostgreSQL database of its own
(:func:`postgres_database`, on the server ``SMPCLOUD_TEST_POSTGRES_URL`` names; ``.ci/run``
starts one and sets it). Its database is migrated (``smpcloud db upgrade``'s function) before
it starts, as an operator would; tests read and write it directly with
:meth:`ServerProcess.db_query` and :meth:`ServerProcess.db_execute` on either backend.

Every server writes its log (level info: access log included) to a file; the fixtures in
conftest.py check, when a server is torn down, that no secret the tests handed out (admin
token, client and key-holder tokens, key shares) appears in it.
"""

from __future__ import annotations

import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from smpcloud.client import Admin, Client, ClientCredentials, KeyHolder, TaskCreated
from smpcloud.crypto import threshold
from smpcloud.crypto.signatures import Roster
from smpcloud.crypto.wire import encode_int
from smpcloud.ports import free_port
from smpcloud.service.db import make_engine
from smpcloud.service.migrations import upgrade

Key = tuple[threshold.ThresholdPublicKey, list[threshold.KeyShare]]

MAX_BODY_BYTES = 256 * 1024
DEADLINE_POLL_SECONDS = 0.2

#: The environment variable naming a PostgreSQL server for the tests (a SQLAlchemy URL of a
#: database there the tests may create databases from, e.g.
#: ``postgresql+psycopg://postgres@127.0.0.1:55400/postgres``).
POSTGRES_URL_ENV = "SMPCLOUD_TEST_POSTGRES_URL"
#: The database backends a test module's servers can run on (conftest's ``backend`` fixture).
BACKENDS = ("sqlite", "postgres")


def postgres_url() -> str | None:
    """The PostgreSQL server of the tests, or None (its tests are skipped)."""
    return os.environ.get(POSTGRES_URL_ENV) or None


def _libpq(url: str) -> str:
    """A SQLAlchemy URL as a libpq connection string (for psycopg itself)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextmanager
def postgres_database(server_url: str | None = None) -> Iterator[str]:
    """A fresh, empty PostgreSQL database ``test_<random>``, dropped when the block ends.

    Args:
        server_url: a database on the server (default: :data:`POSTGRES_URL_ENV`).

    Yields:
        Its SQLAlchemy URL (``postgresql+psycopg://...``).
    """
    import psycopg

    base = server_url or postgres_url()
    if base is None:
        pytest.skip(f"PostgreSQL tests need {POSTGRES_URL_ENV} (e.g. postgresql+psycopg://...)")
    name = f"test_{secrets.token_hex(8)}"
    with psycopg.connect(_libpq(base), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield (
            make_url(base)
            .set(drivername="postgresql+psycopg", database=name)
            .render_as_string(hide_password=False)
        )
    finally:
        with psycopg.connect(_libpq(base), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@dataclass
class ServerProcess:
    """A ``python -m smpcloud.service`` subprocess with its own database and log.

    The database is the SQLite file ``db_path``, or the one ``database_url`` names (a fresh
    PostgreSQL database from :func:`postgres_database`). ``migrate``: run ``smpcloud db
    upgrade``'s function on it before starting (False: the server must refuse it).
    """

    db_path: Path
    log_path: Path
    admin_token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    extra_args: tuple[str, ...] = ()
    insecure_keys: bool = True
    database_url: str | None = None
    migrate: bool = True
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    secrets_handed_out: list[str] = field(default_factory=list)
    _engine: Engine | None = field(default=None, repr=False)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.db_path}"

    @property
    def backend(self) -> str:
        """The database backend: "sqlite" or "postgres"."""
        return "sqlite" if self.database_url is None else "postgres"

    def start(self, *, port: int | None = None, timeout: float = 30.0) -> None:
        if self.migrate:
            upgrade(self.db_url)
        for _attempt in range(3):
            self.port = port or free_port()
            cmd = [
                sys.executable,
                "-m",
                "smpcloud.service",
                "--db",
                self.db_url,
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                *(["--allow-insecure-keys"] if self.insecure_keys else []),
                "--max-body-bytes",
                str(MAX_BODY_BYTES),
                "--deadline-poll-seconds",
                str(DEADLINE_POLL_SECONDS),
                "--log-level",
                "info",
                *self.extra_args,
            ]
            env = {**os.environ, "SMPCLOUD_ADMIN_TOKEN": self.admin_token}
            log = self.log_path.open("ab")
            self.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
            log.close()
            if self._wait_ready(timeout):
                return
            port = None  # the port was taken meanwhile: try another one
        raise RuntimeError(f"server did not start; log:\n{self.log_text()[-3000:]}")

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                return False
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=1.0).status_code == 200:
                    return True
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"server not ready in {timeout} s; log:\n{self.log_text()[-3000:]}")

    def kill(self) -> None:
        """kill -9: no shutdown handlers, no flushing, nothing."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def alive(self) -> bool:
        """The process runs and answers."""
        if self.proc is None or self.proc.poll() is not None:
            return False
        return httpx.get(f"{self.base_url}/healthz", timeout=5.0).status_code == 200

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def db_query(self, sql: str, *args: object) -> list[tuple[object, ...]]:
        """Read the server's database directly (``?`` placeholders on either backend;
        SQLite: read-only). Timestamps come back as SQLite's text or PostgreSQL's datetimes."""
        if self.database_url is None:
            with sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True) as conn:
                return conn.execute(sql, args).fetchall()
        with self._postgres().connect() as conn:
            rows = conn.exec_driver_sql(sql.replace("?", "%s"), tuple(args)).fetchall()
        return [tuple(row) for row in rows]

    def db_execute(self, sql: str, *args: object) -> None:
        """Write the server's database directly, as a server that controls it would."""
        if self.database_url is None:
            conn = sqlite3.connect(self.db_path, timeout=30)
            try:
                conn.execute(sql, args)
                conn.commit()
            finally:
                conn.close()
            return
        with self._postgres().begin() as pg:
            pg.exec_driver_sql(sql.replace("?", "%s"), tuple(args))

    def _postgres(self) -> Engine:
        if self._engine is None:
            self._engine = create_engine(self.db_url, poolclass=NullPool)
        return self._engine

    # ------------------------------------------------------------ SDK helpers

    def admin(self) -> Admin:
        return Admin(self.base_url, self.admin_token, timeout=30.0)

    def client(self, task_id: str, token: str, *, holders: Roster | None = None) -> Client:
        """A client pinning ``holders``; without it, one that skips certification (tests
        that are not about certification and have no signing keys)."""
        return Client(
            self.base_url,
            task_id,
            token,
            holders=holders,
            insecure_skip_certification=holders is None,
            allow_insecure_keys=True,
            timeout=30.0,
        )

    def holder(self, task: TaskCreated, share: threshold.KeyShare) -> KeyHolder:
        return KeyHolder(
            self.base_url, task.task_id, task.holder_tokens[share.index - 1], share, timeout=30.0
        )

    def new_task(
        self, key: Key, clients: int, **kwargs: object
    ) -> tuple[TaskCreated, list[ClientCredentials]]:
        """Create a task under ``key`` and register ``clients`` clients; remember the secrets."""
        public, _shares = key
        kwargs.setdefault("name", "test task")
        kwargs.setdefault("min_clients", 2)
        # Tests of other features trust their clients; the validity checks have their own
        # suites (test_forged_reports.py, test_shamir_forged.py) that pass validity="range".
        kwargs.setdefault("validity", "none")
        with self.admin() as admin:
            task = admin.create_task(public, **kwargs)  # type: ignore[arg-type]
            creds = admin.register_clients(task.task_id, clients) if clients else []
        self.secrets_handed_out.extend(task.holder_tokens)
        self.secrets_handed_out.extend(c.token for c in creds)
        return task, creds

    def check_log_has_no_secrets(self, key: Key | None = None) -> None:
        text = self.log_text()
        leaked = [s for s in [self.admin_token, *self.secrets_handed_out] if s in text]
        if key is not None:
            for share in key[1]:
                leaked += [s for s in (encode_int(share.secret), str(share.secret)) if s in text]
        assert not leaked, f"{len(leaked)} secret(s) appear in the server log"


def prepare_database(db_url: str) -> None:
    """Bring a database to the service's schema revision before any server starts on it
    (``smpcloud db upgrade``: servers refuse an unmigrated database)."""
    upgrade(db_url)


def db_rows(db_url: str, sql: str, **params: object) -> list[tuple[object, ...]]:
    """Rows of ``sql`` read from any of the service's databases (SQLite file or PostgreSQL)."""
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(sql), params)]
    finally:
        engine.dispose()


def start_servers(tmp: Path, db_url: str, count: int = 2, *extra_args: str) -> list[ServerProcess]:
    """``count`` server processes on one database, each on a port of its own, one admin token.

    The schema is prepared first (:func:`prepare_database`); the servers start one after the
    other (each answers /healthz before the next starts).
    """
    prepare_database(db_url)
    token = secrets.token_urlsafe(32)
    servers: list[ServerProcess] = []
    try:
        for i in range(count):
            server = ServerProcess(
                tmp / "server.db",
                tmp / f"server{i}.log",
                admin_token=token,
                extra_args=extra_args,
                database_url=db_url,
            )
            server.start()
            servers.append(server)
    except BaseException:
        for server in servers:
            server.stop()
        raise
    return servers


def start_server(
    tmp: Path, *extra_args: str, insecure_keys: bool = True, database_url: str | None = None
) -> ServerProcess:
    """Start a server whose log is in ``tmp`` (and its database, unless ``database_url``)."""
    server = ServerProcess(
        tmp / "server.db",
        tmp / "server.log",
        extra_args=extra_args,
        insecure_keys=insecure_keys,
        database_url=database_url,
    )
    server.start()
    return server


@contextmanager
def server_database(backend: str) -> Iterator[str | None]:
    """The database of a test's server on ``backend``: None (a SQLite file in the server's
    directory) or the URL of a fresh PostgreSQL database, dropped afterwards."""
    if backend == "sqlite":
        yield None
        return
    with postgres_database() as url:
        yield url


def assert_problem(response: httpx.Response, status: int, slug: str, *fragments: str) -> dict:
    """Check a problem+json response: status, type, media type, detail fragments."""
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["type"] == f"urn:smpcloud:problem:{slug}", body
    assert body["status"] == status
    assert isinstance(body["title"], str) and body["title"]
    for fragment in fragments:
        assert fragment in body["detail"], (fragment, body["detail"])
    return body

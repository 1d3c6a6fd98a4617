"""Schema migrations: revision 0001 makes exactly the models' schema, adopts databases made
before migrations (today's layout, the one without ``tasks.validity``, the previous layout)
keeping their rows, and a database not at head is refused with the command to run.

SQLite always; PostgreSQL too when ``SMPCLOUD_TEST_POSTGRES_URL`` names a server (each test
gets a fresh database there, dropped afterwards).
"""

from __future__ import annotations

import os
import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, inspect, text
from sqlalchemy.engine import make_url
from test_scheme_paillier import Key, open_service, previous_database

from smpcloud.crypto import threshold
from smpcloud.service.db import Base, make_engine
from smpcloud.service.migrations import (
    VERSION_TABLE,
    DatabaseNotMigratedError,
    check_migrated,
    current_revision,
    head_revision,
    upgrade,
)

POSTGRES_URL_ENV = "SMPCLOUD_TEST_POSTGRES_URL"


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextmanager
def new_database(kind: str, path: Path) -> Iterator[str]:
    """An empty database: the SQLite file ``path``, or a fresh PostgreSQL database on the
    server of ``SMPCLOUD_TEST_POSTGRES_URL`` (dropped afterwards); yields its URL."""
    if kind == "sqlite":
        yield f"sqlite:///{path}"
        return
    base = os.environ.get(POSTGRES_URL_ENV)
    if not base:
        pytest.skip(f"PostgreSQL: {POSTGRES_URL_ENV} is not set (.ci/run starts a server)")
    import psycopg

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


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of each backend."""
    with new_database(request.param, tmp_path / "m.db") as found:
        yield found


@pytest.fixture
def engine(url: str) -> Iterator[Engine]:
    engine = make_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def key() -> Key:
    """A small (insecure, fast) 2-of-3 threshold key."""
    return threshold.deal(1024, n=3, t=2, insecure=True)


def schema(engine: Engine) -> dict[str, Any]:
    """Everything about the service's tables a migration must get right, backend-neutral."""
    found: dict[str, Any] = {}
    with engine.connect() as conn:
        inspector = inspect(conn)
        for table in sorted(set(inspector.get_table_names()) - {VERSION_TABLE}):
            columns = [
                (
                    c["name"],
                    str(c["type"].compile(dialect=engine.dialect)),
                    c["nullable"],
                    str(c.get("default")),
                )
                for c in inspector.get_columns(table)
            ]
            found[table] = {
                "columns": sorted(columns),
                "primary key": inspector.get_pk_constraint(table)["constrained_columns"],
                "foreign keys": sorted(
                    (tuple(fk["constrained_columns"]), fk["referred_table"])
                    for fk in inspector.get_foreign_keys(table)
                ),
                "unique": sorted(
                    tuple(u["column_names"]) for u in inspector.get_unique_constraints(table)
                ),
                "indexes": sorted(
                    (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                    for i in inspector.get_indexes(table)
                ),
            }
    return found


@pytest.fixture
def models_schema(url: str, tmp_path: Path) -> dict[str, Any]:
    """The schema ``create_all`` makes from today's models, on another database of the same
    backend."""
    kind = "sqlite" if url.startswith("sqlite") else "postgres"
    with new_database(kind, tmp_path / "models.db") as other_url:
        other = make_engine(other_url)
        try:
            Base.metadata.create_all(other)
            return schema(other)
        finally:
            other.dispose()


def test_a_new_database_gets_exactly_the_models_schema(
    engine: Engine, models_schema: dict[str, Any]
) -> None:
    with pytest.raises(DatabaseNotMigratedError, match="has no schema revision"):
        check_migrated(engine)
    assert upgrade(engine) == (None, head_revision())
    assert current_revision(engine) == head_revision() == "0001"
    check_migrated(engine)
    assert schema(engine) == models_schema
    assert upgrade(engine) == ("0001", "0001")  # idempotent


def test_the_refusal_names_the_command_to_run(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'new.db'}")
    try:
        with pytest.raises(DatabaseNotMigratedError) as caught:
            check_migrated(engine)
    finally:
        engine.dispose()
    assert f"run smpcloud db upgrade --db sqlite:///{tmp_path / 'new.db'}" in str(caught.value)


def test_a_database_made_before_migrations_is_adopted_with_its_rows(
    engine: Engine, models_schema: dict[str, Any]
) -> None:
    """Today's ``create_schema`` made every table: nothing is created, the rows stay."""
    Base.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO tasks (id, name, scheme, length, encoding_json, min_clients, "
                "max_clients, state, created_at, validity) VALUES ('t', 'old task', 'paillier', "
                "1, '{}', 2, 10, 'open', '2030-01-01 00:00:00', 'range')"
            )
        )
    assert upgrade(engine) == (None, "0001")
    assert schema(engine) == models_schema
    with engine.connect() as conn:
        assert conn.execute(text("SELECT name, validity FROM tasks")).all() == [
            ("old task", "range")
        ]


def test_a_database_without_the_validity_column_gets_it_with_its_default(
    engine: Engine, models_schema: dict[str, Any]
) -> None:
    """``create_schema`` from before validity proofs: old tasks read "none"."""
    Base.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE tasks DROP COLUMN validity"))
        conn.execute(
            text(
                "INSERT INTO tasks (id, name, scheme, length, encoding_json, min_clients, "
                "max_clients, state, created_at) VALUES ('t', 'old task', 'paillier', 1, '{}', "
                "2, 10, 'open', '2030-01-01 00:00:00')"
            )
        )
    assert upgrade(engine) == (None, "0001")
    assert schema(engine) == models_schema
    with engine.connect() as conn:
        assert conn.execute(text("SELECT validity FROM tasks")).scalar_one() == "none"


def test_a_database_missing_newer_tables_gets_them(
    engine: Engine, models_schema: dict[str, Any]
) -> None:
    """``create_schema`` from before receipts and certificates: those tables are created."""
    newer = ("server_keys", "report_logs", "aggregate_attestations", "task_rosters")
    Base.metadata.create_all(
        engine, tables=[t for name, t in Base.metadata.tables.items() if name not in newer]
    )
    upgrade(engine)
    assert schema(engine) == models_schema


def test_the_previous_layout_is_upgraded_then_adopted(
    tmp_path: Path, key: Key, models_schema: dict[str, Any], url: str
) -> None:
    if not url.startswith("sqlite"):
        pytest.skip("the previous layout's fixture is SQLite DDL")
    path = tmp_path / "previous.db"
    previous_database(path, key)
    service, engine = open_service(path)  # upgrade(engine) inside
    try:
        assert current_revision(engine) == "0001"
        assert schema(engine) == models_schema
        assert service.result("p").sum == [7, -2]
    finally:
        engine.dispose()


def test_a_newer_revision_is_refused_not_downgraded(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'newer.db'}"
    upgrade(url)
    with sqlite3.connect(tmp_path / "newer.db") as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0999'")
    engine = make_engine(url)
    try:
        for attempt in (check_migrated, upgrade):
            with pytest.raises(DatabaseNotMigratedError, match=r"0999.*newer smpcloud"):
                attempt(engine)
    finally:
        engine.dispose()


def test_upgrades_in_threads_of_one_process_do_not_mix(tmp_path: Path) -> None:
    """Alembic's ``context`` and ``op`` are module-level: servers started side by side (the
    evaluation's ``local_servers``, the Shamir trio) upgraded their databases at once and
    created one database's tables on another's connection."""
    from concurrent.futures import ThreadPoolExecutor

    urls = [f"sqlite:///{tmp_path / f'{i}.db'}" for i in range(6)]
    with ThreadPoolExecutor(len(urls)) as pool:
        outcomes = list(pool.map(upgrade, urls))
    assert outcomes == [(None, "0001")] * len(urls)
    for url in urls:
        engine = make_engine(url)
        try:
            check_migrated(engine)
            assert len(schema(engine)) == len(Base.metadata.tables)
        finally:
            engine.dispose()

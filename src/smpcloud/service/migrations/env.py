"""Alembic's environment for the service's schema migrations (run by Alembic, never imported).

Configured in code, not by an ini file: :mod:`smpcloud.service.migrations` hands Alembic a
connection in ``config.attributes["connection"]`` (``smpcloud db upgrade``, the servers started
for demos and tests). A developer running the ``alembic`` command itself (to write a new
revision; see the package docstring) passes the database with ``-x db=URL`` instead.

On PostgreSQL the migrations run under a transaction-scoped advisory lock, so two processes
upgrading the same database at once run one after the other (the second finds it at head).
On SQLite the transaction begins with ``BEGIN IMMEDIATE`` (the engine's write view), which
excludes other writers the same way. The migration's own statements are DDL and data copies:
nothing they log holds a token, a ciphertext or a share.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, text

from smpcloud.service.db import Base, is_sqlite, make_engine, write_engine

#: The key of PostgreSQL's advisory lock taken while migrating (any constant; "smpc").
ADVISORY_LOCK_KEY = 0x736D7063


def _run(connection: Connection) -> None:
    sqlite = is_sqlite(connection.engine.url)
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # SQLite alters tables by copying them: later revisions' ALTERs need batch mode there.
        render_as_batch=sqlite,
        # One transaction for the whole upgrade on SQLite too: the engine emits BEGIN itself,
        # so SQLite's DDL is transactional (Alembic assumes it is not).
        transactional_ddl=True,
        compare_type=True,
        compare_server_default=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY}
            )
        context.run_migrations()


def _main() -> None:
    given = context.config.attributes.get("connection")
    if isinstance(given, Connection):
        _run(given)
        return
    url = context.get_x_argument(as_dictionary=True).get("db")
    if not url:
        raise SystemExit("pass the database to migrate: alembic ... -x db=URL")
    engine = write_engine(make_engine(url))
    try:
        with engine.connect() as connection:
            _run(connection)
    finally:
        engine.dispose()


_main()

"""The one migration from before Alembic: the previous layout to one table per scheme.

Schema changes are Alembic revisions (:mod:`smpcloud.service.migrations`, ``smpcloud db
upgrade``). A database made before them, by the ``create_schema`` the server used to run at
start, may still have the layout older than one table per scheme; :func:`upgrade_previous_layout`
is what ``smpcloud db upgrade`` runs on such a database before revision 0001 adopts it. The
previous layout kept a Paillier task's key columns (``public_key_json``, ``key_fingerprint``,
``holders``, ``threshold``) in the common ``tasks`` table, with placeholders for Shamir tasks
(``"null"``, ``""``, 0, t), told the schemes apart by the presence of a ``shamir_tasks`` row,
and kept a Shamir server's share of the sum in ``aggregates``. The upgrade, in one transaction:

1. creates the two tables the next steps fill (``paillier_tasks``, ``shamir_aggregates``; the
   other missing tables are revision 0001's);
2. copies every Paillier task's key columns into ``paillier_tasks``;
3. moves Shamir tasks' rows from ``aggregates`` to ``shamir_aggregates``;
4. rebuilds ``tasks`` without the Paillier columns and with ``scheme``. SQLite cannot drop
   columns portably before 3.35, so it follows SQLite's recipe: with foreign keys off, create
   ``tasks_new``, copy, drop ``tasks``, rename ``tasks_new`` to ``tasks``, recreate its
   indexes, check the foreign keys, commit. Other backends drop the columns in place.

A database already in the current layout is left alone, so running it twice does nothing.
"""

from __future__ import annotations

import logging
from typing import Final

from sqlalchemy import Connection, Engine, MetaData, inspect, text
from sqlalchemy.schema import CreateTable

from smpcloud.errors import VerificationError
from smpcloud.service.db import (
    Base,
    PaillierTaskRow,
    ShamirAggregateRow,
    TaskRow,
    is_sqlite,
    write_engine,
)

logger = logging.getLogger("smpcloud.service")

# The columns of the previous layout's ``tasks`` that belong to Paillier tasks only.
_PAILLIER_COLUMNS: Final = ("public_key_json", "key_fingerprint", "holders", "threshold")
_SCHEME_OF_TASK: Final = (
    "CASE WHEN id IN (SELECT task_id FROM shamir_tasks) THEN 'shamir' ELSE 'paillier' END"
)
_COPY_PAILLIER: Final = (
    "INSERT INTO paillier_tasks (task_id, public_key_json, key_fingerprint, holders, threshold) "
    "SELECT id, public_key_json, key_fingerprint, holders, threshold FROM tasks "
    "WHERE id NOT IN (SELECT task_id FROM shamir_tasks)"
)
_MOVE_SHAMIR_AGGREGATES: Final = (
    "INSERT INTO shamir_aggregates (task_id, share, count, computed_at) "
    "SELECT task_id, ciphertexts, count, computed_at FROM aggregates "
    "WHERE task_id IN (SELECT task_id FROM shamir_tasks)",
    "DELETE FROM aggregates WHERE task_id IN (SELECT task_id FROM shamir_tasks)",
)


#: Columns added to existing tables since the previous layout: (table, column, SQL definition).
#: The previous layout's upgrade leaves them out of its copy (revision 0001 of
#: :mod:`smpcloud.service.migrations` adds them, with the default that old rows mean).
ADDED_COLUMNS: Final = (("tasks", "validity", "VARCHAR(16) NOT NULL DEFAULT 'none'"),)


def is_previous_layout(conn: Connection) -> bool:
    """Whether the database has the previous layout (Paillier columns in ``tasks``)."""
    inspector = inspect(conn)
    if not inspector.has_table("tasks"):
        return False
    return "public_key_json" in {column["name"] for column in inspector.get_columns("tasks")}


def upgrade_previous_layout(engine: Engine) -> bool:
    """Upgrade a database of the previous layout in place, in one transaction (module doc).

    Args:
        engine: the service's engine.

    Returns:
        Whether it upgraded anything (False for a new or already upgraded database).

    Raises:
        VerificationError: the upgrade would leave dangling foreign keys (rolled back).
    """
    with engine.connect() as probe:
        if not is_previous_layout(probe):
            return False
    upgrade = _upgrade_sqlite if is_sqlite(engine.url) else _upgrade_in_place
    done = upgrade(write_engine(engine))
    if done:
        logger.info("upgraded the database from the previous layout (one table per scheme)")
    return done


def _move_scheme_rows(conn: Connection) -> None:
    """Steps 1 to 3 of the module docstring, on ``conn`` inside the upgrade's transaction."""
    # Only the tables filled here; the others are revision 0001's to create.
    filled = [PaillierTaskRow.__tablename__, ShamirAggregateRow.__tablename__]
    Base.metadata.create_all(conn, tables=[Base.metadata.tables[name] for name in filled])
    conn.execute(text(_COPY_PAILLIER))
    for statement in _MOVE_SHAMIR_AGGREGATES:
        conn.execute(text(statement))


def _upgrade_sqlite(writer: Engine) -> bool:
    tasks = Base.metadata.tables[TaskRow.__tablename__]
    # Columns added since that layout (ADDED_COLUMNS) are left to their defaults.
    added = {column for table, column, _ in ADDED_COLUMNS if table == TaskRow.__tablename__}
    copied = [column.name for column in tasks.columns if column.name not in added]
    columns = ", ".join(copied)
    sources = ", ".join(_SCHEME_OF_TASK if name == "scheme" else name for name in copied)
    with writer.connect() as conn:
        # Outside any transaction (SQLite ignores the pragma inside one): the rebuild drops
        # ``tasks`` while other tables refer to it.
        conn.connection.dbapi_connection.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
        try:
            with conn.begin():
                if not is_previous_layout(conn):  # another process was first
                    return False
                _move_scheme_rows(conn)
                conn.execute(CreateTable(tasks.to_metadata(MetaData(), name="tasks_new")))
                conn.execute(
                    text(f"INSERT INTO tasks_new ({columns}) SELECT {sources} FROM tasks")  # noqa: S608
                )
                conn.execute(text("DROP TABLE tasks"))
                conn.execute(text("ALTER TABLE tasks_new RENAME TO tasks"))
                for index in tasks.indexes:
                    index.create(conn)
                dangling = conn.execute(text("PRAGMA foreign_key_check")).fetchall()
                if dangling:
                    raise VerificationError(
                        f"the upgrade to one table per scheme would leave {len(dangling)} "
                        "dangling foreign key(s); the database was left as it was"
                    )
        finally:
            conn.connection.dbapi_connection.execute("PRAGMA foreign_keys=ON")  # type: ignore[union-attr]
    return True


def _upgrade_in_place(writer: Engine) -> bool:
    """Other backends (transactional DDL, DROP COLUMN): add ``scheme``, drop the rest."""
    with writer.begin() as conn:
        if not is_previous_layout(conn):
            return False
        conn.execute(text("ALTER TABLE tasks ADD COLUMN scheme VARCHAR(16)"))
        conn.execute(text(f"UPDATE tasks SET scheme = {_SCHEME_OF_TASK}"))  # noqa: S608
        conn.execute(text("ALTER TABLE tasks ALTER COLUMN scheme SET NOT NULL"))
        _move_scheme_rows(conn)
        for column in _PAILLIER_COLUMNS:
            conn.execute(text(f"ALTER TABLE tasks DROP COLUMN {column}"))
    return True


__all__ = [
    "ADDED_COLUMNS",
    "is_previous_layout",
    "upgrade_previous_layout",
]

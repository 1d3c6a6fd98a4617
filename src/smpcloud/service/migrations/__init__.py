"""Schema migrations of the service's database (Alembic), for SQLite and PostgreSQL alike.

The schema is the sum of the revisions in ``versions/`` (``0001``: every table of the service
as it was when migrations began), applied in order by :func:`upgrade` (``smpcloud db
upgrade --db URL``). A server never changes the schema itself: it refuses to start on a
database that is not at the head revision (:func:`check_migrated`, raising
:class:`DatabaseNotMigratedError` with the command to run), so that several server processes
on one database never race to alter it, and an operator upgrades the database once, on
purpose, before the first ``serve`` and after every upgrade of smpcloud.

**Databases made before migrations** (by ``create_schema``, which created the tables when the
server started) have the service's tables but no ``alembic_version``. :func:`upgrade` adopts
them: it first brings a database of the layout before one table per scheme to today's with
:func:`smpcloud.service.schema.upgrade_previous_layout`, then runs ``0001``, which creates
only the tables and the column (``tasks.validity``) such a database may lack, and records the
revision. Their rows are kept.

**Guarantees.** Each run of the revisions is one transaction (SQLite and PostgreSQL both
have transactional DDL): a failed upgrade leaves the database as it was (the previous layout's
rebuild is a transaction of its own, before: after a failure, running again goes on from
there). Two processes
upgrading one database at once run one after the other (PostgreSQL: an advisory lock;
SQLite: ``BEGIN IMMEDIATE``; threads of one process: a lock, as Alembic's ``context`` is
global). Migrations only go forward (restore a backup to go back).
Nothing here logs a row's content: the revisions are DDL and copies inside the database.

**Writing revision 0002** (a developer, after changing :mod:`smpcloud.service.db`)::

    alembic -c src/smpcloud/service/migrations/alembic.ini -x db=sqlite:///dev.db upgrade head
    alembic -c src/smpcloud/service/migrations/alembic.ini -x db=sqlite:///dev.db \\
        revision --autogenerate --rev-id 0002 -m "what changes"

then review ``versions/0002_*.py``: explicit ``op`` calls only (never import the models: a
revision describes one step of history, which later model changes must not alter), checked
on PostgreSQL as well (``SMPCLOUD_TEST_POSTGRES_URL``; ``tests/unit/test_migrations.py``
compares the migrated schema with the models on both).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Final

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from smpcloud.errors import InvalidInputError
from smpcloud.service.db import make_engine, write_engine
from smpcloud.service.schema import upgrade_previous_layout

#: Where the revisions are (``env.py`` and ``versions/``).
SCRIPT_LOCATION: Final = Path(__file__).resolve().parent
#: The table that tells a database made before migrations from one made by them.
VERSION_TABLE: Final = "alembic_version"
# Alembic's ``context`` and ``op`` are module-level proxies: one upgrade at a time per process
# (servers started side by side in threads would otherwise run each other's migrations).
_ALEMBIC_LOCK: Final = threading.Lock()


class DatabaseNotMigratedError(InvalidInputError):
    """The database is not at the revision this version of smpcloud needs (the message says
    what to run)."""


def alembic_config() -> Config:
    """An Alembic configuration of the service's revisions, with no ini file.

    Returns:
        The configuration (``script_location`` is this package's directory).
    """
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    return config


def head_revision() -> str:
    """The newest revision this version of smpcloud knows (the one a server needs).

    Returns:
        Its identifier (e.g. ``"0001"``).
    """
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package ships its revisions
        raise DatabaseNotMigratedError("smpcloud's migration scripts are missing")
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at.

    Args:
        engine: an engine on the database.

    Returns:
        Its identifier, or None for a database without ``alembic_version`` (an empty one, or
        one made before migrations).
    """
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _known_revisions() -> set[str]:
    return {
        script.revision for script in ScriptDirectory.from_config(alembic_config()).walk_revisions()
    }


def _not_migrated(engine: Engine, current: str | None, head: str) -> DatabaseNotMigratedError:
    """The error for a database at ``current`` when this smpcloud needs ``head``."""
    url = engine.url.render_as_string(hide_password=True)
    if current is not None and current not in _known_revisions():
        return DatabaseNotMigratedError(
            f"the database {url} is at revision {current}, which this version of smpcloud "
            f"(revision {head}) does not know: a newer smpcloud upgraded it; run that version"
        )
    where = "has no schema revision" if current is None else f"is at revision {current}"
    return DatabaseNotMigratedError(
        f"the database {url} {where}, this version of smpcloud needs {head}: "
        f"run smpcloud db upgrade --db {url}"
    )


def check_migrated(engine: Engine) -> None:
    """Make sure the database is at :func:`head_revision`, or say exactly what to run.

    Args:
        engine: an engine on the database.

    Raises:
        DatabaseNotMigratedError: it is not; the message names ``smpcloud db upgrade --db
            URL`` (password hidden), or says that a newer smpcloud upgraded the database.
    """
    head = head_revision()
    current = current_revision(engine)
    if current != head:
        raise _not_migrated(engine, current, head)


def _made_before_migrations(engine: Engine) -> bool:
    with engine.connect() as conn:
        inspector = inspect(conn)
        return inspector.has_table("tasks") and not inspector.has_table(VERSION_TABLE)


def upgrade(url_or_engine: str | Engine) -> tuple[str | None, str]:
    """Bring the database to :func:`head_revision` (idempotent; see the module docstring).

    Args:
        url_or_engine: a SQLAlchemy URL (a missing SQLite file is created, mode 0600) or an
            engine from :func:`smpcloud.service.db.make_engine`.

    Returns:
        The revision before (None: no revision, an empty database or one made before
        migrations) and after the upgrade.

    Raises:
        InvalidInputError: not a URL, or an unusable one (in-memory SQLite, a file that cannot
            be created).
        DatabaseNotMigratedError: the database is at a revision this smpcloud does not know.
        VerificationError: adopting a database of the previous layout would leave dangling
            foreign keys (nothing changed).
    """
    if isinstance(url_or_engine, Engine):
        engine, owned = url_or_engine, False
    else:
        try:
            make_url(url_or_engine)  # before any file is created
        except ArgumentError:
            raise InvalidInputError(f"{url_or_engine!r} is not a database URL") from None
        engine, owned = make_engine(url_or_engine), True
    try:
        before = current_revision(engine)
        head = head_revision()
        if before == head:
            return before, head
        if before is not None and before not in _known_revisions():
            raise _not_migrated(engine, before, head)
        if before is None and _made_before_migrations(engine):
            upgrade_previous_layout(engine)
        config = alembic_config()
        with _ALEMBIC_LOCK, write_engine(engine).connect() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
            conn.commit()
        return before, current_revision(engine) or head
    finally:
        if owned:
            engine.dispose()


__all__ = [
    "SCRIPT_LOCATION",
    "VERSION_TABLE",
    "DatabaseNotMigratedError",
    "alembic_config",
    "check_migrated",
    "current_revision",
    "head_revision",
    "upgrade",
]

"""``smpcloud db upgrade|current``: the aggregation server's database schema (Alembic revisions).

The server never changes its schema itself: ``smpcloud serve`` refuses a database that is not
at the revision its version needs, and names the command to run. ``smpcloud db upgrade`` is
that command, run once before the first ``serve`` and again after every upgrade of smpcloud
(:mod:`smpcloud.service.migrations`). Both commands check ``--db`` first with
:func:`smpcloud.cli.serve.check_database`, so that a bad URL is one line and exit status 1.
"""

from __future__ import annotations

from pathlib import Path

import click

from smpcloud.cli._common import friendly_errors
from smpcloud.cli.serve import check_database
from smpcloud.service.config import DEFAULT_DB_URL

_DB_OPTION = click.option(
    "--db",
    "db_url",
    default=DEFAULT_DB_URL,
    show_default=True,
    metavar="URL",
    help="SQLAlchemy database URL, as given to smpcloud serve (sqlite:///PATH, or "
    "postgresql+psycopg://USER@HOST/DB).",
)


def _shown(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@click.group("db", context_settings={"help_option_names": ["-h", "--help"]})
def db() -> None:
    """The aggregation server's database schema: upgrade it, or show its revision.

    Run `smpcloud db upgrade --db URL` before the first `smpcloud serve` on a new database,
    and again after every upgrade of smpcloud: the server refuses to start on a database
    that is not at the schema revision its version needs (and says so in one line).
    Back up the database before upgrading: migrations only go forward.
    """


@db.command("upgrade")
@_DB_OPTION
def upgrade_command(db_url: str) -> None:
    """Create or upgrade the database's schema to this version's revision (idempotent).

    A new database gets every table; a database made by an older smpcloud is upgraded in
    place, its tasks and reports kept, in one transaction (a failure changes nothing).
    Running it again does nothing ("already at ...").

    \b
    Example:
      smpcloud db upgrade --db sqlite:///tasks.db
      smpcloud serve --db sqlite:///tasks.db --admin-token-file admin.token
    """
    check_database(db_url)
    from smpcloud.service.migrations import upgrade

    with friendly_errors():
        before, after = upgrade(db_url)
    if before == after:
        click.echo(f"{_shown(db_url)}: already at revision {after} (nothing to do)")
    else:
        start = "an empty or unversioned database" if before is None else f"revision {before}"
        click.echo(f"{_shown(db_url)}: upgraded from {start} to revision {after}")


@db.command("current")
@_DB_OPTION
def current_command(db_url: str) -> None:
    """Show the database's schema revision and whether the server can start on it.

    Exit status 0 when the database is at this version's revision, 1 otherwise (with the
    command to run). Never creates or changes anything.

    \b
    Example:
      smpcloud db current --db sqlite:///tasks.db
    """
    check_database(db_url)
    from sqlalchemy.engine import make_url

    from smpcloud.service.db import is_sqlite, make_engine
    from smpcloud.service.migrations import check_migrated, current_revision, head_revision

    parsed = make_url(db_url)
    if is_sqlite(parsed) and not Path(parsed.database or "").exists():
        raise click.ClickException(
            f"{_shown(db_url)}: the database does not exist yet; create it with: "
            f"smpcloud db upgrade --db {_shown(db_url)}"
        )
    with friendly_errors():
        engine = make_engine(db_url)
        try:
            current = current_revision(engine)
            click.echo(
                f"{_shown(db_url)}: revision {current or 'none'} "
                f"(this version of smpcloud needs {head_revision()})"
            )
            check_migrated(engine)
        finally:
            engine.dispose()


__all__ = ["db"]

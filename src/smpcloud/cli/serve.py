"""``smpcloud serve``: the aggregation server, after checking its database URL in one line.

The command's options and behaviour are :func:`smpcloud.service.__main__.serve_command`'s
(``python -m smpcloud.service``). Before the server starts, :func:`check_database` makes sure
the ``--db`` URL can work, so that a mistake there is one line and exit status 1 instead of a
traceback from inside the server's startup:

* not a URL, or a URL of an unknown kind: says which URLs work;
* PostgreSQL (or another database) without its Python driver: says what to install
  (``pip install 'smpcloud[postgres]'``);
* a SQLite file whose directory does not exist or is not writable, a directory in the file's
  place, or a file that is not a SQLite database;
* a server database that refuses the connection.

Then the server itself refuses a database not at its schema revision, naming the command to
run (``smpcloud db upgrade --db URL``, :mod:`smpcloud.cli.db`, which shares this check).
"""

from __future__ import annotations

import inspect
import os
import sqlite3
from pathlib import Path
from typing import Any, Final

import click

from smpcloud.service.__main__ import serve_command


class DatabaseUnusable(click.ClickException):
    """The --db URL cannot work (exit status 1, one line starting with the URL)."""

    def __init__(self, message: str) -> None:
        super().__init__(f"--db {message}")


_WORKING_URLS: Final = (
    "use sqlite:///PATH (a file; sqlite:////ABSOLUTE/PATH) or postgresql://USER@HOST/DB"
)


def _sqlite_problem(database: str) -> str | None:
    path = Path(database)
    if path.is_dir():
        return f"{path} is a directory, not a database file"
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():
        return f"the directory {parent} does not exist (create it first)"
    if not parent.is_dir():
        return f"{parent} is not a directory"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"the directory {parent} is not writable (SQLite writes its journal beside the file)"
    if not path.exists():
        return None
    if not os.access(path, os.R_OK | os.W_OK):
        return f"{path} is not readable and writable"
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        return f"cannot open {path} ({exc})"
    try:
        conn.execute("PRAGMA schema_version").fetchone()
    except sqlite3.DatabaseError as exc:
        return f"{path} is not a SQLite database ({exc})"
    finally:
        conn.close()
    return None


def check_database(url: str) -> None:
    """Check that the server can use the database at ``url``; nothing is created.

    Args:
        url: the ``--db`` URL.

    Raises:
        DatabaseUnusable: the URL cannot work, with the reason in one line (never the
            password of the URL).
    """
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DatabaseUnusable(f"{url!r} is not a database URL; {_WORKING_URLS}") from None
    shown = url if parsed.password is None else parsed.render_as_string(hide_password=True)
    try:
        dialect = parsed.get_dialect()
    except NoSuchModuleError:
        raise DatabaseUnusable(
            f"{shown}: unknown kind of database {parsed.drivername!r}; {_WORKING_URLS}"
        ) from None
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        if parsed.get_backend_name() == "postgresql":
            raise DatabaseUnusable(
                f"{shown}: PostgreSQL needs its Python driver (psycopg), which is not "
                "installed: pip install 'smpcloud[postgres]'"
            ) from None
        raise DatabaseUnusable(
            f"{shown}: the Python driver of this database is not installed ({exc})"
        ) from None
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:") or "mode=memory" in url:
            raise DatabaseUnusable(
                f"{shown}: an in-memory database would lose every task when the server "
                "stops; use a file, e.g. sqlite:///smpcloud.db"
            )
        problem = _sqlite_problem(database)
        if problem is not None:
            raise DatabaseUnusable(f"{shown}: {problem}")
        return
    engine = create_engine(parsed, hide_parameters=True)
    try:
        with engine.connect():
            pass
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()
        raise DatabaseUnusable(
            f"{shown}: cannot connect ({reason[0] if reason else type(exc).__name__})"
        ) from None
    finally:
        engine.dispose()


def _serve(**options: Any) -> None:
    check_database(options["db_url"])
    callback = serve_command.callback
    if callback is not None:  # pragma: no branch - a click command always has one
        callback(**options)


_EXAMPLE: Final = """\b
Example:
  python -c 'import secrets; print(secrets.token_urlsafe(32))' > admin.token
  chmod 600 admin.token
  smpcloud db upgrade --db sqlite:///tasks.db
  smpcloud serve --db sqlite:///tasks.db --admin-token-file admin.token
PostgreSQL (several server processes): pip install 'smpcloud[postgres]', then
  --db postgresql+psycopg://USER@HOST/DB (smpcloud db upgrade first, as above)
"""

serve = click.Command(
    "serve",
    callback=_serve,
    params=serve_command.params,
    help="\n\n".join(inspect.cleandoc(serve_command.help or "").split("\n\n")[:2])
    + "\n\n"
    + (
        "Then use the SDK (smpcloud.client.Admin, Client, KeyHolder), the smpcloud task, "
        "submit, decrypt and result commands, or the HTTP API; the OpenAPI description is "
        "served at /openapi.json and browsable at /docs. Listen on 127.0.0.1 behind a "
        "TLS-terminating reverse proxy in production: bearer tokens must not cross a network "
        "in clear text."
    ),
    epilog=_EXAMPLE,
    context_settings=serve_command.context_settings,
)

__all__ = ["DatabaseUnusable", "check_database", "serve"]

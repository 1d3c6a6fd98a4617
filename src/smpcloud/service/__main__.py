"""``python -m smpcloud.service`` (and ``smpcloud serve``): run the aggregation server."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import click

from smpcloud.errors import InvalidInputError
from smpcloud.service.config import (
    DEFAULT_DB_URL,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_VECTOR_LENGTH,
    Settings,
)

ADMIN_TOKEN_ENV = "SMPCLOUD_ADMIN_TOKEN"  # noqa: S105 - the variable name, not a secret
_LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


def _read_admin_token(path: Path | None) -> str:
    """Return the admin token from ``path`` (one line) or the environment; never echo it."""
    if path is not None:
        try:
            mode = path.stat().st_mode
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise click.BadParameter(
                f"cannot read {path}: {exc.strerror}", param_hint="--admin-token-file"
            ) from None
        except UnicodeDecodeError:
            raise click.BadParameter(
                f"{path} is not UTF-8 text", param_hint="--admin-token-file"
            ) from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            click.echo(
                f"warning: {path} is accessible by group or others; run: chmod 600 {path}",
                err=True,
            )
        return text.rstrip("\r\n")
    token = os.environ.get(ADMIN_TOKEN_ENV, "")
    if not token:
        raise click.UsageError(
            "no administrator token: pass --admin-token-file PATH (a file holding one random "
            f"token, mode 0600) or set {ADMIN_TOKEN_ENV}. Make one with: "
            "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
    return token


@click.command(
    "serve",
    context_settings={"help_option_names": ["-h", "--help"], "show_default": True},
)
@click.option(
    "--db",
    "db_url",
    default=DEFAULT_DB_URL,
    metavar="URL",
    help="SQLAlchemy database URL. SQLite files run in WAL mode with synchronous=FULL; "
    "use e.g. postgresql+psycopg://user@host/db for several server processes.",
)
@click.option("--host", default="127.0.0.1", help="Interface to listen on.")
@click.option("--port", default=8000, type=click.IntRange(1, 65535), help="TCP port.")
@click.option(
    "--admin-token-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help=f"File holding the administrator token (overrides ${ADMIN_TOKEN_ENV}). "
    "At least 16 characters, not a placeholder. There is deliberately no option taking the "
    "token itself: command lines are visible to other users.",
)
@click.option(
    "--max-body-bytes",
    default=DEFAULT_MAX_BODY_BYTES,
    type=click.IntRange(1024, 1 << 30),
    help="Largest request body accepted (larger ones get 413).",
)
@click.option(
    "--max-vector-length",
    default=DEFAULT_MAX_VECTOR_LENGTH,
    type=click.IntRange(1, 1 << 20),
    help="Largest number of ciphertexts per report a task may declare (its length, or for a "
    "packed task the number of ciphertexts of its layout).",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 256),
    default=None,
    show_default="every CPU",
    help="Processes that aggregate reports and combine partial decryptions (1 = no extra "
    "processes). They start on the first aggregation large enough to need them.",
)
@click.option(
    "--processes",
    default=1,
    type=click.IntRange(1, 64),
    help="Server processes sharing the listening socket (uvicorn workers). Each is stateless: "
    "they share only the database (PostgreSQL, or a SQLite file on this machine). Any number "
    "of serve processes on other machines may also share one PostgreSQL database behind a "
    "load balancer.",
)
@click.option(
    "--deadline-poll-seconds",
    default=1.0,
    type=click.FloatRange(0.01, 3600),
    help="How often tasks past their deadline are closed (requests also close them).",
)
@click.option(
    "--allow-insecure-keys",
    is_flag=True,
    help="[TESTING ONLY] Accept threshold keys below 2048 bits.",
)
@click.option(
    "--log-level",
    default="info",
    type=click.Choice(_LOG_LEVELS, case_sensitive=False),
    help="Log verbosity (tokens and key shares are never logged).",
)
def serve_command(
    db_url: str,
    host: str,
    port: int,
    admin_token_file: Path | None,
    max_body_bytes: int,
    max_vector_length: int,
    workers: int | None,
    processes: int,
    deadline_poll_seconds: float,
    allow_insecure_keys: bool,
    log_level: str,
) -> None:
    """Run the secure aggregation server (HTTP, uvicorn).

    Clients upload values encrypted under a threshold Paillier key; the server multiplies the
    ciphertexts without being able to read them, and t of n key holders decrypt only the
    aggregate. The server learns the number of reports and, after decryption, the sums.

    \b
    Example:
      python -c 'import secrets; print(secrets.token_urlsafe(32))' > admin.token
      chmod 600 admin.token
      smpcloud serve --db sqlite:///tasks.db --admin-token-file admin.token

    Then use the SDK (smpcloud.client.Admin, Client, KeyHolder) or the HTTP API; the
    OpenAPI description is served at /openapi.json and browsable at /docs.
    Listen on 127.0.0.1 behind a TLS-terminating reverse proxy in production: bearer
    tokens must not cross a network in clear text.
    """
    import uvicorn
    from sqlalchemy.exc import ArgumentError

    from smpcloud.service.app import create_app

    token = _read_admin_token(admin_token_file)
    try:
        settings = Settings(
            admin_token=token,
            db_url=db_url,
            max_body_bytes=max_body_bytes,
            max_vector_length=max_vector_length,
            workers=workers,
            allow_insecure_keys=allow_insecure_keys,
            deadline_poll_seconds=deadline_poll_seconds,
        )
    except InvalidInputError as exc:
        raise click.UsageError(str(exc)) from None
    level = log_level.lower()
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if allow_insecure_keys:
        logging.getLogger("smpcloud.service").warning(
            "--allow-insecure-keys: accepting keys below 2048 bits (testing only)"
        )
    if processes > 1:
        _serve_processes(settings, host, port, level, processes)
        return
    try:
        app = create_app(settings)
    except (InvalidInputError, ArgumentError, ImportError) as exc:
        raise click.BadParameter(str(exc), param_hint="--db") from None
    uvicorn.run(app, host=host, port=port, log_level=level, server_header=False)


def _serve_processes(settings: Settings, host: str, port: int, level: str, count: int) -> None:
    """Prepare the schema once, then run ``count`` uvicorn workers on one socket.

    The workers rebuild the settings from this process's environment
    (:mod:`smpcloud.service.processes`): the token never appears on a command line.
    """
    import uvicorn
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    from smpcloud.service.db import make_engine
    from smpcloud.service.processes import settings_environment
    from smpcloud.service.schema import create_schema

    try:
        engine = make_engine(settings.db_url, busy_timeout_seconds=settings.db_busy_timeout_seconds)
    except (InvalidInputError, ArgumentError, ImportError) as exc:
        raise click.BadParameter(str(exc), param_hint="--db") from None
    try:
        create_schema(engine)  # once, before the workers (which find it done)
    except SQLAlchemyError as exc:
        cause = getattr(exc, "orig", None) or exc
        first_line = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
        raise click.ClickException(f"cannot prepare the database: {first_line}") from None
    finally:
        engine.dispose()
    os.environ.update(settings_environment(settings, level))
    uvicorn.run(
        "smpcloud.service.processes:app_from_environment",
        factory=True,
        workers=count,
        host=host,
        port=port,
        log_level=level,
        server_header=False,
    )


if __name__ == "__main__":
    serve_command()

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
    METRICS_ACCESS,
    Settings,
)
from smpcloud.service.logs import LOG_FORMATS, configure_logging

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


def refuse_unmigrated(db_url: str) -> None:
    """Exit with status 1 and one line unless the database is at this version's schema revision.

    The server never changes its schema: ``smpcloud db upgrade --db URL`` does, and the line
    says to run it (:mod:`smpcloud.service.migrations`).

    Raises:
        click.ClickException: the database is not migrated (exit status 1).
        InvalidInputError: an unusable URL (in-memory SQLite, a file that cannot be created).
    """
    from smpcloud.service.db import make_engine
    from smpcloud.service.migrations import DatabaseNotMigratedError, check_migrated

    engine = make_engine(db_url)
    try:
        check_migrated(engine)
    except DatabaseNotMigratedError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        engine.dispose()


def _check_dask_scheduler(address: str) -> None:
    """Connect to the Dask scheduler once before serving: one line and exit 1 if it cannot work."""
    from smpcloud.parallel.dask_pool import DaskClusterError, check_scheduler

    try:
        check_scheduler(address)
    except DaskClusterError as exc:
        raise click.ClickException(f"--dask-scheduler: {exc}") from None


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
    "--dask-scheduler",
    default=None,
    metavar="ADDRESS",
    help="Run aggregation, report verification and combining on this Dask cluster "
    "(e.g. tcp://10.0.0.5:8786; needs pip install 'smpcloud[dask]') instead of local "
    "processes. Its workers see the ciphertexts the server sees: run it on trusted machines.",
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
@click.option(
    "--log-format",
    default="text",
    type=click.Choice(LOG_FORMATS),
    help="text: human lines (with uvicorn's access log); json: one JSON object per line "
    "(time, level, logger, message, request_id, and per request method, route, status, "
    "duration_ms, task_id). Never tokens, bodies, ciphertexts or shares.",
)
@click.option(
    "--metrics",
    "metrics_access",
    default="admin",
    type=click.Choice(METRICS_ACCESS),
    help="Who may read GET /metrics (Prometheus): admin = with the administrator's bearer "
    "token (Prometheus: authorization: credentials_file); public = anyone who reaches the "
    "server (it reveals task ids, counts and timings, never tokens or values). With several "
    "processes set PROMETHEUS_MULTIPROC_DIR to an empty directory so each reports the sum.",
)
def serve_command(
    db_url: str,
    host: str,
    port: int,
    admin_token_file: Path | None,
    max_body_bytes: int,
    max_vector_length: int,
    workers: int | None,
    dask_scheduler: str | None,
    processes: int,
    deadline_poll_seconds: float,
    allow_insecure_keys: bool,
    log_level: str,
    log_format: str,
    metrics_access: str,
) -> None:
    """Run the secure aggregation server (HTTP, uvicorn).

    Clients upload values encrypted under a threshold Paillier key; the server multiplies the
    ciphertexts without being able to read them, and t of n key holders decrypt only the
    aggregate. The server learns the number of reports and, after decryption, the sums.
    It refuses to start on a database whose schema `smpcloud db upgrade --db URL` has not
    brought to this version's revision (run it before the first start and after upgrades).

    \b
    Example:
      python -c 'import secrets; print(secrets.token_urlsafe(32))' > admin.token
      chmod 600 admin.token
      smpcloud db upgrade --db sqlite:///tasks.db
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
            dask_scheduler=dask_scheduler,
            allow_insecure_keys=allow_insecure_keys,
            deadline_poll_seconds=deadline_poll_seconds,
            log_format="json" if log_format == "json" else "text",
            metrics="public" if metrics_access == "public" else "admin",
        )
    except InvalidInputError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        refuse_unmigrated(db_url)  # before logging is set up: one line, nothing else
    except (InvalidInputError, ArgumentError, ImportError) as exc:
        raise click.BadParameter(str(exc), param_hint="--db") from None
    if dask_scheduler is not None:
        _check_dask_scheduler(dask_scheduler)
    level = log_level.lower()
    configure_logging(level, settings.log_format)
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
    if settings.log_format == "json":
        # uvicorn's loggers go through the root's JSON handler; the service writes its own
        # access line per request (with its request id, route template and duration).
        uvicorn.run(
            app,
            host=host,
            port=port,
            log_level=level,
            server_header=False,
            log_config=None,
            access_log=False,
        )
    else:
        uvicorn.run(app, host=host, port=port, log_level=level, server_header=False)


def _serve_processes(settings: Settings, host: str, port: int, level: str, count: int) -> None:
    """Run ``count`` uvicorn workers on one socket (the schema revision was checked already).

    The workers rebuild the settings from this process's environment
    (:mod:`smpcloud.service.processes`): the token never appears on a command line. Unless the
    operator set ``PROMETHEUS_MULTIPROC_DIR``, a fresh private directory is made for it, so
    that ``/metrics`` from any worker reports the sum over all of them.
    """
    import tempfile

    import uvicorn

    from smpcloud.service.processes import settings_environment

    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="smpcloud-metrics-")
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

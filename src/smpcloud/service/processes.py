"""Several server processes (``smpcloud serve --processes N``): the application each one builds.

uvicorn's worker processes are started afresh (spawned), so each builds its own application
from the environment it inherits: :func:`app_from_environment` is the factory they import by
name. The settings travel as JSON in ``SMPCLOUD_SERVE_SETTINGS`` (nothing secret in it); the
administrator's token in ``SMPCLOUD_ADMIN_TOKEN``, the variable ``smpcloud serve`` already reads,
set in the parent's own environment (never on a command line, never in a file).

**What the processes share, and how.** Nothing but the database: each process is stateless and
any of them may serve any request; so may any number of ``smpcloud serve`` processes on other
machines behind a load balancer, on one PostgreSQL database (a SQLite file serves the processes
of one machine only). What each process keeps in memory is safe to keep:

* task metadata (:mod:`smpcloud.service.meta`): immutable once created, so a copy never goes
  stale; the task's state and counters are always read from the database;
* the group commit of uploads (:mod:`smpcloud.service.storage`): each process leads its own;
  a report is stored once by UNIQUE(task, client), a duplicate racing through another process
  gets 409, and an upload is acknowledged only after its transaction committed;
* deadlines (:mod:`smpcloud.service.closing`): every process runs the deadline loop; closing
  takes the task's row lock and does nothing to a task no longer open; uploads hold a shared
  lock on the task row, so a report is either committed before the close counts the reports
  or refused;
* the aggregate (:mod:`smpcloud.service.schemes.paillier.aggregation`): any process may
  compute it once the task is closed (the reports are fixed); it is stored once, under the
  task's row lock, by the first to commit;
* the server's signing and sealing keys (:mod:`smpcloud.service.server_keys`): created once in
  the database, read back and cached by every process;
* refusal counters (:meth:`smpcloud.service.storage.Storage.count_refusal`): incremented in the
  database, the first one of a reason safe against another process's.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from typing import Any, Final

from fastapi import FastAPI

from smpcloud.errors import InvalidInputError
from smpcloud.service.config import Settings

#: The environment variable holding the settings (JSON, without the administrator's token).
SETTINGS_ENV: Final = "SMPCLOUD_SERVE_SETTINGS"
#: The administrator's token (the variable ``smpcloud serve`` reads; see its ``__main__``).
ADMIN_TOKEN_ENV: Final = "SMPCLOUD_ADMIN_TOKEN"  # noqa: S105 - the variable's name
_LOG_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def settings_environment(settings: Settings, log_level: str = "info") -> dict[str, str]:
    """The environment entries from which :func:`app_from_environment` rebuilds ``settings``.

    Args:
        settings: the validated settings.
        log_level: the processes' log level (a :mod:`logging` level name).

    Returns:
        ``{SETTINGS_ENV: json, ADMIN_TOKEN_ENV: token}``, for the parent to put in its own
        environment (its children inherit it; other users cannot read it).
    """
    fields = {
        f.name: getattr(settings, f.name)
        for f in dataclasses.fields(settings)
        if f.name != "admin_token"
    }
    fields["log_level"] = log_level
    return {SETTINGS_ENV: json.dumps(fields), ADMIN_TOKEN_ENV: settings.admin_token}


def settings_from_environment() -> tuple[Settings, str]:
    """Rebuild the settings (and the log level) a parent put in the environment.

    Raises:
        InvalidInputError: the variables are missing or do not hold valid settings.
    """
    raw = os.environ.get(SETTINGS_ENV)
    token = os.environ.get(ADMIN_TOKEN_ENV, "")
    if not raw:
        raise InvalidInputError(f"{SETTINGS_ENV} is not set: start the processes with serve")
    try:
        fields: dict[str, Any] = json.loads(raw)
        log_level = str(fields.pop("log_level", "info"))
        settings = Settings(admin_token=token, **fields)
    except (ValueError, TypeError) as exc:
        raise InvalidInputError(f"{SETTINGS_ENV} does not hold valid settings: {exc}") from None
    return settings, log_level


def app_from_environment() -> FastAPI:
    """The application of one server process, built from the environment (uvicorn's factory).

    Returns:
        :func:`smpcloud.service.app.create_app` of the settings in the environment; the
        process logs at the parent's level (tokens, ciphertexts and shares are never logged).

    Raises:
        InvalidInputError: no valid settings in the environment.
    """
    from smpcloud.service.app import create_app

    settings, log_level = settings_from_environment()
    logging.basicConfig(level=log_level.upper(), format=_LOG_FORMAT)
    return create_app(settings)


__all__ = [
    "ADMIN_TOKEN_ENV",
    "SETTINGS_ENV",
    "app_from_environment",
    "settings_environment",
    "settings_from_environment",
]

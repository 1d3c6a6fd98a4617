"""Readiness (``GET /readyz``): whether this process can serve the API's requests now.

``/healthz`` says only that the process runs and answers (liveness: restart it if not).
``/readyz`` (readiness: send it traffic or not) checks, in order:

1. **the database answers**: ``SELECT 1`` on the service's engine;
2. **the schema is the expected one**: :func:`check_schema`, the migrations' revision check
   (:func:`smpcloud.service.migrations.check_migrated`: the database is at the head revision
   of this code, so ``smpcloud db upgrade`` has run);
3. **the worker pool can accept work**: the application's lifespan has started it and has not
   begun shutting down (a pool whose worker process died is replaced on its next use, by
   :class:`~smpcloud.service.workers.Workers`).

Each failed check adds one line to the list of what is missing; the route answers 200 when
the list is empty, 503 problem+json (``urn:smpcloud:problem:not-ready``) naming the missing
parts otherwise. A database error is described by its class only (never its message, which
may quote a connection URL with a password).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from smpcloud.service.migrations import DatabaseNotMigratedError, check_migrated

SchemaCheck = Callable[[Engine], list[str]]
"""``engine -> what is missing`` (empty when the schema is the expected one)."""

#: The problem type slug of a 503 from ``/readyz``.
NOT_READY_SLUG: Final = "not-ready"


def check_schema(engine: Engine) -> list[str]:
    """Return why the database is not at the schema revision this code expects (empty: it is).

    Args:
        engine: the service's engine.

    Returns:
        One line (the message of :func:`smpcloud.service.migrations.check_migrated`, which
        says what to run), or nothing.

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the database did not answer.
    """
    try:
        check_migrated(engine)
    except DatabaseNotMigratedError as exc:
        return [str(exc)]
    return []


def missing_for_readiness(
    engine: Engine, *, pool_ready: bool, schema_check: SchemaCheck = check_schema
) -> list[str]:
    """Return what keeps this process from being ready (empty: ready). Blocking.

    Args:
        engine: the service's engine.
        pool_ready: whether the worker pool is started and not shutting down.
        schema_check: see :data:`SchemaCheck`.

    Returns:
        One line per missing part, in the order of the checks (module docstring).
    """
    missing: list[str] = []
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        missing.extend(schema_check(engine))
    except SQLAlchemyError as exc:
        missing.append(f"the database does not answer ({type(exc).__name__})")
    if not pool_ready:
        missing.append("the worker pool is not started, or is shutting down")
    return missing


__all__ = ["NOT_READY_SLUG", "SchemaCheck", "check_schema", "missing_for_readiness"]

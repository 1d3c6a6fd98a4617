"""What the command groups share: error reporting, secrets, common options, output helpers."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console

from smpcloud.errors import SmpcError

F = TypeVar("F", bound=Callable[..., Any])

err_console = Console(stderr=True)


def command_name() -> str:
    """Return the running command as a user types it, e.g. ``smpcloud bench fig7``."""
    ctx = click.get_current_context(silent=True)
    names: list[str] = []
    while ctx is not None and ctx.parent is not None:
        names.append(ctx.info_name or "")
        ctx = ctx.parent
    return " ".join(["smpcloud", *reversed(names)])


@contextmanager
def friendly_errors() -> Iterator[None]:
    """Turn smpcloud and file errors into one-line CLI errors (exit status 1), no traceback.

    A missing optional extra becomes ``smpcloud <command> needs the optional '<extra>' extra
    (...): pip install 'smpcloud[<extra>]'``.
    """
    try:
        yield
    except SmpcError as exc:
        from smpcloud.datasets.extras import MissingExtraError

        if isinstance(exc, MissingExtraError):
            raise click.ClickException(f"{command_name()} {exc.needs()}") from exc
        raise click.ClickException(f"{type(exc).__name__}: {exc}") from exc
    except (FileNotFoundError, FileExistsError, PermissionError) as exc:
        raise click.ClickException(str(exc)) from exc


def needs_extra(*modules: str) -> None:
    """Fail now, in one line, if the optional ``examples`` extra is missing (see
    :func:`smpcloud.datasets.check_extra`); import ``modules`` (default: all of it)."""
    from smpcloud.datasets import check_extra

    with friendly_errors():
        check_extra(*modules)


def read_secret(path: str | None, env: str, what: str) -> str:
    """Read a secret from a file (first line) or an environment variable."""
    if path:
        text = Path(path).read_text(encoding="utf-8").strip()
    else:
        text = os.environ.get(env, "").strip()
    if not text:
        raise click.UsageError(f"no {what}: pass --{what.replace(' ', '-')}-file or set {env}")
    return text


def server_options(func: F) -> F:
    """Add --server and --task options (both also read from the environment)."""
    func = click.option(
        "--task",
        "task_id",
        envvar="SMPCLOUD_TASK",
        required=True,
        help="Task id (or SMPCLOUD_TASK).",
    )(func)
    func = click.option(
        "--server",
        envvar="SMPCLOUD_SERVER",
        default="http://127.0.0.1:8000",
        show_default=True,
        help="Aggregation server URL (or SMPCLOUD_SERVER).",
    )(func)
    return func


def admin_token_option(func: F) -> F:
    """Add --admin-token-file (the admin token's file; else SMPCLOUD_ADMIN_TOKEN)."""
    return click.option(
        "--admin-token-file",
        type=click.Path(dir_okay=False, exists=True),
        help="File holding the admin token (or set SMPCLOUD_ADMIN_TOKEN).",
    )(func)


def token_from(token_file: str | None) -> str:
    """Read a client's or key holder's token from its token file, or from SMPCLOUD_TOKEN."""
    if token_file:
        from smpcloud.keyfiles import read_json

        value = read_json(token_file)
        if not isinstance(value, str):
            raise click.UsageError(f"{token_file} does not hold a token")
        return value
    return read_secret(None, "SMPCLOUD_TOKEN", "token")


def plain(obj: object) -> object:
    """Return a pydantic model or a dataclass as plain data for ``json.dumps``."""
    if hasattr(obj, "model_dump"):
        return obj.model_dump()
    if hasattr(obj, "__dataclass_fields__"):
        import dataclasses

        return dataclasses.asdict(obj)  # type: ignore[call-overload]
    return obj


def progress_printer(as_json: bool) -> Callable[[str], None] | None:
    """Return a callback printing dim progress lines on stderr (None with ``--json``)."""
    return None if as_json else (lambda message: err_console.print(f"[dim]... {message}[/dim]"))


__all__ = [
    "F",
    "admin_token_option",
    "command_name",
    "err_console",
    "friendly_errors",
    "needs_extra",
    "plain",
    "progress_printer",
    "read_secret",
    "server_options",
    "token_from",
]

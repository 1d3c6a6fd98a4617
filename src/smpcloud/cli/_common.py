"""What the command groups share: error reporting, exit codes, secrets, common options, output.

Every error a user can cause ends in one line on stderr and a non-zero exit status, never a
traceback. The exit statuses (also listed in ``smpcloud --help``):

* 0: done;
* 1: an error (bad file, unreachable server, refused by the server, ...);
* 2: a usage error (a missing or invalid option or argument);
* 3: ``smpcloud task close`` closed a task that will never release a result (too few
  reports) — a dead end, distinct from an error;
* 130: interrupted (Ctrl-C).

:class:`SmpcloudGroup` is the root command's class: it turns any exception that escapes a
command into that one line (set ``SMPCLOUD_DEBUG=1`` to see the traceback instead).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, TypeVar

import click
from rich.console import Console

if TYPE_CHECKING:
    from smpcloud.protocol.task_encoding import TaskEncoding

from smpcloud.errors import SmpcError, TransportError

F = TypeVar("F", bound=Callable[..., Any])

err_console = Console(stderr=True)

EXIT_ERROR: Final = 1
EXIT_USAGE: Final = 2
EXIT_NO_RESULT: Final = 3
EXIT_INTERRUPTED: Final = 130
DEBUG_ENV: Final = "SMPCLOUD_DEBUG"

EXIT_CODES_HELP: Final = (
    "Exit status: 0 done; 1 error; 2 usage error; 3 a task closed that will never "
    "release a result (task close); 130 interrupted (Ctrl-C)."
)


class NoResultError(click.ClickException):
    """A task closed with too few reports (or withheld): it will never release a result."""

    exit_code = EXIT_NO_RESULT


def command_name() -> str:
    """Return the running command as a user types it, e.g. ``smpcloud bench fig7``."""
    ctx = click.get_current_context(silent=True)
    names: list[str] = []
    while ctx is not None and ctx.parent is not None:
        names.append(ctx.info_name or "")
        ctx = ctx.parent
    return " ".join(["smpcloud", *reversed(names)])


def describe_os_error(exc: OSError) -> str:
    """One line for a file error: what went wrong, and with which file."""
    reasons = {
        errno.ENOENT: "does not exist",
        errno.EACCES: "permission denied",
        errno.EPERM: "operation not permitted",
        errno.EISDIR: "is a directory",
        errno.ENOTDIR: "a part of the path is not a directory",
        errno.EEXIST: "already exists",
        errno.ENOSPC: "no space left on the device",
        errno.EROFS: "read-only file system",
    }
    reason = reasons.get(exc.errno or -1, exc.strerror or str(exc))
    if exc.errno == errno.EEXIST and exc.strerror:
        reason = f"already exists ({exc.strerror})"
    if exc.filename is not None:
        return f"{exc.filename}: {reason}"
    return reason


def describe_error(exc: BaseException, server: str | None = None) -> str:
    """The one line shown for an exception a user can cause (never a secret: messages of
    smpcloud's exceptions contain none by convention)."""
    from smpcloud.datasets.extras import MissingExtraError

    if isinstance(exc, MissingExtraError):
        return f"{command_name()} {exc.needs()}"
    if isinstance(exc, TransportError):
        where = f" at {server}" if server else ""
        reason = str(exc) if not server else str(exc).rsplit(": ", 1)[-1]
        return (
            f"cannot reach the aggregation server{where} ({reason}): is `smpcloud serve` "
            "running there? Set --server or SMPCLOUD_SERVER"
        )
    if isinstance(exc, SmpcError):
        return f"{type(exc).__name__}: {exc}"
    if isinstance(exc, OSError):
        return describe_os_error(exc)
    return f"unexpected {type(exc).__name__}: {exc} (set {DEBUG_ENV}=1 to see the traceback)"


@contextmanager
def friendly_errors(server: str | None = None) -> Iterator[None]:
    """Turn smpcloud and file errors into one-line CLI errors (exit status 1), no traceback.

    A missing optional extra becomes ``smpcloud <command> needs the optional '<extra>' extra
    (...): pip install 'smpcloud[<extra>]'``; an unreachable server names ``server``.
    """
    try:
        yield
    except (SmpcError, OSError) as exc:
        raise click.ClickException(describe_error(exc, server)) from exc


class SmpcloudGroup(click.Group):
    """The root command: any exception escaping a command becomes one line and an exit status.

    Ctrl-C prints ``interrupted`` and exits with 130; anything else unexpected prints one
    line naming the exception (``SMPCLOUD_DEBUG=1`` re-raises it, traceback included).
    """

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; see the class docstring for what happens to exceptions."""
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("\ninterrupted (Ctrl-C); nothing more was done", err=True)
            raise click.exceptions.Exit(EXIT_INTERRUPTED) from None
        except Exception as exc:
            if os.environ.get(DEBUG_ENV):
                raise
            raise click.ClickException(describe_error(exc)) from None


def needs_extra(*modules: str) -> None:
    """Fail now, in one line, if the optional ``examples`` extra is missing (see
    :func:`smpcloud.datasets.check_extra`); import ``modules`` (default: all of it)."""
    from smpcloud.datasets import check_extra

    with friendly_errors():
        check_extra(*modules)


def read_secret(path: str | None, env: str, what: str) -> str:
    """Read a secret from its file (one line; see :func:`smpcloud.keyfiles.read_token_file`)
    or from an environment variable.

    Raises:
        click.UsageError: neither given.
        click.ClickException: the file is missing, unreadable or not one line.
    """
    if path:
        from smpcloud.keyfiles import read_token_file

        with friendly_errors():
            return read_token_file(path)
    text = os.environ.get(env, "").strip()
    if not text:
        raise click.UsageError(f"no {what}: pass --{what.replace(' ', '-')}-file or set {env}")
    return text


def _check_server(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise click.BadParameter(
            f"{value!r} is not a URL: give it as http://HOST:PORT or https://HOST"
        )
    return value


def server_option(func: F) -> F:
    """Add --server (also read from SMPCLOUD_SERVER), checked to be an http(s) URL."""
    return click.option(
        "--server",
        envvar="SMPCLOUD_SERVER",
        default="http://127.0.0.1:8000",
        show_default=True,
        callback=_check_server,
        help="Aggregation server URL (or SMPCLOUD_SERVER).",
    )(func)


def server_options(func: F) -> F:
    """Add --server and --task options (both also read from the environment)."""
    func = click.option(
        "--task",
        "task_id",
        envvar="SMPCLOUD_TASK",
        required=True,
        help="Task id (or SMPCLOUD_TASK).",
    )(func)
    return server_option(func)


def admin_token_option(func: F) -> F:
    """Add --admin-token-file (the admin token's file; else SMPCLOUD_ADMIN_TOKEN)."""
    return click.option(
        "--admin-token-file",
        type=click.Path(dir_okay=False),
        help="File holding the admin token, one line (or set SMPCLOUD_ADMIN_TOKEN).",
    )(func)


def token_from(token_file: str | None) -> str:
    """Read a client's or key holder's token from its token file, or from SMPCLOUD_TOKEN."""
    return read_secret(token_file, "SMPCLOUD_TOKEN", "token")


def json_default(obj: object) -> object:
    """``json.dumps`` default: datetimes as RFC 3339 (as the server sends them)."""
    if isinstance(obj, datetime):
        return obj.isoformat()
    return str(obj)


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


def encoding_options(func: F) -> F:
    """Add --length, --fixed and --range: how a task's values are encoded (every scheme)."""
    func = click.option(
        "--range",
        "value_range",
        type=(float, float),
        default=None,
        help="Declared range MIN MAX of each client value (required with --fixed).",
    )(func)
    func = click.option(
        "--fixed",
        "frac_bits",
        type=click.IntRange(0, 64),
        default=None,
        help="Fixed-point values with this many fractional bits (default: integers).",
    )(func)
    return click.option(
        "--length",
        default=1,
        show_default=True,
        type=click.IntRange(1),
        help="Values per client (1 = a scalar; more = a vector, summed element-wise).",
    )(func)


def validity_option(func: F) -> F:
    """Add --validity: how the task checks each report (every scheme)."""
    return click.option(
        "--validity",
        type=click.Choice(["range", "none"]),
        default="range",
        show_default=True,
        help="range: every report carries a validity proof that each value lies in the "
        "declared range (made by the client, checked before the report is acknowledged; a "
        "report that fails is refused), so no client can shift the sum beyond its own range or "
        "block the result. none: reports are trusted (faster; one forged report can shift "
        "the sum).",
    )(func)


def check_encoding_options(frac_bits: int | None, value_range: tuple[float, float] | None) -> None:
    """Refuse --fixed without --range, and a range whose MIN is not below its MAX."""
    if frac_bits is not None and value_range is None:
        raise click.UsageError("--fixed needs --range MIN MAX")
    if value_range is not None and value_range[0] >= value_range[1]:
        raise click.BadParameter("MIN must be below MAX", param_hint="--range")


def task_encoding(frac_bits: int | None, value_range: tuple[float, float] | None) -> TaskEncoding:
    """The task encoding --fixed and --range describe (integers when neither is given)."""
    from smpcloud.protocol.task_encoding import TaskEncoding

    if frac_bits is not None and value_range is not None:
        return TaskEncoding.fixed(frac_bits, *value_range)
    if value_range is not None:
        return TaskEncoding.integer(int(value_range[0]), int(value_range[1]))
    return TaskEncoding.integer()


__all__ = [
    "DEBUG_ENV",
    "EXIT_CODES_HELP",
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_NO_RESULT",
    "EXIT_USAGE",
    "F",
    "NoResultError",
    "SmpcloudGroup",
    "admin_token_option",
    "check_encoding_options",
    "command_name",
    "describe_error",
    "describe_os_error",
    "encoding_options",
    "err_console",
    "friendly_errors",
    "json_default",
    "needs_extra",
    "plain",
    "progress_printer",
    "read_secret",
    "server_option",
    "server_options",
    "task_encoding",
    "token_from",
]

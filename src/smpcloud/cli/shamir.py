"""``smpcloud shamir``: the service's Shamir mode (n servers, no key) from the command line.

The commands wrap the SDK (:class:`~smpcloud.client.shamir.ShamirAggregation` for the
administrator and analyst, :class:`~smpcloud.client.shamir.ShamirClient` for a data owner); the
files they read and write are described in :mod:`smpcloud.cli.shamir_files`. Every error a user
can cause is one line on stderr and exit status 1.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

import click

from smpcloud.cli._common import (
    F,
    check_encoding_options,
    encoding_options,
    friendly_errors,
    plain,
    task_encoding,
    validity_option,
)

if TYPE_CHECKING:
    from smpcloud.client.shamir import ShamirAggregation


@contextmanager
def shamir_errors() -> Iterator[None]:
    """:func:`friendly_errors`, with the SDK's notes (which server failed) in the one line."""
    from smpcloud.errors import SmpcError

    with friendly_errors():
        try:
            yield
        except SmpcError as exc:
            notes = getattr(exc, "__notes__", None)
            if notes:
                message = " ".join(f"{exc} ({'; '.join(notes)})".split())
                raise click.ClickException(f"{type(exc).__name__}: {message}") from exc
            raise


def servers_option(func: F) -> F:
    """Add --servers (the servers file; or SMPCLOUD_SHAMIR_SERVERS)."""
    return click.option(
        "--servers",
        "servers_path",
        envvar="SMPCLOUD_SHAMIR_SERVERS",
        required=True,
        type=click.Path(dir_okay=False, exists=True),
        help="servers.toml: each server's url and admin_token_file, in server order (or "
        "SMPCLOUD_SHAMIR_SERVERS).",
    )(func)


def task_option(func: F) -> F:
    """Add --task (the task file; or SMPCLOUD_SHAMIR_TASK)."""
    return click.option(
        "--task",
        "task_path",
        envvar="SMPCLOUD_SHAMIR_TASK",
        required=True,
        type=click.Path(dir_okay=False, exists=True),
        help="task.json from smpcloud shamir create (or SMPCLOUD_SHAMIR_TASK).",
    )(func)


def json_option(func: F) -> F:
    """Add --json."""
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")(func)


def open_task(servers_path: str, task_path: str) -> ShamirAggregation:
    """The administrator's handle on an existing task (servers file checked against it)."""
    from smpcloud.cli.shamir_files import check_same_servers, load_servers, load_task
    from smpcloud.client.shamir import ShamirAggregation

    servers = load_servers(servers_path)
    task = load_task(task_path)
    check_same_servers(servers, task, servers_path)
    return ShamirAggregation(
        servers, task.task_ids, threshold=task.threshold, share_keys=task.share_keys
    )


_REFUSAL_WHY: Final = {
    "bit": "its report fails the servers' joint bit check (a value outside the declared range)",
    "degree": "its shares are not on one polynomial (the servers' joint degree check fails)",
}


def _failures(failures: dict[int, str]) -> str:
    return "; ".join(f"server {j}: {why}" for j, why in sorted(failures.items()))


def _show(values: list[Any]) -> str:
    return str(values[0]) if len(values) == 1 else str(values)


@click.group("shamir")
def shamir() -> None:
    """The Shamir mode: n aggregation servers each get one share of every client's values.

    Any t servers rebuild the sum (t > n/2), so up to n - t may be offline; fewer than t
    colluding servers learn nothing about any input. Share j is sealed to server j's share key,
    pinned in task.json and in every client's credentials at creation: a proxy or TLS
    terminator in front of a server sees ciphertexts only. Server URLs must be https://, each on
    its own host, except loopback ones (127.0.0.1, ::1, localhost: local demonstrations).

    \b
    Administrator: smpcloud shamir create -> register -> (clients submit) -> close -> result
    Each client:   smpcloud shamir submit --credentials client_<id>.json VALUE...

    The servers file (--servers) lists the servers in order, each with the file holding its
    admin token:

    \b
      [[server]]
      url = "http://127.0.0.1:8001"
      admin_token_file = "admin-1.token"     # relative to servers.toml
    """


@shamir.command("create")
@servers_option
@click.option("--name", required=True, help="A human-readable task name.")
@click.option(
    "--threshold",
    "t",
    required=True,
    type=click.IntRange(2),
    help="t: servers whose shares rebuild the sum (more than half of the servers).",
)
@click.option(
    "--min-clients",
    required=True,
    type=click.IntRange(1),
    help="No sum is released over fewer clients.",
)
@click.option(
    "--max-clients",
    type=click.IntRange(1),
    default=None,
    help="Most clients the task accepts (default: the service's).",
)
@click.option(
    "--deadline",
    type=click.DateTime(),
    default=None,
    help="Close automatically at this time (ISO 8601, UTC).",
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for task.json (created).",
)
@encoding_options
@validity_option
def create(
    servers_path: str,
    name: str,
    t: int,
    min_clients: int,
    max_clients: int | None,
    length: int,
    frac_bits: int | None,
    value_range: tuple[float, float] | None,
    deadline: datetime | None,
    out_dir: Path,
    validity: Literal["range", "none"],
) -> None:
    """Create the task on every server (all must be reachable); write OUT/task.json.

    task.json is public: the servers' URLs, the task's id on each and each server's share key
    (pinned now: clients seal their shares to it and refuse a server that serves another). The
    other commands take it with --task.

    With --validity range (the default) the servers check jointly that every client's values
    lie in --range, and drop the reports that do not: it needs n = 2t - 1 servers (3 with
    --threshold 2, 5 with 3), max-clients x the encoded span of the range below 2^32 - 5 (for
    example --fixed 16 --range -1 1 --max-clients 10000), and every server at close.
    """
    from smpcloud.cli.shamir_files import load_servers, write_task
    from smpcloud.client.shamir import ShamirAggregation

    check_encoding_options(frac_bits, value_range)
    task_file = out_dir / "task.json"
    with shamir_errors():
        if task_file.exists():
            raise FileExistsError(f"refusing to overwrite {task_file}: choose another --out")
        servers = load_servers(servers_path)
        encoding = task_encoding(frac_bits, value_range)
        limits: dict[str, Any] = {} if max_clients is None else {"max_clients": max_clients}
        with ShamirAggregation.create_on_servers(
            servers,
            name=name,
            threshold=t,
            length=length,
            encoding=encoding,
            min_clients=min_clients,
            deadline=deadline,
            validity=validity,
            **limits,
        ) as aggregation:
            out_dir.mkdir(parents=True, exist_ok=True)
            write_task(task_file, aggregation.task)
    click.echo(
        f"task created on {len(servers)} servers (t = {t}, validity {validity}): {task_file}"
    )


@shamir.command("register")
@servers_option
@task_option
@click.option(
    "--clients",
    "count",
    required=True,
    type=click.IntRange(1, 1_000_000),
    help="Number of clients to register.",
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for client_<id>.json (mode 0600; created).",
)
def register(servers_path: str, task_path: str, count: int, out_dir: Path) -> None:
    """Register clients on every server (all must be reachable); one credentials file each.

    OUT/client_<id>.json (mode 0600) holds the client's number, its token on each server and
    each server's pinned share key: give it to that client only, over a secure channel that
    keeps it unaltered.
    """
    from smpcloud.cli.shamir_files import check_credentials_dir, write_credentials

    with shamir_errors(), open_task(servers_path, task_path) as aggregation:
        check_credentials_dir(out_dir)
        credentials = aggregation.register(count)
        paths = write_credentials(out_dir, credentials)
    first, last = credentials[0].client_id, credentials[-1].client_id
    click.echo(f"registered clients {first}..{last}: {paths[0].parent}/client_<id>.json (0600)")


@shamir.command("submit", context_settings={"ignore_unknown_options": True})
@click.option(
    "--credentials",
    "credentials_path",
    required=True,
    type=click.Path(dir_okay=False, exists=True),
    help="This client's client_<id>.json from smpcloud shamir register.",
)
@click.option(
    "--from-file",
    "values_file",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help="Read the values from this file (separated by commas, spaces or new lines).",
)
@json_option
@click.argument("values", nargs=-1, type=float)
def submit(
    credentials_path: str, values_file: str | None, as_json: bool, values: tuple[float, ...]
) -> None:
    """Share VALUES t-of-n on this machine and upload share j to server j.

    Give one value for a scalar task, or as many as the task's length (negative values are
    fine: smpcloud shamir submit --credentials c.json -3.5). Each server gets only a uniformly
    random share, sealed to its pinned share key; nothing is sent if a server serves another
    key, or if the credentials name plain http or shared hosts (other than loopback). The
    client counts once at least t servers hold its share and every server reachable when the
    task is closed does.
    """
    from smpcloud.cli.shamir_files import load_credentials, read_values
    from smpcloud.client.shamir import ShamirClient

    if values and values_file:
        raise click.UsageError("give VALUES or --from-file, not both")
    with shamir_errors():
        items = list(values) if values else (read_values(values_file) if values_file else [])
        if not items:
            raise click.UsageError("no values: give VALUES or --from-file")
        credentials = load_credentials(credentials_path)
        with ShamirClient(credentials) as client:
            done = client.submit(items[0] if len(items) == 1 else items)
    n = len(credentials.endpoints)
    if as_json:
        click.echo(json.dumps(plain(done), default=str))
        return
    reached = ", ".join(map(str, done.reached))
    click.echo(f"client {done.client_id}: share stored on servers {reached} of {n}")
    if done.failed:
        click.echo(
            f"  not stored on {_failures(dict(done.failed))}; this client counts only if those "
            "servers are still unreachable when the task is closed",
            err=True,
        )


@shamir.command("close")
@servers_option
@task_option
@json_option
def close(servers_path: str, task_path: str, as_json: bool) -> None:
    """Close every reachable server over one participant set (at least t must be reachable).

    The participant set is the clients whose share every reachable server holds. A task with
    validity range is closed with every server, and the reports that fail the servers' joint
    check are dropped by all of them: one line each names the client and the failed check.
    """
    with shamir_errors(), open_task(servers_path, task_path) as aggregation:
        closed = aggregation.close_all()
    if as_json:
        click.echo(json.dumps(plain(closed), default=str))
        return
    click.echo(
        f"closed servers {', '.join(map(str, closed.closed))} over {closed.count} participants"
    )
    for number, check in sorted(closed.refused.items()):
        click.echo(f"  client {number} refused: {_REFUSAL_WHY.get(check, check)}")
    if closed.unavailable:
        click.echo(f"  not closed: {_failures(dict(closed.unavailable))}", err=True)


@shamir.command("status")
@servers_option
@task_option
@json_option
def status(servers_path: str, task_path: str, as_json: bool) -> None:
    """Show each server's state, registered clients and reports; name the unreachable ones.

    Exits with status 1 when no server answers.
    """
    with shamir_errors(), open_task(servers_path, task_path) as aggregation:
        statuses, failures = aggregation.statuses()
    if not statuses:
        raise click.ClickException(f"no server answered: {_failures(failures)}")
    if as_json:
        payload = {
            "servers": {str(j): plain(s) for j, s in sorted(statuses.items())},
            "unavailable": {str(j): why for j, why in sorted(failures.items())},
        }
        click.echo(json.dumps(payload, default=str))
        return
    for j, s in sorted(statuses.items()):
        refused = ", ".join(f"{count} {reason}" for reason, count in sorted(s.refused.items()))
        click.echo(
            f"server {j}: {s.state}, {s.reports} reports of {s.registered_clients} registered "
            f"clients (min {s.min_clients})" + (f"; refused: {refused}" if refused else "")
        )
    for j, why in sorted(failures.items()):
        click.echo(f"server {j}: {why}")


@shamir.command("result")
@servers_option
@task_option
@json_option
def result(servers_path: str, task_path: str, as_json: bool) -> None:
    """Rebuild the sum from t closed servers: count, sum and average (element-wise)."""
    with shamir_errors(), open_task(servers_path, task_path) as aggregation:
        res = aggregation.result()
    if as_json:
        click.echo(json.dumps(plain(res), default=str))
        return
    click.echo(f"count   {res.count}")
    click.echo(f"sum     {_show(res.sum)}")
    click.echo(f"average {_show(res.average)}")
    click.echo(f"(from servers {', '.join(map(str, res.servers))})")
    if res.unavailable:
        click.echo(f"  not used: {_failures(dict(res.unavailable))}", err=True)
    if not res.within_declared_range:
        click.echo("  warning: some client sent a value outside the declared range", err=True)


__all__ = ["shamir"]

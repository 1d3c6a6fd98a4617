"""``smpcloud task``: the administrator creates, lists, inspects and closes aggregation tasks."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Literal

import click

from smpcloud.cli._common import (
    EXIT_CODES_HELP,
    NoResultError,
    admin_token_option,
    check_encoding_options,
    encoding_options,
    friendly_errors,
    read_secret,
    server_option,
    server_options,
    task_encoding,
    validity_option,
)

#: Task list rows shown unless --limit says otherwise (the server's default and maximum).
LIST_DEFAULT = 100
LIST_MAX = 1000


def admin_token(admin_token_file: str | None) -> str:
    """The administrator token from --admin-token-file or SMPCLOUD_ADMIN_TOKEN."""
    return read_secret(admin_token_file, "SMPCLOUD_ADMIN_TOKEN", "admin token")


@click.group("task")
def task() -> None:
    """Create, list, inspect and close aggregation tasks (administrator).

    Every task command needs the admin token the server was started with: set
    SMPCLOUD_ADMIN_TOKEN or pass --admin-token-file. --server defaults to
    http://127.0.0.1:8000 (or SMPCLOUD_SERVER).
    """


def _check_out_dir(out_dir: Path) -> None:
    """Refuse, before the server creates anything, a directory that already holds a task."""
    if out_dir.exists() and not out_dir.is_dir():
        raise click.BadParameter(f"{out_dir} is a file, not a directory", param_hint="--out")
    taken = [
        p
        for pattern in ("task.json", "client_*.token", "holder_*.token")
        for p in (out_dir.glob(pattern) if out_dir.is_dir() else [])
    ]
    if taken:
        raise click.ClickException(
            f"{taken[0]} already exists: choose another --out directory (a task's tokens are "
            "never overwritten)"
        )
    with friendly_errors():
        out_dir.mkdir(parents=True, exist_ok=True)


@task.command(
    "create",
    epilog="""\b
Example (keys/ from smpcloud keygen, a server from smpcloud serve):
  smpcloud task create --public-key keys/public_key.json --holders keys/holders.json \\
      --name "average BMI" --clients 100 --min-clients 10 --fixed 16 --range 0 100 --out task/
  export SMPCLOUD_TASK=$(python -c \
      'import json; print(json.load(open("task/task.json"))["task_id"])')
""",
)
@server_option
@admin_token_option
@click.option(
    "--public-key",
    "public_key_path",
    required=True,
    type=click.Path(dir_okay=False, exists=True),
    help="public_key.json from keygen.",
)
@click.option(
    "--holders",
    "holders_path",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help="holders.json from keygen: the key holders' roster. Upload it with the task so the "
    "key holders can certify it (smpcloud certify); clients refuse tasks t holders did not "
    "certify.",
)
@click.option("--name", required=True, help="A human-readable task name.")
@click.option(
    "--clients",
    default=10,
    show_default=True,
    type=click.IntRange(1, 1_000_000),
    help="Number of client tokens to issue.",
)
@click.option(
    "--min-clients",
    default=3,
    show_default=True,
    type=click.IntRange(2),
    help="No result is released unless at least this many clients reported.",
)
@click.option(
    "--packed",
    is_flag=True,
    help="Pack many values into each ciphertext (long vectors: 20x or more fewer "
    "ciphertexts). Needs --range; the task then accepts at most --clients clients.",
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
    help="New directory (or one without a task) for task.json and the token files.",
)
@encoding_options
@validity_option
def task_create(
    server: str,
    admin_token_file: str | None,
    public_key_path: str,
    holders_path: str | None,
    name: str,
    clients: int,
    min_clients: int,
    length: int,
    frac_bits: int | None,
    value_range: tuple[float, float] | None,
    packed: bool,
    deadline: datetime | None,
    out_dir: Path,
    validity: Literal["range", "none"],
) -> None:
    """Create a task, issue client tokens and key-holder tokens, and write them to OUT.

    Writes OUT/task.json (server and task id), OUT/client_<j>.token and OUT/holder_<i>.token:
    plain text, one line each (the token), mode 0600. Give each client and each key holder
    its token over a secure channel. With --holders the roster goes with the task: t key
    holders then certify it (smpcloud certify) before clients can submit. Without it nobody
    can certify the task, and clients (who pin the holders) refuse to submit to it.
    """
    from smpcloud.client import Admin, TaskEncoding
    from smpcloud.crypto.packing import Packing
    from smpcloud.crypto.signatures import Roster
    from smpcloud.keyfiles import (
        load_roster,
        load_threshold_public_key,
        write_public_json,
        write_secret_text,
    )

    token = admin_token(admin_token_file)
    check_encoding_options(frac_bits, value_range)
    if packed and value_range is None:
        raise click.UsageError("--packed needs --range MIN MAX")
    roster: Roster | None = None
    with friendly_errors(server):
        public_key = load_threshold_public_key(public_key_path)
        if holders_path is not None:
            roster = load_roster(holders_path)
            if (roster.threshold, roster.size) != (public_key.threshold, public_key.holders):
                raise click.BadParameter(
                    f"{holders_path} is a {roster.threshold}-of-{roster.size} roster; the key "
                    f"is {public_key.threshold}-of-{public_key.holders}: give the holders.json "
                    "of the same keygen",
                    param_hint="--holders",
                )
    _check_out_dir(out_dir)
    with friendly_errors(server):
        packing: Packing | None = None
        encoding: TaskEncoding | None
        if packed and value_range is not None:
            bounds: tuple[float, float] | tuple[int, int] = (
                value_range if frac_bits else (int(value_range[0]), int(value_range[1]))
            )
            packing = Packing.for_key(
                public_key.public_key,
                length=length,
                min_value=bounds[0],
                max_value=bounds[1],
                max_additions=clients,
                frac_bits=frac_bits or 0,
            )
            encoding = None  # implied by the layout
        else:
            encoding = task_encoding(frac_bits, value_range)
        with Admin(server, token) as admin:
            created = admin.create_task(
                public_key,
                name=name,
                length=length,
                encoding=encoding,
                min_clients=min_clients,
                deadline=deadline,
                packing=packing,
                roster=roster,
                validity=validity,
            )
            credentials = admin.register_clients(created.task_id, clients)
        write_public_json(out_dir / "task.json", {"server": server, "task_id": created.task_id})
        for i, holder_token in enumerate(created.holder_tokens, start=1):
            write_secret_text(out_dir / f"holder_{i}.token", holder_token)
        for j, cred in enumerate(credentials, start=1):
            write_secret_text(out_dir / f"client_{j}.token", cred.token)
    click.echo(
        f"task {created.task_id} created with {clients} client tokens and "
        f"{len(created.holder_tokens)} key-holder tokens in {out_dir}"
    )
    if roster is not None:
        click.echo(
            f"  next: {roster.threshold} of {roster.size} key holders run smpcloud certify; "
            "clients submit with --holders holders.json"
        )
    else:
        click.echo(
            "  no --holders: key holders cannot certify this task, and clients will refuse it",
            err=True,
        )


@task.command(
    "list",
    epilog="""\b
Examples:
  smpcloud task list
  smpcloud task list --limit 10 --json
""",
)
@server_option
@admin_token_option
@click.option(
    "--limit",
    default=LIST_DEFAULT,
    show_default=True,
    type=click.IntRange(1, LIST_MAX),
    help=f"Show at most this many tasks, newest first (at most {LIST_MAX}).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the server's JSON instead.")
def task_list(server: str, admin_token_file: str | None, limit: int, as_json: bool) -> None:
    """List the server's tasks, newest first: id, name, scheme, state, reports, created."""
    from smpcloud.cli.show import task_list_lines, wire_json
    from smpcloud.client import Admin
    from smpcloud.protocol.schemas import TaskListOut

    token = admin_token(admin_token_file)
    with friendly_errors(server), Admin(server, token) as admin:
        page = admin.list_tasks(limit=limit)
    if as_json:
        click.echo(wire_json(TaskListOut, page))
        return
    click.echo("\n".join(task_list_lines(page)))


@task.command(
    "close",
    epilog=f"""\b
Example (SMPCLOUD_TASK set as after smpcloud task create):
  smpcloud task close

{EXIT_CODES_HELP}
""",
)
@server_options
@admin_token_option
def task_close(server: str, task_id: str, admin_token_file: str | None) -> None:
    """Close a task now: no more uploads; the server publishes the aggregate and the count.

    With fewer reports than the task's --min-clients, the task closes for good without a
    result: the command says so and exits with status 3.
    """
    from smpcloud.client import Admin

    token = admin_token(admin_token_file)
    with friendly_errors(server), Admin(server, token) as admin:
        status = admin.close(task_id)
    received = f"{status.reports} of {status.min_clients} required reports"
    if status.state == "insufficient":
        raise NoResultError(
            f"task {task_id} closed with {received}: it will never release a result "
            "(create a new task to try again)"
        )
    if status.state == "withheld":
        raise NoResultError(
            f"task {task_id}: its result is withheld for good (the decrypted sums left the "
            "declared bounds): it will never release a result"
        )
    if status.state == "decrypted":
        click.echo(f"task {task_id} is closed and decrypted: smpcloud result shows the result")
    elif status.scheme == "shamir":
        click.echo(f"task {task_id} closed with {received}")
    else:
        click.echo(
            f"task {task_id} closed with {received}; now {status.threshold} of "
            f"{status.holders} key holders run smpcloud decrypt"
        )


@task.command(
    "status",
    epilog="""\b
Examples (SMPCLOUD_TASK set as after smpcloud task create):
  smpcloud task status
  smpcloud task status --json
""",
)
@server_options
@admin_token_option
@click.option("--json", "as_json", is_flag=True, help="Print the server's JSON instead.")
def task_status(server: str, task_id: str, admin_token_file: str | None, as_json: bool) -> None:
    """Show a task's state, reports received and needed, decryption progress and deadline."""
    from smpcloud.cli.show import status_lines, wire_json
    from smpcloud.client import Admin
    from smpcloud.protocol.schemas import TaskStatusOut

    token = admin_token(admin_token_file)
    with friendly_errors(server), Admin(server, token) as admin:
        status = admin.status(task_id)
    if as_json:
        click.echo(wire_json(TaskStatusOut, status))
        return
    click.echo("\n".join(status_lines(status)))


__all__ = ["task"]

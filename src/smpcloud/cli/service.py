"""The aggregation service's commands: ``task``, ``submit``, ``decrypt`` and ``result``.

``serve`` is :func:`smpcloud.service.__main__.serve_command`, registered by :mod:`smpcloud.cli`.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import click

from smpcloud.cli._common import (
    admin_token_option,
    friendly_errors,
    plain,
    read_secret,
    server_options,
    token_from,
)


@click.group("task")
def task() -> None:
    """Create, inspect and close aggregation tasks (administrator)."""


@task.command("create")
@click.option(
    "--server",
    envvar="SMPCLOUD_SERVER",
    default="http://127.0.0.1:8000",
    show_default=True,
    help="Aggregation server URL (or SMPCLOUD_SERVER).",
)
@admin_token_option
@click.option(
    "--public-key",
    "public_key_path",
    required=True,
    type=click.Path(dir_okay=False, exists=True),
    help="public_key.json from keygen.",
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
    type=click.IntRange(1),
    help="No result is released unless at least this many clients reported.",
)
@click.option(
    "--length",
    default=1,
    show_default=True,
    type=click.IntRange(1),
    help="Values per report (1 = a scalar; more = a vector, summed element-wise).",
)
@click.option(
    "--fixed",
    "frac_bits",
    type=click.IntRange(0, 64),
    default=None,
    help="Fixed-point values with this many fractional bits (default: integers).",
)
@click.option(
    "--range",
    "value_range",
    type=(float, float),
    default=None,
    help="Declared range MIN MAX of each client value (required with --fixed).",
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
    help="Directory for task.json and the tokens (mode 0600).",
)
def task_create(
    server: str,
    admin_token_file: str | None,
    public_key_path: str,
    name: str,
    clients: int,
    min_clients: int,
    length: int,
    frac_bits: int | None,
    value_range: tuple[float, float] | None,
    packed: bool,
    deadline: datetime | None,
    out_dir: Path,
) -> None:
    """Create a task, issue client tokens and key-holder tokens, and write them to OUT.

    Writes OUT/task.json (server and task id), OUT/client_<j>.token and OUT/holder_<i>.token
    (mode 0600). Give each client and each key holder its token over a secure channel.
    """
    from smpcloud.client import Admin, TaskEncoding
    from smpcloud.crypto import threshold
    from smpcloud.crypto.packing import Packing
    from smpcloud.keyfiles import read_json, write_public_json, write_secret_json

    token = read_secret(admin_token_file, "SMPCLOUD_ADMIN_TOKEN", "admin token")
    if frac_bits is not None and value_range is None:
        raise click.UsageError("--fixed needs --range MIN MAX")
    if packed and value_range is None:
        raise click.UsageError("--packed needs --range MIN MAX")
    with friendly_errors():
        public_key = threshold.public_key_from_json(read_json(public_key_path))
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
        elif frac_bits is not None and value_range is not None:
            encoding = TaskEncoding.fixed(frac_bits, *value_range)
        elif value_range is not None:
            encoding = TaskEncoding.integer(int(value_range[0]), int(value_range[1]))
        else:
            encoding = TaskEncoding.integer()
        with Admin(server, token) as admin:
            created = admin.create_task(
                public_key,
                name=name,
                length=length,
                encoding=encoding,
                min_clients=min_clients,
                deadline=deadline,
                packing=packing,
            )
            credentials = admin.register_clients(created.task_id, clients)
        out_dir.mkdir(parents=True, exist_ok=True)
        write_public_json(out_dir / "task.json", {"server": server, "task_id": created.task_id})
        for i, holder_token in enumerate(created.holder_tokens, start=1):
            write_secret_json(out_dir / f"holder_{i}.token", holder_token)
        for j, cred in enumerate(credentials, start=1):
            write_secret_json(out_dir / f"client_{j}.token", cred.token)
    click.echo(
        f"task {created.task_id} created with {clients} client tokens and "
        f"{len(created.holder_tokens)} key-holder tokens in {out_dir}"
    )


@task.command("close")
@server_options
@admin_token_option
def task_close(server: str, task_id: str, admin_token_file: str | None) -> None:
    """Close a task now: no more uploads; the server publishes the aggregate and the count."""
    from smpcloud.client import Admin

    token = read_secret(admin_token_file, "SMPCLOUD_ADMIN_TOKEN", "admin token")
    with friendly_errors(), Admin(server, token) as admin:
        status = admin.close(task_id)
    click.echo(f"task {task_id}: {status.state}, {status.count} reports")


@task.command("status")
@server_options
@admin_token_option
def task_status(server: str, task_id: str, admin_token_file: str | None) -> None:
    """Show a task's state, number of reports and partial decryptions received."""
    from smpcloud.client import Admin

    token = read_secret(admin_token_file, "SMPCLOUD_ADMIN_TOKEN", "admin token")
    with friendly_errors(), Admin(server, token) as admin:
        status = admin.status(task_id)
    click.echo(json.dumps(plain(status), default=str))


@click.command("submit")
@server_options
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False, exists=True),
    help="This client's token file (or set SMPCLOUD_TOKEN).",
)
@click.argument("values", nargs=-1, required=True, type=float)
def submit(server: str, task_id: str, token_file: str | None, values: tuple[float, ...]) -> None:
    """Encrypt VALUES locally and upload them as this client's one report.

    Give one value for a scalar task, or as many values as the task's length. Only the
    ciphertexts leave this machine. A second submission is refused by the server (409).
    """
    from smpcloud.client import Client

    token = token_from(token_file)
    payload: float | list[float] = values[0] if len(values) == 1 else list(values)
    with friendly_errors(), Client(server, task_id, token) as client:
        client.submit(payload)
    click.echo(f"submitted {len(values)} encrypted value(s) to task {task_id}")


@click.command("decrypt")
@server_options
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False, exists=True),
    help="This key holder's token file (or set SMPCLOUD_TOKEN).",
)
@click.option(
    "--key-share",
    "key_share_path",
    required=True,
    type=click.Path(dir_okay=False, exists=True),
    help="key_share_<i>.json from keygen.",
)
def decrypt(server: str, task_id: str, token_file: str | None, key_share_path: str) -> None:
    """As a key holder: fetch the aggregate, partially decrypt it with a proof, upload.

    The key share never leaves this machine; the partial decryption alone reveals nothing.
    Once t key holders have done this, the server publishes the result.
    """
    from smpcloud.client import KeyHolder
    from smpcloud.crypto import threshold
    from smpcloud.keyfiles import read_json

    token = token_from(token_file)
    with friendly_errors():
        share = threshold.key_share_from_json(read_json(key_share_path))
        with KeyHolder(server, task_id, token, share) as holder:
            holder.contribute()
    click.echo(f"key holder {share.index}: partial decryption uploaded for task {task_id}")


@click.command("result")
@server_options
@admin_token_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def result(server: str, task_id: str, admin_token_file: str | None, as_json: bool) -> None:
    """Print a task's result: sum, count and average (element-wise for vectors)."""
    from smpcloud.client import Admin

    token = read_secret(admin_token_file, "SMPCLOUD_ADMIN_TOKEN", "admin token")
    with friendly_errors(), Admin(server, token) as admin:
        res = admin.result(task_id)
    if as_json:
        click.echo(json.dumps(plain(res), default=str))
        return
    click.echo(f"count   {res.count}")
    click.echo(f"sum     {res.sum if len(res.sum) > 1 else res.sum[0]}")
    click.echo(f"average {res.average if len(res.average) > 1 else res.average[0]}")


__all__ = ["decrypt", "result", "submit", "task"]

"""The aggregation service's participant commands: ``submit``, ``certify``, ``decrypt``, ``result``.

``task`` (the administrator's group) is in :mod:`.task`; ``serve`` in :mod:`.serve`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from smpcloud.cli._common import (
    admin_token_option,
    err_console,
    friendly_errors,
    read_secret,
    server_options,
    token_from,
)
from smpcloud.cli.task import task

if TYPE_CHECKING:
    from smpcloud.client import Receipt
    from smpcloud.crypto.signatures import SigningKey


F = TypeVar("F", bound=Callable[..., Any])


def holder_options(*, signing_required: bool, signing_help: str) -> Callable[[F], F]:
    """A key holder's files: --token-file, --key-share and --signing-key (certify, decrypt)."""

    def decorate(command: F) -> F:
        command = click.option(
            "--signing-key",
            "signing_key_path",
            required=signing_required,
            default=None,
            type=click.Path(dir_okay=False, exists=True),
            help=signing_help,
        )(command)
        command = click.option(
            "--key-share",
            "key_share_path",
            required=True,
            type=click.Path(dir_okay=False, exists=True),
            help="key_share_<i>.json from keygen (the served key must be the one it belongs to).",
        )(command)
        return click.option(
            "--token-file",
            type=click.Path(dir_okay=False, exists=True),
            help="This key holder's token file (or set SMPCLOUD_TOKEN).",
        )(command)

    return decorate


def receipt_target(receipt_path: Path | None, token_file: str | None, task_id: str) -> Path:
    """Where ``submit`` writes the receipt; an explicit ``--receipt`` must not exist yet.

    Default: beside the token file, ``<token-file-stem>.receipt.json``; without a token file
    (SMPCLOUD_TOKEN), ``receipt-<task>.json`` in the current directory. An explicit file that
    exists is refused before anything is sent; a default one that exists (a second attempt)
    gets a numbered sibling once the server has accepted the report (:func:`write_receipt`).

    Raises:
        click.UsageError: ``receipt_path`` exists already (a receipt is never overwritten).
    """
    if receipt_path is not None:
        if receipt_path.exists():
            raise click.UsageError(
                f"{receipt_path} exists already: move it away or give another --receipt FILE "
                "(a receipt is never overwritten)"
            )
        return receipt_path
    if token_file is not None:
        token_path = Path(token_file)
        return token_path.with_name(f"{token_path.stem}.receipt.json")
    return Path(f"receipt-{task_id}.json")


def write_receipt(target: Path, receipt: Receipt | None) -> str:
    """Write the server's receipt to a new file (mode 0644); return the line saying where.

    Never overwrites: if ``target`` exists, the receipt goes to the first free
    ``<name>-2.json``, ``<name>-3.json``, ... beside it, and the line says so.

    Raises:
        click.ClickException: the file cannot be written.
    """
    if receipt is None:
        return "the server issued no receipt"
    from smpcloud.keyfiles import write_public_json

    chosen, number = target, 1
    while chosen.exists():
        number += 1
        chosen = target.with_name(f"{target.name.removesuffix('.json')}-{number}.json")
    with friendly_errors():
        write_public_json(chosen, receipt.to_json())
    moved = f" ({target} exists: not overwritten)" if chosen != target else ""
    return (
        f"receipt (signed by the server, leaf {receipt.leaf[:16]}...) written to {chosen}{moved}; "
        f"after the task closes, check it: smpcloud receipt verify --receipt {chosen}"
    )


#: Above this many values, `submit` proves a `range` task's report on every core (a value's
#: proof costs ~10 ms; starting the worker processes ~0.3 s).
PROOF_POOL_MIN_VALUES = 100


@click.command(
    "submit",
    context_settings={"ignore_unknown_options": True},
    epilog="""\b
Examples (SMPCLOUD_TASK set; t key holders ran smpcloud certify):
  smpcloud submit --holders keys/holders.json --token-file task/client_1.token 27.4
  echo '[24.5]' > value.json
  smpcloud submit --holders keys/holders.json --token-file task/client_2.token \\
      --from-file value.json
Instead of --holders keys/holders.json, a client may pin --holders-fingerprint HEX (the
holders fingerprint smpcloud keygen printed), or set SMPCLOUD_HOLDERS or
SMPCLOUD_HOLDERS_FINGERPRINT.
A vector task takes as many values as its --length: 0.5 -1.25 3 (negative values are fine),
or a file: .csv (one row or one column), .npy (a 1-D array) or .json (a list of numbers).
""",
)
@server_options
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False, exists=True),
    help="This client's token file (or set SMPCLOUD_TOKEN).",
)
@click.option(
    "--holders",
    "holders_path",
    envvar="SMPCLOUD_HOLDERS",
    type=click.Path(dir_okay=False),
    default=None,
    help="The key holders' roster, holders.json from keygen (or set SMPCLOUD_HOLDERS): "
    "submit only if t of these holders certified the task's key and parameters.",
)
@click.option(
    "--holders-fingerprint",
    "holders_fingerprint",
    envvar="SMPCLOUD_HOLDERS_FINGERPRINT",
    default=None,
    help="Instead of --holders: the roster's digest (64 hex digits, the holders fingerprint "
    "keygen printed; or set SMPCLOUD_HOLDERS_FINGERPRINT); the server's roster must have it.",
)
@click.option(
    "--from-file",
    "from_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="Read the values from a .csv, .npy or .json file instead of VALUES.",
)
@click.option(
    "--receipt",
    "receipt_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the server's signed receipt to this new file (default: beside the token "
    "file, <token-file-stem>.receipt.json). Never overwritten.",
)
@click.argument("values", nargs=-1, required=False)
def submit(
    server: str,
    task_id: str,
    token_file: str | None,
    holders_path: str | None,
    holders_fingerprint: str | None,
    from_file: Path | None,
    receipt_path: Path | None,
    values: tuple[str, ...],
) -> None:
    """Encrypt VALUES locally and upload them as this client's one report.

    Give one value for a scalar task, or as many values as the task's length (or
    --from-file). Only the ciphertexts leave this machine. A second submission is refused by
    the server. The server's signed receipt is checked and written to a file: with it,
    `smpcloud receipt verify` checks that the published log includes this report.

    Before encrypting anything, checks that t of the key holders you pinned (--holders
    holders.json, or --holders-fingerprint) signed the task's key and parameters as the
    server serves them: a server that substituted its own key, or lowered the minimum number
    of clients, is refused (exit status 1).
    """
    from smpcloud.cli.value_files import values_from_arguments, values_from_file

    if from_file is not None and values:
        raise click.UsageError("give either VALUES or --from-file, not both")
    if from_file is None and not values:
        raise click.UsageError("give the values to submit: VALUES or --from-file PATH")
    numbers = values_from_arguments(values)
    if from_file is not None:
        with friendly_errors():
            numbers = values_from_file(from_file)
    token = token_from(token_file)
    if not holders_path and not holders_fingerprint:
        raise click.UsageError(
            "pin the key holders: pass --holders keys/holders.json (from smpcloud keygen) or "
            "--holders-fingerprint HEX (the holders fingerprint keygen printed), or set "
            "SMPCLOUD_HOLDERS / SMPCLOUD_HOLDERS_FINGERPRINT"
        )
    if holders_path and holders_fingerprint:
        raise click.UsageError("give either --holders or --holders-fingerprint, not both")
    target = receipt_target(receipt_path, token_file, task_id)

    from smpcloud.client import Client
    from smpcloud.keyfiles import load_roster

    with friendly_errors():
        roster = load_roster(holders_path) if holders_path else None
    payload = numbers[0] if len(numbers) == 1 else numbers
    with (
        friendly_errors(server),
        Client(
            server, task_id, token, holders=roster, holders_fingerprint=holders_fingerprint
        ) as client,
    ):
        info = client.info()
        certified = info.certified_by
        proved = info.validity == "range"
        if proved and len(numbers) > PROOF_POOL_MIN_VALUES:
            from smpcloud.parallel import CryptoPool

            err_console.print(
                f"[dim]... encrypting and proving {len(numbers)} values in range, on every "
                "core[/dim]"
            )
            with CryptoPool(None) as pool:
                receipt = client.submit(payload, pool=pool)
        else:
            receipt = client.submit(payload)
    signed = ", ".join(str(i) for i in certified)
    proof = " with a validity proof" if proved else ""
    click.echo(
        f"submitted {len(numbers)} encrypted value(s){proof} to task {task_id} "
        f"(certified by key holders {signed})"
    )
    click.echo(write_receipt(target, receipt))


@click.command(
    "certify",
    epilog="""\b
Example (key holder 2, SMPCLOUD_TASK set, after smpcloud task create --holders):
  smpcloud certify --token-file task/holder_2.token --key-share keys/key_share_2.json \\
      --signing-key keys/signing_key_2.json --min-clients-at-least 10
""",
)
@server_options
@holder_options(
    signing_required=True,
    signing_help="signing_key_<i>.json from keygen: this holder's signing key.",
)
@click.option(
    "--min-clients-at-least",
    "min_clients_at_least",
    type=click.IntRange(2, None),
    default=None,
    help="Refuse to sign unless the task requires at least this many clients (the server "
    "chose min_clients: with too few, the sum gives away a client's value).",
)
def certify(
    server: str,
    task_id: str,
    token_file: str | None,
    key_share_path: str,
    signing_key_path: str,
    min_clients_at_least: int | None,
) -> None:
    """As a key holder: check the task's key and sign its key and parameters.

    Refuses unless the server serves the key your share belongs to (with its holders and
    threshold). Then signs the task's statement (key digest, holders, threshold, length,
    encoding, range, packing, min and max clients) and uploads the signature. Clients submit
    only once t key holders have certified the task. It prints what it signed: your
    signature says you agree to those parameters (the server chose them: compare them with
    the administrator's announcement, and tell the clients if they differ).
    """
    from smpcloud.client import KeyHolder
    from smpcloud.keyfiles import load_key_share, load_signing_key

    token = token_from(token_file)
    with friendly_errors(server):
        share = load_key_share(key_share_path)
        signing_key = load_signing_key(signing_key_path)
        with KeyHolder(server, task_id, token, share) as holder:
            accepted = holder.certify(signing_key, min_clients_at_least=min_clients_at_least)
    fields = accepted.signed
    signed = ", ".join(str(i) for i in accepted.certified_by)
    click.echo(
        f"key holder {accepted.holder} certified task {task_id}; certified by holders {signed} "
        f"({len(accepted.certified_by)} of {accepted.threshold} needed)"
    )
    click.echo(
        f"  signed: {fields.get('name')!r}, {fields.get('threshold')}-of-{fields.get('holders')} "
        f"key {str(fields.get('key_digest'))[:16]}, {fields.get('length')} value(s) per client, "
        f"encoding {fields.get('encoding')}, packing {fields.get('packing') or 'none'}, "
        f"{fields.get('min_clients')} to {fields.get('max_clients')} clients"
    )


@click.command(
    "decrypt",
    epilog="""\b
Example (key holder 2, SMPCLOUD_TASK set, after smpcloud task close):
  smpcloud decrypt --token-file task/holder_2.token --key-share keys/key_share_2.json \\
      --signing-key keys/signing_key_2.json
""",
)
@server_options
@holder_options(
    signing_required=False,
    signing_help="signing_key_<i>.json from keygen: attest the log and aggregate checked "
    "(clients that pin the holders' roster check it).",
)
@click.option(
    "--holders",
    "holders_path",
    envvar="SMPCLOUD_HOLDERS",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help="holders.json from keygen (or SMPCLOUD_HOLDERS): first check that the task as served "
    "now is the one t key holders certified (its minimum of clients above all).",
)
def decrypt(
    server: str,
    task_id: str,
    token_file: str | None,
    key_share_path: str,
    signing_key_path: str | None,
    holders_path: str | None,
) -> None:
    """As a key holder: check the aggregate, partially decrypt it with a proof, upload.

    First the aggregate is checked against the server's signed report log: it must be the
    product of exactly the logged reports, from distinct clients, as many as its count and at
    least the task's minimum (with --holders, the minimum t key holders certified, not the one
    the server serves now); otherwise nothing is decrypted. The key share never leaves this
    machine; the partial decryption alone reveals nothing. Once t key holders have done this,
    the server publishes the result.
    """
    from smpcloud.client import KeyHolder
    from smpcloud.keyfiles import load_key_share, load_roster

    token = token_from(token_file)
    with friendly_errors(server):
        share = load_key_share(key_share_path)
        signing_key = _signing_key(signing_key_path)
        roster = load_roster(holders_path) if holders_path else None
        with KeyHolder(
            server, task_id, token, share, signing_key=signing_key, holders=roster
        ) as holder:
            checked = holder.contribute()
    if checked is not None:
        click.echo(checked.describe())
    attested = " with its attestation" if signing_key is not None else ""
    click.echo(
        f"key holder {share.index}: partial decryption uploaded{attested} for task {task_id}"
    )


def _signing_key(path: str | None) -> SigningKey | None:
    """The key holder's signing key from its file, if given."""
    if path is None:
        return None
    from smpcloud.keyfiles import load_signing_key

    return load_signing_key(path)


@click.command(
    "result",
    epilog="""\b
Examples (SMPCLOUD_TASK set, once t key holders ran smpcloud decrypt):
  smpcloud result
  smpcloud result --json
""",
)
@server_options
@admin_token_option
@click.option("--json", "as_json", is_flag=True, help="Print the server's JSON instead.")
@click.option(
    "--all",
    "show_all",
    is_flag=True,
    help="For a vector, print every value (default: the first 10 and how many more).",
)
def result(
    server: str, task_id: str, admin_token_file: str | None, as_json: bool, show_all: bool
) -> None:
    """Print a task's result: count, sum and average (one line per value for vectors)."""
    from smpcloud.cli.show import result_lines, wire_json
    from smpcloud.client import Admin
    from smpcloud.protocol.schemas import ResultOut

    token = read_secret(admin_token_file, "SMPCLOUD_ADMIN_TOKEN", "admin token")
    with friendly_errors(server), Admin(server, token) as admin:
        res = admin.result(task_id)
    if as_json:
        click.echo(wire_json(ResultOut, res))
        return
    click.echo("\n".join(result_lines(res, show_all=show_all)))


__all__ = ["certify", "decrypt", "result", "submit", "task"]

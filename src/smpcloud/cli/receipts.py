"""``smpcloud receipt verify``: a client checks that the published report log includes its report.

``smpcloud submit`` writes the server's signed receipt to a file; once the task is closed,
``receipt verify`` checks the receipt's signature, that the published root is signed by the
same server key, that the report's leaf is in that root's tree, and (with ``--holders``, once
the task is decrypted) that t pinned key holders attested that root and the aggregate they
decrypted (:func:`smpcloud.client.verify_receipt`). One line per check; exit status 1 naming
the check that failed.
"""

from __future__ import annotations

from pathlib import Path

import click

from smpcloud.cli._common import friendly_errors, server_option, token_from


@click.group("receipt")
def receipt() -> None:
    """Check the server's signed receipt of your report against its published log."""


@receipt.command(
    "verify",
    epilog="""\b
Example (after smpcloud task close, with the receipt smpcloud submit wrote):
  smpcloud receipt verify --token-file task/client_1.token \\
      --receipt task/client_1.receipt.json --holders keys/holders.json
""",
)
@server_option
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False, exists=True),
    help="This client's token file (or set SMPCLOUD_TOKEN).",
)
@click.option(
    "--receipt",
    "receipt_path",
    required=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="The receipt smpcloud submit wrote (<token-file-stem>.receipt.json).",
)
@click.option(
    "--holders",
    "holders_path",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="The key holders' roster (holders.json from keygen): once the task is decrypted, "
    "check that t of them attested the log and aggregate.",
)
def verify(
    server: str, token_file: str | None, receipt_path: Path, holders_path: Path | None
) -> None:
    """Check that the server's published report log includes the report of RECEIPT.

    The task comes from the receipt. Prints one line per check; exits 1 naming the check that
    failed (receipt, log, inclusion or attestations).
    """
    from smpcloud.client import Receipt, ReceiptVerificationError, verify_receipt
    from smpcloud.keyfiles import load_roster, read_json

    token = token_from(token_file)
    with friendly_errors():
        receipt_obj = Receipt.from_json(read_json(receipt_path))
        roster = load_roster(holders_path) if holders_path is not None else None
    try:
        with friendly_errors(server):
            checked = verify_receipt(server, token, receipt_obj, holders=roster)
    except click.ClickException as exc:
        cause = exc.__cause__
        if isinstance(cause, ReceiptVerificationError):
            raise click.ClickException(f"FAILED {cause}") from None
        raise
    for line in checked.lines:
        click.echo(f"ok  {line}")
    click.echo(f"receipt {receipt_path} verified against task {receipt_obj.task_id}")


__all__ = ["receipt"]

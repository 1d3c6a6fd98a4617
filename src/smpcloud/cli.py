"""The ``smpcloud`` command line: ``smpcloud --help`` lists every command."""

from __future__ import annotations

import json

import click
from rich.console import Console
from rich.table import Table

from smpcloud import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="smpcloud")
def main() -> None:
    """smpcloud: compute sums, averages and statistics over data nobody may see.

    Secure multi-party computation from Shamir secret sharing, Paillier encryption and
    threshold decryption. Start with `smpcloud demo`.
    """


@main.command()
@click.option(
    "--clients",
    default=5,
    show_default=True,
    type=click.IntRange(1, 10_000),
    help="Number of simulated hospitals, each with one private count.",
)
@click.option(
    "--servers",
    default=3,
    show_default=True,
    type=click.IntRange(1, 100),
    help="Shamir: number of non-colluding servers (shares per value).",
)
@click.option(
    "--threshold",
    default=2,
    show_default=True,
    type=click.IntRange(1, 100),
    help="Shamir: servers needed to reconstruct the total (t of n).",
)
@click.option(
    "--bits",
    default=2048,
    show_default=True,
    type=click.Choice(["2048", "3072"]),
    help="Paillier modulus size.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
def demo(clients: int, servers: int, threshold: int, bits: str, as_json: bool) -> None:
    """Run a secure sum of private hospital counts, with Shamir and with Paillier.

    Each client's value is hidden: Shamir servers see random shares, the Paillier cloud sees
    ciphertexts. Only the total is revealed. The plaintext total is printed for comparison.
    """
    from smpcloud.apps import primitives_demo
    from smpcloud.errors import InvalidInputError

    if threshold > servers:
        raise click.BadParameter(
            f"threshold {threshold} exceeds the number of servers {servers}",
            param_hint="--threshold",
        )
    console = Console(stderr=as_json)
    with console.status("generating a Paillier key and running both secure sums..."):
        try:
            report = primitives_demo.run(
                clients, servers=servers, threshold=threshold, bits=int(bits)
            )
        except InvalidInputError as exc:
            raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(report.to_json()))
        return
    console.print(
        f"[bold]Private inputs[/] (never sent anywhere in the clear): {report.inputs[:10]}"
        + (" ..." if clients > 10 else "")
    )
    console.print(
        f"\n[bold]1. Shamir secure sum[/] — {servers} servers, any {threshold} reconstruct"
    )
    for line in report.server_views:
        console.print(f"   {line}   (random-looking field elements)")
    console.print(f"\n[bold]2. Paillier homomorphic sum[/] — {report.paillier_bits}-bit key")
    for i, preview in enumerate(report.ciphertext_previews):
        console.print(f"   cloud stores E(x{i + 1}) = 0x{preview}")
    table = Table(title="Result")
    table.add_column("method")
    table.add_column("total", justify="right")
    table.add_column("average", justify="right")
    table.add_column("seconds", justify="right")
    n = len(report.inputs)
    table.add_row(
        "Shamir secure sum",
        str(report.shamir_sum),
        f"{report.shamir_sum / n:.2f}",
        f"{report.seconds['shamir']:.3f}",
    )
    table.add_row(
        "Paillier (cloud adds ciphertexts)",
        str(report.paillier_sum),
        f"{report.paillier_sum / n:.2f}",
        f"{report.seconds['paillier']:.3f} (+{report.seconds['paillier_keygen']:.2f} keygen)",
    )
    table.add_row(
        "plaintext, for comparison",
        str(report.plaintext_sum),
        f"{report.plaintext_sum / n:.2f}",
        "-",
    )
    console.print()
    console.print(table)

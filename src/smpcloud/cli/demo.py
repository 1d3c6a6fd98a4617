"""``smpcloud demo``: the secure average end to end on 127.0.0.1 (or the primitives demo)."""

from __future__ import annotations

import json

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from smpcloud.cli._common import friendly_errors, needs_extra


@click.command("demo")
@click.option(
    "--clients",
    default=100,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="Number of clients, each uploading one patient's encrypted BMI.",
)
@click.option(
    "--bits",
    default="2048",
    show_default=True,
    type=click.Choice(["2048", "3072"]),
    help="Paillier modulus size of the threshold key.",
)
@click.option(
    "--holders", default=5, show_default=True, type=click.IntRange(1, 20), help="Key holders (n)."
)
@click.option(
    "--threshold",
    "t",
    default=3,
    show_default=True,
    type=click.IntRange(1, 20),
    help="Key holders needed to decrypt (t).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (for scripts).")
@click.option(
    "--primitives",
    is_flag=True,
    help="Instead: the small in-process demo of Shamir and Paillier sums.",
)
def demo(clients: int, bits: str, holders: int, t: int, as_json: bool, primitives: bool) -> None:
    """Run the secure average end to end on 127.0.0.1, next to the plaintext average.

    Deals a t-of-n threshold key, starts the aggregation server (SQLite in a temporary
    directory), has each client encrypt and upload one value, closes the task, lets t key
    holders decrypt the aggregate, and prints the secure and the plaintext average, the time
    of each phase and what the server stored (ciphertexts only).
    """
    if t > holders:
        raise click.BadParameter(
            f"threshold {t} exceeds holders {holders}", param_hint="--threshold"
        )
    if primitives:
        _primitives_demo(clients, as_json)
        return
    needs_extra("sklearn.datasets")
    from smpcloud.apps import service_demo

    console = Console(stderr=as_json)
    with (
        friendly_errors(),
        Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=as_json,
        ) as progress,
    ):
        bar = progress.add_task(
            f"dealing a {bits}-bit {t}-of-{holders} key, starting server", total=clients
        )

        def step(done: int, total: int) -> None:
            progress.update(bar, completed=done, description="clients encrypt and upload")

        report = service_demo.run(clients, bits=int(bits), holders=holders, t=t, progress=step)
    if as_json:
        click.echo(json.dumps(report.to_json()))
        return
    table = Table(title=f"Average BMI of {report.count} patients")
    table.add_column("")
    table.add_column("sum", justify="right")
    table.add_column("average", justify="right")
    table.add_row(
        "secure (server never saw a value)",
        f"{report.secure_sum:.4f}",
        f"{report.secure_average:.6f}",
    )
    table.add_row(
        "plaintext (computed locally, for comparison)",
        f"{report.plaintext_sum:.4f}",
        f"{report.plaintext_average:.6f}",
    )
    console.print(table)
    console.print(
        f"key holders who certified the task's key (every client checked): {report.certified_by}"
    )
    console.print(f"key holders who decrypted: {report.holders_used} (any {t} of {holders})")
    phases = Table(title="Time per phase")
    phases.add_column("phase")
    phases.add_column("seconds", justify="right")
    for name, seconds in report.seconds.items():
        phases.add_row(name.replace("_", " "), f"{seconds:.3f}")
    console.print(phases)
    console.print("[bold]What the server stored[/] (its SQLite database after the run):")
    for line in report.server_storage:
        console.print(f"  {line}")


def _primitives_demo(clients: int, as_json: bool) -> None:
    from smpcloud.apps import primitives_demo

    console = Console(stderr=as_json)
    with friendly_errors(), console.status("running Shamir and Paillier secure sums..."):
        report = primitives_demo.run(min(clients, 50))
    if as_json:
        click.echo(json.dumps(report.to_json()))
        return
    console.print(f"private inputs (never sent in the clear): {report.inputs}")
    for line in report.server_views:
        console.print(f"  Shamir {line}")
    for preview in report.ciphertext_previews:
        console.print(f"  Paillier cloud stores 0x{preview}")
    console.print(
        f"Shamir sum {report.shamir_sum}, Paillier sum {report.paillier_sum}, "
        f"plaintext sum {report.plaintext_sum}"
    )


__all__ = ["demo"]

"""``smpcloud bench``: the paper's Figure 7 and Table 1, measured on this machine."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from smpcloud.cli._common import err_console, friendly_errors, needs_extra, validity_option


@click.group("bench")
def bench() -> None:
    """Measure the paper's Figure 7 and Table 1 on this machine (writes CSV, PNG, Markdown)."""


@bench.command("fig7")
@click.option(
    "--max-clients",
    type=click.IntRange(10, 1_000_000),
    default=10_000,
    show_default=True,
    help="Largest N; N runs over 10, 100, 1,000, ... up to it.",
)
@click.option(
    "--modes",
    type=click.Choice(["paillier", "shamir", "both"]),
    default="both",
    show_default=True,
    help="Paillier mode (one server, 3-of-5 key), Shamir mode (3 servers, t = 2), or both.",
)
@click.option("--bits", type=click.Choice(["2048", "3072"]), default="2048", show_default=True)
@click.option(
    "--workers",
    type=click.IntRange(1, 256),
    default=None,
    help="Processes simulating the clients' work [default: every core].",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("smpcloud-results"),
    show_default=True,
    help="Directory for figure7.csv and figure7.png.",
)
@click.option(
    "--db",
    "db_url",
    default=None,
    metavar="URL",
    help="The Paillier server's database, e.g. postgresql+psycopg://user@host/db "
    "[default: a SQLite file of its own]. Shamir mode's servers keep SQLite files.",
)
@validity_option
def bench_fig7(
    max_clients: int,
    modes: str,
    bits: str,
    workers: int | None,
    out: Path,
    db_url: str | None,
    validity: Literal["range", "none"],
) -> None:
    """Figure 7, for real: seconds per phase against the number of clients (log-log).

    Each N is a fresh aggregation on real server subprocesses on 127.0.0.1: client encryption
    (or sharing), upload over HTTP, aggregation, threshold decryption (or reconstruction);
    every result is checked against the plaintext. 10,000 clients take a minute or two.
    """
    needs_extra("sklearn.datasets", "matplotlib.figure")
    from smpcloud.evaluation.figure7 import client_counts_up_to, run_figure7

    chosen = ("paillier", "shamir") if modes == "both" else (modes,)
    with (
        friendly_errors(),
        Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err_console,
        ) as bar,
    ):
        step = bar.add_task("starting", total=None)

        def progress(done: int, total: int, description: str) -> None:
            bar.update(step, completed=done, total=total, description=description)

        result = run_figure7(
            client_counts=client_counts_up_to(max_clients),
            modes=chosen,  # type: ignore[arg-type]
            bits=int(bits),
            workers=workers,
            out=out,
            progress=progress,
            validity=validity,
            db_url=db_url,
        )
    table = Table(title=f"Figure 7: seconds per phase ({result.bits}-bit keys)")
    for column in ("mode", "clients", "phase", "seconds"):
        table.add_column(column, justify="right" if column in ("clients", "seconds") else "left")
    for row in result.rows:
        table.add_row(row.mode, f"{row.clients:,}", row.phase, f"{row.seconds:.3f}")
    Console().print(table)
    for mode in chosen:
        largest = max(c.clients for c in result.checks if c.mode == mode)
        click.echo(
            f"{mode}: {largest:,} clients end to end {result.total(mode, largest):.2f} s "  # type: ignore[arg-type]
            f"(upload {result.upload_rate(mode, largest):,.0f} requests/s)"  # type: ignore[arg-type]
        )
    click.echo(f"wrote {result.csv_path} and {result.png_path}")


@bench.command("table1")
@click.option("--clients", type=click.IntRange(2, 1_000_000), default=1000, show_default=True)
@click.option("--bits", type=click.Choice(["2048", "3072"]), default="2048", show_default=True)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("smpcloud-results"),
    show_default=True,
    help="Directory for table1.md.",
)
def bench_table1(clients: int, bits: str, out: Path) -> None:
    """Table 1, measured: plaintext, AES-GCM, Paillier and Shamir on the same data.

    Time per client, server time, release time, bytes uploaded per client and what the
    server learns; python-paillier and MPyC alongside when installed.
    """
    needs_extra("sklearn.datasets")
    from smpcloud.evaluation.table1 import run_table1

    with friendly_errors(), err_console.status(f"measuring {clients:,} clients four ways..."):
        result = run_table1(clients=clients, bits=int(bits), out=out)
    click.echo(result.markdown)
    click.echo(f"wrote {result.path}")


__all__ = ["bench"]

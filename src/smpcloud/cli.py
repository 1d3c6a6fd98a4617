"""The ``smpcloud`` command line: ``smpcloud --help`` lists every command.

Secrets (admin and client tokens, key shares) are read from files or environment variables,
never from command-line arguments (which other users of the machine can see in ``ps``).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from smpcloud import __version__
from smpcloud.errors import SmpcError

F = TypeVar("F", bound=Callable[..., Any])

err_console = Console(stderr=True)


@contextmanager
def friendly_errors() -> Iterator[None]:
    """Turn smpcloud and file errors into one-line CLI errors (exit status 1), no traceback."""
    try:
        yield
    except SmpcError as exc:
        raise click.ClickException(f"{type(exc).__name__}: {exc}") from exc
    except (FileNotFoundError, FileExistsError, PermissionError) as exc:
        raise click.ClickException(str(exc)) from exc


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


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="smpcloud")
def main() -> None:
    """smpcloud: compute sums, averages and statistics over data nobody may see.

    Clients encrypt their values under a threshold Paillier key and upload them to an
    aggregation server, which adds the ciphertexts without being able to read them; t of n
    key holders then decrypt only the aggregate.

    Or a few organisations run peer MPC side by side over mutually authenticated TLS,
    holding Shamir shares, and open only the statistics they agreed on.

    \b
    Quick start:   smpcloud demo                  (everything on 127.0.0.1, a few seconds)
    Aggregation:   smpcloud keygen -> smpcloud serve -> smpcloud task create
                   -> smpcloud submit (each client) -> smpcloud task close
                   -> smpcloud decrypt (t key holders) -> smpcloud result
    Peer MPC:      smpcloud certs -> smpcloud dealer + smpcloud party (each party)
    """


# ------------------------------------------------------------------------------ demo


@main.command()
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


# ------------------------------------------------------------------------------ keys


@main.command()
@click.option(
    "--holders",
    default=5,
    show_default=True,
    type=click.IntRange(1, 100),
    help="Number of key holders (n), one key-share file each.",
)
@click.option(
    "--threshold",
    "t",
    default=3,
    show_default=True,
    type=click.IntRange(1, 100),
    help="Key holders needed to decrypt (t).",
)
@click.option(
    "--bits",
    default=3072,
    show_default=True,
    type=click.Choice(["2048", "3072", "4096"]),
    help="Modulus size; 3072 bits is ~128-bit security.",
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for public_key.json and key_share_<i>.json (created).",
)
def keygen(holders: int, t: int, bits: str, out_dir: Path) -> None:
    """Deal a threshold Paillier key: a public key and one secret share per key holder.

    Runs the dealer's ceremony (two random safe primes, the decryption exponent Shamir-shared
    with t of n needed). Writes OUT/public_key.json (give it to the server and the clients) and
    OUT/key_share_<i>.json, mode 0600 (give file i to key holder i, over a secure channel, then
    delete it here). Existing files are never overwritten. The dealer's primes are discarded.
    """
    from smpcloud.crypto import threshold
    from smpcloud.keyfiles import write_public_json, write_secret_json

    if t > holders:
        raise click.BadParameter(
            f"threshold {t} exceeds holders {holders}", param_hint="--threshold"
        )
    with friendly_errors():
        out_dir.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        with err_console.status(f"searching two {int(bits) // 2}-bit safe primes..."):
            public_key, shares = threshold.deal(int(bits), n=holders, t=t)
        write_public_json(out_dir / "public_key.json", threshold.public_key_to_json(public_key))
        for share in shares:
            write_secret_json(
                out_dir / f"key_share_{share.index}.json", threshold.key_share_to_json(share)
            )
    click.echo(
        f"dealt a {bits}-bit {t}-of-{holders} key in {time.perf_counter() - start:.1f} s "
        f"(fingerprint {public_key.fingerprint()})"
    )
    click.echo(f"  {out_dir / 'public_key.json'}")
    click.echo(f"  {out_dir}/key_share_1.json .. key_share_{holders}.json (mode 0600)")


# ------------------------------------------------------------------------------ peer MPC


@main.command()
@click.option(
    "--parties",
    required=True,
    type=click.IntRange(1, 1000),
    help="Number of computing parties (ids 1..n).",
)
@click.option(
    "--threshold",
    "t",
    type=click.IntRange(1, 1000),
    default=None,
    help="Shares needed to open a value (default: a majority, n // 2 + 1).",
)
@click.option("--no-dealer", is_flag=True, help="Do not issue a certificate for a dealer (id 0).")
@click.option(
    "--host",
    "hosts",
    multiple=True,
    default=("127.0.0.1", "localhost"),
    show_default=True,
    help="Host name or IP the parties are reached at (repeatable).",
)
@click.option(
    "--base-port",
    default=9100,
    show_default=True,
    type=click.IntRange(1, 65000),
    help="Party i listens on base-port + i in the generated parties.toml.",
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for the CA, the certificates, the keys and parties.toml.",
)
def certs(
    parties: int,
    t: int | None,
    no_dealer: bool,
    hosts: tuple[str, ...],
    base_port: int,
    out_dir: Path,
) -> None:
    """Create a deployment CA, one TLS certificate + key per party, and a parties.toml.

    Parties authenticate each other with these certificates (TLS 1.3, mutual): a connection
    from anything not signed by this CA is refused. Keys are written with mode 0600; keep
    ca-key.pem offline. Give party i its party-i.pem, party-i-key.pem, ca.pem and the
    parties.toml (edit the hosts and ports there for a real deployment).
    """
    from smpcloud.mpc.certs import create_deployment
    from smpcloud.mpc.config import render_deployment

    threshold_t = t if t is not None else parties // 2 + 1
    if threshold_t > parties:
        raise click.BadParameter(
            f"threshold {threshold_t} exceeds parties {parties}", param_hint="--threshold"
        )
    config = out_dir / "parties.toml"
    with friendly_errors():
        if config.exists():
            raise FileExistsError(f"refusing to overwrite {config}")
        create_deployment(out_dir, parties=parties, dealer=not no_dealer, hosts=hosts)
        config.write_text(
            render_deployment(
                parties=parties,
                threshold=threshold_t,
                base_port=base_port,
                host=hosts[0],
                dealer=not no_dealer,
            )
        )
    click.echo(
        f"deployment for {parties} parties (t = {threshold_t}"
        f"{'' if no_dealer else ', dealer id 0'}) written to {out_dir}"
    )
    click.echo(f"  {config}  <- every party runs: smpcloud party --config {config} --id I ...")


@main.command()
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False, exists=True),
    help="The deployment's parties.toml (from smpcloud certs).",
)
@click.option("--id", "party_id", required=True, type=click.IntRange(1), help="This party's id.")
@click.option(
    "--input",
    "input_path",
    required=True,
    type=click.Path(dir_okay=False, exists=True),
    help="CSV file with this party's private values.",
)
@click.option("--column", default=None, help="CSV column name or 0-based index (default: first).")
@click.option(
    "--compute",
    "spec",
    default="count,mean,variance,std",
    show_default=True,
    help="Comma-separated statistics: count, sum, mean, variance, std, sum_of_squares.",
)
@click.option(
    "--session",
    default="smpc",
    show_default=True,
    help="Computation name; every party must use the same one.",
)
@click.option(
    "--triples",
    "triple_mode",
    type=click.Choice(["dealer", "ot"]),
    default=None,
    help="Beaver triples from the deployment's dealer, or dealer-free by oblivious transfer "
    "between the parties (default: the dealer if the deployment has one, else ot).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def party(
    config_path: str,
    party_id: int,
    input_path: str,
    column: str | None,
    spec: str,
    session: str,
    triple_mode: Literal["dealer", "ot"] | None,
    as_json: bool,
) -> None:
    """Run one party of a peer MPC computation and print the joint statistics.

    Every party (and the dealer, `smpcloud dealer`, unless --triples ot) runs at the same time
    with the same --config, --compute, --session and --triples. Values are Shamir-shared over
    mutually authenticated TLS; each party learns only the requested statistics over all
    parties' rows.
    """
    import asyncio

    from smpcloud.apps import peer_stats
    from smpcloud.mpc.config import load_deployment
    from smpcloud.mpc.node import run_party

    with friendly_errors():
        names = peer_stats.parse_statistics(spec)
        config = load_deployment(config_path)
        config.endpoint(party_id)
        values = peer_stats.read_column(input_path, column)
        with err_console.status(
            f"party {party_id}: waiting for {config.parties - 1} peers and computing..."
        ):
            results = asyncio.run(
                run_party(
                    config,
                    party_id,
                    lambda me: peer_stats.compute(me, values, names, frac_bits=config.frac_bits),
                    session=session,
                    triples=triple_mode,
                )
            )
    if as_json:
        click.echo(json.dumps({"party": party_id, "rows": len(values), **results}))
        return
    click.echo(f"party {party_id} contributed {len(values)} rows; joint results:")
    for name, value in results.items():
        click.echo(f"  {name:<15} {value:.6g}    (reveals {peer_stats.STATISTICS[name]})")


@main.command()
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False, exists=True),
    help="The deployment's parties.toml (must list id 0).",
)
@click.option("--session", default="smpc", show_default=True, help="Computation name.")
def dealer(config_path: str, session: str) -> None:
    """Run the deployment's dealer (id 0): serves Beaver triples until the parties finish.

    The dealer sees no input, but a dealer that colludes with a party breaks privacy: run it
    on infrastructure none of the parties controls, or use dealer-free triples.
    """
    import asyncio

    from smpcloud.mpc.config import load_deployment
    from smpcloud.mpc.node import run_dealer_node

    with friendly_errors():
        config = load_deployment(config_path)
        with err_console.status("dealer: waiting for the parties..."):
            stats = asyncio.run(run_dealer_node(config, session=session))
    click.echo(f"dealer done: {stats}")


# ------------------------------------------------------------------------------ use cases


@main.group()
def example() -> None:
    """Run a use case end to end on 127.0.0.1: the secure result next to the plaintext one.

    \b
    stats       joint statistics of 3 hospitals (diabetes dataset), peer MPC and cloud
    federated   federated logistic regression (breast-cancer dataset), secure aggregation
    regression  a bank and an insurer fit a regression on their joint columns (peer MPC)

    Each prints what was revealed, writes its plot to --out and exits with status 1 if the
    secure result is not within the documented tolerance of the plaintext one.
    """


def example_options(func: F) -> F:
    func = click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")(func)
    func = click.option(
        "--transport",
        type=click.Choice(["tls", "memory"]),
        default="tls",
        show_default=True,
        help="Parties over TLS on 127.0.0.1, or all in one process.",
    )(func)
    return click.option(
        "--out",
        type=click.Path(file_okay=False, path_type=Path),
        default=Path("smpcloud-examples"),
        show_default=True,
        help="Directory for the plot(s).",
    )(func)


def _report_examples(results: list[Any], ok: bool, as_json: bool) -> None:
    if as_json:
        payload = [r.to_json() for r in results]
        click.echo(json.dumps(payload[0] if len(payload) == 1 else payload, default=str))
    else:
        for r in results:
            click.echo("\n".join(r.summary_lines()) + "\n")
    if not ok:
        raise click.ClickException("the secure result is outside the documented tolerance")


def _progress(as_json: bool) -> Callable[[str], None] | None:
    return None if as_json else (lambda message: err_console.print(f"[dim]... {message}[/dim]"))


@example.command("stats")
@click.option(
    "--mode",
    type=click.Choice(["peer", "cloud", "both"]),
    default="both",
    show_default=True,
    help="Hospitals as MPC parties, or uploading to the aggregation service, or both.",
)
@click.option("--hospitals", type=click.IntRange(2, 10), default=3, show_default=True)
@click.option(
    "--key-bits",
    type=click.Choice(["2048", "3072"]),
    default="2048",
    show_default=True,
    help="Paillier modulus of the cloud mode.",
)
@example_options
def example_stats(
    mode: str, hospitals: int, key_bits: str, out: Path, transport: str, as_json: bool
) -> None:
    """Count, mean, variance, std, histogram and covariance/correlation across hospitals.

    Reveals N, the column sums, the sums of cross-products and the histogram counts.
    """
    from smpcloud.apps.statistics import run_stats

    modes = ["peer", "cloud"] if mode == "both" else [mode]
    with friendly_errors():
        results = [
            run_stats(
                mode=m,  # type: ignore[arg-type]
                hospitals=hospitals,
                transport=transport,  # type: ignore[arg-type]
                key_bits=int(key_bits),
                out=out,
                progress=_progress(as_json),
            )
            for m in modes
        ]
    _report_examples(results, all(r.within_bounds for r in results), as_json)


@example.command("federated")
@click.option("--hospitals", type=click.IntRange(2, 10), default=5, show_default=True)
@click.option("--rounds", type=click.IntRange(1, 1000), default=50, show_default=True)
@click.option(
    "--aggregator",
    type=click.Choice(["peer", "service"]),
    default="peer",
    show_default=True,
    help="Secure sum by the hospitals' peer MPC, or by the aggregation service (Paillier).",
)
@example_options
def example_federated(
    hospitals: int, rounds: int, aggregator: str, out: Path, transport: str, as_json: bool
) -> None:
    """Federated logistic regression; each round's updates combined by secure aggregation.

    Reveals N, the feature means and variances, and the averaged model of each round.
    """
    from smpcloud.apps.federated import run_federated

    with friendly_errors():
        result = run_federated(
            hospitals=hospitals,
            rounds=rounds,
            aggregator=aggregator,  # type: ignore[arg-type]
            transport=transport,  # type: ignore[arg-type]
            out=out,
            progress=_progress(as_json),
        )
    _report_examples([result], result.within_tolerance, as_json)


@example.command("regression")
@click.option("--customers", type=click.IntRange(10, 1_000_000), default=1000, show_default=True)
@click.option(
    "--reveal",
    type=click.Choice(["coefficients", "gram"]),
    default="coefficients",
    show_default=True,
    help="Open only the coefficients (solve on shares), or the Gram matrix (solve in clear).",
)
@example_options
def example_regression(
    customers: int, reveal: str, out: Path, transport: str, as_json: bool
) -> None:
    """Vertically partitioned ridge regression: bank and insurer columns, Beaver products."""
    from smpcloud.apps.regression import run_regression

    with friendly_errors():
        result = run_regression(
            customers=customers,
            reveal=reveal,  # type: ignore[arg-type]
            transport=transport,  # type: ignore[arg-type]
            out=out,
            progress=_progress(as_json),
        )
    _report_examples([result], result.within_tolerance, as_json)


# ------------------------------------------------------------------------------ measurements


@main.group()
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
def bench_fig7(max_clients: int, modes: str, bits: str, workers: int | None, out: Path) -> None:
    """Figure 7, for real: seconds per phase against the number of clients (log-log).

    Each N is a fresh aggregation on real server subprocesses on 127.0.0.1: client encryption
    (or sharing), upload over HTTP, aggregation, threshold decryption (or reconstruction);
    every result is checked against the plaintext. 10,000 clients take a minute or two.
    """
    from smpcloud.apps.figure7 import client_counts_up_to, run_figure7

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
    from smpcloud.apps.table1 import run_table1

    with friendly_errors(), err_console.status(f"measuring {clients:,} clients four ways..."):
        result = run_table1(clients=clients, bits=int(bits), out=out)
    click.echo(result.markdown)
    click.echo(f"wrote {result.path}")


# ------------------------------------------------------------------------------ server


def _register_serve() -> None:
    from smpcloud.service.__main__ import serve_command

    main.add_command(serve_command, name="serve")


# ------------------------------------------------------------------------------ tasks


@main.group()
def task() -> None:
    """Create, inspect and close aggregation tasks (administrator)."""


def admin_token_option(func: F) -> F:
    return click.option(
        "--admin-token-file",
        type=click.Path(dir_okay=False, exists=True),
        help="File holding the admin token (or set SMPCLOUD_ADMIN_TOKEN).",
    )(func)


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
    click.echo(json.dumps(_plain(status), default=str))


# ------------------------------------------------------------------------------ parties


def _token_from(token_file: str | None) -> str:
    if token_file:
        from smpcloud.keyfiles import read_json

        value = read_json(token_file)
        if not isinstance(value, str):
            raise click.UsageError(f"{token_file} does not hold a token")
        return value
    return read_secret(None, "SMPCLOUD_TOKEN", "token")


@main.command()
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

    token = _token_from(token_file)
    payload: float | list[float] = values[0] if len(values) == 1 else list(values)
    with friendly_errors(), Client(server, task_id, token) as client:
        client.submit(payload)
    click.echo(f"submitted {len(values)} encrypted value(s) to task {task_id}")


@main.command()
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

    token = _token_from(token_file)
    with friendly_errors():
        share = threshold.key_share_from_json(read_json(key_share_path))
        with KeyHolder(server, task_id, token, share) as holder:
            holder.contribute()
    click.echo(f"key holder {share.index}: partial decryption uploaded for task {task_id}")


@main.command()
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
        click.echo(json.dumps(_plain(res), default=str))
        return
    click.echo(f"count   {res.count}")
    click.echo(f"sum     {res.sum if len(res.sum) > 1 else res.sum[0]}")
    click.echo(f"average {res.average if len(res.average) > 1 else res.average[0]}")


def _plain(obj: object) -> object:
    if hasattr(obj, "model_dump"):
        return obj.model_dump()
    if hasattr(obj, "__dataclass_fields__"):
        import dataclasses

        return dataclasses.asdict(obj)  # type: ignore[call-overload]
    return obj


_register_serve()

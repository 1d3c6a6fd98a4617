"""``smpcloud example``: the use cases end to end on 127.0.0.1, secure next to plaintext."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from smpcloud.cli._common import F, friendly_errors, needs_extra, progress_printer


@click.group("example")
def example() -> None:
    """Run a use case end to end on 127.0.0.1: the secure result next to the plaintext one.

    \b
    stats       joint statistics of 3 hospitals (diabetes dataset), peer MPC and cloud
    federated   federated logistic regression (breast-cancer dataset), secure aggregation
    regression  a bank and an insurer fit a regression on their joint columns (peer MPC)
    split-diabetes  write the hospitals' CSV files that `smpcloud party` reads (example inputs)

    Each use case prints what was revealed, writes its plot to --out and exits with status 1 if the
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
    needs_extra()
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
                progress=progress_printer(as_json),
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
    needs_extra()
    from smpcloud.apps.federated import run_federated

    with friendly_errors():
        result = run_federated(
            hospitals=hospitals,
            rounds=rounds,
            aggregator=aggregator,  # type: ignore[arg-type]
            transport=transport,  # type: ignore[arg-type]
            out=out,
            progress=progress_printer(as_json),
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
    needs_extra()
    from smpcloud.apps.regression import run_regression

    with friendly_errors():
        result = run_regression(
            customers=customers,
            reveal=reveal,  # type: ignore[arg-type]
            transport=transport,  # type: ignore[arg-type]
            out=out,
            progress=progress_printer(as_json),
        )
    _report_examples([result], result.within_tolerance, as_json)


__all__ = ["example"]

"""``smpcloud party`` and ``smpcloud dealer``: one member of a peer MPC computation each."""

from __future__ import annotations

import json
from typing import Literal

import click

from smpcloud.cli._common import err_console, friendly_errors


@click.command("party")
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


@click.command("dealer")
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


__all__ = ["dealer", "party"]

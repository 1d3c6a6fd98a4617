"""``smpcloud party`` and ``smpcloud dealer``: one member of a peer MPC computation each.

Also ``smpcloud example split-diabetes``, which writes the example input files the parties read
(registered in the ``example`` group by :mod:`smpcloud.cli`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import click

from smpcloud.cli._common import friendly_errors, needs_extra


def _stderr_line(message: str) -> None:
    """Print a progress line on stderr (never stdout: ``--json`` output stays parseable)."""
    click.echo(message, err=True)


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
    help="This party's private values: a CSV file (see above).",
)
@click.option(
    "--column",
    default=None,
    help="The column to use: a header name or a 0-based index (needed when the file has "
    "several columns).",
)
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
    parties' rows. While peers are missing, a line on stderr says every few seconds whom this
    party waits for; after the deployment's connect_timeout it gives up, naming them.

    The input file (--input) is a CSV file, one row per record: an optional header row of
    column names, then one number per row in the chosen column; a file with several columns
    needs --column (a header name, or a 0-based index). A missing, empty, non-numeric, NaN or
    infinite cell is refused, naming its row: remove or impute missing values first. Example
    files (scikit-learn's diabetes dataset split across hospitals, with the columns age, sex,
    bmi, bp, s1..s6 and progression): smpcloud example split-diabetes --parties 3 --out data/
    """
    import asyncio

    from smpcloud.apps import peer_stats
    from smpcloud.mpc.config import load_deployment
    from smpcloud.mpc.node import run_party

    with friendly_errors():
        names = peer_stats.parse_statistics(spec)
        config = load_deployment(config_path)
        config.endpoint(party_id)
        data = peer_stats.read_input(input_path, column)
        values = data.values
        results = asyncio.run(
            run_party(
                config,
                party_id,
                lambda me: peer_stats.compute(me, values, names, frac_bits=config.frac_bits),
                session=session,
                triples=triple_mode,
                progress=_stderr_line,
            )
        )
    if as_json:
        click.echo(
            json.dumps({"party": party_id, "column": data.column, "rows": len(values), **results})
        )
        return
    click.echo(
        f"party {party_id} contributed {len(values)} rows of column {data.column!r}; joint results:"
    )
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

    It serves the batches the session fixes (the deployment's threshold, parties and
    frac_bits, and the field's full truncation masks) and refuses any request that disagrees,
    naming the party (one "refused:" line each on stderr). The dealer sees no input, but a
    dealer that colludes with a party breaks privacy: run it on infrastructure none of the
    parties controls, or use dealer-free triples.
    """
    import asyncio

    from smpcloud.mpc.config import load_deployment
    from smpcloud.mpc.node import run_dealer_node

    with friendly_errors():
        config = load_deployment(config_path)
        stats = asyncio.run(run_dealer_node(config, session=session, progress=_stderr_line))
    for reason in stats.refusals:
        _stderr_line(f"refused: {reason}")
    click.echo(
        f"dealer done: {stats.batches} batches ({stats.triples} triples, {stats.pairs} "
        f"truncation pairs), {stats.refused} requests refused"
    )


@click.command("split-diabetes")
@click.option(
    "--parties",
    default=3,
    show_default=True,
    type=click.IntRange(1, 442),
    help="Number of hospitals (one CSV file each).",
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for hospital-<i>.csv (created).",
)
@click.option("--force", is_flag=True, help="Replace existing hospital-<i>.csv files.")
def split_diabetes(parties: int, out_dir: Path, force: bool) -> None:
    """Write example inputs for smpcloud party: the diabetes dataset split across hospitals.

    scikit-learn's diabetes dataset (442 real patients; public data) is split across --parties
    hospitals, reproducibly: OUT/hospital-<i>.csv has a header row (age, sex, bmi, bp, s1..s6,
    progression; unscaled) and hospital i's patients. Needs the 'examples' extra.
    """
    needs_extra("sklearn")
    from smpcloud.apps import peer_stats

    with friendly_errors():
        try:
            paths = peer_stats.write_example_inputs(out_dir, parties, overwrite=force)
        except FileExistsError as exc:
            raise FileExistsError(f"{exc}: pass --force to replace the example files") from None
    for path in paths:
        click.echo(f"  {path}")
    click.echo(
        f"{parties} hospitals' patients written to {out_dir}; each party then runs e.g.: "
        f"smpcloud party --config deploy/parties.toml --id 1 --input {paths[0]} --column bmi"
    )


__all__ = ["dealer", "party", "split_diabetes"]

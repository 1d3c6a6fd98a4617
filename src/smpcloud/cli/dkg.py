"""``smpcloud keygen --distributed``: one key holder's side of the key generation ceremony.

Reads the holders' deployment file, connects to every other holder over mutual TLS
(:func:`smpcloud.mpc.tcp.connect_mesh`), runs :func:`smpcloud.mpc.dkg.generate_key`, and writes
the public key, the roster and this holder's own secret files. Progress goes to stderr, one
line per batch of candidates and per phase; the summary to stdout.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from smpcloud.cli._common import friendly_errors
from smpcloud.cli.keys import write_key_set

if TYPE_CHECKING:
    from smpcloud.mpc.dkg import KeygenResult


def run_distributed_keygen(
    config_path: Path,
    holder: int,
    bits: int,
    out_dir: Path,
    *,
    existing: list[Path],
    force: bool,
    insecure: bool = False,
) -> None:
    """Run the ceremony as ``holder`` and write its files into ``out_dir``.

    Raises:
        click.ClickException: a bad deployment file, TLS files, a holder that never connected
            or went silent (named), or a failed check; one line, nothing written.
    """
    from smpcloud.mpc.config import load_deployment
    from smpcloud.mpc.dkg import check_parameters, generate_key
    from smpcloud.mpc.tcp import connect_mesh

    start = time.perf_counter()

    def say(line: str) -> None:
        click.echo(f"[holder {holder} {time.perf_counter() - start:6.1f} s] {line}", err=True)

    with friendly_errors():
        config = load_deployment(config_path)
        holders = tuple(sorted(i for i in config.endpoints if i != 0))
        if 0 in config.endpoints:
            raise click.ClickException(
                f"{config_path} has a dealer (id 0): key generation without a dealer takes "
                "the key holders 1..n only; remove the id 0 entry"
            )
        if holder not in holders:
            raise click.ClickException(f"{config_path} has no holder with id {holder}")
        check_parameters(len(holders), config.threshold, bits, insecure=insecure)
        endpoint = config.endpoints[holder]
        addresses = {i: (e.host, e.port) for i, e in config.endpoints.items()}

        async def ceremony() -> KeygenResult:
            say(f"connecting to holders {', '.join(str(h) for h in holders if h != holder)}")
            transport = await connect_mesh(
                holder,
                addresses,
                cert=endpoint.cert,
                key=endpoint.key,
                ca=config.ca,
                timeout=config.timeout,
                connect_deadline=config.connect_timeout,
                progress=say,
            )
            async with transport:
                say("connected; generating the key together (no machine holds it whole)")
                return await generate_key(
                    transport,
                    holders,
                    threshold_t=config.threshold,
                    bits=bits,
                    session="keygen",
                    timeout=config.timeout,
                    progress=say,
                    insecure=insecure,
                )

        result = asyncio.run(ceremony())
    write_key_set(
        out_dir,
        result.public_key,
        result.roster,
        [result.share],
        {holder: result.signing_key},
        existing=existing,
        force=force,
    )
    stats = result.stats
    pk = result.public_key
    click.echo(
        f"holder {holder}: generated a {bits}-bit {pk.threshold}-of-{pk.holders} key with no "
        f"dealer in {stats.seconds:.1f} s (fingerprint {pk.fingerprint()}; "
        f"{stats.candidates:,} candidates, {stats.biprimality_tests:,} biprimality tests, "
        f"{stats.bytes_sent / 1e6:.1f} MB sent)"
    )
    click.echo(f"  {out_dir / 'public_key.json'}  (the same at every holder)")
    click.echo(f"  {out_dir / 'holders.json'}  (holders fingerprint {result.roster.digest()})")
    click.echo(f"  {out_dir / f'key_share_{holder}.json'} (mode 0600: this holder's only)")
    click.echo(f"  {out_dir / f'signing_key_{holder}.json'} (mode 0600: this holder's only)")


__all__ = ["run_distributed_keygen"]

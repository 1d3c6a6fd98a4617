"""``smpcloud keygen`` (a threshold Paillier key) and ``smpcloud certs`` (a peer MPC deployment)."""

from __future__ import annotations

import time
from pathlib import Path

import click

from smpcloud.cli._common import err_console, friendly_errors


@click.command("keygen")
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


@click.command("certs")
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
@click.option(
    "--force",
    is_flag=True,
    help="Replace a deployment already in --out: a new CA, new certificates and keys (0600) "
    "and a new parties.toml; every party then needs the new files.",
)
def certs(
    parties: int,
    t: int | None,
    no_dealer: bool,
    hosts: tuple[str, ...],
    base_port: int,
    out_dir: Path,
    force: bool,
) -> None:
    """Create a deployment CA, one TLS certificate + key per party, and a parties.toml.

    Parties authenticate each other with these certificates (TLS 1.3, mutual): a connection
    from anything not signed by this CA is refused. Keys are written with mode 0600; keep
    ca-key.pem offline. Give party i its party-i.pem, party-i-key.pem, ca.pem and the
    parties.toml (edit the hosts and ports there for a real deployment). A directory that
    already holds a deployment is refused unless --force.
    """
    from smpcloud.mpc.certs import create_deployment, deployment_files
    from smpcloud.mpc.config import render_deployment

    threshold_t = t if t is not None else parties // 2 + 1
    if threshold_t > parties:
        raise click.BadParameter(
            f"threshold {threshold_t} exceeds parties {parties}", param_hint="--threshold"
        )
    config = out_dir / "parties.toml"
    with friendly_errors():
        if not force and (config.exists() or deployment_files(out_dir)):
            raise click.ClickException(
                f"{out_dir} already holds a deployment (CA, keys or parties.toml); pass --force "
                "to replace it (a new CA and new keys for every party), or choose another --out"
            )
        create_deployment(
            out_dir, parties=parties, dealer=not no_dealer, hosts=hosts, overwrite=force
        )
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


__all__ = ["certs", "keygen"]

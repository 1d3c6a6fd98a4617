"""``smpcloud certs``: the TLS identities of a peer-MPC deployment.

Two ways. Per-party keys (a real deployment): ``certs ca`` on the CA's machine, ``certs
request`` on each party's machine (the party's private key never leaves it), ``certs sign`` on
the CA's machine for each request (:mod:`smpcloud.mpc.csr`). The one-machine convenience path
for local demos and tests, ``certs --parties N --out DIR``, makes the CA and every party's key
in one directory (:func:`smpcloud.mpc.certs.create_deployment`), and a ``parties.toml``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from click.core import ParameterSource

from smpcloud.cli._common import describe_os_error, friendly_errors

_FLOW = """\b
Per-party keys (a real deployment: no one but a party sees its private key):
  1. CA's machine:      smpcloud certs ca --out ca/
  2. party i's machine: smpcloud certs request --id I --host HOST --out mine/
                        send mine/party-I.csr to the CA (never mine/party-I-key.pem),
                        and read out the printed fingerprint to the CA's operator
  3. CA's machine:      smpcloud certs sign --ca ca/ --id I --fingerprint FP party-I.csr
                        send party-I.pem and ca/ca.pem back to party i
  4. anyone:            smpcloud certs config --parties 3 --no-dealer --out parties.toml
                        (one file for all: edit each party's host there); every party
                        puts it next to its own key, party-I.pem and ca.pem
"""

_ONE_MACHINE = ("parties", "t", "no_dealer", "hosts", "base_port", "out_dir", "force")


@contextmanager
def _writing() -> Iterator[None]:
    """:func:`friendly_errors`, and an existing file names --force."""
    with friendly_errors():
        try:
            yield
        except FileExistsError as exc:
            raise click.ClickException(
                f"{describe_os_error(exc)}: pass --force to replace, or choose another --out"
            ) from None


@click.group(
    "certs",
    invoke_without_command=True,
    epilog=_FLOW
    + """\b
One-machine path (local demos and tests only: this machine sees every key):
  smpcloud certs --parties 3 --out deploy/
""",
)
@click.option(
    "--parties",
    type=click.IntRange(1, 1000),
    default=None,
    help="One-machine path: number of computing parties (ids 1..n).",
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
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory for the CA, the certificates, the keys and parties.toml.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Replace a deployment already in --out: a new CA, new certificates and keys (0600) "
    "and a new parties.toml; every party then needs the new files.",
)
@click.pass_context
def certs(
    ctx: click.Context,
    parties: int | None,
    t: int | None,
    no_dealer: bool,
    hosts: tuple[str, ...],
    base_port: int,
    out_dir: Path | None,
    force: bool,
) -> None:
    """TLS certificates for peer MPC: per-party keys (ca, request, sign), or one machine.

    Parties authenticate each other with certificates signed by the deployment CA (TLS 1.3,
    mutual): a connection from anything this CA did not sign, or from a certificate of another
    party id, is refused. Whoever holds ca-key.pem can certify any party id: keep it offline.

    For a real deployment use the subcommands: each party makes its own key (certs request),
    which never leaves its machine, and the CA signs the party's request (certs sign).

    Without a subcommand: the one-machine convenience path, for local demos and tests only.
    It writes a CA, one certificate + key (0600) per party and a parties.toml into --out, so
    this machine sees every party's private key and could impersonate any of them. Give party
    i its party-i.pem, party-i-key.pem, ca.pem and the parties.toml (edit the hosts and ports
    there for a real deployment). A directory that already holds a deployment is refused
    unless --force.
    """
    if ctx.invoked_subcommand is not None:
        given = [
            f"--{name.replace('_', '-')}"
            for name in _ONE_MACHINE
            if ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE
        ]
        if given:
            sub = ctx.invoked_subcommand
            raise click.UsageError(
                f"{', '.join(given)}: options of the one-machine path (smpcloud certs --parties "
                f"N --out DIR), not of certs {sub}; put the options of {sub} after it"
            )
        return
    if parties is None or out_dir is None:
        raise click.UsageError(
            "give --parties N --out DIR (the one-machine demo path), or a subcommand: ca, "
            "request, sign (per-party keys; see smpcloud certs --help)"
        )
    _one_machine(parties, t, no_dealer, hosts, base_port, out_dir, force)


def _one_machine(
    parties: int,
    t: int | None,
    no_dealer: bool,
    hosts: tuple[str, ...],
    base_port: int,
    out_dir: Path,
    force: bool,
) -> None:
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
    click.echo(
        "  one-machine path, for local demos and tests: this directory holds every party's "
        "private key (per-party keys: smpcloud certs request / sign)"
    )
    click.echo(f"  {config}  <- every party runs: smpcloud party --config {config} --id I ...")


@certs.command(
    "ca",
    epilog="""\b
Example:
  smpcloud certs ca --out ca/
""",
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for ca.pem and ca-key.pem (created, mode 0700).",
)
@click.option(
    "--days",
    default=3650,
    show_default=True,
    type=click.IntRange(1, 36500),
    help="Validity of the CA; the certificates it signs never outlive it.",
)
@click.option("--force", is_flag=True, help="Replace a CA already in --out (a new trust anchor).")
def ca(out_dir: Path, days: int, force: bool) -> None:
    """Create the deployment CA alone (step 1 of per-party keys), on the CA's machine.

    Writes OUT/ca.pem (the mesh's only trust anchor: give it to every party) and
    OUT/ca-key.pem (mode 0600): keep it offline, on this machine only; whoever holds it can
    certify any party id. No party key is made here: each party makes its own with
    smpcloud certs request, and you sign their requests with smpcloud certs sign.
    """
    from smpcloud.mpc.certs import create_ca

    with _writing():
        files = create_ca(out_dir, days=days, overwrite=force)
    click.echo(f"deployment CA written to {files.directory}")
    click.echo(f"  {files.cert}      give it to every party (their trust anchor)")
    click.echo(f"  {files.key}  (mode 0600) keep it offline, here only: it certifies any party")
    click.echo(
        "next: each party runs smpcloud certs request --id I --host HOST --out DIR and sends "
        "you DIR/party-I.csr; you run smpcloud certs sign --ca "
        f"{files.directory} --id I --fingerprint FP party-I.csr"
    )


@certs.command(
    "request",
    epilog="""\b
Example (on party 2's machine):
  smpcloud certs request --id 2 --host 10.0.0.2 --host party2.example.org --out mine/
""",
)
@click.option(
    "--id",
    "party_id",
    required=True,
    type=click.IntRange(0, 1000),
    help="This party's id (0 = the dealer).",
)
@click.option(
    "--host",
    "hosts",
    multiple=True,
    required=True,
    help="Host name or IP this party is reached at (repeatable; at least one).",
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for party-I-key.pem and party-I.csr (created, mode 0700).",
)
@click.option(
    "--force",
    is_flag=True,
    help="Replace a key and request already in --out (a certificate of the old key then "
    "no longer matches: have the new request signed).",
)
def request(party_id: int, hosts: tuple[str, ...], out_dir: Path, force: bool) -> None:
    """Make this party's own TLS key and a certificate request (step 2), on its own machine.

    Writes OUT/party-I-key.pem (ECDSA P-256, mode 0600): it never leaves this machine; and
    OUT/party-I.csr: send only that file to the CA's operator (it holds nothing secret), and
    read out the printed fingerprint to them over a channel they trust (a call, in person),
    so that they sign your request and not a forged one. The CA answers with party-I.pem and
    ca.pem: put them next to your key.
    """
    from smpcloud.mpc.csr import create_request

    with _writing():
        files = create_request(out_dir, party_id, list(hosts), overwrite=force)
    click.echo(f"party {files.id}'s key and certificate request written to {out_dir}")
    click.echo(f"  send to the CA:  {files.csr}")
    click.echo(f"  never send:      {files.key}  (mode 0600; it stays on this machine)")
    click.echo(f"public-key fingerprint (read it out to the CA's operator): {files.fingerprint}")


@certs.command(
    "sign",
    epilog="""\b
Example (on the CA's machine, with the request party 2 sent):
  smpcloud certs sign --ca ca/ --id 2 --fingerprint 3f:a0:...:9c inbox/party-2.csr
""",
)
@click.argument("request_path", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option(
    "--ca",
    "ca_dir",
    required=True,
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="The CA's directory (ca.pem, ca-key.pem from smpcloud certs ca).",
)
@click.option(
    "--id",
    "party_id",
    type=click.IntRange(0, 1000),
    default=None,
    help="Refuse the request unless it is for this party id.",
)
@click.option(
    "--fingerprint",
    default=None,
    help="Refuse the request unless its public key has this fingerprint (the one the party "
    "read out to you; colons, spaces and case do not matter).",
)
@click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Certificate to write (default: party-I.pem beside the request).",
)
@click.option(
    "--days",
    default=365,
    show_default=True,
    type=click.IntRange(1, 36500),
    help="Validity of the certificate (never past the CA's own).",
)
@click.option("--force", is_flag=True, help="Replace an existing certificate file.")
def sign(
    request_path: Path,
    ca_dir: Path,
    party_id: int | None,
    fingerprint: str | None,
    out_path: Path | None,
    days: int,
    force: bool,
) -> None:
    """Sign a party's REQUEST (party-I.csr) with the deployment CA (step 3), on the CA's machine.

    Checks the request's signature and that it asks for nothing the CA would not issue (a
    party id in 0..1000, an ECDSA P-256 key, DNS names and IP addresses, no CA powers), then
    issues party-I.pem for its public key; no private key but the CA's is read. A request holds
    nothing secret, so anyone could have sent it: pass --id and the --fingerprint party I read
    out to you over a channel you trust. Send party-I.pem and ca.pem back to party I.
    """
    from smpcloud.mpc.csr import sign_request

    with _writing():
        signed = sign_request(
            ca_dir,
            request_path,
            out=out_path,
            expected_id=party_id,
            expected_fingerprint=fingerprint,
            days=days,
            overwrite=force,
        )
    click.echo(
        f"certified party {signed.id} for {', '.join(signed.hosts) or 'no host'} until "
        f"{signed.not_after:%Y-%m-%d}"
    )
    click.echo(f"  public-key fingerprint: {signed.fingerprint}")
    if fingerprint is None:
        click.echo(
            "  (no --fingerprint given: check this one with the party before you send the "
            "certificate)"
        )
    click.echo(f"  {signed.cert}  <- send it, with {ca_dir / 'ca.pem'}, to party {signed.id}")


@certs.command(
    "config",
    epilog="""\b
Examples:
  smpcloud certs config --parties 3 --no-dealer --out holders.toml   # key holders
  smpcloud certs config --parties 3 --base-port 9100 --out parties.toml  # peer MPC + dealer
""",
)
@click.option("--parties", required=True, type=click.IntRange(1, 1000), help="Parties (ids 1..n).")
@click.option(
    "--threshold",
    "t",
    type=click.IntRange(1, 1000),
    default=None,
    help="Shares needed to open a value, or key holders needed to decrypt (default: a "
    "majority, n // 2 + 1).",
)
@click.option("--no-dealer", is_flag=True, help="No dealer (id 0) entry (key holders: none).")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="The host written for every party (edit each one's in the file for a deployment).",
)
@click.option(
    "--base-port",
    default=9100,
    show_default=True,
    type=click.IntRange(1, 65000),
    help="Party i listens on base-port + i.",
)
@click.option(
    "--out",
    "out_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The file to write (parties.toml, holders.toml).",
)
@click.option("--force", is_flag=True, help="Replace an existing file.")
def config(
    parties: int,
    t: int | None,
    no_dealer: bool,
    host: str,
    base_port: int,
    out_path: Path,
    force: bool,
) -> None:
    """Write the deployment file every party reads (step 4): ids, hosts, ports, file names.

    It names each party's certificate party-I.pem and key party-I-key.pem, next to the file,
    and the CA's certificate ca.pem: what ``certs request`` and ``certs sign`` write. It holds
    nothing secret; every party gets the same file (each reads only its own key). The same
    file serves ``smpcloud party`` (peer MPC) and ``smpcloud keygen --distributed`` (key
    holders: --no-dealer, and --threshold is t, the holders needed to decrypt).
    """
    from smpcloud.mpc.config import render_deployment

    threshold_t = t if t is not None else parties // 2 + 1
    if threshold_t > parties:
        raise click.BadParameter(
            f"threshold {threshold_t} exceeds parties {parties}", param_hint="--threshold"
        )
    if out_path.exists() and not force:
        raise click.ClickException(f"{out_path} exists: pass --force to replace it")
    text = render_deployment(
        parties=parties,
        threshold=threshold_t,
        base_port=base_port,
        host=host,
        dealer=not no_dealer,
    )
    with friendly_errors():
        out_path.write_text(text, encoding="utf-8")
    click.echo(f"deployment file for {parties} parties (t = {threshold_t}) written to {out_path}")
    click.echo("  give every party this file; each puts it next to its key, cert and ca.pem")


__all__ = ["certs"]

"""``smpcloud keygen``: a threshold Paillier key (``smpcloud certs`` is in :mod:`.certs`)."""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from smpcloud.cli._common import err_console, friendly_errors

if TYPE_CHECKING:
    from smpcloud.crypto.signatures import Roster, SigningKey
    from smpcloud.crypto.threshold import KeyShare, ThresholdPublicKey


def _existing_key_files(out_dir: Path) -> list[Path]:
    if not out_dir.is_dir():
        return []
    return sorted(
        [
            *out_dir.glob("public_key.json"),
            *out_dir.glob("key_share_*.json"),
            *out_dir.glob("holders.json"),
            *out_dir.glob("signing_key_*.json"),
        ]
    )


def _stale_numbered(existing: list[Path], prefix: str, holders: int) -> list[Path]:
    """Files ``<prefix><i>.json`` of a replaced set whose i is beyond the new set's holders."""
    return [
        p
        for p in existing
        if p.name.startswith(prefix)
        and p.stem.removeprefix(prefix).isdigit()
        and not 1 <= int(p.stem.removeprefix(prefix)) <= holders
    ]


@click.command(
    "keygen",
    epilog="""\b
Examples:
  smpcloud keygen --holders 5 --threshold 3 --bits 3072 --out keys/
  smpcloud keygen --holders 5 --threshold 3 --bits 3072 --out keys/ --force
Give keys/holders.json (or the printed holders fingerprint) to every client.

\b
Without a dealer (holders.toml from smpcloud certs config; TLS keys from certs request):
  on holder I, all at once:  smpcloud keygen --distributed --config holders.toml --id I --out keys/
""",
)
@click.option(
    "--holders",
    default=5,
    show_default=True,
    type=click.IntRange(1, 100),
    help="Number of key holders (n), one key-share file each (dealer only).",
)
@click.option(
    "--threshold",
    "t",
    default=3,
    show_default=True,
    type=click.IntRange(1, 100),
    help="Key holders needed to decrypt (t) (dealer only; --distributed reads it from --config).",
)
@click.option(
    "--bits",
    default=None,
    type=click.IntRange(256, 4096),
    help="Modulus size: 2048, 3072 or 4096 (3072 is ~128-bit security). Default: 3072 with a "
    "dealer, 2048 with --distributed.",
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for public_key.json, holders.json, key_share_<i>.json and "
    "signing_key_<i>.json (created).",
)
@click.option(
    "--force",
    is_flag=True,
    help="Replace a key already in OUT (all its files, as one set; tasks created under the "
    "old key can then never be decrypted with these shares).",
)
@click.option(
    "--distributed",
    is_flag=True,
    help="No dealer: run the key generation ceremony with the other key holders over the "
    "mutually authenticated TLS mesh of --config; every holder runs this command at once.",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="With --distributed: the holders' deployment file (holders.toml: CA, threshold t, "
    "timeouts and each holder's host, port, certificate and key).",
)
@click.option(
    "--id", "holder_id", type=click.IntRange(1, 100), help="With --distributed: this holder's id."
)
@click.option(
    "--insecure",
    is_flag=True,
    hidden=True,
    help="Allow keys below 2048 bits (tests only; such keys are refused everywhere else).",
)
@click.pass_context
def keygen(
    ctx: click.Context,
    holders: int,
    t: int,
    bits: int | None,
    out_dir: Path,
    force: bool,
    distributed: bool,
    config_path: Path | None,
    holder_id: int | None,
    insecure: bool,
) -> None:
    """Make a threshold Paillier key and a signing key per key holder.

    \b
    With a dealer (the default): this machine draws two random safe primes, shares the
    decryption exponent with t of n needed, and writes every holder's files, as one set:
      OUT/public_key.json      the threshold public key: give it to the administrator
      OUT/holders.json         the key holders' roster (each holder's verify key and t):
                               give it to every client (or its printed fingerprint) and
                               to the administrator (smpcloud task create --holders)
      OUT/key_share_<i>.json   key holder i's share, mode 0600: give it to holder i only
      OUT/signing_key_<i>.json key holder i's signing key, mode 0600: to holder i only
    The dealer sees the whole key: it must be trusted to forget it (and the signing keys).

    \b
    With --distributed: no dealer. Every key holder runs this command on its own machine
    at the same time, with the same holders.toml and its own --id; the holders generate
    the modulus and the shared exponent together over mutual TLS, so p, q and the
    decryption exponent never exist on any machine. Each writes into its OUT the same
    public_key.json and holders.json and only its OWN key_share_<id>.json and
    signing_key_<id>.json. Needs at least 3 holders (an honest majority: see
    docs/security.md); about 10-30 s for 2048 bits among 3 holders; progress on stderr.

    Key holders sign (smpcloud certify) each task's key and parameters with their signing
    keys; clients (smpcloud submit --holders) refuse a task that t of them did not certify,
    so a server cannot substitute its own key. A key already in OUT is refused before
    anything is generated, unless --force: then the new files replace the old set at once
    (never a mixture of the two), and the files of holders beyond the new count are removed.
    """
    if distributed:
        for name in ("holders", "t"):
            if ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT:
                flag = "--holders" if name == "holders" else "--threshold"
                raise click.BadParameter(
                    "the holders and t come from --config with --distributed", param_hint=flag
                )
        if config_path is None or holder_id is None:
            raise click.UsageError("--distributed needs --config holders.toml and --id I")
    elif config_path is not None or holder_id is not None:
        raise click.UsageError("--config and --id go with --distributed")
    size = bits if bits is not None else (2048 if distributed else 3072)
    if size not in (2048, 3072, 4096) and not (insecure and size % 2 == 0):
        raise click.BadParameter(f"{size} is not one of 2048, 3072, 4096", param_hint="--bits")
    if not distributed and t > holders:
        raise click.BadParameter(
            f"threshold {t} exceeds holders {holders}", param_hint="--threshold"
        )
    existing = _existing_key_files(out_dir)
    if existing and not force:
        names = ", ".join(p.name for p in existing[:3]) + (", ..." if len(existing) > 3 else "")
        raise click.ClickException(
            f"refusing to overwrite the key already in {out_dir} ({names}): pass --force to "
            "replace it, or choose another --out"
        )
    with friendly_errors():
        out_dir.mkdir(parents=True, exist_ok=True)
        if not os.access(out_dir, os.W_OK | os.X_OK):
            raise PermissionError(errno.EACCES, "not writable", str(out_dir))
    if distributed and config_path is not None and holder_id is not None:  # checked above
        from smpcloud.cli.dkg import run_distributed_keygen

        run_distributed_keygen(
            config_path,
            holder_id,
            size,
            out_dir,
            existing=existing,
            force=force,
            insecure=insecure,
        )
        return
    _deal(holders, t, size, out_dir, existing=existing, force=force)


def _deal(
    holders: int, t: int, bits: int, out_dir: Path, *, existing: list[Path], force: bool
) -> None:
    from smpcloud.crypto import threshold
    from smpcloud.crypto.signatures import Roster, SigningKey

    start = time.perf_counter()
    click.echo(
        f"searching two {bits // 2}-bit safe primes for a {t}-of-{holders} key "
        "(seconds to minutes; Ctrl-C stops)...",
        err=True,
    )
    with friendly_errors(), err_console.status("dealing the key..."):
        public_key, shares = threshold.deal(bits, n=holders, t=t)
    signing_keys = {share.index: SigningKey.generate() for share in shares}
    roster = Roster(t, {index: key.verify_key for index, key in signing_keys.items()})
    write_key_set(out_dir, public_key, roster, shares, signing_keys, existing=existing, force=force)
    click.echo(
        f"dealt a {bits}-bit {t}-of-{holders} key in {time.perf_counter() - start:.1f} s "
        f"(fingerprint {public_key.fingerprint()})"
    )
    click.echo(f"  {out_dir / 'public_key.json'}")
    click.echo(f"  {out_dir / 'holders.json'}  (holders fingerprint {roster.digest()})")
    click.echo(f"  {out_dir}/key_share_1.json .. key_share_{holders}.json (mode 0600)")
    click.echo(f"  {out_dir}/signing_key_1.json .. signing_key_{holders}.json (mode 0600)")


def write_key_set(
    out_dir: Path,
    public_key: ThresholdPublicKey,
    roster: Roster,
    shares: Sequence[KeyShare],
    signing_keys: Mapping[int, SigningKey],
    *,
    existing: list[Path],
    force: bool,
) -> None:
    """Write a key's public files and the given holders' secret files as one set.

    public_key.json and holders.json, plus key_share_<i>.json and signing_key_<i>.json (mode
    0600) for each share given: all of a dealer's, or a distributed holder's own. With
    ``force``, files of a replaced set that the new one does not have are removed.
    """
    from smpcloud.crypto import threshold
    from smpcloud.keyfiles import write_json_set

    holders = public_key.holders
    stale = _stale_numbered(existing, "key_share_", holders)
    stale += _stale_numbered(existing, "signing_key_", holders)
    own = {share.index for share in shares}
    if len(own) < holders:  # a distributed holder's directory: no other holder's secrets
        stale += [
            p
            for p in existing
            if p.name.startswith(("key_share_", "signing_key_"))
            and p.stem.rsplit("_", 1)[-1].isdigit()
            and int(p.stem.rsplit("_", 1)[-1]) not in own
        ]
    secret_files: dict[str | os.PathLike[str], object] = {
        out_dir / f"key_share_{share.index}.json": threshold.key_share_to_json(share)
        for share in shares
    }
    secret_files.update(
        {out_dir / f"signing_key_{i}.json": key.to_json() for i, key in signing_keys.items()}
    )
    with friendly_errors():
        write_json_set(
            {
                out_dir / "public_key.json": threshold.public_key_to_json(public_key),
                out_dir / "holders.json": roster.to_json(),
            },
            secret_files,
            overwrite=force,
        )
        for path in stale:  # files of the replaced set that the new one does not have
            path.unlink(missing_ok=True)


__all__ = ["keygen", "write_key_set"]

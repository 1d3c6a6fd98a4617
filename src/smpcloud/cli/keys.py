"""``smpcloud keygen``: a threshold Paillier key (``smpcloud certs`` is in :mod:`.certs`)."""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

import click

from smpcloud.cli._common import err_console, friendly_errors


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
""",
)
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
    help="Directory for public_key.json, holders.json, key_share_<i>.json and "
    "signing_key_<i>.json (created).",
)
@click.option(
    "--force",
    is_flag=True,
    help="Replace a key already in OUT (all its files, as one set; tasks created under the "
    "old key can then never be decrypted with these shares).",
)
def keygen(holders: int, t: int, bits: str, out_dir: Path, force: bool) -> None:
    """Deal a threshold Paillier key, and a signing key per key holder.

    Runs the dealer's ceremony (two random safe primes, the decryption exponent Shamir-shared
    with t of n needed). Writes, as one set:

    \b
      OUT/public_key.json      the threshold public key: give it to the administrator
      OUT/holders.json         the key holders' roster (each holder's verify key and t):
                               give it to every client (or its printed fingerprint) and
                               to the administrator (smpcloud task create --holders)
      OUT/key_share_<i>.json   key holder i's share, mode 0600: give it to holder i only
      OUT/signing_key_<i>.json key holder i's signing key, mode 0600: to holder i only

    Give each holder its two secret files over a secure channel, then delete them here. The
    key holders sign (smpcloud certify) each task's key and parameters with their signing
    keys; clients (smpcloud submit --holders) refuse a task that t of them did not certify,
    so a server cannot substitute its own key. A key already in OUT is refused before
    anything is generated, unless --force: then the new files replace the old set at once
    (never a mixture of the two), and the files of holders beyond the new count are removed.
    The dealer's primes are discarded; this dealer also made the signing keys, so it must be
    trusted not to keep them (a trusted-dealer limitation, like the key shares').
    """
    from smpcloud.crypto import threshold
    from smpcloud.crypto.signatures import Roster, SigningKey
    from smpcloud.keyfiles import write_json_set

    if t > holders:
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
    start = time.perf_counter()
    click.echo(
        f"searching two {int(bits) // 2}-bit safe primes for a {t}-of-{holders} key "
        "(seconds to minutes; Ctrl-C stops)...",
        err=True,
    )
    with friendly_errors(), err_console.status("dealing the key..."):
        public_key, shares = threshold.deal(int(bits), n=holders, t=t)
    signing_keys = {share.index: SigningKey.generate() for share in shares}
    roster = Roster(t, {index: key.verify_key for index, key in signing_keys.items()})
    stale = _stale_numbered(existing, "key_share_", holders)
    stale += _stale_numbered(existing, "signing_key_", holders)
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
        for path in stale:  # files of the replaced set's holders that the new one does not have
            path.unlink(missing_ok=True)
    click.echo(
        f"dealt a {bits}-bit {t}-of-{holders} key in {time.perf_counter() - start:.1f} s "
        f"(fingerprint {public_key.fingerprint()})"
    )
    click.echo(f"  {out_dir / 'public_key.json'}")
    click.echo(f"  {out_dir / 'holders.json'}  (holders fingerprint {roster.digest()})")
    click.echo(f"  {out_dir}/key_share_1.json .. key_share_{holders}.json (mode 0600)")
    click.echo(f"  {out_dir}/signing_key_1.json .. signing_key_{holders}.json (mode 0600)")


__all__ = ["keygen"]

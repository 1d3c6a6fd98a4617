"""Key and token files: JSON (keys) or one line of text (tokens) on disk, secrets written
with mode 0600 from the moment they exist.

``crypto/`` stays pure (no files); this module is the file layer above it. A key file is
exactly the JSON object of ``to_json()`` (see ``smpcloud.crypto.paillier`` and
``smpcloud.crypto.threshold``: :func:`load_threshold_public_key`, :func:`load_key_share`;
``smpcloud.crypto.signatures``: :func:`load_signing_key`, :func:`load_roster`),
UTF-8, one object per file. A token file (:func:`write_secret_text`, :func:`read_token_file`)
is one line of plain text, the token; reading also accepts the earlier form, a JSON string.
Reading is strict: duplicate keys, NaN/Infinity, non-UTF-8 bytes and files over 1 MiB are
refused, and every decoding error names the file (never its secret contents).

Writing a secret file never goes through a moment where the file exists with wider permissions or
half-written under its final name when overwriting:

* ``overwrite=False`` (default): ``os.open(path, O_CREAT | O_EXCL | O_WRONLY, 0o600)``, so an
  existing file *or symlink* at path is never followed or replaced (FileExistsError);
* ``overwrite=True``: the same exclusive create on a fresh temporary name in the same directory,
  then ``os.replace`` onto path (atomic on POSIX).

In both cases the mode is then set to exactly 0600 with ``fchmod`` (a umask can only remove bits,
but an odd umask such as 0277 would otherwise leave the owner unable to write). Files that
belong together (a public key and its key shares) are written as one set by
:func:`write_json_set`: all of them in full first, then moved into place, the old set restored
if anything fails.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from smpcloud.crypto import threshold
from smpcloud.crypto.paillier import PrivateKey, PublicKey
from smpcloud.crypto.signatures import Roster, SigningKey
from smpcloud.crypto.threshold import KeyShare, ThresholdPublicKey
from smpcloud.errors import InvalidInputError

#: Largest key file read, in bytes (a 16384-bit private key is under 8 KiB).
MAX_FILE_BYTES: Final = 1 << 20
SECRET_FILE_MODE: Final = 0o600
PUBLIC_FILE_MODE: Final = 0o644

StrPath = str | os.PathLike[str]


def _reject_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    result: dict[str, object] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not valid JSON")


def _stage(target: Path, data: bytes, mode: int, *, temporary: bool) -> Path:
    """Create a file holding data with exactly ``mode``, fsynced; at ``target`` or at a fresh
    temporary name beside it. Never follows or replaces an existing file or symlink."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    created = (
        target.with_name(f".{target.name}.{secrets.token_hex(8)}.tmp") if temporary else target
    )
    try:
        fd = os.open(created, flags, mode)
    except FileExistsError:
        if temporary:  # pragma: no cover - a 64-bit random name collided
            raise
        raise FileExistsError(
            errno.EEXIST,
            "refusing to overwrite an existing file (pass overwrite=True)",
            str(target),
        ) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            if hasattr(os, "fchmod"):
                os.fchmod(handle.fileno(), mode)
            else:  # pragma: no cover - not POSIX
                os.chmod(created, mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        created.unlink(missing_ok=True)
        raise
    return created


def _write_file(path: StrPath, data: bytes, mode: int, *, overwrite: bool) -> Path:
    target = Path(path)
    created = _stage(target, data, mode, temporary=overwrite)
    if overwrite:
        try:
            os.replace(created, target)
        except BaseException:
            created.unlink(missing_ok=True)
            raise
    return target


def _dump(obj: object) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n").encode("utf-8")


def write_secret_json(path: StrPath, obj: object, *, overwrite: bool = False) -> Path:
    """Write obj as JSON to a new file with mode 0600 (see the module docstring).

    Args:
        path: the file to create.
        obj: a JSON-serialisable object holding secret material.
        overwrite: replace an existing file atomically instead of refusing.

    Returns:
        The path written.

    Raises:
        FileExistsError: if path exists and overwrite is False.
        OSError: if the directory is missing or not writable.
    """
    return _write_file(path, _dump(obj), SECRET_FILE_MODE, overwrite=overwrite)


def write_secret_bytes(path: StrPath, data: bytes, *, overwrite: bool = False) -> Path:
    """Write raw bytes (e.g. a PEM private key) to a new file with mode 0600.

    Same rules as :func:`write_secret_json` (see the module docstring).

    Raises:
        FileExistsError: if path exists and overwrite is False.
        OSError: if the directory is missing or not writable.
    """
    return _write_file(path, bytes(data), SECRET_FILE_MODE, overwrite=overwrite)


def write_public_json(path: StrPath, obj: object, *, overwrite: bool = False) -> Path:
    """Write obj as JSON to a new world-readable file (mode 0644); same rules as the secret one.

    Raises:
        FileExistsError: if path exists and overwrite is False.
        OSError: if the directory is missing or not writable.
    """
    return _write_file(path, _dump(obj), PUBLIC_FILE_MODE, overwrite=overwrite)


def write_secret_text(path: StrPath, text: str, *, overwrite: bool = False) -> Path:
    """Write one line of secret text (e.g. a bearer token) to a new file with mode 0600.

    The file holds ``text`` and a newline, nothing else: ``cat`` shows the token, and
    :func:`read_token_file` reads it back. Same rules as :func:`write_secret_json`.

    Args:
        path: the file to create.
        text: one line, without line breaks.
        overwrite: replace an existing file atomically instead of refusing.

    Returns:
        The path written.

    Raises:
        InvalidInputError: text is empty or holds a line break.
        FileExistsError: if path exists and overwrite is False.
        OSError: if the directory is missing or not writable.
    """
    if not text or text != text.strip() or len(text.splitlines()) != 1:
        raise InvalidInputError("a secret text file holds one non-empty line")
    return _write_file(path, (text + "\n").encode("utf-8"), SECRET_FILE_MODE, overwrite=overwrite)


def write_json_set(
    public: Mapping[StrPath, object],
    secret: Mapping[StrPath, object],
    *,
    overwrite: bool = False,
) -> list[Path]:
    """Write a set of JSON files that belong together (a public key and its key shares).

    ``public`` files get mode 0644, ``secret`` ones 0600 from creation. Every target is
    checked first (none may be a directory; without ``overwrite`` none may exist), then every
    file is written in full under a temporary name and fsynced, and only then are they moved
    to their names. If anything fails, the files this call created are removed and, with
    ``overwrite``, the previous files are put back: the set on disk is the old one or the new
    one, never a mixture (short of the machine dying during the final renames).

    Args:
        public: path -> JSON-serialisable object, world-readable files.
        secret: path -> JSON-serialisable object holding secret material.
        overwrite: replace existing files instead of refusing.

    Returns:
        The paths written, public ones first.

    Raises:
        FileExistsError: some target exists and overwrite is False (nothing was written).
        IsADirectoryError: some target is a directory (nothing was written).
        OSError: the directory is missing or not writable.
    """
    planned = [(Path(p), _dump(o), PUBLIC_FILE_MODE) for p, o in public.items()]
    planned += [(Path(p), _dump(o), SECRET_FILE_MODE) for p, o in secret.items()]
    for target, _data, _mode in planned:
        if target.is_dir():
            raise IsADirectoryError(errno.EISDIR, "a directory is in the way", str(target))
        if not overwrite and (target.exists() or target.is_symlink()):
            raise FileExistsError(
                errno.EEXIST, "refusing to overwrite an existing file", str(target)
            )
    staged: list[tuple[Path, Path]] = []
    backups: list[tuple[Path, Path | None]] = []  # (target, its previous file's backup)
    try:
        for target, data, mode in planned:
            staged.append((_stage(target, data, mode, temporary=True), target))
        for temporary, target in staged:
            backup: Path | None = None
            if overwrite and target.exists():
                backup = target.with_name(f".{target.name}.{secrets.token_hex(8)}.old")
                os.link(target, backup)
            if overwrite:
                os.replace(temporary, target)
            else:
                os.link(temporary, target)  # fails if target appeared meanwhile
                temporary.unlink()
            backups.append((target, backup))
    except BaseException:
        for target, backup in reversed(backups):
            if backup is not None:
                os.replace(backup, target)
            else:
                target.unlink(missing_ok=True)
        for temporary, _target in staged:
            temporary.unlink(missing_ok=True)
        raise
    for _target, backup in backups:
        if backup is not None:
            backup.unlink(missing_ok=True)
    return [target for target, _data, _mode in planned]


def read_json(path: StrPath) -> object:
    """Read one strict JSON document from path.

    Args:
        path: the file to read.

    Returns:
        The parsed JSON value.

    Raises:
        FileNotFoundError: if path does not exist (the exception carries the path).
        InvalidInputError: if the file is over 1 MiB, not UTF-8, or not strict JSON (duplicate
            keys, NaN or Infinity, syntax errors); the message names the file.
    """
    source = Path(path)
    with source.open("rb") as handle:
        raw = handle.read(MAX_FILE_BYTES + 1)
    if len(raw) > MAX_FILE_BYTES:
        raise InvalidInputError(f"{source}: larger than {MAX_FILE_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInputError(f"{source}: not UTF-8 text") from None
    try:
        return json.loads(
            text, object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant
        )
    except json.JSONDecodeError as exc:
        # exc.msg and the position only; never the document, which may hold secrets.
        raise InvalidInputError(
            f"{source}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from None
    except ValueError as exc:
        raise InvalidInputError(f"{source}: not strict JSON ({exc})") from None


def _rename_error(path: StrPath, exc: InvalidInputError) -> InvalidInputError:
    """Return an exception of the same class whose message is prefixed with the file name."""
    return type(exc)(f"{Path(path)}: {exc}")


#: Largest token file read, in bytes (tokens are ~50 characters).
MAX_TOKEN_FILE_BYTES: Final = 4096


def read_token_file(path: StrPath) -> str:
    """Read a bearer token from its file: one line of plain text.

    Also accepts the previous form, a JSON string (the token in double quotes), so that token
    files written by earlier versions keep working. Surrounding whitespace and the final
    newline are ignored. Messages name the file, never its contents.

    Args:
        path: the token file (``smpcloud task create`` writes ``client_<j>.token`` and
            ``holder_<i>.token``; the administrator's is any file holding the admin token).

    Returns:
        The token.

    Raises:
        FileNotFoundError: if path does not exist.
        InvalidInputError: an empty file, more than one line, over 4 KiB, not UTF-8, or a
            quoted token that is not a JSON string.
    """
    source = Path(path)
    with source.open("rb") as handle:
        raw = handle.read(MAX_TOKEN_FILE_BYTES + 1)
    if len(raw) > MAX_TOKEN_FILE_BYTES:
        raise InvalidInputError(f"{source}: larger than {MAX_TOKEN_FILE_BYTES} bytes; not a token")
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise InvalidInputError(f"{source}: not UTF-8 text; not a token") from None
    if text.startswith('"'):  # the previous form: a JSON string
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        if not isinstance(value, str):
            raise InvalidInputError(f"{source}: starts with a quote but is not a JSON string")
        text = value.strip()
    if not text:
        raise InvalidInputError(f"{source}: empty; expected one line holding the token")
    if len(text.splitlines()) != 1:
        raise InvalidInputError(f"{source}: expected one line holding the token, found several")
    return text


def load_threshold_public_key(path: StrPath, *, insecure: bool = False) -> ThresholdPublicKey:
    """Read a threshold Paillier public key file (``public_key.json`` from ``smpcloud keygen``).

    Args:
        path: the file.
        insecure: accept moduli below 2048 bits (tests only).

    Raises:
        FileNotFoundError: if path does not exist.
        InvalidInputError: not a threshold public key (for example a key share); the message
            names the file.
    """
    data = read_json(path)
    try:
        return threshold.public_key_from_json(data, insecure=insecure)
    except InvalidInputError as exc:
        raise type(exc)(f"{Path(path)}: not a threshold public key ({exc})") from None


def load_key_share(path: StrPath, *, insecure: bool = False) -> KeyShare:
    """Read a key holder's key share file (``key_share_<i>.json`` from ``smpcloud keygen``).

    Args:
        path: the file.
        insecure: accept moduli below 2048 bits (tests only).

    Raises:
        FileNotFoundError: if path does not exist.
        InvalidInputError: not a key share (for example the public key); the message names
            the file, never the key material.
    """
    data = read_json(path)
    try:
        return threshold.key_share_from_json(data, insecure=insecure)
    except InvalidInputError as exc:
        raise type(exc)(f"{Path(path)}: not a key share ({exc})") from None


def save_public_key(path: StrPath, public_key: PublicKey, *, overwrite: bool = False) -> Path:
    """Write a Paillier public key file (mode 0644).

    Raises:
        FileExistsError: if path exists and overwrite is False.
    """
    return write_public_json(path, public_key.to_json(), overwrite=overwrite)


def load_public_key(path: StrPath, *, insecure: bool = False) -> PublicKey:
    """Read a Paillier public key file.

    Args:
        path: the file written by :func:`save_public_key`.
        insecure: accept moduli below 2048 bits (tests only).

    Raises:
        FileNotFoundError: if path does not exist.
        InvalidInputError: if the file is not a valid public key; the message names the file.
    """
    data = read_json(path)
    try:
        return PublicKey.from_json(data, insecure=insecure)
    except InvalidInputError as exc:
        raise _rename_error(path, exc) from None


def save_private_key(path: StrPath, private_key: PrivateKey, *, overwrite: bool = False) -> Path:
    """Write a Paillier private key file, mode 0600 from creation.

    Raises:
        FileExistsError: if path exists and overwrite is False.
    """
    return write_secret_json(path, private_key.to_json(), overwrite=overwrite)


def load_private_key(path: StrPath, *, insecure: bool = False) -> PrivateKey:
    """Read a Paillier private key file.

    Args:
        path: the file written by :func:`save_private_key`.
        insecure: accept moduli below 2048 bits (tests only).

    Raises:
        FileNotFoundError: if path does not exist.
        InvalidInputError: if the file is not a valid private key; the message names the file
            and the offending field, never the key material.
    """
    data = read_json(path)
    try:
        return PrivateKey.from_json(data, insecure=insecure)
    except InvalidInputError as exc:
        raise _rename_error(path, exc) from None


def load_signing_key(path: StrPath) -> SigningKey:
    """Read a key holder's (or a server's) Ed25519 signing key file (mode 0600).

    ``smpcloud keygen`` writes ``signing_key_<i>.json`` beside ``key_share_<i>.json``; write
    one with ``write_secret_json(path, key.to_json())``.

    Raises:
        FileNotFoundError: if path does not exist.
        InvalidInputError: not a signing key; the message names the file, never the key.
    """
    data = read_json(path)
    try:
        return SigningKey.from_json(data)
    except InvalidInputError as exc:
        raise type(exc)(f"{Path(path)}: not a signing key ({exc})") from None


def load_roster(path: StrPath) -> Roster:
    """Read a roster of pinned signers (``holders.json`` from ``smpcloud keygen``).

    Raises:
        FileNotFoundError: if path does not exist.
        InvalidInputError: not a roster; the message names the file.
    """
    data = read_json(path)
    try:
        return Roster.from_json(data)
    except InvalidInputError as exc:
        raise type(exc)(f"{Path(path)}: not a holder roster ({exc})") from None


__all__ = [
    "MAX_FILE_BYTES",
    "MAX_TOKEN_FILE_BYTES",
    "PUBLIC_FILE_MODE",
    "SECRET_FILE_MODE",
    "load_key_share",
    "load_private_key",
    "load_public_key",
    "load_roster",
    "load_signing_key",
    "load_threshold_public_key",
    "read_json",
    "read_token_file",
    "save_private_key",
    "save_public_key",
    "write_json_set",
    "write_public_json",
    "write_secret_bytes",
    "write_secret_json",
    "write_secret_text",
]

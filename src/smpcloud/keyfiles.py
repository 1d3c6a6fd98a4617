"""Key files: JSON on disk, secrets written with mode 0600 from the moment they exist.

``crypto/`` stays pure (no files); this module is the file layer above it. The file format is
exactly the JSON object of ``to_json()`` (see ``smpcloud.crypto.paillier``), UTF-8, one object
per file. Reading is strict: duplicate keys, NaN/Infinity, non-UTF-8 bytes and files over 1 MiB
are refused, and every decoding error names the file (never its secret contents).

Writing a secret file never goes through a moment where the file exists with wider permissions or
half-written under its final name when overwriting:

* ``overwrite=False`` (default): ``os.open(path, O_CREAT | O_EXCL | O_WRONLY, 0o600)``, so an
  existing file *or symlink* at path is never followed or replaced (FileExistsError);
* ``overwrite=True``: the same exclusive create on a fresh temporary name in the same directory,
  then ``os.replace`` onto path (atomic on POSIX).

In both cases the mode is then set to exactly 0600 with ``fchmod`` (a umask can only remove bits,
but an odd umask such as 0277 would otherwise leave the owner unable to write).
"""

from __future__ import annotations

import errno
import json
import os
import secrets
from pathlib import Path
from typing import Final

from smpcloud.crypto.paillier import PrivateKey, PublicKey
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


def _write_file(path: StrPath, data: bytes, mode: int, *, overwrite: bool) -> Path:
    target = Path(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    created = (
        target.with_name(f".{target.name}.{secrets.token_hex(8)}.tmp") if overwrite else target
    )
    try:
        fd = os.open(created, flags, mode)
    except FileExistsError:
        if overwrite:  # pragma: no cover - a 64-bit random name collided
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
        if overwrite:
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


__all__ = [
    "MAX_FILE_BYTES",
    "PUBLIC_FILE_MODE",
    "SECRET_FILE_MODE",
    "load_private_key",
    "load_public_key",
    "read_json",
    "save_private_key",
    "save_public_key",
    "write_public_json",
    "write_secret_bytes",
    "write_secret_json",
]

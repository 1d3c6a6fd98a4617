"""The files of ``smpcloud shamir``: the servers file, the task file and client credentials.

``servers.toml`` lists the n aggregation servers in order (server j is the j-th entry) and where
each one's admin token is kept (a file holding the token on its first line, relative paths
against the servers file's directory)::

    [[server]]
    url = "http://10.0.0.1:8000"
    admin_token_file = "admin-1.token"

    [[server]]
    url = "http://10.0.0.2:8000"
    admin_token_file = "admin-2.token"

``task.json`` (public) says where a task lives: its threshold and, per server, the URL, the
task's id there and the server's share key as pinned at creation (written by ``smpcloud
shamir create``). Client credentials are the SDK's
:meth:`~smpcloud.client.shamir.ShamirCredentials.to_json` objects, one file per client, mode
0600, also carrying each server's pinned share key. Files written before shares were sealed
(no ``share_key``) are refused with a message that says which command to run again. Every
error here is an :class:`~smpcloud.errors.InvalidInputError` naming the file.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Final

from smpcloud.client.shamir import ShamirCredentials, ShamirServer, ShamirTask
from smpcloud.crypto.sealing import SealingKey
from smpcloud.errors import InvalidInputError
from smpcloud.keyfiles import read_json, write_public_json, write_secret_json

#: The ``kind`` of a task file.
TASK_KIND: Final = "smpcloud-shamir-task"
_VERSION: Final = 1
_SERVER_FIELDS: Final = frozenset({"server", "base_url", "task_id", "share_key"})


def load_servers(path: str | Path) -> list[ShamirServer]:
    """Read a servers file: each server's URL and admin token, in server order.

    Raises:
        InvalidInputError: not TOML, no ``[[server]]`` entries, a missing or mistyped field, a
            URL that is not http(s), a URL listed twice, an empty token file.
        FileNotFoundError: the servers file or a token file does not exist.
    """
    file = Path(path)
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInputError(f"{file}: not valid TOML ({exc})") from None
    entries = data.get("server")
    if not isinstance(entries, list) or not entries:
        raise InvalidInputError(f"{file}: no [[server]] entries (url and admin_token_file each)")
    servers: list[ShamirServer] = []
    for number, entry in enumerate(entries, start=1):
        where = f"{file} [[server]] #{number}"
        if not isinstance(entry, dict) or set(entry) != {"url", "admin_token_file"}:
            raise InvalidInputError(f"{where}: needs exactly url and admin_token_file")
        url, token_file = entry["url"], entry["admin_token_file"]
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise InvalidInputError(f"{where}: url must start with http:// or https://")
        if not isinstance(token_file, str) or not token_file:
            raise InvalidInputError(f"{where}: admin_token_file must be a file name")
        token_path = file.parent / token_file
        lines = token_path.read_text(encoding="utf-8").strip().splitlines()
        if not lines or not lines[0].strip():
            raise InvalidInputError(f"{token_path}: empty admin token file")
        servers.append(ShamirServer(url.rstrip("/"), lines[0].strip()))
    urls = [s.base_url for s in servers]
    if len(set(urls)) != len(urls):
        raise InvalidInputError(f"{file}: a server is listed twice")
    return servers


def write_task(path: Path, task: ShamirTask) -> None:
    """Write a task file (public: URLs, task ids and the pinned share keys; no secret).

    Raises:
        FileExistsError: the file exists.
    """
    write_public_json(
        path,
        {
            "kind": TASK_KIND,
            "version": _VERSION,
            "threshold": task.threshold,
            "servers": [
                {"server": j, "base_url": url, "task_id": task_id, "share_key": key.to_text()}
                for j, (url, task_id, key) in enumerate(
                    zip(task.base_urls, task.task_ids, task.share_keys, strict=True), start=1
                )
            ],
        },
    )


def load_task(path: str | Path) -> ShamirTask:
    """Read a task file written by :func:`write_task`.

    Raises:
        InvalidInputError: not a task file of this version, or malformed; a task file written
            before shares were sealed (no share keys: create the task again).
        FileNotFoundError: no such file.
    """
    bad = InvalidInputError(f"{path}: not a task file of smpcloud shamir create")
    try:
        data = read_json(path)
    except InvalidInputError:
        raise bad from None
    if not isinstance(data, dict) or data.get("kind") != TASK_KIND:
        raise bad
    if data.get("version") != _VERSION or set(data) != {"kind", "version", "threshold", "servers"}:
        raise bad
    threshold, servers = data["threshold"], data["servers"]
    if type(threshold) is not int or not isinstance(servers, list) or not servers:
        raise bad
    urls: list[str] = []
    task_ids: list[str] = []
    keys: list[SealingKey] = []
    for j, item in enumerate(servers, start=1):
        if not isinstance(item, dict) or item.get("server") != j:
            raise bad
        if set(item) == _SERVER_FIELDS - {"share_key"}:
            raise InvalidInputError(
                f"{path}: written before Shamir shares were sealed to each server (no share "
                "keys): re-run smpcloud shamir create, then smpcloud shamir register"
            )
        if set(item) != _SERVER_FIELDS:
            raise bad
        url, task_id = item.get("base_url"), item.get("task_id")
        if not isinstance(url, str) or not isinstance(task_id, str) or not url or not task_id:
            raise bad
        try:
            keys.append(SealingKey.from_text(item["share_key"], f"server {j}'s share_key"))
        except InvalidInputError as exc:
            raise InvalidInputError(f"{path}: {exc}") from None
        urls.append(url)
        task_ids.append(task_id)
    return ShamirTask(tuple(urls), tuple(task_ids), threshold, tuple(keys))


def check_same_servers(servers: list[ShamirServer], task: ShamirTask, where: str) -> None:
    """Refuse a servers file that does not list the task's servers, in the task's order.

    Raises:
        InvalidInputError: the URLs differ (both lists are named).
    """
    urls = [s.base_url for s in servers]
    if urls != list(task.base_urls):
        raise InvalidInputError(
            f"{where} lists {', '.join(urls)} but the task lives on "
            f"{', '.join(task.base_urls)} (same servers, same order)"
        )


def check_credentials_dir(out_dir: Path) -> None:
    """Refuse a directory that already holds credentials (checked before registering, so that
    no client is registered whose credentials cannot be written).

    Raises:
        FileExistsError: ``out_dir`` holds a ``client_<id>.json`` file (the first is named).
    """
    existing = sorted(out_dir.glob("client_*.json")) if out_dir.is_dir() else []
    if existing:
        raise FileExistsError(
            f"{out_dir} already holds credentials ({existing[0].name}): choose another --out"
        )


def write_credentials(out_dir: Path, credentials: list[ShamirCredentials]) -> list[Path]:
    """Write ``OUT/client_<id>.json`` per client (mode 0600, never replacing a file).

    Raises:
        FileExistsError: a credentials file exists.
    """
    paths = [out_dir / f"client_{c.client_id}.json" for c in credentials]
    out_dir.mkdir(parents=True, exist_ok=True)
    for path, cred in zip(paths, credentials, strict=True):
        write_secret_json(path, cred.to_json())
    return paths


def load_credentials(path: str | Path) -> ShamirCredentials:
    """Read one client's credentials file.

    Raises:
        InvalidInputError: not a credentials file (see ShamirCredentials.from_json).
        FileNotFoundError: no such file.
    """
    data = read_json(path)  # its errors name the file already
    try:
        return ShamirCredentials.from_json(data)
    except InvalidInputError as exc:
        raise InvalidInputError(f"{path}: {exc}") from None


def read_values(path: str | Path) -> list[float]:
    """Read numbers from a text file: separated by commas, spaces or new lines.

    Raises:
        InvalidInputError: a word that is not a number (named), or no number at all.
    """
    words = Path(path).read_text(encoding="utf-8").replace(",", " ").split()
    values: list[float] = []
    for word in words:
        try:
            values.append(float(word))
        except ValueError:
            raise InvalidInputError(f"{path}: {word[:20]!r} is not a number") from None
    if not values:
        raise InvalidInputError(f"{path}: no values")
    return values


__all__ = [
    "TASK_KIND",
    "check_credentials_dir",
    "check_same_servers",
    "load_credentials",
    "load_servers",
    "load_task",
    "read_values",
    "write_credentials",
    "write_task",
]

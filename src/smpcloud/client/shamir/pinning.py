"""What a Shamir data owner checks before it sends anything: where the servers are, their keys.

A client seals share j to server j's share key, pinned by the administrator in its credentials
(:mod:`smpcloud.protocol.sharing`, "Sealed shares"). Sealing keeps a share from whatever
carries it; these checks refuse deployments where sealing could not help or where someone
tampered with the credentials or a server:

* **https only**, except to a loopback address (``127.0.0.0/8``, ``::1``, ``localhost``): a
  plain ``http://`` URL would hand the bearer tokens (and the timing of every report) to
  everyone on the path. Loopback is the one exception, so that the local demonstrations (three
  servers on three ports of 127.0.0.1) keep working: traffic that never leaves the machine.
* **one server per host**: two servers of one task at the same host name (compared after
  normalisation: lower case, no trailing dot, IP addresses in their canonical form, IPv4-mapped
  IPv6 as IPv4) are one operator, able to read both shares. Loopback addresses are again the
  one exception. Two *different* names may still point at one machine; the client cannot tell
  (resolving them would trust DNS), so the administrator, who knows the deployment, is trusted
  for that.
* **distinct keys**: two servers with the same share key are one key holder.
* **the pinned key**: a server that serves a share key other than the pinned one is refused
  (a substituted server, or tampered credentials), before any share is sent.

Each refusal is its own exception, whose message names the servers involved; the three
deployment checks run before any request.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from urllib.parse import urlsplit

from smpcloud.crypto.sealing import SealingKey
from smpcloud.errors import InvalidInputError, VerificationError


class InsecureServerURLError(InvalidInputError):
    """A server's URL is plain ``http://`` to a host that is not loopback (https required)."""


class SharedHostError(InvalidInputError):
    """Two servers of one task are at the same (non-loopback) host."""


class DuplicateShareKeyError(InvalidInputError):
    """Two servers of one task have the same share key."""


class ShareKeyMismatchError(VerificationError):
    """A server serves a share key other than the one pinned in the task file or credentials."""


def normalized_host(url: str) -> str:
    """Return the host of ``url``, normalised for comparison (see the module docstring).

    Raises:
        InvalidInputError: not an http(s) URL with a host.
    """
    if not isinstance(url, str):
        raise InvalidInputError("a server URL must be text")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInputError(f"{url!r} is not an http(s) URL with a host")
    host = parts.hostname.lower().rstrip(".")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return str(address)


def is_loopback(host: str) -> bool:
    """True for a normalised host that is a loopback address or the name ``localhost``."""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_server_urls(urls: Sequence[str]) -> None:
    """Refuse plain http to a non-loopback host, and two servers on one non-loopback host.

    Args:
        urls: the servers' base URLs, server j at ``urls[j - 1]``.

    Raises:
        InsecureServerURLError: server j's URL is ``http://`` to a non-loopback host (named).
        SharedHostError: servers i and j are at the same non-loopback host (named).
        InvalidInputError: a URL that is not http(s) with a host.
    """
    seen: dict[str, int] = {}
    for j, url in enumerate(urls, start=1):
        host = normalized_host(url)
        if is_loopback(host):
            continue
        if urlsplit(url).scheme != "https":
            raise InsecureServerURLError(
                f"server {j} ({url}) is plain http:// to a host that is not loopback: its "
                "tokens and traffic would cross the network in the clear; use https://"
            )
        if host in seen:
            i = seen[host]
            raise SharedHostError(
                f"servers {i} ({urls[i - 1]}) and {j} ({url}) are on the same host {host!r}: "
                "one operator would hold both shares; each server must run on its own host"
            )
        seen[host] = j


def check_share_keys(keys: Sequence[SealingKey], urls: Sequence[str]) -> None:
    """Refuse two servers with the same share key.

    Raises:
        DuplicateShareKeyError: servers i and j have the same key (named, with its fingerprint).
        InvalidInputError: not one :class:`SealingKey` per server.
    """
    if len(keys) != len(urls) or not all(isinstance(k, SealingKey) for k in keys):
        raise InvalidInputError("one SealingKey per server")
    seen: dict[SealingKey, int] = {}
    for j, key in enumerate(keys, start=1):
        if key in seen:
            i = seen[key]
            raise DuplicateShareKeyError(
                f"servers {i} ({urls[i - 1]}) and {j} ({urls[j - 1]}) have the same share key "
                f"{key.fingerprint()}: one key holder would read both shares"
            )
        seen[key] = j


def check_served_key(server: int, url: str, pinned: SealingKey, served: object) -> None:
    """Refuse a server whose task info serves another share key than the pinned one.

    Args:
        server: j.
        url: server j's URL (for the message).
        pinned: the key the administrator pinned for server j.
        served: the ``share_key`` server j's task info holds now.

    Raises:
        ShareKeyMismatchError: none served, or another one (both fingerprints named).
    """
    if served == pinned.to_text():
        return
    try:
        shown = SealingKey.from_text(served).fingerprint()
    except InvalidInputError:
        shown = "none" if served is None else "a malformed key"
    raise ShareKeyMismatchError(
        f"server {server} ({url}) serves share key {shown}, but {pinned.fingerprint()} was "
        "pinned when the task was created: refusing to send anything (a substituted server "
        "or altered credentials)"
    )


__all__ = [
    "DuplicateShareKeyError",
    "InsecureServerURLError",
    "ShareKeyMismatchError",
    "SharedHostError",
    "check_served_key",
    "check_server_urls",
    "check_share_keys",
    "is_loopback",
    "normalized_host",
]

"""A peer-MPC deployment described in one TOML file (``parties.toml``).

Every party (and the dealer) reads the same file and picks its own entry by id::

    [deployment]
    ca = "ca.pem"            # the deployment CA: the only trust anchor for TLS
    threshold = 2            # t: shares needed to open a value (degree t - 1)
    timeout = 30.0           # seconds to wait for a peer before naming it as silent
    connect_timeout = 60.0   # seconds to wait for every peer to come up at the start
    frac_bits = 16           # fixed-point resolution for real-valued inputs
    # truncation_shifts = [16]  # optional: the only truncation shifts parties and dealer allow

    [[party]]
    id = 0                   # 0 is the dealer of Beaver triples (omit it for no dealer)
    host = "127.0.0.1"
    port = 9100
    cert = "party-0.pem"
    key = "party-0-key.pem"

    [[party]]
    id = 1
    ...

Relative paths are resolved against the file's directory. ``smpcloud certs`` writes such a file
next to the certificates it creates.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from smpcloud.errors import InvalidInputError
from smpcloud.mpc.transport import DEFAULT_TIMEOUT


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One party's network address and TLS identity files."""

    id: int
    host: str
    port: int
    cert: Path
    key: Path


@dataclass(frozen=True, slots=True)
class DeploymentConfig:
    """The parsed deployment: CA, threshold, timeouts and every endpoint by id."""

    ca: Path
    threshold: int
    timeout: float
    frac_bits: int
    endpoints: Mapping[int, Endpoint]
    connect_timeout: float = 60.0
    truncation_shifts: frozenset[int] | None = None

    @property
    def parties(self) -> int:
        """Number of computing parties (ids 1..n)."""
        return sum(1 for i in self.endpoints if i != 0)

    @property
    def has_dealer(self) -> bool:
        """Whether a dealer (id 0) is configured."""
        return 0 in self.endpoints

    def addresses(self) -> dict[int, tuple[str, int]]:
        """Return id -> (host, port) for every endpoint."""
        return {i: (e.host, e.port) for i, e in self.endpoints.items()}

    def endpoint(self, party: int) -> Endpoint:
        """Return the entry for ``party``.

        Raises:
            InvalidInputError: no such party in the file.
        """
        if party not in self.endpoints:
            known = ", ".join(map(str, sorted(self.endpoints)))
            raise InvalidInputError(f"party {party} is not in the deployment (ids: {known})")
        return self.endpoints[party]


def _field(table: Mapping[str, object], name: str, kind: type, where: str) -> object:
    if name not in table:
        raise InvalidInputError(f"{where}: missing '{name}'")
    value = table[name]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise InvalidInputError(f"{where}: '{name}' must be a {kind.__name__}")
    return value


def load_deployment(path: str | Path) -> DeploymentConfig:
    """Read and validate a deployment file.

    Raises:
        InvalidInputError: unreadable TOML, missing or mistyped fields, duplicate ids or ports,
            ids not 1..n (plus optional 0), threshold outside 1..n. Messages name the file.
        FileNotFoundError: the file does not exist.
    """
    file = Path(path)
    base = file.parent
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInputError(f"{file}: not valid TOML ({exc})") from None
    section = data.get("deployment")
    if not isinstance(section, dict):
        raise InvalidInputError(f"{file}: missing [deployment] section")
    where = f"{file} [deployment]"
    ca = base / str(_field(section, "ca", str, where))
    t = int(_field(section, "threshold", int, where))  # type: ignore[call-overload]
    timeout = float(section.get("timeout", DEFAULT_TIMEOUT))
    frac_bits = int(section.get("frac_bits", 16))
    connect_timeout = float(section.get("connect_timeout", 60.0))
    if timeout <= 0 or connect_timeout <= 0:
        raise InvalidInputError(f"{where}: timeouts must be positive")
    shifts = section.get("truncation_shifts")
    if shifts is not None and (
        not isinstance(shifts, list)
        or not shifts
        or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shifts)
    ):
        raise InvalidInputError(f"{where}: 'truncation_shifts' must be a list of positive ints")
    entries = data.get("party")
    if not isinstance(entries, list) or not entries:
        raise InvalidInputError(f"{file}: no [[party]] entries")
    endpoints: dict[int, Endpoint] = {}
    for number, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict):
            raise InvalidInputError(f"{file}: [[party]] #{number} is not a table")
        at = f"{file} [[party]] #{number}"
        pid = int(_field(entry, "id", int, at))  # type: ignore[call-overload]
        if pid in endpoints:
            raise InvalidInputError(f"{at}: duplicate id {pid}")
        port = int(_field(entry, "port", int, at))  # type: ignore[call-overload]
        if not 1 <= port <= 65535:
            raise InvalidInputError(f"{at}: port {port} out of range")
        endpoints[pid] = Endpoint(
            pid,
            str(_field(entry, "host", str, at)),
            port,
            base / str(_field(entry, "cert", str, at)),
            base / str(_field(entry, "key", str, at)),
        )
    n = sum(1 for i in endpoints if i != 0)
    if sorted(i for i in endpoints if i != 0) != list(range(1, n + 1)):
        raise InvalidInputError(f"{file}: party ids must be 1..n (and optionally 0, the dealer)")
    if len({(e.host, e.port) for e in endpoints.values()}) != len(endpoints):
        raise InvalidInputError(f"{file}: two parties share a host and port")
    if not 1 <= t <= n:
        raise InvalidInputError(f"{file}: threshold {t} must be in 1..{n}")
    return DeploymentConfig(
        ca,
        t,
        timeout,
        frac_bits,
        endpoints,
        connect_timeout,
        None if shifts is None else frozenset(shifts),
    )


def render_deployment(
    *, parties: int, threshold: int, base_port: int, host: str = "127.0.0.1", dealer: bool = True
) -> str:
    """Return the text of a parties.toml for certificates laid out by ``smpcloud certs``."""
    lines = [
        "# smpcloud peer-MPC deployment: every party reads this file and picks its own id.",
        "[deployment]",
        'ca = "ca.pem"',
        f"threshold = {threshold}",
        f"timeout = {DEFAULT_TIMEOUT}",
        "connect_timeout = 60.0",
        "frac_bits = 16",
    ]
    for pid in range(0 if dealer else 1, parties + 1):
        lines += [
            "",
            "[[party]]" + ("  # the dealer of Beaver triples" if pid == 0 else ""),
            f"id = {pid}",
            f'host = "{host}"',
            f"port = {base_port + pid}",
            f'cert = "party-{pid}.pem"',
            f'key = "party-{pid}-key.pem"',
        ]
    return "\n".join(lines) + "\n"

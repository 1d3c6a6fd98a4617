"""Table 1's rows: what one way of aggregating measured, how it is timed and sized, the table.

:class:`Table1Row` is one way (or one peer library) as measured; :func:`timed_each` times the
clients' work one by one (median per client), :func:`median_size` sizes the request bodies as
httpx sends them, and :func:`render_markdown` writes the table with its caption and notes.
"""

from __future__ import annotations

import importlib.metadata
import json
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, TypeVar

import httpx

from smpcloud.datasets import FRAC_BITS
from smpcloud.evaluation.harness import (
    KEY_HOLDERS,
    KEY_THRESHOLD,
    SHAMIR_SERVERS,
    SHAMIR_THRESHOLD,
)

T = TypeVar("T")
U = TypeVar("U")

_URL: Final = "http://127.0.0.1/v1/tasks/table1/reports"


# ------------------------------------------------------------------------------ value types


@dataclass(frozen=True, slots=True)
class Table1Row:
    """One way of doing the aggregation, as measured.

    Attributes:
        method: what was done.
        client_seconds: median seconds per client (None: not measured or not applicable).
        server_seconds: the server's seconds for all N reports (Shamir: each server).
        release_seconds: seconds to decrypt or rebuild the result (None: nothing to release).
        bytes_per_client: bytes of the request body (bodies) one client uploads.
        server_learns: what the server (or servers) learn.
        note: how it was measured, or why the row was skipped.
        peer: True for another library's implementation of the same job.
        skipped: True when the row could not be measured (peer not installed).
    """

    method: str
    client_seconds: float | None
    server_seconds: float | None
    release_seconds: float | None
    bytes_per_client: int | None
    server_learns: str
    note: str = ""
    peer: bool = False
    skipped: bool = False


@dataclass(frozen=True, slots=True)
class Table1Result:
    """What :func:`~smpcloud.evaluation.table1.run_table1` measured and where it wrote it."""

    rows: list[Table1Row]
    clients: int
    bits: int
    markdown: str
    path: Path
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------- helpers


def timed_each(items: Sequence[T], work: Callable[[T], U]) -> tuple[list[U], float]:
    """Run work(item) for each item; return the outputs and the median seconds per item."""
    outputs: list[U] = []
    times: list[float] = []
    clock = time.perf_counter
    for item in items:
        start = clock()
        outputs.append(work(item))
        times.append(clock() - start)
    return outputs, statistics.median(times)


def json_bytes(body: object) -> bytes:
    """Serialise a JSON body compactly (as the client's HTTP library does)."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def wire_size(body: bytes) -> int:
    """Return the size of the request body httpx sends for ``json=`` this JSON document."""
    return len(httpx.Request("POST", _URL, json=json.loads(body)).content)


def median_size(bodies: Sequence[bytes]) -> int:
    """Return the median wire size of the bodies (they differ by a byte or two)."""
    return int(statistics.median_low(wire_size(b) for b in bodies))


def version(distribution: str) -> str:
    """Return the installed version of ``distribution``, or ``"?"``."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def fmt_seconds(seconds: float | None) -> str:
    """Format seconds for the table (µs, ms or s, three digits; a dash for None)."""
    if seconds is None:
        return "—"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.3g} µs"
    if seconds < 1.0:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds:.3g} s"


def fmt_bytes(count: int | None) -> str:
    """Format a byte count for the table (a dash for None)."""
    return "—" if count is None else f"{count:,} B"


# ---------------------------------------------------------------------------------- output


def render_markdown(
    rows: Sequence[Table1Row], *, clients: int, bits: int, notes: Sequence[str]
) -> str:
    caption = (
        f"**Table 1 (measured).** The same aggregation of {clients:,} clients' body-mass "
        f"indices (scikit-learn diabetes dataset, fixed point with {FRAC_BITS} fractional "
        f"bits) done four ways in one run, with peers. Measured at the cryptographic level (no "
        "HTTP, no database): the table compares cryptographic cost and upload size; Figure 7 "
        "measures the service end to end. Time per client: median, one core (encode, encrypt "
        "or share, serialise the body). Server time: all reports (parse, decrypt or validate, "
        "combine). Release: decrypting or rebuilding the result. Bytes: the JSON request body "
        f"one client uploads. Paillier: {bits}-bit modulus, {KEY_THRESHOLD}-of-{KEY_HOLDERS} "
        f"threshold decryption; Shamir: {SHAMIR_SERVERS} servers, t = {SHAMIR_THRESHOLD}."
    )
    header = [
        "method",
        "time per client",
        "server time",
        "release",
        "bytes per client",
        "what the server learns",
    ]
    lines = [
        caption,
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + ["---:"] * 4 + ["---"]) + "|",
    ]
    for row in rows:
        cells = [
            row.method,
            fmt_seconds(row.client_seconds),
            fmt_seconds(row.server_seconds),
            fmt_seconds(row.release_seconds),
            fmt_bytes(row.bytes_per_client),
            row.server_learns,
        ]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    lines.append("")
    lines.append("Notes:")
    lines.append("")
    lines.extend(f"- {row.method}: {row.note}" for row in rows if row.note)
    lines.extend(f"- {note}" for note in notes)
    return "\n".join(lines) + "\n"


__all__ = [
    "Table1Result",
    "Table1Row",
    "fmt_bytes",
    "fmt_seconds",
    "json_bytes",
    "median_size",
    "render_markdown",
    "timed_each",
    "version",
    "wire_size",
]

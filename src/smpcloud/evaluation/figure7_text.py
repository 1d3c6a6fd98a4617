"""What Figure 7 measures, in words: its modes and phases, the CSV's notes, the plot's panels.

Split from :mod:`smpcloud.evaluation.figure7` (which runs the measurement and re-exports these
names) so that the runner stays short. Pure: strings and constants only.
"""

from __future__ import annotations

from typing import Final, Literal

from smpcloud.datasets import BMI_RANGE
from smpcloud.evaluation.harness import (
    KEY_HOLDERS,
    KEY_THRESHOLD,
    SHAMIR_SERVERS,
    SHAMIR_THRESHOLD,
)
from smpcloud.protocol.schemas import TaskEncoding, Validity

Mode = Literal["paillier", "shamir"]

MODES: Final[tuple[Mode, ...]] = ("paillier", "shamir")
PAILLIER_PHASES: Final = ("client encryption", "upload", "aggregation", "threshold decryption")
SHAMIR_PHASES: Final = ("client sharing", "upload", "aggregation", "reconstruction")
#: Shamir mode's encoding when reports are checked: a checked task's field is one prime below
#: 2^32 (the bit check needs a prime field), so max_clients x span must stay below it; BMIs in
#: [0, 100] with 8 fractional bits allow 167,000 clients (16 bits: 655).
SHAMIR_CHECKED_ENCODING: Final = TaskEncoding.fixed(8, *BMI_RANGE)


def figure_notes(
    *,
    bits: int,
    workers: int,
    connections: int,
    dealer_seconds: float | None,
    validity: Validity,
) -> list[str]:
    """The lines written above the figure's CSV: what was measured, and how."""
    dealer = (
        f"dealt once in {dealer_seconds:.2f} s, not in the figure"
        if dealer_seconds is not None
        else "dealt before the run"
    )
    return [
        "smpcloud Figure 7: seconds per phase against the number of clients, measured in one "
        "run on 127.0.0.1 (uvicorn server subprocesses, SQLite files).",
        f"Paillier mode: one server, {bits}-bit {KEY_THRESHOLD}-of-{KEY_HOLDERS} threshold key "
        f"({dealer}). Shamir mode: {SHAMIR_SERVERS} servers, t = {SHAMIR_THRESHOLD}.",
        f"client encryption / client sharing: clients simulated on {workers} worker "
        "process(es), each handling a slice of the clients with one pinned key object "
        "(its fast-encryption table built once per slice); a one-shot device would pay a "
        f"classic r^n encryption instead (~8 ms at 2048 bits, see Table 1).",
        f"upload: each client's own token and its own HTTP request, over {connections} "
        "concurrent keep-alive connections (httpx); Shamir mode uploads 3 shares per client.",
        "aggregation: the server(s) close and combine; threshold decryption: 3 of 5 key "
        "holders partial-decrypt with proofs, the server verifies and combines; reconstruction: "
        "the sum rebuilt from the servers' shares of it. Task setup is not timed.",
        (
            "validity range: every client proves its report valid (Paillier: a zero-knowledge "
            "range proof, made in the client phase, verified by the server in the upload phase; "
            "Shamir: the bits of each value are shared and the servers check them jointly at "
            f"close, with {SHAMIR_CHECKED_ENCODING.frac_bits} fractional bits, since a checked "
            "Shamir task's sums must stay below its 32-bit prime)."
            if validity == "range"
            else "validity none: reports are trusted (no validity proofs)."
        ),
    ]


def figure_panel(mode: Mode, bits: int) -> tuple[str, str, tuple[str, ...]]:
    """The plot's panel of one mode: (mode, title, phases)."""
    if mode == "paillier":
        return (
            mode,
            f"Paillier ({bits}-bit, {KEY_THRESHOLD}-of-{KEY_HOLDERS} decryption)",
            (PAILLIER_PHASES),
        )
    return mode, f"Shamir ({SHAMIR_SERVERS} servers, t = {SHAMIR_THRESHOLD})", SHAMIR_PHASES


__all__ = [
    "MODES",
    "PAILLIER_PHASES",
    "SHAMIR_CHECKED_ENCODING",
    "SHAMIR_PHASES",
    "Mode",
    "figure_notes",
    "figure_panel",
]

"""Figure 7's files: the CSV of the measured points and the log-log plot (one panel per mode).

The plot needs matplotlib, from the optional ``examples`` extra; without it
:class:`~smpcloud.datasets.MissingExtraError` says what to install.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from smpcloud.datasets import require_extra


class PhaseTiming(Protocol):
    """One measured point: ``seconds`` for ``phase`` of ``mode`` with ``clients`` clients."""

    @property
    def mode(self) -> str: ...

    @property
    def clients(self) -> int: ...

    @property
    def phase(self) -> str: ...

    @property
    def seconds(self) -> float: ...


def write_csv(path: Path, rows: Sequence[PhaseTiming], notes: Sequence[str]) -> None:
    """Write the points as CSV (mode, clients, phase, seconds), the notes first as # lines."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        for note in notes:
            handle.write(f"# {note}\n")
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["mode", "clients", "phase", "seconds"])
        for row in rows:
            writer.writerow([row.mode, row.clients, row.phase, f"{row.seconds:.6f}"])


def plot_phases(
    path: Path,
    rows: Sequence[PhaseTiming],
    panels: Sequence[tuple[str, str, Sequence[str]]],
) -> None:
    """Write the log-log plot: a panel per mode, a line per phase, a dashed total.

    Args:
        path: the PNG file.
        rows: the measured points.
        panels: (mode, panel title, phases in legend order), one per panel, left to right.

    Raises:
        MissingExtraError: matplotlib is not installed.
    """
    with require_extra("examples"):
        from matplotlib.figure import Figure

    figure = Figure(figsize=(5.6 * len(panels), 4.4), layout="constrained")
    axes = figure.subplots(1, len(panels), squeeze=False, sharey=True)[0]
    for ax, (mode, title, phases) in zip(axes, panels, strict=True):
        mine = [r for r in rows if r.mode == mode]
        counts = sorted({r.clients for r in mine})
        for phase in phases:
            points = sorted((r.clients, r.seconds) for r in mine if r.phase == phase)
            ax.plot(*zip(*points, strict=True), marker="o", label=phase)
        totals = [sum(r.seconds for r in mine if r.clients == n) for n in counts]
        ax.plot(counts, totals, linestyle="--", color="black", marker=".", label="total")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("number of clients")
        ax.grid(True, which="both", linewidth=0.3)
        ax.set_title(title)
        ax.legend(fontsize="small")
    axes[0].set_ylabel("seconds")
    figure.suptitle("Computation time per phase (measured)")
    figure.savefig(path, dpi=150)


__all__ = ["PhaseTiming", "plot_phases", "write_csv"]

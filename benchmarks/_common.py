"""Small helpers shared by the benchmark scripts: timing medians, one-core pinning, tables."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Sequence

from smpcloud.ports import free_port_range

__all__ = ["free_port_range", "median_seconds", "pin_to_one_core", "print_table"]


def pin_to_one_core() -> str:
    """Pin this process to one CPU (where the OS allows) and say which."""
    if hasattr(os, "sched_setaffinity"):
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return f"pinned to CPU {cpu}"
    return "not pinned (no sched_setaffinity)"


def median_seconds(fn: Callable[[], object], repeat: int) -> float:
    """Run fn ``repeat`` times and return the median wall-clock seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Print a plain Markdown table (readable in a terminal and pasteable in an issue)."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")

"""Small helpers shared by the benchmark scripts: timing medians, one-core pinning, tables,
and a calibration of the machine against the reference machine of the issues' targets."""

from __future__ import annotations

import multiprocessing
import os
import secrets
import statistics
import time
from collections.abc import Callable, Sequence

import gmpy2

from smpcloud.ports import free_port_range

__all__ = [
    "REFERENCE_MODMULS_PER_SECOND",
    "all_cores_modmuls_per_second",
    "free_port_range",
    "machine_line",
    "median_seconds",
    "modmuls_per_second",
    "pin_to_one_core",
    "print_table",
]

#: One core of the reference machine of issue 6's targets: "about 174,000 4096-bit modular
#: multiplications per second" (the issue's own figure).
REFERENCE_MODMULS_PER_SECOND = 174_000


def modmuls_per_second(*, runs: int = 7, count: int = 10_000) -> float:
    """Return one core's rate of 4096-bit modular multiplications (a * b % n^2, 2048-bit n).

    This is the operation that dominates Paillier at 2048 bits (encryption tables, aggregation,
    and inside GMP's powmod); the median of ``runs`` short runs, so that a benchmark can print
    how fast this machine is next to its figures. The machines the benchmarks run on are shared
    and their speed varies from minute to minute (seen here: 100,000 to 160,000 per second
    within one minute), which is why the figures' comparisons are made in the same run.
    """
    n = gmpy2.mpz(secrets.randbits(2048) | (1 << 2047) | 1)
    modulus = n * n
    a = gmpy2.mpz(secrets.randbelow(int(modulus)))
    b = gmpy2.mpz(secrets.randbelow(int(modulus)))
    rates = []
    for _ in range(runs):
        start = time.perf_counter()
        for _ in range(count):
            a = a * b % modulus
        rates.append(count / (time.perf_counter() - start))
    return statistics.median(rates)


def _modmul_worker(barrier: object, results: object, count: int) -> None:
    barrier.wait()  # type: ignore[attr-defined]
    results.put(modmuls_per_second(runs=1, count=count))  # type: ignore[attr-defined]


def all_cores_modmuls_per_second(processes: int, *, count: int = 20_000) -> float:
    """Return the machine's total rate of 4096-bit modular multiplications on ``processes``
    processes running at once (the capacity a pool of that size can use at best).

    On shared virtual machines this is often well below ``processes`` times the one-core rate
    (seen here: about 1.46x with 2 processes), which bounds what any parallel code can reach.
    """
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(processes)
    results = context.Queue()
    workers = [
        context.Process(target=_modmul_worker, args=(barrier, results, count))
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    rates = [results.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join()
    return float(sum(rates))


def machine_line(rate: float | None = None) -> str:
    """Describe this machine's speed against the reference machine (one line to print)."""
    rate = modmuls_per_second() if rate is None else rate
    return (
        f"machine: one core does {rate:,.0f} 4096-bit modular multiplications/s "
        f"({rate / REFERENCE_MODMULS_PER_SECOND:.2f}x the targets' reference machine, "
        f"{REFERENCE_MODMULS_PER_SECOND:,}/s); {os.cpu_count()} CPUs"
    )


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

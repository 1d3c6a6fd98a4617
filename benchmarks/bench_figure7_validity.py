"""What checking every report costs: Figure 7 with validity 'range' and 'none', in one run.

Issue 15 made every new task check each report: in Paillier mode each client proves in zero
knowledge that its value lies in the declared range (the client phase) and the server verifies
the proof before acknowledging the upload (the upload phase); in Shamir mode each client shares
the bits of its value and the three servers check them jointly at close (the aggregation
phase). The issue asks for Figure 7 at 10^4 clients re-measured with proofs.

Each run measures, one after the other on the same machine and the same number of clients,
:func:`smpcloud.evaluation.figure7.run_figure7` with ``validity="none"`` (reports trusted, as
before the checks) and ``validity="range"``, alternating which goes first; the script prints
the median of each phase and of the end-to-end total per mode, and the ratio. Shamir mode's
checked tasks use 8 fractional bits instead of 16 (a checked task's sums must stay below its
32-bit prime: see ``SHAMIR_CHECKED_ENCODING``); its unchecked runs use 16, as Figure 7 does.

Run: .venv/bin/python benchmarks/bench_figure7_validity.py [--clients 10000] [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import machine_line
from smpcloud.evaluation.figure7 import PAILLIER_PHASES, SHAMIR_PHASES, run_figure7

VALIDITIES = ("none", "range")


def one_run(clients: int, validity: str, modes: list[str], bits: int) -> dict[str, float]:
    """Seconds per (mode/phase) of one Figure 7 run at ``clients`` clients."""
    result = run_figure7(
        client_counts=[clients],
        modes=modes,  # type: ignore[arg-type]
        bits=bits,
        out=Path(tempfile.mkdtemp(prefix="bench-figure7-validity-")),
        validity=validity,  # type: ignore[arg-type]
    )
    return {f"{row.mode}/{row.phase}": row.seconds for row in result.rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--bits", type=int, default=2048)
    parser.add_argument("--modes", default="paillier,shamir", help="comma-separated")
    args = parser.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    print(machine_line())
    samples: dict[str, dict[str, list[float]]] = {v: {} for v in VALIDITIES}
    started = time.perf_counter()
    for run in range(args.runs):
        order = VALIDITIES if run % 2 == 0 else VALIDITIES[::-1]
        for validity in order:
            seconds = one_run(args.clients, validity, modes, args.bits)
            for key, value in seconds.items():
                samples[validity].setdefault(key, []).append(value)
            print(
                f"[run {run + 1}/{args.runs}, {validity}] {time.perf_counter() - started:.0f} s",
                file=sys.stderr,
                flush=True,
            )
    print(
        f"\nFigure 7 at {args.clients:,} clients, {args.bits}-bit 3-of-5 key / 3 Shamir servers, "
        f"medians of {args.runs} run(s), seconds:"
    )
    print(f"{'mode':<9}{'phase':<28}{'none':>9}{'range':>9}{'ratio':>8}")
    for mode in modes:
        phases = PAILLIER_PHASES if mode == "paillier" else SHAMIR_PHASES
        totals = {v: 0.0 for v in VALIDITIES}
        for phase in phases:
            key = f"{mode}/{phase}"
            med = {v: statistics.median(samples[v][key]) for v in VALIDITIES}
            for v in VALIDITIES:
                totals[v] += med[v]
            print(
                f"{mode:<9}{phase:<28}{med['none']:>9.2f}{med['range']:>9.2f}"
                f"{med['range'] / med['none']:>7.2f}x"
            )
        print(
            f"{mode:<9}{'end to end':<28}{totals['none']:>9.2f}{totals['range']:>9.2f}"
            f"{totals['range'] / totals['none']:>7.2f}x"
        )
    print(machine_line())
    return 0


if __name__ == "__main__":
    sys.exit(main())

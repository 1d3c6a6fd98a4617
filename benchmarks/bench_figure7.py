"""Figure 7, measured: seconds per phase against the number of clients, Paillier and Shamir modes.

Thin wrapper around :func:`smpcloud.evaluation.figure7.run_figure7` (the CLI's `smpcloud bench fig7`
calls the same function). For N = 10, 100, ... up to --max-clients, and each mode, a fresh task
on real server subprocesses (uvicorn, SQLite file, 127.0.0.1): client encryption (simulated on
every core, one pinned key object per worker process), upload (each client's own token and
HTTP request, --connections concurrent connections), aggregation, threshold decryption (3 of 5
holders, with proofs) or reconstruction (Shamir, 3 servers, t = 2). Every result is checked
against the plaintext.

Issue 6 target (2-core machine, 2048-bit keys): the secure average of 10,000 clients end to end
(encrypt, upload over HTTP, aggregate, 3-of-5 threshold decryption) in <= 30 s: the sum of the
four Paillier phases at N = 10,000.

Run: .venv/bin/python benchmarks/bench_figure7.py [--max-clients 10000] [--out DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from _common import machine_line
from smpcloud.evaluation.figure7 import client_counts_up_to, run_figure7

TARGET_CLIENTS = 10_000
TARGET_SECONDS = 30.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-clients", type=int, default=TARGET_CLIENTS)
    parser.add_argument("--modes", default="paillier,shamir", help="comma-separated")
    parser.add_argument("--bits", type=int, default=2048)
    parser.add_argument("--workers", type=int, default=None, help="default: every core")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--out", type=Path, default=None, help="default: a new temporary dir")
    args = parser.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="smpcloud-figure7-"))
    print(machine_line())
    started = time.perf_counter()

    def progress(done: int, total: int, what: str) -> None:
        elapsed = time.perf_counter() - started
        print(f"[{done:>2}/{total}] {elapsed:7.1f} s  {what}", file=sys.stderr, flush=True)

    result = run_figure7(
        client_counts=client_counts_up_to(args.max_clients),
        modes=tuple(m.strip() for m in args.modes.split(",") if m.strip()),  # type: ignore[arg-type]
        bits=args.bits,
        workers=args.workers,
        connections=args.connections,
        out=out,
        progress=progress,
    )
    print(result.csv_path.read_text(encoding="utf-8"), end="")
    print(f"\nplot: {result.png_path}")
    for check in result.checks:
        rate = result.upload_rate(check.mode, check.clients)
        total = result.total(check.mode, check.clients)
        print(
            f"{check.mode:>8} N={check.clients:>6,}: end to end {total:7.2f} s"
            f" (setup {check.setup_seconds:.2f} s, not counted); upload {rate:,.0f} uploads/s; "
            f"average {check.secure_average:.6f} (plaintext {check.plaintext_average:.6f})"
        )
    print(machine_line())
    if "paillier" in {c.mode for c in result.checks} and TARGET_CLIENTS in {
        c.clients for c in result.checks
    }:
        total = result.total("paillier", TARGET_CLIENTS)
        ok = total <= TARGET_SECONDS and args.bits >= 2048
        rate = result.upload_rate("paillier", TARGET_CLIENTS)
        print(
            f"target: secure average of {TARGET_CLIENTS:,} clients end to end <= "
            f"{TARGET_SECONDS:.0f} s ({args.bits}-bit, 3-of-5) -> {total:.2f} s, upload "
            f"{rate:,.0f} uploads/s [{'PASS' if ok else 'FAIL'}]"
        )
        return 0 if ok else 1
    print(f"target: not measured (needs Paillier mode and --max-clients >= {TARGET_CLIENTS:,})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Threshold Paillier: the dealer's safe-prime key ceremony and 3-of-5 decryption costs.

Reports (medians, one core): time to deal a key at 2048 and 3072 bits (dominated by finding
two safe primes), one partial decryption with its proof, one proof verification, combining
3 partials. Safe-prime search time varies a lot from run to run (it is a random search), so
the dealer figure is the median of --deals runs and the min/max are shown too.

Run: .venv/bin/python benchmarks/bench_threshold.py [--bits 2048 3072] [--deals 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from _common import median_seconds, pin_to_one_core, print_table
from smpcloud.crypto import threshold


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bits", type=int, nargs="+", default=[2048, 3072])
    parser.add_argument("--deals", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    print(f"# threshold Paillier benchmark ({pin_to_one_core()}), 3 of 5 holders")
    rows = []
    for bits in args.bits:
        deal_times = []
        for _ in range(args.deals):
            start = time.perf_counter()
            pk, shares = threshold.deal(bits, n=5, t=3)
            deal_times.append(time.perf_counter() - start)
        c = pk.encrypt(123456789)
        partials = [s.partial_decrypt(c) for s in shares[:3]]
        share, first = shares[0], partials[0]
        t_partial = median_seconds(lambda: share.partial_decrypt(c), args.repeat)  # noqa: B023
        t_verify = median_seconds(lambda: threshold.verify_partial(pk, first), args.repeat)  # noqa: B023
        t_combine = median_seconds(
            lambda: threshold.combine(pk, partials, verify=False),  # noqa: B023
            args.repeat,
        )
        if threshold.combine(pk, partials) != 123456789:
            raise SystemExit("threshold decryption mismatch")
        rows.append(
            [
                bits,
                f"{statistics.median(deal_times):.1f} "
                f"({min(deal_times):.1f}-{max(deal_times):.1f})",
                f"{t_partial * 1000:.1f}",
                f"{t_verify * 1000:.1f}",
                f"{t_combine * 1000:.1f}",
            ]
        )
    print_table(
        ["bits", "deal s median (min-max)", "partial+proof ms", "verify ms", "combine 3 ms"],
        rows,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

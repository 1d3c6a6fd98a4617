"""Shamir share + reconstruct of 10^6 values (n=5, t=3) on one core, beside MPyC.

Target (issue 2): share + reconstruct of 10^6 values in <= 1.0 s in total (median).
MPyC (its numpy Shamir, `thresha.np_random_split` / `np_recombine`, over a ~2^100 prime field)
does the same job on a smaller vector in the same run; the ratio compares values per second.

Run: .venv/bin/python benchmarks/bench_shamir.py [--values 1000000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from _common import median_seconds, pin_to_one_core, print_table
from smpcloud.crypto import shamir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--values", type=int, default=1_000_000)
    parser.add_argument("--mpyc-values", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    print(f"# Shamir sharing benchmark ({pin_to_one_core()}), n=5, t=3, medians of {args.repeat}")

    secrets_vec = np.arange(args.values, dtype=np.int64) * 1_000_003 - 7
    holder: dict[str, list[shamir.Share]] = {}

    def do_share() -> None:
        holder["shares"] = shamir.share(secrets_vec, n=5, t=3)

    def do_reconstruct() -> None:
        out = shamir.reconstruct(holder["shares"][2:5])
        if not np.array_equal(out, secrets_vec):
            raise SystemExit("reconstruction mismatch")

    do_share()
    t_share = median_seconds(do_share, args.repeat)
    t_rec = median_seconds(do_reconstruct, args.repeat)
    total = t_share + t_rec
    rows: list[list[object]] = [
        [
            "smpcloud",
            f"{args.values:,}",
            f"{t_share:.3f}",
            f"{t_rec:.3f}",
            f"{total:.3f}",
            f"{args.values / total:,.0f}",
        ]
    ]

    ratio = None
    try:
        from mpyc import __version__ as mpyc_version
        from mpyc import gmpy
        from mpyc.finfields import GF
        from mpyc.thresha import np_random_split, np_recombine
    except ImportError:
        print("MPyC not installed (pip install '.[bench]'): peer comparison skipped")
    else:
        field = GF(int(gmpy.next_prime(2**100)))
        s = np.arange(args.mpyc_values, dtype=object)

        def mpyc_share() -> None:
            holder["mpyc"] = np_random_split(field, s, 2, 5)  # degree 2: 3 shares reconstruct

        def mpyc_reconstruct() -> None:
            shares = holder["mpyc"]
            np_recombine(field, [(x, shares[x - 1]) for x in (3, 4, 5)])

        mpyc_share()
        m_share = median_seconds(mpyc_share, max(1, args.repeat // 2))
        m_rec = median_seconds(mpyc_reconstruct, max(1, args.repeat // 2))
        m_total = m_share + m_rec
        rows.append(
            [
                f"MPyC {mpyc_version} numpy",
                f"{args.mpyc_values:,}",
                f"{m_share:.3f}",
                f"{m_rec:.3f}",
                f"{m_total:.3f}",
                f"{args.mpyc_values / m_total:,.0f}",
            ]
        )
        ratio = (args.values / total) / (args.mpyc_values / m_total)

    print_table(["library", "values", "share s", "reconstruct s", "total s", "values/s"], rows)
    if ratio is not None:
        print(f"\nthroughput ratio smpcloud / MPyC: {ratio:.1f}x")
    verdict = "PASS" if total <= 1.0 or args.values != 1_000_000 else "FAIL"
    print(f"target: share + reconstruct of 10^6 values <= 1.0 s -> {total:.3f} s [{verdict}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())

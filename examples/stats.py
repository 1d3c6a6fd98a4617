"""Safe data analysis: three hospitals compute joint statistics of their patients, securely.

scikit-learn's diabetes dataset (442 real patients) is split across simulated hospitals. They
compute the count, mean, variance, standard deviation, covariance and correlation matrices of
five columns and a histogram of the body-mass index (WHO classes), twice:

* peer MPC: the hospitals are the parties, over mutually authenticated TLS on 127.0.0.1;
* cloud aggregation: the hospitals upload Paillier-encrypted summaries to the aggregation
  service on 127.0.0.1, and 3 of 5 key holders decrypt only the total.

Both print the secure result next to the plaintext one with the documented fixed-point bound,
and what was revealed: N, the column sums, the sums of cross-products (the Gram matrix) and the
bucket counts, nothing else. Writes stats_peer.png and stats_cloud.png to --out.

Run: .venv/bin/python examples/stats.py [--mode peer|cloud|both] [--hospitals 3] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import sys

from smpcloud.apps.statistics import DEFAULT_COLUMNS, run_stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["peer", "cloud", "both"], default="both")
    parser.add_argument("--hospitals", type=int, default=3)
    parser.add_argument("--columns", default=",".join(DEFAULT_COLUMNS))
    parser.add_argument("--rows", type=int, default=None, help="use only the first ROWS patients")
    parser.add_argument("--transport", choices=["tls", "memory"], default="tls")
    parser.add_argument(
        "--cloud-clients",
        choices=["hospitals", "patients"],
        default="hospitals",
        help="cloud mode: one encrypted summary per hospital, or one record per patient",
    )
    parser.add_argument("--key-bits", type=int, default=2048)
    parser.add_argument("--out", default="smpcloud-examples", help="directory for the plots")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)

    modes = ["peer", "cloud"] if args.mode == "both" else [args.mode]
    results = []
    for mode in modes:
        result = run_stats(
            mode=mode,
            hospitals=args.hospitals,
            columns=args.columns.split(","),
            rows=args.rows,
            transport=args.transport,
            cloud_clients=args.cloud_clients,
            key_bits=args.key_bits,
            out=args.out,
            progress=None if args.json else lambda m: print(f"... {m}", flush=True),
        )
        results.append(result)
        if not args.json:
            print("\n".join(result.summary_lines()), end="\n\n")
    if args.json:
        print(json.dumps([r.to_json() for r in results]))
    return 0 if all(r.within_bounds for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())

"""Vertical regression: a bank and an insurer fit one model on columns neither may share.

The bank holds income, balance and age; the insurer holds past claims, the premium and next
year's claim cost, for the same (synthetic but realistic) customers. They fit a linear
regression of the claim cost on all five columns with peer MPC over TLS on 127.0.0.1: Beaver
triples from a dealer multiply the bank's columns with the insurer's on secret shares. By
default the whole solve runs on shares and only the six coefficients are opened
(--reveal gram opens the Gram matrix instead and solves in the clear). Prints the secure
coefficients next to numpy.linalg.lstsq on the pooled data, with the documented tolerance;
writes regression_coefficients.png to --out.

Run: .venv/bin/python examples/regression.py [--customers 1000] [--reveal coefficients|gram]
"""

from __future__ import annotations

import argparse
import json
import sys

from smpcloud.apps.regression import run_regression


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--reveal", choices=["coefficients", "gram"], default="coefficients")
    parser.add_argument("--ridge", type=float, default=None, help="penalty (standardised units)")
    parser.add_argument("--transport", choices=["tls", "memory"], default="tls")
    parser.add_argument("--out", default="smpcloud-examples", help="directory for the plot")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)

    result = run_regression(
        customers=args.customers,
        reveal=args.reveal,
        ridge=args.ridge,
        transport=args.transport,
        out=args.out,
        progress=None if args.json else lambda m: print(f"... {m}", flush=True),
    )
    if args.json:
        print(json.dumps(result.to_json()))
    else:
        print("\n".join(result.summary_lines()))
    return 0 if result.within_tolerance else 1


if __name__ == "__main__":
    sys.exit(main())

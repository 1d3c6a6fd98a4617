"""Table 1, measured: the same aggregation four ways (plaintext, AES-GCM, Paillier, Shamir) + peers.

Thin wrapper around :func:`smpcloud.evaluation.table1.run_table1` (the CLI's `smpcloud bench table1`
calls the same function): the same N patients' body-mass indices aggregated in plaintext, with
AES-256-GCM under a server-held key, with threshold Paillier and with Shamir sharing, plus
python-paillier and MPyC doing the same job in the same run (when installed). Measured at the
cryptographic level (no HTTP); prints the Markdown table.

Run: .venv/bin/python benchmarks/bench_table1.py [--clients 1000] [--bits 2048] [--out DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from smpcloud.evaluation.table1 import run_table1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--bits", type=int, default=2048)
    parser.add_argument("--no-peers", action="store_true", help="skip phe and MPyC")
    parser.add_argument("--out", type=Path, default=None, help="default: a new temporary dir")
    args = parser.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="smpcloud-table1-"))
    result = run_table1(clients=args.clients, bits=args.bits, out=out, peers=not args.no_peers)
    print(result.markdown, end="")
    print(f"\nwritten: {result.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What validity proofs cost: a client's proof and the server's check, per report and per value.

Issue 15: every report of a ``validity="range"`` task carries a proof that each encoded value
lies in the task's declared range, checked by the server before the report is acknowledged.
This script measures, per client and per report, on one core (the figures a deployment
divides by its cores: the SDK and the server both spread long reports over a worker pool):

* **Paillier** (``--mode paillier``, :mod:`smpcloud.crypto.validity`): proof generation (the
  SDK's path: encryption on the key's report base, bit commitments, OR-proofs and the link) and
  the server's verification, for 1, 100 and 10^4 values (``--sizes``), unpacked (one value per
  ciphertext) and packed (85 values per 2048-bit ciphertext), values in [-1, 1] with 16
  fractional bits (18 bits per value); the bytes a proof adds to a report next to the
  ciphertexts'; and the one-off cost of a key's report base (h_s, and its fixed-base table).
  Targets: a scalar report proved in <= 50 ms and verified in <= 20 ms at 2048 bits.

* **Shamir** (``--mode shamir``, :mod:`smpcloud.crypto.shamir_validity`): the client's
  preparation (bits, shares, masks, HPKE) and one server's check per report, by
  ``benchmarks/bench_shamir_validity.py`` (which also prints the libprio comparison).

``--mode both`` (the default) runs Paillier, then Shamir.

Run: .venv/bin/python benchmarks/bench_proofs.py [--bits 2048] [--runs 3] [--sizes 1 100 10000]
     [--quick]   (a tiny CI run: 1024-bit key, sizes 1 and 10, one run)
"""

from __future__ import annotations

import argparse
import secrets
import time
from collections.abc import Callable

from _common import machine_line, median_seconds, print_table
from smpcloud.crypto import paillier
from smpcloud.crypto.packing import Packing
from smpcloud.crypto.validity import ProofLayout, ReportBase, prove_report, verify_report
from smpcloud.protocol.report_proofs import client_digest, proof_context

FRAC_BITS = 16
CLIENTS = 100  # the packing's max_additions (slot headroom), as in the README's example
PROVE_TARGET_S = 0.050
VERIFY_TARGET_S = 0.020
#: Sizes from which a single run is made whatever --runs says (10^4 values: minutes per run).
SINGLE_RUN_FROM = 1000


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def bench_paillier(bits: int, sizes: list[int], runs: int) -> bool:
    """Measure Paillier report proofs; print the tables and the targets. Return all passed."""
    print(f"generating a {bits}-bit Paillier key ...", flush=True)
    pk, _ = paillier.generate_keypair(bits, insecure=bits < 2048)
    context = proof_context("bench-task", client_digest("smpc_c_bench"), "0" * 16)

    start = time.perf_counter()
    bare = ReportBase(pk.n, table=False)
    base_seconds = time.perf_counter() - start
    start = time.perf_counter()
    base = ReportBase(pk.n)
    table_seconds = time.perf_counter() - start - base_seconds
    print(
        f"report base of a {bits}-bit key (once per key and process): h_s {base_seconds * 1e3:.1f}"
        f" ms; with its fixed-base table {table_seconds * 1e3:.0f} ms more "
        f"({base.table.table_bytes() / 2**20:.1f} MiB)"
    )
    scale = 1 << FRAC_BITS
    lo, hi = -scale, scale
    rows = []
    scalar: dict[str, float] = {}
    for size in sizes:
        layouts = {"unpacked": ProofLayout.unpacked(lo, hi, size)}
        packing = Packing(
            length=size,
            key_bits=bits,
            min_value=-1.0,
            max_value=1.0,
            max_additions=CLIENTS,
            frac_bits=FRAC_BITS,
        )
        layouts["packed"] = ProofLayout.packed(packing)
        for name, layout in layouts.items():
            values = [secrets.randbelow(layout.span + 1) for _ in range(size)]
            repeat = 1 if size >= SINGLE_RUN_FROM else runs
            # The SDK proves a short report without the table (unless the key object has one).
            prover = bare if size <= 10 else base
            made: list[tuple[list[int], bytes]] = []

            def prove(
                prover: ReportBase = prover,
                layout: ProofLayout = layout,
                values: list[int] = values,
                made: list[tuple[list[int], bytes]] = made,
            ) -> None:
                made.append(prove_report(prover, layout, values, context))

            prove_s = median_seconds(prove, repeat)
            cts, proof = made[-1]

            def check(
                layout: ProofLayout = layout, cts: list[int] = cts, proof: bytes = proof
            ) -> None:
                verify_report(base, layout, cts, proof, context)

            verify_s = median_seconds(check, repeat)
            ct_bytes = len(cts) * base.nsq_bytes
            if size == 1 and name == "unpacked":
                scalar = {"prove": prove_s, "verify": verify_s}
            rows.append(
                [
                    name,
                    f"{size:,}",
                    f"{len(cts):,}",
                    f"{prove_s * 1e3:,.1f}",
                    f"{verify_s * 1e3:,.1f}",
                    f"{prove_s / size * 1e3:.2f}",
                    f"{verify_s / size * 1e3:.2f}",
                    f"{ct_bytes:,}",
                    f"{len(proof):,}",
                    f"{len(proof) / ct_bytes:.1f}x",
                ]
            )
            print(f"  {name} {size}: prove {prove_s:.3f} s, verify {verify_s:.3f} s", flush=True)
    print()
    print_table(
        [
            "layout",
            "values",
            "ciphertexts",
            "prove ms",
            "verify ms",
            "prove ms/value",
            "verify ms/value",
            "ciphertext bytes",
            "proof bytes",
            "proof/ciphertexts",
        ],
        rows,
    )
    print()
    ok = True
    if scalar:
        one_shot = scalar["prove"] + base_seconds
        prove_ok = scalar["prove"] <= PROVE_TARGET_S
        verify_ok = scalar["verify"] <= VERIFY_TARGET_S
        ok = prove_ok and verify_ok
        print(
            f"target: scalar proof <= {PROVE_TARGET_S * 1e3:.0f} ms to prove: "
            f"{scalar['prove'] * 1e3:.1f} ms with the key's base at hand "
            f"{_verdict(prove_ok)}; a one-shot client that derives the base first: "
            f"{one_shot * 1e3:.1f} ms {_verdict(one_shot <= PROVE_TARGET_S)}"
        )
        print(
            f"target: scalar proof <= {VERIFY_TARGET_S * 1e3:.0f} ms to verify: "
            f"{scalar['verify'] * 1e3:.1f} ms {_verdict(verify_ok)}"
        )
        if bits != 2048:
            print(f"(the targets are stated for 2048-bit keys; this run used {bits} bits)")
    return ok


def bench_shamir(bits: int, sizes: list[int], runs: int) -> bool:
    """Shamir mode: the same questions for the servers' joint check (bench_shamir_validity)."""
    import bench_shamir_validity

    # Length 1,000 is where the libprio anchor is: always measured.
    lengths = ",".join(str(size) for size in sorted({*sizes, 1000}))
    return bench_shamir_validity.main(["--lengths", lengths, "--repeat", str(max(runs, 1))]) == 0


MODES: dict[str, Callable[[int, list[int], int], bool]] = {
    "paillier": bench_paillier,
    "shamir": bench_shamir,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=[*sorted(MODES), "both"], default="both")
    parser.add_argument("--bits", type=int, default=2048)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 100, 10_000])
    parser.add_argument("--quick", action="store_true", help="a tiny run (CI smoke test)")
    args = parser.parse_args()
    bits, sizes, runs = args.bits, args.sizes, args.runs
    if args.quick:
        bits, sizes, runs = 1024, [1, 10], 1
    print(machine_line())
    modes = sorted(MODES) if args.mode == "both" else [args.mode]
    for mode in modes:  # paillier first: the Shamir benchmark pins itself to one core
        print(f"\nmode {mode}, {bits}-bit key, sizes {sizes}, median of {runs} run(s)")
        MODES[mode](bits, sizes, runs)


if __name__ == "__main__":
    main()

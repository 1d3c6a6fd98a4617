"""Packed Paillier vectors on every core: client encryption, server aggregation, end to end.

Usage::

    .venv/bin/python benchmarks/bench_packing.py [--bits 2048] [--repeat 5] [--workers 2]
        [--length 100000] [--clients 100] [--e2e-repeat 3] [--ciphertexts 200000]

Measures, with one key of ``--bits`` bits (2048 by default; the targets apply there) and the
reference layout (``--length`` floats in [-1, 1] with 16 fractional bits, ``--clients``
additions):

(a) **client encryption**: values per second for one ``--length`` vector, packed, on one core
    and on ``--workers`` processes; plain DJN encryption of one value per ciphertext (one core);
    phe (python-paillier) encrypting one float per ciphertext (one core). Target: packed on
    one core >= 10x phe, in values per second.
(b) **server aggregation**: ciphertext additions per second over ``--ciphertexts`` ciphertexts
    (random elements of Z*_{n^2}; every one is a valid ciphertext of some plaintext) into one,
    validated on the way: inline on one core and on ``--workers`` processes, from stored bytes
    (the service's storage format) and from ``Ciphertext`` objects; phe's ``sum`` over
    EncryptedNumbers (a 50,000-ciphertext subset). Target: >= 250,000/s with two workers from
    stored bytes.
(c) **end to end, crypto only**: ``--clients`` clients each encrypt a ``--length`` vector
    (all clients' vectors on ``--workers`` processes), the reports are serialised to bytes,
    aggregated element-wise (validated) and the aggregate decrypted and unpacked; the result is
    checked against the exact sum. Targets: >= 20x fewer ciphertexts than values, and
    <= 60 s for the whole run (this figure leaves out HTTP; see bench_service.py).
(d) **threshold decryption** (information, no target): a dealt 2-of-3 key of ``--bits`` bits;
    two holders' partial decryptions with proofs and the combiner's verification, measured on
    ``--threshold-sample`` packed ciphertexts on the pool and projected to the whole aggregate.

Each figure is the median over ``--repeat`` runs (``--e2e-repeat`` for (c)); the worker pool
is started once and kept warm (its start-up time is printed separately), as a server keeps it.
The process is not pinned: the point is to use every core. Prints Markdown tables and a
PASS/FAIL line per target; returns 1 if a target fails.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from _common import print_table
from smpcloud import parallel
from smpcloud.crypto import packing, paillier

TARGET_BITS = 2048
TARGET_CLIENT_RATIO = 10.0
TARGET_ADDITIONS = 250_000
TARGET_COMPRESSION = 20.0
TARGET_E2E_SECONDS = 60.0
PHE_SUM_SUBSET = 50_000


def _seconds(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _median_seconds(fn: Callable[[], object], repeat: int) -> float:
    return statistics.median(_seconds(fn) for _ in range(repeat))


def uniform_vector(length: int) -> npt.NDArray[np.float64]:
    """Return ``length`` floats uniform in [-1, 1) (from os.urandom; benchmark data only)."""
    words = np.frombuffer(os.urandom(8 * length), dtype=np.uint64) >> np.uint64(11)
    return words.astype(np.float64) / float(1 << 52) - 1.0


class Verdicts:
    """Collects PASS/FAIL lines."""

    def __init__(self) -> None:
        self.lines: list[tuple[bool, str]] = []

    def add(self, passed: bool, text: str) -> None:
        self.lines.append((passed, text))

    def print(self) -> bool:
        for passed, text in self.lines:
            print(f"{'PASS' if passed else 'FAIL'}  {text}")
        return all(passed for passed, _ in self.lines)


def bench_client(
    pk: paillier.PublicKey,
    pool: parallel.CryptoPool,
    layout: packing.Packing,
    repeat: int,
    verdicts: Verdicts,
    check: bool,
) -> None:
    """(a) client encryption throughput."""
    from phe import paillier as phe_paillier  # benchmark-only dependency

    values = uniform_vector(layout.length)
    inline = parallel.CryptoPool(1)
    pk.precompute()
    t_packed_one = _median_seconds(lambda: packing.encrypt_vector(pk, values, layout), repeat)
    t_packed_all = _median_seconds(lambda: pool.encrypt_vector(pk, values, layout), repeat)

    plain_sample = [int(v) for v in np.rint(values[:400] * layout.scale)]
    t_plain = _median_seconds(lambda: inline.encrypt_many(pk, plain_sample), repeat)
    phe_pk = phe_paillier.PaillierPublicKey(pk.n)
    phe_sample = [float(v) for v in values[:24]]
    t_phe = _median_seconds(lambda: [phe_pk.encrypt(v) for v in phe_sample], repeat)

    rate_one = layout.length / t_packed_one
    rate_all = layout.length / t_packed_all
    rate_plain = len(plain_sample) / t_plain
    rate_phe = len(phe_sample) / t_phe
    print(f"\n## (a) client encryption, {layout.length:,} floats, {pk.bits}-bit key")
    print_table(
        ["method", "values/s", "ciphertexts", "vs phe"],
        [
            [
                "smpcloud packed, 1 core",
                f"{rate_one:,.0f}",
                f"{layout.ciphertexts:,}",
                f"{rate_one / rate_phe:,.0f}x",
            ],
            [
                f"smpcloud packed, {pool.workers} workers",
                f"{rate_all:,.0f}",
                f"{layout.ciphertexts:,}",
                f"{rate_all / rate_phe:,.0f}x",
            ],
            [
                "smpcloud DJN, one value per ciphertext, 1 core",
                f"{rate_plain:,.0f}",
                f"{layout.length:,}",
                f"{rate_plain / rate_phe:,.1f}x",
            ],
            [
                "phe, one float per ciphertext, 1 core",
                f"{rate_phe:,.0f}",
                f"{layout.length:,}",
                "1x",
            ],
        ],
    )
    if check:
        verdicts.add(
            rate_one / rate_phe >= TARGET_CLIENT_RATIO,
            f"client encryption (packed, 1 core): {rate_one / rate_phe:,.0f}x phe "
            f"(target >= {TARGET_CLIENT_RATIO:g}x)",
        )


def bench_server(
    pk: paillier.PublicKey,
    pool: parallel.CryptoPool,
    count: int,
    repeat: int,
    verdicts: Verdicts,
    check: bool,
) -> None:
    """(b) server aggregation throughput."""
    from phe import paillier as phe_paillier

    n2 = pk.n_squared
    width = (n2.bit_length() + 7) // 8
    values = [secrets.randbelow(n2 - 1) + 1 for _ in range(count)]
    blob = b"".join(v.to_bytes(width, "big") for v in values)
    start = time.perf_counter()
    ciphertexts = pool.validate_many(pk, blob)
    t_validate = time.perf_counter() - start
    inline = parallel.CryptoPool(1)

    expected = inline.aggregate(pk, ciphertexts).value
    for batch in (blob, ciphertexts):
        if pool.aggregate(pk, batch).value != expected:
            raise SystemExit("parallel aggregate differs from the sequential product")

    rows = []
    rates: dict[str, float] = {}
    for label, runner, batch in [
        ("1 core, from stored bytes", inline, blob),
        (f"{pool.workers} workers, from stored bytes", pool, blob),
        ("1 core, from Ciphertext objects", inline, ciphertexts),
        (f"{pool.workers} workers, from Ciphertext objects", pool, ciphertexts),
    ]:
        seconds = _median_seconds(lambda r=runner, b=batch: r.aggregate(pk, b), repeat)
        rates[label] = (count - 1) / seconds
        rows.append([label, f"{count:,}", f"{seconds:.3f}", f"{rates[label]:,.0f}"])

    phe_pk = phe_paillier.PaillierPublicKey(pk.n)
    subset = min(count, PHE_SUM_SUBSET)
    phe_cts = [phe_paillier.EncryptedNumber(phe_pk, v) for v in values[:subset]]
    t_phe = _median_seconds(lambda: sum(phe_cts), repeat)
    rate_phe = (subset - 1) / t_phe
    rows.append(
        ["phe sum(EncryptedNumber), 1 core", f"{subset:,}", f"{t_phe:.3f}", f"{rate_phe:,.0f}"]
    )
    print(f"\n## (b) server aggregation, {pk.bits}-bit key (ciphertexts mod {2 * pk.bits}-bit n^2)")
    print(
        f"validate_many of {count:,} stored ciphertexts on {pool.workers} workers: "
        f"{t_validate:.3f} s ({count / t_validate:,.0f}/s)"
    )
    print_table(["aggregation", "ciphertexts", "seconds", "additions/s"], rows)
    key = f"{pool.workers} workers, from stored bytes"
    if check:
        verdicts.add(
            rates[key] >= TARGET_ADDITIONS,
            f"server aggregation ({key}): {rates[key]:,.0f} additions/s "
            f"(target >= {TARGET_ADDITIONS:,}/s); from Ciphertext objects "
            f"{rates[f'{pool.workers} workers, from Ciphertext objects']:,.0f}/s",
        )


def bench_end_to_end(
    pk: paillier.PublicKey,
    sk: paillier.PrivateKey,
    pool: parallel.CryptoPool,
    layout: packing.Packing,
    clients: int,
    repeat: int,
    verdicts: Verdicts,
    check: bool,
) -> None:
    """(c) ciphertext count and end-to-end crypto time."""
    vectors = [uniform_vector(layout.length) for _ in range(clients)]
    exact = np.zeros(layout.length, dtype=np.int64)
    for vector in vectors:
        exact += np.rint(vector * layout.scale).astype(np.int64)
    expected = exact / layout.scale

    runs: list[dict[str, float]] = []
    for _ in range(repeat):
        phases: dict[str, float] = {}
        start = time.perf_counter()
        reports = pool.encrypt_vectors(pk, vectors, layout)
        phases["encrypt (all clients)"] = time.perf_counter() - start
        mark = time.perf_counter()
        stored = [b"".join(c.to_bytes() for c in report) for report in reports]
        phases["serialise to bytes"] = time.perf_counter() - mark
        mark = time.perf_counter()
        aggregate = pool.aggregate_vectors(pk, stored)
        phases["aggregate (validated)"] = time.perf_counter() - mark
        mark = time.perf_counter()
        sums = pool.decrypt_vector(sk, aggregate, layout, clients)
        phases["decrypt + unpack"] = time.perf_counter() - mark
        phases["total"] = time.perf_counter() - start
        if not np.array_equal(sums, expected):
            raise SystemExit("end-to-end sum differs from the exact sum of the encoded values")
        runs.append(phases)

    ratio = layout.length / layout.ciphertexts
    total = statistics.median(r["total"] for r in runs)
    print(
        f"\n## (c) end to end, crypto only: {clients} clients x {layout.length:,} floats, "
        f"{pk.bits}-bit key, {pool.workers} workers, median of {repeat}"
    )
    print(
        f"layout: {layout.slots} slots of {layout.slot_bits} bits per plaintext "
        f"({layout.value_bits} value + {layout.headroom_bits} headroom bits), "
        f"{layout.ciphertexts:,} ciphertexts per vector: {ratio:.1f}x fewer than values"
    )
    print_table(
        ["phase", "seconds (median)"],
        [[phase, f"{statistics.median(r[phase] for r in runs):.2f}"] for phase in runs[0]],
    )
    encrypted = clients * layout.ciphertexts
    t_encrypt = statistics.median(r["encrypt (all clients)"] for r in runs)
    print(
        f"ciphertexts encrypted: {encrypted:,} ({encrypted / t_encrypt:,.0f}/s); "
        "result checked against the exact sum"
    )
    if check:
        verdicts.add(
            ratio >= TARGET_COMPRESSION,
            f"ciphertext count: {ratio:.1f}x fewer than values (target >= {TARGET_COMPRESSION:g}x)",
        )
        verdicts.add(
            total <= TARGET_E2E_SECONDS,
            f"end to end, crypto only: {total:.1f} s (target <= {TARGET_E2E_SECONDS:g} s "
            "including HTTP, measured separately)",
        )


def bench_threshold(
    pool: parallel.CryptoPool, bits: int, layout: packing.Packing, sample: int, clients: int
) -> None:
    """(d) threshold decryption of a packed aggregate: measured on a sample, projected."""
    from smpcloud.crypto import threshold

    start = time.perf_counter()
    tpk, shares = threshold.deal(bits, n=3, t=2, insecure=bits < paillier.MIN_SECURE_BITS)
    t_deal = time.perf_counter() - start
    tlayout = packing.Packing.for_key(
        tpk.public_key,
        length=layout.length,
        min_value=layout.min_value,
        max_value=layout.max_value,
        max_additions=layout.max_additions,
        frac_bits=layout.frac_bits,
    )
    sample = min(sample, tlayout.ciphertexts)
    # A sample of the aggregate: sums of `clients` packed vectors (here of one encrypted
    # vector times clients, which has the same size and cost).
    values = uniform_vector(sample * tlayout.slots)[: tlayout.length]
    values = np.resize(values, tlayout.length)
    cts = pool.encrypt_vector(tpk.public_key, values, tlayout)[:sample]
    cts = [c * clients for c in cts]
    start = time.perf_counter()
    by_holder = [pool.partial_decrypt_many(share, cts) for share in shares[:2]]
    t_partial = (time.perf_counter() - start) / 2
    groups = [list(group) for group in zip(*by_holder, strict=True)]
    start = time.perf_counter()
    plaintexts = pool.combine_many(tpk, groups)
    t_combine = time.perf_counter() - start
    if plaintexts != [clients * m for m in packing.pack(values, tlayout)[:sample]]:
        raise SystemExit("threshold decryption mismatch")
    per_partial = t_partial / sample
    per_combine = t_combine / sample
    total = tlayout.ciphertexts
    print(
        f"\n## (d) threshold decryption (2 of 3 holders), {bits}-bit dealt key, "
        f"{pool.workers} workers; measured on {sample} ciphertexts, projected to {total:,}"
    )
    print(f"dealer: {t_deal:.1f} s (safe primes; varies run to run)")
    print_table(
        ["step", "ms per ciphertext (all workers)", f"projected s for {total:,}"],
        [
            [
                "one holder: partial decryption + proof",
                f"{per_partial * 1e3:.1f}",
                f"{per_partial * total:.1f}",
            ],
            [
                "combiner: verify 2 proofs + combine",
                f"{per_combine * 1e3:.1f}",
                f"{per_combine * total:.1f}",
            ],
        ],
    )
    print(
        "holders work in parallel on their own machines; the threshold path adds about "
        f"{(per_partial + per_combine) * total:.0f} s to (c) at this size (information only)"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; return 0 if every target passes, else 1."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--bits", type=int, default=TARGET_BITS)
    parser.add_argument("--repeat", type=int, default=5, help="runs per figure in (a) and (b)")
    parser.add_argument("--e2e-repeat", type=int, default=3, help="runs of (c)")
    parser.add_argument("--workers", type=int, default=None, help="pool size (default: all CPUs)")
    parser.add_argument("--length", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--ciphertexts", type=int, default=200_000)
    parser.add_argument("--frac-bits", type=int, default=16)
    parser.add_argument(
        "--threshold-sample",
        type=int,
        default=64,
        help="ciphertexts measured in (d), threshold decryption (0 = skip)",
    )
    args = parser.parse_args(argv)
    if min(args.repeat, args.e2e_repeat, args.length, args.clients, args.ciphertexts) < 1:
        parser.error("counts must be >= 1")
    try:
        import phe
    except ImportError:
        print("phe is not installed: pip install -e '.[bench]'", file=sys.stderr)
        return 2

    insecure = args.bits < paillier.MIN_SECURE_BITS
    pk, sk = paillier.generate_keypair(args.bits, insecure=insecure)
    layout = packing.Packing.for_key(
        pk,
        length=args.length,
        min_value=-1.0,
        max_value=1.0,
        max_additions=args.clients,
        frac_bits=args.frac_bits,
    )
    reference = (
        args.bits == TARGET_BITS
        and args.length == 100_000
        and args.clients == 100
        and args.ciphertexts >= 200_000
    )
    print("# Packed Paillier on every core: smpcloud.crypto.packing + smpcloud.parallel vs phe")
    start = time.perf_counter()
    pool = parallel.CryptoPool(args.workers, preload=[pk])
    pool.start()
    t_pool = time.perf_counter() - start
    print(
        f"python {sys.version.split()[0]}, phe {getattr(phe, '__version__', '?')}, "
        f"{os.cpu_count()} CPUs, pool of {pool.workers} workers started in {t_pool:.2f} s "
        f"(tables built), {args.bits}-bit key"
    )
    print(
        f"layout: values in [-1, 1], {args.frac_bits} fractional bits, up to {args.clients} "
        f"additions -> {layout.slots} slots x {layout.slot_bits} bits per plaintext"
    )
    if not reference:
        print("(not the reference configuration: targets are shown for information only)")
    verdicts = Verdicts()
    started = time.perf_counter()
    try:
        bench_client(pk, pool, layout, args.repeat, verdicts, reference)
        bench_server(pk, pool, args.ciphertexts, args.repeat, verdicts, reference)
        bench_end_to_end(pk, sk, pool, layout, args.clients, args.e2e_repeat, verdicts, reference)
        if args.threshold_sample:
            bench_threshold(pool, args.bits, layout, args.threshold_sample, args.clients)
    finally:
        pool.close()
    print()
    ok = verdicts.print()
    print(f"total time {time.perf_counter() - started:.1f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

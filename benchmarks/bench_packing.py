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
(c) **end to end, crypto only, including threshold decryption**: ``--clients`` clients each
    encrypt a ``--length`` vector under a dealt 3-of-5 threshold key (all clients' vectors on
    ``--workers`` processes), the reports are serialised to bytes, aggregated element-wise
    (validated), three key holders each make ONE batched partial decryption of the whole
    aggregate (one proof per holder), and the combiner verifies the three proofs, combines
    and unpacks; the result is checked against the exact sum. In a deployment the holders run
    on their own machines at the same time; here they run one after another on the same pool
    and each one's time is measured. Target: >= 20x fewer ciphertexts than values. The
    all-on-one-machine total and the total with the holders as deployed are printed for
    information: the issue's 60 s end-to-end target includes HTTP and is judged by
    bench_vector.py.
(d) **threshold decryption in detail** (information, no target), on the aggregate of (c):
    one holder's batched partial decryption on the pool and its proof part, the combiner's
    verification of one batch, verification of three and combination on the pool, combination
    alone inline and on the pool, the wire size of one batch; and for comparison the
    per-ciphertext path (one proof per ciphertext) measured on ``--threshold-sample``
    ciphertexts and projected to the whole aggregate.

Each figure is the median over ``--repeat`` runs (``--e2e-repeat`` for (c)); the worker pool
is started once and kept warm (its start-up time is printed separately), as a server keeps it.
The process is not pinned: the point is to use every core. Prints Markdown tables and a
PASS/FAIL line per target; returns 1 if a target fails.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from _common import (
    REFERENCE_MODMULS_PER_SECOND,
    all_cores_modmuls_per_second,
    machine_line,
    modmuls_per_second,
    print_table,
)
from smpcloud import parallel
from smpcloud.crypto import packing, paillier, threshold

TARGET_BITS = 2048
TARGET_CLIENT_RATIO = 10.0
TARGET_ADDITIONS = 250_000
TARGET_COMPRESSION = 20.0
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
    """(b) server aggregation throughput, and this machine's one-core floor between the runs."""
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
    floors = [modmuls_per_second()]
    capacities = [all_cores_modmuls_per_second(pool.workers)]
    for label, runner, batch in [
        ("1 core, from stored bytes", inline, blob),
        (f"{pool.workers} workers, from stored bytes", pool, blob),
        ("1 core, from Ciphertext objects", inline, ciphertexts),
        (f"{pool.workers} workers, from Ciphertext objects", pool, ciphertexts),
    ]:
        seconds = _median_seconds(lambda r=runner, b=batch: r.aggregate(pk, b), repeat)
        rates[label] = (count - 1) / seconds
        rows.append([label, f"{count:,}", f"{seconds:.3f}", f"{rates[label]:,.0f}"])
        floors.append(modmuls_per_second())
    capacities.append(all_cores_modmuls_per_second(pool.workers))
    floor = statistics.median(floors)
    capacity = statistics.median(capacities)

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
    # The issue states the target next to its machine's floor (one core: ~174,000 4096-bit
    # modular multiplications/s); the same ratio to this machine's floor, measured between
    # the runs above, says how the figure would read there.
    scaled = rates[key] * REFERENCE_MODMULS_PER_SECOND / floor
    # What the cores can do at once bounds any pool: the target asks for 250,000 of the
    # 2 x 174,000 the reference machine's two cores would do if they scaled perfectly.
    implied = TARGET_ADDITIONS / (pool.workers * REFERENCE_MODMULS_PER_SECOND)
    print(
        f"one core's floor on this machine, between the runs: {floor:,.0f} modular "
        f"multiplications/s (reference machine: {REFERENCE_MODMULS_PER_SECOND:,}/s); "
        f"{pool.workers} workers from stored bytes = {rates[key] / floor:.2f}x this floor "
        f"(the target is {TARGET_ADDITIONS / REFERENCE_MODMULS_PER_SECOND:.2f}x the reference "
        f"floor), i.e. {scaled:,.0f} additions/s at the reference machine's speed"
    )
    print(
        f"all {pool.workers} cores at once on this machine: {capacity:,.0f} modular "
        f"multiplications/s ({capacity / floor:.2f}x one core); {pool.workers} workers from "
        f"stored bytes use {rates[key] / capacity:.0%} of it (the target asks for "
        f"{implied:.0%} of {pool.workers} x the reference floor)"
    )
    if check:
        verdicts.add(
            rates[key] >= TARGET_ADDITIONS,
            f"server aggregation ({key}): {rates[key]:,.0f} additions/s "
            f"(target >= {TARGET_ADDITIONS:,}/s; {scaled:,.0f}/s scaled to the reference "
            f"machine); from Ciphertext objects "
            f"{rates[f'{pool.workers} workers, from Ciphertext objects']:,.0f}/s",
        )


HOLDERS = 5
THRESHOLD = 3
#: The holders that decrypt in (c) and (d): any three of the five.
DECRYPTING = (2, 4, 5)


def bench_end_to_end(
    tpk: threshold.ThresholdPublicKey,
    shares: list[threshold.KeyShare],
    pool: parallel.CryptoPool,
    layout: packing.Packing,
    clients: int,
    repeat: int,
    verdicts: Verdicts,
    check: bool,
) -> tuple[
    list[paillier.Ciphertext],
    npt.NDArray[np.float64],
    list[threshold.BatchPartialDecryption],
    list[float],
]:
    """(c) ciphertext count and end-to-end crypto time, including threshold decryption.

    Returns, for (d): the last run's aggregate, the expected sums, the holders' batches of
    the last run, and every holder time measured.
    """
    pk = tpk.public_key
    vectors = [uniform_vector(layout.length) for _ in range(clients)]
    exact = np.zeros(layout.length, dtype=np.int64)
    for vector in vectors:
        exact += np.rint(vector * layout.scale).astype(np.int64)
    expected = exact / layout.scale
    holders = [shares[i - 1] for i in DECRYPTING]

    runs: list[dict[str, float]] = []
    aggregate: list[paillier.Ciphertext] = []
    batches: list[threshold.BatchPartialDecryption] = []
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
        batches = []
        for share in holders:
            mark = time.perf_counter()
            batches.append(pool.partial_decrypt_batch(share, aggregate))
            phases[f"holder {share.index}: partial decryption + batched proof"] = (
                time.perf_counter() - mark
            )
        mark = time.perf_counter()
        sums = pool.combine_vector_batches(tpk, aggregate, batches, layout, clients)
        phases[f"combiner: verify {len(batches)} proofs + combine + unpack"] = (
            time.perf_counter() - mark
        )
        phases["total"] = time.perf_counter() - start
        if not np.array_equal(sums, expected):
            raise SystemExit("end-to-end sum differs from the exact sum of the encoded values")
        runs.append(phases)

    def median(phase: str) -> float:
        return statistics.median(r[phase] for r in runs)

    holder_phases = [phase for phase in runs[0] if phase.startswith("holder ")]
    ratio = layout.length / layout.ciphertexts
    total = median("total")
    # As deployed, each holder decrypts on its own machine, all at the same time: the
    # slowest holder counts, not the sum (each holder's time was measured on this pool).
    deployed_total = statistics.median(
        r["total"] - sum(r[h] for h in holder_phases) + max(r[h] for h in holder_phases)
        for r in runs
    )
    print(
        f"\n## (c) end to end, crypto only, incl. threshold decryption: {clients} clients x "
        f"{layout.length:,} floats, {pk.bits}-bit {THRESHOLD}-of-{HOLDERS} threshold key, "
        f"{pool.workers} workers, median of {repeat}"
    )
    print(
        f"layout: {layout.slots} slots of {layout.slot_bits} bits per plaintext "
        f"({layout.value_bits} value + {layout.headroom_bits} headroom bits), "
        f"{layout.ciphertexts:,} ciphertexts per vector: {ratio:.1f}x fewer than values"
    )
    print_table(
        ["phase", "seconds (median)"],
        [[phase, f"{median(phase):.2f}"] for phase in runs[0]],
    )
    encrypted = clients * layout.ciphertexts
    t_encrypt = median("encrypt (all clients)")
    print(
        f"ciphertexts encrypted: {encrypted:,} ({encrypted / t_encrypt:,.0f}/s); "
        "result checked against the exact sum"
    )
    print(
        f"simulation: all {clients} clients and the {len(holder_phases)} holders ran on this "
        f"machine's pool, the holders one after another ({total:.1f} s). As deployed, each "
        f"holder decrypts on its own {pool.workers}-core machine at the same time, so the "
        f"slowest holder counts: {deployed_total:.1f} s"
    )
    if check:
        verdicts.add(
            ratio >= TARGET_COMPRESSION,
            f"ciphertext count: {ratio:.1f}x fewer than values (target >= {TARGET_COMPRESSION:g}x)",
        )
    # The end-to-end target includes HTTP: bench_vector.py judges it. This
    # crypto-only run is information (it has no one-client-alone measurement for the
    # deployed critical path).
    print(
        f"end to end, crypto only, for information: {total:.1f} s everything on this machine, "
        f"{deployed_total:.1f} s with the holders on their own machines (the 60 s target "
        "includes HTTP and is judged by bench_vector.py)"
    )
    holder_times = [r[h] for r in runs for h in holder_phases]
    return aggregate, expected, batches, holder_times


def bench_threshold(
    tpk: threshold.ThresholdPublicKey,
    shares: list[threshold.KeyShare],
    pool: parallel.CryptoPool,
    aggregate: list[paillier.Ciphertext],
    layout: packing.Packing,
    clients: int,
    expected: npt.NDArray[np.float64],
    batches: list[threshold.BatchPartialDecryption],
    holder_times: list[float],
    repeat: int,
    sample: int,
) -> None:
    """(d) threshold decryption of the packed aggregate of (c), step by step."""
    holders = [shares[i - 1] for i in DECRYPTING]
    inline = parallel.CryptoPool(1)
    total = len(aggregate)
    t_holder = statistics.median(holder_times)
    values = list(batches[0].values)
    t_prove = _median_seconds(lambda: holders[0].prove_batch(aggregate, values), repeat)
    t_verify_one = _median_seconds(
        lambda: threshold.verify_batch(tpk, aggregate, batches[0]), repeat
    )
    t_combine_all = _median_seconds(lambda: pool.combine_batch(tpk, aggregate, batches), repeat)
    t_combine_pool = _median_seconds(
        lambda: pool.combine_batch(tpk, aggregate, batches, verify=False), repeat
    )
    t_combine_inline = _median_seconds(
        lambda: inline.combine_batch(tpk, aggregate, batches, verify=False), repeat
    )
    plaintexts = pool.combine_batch(tpk, aggregate, batches)
    if not np.array_equal(packing.unpack(plaintexts, layout, clients), expected):
        raise SystemExit("threshold decryption mismatch")
    wire = len(json.dumps(batches[0].to_json()))

    print(
        f"\n## (d) threshold decryption of the {total:,}-ciphertext aggregate, "
        f"{tpk.public_key.bits}-bit {THRESHOLD}-of-{HOLDERS} key, {pool.workers} workers, "
        f"median of {repeat}"
    )
    rows = [
        [
            f"one holder: {total:,} partials + ONE batched proof ({pool.workers} workers)",
            f"{t_holder:.2f}",
            f"median of the {len(holder_times)} in (c)",
        ],
        ["  of which the batched proof (calling process)", f"{t_prove:.2f}", "measured"],
        ["combiner: verify one holder's batch (1 core)", f"{t_verify_one:.2f}", "measured"],
        [
            f"combiner: verify {THRESHOLD} batches + combine ({pool.workers} workers)",
            f"{t_combine_all:.2f}",
            "measured",
        ],
        [f"combiner: combine only, {pool.workers} workers", f"{t_combine_pool:.2f}", "measured"],
        ["combiner: combine only, 1 core", f"{t_combine_inline:.2f}", "measured"],
    ]
    if sample:
        sample = min(sample, total)
        cts = aggregate[:sample]
        start = time.perf_counter()
        by_holder = [pool.partial_decrypt_many(share, cts) for share in holders]
        per_partial = (time.perf_counter() - start) / len(holders) / sample
        groups = [list(group) for group in zip(*by_holder, strict=True)]
        start = time.perf_counter()
        singles = pool.combine_many(tpk, groups)
        per_combine = (time.perf_counter() - start) / sample
        if singles != plaintexts[:sample]:
            raise SystemExit("per-ciphertext threshold decryption mismatch")
        rows += [
            [
                f"per-ciphertext proofs: one holder, {total:,} partials + {total:,} proofs",
                f"{per_partial * total:.1f}",
                f"projected from {sample}",
            ],
            [
                f"per-ciphertext proofs: combiner, verify {THRESHOLD * total:,} proofs + combine",
                f"{per_combine * total:.1f}",
                f"projected from {sample}",
            ],
        ]
    print_table(["step", "seconds", "how"], rows)
    print(
        f"one batch on the wire (JSON): {wire / 1e6:.2f} MB ({total:,} values + one proof); "
        "the holders' work is independent: on their own machines they run at the same time"
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
        help="ciphertexts of the per-ciphertext-proof comparison in (d) (0 = skip it)",
    )
    parser.add_argument("--threshold-repeat", type=int, default=3, help="runs per figure in (d)")
    parser.add_argument(
        "--sections", default="abcd", help="which sections to run (d needs c), e.g. cd"
    )
    args = parser.parse_args(argv)
    counts = (args.repeat, args.e2e_repeat, args.length, args.clients, args.ciphertexts)
    if min(*counts, args.threshold_repeat) < 1 or args.threshold_sample < 0:
        parser.error("counts must be >= 1")
    sections = set(args.sections)
    if not sections <= set("abcd") or ("d" in sections and "c" not in sections):
        parser.error("--sections takes letters from abcd, and d needs c")
    try:
        import phe
    except ImportError:
        print("phe is not installed: pip install -e '.[bench]'", file=sys.stderr)
        return 2

    insecure = args.bits < paillier.MIN_SECURE_BITS
    pk, _ = paillier.generate_keypair(args.bits, insecure=insecure)
    start = time.perf_counter()
    tpk, shares = threshold.deal(args.bits, n=HOLDERS, t=THRESHOLD, insecure=insecure)
    t_deal = time.perf_counter() - start
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
    print(machine_line())
    start = time.perf_counter()
    pool = parallel.CryptoPool(args.workers, preload=[pk, tpk.public_key])
    pool.start()
    t_pool = time.perf_counter() - start
    print(
        f"python {sys.version.split()[0]}, phe {getattr(phe, '__version__', '?')}, "
        f"{os.cpu_count()} CPUs, pool of {pool.workers} workers started in {t_pool:.2f} s "
        f"(tables built), {args.bits}-bit keys; {THRESHOLD}-of-{HOLDERS} threshold key dealt "
        f"in {t_deal:.1f} s (safe primes; varies run to run)"
    )
    print(
        f"layout: values in [-1, 1], {args.frac_bits} fractional bits, up to {args.clients} "
        f"additions -> {layout.slots} slots x {layout.slot_bits} bits per plaintext"
    )
    check = reference and sections == set("abcd")
    if not check:
        print("(not the reference configuration: targets are shown for information only)")
    verdicts = Verdicts()
    started = time.perf_counter()
    try:
        if "a" in sections:
            bench_client(pk, pool, layout, args.repeat, verdicts, check)
        if "b" in sections:
            bench_server(pk, pool, args.ciphertexts, args.repeat, verdicts, check)
        if "c" in sections:
            aggregate, expected, batches, holder_times = bench_end_to_end(
                tpk, shares, pool, layout, args.clients, args.e2e_repeat, verdicts, check
            )
            if "d" in sections:
                bench_threshold(
                    tpk,
                    shares,
                    pool,
                    aggregate,
                    layout,
                    args.clients,
                    expected,
                    batches,
                    holder_times,
                    args.threshold_repeat,
                    args.threshold_sample,
                )
    finally:
        pool.close()
    print()
    ok = verdicts.print()
    print(f"total time {time.perf_counter() - started:.1f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

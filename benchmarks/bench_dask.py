"""Aggregation and report verification on Dask against the local process pool, on one machine.

Issue 17, part C: the CPU-heavy work runs on a Dask cluster when ``serve --dask-scheduler`` is
given (:class:`smpcloud.parallel.dask_pool.DaskPool`), on the local process pool otherwise.
Target: "aggregation through Dask within 20% of the local pool on one machine". Reported
honestly, whatever comes out.

What is measured, with the same number of worker processes on both sides (``--workers``,
default every CPU; Dask: a ``LocalCluster`` of that many single-threaded worker processes on
127.0.0.1, so its scheduler and the client's traffic are on this machine too):

* aggregation of N ciphertexts under a ``--bits`` key (default 2048; N from ``--counts``,
  default 10^4 and 10^5), given as one bytes object (the storage format): the local pool's
  depth-two product tree against Dask's tree reduction (leaves and pairwise products on the
  workers). The ciphertexts are valid: 1,000 fresh encryptions and products of pairs of them;
  both results are checked equal and decrypted to the expected sum;
* the service's form, ``aggregate_vectors``: N/100 reports of 100 ciphertexts each;
* verification of ``--reports`` proven reports (default 1,000; 0 skips it): each one value in
  {0, 1} with its validity proof (a count, as Janus's Prio3Count), checked by
  ``verify_report`` from 8 threads, as the server's request threads do: one task per report
  on either pool. Proving is not timed (the reports reuse 50 distinct proofs).

Medians of ``--runs`` runs (default 5) after one warm-up run (which builds the workers' key
caches).

Run: .venv/bin/python benchmarks/bench_dask.py [--counts 10000 100000] [--workers 2]
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from _common import machine_line, print_table
from smpcloud.crypto import paillier
from smpcloud.crypto.validity import ProofLayout, ReportBase
from smpcloud.parallel import CryptoPool, default_workers

TARGET = 0.20
FRESH = 1000
DISTINCT_PROOFS = 50
CONTEXT = b"bench-dask"


def medians(
    local: Callable[[], object], dask: Callable[[], object], runs: int
) -> tuple[float, float]:
    """Median seconds of each, the runs interleaved (local, Dask, local, ...): the machine's
    other load, if any, falls on both alike."""
    local()  # warm-up: the workers' key caches and tables
    dask()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(runs):
        for fn, out in ((local, times[0]), (dask, times[1])):
            start = time.perf_counter()
            fn()
            out.append(time.perf_counter() - start)
    return statistics.median(times[0]), statistics.median(times[1])


def make_ciphertexts(pk: paillier.PublicKey, count: int, pool: CryptoPool) -> tuple[bytes, int]:
    """Return count valid ciphertexts as one bytes object, and the sum of their plaintexts."""
    plain = [secrets.randbelow(1 << 20) for _ in range(FRESH)]
    fresh = [c.value for c in pool.encrypt_many(pk, plain)]
    n2 = pk.n_squared
    width = (n2.bit_length() + 7) // 8
    out = bytearray()
    total = 0
    for i in range(count):
        a, b = i % FRESH, (i * 7 + 1) % FRESH
        if i < FRESH:
            value, m = fresh[i], plain[i]
        else:
            value, m = fresh[a] * fresh[b] % n2, plain[a] + plain[b]
        out += value.to_bytes(width, "big")
        total += m
    return bytes(out), total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--bits", type=int, default=2048)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--reports", type=int, default=1000)
    args = parser.parse_args()

    try:
        import distributed
    except ImportError:
        raise SystemExit(
            "bench_dask needs dask[distributed]: pip install 'smpcloud[dask]'"
        ) from None
    from smpcloud.parallel.dask_pool import DaskPool

    print(machine_line())
    print(
        f"{args.workers} worker process(es) on each side; {args.bits}-bit key; "
        f"medians of {args.runs} runs"
    )
    pk, sk = paillier.generate_keypair(args.bits, insecure=args.bits < 2048)
    rows: list[list[object]] = []
    verdicts: list[bool] = []
    cluster = distributed.LocalCluster(
        n_workers=args.workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    )
    client = distributed.Client(cluster, set_as_default=False)
    try:
        with CryptoPool(args.workers) as local, DaskPool(client, preload=[pk]) as dask_pool:
            local.start()
            dask_pool.start()
            for count in args.counts:
                blob, total = make_ciphertexts(pk, count, local)
                width = len(blob) // count
                ours = dask_pool.aggregate(pk, blob)
                theirs = local.aggregate(pk, blob)
                if ours.value != theirs.value or sk.decrypt(ours) != total:
                    raise SystemExit(f"aggregates differ for {count} ciphertexts")
                t_local, t_dask = medians(
                    lambda b=blob: local.aggregate(pk, b),
                    lambda b=blob: dask_pool.aggregate(pk, b),
                    args.runs,
                )
                ok = t_dask <= t_local * (1 + TARGET)
                verdicts.append(ok)
                rows.append(_row(f"aggregate {count:,}", count, t_local, t_dask, ok))
                per = 100
                reports = [
                    blob[r * per * width : (r + 1) * per * width] for r in range(count // per)
                ]
                ours_v = dask_pool.aggregate_vectors(pk, reports)
                theirs_v = local.aggregate_vectors(pk, reports)
                if [c.value for c in ours_v] != [c.value for c in theirs_v]:
                    raise SystemExit(f"vector aggregates differ for {count} ciphertexts")
                t_local, t_dask = medians(
                    lambda r=reports: local.aggregate_vectors(pk, r),
                    lambda r=reports: dask_pool.aggregate_vectors(pk, r),
                    args.runs,
                )
                ok = t_dask <= t_local * (1 + TARGET)
                verdicts.append(ok)
                rows.append(
                    _row(f"aggregate_vectors {count // per:,} x {per}", count, t_local, t_dask, ok)
                )
            if args.reports:
                rows.append(_verification(pk, args.reports, args.runs, local, dask_pool))
    finally:
        client.close()
        cluster.close()
    print()
    print_table(
        ["work", "local pool (s)", "Dask (s)", "Dask / local", "ciphertexts/s (Dask)", "<= 1.2"],
        rows,
    )
    print()
    verdict = "PASS" if all(verdicts) else "FAIL"
    print(f"Dask within 20% of the local pool (aggregation, every size above): {verdict}")


def _row(label: str, count: int, t_local: float, t_dask: float, ok: bool | None) -> list[object]:
    return [
        label,
        f"{t_local:.3f}",
        f"{t_dask:.3f}",
        f"{t_dask / t_local:.2f}",
        f"{count / t_dask:,.0f}",
        "-" if ok is None else ("yes" if ok else "no"),
    ]


def _verification(
    pk: paillier.PublicKey, reports: int, runs: int, local: CryptoPool, dask_pool: CryptoPool
) -> list[object]:
    """Verify ``reports`` proven one-value reports from 8 threads on each pool."""
    base = ReportBase(pk.n)
    layout = ProofLayout.unpacked(0, 1, 1)  # a count: one value in {0, 1}, as Prio3Count
    proven = [
        local.prove_report(base, layout, [secrets.randbelow(2)], CONTEXT)
        for _ in range(DISTINCT_PROOFS)
    ]
    work = [proven[i % DISTINCT_PROOFS] for i in range(reports)]

    def verify_all(pool: CryptoPool) -> None:
        def one(item: tuple[list[int], bytes]) -> None:
            pool.verify_report(base, layout, item[0], item[1], CONTEXT)

        with ThreadPoolExecutor(8) as threads:
            list(threads.map(one, work))

    t_local, t_dask = medians(
        lambda: verify_all(local), lambda: verify_all(dask_pool), max(1, runs // 2)
    )
    row = _row(f"verify {reports:,} reports", reports, t_local, t_dask, None)
    row[4] = f"{reports / t_dask:,.0f} reports/s"
    return row


if __name__ == "__main__":
    main()

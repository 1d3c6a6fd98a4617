"""What checked openings cost: the share check alone, and whole openings over TLS, in one run.

Issue 14 made every opening wait for the shares of all live peers (not only the first t) and
check that they lie on one polynomial of degree t - 1 before interpolating. This prints,
side by side in the same run:

* local: interpolating a block from t shares (the old opening's arithmetic) against checking
  the block's n shares and then interpolating (the new one), for (n, t) = (3, 2) and (5, 3);
* over TLS (3 party processes + dealer, t = 2, 127.0.0.1): the median time of an opening of
  N values and of a Beaver multiplication of M values (two openings, the second with
  truncation), with ``grace=0`` — wait for t shares only and check whatever else has arrived
  by then, close to the old rule — against the default (wait for every live peer).

Run: .venv/bin/python benchmarks/bench_mpc_openings.py [--open-values 1000000]
     [--mul-values 100000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from _common import free_port_range, median_seconds, print_table
from smpcloud.crypto.shamir import interpolate, share_elements
from smpcloud.mpc.certs import create_deployment
from smpcloud.mpc.config import load_deployment, render_deployment
from smpcloud.mpc.consistency import check_shares
from smpcloud.mpc.node import run_dealer_node, run_party
from smpcloud.mpc.runtime import MPC_FIELD, Party

F = MPC_FIELD


def local_rows(size: int) -> list[list[object]]:
    """Interpolation from t shares against check + interpolation, in this process."""
    rows: list[list[object]] = []
    secret = F.from_ints(np.arange(size, dtype=np.int64) % 1000)
    for n, t in ((3, 2), (5, 3)):
        shares = share_elements(F, secret.reshape(1, *secret.shape), n=n, t=t)
        xs = list(range(1, n + 1))

        def old(t: int = t, shares: list[Any] = shares, xs: list[int] = xs) -> None:
            interpolate(F, xs[:t], shares[:t])

        def new(t: int = t, shares: list[Any] = shares, xs: list[int] = xs) -> None:
            check_shares(F, xs, shares, t, "bench")
            interpolate(F, xs[:t], shares[:t])

        before = median_seconds(old, 5)
        after = median_seconds(new, 5)
        rows.append(
            [
                f"n={n}, t={t}",
                f"{size:,}",
                f"{before:.4f}",
                f"{after:.4f}",
                f"{after / before:.2f}x",
            ]
        )
    return rows


async def job(party: Party, op: str, size: int) -> float:
    values = np.arange(size, dtype=np.int64) % 1000 - 500
    await party.input_all([0])  # barrier
    if op == "open":
        x = party.constant(values)  # every share is the value: the opening is what we time
        start = time.perf_counter()
        out = await party.open(x)
    else:
        x = await party.input(values / 64 if party.id == 1 else None, owner=1, frac_bits=16)
        y = await party.input(values / 32 if party.id == 2 else None, owner=2, frac_bits=16)
        await party.prefetch(triples=size, truncation_pairs=size, frac_bits=16)
        start = time.perf_counter()
        await party.mul(x, y)  # Beaver opening + truncation opening
        return time.perf_counter() - start
    seconds = time.perf_counter() - start
    if not np.array_equal(np.asarray(out), values):
        raise SystemExit("wrong result")
    return seconds


def party_process(
    config: str, pid: int, op: str, size: int, grace: float | None, runs: int, queue: Any
) -> None:
    deployment = load_deployment(config)
    if pid == 0:
        asyncio.run(run_dealer_node(deployment))
        return

    async def program(party: Party) -> list[float]:
        return [await job(party, op, size) for _ in range(runs)]

    queue.put((pid, asyncio.run(run_party(deployment, pid, program, grace=grace))))


def run_tls(op: str, size: int, grace: float | None, runs: int) -> float:
    """Median seconds (party 1) of ``runs`` jobs after a cold one, in one set of processes."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    with tempfile.TemporaryDirectory() as tmp:
        create_deployment(Path(tmp), parties=3, dealer=True)
        config = Path(tmp) / "parties.toml"
        config.write_text(render_deployment(parties=3, threshold=2, base_port=free_port_range(4)))
        procs = [
            ctx.Process(
                target=party_process, args=(str(config), pid, op, size, grace, runs + 1, queue)
            )
            for pid in (0, 1, 2, 3)
        ]
        for p in procs:
            p.start()
        results = dict(queue.get(timeout=600) for _ in range(3))
        for p in procs:
            p.join(timeout=60)
        if any(p.exitcode for p in procs):
            raise SystemExit("a party process failed")
    return statistics.median(results[1][1:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--open-values", type=int, default=1_000_000)
    parser.add_argument("--mul-values", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5, help="timed runs after the cold one")
    args = parser.parse_args(argv)
    print("# checked openings: local arithmetic (median of 5), one block of 6-prime residues")
    print_table(
        ["parties", "values", "t shares s", "check + t s", "ratio"], local_rows(args.open_values)
    )
    print(
        f"\n# over TLS, 3 parties + dealer, t=2: median of {args.repeat} runs (party 1), "
        "grace=0 (t shares, close to the old rule) vs default (every live peer, checked)"
    )
    rows: list[list[object]] = []
    for op, size in (("open", args.open_values), ("mul", args.mul_values)):
        first_t = run_tls(op, size, 0.0, args.repeat)
        checked = run_tls(op, size, None, args.repeat)
        rows.append(
            [op, f"{size:,}", f"{first_t:.3f}", f"{checked:.3f}", f"{checked / first_t:.2f}x"]
        )
    print_table(["job", "values", "grace=0 s", "checked s", "ratio"], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Oblivious transfer: base OTs, IKNP extension, and dealer-free Beaver triples beside the dealer's.

Issue 5 targets (2-core machine): extended random OTs >= 10^6 per second on one core;
dealer-free triples between 2 parties on 127.0.0.1 >= 10^4 "64-bit" triples per second.

* base OT:      Chou-Orlandi over Ed25519 (libsodium), a batch of 512; sender and receiver in
                one process pinned to one core (both sides' work counted).
* extension:    IKNP, 2^20 random OTs (16-byte outputs) per batch after the 128 base OTs;
                both sides in one process pinned to one core. Also chosen-message OTs
                (16-byte messages) and Gilboa products (the OT work of one triple direction).
* triples:      2 party processes (+ the dealer process for the dealer rows) over the TLS 1.3
                mesh on 127.0.0.1, t = 2. Timed: ``source.triples(N)`` after a warm-up call
                that runs the setup (base OTs with the peer, or the first dealer batch); a
                barrier round before each repetition; party 1's wall clock. "64-bit" = a
                field of two 32-bit primes (M ~ 2^64); the runtime's MPC_FIELD has six.
                Every run opens 16 triples in the parent and checks c = ab.

Run: .venv/bin/python benchmarks/bench_ot.py [--ots 1048576] [--triples64 131072]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from _common import free_port_range, median_seconds, pin_to_one_core, print_table
from smpcloud.crypto.field import Field
from smpcloud.crypto.ot import BaseOTReceiver, BaseOTSender
from smpcloud.crypto.ot_extension import (
    ExtensionReceiver,
    ExtensionSender,
    ProductReceiver,
    ProductSender,
)
from smpcloud.crypto.shamir import interpolate
from smpcloud.mpc.certs import create_deployment
from smpcloud.mpc.config import load_deployment, render_deployment
from smpcloud.mpc.node import run_dealer_node, run_party
from smpcloud.mpc.runtime import MPC_FIELD, Party

FIELDS = {"64-bit": Field((4294967291, 4294967279)), "MPC_FIELD": MPC_FIELD}
OT_TARGET = 1_000_000
TRIPLE_TARGET = 10_000


def random_bits(count: int) -> np.ndarray:
    return np.frombuffer(os.urandom(count), dtype=np.uint8) & 1


# ====================================================================== one core


def bench_base(count: int, repeat: int) -> float:
    choices = random_bits(count)

    def once() -> None:
        sender, receiver = BaseOTSender(count), BaseOTReceiver(choices)
        sender.finish(receiver.reply(sender.setup()))

    return count / median_seconds(once, repeat)


def ready_extension() -> tuple[ExtensionReceiver, ExtensionSender]:
    receiver, sender = ExtensionReceiver(), ExtensionSender()
    receiver.finish_setup(sender.setup(receiver.setup()))
    return receiver, sender


def bench_extension(m: int, repeat: int, chosen: bool) -> float:
    receiver, sender = ready_extension()
    choices = random_bits(m)
    zero = np.frombuffer(os.urandom(16 * m), dtype=np.uint8).reshape(m, 16)
    one = np.frombuffer(os.urandom(16 * m), dtype=np.uint8).reshape(m, 16)
    batches = iter(range(1, 1 << 40))

    def random_ots() -> None:
        batch = next(batches)
        message, _ = receiver.extend(choices, batch=batch)
        sender.extend(message, batch=batch, count=m)

    def chosen_ots() -> None:
        batch = next(batches)
        request = receiver.request_chosen(choices, batch=batch, length=16)
        receiver.receive_chosen(sender.send_chosen(request, zero, one, batch=batch))

    return m / median_seconds(chosen_ots if chosen else random_ots, repeat)


def bench_products(field: Field, count: int, repeat: int) -> float:
    receiver, sender = ready_extension()
    x, y = field.random(count), field.random(count)
    batches = iter(range(1, 1 << 40))

    def once() -> None:
        batch = next(batches)
        product_receiver = ProductReceiver(receiver, field, x, batch=batch)
        corrections, _ = ProductSender(sender, field, y, batch=batch).respond(
            product_receiver.request()
        )
        product_receiver.finish(corrections)

    return count / median_seconds(once, repeat)


# ====================================================================== two processes over TLS


async def triple_job(party: Party, count: int, repeat: int) -> dict[str, Any]:
    source = party.triples
    if source is None:
        raise SystemExit("no triple source")
    start = time.perf_counter()
    await source.triples(1)  # OT: base OTs with the peer; dealer: the first batch
    setup = time.perf_counter() - start
    seconds = []
    sample: tuple[Any, ...] = ()
    for _ in range(repeat):
        await party.input_all([0], bits=2)  # barrier: both parties start together
        start = time.perf_counter()
        a, b, c = await source.triples(count)
        seconds.append(time.perf_counter() - start)
        sample = (a[:, :16].copy(), b[:, :16].copy(), c[:, :16].copy())
    return {"setup": setup, "seconds": seconds, "sample": sample}


def party_process(
    config: str, pid: int, mode: str, field: str, count: int, repeat: int, queue: Any
) -> None:
    deployment = load_deployment(config)
    if pid == 0:
        asyncio.run(run_dealer_node(deployment, field=FIELDS[field]))
        return
    result = asyncio.run(
        run_party(
            deployment,
            pid,
            lambda p: triple_job(p, count, repeat),
            field=FIELDS[field],
            triples="ot" if mode == "ot" else "dealer",
        )
    )
    queue.put((pid, result))


def bench_triples(mode: str, field: str, count: int, repeat: int) -> tuple[float, float]:
    """Return (median triples per second, setup seconds) for 2 parties in separate processes."""
    dealer = mode == "dealer"
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    with tempfile.TemporaryDirectory() as tmp:
        create_deployment(Path(tmp), parties=2, dealer=dealer)
        config = Path(tmp) / "parties.toml"
        config.write_text(
            render_deployment(parties=2, threshold=2, base_port=free_port_range(3), dealer=dealer)
        )
        ids = (0, 1, 2) if dealer else (1, 2)
        procs = [
            ctx.Process(
                target=party_process, args=(str(config), pid, mode, field, count, repeat, queue)
            )
            for pid in ids
        ]
        for p in procs:
            p.start()
        results = dict(queue.get(timeout=900) for _ in range(2))
        for p in procs:
            p.join(timeout=60)
        if any(p.exitcode for p in procs):
            raise SystemExit("a party process failed")
    f = FIELDS[field]
    a, b, c = (interpolate(f, [1, 2], [results[i]["sample"][k] for i in (1, 2)]) for k in range(3))
    if not (f.mul(a, b) == c).all():
        raise SystemExit(f"{mode} triples are wrong: c != ab")
    return count / statistics.median(results[1]["seconds"]), float(results[1]["setup"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-ots", type=int, default=512)
    parser.add_argument("--ots", type=int, default=1 << 20)
    parser.add_argument("--triples64", type=int, default=1 << 17)
    parser.add_argument("--triples-mpc", type=int, default=1 << 15)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    print(f"# OT benchmark: medians of {args.repeat}; {os.cpu_count()} CPUs")

    rows: list[list[object]] = []
    figures: dict[str, float] = {}
    # Separate processes first: children would inherit the one-core pinning below.
    for field, count in (("64-bit", args.triples64), ("MPC_FIELD", args.triples_mpc)):
        ot_rate, ot_setup = bench_triples("ot", field, count, args.repeat)
        dealer_rate, _ = bench_triples("dealer", field, count, args.repeat)
        figures[f"ot {field}"] = ot_rate
        rows.append(
            [
                f"dealer-free triples, {field} field, 2 processes, TLS",
                f"{count:,}",
                f"{ot_rate:,.0f} triples/s",
                f"setup (base OTs) {ot_setup:.2f} s",
            ]
        )
        rows.append(
            [
                f"dealer triples, {field} field, 2 processes + dealer, TLS",
                f"{count:,}",
                f"{dealer_rate:,.0f} triples/s",
                f"dealer is {dealer_rate / ot_rate:.1f}x faster",
            ]
        )

    where = pin_to_one_core()
    base = bench_base(args.base_ots, args.repeat)
    random_rate = bench_extension(args.ots, args.repeat, chosen=False)
    chosen_rate = bench_extension(args.ots, args.repeat, chosen=True)
    products = {
        name: bench_products(f, min(args.ots // (32 * f.k), 16384), args.repeat)
        for name, f in FIELDS.items()
    }
    figures["extension"] = random_rate
    rows[:0] = [
        ["base OT (Chou-Orlandi, Ed25519), both sides, one core", f"{args.base_ots:,}",
         f"{base:,.0f} OTs/s", where],
        ["IKNP random OTs (16-byte outputs), both sides, one core", f"{args.ots:,}",
         f"{random_rate:,.0f} OTs/s", f"{random_rate / base:,.0f}x base OT"],
        ["IKNP chosen-message OTs (16-byte messages), one core", f"{args.ots:,}",
         f"{chosen_rate:,.0f} OTs/s", ""],
    ] + [
        [f"Gilboa products, {name} field, both sides, one core", "",
         f"{rate:,.0f} products/s", f"{32 * FIELDS[name].k} OTs each"]
        for name, rate in products.items()
    ]  # fmt: skip
    print_table(["measurement", "count", "rate", "note"], rows)
    print()
    ok = random_rate >= OT_TARGET
    print(
        f"target: extended random OTs >= 10^6/s on one core -> {random_rate:,.0f}/s "
        f"[{'PASS' if ok else 'FAIL'}]"
    )
    rate = figures["ot 64-bit"]
    ok = rate >= TRIPLE_TARGET
    print(
        f"target: dealer-free 64-bit triples >= 10^4/s between 2 parties -> {rate:,.0f}/s "
        f"[{'PASS' if ok else 'FAIL'}]"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

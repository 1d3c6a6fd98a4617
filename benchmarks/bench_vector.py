"""Secure aggregation of a packed float vector through the aggregation service, end to end.

Issue 6 target (2-core machine, 2048-bit keys): the secure aggregation of a 10^5-value float
vector from 100 clients end to end in <= 60 s, with >= 20x fewer ciphertexts than one per value.

Everything runs on this machine against a real server subprocess (uvicorn, SQLite file with
fsync on commit, ``--workers 2``), through the SDK:

* key ceremony: a 3-of-5 threshold key, dealt once (reported separately: not per aggregation);
* layout: ``--length`` floats in [-1, 1] with 16 fractional bits, max_additions = ``--clients``;
* **client encryption**: all clients' vectors packed and encrypted on every core
  (``CryptoPool.encrypt_vectors``, one pinned key object with its DJN table per worker process);
  and, for the critical path, ONE client encrypting its vector alone in one process, as a
  client device does (``Client.prepare``, the SDK default);
* **upload**: each client with its own token and SDK connection, ``--connections`` at a time;
* **close / aggregation**: the server's element-wise product of all reports on its pool;
* **threshold decryption**: holders 1, 3 and 5 one after another, each fetching the aggregate,
  making ONE batched partial decryption (exponentiations on a local pool of ``--workers``
  processes, one proof) and uploading it; the server checks each batch's proof, and the third
  upload combines and unpacks;
* **result**: read through the SDK and checked against the exact plaintext sums.

Two totals, labelled:

* **critical path as deployed** (the target's figure): clients and key holders on their own
  machines, working at the same time, as the protocol runs: one client's encryption (measured
  alone in one process, its key table built on the way) + all uploads + aggregation + the
  slowest single holder (fetch, batch on its own ``--workers`` cores, upload; the last upload
  includes the server's combine) + result read. PASS/FAIL against 60 s is printed for it.
  Why this figure and not the next: the issue asks for >= 20x fewer ciphertexts than values,
  i.e. up to 5,000 ciphertexts per client, 500,000 for 100 clients; even at its own client
  target (10x python-paillier, ~1,300 encryptions/s per core on its reference machine) two
  cores need ~190 s to encrypt them, so a 60 s end to end can only mean the clients encrypting
  on their own devices, and likewise the key holders decrypting on their own machines.
* **end to end on this machine**: the sum of the phases with every client and every key
  holder simulated here (2 cores shared by the server, 100 clients and 3 holders), printed with
  its floor: the CPU time of the cryptography alone (every client's encryptions and every
  holder's exponentiations, each timed here on one core) divided by the cores.

The machine's speed is printed first (one core's 4096-bit modular multiplications per second,
against the issue's reference machine), since these machines vary from run to run.

Run: .venv/bin/python benchmarks/bench_vector.py [--clients 100] [--length 100000]
     [--bits 2048] [--workers 2] [--connections 4]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import gmpy2
import httpx
import numpy as np

from _common import machine_line, print_table
from smpcloud.client import Admin, Client, KeyHolder, PreparedReport
from smpcloud.crypto import threshold
from smpcloud.crypto.packing import Packing
from smpcloud.crypto.signatures import Roster, SigningKey
from smpcloud.crypto.wire import encode_int
from smpcloud.parallel import CryptoPool
from smpcloud.ports import free_port

TARGET_SECONDS = 60.0
TARGET_RATIO = 20.0
FRAC_BITS = 16
HOLDERS = (1, 3, 5)


@contextmanager
def server_process(
    workdir: Path, admin_token: str, workers: int, *, insecure: bool
) -> Iterator[tuple[str, Path]]:
    """Run ``python -m smpcloud.service --workers N``; yield its URL and its log file."""
    port = free_port()
    log_path = workdir / "server.log"
    cmd = [
        sys.executable,
        "-m",
        "smpcloud.service",
        "--db",
        f"sqlite:///{workdir / 'bench.db'}",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--log-level",
        "info",
        *(["--allow-insecure-keys"] if insecure else []),
    ]
    env = {**os.environ, "SMPCLOUD_ADMIN_TOKEN": admin_token}
    with log_path.open("ab") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"server exited: {log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("server did not start")
            time.sleep(0.05)
        yield url, log_path
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def server_seconds(log_path: Path, pattern: str) -> float | None:
    """The last 'in X s' figure of a server log line matching pattern (None if absent)."""
    found = None
    for line in log_path.read_text(errors="replace").splitlines():
        if re.search(pattern, line):
            match = re.search(r"in (\d+\.\d+) s", line)
            if match:
                found = float(match.group(1))
    return found


def crypto_floor_seconds(
    public: threshold.ThresholdPublicKey,
    share: threshold.KeyShare,
    encryptions: int,
    exponentiations: int,
    cores: int,
) -> tuple[float, float, float]:
    """Return (one encryption, one partial exponentiation, floor) in seconds on this machine.

    The floor is the cryptography's CPU time alone, (encryptions x one encryption +
    exponentiations x one exponentiation) / cores: no run with everything on this machine
    can be faster.
    """
    pk = public.public_key
    pk.precompute()
    count = 200
    start = time.perf_counter()
    for i in range(count):
        pk.encrypt(i)
    t_encrypt = (time.perf_counter() - start) / count
    n2 = gmpy2.mpz(pk.n_squared)
    exponent = gmpy2.mpz(2 * public.delta * share.secret)
    bases = [gmpy2.mpz(pk.encrypt(i).value) for i in range(8)]
    start = time.perf_counter()
    for base in bases:
        gmpy2.powmod(base, exponent, n2)
    t_power = (time.perf_counter() - start) / len(bases)
    floor = (encryptions * t_encrypt + exponentiations * t_power) / cores
    return t_encrypt, t_power, floor


def timed(phases: dict[str, float], name: str, start: float) -> float:
    phases[name] = time.perf_counter() - start
    return phases[name]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--length", type=int, default=100_000)
    parser.add_argument("--bits", type=int, default=2048)
    parser.add_argument("--workers", type=int, default=2, help="server and local pool size")
    parser.add_argument("--connections", type=int, default=4, help="concurrent uploads")
    args = parser.parse_args(argv)
    print(
        f"# packed vector aggregation: {args.clients} clients x {args.length:,} floats in "
        f"[-1, 1] (f = {FRAC_BITS}), {args.bits}-bit 3-of-5 key, server --workers "
        f"{args.workers}, {os.cpu_count()} CPUs"
    )
    print(machine_line())
    start = time.perf_counter()
    insecure = args.bits < 2048
    public, shares = threshold.deal(args.bits, n=5, t=3, insecure=insecure)
    signing = [SigningKey.generate() for _ in shares]
    roster = Roster(3, {s.index: k.verify_key for s, k in zip(shares, signing, strict=True)})
    print(f"key ceremony (dealer, once, not counted): {time.perf_counter() - start:.2f} s")
    pk = public.public_key
    packing = Packing.for_key(
        pk,
        length=args.length,
        min_value=-1.0,
        max_value=1.0,
        max_additions=args.clients,
        frac_bits=FRAC_BITS,
    )
    ratio = args.length / packing.ciphertexts
    print(
        f"layout: {packing.slots} values of {packing.slot_bits} bits per ciphertext -> "
        f"{packing.ciphertexts} ciphertexts per report for {args.length:,} values "
        f"({ratio:.1f}x fewer than one per value)"
    )
    rows = np.random.default_rng(2024).uniform(-1.0, 1.0, (args.clients, args.length))
    exact = rows.sum(axis=0)
    admin_token = secrets.token_urlsafe(32)
    phases: dict[str, float] = {}
    holder_seconds: list[float] = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        server_process(Path(tmp), admin_token, args.workers, insecure=insecure) as (url, log_path),
        Admin(url, admin_token) as admin,
        CryptoPool(args.workers, preload=[pk]) as pool,
    ):
        start = time.perf_counter()
        pool.start()
        print(f"local worker pool start (once, not counted): {time.perf_counter() - start:.2f} s")
        start = time.perf_counter()
        task = admin.create_task(
            public, name="bench vector", packing=packing, min_clients=2, roster=roster
        )
        for i in (0, 2, 4):  # key holders 1, 3 and 5 certify the task
            with KeyHolder(url, task.task_id, task.holder_tokens[i], shares[i]) as holder:
                holder.certify(signing[i])
        creds = admin.register_clients(task.task_id, args.clients)
        timed(phases, "setup (create task, certify, register clients)", start)

        # One client device alone (critical path only): the SDK's default path in one process,
        # with its own key object (its DJN table built on the first encryption, included).
        start = time.perf_counter()
        with Client(
            url, task.task_id, creds[0].token, holders=roster, allow_insecure_keys=insecure
        ) as one:
            one.prepare(rows[0])
        one_client = time.perf_counter() - start

        start = time.perf_counter()
        encrypted = pool.encrypt_vectors(pk, list(rows), packing)
        prepared = [
            PreparedReport(
                task_id=task.task_id,
                key_id=pk.key_id,
                ciphertexts=tuple(encode_int(c.value) for c in report),
            )
            for report in encrypted
        ]
        timed(phases, f"client encryption (all {args.clients}, every core)", start)
        if any(len(p.ciphertexts) != packing.ciphertexts for p in prepared):
            raise SystemExit("a report has the wrong number of ciphertexts")

        def upload(index: int) -> None:
            with Client(
                url, task.task_id, creds[index].token, holders=roster, timeout=120.0
            ) as client:
                client.upload(prepared[index])

        start = time.perf_counter()
        with ThreadPoolExecutor(args.connections) as uploaders:
            list(uploaders.map(upload, range(args.clients)))
        timed(phases, "upload (HTTP, each client its own token)", start)
        upload_mb = sum(len(json.dumps(p.request_body())) for p in prepared) / 1e6

        start = time.perf_counter()
        closed = admin.close(task.task_id)
        timed(phases, "close + aggregation (server pool)", start)
        if closed.reports != args.clients:
            raise SystemExit(f"only {closed.reports} reports stored")

        start = time.perf_counter()
        for index in HOLDERS:
            began = time.perf_counter()
            with KeyHolder(
                url, task.task_id, task.holder_tokens[index - 1], shares[index - 1]
            ) as h:
                h.contribute(pool=pool)
            holder_seconds.append(time.perf_counter() - began)
        timed(phases, "threshold decryption (3 holders, batched)", start)

        start = time.perf_counter()
        result = admin.result(task.task_id)
        timed(phases, "result read", start)
        aggregate_server = server_seconds(log_path, r"aggregated task")
        combine_server = server_seconds(log_path, r"decrypted: result released")
        verify_server = server_seconds(log_path, r"accepted a batched partial decryption")

    error = float(np.max(np.abs(np.asarray(result.sum) - exact)))
    bound = args.clients * 2.0 ** -(FRAC_BITS + 1)
    correct = (
        result.count == args.clients
        and len(result.sum) == args.length
        and error <= bound + 1e-9
        and result.holders == list(HOLDERS)
    )
    counted = [name for name in phases if not name.startswith("setup")]
    total = sum(phases[name] for name in counted)
    critical = (
        one_client
        + phases["upload (HTTP, each client its own token)"]
        + phases["close + aggregation (server pool)"]
        + max(holder_seconds)
        + phases["result read"]
    )
    cores = os.cpu_count() or 1
    t_encrypt, t_power, floor = crypto_floor_seconds(
        public,
        shares[0],
        args.clients * packing.ciphertexts,
        len(HOLDERS) * packing.ciphertexts,
        cores,
    )
    print()
    print_table(["phase", "seconds"], [[name, f"{secs:.2f}"] for name, secs in phases.items()])
    print()
    print(
        f"one client's encryption alone (one process, SDK default, its table built on the "
        f"way): {one_client:.2f} s"
    )
    print(
        "each holder (fetch aggregate, batch on "
        f"{args.workers} workers, upload): "
        + ", ".join(f"holder {i}: {s:.2f} s" for i, s in zip(HOLDERS, holder_seconds, strict=True))
    )
    print(
        "server's own figures: aggregation "
        + (f"{aggregate_server:.2f} s" if aggregate_server is not None else "n/a")
        + ", one batch proof check "
        + (f"{verify_server:.2f} s" if verify_server is not None else "n/a")
        + ", combine + unpack "
        + (f"{combine_server:.2f} s" if combine_server is not None else "n/a")
    )
    print(f"uploaded: {upload_mb:.1f} MB of JSON ({upload_mb / args.clients:.2f} MB per client)")
    print(
        f"result: {len(result.sum):,} sums over {result.count} clients; largest error "
        f"{error:.2e} (bound count * 2^-{FRAC_BITS + 1} = {bound:.2e}) "
        f"[{'CORRECT' if correct else 'WRONG'}]"
    )
    print()
    ok_ratio = ratio >= TARGET_RATIO
    ok_critical = critical <= TARGET_SECONDS
    print(
        f"target: ciphertexts per report {packing.ciphertexts} for {args.length:,} values, "
        f"{ratio:.1f}x fewer (>= {TARGET_RATIO:.0f}x) [{'PASS' if ok_ratio else 'FAIL'}]"
    )
    print(
        f"target: END TO END AS DEPLOYED (critical path: one client's encryption + all "
        f"{args.clients} uploads + aggregation + slowest of {len(HOLDERS)} holders incl. "
        f"combine + result read) {critical:.2f} s (<= {TARGET_SECONDS:.0f} s) "
        f"[{'PASS' if ok_critical else 'FAIL'}]"
    )
    print(
        f"info:   everything simulated on this machine ({args.clients} clients, "
        f"{len(HOLDERS)} holders one after another, the server; {cores} CPUs): {total:.2f} s; "
        f"its floor, the cryptography's CPU time alone / {cores} cores: {floor:.1f} s "
        f"({args.clients * packing.ciphertexts:,} encryptions x {t_encrypt * 1e3:.2f} ms + "
        f"{len(HOLDERS) * packing.ciphertexts:,} partial-decryption exponentiations x "
        f"{t_power * 1e3:.1f} ms, one core each)"
    )
    print(machine_line())
    return 0 if ok_ratio and ok_critical and correct else 1


if __name__ == "__main__":
    sys.exit(main())

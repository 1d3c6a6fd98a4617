"""Uploads per second against the number of concurrent connections, on a real server.

Issue 13's target: on the 2-core machine, with the load generator on the same machine, a server
accepts at least as many uploads per second from 32 concurrent connections as from 8 (it was
measured halving: 431 -> 216 uploads/s, p99 0.7 s).

What is measured, per number of connections C (``--connections``, default 8,32):

* a real server subprocess (``python -m smpcloud.service``, uvicorn, a SQLite file with
  ``synchronous=FULL``: every 201 is a committed report) on 127.0.0.1;
* a task under a 2048-bit threshold Paillier key, one ciphertext per report, and ``--uploads``
  clients registered for it, each with its own token (not timed);
* every client's upload prepared ahead of time as the raw bytes of one HTTP/1.1 request (not
  timed). Encrypting thousands of 2048-bit values would take longer than the measurement, so
  the reports reuse ``--distinct`` ciphertexts: the server validates and stores each report
  alike whatever its value;
* the uploads, sent by a load generator running in a process of its own over C keep-alive
  connections (plain sockets and a selector: no HTTP library), each connection sending its
  next request as soon as the previous answer arrived (with ``--new-connections``, on a new
  connection each time, like devices that connect, upload and leave). Reported: accepted
  uploads per second (201s over the wall time of the burst), the median and 99th percentile
  latency, the requests that got anything but 201 or no answer, the generator's own CPU time
  and the server's (from /proc, Linux only) per upload.

Within each run the values of C alternate order (8,32 then 32,8, ...), and with ``--server-src``
given twice or more the servers alternate as well (a base checkout against this one, in the
same run, as the machine's speed drifts minute to minute); figures are medians over
``--repeat`` runs. Everything runs on 127.0.0.1, bounded by ``--uploads`` and ``--timeout``.

Run: .venv/bin/python benchmarks/bench_load.py [--connections 8,32] [--uploads 1500]
[--repeat 3] [--server-src base=/tmp/load-base/src --server-src branch=src]
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import resource
import secrets
import selectors
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from _common import machine_line, print_table
from smpcloud.client import Admin, TaskEncoding
from smpcloud.crypto import threshold
from smpcloud.crypto.wire import encode_int
from smpcloud.ports import free_port

START_ATTEMPTS = 5
CONNECT_TIMEOUT = 10.0


# ----------------------------------------------------------------------------- the server


@dataclass
class Server:
    """A server subprocess running the smpcloud found under ``src`` (None: this one)."""

    label: str
    src: Path | None
    workdir: Path
    admin_token: str
    proc: subprocess.Popen[bytes] | None = None
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        """Start on a free port; on a port taken meanwhile, again on another one."""
        env = {**os.environ, "SMPCLOUD_ADMIN_TOKEN": self.admin_token}
        if self.src is not None:
            env["PYTHONPATH"] = str(self.src.resolve())
        log_path = self.workdir / f"{self.label}.log"
        db_url = f"sqlite:///{self.workdir / (self.label + '.db')}"
        # The server refuses an unmigrated database; an smpcloud from before migrations (no
        # `db` command) makes its schema itself.
        migrated = subprocess.run(
            [sys.executable, "-m", "smpcloud", "db", "upgrade", "--db", db_url],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if migrated.returncode != 0 and "No such command" not in migrated.stderr:
            raise SystemExit(f"smpcloud db upgrade failed: {migrated.stderr.strip()}")
        for _attempt in range(START_ATTEMPTS):
            self.port = free_port()
            cmd = [
                sys.executable,
                "-m",
                "smpcloud.service",
                "--db",
                db_url,
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
            ]
            with log_path.open("ab") as log:
                self.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
            deadline = time.monotonic() + timeout
            while self.proc.poll() is None and time.monotonic() < deadline:
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200:
                        return
                time.sleep(0.05)
            self.stop()
            if "address already in use" not in log_path.read_text(errors="replace").lower():
                break
        raise SystemExit(f"server {self.label} did not start; see {log_path}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def cpu_seconds(self) -> float | None:
        """The server process's user + system CPU time so far (Linux /proc), else None."""
        if self.proc is None:
            return None
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def running(servers: Sequence[Server]) -> Iterator[None]:
    try:
        for server in servers:
            server.start()
        yield
    finally:
        for server in servers:
            server.stop()


# ----------------------------------------------------------------------------- the load


@dataclass
class Burst:
    """What one burst of uploads gave."""

    accepted: int
    errors: int
    seconds: float
    latencies: list[float]
    generator_cpu: float
    server_cpu: float | None = None

    @property
    def rate(self) -> float:
        return self.accepted / self.seconds if self.seconds > 0 else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _response_end(buffer: bytes) -> tuple[int, int] | None:
    """(status, length of the whole response) once ``buffer`` holds one, else None."""
    head_end = buffer.find(b"\r\n\r\n")
    if head_end < 0:
        return None
    head = buffer[:head_end].decode("latin-1").split("\r\n")
    status = int(head[0].split(" ", 2)[1])
    length = 0
    for line in head[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    total = head_end + 4 + length
    return (status, total) if len(buffer) >= total else None


def generate_load(
    port: int,
    requests: list[bytes],
    connections: int,
    timeout: float,
    fresh: bool,
    out: object,
) -> None:
    """Send ``requests`` over ``connections`` sockets at once; put a :class:`Burst` on ``out``.

    Runs in a process of its own. Each connection sends its next request once the answer to
    the previous one has arrived: on the same socket (keep-alive), or with ``fresh`` on a new
    one (a device that connects, uploads and leaves). A connection the server closes before
    answering is reopened; its request counts as an error.
    """
    selector = selectors.DefaultSelector()
    pending = iter(range(len(requests)))
    started: dict[socket.socket, float] = {}
    buffers: dict[socket.socket, bytes] = {}
    latencies: list[float] = []
    accepted = errors = 0

    def connect() -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", port), timeout=CONNECT_TIMEOUT)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def send_next(sock: socket.socket) -> None:
        index = next(pending, None)
        if index is None:
            selector.unregister(sock)
            sock.close()
            return
        started[sock] = time.perf_counter()
        buffers[sock] = b""
        sock.sendall(requests[index])

    socks = [connect() for _ in range(connections)]
    cpu_start = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    for sock in socks:
        selector.register(sock, selectors.EVENT_READ)
        send_next(sock)
    while selector.get_map() and time.perf_counter() - start < timeout:
        for key, _events in selector.select(timeout=1.0):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            try:
                chunk = sock.recv(65536)
            except OSError:
                chunk = b""
            if not chunk:  # closed by the server: count the request, reconnect
                errors += 1
                selector.unregister(sock)
                sock.close()
                sock = connect()
                selector.register(sock, selectors.EVENT_READ)
                send_next(sock)
                continue
            buffers[sock] += chunk
            done = _response_end(buffers[sock])
            if done is None:
                continue
            latencies.append(time.perf_counter() - started[sock])
            if done[0] == 201:
                accepted += 1
            else:
                errors += 1
            if fresh:
                selector.unregister(sock)
                sock.close()
                sock = connect()
                selector.register(sock, selectors.EVENT_READ)
            send_next(sock)
    seconds = time.perf_counter() - start
    errors += len(selector.get_map())  # unanswered when the time ran out
    cpu_end = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu_end.ru_utime - cpu_start.ru_utime) + (cpu_end.ru_stime - cpu_start.ru_stime)
    out.put(Burst(accepted, errors, seconds, latencies, cpu))  # type: ignore[attr-defined]


def prepare(
    server: Server,
    pk: threshold.ThresholdPublicKey,
    ciphertexts: list[str],
    uploads: int,
) -> tuple[str, list[bytes]]:
    """Create a task, register ``uploads`` clients and build each one's request (not timed)."""
    with Admin(server.url, server.admin_token, timeout=120.0) as admin:
        task = admin.create_task(
            pk,
            name="load",
            encoding=TaskEncoding.integer(0, 1000),
            min_clients=2,
            max_clients=uploads,
        )
        creds = admin.register_clients(task.task_id, uploads)
    key_id = pk.public_key.key_id
    head = f"POST /v1/tasks/{task.task_id}/reports HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
    requests = []
    for i, cred in enumerate(creds):
        body = f'{{"key_id":"{key_id}","ciphertexts":["{ciphertexts[i % len(ciphertexts)]}"]}}'
        requests.append(
            (
                f"{head}Authorization: Bearer {cred.token}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n{body}"
            ).encode()
        )
    return task.task_id, requests


def burst(
    server: Server,
    task_id: str,
    requests: list[bytes],
    connections: int,
    timeout: float,
    fresh: bool,
) -> Burst:
    """Send the prepared uploads from a generator process; check the server stored them."""
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    generator = context.Process(
        target=generate_load, args=(server.port, requests, connections, timeout, fresh, out)
    )
    cpu_before = server.cpu_seconds()
    generator.start()
    result: Burst = out.get(timeout=timeout + 120)
    generator.join()
    cpu_after = server.cpu_seconds()
    if cpu_before is not None and cpu_after is not None:
        result.server_cpu = cpu_after - cpu_before
    with Admin(server.url, server.admin_token, timeout=120.0) as admin:
        stored = admin.status(task_id).count
    if stored != result.accepted:
        raise SystemExit(f"{server.label}: {result.accepted} uploads accepted, {stored} stored")
    return result


# ----------------------------------------------------------------------------- main


def _connections(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a comma-separated list of integers: {text}"
        ) from None
    if not values or any(not 1 <= v <= 512 for v in values):
        raise argparse.ArgumentTypeError("each number of connections must be in 1..512")
    return values


def _server_src(text: str) -> tuple[str, Path]:
    label, sep, path = text.partition("=")
    if not sep or not label.isidentifier() or not (Path(path) / "smpcloud").is_dir():
        raise argparse.ArgumentTypeError(
            f"expected LABEL=PATH with PATH holding the smpcloud package: {text}"
        )
    return label, Path(path)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Uploads per second from 8 and 32 concurrent connections (issue 13): "
        "a real server on 127.0.0.1, 2048-bit Paillier reports prepared beforehand, a load "
        "generator of its own process.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--connections",
        type=_connections,
        default="8,32",
        metavar="C1,C2,...",
        help="numbers of concurrent keep-alive connections to measure (each in 1..512; "
        "the target compares 8 with 32)",
    )
    parser.add_argument(
        "--uploads",
        type=int,
        default=1500,
        help="uploads per burst: clients registered (each its own token) and reports sent",
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs; the figures are medians over them"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        help="seconds a burst may last; uploads unanswered by then count as errors",
    )
    parser.add_argument(
        "--distinct",
        type=int,
        default=64,
        help="distinct ciphertexts encrypted beforehand; the reports cycle through them",
    )
    parser.add_argument(
        "--new-connections",
        action="store_true",
        help="open a new connection for every upload (devices that connect, upload and "
        "leave) instead of keeping each connection alive",
    )
    parser.add_argument("--bits", type=int, default=2048, help="Paillier modulus size")
    parser.add_argument(
        "--server-src",
        type=_server_src,
        action="append",
        default=None,
        metavar="LABEL=PATH",
        help="run a server from the smpcloud package under PATH (a checkout's src), named "
        "LABEL; give it twice to compare two checkouts in the same run (without it: one "
        "server, the smpcloud this script imports)",
    )
    args = parser.parse_args(argv)
    if not 100 <= args.uploads <= 100_000:
        parser.error("--uploads must be in 100..100000")
    if not 1 <= args.repeat <= 50:
        parser.error("--repeat must be in 1..50")
    if not 1 <= args.timeout <= 3600:
        parser.error("--timeout must be in 1..3600")
    if not 1 <= args.distinct <= 10_000:
        parser.error("--distinct must be in 1..10000")
    if args.bits < 2048:
        parser.error("--bits must be at least 2048")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Terminated (timeout, make): still stop the servers (the finally blocks run).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sources: list[tuple[str, Path | None]] = list(args.server_src or [("server", None)])
    print(
        f"# load benchmark: {args.uploads} uploads per burst, {args.bits}-bit Paillier, one "
        f"ciphertext per report, connections {','.join(map(str, args.connections))}, "
        f"medians of {args.repeat}"
    )
    print(machine_line())
    pk, _shares = threshold.deal(args.bits, n=3, t=2)
    key = pk.public_key
    ciphertexts = [encode_int(key.encrypt(i).value) for i in range(args.distinct)]
    results: dict[tuple[str, int], list[Burst]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        admin_token = secrets.token_urlsafe(32)
        servers = [Server(label, src, Path(tmp), admin_token) for label, src in sources]
        with running(servers):
            for run in range(args.repeat):
                order = args.connections if run % 2 == 0 else args.connections[::-1]
                ordered_servers = servers if run % 2 == 0 else servers[::-1]
                for connections in order:
                    for server in ordered_servers:
                        task_id, requests = prepare(server, pk, ciphertexts, args.uploads)
                        result = burst(
                            server,
                            task_id,
                            requests,
                            connections,
                            args.timeout,
                            args.new_connections,
                        )
                        results.setdefault((server.label, connections), []).append(result)
                        print(
                            f"  run {run + 1} {server.label} C={connections}: "
                            f"{result.rate:,.0f} uploads/s, p99 "
                            f"{1000 * result.percentile(0.99):.0f} ms, {result.errors} errors",
                            flush=True,
                        )
    rows = []
    for (label, connections), bursts in results.items():
        server_cpu = [b.server_cpu for b in bursts if b.server_cpu is not None]
        rows.append(
            [
                label,
                connections,
                f"{statistics.median(b.rate for b in bursts):,.0f}",
                f"{1000 * statistics.median(b.percentile(0.5) for b in bursts):.1f}",
                f"{1000 * statistics.median(b.percentile(0.99) for b in bursts):.1f}",
                sum(b.errors for b in bursts),
                f"{1000 * statistics.median(b.generator_cpu / args.uploads for b in bursts):.2f}",
                f"{1000 * statistics.median(server_cpu) / args.uploads:.2f}"
                if server_cpu
                else "n/a",
                ", ".join(f"{b.rate:,.0f}" for b in bursts),
            ]
        )
    rows.sort(key=lambda row: (row[0], row[1]))
    print()
    print_table(
        [
            "server",
            "connections",
            "uploads/s",
            "p50 ms",
            "p99 ms",
            "errors",
            "generator CPU ms/upload",
            "server CPU ms/upload",
            "uploads/s per run",
        ],
        rows,
    )
    ok = True
    if 8 in args.connections and 32 in args.connections:
        for label, _src in sources:
            at8 = statistics.median(b.rate for b in results[(label, 8)])
            at32 = statistics.median(b.rate for b in results[(label, 32)])
            passed = at32 >= at8
            ok = ok and passed
            print(
                f"target ({label}): uploads/s at 32 connections >= at 8 -> {at32:,.0f} vs "
                f"{at8:,.0f} [{'PASS' if passed else 'FAIL'}]"
            )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

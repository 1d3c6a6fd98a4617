"""Ingestion into one task with a native load generator (wrk): SQLite and PostgreSQL, 1 or 2
server processes, 8 to 128 connections.

Issue 17's target: at least 1,500 uploads/s into one task with PostgreSQL on the 2-core
machine, load generator included, and no drop from 8 to 128 connections (medians).

What is measured, per database (``--db``), server processes (``--processes``) and connections
C (``--connections``):

* ``smpcloud serve --processes P`` (uvicorn; every 201 is a committed report: SQLite with
  ``synchronous=FULL``, PostgreSQL with its default ``synchronous_commit=on``) on 127.0.0.1,
  on a SQLite file or a fresh PostgreSQL database (``--postgres-url``, or
  ``$SMPCLOUD_TEST_POSTGRES_URL``; created and dropped here);
* for each run a fresh ``validity none`` task with one value per client under a 2048-bit
  threshold Paillier key, and ``--clients`` clients registered for it (not timed), their tokens
  written one per line to a file;
* ``wrk`` (Debian's package; C, event-driven: it costs the machine little) with
  ``benchmarks/wrk/upload.lua``: every request posts the one prepared report body (a valid
  encryption made beforehand: a ``none`` task accepts any valid ciphertext, so one serves all)
  with the next unused client token; each client uploads once. Reported: accepted uploads per
  second (201s over the run's duration), the median and 99th percentile latency of all
  requests, the requests that got anything but 201 or no answer, and wrk's own CPU time.

The values of C alternate order between repeats (8,32,128 then 128,32,8); figures are medians
over ``--repeat`` runs. Bounded: ``--duration`` seconds per run, ``--clients`` tokens per run.

Run: .venv/bin/python benchmarks/bench_ingest.py [--db sqlite,postgresql] [--processes 1,2]
[--connections 8,32,128] [--duration 5] [--repeat 3] [--postgres-url URL]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy import create_engine, make_url

from _common import machine_line, print_table
from smpcloud.client import Admin, TaskEncoding, prepare_report
from smpcloud.crypto import threshold
from smpcloud.ports import free_port

LUA_SCRIPT = Path(__file__).resolve().parent / "wrk" / "upload.lua"
START_ATTEMPTS = 5
WRK_THREADS = 2
TARGET_UPLOADS_PER_SECOND = 1500


@dataclass
class Server:
    """``python -m smpcloud.service --processes P`` on one database."""

    db_url: str
    processes: int
    workdir: Path
    admin_token: str
    proc: subprocess.Popen[bytes] | None = None
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        """Start on a free port (again on another if it was taken); wait for every worker."""
        env = {**os.environ, "SMPCLOUD_ADMIN_TOKEN": self.admin_token}
        log_path = self.workdir / "server.log"
        for _attempt in range(START_ATTEMPTS):
            self.port = free_port()
            cmd = [
                sys.executable,
                "-m",
                "smpcloud.service",
                "--db",
                self.db_url,
                "--port",
                str(self.port),
                *(["--processes", str(self.processes)] if self.processes > 1 else []),
                "--workers",
                "1",
                "--log-level",
                "warning",
            ]
            start = log_path.stat().st_size if log_path.exists() else 0
            with log_path.open("ab") as log:
                self.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
            deadline = time.monotonic() + timeout
            while self.proc.poll() is None and time.monotonic() < deadline:
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200:
                        time.sleep(2.0 if self.processes > 1 else 0.0)  # the other workers
                        return
                time.sleep(0.05)
            self.stop()
            text = log_path.read_bytes()[start:].decode(errors="replace").lower()
            if "address already in use" not in text:
                break
        raise SystemExit(f"the server did not start; see {log_path}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@contextlib.contextmanager
def database(kind: str, workdir: Path, postgres_url: str | None) -> Iterator[str]:
    """A fresh database of ``kind`` ("sqlite" or "postgresql"); dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{workdir / 'ingest.db'}"
        return
    if not postgres_url:
        raise SystemExit("--db postgresql needs --postgres-url (or $SMPCLOUD_TEST_POSTGRES_URL)")
    name = f"smpcloud_bench_{secrets.token_hex(4)}"
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
        try:
            yield make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        admin.dispose()


@dataclass
class Run:
    """One wrk run's outcome."""

    accepted: int
    refused: int
    seconds: float
    p50_ms: float
    p99_ms: float
    socket_errors: int
    wrk_cpu_seconds: float

    @property
    def rate(self) -> float:
        return self.accepted / self.seconds


def prepare_task(
    server: Server, pk: threshold.ThresholdPublicKey, clients: int, workdir: Path
) -> tuple[str, Path, Path]:
    """A fresh task, ``clients`` tokens in a file, the report body in another (not timed)."""
    with Admin(server.url, server.admin_token, timeout=300.0) as admin:
        task = admin.create_task(
            pk,
            name="ingest",
            encoding=TaskEncoding.integer(0, 1000),
            min_clients=2,
            max_clients=clients,
            validity="none",
        )
        creds = admin.register_clients(task.task_id, clients)
        info = admin.info(task.task_id)
    tokens = workdir / "tokens.txt"
    tokens.write_text("".join(c.token + "\n" for c in creds))
    tokens.chmod(0o600)
    body = workdir / "body.json"
    body.write_text(json.dumps(prepare_report(info, [7]).request_body()))
    return task.task_id, tokens, body


def run_wrk(server: Server, task_id: str, tokens: Path, body: Path, conns: int, secs: int) -> Run:
    """One timed wrk run; its JSON line parsed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    path = f"/v1/tasks/{task_id}/reports"
    cmd = [
        "wrk",
        f"-t{min(WRK_THREADS, conns)}",
        f"-c{conns}",
        f"-d{secs}s",
        "--timeout",
        "30s",
        "-s",
        str(LUA_SCRIPT),
        server.url,
        "--",
        str(tokens),
        str(body),
        path,
        str(min(WRK_THREADS, conns)),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=secs + 120)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next(x for x in out.stdout.splitlines() if x.startswith("{"))
    data = json.loads(line)
    return Run(
        accepted=data["accepted"],
        refused=data["refused"],
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1e3,
        p99_ms=data["p99_us"] / 1e3,
        socket_errors=data["connect"] + data["read"] + data["write"] + data["timeout"],
        wrk_cpu_seconds=(after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
    )


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="sqlite,postgresql", help="sqlite, postgresql or both")
    parser.add_argument("--processes", type=_ints, default=[1, 2], help="e.g. 1,2")
    parser.add_argument("--connections", type=_ints, default=[8, 32, 128], help="e.g. 8,32,128")
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per cell (the median)")
    parser.add_argument(
        "--clients", type=int, default=20_000, help="tokens registered per run (one upload each)"
    )
    parser.add_argument("--bits", type=int, default=2048, help="threshold Paillier key size")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("SMPCLOUD_TEST_POSTGRES_URL"),
        help="a PostgreSQL server URL whose user may create databases (a fresh one is used)",
    )
    args = parser.parse_args(argv)
    args.dbs = [x for x in args.db.split(",") if x]
    if not set(args.dbs) <= {"sqlite", "postgresql"}:
        parser.error("--db takes sqlite, postgresql or both")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")
    print(machine_line())
    pk, _shares = threshold.deal(args.bits, n=3, t=2)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        for kind in args.dbs:
            for processes in args.processes:
                workdir = Path(tmp) / f"{kind}-{processes}"
                workdir.mkdir()
                runs: dict[int, list[Run]] = {c: [] for c in args.connections}
                with database(kind, workdir, args.postgres_url) as db_url:
                    server = Server(db_url, processes, workdir, secrets.token_urlsafe(32))
                    server.start()
                    try:
                        for repeat in range(args.repeat):
                            order = args.connections[:: -1 if repeat % 2 else 1]
                            for conns in order:
                                task_id, tokens, body = prepare_task(
                                    server, pk, args.clients, workdir
                                )
                                run = run_wrk(server, task_id, tokens, body, conns, args.duration)
                                runs[conns].append(run)
                                print(
                                    f"  {kind} P={processes} C={conns}: {run.rate:,.0f}/s "
                                    f"p50 {run.p50_ms:.1f} ms p99 {run.p99_ms:.1f} ms "
                                    f"errors {run.refused + run.socket_errors}",
                                    flush=True,
                                )
                    finally:
                        server.stop()
                for conns in args.connections:
                    cell = runs[conns]
                    total = sum(r.accepted for r in cell)
                    rows.append(
                        [
                            kind,
                            processes,
                            conns,
                            f"{statistics.median(r.rate for r in cell):,.0f}",
                            f"{statistics.median(r.p50_ms for r in cell):.1f}",
                            f"{statistics.median(r.p99_ms for r in cell):.1f}",
                            sum(r.refused + r.socket_errors for r in cell),
                            f"{sum(r.wrk_cpu_seconds for r in cell) / max(total, 1) * 1e6:.0f}",
                        ]
                    )
    print()
    print_table(
        [
            "database",
            "processes",
            "connections",
            "uploads/s",
            "p50 ms",
            "p99 ms",
            "errors",
            "wrk CPU us/upload",
        ],
        rows,
    )
    print(
        f"\ntarget: >= {TARGET_UPLOADS_PER_SECOND:,} uploads/s into one task with PostgreSQL, "
        "no drop from 8 to 128 connections (medians of "
        f"{args.repeat} run(s) of {args.duration} s; load generator on the same machine)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

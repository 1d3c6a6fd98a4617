"""What a key holder's check of the aggregate costs, next to its threshold decryption.

Issue 14 (finding 2): before decrypting, every key holder fetches the server's signed report
log and every logged report, recomputes the Merkle root and the element-wise product of the
ciphertexts, and refuses unless they match (:mod:`smpcloud.client.aggregate_check`). Target:
at most 10% of the threshold decryption phase. Reported honestly, whatever comes out.

What is measured, per number of reports N (``--reports``, default 10^4 and 10^5), in one run:

* a real server subprocess (``smpcloud.service.local``, SQLite, synchronous=FULL) and a scalar
  task under a 2048-bit 2-of-3 threshold key; N clients registered through the API; their
  reports **filled directly into the server's database** (uploading 10^5 reports over HTTP
  takes minutes on the reference machine; ``benchmarks/bench_load.py`` measures uploads). The
  reports reuse ``--distinct`` ciphertexts (the check multiplies every one of them, whatever
  its value); each has its own client and so its own leaf;
* the close (the server's aggregation and its signed log, built in the same pass);
* ``GET /log`` with the N leaves: the response size and time;
* the holder's check, on a pool of ``--workers`` processes: total, and its parts (fetching and
  parsing the pages of logged reports; leaves and Merkle root; products on the pool);
* the same holder's threshold decryption phase (``contribute(verify_aggregate=False)``: fetch
  the aggregate, partial decryption with its proof, upload, the server's proof check), and the
  second holder's ``contribute()`` (check + decryption, which releases the result);

and, per upload, the receipt's cost: the server's leaf and signature, the client's check of
both (a scalar report, and a packed report of 1,177 ciphertexts).

Run: .venv/bin/python benchmarks/bench_verify.py [--reports 10000 100000] [--workers 2]
"""

from __future__ import annotations

import argparse
import secrets
import sqlite3
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from _common import machine_line, median_seconds, print_table
from smpcloud.client import Admin, KeyHolder
from smpcloud.client._http import Connection, task_path
from smpcloud.client.aggregate_check import check_aggregate
from smpcloud.client.models import read_task_info
from smpcloud.crypto import merkle, threshold
from smpcloud.crypto.paillier import Ciphertext
from smpcloud.crypto.signatures import SigningKey, VerifyKey, verify_statement
from smpcloud.crypto.wire import decode_int, encode_int
from smpcloud.parallel import CryptoPool
from smpcloud.protocol.receipts import RECEIPT_DOMAIN, receipt_fields, report_leaf
from smpcloud.protocol.schemas import AggregateOut, ReportPageOut, TaskInfoOut
from smpcloud.service.local import local_server


def fill_reports(db: Path, task_id: str, ciphertexts: list[bytes]) -> None:
    """Insert one report per registered client of the task, directly into the database."""
    now = datetime.now(UTC).replace(tzinfo=None)
    conn = sqlite3.connect(db, timeout=60)
    try:
        ids = [
            row[0] for row in conn.execute("SELECT id FROM clients WHERE task_id = ?", (task_id,))
        ]
        conn.executemany(
            "INSERT INTO reports (task_id, client_id, ciphertexts, received_at) "
            "VALUES (?, ?, ?, ?)",
            [(task_id, cid, ciphertexts[i % len(ciphertexts)], now) for i, cid in enumerate(ids)],
        )
        conn.commit()
    finally:
        conn.close()


def fetch_pages(conn: Connection, task_id: str) -> list[ReportPageOut]:
    pages, offset = [], 0
    while True:
        page = conn.request(
            "GET", task_path(task_id, "reports") + f"?offset={offset}", ReportPageOut
        )
        pages.append(page)
        offset += len(page.reports)
        if page.next_offset is None:
            return pages


def one_size(
    url: str, admin_token: str, db: Path, key: tuple, n_reports: int, distinct: int, workers: int
) -> list[object]:
    public, shares = key
    with Admin(url, admin_token, timeout=600) as admin:
        task = admin.create_task(
            public, name=f"verify {n_reports}", min_clients=2, max_clients=max(n_reports, 2)
        )
        for start in range(0, n_reports, 10_000):
            admin.register_clients(task.task_id, min(10_000, n_reports - start))
        pk = public.public_key
        cts = [pk.encrypt(secrets.randbelow(1000)) for _ in range(distinct)]
        width = (pk.n_squared.bit_length() + 7) // 8
        fill_reports(db, task.task_id, [int(c.value).to_bytes(width, "big") for c in cts])
        started = time.perf_counter()
        admin.close(task.task_id)
        t_close = time.perf_counter() - started
    tokens = task.holder_tokens
    started = time.perf_counter()
    log = httpx.get(
        f"{url}{task_path(task.task_id, 'log')}",
        headers={"Authorization": f"Bearer {tokens[0]}"},
        timeout=600,
    )
    t_log = time.perf_counter() - started
    log_mib = len(log.content) / 2**20

    with CryptoPool(workers) as pool, Connection(url, tokens[0], timeout=600) as conn:
        pool.start()
        info = read_task_info(
            conn.request("GET", task_path(task.task_id), TaskInfoOut), insecure=False
        )
        aggregate = conn.request("GET", task_path(task.task_id, "aggregate"), AggregateOut)
        agg_cts = [
            Ciphertext(pk, decode_int(text, "aggregate", max_bytes=width))
            for text in aggregate.ciphertexts
        ]
        # the parts
        started = time.perf_counter()
        pages = fetch_pages(conn, task.task_id)
        t_pages = time.perf_counter() - started
        rows = [(r.client_id, r.ciphertexts) for p in pages for r in p.reports]
        started = time.perf_counter()
        merkle.root([report_leaf(task.task_id, cid, texts) for cid, texts in rows])
        t_root = time.perf_counter() - started
        started = time.perf_counter()
        pool.product_ciphertexts(pk, [texts for _cid, texts in rows])
        t_products = time.perf_counter() - started
        # the whole check, as contribute() runs it
        started = time.perf_counter()
        checked = check_aggregate(conn, info, aggregate, agg_cts, pool)
        t_check = time.perf_counter() - started
        if checked.count != n_reports:
            raise SystemExit("the check counted another number of reports")
        with KeyHolder(url, task.task_id, tokens[0], shares[0], timeout=600) as holder:
            started = time.perf_counter()
            holder.contribute(pool=pool, verify_aggregate=False)
            t_decrypt = time.perf_counter() - started
        with KeyHolder(url, task.task_id, tokens[1], shares[1], timeout=600) as holder:
            started = time.perf_counter()
            holder.contribute(pool=pool)
            t_second = time.perf_counter() - started
    return [
        f"{n_reports:,}",
        f"{t_close:.2f}",
        f"{log_mib:.1f} MiB / {t_log:.2f}",
        f"{t_pages:.2f}",
        f"{t_root:.2f}",
        f"{t_products:.2f}",
        f"{t_check:.2f}",
        f"{t_decrypt:.3f}",
        f"{t_check / t_decrypt * 100:.0f}%",
        f"{t_second:.2f}",
    ]


def receipt_costs(repeat: int) -> list[list[object]]:
    key = SigningKey.generate()
    server_key = key.verify_key.to_text()
    pk = threshold.deal(2048, n=3, t=2)[0].public_key
    ct = encode_int(pk.encrypt(1).value)
    rows = []
    for label, texts in [
        ("scalar (1 ciphertext)", [ct]),
        ("packed (1,177 ciphertexts)", [ct] * 1177),
    ]:
        leaf = report_leaf("task", 7, texts).hex()
        fields = receipt_fields("task", 7, leaf, "2026-01-01T00:00:00+00:00", server_key)
        signature = key.sign_statement(RECEIPT_DOMAIN, fields)

        def sign(texts: list[str] = texts) -> None:
            leaf = report_leaf("task", 7, texts).hex()
            key.sign_statement(
                RECEIPT_DOMAIN,
                receipt_fields("task", 7, leaf, "2026-01-01T00:00:00+00:00", server_key),
            )

        def check(texts: list[str] = texts, signature: str = signature) -> None:
            leaf = report_leaf("task", 7, texts).hex()
            f = receipt_fields("task", 7, leaf, "2026-01-01T00:00:00+00:00", server_key)
            verify_statement(VerifyKey.from_text(server_key), signature, RECEIPT_DOMAIN, f)

        rows.append(
            [
                label,
                f"{median_seconds(sign, repeat) * 1e6:.0f}",
                f"{median_seconds(check, repeat) * 1e6:.0f}",
            ]
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--workers", type=int, default=2, help="the key holder's pool")
    parser.add_argument("--distinct", type=int, default=200, help="distinct ciphertexts reused")
    parser.add_argument("--repeat", type=int, default=201)
    args = parser.parse_args(argv)
    print(f"# key holders' check of the aggregate; {machine_line()}")
    print(
        "# scalar task, 2048-bit 2-of-3 key; reports filled into the server's database "
        f"({args.distinct} distinct ciphertexts reused); holder pool: {args.workers} worker(s)"
    )
    key = threshold.deal(2048, n=3, t=2)
    admin_token = secrets.token_urlsafe(32)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "verify.db"
        with local_server(db, admin_token, timeout=60) as url:
            for n_reports in args.reports:
                rows.append(
                    one_size(url, admin_token, db, key, n_reports, args.distinct, args.workers)
                )
    print_table(
        [
            "reports",
            "close s",
            "GET /log (leaves)",
            "pages s",
            "leaves+root s",
            "products s",
            "check s",
            "decrypt phase s",
            "check / decrypt",
            "2nd holder check+decrypt s",
        ],
        rows,
    )
    print()
    print("# receipts, per upload (medians, microseconds)")
    print_table(
        ["report", "server: leaf + sign", "client: leaf + verify"], receipt_costs(args.repeat)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

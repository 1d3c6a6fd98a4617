"""The main demonstration: a secure average computed by the aggregation service, end to end.

What happens (the paper's Figures 1 and 2, for real, on 127.0.0.1):

1. A dealer creates a 3-of-5 threshold Paillier key (safe primes) and hands one key share and
   one Ed25519 signing key to each of five key holders; the holders' verify keys form the
   roster every client pins. With ``distributed_key``, there is no dealer: the five key holders,
   each in its own process, generate the key together over mutual TLS on 127.0.0.1
   (:func:`smpcloud.mpc.dkg.local.run_local_ceremony`) and each makes its own signing key.
2. The aggregation server starts (uvicorn, an ephemeral port, a SQLite file in a temporary
   directory; :func:`smpcloud.service.local.local_server`). The administrator creates a task
   with the roster and registers N clients, each with a token. Three key holders certify the
   task (sign its key and parameters as served; :mod:`smpcloud.protocol.certificates`).
3. Each client holds one patient's body-mass index from scikit-learn's diabetes dataset
   (442 real patients, :func:`smpcloud.datasets.patient_bmis`; more clients than patients
   reuse rows). It checks that t pinned key holders certified the task's key and parameters,
   encodes the value as fixed point, encrypts it locally and uploads only the ciphertext over
   HTTP.
4. The server multiplies the ciphertexts (adding the plaintexts) without being able to read
   them, closes the task and publishes the aggregate ciphertext and the count.
5. Three of the five key holders each upload a partial decryption with a zero-knowledge proof;
   the server checks the proofs, combines, and publishes the sum, count and average.

Reveals: the sum, the count and the average. The server stores ciphertexts only; no party below
the threshold can decrypt anything, and the server cannot make a client encrypt under a key of
its own (the clients verify the holders' certificates). With a dealer, the dealer is trusted (it
makes the key shares and the signing keys); with ``distributed_key`` nobody sees the whole key
(the demo itself then collects the holders' shares to play all of them, as a local demo must).
"""

from __future__ import annotations

import secrets
import sqlite3
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from smpcloud.client import Admin, Client, KeyHolder, TaskEncoding
from smpcloud.crypto import threshold
from smpcloud.crypto.signatures import Roster, SigningKey
from smpcloud.datasets import BMI_RANGE, FRAC_BITS, patient_bmis
from smpcloud.errors import InvalidInputError
from smpcloud.mpc.dkg.local import run_local_ceremony
from smpcloud.service.local import local_server


@dataclass(slots=True)
class ServiceDemoReport:
    """What the demonstration measured and what the server kept."""

    clients: int
    bits: int
    holders: int
    threshold: int
    secure_sum: float = 0.0
    secure_average: float = 0.0
    count: int = 0
    plaintext_sum: float = 0.0
    plaintext_average: float = 0.0
    seconds: dict[str, float] = field(default_factory=dict)
    server_storage: list[str] = field(default_factory=list)
    holders_used: list[int] = field(default_factory=list)
    certified_by: list[int] = field(default_factory=list)
    distributed_key: bool = False

    def to_json(self) -> dict[str, Any]:
        """Return one JSON-ready object (no keys, tokens or individual values)."""
        return {
            "clients": self.clients,
            "count": self.count,
            "sum": self.secure_sum,
            "average": self.secure_average,
            "plaintext_sum": self.plaintext_sum,
            "plaintext_average": self.plaintext_average,
            "abs_error": abs(self.secure_average - self.plaintext_average),
            "bits": self.bits,
            "key": "distributed (no dealer)" if self.distributed_key else "dealer",
            "key_holders": {
                "n": self.holders,
                "t": self.threshold,
                "used": self.holders_used,
                "certified_by": self.certified_by,
            },
            "seconds": {k: round(v, 4) for k, v in self.seconds.items()},
            "server_storage": self.server_storage,
        }


def describe_storage(db_path: Path) -> list[str]:
    """Summarise what the server's database holds: tables, row counts, blob sizes."""
    lines = []
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as conn:
        tables = [
            r[0]
            for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")
        ]
        for table in tables:
            cols = conn.execute(f'PRAGMA table_info("{table}")').fetchall()
            count = conn.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0]  # noqa: S608
            blob_cols = [c[1] for c in cols if str(c[2]).upper() in ("BLOB", "LARGEBINARY")]
            desc = f"{table}: {count} rows; columns {', '.join(c[1] for c in cols)}"
            for col in blob_cols[:1]:
                row = conn.execute(f'SELECT "{col}" FROM "{table}" LIMIT 1').fetchone()  # noqa: S608
                if row and row[0]:
                    desc += f"; {col} e.g. {len(row[0])} bytes 0x{bytes(row[0][:12]).hex()}..."
            lines.append(desc)
    return lines


def run(
    clients: int = 100,
    *,
    bits: int = 2048,
    holders: int = 5,
    t: int = 3,
    progress: Callable[[int, int], None] | None = None,
    distributed_key: bool = False,
) -> ServiceDemoReport:
    """Run the whole secure-average flow and return the report.

    Args:
        clients: number of clients, each with one private value.
        bits: Paillier modulus size (2048 or 3072).
        holders: key holders (n); t of them decrypt.
        t: decryption threshold.
        progress: called as progress(done, total) while clients upload.
        distributed_key: generate the key without a dealer, among ``holders`` processes over
            TLS (needs at least 3 holders).

    Raises:
        InvalidInputError: bad parameters.
        TransportError: the server could not be started or reached.
        MissingExtraError: scikit-learn (the ``examples`` extra) is missing.
    """
    if clients < 1 or not 1 <= t <= holders:
        raise InvalidInputError("need clients >= 1 and 1 <= t <= holders")
    report = ServiceDemoReport(clients, bits, holders, t, distributed_key=distributed_key)
    values = patient_bmis(clients)
    report.plaintext_sum = float(values.sum())
    report.plaintext_average = float(values.mean())

    start = time.perf_counter()
    if distributed_key:
        ceremony = run_local_ceremony(holders, t, bits)
        public_key, key_shares = ceremony.public_key, ceremony.shares
        signing_keys = [result.signing_key for result in ceremony.results]
        roster = ceremony.roster
    else:
        public_key, key_shares = threshold.deal(bits, n=holders, t=t)
        signing_keys = [SigningKey.generate() for _ in key_shares]
        roster = Roster(
            t,
            {
                share.index: key.verify_key
                for share, key in zip(key_shares, signing_keys, strict=True)
            },
        )
    report.seconds["key_ceremony"] = time.perf_counter() - start

    admin_token = secrets.token_urlsafe(32)
    with tempfile.TemporaryDirectory(prefix="smpcloud-demo-") as tmp:
        db_path = Path(tmp) / "server.db"
        with local_server(db_path, admin_token) as url:
            admin = Admin(url, admin_token)
            start = time.perf_counter()
            task = admin.create_task(
                public_key,
                name="average BMI",
                length=1,
                encoding=TaskEncoding.fixed(FRAC_BITS, *BMI_RANGE),
                min_clients=min(clients, 10),
                roster=roster,
            )
            credentials = admin.register_clients(task.task_id, clients)
            report.seconds["setup"] = time.perf_counter() - start

            start = time.perf_counter()
            rng = secrets.SystemRandom()
            for index in sorted(rng.sample(range(holders), t)):
                with KeyHolder(
                    url, task.task_id, task.holder_tokens[index], key_shares[index]
                ) as holder:
                    report.certified_by = holder.certify(signing_keys[index]).certified_by
            report.seconds["certify"] = time.perf_counter() - start

            start = time.perf_counter()
            for i, (cred, value) in enumerate(zip(credentials, values, strict=True), start=1):
                with Client(url, task.task_id, cred.token, holders=roster) as client:
                    client.submit(float(value))
                if progress:
                    progress(i, clients)
            report.seconds["encrypt_and_upload"] = time.perf_counter() - start

            start = time.perf_counter()
            status = admin.close(task.task_id)
            report.seconds["close_and_aggregate"] = time.perf_counter() - start

            start = time.perf_counter()
            chosen = sorted(rng.sample(range(holders), t))
            for index in chosen:
                with KeyHolder(
                    url, task.task_id, task.holder_tokens[index], key_shares[index]
                ) as holder:
                    holder.contribute()
            result = admin.result(task.task_id)
            report.seconds["threshold_decryption"] = time.perf_counter() - start
            report.holders_used = [i + 1 for i in chosen]
            report.count = result.count
            report.secure_sum = float(result.sum[0])
            report.secure_average = float(result.average[0])
            del status
        report.server_storage = describe_storage(db_path)
    report.seconds["total"] = sum(report.seconds.values())
    return report

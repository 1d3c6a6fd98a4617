"""A real server started with ``--dask-scheduler`` (a LocalCluster's address): the work runs there.

Packed tasks end to end: the aggregation (a tree reduction of tiles on the cluster's workers)
and the verification of every report's validity proof run on Dask, a forged report is refused,
and the result equals the plaintext sums. A scheduler that does not answer at start gives one
line and exit status 1 within the connect timeout, not a hang.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import numpy.typing as npt
import pytest
from service_harness import Key, ServerProcess, assert_problem, start_server

from smpcloud.client import TaskCreated, TaskResult
from smpcloud.crypto.packing import Packing
from smpcloud.crypto.validity import ProofLayout, ReportBase, prove_report
from smpcloud.crypto.wire import encode_int
from smpcloud.parallel import MIN_PARALLEL_PRODUCT, CryptoPool
from smpcloud.parallel.dask_pool import DaskPool
from smpcloud.protocol.report_proofs import client_digest, encode_proof, proof_context

distributed = pytest.importorskip("distributed", reason="needs pip install 'smpcloud[dask]'")

FRAC_BITS = 16


@pytest.fixture(scope="module")
def scheduler() -> Iterator[object]:
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    )
    client = distributed.Client(cluster, set_as_default=False)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


@pytest.fixture(scope="module")
def dask_server(
    tmp_path_factory: pytest.TempPathFactory, key: Key, scheduler: object
) -> Iterator[ServerProcess]:
    address = scheduler.scheduler.address  # type: ignore[attr-defined]
    proc = start_server(
        tmp_path_factory.mktemp("dask-server"),
        "--dask-scheduler",
        address,
        "--max-body-bytes",
        str(4 << 20),
    )
    try:
        yield proc
    finally:
        proc.stop()
    proc.check_log_has_no_secrets(key)


def _task_prefixes(dask_scheduler: object) -> list[str]:
    return sorted(dask_scheduler.task_prefixes)  # type: ignore[attr-defined]


def ran_on_cluster(scheduler: object) -> set[str]:
    """The names of the functions the cluster has run (its task prefixes)."""
    return set(scheduler.run_on_scheduler(_task_prefixes))  # type: ignore[attr-defined]


def layout(key: Key, length: int, clients: int) -> Packing:
    return Packing.for_key(
        key[0].public_key,
        length=length,
        min_value=-1.0,
        max_value=1.0,
        max_additions=clients,
        frac_bits=FRAC_BITS,
    )


def check_sums(result: TaskResult, rows: npt.NDArray[np.float64]) -> None:
    tolerance = len(rows) * 2.0 ** -(FRAC_BITS + 1) + 1e-9
    assert result.count == len(rows)
    assert np.max(np.abs(np.asarray(result.sum) - rows.sum(axis=0))) <= tolerance
    assert result.within_declared_range


def decrypt(
    server: ServerProcess, task_id: str, task: TaskCreated, key: Key, pool: CryptoPool | None = None
) -> TaskResult:
    """Holders 1-3 contribute; holder 1 on ``pool`` (its check and partial decryption)."""
    for index in (1, 2, 3):
        with server.holder(task, key[1][index - 1]) as holder:
            holder.contribute(pool=pool if index == 1 else None)
    with server.admin() as admin:
        return admin.result(task_id)


def test_a_packed_task_aggregates_on_the_cluster(
    dask_server: ServerProcess, key: Key, scheduler: object
) -> None:
    clients = 16  # many reports of fewer ciphertexts: less decryption work for the same product
    probe = layout(key, 51, clients)
    # Enough ciphertexts that the product is worth the workers (reports x positions).
    length = probe.slots * (MIN_PARALLEL_PRODUCT // clients + 1)
    packing = layout(key, length, clients)
    assert clients * packing.ciphertexts >= MIN_PARALLEL_PRODUCT
    rows = np.random.default_rng(5).uniform(-1.0, 1.0, (clients, length))
    task, creds = dask_server.new_task(key, clients, packing=packing, min_clients=3)
    with CryptoPool(2) as pool:
        for cred, row in zip(creds, rows, strict=True):
            with dask_server.client(task.task_id, cred.token) as client:
                client.submit(row, pool=pool)
    with dask_server.admin() as admin:
        assert admin.close(task.task_id).reports == clients
    # A key holder may use a Dask cluster too (its own machines: its workers get its share).
    with DaskPool(scheduler) as holder_pool:
        result = decrypt(dask_server, task.task_id, task, key, holder_pool)
    check_sums(result, rows)
    assert "do_partial_values" in ran_on_cluster(scheduler)
    # The tiles were multiplied and reduced on the cluster's workers.
    assert {"do_column_products", "multiply_columns"} <= ran_on_cluster(scheduler)
    assert "1 worker(s)" not in dask_server.log_text()


def test_reports_are_verified_on_the_cluster_and_a_forgery_is_refused(
    dask_server: ServerProcess, key: Key, scheduler: object
) -> None:
    clients, length = 3, 40
    packing = layout(key, length, clients + 1)
    rows = np.random.default_rng(9).uniform(-1.0, 1.0, (clients, length))
    task, creds = dask_server.new_task(
        key, clients + 1, packing=packing, min_clients=3, validity="range"
    )
    for cred, row in zip(creds, rows, strict=False):
        with dask_server.client(task.task_id, cred.token) as client:
            client.submit(row)
    assert "job_verify_chunk" in ran_on_cluster(scheduler)
    # A forger: an honest proof of zeros, with one byte of it flipped.
    pk = key[0].public_key
    base = ReportBase(pk.n)
    proof_layout = ProofLayout.packed(packing)
    token = creds[clients].token
    context = proof_context(task.task_id, client_digest(token), key[0].fingerprint())
    cts, proof = prove_report(base, proof_layout, [0] * length, context)
    forged = bytearray(proof)
    forged[len(forged) // 2] ^= 1
    body = {
        "key_id": pk.key_id,
        "ciphertexts": [encode_int(c) for c in cts],
        "proof": encode_proof(bytes(forged)),
    }
    response = httpx.post(
        f"{dask_server.base_url}/v1/tasks/{task.task_id}/reports",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=30.0,
    )
    assert_problem(response, 422, "invalid-proof")
    with dask_server.admin() as admin:
        assert admin.close(task.task_id).reports == clients
    result = decrypt(dask_server, task.task_id, task, key)
    check_sums(result, rows)


def test_an_unreachable_scheduler_is_one_line_and_exit_1(tmp_path: Path) -> None:
    with socket.socket() as sock:  # bound, never listening: every connection is refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        token = tmp_path / "admin.token"
        token.write_text("x" * 8 + "Q7p2Lw9sZk4Rt1Vb")
        token.chmod(0o600)
        from smpcloud.service.migrations import upgrade

        upgrade(f"sqlite:///{tmp_path / 'tasks.db'}")  # serve refuses an unmigrated database
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "smpcloud",
                "serve",
                "--db",
                f"sqlite:///{tmp_path / 'tasks.db'}",
                "--admin-token-file",
                str(token),
                "--port",
                "1",
                "--dask-scheduler",
                f"tcp://127.0.0.1:{port}",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(
        f"Error: --dask-scheduler: cannot connect to the Dask scheduler at "
        f"tcp://127.0.0.1:{port} within 10 s"
    ), lines[0]
    assert "Traceback" not in done.stderr and not done.stdout

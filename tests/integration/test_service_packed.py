"""Packed vector tasks through a real server process: many values per ciphertext, batched proofs.

Small (insecure) keys keep the fast set quick; the reference size (10^5 values, 2048 bits) is
in the slow test at the end and in benchmarks/bench_vector.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import numpy.typing as npt
import pytest
from service_harness import Key, ServerProcess, assert_problem, server_database, start_server

from smpcloud.client import ConflictError, TaskCreated, TaskEncoding, TaskStateError
from smpcloud.crypto import threshold
from smpcloud.crypto.packing import Packing, pack
from smpcloud.crypto.paillier import Ciphertext
from smpcloud.crypto.signatures import Roster, SigningKey
from smpcloud.crypto.wire import decode_int, encode_int
from smpcloud.errors import OverflowDetectedError, ThresholdNotMetError
from smpcloud.parallel import MIN_PARALLEL_PRODUCT, CryptoPool

pytestmark = pytest.mark.backends("sqlite", "postgres")

FRAC_BITS = 16


@pytest.fixture(autouse=True)
def server_survives(server: ServerProcess) -> Iterator[None]:
    """After every test here, the module's server process still runs and answers."""
    yield
    assert server.alive()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def layout(key: Key, length: int, clients: int, *, frac_bits: int = FRAC_BITS) -> Packing:
    return Packing.for_key(
        key[0].public_key,
        length=length,
        min_value=-1.0,
        max_value=1.0,
        max_additions=clients,
        frac_bits=frac_bits,
    )


def vectors(clients: int, length: int, seed: int) -> npt.NDArray[np.float64]:
    rows = np.random.default_rng(seed).uniform(-1.0, 1.0, (clients, length))
    rows[0, 0], rows[-1, -1] = -1.0, 1.0  # the declared bounds themselves are accepted
    return rows


def upload_all(
    server: ServerProcess, task: TaskCreated, creds: list, rows: npt.NDArray[np.float64]
) -> None:
    for cred, row in zip(creds, rows, strict=False):
        with server.client(task.task_id, cred.token) as client:
            client.submit(row)


def contribute(server: ServerProcess, task: TaskCreated, key: Key, holders: list[int]) -> None:
    for index in holders:
        with server.holder(task, key[1][index - 1]) as holder:
            holder.contribute()


def check_sums(result, rows: npt.NDArray[np.float64], frac_bits: int = FRAC_BITS) -> None:
    count = len(rows)
    exact = rows.sum(axis=0)
    # Each value is off by at most 2^-(f+1) after encoding, a sum by count times that.
    tolerance = count * 2.0 ** -(frac_bits + 1) + 1e-9
    assert result.count == count
    assert len(result.sum) == len(result.average) == rows.shape[1]
    assert np.max(np.abs(np.asarray(result.sum) - exact)) <= tolerance
    assert np.max(np.abs(np.asarray(result.average) - exact / count)) <= tolerance / count
    assert result.within_declared_range


def batch_body(key: Key, task: TaskCreated, server: ServerProcess, index: int) -> dict:
    """Holder ``index``'s batched partial decryption of the task's aggregate, as JSON."""
    with server.admin() as admin:
        info = admin.info(task.task_id, allow_insecure_keys=True)
    response = httpx.get(
        f"{server.base_url}/v1/tasks/{task.task_id}/aggregate",
        headers=bearer(task.holder_tokens[index - 1]),
    )
    assert response.status_code == 200, response.text
    texts = response.json()["ciphertexts"]
    assert len(texts) == info.ciphertexts
    pk = key[0].public_key
    cts = [Ciphertext(pk, decode_int(t, "c", max_bytes=4096)) for t in texts]
    return key[1][index - 1].partial_decrypt_batch(cts).to_json()


# -------------------------------------------------------------------------------- the flow


def test_packed_vector_task_end_to_end(server: ServerProcess, key: Key) -> None:
    clients, length = 5, 1000
    packing = layout(key, length, clients)
    rows = vectors(clients, length, seed=1)
    task, creds = server.new_task(key, clients, packing=packing, min_clients=3)
    with server.client(task.task_id, creds[0].token) as client:
        info = client.info()
        assert info.packing == packing
        assert info.length == length and info.ciphertexts == packing.ciphertexts
        assert info.encoding == TaskEncoding.fixed(FRAC_BITS, -1.0, 1.0)
        prepared = client.prepare(rows[0])
        # One ciphertext per `slots` values: at least 20x fewer than one per value.
        assert len(prepared.ciphertexts) == packing.ciphertexts
        assert length / len(prepared.ciphertexts) >= 20
        client.upload(prepared)
    upload_all(server, task, creds[1:], rows[1:])
    with server.admin() as admin:
        closed = admin.close(task.task_id)
        assert (closed.state, closed.reports) == ("closed", clients)
        aggregate = httpx.get(
            f"{server.base_url}/v1/tasks/{task.task_id}/aggregate",
            headers=bearer(server.admin_token),
        ).json()
        assert len(aggregate["ciphertexts"]) == packing.ciphertexts
        contribute(server, task, key, [2, 4])
        status = admin.status(task.task_id)
        assert (status.partials_received, status.partials_form) == (2, "batch")
        with pytest.raises(ThresholdNotMetError, match="2 of 3"):
            admin.result(task.task_id)
        contribute(server, task, key, [5])
        result = admin.result(task.task_id)
    assert result.holders == [2, 4, 5]
    check_sums(result, rows)
    stored = server.db_query(
        "SELECT packing_json FROM packed_tasks WHERE task_id = ?", task.task_id
    )
    assert Packing.from_json(json.loads(stored[0][0])) == packing


@pytest.mark.parametrize("holders", [[1, 2, 3], [3, 4, 5], [1, 3, 5]])
def test_batches_from_any_t_of_n_holders(server: ServerProcess, key: Key, holders) -> None:
    clients, length = 3, 300
    rows = vectors(clients, length, seed=holders[0] * 10 + holders[1])
    task, creds = server.new_task(key, clients, packing=layout(key, length, clients))
    with CryptoPool(1) as pool:  # the SDK's pool arguments (inline here: no processes)
        for cred, row in zip(creds, rows, strict=True):
            with server.client(task.task_id, cred.token) as client:
                client.submit(row, pool=pool)
        with server.admin() as admin:
            admin.close(task.task_id)
            for index in holders:
                with server.holder(task, key[1][index - 1]) as holder:
                    holder.contribute(pool=pool)
            result = admin.result(task.task_id)
    assert result.holders == holders
    check_sums(result, rows)


def test_per_ciphertext_partials_also_decrypt_a_packed_task(
    server: ServerProcess, key: Key
) -> None:
    clients, length = 3, 200
    rows = vectors(clients, length, seed=3)
    task, creds = server.new_task(key, clients, packing=layout(key, length, clients))
    upload_all(server, task, creds, rows)
    with server.admin() as admin:
        admin.close(task.task_id)
        for index in (1, 2, 3):
            with server.holder(task, key[1][index - 1]) as holder:
                holder.contribute(batch=False)
        assert admin.status(task.task_id).partials_form == "partials"
        check_sums(admin.result(task.task_id), rows)


def test_a_batch_decrypts_an_unpacked_vector_task(server: ServerProcess, key: Key) -> None:
    values = [[3, -1, 7], [10, 20, -30]]
    task, creds = server.new_task(key, 2, length=3)
    for cred, row in zip(creds, values, strict=True):
        with server.client(task.task_id, cred.token) as client:
            client.submit(row)
    with server.admin() as admin:
        admin.close(task.task_id)
        for index in (1, 2, 3):
            with server.holder(task, key[1][index - 1]) as holder:
                holder.contribute(batch=True)
        result = admin.result(task.task_id)
    assert result.sum == [13, 19, -23]


# ----------------------------------------------------------------------------- misbehaviour


def test_a_tampered_batch_is_refused_and_honest_holders_finish(
    server: ServerProcess, key: Key
) -> None:
    clients, length = 3, 300
    rows = vectors(clients, length, seed=4)
    task, creds = server.new_task(key, clients, packing=layout(key, length, clients))
    upload_all(server, task, creds, rows)
    with server.admin() as admin:
        admin.close(task.task_id)
    body = batch_body(key, task, server, 1)
    n2 = key[0].public_key.n_squared
    forged = dict(body)
    values = list(body["values"])
    value = decode_int(values[5], "value", max_bytes=4096)
    values[5] = encode_int(value * 4 % n2)  # in Z*_{n^2}, but not c^(2 delta s_1)
    forged["values"] = values
    url = f"{server.base_url}/v1/tasks/{task.task_id}/partials"
    response = httpx.post(url, json={"batch": forged}, headers=bearer(task.holder_tokens[0]))
    problem = assert_problem(response, 422, "invalid-partial-decryption", "key holder(s) 1")
    assert problem["holders"] == [1]
    # Nothing was stored: holder 1 may still contribute honestly, and with two more the task
    # decrypts.
    with server.admin() as admin:
        assert admin.status(task.task_id).partials_received == 0
    contribute(server, task, key, [1, 3, 5])
    with server.admin() as admin:
        result = admin.result(task.task_id)
    assert result.holders == [1, 3, 5]
    check_sums(result, rows)
    assert "rejected the batched partial decryption of key holder 1" in server.log_text()


def test_mixing_forms_is_409_and_bodies_need_exactly_one_form(
    server: ServerProcess, key: Key
) -> None:
    clients, length = 2, 100
    rows = vectors(clients, length, seed=5)
    task, creds = server.new_task(key, clients, packing=layout(key, length, clients))
    upload_all(server, task, creds, rows)
    with server.admin() as admin:
        admin.close(task.task_id)
    url = f"{server.base_url}/v1/tasks/{task.task_id}/partials"
    holder_2 = bearer(task.holder_tokens[1])
    for body in ({}, {"batch": batch_body(key, task, server, 2), "partials": []}):
        assert_problem(httpx.post(url, json=body, headers=holder_2), 422, "invalid-input")
    with server.holder(task, key[1][0]) as holder:
        holder.contribute(batch=False)  # the first accepted upload fixes the form
    with server.holder(task, key[1][1]) as holder:
        with pytest.raises(ConflictError, match="one partial decryption per ciphertext"):
            holder.contribute(batch=True)
        response = httpx.post(
            url, json={"batch": batch_body(key, task, server, 2)}, headers=holder_2
        )
        assert_problem(response, 409, "conflict", "first accepted upload")
        holder.contribute()  # the default follows the task's form
    contribute(server, task, key, [3])
    with server.admin() as admin:
        check_sums(admin.result(task.task_id), rows)


def test_a_batch_for_another_holder_or_size_is_422(server: ServerProcess, key: Key) -> None:
    clients, length = 2, 100
    task, creds = server.new_task(key, clients, packing=layout(key, length, clients))
    upload_all(server, task, creds, vectors(clients, length, seed=6))
    with server.admin() as admin:
        admin.close(task.task_id)
    url = f"{server.base_url}/v1/tasks/{task.task_id}/partials"
    body = batch_body(key, task, server, 2)
    response = httpx.post(url, json={"batch": body}, headers=bearer(task.holder_tokens[0]))
    assert_problem(response, 422, "invalid-input", "claims key holder 2", "key holder 1")
    short = body | {"values": body["values"][:-1]}
    response = httpx.post(url, json={"batch": short}, headers=bearer(task.holder_tokens[1]))
    assert_problem(response, 422, "invalid-input", "batch:")


def test_a_forged_report_withholds_the_result(server: ServerProcess, key: Key) -> None:
    """A client that bypasses the SDK puts an out-of-range slot in its plaintext: detected."""
    clients, length = 3, 120
    packing = layout(key, length, clients)
    rows = vectors(clients, length, seed=7)
    task, creds = server.new_task(key, clients, packing=packing)
    upload_all(server, task, creds[:2], rows[:2])
    # The forged report's slot 0 brings the sum of slot 0 to clients * span + 1: one more than
    # any `clients` in-range values can reach, yet below 2^slot_bits (no carry into slot 1).
    honest = sum(int(np.rint(x * 2**FRAC_BITS)) - packing.lo for x in rows[:2, 0])
    forged_slot = clients * packing.span + 1 - honest
    assert forged_slot >= 0 and clients * packing.span + 1 < 1 << packing.slot_bits
    plaintexts = pack(np.zeros(length), packing)
    plaintexts[0] = (plaintexts[0] >> packing.slot_bits << packing.slot_bits) | forged_slot
    pk = key[0].public_key
    forged = {
        "key_id": pk.key_id,
        "ciphertexts": [encode_int(pk.encrypt(m).value) for m in plaintexts],
    }
    url = f"{server.base_url}/v1/tasks/{task.task_id}/reports"
    assert httpx.post(url, json=forged, headers=bearer(creds[2].token)).status_code == 201
    with server.admin() as admin:
        admin.close(task.task_id)
        contribute(server, task, key, [1, 2])
        with (
            server.holder(task, key[1][2]) as holder,
            pytest.raises(OverflowDetectedError, match="forged report"),
        ):
            holder.contribute()
        # The verdict is kept: the task is withheld for good, nothing is ever released.
        status = admin.status(task.task_id)
        assert (status.state, status.partials_received) == ("withheld", 3)
        with pytest.raises(TaskStateError, match="result withheld"):
            admin.result(task.task_id)
        with (
            server.holder(task, key[1][3]) as holder,
            pytest.raises(TaskStateError, match="result withheld"),
        ):
            holder.contribute()
        assert admin.status(task.task_id).partials_received == 3
    assert "does not unpack within its layout's bounds" in server.log_text()


def test_packed_task_creation_errors(server: ServerProcess, key: Key) -> None:
    public = key[0]
    url = f"{server.base_url}/v1/tasks"
    auth = bearer(server.admin_token)
    packing = layout(key, 1000, 10)
    good = {
        "name": "packed",
        "public_key": threshold.public_key_to_json(public),
        "length": 1000,
        "min_clients": 2,
        "max_clients": 10,
        "packing": packing.to_json(),
        "validity": "none",  # 1,000 proved values exceed the test server's body limit
    }
    assert httpx.post(url, headers=auth, json=good).status_code == 201
    fixed = TaskEncoding.fixed(FRAC_BITS, -1.0, 1.0).model_dump()
    assert httpx.post(url, headers=auth, json=good | {"encoding": fixed}).status_code == 201
    big_key = packing.to_json() | {"key_bits": 2048}
    cases = [
        ({"max_clients": 11}, "max_additions"),
        ({"length": 999}, "the task declares length 999"),
        ({"encoding": TaskEncoding.fixed(8, -1.0, 1.0).model_dump()}, "implied by its layout"),
        ({"packing": packing.to_json() | {"frac_bits": "16"}}, "packing:"),
        ({"packing": {"kind": "nope"}}, "packing:"),
        ({"packing": big_key}, "2048-bit keys"),
        ({"scheme": "shamir", "servers": 3, "threshold": 2, "server_index": 1}, "packing"),
    ]
    for change, fragment in cases:
        body = good | change
        if change.get("scheme") == "shamir":
            del body["public_key"]
        assert_problem(httpx.post(url, headers=auth, json=body), 422, "invalid-input", fragment)
    # Only the number of ciphertexts counts against the server's vector-length limit.
    wide = layout(key, 1_000_000, 2)
    body = good | {"length": wide.length, "max_clients": 2, "packing": wide.to_json()}
    assert wide.ciphertexts > 2048
    assert_problem(
        httpx.post(url, headers=auth, json=body), 422, "invalid-input", "ciphertexts per report"
    )


def test_a_report_with_the_wrong_number_of_ciphertexts_is_422(
    server: ServerProcess, key: Key
) -> None:
    clients, length = 2, 500
    packing = layout(key, length, clients)
    task, creds = server.new_task(key, clients, packing=packing)
    pk = key[0].public_key
    url = f"{server.base_url}/v1/tasks/{task.task_id}/reports"
    for count in (packing.ciphertexts - 1, packing.ciphertexts + 1, 1):
        body = {"key_id": pk.key_id, "ciphertexts": [encode_int(pk.encrypt(0).value)] * count}
        response = httpx.post(url, json=body, headers=bearer(creds[0].token))
        assert_problem(
            response, 422, "invalid-input", f"this task takes {packing.ciphertexts}", "packed"
        )
    with (
        server.client(task.task_id, creds[0].token) as client,
        pytest.raises(OverflowDetectedError, match="outside the declared range"),
    ):
        client.submit(np.full(length, 1.5))
    with server.admin() as admin:
        assert admin.status(task.task_id).reports == 0


# ------------------------------------------------------------------ deadlines and restarts


def test_a_packed_task_closes_and_aggregates_at_its_deadline(
    server: ServerProcess, key: Key
) -> None:
    clients, length = 2, 100
    rows = vectors(clients, length, seed=11)
    deadline = datetime.now(UTC) + timedelta(seconds=1)
    task, creds = server.new_task(
        key, clients, packing=layout(key, length, clients), deadline=deadline
    )
    upload_all(server, task, creds, rows)
    query = "SELECT count FROM aggregates WHERE task_id = ?"
    end = time.monotonic() + 15
    while not server.db_query(query, task.task_id) and time.monotonic() < end:
        time.sleep(0.1)  # the deadline loop closes the task and stores its aggregate
    assert server.db_query(query, task.task_id) == [(clients,)]
    contribute(server, task, key, [1, 2, 3])
    with server.admin() as admin:
        result = admin.result(task.task_id)
    check_sums(result, rows)


def test_a_missing_aggregate_is_recomputed_after_a_restart(
    fresh_server: ServerProcess, key: Key
) -> None:
    """A crash between closing a task and storing its aggregate loses nothing."""
    server = fresh_server
    clients, length = 3, 150
    rows = vectors(clients, length, seed=12)
    task, creds = server.new_task(key, clients, packing=layout(key, length, clients))
    upload_all(server, task, creds, rows)
    with server.admin() as admin:
        admin.close(task.task_id)
    server.kill()
    # as if killed before the aggregate's commit
    server.db_execute("DELETE FROM aggregates WHERE task_id = ?", task.task_id)
    server.start(port=server.port)
    contribute(server, task, key, [2, 3, 4])  # the deadline loop or a holder recomputes it
    with server.admin() as admin:
        check_sums(admin.result(task.task_id), rows)
    assert server.log_text().count(f"aggregated task {task.task_id}") == 2


# --------------------------------------------------------------------------- worker pools


def run_task(
    server: ServerProcess, key: Key, rows: npt.NDArray[np.float64], packing: Packing
) -> list[int | float]:
    task, creds = server.new_task(key, len(rows), packing=packing)
    upload_all(server, task, creds, rows)
    with server.admin() as admin:
        admin.close(task.task_id)
        contribute(server, task, key, [1, 2, 4])
        result = admin.result(task.task_id)
    check_sums(result, rows, packing.frac_bits)
    return result.sum


def worker_processes(pid: int) -> int:
    """Count the multiprocessing workers a process has started (Linux /proc; -1 elsewhere)."""
    proc = Path("/proc")
    if not (proc / "self" / "stat").exists():
        return -1
    count = 0
    for entry in proc.iterdir():
        try:
            # Field 4 of /proc/<pid>/stat is the parent pid (after the parenthesised name).
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pid and b"spawn_main" in cmdline:
            count += 1
    return count


@pytest.fixture(scope="module")
def small_key() -> Key:
    """A tiny (insecure) key: reports of many ciphertexts stay cheap to make and decrypt."""
    return threshold.deal(512, n=5, t=3, insecure=True)


def test_one_and_two_workers_give_the_same_result(
    tmp_path: Path, small_key: Key, backend: str
) -> None:
    """Enough ciphertexts (4 reports x 1024) that the two-worker server uses its processes."""
    clients = 4

    def wide(length: int) -> Packing:
        # Wide slots (60 fractional bits) keep the number of values per ciphertext small.
        return Packing.for_key(
            small_key[0].public_key,
            length=length,
            min_value=-1.0,
            max_value=1.0,
            max_additions=clients,
            frac_bits=60,
        )

    packing = wide(1024 * wide(1).slots)  # 1024 ciphertexts per report
    assert clients * packing.ciphertexts >= MIN_PARALLEL_PRODUCT
    rows = vectors(clients, packing.length, seed=8)
    results = []
    for workers in ("1", "2"):
        (tmp_path / workers).mkdir()
        with server_database(backend) as url:
            server = start_server(tmp_path / workers, "--workers", workers, database_url=url)
            try:
                results.append(run_task(server, small_key, rows, packing))
                # workers=1 runs inline; workers=2 started its two processes for this task.
                found = worker_processes(server.proc.pid) if server.proc is not None else -1
                assert found in (-1, 0 if workers == "1" else 2)
            finally:
                server.stop()
        server.check_log_has_no_secrets(small_key)
        assert f"({workers} worker(s))" in server.log_text()
        assert "Application shutdown complete" in server.log_text()  # the pool stopped cleanly
    assert results[0] == results[1]


@pytest.mark.slow
def test_reference_size_at_2048_bits(tmp_path: Path) -> None:
    """10^5 floats per client packed under a real 2048-bit key (1,177 ciphertexts per report)."""
    key = threshold.deal(2048, n=5, t=3)
    clients, length = 3, 100_000
    packing = layout(key, length, 100)
    assert packing.ciphertexts == 1177
    rows = vectors(clients, length, seed=9)
    server = start_server(tmp_path, "--max-body-bytes", str(8 << 20), insecure_keys=False)
    try:
        task, creds = server.new_task(key, clients, packing=packing, max_clients=clients)
        for cred, row in zip(creds, rows, strict=True):
            with server.client(task.task_id, cred.token) as client:
                client.submit(row)
        with server.admin() as admin:
            admin.close(task.task_id)
            for index in (1, 3, 5):
                with server.holder(task, key[1][index - 1]) as holder:
                    holder.contribute(workers=None)
            check_sums(admin.result(task.task_id), rows)
    finally:
        server.stop()
    server.check_log_has_no_secrets(key)


def test_cli_task_create_packed(server: ServerProcess, tmp_path: Path) -> None:
    """`smpcloud task create --packed`, then submit and decrypt through the CLI commands."""
    from click.testing import CliRunner

    from smpcloud.cli import main
    from smpcloud.keyfiles import write_public_json, write_secret_json

    public, shares = threshold.deal(2048, n=3, t=2)  # the CLI refuses insecure keys
    write_public_json(tmp_path / "public_key.json", threshold.public_key_to_json(public))
    signing = {share.index: SigningKey.generate() for share in shares}
    for share in shares:
        write_secret_json(
            tmp_path / f"key_share_{share.index}.json", threshold.key_share_to_json(share)
        )
        write_secret_json(
            tmp_path / f"signing_key_{share.index}.json", signing[share.index].to_json()
        )
    roster = Roster(2, {i: k.verify_key for i, k in signing.items()})
    write_public_json(tmp_path / "holders.json", roster.to_json())
    env = {
        "SMPCLOUD_ADMIN_TOKEN": server.admin_token,
        "SMPCLOUD_SERVER": server.base_url,
        "SMPCLOUD_HOLDERS": str(tmp_path / "holders.json"),
    }
    runner = CliRunner(env=env)

    def smp(*args: str) -> str:
        out = runner.invoke(main, list(args), catch_exceptions=False)
        assert out.exit_code == 0, out.output
        return out.output

    task_dir = tmp_path / "task"
    create = ["task", "create", "--public-key", str(tmp_path / "public_key.json"), "--name", "v"]
    create += ["--holders", str(tmp_path / "holders.json")]
    smp(
        *create,
        "--clients",
        "3",
        "--min-clients",
        "2",
        "--length",
        "200",
        "--fixed",
        "16",
        "--range",
        "-1",
        "1",
        "--packed",
        # 200 proven values would take ~0.9 MB with their proofs, beyond the test servers'
        # 256 KiB body limit: this test is about packing through the CLI.
        "--validity",
        "none",
        "--out",
        str(task_dir),
    )
    task_id = json.loads((task_dir / "task.json").read_text())["task_id"]
    server.secrets_handed_out.extend(
        (task_dir / name).read_text().strip()  # plain-text token files (issue 13)
        for name in [f"client_{j}.token" for j in (1, 2, 3)]
        + [f"holder_{i}.token" for i in (1, 2, 3)]
    )
    with server.admin() as admin:
        info = admin.info(task_id)
        assert info.packing is not None and info.max_clients == 3
        assert (info.length, info.ciphertexts) == (200, 2)  # 107 values per ciphertext
    rows = vectors(2, 200, seed=10)
    env["SMPCLOUD_TASK"] = task_id
    for i in (1, 3):
        smp(
            "certify",
            "--token-file",
            str(task_dir / f"holder_{i}.token"),
            "--key-share",
            str(tmp_path / f"key_share_{i}.json"),
            "--signing-key",
            str(tmp_path / f"signing_key_{i}.json"),
        )
    for j, row in enumerate(rows, start=1):
        smp("submit", "--token-file", str(task_dir / f"client_{j}.token"), "--", *map(str, row))
    smp("task", "close")
    for i in (1, 3):
        smp(
            "decrypt",
            "--token-file",
            str(task_dir / f"holder_{i}.token"),
            "--key-share",
            str(tmp_path / f"key_share_{i}.json"),
        )
    data = json.loads(smp("result", "--json"))
    assert data["count"] == 2
    assert np.max(np.abs(np.asarray(data["sum"]) - rows.sum(axis=0))) <= 2 * 2.0**-17 + 1e-9

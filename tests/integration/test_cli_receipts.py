"""``smpcloud submit`` writes receipts, ``smpcloud decrypt`` checks the aggregate first, and
``smpcloud receipt verify`` checks a receipt — as subprocesses against a real server."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from service_harness import ServerProcess, start_server

from smpcloud.client import KeyHolder
from smpcloud.crypto import threshold
from smpcloud.crypto.signatures import Roster, SigningKey
from smpcloud.keyfiles import (
    load_key_share,
    load_roster,
    load_signing_key,
    write_public_json,
    write_secret_json,
    write_secret_text,
)

SMPCLOUD = [sys.executable, "-m", "smpcloud"]


@pytest.fixture
def deployment(
    tmp_path: Path,
) -> Iterator[tuple[ServerProcess, Path, threshold.ThresholdPublicKey]]:
    """A server, and a 2-of-3 key with its holders' shares, signing keys and roster on disk."""
    public, shares = threshold.deal(2048, n=3, t=2)
    signers = [SigningKey.generate() for _ in shares]
    keys = tmp_path / "keys"
    keys.mkdir()
    for share, signer in zip(shares, signers, strict=True):
        write_secret_json(
            keys / f"key_share_{share.index}.json", threshold.key_share_to_json(share)
        )
        write_secret_json(keys / f"signing_key_{share.index}.json", signer.to_json())
    roster = Roster(2, {i + 1: s.verify_key for i, s in enumerate(signers)})
    write_public_json(keys / "holders.json", roster.to_json())
    (tmp_path / "srv").mkdir()
    server = start_server(tmp_path / "srv")
    try:
        yield server, keys, public
    finally:
        server.stop()
    server.check_log_has_no_secrets()


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SMPCLOUD, *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


def new_task(server: ServerProcess, public: threshold.ThresholdPublicKey, where: Path) -> str:
    """A task certified by holders 1 and 2 (its clients pin keys/holders.json)."""
    keys = where.parent / "keys"
    with server.admin() as admin:
        task = admin.create_task(
            public, name="cli receipts", min_clients=2, roster=load_roster(keys / "holders.json")
        )
        creds = admin.register_clients(task.task_id, 3)
    for i in (1, 2):
        share = load_key_share(keys / f"key_share_{i}.json")
        with KeyHolder(server.base_url, task.task_id, task.holder_tokens[i - 1], share) as holder:
            holder.certify(load_signing_key(keys / f"signing_key_{i}.json"))
    server.secrets_handed_out.extend([*task.holder_tokens, *(c.token for c in creds)])
    where.mkdir()
    for i, cred in enumerate(creds, start=1):
        write_secret_text(where / f"client_{i}.token", cred.token)
    for i, token in enumerate(task.holder_tokens, start=1):
        write_secret_text(where / f"holder_{i}.token", token)
    return task.task_id


def test_submit_decrypt_and_receipt_verify(deployment, tmp_path: Path) -> None:
    server, keys, public = deployment
    task_dir = tmp_path / "task"
    task_id = new_task(server, public, task_dir)
    env = {
        **os.environ,
        "SMPCLOUD_SERVER": server.base_url,
        "SMPCLOUD_TASK": task_id,
        "SMPCLOUD_HOLDERS": str(keys / "holders.json"),
    }

    for i in (1, 2):
        out = run(env, "submit", "--token-file", str(task_dir / f"client_{i}.token"), str(10 * i))
        assert out.returncode == 0, out.stderr
        receipt = task_dir / f"client_{i}.receipt.json"
        assert f"written to {receipt}" in out.stdout
        assert stat.S_IMODE(receipt.stat().st_mode) == 0o644
    custom = tmp_path / "mine.json"
    out = run(
        env,
        "submit",
        "--token-file",
        str(task_dir / "client_3.token"),
        "--receipt",
        str(custom),
        "7",
    )
    assert out.returncode == 0 and custom.exists(), out.stderr
    # Never overwritten: an explicit --receipt that exists is refused before anything is sent.
    out = run(
        env,
        "submit",
        "--token-file",
        str(task_dir / "client_1.token"),
        "--receipt",
        str(custom),
        "9",
    )
    assert out.returncode == 2 and "exists already" in out.stderr, out.stderr
    # A second submission is the server's to refuse; the first receipt stays as it was.
    first = (task_dir / "client_1.receipt.json").read_text()
    out = run(env, "submit", "--token-file", str(task_dir / "client_1.token"), "99")
    assert out.returncode == 1 and "already" in out.stderr, out.stderr
    assert (task_dir / "client_1.receipt.json").read_text() == first

    verify = ["receipt", "verify", "--token-file", str(task_dir / "client_1.token")]
    early = run(env, *verify, "--receipt", str(task_dir / "client_1.receipt.json"))
    assert early.returncode == 1 and "FAILED log: no published log" in early.stderr, early.stderr

    with server.admin() as admin:
        admin.close(task_id)
    for i in (1, 3):
        out = run(
            env,
            "decrypt",
            "--token-file",
            str(task_dir / f"holder_{i}.token"),
            "--key-share",
            str(keys / f"key_share_{i}.json"),
            "--signing-key",
            str(keys / f"signing_key_{i}.json"),
        )
        assert out.returncode == 0, out.stderr
        assert "checked the aggregate: product of 3 logged reports, root " in out.stdout
        assert "count 3 >= 2" in out.stdout and "with its attestation" in out.stdout

    out = run(
        env,
        *verify,
        "--receipt",
        str(task_dir / "client_1.receipt.json"),
        "--holders",
        str(keys / "holders.json"),
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert [line.split(":")[0] for line in lines[:5]] == [
        "ok  receipt",
        "ok  log",
        "ok  inclusion",
        "ok  key",
        "ok  attestations",
    ]
    assert "key holders 1, 2 certified" in lines[3]
    assert "key holders 1, 3" in lines[4]


def test_a_dropped_report_and_a_substituted_aggregate(deployment, tmp_path: Path) -> None:
    server, keys, public = deployment
    task_dir = tmp_path / "task"
    task_id = new_task(server, public, task_dir)
    env = {
        **os.environ,
        "SMPCLOUD_SERVER": server.base_url,
        "SMPCLOUD_TASK": task_id,
        "SMPCLOUD_HOLDERS": str(keys / "holders.json"),
    }
    for i in (1, 2, 3):
        out = run(env, "submit", "--token-file", str(task_dir / f"client_{i}.token"), str(i))
        assert out.returncode == 0, out.stderr
    conn = sqlite3.connect(server.db_path, timeout=30)
    try:  # the cheating server drops client 2's report before close
        conn.execute(
            "DELETE FROM reports WHERE id = "
            "(SELECT id FROM reports ORDER BY id DESC LIMIT 1 OFFSET 1)"
        )
        conn.commit()
    finally:
        conn.close()
    with server.admin() as admin:
        admin.close(task_id)

    def verify(i: int) -> subprocess.CompletedProcess[str]:
        token = str(task_dir / f"client_{i}.token")
        receipt = str(task_dir / f"client_{i}.receipt.json")
        return run(env, "receipt", "verify", "--token-file", token, "--receipt", receipt)

    dropped = verify(2)
    assert dropped.returncode == 1
    assert "FAILED inclusion: your report" in dropped.stderr
    assert "not in the published log" in dropped.stderr and "Traceback" not in dropped.stderr
    for i in (1, 3):
        assert verify(i).returncode == 0

    conn = sqlite3.connect(server.db_path, timeout=30)
    try:
        conn.execute("UPDATE aggregates SET count = count + 1")
        conn.commit()
    finally:
        conn.close()
    out = run(
        env,
        "decrypt",
        "--token-file",
        str(task_dir / "holder_1.token"),
        "--key-share",
        str(keys / "key_share_1.json"),
    )
    assert out.returncode == 1
    assert "AggregateVerificationError: refusing to decrypt" in out.stderr
    assert "Traceback" not in out.stderr

"""Finding 1 (key substitution), reproduced against a real server that cheats.

The "cheating server" is a real ``python -m smpcloud.service`` process whose SQLite file the
test rewrites while it is stopped (then restarts it): another threshold key in
``paillier_tasks.public_key_json`` (a 1-of-1 key it holds, or a 3-of-5 key it dealt itself),
a lowered min_clients, a wider range, forged or missing certificates, a roster of its own. A
client that pins the key holders' roster (or its fingerprint) must refuse each one before it
encrypts anything, and no report may reach the server. Without pinning
(``insecure_skip_certification``) the same client encrypts under the substituted key: that is
the finding.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from service_harness import Key, ServerProcess, start_server

from smpcloud.client import TaskCreated, TaskEncoding
from smpcloud.crypto import threshold
from smpcloud.crypto.signatures import Roster, SigningKey
from smpcloud.errors import KeyMismatchError
from smpcloud.keyfiles import write_public_json
from smpcloud.protocol.certificates import CERTIFICATE_DOMAIN, certificate_fields
from smpcloud.protocol.problems import UncertifiedTaskError
from smpcloud.protocol.schemas import TaskInfoOut

ENCODING = TaskEncoding.integer(0, 100)


@dataclass
class Holders:
    """The key holders' signing keys and the roster clients pin."""

    signing: dict[int, SigningKey]
    roster: Roster


@pytest.fixture(scope="module")
def holders(key: Key) -> Holders:
    public = key[0]
    signing = {i: SigningKey.generate() for i in range(1, public.holders + 1)}
    return Holders(signing, Roster(public.threshold, {i: k.verify_key for i, k in signing.items()}))


def certify(server: ServerProcess, key: Key, holders: Holders, task: TaskCreated, who) -> None:
    for index in who:
        with server.holder(task, key[1][index - 1]) as holder:
            holder.certify(holders.signing[index])


def reports(server: ServerProcess, task_id: str) -> int:
    rows = server.db_query("SELECT count(*) FROM reports WHERE task_id = ?", task_id)
    return int(rows[0][0])  # type: ignore[call-overload]


def write_db(server: ServerProcess, sql: str, *args: object) -> None:
    with sqlite3.connect(server.db_path) as conn:
        conn.execute(sql, args)


# The attacks: a name, what the cheating server does to its database for that task.
ATTACKS = (
    "key-1-of-1",
    "key-3-of-5-dealt-by-server",
    "threshold-lowered",
    "min-clients-lowered",
    "range-widened",
    "length-changed",
    "certificates-forged",
    "certificates-deleted",
    "roster-and-certificates-foreign",
    "too-few-certificates",
)


@dataclass
class Cheated:
    server: ServerProcess
    tasks: dict[str, tuple[TaskCreated, list]]
    holders: Holders


@pytest.fixture(scope="module")
def cheated(tmp_path_factory: pytest.TempPathFactory, key: Key, holders: Holders) -> Iterator:
    """One task per attack, each created with the roster and certified by t holders (except
    the last, certified by t - 1), then the server is stopped, its database tampered with per
    attack, and started again (its caches are per process)."""
    server = start_server(tmp_path_factory.mktemp("cheating"))
    try:
        tasks = {}
        for attack in ATTACKS:
            task, creds = server.new_task(
                key, 2, roster=holders.roster, encoding=ENCODING, min_clients=5
            )
            who = (1, 2) if attack == "too-few-certificates" else (1, 3, 5)
            certify(server, key, holders, task, who)
            tasks[attack] = (task, creds)
        server.stop()
        one_of_one = threshold.deal(1024, n=1, t=1, insecure=True)[0]
        own_3_of_5 = threshold.deal(1024, n=5, t=3, insecure=True)[0]
        own_2_of_5 = threshold.deal(1024, n=5, t=2, insecure=True)[0]
        own_signers = {i: SigningKey.generate() for i in range(1, 6)}
        own_roster = Roster(3, {i: k.verify_key for i, k in own_signers.items()})
        keys = {
            "key-1-of-1": one_of_one,
            "key-3-of-5-dealt-by-server": own_3_of_5,
            "threshold-lowered": own_2_of_5,
        }
        for attack, public in keys.items():
            write_db(
                server,
                "UPDATE paillier_tasks SET public_key_json = ? WHERE task_id = ?",
                json.dumps(threshold.public_key_to_json(public)),
                tasks[attack][0].task_id,
            )
        write_db(
            server,
            "UPDATE tasks SET min_clients = 2 WHERE id = ?",
            tasks["min-clients-lowered"][0].task_id,
        )
        write_db(
            server,
            "UPDATE tasks SET encoding_json = ? WHERE id = ?",
            TaskEncoding.integer(0, 10**9).model_dump_json(),
            tasks["range-widened"][0].task_id,
        )
        write_db(
            server, "UPDATE tasks SET length = 2 WHERE id = ?", tasks["length-changed"][0].task_id
        )
        forged = SigningKey.generate().sign_statement("smpcloud/task-certificate/v1", {"x": 1})
        write_db(
            server,
            "UPDATE task_certificates SET signature = ? WHERE task_id = ?",
            forged,
            tasks["certificates-forged"][0].task_id,
        )
        write_db(
            server,
            "DELETE FROM task_certificates WHERE task_id = ?",
            tasks["certificates-deleted"][0].task_id,
        )
        # Its own roster, and its own holders' signatures over the task (as served).
        foreign = tasks["roster-and-certificates-foreign"][0].task_id
        write_db(
            server,
            "UPDATE task_rosters SET roster_json = ?, digest = ? WHERE task_id = ?",
            json.dumps(own_roster.to_json()),
            own_roster.digest(),
            foreign,
        )
        server.start()
        served = httpx.get(
            f"{server.base_url}/v1/tasks/{foreign}",
            headers={"Authorization": f"Bearer {server.admin_token}"},
            timeout=30.0,
        )
        fields = certificate_fields(TaskInfoOut.model_validate(served.json()))
        server.stop()
        for index in (1, 3, 5):
            write_db(
                server,
                "UPDATE task_certificates SET signature = ? WHERE task_id = ? AND holder_index = ?",
                own_signers[index].sign_statement(CERTIFICATE_DOMAIN, fields),
                foreign,
                index,
            )
        server.start()
        yield Cheated(server, tasks, holders)
    finally:
        server.stop()


@pytest.mark.parametrize("attack", ATTACKS)
def test_a_pinned_client_refuses_before_encrypting(cheated: Cheated, attack: str) -> None:
    task, creds = cheated.tasks[attack]
    with cheated.server.client(task.task_id, creds[0].token, holders=cheated.holders.roster) as c:
        with pytest.raises((UncertifiedTaskError, KeyMismatchError)) as caught:
            c.prepare(7)  # info() is verified before anything is encrypted
        with pytest.raises(type(caught.value)):
            c.submit(7)
    assert reports(cheated.server, task.task_id) == 0
    if attack == "too-few-certificates":
        assert "2 valid signature(s)" in str(caught.value)
        assert "3 needed" in str(caught.value)
        assert "smpcloud certify" in str(caught.value)


@pytest.mark.parametrize("attack", ["key-1-of-1", "key-3-of-5-dealt-by-server"])
def test_without_pinning_the_substituted_key_is_used(
    cheated: Cheated, key: Key, attack: str
) -> None:
    """The finding itself: a client that skips certification encrypts under the server's key."""
    task, creds = cheated.tasks[attack]
    with cheated.server.client(task.task_id, creds[1].token) as client:
        client.submit(7)
        served = client.info().public_key
    assert reports(cheated.server, task.task_id) == 1
    assert served != key[0]  # encrypted under the key the server substituted


def test_the_fingerprint_pins_the_served_roster(cheated: Cheated, key: Key) -> None:
    task, creds = cheated.tasks["roster-and-certificates-foreign"]
    from smpcloud.client import Client

    with (
        Client(
            cheated.server.base_url,
            task.task_id,
            creds[0].token,
            holders_fingerprint=cheated.holders.roster.digest(),
            allow_insecure_keys=True,
        ) as client,
        pytest.raises(UncertifiedTaskError, match="digest"),
    ):
        client.submit(7)
    assert reports(cheated.server, task.task_id) == 0


def test_a_certified_task_takes_pinned_reports(server: ServerProcess, key: Key, holders) -> None:
    from smpcloud.client import Client

    task, creds = server.new_task(key, 2, roster=holders.roster, encoding=ENCODING)
    certify(server, key, holders, task, (2, 4, 5))
    with server.client(task.task_id, creds[0].token, holders=holders.roster) as client:
        assert client.info().certified_by == (2, 4, 5)
        client.submit(40)
    with Client(
        server.base_url,
        task.task_id,
        creds[1].token,
        holders_fingerprint=holders.roster.digest().upper(),
        allow_insecure_keys=True,
    ) as client:
        client.submit(2)
    with server.admin() as admin:
        assert admin.status(task.task_id).certified_by == [2, 4, 5]
        admin.close(task.task_id)
    for share in key[1][:3]:
        with server.holder(task, share) as holder:
            holder.contribute()
    with server.admin() as admin:
        assert admin.result(task.task_id).sum == [42]


def test_a_holder_refuses_to_certify_another_key(server: ServerProcess, key: Key, holders) -> None:
    other = threshold.deal(1024, n=5, t=3, insecure=True)
    task, _creds = server.new_task(other, 0, roster=holders.roster)
    with server.holder(task, key[1][0]) as holder, pytest.raises(KeyMismatchError):
        holder.certify(holders.signing[1])
    with server.admin() as admin:
        assert admin.status(task.task_id).certified_by == []


def test_a_client_must_pin(server: ServerProcess) -> None:
    from smpcloud.client import Client
    from smpcloud.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match=r"holders\.json"):
        Client(server.base_url, "t", "token")
    with pytest.raises(InvalidInputError, match="64 hex"):
        Client(server.base_url, "t", "token", holders_fingerprint="abc")


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "smpcloud", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_cli_submit_refuses_an_uncertified_task(cheated: Cheated, tmp_path: Path) -> None:
    task, creds = cheated.tasks["certificates-forged"]
    holders_file = write_public_json(tmp_path / "holders.json", cheated.holders.roster.to_json())
    token_file = tmp_path / "client.token"
    token_file.write_text(creds[0].token + "\n")
    common = ["--server", cheated.server.base_url, "--task", task.task_id]
    done = run_cli("submit", *common, "--token-file", str(token_file), "7")
    assert done.returncode == 2
    assert "--holders" in done.stderr and "Traceback" not in done.stderr
    done = run_cli(
        "submit", *common, "--token-file", str(token_file), "--holders", str(holders_file), "7"
    )
    assert done.returncode == 1, done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(errors) == 1, done.stderr
    assert "UncertifiedTaskError" in errors[0] and "smpcloud certify" in errors[0]
    assert "Traceback" not in done.stderr
    done = run_cli(
        "submit",
        *common,
        "--token-file",
        str(token_file),
        "7",
        env={"SMPCLOUD_HOLDERS_FINGERPRINT": "f" * 64},
    )
    assert done.returncode == 1
    assert "digest" in done.stderr
    assert reports(cheated.server, task.task_id) == 0


def test_a_holder_refuses_a_task_below_its_minimum_of_clients(
    server: ServerProcess, key: Key, holders: Holders, tmp_path: Path
) -> None:
    """The server chooses min_clients; a holder with a policy refuses to vouch for too few."""
    from smpcloud.errors import InvalidInputError
    from smpcloud.keyfiles import write_secret_json, write_secret_text

    task, _creds = server.new_task(key, 0, roster=holders.roster, min_clients=2)
    with server.holder(task, key[1][0]) as holder, pytest.raises(InvalidInputError, match="10"):
        holder.certify(holders.signing[1], min_clients_at_least=10)
    # The CLI refuses keys below 2048 bits: a real one for its half of the test.
    public, shares = threshold.deal(2048, n=3, t=2)
    signing = SigningKey.generate()
    roster = Roster(
        2,
        {
            1: SigningKey.generate().verify_key,
            2: signing.verify_key,
            3: SigningKey.generate().verify_key,
        },
    )
    task, _creds = server.new_task((public, shares), 0, roster=roster, min_clients=2)
    share_file = write_secret_json(
        tmp_path / "key_share_2.json", threshold.key_share_to_json(shares[1])
    )
    signing_file = write_secret_json(tmp_path / "signing_key_2.json", signing.to_json())
    token_file = write_secret_text(tmp_path / "holder_2.token", task.holder_tokens[1])
    common = ["--server", server.base_url, "--task", task.task_id, "--token-file", str(token_file)]
    keys = ["--key-share", str(share_file), "--signing-key", str(signing_file)]
    done = run_cli("certify", *common, *keys, "--min-clients-at-least", "3")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "as few as 2 client(s)" in done.stderr
    with server.admin() as admin:
        assert admin.status(task.task_id).certified_by == []
    done = run_cli("certify", *common, *keys, "--min-clients-at-least", "2")
    assert done.returncode == 0, done.stderr
    assert "2 to" in done.stdout
    with server.admin() as admin:
        assert admin.status(task.task_id).certified_by == [2]

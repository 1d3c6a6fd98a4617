"""Issue 14, finding 2: key holders decrypt only an aggregate they checked against the log.

Each test runs a real server subprocess; to play the cheating server, it rewrites the server's
SQLite file (the aggregate, its count, the report log, the reports) after or before close, as
a server that controls its own database would — re-signing the log with the server's own key
where a careful cheater would. Every key holder must then refuse (nothing is uploaded), or the
affected client's receipt check must fail, naming what failed.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from service_harness import Key, ServerProcess

from smpcloud.client import (
    AggregateVerificationError,
    ClientCredentials,
    KeyHolder,
    Receipt,
    ReceiptVerificationError,
    TaskCreated,
    verify_receipt,
)
from smpcloud.crypto import merkle
from smpcloud.crypto.signatures import Roster, SigningKey
from smpcloud.protocol.receipts import LOG_ROOT_DOMAIN, log_root_fields, report_leaf
from smpcloud.service.schemes.paillier.log import wire_texts

pytestmark = pytest.mark.backends("sqlite", "postgres")

Signers = list[SigningKey]


@pytest.fixture(scope="module")
def signers(key: Key) -> Signers:
    """One signing key per key holder (as keygen makes them)."""
    return [SigningKey.generate() for _ in key[1]]


@pytest.fixture(scope="module")
def roster(key: Key, signers: Signers) -> Roster:
    public, _shares = key
    return Roster(public.threshold, {i + 1: s.verify_key for i, s in enumerate(signers)})


def tamper(server: ServerProcess, sql: str, *args: object) -> None:
    """Write the server's database directly, as a server that controls it would."""
    server.db_execute(sql, *args)


def width(key: Key) -> int:
    return (key[0].public_key.n_squared.bit_length() + 7) // 8


def resign_log(server: ServerProcess, key: Key, task_id: str) -> None:
    """Rebuild the log from the reports now in the database, signed with the server's key."""
    seed = server.db_query("SELECT secret FROM server_keys WHERE name = 'receipts'")[0][0]
    signing = SigningKey.from_seed(bytes(seed))  # type: ignore[arg-type]
    rows = server.db_query(
        "SELECT client_id, ciphertexts FROM reports WHERE task_id = ? ORDER BY id", task_id
    )
    leaves = [
        report_leaf(task_id, int(cid), wire_texts(bytes(blob), width(key)))  # type: ignore[arg-type]
        for cid, blob in rows
    ]
    root = merkle.root(leaves).hex()
    signature = signing.sign_statement(LOG_ROOT_DOMAIN, log_root_fields(task_id, len(leaves), root))
    tamper(
        server,
        "UPDATE report_logs SET count = ?, root = ?, leaves = ?, signature = ? WHERE task_id = ?",
        len(leaves),
        bytes.fromhex(root),
        b"".join(leaves),
        signature,
        task_id,
    )


def submit_all(
    server: ServerProcess, key: Key, signers: Signers, clients: int = 4, min_clients: int = 3
) -> tuple[TaskCreated, list[ClientCredentials], list[Receipt]]:
    """A task certified by t holders (its receipt key with it); pinned clients submit."""
    public, _shares = key
    pinned = Roster(public.threshold, {i + 1: s.verify_key for i, s in enumerate(signers)})
    task, creds = server.new_task(key, clients, min_clients=min_clients, roster=pinned)
    for index in range(1, public.threshold + 1):
        with holder(server, task, key, index, signers) as h:
            h.certify()
    receipts = []
    for i, cred in enumerate(creds):
        with server.client(task.task_id, cred.token, holders=pinned) as client:
            receipt = client.submit(10 + i)
        assert receipt is not None
        receipts.append(receipt)
    return task, creds, receipts


def close(server: ServerProcess, task: TaskCreated) -> None:
    with server.admin() as admin:
        admin.close(task.task_id)


def holder(
    server: ServerProcess, task: TaskCreated, key: Key, index: int, signers: Signers
) -> KeyHolder:
    share = key[1][index - 1]
    return KeyHolder(
        server.base_url,
        task.task_id,
        task.holder_tokens[index - 1],
        share,
        timeout=60.0,
        signing_key=signers[index - 1],
    )


def partials_stored(server: ServerProcess, task: TaskCreated) -> int:
    rows = server.db_query(
        "SELECT count(*) FROM partial_decryptions WHERE task_id = ?", task.task_id
    )
    return int(rows[0][0])  # type: ignore[call-overload]


def every_holder_refuses(
    server: ServerProcess, task: TaskCreated, key: Key, signers: Signers, match: str
) -> None:
    for index in range(1, key[0].holders + 1):
        with (
            holder(server, task, key, index, signers) as h,
            pytest.raises(AggregateVerificationError, match=match),
        ):
            h.contribute()
    assert partials_stored(server, task) == 0


@pytest.fixture
def closed(
    server: ServerProcess, key: Key, signers: Signers
) -> Iterator[tuple[TaskCreated, list[ClientCredentials], list[Receipt]]]:
    task, creds, receipts = submit_all(server, key, signers)
    close(server, task)
    yield task, creds, receipts


# ------------------------------------------------------------------------------ honest path


def test_honest_path_attested_result_and_every_receipt_verifies(
    server: ServerProcess, key: Key, signers: Signers, roster: Roster
) -> None:
    task, creds, receipts = submit_all(server, key, signers)
    for cred, receipt in zip(creds, receipts, strict=True):
        assert receipt.task_id == task.task_id and receipt.client_id == cred.client_id
        receipt.verify_signature()
    close(server, task)
    t = key[0].threshold
    for index in range(1, t + 1):
        with holder(server, task, key, index, signers) as h:
            checked = h.contribute()
        assert checked is not None
        assert checked.count == 4 and checked.min_clients == 3
        assert "product of 4 logged reports" in checked.describe()
    with server.admin() as admin:
        result = admin.result(task.task_id)
    assert result.sum == [10 + 11 + 12 + 13]
    rows = server.db_query(
        "SELECT holder_index FROM aggregate_attestations WHERE task_id = ? ORDER BY holder_index",
        task.task_id,
    )
    assert [r[0] for r in rows] == list(range(1, t + 1))
    for cred, receipt in zip(creds, receipts, strict=True):
        check = verify_receipt(server.base_url, cred.token, receipt, holders=roster)
        assert check.attested_by == tuple(range(1, t + 1))
        assert check.count == 4
        assert [line.split(":")[0] for line in check.lines] == [
            "receipt",
            "log",
            "inclusion",
            "key",
            "attestations",
        ]


def test_receipt_verify_before_decryption_skips_attestations(
    server: ServerProcess, key: Key, closed, roster: Roster
) -> None:
    _task, creds, receipts = closed
    check = verify_receipt(server.base_url, creds[0].token, receipts[0], holders=roster)
    assert check.attested_by == ()
    assert "not checked yet" in check.lines[-1]


def test_attestations_from_unpinned_holders_do_not_count(
    server: ServerProcess, key: Key, closed, roster: Roster
) -> None:
    task, creds, receipts = closed
    strangers = [SigningKey.generate() for _ in key[1]]
    for index in range(1, key[0].threshold + 1):
        with holder(server, task, key, index, strangers) as h:
            h.contribute()
    with pytest.raises(ReceiptVerificationError, match="attestations") as caught:
        verify_receipt(server.base_url, creds[0].token, receipts[0], holders=roster)
    assert caught.value.check == "attestations"


# ------------------------------------------------------------------------------ cheating server


def test_aggregate_replaced_by_one_clients_ciphertext(
    server: ServerProcess, key: Key, signers: Signers, closed
) -> None:
    task, _creds, _receipts = closed
    tamper(
        server,
        "UPDATE aggregates SET ciphertexts = (SELECT ciphertexts FROM reports WHERE task_id = ? "
        "ORDER BY id LIMIT 1) WHERE task_id = ?",
        task.task_id,
        task.task_id,
    )
    every_holder_refuses(
        server, task, key, signers, "product of the 4 logged reports.*does not match"
    )


@pytest.mark.parametrize("delta", [-1, +1], ids=["lowered", "raised"])
def test_count_lowered_or_raised(
    server: ServerProcess, key: Key, signers: Signers, closed, delta: int
) -> None:
    task, _creds, _receipts = closed
    tamper(server, "UPDATE aggregates SET count = count + ? WHERE task_id = ?", delta, task.task_id)
    every_holder_refuses(server, task, key, signers, f"count is {4 + delta}.*holds 4 reports")


def test_report_dropped_from_the_log_but_kept_in_the_aggregate(
    server: ServerProcess, key: Key, signers: Signers, closed
) -> None:
    task, creds, _receipts = closed
    tamper(
        server,
        "DELETE FROM reports WHERE task_id = ? AND client_id = ?",
        task.task_id,
        creds[1].client_id,
    )
    resign_log(server, key, task.task_id)  # a consistent, signed log of 3 reports
    every_holder_refuses(server, task, key, signers, "count is 4.*holds 3 reports")
    # A careful cheater also lowers the count: the product gives it away.
    tamper(server, "UPDATE aggregates SET count = 3 WHERE task_id = ?", task.task_id)
    every_holder_refuses(server, task, key, signers, "product of the 3 logged reports")


def test_report_dropped_before_close_fails_only_that_clients_receipt(
    server: ServerProcess, key: Key, signers: Signers, roster: Roster
) -> None:
    task, creds, receipts = submit_all(server, key, signers)
    dropped = creds[2]
    tamper(
        server,
        "DELETE FROM reports WHERE task_id = ? AND client_id = ?",
        task.task_id,
        dropped.client_id,
    )
    close(server, task)
    for index in range(1, key[0].threshold + 1):  # a consistent log: the holders accept it
        with holder(server, task, key, index, signers) as h:
            checked = h.contribute()
        assert checked is not None and checked.count == 3
    for cred, receipt in zip(creds, receipts, strict=True):
        if cred is dropped:
            with pytest.raises(ReceiptVerificationError, match="not in the published log") as err:
                verify_receipt(server.base_url, cred.token, receipt, holders=roster)
            assert err.value.check == "inclusion"
        else:
            check = verify_receipt(server.base_url, cred.token, receipt, holders=roster)
            assert check.count == 3 and len(check.attested_by) == key[0].threshold


def test_root_with_a_bad_signature(
    server: ServerProcess, key: Key, signers: Signers, closed
) -> None:
    task, creds, receipts = closed
    count, root = server.db_query(
        "SELECT count, root FROM report_logs WHERE task_id = ?", task.task_id
    )[0]
    forged = SigningKey.generate().sign_statement(
        LOG_ROOT_DOMAIN,
        log_root_fields(task.task_id, int(count), bytes(root).hex()),  # type: ignore[call-overload,arg-type]
    )
    tamper(server, "UPDATE report_logs SET signature = ? WHERE task_id = ?", forged, task.task_id)
    every_holder_refuses(server, task, key, signers, "signature on the published log root")
    with pytest.raises(ReceiptVerificationError, match="signature") as caught:
        verify_receipt(server.base_url, creds[0].token, receipts[0])
    assert caught.value.check == "log"


def test_a_forged_receipt_fails_its_own_check(server: ServerProcess, closed) -> None:
    _task, creds, receipts = closed
    data = receipts[0].to_json() | {"client_id": receipts[0].client_id + 1000}
    with pytest.raises(ReceiptVerificationError) as caught:
        verify_receipt(server.base_url, creds[0].token, Receipt.from_json(data))
    assert caught.value.check == "receipt"


def test_holders_may_skip_the_check_explicitly(
    server: ServerProcess, key: Key, signers: Signers, closed
) -> None:
    """verify_aggregate=False trusts the server: it decrypts even a substituted aggregate."""
    task, _creds, _receipts = closed
    tamper(server, "UPDATE aggregates SET count = count + 1 WHERE task_id = ?", task.task_id)
    with holder(server, task, key, 1, signers) as h:
        assert h.contribute(verify_aggregate=False) is None
    assert partials_stored(server, task) == 1


def test_a_server_that_changes_its_receipt_key_is_caught(
    fresh_server: ServerProcess, key: Key, signers: Signers, roster: Roster
) -> None:
    """The receipt key is part of what the holders certify: a server that switches to a key
    of its own (so that its old receipts prove nothing) loses its certificates."""
    import os

    from smpcloud.protocol.problems import UncertifiedTaskError

    server = fresh_server
    try:
        task, creds, receipts = submit_all(server, key, signers, clients=4)
        server.stop()
        tamper(server, "UPDATE server_keys SET secret = ? WHERE name = 'receipts'", os.urandom(32))
        server.start()
        with (
            server.client(task.task_id, creds[3].token, holders=roster) as late,
            pytest.raises(UncertifiedTaskError),
        ):
            late.prepare(7)  # nothing encrypted under a task whose terms changed
        close(server, task)
        with pytest.raises(ReceiptVerificationError) as caught:
            verify_receipt(server.base_url, creds[0].token, receipts[0], holders=roster)
        assert caught.value.check in ("log", "key")
    finally:
        server.stop()


def test_a_server_that_lowers_the_minimum_and_keeps_one_report_is_refused(
    fresh_server: ServerProcess, key: Key, signers: Signers, roster: Roster
) -> None:
    """After the clients reported (certified min_clients = 3), the server drops every report
    but one, closes with a consistent log and serves min_clients = 1: without the roster the
    holders would decrypt that one report; with it, they refuse."""
    from smpcloud.protocol.problems import UncertifiedTaskError

    server = fresh_server
    try:
        task, creds, _receipts = submit_all(server, key, signers, clients=4, min_clients=3)
        tamper(
            server,
            "DELETE FROM reports WHERE task_id = ? AND client_id != ?",
            task.task_id,
            creds[0].client_id,
        )
        tamper(server, "UPDATE tasks SET min_clients = 1 WHERE id = ?", task.task_id)
        server.stop()  # the task's fields are cached per process
        server.start()
        close(server, task)
        for index in range(1, key[0].holders + 1):
            share = key[1][index - 1]
            with (
                KeyHolder(
                    server.base_url,
                    task.task_id,
                    task.holder_tokens[index - 1],
                    share,
                    timeout=60.0,
                    holders=roster,
                ) as h,
                pytest.raises(UncertifiedTaskError),
            ):
                h.contribute()
        assert partials_stored(server, task) == 0
        # Without the roster the minimum is the server's word: the holder's check passes.
        with holder(server, task, key, 1, signers) as h:
            checked = h.contribute(batch=False)
        assert checked is not None and checked.count == 1
    finally:
        server.stop()

"""The SDK checks the receipt it gets for an upload: for this report, signed by the key named.

A fake server (``httpx.MockTransport``) answers the upload: honestly, with a receipt for other
ciphertexts, for another client, or with a bad signature.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from smpcloud.client import Client, Receipt, ReceiptVerificationError, TaskEncoding
from smpcloud.crypto import threshold
from smpcloud.crypto.signatures import SigningKey
from smpcloud.protocol.receipts import RECEIPT_DOMAIN, receipt_fields, report_leaf

SERVER_KEY = SigningKey.generate()
PUBLIC = threshold.deal(512, n=3, t=2, insecure=True)[0]
INFO = {
    "task_id": "t",
    "name": "t",
    "state": "open",
    "length": 1,
    "encoding": TaskEncoding.integer().model_dump(),
    "public_key": threshold.public_key_to_json(PUBLIC),
    "holders": 3,
    "threshold": 2,
    "min_clients": 2,
    "max_clients": 10,
    "deadline": None,
}


def fake_server(cheat: str) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":  # the task's receipt key is SERVER_KEY
            return httpx.Response(200, json=INFO | {"receipt_key": SERVER_KEY.verify_key.to_text()})
        sent = json.loads(request.content)["ciphertexts"]
        client_id = 8 if cheat == "client" else 7
        texts = sent[::-1] + sent if cheat == "leaf" else sent
        leaf = report_leaf("t", client_id, texts).hex()
        now = datetime.now(UTC).isoformat()
        other = SigningKey.generate()
        named = other if cheat == "key" else SERVER_KEY  # "key": signed by a key of its own
        fields = receipt_fields("t", client_id, leaf, now, named.verify_key.to_text())
        signer = other if cheat in ("signature", "key") else SERVER_KEY
        receipt = fields | {"signature": signer.sign_statement(RECEIPT_DOMAIN, fields)}
        body = {"task_id": "t", "client_id": 7, "received_at": now, "receipt": receipt}
        return httpx.Response(201, json=body)

    return httpx.MockTransport(handler)


def submit(cheat: str) -> Receipt | None:
    with Client(
        "http://fake",
        "t",
        "token",
        allow_insecure_keys=True,
        insecure_skip_certification=True,  # a fake server that cheats on receipts only
        transport=fake_server(cheat),
    ) as client:
        return client.submit(3)


def test_an_honest_receipt_is_returned_and_round_trips_through_its_file() -> None:
    receipt = submit("none")
    assert receipt is not None and receipt.client_id == 7
    assert Receipt.from_json(json.loads(json.dumps(receipt.to_json()))) == receipt
    assert receipt.verify_signature() == SERVER_KEY.verify_key


@pytest.mark.parametrize(
    ("cheat", "message"),
    [
        ("leaf", "other ciphertexts"),
        ("client", "another task or client"),
        ("signature", "does not verify"),
        ("key", "another key than the task's receipt key"),
    ],
)
def test_a_receipt_for_something_else_is_refused(cheat: str, message: str) -> None:
    with pytest.raises(ReceiptVerificationError, match=message) as caught:
        submit(cheat)
    assert caught.value.check == "receipt"


def test_the_cli_never_overwrites_a_receipt(tmp_path: Path) -> None:
    from smpcloud.cli.service import write_receipt

    receipt = submit("none")
    target = tmp_path / "receipt-t.json"
    target.write_text("an earlier receipt")
    line = write_receipt(target, receipt)
    assert "receipt-t-2.json" in line and "not overwritten" in line
    assert target.read_text() == "an earlier receipt"
    assert Receipt.from_json(json.loads((tmp_path / "receipt-t-2.json").read_text())) == receipt
    assert (tmp_path / "receipt-t-2.json").stat().st_mode & 0o777 == 0o644

"""Properties of the receipts' wire contract: the report record and its leaf are canonical.

Two parties that agree on (task, client, ciphertexts) agree on the record's bytes, whatever
order or container they built them in; any change to any field changes the leaf; a stored
fixed-width ciphertext re-encodes to exactly the wire text the client sent.
"""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from smpcloud.crypto import merkle
from smpcloud.crypto.signatures import statement
from smpcloud.crypto.wire import encode_int
from smpcloud.protocol.receipts import (
    REPORT_DOMAIN,
    aggregate_digest,
    report_leaf,
    report_record,
)
from smpcloud.service.schemes.paillier.log import wire_texts

WIDTH = 256  # a 1024-bit key's n^2
task_ids = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
    min_size=1,
    max_size=16,
)
client_ids = st.integers(min_value=1, max_value=2**40)
values = st.lists(st.integers(min_value=1, max_value=2 ** (8 * WIDTH) - 1), min_size=1, max_size=6)


@given(task_ids, client_ids, values)
def test_the_record_is_canonical_json_under_its_domain(
    task: str, client: int, ints: list[int]
) -> None:
    texts = [encode_int(v) for v in ints]
    record = report_record(task, client, texts)
    domain, _, body = record.partition(b"\x00")
    assert domain == REPORT_DOMAIN.encode()
    parsed = json.loads(body)
    assert parsed == {"task_id": task, "client_id": client, "ciphertexts": texts}
    again = json.dumps(parsed, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    assert body == again
    assert report_record(task, client, tuple(texts)) == record  # any sequence, same bytes
    assert report_leaf(task, client, texts) == merkle.leaf_hash(record)


@given(task_ids, client_ids, values, st.data())
def test_any_change_changes_the_leaf(
    task: str, client: int, ints: list[int], data: st.DataObject
) -> None:
    texts = [encode_int(v) for v in ints]
    leaf = report_leaf(task, client, texts)
    other_client = data.draw(client_ids.filter(lambda c: c != client))
    assert report_leaf(task, other_client, texts) != leaf
    other_task = data.draw(task_ids.filter(lambda t: t != task))
    assert report_leaf(other_task, client, texts) != leaf
    index = data.draw(st.integers(0, len(ints) - 1))
    changed = list(ints)
    changed[index] = changed[index] % (2 ** (8 * WIDTH) - 1) + 1
    if changed != ints:
        assert report_leaf(task, client, [encode_int(v) for v in changed]) != leaf
    if len(texts) > 1 and texts != texts[::-1]:
        assert report_leaf(task, client, texts[::-1]) != leaf  # order matters
    assert report_leaf(task, client, texts[:-1]) != leaf or len(texts) == 0


@given(values)
def test_stored_ciphertexts_re_encode_to_the_wire_texts_sent(ints: list[int]) -> None:
    blob = b"".join(v.to_bytes(WIDTH, "big") for v in ints)
    assert wire_texts(blob, WIDTH) == [encode_int(v) for v in ints]


@given(values, values)
def test_the_aggregate_digest_names_the_ciphertexts(a: list[int], b: list[int]) -> None:
    ta, tb = [encode_int(v) for v in a], [encode_int(v) for v in b]
    assert (aggregate_digest(ta) == aggregate_digest(tb)) == (ta == tb)


@given(
    st.text(max_size=12),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.lists(
        st.one_of(
            st.text(alphabet="ABCxyz019-_", max_size=8),
            st.text(max_size=8),
            st.sampled_from(["a,b", "", '"', "\\", "é"]),
        ),
        max_size=5,
    ),
)
def test_the_fast_record_is_exactly_the_statement(task: str, client: int, texts: list[str]) -> None:
    fields = {"task_id": task, "client_id": client, "ciphertexts": texts}
    assert report_record(task, client, texts) == statement(REPORT_DOMAIN, fields)

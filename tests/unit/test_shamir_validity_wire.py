"""The wire and storage forms of validated Shamir reports (:mod:`smpcloud.protocol.sharing`)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from smpcloud.crypto import shamir_validity as sv
from smpcloud.crypto.sealing import OpeningKey
from smpcloud.crypto.wire import b64url
from smpcloud.errors import InvalidInputError, InvalidProofError, ShareError
from smpcloud.protocol.checked_shares import (
    check_validated_task,
    checked_blob,
    decode_check_values,
    decode_share_digests,
    encode_check_values,
    open_validated_share,
    seal_checked_share,
    sealed_share_digest,
    split_checked_blob,
    validity_layout,
)
from smpcloud.protocol.schemas import TaskEncoding
from smpcloud.protocol.sharing import (
    SHAMIR_FIELD,
    task_field,
)

ENCODING = TaskEncoding.fixed(16, -1.0, 1.0)


def test_fields_and_parameters() -> None:
    assert task_field("range") == sv.VALIDITY_FIELD and task_field("none") == SHAMIR_FIELD
    assert check_validated_task(3, 2, ENCODING, 32767) == 1 << 17
    with pytest.raises(InvalidInputError, match="narrow the range"):
        check_validated_task(3, 2, ENCODING, 32768)
    with pytest.raises(InvalidInputError, match="3 servers with t = 2"):
        check_validated_task(4, 3, ENCODING, 10)
    with pytest.raises(InvalidInputError, match="min_value below"):
        check_validated_task(3, 2, TaskEncoding.integer(5, 5), 10)
    layout = validity_layout(10, ENCODING)
    assert (layout.bits, layout.size, layout.checks) == (18, 186, 6)


def test_sealing_digests_and_the_length_check() -> None:
    key = OpeningKey.generate()
    layout = validity_layout(2, ENCODING)
    block = sv.share_report(np.array([0, 7], dtype=np.uint64), layout, servers=3, threshold=2)[0]
    sealed, digest = seal_checked_share(
        key.sealing_key, block, task_id="t", server_index=1, client=4
    )
    assert digest == sealed_share_digest(sealed) and len(digest) == 43
    opened = open_validated_share(key, sealed, task_id="t", server_index=1, client=4, layout=layout)
    assert np.array_equal(opened, block)
    short, _ = seal_checked_share(
        key.sealing_key, block[:, :-1].copy(), task_id="t", server_index=1, client=4
    )
    with pytest.raises(InvalidProofError, match="holds 41 elements") as info:
        open_validated_share(key, short, task_id="t", server_index=1, client=4, layout=layout)
    assert info.value.check == "length"


def test_digest_lists_are_decoded_strictly() -> None:
    good = [b64url(os.urandom(32)) for _ in range(3)]
    assert [len(d) for d in decode_share_digests(good, 3)] == [32, 32, 32]
    for bad in (None, good[:2], [*good[:2], "!"], [*good[:2], b64url(b"short")], "x"):
        with pytest.raises(InvalidProofError) as info:
            decode_share_digests(bad, 3)
        assert info.value.check == "digest"


def test_check_values_and_stored_reports_round_trip() -> None:
    values = np.arange(12, dtype=np.uint64).reshape(2, 6)
    assert np.array_equal(
        decode_check_values(encode_check_values(values), rows=2, width=6, what="x"), values
    )
    assert decode_check_values("", rows=0, width=6, what="x").shape == (0, 6)
    with pytest.raises(InvalidInputError, match="48 bytes; expected 24"):
        decode_check_values(encode_check_values(values), rows=1, width=6, what="x")
    outside = np.full((1, 6), sv.VALIDITY_PRIME, dtype=np.uint64)
    with pytest.raises(InvalidInputError, match="outside GF"):
        decode_check_values(encode_check_values(outside), rows=1, width=6, what="x")
    blob = checked_blob(values[0], values[1].reshape(1, 6))
    checks, shares = split_checked_blob(blob, length=6, checks=6)
    assert np.array_equal(checks, values[0]) and np.array_equal(shares[0], values[1])
    with pytest.raises(ShareError):
        split_checked_blob(blob[:-4], length=6, checks=6)

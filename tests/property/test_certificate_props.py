"""The task statement key holders sign is canonical: same fields, same bytes; any change shows.

:func:`smpcloud.protocol.certificates.certificate_fields` is the one function the key holder,
the server and the client call on the served task info; the bytes signed are
``statement(CERTIFICATE_DOMAIN, fields)``. Properties: the bytes survive the JSON round trip
the info makes over HTTP (what the client rebuilds is what the holder signed); changing any
signed field (key, holders, threshold, length, encoding, range, packing, min/max clients, id,
name) changes them; the deadline, the state and the certificates themselves do not.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from smpcloud.crypto import threshold
from smpcloud.crypto.signatures import statement
from smpcloud.protocol.certificates import CERTIFICATE_DOMAIN, CertificateOut, certificate_fields
from smpcloud.protocol.schemas import TaskEncoding, TaskInfoOut

KEY = threshold.deal(512, n=5, t=3, insecure=True)[0]
OTHER_KEY = threshold.deal(512, n=5, t=3, insecure=True)[0]
PACKING = {
    "kind": "smpcloud-packing",
    "version": 1,
    "length": 4,
    "key_bits": 512,
    "min_value": -1.5,
    "max_value": 2.25,
    "max_additions": 10,
    "frac_bits": 8,
}

encodings = st.one_of(
    st.builds(
        TaskEncoding.integer,
        st.integers(-(2**40), 0),
        st.integers(1, 2**40),
    ),
    st.builds(
        TaskEncoding.fixed,
        st.integers(0, 32),
        st.floats(-1e6, 0, allow_nan=False),
        st.floats(1e-3, 1e6, allow_nan=False),
    ),
)


@st.composite
def infos(draw: st.DrawFn) -> dict[str, Any]:
    min_clients = draw(st.integers(2, 1000))
    return {
        "task_id": draw(st.text("abcdefABCDEF0123456789_-", min_size=1, max_size=16)),
        "name": draw(st.text(min_size=1, max_size=20).filter(str.isprintable)),
        "state": "open",
        "length": draw(st.integers(1, 100)),
        "encoding": draw(encodings),
        "public_key": threshold.public_key_to_json(KEY),
        "holders": 5,
        "threshold": 3,
        "min_clients": min_clients,
        "max_clients": draw(st.integers(min_clients, 10**6)),
        "deadline": None,
        "packing": draw(st.sampled_from([None, PACKING])),
    }


def signed_bytes(fields: dict[str, Any]) -> bytes:
    return statement(CERTIFICATE_DOMAIN, certificate_fields(TaskInfoOut(**fields)))


@given(infos())
def test_the_statement_survives_the_wire(fields: dict[str, Any]) -> None:
    info = TaskInfoOut(**fields)
    over_http = TaskInfoOut.model_validate_json(info.model_dump_json())
    assert statement(CERTIFICATE_DOMAIN, certificate_fields(info)) == statement(
        CERTIFICATE_DOMAIN, certificate_fields(over_http)
    )
    assert signed_bytes(fields) == signed_bytes(dict(fields))


CHANGES = {
    "task_id": lambda f: f["task_id"] + "x",
    "name": lambda f: f["name"] + "!",
    "length": lambda f: f["length"] + 1,
    "min_clients": lambda f: f["min_clients"] - 1 if f["min_clients"] > 2 else 3,
    "max_clients": lambda f: f["max_clients"] + 1,
    "holders": lambda f: 4,
    "threshold": lambda f: 2,
    "public_key": lambda f: threshold.public_key_to_json(OTHER_KEY),
    "packing": lambda f: None if f["packing"] is not None else PACKING,
    "encoding": lambda f: f["encoding"].model_copy(
        update={"max_value": f["encoding"].max_value * 2 + 1}
    ),
}


@given(infos(), st.sampled_from(sorted(CHANGES)))
def test_any_signed_field_change_changes_the_statement(fields: dict[str, Any], name: str) -> None:
    changed = {**fields, name: CHANGES[name](fields)}
    assert signed_bytes(changed) != signed_bytes(fields)


@given(infos())
def test_state_deadline_and_certificates_are_not_signed(fields: dict[str, Any]) -> None:
    later = {
        **fields,
        "state": "closed",
        "deadline": datetime.now(UTC) + timedelta(days=1),
        "certificates": [CertificateOut(holder=1, signature="x")],
    }
    assert signed_bytes(later) == signed_bytes(fields)


def test_a_packing_bound_spelled_differently_is_another_statement() -> None:
    """Floats are signed as canonical JSON text: 2.25 and 2.250000001 differ."""
    fields = {
        "task_id": "t",
        "name": "n",
        "state": "open",
        "length": 4,
        "encoding": TaskEncoding.integer(0, 10),
        "public_key": threshold.public_key_to_json(KEY),
        "holders": 5,
        "threshold": 3,
        "min_clients": 2,
        "max_clients": 10,
        "deadline": None,
        "packing": PACKING,
    }
    nudged = {**fields, "packing": {**PACKING, "max_value": 2.250000001}}
    assert signed_bytes(nudged) != signed_bytes(fields)

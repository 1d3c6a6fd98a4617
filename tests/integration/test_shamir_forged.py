"""Forged Shamir reports against three real servers: every kind is dropped by every server.

A client that bypasses the SDK builds its sealed shares by hand. On a task with validity
``none`` one such report shifts the sum by anything (reproduced first); on a task with validity
``range`` the servers' joint check (:mod:`smpcloud.crypto.shamir_validity`) drops every forged
report, every server the same ones, counts them in the task's status, and the honest clients'
sum comes out exact.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Iterator

import httpx
import numpy as np
import pytest
from service_harness import ServerProcess, assert_problem, free_port
from test_service_shamir import start_servers, stop_servers

from smpcloud.client import (
    ShamirAggregation,
    ShamirClient,
    ShamirCredentials,
    ShamirServer,
    TaskEncoding,
)
from smpcloud.crypto import shamir_validity as sv
from smpcloud.crypto.field import DEFAULT_FIELD
from smpcloud.crypto.shamir import share_elements
from smpcloud.errors import InvalidInputError, ThresholdNotMetError
from smpcloud.protocol.checked_shares import (
    sealed_share_digest,
    validity_layout,
)
from smpcloud.protocol.sharing import (
    seal_share,
)

N, T = 3, 2
P = sv.VALIDITY_PRIME
ENCODING = TaskEncoding.fixed(16, -1.0, 1.0)  # U = 2^17: k = 18 bits per value
LO = -(1 << 16)

Blocks = list[np.ndarray]


@pytest.fixture(scope="module")
def trio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[ServerProcess]]:
    servers = start_servers(tmp_path_factory.mktemp("forged"), N)
    try:
        yield servers
    finally:
        stop_servers(servers)


def new_task(
    servers: list[ServerProcess], clients: int, **kwargs: object
) -> tuple[ShamirAggregation, list[ShamirCredentials]]:
    kwargs.setdefault("name", "forged reports")
    kwargs.setdefault("min_clients", 2)
    kwargs.setdefault("max_clients", 100)
    kwargs.setdefault("encoding", ENCODING)
    kwargs.setdefault("validity", "range")  # explicit: the default is still 'none' on main
    aggregation = ShamirAggregation.create_on_servers(
        [ShamirServer(s.base_url, s.admin_token) for s in servers],
        threshold=T,
        timeout=30.0,
        **kwargs,  # type: ignore[arg-type]
    )
    creds = aggregation.register(clients)
    for cred in creds:
        for server, endpoint in zip(servers, cred.endpoints, strict=True):
            server.secrets_handed_out.append(endpoint.token)
    return aggregation, creds


def submit(cred: ShamirCredentials, value: float) -> None:
    with ShamirClient(cred, timeout=30.0) as client:
        assert client.submit(value).reached == (1, 2, 3)


def post(cred: ShamirCredentials, server: int, body: dict[str, object]) -> httpx.Response:
    endpoint = cred.endpoints[server - 1]
    return httpx.post(
        f"{endpoint.base_url}/v1/tasks/{endpoint.task_id}/reports",
        headers={"Authorization": f"Bearer {endpoint.token}"},
        json=body,
        timeout=30.0,
    )


def seal_all(cred: ShamirCredentials, blocks: Blocks) -> list[dict[str, str]]:
    return [
        seal_share(
            e.share_key,
            y,
            task_id=e.task_id,
            server_index=e.server,
            client=cred.client_id,
            field=sv.VALIDITY_FIELD,
        )
        for e, y in zip(cred.endpoints, blocks, strict=True)
    ]


def honest_blocks(value_offsets: list[int], *, zero_masks: bool = False) -> Blocks:
    layout = validity_layout(1, ENCODING)
    offsets = np.array(value_offsets, dtype=np.uint64)
    return sv.share_report(offsets, layout, servers=N, threshold=T, zero_masks=zero_masks)


def shift_everywhere(blocks: Blocks, index: int, delta: int) -> Blocks:
    """Add delta at ``index`` on every server: the shared secret moves by delta, degree kept."""
    out = [y.copy() for y in blocks]
    for y in out:
        y[0, index] = (int(y[0, index]) + delta) % P
    return out


def off_polynomial(blocks: Blocks) -> Blocks:
    """Server 1's share of bit 0 moved by 1: the three shares no longer lie on a line."""
    out = [y.copy() for y in blocks]
    out[0][0, 0] = (int(out[0][0, 0]) + 1) % P
    return out


def send_forged(
    cred: ShamirCredentials,
    blocks: Blocks,
    *,
    digests_for: Callable[[int, list[str]], list[str]] = lambda _j, d: d,
) -> dict[int, httpx.Response]:
    """Seal ``blocks`` to the three servers and upload them with (possibly altered) digests."""
    sealed = seal_all(cred, blocks)
    digests = [sealed_share_digest(s) for s in sealed]
    return {
        j: post(cred, j, {"sealed_share": sealed[j - 1], "share_digests": digests_for(j, digests)})
        for j in (1, 2, 3)
    }


def all_stored(responses: dict[int, httpx.Response]) -> None:
    assert {j: r.status_code for j, r in responses.items()} == {1: 201, 2: 201, 3: 201}, {
        j: r.text[:300] for j, r in responses.items()
    }


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


# ------------------------------------------------------------------ reproduced first: none


def test_on_a_task_without_checks_one_forged_share_shifts_the_sum(
    trio: list[ServerProcess],
) -> None:
    """validity 'none': a share of 10^9 (far outside [-1, 1]) is stored and summed."""
    aggregation, creds = new_task(trio, 3, validity="none")
    with aggregation:
        submit(creds[0], 0.5)
        submit(creds[1], -0.25)
        forged = DEFAULT_FIELD.from_ints(np.array([10**9 << 16], dtype=object))
        blocks = share_elements(DEFAULT_FIELD, forged, n=N, t=T)
        sealed = [
            seal_share(e.share_key, y, task_id=e.task_id, server_index=e.server, client=3)
            for e, y in zip(creds[2].endpoints, blocks, strict=True)
        ]
        for j in (1, 2, 3):
            assert post(creds[2], j, {"sealed_share": sealed[j - 1]}).status_code == 201
        closed = aggregation.close_all()
        assert closed.participants == (1, 2, 3) and not closed.refused
        result = aggregation.result()
    assert result.sum == [10**9 + 0.25] and not result.within_declared_range


# ------------------------------------------------------------------ validity 'range'


def test_every_forged_report_is_dropped_by_every_server(trio: list[ServerProcess]) -> None:
    honest = [0.5, -1.0, 1.0, 0.25]
    layout = validity_layout(1, ENCODING)
    top = layout.bits - 1
    masks = layout.bit_elements  # index of Z_1
    forged: dict[str, Callable[[ShamirCredentials], dict[int, httpx.Response]]] = {
        # a value above U: the top bit shared as 2 (bits of 2)
        "out of range (a bit of 2)": lambda c: send_forged(
            c, shift_everywhere(honest_blocks([1 << 17]), top, 1)
        ),
        # a 'bit' of 6: not 0 or 1
        "non-bit": lambda c: send_forged(c, shift_everywhere(honest_blocks([0]), 3, 6)),
        # a negative value: bit 0 of offset 0 shared as p - 1
        "negative (p - 1)": lambda c: send_forged(
            c, shift_everywhere(honest_blocks([0]), 0, P - 1)
        ),
        # server 1's share of bit 0 off the degree-1 polynomial
        "off the polynomial": lambda c: send_forged(c, off_polynomial(honest_blocks([5]))),
        # a mask Z_1 whose constant is 7, not 0
        "non-zero mask": lambda c: send_forged(c, shift_everywhere(honest_blocks([9]), masks, 7)),
        # every server gets a list with its own entry right and the others wrong
        "different digest lists": lambda c: send_forged(
            c,
            honest_blocks([100]),
            digests_for=lambda j, d: [
                x if i == j - 1 else _b64(os.urandom(32)) for i, x in enumerate(d)
            ],
        ),
    }
    aggregation, creds = new_task(trio, len(honest) + len(forged) + 5, min_clients=3)
    with aggregation:
        for cred, value in zip(creds, honest, strict=False):
            submit(cred, value)
        number = len(honest)
        dropped: dict[int, str] = {}
        for kind, send in forged.items():
            cred = creds[number]
            number += 1
            all_stored(send(cred))  # each server alone cannot tell: all three store it
            dropped[cred.client_id] = kind

        # A report whose masks are all zero passes when honest (masks are for privacy only).
        zero = creds[number]
        number += 1
        all_stored(send_forged(zero, honest_blocks([3 << 15], zero_masks=True)))  # 0.5

        # Refused on upload, by the servers that see the fault (422 invalid-proof):
        wrong = creds[number]  # a wrong digest for server 2: only server 2 can tell
        number += 1
        responses = send_forged(
            wrong,
            honest_blocks([0]),
            digests_for=lambda _j, d: [d[0], _b64(os.urandom(32)), d[2]],
        )
        assert responses[1].status_code == responses[3].status_code == 201
        assert_problem(responses[2], 422, "invalid-proof", "does not hash to entry 2")
        truncated = creds[number]  # a vector one element short
        number += 1
        short = [y[:, :-1].copy() for y in honest_blocks([1])]
        for response in send_forged(truncated, short).values():
            assert_problem(response, 422, "invalid-proof", f"{layout.size - 1} elements")
        bare = creds[number]  # no digest list at all
        number += 1
        sealed = seal_all(bare, honest_blocks([1]))
        for j in (1, 2, 3):
            assert_problem(post(bare, j, {"sealed_share": sealed[j - 1]}), 422, "invalid-proof")
        # A sealed share replayed from another client: the AAD refuses it.
        victim, thief = creds[0], creds[number]
        number += 1
        replay = seal_all(victim, honest_blocks([1]))
        digests = [sealed_share_digest(s) for s in replay]
        response = post(thief, 1, {"sealed_share": replay[0], "share_digests": digests})
        assert_problem(response, 422, "sealed-share-not-opened")

        closed = aggregation.close_all()
        statuses, _ = aggregation.statuses()
        result = aggregation.result()
        aggregates = {
            j: httpx.get(
                f"{s.base_url}/v1/tasks/{aggregation.task.task_ids[j - 1]}/aggregate",
                headers={"Authorization": f"Bearer {s.admin_token}"},
            ).json()["clients"]
            for j, s in enumerate(trio, start=1)
        }
    participants = [1, 2, 3, 4, zero.client_id]
    assert list(closed.participants) == participants and closed.closed == (1, 2, 3)
    failed_check = {dropped[c]: why for c, why in closed.refused.items()}
    assert failed_check == {
        "out of range (a bit of 2)": "bit",
        "non-bit": "bit",
        "negative (p - 1)": "bit",
        "off the polynomial": "degree",
        "non-zero mask": "bit",
        "different digest lists": "degree",  # three seeds: three unrelated sets of coefficients
    }
    assert all(clients == participants for clients in aggregates.values())
    # Every server counts the six dropped at close, plus what it refused itself on upload.
    refused = {j: s.refused for j, s in statuses.items()}
    assert refused[1] == {"invalid-proof": 6 + 2, "sealed-share-not-opened": 1}
    assert refused[2] == {"invalid-proof": 6 + 3}
    assert refused[3] == {"invalid-proof": 6 + 2}
    assert result.count == 5 and result.sum == [sum(honest) + 0.5]
    assert result.within_declared_range


def test_a_close_that_contradicts_the_checks_is_refused(trio: list[ServerProcess]) -> None:
    """A server re-checks every verdict it is handed, and its own check values."""
    aggregation, creds = new_task(trio, 3, min_clients=2)
    layout = validity_layout(1, ENCODING)
    server, task_id = trio[0], aggregation.task.task_ids[0]
    url = f"{server.base_url}/v1/tasks/{task_id}"
    admin = {"Authorization": f"Bearer {server.admin_token}"}
    with aggregation:
        submit(creds[0], 0.75)
        submit(creds[1], -0.5)
        all_stored(send_forged(creds[2], shift_everywhere(honest_blocks([0]), 2, 2)))
        checks = {}
        for j, s in enumerate(trio, start=1):
            answer = httpx.get(
                f"{s.base_url}/v1/tasks/{aggregation.task.task_ids[j - 1]}/checks",
                headers={"Authorization": f"Bearer {s.admin_token}"},
            ).json()
            assert answer["clients"] == [1, 2, 3] and answer["repetitions"] == sv.REPETITIONS
            checks[j] = answer["values"]
        width = layout.checks

        def rows(j: int, order: list[int]) -> str:
            raw = base64.urlsafe_b64decode(checks[j] + "=" * (-len(checks[j]) % 4))
            words = np.frombuffer(raw, dtype="<u4").reshape(3, width)
            return _b64(words[[c - 1 for c in order]].astype("<u4").tobytes())

        everyone = [rows(j, [1, 2, 3]) for j in (1, 2, 3)]
        response = httpx.post(
            f"{url}/close",
            headers=admin,
            json={"clients": [1, 2, 3], "refused": [], "checks": everyone},
        )
        assert_problem(response, 422, "invalid-proof", "client 3 fails the joint check (bit)")
        honest_refused = [rows(j, [1, 3, 2]) for j in (1, 2, 3)]
        response = httpx.post(
            f"{url}/close",
            headers=admin,
            json={"clients": [1, 3], "refused": [2], "checks": honest_refused},
        )
        assert_problem(response, 422, "invalid-proof", "client 3 fails")
        response = httpx.post(
            f"{url}/close",
            headers=admin,
            json={
                "clients": [1],
                "refused": [2, 3],
                "checks": [rows(j, [1, 2, 3]) for j in (1, 2, 3)],
            },
        )
        assert_problem(response, 422, "invalid-input", "min_clients")
        swapped = [rows(1, [2, 1, 3]), rows(2, [1, 2, 3]), rows(3, [1, 2, 3])]
        response = httpx.post(
            f"{url}/close",
            headers=admin,
            json={"clients": [1, 2], "refused": [3], "checks": swapped},
        )
        assert_problem(response, 422, "invalid-proof", "client 1", "not the ones it computed")
        for body in ({"clients": [1, 2]}, {"clients": [1, 2], "refused": [3]}):
            assert_problem(
                httpx.post(f"{url}/close", headers=admin, json=body),
                422,
                "invalid-input",
                "validity 'range'",
            )
        assert server.db_query("SELECT state FROM tasks WHERE id = ?", task_id) == [("open",)]
        closed = aggregation.close_all()
        assert closed.participants == (1, 2) and dict(closed.refused) == {3: "bit"}
        assert aggregation.result().sum == [0.25]


def test_range_task_parameters_are_checked(trio: list[ServerProcess]) -> None:
    servers = [ShamirServer(s.base_url, s.admin_token) for s in trio]
    with pytest.raises(InvalidInputError, match="narrow the range"):
        ShamirAggregation.create_on_servers(
            servers, name="x", threshold=2, min_clients=2, encoding=ENCODING, validity="range"
        )  # default max_clients 10^6 times U = 2^17 is not below p
    with pytest.raises(InvalidInputError, match="n = 2t - 1"):
        ShamirAggregation.create_on_servers(
            servers[:2],
            name="x",
            threshold=2,
            min_clients=2,
            max_clients=10,
            validity="range",
            encoding=ENCODING,
        )
    # The servers refuse it too (a request that skips the SDK's checks).
    body = {
        "name": "x",
        "scheme": "shamir",
        "servers": 3,
        "threshold": 2,
        "server_index": 1,
        "min_clients": 2,
        "encoding": ENCODING.model_dump(),
        "validity": "range",
    }
    response = httpx.post(
        f"{trio[0].base_url}/v1/tasks",
        headers={"Authorization": f"Bearer {trio[0].admin_token}"},
        json=body,
    )
    assert_problem(response, 422, "invalid-input", "narrow the range", "validity 'none'")


def test_a_range_task_closes_only_with_every_server(trio: list[ServerProcess]) -> None:
    aggregation, creds = new_task(trio, 2, min_clients=2)
    with aggregation:
        submit(creds[0], 1.0)
        submit(creds[1], 0.0)
        task_id = aggregation.task.task_ids[2]
        info = httpx.get(
            f"{trio[2].base_url}/v1/tasks/{task_id}",
            headers={"Authorization": f"Bearer {trio[2].admin_token}"},
        ).json()
        assert info["validity"] == "range" and info["field"] == [P]
        # The same task seen with server 3 unreachable: t = 2 servers answer, but not all n.
        servers = [ShamirServer(s.base_url, s.admin_token) for s in trio]
        servers[2] = ShamirServer(f"http://127.0.0.1:{free_port()}", trio[2].admin_token)
        partial = ShamirAggregation(
            servers,
            aggregation.task.task_ids,
            threshold=T,
            share_keys=aggregation.task.share_keys,
            timeout=5.0,
        )
        with partial, pytest.raises(ThresholdNotMetError, match="closed with all 3 servers"):
            partial.close_all()
        statuses, _ = aggregation.statuses()
        assert {s.state for s in statuses.values()} == {"open"}
        closed = aggregation.close_all()
        assert closed.participants == (1, 2)
        assert aggregation.result().sum == [1.0]

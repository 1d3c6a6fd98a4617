"""``smpcloud shamir`` with validity ``range`` (the CLI's default): CLI subprocesses, 3 servers.

Create (the default --validity range), register, three clients submit through the CLI, one
forged report arrives by hand; ``close`` names the refused client in one line, ``status``
counts it, ``result`` is the honest clients' sum, exactly. Refused parameters are one line.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
from service_harness import ServerProcess
from test_cli_shamir import (  # the same subprocess helpers and three-server fixture
    ok,
    one_clear_line,
    servers,  # noqa: F401 - the three-server fixture
    servers_file,
    smpcloud,
)

from smpcloud.client import ShamirCredentials
from smpcloud.crypto import shamir_validity as sv
from smpcloud.protocol.checked_shares import (
    sealed_share_digest,
    validity_layout,
)
from smpcloud.protocol.schemas import TaskEncoding
from smpcloud.protocol.sharing import (
    seal_share,
)


def forge(path: Path) -> None:
    """Client 4 bypasses the CLI: its value's top bit is shared as 2 (far above the range)."""
    cred = ShamirCredentials.from_json(json.loads(path.read_text()))
    layout = validity_layout(1, TaskEncoding.fixed(16, -10.0, 10.0))
    blocks = sv.share_report(np.array([0], dtype=np.uint64), layout, servers=3, threshold=2)
    for y in blocks:
        y[0, layout.bits - 1] = (int(y[0, layout.bits - 1]) + 2) % sv.VALIDITY_PRIME
    sealed = [
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
    digests = [sealed_share_digest(s) for s in sealed]
    for e, s in zip(cred.endpoints, sealed, strict=True):
        response = httpx.post(
            f"{e.base_url}/v1/tasks/{e.task_id}/reports",
            headers={"Authorization": f"Bearer {e.token}"},
            json={"sealed_share": s, "share_digests": digests},
        )
        assert response.status_code == 201, response.text


def test_range_is_the_default_and_a_forged_report_is_named_and_dropped(
    tmp_path: Path,
    servers: list[ServerProcess],  # noqa: F811 - the fixture imported above
) -> None:
    conf = str(servers_file(tmp_path, servers))
    task = str(tmp_path / "task" / "task.json")
    base = ["--servers", conf, "--name", "temperature", "--threshold", "2", "--min-clients", "3"]
    encoding = ["--fixed", "16", "--range", "-10", "10"]
    # The default max_clients (10^6) times the span 20 x 2^16 is not below p: one line.
    line = one_clear_line(smpcloud("shamir", "create", *base, *encoding, "--out", "x"))
    assert "narrow the range" in line and "validity 'none'" in line
    created = ok(
        smpcloud(
            "shamir",
            "create",
            *base,
            *encoding,
            "--max-clients",
            "1000",
            "--out",
            str(tmp_path / "task"),
        )
    )
    assert "validity range" in created
    ok(
        smpcloud(
            "shamir",
            "register",
            "--servers",
            conf,
            "--task",
            task,
            "--clients",
            "4",
            "--out",
            str(tmp_path / "creds"),
        )
    )
    creds = {i: str(tmp_path / "creds" / f"client_{i}.json") for i in range(1, 5)}
    for server in servers:
        for path in creds.values():
            endpoints = json.loads(Path(path).read_text())["endpoints"]
            server.secrets_handed_out.extend(e["token"] for e in endpoints)
    for i, value in ((1, "-1.25"), (2, "10"), (3, "-10")):
        out = ok(smpcloud("shamir", "submit", "--credentials", creds[i], "--", value))
        assert f"client {i}: share stored on servers 1, 2, 3 of 3" in out
    # The CLI refuses a value outside the range before sending anything.
    line = one_clear_line(smpcloud("shamir", "submit", "--credentials", creds[4], "11"))
    assert "outside the declared range" in line
    forge(Path(creds[4]))

    closed = ok(smpcloud("shamir", "close", "--servers", conf, "--task", task))
    assert closed.splitlines()[0] == "closed servers 1, 2, 3 over 3 participants"
    assert closed.splitlines()[1:] == [
        "  client 4 refused: its report fails the servers' joint bit check (a value outside the "
        "declared range)"
    ]
    status = ok(smpcloud("shamir", "status", "--servers", conf, "--task", task))
    assert status.count("refused: 1 invalid-proof") == 3
    res = json.loads(ok(smpcloud("shamir", "result", "--servers", conf, "--task", task, "--json")))
    assert res["count"] == 3 and res["sum"] == [-1.25] and res["participants"] == [1, 2, 3]
    as_json = json.loads(
        ok(smpcloud("shamir", "close", "--servers", conf, "--task", task, "--json"))
    )
    assert as_json["refused"] == {"4": "bit"} and as_json["participants"] == [1, 2, 3]


def test_range_needs_n_equal_2t_minus_1(
    tmp_path: Path,
    servers: list[ServerProcess],  # noqa: F811 - the fixture imported above
) -> None:
    conf = str(servers_file(tmp_path, servers))
    out = smpcloud(
        "shamir",
        "create",
        "--servers",
        conf,
        "--name",
        "x",
        "--threshold",
        "3",
        "--min-clients",
        "2",
        "--max-clients",
        "10",
        "--range",
        "0",
        "10",
        "--out",
        str(tmp_path / "t"),
    )
    line = one_clear_line(out)
    assert "n = 2t - 1" in line and "validity 'none'" in line

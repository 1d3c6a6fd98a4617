"""``smpcloud shamir``: the Shamir mode end to end through CLI subprocesses and 3 real servers.

One flow: create on 3 servers, register 5 clients (0600 credentials), 4 submit (negative values,
``--from-file``), server 3 goes down, the fifth still counts (t = 2 servers took its share),
close over the reachable servers, status names the down one, result (human and ``--json``).
Every user error along the way is one line on stderr and exit status 1, never a traceback.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from service_harness import ServerProcess, start_server

SMPCLOUD = [sys.executable, "-m", "smpcloud"]


def smpcloud(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMPCLOUD_")}
    return subprocess.run(
        [*SMPCLOUD, *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env=env,
        cwd=cwd,
    )


def ok(out: subprocess.CompletedProcess[str]) -> str:
    assert out.returncode == 0, (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr
    return out.stdout


def one_clear_line(out: subprocess.CompletedProcess[str]) -> str:
    assert out.returncode != 0, (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, out.stderr
    return errors[0]


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[ServerProcess]]:
    procs: list[ServerProcess] = []
    try:
        for j in (1, 2, 3):
            (tmp_path / f"s{j}").mkdir()
            procs.append(start_server(tmp_path / f"s{j}"))
        yield procs
    finally:
        for proc in procs:
            proc.stop()
    for proc in procs:
        proc.check_log_has_no_secrets()


def servers_file(tmp_path: Path, servers: list[ServerProcess], name: str = "servers.toml") -> Path:
    lines = []
    for j, server in enumerate(servers, start=1):
        (tmp_path / f"admin-{j}.token").write_text(server.admin_token + "\n")
        lines += [
            "[[server]]",
            f'url = "{server.base_url}"',
            f'admin_token_file = "admin-{j}.token"',
            "",
        ]
    path = tmp_path / name
    path.write_text("\n".join(lines))
    return path


VALUES = {1: ["27.5"], 2: ["-3.25"], 3: ["40"], 4: None, 5: ["-0.5"]}


def test_the_whole_flow_with_a_server_down_and_wrong_tokens(
    tmp_path: Path, servers: list[ServerProcess]
) -> None:
    conf = str(servers_file(tmp_path, servers))
    task = str(tmp_path / "task" / "task.json")
    created = ok(
        smpcloud(
            "shamir",
            "create",
            "--servers",
            conf,
            "--name",
            "average BMI",
            "--threshold",
            "2",
            "--min-clients",
            "3",
            "--fixed",
            "16",
            "--range",
            "-100",
            "100",
            "--validity",
            "none",
            "--out",
            str(tmp_path / "task"),
        )
    )
    assert "3 servers" in created and "t = 2" in created
    listed = json.loads(Path(task).read_text())["servers"]
    assert [s["base_url"] for s in listed] == [s.base_url for s in servers]
    pinned = [s["share_key"] for s in listed]  # each server's share key, pinned at creation
    assert len(set(pinned)) == 3 and all(len(key) == 43 for key in pinned)

    registered = ok(
        smpcloud(
            "shamir",
            "register",
            "--servers",
            conf,
            "--task",
            task,
            "--clients",
            "5",
            "--out",
            str(tmp_path / "creds"),
        )
    )
    assert "1..5" in registered
    creds = {i: tmp_path / "creds" / f"client_{i}.json" for i in range(1, 6)}
    for path in creds.values():
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    tokens = [e["token"] for p in creds.values() for e in json.loads(p.read_text())["endpoints"]]
    for path in creds.values():
        assert [e["share_key"] for e in json.loads(path.read_text())["endpoints"]] == pinned
    for server in servers:
        server.secrets_handed_out.extend(tokens)

    (tmp_path / "values-4.txt").write_text("12.75\n")
    for i in (1, 2, 3, 4):
        args = VALUES[i] or ["--from-file", str(tmp_path / "values-4.txt")]
        out = ok(smpcloud("shamir", "submit", "--credentials", str(creds[i]), *args))
        assert f"client {i}: share stored on servers 1, 2, 3 of 3" in out

    # A wrong client token: refused by every server, nothing sent, one line.
    wrong = json.loads(creds[5].read_text())
    for endpoint in wrong["endpoints"]:
        endpoint["token"] = "x" * 43
    (tmp_path / "wrong.json").write_text(json.dumps(wrong))
    line = one_clear_line(
        smpcloud("shamir", "submit", "--credentials", str(tmp_path / "wrong.json"), "1")
    )
    assert "ThresholdNotMetError" in line and "server 1" in line
    # A second submission of client 1: refused before anything is sent.
    line = one_clear_line(smpcloud("shamir", "submit", "--credentials", str(creds[1]), "5"))
    assert "already hold a report" in line
    # A wrong admin token in the servers file: one line.
    (tmp_path / "bad").mkdir()
    bad = servers_file(tmp_path / "bad", servers)
    (tmp_path / "bad" / "admin-1.token").write_text("not-the-token\n")
    (tmp_path / "bad" / "admin-2.token").write_text("not-the-token\n")
    (tmp_path / "bad" / "admin-3.token").write_text("not-the-token\n")
    line = one_clear_line(smpcloud("shamir", "status", "--servers", str(bad), "--task", task))
    assert "no server answered" in line and "server 1" in line

    # Server 3 goes down; client 5 still reaches t = 2 servers and counts.
    servers[2].kill()
    out = smpcloud("shamir", "submit", "--credentials", str(creds[5]), *VALUES[5] or [])
    assert "client 5: share stored on servers 1, 2 of 3" in ok(out)
    assert "server 3: unreachable" in out.stderr

    status = ok(smpcloud("shamir", "status", "--servers", conf, "--task", task))
    assert "server 1: open, 5 reports of 5 registered clients" in status
    assert "server 3: unreachable" in status

    closed = ok(smpcloud("shamir", "close", "--servers", conf, "--task", task))
    assert "closed servers 1, 2 over 5 participants" in closed

    everything = [27.5, -3.25, 40.0, 12.75, -0.5]
    res = json.loads(ok(smpcloud("shamir", "result", "--servers", conf, "--task", task, "--json")))
    assert res["count"] == 5 and res["participants"] == [1, 2, 3, 4, 5]
    assert res["sum"][0] == pytest.approx(sum(everything), abs=1e-3)
    assert res["average"][0] == pytest.approx(sum(everything) / 5, abs=1e-3)
    assert set(res["unavailable"]) == {"3"}
    human = ok(smpcloud("shamir", "result", "--servers", conf, "--task", task))
    assert human.splitlines()[0] == "count   5"
    assert human.splitlines()[2].startswith("average 15.3")


def test_user_errors_are_one_line(tmp_path: Path, servers: list[ServerProcess]) -> None:
    conf = servers_file(tmp_path, servers)
    out_dir = str(tmp_path / "task")
    base = ["shamir", "create", "--servers", str(conf), "--name", "x", "--min-clients", "2"]
    base += ["--validity", "none"]
    # t must be more than half of the servers.
    line = one_clear_line(smpcloud(*base, "--threshold", "4", "--out", out_dir))
    assert "InvalidInputError" in line
    # --fixed without --range.
    assert one_clear_line(smpcloud(*base, "--threshold", "2", "--fixed", "8", "--out", out_dir))
    # A malformed servers file and a missing token file.
    (tmp_path / "broken.toml").write_text("[[server]]\nurl = 'ftp://x'\nadmin_token_file = 'a'\n")
    line = one_clear_line(
        smpcloud(
            "shamir",
            "create",
            "--servers",
            str(tmp_path / "broken.toml"),
            "--name",
            "x",
            "--threshold",
            "2",
            "--min-clients",
            "2",
            "--out",
            out_dir,
        )
    )
    assert "http://" in line
    (tmp_path / "missing.toml").write_text(conf.read_text().replace("admin-1.token", "nope.token"))
    line = one_clear_line(
        smpcloud(
            "shamir", "status", "--servers", str(tmp_path / "missing.toml"), "--task", str(conf)
        )
    )
    assert "nope.token" in line
    ok(smpcloud(*base, "--threshold", "2", "--out", out_dir))
    task = str(tmp_path / "task" / "task.json")
    # A task file that is not one; a servers file listing other servers; result before close.
    assert "not a task file" in one_clear_line(
        smpcloud("shamir", "status", "--servers", str(conf), "--task", str(conf))
    )
    two = servers_file(tmp_path, servers[:2], name="two.toml")
    assert "same servers, same order" in one_clear_line(
        smpcloud("shamir", "status", "--servers", str(two), "--task", task)
    )
    assert one_clear_line(smpcloud("shamir", "result", "--servers", str(conf), "--task", task))
    # Closing with too few reports: nothing is closed, one line.
    ok(
        smpcloud(
            "shamir",
            "register",
            "--servers",
            str(conf),
            "--task",
            task,
            "--clients",
            "1",
            "--out",
            str(tmp_path / "creds"),
        )
    )
    cred = str(tmp_path / "creds" / "client_1.json")
    # Files written before shares were sealed (no share keys): refused, saying what to re-run.
    old_cred = json.loads(Path(cred).read_text())
    for endpoint in old_cred["endpoints"]:
        del endpoint["share_key"]
    (tmp_path / "old-cred.json").write_text(json.dumps(old_cred))
    line = one_clear_line(
        smpcloud("shamir", "submit", "--credentials", str(tmp_path / "old-cred.json"), "1")
    )
    assert "smpcloud shamir register" in line
    old_task = json.loads(Path(task).read_text())
    for server in old_task["servers"]:
        del server["share_key"]
    (tmp_path / "old-task.json").write_text(json.dumps(old_task))
    line = one_clear_line(
        smpcloud(
            "shamir", "status", "--servers", str(conf), "--task", str(tmp_path / "old-task.json")
        )
    )
    assert "re-run smpcloud shamir create" in line
    # Credentials naming plain http to a host that is not loopback: refused, nothing sent.
    insecure = json.loads(Path(cred).read_text())
    insecure["endpoints"][1]["base_url"] = "http://server-2.invalid:8000"
    (tmp_path / "insecure.json").write_text(json.dumps(insecure))
    line = one_clear_line(
        smpcloud("shamir", "submit", "--credentials", str(tmp_path / "insecure.json"), "1")
    )
    assert "InsecureServerURLError" in line and "server 2 (http://server-2.invalid:8000)" in line
    # Values out of the declared range, too many values, non-numbers, none at all.
    assert one_clear_line(smpcloud("shamir", "submit", "--credentials", cred, "1", "2"))
    assert one_clear_line(smpcloud("shamir", "submit", "--credentials", cred, "abc"))
    assert one_clear_line(smpcloud("shamir", "submit", "--credentials", cred))
    assert "min_clients" in one_clear_line(
        smpcloud("shamir", "close", "--servers", str(conf), "--task", task)
    )
    # Registering into a directory that already holds the credentials is refused.
    line = one_clear_line(
        smpcloud(
            "shamir",
            "register",
            "--servers",
            str(conf),
            "--task",
            task,
            "--clients",
            "1",
            "--out",
            str(tmp_path / "creds"),
        )
    )
    assert "already holds credentials (client_1.json)" in line

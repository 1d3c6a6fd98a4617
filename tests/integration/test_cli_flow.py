"""The README's "running a real aggregation" steps, command by command, as subprocesses."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from smpcloud.ports import free_port

SMPCLOUD = [sys.executable, "-m", "smpcloud"]


def serve(db: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start `smpcloud serve` on a free port; retry on another if the port was taken meanwhile.

    Sets env["SMPCLOUD_SERVER"] to the server's URL once it answers /healthz. The database is
    migrated first (`smpcloud db upgrade`), as the README says.
    """
    subprocess.run(
        [*SMPCLOUD, "db", "upgrade", "--db", f"sqlite:///{db}"], env=env, check=True, timeout=120
    )
    for _attempt in range(3):
        port = free_port()
        server = subprocess.Popen(
            [*SMPCLOUD, "serve", "--db", f"sqlite:///{db}", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while server.poll() is None and time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                    env["SMPCLOUD_SERVER"] = f"http://127.0.0.1:{port}"
                    return server
            except httpx.TransportError:
                time.sleep(0.05)
        server.kill()
        server.wait()
    raise RuntimeError("smpcloud serve did not start on any of 3 free ports")


def test_keygen_serve_task_submit_close_decrypt_result(tmp_path: Path) -> None:
    env = {**os.environ, "SMPCLOUD_ADMIN_TOKEN": secrets.token_urlsafe(32)}

    def smp(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        out = subprocess.run(
            [*SMPCLOUD, *args], capture_output=True, text=True, env=env, timeout=120, check=False
        )
        if ok:
            assert out.returncode == 0, f"{args}: {out.stderr}"
        return out

    keys, task_dir = tmp_path / "keys", tmp_path / "task"
    smp("keygen", "--holders", "5", "--threshold", "3", "--bits", "2048", "--out", str(keys))
    server = serve(tmp_path / "agg.db", env)
    try:
        smp(
            "task",
            "create",
            "--public-key",
            str(keys / "public_key.json"),
            "--holders",
            str(keys / "holders.json"),
            "--name",
            "bmi",
            "--clients",
            "4",
            "--min-clients",
            "3",
            "--fixed",
            "16",
            "--range",
            "0",
            "100",
            "--out",
            str(task_dir),
        )
        env["SMPCLOUD_TASK"] = json.loads((task_dir / "task.json").read_text())["task_id"]
        values = [27.5, 31.25, 19.0, 24.125]
        env["SMPCLOUD_HOLDERS"] = str(keys / "holders.json")
        # Not certified yet: the client refuses in one line, before encrypting anything.
        early = smp("submit", "--token-file", str(task_dir / "client_1.token"), "1", ok=False)
        assert early.returncode == 1 and "0 valid signature(s)" in early.stderr
        assert "smpcloud certify" in early.stderr and "Traceback" not in early.stderr
        for i in (1, 3, 5):
            certified = smp(
                "certify",
                "--token-file",
                str(task_dir / f"holder_{i}.token"),
                "--key-share",
                str(keys / f"key_share_{i}.json"),
                "--signing-key",
                str(keys / f"signing_key_{i}.json"),
            )
            assert f"key holder {i} certified" in certified.stdout
            assert "signed: 'bmi', 3-of-5 key" in certified.stdout
            assert "3 to 1000000 clients" in certified.stdout
        assert "by holders 1, 3, 5 (3 of 3 needed)" in smp("task", "status").stdout
        for j, value in enumerate(values, start=1):
            done = smp("submit", "--token-file", str(task_dir / f"client_{j}.token"), str(value))
            assert "certified by key holders 1, 3, 5" in done.stdout
        again = smp("submit", "--token-file", str(task_dir / "client_1.token"), "99", ok=False)
        assert again.returncode == 1 and "already" in again.stderr.lower()
        early = smp("result", ok=False)
        assert early.returncode == 1 and "0 of 3 partial decryptions" in early.stderr
        smp("task", "close")
        for i in (2, 4, 5):
            smp(
                "decrypt",
                "--token-file",
                str(task_dir / f"holder_{i}.token"),
                "--key-share",
                str(keys / f"key_share_{i}.json"),
            )
        data = json.loads(smp("result", "--json").stdout)
        assert data["count"] == 4
        assert abs(data["sum"][0] - sum(values)) < 4 * 2**-17
        assert abs(data["average"][0] - sum(values) / 4) < 2**-17
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=10)


def test_health_waits_for_a_server_and_names_one_that_never_answers(tmp_path: Path) -> None:
    env = {**os.environ, "SMPCLOUD_ADMIN_TOKEN": secrets.token_urlsafe(32)}
    server = serve(tmp_path / "agg.db", env)
    try:
        up = subprocess.run(
            [*SMPCLOUD, "health", "--wait", "10"], env=env, capture_output=True, text=True
        )
        assert up.returncode == 0, up.stderr
        assert "is up" in up.stderr
    finally:
        server.terminate()
        server.wait(timeout=10)
    nowhere = f"http://127.0.0.1:{free_port()}"
    down = subprocess.run(
        [*SMPCLOUD, "health", "--server", nowhere, "--wait", "0.5"],
        capture_output=True,
        text=True,
    )
    assert down.returncode == 1
    assert f"{nowhere} does not answer after 0.5 s" in down.stderr
    assert "Traceback" not in down.stderr

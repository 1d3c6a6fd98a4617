"""Every command's --help works and shows an example; the examples work verbatim, in order.

The examples are read from the --help output itself (the lines starting with ``smpcloud``,
``python``, ``chmod``, ``echo`` or ``export``), so that an example that stops working fails
here. They run in bash with ``smpcloud`` and ``python`` on PATH, one shell for the whole
sequence, as a new user would paste them (issue 13, finding 10). Also: ``make demo`` tells
the user how to run ``smpcloud`` afterwards (finding 9).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from smpcloud.ports import free_port

SMPCLOUD = [sys.executable, "-m", "smpcloud"]
REPO = Path(__file__).resolve().parents[2]

WITH_EXAMPLES = [
    ("keygen",),
    ("serve",),
    ("task", "create"),
    ("task", "list"),
    ("task", "status"),
    ("task", "close"),
    ("certify",),
    ("submit",),
    ("decrypt",),
    ("result",),
]
ALL_COMMANDS = [
    (),
    *WITH_EXAMPLES,
    ("task",),
    ("demo",),
    ("certs",),
    ("certs", "ca"),
    ("certs", "request"),
    ("certs", "sign"),
    ("certs", "config"),
    ("db",),
    ("db", "upgrade"),
    ("db", "current"),
    ("party",),
    ("dealer",),
    ("example",),
    ("example", "stats"),
    ("bench",),
    ("bench", "fig7"),
]
_EXAMPLE_LINE = re.compile(r"^\s+((?:smpcloud|python|chmod|echo|export) .*)$")


def help_text(*command: str) -> str:
    out = subprocess.run(
        [*SMPCLOUD, *command, "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    return out.stdout


def examples(*command: str) -> list[str]:
    """The example command lines of a --help, continuation lines joined."""
    lines: list[str] = []
    pending = ""
    for raw in help_text(*command).splitlines():
        if pending:
            pending += " " + raw.strip()
        else:
            match = _EXAMPLE_LINE.match(raw)
            if match is None:
                continue
            pending = match.group(1)
        if pending.endswith("\\"):
            pending = pending[:-1].rstrip()
            continue
        lines.append(pending)
        pending = ""
    return lines


@pytest.mark.parametrize("command", ALL_COMMANDS, ids=lambda c: " ".join(c) or "smpcloud")
def test_every_help_works(command: tuple[str, ...]) -> None:
    text = help_text(*command)
    assert "Usage:" in text
    if command in WITH_EXAMPLES:
        assert "Example" in text and examples(*command), text


def test_make_demo_says_how_to_run_smpcloud() -> None:
    out = subprocess.run(
        ["make", "-n", "-C", str(REPO), "demo"], capture_output=True, text=True, check=False
    )
    if out.returncode != 0 and "No rule" in out.stderr:  # pragma: no cover
        pytest.fail(out.stderr)
    assert ". .venv/bin/activate" in out.stdout and ".venv/bin/smpcloud --help" in out.stdout


def _shims(directory: Path) -> dict[str, str]:
    directory.mkdir()
    for name, target in (("smpcloud", f'"{sys.executable}" -m smpcloud'), ("python", None)):
        shim = directory / name
        body = f'exec {target} "$@"' if target else f'exec "{sys.executable}" "$@"'
        shim.write_text(f"#!/bin/sh\n{body}\n")
        shim.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMPCLOUD_")}
    env["PATH"] = f"{directory}{os.pathsep}{env['PATH']}"
    return env


def _bash(script: list[str], cwd: Path, env: dict[str, str]) -> None:
    text = "set -euo pipefail\n" + "\n".join(script) + "\n"
    out = subprocess.run(
        ["bash", "-c", text],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert out.returncode == 0, f"{text}\n--- stdout\n{out.stdout}\n--- stderr\n{out.stderr}"
    assert "Traceback" not in out.stderr


@pytest.mark.slow
def test_help_examples_work_verbatim_in_order(tmp_path: Path) -> None:
    env = _shims(tmp_path / "bin")
    work = tmp_path / "work"
    work.mkdir()
    serve_lines = examples("serve")
    serve_command = next(line for line in serve_lines if line.startswith("smpcloud serve"))
    setup = [line for line in serve_lines if not line.startswith("smpcloud serve")]
    _bash([*examples("keygen"), *setup], work, env)
    env["SMPCLOUD_ADMIN_TOKEN"] = (work / "admin.token").read_text().strip()

    server = None
    for _attempt in range(3):
        port = free_port()
        server = subprocess.Popen(
            ["bash", "-c", f"exec {serve_command} --port {port}"],
            cwd=work,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while server.poll() is None and time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            server.kill()
            server.wait()
            server = None
            continue
        break
    assert server is not None, "smpcloud serve (the --help example) did not start"
    env["SMPCLOUD_SERVER"] = f"http://127.0.0.1:{port}"
    try:
        flow = [
            *examples("task", "create"),
            *examples("task", "list"),
            *examples("certify"),
            # Two more key holders certify: the example key is 3-of-5.
            "for i in 3 4; do smpcloud certify --token-file task/holder_$i.token --key-share "
            "keys/key_share_$i.json --signing-key keys/signing_key_$i.json; done",
            *examples("submit"),
            # 8 more clients, so that the example task reaches its --min-clients 10.
            "for j in 3 4 5 6 7 8 9 10; do smpcloud submit --holders keys/holders.json "
            "--token-file task/client_$j.token 30; done",
            *examples("task", "status"),
            *examples("task", "close"),
            *examples("decrypt"),
            # Two more key holders: the example key is 3-of-5.
            "for i in 4 5; do smpcloud decrypt --token-file task/holder_$i.token --key-share "
            "keys/key_share_$i.json; done",
            *examples("result"),
        ]
        _bash(flow, work, env)
    finally:
        server.terminate()
        server.wait(timeout=30)

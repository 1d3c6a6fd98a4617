"""Every command sequence of the README runs as printed.

Each fenced code block of README.md is preceded by a marker comment:

* ``<!-- readme-test: NAME -->``: the block belongs to the flow NAME. The blocks of one flow run
  in order, in one bash process, in a fresh temporary directory that looks like the root of a
  checkout after ``make demo`` (``examples/`` and ``.venv`` are links to the real ones), with
  the virtualenv first on PATH (as after ``. .venv/bin/activate``). Shell blocks run as they
  are; a Python block is saved as a script and run with ``python script.py``, as a user who
  pastes it into a file would (so a snippet that starts worker processes needs its
  ``if __name__ == "__main__":`` guard).
* ``<!-- readme-test: skip REASON -->``: not run here, for the reason given (e.g. ``make demo``,
  which CI itself runs).

A block without a marker fails the test: a README that changes without its test is caught. The
only edit made to the text is the port: the README's servers listen on 8000-8003, which another
program may hold on the machine that runs the tests, so those numbers are replaced by free ports
(``smpcloud.ports``; a flow whose server finds its port taken is retried once). Every process a
flow leaves running (``smpcloud serve ... &``) is killed with its process group at the end.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from smpcloud.ports import free_port_range

README = Path(__file__).resolve().parents[2] / "README.md"
MARKER = re.compile(r"<!--\s*readme-test:\s*(?P<what>[^>]*?)\s*-->")
FENCE = re.compile(r"^```(?P<lang>\w*)\s*$")
README_PORTS = (8000, 8001, 8002, 8003)
FLOW_TIMEOUT = 420


@dataclass(frozen=True)
class Block:
    line: int
    lang: str
    text: str
    marker: str | None


def blocks(text: str) -> list[Block]:
    """Every fenced block of the README with the marker comment just above it (if any)."""
    out: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if fence is None:
            i += 1
            continue
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines) and not lines[i].startswith("```"):
            body.append(lines[i])
            i += 1
        i += 1
        above = start - 1
        while above >= 0 and not lines[above].strip():
            above -= 1
        marker = MARKER.search(lines[above]) if above >= 0 else None
        out.append(
            Block(start + 1, fence["lang"], "\n".join(body) + "\n", marker and marker["what"])
        )
    return out


def flows() -> dict[str, list[Block]]:
    found: dict[str, list[Block]] = {}
    for block in blocks(README.read_text(encoding="utf-8")):
        if block.marker and not block.marker.startswith("skip"):
            found.setdefault(block.marker, []).append(block)
    return found


def test_every_readme_block_is_tested_or_says_why_not() -> None:
    unmarked = [b.line for b in blocks(README.read_text(encoding="utf-8")) if b.marker is None]
    assert not unmarked, (
        f"README.md code blocks at lines {unmarked} have no <!-- readme-test: NAME --> or "
        "<!-- readme-test: skip REASON --> marker (see tests/integration/test_readme.py)"
    )
    for block in blocks(README.read_text(encoding="utf-8")):
        if block.marker and block.marker.startswith("skip"):
            assert block.marker.removeprefix("skip").strip(), f"line {block.line}: skip why?"


def script(flow: list[Block], ports: dict[int, int], workdir: Path) -> str:
    """One bash script for the flow's blocks, with the README's ports replaced.

    Python blocks are written next to it as ``readme_<line>.py``.
    """
    parts = ["set -euo pipefail"]
    for block in flow:
        text = block.text
        for printed, actual in ports.items():
            text = re.sub(rf"\b{printed}\b", str(actual), text)
        if block.lang in ("sh", "bash", "shell", "console"):
            parts.append(text)
        elif block.lang == "python":
            path = workdir / f"readme_{block.line}.py"
            path.write_text(text)
            parts.append(f"python {path.name}")
        else:
            raise AssertionError(f"README line {block.line}: cannot run a {block.lang!r} block")
    return "\n".join(parts) + "\n"


def run_flow(name: str, workdir: Path) -> subprocess.CompletedProcess[str]:
    base = free_port_range(len(README_PORTS))
    ports = {printed: base + k for k, printed in enumerate(README_PORTS)}
    (workdir / "flow.sh").write_text(script(flows()[name], ports, workdir))
    bindir = str(Path(sys.executable).parent)
    (workdir / "examples").symlink_to(README.parent / "examples")
    (workdir / ".venv").symlink_to(Path(sys.executable).parent.parent)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("SMPCLOUD_") and key != "PYTHONPATH"
    }
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    src = str(README.parent / "src")
    env["PYTHONPATH"] = src  # this checkout's code, whichever tree the venv was installed from
    # Output goes to files, not pipes: a server the flow leaves in the background keeps its
    # inherited descriptors open, and a pipe would never reach end of file.
    with (workdir / "out.txt").open("w") as out, (workdir / "err.txt").open("w") as err:
        proc = subprocess.Popen(
            ["bash", "flow.sh"],
            cwd=workdir,
            env=env,
            stdout=out,
            stderr=err,
            text=True,
            start_new_session=True,
        )
        try:
            proc.wait(timeout=FLOW_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            tail = (workdir / "err.txt").read_text(errors="replace")[-4000:]
            pytest.fail(f"README flow {name!r} did not finish in {FLOW_TIMEOUT} s:\n{tail}")
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
    stdout = (workdir / "out.txt").read_text(errors="replace")
    stderr = (workdir / "err.txt").read_text(errors="replace")
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def flow_names() -> list[str]:
    return sorted(flows())


@pytest.mark.parametrize("name", flow_names())
def test_readme_flow_runs_as_printed(name: str, tmp_path: Path) -> None:
    done = run_flow(name, tmp_path)
    if done.returncode != 0 and "address already in use" in done.stderr.lower():
        (tmp_path / "again").mkdir()
        done = run_flow(name, tmp_path / "again")  # a port was taken meanwhile
    assert done.returncode == 0, (
        f"README flow {name!r} failed (exit {done.returncode}):\n"
        f"--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-5000:]}"
    )
    assert "Traceback" not in done.stderr

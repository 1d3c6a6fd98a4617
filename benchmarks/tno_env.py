"""TNO's own virtualenv for issue 16's benchmark, made on demand outside git.

``benchmarks/tno_dkg.py`` runs TNO's distributed Paillier key generation, which must not share
smpcloud's virtualenv (its pins would fight ours). This module creates ``.bench-venvs/tno/`` at
the repository root (ignored by git) once, installs there the pinned TNO packages listed in
``PINS`` with gmpy2 (TNO's fastest configuration: its modular arithmetic then goes through GMP,
as ours does), and returns the path of that virtualenv's python. Only the standard library is
used, so the lead's ``bench_dkg.py`` can call it from any interpreter::

    from tno_env import run_tno_dkg
    result = run_tno_dkg(parties=3, bits=1024, timeout=900)   # the runner's JSON line, a dict

or from a shell, which prints the python's path (installing on the first call)::

    python benchmarks/tno_env.py

Why these pins: ``tno.mpc.protocols.distributed-keygen`` 4.3.0 (the newest) asks for
``tno.mpc.communication ~= 4.8``, but pip then picks ``tno.mpc.encryption_schemes.utils``
0.16, whose import fails unless ``tno.mpc.communication`` 5 is there; 0.15.0 is the newest
``utils`` that works with communication 4.x. Everything TNO-made is pinned, with gmpy2 and
sympy, so that the figure means the same code on every run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

#: The repository root (this file lives in benchmarks/).
ROOT = Path(__file__).resolve().parent.parent
#: Where TNO's virtualenv goes (in .gitignore).
VENV = ROOT / ".bench-venvs" / "tno"
#: The runner executed inside that virtualenv.
RUNNER = Path(__file__).resolve().parent / "tno_dkg.py"
#: Exact versions installed: the key generation, its TNO dependencies, gmpy2 and sympy.
PINS = (
    "tno.mpc.protocols.distributed-keygen[gmpy]==4.3.0",
    "tno.mpc.communication==4.12.0",
    "tno.mpc.encryption_schemes.paillier==3.2.0",
    "tno.mpc.encryption_schemes.shamir==1.3.2",
    "tno.mpc.encryption_schemes.templates==4.2.1",
    "tno.mpc.encryption_schemes.utils==0.15.0",
    "gmpy2==2.3.2",
    "sympy==1.14.0",
)
#: Written into the virtualenv once every pin is installed; a change of PINS reinstalls.
MARKER = "smpcloud-bench-pins.txt"


def _python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def tno_python(venv: Path = VENV) -> Path:
    """Return the python of TNO's virtualenv, creating and filling it on the first call.

    Progress goes to stderr while installing (the first call took about 30 s here); later
    calls only read a marker file.

    Args:
        venv: where the virtualenv lives (default ``.bench-venvs/tno`` at the repo root).

    Returns:
        The path of that virtualenv's python interpreter.

    Raises:
        RuntimeError: if creating the virtualenv or installing the pins fails (pip's last
            lines are in the message).
    """
    python = _python(venv)
    marker = venv / MARKER
    wanted = "\n".join(PINS) + "\n"
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return python
    where = venv.relative_to(ROOT) if venv.is_relative_to(ROOT) else venv
    print(f"installing TNO's distributed keygen into {where} (once) ...", file=sys.stderr)
    steps = [
        [sys.executable, "-m", "venv", "--clear", str(venv)],
        [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q", *PINS],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-5:])
            raise RuntimeError(f"{' '.join(step[:4])} ... failed:\n{tail}")
    marker.write_text(wanted)
    print(f"installed TNO's distributed keygen into {where}", file=sys.stderr)
    return python


def run_tno_dkg(
    parties: int,
    bits: int,
    *,
    timeout: float = 900.0,
    extra_args: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Run TNO's distributed key generation once (``tno_dkg.py`` in TNO's virtualenv).

    Args:
        parties: number of key holders, each its own process on 127.0.0.1.
        bits: the key length asked of TNO (its modulus comes out 2 to 4 bits longer).
        timeout: seconds of key generation after which every party is killed.
        extra_args: further options for the runner, e.g. ``("--no-tls",)``.

    Returns:
        The runner's JSON line as a dict: ``{"parties", "bits", "seconds", "status",
        "detail"}``, with ``status`` one of ``"ok"``, ``"timeout"``, ``"error"``.

    Raises:
        RuntimeError: if TNO's virtualenv cannot be made, or the runner prints no JSON line
            (or hangs well past ``timeout``: it and its parties are then killed).
    """
    command = [str(tno_python()), str(RUNNER), "--parties", str(parties), "--bits", str(bits)]
    command += ["--timeout", str(timeout), *extra_args]
    # The runner kills its parties at the timeout itself; this is a backstop with a margin for
    # start-up and the check. Its own session lets the backstop kill the parties with it.
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    ) as runner:
        try:
            stdout, stderr = runner.communicate(timeout=timeout + 600)
        except subprocess.TimeoutExpired:
            os.killpg(runner.pid, signal.SIGKILL)
            runner.communicate()
            raise RuntimeError(f"tno_dkg.py hung past {timeout + 600:.0f} s; killed") from None
    lines = stdout.strip().splitlines()
    if not lines:
        raise RuntimeError(f"tno_dkg.py printed nothing: {stderr.strip()[-500:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


if __name__ == "__main__":
    try:
        print(tno_python())
    except RuntimeError as exc:
        print(f"tno_env: {exc}", file=sys.stderr)
        sys.exit(1)

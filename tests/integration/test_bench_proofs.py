"""The validity-proof benchmark's quick run works end to end (a real subprocess)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_proofs_quick_run() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        [sys.executable, "bench_proofs.py", "--quick"],
        cwd=ROOT / "benchmarks",
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert "| unpacked | 1 " in out and "| packed   | 10 " in out
    assert "scalar proof <= 50 ms to prove" in out and "scalar proof <= 20 ms to verify" in out
    assert "# Shamir validity checks" in out  # both modes by default

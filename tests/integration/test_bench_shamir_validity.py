"""``benchmarks/bench_shamir_validity.py --quick`` runs (a smoke test of the benchmark)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_benchmark_runs_and_prints_the_target() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_shamir_validity.py"), "--quick"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    lines = out.stdout.splitlines()
    assert any(line.startswith("| 1,000 ") for line in lines)
    target = [line for line in lines if line.startswith("target: preparation of length 1,000")]
    assert len(target) == 1 and ("[PASS]" in target[0] or "[FAIL]" in target[0])

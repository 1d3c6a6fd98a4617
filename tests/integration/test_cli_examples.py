"""``smpcloud example``: each use case as a user runs it (a subprocess), at a small size."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from test_cli import run


def test_example_regression_prints_coefficients_within_tolerance(tmp_path: Path) -> None:
    out = run(
        "example", "regression", "--customers", "200", "--transport", "memory",
        "--out", str(tmp_path), "--json",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    secure = np.array(result["secure"], dtype=float)
    reference = np.array(result["reference"], dtype=float)  # the same estimator in the clear
    tolerance = np.array(result["tolerance"], dtype=float)
    assert secure.shape == reference.shape == (6,)
    assert np.all(np.abs(secure - reference) <= tolerance)
    assert (tmp_path / "regression_coefficients.png").stat().st_size > 0


def test_example_stats_peer_mode_reports_the_revealed_outputs(tmp_path: Path) -> None:
    out = run("example", "stats", "--mode", "peer", "--transport", "memory", "--out", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert "revealed" in out.stdout.lower()
    assert any(p.suffix == ".png" for p in tmp_path.iterdir())


def test_example_bad_option_gets_a_usage_error() -> None:
    out = run("example", "federated", "--hospitals", "1")
    assert out.returncode == 2
    assert "hospitals" in out.stderr

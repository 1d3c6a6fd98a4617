"""``smpcloud bench``: Figure 7 and Table 1 as a user runs them (a subprocess), small sizes."""

from __future__ import annotations

import csv
from pathlib import Path

from test_cli import run


def test_bench_fig7_writes_csv_and_plot_for_each_phase(tmp_path: Path) -> None:
    out = run(
        "bench", "fig7", "--max-clients", "10", "--modes", "shamir", "--out", str(tmp_path)
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    lines = [ln for ln in (tmp_path / "figure7.csv").read_text().splitlines() if ln[:1] != "#"]
    rows = list(csv.DictReader(lines))
    assert {r["phase"] for r in rows} == {
        "client sharing", "upload", "aggregation", "reconstruction"
    }  # fmt: skip
    assert all(r["mode"] == "shamir" and int(r["clients"]) == 10 for r in rows)
    assert all(float(r["seconds"]) > 0 for r in rows)
    assert (tmp_path / "figure7.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_rejects_a_bad_size_with_a_usage_error(tmp_path: Path) -> None:
    out = run("bench", "fig7", "--max-clients", "3", "--out", str(tmp_path))
    assert out.returncode == 2
    assert "max-clients" in out.stderr
    assert not (tmp_path / "figure7.csv").exists()

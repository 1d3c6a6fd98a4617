"""Peer MPC across separate processes over mutually authenticated TLS, via the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from smpcloud.ports import free_port_range

SMPCLOUD = [sys.executable, "-m", "smpcloud"]
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "three_hospitals.py"


def test_the_three_hospitals_example_matches_the_plaintext() -> None:
    out = subprocess.run(
        [sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=300, check=False
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    learned = [line.split("learned: ")[1] for line in lines if "learned:" in line]
    clear = lines[-1].split("comparison:")[1].split()
    assert len(learned) == 3
    for line in learned:
        for got, want in zip(line.split(), clear, strict=True):
            name, value = got.split("=")
            assert name == want.split("=")[0]
            assert float(value) == pytest.approx(float(want.split("=")[1]), abs=2e-4)


def deployment(tmp_path: Path, parties: int = 3) -> Path:
    base = free_port_range(4)
    done = subprocess.run(
        [
            *SMPCLOUD,
            "certs",
            "--parties",
            str(parties),
            "--base-port",
            str(base),
            "--out",
            str(tmp_path / "dep"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return tmp_path / "dep" / "parties.toml"


def party(config: Path, i: int, csv: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            *SMPCLOUD,
            "party",
            "--config",
            str(config),
            "--id",
            str(i),
            "--input",
            str(csv),
            "--json",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_sum_and_sum_of_squares_over_tls(tmp_path: Path) -> None:
    config = deployment(tmp_path)
    data = {1: [1.5, -2.25, 10.0], 2: [4.0], 3: [0.5, 0.5, 7.75, -1.0]}
    for i, vals in data.items():
        (tmp_path / f"{i}.csv").write_text("\n".join(map(str, vals)) + "\n")
    dealer = subprocess.Popen(
        [*SMPCLOUD, "dealer", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    procs = [
        party(config, i, tmp_path / f"{i}.csv", "--compute", "sum,sum_of_squares,count")
        for i in data
    ]
    results = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr
        results.append(json.loads(stdout))
    dealer.communicate(timeout=60)
    everything = np.concatenate([np.array(v) for v in data.values()])
    for r in results:
        assert r["count"] == everything.size
        assert r["sum"] == pytest.approx(everything.sum(), abs=1e-4)
        assert r["sum_of_squares"] == pytest.approx((everything**2).sum(), abs=1e-3)


def test_a_party_that_never_comes_is_named(tmp_path: Path) -> None:
    config = deployment(tmp_path)
    text = config.read_text().replace("timeout = 30.0", "timeout = 2.0")
    text = text.replace("connect_timeout = 60.0", "connect_timeout = 3.0")
    config.write_text(text)
    (tmp_path / "x.csv").write_text("1\n2\n")
    # Parties 1 and 2 and the dealer start; party 3 never does: setup must fail, naming it.
    dealer = subprocess.Popen(
        [*SMPCLOUD, "dealer", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    procs = [party(config, i, tmp_path / "x.csv") for i in (1, 2)]
    try:
        for proc in procs:
            _, stderr = proc.communicate(timeout=150)
            assert proc.returncode == 1
            assert "3" in stderr and "Error" in stderr
    finally:
        dealer.kill()
        dealer.wait()


def test_bad_statistic_and_bad_csv_get_clear_messages(tmp_path: Path) -> None:
    config = deployment(tmp_path)
    (tmp_path / "bad.csv").write_text("bmi\n1.0\nabc\n")
    out = subprocess.run(
        [
            *SMPCLOUD,
            "party",
            "--config",
            str(config),
            "--id",
            "1",
            "--input",
            str(tmp_path / "bad.csv"),
            "--compute",
            "median",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert out.returncode == 1 and "unknown statistic(s) median" in out.stderr
    out = subprocess.run(
        [
            *SMPCLOUD,
            "party",
            "--config",
            str(config),
            "--id",
            "1",
            "--input",
            str(tmp_path / "bad.csv"),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert out.returncode == 1 and "row 3" in out.stderr and "not a number" in out.stderr
    out = subprocess.run(
        [
            *SMPCLOUD,
            "party",
            "--config",
            str(config),
            "--id",
            "9",
            "--input",
            str(tmp_path / "bad.csv"),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert out.returncode == 1 and "party 9 is not in the deployment" in out.stderr

"""A new user's first hour with peer MPC, through the CLI as the README prints it.

Each test reproduces a finding of issue 13: where the input CSV comes from and what it must look
like, the dealer-free command computing on another column than asked, ``smpcloud certs`` refusing
to replace a deployment, and a missing peer meaning a minute of silence.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from smpcloud.datasets import DIABETES_COLUMNS, diabetes_table
from smpcloud.ports import free_port_range

SMPCLOUD = [sys.executable, "-m", "smpcloud"]


def smpcloud(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SMPCLOUD, *args], capture_output=True, text=True, check=False, timeout=timeout
    )


def one_clear_line(out: subprocess.CompletedProcess[str]) -> str:
    """A user error: exit status 1, no traceback, the message on one line of stderr."""
    assert out.returncode == 1, (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, out.stderr
    return errors[0]


def certs(out: Path, *extra: str) -> Path:
    done = smpcloud(
        "certs", "--parties", "3", "--base-port", str(free_port_range(4)), *extra, "--out", str(out)
    )
    assert done.returncode == 0, done.stderr
    return out / "parties.toml"


def parties(config: Path, data: Path, *extra: str) -> list[subprocess.Popen[str]]:
    return [
        subprocess.Popen(
            [
                *SMPCLOUD,
                "party",
                "--config",
                str(config),
                "--id",
                str(i),
                "--input",
                str(data / f"hospital-{i}.csv"),
                "--json",
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in (1, 2, 3)
    ]


# -- (1) where the input CSV comes from, and what it must look like ---------------------------


def test_party_help_says_what_the_input_file_is() -> None:
    out = smpcloud("party", "--help")
    assert out.returncode == 0
    text = " ".join(out.stdout.split())
    for needed in ("header row", "--column", "missing", "smpcloud example split-diabetes"):
        assert needed in text, needed


def test_split_diabetes_writes_the_hospitals_csv_files(tmp_path: Path) -> None:
    out = smpcloud("example", "split-diabetes", "--parties", "3", "--out", str(tmp_path / "data"))
    assert out.returncode == 0, out.stderr
    table = diabetes_table()
    rows = []
    for i in (1, 2, 3):
        lines = (tmp_path / "data" / f"hospital-{i}.csv").read_text().splitlines()
        assert lines[0] == ",".join(DIABETES_COLUMNS)
        rows += [[float(cell) for cell in line.split(",")] for line in lines[1:]]
        assert f"hospital-{i}.csv" in out.stdout
    assert "--column bmi" in out.stdout  # the next command, as the user types it
    got = np.array(rows)
    assert got.shape == table.shape
    np.testing.assert_allclose(np.sort(got[:, 2]), np.sort(table[:, 2]))
    # A second run refuses to replace the files, in one line naming --force; --force replaces.
    again = smpcloud("example", "split-diabetes", "--parties", "3", "--out", str(tmp_path / "data"))
    line = one_clear_line(again)
    assert "--force" in line and "hospital-1.csv" in line
    forced = smpcloud(
        "example", "split-diabetes", "--parties", "2", "--force", "--out", str(tmp_path / "data")
    )
    assert forced.returncode == 0, forced.stderr


@pytest.mark.parametrize(
    ("text", "column", "expected"),
    [
        ("age,bmi\n50,27.1\n", None, "2 columns (age, bmi): choose one with --column"),
        ("age,bmi\n50,27.1\n", "weight", "no column 'weight' (age, bmi)"),
        ("age,bmi\n50,\n", "bmi", "row 2, column 'bmi': missing value"),
        ("age,bmi\n50,27.1\n51\n", "bmi", "row 3, column 'bmi': missing value"),
        ("age,bmi\n50,nan\n", "bmi", "row 2, column 'bmi': not a finite number"),
        ("1.0\n2.0\n", "3", "no column 3 (the file has 1)"),
    ],
)
def test_bad_input_files_get_one_clear_line(
    tmp_path: Path, text: str, column: str | None, expected: str
) -> None:
    config = certs(tmp_path / "deploy")
    (tmp_path / "in.csv").write_text(text)
    out = smpcloud(
        "party",
        "--config",
        str(config),
        "--id",
        "1",
        "--input",
        str(tmp_path / "in.csv"),
        *(["--column", column] if column else []),
    )
    assert expected in one_clear_line(out)


# -- (2) the dealer-free command computed on the first column, not the one asked -------------


def test_dealer_free_flow_of_the_readme_computes_on_the_asked_column(tmp_path: Path) -> None:
    """The README's dealer-free command had no --column: it silently averaged the age."""
    data = tmp_path / "data"
    assert (
        smpcloud("example", "split-diabetes", "--parties", "3", "--out", str(data)).returncode == 0
    )
    config = certs(tmp_path / "deploy", "--no-dealer")
    # Without --column the multi-column file is refused, naming the columns, before any network.
    refused = smpcloud(
        "party",
        "--config",
        str(config),
        "--id",
        "1",
        "--input",
        str(data / "hospital-1.csv"),
        "--triples",
        "ot",
    )
    assert "choose one with --column" in one_clear_line(refused)
    procs = parties(config, data, "--column", "bmi", "--triples", "ot", "--compute", "count,mean")
    results = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=180)
        assert proc.returncode == 0, stderr
        results.append(json.loads(stdout))
    table = diabetes_table()
    for r in results:
        assert r["column"] == "bmi"
        assert r["count"] == table.shape[0]
        assert r["mean"] == pytest.approx(table[:, 2].mean(), abs=1e-4)  # bmi, not age


# -- (3) a second `smpcloud certs` into the same directory --------------------------------------


def test_certs_refuses_to_replace_a_deployment_without_force(tmp_path: Path) -> None:
    out = tmp_path / "deploy"
    config = certs(out)
    before = (out / "ca.pem").read_bytes()
    again = smpcloud("certs", "--parties", "3", "--no-dealer", "--out", str(out))
    line = one_clear_line(again)
    assert "--force" in line and str(out) in line
    assert (out / "ca.pem").read_bytes() == before
    forced = smpcloud("certs", "--parties", "2", "--no-dealer", "--force", "--out", str(out))
    assert forced.returncode == 0, forced.stderr
    assert (out / "ca.pem").read_bytes() != before
    text = config.read_text()
    assert "id = 0" not in text and "id = 3" not in text and "id = 2" in text
    # The old deployment's endpoint files are gone; the new keys are 0600.
    assert not (out / "party-0-key.pem").exists() and not (out / "party-3.pem").exists()
    for name in ("ca-key.pem", "party-1-key.pem", "party-2-key.pem"):
        assert stat.S_IMODE(os.stat(out / name).st_mode) == 0o600, name


# -- (4) a missing peer meant a minute of silence ------------------------------------------------


def short_timeouts(config: Path, connect_timeout: float = 4.0) -> dict[int, str]:
    """Shorten the deployment's timeouts; return each endpoint's host:port."""
    text = config.read_text().replace("timeout = 30.0", "timeout = 3.0")
    config.write_text(
        text.replace("connect_timeout = 60.0", f"connect_timeout = {connect_timeout}")
    )
    from smpcloud.mpc.config import load_deployment

    return {i: f"{h}:{p}" for i, (h, p) in load_deployment(config).addresses().items()}


def assert_waited_then_named(stderr: str, me: str, missing: str, address: str) -> None:
    """stderr: progress lines naming the absent endpoint and its address, then one error."""
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    waiting = [line for line in lines if line.startswith(f"{me}: waiting for")]
    assert waiting, stderr
    assert f"{missing} at {address}" in waiting[0] and "s of 4 s)" in waiting[0]
    assert lines[-1].startswith("Error:") and f"{missing} at {address}" in lines[-1], stderr
    assert "within 4 s" in lines[-1]


def test_a_party_waiting_for_a_missing_peer_says_so_then_names_it(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("bmi\n1\n2\n")
    config = certs(tmp_path / "deploy", "--no-dealer")
    addresses = short_timeouts(config)
    procs = [
        subprocess.Popen(
            [*SMPCLOUD, "party", "--config", str(config), "--id", str(i),
             "--input", str(tmp_path / "x.csv")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in (1, 2)
    ]  # fmt: skip
    for i, proc in enumerate(procs, start=1):
        _, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 1, stderr
        assert_waited_then_named(stderr, f"party {i}", "party 3", addresses[3])


def test_the_dealer_waiting_for_parties_says_so_then_names_them(tmp_path: Path) -> None:
    config = certs(tmp_path / "deploy")
    addresses = short_timeouts(config)
    out = smpcloud("dealer", "--config", str(config))
    assert out.returncode == 1
    assert_waited_then_named(out.stderr, "dealer", "party 1", addresses[1])
    assert f"party 3 at {addresses[3]}" in out.stderr.strip().splitlines()[-1]


def test_dealer_free_parties_do_not_wait_for_the_deployments_dealer(tmp_path: Path) -> None:
    """`--triples ot` in a deployment that lists a dealer: nobody waits for id 0."""
    (tmp_path / "x.csv").write_text("1.5\n2.5\n")
    config = certs(tmp_path / "deploy")  # with a dealer, which is never started
    short_timeouts(config, connect_timeout=30.0)
    procs = [
        subprocess.Popen(
            [*SMPCLOUD, "party", "--config", str(config), "--id", str(i),
             "--input", str(tmp_path / "x.csv"), "--triples", "ot", "--compute", "sum", "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in (1, 2, 3)
    ]  # fmt: skip
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr
        assert json.loads(stdout)["sum"] == pytest.approx(12.0, abs=1e-4)
        assert "dealer" not in stderr

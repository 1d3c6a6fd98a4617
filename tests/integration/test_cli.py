"""The smpcloud command, run as a subprocess exactly as a user would."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

from smpcloud.crypto import threshold
from smpcloud.keyfiles import load_roster, load_signing_key, read_json

SMPCLOUD = [sys.executable, "-m", "smpcloud"]


def run(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SMPCLOUD, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_help_lists_every_command() -> None:
    out = run("--help")
    assert out.returncode == 0
    for command in ("demo", "keygen", "serve", "task", "certify", "submit", "decrypt", "result"):
        assert command in out.stdout
    for sub in ("create", "close", "status"):
        assert sub in run("task", "--help").stdout


def test_primitives_demo_json_sums_agree() -> None:
    out = run("demo", "--primitives", "--clients", "7", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["clients"] == 7
    assert data["sum"] == data["plaintext_sum"] == data["paillier"]["sum"]


def test_keygen_writes_a_usable_key_with_private_shares(tmp_path: Path) -> None:
    out = run(
        "keygen", "--holders", "3", "--threshold", "2", "--bits", "2048", "--out", str(tmp_path)
    )
    assert out.returncode == 0, out.stderr
    pk = threshold.public_key_from_json(read_json(tmp_path / "public_key.json"))
    shares = [
        threshold.key_share_from_json(read_json(tmp_path / f"key_share_{i}.json"))
        for i in (1, 2, 3)
    ]
    for i in (1, 2, 3):
        assert stat.S_IMODE((tmp_path / f"key_share_{i}.json").stat().st_mode) == 0o600
        assert stat.S_IMODE((tmp_path / f"signing_key_{i}.json").stat().st_mode) == 0o600
    roster = load_roster(tmp_path / "holders.json")
    assert (roster.threshold, sorted(roster.keys)) == (2, [1, 2, 3])
    assert stat.S_IMODE((tmp_path / "holders.json").stat().st_mode) == 0o644
    for i in (1, 2, 3):
        assert load_signing_key(tmp_path / f"signing_key_{i}.json").verify_key == roster.keys[i]
    assert f"holders fingerprint {roster.digest()}" in out.stdout
    c = pk.encrypt(-31) + pk.encrypt(10)
    assert (
        threshold.combine(pk, [shares[2].partial_decrypt(c), shares[0].partial_decrypt(c)]) == -21
    )
    again = run(
        "keygen", "--holders", "3", "--threshold", "2", "--bits", "2048", "--out", str(tmp_path)
    )
    assert again.returncode == 1 and "overwrite" in again.stderr


def test_bad_parameters_get_a_message_not_a_traceback(tmp_path: Path) -> None:
    out = run("keygen", "--holders", "3", "--threshold", "4", "--out", str(tmp_path))
    assert out.returncode == 2 and "threshold 4 exceeds holders 3" in out.stderr
    assert "Traceback" not in out.stderr
    out = run("submit", "--task", "x", "1.0", env={"SMPCLOUD_TOKEN": ""})
    assert out.returncode == 2 and "token" in out.stderr


def test_service_demo_json_matches_plaintext() -> None:
    out = run("demo", "--clients", "12", "--json", timeout=300)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["clients"] == data["count"] == 12
    assert len(data["key_holders"]["used"]) == 3
    # Fixed point with 16 fractional bits: each value is within 2^-17, the average too.
    assert abs(data["average"] - data["plaintext_average"]) <= 2**-17
    assert abs(data["sum"] - data["plaintext_sum"]) <= 12 * 2**-17
    assert set(data["seconds"]) >= {"key_ceremony", "encrypt_and_upload", "threshold_decryption"}


def test_service_demo_with_a_distributed_key_matches_plaintext() -> None:
    """`smpcloud demo --distributed-key`: the holders, each a process over mutual TLS, make
    the key with no dealer; the average is as exact as with a dealt key."""
    out = run(
        "demo",
        "--distributed-key",
        "--clients",
        "6",
        "--holders",
        "3",
        "--threshold",
        "2",
        "--json",
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["key"] == "distributed (no dealer)"
    assert data["count"] == 6 and len(data["key_holders"]["used"]) == 2
    assert abs(data["average"] - data["plaintext_average"]) <= 2**-17
    assert data["key"] != "dealer"
    refused = run("demo", "--distributed-key", "--holders", "2", "--threshold", "2")
    assert refused.returncode == 2 and "at least 3 holders" in refused.stderr

"""Table 1 at a tiny size: the four ways and the peers on the same data, checked."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from service_harness import Key

from smpcloud.errors import InvalidInputError
from smpcloud.evaluation.table1 import run_table1


def test_table1_tiny_run(tmp_path: Path, key: Key) -> None:
    mpyc_loaded = "mpyc" in sys.modules
    result = run_table1(
        clients=20, bits=1024, out=tmp_path / "t1", key=key, allow_insecure_keys=True
    )
    assert result.path == tmp_path / "t1" / "table1.md"
    text = result.path.read_text(encoding="utf-8")
    assert text == result.markdown
    assert "cryptographic level (no HTTP" in text
    assert (
        "| method | time per client | server time | release | bytes per client | "
        "what the server learns |"
    ) in text
    methods = [row.method for row in result.rows]
    assert methods[:5] == [
        "plaintext (no privacy)",
        "traditional encryption (AES-256-GCM, server holds the key)",
        "Paillier SMPC, classic r^n encryption (one-shot device)",
        "Paillier SMPC, fast DJN encryption (table built)",
        "Shamir SMPC (3 servers, t = 2)",
    ]
    for row in result.rows[:5]:
        assert row.method in text
        assert row.client_seconds is not None and row.client_seconds > 0
        assert row.server_seconds is not None and row.server_seconds > 0
        assert row.bytes_per_client is not None and row.bytes_per_client > 0
        assert not row.peer and not row.skipped
    plaintext, aes, classic, fast, shamir = result.rows[:5]
    assert "every value" in plaintext.server_learns and "every value" in aes.server_learns
    assert classic.release_seconds and fast.release_seconds and shamir.release_seconds
    assert plaintext.bytes_per_client < aes.bytes_per_client < classic.bytes_per_client
    assert classic.bytes_per_client == fast.bytes_per_client
    peers = result.rows[5:]
    assert [row.peer for row in peers] == [True, True]
    for row in peers:  # measured when installed (the bench extra), else marked skipped
        assert row.skipped or (row.server_seconds is not None and row.server_seconds > 0)
    # MPyC runs in subprocesses only: importing it here would parse this process's argv.
    assert mpyc_loaded or "mpyc" not in sys.modules


def test_table1_refuses_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError):
        run_table1(clients=1, out=tmp_path)
    with pytest.raises(InvalidInputError, match="insecure"):
        run_table1(clients=10, bits=1024, out=tmp_path)

"""Figure 7 at a tiny size: real servers, both modes, the CSV, the plot and the checks."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
from service_harness import Key

from smpcloud.datasets import patient_bmis
from smpcloud.errors import InvalidInputError, VerificationError
from smpcloud.evaluation.figure7 import (
    PAILLIER_PHASES,
    SHAMIR_CHECKED_ENCODING,
    SHAMIR_PHASES,
    check_secure_sum,
    client_counts_up_to,
    run_figure7,
)

COUNTS = (3, 10)


def read_rows(path: Path) -> tuple[list[str], list[str], list[dict[str, str]]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    comments = [line for line in lines if line.startswith("#")]
    reader = csv.DictReader(line for line in lines if not line.startswith("#"))
    return comments, list(reader.fieldnames or []), list(reader)


def test_figure7_tiny_run_writes_checked_rows(tmp_path: Path, key: Key) -> None:
    calls: list[tuple[int, int, str]] = []
    result = run_figure7(
        client_counts=COUNTS,
        bits=1024,
        workers=2,
        connections=4,
        out=tmp_path / "fig7",
        progress=lambda done, total, what: calls.append((done, total, what)),
        key=key,
        allow_insecure_keys=True,
    )
    comments, header, rows = read_rows(result.csv_path)
    assert result.csv_path == tmp_path / "fig7" / "figure7.csv"
    assert header == ["mode", "clients", "phase", "seconds"]
    assert any("pinned key object" in line for line in comments)
    assert any("one-shot device" in line for line in comments)
    expected = [("paillier", n, p) for n in COUNTS for p in PAILLIER_PHASES] + [
        ("shamir", n, p) for n in COUNTS for p in SHAMIR_PHASES
    ]
    assert [(r["mode"], int(r["clients"]), r["phase"]) for r in rows] == expected
    for row in rows:
        seconds = float(row["seconds"])
        assert math.isfinite(seconds) and seconds > 0
    assert [(r.mode, r.clients, r.phase) for r in result.rows] == expected
    assert result.png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert result.dealer_seconds is None  # the key was passed in

    # The secure results were checked against the plaintext (by the function); recheck here.
    assert [(c.mode, c.clients) for c in result.checks] == [
        (m, n) for m in ("paillier", "shamir") for n in COUNTS
    ]
    for check in result.checks:
        assert check.count == check.clients
        # Rounding: 2^-(f + 1) per value, f = 16 (Paillier) or 8 (checked Shamir tasks: their
        # sums must stay below a 32-bit prime).
        frac = 16 if check.mode == "paillier" else SHAMIR_CHECKED_ENCODING.frac_bits
        assert abs(check.secure_average - check.plaintext_average) <= 2 ** -(frac + 1)
        assert check.uploads == check.clients * (1 if check.mode == "paillier" else 3)
    assert result.total("paillier", 10) == pytest.approx(
        sum(result.seconds("paillier", 10, p) for p in PAILLIER_PHASES)
    )
    assert result.upload_rate("shamir", 3) > 0

    # Progress: one call per step, in order, ending with (total, total, "done").
    assert calls[-1] == (calls[-1][1], calls[-1][1], "done")
    assert [c[0] for c in calls] == list(range(len(calls)))
    assert any("threshold decryption" in c[2] for c in calls)


def test_wrong_secure_sum_or_count_is_detected() -> None:
    values = patient_bmis(10)
    encoded = sum(round(float(v) * 2**16) for v in values)
    check_secure_sum(count=10, secure_sum=encoded / 2**16, values=values)
    with pytest.raises(VerificationError, match="secure sum"):
        check_secure_sum(count=10, secure_sum=(encoded + 1) / 2**16, values=values)
    with pytest.raises(VerificationError, match="count"):
        check_secure_sum(count=9, secure_sum=encoded / 2**16, values=values)


def test_bad_arguments_are_refused_before_anything_starts(tmp_path: Path) -> None:
    for kwargs in (
        {"client_counts": ()},
        {"client_counts": (1,)},
        {"client_counts": (10, 10)},
        {"modes": ("paillier", "rsa")},
        {"modes": ()},
        {"connections": 0},
        {"workers": 0},
    ):
        with pytest.raises(InvalidInputError):
            run_figure7(out=tmp_path, **kwargs)  # type: ignore[arg-type]
    assert not list(tmp_path.iterdir())


def test_client_counts_up_to() -> None:
    assert client_counts_up_to(10_000) == (10, 100, 1000, 10_000)
    assert client_counts_up_to(2500) == (10, 100, 1000, 2500)
    assert client_counts_up_to(5) == (5,)
    with pytest.raises(InvalidInputError):
        client_counts_up_to(1)

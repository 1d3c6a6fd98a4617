"""Safe data analysis (apps/statistics): diabetes statistics across hospitals, peer and cloud.

Every released statistic must equal numpy's plaintext computation on the pooled rows within the
bound documented in smpcloud.apps.statistics (counts and histograms exactly).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from smpcloud.apps.aggregation import default_bound
from smpcloud.apps.statistics import (
    BMI_EDGES,
    SummaryLayout,
    derive,
    local_summary,
    plaintext_statistics,
    run_stats,
)
from smpcloud.datasets import DIABETES_COLUMNS, diabetes_hospitals
from smpcloud.errors import InvalidInputError

PNG = b"\x89PNG\r\n\x1a\n"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def check(result: object) -> None:
    from smpcloud.apps.statistics import StatsResult

    assert isinstance(result, StatsResult)
    assert result.count == result.plaintext_count
    for name, comp in result.comparisons.items():
        assert comp.within_bound, (name, comp.abs_error, comp.bound)
    hist = result.comparisons["histogram"]
    assert np.array_equal(hist.secure, hist.plaintext)
    assert hist.secure.sum() == result.count
    assert result.within_bounds
    json.dumps(result.to_json())  # JSON-ready


def test_summary_vectors_add_up_to_the_pooled_statistics() -> None:
    """Without any fixed point, the summed summaries give numpy's statistics (float rounding)."""
    tables = diabetes_hospitals(4, ("age", "bmi", "progression"), seed=3)
    summaries = [local_summary(t, t[:, 1], BMI_EDGES) for t in tables]
    layout = SummaryLayout(3, len(BMI_EDGES) + 1)
    assert summaries[0].shape == (layout.length,)
    derived = derive(np.sum(summaries, axis=0), layout, uploads=4, frac_bits=20)
    pooled = np.vstack(tables)
    plain = plaintext_statistics(pooled, pooled[:, 1], BMI_EDGES)
    for name, (value, bound) in derived.items():
        assert np.all(np.abs(value - plain[name]) <= bound), name


def test_the_split_covers_every_patient_once() -> None:
    tables = diabetes_hospitals(3, DIABETES_COLUMNS)
    assert sum(t.shape[0] for t in tables) == 442
    pooled = np.vstack(tables)
    assert np.unique(pooled, axis=0).shape[0] == 442


def test_peer_mode_small_in_memory() -> None:
    result = run_stats(mode="peer", hospitals=3, rows=120, transport="memory")
    check(result)
    assert result.count == 120
    assert result.details["transport"] == "memory"


def test_peer_mode_small_over_tls_writes_the_plot(tmp_path: Path) -> None:
    result = run_stats(
        mode="peer",
        hospitals=3,
        rows=150,
        columns=("bmi", "bp", "progression"),
        transport="tls",
        out=tmp_path,
    )
    check(result)
    assert result.plot == tmp_path / "stats_peer.png"
    assert result.plot.read_bytes().startswith(PNG)


def test_cloud_mode_small_with_a_test_key() -> None:
    messages: list[str] = []
    result = run_stats(
        mode="cloud",
        hospitals=3,
        rows=100,
        key_bits=1024,
        insecure_keys=True,
        progress=messages.append,
    )
    check(result)
    assert result.uploads == 3
    assert any("key holders decrypt" in m for m in messages)
    # 27 summary values as one packed task: 1024-bit key, slots of 64 + 2 bits for 3 clients,
    # floor(1022 / 66) = 15 values per ciphertext, so 2 ciphertexts per client
    assert result.details["ciphertexts_per_client"] == 2


def test_bad_parameters_are_refused_before_anything_runs() -> None:
    with pytest.raises(InvalidInputError, match="unknown column"):
        run_stats(columns=("age", "weight"), transport="memory")
    with pytest.raises(InvalidInputError, match="two hospitals"):
        run_stats(hospitals=1, transport="memory")
    with pytest.raises(InvalidInputError, match="increasing"):
        run_stats(edges=(30.0, 20.0), transport="memory")
    with pytest.raises(InvalidInputError, match="mode"):
        run_stats(mode="carrier-pigeon", transport="memory")  # type: ignore[arg-type]


def test_the_default_bound_is_the_widest_a_packed_task_encodes() -> None:
    from smpcloud.crypto.packing import Packing

    for frac_bits in (0, 20, 48):
        bound = default_bound(frac_bits)
        assert bound * 2**frac_bits == 2**62
        layout = Packing(
            length=1,
            key_bits=2048,
            min_value=-bound,
            max_value=bound,
            max_additions=3,
            frac_bits=frac_bits,
        )
        assert layout.span == 2**63
    with pytest.raises(InvalidInputError, match="frac_bits"):
        default_bound(49)


@pytest.mark.slow
def test_full_size_peer_mode_over_tls_all_columns(tmp_path: Path) -> None:
    result = run_stats(
        mode="peer", hospitals=3, columns=DIABETES_COLUMNS, transport="tls", out=tmp_path
    )
    check(result)
    assert result.count == 442


@pytest.mark.slow
def test_full_size_cloud_mode_with_a_real_2048_bit_key(tmp_path: Path) -> None:
    result = run_stats(mode="cloud", hospitals=5, key_bits=2048, out=tmp_path)
    check(result)
    assert result.count == 442
    assert result.details["key_bits"] == 2048
    assert result.plot is not None and result.plot.read_bytes().startswith(PNG)


@pytest.mark.slow
def test_full_size_cloud_mode_one_client_per_patient() -> None:
    result = run_stats(mode="cloud", hospitals=3, cloud_clients="patients", key_bits=2048)
    check(result)
    assert result.uploads == 442


@pytest.mark.slow
def test_the_example_script_runs_both_modes(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / "stats.py"), "--json", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    reports = json.loads(out.stdout)
    assert [r["mode"] for r in reports] == ["peer", "cloud"]
    assert all(r["within_bounds"] and r["count"] == 442 for r in reports)
    assert (tmp_path / "stats_peer.png").exists() and (tmp_path / "stats_cloud.png").exists()


def test_cloud_sums_are_exact_fixed_point_and_out_of_bound_values_are_refused() -> None:
    from smpcloud.apps.aggregation import ServiceAggregator
    from smpcloud.errors import OverflowDetectedError

    rng = np.random.default_rng(11)
    vectors = [rng.uniform(-1000.0, 1000.0, 40) for _ in range(3)]
    with ServiceAggregator(key_bits=1024, insecure_keys=True, frac_bits=20) as service:
        total = service.aggregate(vectors, name="exact")
        encoded = sum(np.rint(v * 2**20) for v in vectors)
        assert np.array_equal(total, encoded / 2**20)
        # 40 values, 15 per 1024-bit plaintext: 3 ciphertexts
        assert service.ciphertexts_decrypted == 3
        with pytest.raises(OverflowDetectedError):
            service.aggregate([np.array([1.0]), np.array([2.0**43])], name="too big")
        narrow = service.aggregate(
            [np.array([0.5, -0.25]), np.array([0.25, 0.5])], name="narrow", bound=1.0
        )
        assert narrow.tolist() == [0.75, 0.25]
        for bad in (0.0, -1.0, float("nan"), 2.0**43):
            with pytest.raises(InvalidInputError, match="bound must be"):
                service.aggregate([np.zeros(2), np.zeros(2)], bound=bad)
        with pytest.raises(InvalidInputError, match="frac_bits"):
            service.aggregate([np.zeros(2), np.zeros(2)], frac_bits=60)

"""Federated logistic regression (apps/federated) on the breast-cancer dataset.

The claims asserted: secure federated averaging reaches the test accuracy of scikit-learn's
centralised LogisticRegression within 1 percentage point, and matches plaintext federated
averaging round by round (the secure sums differ only by fixed-point rounding).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from smpcloud.apps.federated import ACCURACY_TOLERANCE_PP, FederatedResult, run_federated
from smpcloud.datasets import breast_cancer_hospitals
from smpcloud.errors import InvalidInputError

PNG = b"\x89PNG\r\n\x1a\n"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
#: Secure and plaintext FedAvg models differ by fixed-point rounding only (measured ~3e-7).
MODEL_TOLERANCE = 1e-5


def check(result: FederatedResult, *, rounds: int) -> None:
    assert len(result.secure_accuracy) == len(result.plaintext_accuracy) == rounds
    assert result.secure_accuracy == result.plaintext_accuracy
    assert result.max_model_difference <= MODEL_TOLERANCE
    assert np.allclose(result.secure_model, result.plaintext_model, atol=MODEL_TOLERANCE, rtol=0)
    json.dumps(result.to_json())


def test_hospitals_hold_disjoint_stratified_training_rows() -> None:
    split = breast_cancer_hospitals(4, seed=0)
    assert len(split.shards) == 4
    assert split.train_x.shape[0] + split.test_x.shape[0] == 569
    for _, y in split.shards:
        assert 0 < y.mean() < 1  # both classes at every hospital
    rows = np.vstack([split.train_x, split.test_x])
    assert np.unique(rows, axis=0).shape[0] == 569


def test_small_three_hospitals_in_memory_within_one_point_of_centralised(tmp_path: Path) -> None:
    result = run_federated(hospitals=3, rounds=50, transport="memory", out=tmp_path)
    check(result, rounds=50)
    assert result.accuracy_gap_pp <= ACCURACY_TOLERANCE_PP
    assert result.within_tolerance
    assert result.plot == tmp_path / "federated_accuracy.png"
    assert result.plot.read_bytes().startswith(PNG)


def test_small_service_aggregator_matches_plaintext_fedavg() -> None:
    result = run_federated(
        hospitals=3, rounds=2, aggregator="service", key_bits=1024, insecure_keys=True
    )
    check(result, rounds=2)
    assert result.details["key_bits"] == 1024


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(InvalidInputError):
        run_federated(hospitals=1, transport="memory")
    with pytest.raises(InvalidInputError):
        run_federated(rounds=0, transport="memory")
    with pytest.raises(InvalidInputError):
        run_federated(aggregator="pigeon", transport="memory")  # type: ignore[arg-type]


@pytest.mark.slow
@pytest.mark.parametrize("hospitals", [3, 4, 5])
def test_full_size_over_tls_within_one_point_of_centralised(tmp_path: Path, hospitals: int) -> None:
    result = run_federated(hospitals=hospitals, transport="tls", out=tmp_path)
    check(result, rounds=50)
    assert result.accuracy_gap_pp <= ACCURACY_TOLERANCE_PP
    assert result.plot is not None and result.plot.read_bytes().startswith(PNG)


@pytest.mark.slow
def test_service_aggregator_with_a_real_2048_bit_key() -> None:
    result = run_federated(hospitals=3, rounds=5, aggregator="service", key_bits=2048)
    check(result, rounds=5)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(10))
def test_the_accuracy_claim_holds_for_other_splits(seed: int) -> None:
    result = run_federated(hospitals=5, seed=seed, transport="memory")
    check(result, rounds=50)
    assert result.accuracy_gap_pp <= ACCURACY_TOLERANCE_PP


@pytest.mark.slow
def test_the_example_script_writes_the_accuracy_plot(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / "federated.py"), "--json", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["within_tolerance"] and report["hospitals"] == 5
    assert (tmp_path / "federated_accuracy.png").read_bytes().startswith(PNG)

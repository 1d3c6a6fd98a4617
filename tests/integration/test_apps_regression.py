"""Vertical regression (apps/regression): bank x insurer with Beaver-triple cross products.

The claim asserted: the secure coefficients are within the tolerance documented in
smpcloud.apps.regression of numpy.linalg.lstsq on the pooled data (and of the same estimator
computed in the clear), in both modes: only the coefficients revealed, or the Gram matrix.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from smpcloud.apps.regression import (
    RegressionResult,
    minimum_ridge,
    newton_schulz_iterations,
    run_regression,
)
from smpcloud.datasets import bank_insurer_customers
from smpcloud.errors import InvalidInputError

PNG = b"\x89PNG\r\n\x1a\n"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def check(result: RegressionResult) -> None:
    assert result.vs_reference.within_bound, (result.vs_reference.abs_error, result.tolerance)
    assert result.vs_lstsq.within_bound, (result.vs_lstsq.abs_error, result.vs_lstsq.bound)
    assert result.within_tolerance
    assert np.all(np.isfinite(result.tolerance))
    json.dumps(result.to_json())


def test_the_synthetic_customers_are_plausible() -> None:
    data = bank_insurer_customers(2000, seed=1)
    income, balance, age = data.bank.T
    claims, premium = data.insurer.T
    assert age.min() >= 18 and age.max() <= 85
    assert 10 < np.median(income) < 100 and balance.min() >= 0
    assert claims.min() >= 0 and premium.min() >= 0.3
    assert np.corrcoef(age, premium)[0, 1] > 0.3  # older customers pay more


def test_small_secure_solve_reveals_only_coefficients() -> None:
    result = run_regression(customers=200, reveal="coefficients", transport="memory")
    check(result)
    assert result.released == ("the 6 regression coefficients", "the number of customers n")
    assert result.iterations == newton_schulz_iterations(5, 1e-6, 32)
    # the ridge is tiny: the secure coefficients are close to ordinary least squares
    assert np.allclose(result.secure, result.lstsq, rtol=1e-4, atol=1e-5)


def test_small_gram_mode_is_ordinary_least_squares(tmp_path: Path) -> None:
    result = run_regression(customers=200, reveal="gram", transport="memory", out=tmp_path)
    check(result)
    assert result.ridge == 0.0
    assert np.array_equal(result.reference, result.lstsq)
    assert "Gram matrix" in result.released[0]
    assert float(result.tolerance.max()) < 1e-6
    assert result.plot is not None and result.plot.read_bytes().startswith(PNG)


def test_small_secure_solve_over_tls_with_a_larger_ridge() -> None:
    result = run_regression(customers=100, ridge=0.1, transport="tls")
    check(result)
    # a ridge of 0.1 shrinks the coefficients visibly: the reference is the ridge estimator
    assert not np.allclose(result.reference, result.lstsq, rtol=1e-3)


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="ridge"):
        run_regression(customers=50, ridge=minimum_ridge(5, 32) / 2, transport="memory")
    with pytest.raises(InvalidInputError):
        run_regression(customers=5, transport="memory")
    with pytest.raises(InvalidInputError):
        run_regression(reveal="everything", transport="memory")  # type: ignore[arg-type]


@pytest.mark.slow
@pytest.mark.parametrize("reveal", ["coefficients", "gram"])
def test_full_size_over_tls(tmp_path: Path, reveal: str) -> None:
    result = run_regression(customers=1000, reveal=reveal, transport="tls", out=tmp_path)  # type: ignore[arg-type]
    check(result)
    assert result.customers == 1000


@pytest.mark.slow
def test_ten_thousand_customers_secure_solve() -> None:
    result = run_regression(customers=10_000, transport="tls")
    check(result)


def test_the_example_script_prints_json_and_writes_the_plot(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            str(EXAMPLES / "regression.py"),
            *("--customers", "150", "--transport", "memory", "--json"),
            *("--out", str(tmp_path)),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["within_tolerance"] and report["reveal"] == "coefficients"
    assert (tmp_path / "regression_coefficients.png").read_bytes().startswith(PNG)

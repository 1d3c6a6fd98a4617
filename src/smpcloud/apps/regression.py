"""Collaborative machine learning, vertically partitioned: a bank and an insurer fit a regression.

A bank and an insurer share customers but hold different columns (synthetic but realistic data,
:func:`~smpcloud.datasets.bank_insurer_customers`): the bank knows each customer's income,
account balance and age; the insurer knows past claims, the premium and the target, next year's
claim cost. The rows are aligned (both sort the common customers the same way, e.g. after a
private set intersection; the customer ids and their number n are public to both). They fit

    claim_cost ~ b0 + b1 income + b2 balance + b3 age + b4 claims + b5 premium

by (ridge-regularised) least squares with the peer MPC runtime: the bank is party 1, the
insurer party 2, Shamir shares with t = 2 (neither learns anything alone), and a dealer
supplies Beaver triples. Every product between a bank column and an insurer column (income x
premium, age x claim cost, ...) is computed on secret shares with Beaver-triple multiplication;
products within one party's own columns are computed locally by that party and input as shares.

The estimator, in both modes: with every column standardised by its owner (z = (x - mean) /
std, population std) and C = Z^T Z / n, r = Z^T u / n (u the standardised target), solve
(C + ridge I) beta_z = r, then return the coefficients in the original units,
b_j = beta_z,j std_y / std_j and b0 = mean_y - sum_j b_j mean_j. With ridge = 0 this is ordinary
least squares, i.e. ``numpy.linalg.lstsq`` on [1, X]; a small ridge only adds a bias of
relative size ~ ridge / lambda_min(C), which the result reports.

Two modes, and what each reveals to both parties:

* ``reveal="coefficients"`` (default): everything stays secret-shared until the six
  coefficients are opened. The parties share their standardised columns (one input round,
  40 fractional bits), compute the cross blocks of C and r by Beaver multiplication, invert
  A = C + ridge I by Newton-Schulz iteration X <- X (2I - A X) from X0 = I / (p + ridge), which
  converges because the eigenvalues of A lie in [ridge, p + ridge] (C is a correlation matrix);
  the number of iterations is fixed in public from that worst case, ceil(log2(ln(2^f)
  (p + ridge) / ridge)) + 2, so it reveals nothing about the data. Then beta_z = X r and the
  conversion to original units (with each owner's secret means and standard deviations) run on
  shares too. **Reveals: only the six coefficients** (and n).
* ``reveal="gram"``: the parties compute the Gram matrix [1, X]^T [1, X] and [1, X]^T y on
  shares (own blocks locally, cross blocks by Beaver multiplication), open them, and solve in
  the clear. **Reveals the Gram matrix**: n, every column's sum and sum of squares, every
  cross-product sum, and X^T y, i.e. the means, variances and covariances of all columns and
  the target, to both parties. Faster and exact, but much more than the coefficients.

The estimator, the secure programs and their documented tolerances live in
:mod:`smpcloud.apps.regression_mpc`; this module runs the use case and reports it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt

from smpcloud.apps.aggregation import PeerTransport, Progress, run_parties
from smpcloud.apps.regression_mpc import (
    DEFAULT_FRAC_BITS,
    RELEASED,
    assemble_gram,
    gram_program,
    gram_tolerance,
    minimum_ridge,
    newton_schulz_iterations,
    plaintext_fit,
    solve_program,
    solve_tolerance,
    standardised_solution,
)
from smpcloud.apps.results import (
    Comparison,
    compare,
    comparison_lines,
    figure,
    footer_lines,
    output_path,
)
from smpcloud.datasets import bank_insurer_customers
from smpcloud.errors import InvalidInputError

FloatArray = npt.NDArray[np.float64]
Reveal = Literal["coefficients", "gram"]

#: Default ridge penalty per mode: none for the Gram mode (plain least squares); a tiny one
#: for the secure solve, where it bounds the Newton-Schulz iterates in public.
DEFAULT_RIDGE: Final = {"gram": 0.0, "coefficients": 1e-6}


# ------------------------------------------------------------------ the use case


@dataclass(slots=True)
class RegressionResult:
    """The jointly fitted regression, secure next to plaintext.

    Attributes:
        reveal: ``"coefficients"`` or ``"gram"``.
        customers: n.
        names: the coefficient names, intercept first.
        secure: the coefficients the secure computation released (or solved from the Gram).
        lstsq: ``numpy.linalg.lstsq`` on the pooled data (ordinary least squares).
        reference: the same estimator (same ridge) computed in the clear.
        tolerance: the documented bound on |secure - reference|.
        ridge: the penalty on the standardised coefficients.
        iterations: Newton-Schulz iterations (coefficients mode), else 0.
        released: what both parties learned. seconds: per phase. details: transport etc.
    """

    reveal: Reveal
    customers: int
    names: tuple[str, ...]
    secure: FloatArray
    lstsq: FloatArray
    reference: FloatArray
    tolerance: FloatArray
    ridge: float
    iterations: int
    released: tuple[str, ...]
    seconds: dict[str, float] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    frac_bits: int = DEFAULT_FRAC_BITS
    plot: Path | None = None

    @property
    def vs_reference(self) -> Comparison:
        """Secure against the same estimator in the clear, with the fixed-point tolerance."""
        return compare("coefficient", self.secure, self.reference, self.tolerance, self.names)

    @property
    def vs_lstsq(self) -> Comparison:
        """Secure against numpy's least squares: tolerance plus the ridge bias."""
        bias = np.abs(self.reference - self.lstsq)
        return compare("coefficient", self.secure, self.lstsq, self.tolerance + bias, self.names)

    @property
    def within_tolerance(self) -> bool:
        """Whether the secure coefficients are within the documented tolerance of lstsq."""
        return self.vs_lstsq.within_bound and self.vs_reference.within_bound

    def summary_lines(self) -> list[str]:
        """Render the result for people."""
        what = (
            "secure solve (Newton-Schulz on shares), only the coefficients opened"
            if self.reveal == "coefficients"
            else "Gram matrix opened, solved in the clear"
        )
        lines = [
            f"Vertical regression, bank (income, balance, age) x insurer (claims, premium, "
            f"claim cost): {self.customers} customers, peer MPC with Beaver triples over "
            f"{self.details.get('transport')}; {what}; ridge {self.ridge:g}",
            "  secure vs numpy.linalg.lstsq:",
            *comparison_lines([self.vs_lstsq]),
        ]
        if self.ridge > 0:
            same = self.vs_reference
            lines.append(
                f"  secure vs the same ridge estimator in the clear: max |error| "
                f"{same.max_abs_error:.2e} (tolerance {float(same.bound.min()):.2e} to "
                f"{float(same.bound.max()):.2e}); the rest of the gap to lstsq is the ridge bias"
            )
        lines += [
            f"  all within the documented tolerance: {self.within_tolerance}",
        ]
        return lines + footer_lines(self.released, self.seconds, self.plot)

    def to_json(self) -> dict[str, Any]:
        """Return one JSON-ready object."""
        return {
            "use_case": "regression",
            "reveal": self.reveal,
            "customers": self.customers,
            "names": list(self.names),
            "secure": self.secure.tolist(),
            "lstsq": self.lstsq.tolist(),
            "reference": self.reference.tolist(),
            "tolerance": self.tolerance.tolist(),
            "max_abs_error_vs_lstsq": self.vs_lstsq.max_abs_error,
            "within_tolerance": self.within_tolerance,
            "ridge": self.ridge,
            "iterations": self.iterations,
            "released": list(self.released),
            "frac_bits": self.frac_bits,
            "seconds": {k: round(v, 4) for k, v in self.seconds.items()},
            "details": self.details,
            "plot": str(self.plot) if self.plot else None,
        }


def run_regression(
    *,
    customers: int = 1000,
    reveal: Reveal = "coefficients",
    ridge: float | None = None,
    transport: PeerTransport = "tls",
    frac_bits: int = DEFAULT_FRAC_BITS,
    seed: int = 0,
    out: str | Path | None = None,
    progress: Progress | None = None,
) -> RegressionResult:
    """Fit the bank-insurer regression with peer MPC (Beaver triples) and compare with numpy.

    Args:
        customers: number of common customers n (10..1,000,000).
        reveal: ``"coefficients"`` (secure solve, opens only the coefficients) or ``"gram"``
            (opens the Gram matrix and solves in the clear); see the module docstring.
        ridge: penalty on the standardised coefficients; default 1e-6 for the secure solve
            (at least :func:`minimum_ridge`) and 0 (ordinary least squares) for the Gram mode.
        transport: ``"tls"`` (the bank, the insurer and the dealer over TLS on 127.0.0.1) or
            ``"memory"``.
        frac_bits: fixed-point precision f of the arithmetic (24..36).
        seed: the synthetic data's seed.
        out: directory for the plot ``regression_coefficients.png`` (None: no plot).
        progress: called with a short message per phase.

    Returns:
        The coefficients, secure and plaintext, with the documented tolerance and timings.

    Reveals: the coefficients only (``"coefficients"``) or the Gram matrix (``"gram"``).

    Raises:
        InvalidInputError: bad parameters, or a constant column.
        OverflowDetectedError: values too large for the fixed-point format.
        ProtocolError, TransportError: a party or the dealer failed.
    """
    if reveal not in ("coefficients", "gram"):
        raise InvalidInputError(f"unknown reveal {reveal!r}; choose 'coefficients' or 'gram'")
    if not 24 <= frac_bits <= 36:
        raise InvalidInputError("frac_bits must be in 24..36")
    lam = DEFAULT_RIDGE[reveal] if ridge is None else float(ridge)
    data = bank_insurer_customers(customers, seed=seed)
    nb, ni = data.bank.shape[1], data.insurer.shape[1]
    p = nb + ni
    if not 0.0 <= lam <= 1e3:
        raise InvalidInputError("ridge must be in [0, 1000]")
    if reveal == "coefficients" and lam < minimum_ridge(p, frac_bits):
        raise InvalidInputError(
            f"the secure solve needs ridge >= {minimum_ridge(p, frac_bits):.2g} "
            f"(256 p 2^-frac_bits) to bound its iterates in public"
        )
    names = ("intercept", *data.bank_columns, *data.insurer_columns)
    seconds: dict[str, float] = {}
    if progress:
        progress(f"bank and insurer fit the regression on {customers} customers ({reveal})")
    start = time.perf_counter()
    iterations = 0
    if reveal == "coefficients":
        iterations = newton_schulz_iterations(p, lam, frac_bits)
        program = solve_program(data, lam, frac_bits)
        secure = run_parties(2, 2, program, transport=transport, session="regression")[0]
        seconds["secure_fit"] = time.perf_counter() - start
        tolerance = solve_tolerance(data, lam, frac_bits)
    else:
        blocks = run_parties(
            2, 2, gram_program(data, frac_bits), transport=transport, session="regression"
        )[0]
        gram, xty = assemble_gram(*blocks, n=customers, nb=nb, ni=ni)
        seconds["secure_gram"] = time.perf_counter() - start
        start = time.perf_counter()
        secure, _, _ = standardised_solution(gram, xty, customers, lam)
        tolerance = gram_tolerance(
            gram,
            secure,
            nb=nb,
            frac_bits=frac_bits,
            ridge=lam,
            target_sum_squares=float(data.target @ data.target),
        )
        seconds["solve_in_clear"] = time.perf_counter() - start
    start = time.perf_counter()
    lstsq, reference = plaintext_fit(data, lam)
    seconds["plaintext_fit"] = time.perf_counter() - start
    result = RegressionResult(
        reveal=reveal,
        customers=customers,
        names=names,
        secure=np.asarray(secure, dtype=np.float64),
        lstsq=lstsq,
        reference=reference,
        tolerance=tolerance,
        ridge=lam,
        iterations=iterations,
        released=RELEASED[reveal],
        seconds=seconds,
        details={"transport": transport, "parties": 2, "threshold": 2, "dealer": True},
        frac_bits=frac_bits,
    )
    path = output_path(out, "regression_coefficients.png")
    if path is not None:
        plot_coefficients(result, path)
        result.plot = path
    return result


def plot_coefficients(result: RegressionResult, path: str | Path) -> None:
    """Write a figure: secure coefficients next to numpy's least squares."""
    fig = figure(8.0, 4.2)
    ax = fig.subplots()
    x = np.arange(len(result.names))
    ax.bar(x - 0.2, result.secure, width=0.4, label=f"secure ({result.reveal} revealed)")
    ax.bar(x + 0.2, result.lstsq, width=0.4, label="numpy.linalg.lstsq (pooled data)", alpha=0.6)
    ax.set_xticks(x, result.names)
    ax.axhline(0.0, color="k", lw=0.5)
    ax.set_ylabel("coefficient (k$ of claim cost per unit)")
    ax.set_title(
        f"Bank x insurer regression, n = {result.customers}: max |secure - lstsq| "
        f"{result.vs_lstsq.max_abs_error:.1e}"
    )
    ax.legend()
    fig.savefig(path, dpi=110)


__all__ = [
    "DEFAULT_FRAC_BITS",
    "RELEASED",
    "RegressionResult",
    "gram_tolerance",
    "minimum_ridge",
    "newton_schulz_iterations",
    "plaintext_fit",
    "plot_coefficients",
    "run_regression",
    "solve_tolerance",
    "standardised_solution",
]

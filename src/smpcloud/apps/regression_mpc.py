"""The secure protocol of the bank-insurer regression: estimator, MPC programs, tolerances.

The use case, what it reveals and how it runs: :mod:`smpcloud.apps.regression`. This module
holds the estimator in the clear (the reference), the two SPMD programs the parties run on
the peer MPC runtime (Shamir shares, t = 2 of 2 parties, Beaver triples from a dealer), and
the documented bounds on their error. Under that model (semi-honest parties, a dealer that
colludes with neither), :func:`solve_program` reveals only the six coefficients (and n), and
:func:`gram_program` reveals the Gram matrix [1, X]^T [1, X] and [1, X]^T y (see
:data:`RELEASED`).

The estimator, in both modes: with every column standardised by its owner (z = (x - mean) /
std, population std) and C = Z^T Z / n, r = Z^T u / n (u the standardised target), solve
(C + ridge I) beta_z = r, then return the coefficients in the original units,
b_j = beta_z,j std_y / std_j and b0 = mean_y - sum_j b_j mean_j. With ridge = 0 this is ordinary
least squares, i.e. ``numpy.linalg.lstsq`` on [1, X]; a small ridge only adds a bias of
relative size ~ ridge / lambda_min(C), which the result reports.

Tolerances (documented here, computed per run and asserted by the tests; eps = 2^-f with
f = ``frac_bits``, default 32):

* ``gram``: the opened Gram entries are off by at most E_jk = e (sum|x_j| + sum|x_k|) + n e^2
  for cross blocks (inputs quantised to e = 2^-41) and 2^-(f+1) for own blocks, plus float64
  rounding n 2^-53 sqrt(G_jj G_kk); then |b_secure - b| <= v + (M 1) ||v|| / (1 - ||M||) with
  M = |G_s^-1| E and v = |G_s^-1| (E |b_s| + E_b), the componentwise perturbation bound of the
  normal equations, plus 4 cond(G) 2^-53 |b| for the float64 solve.
* ``coefficients``: every truncation is off by less than eps; the Newton-Schulz fixed point
  satisfies ||I - A X|| <~ p (p + 2) eps, so the standardised coefficients are within
  tol_z = 4 (kappa (p (p + 2) eps ||r|| + 2 p eps ||beta_z|| + sqrt(p) eps) + eps), with
  kappa = 1 / lambda_min(A), and in original units within tol_z std_y / std_j + 4 eps (1 +
  |b_j|) (slopes) and sum_j tol_j |mean_j| + 4 p eps (intercept). kappa is a property of the
  data, computed here from the plaintext only to state the bound; no party learns it.

Against ``numpy.linalg.lstsq`` the tolerance adds the ridge bias |b_ridge - b_ols| (zero when
ridge = 0).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Final, TypeAlias, TypeVar

import numpy as np
import numpy.typing as npt

from smpcloud.datasets import VerticalSplit
from smpcloud.errors import InvalidInputError
from smpcloud.mpc.runtime import Party, SharedVector

FloatArray = npt.NDArray[np.float64]
T = TypeVar("T")
Program: TypeAlias = Callable[[Party], Awaitable[T]]

BANK: Final = 1
INSURER: Final = 2
#: Fractional bits of the shared input columns (quantisation error 2^-41 per value).
INPUT_FRAC_BITS: Final = 40
#: Default fractional bits of the arithmetic (resolution 2^-32 ~ 2.3e-10).
DEFAULT_FRAC_BITS: Final = 32
#: Width of the scalars each owner inputs (means, standard deviations): |v| < 2^(47 - f).
SCALAR_BITS: Final = 48

_U53: Final = 2.0**-53

RELEASED: Final = {
    "coefficients": ("the 6 regression coefficients", "the number of customers n"),
    "gram": (
        "the Gram matrix [1, X]^T [1, X]: n, every column's sum and sum of squares, and every "
        "cross-product sum (so all means, variances and covariances of the five columns)",
        "[1, X]^T y: the target's sum and its cross-products with every column",
    ),
}


# ------------------------------------------------------------------ plaintext reference


def standardised_solution(
    gram: FloatArray, xty: FloatArray, n: float, ridge: float
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Solve the estimator from a Gram matrix with an intercept column (first).

    Args:
        gram: [1, X]^T [1, X], shape (p + 1, p + 1).
        xty: [1, X]^T y, shape (p + 1,).
        n: number of rows.
        ridge: the penalty on the standardised coefficients.

    Returns:
        (coefficients [b0, b1..bp] in original units, the matrix C + ridge I of the
        standardised problem, the population standard deviations of the columns).

    Raises:
        InvalidInputError: a column with zero variance.
    """
    mean = gram[0, 1:] / n
    cov = gram[1:, 1:] / n - np.outer(mean, mean)
    std = np.sqrt(np.diag(cov))
    if not np.all(std > 0):
        raise InvalidInputError("a column is constant: its coefficient is undefined")
    mean_y = xty[0] / n
    cov_xy = xty[1:] / n - mean * mean_y
    a = cov / np.outer(std, std) + ridge * np.eye(len(std))
    slopes = np.linalg.solve(a, cov_xy / std) / std
    coef = np.concatenate([[mean_y - slopes @ mean], slopes]).astype(np.float64)
    return coef, np.asarray(a, dtype=np.float64), np.asarray(std, dtype=np.float64)


def design(data: VerticalSplit) -> FloatArray:
    """The pooled design matrix [1, income, balance, age, claims, premium] (plaintext only)."""
    return np.column_stack([np.ones(data.customers), data.bank, data.insurer])


def plaintext_fit(data: VerticalSplit, ridge: float) -> tuple[FloatArray, FloatArray]:
    """Return (numpy.linalg.lstsq coefficients, the same-ridge estimator), on pooled data."""
    x1 = design(data)
    ols = np.asarray(np.linalg.lstsq(x1, data.target, rcond=None)[0], dtype=np.float64)
    if ridge == 0.0:
        return ols, ols.copy()
    ridge_coef, _, _ = standardised_solution(x1.T @ x1, x1.T @ data.target, data.customers, ridge)
    return ols, ridge_coef


def newton_schulz_iterations(p: int, ridge: float, frac_bits: int) -> int:
    """Public iteration count: enough for the worst case lambda_min(A) = ridge (see module)."""
    return math.ceil(math.log2(frac_bits * math.log(2) * (p + ridge) / ridge)) + 2


def minimum_ridge(p: int, frac_bits: int) -> float:
    """Smallest ridge for the secure solve: 256 p 2^-f, far above the rounding of A."""
    return 256.0 * p * 2.0**-frac_bits


# ------------------------------------------------------------------ shared-vector helpers


def _segment_sums(x: SharedVector, size: int) -> SharedVector:
    """Sum consecutive blocks of ``size`` elements (local)."""
    return SharedVector.concat([x[i : i + size].sum() for i in range(0, x.length, size)])


async def _matmul(
    party: Party, a: SharedVector, b: SharedVector, p: int, frac_bits: int, bound: int
) -> SharedVector:
    """Return the p x p product of two shared row-major matrices (one Beaver round + truncation)."""
    i, j, k = (v.ravel() for v in np.indices((p, p, p)))
    products = await party.mul(a.take(i * p + k), b.take(k * p + j), truncate=False)
    summed = _segment_sums(products, p)
    return (await party.truncate(summed, frac_bits)).with_bound(bound)


# ------------------------------------------------------------------ the secure programs


def _upper(matrix: FloatArray) -> FloatArray:
    rows, cols = np.triu_indices(matrix.shape[0])
    return np.asarray(matrix[rows, cols], dtype=np.float64)


def _upper_index(p: int) -> dict[tuple[int, int], int]:
    rows, cols = np.triu_indices(p)
    out = {}
    for pos, (r, c) in enumerate(zip(rows.tolist(), cols.tolist(), strict=True)):
        out[(r, c)] = out[(c, r)] = pos
    return out


def _standardise(columns: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """An owner's own step: (z / sqrt(n), mean, std) of its columns, locally."""
    mean = columns.mean(axis=0)
    std = columns.std(axis=0)
    if not np.all(std > 0):
        raise InvalidInputError("a column is constant: its coefficient is undefined")
    scaled = (columns - mean) / std / math.sqrt(columns.shape[0])
    return scaled, mean, std


async def _cross_products(
    party: Party, bank: SharedVector, insurer: SharedVector, n: int, nb: int, ni: int
) -> SharedVector:
    """Return shares of sum_i bank_j[i] insurer_k[i] for every (j, k), j-major (exact, 2f bits).

    One Beaver round for all n (nb ni) products. Reveals nothing.
    """
    pairs = [(j, k) for j in range(nb) for k in range(ni)]
    left = SharedVector.concat([bank[j * n : (j + 1) * n] for j, _ in pairs])
    right = SharedVector.concat([insurer[k * n : (k + 1) * n] for _, k in pairs])
    products = await party.mul(left, right, truncate=False)
    return _segment_sums(products, n)


def solve_program(data: VerticalSplit, ridge: float, frac_bits: int) -> Program[FloatArray]:
    """Build the SPMD program of ``reveal="coefficients"`` (each party reads only its own data).

    Rounds: three input rounds (standardised columns, own-column blocks, scalars), one Beaver
    round and one truncation for the cross blocks, 2 x (Beaver + truncation) per Newton-Schulz
    iteration, then X r, the rescaling and one opening.

    Reveals: the six coefficients in original units (the Beaver openings and the truncation
    openings are one-time padded; the iteration count is public and data-independent).
    """
    n = data.customers
    nb, ni = data.bank.shape[1], data.insurer.shape[1]
    p = nb + ni
    f = frac_bits
    iterations = newton_schulz_iterations(p, ridge, f)
    eye = np.eye(p).ravel()
    # Public bounds (encoded units), each with a factor >= 2 to spare:
    unit = 2 << f  # |correlation| <= 1 (Cauchy-Schwarz), |(A X)_ij| <= 1 (eigenvalues in (0, 1])
    inverse = math.ceil(4.0 / ridge) << f  # |X_ij| <= ||X|| <= 1 / lambda_min(A) <= 2 / ridge

    async def program(party: Party) -> FloatArray:
        # ---- each owner's local step: standardise, own-column blocks, scalars
        if party.id == BANK:
            w, mean, std = _standardise(data.bank)
            columns = w.T.ravel()
            block = _upper(w.T @ w)
            scalars = np.concatenate([1.0 / std, mean])
        else:
            w, mean, std = _standardise(data.insurer)
            u, mean_y, std_y = _standardise(data.target[:, None])
            columns = np.concatenate([w.T.ravel(), u.ravel()])
            block = np.concatenate([_upper(w.T @ w), w.T @ u[:, 0]])
            scalars = np.concatenate([1.0 / std, mean, std_y, mean_y])
        # ---- three input rounds: columns (|v| <= 1), blocks (|v| <= 1), scalars
        col_b, col_i = await party.input_all(columns, frac_bits=INPUT_FRAC_BITS, bits=42)
        blk_b, blk_i = await party.input_all(block, frac_bits=f, bits=f + 3)
        sc_b, sc_i = await party.input_all(scalars, frac_bits=f, bits=SCALAR_BITS)
        # ---- cross blocks of C and r: Beaver products of bank and insurer columns
        cross = await _cross_products(party, col_b, col_i, n, nb, ni + 1)
        cross = await party.truncate(cross, 2 * INPUT_FRAC_BITS - f)
        pool = SharedVector.concat([blk_b, blk_i, cross]).with_bound(unit)
        # pool layout: bank upper (nb(nb+1)/2), insurer upper (ni(ni+1)/2), r_I (ni),
        # cross (nb x (ni + 1), j-major; the last insurer "column" is the target)
        up_b, up_i = _upper_index(nb), _upper_index(ni)
        off_i = nb * (nb + 1) // 2
        off_r = off_i + ni * (ni + 1) // 2
        off_x = off_r + ni
        index_a = []
        for row in range(p):
            for col in range(p):
                if row < nb and col < nb:
                    index_a.append(up_b[(row, col)])
                elif row >= nb and col >= nb:
                    index_a.append(off_i + up_i[(row - nb, col - nb)])
                else:
                    j, k = (row, col - nb) if row < nb else (col, row - nb)
                    index_a.append(off_x + j * (ni + 1) + k)
        index_r = [off_x + j * (ni + 1) + ni for j in range(nb)]
        index_r += [off_r + k for k in range(ni)]
        a = pool.take(index_a) + ridge * eye
        r = pool.take(index_r)
        # ---- Newton-Schulz: X <- X (2I - A X), X0 = I / (p + ridge)
        x = party.constant(eye / (p + ridge), frac_bits=f)
        for _ in range(iterations):
            ax = await _matmul(party, a, x, p, f, unit)
            x = await _matmul(party, x, 2.0 * eye - ax, p, f, inverse)
        # ---- beta_z = X r; original units; intercept
        rows, inner = (v.ravel() for v in np.indices((p, p)))
        products = await party.mul(x.take(rows * p + inner), r.take(inner), truncate=False)
        beta_z = await party.truncate(_segment_sums(products, p), f)
        inv_std = SharedVector.concat([sc_b[0:nb], sc_i[0:ni]])
        means = SharedVector.concat([sc_b[nb : 2 * nb], sc_i[ni : 2 * ni]])
        shared_std_y = sc_i.take([2 * ni] * p)
        shared_mean_y = sc_i[2 * ni + 1 : 2 * ni + 2]
        ratio = await party.mul(shared_std_y, inv_std)
        slopes = await party.mul(beta_z, ratio)
        intercept = shared_mean_y - await party.dot(slopes, means)
        opened = await party.open_many([intercept, slopes])
        return np.concatenate([np.asarray(o, dtype=np.float64) for o in opened])

    return program


def gram_program(data: VerticalSplit, frac_bits: int) -> Program[list[FloatArray]]:
    """Build the SPMD program of ``reveal="gram"``: open [1, X]^T [1, X] and [1, X]^T y.

    Reveals: the Gram matrix and [1, X]^T y (see :data:`RELEASED`), which both parties then
    solve in the clear; not sum y^2.
    """
    n = data.customers
    nb, ni = data.bank.shape[1], data.insurer.shape[1]

    async def program(party: Party) -> list[FloatArray]:
        if party.id == BANK:
            columns = data.bank.T.ravel()
            local = np.concatenate([data.bank.sum(axis=0), _upper(data.bank.T @ data.bank)])
        else:
            own, y = data.insurer, data.target
            columns = np.concatenate([own.T.ravel(), y])
            local = np.concatenate([own.sum(axis=0), [y.sum()], _upper(own.T @ own), own.T @ y])
        col_b, col_i = await party.input_all(columns, frac_bits=INPUT_FRAC_BITS)
        loc_b, loc_i = await party.input_all(local, frac_bits=frac_bits)
        cross = await _cross_products(party, col_b, col_i, n, nb, ni + 1)
        opened = await party.open_many([loc_b, loc_i, cross])
        return [np.asarray(o, dtype=np.float64) for o in opened]

    return program


def assemble_gram(
    loc_b: FloatArray, loc_i: FloatArray, cross: FloatArray, *, n: int, nb: int, ni: int
) -> tuple[FloatArray, FloatArray]:
    """Build [1, X]^T [1, X] and [1, X]^T y from the opened blocks.

    Layouts: bank [sums (nb), upper X_B^T X_B]; insurer [sums (ni), sum y, upper X_I^T X_I,
    X_I^T y (ni)]; cross [sum x_j z_k for bank j, insurer k in (columns..., y)], j-major.
    """
    p = nb + ni
    gram = np.zeros((p + 1, p + 1))
    xty = np.zeros(p + 1)
    gram[0, 0] = n
    gram[0, 1 : 1 + nb] = gram[1 : 1 + nb, 0] = loc_b[:nb]
    gram[0, 1 + nb :] = gram[1 + nb :, 0] = loc_i[:ni]
    xty[0] = loc_i[ni]
    up_b, up_i = _upper_index(nb), _upper_index(ni)
    for j in range(nb):
        for k in range(nb):
            gram[1 + j, 1 + k] = loc_b[nb + up_b[(j, k)]]
    start = ni + 1 + ni * (ni + 1) // 2
    for j in range(ni):
        for k in range(ni):
            gram[1 + nb + j, 1 + nb + k] = loc_i[ni + 1 + up_i[(j, k)]]
        xty[1 + nb + j] = loc_i[start + j]
    for j in range(nb):
        for k in range(ni):
            gram[1 + j, 1 + nb + k] = gram[1 + nb + k, 1 + j] = cross[j * (ni + 1) + k]
        xty[1 + j] = cross[j * (ni + 1) + ni]
    return gram, xty


# ------------------------------------------------------------------ tolerances


def gram_tolerance(
    gram: FloatArray,
    coef: FloatArray,
    *,
    nb: int,
    frac_bits: int,
    ridge: float,
    target_sum_squares: float,
) -> FloatArray:
    """The documented bound on |coefficients - exact| for ``reveal="gram"`` (see the module).

    Computed from the opened Gram matrix, the solution and sum y^2 (not opened by the
    protocol: the caller, which holds the plaintext for the comparison, supplies it).
    """
    n = round(float(gram[0, 0]))
    e = 2.0 ** -(INPUT_FRAC_BITS + 1)
    own = 2.0 ** -(frac_bits + 1)
    diag = np.abs(np.diag(gram))
    abs_sums = np.sqrt(n * diag)  # sum |x_j| <= sqrt(n sum x_j^2)
    size = gram.shape[0]
    err = np.zeros_like(gram)
    for j in range(size):
        for k in range(size):
            cross_pair = (1 <= j <= nb < k) or (1 <= k <= nb < j)
            if cross_pair:
                err[j, k] = e * (abs_sums[j] + abs_sums[k]) + n * e * e
            elif j == 0 and k == 0:
                err[j, k] = 0.0  # n is exact
            else:
                err[j, k] = own
            err[j, k] += n * _U53 * math.sqrt(diag[j] * diag[k])
    yy = float(target_sum_squares)
    err_b = np.array(
        [
            own if j == 0 or j > nb else e * (abs_sums[j] + math.sqrt(n * yy)) + n * e * e
            for j in range(size)
        ]
    ) + n * _U53 * np.sqrt(diag * yy)
    # the system actually solved, in raw units: G + n ridge diag(0, std^2)
    mean = gram[0, 1:] / n
    var = np.diag(gram[1:, 1:]) / n - mean * mean
    system = gram + n * ridge * np.diag(np.concatenate([[0.0], var]))
    inv = np.abs(np.linalg.inv(system))
    m = inv @ err
    v = inv @ (err @ np.abs(coef) + err_b)
    rho = float(np.abs(m).sum(axis=1).max())
    if rho >= 0.5:
        return np.full_like(coef, np.inf)  # too ill-conditioned for a useful bound
    bound = v + m.sum(axis=1) * float(v.max()) / (1.0 - rho)
    slack = 4.0 * float(np.linalg.cond(system)) * _U53 * np.abs(coef)
    return np.asarray(bound + slack, dtype=np.float64)


def solve_tolerance(data: VerticalSplit, ridge: float, frac_bits: int) -> FloatArray:
    """The documented bound for ``reveal="coefficients"`` (see the module; uses plaintext)."""
    x1 = design(data)
    n = data.customers
    coef, a, std = standardised_solution(x1.T @ x1, x1.T @ data.target, n, ridge)
    p = a.shape[0]
    eps = 2.0**-frac_bits
    std_y = float(data.target.std())
    mean_x = x1[:, 1:].mean(axis=0)
    cov_xy = (x1[:, 1:] - mean_x).T @ (data.target - data.target.mean()) / n
    r = cov_xy / (std * std_y)
    beta_z = coef[1:] * std / std_y
    kappa = 1.0 / float(np.linalg.eigvalsh(a).min())
    tol_z = 4.0 * (
        kappa
        * (
            p * (p + 2) * eps * float(np.linalg.norm(r))
            + 2 * p * eps * float(np.linalg.norm(beta_z))
            + math.sqrt(p) * eps
        )
        + eps
    )
    slopes = tol_z * std_y / std + 4.0 * eps * (1.0 + np.abs(coef[1:]))
    intercept = float(slopes @ np.abs(mean_x)) + 4.0 * p * eps
    return np.concatenate([[intercept], slopes])


__all__ = [
    "BANK",
    "DEFAULT_FRAC_BITS",
    "INPUT_FRAC_BITS",
    "INSURER",
    "RELEASED",
    "SCALAR_BITS",
    "Program",
    "assemble_gram",
    "design",
    "gram_program",
    "gram_tolerance",
    "minimum_ridge",
    "newton_schulz_iterations",
    "plaintext_fit",
    "solve_program",
    "solve_tolerance",
    "standardised_solution",
]

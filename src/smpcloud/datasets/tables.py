"""Data for the use cases and the evaluation: real datasets that ship with scikit-learn.

* :func:`patient_bmis`: the body-mass indices of scikit-learn's diabetes dataset, one per
  simulated client, as the demo and the paper's Figure 7 and Table 1 use them (fixed point
  with :data:`FRAC_BITS` fractional bits, declared range :data:`BMI_RANGE`).
* :func:`diabetes_hospitals`: scikit-learn's diabetes dataset (442 real patients, ten baseline
  variables and the disease progression one year later), rows split across simulated hospitals.
* :func:`breast_cancer_hospitals`: scikit-learn's breast-cancer dataset (569 real tumours, 30
  features, malignant/benign), a stratified train/test split, the training rows split across
  hospitals (horizontal partitioning: same columns, different patients).
* :func:`bank_insurer_customers`: synthetic but realistic customers whose columns are split
  between a bank and an insurer (vertical partitioning: same customers, different columns).

Randomness here is *not* secret: it only decides which hospital holds which public-dataset row,
or generates public synthetic data, and must be reproducible. It is seeded and comes from
scikit-learn's ``random_state`` utilities. Secret randomness (shares, masks, keys) never comes
from here; it comes from the OS CSPRNG inside ``smpcloud.crypto``.

scikit-learn is an optional dependency (the ``examples`` extra): it is imported inside the
functions that need it, and its absence raises
:class:`~smpcloud.datasets.extras.MissingExtraError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from smpcloud.datasets.extras import require_extra
from smpcloud.errors import InvalidInputError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Fractional bits of the fixed-point encoding of a body-mass index (resolution 2^-16).
FRAC_BITS = 16
#: The declared range of a body-mass index.
BMI_RANGE = (0.0, 100.0)

#: Columns of the diabetes table: scikit-learn's ten features (unscaled: age in years, sex
#: coded 1/2, body-mass index, mean blood pressure, six blood serum measurements s1..s6) and the
#: target, a quantitative measure of disease progression one year after baseline.
DIABETES_COLUMNS: tuple[str, ...] = (
    "age",
    "sex",
    "bmi",
    "bp",
    "s1",
    "s2",
    "s3",
    "s4",
    "s5",
    "s6",
    "progression",
)


def split_rows(count: int, parts: int, *, seed: int = 0) -> list[IntArray]:
    """Deal row indices 0..count-1 into ``parts`` groups of near-equal size, reproducibly.

    The rows are shuffled with a seeded (public, non-secret) permutation first, so that every
    group is a representative sample.

    Args:
        count: number of rows.
        parts: number of groups (owners), 1 <= parts <= count.
        seed: the permutation's seed.

    Returns:
        ``parts`` sorted index arrays that together cover every row once.

    Raises:
        InvalidInputError: parts outside 1..count.
    """
    with require_extra("examples"):
        from sklearn.utils import shuffle

    if not 1 <= parts <= count:
        raise InvalidInputError(f"cannot split {count} rows into {parts} groups")
    order = np.asarray(shuffle(np.arange(count, dtype=np.int64), random_state=seed))
    return [np.sort(group) for group in np.array_split(order, parts)]


def diabetes_table() -> FloatArray:
    """Return the diabetes dataset as a (442, 11) float array in :data:`DIABETES_COLUMNS` order."""
    with require_extra("examples"):
        from sklearn.datasets import load_diabetes

    data = load_diabetes(scaled=False)
    return np.column_stack([data.data, data.target]).astype(np.float64)


def patient_bmis(count: int) -> FloatArray:
    """Return ``count`` body-mass-index values from scikit-learn's diabetes dataset (real rows,
    cycled when more clients than the 442 patients are asked for)."""
    with require_extra("examples"):
        from sklearn.datasets import load_diabetes

    bmi = load_diabetes(scaled=False).data[:, 2].astype(np.float64)
    return np.resize(bmi, count)


def column_indices(columns: Sequence[str]) -> list[int]:
    """Map diabetes column names to their positions.

    Raises:
        InvalidInputError: an unknown or repeated name (the message lists the known ones).
    """
    if not columns:
        raise InvalidInputError("choose at least one column")
    unknown = [c for c in columns if c not in DIABETES_COLUMNS]
    if unknown:
        raise InvalidInputError(
            f"unknown column(s) {', '.join(unknown)}; choose from {', '.join(DIABETES_COLUMNS)}"
        )
    if len(set(columns)) != len(columns):
        raise InvalidInputError("a column is named twice")
    return [DIABETES_COLUMNS.index(c) for c in columns]


def diabetes_hospitals(
    hospitals: int,
    columns: Sequence[str] = DIABETES_COLUMNS,
    *,
    rows: int | None = None,
    seed: int = 0,
) -> list[FloatArray]:
    """Split the diabetes patients across ``hospitals``; return each hospital's table.

    Args:
        hospitals: number of hospitals (>= 1).
        columns: which columns each hospital keeps, in this order.
        rows: use only the first ``rows`` patients (small runs); default all 442.
        seed: which hospital gets which patient (public, reproducible).

    Returns:
        One (rows_h, len(columns)) array per hospital.

    Raises:
        InvalidInputError: unknown columns, or more hospitals than patients.
    """
    table = diabetes_table()[:, column_indices(columns)]
    if rows is not None:
        if not 1 <= rows <= table.shape[0]:
            raise InvalidInputError(f"rows must be in 1..{table.shape[0]}")
        table = table[:rows]
    return [table[idx] for idx in split_rows(table.shape[0], hospitals, seed=seed)]


@dataclass(frozen=True, slots=True)
class HorizontalSplit:
    """Training rows split across hospitals, plus a held-out test set (raw, unscaled).

    Attributes:
        shards: per hospital, (features, labels); same columns everywhere.
        test_x, test_y: the held-out test set (used only to measure accuracy).
        feature_names: the columns.
    """

    shards: list[tuple[FloatArray, IntArray]]
    test_x: FloatArray
    test_y: IntArray
    feature_names: tuple[str, ...]

    @property
    def train_x(self) -> FloatArray:
        """All training features pooled (for the centralised baseline only)."""
        return np.vstack([x for x, _ in self.shards])

    @property
    def train_y(self) -> IntArray:
        """All training labels pooled (for the centralised baseline only)."""
        return np.concatenate([y for _, y in self.shards])


def breast_cancer_hospitals(
    hospitals: int, *, test_size: float = 0.25, seed: int = 0
) -> HorizontalSplit:
    """Split scikit-learn's breast-cancer data: a stratified test set, training rows to hospitals.

    Labels: 1 = benign, 0 = malignant (scikit-learn's coding). Each hospital receives a
    stratified share of the training rows (``StratifiedKFold`` folds), so every hospital sees
    both classes.

    Args:
        hospitals: number of hospitals, 2..20.
        test_size: fraction of rows held out for testing.
        seed: the split's seed (public, reproducible).

    Raises:
        InvalidInputError: hospitals or test_size out of range.
    """
    with require_extra("examples"):
        from sklearn.datasets import load_breast_cancer
        from sklearn.model_selection import StratifiedKFold, train_test_split

    if not 2 <= hospitals <= 20:
        raise InvalidInputError("hospitals must be in 2..20")
    if not 0.05 <= test_size <= 0.5:
        raise InvalidInputError("test_size must be in [0.05, 0.5]")
    data = load_breast_cancer()
    x = np.asarray(data.data, dtype=np.float64)
    y = np.asarray(data.target, dtype=np.int64)
    train_x, test_x, train_y, test_y = train_test_split(
        x, y, test_size=test_size, stratify=y, random_state=seed
    )
    folds = StratifiedKFold(n_splits=hospitals, shuffle=True, random_state=seed)
    shards = [
        (np.asarray(train_x[idx]), np.asarray(train_y[idx]))
        for _, idx in folds.split(train_x, train_y)
    ]
    return HorizontalSplit(
        shards=shards,
        test_x=np.asarray(test_x),
        test_y=np.asarray(test_y),
        feature_names=tuple(str(name) for name in data.feature_names),
    )


@dataclass(frozen=True, slots=True)
class VerticalSplit:
    """The same customers, different columns at different organisations.

    Attributes:
        bank: (n, 3) income [k$/year], balance [k$], age [years], held by the bank.
        insurer: (n, 2) claims in the last three years [count], premium [k$/year], held by
            the insurer.
        target: (n,) claim cost in the following year [k$], held by the insurer.
        bank_columns, insurer_columns, target_name: the names.
    """

    bank: FloatArray
    insurer: FloatArray
    target: FloatArray
    bank_columns: tuple[str, ...] = ("income", "balance", "age")
    insurer_columns: tuple[str, ...] = ("claims", "premium")
    target_name: str = "claim_cost"

    @property
    def customers(self) -> int:
        """Number of customers (rows)."""
        return int(self.target.shape[0])


def bank_insurer_customers(customers: int = 1000, *, seed: int = 0) -> VerticalSplit:
    """Generate synthetic but realistic joint customers of a bank and an insurer.

    The customers are assumed already matched (both organisations know the common customer
    ids and sort their rows by them, e.g. after a private set intersection). The bank knows
    age, income and account balance; the insurer knows past claims, the premium and next
    year's claim cost, which depends on all five columns plus noise.

    Args:
        customers: number of rows, 10..1,000,000.
        seed: the generator's seed (public synthetic data, not secret randomness).

    Raises:
        InvalidInputError: customers out of range.
    """
    with require_extra("examples"):
        from sklearn.utils import check_random_state

    if not 10 <= customers <= 1_000_000:
        raise InvalidInputError("customers must be in 10..1,000,000")
    gen = check_random_state(seed)
    n = customers
    age = np.clip(gen.normal(45.0, 13.0, n), 18.0, 85.0).round()
    income = np.exp(gen.normal(np.log(38.0) + 0.012 * (age - 45.0), 0.45, n)).round(2)
    balance = np.clip(0.35 * income + 0.4 * (age - 18.0) + gen.normal(0.0, 8.0, n), 0, None)
    balance = balance.round(2)
    claims = gen.poisson(0.25 + 0.012 * (age - 18.0), n).astype(np.float64)
    premium = (0.6 + 0.015 * age + 0.25 * claims + 0.004 * income + gen.normal(0, 0.15, n)).round(2)
    premium = np.clip(premium, 0.3, None)
    cost = (
        0.4
        + 0.55 * claims
        + 0.9 * premium
        - 0.006 * income
        - 0.004 * balance
        + 0.012 * age
        + gen.normal(0.0, 0.6, n)
    )
    return VerticalSplit(
        bank=np.column_stack([income, balance, age]).astype(np.float64),
        insurer=np.column_stack([claims, premium]).astype(np.float64),
        target=np.asarray(cost, dtype=np.float64).round(3),
    )


__all__ = [
    "BMI_RANGE",
    "DIABETES_COLUMNS",
    "FRAC_BITS",
    "HorizontalSplit",
    "VerticalSplit",
    "bank_insurer_customers",
    "breast_cancer_hospitals",
    "column_indices",
    "diabetes_hospitals",
    "diabetes_table",
    "patient_bmis",
    "split_rows",
]

"""Collaborative machine learning, horizontally partitioned: federated logistic regression.

Several hospitals hold different patients with the same measurements: scikit-learn's
breast-cancer dataset (569 real tumours, 30 features, benign or malignant), with a stratified
test set held out and the training rows split across 3-5 hospitals
(:func:`~smpcloud.datasets.breast_cancer_hospitals`). Together they train one
L2-regularised logistic-regression classifier by federated averaging (FedAvg, McMahan et al.,
AISTATS 2017), and no hospital's data or model update is ever seen by anyone:

1. **Standardisation.** A secure sum of every hospital's [row count, sum_i x_i] releases N and
   the feature means; a second secure sum of every hospital's sum_i (x_i - mean)^2 releases the
   variances (exactly what scikit-learn's StandardScaler computes on the pooled training set);
   each hospital standardises its rows with them.
2. **Rounds.** Every round each hospital starts from the global model theta = (w, b), runs
   ``local_steps`` full-batch gradient steps on its own rows (mean log-loss plus
   lambda/2 ||w||^2, lambda = 1 / (C N), the objective scikit-learn's ``LogisticRegression(C)``
   minimises, divided by C N), and contributes n_h theta_h. A secure sum releases only
   sum_h n_h theta_h, and the new global model is that sum divided by N.

The secure sum is the peer runtime's (``aggregator="peer"``: the hospitals are MPC parties,
Shamir shares, over TLS on 127.0.0.1 or in memory) or the cloud service's
(``aggregator="service"``: the hospitals encrypt their updates under a threshold Paillier key;
the server adds ciphertexts; 3 of 5 key holders decrypt the sum; about 1-2 s per round at
2048 bits, so meant for few rounds).

Reveals: the number of training rows N, the training set's feature means and variances, and
the averaged model after every round (which everyone receives anyway), nothing else: no
hospital's update, gradient, row count or data. (As in any FedAvg, the sequence of global
models is public to the participants; with two hospitals each could subtract its own update
from the sum, so use three or more.)

Accuracy. Every released sum entry is within H * 2^-(f+1) of the exact sum (H hospitals,
f = ``frac_bits``, default 20), so each round's secure model differs from plaintext federated
averaging by about H * 2^-(f+1) / N ~ 4e-9 per parameter, which the following rounds do not
amplify (gradient descent is a contraction here): the secure and plaintext models agree to
~1e-8 and their predictions coincide. With the defaults (50 rounds, 10 local steps, learning
rate 1.0, C = 1) the test accuracy equals scikit-learn's centralised ``LogisticRegression(C=1)``
on the pooled data within one percentage point (checked by the tests).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt

from smpcloud.apps.aggregation import (
    DEFAULT_FRAC_BITS,
    PeerTransport,
    Progress,
    ServiceAggregator,
    majority_threshold,
    run_parties,
)
from smpcloud.apps.results import figure, footer_lines, output_path
from smpcloud.datasets import (
    HorizontalSplit,
    IntArray,
    breast_cancer_hospitals,
    require_extra,
)
from smpcloud.errors import InvalidInputError
from smpcloud.mpc.protocols.statistics import secure_sum
from smpcloud.mpc.runtime import Party

FloatArray = npt.NDArray[np.float64]
Aggregator = Literal["peer", "service"]

#: The claim checked by the tests: secure FedAvg within this many percentage points of
#: scikit-learn's centralised logistic regression.
ACCURACY_TOLERANCE_PP: Final = 1.0

#: Extra fractional bits for the centred sums of squares of the standardisation: some features
#: have tiny variances (e.g. mean smoothness, ~2e-4), which 2^-20 would resolve to only ~4 digits.
VARIANCE_EXTRA_BITS: Final = 12

RELEASED = (
    "the number of training rows N",
    "the training features' means and variances (for standardisation)",
    "the averaged model after each round",
)


@dataclass(frozen=True, slots=True)
class TrainingConfig:
    """Hyper-parameters of federated averaging (public, the same for every hospital).

    Attributes:
        rounds: communication rounds.
        local_steps: full-batch gradient steps per hospital and round.
        learning_rate: step size of the local gradient steps.
        C: inverse regularisation strength, as in scikit-learn's ``LogisticRegression``.
    """

    rounds: int = 50
    local_steps: int = 10
    learning_rate: float = 1.0
    C: float = 1.0

    def check(self) -> None:
        """Raise :class:`~smpcloud.errors.InvalidInputError` for out-of-range values."""
        if not 1 <= self.rounds <= 10_000:
            raise InvalidInputError("rounds must be in 1..10000")
        if not 1 <= self.local_steps <= 10_000:
            raise InvalidInputError("local_steps must be in 1..10000")
        if not 0 < self.learning_rate <= 10:
            raise InvalidInputError("learning_rate must be in (0, 10]")
        if not self.C > 0:
            raise InvalidInputError("C must be positive")


def sum_summary(x: FloatArray) -> FloatArray:
    """A hospital's first standardisation contribution: [row count, sum of x (d)]."""
    return np.concatenate([[float(x.shape[0])], x.sum(axis=0)])


def centred_squares(x: FloatArray, mean: FloatArray) -> FloatArray:
    """A hospital's second standardisation contribution: sum of (x - mean)^2 (d)."""
    centred = x - mean
    return np.asarray((centred * centred).sum(axis=0), dtype=np.float64)


def scaler_from_sums(total: FloatArray) -> tuple[float, FloatArray]:
    """Return (N, mean) from summed :func:`sum_summary` vectors."""
    n = float(round(float(total[0])))
    if n < 2:
        raise InvalidInputError("need at least two training rows")
    return n, total[1:] / n


def std_from_squares(total: FloatArray, n: float) -> FloatArray:
    """Return the population standard deviation (1 where it is 0) from summed squares."""
    std = np.sqrt(np.maximum(total / n, 0.0))
    return np.where(std > 0, std, 1.0)


def _sigmoid(z: FloatArray) -> FloatArray:
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * z)), dtype=np.float64)


def local_update(
    theta: FloatArray, x: FloatArray, y: IntArray, *, lam: float, config: TrainingConfig
) -> FloatArray:
    """Run a hospital's local gradient steps from the global model; return n_h * theta_h.

    Args:
        theta: the global model [w (d), b].
        x: the hospital's standardised rows.
        y: its labels (0/1).
        lam: the L2 weight lambda (the bias is not penalised).
        config: the public hyper-parameters.
    """
    w = theta.copy()
    d = x.shape[1]
    n = x.shape[0]
    target = y.astype(np.float64)
    for _ in range(config.local_steps):
        err = _sigmoid(x @ w[:d] + w[d]) - target
        grad = np.empty_like(w)
        grad[:d] = x.T @ err / n + lam * w[:d]
        grad[d] = err.mean()
        w -= config.learning_rate * grad
    return np.asarray(n * w, dtype=np.float64)


def accuracy(theta: FloatArray, x: FloatArray, y: IntArray) -> float:
    """Fraction of rows of (standardised) ``x`` that the model classifies correctly."""
    d = x.shape[1]
    predicted = (x @ theta[:d] + theta[d] > 0).astype(np.int64)
    return float((predicted == y).mean())


@dataclass(slots=True)
class FederatedResult:
    """Federated training, secure next to plaintext FedAvg and centralised scikit-learn.

    Attributes:
        hospitals: number of hospitals; ``rows_per_hospital`` their training rows.
        config: the hyper-parameters.
        aggregator: ``"peer"`` or ``"service"``; ``details`` has transport, threshold, key size.
        secure_accuracy, plaintext_accuracy: test accuracy after each round.
        centralised_accuracy: scikit-learn ``LogisticRegression(C)`` on the pooled rows.
        secure_model, plaintext_model, centralised_model: final [w, b] (standardised features).
        max_model_difference: max |secure - plaintext FedAvg| over parameters and rounds.
        test_rows: size of the test set.
        released: what was revealed. seconds: per phase. plot: the figure, if written.
    """

    hospitals: int
    rows_per_hospital: list[int]
    config: TrainingConfig
    aggregator: Aggregator
    secure_accuracy: list[float]
    plaintext_accuracy: list[float]
    centralised_accuracy: float
    secure_model: FloatArray
    plaintext_model: FloatArray
    centralised_model: FloatArray
    max_model_difference: float
    test_rows: int
    released: tuple[str, ...] = RELEASED
    seconds: dict[str, float] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    frac_bits: int = DEFAULT_FRAC_BITS
    plot: Path | None = None

    @property
    def accuracy_gap_pp(self) -> float:
        """|secure final accuracy - centralised accuracy| in percentage points."""
        return abs(self.secure_accuracy[-1] - self.centralised_accuracy) * 100.0

    @property
    def within_tolerance(self) -> bool:
        """Whether the secure model is within :data:`ACCURACY_TOLERANCE_PP` of centralised."""
        return self.accuracy_gap_pp <= ACCURACY_TOLERANCE_PP + 1e-9

    def summary_lines(self) -> list[str]:
        """Render the result for people."""
        how = (
            f"peer MPC secure sum, {self.hospitals} hospitals as parties, "
            f"{self.details.get('transport')}"
            if self.aggregator == "peer"
            else f"aggregation service on 127.0.0.1, {self.details.get('key_bits')}-bit "
            f"{self.details.get('key_threshold')} key"
        )
        c = self.config
        lines = [
            f"Federated logistic regression ({how}): breast-cancer dataset, "
            f"{sum(self.rows_per_hospital)} training rows split {self.rows_per_hospital}, "
            f"{self.test_rows} test rows",
            f"  FedAvg: {c.rounds} rounds x {c.local_steps} local steps, learning rate "
            f"{c.learning_rate:g}, C = {c.C:g}",
            f"  {'round':>7} {'secure':>10} {'plaintext':>10}",
        ]
        shown = sorted({0, *range(9, c.rounds, 10), c.rounds - 1})
        for r in shown:
            lines.append(
                f"  {r + 1:>7} {self.secure_accuracy[r]:>10.4f} {self.plaintext_accuracy[r]:>10.4f}"
            )
        lines += [
            f"  test accuracy: secure FedAvg {self.secure_accuracy[-1]:.4f}, plaintext FedAvg "
            f"{self.plaintext_accuracy[-1]:.4f}, centralised scikit-learn "
            f"{self.centralised_accuracy:.4f} (gap {self.accuracy_gap_pp:.2f} pp; "
            f"tolerance {ACCURACY_TOLERANCE_PP:g} pp: {self.within_tolerance})",
            f"  max |secure - plaintext FedAvg| over all parameters and rounds: "
            f"{self.max_model_difference:.2e}",
        ]
        return lines + footer_lines(self.released, self.seconds, self.plot)

    def to_json(self) -> dict[str, Any]:
        """Return one JSON-ready object."""
        return {
            "use_case": "federated",
            "aggregator": self.aggregator,
            "hospitals": self.hospitals,
            "rows_per_hospital": self.rows_per_hospital,
            "test_rows": self.test_rows,
            "config": {
                "rounds": self.config.rounds,
                "local_steps": self.config.local_steps,
                "learning_rate": self.config.learning_rate,
                "C": self.config.C,
            },
            "secure_accuracy": self.secure_accuracy,
            "plaintext_accuracy": self.plaintext_accuracy,
            "centralised_accuracy": self.centralised_accuracy,
            "accuracy_gap_pp": self.accuracy_gap_pp,
            "within_tolerance": self.within_tolerance,
            "max_model_difference": self.max_model_difference,
            "released": list(self.released),
            "frac_bits": self.frac_bits,
            "seconds": {k: round(v, 4) for k, v in self.seconds.items()},
            "details": self.details,
            "plot": str(self.plot) if self.plot else None,
        }


#: Adds one vector per hospital at the given fixed-point precision (frac_bits).
SumFn = Callable[[list[FloatArray], int], FloatArray]


def _train_coordinated(
    split: HorizontalSplit, config: TrainingConfig, add: SumFn, *, frac_bits: int
) -> tuple[list[FloatArray], FloatArray, FloatArray]:
    """FedAvg where each round's contributions are added by ``add`` (plain sum or service).

    Returns the model after every round and the released (mean, std).
    """
    n, mean = scaler_from_sums(add([sum_summary(x) for x, _ in split.shards], frac_bits))
    squares = add(
        [centred_squares(x, mean) for x, _ in split.shards], frac_bits + VARIANCE_EXTRA_BITS
    )
    std = std_from_squares(squares, n)
    lam = 1.0 / (config.C * n)
    scaled = [((x - mean) / std, y) for x, y in split.shards]
    theta = np.zeros(split.test_x.shape[1] + 1)
    models = []
    for _ in range(config.rounds):
        updates = [local_update(theta, x, y, lam=lam, config=config) for x, y in scaled]
        theta = add(updates, frac_bits) / n
        models.append(theta)
    return models, mean, std


def _train_peer(
    split: HorizontalSplit,
    config: TrainingConfig,
    *,
    frac_bits: int,
    transport: PeerTransport,
    progress: Progress | None,
) -> tuple[list[FloatArray], FloatArray, FloatArray]:
    """FedAvg as one SPMD program: every hospital runs the loop with only its own rows."""

    async def program(party: Party) -> tuple[list[FloatArray], FloatArray, FloatArray]:
        x_raw, y = split.shards[party.id - 1]  # this hospital's rows, and nothing else
        sums = await secure_sum(party, sum_summary(x_raw), frac_bits=frac_bits)
        n, mean = scaler_from_sums(np.asarray(sums, dtype=np.float64))
        squares = await secure_sum(
            party, centred_squares(x_raw, mean), frac_bits=frac_bits + VARIANCE_EXTRA_BITS
        )
        std = std_from_squares(np.asarray(squares, dtype=np.float64), n)
        lam = 1.0 / (config.C * n)
        x = (x_raw - mean) / std
        theta = np.zeros(x.shape[1] + 1)
        models = []
        for r in range(config.rounds):
            update = local_update(theta, x, y, lam=lam, config=config)
            total = await secure_sum(party, update, frac_bits=frac_bits)
            theta = np.asarray(total, dtype=np.float64) / n
            models.append(theta)
            if progress is not None and party.id == 1 and (r + 1) % 10 == 0:
                progress(f"round {r + 1}/{config.rounds}")
        return models, mean, std

    h = len(split.shards)
    results = run_parties(
        h, majority_threshold(h), program, transport=transport, dealer=False, session="fedavg"
    )
    return results[0]


def run_federated(
    *,
    hospitals: int = 5,
    rounds: int = 50,
    local_steps: int = 10,
    learning_rate: float = 1.0,
    C: float = 1.0,
    aggregator: Aggregator = "peer",
    transport: PeerTransport = "tls",
    key_bits: int = 2048,
    insecure_keys: bool = False,
    frac_bits: int = DEFAULT_FRAC_BITS,
    test_size: float = 0.25,
    seed: int = 0,
    out: str | Path | None = None,
    progress: Progress | None = None,
) -> FederatedResult:
    """Train federated logistic regression with secure aggregation; compare with the clear.

    Runs the same FedAvg twice, once with secure aggregation and once with plain sums, and
    trains scikit-learn's centralised ``LogisticRegression(C=C)`` on the pooled training rows.

    Args:
        hospitals: number of hospitals, 2..20 (3-5 is the use case).
        rounds, local_steps, learning_rate, C: FedAvg hyper-parameters (see
            :class:`TrainingConfig`).
        aggregator: ``"peer"`` (peer MPC secure sum) or ``"service"`` (aggregation service).
        transport: peer aggregator: ``"tls"`` (TLS on 127.0.0.1) or ``"memory"``.
        key_bits: service aggregator: Paillier modulus size.
        insecure_keys: service aggregator: allow keys below 2048 bits (fast tests only).
        frac_bits: fixed-point precision of the secure sums.
        test_size: fraction of rows held out for testing.
        seed: the train/test split and the assignment of rows to hospitals.
        out: directory for the plot ``federated_accuracy.png`` (None: no plot).
        progress: called with a short message per phase.

    Returns:
        Accuracy per round (secure and plaintext), centralised accuracy, models, timings.

    Reveals: see the module docstring (N, feature means and variances, each round's average
    model).

    Raises:
        InvalidInputError: bad parameters.
        ProtocolError, TransportError: a party, the server or a key holder failed.
        MissingExtraError: scikit-learn or matplotlib (the ``examples`` extra) is missing.
    """
    with require_extra("examples"):
        from sklearn.linear_model import LogisticRegression

    config = TrainingConfig(rounds, local_steps, learning_rate, C)
    config.check()
    if aggregator not in ("peer", "service"):
        raise InvalidInputError(f"unknown aggregator {aggregator!r}; choose 'peer' or 'service'")
    split = breast_cancer_hospitals(hospitals, test_size=test_size, seed=seed)
    seconds: dict[str, float] = {}
    details: dict[str, Any] = {}

    if progress:
        progress(f"secure FedAvg: {hospitals} hospitals, {rounds} rounds ({aggregator})")
    start = time.perf_counter()
    if aggregator == "peer":
        secure_models, mean, std = _train_peer(
            split, config, frac_bits=frac_bits, transport=transport, progress=progress
        )
        details.update(transport=transport, threshold=majority_threshold(hospitals))
    else:
        with ServiceAggregator(
            key_bits=key_bits, frac_bits=frac_bits, insecure_keys=insecure_keys, progress=None
        ) as service:
            counter = iter(range(1, rounds + 3))

            def add(vectors: list[FloatArray], bits: int) -> FloatArray:
                step = next(counter)
                if progress is not None and step > 2:
                    progress(f"round {step - 2}/{rounds}")
                return service.aggregate(vectors, name=f"fedavg step {step}", frac_bits=bits)

            secure_models, mean, std = _train_coordinated(split, config, add, frac_bits=frac_bits)
            details.update(key_bits=key_bits, key_threshold=f"{service.t}-of-{service.holders}")
            seconds.update({f"service_{k}": v for k, v in service.seconds.items()})
    seconds["secure_training"] = time.perf_counter() - start

    start = time.perf_counter()
    plain_models, plain_mean, plain_std = _train_coordinated(
        split, config, lambda vs, _bits: np.sum(vs, axis=0), frac_bits=frac_bits
    )
    seconds["plaintext_training"] = time.perf_counter() - start

    start = time.perf_counter()
    train_x = (split.train_x - plain_mean) / plain_std
    clf = LogisticRegression(C=C, max_iter=10_000).fit(train_x, split.train_y)
    centralised_model = np.append(np.asarray(clf.coef_[0]), float(clf.intercept_[0]))
    seconds["centralised_training"] = time.perf_counter() - start

    test_secure = (split.test_x - mean) / std
    test_plain = (split.test_x - plain_mean) / plain_std
    result = FederatedResult(
        hospitals=hospitals,
        rows_per_hospital=[int(x.shape[0]) for x, _ in split.shards],
        config=config,
        aggregator=aggregator,
        secure_accuracy=[accuracy(m, test_secure, split.test_y) for m in secure_models],
        plaintext_accuracy=[accuracy(m, test_plain, split.test_y) for m in plain_models],
        centralised_accuracy=accuracy(centralised_model, test_plain, split.test_y),
        secure_model=secure_models[-1],
        plaintext_model=plain_models[-1],
        centralised_model=centralised_model,
        max_model_difference=max(
            float(np.abs(s - p).max()) for s, p in zip(secure_models, plain_models, strict=True)
        ),
        test_rows=int(split.test_y.shape[0]),
        seconds=seconds,
        details=details,
        frac_bits=frac_bits,
    )
    path = output_path(out, "federated_accuracy.png")
    if path is not None:
        plot_accuracy(result, path)
        result.plot = path
    return result


def plot_accuracy(result: FederatedResult, path: str | Path) -> None:
    """Write the accuracy-per-round figure: secure vs plaintext FedAvg, centralised line."""
    fig = figure(7.5, 4.5)
    ax = fig.subplots()
    rounds = np.arange(1, len(result.secure_accuracy) + 1)
    ax.plot(
        rounds,
        np.array(result.plaintext_accuracy) * 100,
        "-",
        lw=3,
        alpha=0.5,
        label="plaintext FedAvg",
    )
    ax.plot(
        rounds,
        np.array(result.secure_accuracy) * 100,
        "o--",
        ms=3,
        label=f"secure FedAvg ({result.aggregator} secure sum)",
    )
    ax.axhline(
        result.centralised_accuracy * 100,
        color="k",
        ls=":",
        label="centralised scikit-learn LogisticRegression",
    )
    ax.set_xlabel("round")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(
        f"Breast cancer, {result.hospitals} hospitals: final secure "
        f"{result.secure_accuracy[-1]:.1%}, centralised {result.centralised_accuracy:.1%}"
    )
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    fig.savefig(path, dpi=110)


__all__ = [
    "ACCURACY_TOLERANCE_PP",
    "RELEASED",
    "FederatedResult",
    "TrainingConfig",
    "accuracy",
    "centred_squares",
    "local_update",
    "plot_accuracy",
    "run_federated",
    "scaler_from_sums",
    "std_from_squares",
    "sum_summary",
]

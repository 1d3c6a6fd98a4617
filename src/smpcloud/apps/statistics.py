"""Safe data analysis: joint statistics of several hospitals' patients, none of them shared.

The data are scikit-learn's diabetes dataset (442 real patients: age, sex, body-mass index,
blood pressure, six serum measurements and disease progression one year later), split across
simulated hospitals (:func:`~smpcloud.datasets.diabetes_hospitals`). The statistics are
the count, sum, mean, variance and standard deviation of every chosen column, the covariance
and correlation matrices of the chosen columns, and a histogram (bucket counts) of one column.

How. Every one of these is a function of a few global *sufficient statistics*: the number of
patients N, the column sums S_j, the sums of cross-products S_jk = sum_i x_ij x_ik (the Gram
matrix) and the bucket counts. Each is a sum over patients, so each hospital computes its own
partial sums locally and the partial sums are added securely:

* ``mode="peer"`` (peer MPC): the hospitals are the computing parties; each Shamir-shares its
  summary vector to the others and only the total is interpolated (secure sum, t = majority).
  Over TLS on 127.0.0.1 (``transport="tls"``) or an in-memory network (``"memory"``).
* ``mode="cloud"`` (cloud aggregation): each hospital (or, with ``cloud_clients="patients"``,
  each patient) is a client of the aggregation service on 127.0.0.1; it encrypts its summary
  vector under a 3-of-5 threshold Paillier key and uploads only ciphertexts; the server adds
  them blindly; three key holders decrypt only the total.

Reveals (both modes): N, the column sums S_j, the cross-product sums S_jk (j <= k) of the chosen
columns and the global bucket counts, and nothing else; in cloud mode also the number of
uploading clients. Every released statistic (means, variances, covariances, correlations) is
computed from these totals in public, and conversely the totals follow from the released count,
means and covariance matrix, so computing the subtraction inside MPC would hide nothing more. No
hospital's own count, sums or histogram is revealed (beyond what the totals imply, e.g. with two
hospitals each learns the other's totals by subtracting its own: use three or more).

Accuracy (the documented bound, checked by the tests). Each uploaded summary entry is encoded
as round(v * 2^f) (f = ``frac_bits``, default 20), an error of at most 2^-(f+1); the secure sums
themselves are exact. With U uploads (hospitals, or patients), every released sum is therefore
within delta = U * 2^-(f+1) of the exact sum, counts and bucket counts are exact, and:

* mean: |error| <= delta / N;
* covariance (ddof = 1): |error| <= (delta + (|S_j| + |S_k| + delta) * delta / N) / (N - 1);
  variance is its diagonal;
* standard deviation: |error| <= (variance error) / sqrt(secure variance);
* correlation: the interval of c / sqrt(a b) over the error boxes of the covariance c and the
  variances a, b (evaluated at the box corners; the function is monotone on the box);

plus a float64 rounding allowance of 1e-11 times the magnitude of the terms involved.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
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
    peer_secure_sum,
)
from smpcloud.apps.results import (
    Comparison,
    compare,
    comparison_lines,
    figure,
    footer_lines,
    matrix_lines,
    output_path,
)
from smpcloud.datasets import diabetes_hospitals
from smpcloud.errors import InvalidInputError

FloatArray = npt.NDArray[np.float64]
Mode = Literal["peer", "cloud"]
CloudClients = Literal["hospitals", "patients"]

#: Default columns: age, body-mass index, mean blood pressure, log serum triglycerides (s5)
#: and disease progression after one year.
DEFAULT_COLUMNS: Final = ("age", "bmi", "bp", "s5", "progression")
#: WHO body-mass-index categories: underweight < 18.5 <= normal < 25 <= overweight < 30 <=
#: obese I < 35 <= obese II < 40 <= obese III.
BMI_EDGES: Final = (18.5, 25.0, 30.0, 35.0, 40.0)
#: Float64 rounding allowance, relative to the magnitude of the terms (see module docstring).
FLOAT_SLACK: Final = 1e-11

RELEASED = (
    "the number of patients N",
    "the column sums (equivalently the means)",
    "the sums of cross-products of the columns, i.e. the Gram matrix "
    "(equivalently the covariance matrix, given N and the means)",
    "the global histogram bucket counts",
)


@dataclass(frozen=True, slots=True)
class SummaryLayout:
    """Positions in a summary vector: [count, sums (d), cross-products j <= k, bucket counts]."""

    columns: int
    buckets: int

    @property
    def pairs(self) -> list[tuple[int, int]]:
        """The (j, k) pairs with j <= k, in vector order."""
        return list(itertools.combinations_with_replacement(range(self.columns), 2))

    @property
    def length(self) -> int:
        """Entries of a summary vector."""
        d = self.columns
        return 1 + d + d * (d + 1) // 2 + self.buckets

    def split(self, vector: FloatArray) -> tuple[float, FloatArray, FloatArray, FloatArray]:
        """Return (count, sums, Gram matrix, bucket counts) from a (summed) summary vector."""
        d = self.columns
        count = float(vector[0])
        sums = vector[1 : 1 + d]
        gram = np.zeros((d, d))
        start = 1 + d
        for offset, (j, k) in enumerate(self.pairs):
            gram[j, k] = gram[k, j] = vector[start + offset]
        buckets = vector[start + len(self.pairs) :]
        return count, sums, gram, buckets


def bucket_of(values: FloatArray, edges: Sequence[float]) -> npt.NDArray[np.int64]:
    """Return each value's bucket: 0 below edges[0], i for edges[i-1] <= v < edges[i], ..."""
    return np.searchsorted(np.asarray(edges, dtype=np.float64), values, side="right").astype(
        np.int64
    )


def local_summary(
    rows: FloatArray, histogram_values: FloatArray, edges: Sequence[float]
) -> FloatArray:
    """Compute one owner's summary vector (its partial sufficient statistics), locally.

    Args:
        rows: the owner's (m, d) table.
        histogram_values: the owner's values of the histogram column (m,).
        edges: the public bucket edges (increasing).

    Returns:
        [m, sum_i x_ij (d), sum_i x_ij x_ik for j <= k, bucket counts (len(edges) + 1)].
    """
    table = np.asarray(rows, dtype=np.float64)
    d = table.shape[1]
    layout = SummaryLayout(d, len(edges) + 1)
    gram = table.T @ table
    counts = np.bincount(bucket_of(histogram_values, edges), minlength=layout.buckets)
    return np.concatenate(
        [
            [float(table.shape[0])],
            table.sum(axis=0),
            [gram[j, k] for j, k in layout.pairs],
            counts.astype(np.float64),
        ]
    )


@dataclass(slots=True)
class StatsResult:
    """What the statistics use case released, next to the plaintext values.

    Attributes:
        mode: ``"peer"`` or ``"cloud"``.
        hospitals: number of hospitals.
        uploads: number of contributions that were added (hospitals, or patients in cloud
            mode with ``cloud_clients="patients"``); enters the error bound.
        columns: the analysed columns.
        histogram_column, edges, bucket_labels: the histogram's column, public edges, labels.
        count, plaintext_count: N, securely and in the clear (always equal).
        comparisons: per statistic (sum, mean, variance, std, covariance, correlation,
            histogram), the secure value, the plaintext value and the documented bound.
        released: what the computation revealed.
        seconds: wall-clock seconds per phase.
        details: mode-specific facts (transport, threshold, key size, ciphertexts).
        frac_bits: the fixed-point precision.
        plot: the written figure, if an output directory was given.
    """

    mode: Mode
    hospitals: int
    uploads: int
    columns: tuple[str, ...]
    histogram_column: str
    edges: tuple[float, ...]
    bucket_labels: tuple[str, ...]
    count: int
    plaintext_count: int
    comparisons: dict[str, Comparison]
    released: tuple[str, ...]
    seconds: dict[str, float]
    details: dict[str, Any] = field(default_factory=dict)
    frac_bits: int = DEFAULT_FRAC_BITS
    plot: Path | None = None

    @property
    def max_abs_error(self) -> float:
        """The largest |secure - plaintext| over every released statistic."""
        return max(c.max_abs_error for c in self.comparisons.values())

    @property
    def within_bounds(self) -> bool:
        """Whether every statistic is within its documented bound and N is exact."""
        return self.count == self.plaintext_count and all(
            c.within_bound for c in self.comparisons.values()
        )

    def summary_lines(self) -> list[str]:
        """Render the result for people: secure next to plaintext, bounds, what was revealed."""
        how = (
            f"peer MPC, {self.hospitals} hospitals as parties, {self.details.get('transport')}"
            if self.mode == "peer"
            else f"cloud aggregation service on 127.0.0.1, {self.uploads} clients, "
            f"{self.details.get('key_bits')}-bit {self.details.get('key_threshold')} key"
        )
        lines = [
            f"Safe data analysis ({how}): diabetes dataset, N = {self.count} "
            f"(plaintext {self.plaintext_count}), columns {', '.join(self.columns)}",
            *comparison_lines(
                [self.comparisons[k] for k in ("mean", "variance", "std", "histogram")]
            ),
        ]
        for name in ("covariance", "correlation"):
            comp = self.comparisons[name]
            lines += matrix_lines(f"{name} matrix (secure)", self.columns, comp.secure)
            lines.append(
                f"  {name}: max |secure - plaintext| = {comp.max_abs_error:.2e} "
                f"(bound {float(comp.bound.max()):.2e})"
            )
        lines.append(f"  all within the documented fixed-point bounds: {self.within_bounds}")
        return lines + footer_lines(self.released, self.seconds, self.plot)

    def to_json(self) -> dict[str, Any]:
        """Return one JSON-ready object."""
        return {
            "use_case": "statistics",
            "mode": self.mode,
            "hospitals": self.hospitals,
            "uploads": self.uploads,
            "columns": list(self.columns),
            "histogram": {
                "column": self.histogram_column,
                "edges": list(self.edges),
                "labels": list(self.bucket_labels),
            },
            "count": self.count,
            "plaintext_count": self.plaintext_count,
            "statistics": {k: c.to_json() for k, c in self.comparisons.items()},
            "max_abs_error": self.max_abs_error,
            "within_bounds": self.within_bounds,
            "released": list(self.released),
            "frac_bits": self.frac_bits,
            "seconds": {k: round(v, 4) for k, v in self.seconds.items()},
            "details": self.details,
            "plot": str(self.plot) if self.plot else None,
        }


def bucket_labels(edges: Sequence[float]) -> tuple[str, ...]:
    """Human labels of the buckets defined by ``edges``."""
    labels = [f"<{edges[0]:g}"]
    labels += [f"{a:g}-{b:g}" for a, b in itertools.pairwise(edges)]
    labels.append(f">={edges[-1]:g}")
    return tuple(labels)


def derive(
    total: FloatArray, layout: SummaryLayout, *, uploads: int, frac_bits: int
) -> dict[str, tuple[FloatArray, FloatArray]]:
    """Compute the statistics and their error bounds from a summed summary vector (public).

    Args:
        total: the released sum of all summary vectors.
        layout: its layout.
        uploads: how many vectors were added (U in the error bound).
        frac_bits: the fixed-point precision f.

    Returns:
        name -> (value, bound) for sum, mean, variance, std, covariance, correlation, histogram.

    Raises:
        InvalidInputError: fewer than two patients (the sample variance is undefined).
    """
    count_f, sums, gram, buckets = layout.split(total)
    n = round(count_f)
    if n < 2:
        raise InvalidInputError("need at least two patients for a sample variance")
    delta = uploads * 2.0 ** -(frac_bits + 1)
    mean = sums / n
    cov = (gram - np.outer(sums, sums) / n) / (n - 1)
    abs_sums = np.abs(sums) + delta
    magnitude = (np.abs(gram) + np.abs(np.outer(sums, sums)) / n) / (n - 1)
    cov_bound = (delta + (abs_sums[:, None] + abs_sums[None, :] + delta) * delta / n) / (n - 1)
    cov_bound = cov_bound + FLOAT_SLACK * magnitude
    var = np.diag(cov).copy()
    var_bound = np.diag(cov_bound).copy()
    std = np.sqrt(np.maximum(var, 0.0))
    std_bound = np.where(var > 0, var_bound / np.sqrt(np.maximum(var, 1e-300)), np.sqrt(var_bound))
    std_bound = std_bound + FLOAT_SLACK * std
    corr, corr_bound = _correlation_with_bound(cov, cov_bound)
    return {
        "sum": (sums, np.full_like(sums, delta) + FLOAT_SLACK * np.abs(sums)),
        "mean": (mean, delta / n + FLOAT_SLACK * np.abs(mean)),
        "variance": (var, var_bound),
        "std": (std, std_bound),
        "covariance": (cov, cov_bound),
        "correlation": (corr, corr_bound),
        "histogram": (np.rint(buckets), np.zeros_like(buckets)),
    }


def _correlation_with_bound(cov: FloatArray, bound: FloatArray) -> tuple[FloatArray, FloatArray]:
    d = cov.shape[0]
    var = np.diag(cov)
    corr = cov / np.sqrt(np.outer(var, var))
    out = np.zeros_like(corr)
    for j in range(d):
        for k in range(d):
            if j == k:
                out[j, k] = FLOAT_SLACK
                continue
            a_lo, a_hi = var[j] - bound[j, j], var[j] + bound[j, j]
            b_lo, b_hi = var[k] - bound[k, k], var[k] + bound[k, k]
            if a_lo <= 0 or b_lo <= 0:
                out[j, k] = 2.0  # a variance indistinguishable from zero: no useful bound
                continue
            corners = [
                c / np.sqrt(a * b)
                for c in (cov[j, k] - bound[j, k], cov[j, k] + bound[j, k])
                for a in (a_lo, a_hi)
                for b in (b_lo, b_hi)
            ]
            out[j, k] = max(abs(v - corr[j, k]) for v in corners) + FLOAT_SLACK
    return corr, out


def plaintext_statistics(
    table: FloatArray, histogram_values: FloatArray, edges: Sequence[float]
) -> dict[str, FloatArray]:
    """The same statistics computed directly on the pooled table (numpy; for comparison)."""
    bins = np.concatenate([[-np.inf], np.asarray(edges, dtype=np.float64), [np.inf]])
    hist, _ = np.histogram(histogram_values, bins=bins)
    return {
        "sum": table.sum(axis=0),
        "mean": table.mean(axis=0),
        "variance": table.var(axis=0, ddof=1),
        "std": table.std(axis=0, ddof=1),
        "covariance": np.atleast_2d(np.cov(table, rowvar=False)),
        "correlation": np.atleast_2d(np.corrcoef(table, rowvar=False)),
        "histogram": hist.astype(np.float64),
    }


def run_stats(
    *,
    mode: Mode = "peer",
    hospitals: int = 3,
    columns: Sequence[str] = DEFAULT_COLUMNS,
    histogram_column: str = "bmi",
    edges: Sequence[float] = BMI_EDGES,
    rows: int | None = None,
    transport: PeerTransport = "tls",
    cloud_clients: CloudClients = "hospitals",
    key_bits: int = 2048,
    insecure_keys: bool = False,
    frac_bits: int = DEFAULT_FRAC_BITS,
    seed: int = 0,
    out: str | Path | None = None,
    progress: Progress | None = None,
) -> StatsResult:
    """Run the safe-data-analysis use case end to end on 127.0.0.1 and compare with plaintext.

    Args:
        mode: ``"peer"`` (hospitals are MPC parties) or ``"cloud"`` (the aggregation service).
        hospitals: number of simulated hospitals (>= 2; 3 or more so that no hospital can
            subtract its own data from the totals to learn another's).
        columns: diabetes columns to analyse (see :data:`~smpcloud.datasets.
            DIABETES_COLUMNS`).
        histogram_column: the column whose histogram is computed.
        edges: public, increasing bucket edges of the histogram (default: WHO BMI classes).
        rows: use only the first ``rows`` patients (small runs); default all 442.
        transport: peer mode: ``"tls"`` (real TLS connections on 127.0.0.1) or ``"memory"``.
        cloud_clients: cloud mode: who uploads, ``"hospitals"`` (one summary each) or
            ``"patients"`` (one encrypted record each).
        key_bits: cloud mode: Paillier modulus size (2048 or more).
        insecure_keys: cloud mode: allow key_bits below 2048 (fast tests only).
        frac_bits: fixed-point precision f (resolution 2^-f).
        seed: which hospital holds which patient.
        out: directory for the plot ``stats_<mode>.png`` (None: no plot).
        progress: called with a short message per phase.

    Returns:
        The released statistics next to the plaintext ones, with bounds and timings.

    Reveals: see the module docstring (N, column sums, cross-product sums, bucket counts).

    Raises:
        InvalidInputError: bad parameters (unknown columns or mode, fewer than two hospitals,
            edges not increasing).
        OverflowDetectedError: a partial sum too large for the fixed-point format.
        ProtocolError, TransportError: a party, the server or a key holder failed.
    """
    if mode not in ("peer", "cloud"):
        raise InvalidInputError(f"unknown mode {mode!r}; choose 'peer' or 'cloud'")
    if hospitals < 2:
        raise InvalidInputError("need at least two hospitals")
    cols = tuple(columns)
    edge_list = tuple(float(e) for e in edges)
    if not edge_list or any(b <= a for a, b in itertools.pairwise(edge_list)):
        raise InvalidInputError("histogram edges must be a non-empty increasing sequence")
    wanted = cols if histogram_column in cols else (*cols, histogram_column)
    tables = diabetes_hospitals(hospitals, wanted, rows=rows, seed=seed)
    hist_at = wanted.index(histogram_column)
    layout = SummaryLayout(len(cols), len(edge_list) + 1)
    seconds: dict[str, float] = {}
    details: dict[str, Any] = {}

    start = time.perf_counter()
    if mode == "cloud" and cloud_clients == "patients":
        owners = [row[None, :] for table in tables for row in table]
    elif mode == "cloud" and cloud_clients != "hospitals":
        raise InvalidInputError("cloud_clients must be 'hospitals' or 'patients'")
    else:
        owners = tables
    summaries = [
        local_summary(owner[:, : len(cols)], owner[:, hist_at], edge_list) for owner in owners
    ]
    seconds["local_summaries"] = time.perf_counter() - start

    if mode == "peer":
        if progress:
            progress(f"secure sum of {layout.length} values by {hospitals} hospitals ({transport})")
        start = time.perf_counter()
        total = peer_secure_sum(
            summaries, frac_bits=frac_bits, transport=transport, session="stats"
        )
        seconds["secure_sum"] = time.perf_counter() - start
        details.update(transport=transport, parties=hospitals, threshold=hospitals // 2 + 1)
    else:
        with ServiceAggregator(
            key_bits=key_bits, frac_bits=frac_bits, insecure_keys=insecure_keys, progress=progress
        ) as service:
            total = service.aggregate(summaries, name="diabetes statistics")
        seconds.update(service.seconds)
        details.update(
            key_bits=key_bits,
            key_threshold=f"{service.t}-of-{service.holders}",
            cloud_clients=cloud_clients,
            values_per_client=layout.length,
            ciphertexts_per_client=service.ciphertexts_decrypted,
        )

    derived = derive(total, layout, uploads=len(owners), frac_bits=frac_bits)
    pooled = np.vstack(tables)
    plain = plaintext_statistics(pooled[:, : len(cols)], pooled[:, hist_at], edge_list)
    labels = bucket_labels(edge_list)
    released: tuple[str, ...] = RELEASED
    if mode == "cloud":
        released = (*RELEASED, f"the number of uploading clients ({len(owners)})")
    comparisons = {
        name: compare(
            name,
            value,
            plain[name],
            bound,
            labels if name == "histogram" else cols,
        )
        for name, (value, bound) in derived.items()
    }
    result = StatsResult(
        mode=mode,
        hospitals=hospitals,
        uploads=len(owners),
        columns=cols,
        histogram_column=histogram_column,
        edges=edge_list,
        bucket_labels=labels,
        count=round(float(total[0])),
        plaintext_count=int(pooled.shape[0]),
        comparisons=comparisons,
        released=released,
        seconds=seconds,
        details=details,
        frac_bits=frac_bits,
    )
    path = output_path(out, f"stats_{mode}.png")
    if path is not None:
        plot_stats(result, path)
        result.plot = path
    return result


def plot_stats(result: StatsResult, path: str | Path) -> None:
    """Write a figure: the secure histogram next to the plaintext one, and the correlations."""
    fig = figure(11.0, 4.5)
    left, right = fig.subplots(1, 2)
    hist = result.comparisons["histogram"]
    x = np.arange(len(result.bucket_labels))
    left.bar(x - 0.2, hist.secure, width=0.4, label="secure (released)")
    left.bar(x + 0.2, hist.plaintext, width=0.4, label="plaintext", alpha=0.6)
    left.set_xticks(x, result.bucket_labels)
    left.set_xlabel(result.histogram_column)
    left.set_ylabel("patients")
    left.set_title(f"Histogram of {result.histogram_column} across {result.hospitals} hospitals")
    left.legend()
    corr = result.comparisons["correlation"]
    image = right.imshow(corr.secure, vmin=-1.0, vmax=1.0, cmap="coolwarm")
    d = len(result.columns)
    right.set_xticks(range(d), result.columns, rotation=45)
    right.set_yticks(range(d), result.columns)
    for j in range(d):
        for k in range(d):
            right.text(k, j, f"{corr.secure[j, k]:.2f}", ha="center", va="center", fontsize=8)
    right.set_title(f"Correlation (secure; max |error| {corr.max_abs_error:.1e})")
    fig.colorbar(image, ax=right)
    fig.suptitle(f"Diabetes statistics, {result.mode} mode: N = {result.count}")
    fig.savefig(path, dpi=110)


__all__ = [
    "BMI_EDGES",
    "DEFAULT_COLUMNS",
    "RELEASED",
    "StatsResult",
    "SummaryLayout",
    "bucket_labels",
    "bucket_of",
    "derive",
    "local_summary",
    "plaintext_statistics",
    "plot_stats",
    "run_stats",
]

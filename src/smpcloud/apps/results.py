"""Shared pieces of the use-case reports: secure-versus-plaintext comparisons, text, plots."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from smpcloud.datasets import require_extra

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Comparison:
    """One released quantity computed securely, next to the same quantity computed in the clear.

    Attributes:
        name: what it is (e.g. ``"mean"``).
        secure: the value the secure computation released.
        plaintext: the value computed directly on the pooled data (for comparison only; no
            party of the secure computation ever sees the pooled data).
        bound: the documented bound on |secure - plaintext|, element-wise, derived from the
            fixed-point precision (and float64 rounding); see each use case's module docstring.
        labels: names of the elements (columns), if any.
    """

    name: str
    secure: FloatArray
    plaintext: FloatArray
    bound: FloatArray
    labels: tuple[str, ...] = ()

    @property
    def abs_error(self) -> FloatArray:
        """|secure - plaintext|, element-wise."""
        return np.asarray(np.abs(self.secure - self.plaintext), dtype=np.float64)

    @property
    def max_abs_error(self) -> float:
        """The largest |secure - plaintext|."""
        return float(self.abs_error.max()) if self.abs_error.size else 0.0

    @property
    def within_bound(self) -> bool:
        """Whether every element is within its documented bound."""
        return bool(np.all(self.abs_error <= self.bound))

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready object."""
        return {
            "name": self.name,
            "labels": list(self.labels),
            "secure": np.asarray(self.secure).tolist(),
            "plaintext": np.asarray(self.plaintext).tolist(),
            "max_abs_error": self.max_abs_error,
            "bound": np.asarray(self.bound).tolist(),
            "within_bound": self.within_bound,
        }


def compare(
    name: str,
    secure: npt.ArrayLike,
    plaintext: npt.ArrayLike,
    bound: npt.ArrayLike,
    labels: Sequence[str] = (),
) -> Comparison:
    """Build a :class:`Comparison` from array-likes (the bound broadcasts)."""
    sec = np.asarray(secure, dtype=np.float64)
    plain = np.asarray(plaintext, dtype=np.float64)
    return Comparison(
        name,
        sec,
        plain,
        np.broadcast_to(np.asarray(bound, dtype=np.float64), sec.shape).copy(),
        tuple(labels),
    )


def comparison_lines(comparisons: Sequence[Comparison]) -> list[str]:
    """Render comparisons as aligned text lines: secure, plaintext, |error|, bound."""
    lines = [f"  {'quantity':<28} {'secure':>14} {'plaintext':>14} {'|error|':>10} {'bound':>10}"]
    for comp in comparisons:
        sec = np.atleast_1d(comp.secure)
        if sec.ndim == 2:
            lines.append(
                f"  {comp.name + ' (matrix)':<28} {'':>14} {'':>14} "
                f"{comp.max_abs_error:>10.2e} {float(comp.bound.max()):>10.2e}"
            )
            continue
        plain = np.atleast_1d(comp.plaintext)
        err = np.atleast_1d(comp.abs_error)
        bound = np.atleast_1d(comp.bound)
        for i in range(sec.shape[0]):
            label = comp.name if not comp.labels else f"{comp.name}[{comp.labels[i]}]"
            lines.append(
                f"  {label:<28} {sec[i]:>14.6f} {plain[i]:>14.6f} {err[i]:>10.2e} {bound[i]:>10.2e}"
            )
    return lines


def footer_lines(
    released: Sequence[str], seconds: dict[str, float], plot: Path | None
) -> list[str]:
    """Return the closing lines every use case prints: what was revealed, timings, the plot."""
    lines = [
        "  revealed: " + "; ".join(released),
        "  seconds: " + ", ".join(f"{k} {v:.3f}" for k, v in seconds.items()),
    ]
    if plot is not None:
        lines.append(f"  plot: {plot}")
    return lines


def matrix_lines(title: str, labels: Sequence[str], matrix: FloatArray) -> list[str]:
    """Render a labelled square matrix as text lines."""
    width = max(8, *(len(label) for label in labels))
    header = "".join(f"{label:>{width + 1}}" for label in labels)
    lines = [f"  {title}", "  " + " " * width + header]
    for label, row in zip(labels, matrix, strict=True):
        lines.append(f"  {label:<{width}}" + "".join(f"{v:>{width + 1}.4f}" for v in row))
    return lines


def figure(width: float, height: float) -> Any:
    """Return a new matplotlib ``Figure`` that saves to files (no pyplot, no global backend).

    Raises:
        MissingExtraError: matplotlib (the ``examples`` extra) is not installed.
    """
    with require_extra("examples"):
        from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def output_path(out: str | Path | None, name: str) -> Path | None:
    """Return ``out/name`` (creating ``out``), or None when no output directory was given."""
    if out is None:
        return None
    directory = Path(out)
    directory.mkdir(parents=True, exist_ok=True)
    return directory / name


__all__ = [
    "Comparison",
    "compare",
    "comparison_lines",
    "figure",
    "matrix_lines",
    "output_path",
]

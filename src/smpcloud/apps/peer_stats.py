"""Joint statistics of several organisations' private columns, computed by peer MPC.

Each party reads one numeric column of its own CSV file; all parties together learn only the
statistics they asked for over the union of their rows (what each reveals is listed in
:data:`STATISTICS`). The values themselves never leave a party except as Shamir shares.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from smpcloud.errors import InvalidInputError
from smpcloud.mpc.protocols import statistics
from smpcloud.mpc.runtime import Party

#: Statistic name -> what computing it reveals to every party.
STATISTICS: dict[str, str] = {
    "count": "the total number of rows (already public: each party's row count is public)",
    "sum": "the total of all values",
    "mean": "the mean (equivalently the total) and the count",
    "variance": "the population variance and the count",
    "std": "the population standard deviation (so the variance) and the count",
    "sum_of_squares": "the sum of squares of all values",
}

MAX_ROWS = 10_000_000


def read_column(path: str | Path, column: str | None = None) -> npt.NDArray[np.float64]:
    """Read one numeric column of a CSV file (a header row is detected automatically).

    Args:
        path: the CSV file.
        column: a header name, or a 0-based index as text; default: the first column.

    Raises:
        InvalidInputError: unknown column, a non-numeric or missing cell (row and column
            named), an empty file, or more than MAX_ROWS rows.
    """
    file = Path(path)
    with file.open(newline="", encoding="utf-8") as handle:
        rows = [row for row in csv.reader(handle) if row and any(cell.strip() for cell in row)]
    if not rows:
        raise InvalidInputError(f"{file}: no rows")
    header: list[str] | None = None
    try:
        [float(cell) for cell in rows[0]]
    except ValueError:
        header, rows = [cell.strip() for cell in rows[0]], rows[1:]
    if column is None:
        index = 0
    elif header is not None and column in header:
        index = header.index(column)
    elif column.isdigit():
        index = int(column)
    else:
        known = ", ".join(header) if header else "no header row"
        raise InvalidInputError(f"{file}: no column {column!r} ({known})")
    if len(rows) > MAX_ROWS:
        raise InvalidInputError(f"{file}: more than {MAX_ROWS} rows")
    out = np.empty(len(rows))
    for number, row in enumerate(rows, start=2 if header else 1):
        try:
            out[number - (2 if header else 1)] = float(row[index])
        except (ValueError, IndexError):
            raise InvalidInputError(f"{file}: row {number}, column {index}: not a number") from None
    if not np.isfinite(out).all():
        raise InvalidInputError(f"{file}: NaN or infinite values")
    return out


def parse_statistics(spec: str) -> list[str]:
    """Parse 'mean,variance' into known statistic names.

    Raises:
        InvalidInputError: an unknown name (the message lists the known ones).
    """
    names = [s.strip().lower() for s in spec.split(",") if s.strip()]
    unknown = [s for s in names if s not in STATISTICS]
    if unknown or not names:
        raise InvalidInputError(
            f"unknown statistic(s) {', '.join(unknown) or '(none)'}; "
            f"choose from {', '.join(STATISTICS)}"
        )
    return names


async def compute(
    party: Party,
    values: Sequence[float] | npt.NDArray[np.float64],
    names: Sequence[str],
    *,
    frac_bits: int = 16,
) -> dict[str, float]:
    """Compute the named statistics over all parties' values (every party calls this).

    Reveals: for each name, what :data:`STATISTICS` says, and nothing else.
    """
    vals = np.asarray(values, dtype=np.float64)
    out: dict[str, float] = {}
    for name in names:
        if name == "count":
            out[name] = float((await statistics.secure_sum(party, [len(vals)]))[0])
        elif name == "sum":
            total = await statistics.secure_sum(party, [float(vals.sum())], frac_bits=frac_bits)
            out[name] = float(total[0])
        elif name == "mean":
            out[name] = await statistics.mean(party, vals, frac_bits=frac_bits)
        elif name == "variance":
            out[name] = await statistics.variance(party, vals, frac_bits=frac_bits)
        elif name == "std":
            out[name] = await statistics.standard_deviation(party, vals, frac_bits=frac_bits)
        elif name == "sum_of_squares":
            out[name] = await statistics.sum_of_squares(party, vals, frac_bits=frac_bits)
    return out

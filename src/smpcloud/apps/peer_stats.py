"""Joint statistics of several organisations' private columns, computed by peer MPC.

Each party reads one numeric column of its own CSV file (:func:`read_input` says what the file must
look like; :func:`write_example_inputs` writes example files from scikit-learn's diabetes
dataset); all parties together learn only the statistics they asked for over the union
of their rows (what each reveals is listed in :data:`STATISTICS`). The values themselves never
leave a party except as Shamir shares.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from smpcloud.datasets import DIABETES_COLUMNS, diabetes_hospitals
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


@dataclass(frozen=True, slots=True)
class ColumnInput:
    """The column a party contributes: its name (or 0-based index) and its values."""

    column: str | int
    values: npt.NDArray[np.float64]


def read_input(path: str | Path, column: str | None = None) -> ColumnInput:
    """Read one numeric column of a CSV file (a header row is detected automatically).

    A header row is a first row with a cell that is not a number. A file with one column needs
    no ``column``; a file with several does: the first column is never picked silently.

    Args:
        path: the CSV file.
        column: a header name, or a 0-based index as text; may be omitted for a one-column
            file.

    Returns:
        The column's name (its index when the file has no header row) and its values.

    Raises:
        InvalidInputError: several columns and no ``column`` (the message lists them), an
            unknown column, a missing, non-numeric, NaN or infinite cell (row and column
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
    if not rows:
        raise InvalidInputError(f"{file}: a header row and no values")
    width = len(header) if header is not None else max(len(row) for row in rows)
    names = ", ".join(header) if header is not None else f"the file has {width}"
    if column is None:
        if width > 1:
            raise InvalidInputError(
                f"{file} has {width} columns ({names}): choose one with --column"
            )
        index = 0
    elif header is not None and column.strip() in header:
        index = header.index(column.strip())
    elif column.strip().isdigit() and int(column) < width:
        index = int(column)
    else:
        shown = repr(column) if not column.strip().isdigit() else column.strip()
        raise InvalidInputError(f"{file}: no column {shown} ({names})")
    if len(rows) > MAX_ROWS:
        raise InvalidInputError(f"{file}: more than {MAX_ROWS} rows")
    label: str | int = header[index] if header is not None else index
    first = 2 if header is not None else 1
    out = np.empty(len(rows))
    for offset, row in enumerate(rows):
        where = f"{file}: row {offset + first}, column {label!r}"
        cell = row[index].strip() if index < len(row) else ""
        if not cell:
            raise InvalidInputError(f"{where}: missing value")
        try:
            value = float(cell)
        except ValueError:
            raise InvalidInputError(f"{where}: not a number ({cell[:20]!r})") from None
        if not np.isfinite(value):
            raise InvalidInputError(f"{where}: not a finite number ({cell[:20]!r})")
        out[offset] = value
    return ColumnInput(label, out)


def read_column(path: str | Path, column: str | None = None) -> npt.NDArray[np.float64]:
    """Read one numeric column of a CSV file: :func:`read_input`'s values.

    Raises:
        InvalidInputError: as :func:`read_input`.
    """
    return read_input(path, column).values


def write_example_inputs(
    out_dir: str | Path, parties: int, *, overwrite: bool = False, seed: int = 0
) -> list[Path]:
    """Write scikit-learn's diabetes dataset split across ``parties`` hospitals, one CSV each.

    ``OUT/hospital-<i>.csv`` holds a header row (:data:`~smpcloud.datasets.DIABETES_COLUMNS`:
    age, sex, bmi, bp, s1..s6, progression) and hospital i's patients, unscaled. The split is
    public and reproducible (``seed``); the data is public. Needs the ``examples`` extra.

    Args:
        out_dir: the directory (created).
        parties: the number of hospitals, 1..442.
        overwrite: replace existing files instead of refusing.
        seed: which hospital gets which patient.

    Returns:
        The files written, in party order.

    Raises:
        InvalidInputError: parties out of range.
        FileExistsError: a file exists and ``overwrite`` is false (nothing is written).
        MissingExtraError: scikit-learn is not installed.
    """
    tables = diabetes_hospitals(parties, seed=seed)
    directory = Path(out_dir)
    paths = [directory / f"hospital-{i}.csv" for i in range(1, parties + 1)]
    existing = [str(p) for p in paths if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"refusing to overwrite {existing[0]}")
    directory.mkdir(parents=True, exist_ok=True)
    for path, table in zip(paths, tables, strict=True):
        lines = [",".join(DIABETES_COLUMNS)]
        lines += [",".join(f"{value:.10g}" for value in row) for row in table]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return paths


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

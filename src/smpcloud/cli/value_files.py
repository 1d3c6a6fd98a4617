"""A client's values from the command line or from a file (``smpcloud submit --from-file``).

On the command line every value is a number, negative ones included (``-0.5``); a word that
starts with a dash and is not a number is an unknown option. In a file, a vector can be as
long as the task needs:

* ``.csv``: one row or one column of numbers, no header;
* ``.npy``: a 1-D numpy array of numbers (never unpickled: object arrays are refused);
* ``.json``: a list of numbers.

Every error names the file and, for CSV, the line and column. Whether the number of values
fits the task is the SDK's check (:func:`smpcloud.client.prepare_report`).
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Final

import click

from smpcloud.errors import InvalidInputError

#: Largest values file read, in bytes (10^6 floats as JSON or CSV are ~20 MB).
MAX_VALUES_FILE_BYTES: Final = 256 << 20
SUFFIXES: Final = (".csv", ".npy", ".json")

Number = int | float


def parse_number(text: str) -> Number | None:
    """Return ``text`` as an int (if it is one) or a float; None if it is not a number."""
    cleaned = text.strip()
    try:
        return int(cleaned)
    except ValueError:
        pass
    try:
        return float(cleaned)
    except ValueError:
        return None


def values_from_arguments(arguments: tuple[str, ...]) -> list[Number]:
    """Parse the VALUES arguments of ``smpcloud submit``.

    Raises:
        click.NoSuchOption: a word starting with a dash that is not a number (a mistyped
            option, e.g. ``--token-fil``).
        click.BadParameter: any other word that is not a number.
    """
    values: list[Number] = []
    for argument in arguments:
        number = parse_number(argument)
        if number is None:
            if argument.startswith("-"):
                raise click.NoSuchOption(argument)
            raise click.BadParameter(f"{argument!r} is not a number", param_hint="VALUES")
        values.append(number)
    return values


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not a number")


def _read_csv(path: Path, text: str) -> list[Number]:
    rows = [
        (line, [cell.strip() for cell in row])
        for line, row in enumerate(csv.reader(text.splitlines()), start=1)
        if any(cell.strip() for cell in row)
    ]
    if not rows:
        raise InvalidInputError(f"{path}: no numbers in the file")
    widest = max(len(cells) for _line, cells in rows)
    if len(rows) > 1 and widest > 1:
        raise InvalidInputError(
            f"{path}: expected one row or one column of numbers, found {len(rows)} rows of up "
            f"to {widest} columns"
        )
    values: list[Number] = []
    for line, cells in rows:
        for column, cell in enumerate(cells, start=1):
            number = parse_number(cell)
            if number is None:
                raise InvalidInputError(
                    f"{path}: line {line}, column {column}: {cell!r} is not a number"
                )
            values.append(number)
    return values


def _read_json(path: Path, text: str) -> list[Number]:
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(
            f"{path}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from None
    except ValueError as exc:
        raise InvalidInputError(f"{path}: not strict JSON ({exc})") from None
    if not isinstance(data, list) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in data
    ):
        raise InvalidInputError(f"{path}: expected a JSON list of numbers, e.g. [0.5, -1, 2]")
    if not data:
        raise InvalidInputError(f"{path}: no numbers in the file")
    return list(data)


def _read_npy(path: Path) -> list[Number]:
    import numpy as np

    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError):
        raise InvalidInputError(
            f"{path}: not a .npy file of numbers (numpy.save of a 1-D array)"
        ) from None
    if not isinstance(array, np.ndarray):
        raise InvalidInputError(f"{path}: not a .npy file of numbers (an .npz archive?)")
    if array.ndim != 1:
        raise InvalidInputError(
            f"{path}: holds an array of shape {array.shape}; expected a 1-D array of numbers"
        )
    if array.dtype.kind not in "iuf":
        raise InvalidInputError(f"{path}: holds {array.dtype} values; expected numbers")
    if array.size == 0:
        raise InvalidInputError(f"{path}: no numbers in the file")
    values: list[Number] = array.tolist()
    return values


def values_from_file(path: Path) -> list[Number]:
    """Read a client's values from a ``.csv``, ``.npy`` or ``.json`` file (module docstring).

    Args:
        path: the file; its suffix says how to read it.

    Returns:
        The values, in order (ints stay ints).

    Raises:
        InvalidInputError: an unknown suffix, a file too large, not UTF-8, not one row or
            column, a cell that is not a number, a JSON value that is not a list of numbers,
            or a .npy array that is not 1-D numbers. The message names the file.
        OSError: the file cannot be read.
    """
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise InvalidInputError(
            f"{path}: unknown file type {suffix or '(no suffix)'!r}; use .csv, .npy or .json"
        )
    if path.stat().st_size > MAX_VALUES_FILE_BYTES:
        raise InvalidInputError(f"{path}: larger than {MAX_VALUES_FILE_BYTES} bytes")
    if suffix == ".npy":
        values = _read_npy(path)
    else:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise InvalidInputError(f"{path}: not UTF-8 text") from None
        values = _read_json(path, text) if suffix == ".json" else _read_csv(path, text)
    bad = next(
        (i for i, v in enumerate(values) if isinstance(v, float) and not math.isfinite(v)), None
    )
    if bad is not None:
        raise InvalidInputError(f"{path}: value {bad + 1} is {values[bad]}, not a finite number")
    return values


__all__ = [
    "MAX_VALUES_FILE_BYTES",
    "SUFFIXES",
    "Number",
    "parse_number",
    "values_from_arguments",
    "values_from_file",
]

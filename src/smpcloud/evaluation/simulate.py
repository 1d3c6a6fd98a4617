"""Many clients' local work (encrypting, sharing) simulated on every core by a process pool.

Each worker process handles a contiguous slice of the clients with *one* key object, whose
fast-encryption (DJN) table it builds once per slice when the slice holds more than
:data:`~smpcloud.client.sdk.CLASSIC_ENCRYPTION_MAX` clients, so each later client pays ~0.6 ms
at 2048 bits. A one-shot device that encrypts a single value pays a classic r^n encryption
instead, ~8 ms at 2048 bits (see Table 1, :mod:`smpcloud.evaluation.table1`).

The functions run in the pool are top-level: the pool pickles them by name (spawn start
method). Nothing secret leaves a worker except the reports themselves (ciphertexts, or the
shares a Shamir client would send, sealed to each server's key).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from smpcloud.client import (
    PreparedReport,
    ShamirCredentials,
    ShamirPreparedReport,
    ShamirTaskInfo,
    TaskInfo,
    prepare_report,
    prepare_shares,
)
from smpcloud.client.sdk import CLASSIC_ENCRYPTION_MAX

InfoT = TypeVar("InfoT")
ItemT = TypeVar("ItemT")
ReportT = TypeVar("ReportT")


def worker_ready() -> int:
    """Keep a worker busy a moment (so that the pool starts the others too); return its pid."""
    time.sleep(0.05)
    return os.getpid()


def encrypt_slice(info: TaskInfo, values: list[float]) -> list[PreparedReport]:
    """Prepare the reports of a slice of clients with one key object (one DJN table)."""
    public_key = info.public_key.public_key  # unpickled here: one object for the slice
    if len(values) > CLASSIC_ENCRYPTION_MAX:
        public_key.precompute()
    return [prepare_report(info, v) for v in values]


def share_slice(
    info: ShamirTaskInfo, work: list[tuple[ShamirCredentials, float]]
) -> list[ShamirPreparedReport]:
    """Prepare the sealed shares of a slice of clients (each with its credentials)."""
    return [prepare_shares(info, value, credentials) for credentials, value in work]


def slices(values: npt.NDArray[np.float64], parts: int) -> list[list[float]]:
    """Cut the values into at most ``parts`` contiguous, non-empty slices of near-equal size."""
    chunks = np.array_split(values, max(1, min(parts, len(values))))
    return [[float(v) for v in chunk] for chunk in chunks if len(chunk)]


def paired_slices(
    credentials: Sequence[ShamirCredentials], values: npt.NDArray[np.float64], parts: int
) -> list[list[tuple[ShamirCredentials, float]]]:
    """Cut (credentials, value) pairs into at most ``parts`` contiguous slices, in order."""
    pairs = [(c, float(v)) for c, v in zip(credentials, values, strict=True)]
    bounds = np.array_split(np.arange(len(pairs)), max(1, min(parts, len(pairs))))
    return [[pairs[i] for i in chunk] for chunk in bounds if len(chunk)]


def map_slices(
    pool: ProcessPoolExecutor,
    function: Callable[[InfoT, list[ItemT]], list[ReportT]],
    info: InfoT,
    parts: list[list[ItemT]],
) -> list[ReportT]:
    """Run function(info, slice) for every slice on the pool; return the results in order."""
    futures: list[Future[list[ReportT]]] = [pool.submit(function, info, s) for s in parts]
    return [item for future in futures for item in future.result()]


__all__ = [
    "encrypt_slice",
    "map_slices",
    "paired_slices",
    "share_slice",
    "slices",
    "worker_ready",
]

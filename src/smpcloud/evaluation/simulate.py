"""Many clients' local work (encrypting, sharing) simulated on every core by a process pool.

Each worker process handles a contiguous slice of the clients with *one* key object, whose
fast-encryption (DJN) table it builds once per slice when the slice holds more than
:data:`~smpcloud.client.sdk.CLASSIC_ENCRYPTION_MAX` clients, so each later client pays ~0.6 ms
at 2048 bits. A one-shot device that encrypts a single value pays a classic r^n encryption
instead, ~8 ms at 2048 bits (see Table 1, :mod:`smpcloud.evaluation.table1`).

Each simulated Paillier client first checks, as :meth:`smpcloud.client.Client.info` does,
that t key holders of the pinned roster certified the task as served
(:func:`smpcloud.protocol.certificates.verify_certified`, ~1 ms: the served key parsed and t
Ed25519 signatures checked), then encrypts: one check per client is what a real client pays
(the served info itself is fetched once per run, not once per client).

The functions run in the pool are top-level: the pool pickles them by name (spawn start
method). Nothing secret leaves a worker except the reports themselves (ciphertexts, or the
shares a Shamir client would send, sealed to each server's key).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, replace
from typing import TypeVar

import httpx
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
from smpcloud.client.models import read_task_info
from smpcloud.client.sdk import CLASSIC_ENCRYPTION_MAX
from smpcloud.crypto import threshold
from smpcloud.crypto.signatures import Roster
from smpcloud.errors import KeyMismatchError
from smpcloud.protocol.certificates import verify_certified
from smpcloud.protocol.schemas import TaskInfoOut

InfoT = TypeVar("InfoT")
ItemT = TypeVar("ItemT")
ReportT = TypeVar("ReportT")
PairT = TypeVar("PairT")


def worker_ready() -> int:
    """Keep a worker busy a moment (so that the pool starts the others too); return its pid."""
    time.sleep(0.05)
    return os.getpid()


@dataclass(frozen=True, slots=True)
class CertifiedTask:
    """What a simulated Paillier client holds: the task as served, and the pinned roster.

    Attributes:
        info: the task's info (its key is the served one; checked by the caller).
        served: the task's info as the server served it, certificates included.
        roster: the key holders' roster every client pins.
    """

    info: TaskInfo
    served: TaskInfoOut
    roster: Roster


def fetch_certified_task(
    url: str,
    task_id: str,
    token: str,
    roster: Roster,
    public: threshold.ThresholdPublicKey,
    *,
    timeout: float,
) -> CertifiedTask:
    """Fetch a task's info as served (once, with one client's token) and check it.

    Checks what a client checks (t certificates from ``roster``) and that the served key is
    ``public``, whose object every simulated client then encrypts with (one DJN table per
    worker). The workers check the certificates again, once per client.

    Raises:
        UncertifiedTaskError: fewer than t valid certificates from ``roster``.
        KeyMismatchError: the served key is not ``public``.
    """
    response = httpx.get(
        f"{url}/v1/tasks/{task_id}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=timeout,
    )
    served = TaskInfoOut.model_validate(response.raise_for_status().json())
    verify_certified(served, roster)
    info = read_task_info(served, insecure=True)
    if info.public_key != public:
        raise KeyMismatchError("the server serves a different key for this task")
    return CertifiedTask(replace(info, public_key=public), served, roster)


def encrypt_slice(task: CertifiedTask, work: list[tuple[str, float]]) -> list[PreparedReport]:
    """Prepare the reports of a slice of clients with one key object (one DJN table).

    Each client checks the holders' certificates of the served task before it encrypts; in a
    ``range`` task it also proves its report valid, bound to its own token (``work`` pairs each
    client's token with its value).

    Raises:
        UncertifiedTaskError: fewer than t valid certificates from the pinned roster.
    """
    info = task.info
    public_key = info.public_key.public_key  # unpickled here: one object for the slice
    if len(work) > CLASSIC_ENCRYPTION_MAX:
        public_key.precompute()
    reports = []
    for token, value in work:
        # What each client checks first: that t pinned holders certified the task with the
        # very key it encrypts under (a real client parses the served key once, as here).
        verify_certified(task.served, task.roster, info.public_key)
        reports.append(prepare_report(info, value, token=token))
    return reports


def share_slice(
    info: ShamirTaskInfo, work: list[tuple[ShamirCredentials, float]]
) -> list[ShamirPreparedReport]:
    """Prepare the sealed shares of a slice of clients (each with its credentials)."""
    return [prepare_shares(info, value, credentials) for credentials, value in work]


def paired_slices(
    credentials: Sequence[PairT], values: npt.NDArray[np.float64], parts: int
) -> list[list[tuple[PairT, float]]]:
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
    "CertifiedTask",
    "encrypt_slice",
    "fetch_certified_task",
    "map_slices",
    "paired_slices",
    "share_slice",
    "worker_ready",
]

"""The paper's Figure 7, measured: seconds per phase against the number of clients, both modes.

For each number of clients N and each mode, a fresh task on real server subprocesses (uvicorn,
SQLite file, 127.0.0.1) started by :func:`run_figure7`, with N simulated clients holding real
patients' body-mass indices (:func:`smpcloud.datasets.patient_bmis`, fixed point with 16
fractional bits). Each phase is timed on its own:

Paillier mode (one server; a 3-of-5 threshold key dealt once per run, the dealer's time reported
separately, not in the figure):

1. **client encryption**: every client checks that 3 of the 5 key holders certified the
   task's key and parameters as served (their Ed25519 signatures, against the pinned roster,
   as :meth:`smpcloud.client.Client.info` does), then encodes, range-checks and encrypts its
   value (:func:`smpcloud.client.prepare_report`). The clients are simulated on every core by a
   process pool (:mod:`smpcloud.evaluation.simulate`): each worker process handles a contiguous
   slice of the clients with *one* key object, whose fast-encryption (DJN) table it builds once
   per slice (when the slice holds more than :data:`~smpcloud.client.sdk.CLASSIC_ENCRYPTION_MAX`
   clients), so each later client pays ~0.6 ms at 2048 bits. A one-shot device that encrypts a
   single value pays a classic r^n encryption instead, ~8 ms at 2048 bits (see Table 1,
   :mod:`smpcloud.evaluation.table1`).
2. **upload**: each client's report goes in its own HTTP request with its own bearer token,
   sent by the SDK (:func:`smpcloud.client.upload_reports`, i.e.
   :meth:`~smpcloud.client.Client.upload`), over ``connections`` concurrent keep-alive
   connections (httpx, default 16), until the server has accepted all N.
3. **aggregation**: the administrator closes the task; the server multiplies the N
   ciphertexts and publishes the aggregate.
4. **threshold decryption**: 3 of the 5 key holders (chosen at random) each fetch the
   aggregate, partial-decrypt it with a zero-knowledge proof and upload; the server verifies
   and combines; the result is read.

Shamir mode (three servers, t = 2): **client sharing** (every client Shamir-shares its value
and seals share j to server j's key, :func:`smpcloud.client.prepare_shares`, same process
pool), **upload** (share j to server j: 3 N requests, each with that client's token on that
server, by :func:`smpcloud.client.upload_shares`; each server opens the sealed share),
**aggregation** (:meth:`~smpcloud.client.ShamirAggregation.close_all`: one participant set,
each server sums its shares), **reconstruction**
(:meth:`~smpcloud.client.ShamirAggregation.result`: the sum rebuilt from the servers' shares of
it, cross-checked when more than t answer).

Every secure result is checked against the plaintext (:func:`check_secure_sum`); a wrong sum or
count raises :class:`~smpcloud.errors.VerificationError`. Setting up a task (creating it with
the key holders' roster, 3 key holders certifying it, registering N clients, one client's
verified :meth:`~smpcloud.client.Client.info`) is not a phase of the figure.

Reveals (to whoever reads the outputs): timings, the count and the sum/average of the public
dataset's values; no key, token or share is written anywhere.
"""

from __future__ import annotations

import multiprocessing
import secrets
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from smpcloud.client import (
    Admin,
    KeyHolder,
    ShamirAggregation,
    ShamirResult,
    ShamirServer,
    TaskResult,
    upload_reports,
    upload_shares,
)
from smpcloud.crypto import threshold
from smpcloud.crypto.signatures import Roster, SigningKey
from smpcloud.datasets import check_extra, patient_bmis
from smpcloud.errors import InvalidInputError, VerificationError
from smpcloud.evaluation.figure7_text import (
    MODES,
    PAILLIER_PHASES,
    SHAMIR_CHECKED_ENCODING,
    SHAMIR_PHASES,
    Mode,
    figure_notes,
    figure_panel,
)
from smpcloud.evaluation.harness import (
    ENCODING,
    KEY_HOLDERS,
    KEY_THRESHOLD,
    SHAMIR_SERVERS,
    SHAMIR_THRESHOLD,
    ProgressCallback,
    Steps,
    check_secure_sum,
    local_servers,
)
from smpcloud.evaluation.outputs import plot_phases, write_csv
from smpcloud.evaluation.simulate import (
    encrypt_slice,
    fetch_certified_task,
    map_slices,
    paired_slices,
    share_slice,
    worker_ready,
)
from smpcloud.parallel import default_workers
from smpcloud.protocol.schemas import TaskEncoding, Validity

DEFAULT_CLIENT_COUNTS: Final = (10, 100, 1000, 10000)
DEFAULT_CONNECTIONS: Final = 16
CSV_NAME: Final = "figure7.csv"
PNG_NAME: Final = "figure7.png"
MAX_CONNECTIONS: Final = 256

_HTTP_TIMEOUT: Final = 120.0


def client_counts_up_to(max_clients: int) -> tuple[int, ...]:
    """Return the figure's x values: 10, 100, 1000, ... up to ``max_clients``, and it.

    Raises:
        InvalidInputError: max_clients is not an int of at least 2.
    """
    if type(max_clients) is not int or max_clients < 2:
        raise InvalidInputError("max_clients must be an int of at least 2")
    counts = []
    n = 10
    while n < max_clients:
        counts.append(n)
        n *= 10
    counts.append(max_clients)
    return tuple(counts)


# ------------------------------------------------------------------------------ value types


@dataclass(frozen=True, slots=True)
class Figure7Row:
    """One point of the figure: ``seconds`` for ``phase`` of ``mode`` with ``clients`` clients."""

    mode: Mode
    clients: int
    phase: str
    seconds: float


@dataclass(frozen=True, slots=True)
class Figure7Check:
    """The checked outcome of one aggregation (mode, N): the secure average and the plaintext's.

    Attributes:
        setup_seconds: creating the task and registering the clients (not in the figure).
        uploads: HTTP report uploads (N in Paillier mode, 3 N in Shamir mode).
    """

    mode: Mode
    clients: int
    count: int
    secure_average: float
    plaintext_average: float
    setup_seconds: float
    uploads: int


@dataclass(frozen=True, slots=True)
class Figure7Result:
    """What :func:`run_figure7` measured and where it wrote it.

    Attributes:
        rows: one per (mode, clients, phase), in run order.
        checks: one per (mode, clients): the verified result.
        bits: Paillier modulus size.
        workers: processes that simulated the clients' local work.
        connections: concurrent HTTP connections of the upload phase.
        dealer_seconds: the key ceremony (3-of-5, safe primes), once per run; None when the
            key was passed in or Paillier mode was not run.
        csv_path: the CSV file (mode, clients, phase, seconds; comment lines start with #).
        png_path: the plot (log-log, one panel per mode, one line per phase).
    """

    rows: list[Figure7Row]
    checks: list[Figure7Check]
    bits: int
    workers: int
    connections: int
    dealer_seconds: float | None
    csv_path: Path
    png_path: Path
    notes: list[str] = field(default_factory=list)

    def seconds(self, mode: Mode, clients: int, phase: str) -> float:
        """Return the measured seconds of one phase.

        Raises:
            KeyError: no such row.
        """
        for row in self.rows:
            if (row.mode, row.clients, row.phase) == (mode, clients, phase):
                return row.seconds
        raise KeyError((mode, clients, phase))

    def total(self, mode: Mode, clients: int) -> float:
        """Return the sum of the four phases of one aggregation (end to end, without setup).

        Raises:
            KeyError: that aggregation was not run.
        """
        times = [r.seconds for r in self.rows if (r.mode, r.clients) == (mode, clients)]
        if not times:
            raise KeyError((mode, clients))
        return sum(times)

    def upload_rate(self, mode: Mode, clients: int) -> float:
        """Return accepted report uploads (HTTP requests) per second in the upload phase.

        Raises:
            KeyError: that aggregation was not run.
        """
        check = next((c for c in self.checks if (c.mode, c.clients) == (mode, clients)), None)
        if check is None:
            raise KeyError((mode, clients))
        return check.uploads / self.seconds(mode, clients, "upload")


# --------------------------------------------------------------------------- the two modes


def _label(mode: Mode, clients: int, what: str) -> str:
    return f"{mode}, {clients:,} clients: {what}"


def _checked_rows(
    mode: Mode,
    clients: int,
    phases: Sequence[str],
    seconds: dict[str, float],
    result: TaskResult | ShamirResult,
    values: npt.NDArray[np.float64],
    setup: float,
    requests: int,
    encoding: TaskEncoding = ENCODING,
) -> tuple[list[Figure7Row], Figure7Check]:
    """Check the secure sum against the plaintext; the run's rows and its check."""
    check_secure_sum(
        count=result.count, secure_sum=float(result.sum[0]), values=values, encoding=encoding
    )
    rows = [Figure7Row(mode, clients, phase, seconds[phase]) for phase in phases]
    check = Figure7Check(
        mode, clients, result.count, float(result.average[0]), float(values.mean()), setup, requests
    )
    return rows, check


def _run_paillier(
    *,
    url: str,
    admin_token: str,
    key: tuple[threshold.ThresholdPublicKey, Sequence[threshold.KeyShare]],
    clients: int,
    pool: ProcessPoolExecutor,
    workers: int,
    connections: int,
    allow_insecure_keys: bool,
    steps: Steps,
    validity: Validity,
) -> tuple[list[Figure7Row], Figure7Check]:
    public, shares = key
    signing = {share.index: SigningKey.generate() for share in shares}
    roster = Roster(public.threshold, {i: k.verify_key for i, k in signing.items()})
    values = patient_bmis(clients)
    seconds: dict[str, float] = {}
    with Admin(url, admin_token, timeout=_HTTP_TIMEOUT) as admin:
        steps.next(_label("paillier", clients, "setup (task, certificates, registration)"))
        start = time.perf_counter()
        task = admin.create_task(
            public,
            name=f"figure 7, {clients} clients",
            encoding=ENCODING,
            min_clients=clients,
            roster=roster,
            validity=validity,
        )
        rng = secrets.SystemRandom()
        for index in sorted(rng.sample(range(len(shares)), public.threshold)):
            with KeyHolder(url, task.task_id, task.holder_tokens[index], shares[index]) as holder:
                holder.certify(signing[shares[index].index])
        credentials = admin.register_clients(task.task_id, clients)
        certified = fetch_certified_task(
            url, task.task_id, credentials[0].token, roster, public, timeout=_HTTP_TIMEOUT
        )
        setup = time.perf_counter() - start

        steps.next(_label("paillier", clients, PAILLIER_PHASES[0]))
        start = time.perf_counter()
        tokens = [cred.token for cred in credentials]
        prepared = map_slices(
            pool, encrypt_slice, certified, paired_slices(tokens, values, workers)
        )
        seconds[PAILLIER_PHASES[0]] = time.perf_counter() - start

        steps.next(_label("paillier", clients, PAILLIER_PHASES[1]))
        uploaded = upload_reports(
            url,
            task.task_id,
            [(cred.token, report) for cred, report in zip(credentials, prepared, strict=True)],
            connections=connections,
            timeout=_HTTP_TIMEOUT,
        )
        seconds[PAILLIER_PHASES[1]] = uploaded.seconds

        steps.next(_label("paillier", clients, PAILLIER_PHASES[2]))
        start = time.perf_counter()
        status = admin.close(task.task_id)
        seconds[PAILLIER_PHASES[2]] = time.perf_counter() - start
        if status.state != "closed" or status.reports != clients:
            raise VerificationError(
                f"the task closed {status.state} with {status.reports} of {clients} reports"
            )

        steps.next(_label("paillier", clients, PAILLIER_PHASES[3]))
        chosen = sorted(rng.sample(range(len(shares)), public.threshold))
        start = time.perf_counter()
        for index in chosen:
            with KeyHolder(url, task.task_id, task.holder_tokens[index], shares[index]) as holder:
                holder.contribute()
        result = admin.result(task.task_id)
        seconds[PAILLIER_PHASES[3]] = time.perf_counter() - start
    return _checked_rows(
        "paillier", clients, PAILLIER_PHASES, seconds, result, values, setup, uploaded.requests
    )


def _run_shamir(
    *,
    servers: Sequence[tuple[str, str]],
    clients: int,
    pool: ProcessPoolExecutor,
    workers: int,
    connections: int,
    steps: Steps,
    validity: Validity,
) -> tuple[list[Figure7Row], Figure7Check]:
    values = patient_bmis(clients)
    encoding = SHAMIR_CHECKED_ENCODING if validity == "range" else ENCODING
    seconds: dict[str, float] = {}
    steps.next(_label("shamir", clients, "setup (task on 3 servers, client registration)"))
    start = time.perf_counter()
    with ShamirAggregation.create_on_servers(
        [ShamirServer(u, token) for u, token in servers],
        name=f"figure 7, {clients} clients",
        threshold=SHAMIR_THRESHOLD,
        encoding=encoding,
        min_clients=clients,
        max_clients=clients,
        validity=validity,
        timeout=_HTTP_TIMEOUT,
    ) as aggregation:
        credentials = aggregation.register(clients)
        info = aggregation.info()
        setup = time.perf_counter() - start

        steps.next(_label("shamir", clients, SHAMIR_PHASES[0]))
        start = time.perf_counter()
        shared = map_slices(pool, share_slice, info, paired_slices(credentials, values, workers))
        seconds[SHAMIR_PHASES[0]] = time.perf_counter() - start

        steps.next(_label("shamir", clients, SHAMIR_PHASES[1]))
        pairs = list(zip(credentials, shared, strict=True))
        uploaded = upload_shares(pairs, connections=connections, timeout=_HTTP_TIMEOUT)
        seconds[SHAMIR_PHASES[1]] = uploaded.seconds
        uploads = uploaded.requests
        pairs.clear()  # the shares are secret: drop them once uploaded
        del shared

        steps.next(_label("shamir", clients, SHAMIR_PHASES[2]))
        start = time.perf_counter()
        closed = aggregation.close_all()
        seconds[SHAMIR_PHASES[2]] = time.perf_counter() - start
        if closed.count != clients or closed.unavailable:
            raise VerificationError(
                f"closed over {closed.count} of {clients} clients; unavailable: "
                f"{dict(closed.unavailable)}"
            )

        steps.next(_label("shamir", clients, SHAMIR_PHASES[3]))
        start = time.perf_counter()
        result = aggregation.result()
        seconds[SHAMIR_PHASES[3]] = time.perf_counter() - start
    return _checked_rows(
        "shamir", clients, SHAMIR_PHASES, seconds, result, values, setup, uploads, encoding
    )


# ------------------------------------------------------------------------------- outputs


# ---------------------------------------------------------------------------------- entry


def _check_arguments(
    client_counts: Sequence[int], modes: Sequence[str], connections: int
) -> tuple[list[int], list[Mode]]:
    counts = list(client_counts)
    if not counts or any(type(n) is not int or n < 2 for n in counts):
        raise InvalidInputError("client_counts must be integers of at least 2 (min_clients)")
    if len(set(counts)) != len(counts):
        raise InvalidInputError("client_counts lists a count twice")
    chosen: list[Mode] = []
    for mode in modes:
        if mode not in MODES:
            raise InvalidInputError(f"unknown mode {mode!r}; expected paillier or shamir")
        if mode in chosen:
            raise InvalidInputError(f"mode {mode!r} listed twice")
        chosen.append("paillier" if mode == "paillier" else "shamir")
    if not chosen:
        raise InvalidInputError("no mode to run")
    if type(connections) is not int or not 1 <= connections <= MAX_CONNECTIONS:
        raise InvalidInputError(f"connections must be an int in 1..{MAX_CONNECTIONS}")
    return sorted(counts), chosen


def run_figure7(
    *,
    client_counts: Sequence[int] = DEFAULT_CLIENT_COUNTS,
    modes: Sequence[Mode] = MODES,
    bits: int = 2048,
    workers: int | None = None,
    connections: int = DEFAULT_CONNECTIONS,
    out: Path,
    progress: ProgressCallback | None = None,
    key: tuple[threshold.ThresholdPublicKey, Sequence[threshold.KeyShare]] | None = None,
    allow_insecure_keys: bool = False,
    validity: Validity = "range",
    db_url: str | None = None,
) -> Figure7Result:
    """Measure Figure 7 and write ``out/figure7.csv`` and ``out/figure7.png``.

    For each mode and each N in ``client_counts`` (ascending), run one aggregation of N
    clients end to end on servers this function starts and stops, time its four phases (see
    the module docstring), and check the result against the plaintext. Prints nothing.

    Args:
        client_counts: numbers of clients (each at least 2).
        modes: ``"paillier"`` and/or ``"shamir"``.
        bits: Paillier modulus size (2048 or more; less only with ``allow_insecure_keys``).
        workers: processes that simulate the clients' local work (default: every core).
        connections: concurrent HTTP connections of the upload phase (default 16).
        out: directory for the CSV and PNG (created if missing).
        progress: called as progress(done, total, description) at the start of each step
            (setup and each phase of each aggregation) and once at the end.
        key: a 3-of-5 threshold key to use instead of dealing one (its dealer time is then
            not reported); its modulus must have ``bits`` bits.
        allow_insecure_keys: allow keys below 2048 bits (fast tests only).
        validity: how the tasks check each report: ``"range"`` (the default, as for any new
            task: every client proves its report valid and every server checks it before
            acknowledging) or ``"none"`` (reports trusted: the figure as measured before
            validity checks existed).
        db_url: the Paillier server's database (any URL ``smpcloud serve --db`` takes, e.g.
            ``postgresql+psycopg://user@host/db``); default a SQLite file of its own. The
            Shamir servers keep a SQLite file each (three servers, three databases).

    Returns:
        The rows, the checked results, and the paths written.

    Raises:
        InvalidInputError: bad arguments.
        VerificationError: a secure result differs from the plaintext one.
        TransportError: a server could not be started or reached.
        UploadError: a server refused an upload (the SDK's exception is its cause).
        SmpcError: a server refused another request (as the SDK raises it).
        MissingExtraError: scikit-learn or matplotlib (the ``examples`` extra) is missing.
    """
    counts, chosen = _check_arguments(client_counts, modes, connections)
    if validity not in ("range", "none"):
        raise InvalidInputError("validity must be 'range' or 'none'")
    if workers is None:
        workers = default_workers()
    elif type(workers) is not int or workers < 1:
        raise InvalidInputError("workers must be None or a positive int")
    if key is not None:
        public, key_shares = key
        if len(key_shares) != KEY_HOLDERS:
            raise InvalidInputError(f"the key must come with {KEY_HOLDERS} key shares")
        if public.public_key.bits != bits:
            raise InvalidInputError(f"the key has {public.public_key.bits} bits, not {bits}")
        if (public.holders, public.threshold) != (KEY_HOLDERS, KEY_THRESHOLD):
            raise InvalidInputError(f"the key must be {KEY_THRESHOLD}-of-{KEY_HOLDERS}")
    check_extra("sklearn.datasets", "matplotlib.figure")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    paillier = "paillier" in chosen
    shamir = "shamir" in chosen
    steps = Steps(2 + len(chosen) * len(counts) * 5, progress)
    steps.next(f"key ceremony ({bits}-bit, {KEY_THRESHOLD}-of-{KEY_HOLDERS})")
    dealer_seconds: float | None = None
    if paillier and key is None:
        start = time.perf_counter()
        key = threshold.deal(bits, n=KEY_HOLDERS, t=KEY_THRESHOLD, insecure=allow_insecure_keys)
        dealer_seconds = time.perf_counter() - start

    rows: list[Figure7Row] = []
    checks: list[Figure7Check] = []
    steps.next("starting the servers and the worker processes")
    with (
        tempfile.TemporaryDirectory(prefix="smpcloud-figure7-") as tmp,
        ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool,
    ):
        warming = [pool.submit(worker_ready) for _ in range(workers)]  # start while servers boot
        with local_servers(
            Path(tmp),
            int(paillier) + SHAMIR_SERVERS * int(shamir),
            allow_insecure_keys=allow_insecure_keys,
            first_db_url=db_url if paillier else None,
        ) as servers:
            for future in warming:
                future.result()
            for mode in chosen:
                for clients in counts:
                    if mode == "paillier" and key is not None:
                        url, token = servers[0]
                        new_rows, check = _run_paillier(
                            url=url,
                            admin_token=token,
                            key=key,
                            clients=clients,
                            pool=pool,
                            workers=workers,
                            connections=connections,
                            allow_insecure_keys=allow_insecure_keys,
                            steps=steps,
                            validity=validity,
                        )
                    else:
                        new_rows, check = _run_shamir(
                            servers=servers[int(paillier) :],
                            clients=clients,
                            pool=pool,
                            workers=workers,
                            connections=connections,
                            steps=steps,
                            validity=validity,
                        )
                    rows.extend(new_rows)
                    checks.append(check)
    notes = figure_notes(
        bits=bits,
        workers=workers,
        connections=connections,
        dealer_seconds=dealer_seconds,
        validity=validity,
    )
    csv_path, png_path = out / CSV_NAME, out / PNG_NAME
    write_csv(csv_path, rows, notes)
    plot_phases(png_path, rows, [figure_panel(mode, bits) for mode in chosen])
    steps.finish()
    return Figure7Result(
        rows=rows,
        checks=checks,
        bits=bits,
        workers=workers,
        connections=connections,
        dealer_seconds=dealer_seconds,
        csv_path=csv_path,
        png_path=png_path,
        notes=notes,
    )


__all__ = [
    "DEFAULT_CLIENT_COUNTS",
    "DEFAULT_CONNECTIONS",
    "KEY_HOLDERS",
    "KEY_THRESHOLD",
    "MODES",
    "PAILLIER_PHASES",
    "SHAMIR_CHECKED_ENCODING",
    "SHAMIR_PHASES",
    "SHAMIR_SERVERS",
    "SHAMIR_THRESHOLD",
    "Figure7Check",
    "Figure7Result",
    "Figure7Row",
    "Mode",
    "ProgressCallback",
    "check_secure_sum",
    "client_counts_up_to",
    "run_figure7",
]

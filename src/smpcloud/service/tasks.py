"""The aggregation service's logic: tasks, credentials, reports, aggregation, threshold decryption.

Routes in :mod:`smpcloud.service.app` parse and authenticate, then call :class:`TaskService`,
whose methods are synchronous (they run in FastAPI's worker threads) and raise exceptions from
:mod:`smpcloud.errors` and :mod:`smpcloud.protocol.problems` that the app maps to problem documents.
All arithmetic on ciphertexts goes through :mod:`smpcloud.crypto`.

Protocol (the paper's Figures 1 and 2)::

    admin     POST task (threshold public key, encoding, length, min_clients, deadline)
              -> task id, one token per key holder;  POST clients -> one token per client
    client    GET task (key, encoding) -> encrypt locally -> POST report (once)
    server    on close (admin request or deadline): aggregate = element-wise product of
              all reports' ciphertexts = E(sum of the values); publish it with the count
    holder i  GET aggregate -> POST c_i = partial decryption + proof, per element
    server    verify each proof; with t valid partials: combine -> sum, count, average

What the server learns: the count of reports and, once t key holders cooperate, the sums (so the
averages). It stores ciphertexts it cannot decrypt.

**Packed tasks** (``packing``, :mod:`smpcloud.crypto.packing`): a report carries a vector of
``length`` values packed many to a ciphertext (10^5 values in 1,177 ciphertexts at 2048 bits
for the reference layout), so every per-ciphertext cost (upload, validation, aggregation,
partial decryption) shrinks by the packing factor. The server aggregates packed reports exactly
like others; after combining it unpacks the sums and checks every slot against the layout's
bounds: a slot above count · span (only possible if some client bypassed the SDK's range
check) withholds the result (:class:`~smpcloud.errors.OverflowDetectedError` for the t-th key
holder's upload, then the task's state ``withheld``, kept in the database) instead of
publishing sums that spilled into each other. Same disclosure: the count and the per-value
sums.

**Batched partial decryptions.** A key holder uploads either one partial decryption with its
own proof per aggregate ciphertext, or one batch with ONE proof for all of them
(:meth:`~smpcloud.crypto.threshold.KeyShare.partial_decrypt_batch`; the proof is checked, outside
the write lock, by :func:`~smpcloud.crypto.threshold.verify_batch`). The first accepted upload
fixes the form for the task's other holders.

**Every core.** Aggregation and combining go through a :class:`~smpcloud.parallel.CryptoPool`
(``Settings.workers`` processes, started by the application's lifespan; work too small to
gain from processes runs inline). All of it runs in worker threads, never on the event loop.

Limits of this protection (what it does *not* give):

* No range proofs: a client that bypasses the SDK can encrypt any plaintext mod n and bias the
  sum arbitrarily (see :class:`~smpcloud.protocol.schemas.TaskEncoding`).
* Key holders decrypt what the server calls the aggregate; they cannot check it is the product
  of all reports. A malicious server could pass one client's ciphertext off as the aggregate,
  and the administrator (who registers clients) could register sybil clients with known values
  to isolate one real client's value. min_clients protects against accidents and honest-but-
  curious result readers, not against a malicious server or administrator.
* Bearer tokens travel in headers: deploy behind TLS.

**Aggregation at close, not per upload.** An upload is one INSERT, so uploads never contend for
a shared aggregate row; closing streams all reports from the database and multiplies them once.
Closing takes two short write transactions with the aggregation between them, outside the
write lock: the first marks the task closed (from then on no upload is accepted, so the set of
reports is fixed), the product of the stored reports is computed (on the pool), the second
stores the aggregate. Until the aggregate is stored, whoever needs it (the close request
itself, a key holder's request) computes it or waits for the thread computing it, so a crash in
between loses nothing: the aggregate is recomputed from the same reports after a restart (the
deadline loop does it too).
Measured on the reference machine (2 cores shared with the load generator, 2048-bit key,
SQLite with synchronous=FULL, 1000 uploads of one ciphertext, sequential or 8 concurrent
clients): 420-550 uploads/s with aggregation at close versus 340-420 uploads/s, in paired runs
20-25 % fewer, when each upload also read, multiplied and rewrote the aggregate in its own
transaction. Aggregation at close took 22 ms for 1000 reports (about 20 microseconds per report
and element, re-validation of the stored ciphertext included): a million reports close in ~20 s.
Packed reference case (benchmarks/bench_vector.py, same machine): 100 reports of 1,177
ciphertexts (2048 bits) aggregate in 0.7 s on two worker processes.

Durability: every write transaction commits (with ``synchronous=FULL`` on SQLite) before the
method returns, so a 201 means the upload survives a crash of the server process.

**Shamir tasks** (scheme ``shamir``; protocol, what is revealed and the wire form of shares in
:mod:`smpcloud.protocol.sharing`): this server is one of n; it stores each client's share (no
key, no key holders), lists who reported to the administrator, and on close sums exactly the
shares of the participant set the administrator names (once: a second close with another set
is refused), then publishes its share of the sum to the administrator. It never learns the sum
or any input. It never closes a Shamir task by itself: past the deadline it refuses uploads and
waits for the administrator's close, since only the administrator sees every server and can
name a participant set they all hold.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures.process import BrokenProcessPool
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal, TypeVar

from sqlalchemy import Connection, Engine, Select, bindparam, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from smpcloud.crypto import threshold
from smpcloud.crypto.field import Field
from smpcloud.crypto.packing import Packing, unpack_sums
from smpcloud.crypto.paillier import Ciphertext
from smpcloud.crypto.wire import decode_int, encode_int
from smpcloud.errors import (
    InvalidInputError,
    KeyMismatchError,
    MalformedCiphertextError,
    OverflowDetectedError,
    SmpcError,
    ThresholdNotMetError,
)
from smpcloud.parallel import CryptoPool
from smpcloud.protocol.problems import (
    AuthenticationError,
    ConflictError,
    DuplicateSubmissionError,
    InsufficientReportsError,
    NotFoundError,
    PermissionDeniedError,
    TaskStateError,
)
from smpcloud.protocol.schemas import (
    MAX_HOLDERS,
    AggregateOut,
    ClientCredentialsOut,
    ClientsIn,
    ClientsOut,
    PartialsAcceptedOut,
    PartialsForm,
    PartialsIn,
    ReportAcceptedOut,
    ReportersOut,
    ReportIn,
    ResultOut,
    ShamirAggregateOut,
    TaskCreatedOut,
    TaskEncoding,
    TaskIn,
    TaskInfoOut,
    TaskStatusOut,
)
from smpcloud.protocol.sharing import (
    SHAMIR_FIELD,
    check_shamir_parameters,
    check_sum_range,
    decode_share,
    encode_share,
    residues_from_blob,
    residues_to_blob,
    share_text_chars,
)
from smpcloud.service.config import Settings
from smpcloud.service.db import (
    AggregateRow,
    ClientRow,
    HolderRow,
    PackedTaskRow,
    PartialRow,
    ReportRow,
    ResultRow,
    ShamirClientRow,
    ShamirTaskRow,
    TaskRow,
    is_sqlite,
    utcnow,
    write_engine,
)

logger = logging.getLogger("smpcloud.service")

Role = Literal["admin", "client", "holder"]
ANY_ROLE: Final[frozenset[Role]] = frozenset({"admin", "client", "holder"})
ADMIN: Final[frozenset[Role]] = frozenset({"admin"})
CLIENT: Final[frozenset[Role]] = frozenset({"client"})
HOLDER: Final[frozenset[Role]] = frozenset({"holder"})
ADMIN_OR_HOLDER: Final[frozenset[Role]] = frozenset({"admin", "holder"})

_TOKEN_BYTES: Final = 32
# Prefixes make leaked tokens recognisable to secret scanners; the rest is 256 random bits.
_CLIENT_TOKEN_PREFIX: Final = "smpc_c_"  # noqa: S105
_HOLDER_TOKEN_PREFIX: Final = "smpc_h_"  # noqa: S105
_META_CACHE_SIZE: Final = 1024
_AGGREGATE_BATCH: Final = 512
# Reports are multiplied in rounds of about this many ciphertexts (a round's blobs are held in
# memory: 32 MiB at 2048 bits), each round on the pool, and the rounds' products multiplied.
_AGGREGATE_ROUND_CIPHERTEXTS: Final = 1 << 16
# Aggregations of different tasks sharing a stripe wait for each other; one task never runs twice.
_AGGREGATION_LOCKS: Final = 64
#: Most values a packed task may declare (its result holds one sum and one average per value).
MAX_PACKED_VALUES: Final = 1 << 20
_T = TypeVar("_T")
# JSON overhead of one partial decryption object besides its three integers (kind, names...).
_PARTIAL_JSON_OVERHEAD: Final = 160
# JSON overhead of a Shamir report besides its share text.
_SHARE_JSON_OVERHEAD: Final = 64

# The statements every upload runs, built once. Through SQLAlchemy Core with a
# prebuilt statement a token lookup costs about half of what building the same select per
# request costs (measured: ~0.2 ms against ~0.4 ms on the reference machine), and a group of
# reports is checked and stored with three statements instead of three per report, with no
# ORM session; every other statement of the service stays per call, where it is clearer.
_CLIENT_BY_TOKEN: Final = select(ClientRow.id, ClientRow.task_id).where(
    ClientRow.token_hash == bindparam("digest")
)
_HOLDER_BY_TOKEN: Final = select(HolderRow.holder_index, HolderRow.task_id).where(
    HolderRow.token_hash == bindparam("digest")
)
_TASK_STATES: Final = (
    select(TaskRow.id, TaskRow.state)
    .where(TaskRow.id.in_(bindparam("task_ids", expanding=True)))
    .with_for_update(read=True)
)
_REPORTED_CLIENTS: Final = select(ReportRow.task_id, ReportRow.client_id).where(
    ReportRow.task_id.in_(bindparam("task_ids", expanding=True)),
    ReportRow.client_id.in_(bindparam("client_ids", expanding=True)),
)
_INSERT_REPORT: Final = insert(ReportRow)


def hash_token(token: str) -> bytes:
    """Return the SHA-256 digest under which a token is stored and looked up."""
    return hashlib.sha256(token.encode("utf-8")).digest()


def _new_token(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(_TOKEN_BYTES)


def _b64_chars(nbytes: int) -> int:
    return -(-4 * nbytes // 3)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who made a request: the administrator, a client (by id) or a key holder (by index)."""

    role: Role
    task_id: str | None = None
    client_id: int | None = None
    holder_index: int | None = None


@dataclass(frozen=True, slots=True)
class TaskMeta:
    """The immutable part of a Paillier task, parsed once and cached.

    Attributes:
        length: values per client.
        packing: the packing layout of a packed task (None: one value per ciphertext).
    """

    task_id: str
    name: str
    public: threshold.ThresholdPublicKey
    public_key_json: dict[str, Any]
    encoding: TaskEncoding
    length: int
    min_clients: int
    max_clients: int
    deadline: datetime | None
    packing: Packing | None = None

    @property
    def ciphertexts(self) -> int:
        """Ciphertexts per report (and in the aggregate): the layout's count, else ``length``."""
        return self.packing.ciphertexts if self.packing is not None else self.length

    @property
    def width(self) -> int:
        """Bytes per stored ciphertext (the byte length of n^2)."""
        return (self.public.public_key.n_squared.bit_length() + 7) // 8

    def split(self, blob: bytes) -> list[Ciphertext]:
        """Decode ``ciphertexts`` concatenated fixed-width ciphertexts (validating each)."""
        width, count = self.width, self.ciphertexts
        if len(blob) != width * count:
            raise MalformedCiphertextError("stored ciphertexts have the wrong size")
        pk = self.public.public_key
        return [Ciphertext.from_bytes(pk, blob[i * width : (i + 1) * width]) for i in range(count)]


@dataclass(frozen=True, slots=True)
class ShamirMeta:
    """The immutable part of a Shamir task on this server (server ``server_index`` of ``servers``).

    Attributes:
        servers: n, the number of aggregation servers of the task.
        threshold: t, the number of servers' shares that rebuild the sum.
        server_index: j, this server's x-coordinate.
        field: the field of the shares.
    """

    task_id: str
    name: str
    encoding: TaskEncoding
    length: int
    min_clients: int
    max_clients: int
    deadline: datetime | None
    servers: int
    threshold: int
    server_index: int
    field: Field


def _field_of(moduli_json: str) -> Field:
    moduli = tuple(json.loads(moduli_json))
    return SHAMIR_FIELD if moduli == SHAMIR_FIELD.moduli else Field(moduli)


def _past(deadline: datetime | None, now: datetime) -> bool:
    return deadline is not None and deadline <= now


def _implied_encoding(packing: Packing) -> TaskEncoding:
    """The encoding a packing layout implies: integers if frac_bits = 0 with integer bounds."""
    lo, hi = packing.min_value, packing.max_value
    if packing.frac_bits == 0 and isinstance(lo, int) and isinstance(hi, int):
        return TaskEncoding.integer(lo, hi)
    return TaskEncoding.fixed(packing.frac_bits, lo, hi)


def _form_of(partials_json: str) -> PartialsForm:
    """The form of a stored key holder's upload: a JSON object is a batch, a list is not."""
    return "batch" if partials_json.lstrip().startswith("{") else "partials"


@dataclass(slots=True)
class _PendingReport:
    """A report waiting for the group commit, and its outcome once committed."""

    task_id: str
    client_id: int
    blob: bytes = field(repr=False)
    now: datetime
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


class TaskService:
    """The service's operations over a database engine. Thread-safe; methods are blocking.

    Aggregation and combining run on a :class:`~smpcloud.parallel.CryptoPool`: inline until
    :meth:`start_pool` (the application's lifespan calls it), then on ``settings.workers``
    processes until :meth:`close_pool`.

    Args:
        engine: from :func:`smpcloud.service.db.make_engine`; tables must exist.
        settings: limits, the administrator token and the pool size.
        clock: returns the current aware UTC time (injectable for tests).
    """

    def __init__(
        self, engine: Engine, settings: Settings, *, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self._engine = engine
        self._writer = write_engine(engine)
        self._settings = settings
        self._clock = clock
        self._admin_digest = hash_token(settings.admin_token)
        # SQLite has one writer at a time; queueing writers here instead of in SQLite's busy
        # handler (which sleeps and polls) keeps latency low. Other processes still wait on
        # the busy timeout.
        self._write_lock: threading.Lock | None = (
            threading.Lock() if is_sqlite(engine.url) else None
        )
        self._meta: dict[str, TaskMeta | ShamirMeta] = {}
        self._inline_pool = CryptoPool(1)
        self._pool = self._inline_pool
        self._pool_lock = threading.Lock()
        self._aggregation_locks = [threading.Lock() for _ in range(_AGGREGATION_LOCKS)]
        # Reports waiting to be committed (group commit, see _store_report).
        self._pending_reports: list[_PendingReport] = []
        self._pending_lock = threading.Lock()

    # ------------------------------------------------------------------ worker pool

    def start_pool(self) -> None:
        """Create the worker pool (``settings.workers`` processes; they start on first use).

        With ``workers=1`` nothing changes: everything keeps running inline.
        """
        with self._pool_lock:
            if self._pool is self._inline_pool:
                self._pool = CryptoPool(self._settings.workers)

    def close_pool(self) -> None:
        """Stop the worker processes (waiting for running work) and go back to inline work."""
        with self._pool_lock:
            pool, self._pool = self._pool, self._inline_pool
        if pool is not self._inline_pool:
            pool.close()

    @property
    def workers(self) -> int:
        """The number of processes the current pool uses (1: inline)."""
        return self._pool.workers

    def _on_pool(self, work: Callable[[CryptoPool], _T]) -> _T:
        """Run ``work`` on the pool; if a worker process died, replace the pool and retry once."""
        pool = self._pool
        try:
            return work(pool)
        except BrokenProcessPool:
            logger.error("a worker process died; replacing the worker pool and retrying")
            with self._pool_lock:
                if self._pool is pool:
                    self._pool = CryptoPool(self._settings.workers)
            pool.close()
            return work(self._pool)

    # ------------------------------------------------------------------ transactions

    @contextmanager
    def _read(self) -> Iterator[Session]:
        with Session(self._engine, expire_on_commit=False) as session, session.begin():
            yield session

    @contextmanager
    def _write(self) -> Iterator[Session]:
        with self._writer_turn(), self._write_unlocked() as session:
            yield session

    def _writer_turn(self) -> AbstractContextManager[object]:
        """This process's turn to write (SQLite: one writer at a time; others: no wait)."""
        return self._write_lock or nullcontext()

    @contextmanager
    def _write_unlocked(self) -> Iterator[Session]:
        with Session(self._writer, expire_on_commit=False) as session, session.begin():
            yield session

    @staticmethod
    def _lock_task(session: Session, task_id: str) -> TaskRow:
        """Load a task row inside a write transaction, locking it (FOR UPDATE) where supported."""
        query = select(TaskRow).where(TaskRow.id == task_id).with_for_update()
        task = session.scalars(query).one_or_none()
        if task is None:
            raise NotFoundError(f"no task {task_id!r}")
        return task

    # ------------------------------------------------------------------ authentication

    def authenticate(
        self, token: str | None, task_id: str | None, allowed: frozenset[Role], action: str
    ) -> Principal:
        """Resolve a bearer token to a principal allowed to do ``action`` on ``task_id``.

        Order of checks: token present (401), task exists (404), token valid for the task and
        the action (403). Tokens are compared by SHA-256 digest; messages never contain them.

        Raises:
            AuthenticationError: no token.
            NotFoundError: unknown task.
            PermissionDeniedError: unknown token, another task's token, or the wrong role.
        """
        if not token:
            raise AuthenticationError(
                f"{action} requires a bearer token (header 'Authorization: Bearer <token>')"
            )
        if task_id is not None:
            self.meta(task_id)
        digest = hash_token(token)
        principal: Principal | None = None
        if hmac.compare_digest(digest, self._admin_digest):
            principal = Principal("admin")
        else:
            # Core with prebuilt statements: this runs on every request (see _CLIENT_BY_TOKEN).
            with self._engine.connect() as conn:
                client = conn.execute(_CLIENT_BY_TOKEN, {"digest": digest}).one_or_none()
                if client is not None:
                    principal = Principal("client", task_id=client.task_id, client_id=client.id)
                else:
                    holder = conn.execute(_HOLDER_BY_TOKEN, {"digest": digest}).one_or_none()
                    if holder is not None:
                        principal = Principal(
                            "holder", task_id=holder.task_id, holder_index=holder.holder_index
                        )
        if principal is None:
            raise PermissionDeniedError(f"invalid token: not allowed to {action}")
        if principal.role != "admin" and principal.task_id != task_id:
            raise PermissionDeniedError(f"this token is not valid for task {task_id!r}")
        if principal.role not in allowed:
            raise PermissionDeniedError(f"a {principal.role} token may not {action}")
        return principal

    # ------------------------------------------------------------------ task metadata

    def meta(self, task_id: str) -> TaskMeta | ShamirMeta:
        """Return the task's immutable metadata (cached): TaskMeta (Paillier) or ShamirMeta.

        Raises:
            NotFoundError: unknown task.
        """
        cached = self._meta.get(task_id)
        if cached is not None:
            return cached
        meta: TaskMeta | ShamirMeta
        with self._read() as session:
            row = session.get(TaskRow, task_id)
            if row is None:
                raise NotFoundError(f"no task {task_id!r}")
            shamir = session.get(ShamirTaskRow, task_id)
            packed = session.get(PackedTaskRow, task_id)
        if shamir is not None:
            meta = ShamirMeta(
                task_id=row.id,
                name=row.name,
                encoding=TaskEncoding.model_validate_json(row.encoding_json),
                length=row.length,
                min_clients=row.min_clients,
                max_clients=row.max_clients,
                deadline=row.deadline,
                servers=shamir.servers,
                threshold=shamir.threshold,
                server_index=shamir.server_index,
                field=_field_of(shamir.moduli_json),
            )
        else:
            key_json = json.loads(row.public_key_json)
            meta = TaskMeta(
                task_id=row.id,
                name=row.name,
                # Validated at creation under the policy of that time; trust the stored key.
                public=threshold.public_key_from_json(key_json, insecure=True),
                public_key_json=key_json,
                encoding=TaskEncoding.model_validate_json(row.encoding_json),
                length=row.length,
                min_clients=row.min_clients,
                max_clients=row.max_clients,
                deadline=row.deadline,
                packing=(
                    Packing.from_json(json.loads(packed.packing_json))
                    if packed is not None
                    else None
                ),
            )
        if len(self._meta) >= _META_CACHE_SIZE:
            self._meta.clear()
        self._meta[task_id] = meta
        return meta

    def _paillier_meta(self, task_id: str, refusal: str) -> TaskMeta:
        """Return a Paillier task's metadata; for a Shamir task raise TaskStateError(refusal)."""
        meta = self.meta(task_id)
        if isinstance(meta, ShamirMeta):
            raise TaskStateError(f"task {task_id!r} is a Shamir task: {refusal}")
        return meta

    # ------------------------------------------------------------------ admin

    def create_task(self, body: TaskIn) -> TaskCreatedOut:
        """Validate and store a new task; return its id and the key holders' tokens.

        A Shamir task (``body.scheme == "shamir"``) has no key and no key holders: the list of
        tokens is empty. A packed task (``body.packing``) is checked by :meth:`_check_packing`.

        Raises:
            InvalidInputError: a malformed or insecure key, a declared range that could make
                sums wrap modulo n (or the Shamir field's modulus), a vector too long for the
                server's limits, a past deadline, Shamir parameters outside 2 <= t <= n,
                t > n/2, 1 <= server_index <= n; a packing layout that is malformed or does
                not fit the task (see :meth:`_check_packing`).
        """
        if body.scheme == "shamir":
            return self._create_shamir_task(body)
        settings = self._settings
        try:
            public = threshold.public_key_from_json(
                body.public_key, insecure=settings.allow_insecure_keys
            )
        except SmpcError:
            raise
        except (TypeError, ValueError, OverflowError):
            raise InvalidInputError("public_key: not a valid threshold public key") from None
        if public.holders > MAX_HOLDERS:
            raise InvalidInputError(
                f"public_key: {public.holders} key holders; this server accepts at most "
                f"{MAX_HOLDERS}"
            )
        packing: Packing | None = None
        if body.packing is not None:
            packing = self._check_packing(body, public)
            encoding = _implied_encoding(packing)
            self._check_length(packing.ciphertexts, packed=True)
            self._check_body_budget(public, packing.ciphertexts, packed=True)
        else:
            self._check_length(body.length)
            self._check_body_budget(public, body.length)
            encoding = body.encoding
            reach = body.max_clients * encoding.max_abs_encoded()
            if reach > public.public_key.max_int:
                raise InvalidInputError(
                    f"the declared range [{encoding.min_value}, {encoding.max_value}] with "
                    f"frac_bits={encoding.frac_bits} and max_clients={body.max_clients} allows "
                    f"sums up to 2^{reach.bit_length()}, beyond n/2 = "
                    f"2^{public.n.bit_length() - 1} of this key: narrow the range, lower "
                    "max_clients, use a larger key, or pack the values (packing)"
                )
        now = self._clock()
        if body.deadline is not None and body.deadline <= now:
            raise InvalidInputError("deadline is not in the future")
        task_id = secrets.token_urlsafe(12)
        holder_tokens = [_new_token(_HOLDER_TOKEN_PREFIX) for _ in range(public.holders)]
        with self._write() as session:
            session.add(
                TaskRow(
                    id=task_id,
                    name=body.name,
                    public_key_json=json.dumps(threshold.public_key_to_json(public)),
                    key_fingerprint=public.fingerprint(),
                    holders=public.holders,
                    threshold=public.threshold,
                    length=body.length,
                    encoding_json=encoding.model_dump_json(),
                    min_clients=body.min_clients,
                    max_clients=body.max_clients,
                    deadline=body.deadline,
                    state="open",
                    created_at=now,
                )
            )
            session.flush()
            session.add_all(
                HolderRow(task_id=task_id, holder_index=i, token_hash=hash_token(token))
                for i, token in enumerate(holder_tokens, start=1)
            )
            if packing is not None:
                session.add(
                    PackedTaskRow(task_id=task_id, packing_json=json.dumps(packing.to_json()))
                )
        logger.info(
            "created task %s: %d-of-%d %d-bit key, length %d%s, min_clients %d",
            task_id,
            public.threshold,
            public.holders,
            public.n.bit_length(),
            body.length,
            f" packed in {packing.ciphertexts} ciphertexts" if packing is not None else "",
            body.min_clients,
        )
        return TaskCreatedOut(task_id=task_id, holder_tokens=holder_tokens)

    def _check_packing(self, body: TaskIn, public: threshold.ThresholdPublicKey) -> Packing:
        """Parse and check a packed task's layout against the task and its key.

        The layout's own guarantee replaces the n/2 reach check of unpacked tasks: a sum of up
        to max_additions in-range vectors never leaves its slot and every packed plaintext
        stays below 2^(key_bits - 2) < n/2 (see :mod:`smpcloud.crypto.packing`).

        Raises:
            InvalidInputError: a malformed layout; its length other than ``body.length``; its
                max_additions below ``body.max_clients``; a layout for a larger key than the
                task's; more than MAX_PACKED_VALUES values; an ``encoding`` given in the body
                that is not the one the layout implies.
        """
        try:
            packing = Packing.from_json(body.packing)
        except InvalidInputError as exc:
            raise InvalidInputError(f"packing: {exc}") from None
        if packing.length != body.length:
            raise InvalidInputError(
                f"packing: the layout is for vectors of {packing.length} values; the task "
                f"declares length {body.length}"
            )
        if packing.length > MAX_PACKED_VALUES:
            raise InvalidInputError(
                f"packing: {packing.length} values exceed this server's limit of "
                f"{MAX_PACKED_VALUES} values per packed report"
            )
        if packing.max_additions < body.max_clients:
            raise InvalidInputError(
                f"packing: the layout adds at most {packing.max_additions} reports "
                f"(max_additions), fewer than the task's max_clients of {body.max_clients}: "
                "its sums could overflow their slots"
            )
        try:
            packing.check_key_bits(public.public_key.bits)
        except InvalidInputError as exc:
            raise InvalidInputError(f"packing: {exc}") from None
        implied = _implied_encoding(packing)
        if "encoding" in body.model_fields_set and body.encoding != implied:
            raise InvalidInputError(
                f"encoding: a packed task's encoding is implied by its layout ({implied.kind}, "
                f"frac_bits={implied.frac_bits}, range [{implied.min_value}, "
                f"{implied.max_value}]); the one given differs (or leave it out)"
            )
        return packing

    def _check_length(self, length: int, *, packed: bool = False) -> None:
        """Refuse more ciphertexts per report than the server's limit (max_vector_length)."""
        limit = self._settings.max_vector_length
        if length > limit:
            if packed:
                raise InvalidInputError(
                    f"packing: the layout needs {length} ciphertexts per report, more than "
                    f"this server's limit of {limit}"
                )
            raise InvalidInputError(
                f"length {length} exceeds this server's limit of {limit} ciphertexts per "
                "report (one per value; packing puts many values in one ciphertext)"
            )

    def _create_shamir_task(self, body: TaskIn) -> TaskCreatedOut:
        """Store this server's part of a Shamir task (see :meth:`create_task`)."""
        servers, t, index = body.servers, body.threshold, body.server_index
        if servers is None or t is None or index is None:  # pragma: no cover - TaskIn checks
            raise InvalidInputError("a Shamir task requires servers, threshold and server_index")
        check_shamir_parameters(servers, t, index)
        field = SHAMIR_FIELD
        self._check_length(body.length)
        needed = share_text_chars(body.length, field) + _SHARE_JSON_OVERHEAD
        if needed > self._settings.max_body_bytes:
            raise InvalidInputError(
                f"length {body.length}: each client's upload would take about {needed} bytes, "
                f"more than this server's body limit of {self._settings.max_body_bytes}"
            )
        encoding = body.encoding
        check_sum_range(encoding.max_abs_encoded(), body.max_clients, field)
        now = self._clock()
        if body.deadline is not None and body.deadline <= now:
            raise InvalidInputError("deadline is not in the future")
        task_id = secrets.token_urlsafe(12)
        with self._write() as session:
            session.add(
                TaskRow(
                    id=task_id,
                    name=body.name,
                    public_key_json="null",
                    key_fingerprint="",
                    holders=0,
                    threshold=t,
                    length=body.length,
                    encoding_json=encoding.model_dump_json(),
                    min_clients=body.min_clients,
                    max_clients=body.max_clients,
                    deadline=body.deadline,
                    state="open",
                    created_at=now,
                )
            )
            session.flush()
            session.add(
                ShamirTaskRow(
                    task_id=task_id,
                    servers=servers,
                    threshold=t,
                    server_index=index,
                    moduli_json=json.dumps(list(field.moduli)),
                    participants_json=None,
                )
            )
        logger.info(
            "created Shamir task %s: server %d of %d, threshold %d, length %d, min_clients %d",
            task_id,
            index,
            servers,
            t,
            body.length,
            body.min_clients,
        )
        return TaskCreatedOut(task_id=task_id, holder_tokens=[])

    def _check_body_budget(
        self, public: threshold.ThresholdPublicKey, ciphertexts: int, *, packed: bool = False
    ) -> None:
        """Refuse a task whose uploads could not fit in the body limit.

        An unpacked task must fit a key holder's per-ciphertext partial decryptions (the
        largest upload). A packed task must fit a client's report and a key holder's batch
        (both about one base64url ciphertext per aggregate ciphertext); its holders use the
        batch form when the per-ciphertext form would not fit (the SDK does by default).
        """
        nsq_bytes = (public.public_key.n_squared.bit_length() + 7) // 8
        if packed:
            per_element = _b64_chars(nsq_bytes) + 3
            who = "each client's report and key holder's batch"
        else:
            delta_bits = public.delta.bit_length()
            response_bytes = (nsq_bytes * 8 + delta_bits + 384 + 7) // 8 + 1
            per_element = (
                _b64_chars(nsq_bytes)
                + _b64_chars(threshold.CHALLENGE_BITS // 8)
                + _b64_chars(response_bytes)
                + _PARTIAL_JSON_OVERHEAD
            )
            who = "each key holder's upload"
        needed = ciphertexts * per_element + 2048
        if needed > self._settings.max_body_bytes:
            raise InvalidInputError(
                f"{ciphertexts} ciphertexts per report: {who} would take about {needed} bytes, "
                f"more than this server's body limit of {self._settings.max_body_bytes}"
            )

    def register_clients(self, task_id: str, body: ClientsIn) -> ClientsOut:
        """Create ``count`` client credentials; only the tokens' hashes are stored.

        For a Shamir task the returned ids are the clients' numbers within the task (1, 2, ...
        in order of registration): registering the same counts on every server of the task
        gives each client the same number everywhere.

        Raises:
            TaskStateError: the task is not open (or a Shamir task past its deadline), or would
                exceed its max_clients.
        """
        shamir = isinstance(self.meta(task_id), ShamirMeta)
        tokens = [_new_token(_CLIENT_TOKEN_PREFIX) for _ in range(body.count)]
        now = self._clock()
        error: SmpcError
        with self._write() as session:
            task = self._lock_task(session, task_id)
            if self._close_if_due(session, task, now):
                error = TaskStateError(f"task {task_id!r} closed: its deadline passed")
            elif shamir and task.state == "open" and _past(task.deadline, now):
                error = TaskStateError(
                    f"task {task_id!r} passed its deadline: no more clients can be registered"
                )
            elif task.state != "open":
                error = TaskStateError(
                    f"task {task_id!r} is {task.state}: no more clients can be registered"
                )
            else:
                registered = session.scalar(
                    select(func.count()).select_from(ClientRow).where(ClientRow.task_id == task_id)
                )
                if (registered or 0) + body.count > task.max_clients:
                    error = TaskStateError(
                        f"task {task_id!r} accepts at most {task.max_clients} clients; "
                        f"{registered} already registered"
                    )
                else:
                    rows = [
                        ClientRow(task_id=task_id, token_hash=hash_token(token), created_at=now)
                        for token in tokens
                    ]
                    session.add_all(rows)
                    session.flush()
                    ids = [row.id for row in rows]
                    if shamir:
                        first = (registered or 0) + 1
                        ids = list(range(first, first + body.count))
                        session.add_all(
                            ShamirClientRow(client_id=row.id, task_id=task_id, number=number)
                            for row, number in zip(rows, ids, strict=True)
                        )
                    out = ClientsOut(
                        clients=[
                            ClientCredentialsOut(client_id=client_id, token=token)
                            for client_id, token in zip(ids, tokens, strict=True)
                        ]
                    )
                    logger.info("registered %d clients for task %s", body.count, task_id)
                    return out
        raise error

    def close(
        self,
        task_id: str,
        *,
        reason: Literal["admin", "deadline"] = "admin",
        clients: list[int] | None = None,
    ) -> None:
        """Close an open task now (idempotent): aggregate and publish, or mark insufficient.

        A Paillier task aggregates every report (on the worker pool, outside the write lock;
        see the module docstring) and returns once the aggregate is stored; a Shamir task sums
        exactly the shares of ``clients``, its participant set (see :meth:`_close_shamir`).

        Raises:
            InvalidInputError: ``clients`` given for a Paillier task or missing for a Shamir
                task; a participant set that is not acceptable (see :meth:`_close_shamir`).
            TaskStateError: a Shamir task already closed over another participant set.
        """
        meta = self.meta(task_id)
        if isinstance(meta, ShamirMeta):
            if clients is None:
                raise InvalidInputError(
                    f"task {task_id!r} is a Shamir task: closing it needs the participant set, "
                    '{"clients": [client numbers whose share every reachable server holds]}'
                )
            self._close_shamir(meta, clients)
            return
        if clients is not None:
            raise InvalidInputError(
                "'clients' is only for Shamir tasks: a Paillier task aggregates every report"
            )
        now = self._clock()
        with self._write() as session:
            task = self._lock_task(session, task_id)
            if task.state == "open":
                self._close_locked(session, task, now, reason)
        self._ensure_aggregate(meta)

    def _close_shamir(self, meta: ShamirMeta, clients: list[int]) -> None:
        """Sum the shares of exactly ``clients`` and publish this server's share of the sum.

        A server closes once: closing again with the same set is a no-op (a retried request),
        with another set is refused, so that no second sum, which would differ from the first
        by one client's value, can be formed (with t > n/2 no t servers can be closed over a
        second set either).

        Raises:
            InvalidInputError: a client listed twice; fewer than min_clients clients; a client
                whose share this server does not hold.
            TaskStateError: already closed over another participant set.
        """
        task_id = meta.task_id
        wanted = sorted(set(clients))
        if len(wanted) != len(clients):
            raise InvalidInputError("the participant set lists a client more than once")
        if len(wanted) < meta.min_clients:
            raise InvalidInputError(
                f"the participant set has {len(wanted)} client(s), fewer than this task's "
                f"min_clients of {meta.min_clients}: no sum is formed"
            )
        now = self._clock()
        with self._write() as session:
            task = self._lock_task(session, task_id)
            shamir = session.get(ShamirTaskRow, task_id)
            if shamir is None:  # pragma: no cover - meta says Shamir
                raise NotFoundError(f"no Shamir task {task_id!r}")
            if task.state != "open":
                closed_over = json.loads(shamir.participants_json or "[]")
                if closed_over == wanted:
                    return
                raise TaskStateError(
                    f"task {task_id!r} is already closed over a different participant set "
                    f"({len(closed_over)} clients): a server closes once, so that no second sum "
                    "can be formed"
                )
            held = set(session.scalars(self._shamir_reporters(task_id)))
            missing = [number for number in wanted if number not in held]
            if missing:
                shown = ", ".join(map(str, missing[:10])) + (", ..." if len(missing) > 10 else "")
                raise InvalidInputError(
                    f"{len(missing)} client(s) of the participant set have no report on this "
                    f"server (clients {shown}): list only clients whose share every closed "
                    "server holds"
                )
            started = time.perf_counter()
            members = set(wanted)
            rows = session.execute(
                select(ShamirClientRow.number, ReportRow.ciphertexts)
                .join(ShamirClientRow, ShamirClientRow.client_id == ReportRow.client_id)
                .where(ReportRow.task_id == task_id)
                .execution_options(yield_per=_AGGREGATE_BATCH)
            )
            total = meta.field.sum(
                residues_from_blob(blob, length=meta.length, field=meta.field)
                for number, blob in rows
                if number in members
            )
            task.state = "closed"
            task.closed_at = now
            task.close_reason = "admin"
            task.report_count = len(wanted)
            shamir.participants_json = json.dumps(wanted)
            session.add(
                AggregateRow(
                    task_id=task_id,
                    ciphertexts=residues_to_blob(total),
                    count=len(wanted),
                    computed_at=now,
                )
            )
        logger.info(
            "closed Shamir task %s: summed %d shares x %d elements in %.3f s",
            task_id,
            len(wanted),
            meta.length,
            time.perf_counter() - started,
        )

    @staticmethod
    def _shamir_reporters(task_id: str) -> Select[int]:
        """The numbers of a Shamir task's clients that reported, in increasing order."""
        return (
            select(ShamirClientRow.number)
            .join(ReportRow, ReportRow.client_id == ShamirClientRow.client_id)
            .where(ReportRow.task_id == task_id)
            .order_by(ShamirClientRow.number)
        )

    def reporters(self, task_id: str) -> ReportersOut:
        """Return the clients whose report this server holds, in increasing order.

        Client numbers for a Shamir task (the administrator intersects these lists over the
        servers to form the participant set); client ids for a Paillier task.
        """
        self._ensure_deadline(task_id)
        meta = self.meta(task_id)
        with self._read() as session:
            if isinstance(meta, ShamirMeta):
                clients = list(session.scalars(self._shamir_reporters(task_id)))
            else:
                clients = list(
                    session.scalars(
                        select(ReportRow.client_id)
                        .where(ReportRow.task_id == task_id)
                        .order_by(ReportRow.client_id)
                    )
                )
        return ReportersOut(task_id=task_id, count=len(clients), clients=clients)

    def close_due_tasks(self) -> int:
        """Close every open task whose deadline has passed; return how many were closed.

        Then aggregate every closed Paillier task that has no aggregate yet (just closed here
        or lazily by a request, or left so by a crash between closing and storing the
        aggregate), unless another thread is already at it. Shamir tasks are left open (see
        the module docstring).
        """
        now = self._clock()
        with self._read() as session:
            due = session.scalars(
                select(TaskRow.id).where(
                    TaskRow.state == "open",
                    TaskRow.deadline.is_not(None),
                    TaskRow.deadline <= now,
                    TaskRow.id.not_in(select(ShamirTaskRow.task_id)),
                )
            ).all()
        closed = 0
        for task_id in due:
            with self._write() as session:
                task = self._lock_task(session, task_id)
                if self._close_if_due(session, task, now):
                    closed += 1
        with self._read() as session:
            pending = session.scalars(
                select(TaskRow.id).where(
                    TaskRow.state == "closed",
                    TaskRow.id.not_in(select(AggregateRow.task_id)),
                    TaskRow.id.not_in(select(ShamirTaskRow.task_id)),
                )
            ).all()
        for task_id in pending:
            meta = self.meta(task_id)
            if isinstance(meta, TaskMeta):
                self._ensure_aggregate(meta, wait=False)
        return closed

    def _close_if_due(self, session: Session, task: TaskRow, now: datetime) -> bool:
        """Inside a write transaction: close the task if it is open and past its deadline.

        Never a Shamir task: its close needs the administrator's participant set.
        """
        if task.state == "open" and _past(task.deadline, now):
            if session.get(ShamirTaskRow, task.id) is not None:
                return False
            self._close_locked(session, task, now, "deadline")
            return True
        return False

    def _ensure_deadline(self, task_id: str) -> None:
        """Lazily close a task whose deadline passed (cheap read first, write only if due)."""
        meta = self.meta(task_id)
        if isinstance(meta, ShamirMeta) or meta.deadline is None or meta.deadline > self._clock():
            return
        with self._read() as session:
            state = session.scalar(select(TaskRow.state).where(TaskRow.id == task_id))
        if state == "open":
            now = self._clock()
            with self._write() as session:
                self._close_if_due(session, self._lock_task(session, task_id), now)

    def _close_locked(
        self, session: Session, task: TaskRow, now: datetime, reason: Literal["admin", "deadline"]
    ) -> None:
        """Inside a write transaction: close the task to uploads, or mark it insufficient.

        The aggregate is computed afterwards, outside the write lock, by
        :meth:`_ensure_aggregate` (the report set is fixed from here on).
        """
        self._paillier_meta(task.id, "it closes with a participant set")
        count = session.scalar(
            select(func.count()).select_from(ReportRow).where(ReportRow.task_id == task.id)
        )
        count = count or 0
        task.closed_at = now
        task.close_reason = reason
        task.report_count = count
        if count < task.min_clients:
            task.state = "insufficient"
            logger.info(
                "closed task %s (%s): %d reports, fewer than min_clients %d; no result",
                task.id,
                reason,
                count,
                task.min_clients,
            )
            return
        task.state = "closed"
        logger.info("closed task %s (%s): %d reports to aggregate", task.id, reason, count)

    def _ensure_aggregate(self, meta: TaskMeta, *, wait: bool = True) -> None:
        """Compute and store a closed task's aggregate unless it is stored already.

        Runs outside any transaction: the task is closed, so its reports no longer change; the
        product is computed from a read snapshot and stored by a short write transaction.
        One thread per task computes; others wait for it (``wait``) or return at once.

        Raises:
            MalformedCiphertextError: a stored report does not decode (a corrupted database).
        """
        task_id = meta.task_id
        lock = self._aggregation_locks[hash(task_id) % _AGGREGATION_LOCKS]
        if not lock.acquire(blocking=wait):
            return
        try:
            with self._read() as session:
                task = session.get(TaskRow, task_id)
                if task is None or task.state != "closed":
                    return
                stored = session.scalar(
                    select(AggregateRow.task_id).where(AggregateRow.task_id == task_id)
                )
                if stored is not None:
                    return
                count = task.report_count or 0
            started = time.perf_counter()
            totals = self._aggregate_reports(meta)
            elapsed = time.perf_counter() - started
            now = self._clock()
            with self._write() as session:
                if session.get(AggregateRow, task_id) is None:
                    session.add(
                        AggregateRow(
                            task_id=task_id,
                            ciphertexts=b"".join(c.to_bytes() for c in totals),
                            count=count,
                            computed_at=now,
                        )
                    )
        finally:
            lock.release()
        logger.info(
            "aggregated task %s: %d reports x %d ciphertexts in %.3f s (%d worker(s))",
            task_id,
            count,
            meta.ciphertexts,
            elapsed,
            self.workers,
        )

    def _aggregate_reports(self, meta: TaskMeta) -> list[Ciphertext]:
        """Return the element-wise product of all stored reports of a task.

        Reads the reports in rounds of about _AGGREGATE_ROUND_CIPHERTEXTS ciphertexts; each
        round is multiplied on the pool (a product tree: workers multiply tiles of reports x
        positions, validating every stored ciphertext again), then the rounds' products are
        multiplied here.
        """
        pk = meta.public.public_key
        per_round = max(1, _AGGREGATE_ROUND_CIPHERTEXTS // meta.ciphertexts)
        totals: list[Ciphertext] | None = None
        with self._read() as session:
            rounds = session.scalars(
                select(ReportRow.ciphertexts)
                .where(ReportRow.task_id == meta.task_id)
                .execution_options(yield_per=per_round)
            ).partitions()
            for blobs in rounds:
                for blob in blobs:
                    if len(blob) != meta.width * meta.ciphertexts:
                        raise MalformedCiphertextError("stored ciphertexts have the wrong size")
                part = self._on_pool(
                    functools.partial(CryptoPool.aggregate_vectors, public_key=pk, reports=blobs)
                )
                if totals is None:
                    totals = part
                else:
                    totals = [a + b for a, b in zip(totals, part, strict=True)]
        if totals is None:  # pragma: no cover - a closed task has >= min_clients >= 2 reports
            raise TaskStateError(f"task {meta.task_id!r} has no reports to aggregate")
        return totals

    # ------------------------------------------------------------------ views

    def info(self, task_id: str) -> TaskInfoOut:
        """Return what participants need: key (or Shamir parameters), encoding, length, limits."""
        self._ensure_deadline(task_id)
        meta = self.meta(task_id)
        with self._read() as session:
            state = session.scalar(select(TaskRow.state).where(TaskRow.id == task_id))
            form = None if isinstance(meta, ShamirMeta) else self._stored_form(session, task_id)
        if isinstance(meta, ShamirMeta):
            return TaskInfoOut(
                task_id=task_id,
                name=meta.name,
                state=state,  # type: ignore[arg-type]
                length=meta.length,
                encoding=meta.encoding,
                public_key=None,
                holders=0,
                threshold=meta.threshold,
                min_clients=meta.min_clients,
                max_clients=meta.max_clients,
                deadline=meta.deadline,
                scheme="shamir",
                servers=meta.servers,
                server_index=meta.server_index,
                field=list(meta.field.moduli),
            )
        return TaskInfoOut(
            task_id=task_id,
            name=meta.name,
            state=state,  # type: ignore[arg-type]
            length=meta.length,
            encoding=meta.encoding,
            public_key=meta.public_key_json,
            holders=meta.public.holders,
            threshold=meta.public.threshold,
            min_clients=meta.min_clients,
            max_clients=meta.max_clients,
            deadline=meta.deadline,
            packing=meta.packing.to_json() if meta.packing is not None else None,
            partials_form=form,
        )

    def status(self, task_id: str, principal: Principal | None = None) -> TaskStatusOut:
        """Return the task's state and progress counters.

        Args:
            task_id: the task.
            principal: who asks; for a client, ``reported`` says whether its report is here.
        """
        self._ensure_deadline(task_id)
        meta = self.meta(task_id)
        reported: bool | None = None
        with self._read() as session:
            task = session.get(TaskRow, task_id)
            if task is None:
                raise NotFoundError(f"no task {task_id!r}")
            reports = session.scalar(
                select(func.count()).select_from(ReportRow).where(ReportRow.task_id == task_id)
            )
            clients = session.scalar(
                select(func.count()).select_from(ClientRow).where(ClientRow.task_id == task_id)
            )
            partials = session.scalar(
                select(func.count()).select_from(PartialRow).where(PartialRow.task_id == task_id)
            )
            form = self._stored_form(session, task_id) if partials else None
            if principal is not None and principal.client_id is not None:
                reported = (
                    session.scalar(
                        select(ReportRow.id).where(
                            ReportRow.task_id == task_id,
                            ReportRow.client_id == principal.client_id,
                        )
                    )
                    is not None
                )
        shamir = meta if isinstance(meta, ShamirMeta) else None
        return TaskStatusOut(
            task_id=task_id,
            state=task.state,  # type: ignore[arg-type]
            reports=reports or 0,
            registered_clients=clients or 0,
            min_clients=task.min_clients,
            max_clients=task.max_clients,
            partials_received=partials or 0,
            threshold=task.threshold,
            holders=task.holders,
            deadline=task.deadline,
            created_at=task.created_at,
            closed_at=task.closed_at,
            close_reason=task.close_reason,  # type: ignore[arg-type]
            scheme="shamir" if shamir else "paillier",
            servers=shamir.servers if shamir else None,
            server_index=shamir.server_index if shamir else None,
            reported=reported,
            partials_form=form,
        )

    # ------------------------------------------------------------------ clients

    def submit_report(
        self, task_id: str, principal: Principal, body: ReportIn
    ) -> ReportAcceptedOut:
        """Validate a client's ciphertexts (or Shamir share) and store them durably, once.

        Raises:
            KeyMismatchError: the report names another key.
            InvalidInputError: wrong number of ciphertexts; a report of the other scheme.
            MalformedCiphertextError: a ciphertext that is not canonical base64url, or not in
                [1, n^2), or not coprime to n (the message names the element).
            ShareError: a Shamir share that is not canonical base64url, not of the task's
                field or length, or holds a residue not below its prime.
            TaskStateError: the task is closed (by the admin or its deadline).
            DuplicateSubmissionError: this client already reported; the first report is kept.
        """
        meta = self.meta(task_id)
        client_id = principal.client_id
        if client_id is None:  # pragma: no cover - guaranteed by authenticate(CLIENT)
            raise PermissionDeniedError("only clients upload reports")
        if isinstance(meta, ShamirMeta):
            return self._submit_share(meta, client_id, body)
        key_id, texts = body.key_id, body.ciphertexts
        if key_id is None or texts is None:
            raise InvalidInputError(
                f"task {task_id!r} is a Paillier task: a report carries key_id and ciphertexts, "
                "not a share"
            )
        pk = meta.public.public_key
        if key_id != pk.key_id:
            raise KeyMismatchError(
                f"report is for key {key_id[:32]!r}; this task's key is {pk.key_id!r}"
            )
        if len(texts) != meta.ciphertexts:
            packed = (
                f" (its {meta.length} values packed by its layout)"
                if meta.packing is not None
                else ""
            )
            raise InvalidInputError(
                f"report has {len(texts)} ciphertexts; this task takes {meta.ciphertexts}{packed}"
            )
        values = []
        for i, text in enumerate(texts):
            try:
                values.append(
                    decode_int(
                        text, "ciphertext", max_bytes=meta.width, error=MalformedCiphertextError
                    )
                )
            except MalformedCiphertextError as exc:
                raise MalformedCiphertextError(f"ciphertexts[{i}]: {exc}") from None
        # Range and coprimality of the whole report at once (one gcd on the product, instead
        # of one per ciphertext: a packed report has ~1,200); the first bad one is named.
        try:
            ciphertexts = self._inline_pool.validate_many(pk, values)
        except MalformedCiphertextError as exc:
            raise MalformedCiphertextError(
                re.sub(r"^ciphertext (\d+):", r"ciphertexts[\1]:", str(exc))
            ) from None
        blob = b"".join(c.to_bytes() for c in ciphertexts)
        now = self._clock()
        if meta.deadline is not None and meta.deadline <= now:
            self._ensure_deadline(task_id)
            raise TaskStateError(
                f"task {task_id!r} closed at its deadline; reports are no longer accepted"
            )
        self._store_report(task_id, client_id, blob, now)
        return ReportAcceptedOut(task_id=task_id, client_id=client_id, received_at=now)

    def _store_report(self, task_id: str, client_id: int, blob: bytes, now: datetime) -> None:
        """Store a client's report durably, once, while the task is open.

        Group commit: the upload that gets the write turn commits, in one transaction, every
        report waiting at that moment (each in its own savepoint, so a duplicate or a closed
        task fails only its own report); the others find theirs done. Every upload returns only
        after the transaction holding its report has committed (synchronous=FULL on SQLite), so
        an acknowledged report survives a crash, as before; one fsync serves many uploads.

        Raises:
            TaskStateError: the task is no longer open.
            DuplicateSubmissionError: this client already reported (the first report is kept).
        """
        item = _PendingReport(task_id, client_id, blob, now)
        with self._pending_lock:
            self._pending_reports.append(item)
        with self._writer_turn():
            if not item.done.is_set():
                with self._pending_lock:
                    batch, self._pending_reports = self._pending_reports, []
                self._commit_reports(batch)
        item.done.wait()
        if item.error is not None:
            raise item.error

    def _commit_reports(self, batch: list[_PendingReport]) -> None:
        """Insert a batch of reports in one transaction; record each report's outcome.

        One statement checks the task states, one finds the clients that already reported,
        one multi-row INSERT stores the rest (a repeat inside the batch fails like any
        duplicate: the first kept). If the INSERT still violates UNIQUE(task_id, client_id),
        possible only when another process writes the same database at the same time
        (PostgreSQL; on SQLite BEGIN IMMEDIATE excludes it), the transaction is retried with
        one savepoint per report, so that each duplicate fails alone.
        """
        try:
            try:
                with self._writer.begin() as conn:
                    self._insert_reports(conn, batch, savepoints=False)
            except IntegrityError:
                for item in batch:
                    item.error = None
                with self._writer.begin() as conn:
                    self._insert_reports(conn, batch, savepoints=True)
        except Exception as exc:  # the transaction failed: no report of the batch is stored
            for item in batch:
                item.error = item.error or exc
            raise
        finally:
            for item in batch:
                item.done.set()

    @staticmethod
    def _insert_reports(conn: Connection, batch: list[_PendingReport], *, savepoints: bool) -> None:
        """Store the batch's acceptable reports on ``conn`` and set the others' errors."""
        task_ids = sorted({item.task_id for item in batch})
        # A shared lock on the task rows: uploads proceed together, close() (exclusive)
        # waits for them.
        states = {
            task_id: state for task_id, state in conn.execute(_TASK_STATES, {"task_ids": task_ids})
        }
        client_ids = sorted({item.client_id for item in batch})
        reported = {
            (task_id, client_id)
            for task_id, client_id in conn.execute(
                _REPORTED_CLIENTS, {"task_ids": task_ids, "client_ids": client_ids}
            )
        }
        rows: list[dict[str, object]] = []
        for item in batch:
            state = states.get(item.task_id)
            if state != "open":
                item.error = TaskStateError(
                    f"task {item.task_id!r} is {state}; reports are no longer accepted"
                )
            elif (item.task_id, item.client_id) in reported:
                item.error = _duplicate_report(item.client_id)
            else:
                reported.add((item.task_id, item.client_id))
                rows.append(
                    {
                        "task_id": item.task_id,
                        "client_id": item.client_id,
                        "ciphertexts": item.blob,
                        "received_at": item.now,
                    }
                )
        if not rows:
            return
        if not savepoints:
            conn.execute(_INSERT_REPORT, rows)
            return
        for item, row in zip([i for i in batch if i.error is None], rows, strict=True):
            try:
                with conn.begin_nested():
                    conn.execute(_INSERT_REPORT, row)
            except IntegrityError:
                item.error = _duplicate_report(item.client_id)

    def _submit_share(self, meta: ShamirMeta, client_id: int, body: ReportIn) -> ReportAcceptedOut:
        """Store one client's Shamir share (see :meth:`submit_report`)."""
        task_id = meta.task_id
        if body.share is None:
            raise InvalidInputError(
                f"task {task_id!r} is a Shamir task: a report carries one share (field "
                "'share'), not key_id and ciphertexts"
            )
        blob = residues_to_blob(decode_share(body.share, length=meta.length, field=meta.field))
        with self._read() as session:
            number = session.scalar(
                select(ShamirClientRow.number).where(ShamirClientRow.client_id == client_id)
            )
        if number is None:  # pragma: no cover - every client of a Shamir task has a number
            raise PermissionDeniedError("this client has no number in the task")
        now = self._clock()
        if _past(meta.deadline, now):
            raise TaskStateError(
                f"task {task_id!r} passed its deadline; reports are no longer accepted"
            )
        try:
            self._store_report(task_id, client_id, blob, now)
        except DuplicateSubmissionError:
            raise _duplicate_report(number) from None  # name the client by its task number
        return ReportAcceptedOut(task_id=task_id, client_id=number, received_at=now)

    # ------------------------------------------------------------------ key holders

    def aggregate(self, task_id: str) -> AggregateOut | ShamirAggregateOut:
        """Return the published aggregate ciphertexts and the count (Paillier), or this
        server's share of the sum with the participant set (Shamir).

        A closed Paillier task whose aggregate is not stored yet gets it now (or once the
        thread computing it is done).

        Raises:
            TaskStateError: the task is still open.
            InsufficientReportsError: the task closed with too few reports.
        """
        self._ensure_deadline(task_id)
        meta = self.meta(task_id)
        if isinstance(meta, ShamirMeta):
            return self._shamir_aggregate(meta)
        task, row = self._read_aggregate(meta)
        if task.state == "open":
            raise TaskStateError(
                f"task {task_id!r} is still open: the aggregate is published when it closes"
            )
        if task.state == "insufficient" or row is None:
            raise _insufficient(task)
        return AggregateOut(
            task_id=task_id,
            key_id=meta.public.public_key.key_id,
            count=row.count,
            ciphertexts=[encode_int(c.value) for c in meta.split(row.ciphertexts)],
        )

    def _read_aggregate(self, meta: TaskMeta) -> tuple[TaskRow, AggregateRow | None]:
        """Read a task and its aggregate; compute the aggregate first if it is due and missing.

        Raises:
            NotFoundError: unknown task.
        """
        task, row = self._read_task_and_aggregate(meta.task_id)
        if row is None and task.state == "closed":
            self._ensure_aggregate(meta)
            task, row = self._read_task_and_aggregate(meta.task_id)
        return task, row

    def _read_task_and_aggregate(self, task_id: str) -> tuple[TaskRow, AggregateRow | None]:
        with self._read() as session:
            task = session.get(TaskRow, task_id)
            if task is None:
                raise NotFoundError(f"no task {task_id!r}")
            return task, session.get(AggregateRow, task_id)

    def _shamir_aggregate(self, meta: ShamirMeta) -> ShamirAggregateOut:
        """This server's share of the sum over the participant set (see :meth:`aggregate`)."""
        task_id = meta.task_id
        with self._read() as session:
            task = session.get(TaskRow, task_id)
            row = session.get(AggregateRow, task_id)
            shamir = session.get(ShamirTaskRow, task_id)
            if task is None or shamir is None:
                raise NotFoundError(f"no task {task_id!r}")
            if task.state == "open" or row is None or shamir.participants_json is None:
                raise TaskStateError(
                    f"task {task_id!r} is still open: this server's share of the sum is "
                    "published when the administrator closes it with the participant set"
                )
        share = residues_from_blob(row.ciphertexts, length=meta.length, field=meta.field)
        return ShamirAggregateOut(
            scheme="shamir",
            task_id=task_id,
            server_index=meta.server_index,
            servers=meta.servers,
            threshold=meta.threshold,
            count=row.count,
            clients=json.loads(shamir.participants_json),
            share=encode_share(share, meta.field),
        )

    def submit_partials(
        self, task_id: str, principal: Principal, body: PartialsIn
    ) -> PartialsAcceptedOut:
        """Verify a key holder's partial decryptions; with t valid ones, decrypt the result.

        Two forms (see :class:`~smpcloud.protocol.schemas.PartialsIn`): one partial decryption
        with its own proof per aggregate ciphertext, or one batch with ONE proof for all of
        them. The first accepted upload of a task fixes the form for its other key holders.
        Proofs are verified before the write transaction (they are the expensive part), so a
        slow verification never holds the database's write lock. The t-th upload combines the
        first t (by holder index) inside the write transaction, on the worker pool: about
        0.3 s for the packed reference case (1,177 ciphertexts at 2048 bits, t = 3, unpacking
        10^5 sums included).

        Raises:
            TaskStateError: the task is open or already decrypted.
            InsufficientReportsError: the task closed with too few reports.
            DuplicateSubmissionError: this holder already contributed.
            ConflictError: the other form than the task's first accepted upload.
            InvalidInputError: wrong number of partials, malformed objects, or a holder index
                other than the token's.
            InvalidPartialDecryptionError: a proof failed (names the holder).
            OverflowDetectedError: a packed task's combined sums leave the layout's bounds
                (some client forged its report): nothing is released, this upload is stored
                and the task's state becomes ``withheld`` for good.
            TaskStateError: also for a task already ``withheld``.
        """
        holder = principal.holder_index
        if holder is None:  # pragma: no cover - guaranteed by authenticate(HOLDER)
            raise PermissionDeniedError("only key holders upload partial decryptions")
        meta = self._paillier_meta(task_id, "it has no key holders")
        form = body.form
        with self._read() as session:
            task = session.get(TaskRow, task_id)
            if task is None:
                raise NotFoundError(f"no task {task_id!r}")
            self._check_decryptable(task)
            if self._has_partial(session, task_id, holder):
                raise _duplicate_partial(holder)
            self._check_form(session, task_id, form)
        task, row = self._read_aggregate(meta)
        if row is None:  # pragma: no cover - closed tasks get their aggregate above
            raise _insufficient(task)
        aggregate = meta.split(row.ciphertexts)
        started = time.perf_counter()
        if body.batch is not None:
            payload = self._verified_batch(meta, holder, aggregate, body.batch)
        else:
            payload = self._verified_partials(meta, holder, aggregate, body.partials or [])
        verified = time.perf_counter() - started
        now = self._clock()
        try:
            with self._write() as session:
                task = self._lock_task(session, task_id)
                self._check_decryptable(task)
                if self._has_partial(session, task_id, holder):
                    raise _duplicate_partial(holder)
                self._check_form(session, task_id, form)
                self._add_partial(session, task_id, holder, payload, now)
                session.flush()
                received = session.scalar(
                    select(func.count())
                    .select_from(PartialRow)
                    .where(PartialRow.task_id == task_id)
                )
                received = received or 0
                decrypted = received >= meta.public.threshold
                if decrypted:
                    self._decrypt_locked(session, task, meta, aggregate, now)
        except IntegrityError:
            raise _duplicate_partial(holder) from None
        except OverflowDetectedError:
            if meta.packing is not None:  # only unpacking the sums raises it
                self._withhold(task_id, holder, payload, now)
            raise
        logger.info(
            "accepted %s from key holder %d of task %s (%d of %d; verified in %.3f s)",
            "a batched partial decryption" if form == "batch" else "partial decryptions",
            holder,
            task_id,
            received,
            meta.public.threshold,
            verified,
        )
        return PartialsAcceptedOut(
            task_id=task_id,
            holder=holder,
            partials_received=received,
            threshold=meta.public.threshold,
            decrypted=decrypted,
        )

    @staticmethod
    def _stored_form(session: Session, task_id: str) -> PartialsForm | None:
        """The form of the task's accepted uploads (None before the first one)."""
        first = session.scalar(
            select(func.substr(PartialRow.partials_json, 1, 1))
            .where(PartialRow.task_id == task_id)
            .limit(1)
        )
        return None if first is None else _form_of(first)

    def _check_form(self, session: Session, task_id: str, form: PartialsForm) -> None:
        """Refuse an upload in another form than the task's first accepted one (409)."""
        fixed = self._stored_form(session, task_id)
        if fixed is not None and fixed != form:
            described = {
                "batch": "as one batch with one proof (field 'batch')",
                "partials": "one partial decryption per ciphertext (field 'partials')",
            }
            raise ConflictError(
                f"the key holders of task {task_id!r} upload {described[fixed]}: the first "
                f"accepted upload used that form, and all of them must use the same one; this "
                f"upload is {described[form]}"
            )

    def _verified_partials(
        self,
        meta: TaskMeta,
        holder: int,
        aggregate: list[Ciphertext],
        items: list[dict[str, Any]],
    ) -> str:
        """Parse and verify per-ciphertext partial decryptions; return the JSON to store.

        Raises:
            InvalidInputError: wrong number, malformed objects, another holder's index.
            InvalidPartialDecryptionError: a proof failed (names the holder).
        """
        if len(items) != meta.ciphertexts:
            packed = " (ciphertexts of its packed aggregate)" if meta.packing is not None else ""
            raise InvalidInputError(
                f"{len(items)} partial decryptions; this task has {meta.ciphertexts} "
                f"elements{packed}"
            )
        partials = []
        for i, (item, ciphertext) in enumerate(zip(items, aggregate, strict=True)):
            try:
                partial = threshold.partial_from_json(meta.public, ciphertext, item)
            except InvalidInputError as exc:
                raise type(exc)(f"partials[{i}]: {exc}") from None
            if partial.index != holder:
                raise InvalidInputError(
                    f"partials[{i}] claims key holder {partial.index}, but the token belongs to "
                    f"key holder {holder}"
                )
            partials.append(partial)
        bad = [i for i, p in enumerate(partials) if not threshold.verify_partial(meta.public, p)]
        if bad:
            logger.warning(
                "rejected partial decryptions from key holder %d of task %s: proof failed "
                "for %d of %d elements",
                holder,
                meta.task_id,
                len(bad),
                len(partials),
            )
            shown = ", ".join(map(str, bad[:10])) + (", ..." if len(bad) > 10 else "")
            raise threshold.InvalidPartialDecryptionError([holder], f"element(s) {shown}")
        return json.dumps([threshold.partial_to_json(p) for p in partials])

    def _verified_batch(
        self, meta: TaskMeta, holder: int, aggregate: list[Ciphertext], data: dict[str, Any]
    ) -> str:
        """Parse and verify a batched partial decryption; return the JSON to store.

        One proof check for all ciphertexts (:func:`smpcloud.crypto.threshold.verify_batch`:
        ~0.2 s for 1,177 ciphertexts at 2048 bits), in the calling worker thread.

        Raises:
            InvalidInputError: a malformed batch, another number of values than the aggregate
                has ciphertexts, or another holder's index.
            InvalidPartialDecryptionError: the proof failed (names the holder).
        """
        try:
            batch = threshold.BatchPartialDecryption.from_json(
                meta.public, data, count=meta.ciphertexts
            )
        except InvalidInputError as exc:
            raise type(exc)(f"batch: {exc}") from None
        if batch.index != holder:
            raise InvalidInputError(
                f"the batch claims key holder {batch.index}, but the token belongs to key "
                f"holder {holder}"
            )
        try:
            threshold.verify_batch(meta.public, aggregate, batch)
        except threshold.InvalidPartialDecryptionError as exc:
            logger.warning(
                "rejected the batched partial decryption of key holder %d of task %s "
                "(%d ciphertexts): %s",
                holder,
                meta.task_id,
                meta.ciphertexts,
                exc.detail or "proof failed",
            )
            raise
        return json.dumps(batch.to_json())

    def _withhold(self, task_id: str, holder: int, payload: str, now: datetime) -> None:
        """Mark a closed packed task ``withheld`` for good, storing the t-th holder's upload.

        Called after the transaction whose combination overflowed rolled back. Every later
        request sees the state: no result is ever released, no further upload is taken.
        Idempotent (two holders may race to be the t-th).
        """
        with self._write() as session:
            task = self._lock_task(session, task_id)
            if task.state != "closed":
                return
            if not self._has_partial(session, task_id, holder):
                self._add_partial(session, task_id, holder, payload, now)
            task.state = "withheld"

    @staticmethod
    def _has_partial(session: Session, task_id: str, holder: int) -> bool:
        """Whether key holder ``holder`` has an accepted upload for the task."""
        found = session.scalar(
            select(PartialRow.id).where(
                PartialRow.task_id == task_id, PartialRow.holder_index == holder
            )
        )
        return found is not None

    @staticmethod
    def _add_partial(
        session: Session, task_id: str, holder: int, payload: str, now: datetime
    ) -> None:
        """Add key holder ``holder``'s verified upload (JSON) to the session."""
        session.add(
            PartialRow(task_id=task_id, holder_index=holder, partials_json=payload, received_at=now)
        )

    @staticmethod
    def _check_decryptable(task: TaskRow) -> None:
        if task.state == "withheld":
            raise _withheld(task)
        if task.state == "open":
            raise TaskStateError(
                f"task {task.id!r} is still open: nothing to decrypt until it closes"
            )
        if task.state == "insufficient":
            raise _insufficient(task)
        if task.state == "decrypted":
            raise TaskStateError(
                f"task {task.id!r} is already decrypted: its result has been published"
            )

    def _decrypt_locked(
        self,
        session: Session,
        task: TaskRow,
        meta: TaskMeta,
        aggregate: list[Ciphertext],
        now: datetime,
    ) -> None:
        """Combine the first t stored (already verified) uploads; store the result.

        For a packed task the plaintexts are unpacked into one sum per value, each slot
        checked against the layout's bounds.

        Raises:
            OverflowDetectedError: a packed task's sums leave the layout's bounds; nothing is
                stored (the caller's transaction rolls back).
        """
        started = time.perf_counter()
        rows = session.scalars(
            select(PartialRow)
            .where(PartialRow.task_id == task.id)
            .order_by(PartialRow.holder_index)
            .limit(meta.public.threshold)
        ).all()
        uploads = [json.loads(row.partials_json) for row in rows]
        plaintexts: list[int]
        if all(isinstance(upload, dict) for upload in uploads):
            batches = [
                threshold.BatchPartialDecryption.from_json(
                    meta.public, upload, count=meta.ciphertexts
                )
                for upload in uploads
            ]
            plaintexts = self._on_pool(
                functools.partial(
                    CryptoPool.combine_batch,
                    public=meta.public,
                    ciphertexts=aggregate,
                    batches=batches,
                    verify=False,
                )
            )
        else:
            groups = [
                [
                    threshold.partial_from_json(meta.public, ciphertext, items[i])
                    for items in uploads
                ]
                for i, ciphertext in enumerate(aggregate)
            ]
            plaintexts = self._on_pool(
                functools.partial(
                    CryptoPool.combine_many, public=meta.public, partials=groups, verify=False
                )
            )
        count = task.report_count or 0
        sums = plaintexts
        if meta.packing is not None:
            try:
                sums = unpack_sums(plaintexts, meta.packing, count)
            except OverflowDetectedError as exc:
                logger.warning(
                    "task %s: the decrypted aggregate does not unpack within its layout's "
                    "bounds (%s); result withheld",
                    task.id,
                    exc,
                )
                raise OverflowDetectedError(
                    f"task {task.id!r}: the decrypted aggregate does not unpack within the "
                    f"packing layout's bounds ({exc}). Some client must have uploaded a report "
                    "outside the declared range (a forged report, not made by the SDK). The "
                    "result is withheld for good: the task's state is now 'withheld'."
                ) from None
        session.add(
            ResultRow(
                task_id=task.id,
                sums_json=json.dumps([str(s) for s in sums]),
                count=count,
                holders_json=json.dumps([row.holder_index for row in rows]),
                computed_at=now,
            )
        )
        task.state = "decrypted"
        logger.info(
            "task %s decrypted: result released (count %d, %d values; combined in %.3f s)",
            task.id,
            count,
            len(sums),
            time.perf_counter() - started,
        )

    # ------------------------------------------------------------------ result

    def result(self, task_id: str) -> ResultOut:
        """Return the released sum, count and average per element.

        Raises:
            TaskStateError: still open.
            InsufficientReportsError: closed with too few reports (never any result).
            ThresholdNotMetError: closed, but fewer than t partial decryptions so far
                ("k of t partial decryptions received").
            TaskStateError: a Shamir task (no server knows its result); or a packed task
                whose result is withheld (its sums left the layout's bounds: a forged report).
        """
        self._ensure_deadline(task_id)
        meta = self._paillier_meta(
            task_id,
            "no server knows its result; the analyst rebuilds the sum from t servers' shares "
            "of it (smpcloud.client.ShamirAggregation.result)",
        )
        with self._read() as session:
            task = session.get(TaskRow, task_id)
            if task is None:
                raise NotFoundError(f"no task {task_id!r}")
            row = session.get(ResultRow, task_id)
            if task.state == "insufficient":
                raise _insufficient(task)
            if task.state == "withheld":
                raise _withheld(task)
            if task.state in ("open", "closed") or row is None:
                received = session.scalar(
                    select(func.count())
                    .select_from(PartialRow)
                    .where(PartialRow.task_id == task_id)
                )
                t = meta.public.threshold
                if task.state == "open":
                    raise TaskStateError(
                        f"task {task_id!r} is still open; the result needs it closed and "
                        f"{t} partial decryptions (0 of {t} partial decryptions received)"
                    )
                raise ThresholdNotMetError(
                    f"{received or 0} of {t} partial decryptions received; the result is "
                    f"released when {t} valid ones are in"
                )
        encoding = meta.encoding
        sums = [int(s) for s in json.loads(row.sums_json)]
        lo, hi = encoding.encoded_bounds()
        return ResultOut(
            task_id=task_id,
            count=row.count,
            sum=[encoding.decode_sum(s) for s in sums],
            average=[encoding.average(s, row.count) for s in sums],
            holders=json.loads(row.holders_json),
            within_declared_range=all(row.count * lo <= s <= row.count * hi for s in sums),
        )


def _withheld(task: TaskRow) -> TaskStateError:
    return TaskStateError(
        f"task {task.id!r}: result withheld. Its decrypted aggregate did not unpack within the "
        "packing layout's bounds, so some client uploaded a report outside the declared range "
        "(a forged report, not made by the SDK); no sums of this task will be released."
    )


def _duplicate_report(client_id: int) -> DuplicateSubmissionError:
    return DuplicateSubmissionError(
        f"client {client_id} has already submitted its report; the first report is kept"
    )


def _duplicate_partial(holder: int) -> DuplicateSubmissionError:
    return DuplicateSubmissionError(
        f"key holder {holder} has already submitted its partial decryptions"
    )


def _insufficient(task: TaskRow) -> InsufficientReportsError:
    return InsufficientReportsError(
        f"task {task.id!r} closed with {task.report_count or 0} report(s), fewer than its "
        f"minimum of {task.min_clients}: no aggregate or result will ever be released"
    )


__all__ = ["MAX_PACKED_VALUES", "Principal", "ShamirMeta", "TaskMeta", "TaskService", "hash_token"]

"""Storage of the aggregation service: SQLAlchemy 2 tables and the engine factory.

Nothing happens at import time; :func:`make_engine` builds an engine for any SQLAlchemy URL.
For SQLite files it sets, on every connection:

* ``journal_mode=WAL``: readers never block the single writer;
* ``synchronous=FULL``: a commit is on disk (WAL fsynced) before ``commit()`` returns, so an
  upload is durable before the service acknowledges it;
* a busy timeout, for writers in other processes;
* ``foreign_keys=ON``;

and it creates the file with mode 0600 before SQLite opens it (its ``-wal`` and ``-shm`` files
inherit that mode), tightening a looser existing one (:mod:`smpcloud.service.sqlite_files`);

and it lets SQLAlchemy emit ``BEGIN`` itself, so that write transactions can start with
``BEGIN IMMEDIATE`` (see :func:`write_engine`): a deferred transaction that reads and then
writes can fail with SQLITE_BUSY under concurrency, an immediate one waits for the lock first.

Tokens are stored only as SHA-256 digests (they are 256-bit random values, so a fast hash is
enough); ciphertexts as fixed-width big-endian bytes (``Ciphertext.to_bytes``), concatenated
element after element.

**One table per scheme.** ``tasks`` holds what every task has, whatever its scheme (its
``scheme`` names it: "paillier" or "shamir"); every scheme keeps its own parameters in tables
of its own, so that no column holds a placeholder or a value whose meaning depends on the
scheme:

* Paillier tasks: ``paillier_tasks`` (the threshold public key, its fingerprint, the number of
  key holders and the threshold t), ``key_holders``, ``aggregates`` (the element-wise product
  of the reports' ciphertexts), ``report_logs`` (the signed Merkle log of the aggregated
  reports), ``partial_decryptions``, ``aggregate_attestations`` (key holders' signatures of the
  log and aggregate they checked) and ``results``. Packed Paillier tasks
  (many values per ciphertext, :mod:`smpcloud.crypto.packing`) add their layout in
  ``packed_tasks``. A key holder's upload (``partial_decryptions.partials_json``) is a JSON list
  (one partial decryption per ciphertext) or a JSON object (one batched partial decryption with
  one proof); its first character tells which.
* Shamir tasks (:mod:`smpcloud.protocol.sharing`): ``shamir_tasks`` (n, t, this server's
  index, the field, the participant set once closed), ``shamir_clients`` (each client's number
  within its task) and ``shamir_aggregates`` (this server's share of the sum: share residues,
  little-endian u32).

``clients`` and ``reports`` are common: a report is one client's upload as its task's scheme
stores it (``ciphertexts``: fixed-width Paillier ciphertexts, or a Shamir share's residues,
little-endian u32), written by the scheme-blind group commit of uploads
(:mod:`smpcloud.service.storage`) and read back only by the task's own scheme.

The schema is made and changed only by the migrations (:mod:`smpcloud.service.migrations`,
``smpcloud db upgrade``): a change to these tables needs a new revision there. Databases made
by an earlier version (Paillier columns in ``tasks``, Shamir aggregates in ``aggregates``) are
upgraded by it too (:mod:`smpcloud.service.schema`).

**PostgreSQL** (``postgresql+psycopg://...``, the ``postgres`` extra): ``LargeBinary`` is
``bytea``, :class:`UTCDateTime` a ``timestamp without time zone`` holding UTC; each process
keeps up to 40 connections (as many as requests it serves at once), so ``max_connections``
must cover 40 per server process; rows are locked with ``SELECT ... FOR UPDATE`` / ``FOR
SHARE`` and write transactions take an advisory lock (:mod:`smpcloud.service.storage`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from sqlalchemy import (
    DateTime,
    Engine,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.engine import URL, Dialect, make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from smpcloud.errors import InvalidInputError
from smpcloud.service.sqlite_files import make_private

BEGIN_OPTION: Final = "smpcloud_sqlite_begin"


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (stored as naive UTC)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base of the service's tables."""


class TaskRow(Base):
    """An aggregation task, whatever its scheme: its encoding, limits and state."""

    __tablename__ = "tasks"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    scheme: Mapped[str] = mapped_column(String(16))
    length: Mapped[int] = mapped_column(Integer)
    encoding_json: Mapped[str] = mapped_column(Text)
    min_clients: Mapped[int] = mapped_column(Integer)
    max_clients: Mapped[int] = mapped_column(Integer)
    deadline: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    close_reason: Mapped[str | None] = mapped_column(String(16))
    report_count: Mapped[int | None] = mapped_column(Integer)
    #: How reports are checked ("range": validity proofs; "none"). Tasks made before validity
    #: existed read "none" (the column is added with that default: see ``service.schema``).
    validity: Mapped[str] = mapped_column(String(16), server_default="none")


class PaillierTaskRow(Base):
    """The threshold public key of a Paillier task (packed or not); absent for other schemes."""

    __tablename__ = "paillier_tasks"

    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id"), primary_key=True)
    public_key_json: Mapped[str] = mapped_column(Text)
    key_fingerprint: Mapped[str] = mapped_column(String(64))
    holders: Mapped[int] = mapped_column(Integer)
    threshold: Mapped[int] = mapped_column(Integer)


class ClientRow(Base):
    """A registered client: one upload allowed. Only the token's SHA-256 is kept."""

    __tablename__ = "clients"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id"), index=True)
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class HolderRow(Base):
    """A key holder of a task (index 1..holders). Only the token's SHA-256 is kept."""

    __tablename__ = "key_holders"
    __table_args__ = (UniqueConstraint("task_id", "holder_index"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id"), index=True)
    holder_index: Mapped[int] = mapped_column(Integer)
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)


class RefusedReportRow(Base):
    """How many uploads a task refused, by reason (the problem type's slug)."""

    __tablename__ = "refused_reports"

    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id"), primary_key=True)
    reason: Mapped[str] = mapped_column(String(64), primary_key=True)
    count: Mapped[int] = mapped_column(Integer)


class ReportRow(Base):
    """One client's report as its task's scheme stores it (see the module docstring).

    Paillier: ``length`` (packed: the layout's number of) fixed-width ciphertexts, concatenated;
    Shamir: the share's residues (``smpcloud.protocol.sharing.residues_to_blob``); a Shamir task
    with validity ``range``: the server's 2R check values of the report, then its L value shares
    (``smpcloud.protocol.sharing.checked_blob``; one row, so that a report and its check values
    are stored in the same group commit and can never belong to two different uploads).
    """

    __tablename__ = "reports"
    __table_args__ = (UniqueConstraint("task_id", "client_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id"))
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"))
    ciphertexts: Mapped[bytes] = mapped_column(LargeBinary)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AggregateRow(Base):
    """The published aggregate of a closed Paillier task: element-wise product of all reports."""

    __tablename__ = "aggregates"

    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id"), primary_key=True)
    ciphertexts: Mapped[bytes] = mapped_column(LargeBinary)
    count: Mapped[int] = mapped_column(Integer)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PartialRow(Base):
    """A key holder's verified partial decryptions.

    ``partials_json`` is a JSON list (one ``partial_to_json`` object per aggregate ciphertext)
    or a JSON object (one ``BatchPartialDecryption.to_json`` for all of them).
    """

    __tablename__ = "partial_decryptions"
    __table_args__ = (UniqueConstraint("task_id", "holder_index"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id"), index=True)
    holder_index: Mapped[int] = mapped_column(Integer)
    partials_json: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ResultRow(Base):
    """The released result: the plaintext sums (decimal strings, JSON) and the count."""

    __tablename__ = "results"

    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id"), primary_key=True)
    sums_json: Mapped[str] = mapped_column(Text)
    count: Mapped[int] = mapped_column(Integer)
    holders_json: Mapped[str] = mapped_column(Text)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PackedTaskRow(Base):
    """The packing layout of a packed Paillier task (``Packing.to_json``); absent otherwise.

    Reports and the aggregate of a packed task hold ``Packing.ciphertexts`` ciphertexts each;
    its result (``results.sums_json``) holds one sum per value (``tasks.length`` of them).
    """

    __tablename__ = "packed_tasks"

    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id"), primary_key=True)
    packing_json: Mapped[str] = mapped_column(Text)


class ShamirTaskRow(Base):
    """The Shamir parameters of a task on this server; absent for other schemes."""

    __tablename__ = "shamir_tasks"

    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id"), primary_key=True)
    servers: Mapped[int] = mapped_column(Integer)
    threshold: Mapped[int] = mapped_column(Integer)
    server_index: Mapped[int] = mapped_column(Integer)
    moduli_json: Mapped[str] = mapped_column(Text)
    participants_json: Mapped[str | None] = mapped_column(Text)


class ShamirClientRow(Base):
    """A Shamir task's client number (1..N in order of registration, the same on every server)."""

    __tablename__ = "shamir_clients"
    __table_args__ = (UniqueConstraint("task_id", "number"),)

    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), primary_key=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)


class ShamirAggregateRow(Base):
    """This server's share of the sum of a closed Shamir task (over its participant set).

    ``share`` holds the residues (``smpcloud.protocol.sharing.residues_to_blob``); ``count`` is
    the size of the participant set (``shamir_tasks.participants_json``).
    """

    __tablename__ = "shamir_aggregates"

    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id"), primary_key=True)
    share: Mapped[bytes] = mapped_column(LargeBinary)
    count: Mapped[int] = mapped_column(Integer)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime())


def is_sqlite(url: str | URL) -> bool:
    """Return True for sqlite URLs (any driver)."""
    return make_url(url).get_backend_name() == "sqlite"


def make_engine(url: str, *, busy_timeout_seconds: float = 30.0) -> Engine:
    """Create an engine for ``url``; configure SQLite connections as the module doc says.

    Args:
        url: a SQLAlchemy URL, e.g. ``sqlite:///smpcloud.db`` or
            ``postgresql+psycopg://user@host/db``.
        busy_timeout_seconds: SQLite only: how long to wait for another writer.

    Returns:
        The engine (no connection is opened yet; a missing SQLite file is created, empty,
        with mode 0600).

    Raises:
        InvalidInputError: an in-memory SQLite URL (the data would vanish with the process),
            or a SQLite file that cannot be created.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        # A server process runs up to 40 requests at once (FastAPI's thread pool). Its pool
        # keeps 20 connections open: connections beyond the kept ones are closed on return,
        # and a PostgreSQL connection costs a backend process to open (with the default 5,
        # concurrent uploads opened one per ~4 uploads). 20 + 10 per process: size the
        # server's max_connections for the processes that share it.
        return create_engine(
            parsed, pool_pre_ping=True, hide_parameters=True, pool_size=20, max_overflow=10
        )
    if parsed.database in (None, "", ":memory:") or "mode=memory" in str(parsed):
        raise InvalidInputError(
            "an in-memory SQLite database cannot hold the service's data; use a file, "
            "e.g. sqlite:///smpcloud.db"
        )
    if not parsed.database.startswith("file:"):
        # Results, partials and token digests: owner only (see sqlite_files).
        try:
            make_private(Path(parsed.database))
        except OSError as exc:
            raise InvalidInputError(
                f"cannot create the SQLite database {parsed.database}: {exc.strerror}"
            ) from None
    kwargs: dict[str, Any] = {
        "connect_args": {"check_same_thread": False, "timeout": busy_timeout_seconds},
        # Errors and logs never show bound values (ciphertexts, token digests).
        "hide_parameters": True,
    }
    # FastAPI's thread pool runs up to 40 requests at once: as many connections, opened lazily
    # (readers never wait for writers in WAL mode).
    kwargs.update({"pool_size": 8, "max_overflow": 32})
    engine = create_engine(parsed, **kwargs)
    busy_ms = int(busy_timeout_seconds * 1000)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself (below)
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        mode = connection.get_execution_options().get(BEGIN_OPTION, "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine


def write_engine(engine: Engine) -> Engine:
    """Return a view of ``engine`` whose transactions begin with ``BEGIN IMMEDIATE`` on SQLite.

    On other backends the option is ignored; callers lock rows with ``SELECT ... FOR UPDATE``.
    """
    return engine.execution_options(**{BEGIN_OPTION: "IMMEDIATE"})


def utcnow() -> datetime:
    """The current time, timezone-aware UTC (the default clock of the service)."""
    return datetime.now(UTC)


class ServerKeyRow(Base):
    """A long-term secret key of this service (every process on the database shares it).

    ``name`` says what the key is for (``"receipts"``: the Ed25519 key that signs upload
    receipts and published logs; ``"shares"``: the X25519 key clients seal Shamir shares to);
    ``secret`` is its private form (see :mod:`smpcloud.service.server_keys`). The database file
    is mode 0600 like every secret file.
    """

    __tablename__ = "server_keys"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    secret: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ReportLogRow(Base):
    """The published report log of a closed Paillier task (:mod:`smpcloud.protocol.receipts`).

    ``leaves``: the Merkle leaves (32 bytes each, concatenated) of the aggregated reports in
    log order (by client id); ``root`` their RFC 9162 root; ``signature`` the server's
    (``server_key``) over the log root statement. Written with the aggregate, from the same read
    of the reports.
    """

    __tablename__ = "report_logs"

    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id"), primary_key=True)
    count: Mapped[int] = mapped_column(Integer)
    root: Mapped[bytes] = mapped_column(LargeBinary(32))
    leaves: Mapped[bytes] = mapped_column(LargeBinary)
    server_key: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(String(128))
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AttestationRow(Base):
    """A key holder's attestation (its signature, unpadded base64url) of a task's log and
    aggregate, stored with its accepted partial decryptions."""

    __tablename__ = "aggregate_attestations"
    __table_args__ = (UniqueConstraint("task_id", "holder_index"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id"), index=True)
    holder_index: Mapped[int] = mapped_column(Integer)
    signature: Mapped[str] = mapped_column(String(128))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())


class TaskRosterRow(Base):
    """The key holders' roster of a Paillier task (``Roster.to_json``), given at creation.

    Absent for tasks created without one (they cannot be certified) and for Shamir tasks.
    ``digest`` is :meth:`~smpcloud.crypto.signatures.Roster.digest` (clients may pin it).
    """

    __tablename__ = "task_rosters"

    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id"), primary_key=True)
    roster_json: Mapped[str] = mapped_column(Text)
    digest: Mapped[str] = mapped_column(String(64))


class CertificateRow(Base):
    """A key holder's certificate of a task: its signature over the task's statement.

    Stored only after the server checked it against the task's roster
    (:mod:`smpcloud.service.certification`); one per holder.
    """

    __tablename__ = "task_certificates"
    __table_args__ = (UniqueConstraint("task_id", "holder_index"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id"), index=True)
    holder_index: Mapped[int] = mapped_column(Integer)
    signature: Mapped[str] = mapped_column(String(100))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())


__all__ = [
    "AggregateRow",
    "AttestationRow",
    "Base",
    "CertificateRow",
    "ClientRow",
    "HolderRow",
    "PackedTaskRow",
    "PaillierTaskRow",
    "PartialRow",
    "ReportLogRow",
    "ReportRow",
    "ResultRow",
    "ServerKeyRow",
    "ShamirAggregateRow",
    "ShamirClientRow",
    "ShamirTaskRow",
    "TaskRosterRow",
    "TaskRow",
    "UTCDateTime",
    "is_sqlite",
    "make_engine",
    "utcnow",
    "write_engine",
]

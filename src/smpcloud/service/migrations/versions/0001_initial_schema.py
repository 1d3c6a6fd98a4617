"""0001: every table of the service as it was when schema migrations began.

Generated once with Alembic's autogenerate from the models of that day, then reviewed and
frozen: explicit ``op`` calls, no import of the models, so later changes to the models never
change this step of history. Timestamps are ``DateTime`` without time zone, holding UTC
(``smpcloud.service.db.UTCDateTime`` converts); binary columns are BLOB on SQLite, bytea on
PostgreSQL. Constraint and index names are the ones ``create_all`` gave them (unnamed unique
constraints: the backend names them; indexes ``ix_<table>_<column>``), so a database made
before migrations and one made by this revision are the same.

**Adopting a database made before migrations** (by ``create_schema``; see
:mod:`smpcloud.service.migrations`): a table that already exists is kept as it is, with its
rows and indexes, and only the missing ones are created; ``tasks.validity`` (added to such
databases after their ``tasks`` was made) is added where it is missing, with the default that
old rows mean ("none": reports not checked).

Revision ID: 0001
Revises:
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.schema import SchemaItem

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def _utc(name: str, *, nullable: bool = False) -> sa.Column[object]:
    """A UTC timestamp column (naive ``DateTime``; the models convert)."""
    return sa.Column(name, sa.DateTime(), nullable=nullable)


def _task_id(*, primary_key: bool = False) -> sa.Column[object]:
    return sa.Column("task_id", sa.String(length=64), nullable=False, primary_key=primary_key)


def _task_fk() -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["task_id"], ["tasks.id"])


def _serial_id() -> sa.Column[object]:
    return sa.Column("id", sa.Integer(), autoincrement=True, nullable=False, primary_key=True)


def _tables() -> list[tuple[str, list[SchemaItem], list[str]]]:
    """Each table in creation order (referenced before referring): name, items, indexed
    columns."""
    return [
        (
            "server_keys",
            [
                sa.Column("name", sa.String(length=32), nullable=False, primary_key=True),
                sa.Column("secret", sa.LargeBinary(), nullable=False),
                _utc("created_at"),
            ],
            [],
        ),
        (
            "tasks",
            [
                sa.Column("id", sa.String(length=64), nullable=False, primary_key=True),
                sa.Column("name", sa.String(length=200), nullable=False),
                sa.Column("scheme", sa.String(length=16), nullable=False),
                sa.Column("length", sa.Integer(), nullable=False),
                sa.Column("encoding_json", sa.Text(), nullable=False),
                sa.Column("min_clients", sa.Integer(), nullable=False),
                sa.Column("max_clients", sa.Integer(), nullable=False),
                _utc("deadline", nullable=True),
                sa.Column("state", sa.String(length=16), nullable=False),
                _utc("created_at"),
                _utc("closed_at", nullable=True),
                sa.Column("close_reason", sa.String(length=16), nullable=True),
                sa.Column("report_count", sa.Integer(), nullable=True),
                sa.Column("validity", sa.String(length=16), server_default="none", nullable=False),
            ],
            ["deadline", "state"],
        ),
        (
            "aggregate_attestations",
            [
                _serial_id(),
                sa.Column("task_id", sa.String(length=64), nullable=False),
                sa.Column("holder_index", sa.Integer(), nullable=False),
                sa.Column("signature", sa.String(length=128), nullable=False),
                _utc("received_at"),
                _task_fk(),
                sa.UniqueConstraint("task_id", "holder_index"),
            ],
            ["task_id"],
        ),
        (
            "aggregates",
            [
                _task_id(primary_key=True),
                sa.Column("ciphertexts", sa.LargeBinary(), nullable=False),
                sa.Column("count", sa.Integer(), nullable=False),
                _utc("computed_at"),
                _task_fk(),
            ],
            [],
        ),
        (
            "clients",
            [
                _serial_id(),
                sa.Column("task_id", sa.String(length=64), nullable=False),
                sa.Column("token_hash", sa.LargeBinary(length=32), nullable=False),
                _utc("created_at"),
                _task_fk(),
                sa.UniqueConstraint("token_hash"),
            ],
            ["task_id"],
        ),
        (
            "key_holders",
            [
                _serial_id(),
                sa.Column("task_id", sa.String(length=64), nullable=False),
                sa.Column("holder_index", sa.Integer(), nullable=False),
                sa.Column("token_hash", sa.LargeBinary(length=32), nullable=False),
                _task_fk(),
                sa.UniqueConstraint("task_id", "holder_index"),
                sa.UniqueConstraint("token_hash"),
            ],
            ["task_id"],
        ),
        (
            "packed_tasks",
            [
                _task_id(primary_key=True),
                sa.Column("packing_json", sa.Text(), nullable=False),
                _task_fk(),
            ],
            [],
        ),
        (
            "paillier_tasks",
            [
                _task_id(primary_key=True),
                sa.Column("public_key_json", sa.Text(), nullable=False),
                sa.Column("key_fingerprint", sa.String(length=64), nullable=False),
                sa.Column("holders", sa.Integer(), nullable=False),
                sa.Column("threshold", sa.Integer(), nullable=False),
                _task_fk(),
            ],
            [],
        ),
        (
            "partial_decryptions",
            [
                _serial_id(),
                sa.Column("task_id", sa.String(length=64), nullable=False),
                sa.Column("holder_index", sa.Integer(), nullable=False),
                sa.Column("partials_json", sa.Text(), nullable=False),
                _utc("received_at"),
                _task_fk(),
                sa.UniqueConstraint("task_id", "holder_index"),
            ],
            ["task_id"],
        ),
        (
            "refused_reports",
            [
                _task_id(primary_key=True),
                sa.Column("reason", sa.String(length=64), nullable=False, primary_key=True),
                sa.Column("count", sa.Integer(), nullable=False),
                _task_fk(),
            ],
            [],
        ),
        (
            "report_logs",
            [
                _task_id(primary_key=True),
                sa.Column("count", sa.Integer(), nullable=False),
                sa.Column("root", sa.LargeBinary(length=32), nullable=False),
                sa.Column("leaves", sa.LargeBinary(), nullable=False),
                sa.Column("server_key", sa.String(length=64), nullable=False),
                sa.Column("signature", sa.String(length=128), nullable=False),
                _utc("computed_at"),
                _task_fk(),
            ],
            [],
        ),
        (
            "results",
            [
                _task_id(primary_key=True),
                sa.Column("sums_json", sa.Text(), nullable=False),
                sa.Column("count", sa.Integer(), nullable=False),
                sa.Column("holders_json", sa.Text(), nullable=False),
                _utc("computed_at"),
                _task_fk(),
            ],
            [],
        ),
        (
            "shamir_aggregates",
            [
                _task_id(primary_key=True),
                sa.Column("share", sa.LargeBinary(), nullable=False),
                sa.Column("count", sa.Integer(), nullable=False),
                _utc("computed_at"),
                _task_fk(),
            ],
            [],
        ),
        (
            "shamir_tasks",
            [
                _task_id(primary_key=True),
                sa.Column("servers", sa.Integer(), nullable=False),
                sa.Column("threshold", sa.Integer(), nullable=False),
                sa.Column("server_index", sa.Integer(), nullable=False),
                sa.Column("moduli_json", sa.Text(), nullable=False),
                sa.Column("participants_json", sa.Text(), nullable=True),
                _task_fk(),
            ],
            [],
        ),
        (
            "task_certificates",
            [
                _serial_id(),
                sa.Column("task_id", sa.String(length=64), nullable=False),
                sa.Column("holder_index", sa.Integer(), nullable=False),
                sa.Column("signature", sa.String(length=100), nullable=False),
                _utc("received_at"),
                _task_fk(),
                sa.UniqueConstraint("task_id", "holder_index"),
            ],
            ["task_id"],
        ),
        (
            "task_rosters",
            [
                _task_id(primary_key=True),
                sa.Column("roster_json", sa.Text(), nullable=False),
                sa.Column("digest", sa.String(length=64), nullable=False),
                _task_fk(),
            ],
            [],
        ),
        (
            "reports",
            [
                _serial_id(),
                sa.Column("task_id", sa.String(length=64), nullable=False),
                sa.Column("client_id", sa.Integer(), nullable=False),
                sa.Column("ciphertexts", sa.LargeBinary(), nullable=False),
                _utc("received_at"),
                sa.ForeignKeyConstraint(["client_id"], ["clients.id"]),
                _task_fk(),
                sa.UniqueConstraint("task_id", "client_id"),
            ],
            [],
        ),
        (
            "shamir_clients",
            [
                sa.Column("client_id", sa.Integer(), nullable=False, primary_key=True),
                sa.Column("task_id", sa.String(length=64), nullable=False),
                sa.Column("number", sa.Integer(), nullable=False),
                sa.ForeignKeyConstraint(["client_id"], ["clients.id"]),
                _task_fk(),
                sa.UniqueConstraint("task_id", "number"),
            ],
            ["task_id"],
        ),
    ]


def upgrade() -> None:
    """Create every table (only the missing ones when adopting an older database)."""
    inspector = sa.inspect(op.get_bind())
    for name, items, indexed in _tables():
        if inspector.has_table(name):
            continue
        op.create_table(name, *items)
        for column in indexed:
            op.create_index(f"ix_{name}_{column}", name, [column], unique=False)
    columns = {column["name"] for column in inspector.get_columns("tasks")}
    if "validity" not in columns:
        op.add_column(
            "tasks",
            sa.Column("validity", sa.String(length=16), server_default="none", nullable=False),
        )


def downgrade() -> None:
    """Migrations only go forward: restore a backup to go back."""
    raise NotImplementedError("smpcloud's migrations only go forward")

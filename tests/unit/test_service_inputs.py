"""Hardening findings of issue 13 below HTTP: real SQLite files, the wire schemas themselves.

The same findings (and the others) are reproduced against a real server in
tests/integration/test_service_hardening.py.
"""

from __future__ import annotations

import logging
import math
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError
from sqlalchemy import text

from smpcloud.protocol import schemas
from smpcloud.protocol._bases import Schema
from smpcloud.protocol.schemas import ClientsIn, ResultOut, TaskEncoding, TaskIn
from smpcloud.service.db import make_engine
from smpcloud.service.migrations import upgrade

# ------------------------------------------------------------------ private database files


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _write_something(url: str) -> None:
    engine = make_engine(url)
    try:
        upgrade(engine)
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE IF NOT EXISTS probe (x INTEGER)"))
            conn.execute(text("INSERT INTO probe VALUES (1)"))
        # While a connection is open, the -wal and -shm files exist.
        with engine.connect() as conn:
            conn.execute(text("SELECT count(*) FROM probe")).scalar_one()
            db = Path(url.removeprefix("sqlite:///"))
            for suffix in ("", "-wal", "-shm"):
                path = db.with_name(db.name + suffix)
                assert path.exists(), path
                assert _mode(path) == 0o600, (path.name, oct(_mode(path)))
    finally:
        engine.dispose()


def test_a_new_database_and_its_wal_are_private(tmp_path: Path, umask_022: None) -> None:
    _write_something(f"sqlite:///{tmp_path / 'new.db'}")


def test_a_loose_existing_database_is_tightened_with_a_warning(
    tmp_path: Path, umask_022: None, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "old.db"
    _write_something(f"sqlite:///{db}")
    db.chmod(0o644)
    wal = db.with_name(db.name + "-wal")
    wal.write_bytes(b"")
    wal.chmod(0o666)
    with caplog.at_level(logging.WARNING, logger="smpcloud.service"):
        make_engine(f"sqlite:///{db}").dispose()
    assert _mode(db) == 0o600 and _mode(wal) == 0o600
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("old.db had mode 0o644" in w for w in warnings), warnings
    assert any("old.db-wal had mode 0o666" in w for w in warnings), warnings
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="smpcloud.service"):
        make_engine(f"sqlite:///{db}").dispose()
    assert not caplog.records  # once tightened, nothing more to say


def test_a_database_in_a_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    from smpcloud.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="cannot create the SQLite database"):
        make_engine(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}")


# ---------------------------------------------------------------- strict integers on the wire


def _request_schemas() -> list[type[BaseModel]]:
    found: list[type[BaseModel]] = []
    for value in vars(schemas).values():
        if isinstance(value, type) and issubclass(value, Schema) and value is not Schema:
            found.append(value)
    return found


def _lax_ints(node: Any, where: str = "") -> list[str]:
    """Every int (or float, bool) schema in a pydantic core schema that would coerce a string."""
    found: list[str] = []
    if isinstance(node, dict):
        if node.get("type") in ("int", "float", "bool") and not node.get("strict"):
            found.append(where or "?")
        for key, value in node.items():
            found += _lax_ints(value, f"{where}.{key}" if where else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _lax_ints(value, f"{where}[{i}]")
    return found


@pytest.mark.parametrize("model", _request_schemas(), ids=lambda m: m.__name__)
def test_no_request_schema_coerces_numbers(model: type[BaseModel]) -> None:
    assert _lax_ints(model.__pydantic_core_schema__) == []


def test_string_integers_are_refused() -> None:
    with pytest.raises(ValidationError):
        ClientsIn.model_validate({"count": "5"})
    with pytest.raises(ValidationError):
        ClientsIn.model_validate_json('{"count": "5"}')
    with pytest.raises(ValidationError):
        ClientsIn.model_validate({"count": True})
    assert ClientsIn.model_validate({"count": 5}).count == 5
    # Datetimes still arrive as RFC 3339 strings (FastAPI validates parsed JSON in Python mode).
    task = TaskIn.model_validate(
        {
            "name": "t",
            "scheme": "shamir",
            "servers": 3,
            "threshold": 2,
            "server_index": 1,
            "min_clients": 2,
            "deadline": "2099-01-01T00:00:00+00:00",
        }
    )
    assert task.deadline is not None and task.deadline.year == 2099


# ------------------------------------------------------------------------- stored free text

SHAMIR_TASK = {"scheme": "shamir", "servers": 3, "threshold": 2, "server_index": 1}


@pytest.mark.parametrize(
    "name",
    ["a\x00b", "a\nb", "\x1b[2J", "x\u202ey", "\u2067x", "x\u200e", "x\u2029y", "\ud800", " "],
)
def test_task_names_refuse_control_and_bidi_characters(name: str) -> None:
    with pytest.raises(ValidationError) as info:
        TaskIn.model_validate({"name": name, "min_clients": 2, **SHAMIR_TASK})
    message = str(info.value)
    assert "name" in message
    if name.strip():
        assert "U+" in message


@pytest.mark.parametrize("name", ["BMI", "平均", "Ärzte 2025", "نام‌خانوادگی", "👨‍👩‍👧 families"])
def test_task_names_accept_every_script(name: str) -> None:
    assert TaskIn.model_validate({"name": name, "min_clients": 2, **SHAMIR_TASK}).name == name


# -------------------------------------------------------------------------- results


def test_result_flags_out_of_range_sums_instead_of_failing() -> None:
    encoding = TaskEncoding.fixed(16, -1.0, 1.0)
    huge = (1 << 1400) + 12345
    out = ResultOut.from_sums(
        task_id="t", count=2, encoded_sums=[3 << 15, huge, -huge], holders=[1, 2], encoding=encoding
    )
    assert out.sum == [1.5, None, None] and out.average == [0.75, None, None]
    assert out.out_of_range == [1, 2] and not out.within_declared_range
    assert out.encoded_sum == [str(3 << 15), str(huge), str(-huge)]
    again = ResultOut.model_validate_json(out.model_dump_json())
    assert again == out


def test_result_bounds_are_count_times_the_range() -> None:
    encoding = TaskEncoding.integer(0, 10)
    ok = ResultOut.from_sums(
        task_id="t", count=3, encoded_sums=[0, 30], holders=[], encoding=encoding
    )
    assert ok.within_declared_range and ok.sum == [0, 30] and ok.average == [0.0, 10.0]
    bad = ResultOut.from_sums(
        task_id="t", count=3, encoded_sums=[31, -1], holders=[], encoding=encoding
    )
    assert bad.out_of_range == [0, 1] and bad.sum == [None, None]


def test_encoding_average_never_raises_a_bare_overflow() -> None:
    from smpcloud.errors import OverflowDetectedError

    encoding = TaskEncoding.fixed(8, -1.0, 1.0)
    with pytest.raises(OverflowDetectedError):
        encoding.average(1 << 1500, 1)
    with pytest.raises(OverflowDetectedError):
        encoding.decode_sum(1 << 1500)
    assert math.isclose(encoding.average(3 << 8, 2), 1.5)


# --------------------------------------------------------- what is authenticated before a body


def _scope(path: str = "/", root: str = "", **headers: str) -> dict[str, Any]:
    return {
        "type": "http",
        "path": path,
        "root_path": root,
        "headers": [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()],
    }


def test_preauthentication_reads_the_headers_like_the_routes() -> None:
    from smpcloud.service.middleware import (
        PREAUTH_BODY_BYTES,
        bearer_token,
        body_may_exceed,
        task_of_path,
    )

    assert bearer_token(_scope(authorization="Bearer abc")) == "abc"
    assert bearer_token(_scope(authorization="bearer  abc ")) == "abc"
    assert bearer_token(_scope(authorization="Basic eDp5")) is None
    assert bearer_token(_scope(authorization="Bearer ")) is None
    assert bearer_token(_scope()) is None
    assert task_of_path(_scope("/v1/tasks/abc/reports")) == "abc"
    assert task_of_path(_scope("/v1/tasks/abc")) == "abc"
    assert task_of_path(_scope("/api/v1/tasks/abc/result", root="/api")) == "abc"
    assert task_of_path(_scope("/v1/tasks")) is None
    assert task_of_path(_scope("/elsewhere/v1/tasks/abc")) is None
    assert not body_may_exceed(_scope(content_length=str(PREAUTH_BODY_BYTES)), PREAUTH_BODY_BYTES)
    assert body_may_exceed(_scope(content_length=str(PREAUTH_BODY_BYTES + 1)), PREAUTH_BODY_BYTES)
    assert body_may_exceed(_scope(content_length="12x"), PREAUTH_BODY_BYTES)
    assert body_may_exceed(_scope(transfer_encoding="chunked"), PREAUTH_BODY_BYTES)
    assert not body_may_exceed(_scope(), PREAUTH_BODY_BYTES)

"""The service's own long-term secret keys, kept in its database and shared by its processes.

A key is created the first time it is asked for (from the OS CSPRNG, by the caller's
``make``) and then read back by every process on the same database, so several stateless
server processes sign and open with one key. Two processes creating the same key at once
both end up with the one that was committed first (the primary key decides; the loser reads
the winner's).

Keys held here: ``"receipts"`` (Ed25519: signs upload receipts and the published report log,
:mod:`smpcloud.crypto.signatures`) and ``"shares"`` (X25519: clients seal their Shamir shares
to it). Whoever can read the database file can read these keys; the file is mode 0600.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from smpcloud.errors import InvalidInputError
from smpcloud.service.db import ServerKeyRow, utcnow, write_engine

#: Names a key may have (what it is for).
KEY_NAMES = frozenset({"receipts", "shares"})


def server_secret(engine: Engine, name: str, make: Callable[[], bytes]) -> bytes:
    """Return the secret stored under ``name``, creating it with ``make()`` the first time.

    Args:
        engine: the service's engine (tables created).
        name: one of :data:`KEY_NAMES`.
        make: returns a fresh secret (from the OS CSPRNG) when none is stored yet.

    Returns:
        The stored secret (the same bytes for every process on this database).

    Raises:
        InvalidInputError: an unknown key name.
    """
    if name not in KEY_NAMES:
        raise InvalidInputError(f"unknown server key {name!r}")
    with Session(engine) as session:
        row = session.get(ServerKeyRow, name)
        if row is not None:
            return row.secret
    candidate = make()
    try:
        with Session(write_engine(engine)) as session, session.begin():
            session.add(ServerKeyRow(name=name, secret=candidate, created_at=utcnow()))
    except IntegrityError:  # another process created it first: use theirs
        with Session(engine) as session:
            row = session.get(ServerKeyRow, name)
            if row is None:  # pragma: no cover - the conflicting row cannot vanish
                raise
            return row.secret
    return candidate


__all__ = ["KEY_NAMES", "server_secret"]

"""The server's half of the joint validity check of a Shamir task with ``validity="range"``.

Used by :class:`~smpcloud.service.schemes.shamir.ShamirScheme` (protocol: "Validated tasks" in
:mod:`smpcloud.protocol.sharing`; the checks: :mod:`smpcloud.crypto.shamir_validity`). Three
steps, one function each:

* :func:`checked_report`, on upload: check the digest list, open this server's sealed share,
  check its length, compute the report's 2R check values and its L value shares (what is
  stored, in the report's row: never the bits);
* :func:`checks_out`, for the administrator: this server's check values of every reporter;
* :func:`checked_total`, at close: re-check the administrator's decision (this server's own
  entries are what it stored, every participant passes, every refused reporter fails) and sum
  the participants' value shares; :func:`count_refused` counts the refused reporters under
  ``invalid-proof`` in the close's transaction.

What this server learns: its own shares (uniformly random) and, at close, every server's check
values, which are uniformly random given that a report passed (privacy against fewer than t
colluding servers). Soundness (a forged report is dropped) needs every server to follow the
protocol; a malicious server can fail an honest report or, colluding with a client, pass a
forged one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from smpcloud.crypto.field import Field, Residues
from smpcloud.crypto.sealing import OpeningKey
from smpcloud.crypto.shamir_validity import (
    PASSED,
    VERDICT_NAMES,
    ValidityLayout,
    check_values,
    value_shares,
    verdicts,
)
from smpcloud.errors import InvalidInputError, InvalidProofError
from smpcloud.protocol.checked_shares import (
    checked_blob,
    decode_check_values,
    decode_share_digests,
    encode_check_values,
    open_validated_share,
    report_seed,
    sealed_share_digest,
    split_checked_blob,
)
from smpcloud.protocol.schemas import ReportIn, ShamirChecksOut
from smpcloud.service.db import RefusedReportRow, ReportRow, ShamirClientRow

#: The slug refused reporters are counted under (the problem type of InvalidProofError).
INVALID_PROOF: Final = "invalid-proof"


def check_close_arguments(
    task_id: str, validity: str, refused: list[int] | None, checks: list[str] | None
) -> None:
    """Refuse a close without ``refused`` and ``checks`` (validity ``range``) or with them.

    Raises:
        InvalidInputError: the fields do not match the task's validity.
    """
    if validity != "range" and (refused is not None or checks is not None):
        raise InvalidInputError(
            f"task {task_id!r} has validity 'none': closing it takes the participant set "
            "alone (no refused, no checks)"
        )
    if validity == "range" and (refused is None or checks is None):
        raise InvalidInputError(
            f"task {task_id!r} has validity 'range': closing it takes the participant set, "
            "the refused reporters and every server's check values of both "
            "(smpcloud.client.ShamirAggregation.close_all does this)"
        )


def checked_report(
    key: OpeningKey,
    body: ReportIn,
    *,
    task_id: str,
    servers: int,
    server_index: int,
    number: int,
    layout: ValidityLayout,
) -> bytes:
    """A validated report's storage form: its check values, then its value shares (no bits).

    Args:
        key: this server's opening key.
        body: the report (``sealed_share`` and ``share_digests``).
        task_id: the task's id on this server.
        servers: n.
        server_index: j, this server.
        number: the reporting client's number.
        layout: the task's layout (L, U, R).

    Raises:
        InvalidProofError: no or malformed share_digests, this server's sealed share not
            hashing to entry j (check ``digest``), a plaintext of the wrong length (``length``).
        SealError, ShareError: the sealed share does not open, or is not a vector of GF(p).
        InvalidInputError: no sealed share.
    """
    if body.sealed_share is None:
        raise InvalidInputError("a Shamir report carries sealed_share")
    digests = decode_share_digests(body.share_digests, servers)
    sealed = body.sealed_share.model_dump()
    vector = open_validated_share(
        key, sealed, task_id=task_id, server_index=server_index, client=number, layout=layout
    )
    own = decode_share_digests([sealed_share_digest(sealed)], 1)[0]
    if own != digests[server_index - 1]:
        raise InvalidProofError(
            f"client {number}: the sealed share sent to server {server_index} does not hash to "
            f"entry {server_index} of its share_digests",
            check="digest",
        )
    seed = report_seed(number, digests)
    return checked_blob(check_values(vector, seed, layout), value_shares(vector, layout))


def checks_out(
    session: Session, *, task_id: str, server_index: int, layout: ValidityLayout
) -> ShamirChecksOut:
    """This server's check values of every reporter, in increasing client number.

    Reads only the first 4 x 2R bytes of each stored report (the check values come first).
    """
    width = layout.checks
    rows = session.execute(
        select(ShamirClientRow.number, func.substr(ReportRow.ciphertexts, 1, 4 * width))
        .join(ReportRow, ReportRow.client_id == ShamirClientRow.client_id)
        .where(ReportRow.task_id == task_id)
        .order_by(ShamirClientRow.number)
    ).all()
    raw = b"".join(bytes(prefix) for _, prefix in rows)
    values = np.frombuffer(raw, dtype="<u4").astype(np.uint64).reshape(len(rows), width)
    return ShamirChecksOut(
        task_id=task_id,
        server_index=server_index,
        repetitions=layout.repetitions,
        clients=[number for number, _ in rows],
        values=encode_check_values(values),
    )


def checked_total(
    rows: Iterable[Any],
    *,
    field: Field,
    servers: int,
    threshold: int,
    server_index: int,
    layout: ValidityLayout,
    clients: list[int],
    refused: list[int],
    checks: list[str],
) -> Residues:
    """Re-check the administrator's verdicts against the stored check values; sum the
    participants' value shares.

    Args:
        rows: (client number, stored report) of every report of the task.
        field: GF(p).
        servers: n.
        threshold: t.
        server_index: j, this server.
        layout: the task's layout.
        clients: the participant set (every client held here).
        refused: the reporters the administrator refuses (held here, not participants).
        checks: per server, its check values of ``clients`` then ``refused``.

    Raises:
        InvalidInputError: overlapping or repeated sets, not one entry per server, or
            malformed check values.
        InvalidProofError: this server's entries differ from what it stored (check
            ``exchange``), a participant fails the joint check (check ``bit`` or ``degree``), or
            a refused reporter passes it (check ``verdict``); the client is named.
    """
    if len(set(refused)) != len(refused) or set(refused) & set(clients):
        raise InvalidInputError(
            "the refused reporters must be distinct and not in the participant set"
        )
    if len(checks) != servers:
        raise InvalidInputError(
            f"checks: one entry per server, {servers} in all; got {len(checks)}"
        )
    width = layout.checks
    order = clients + refused
    given = np.stack(
        [
            decode_check_values(text, rows=len(order), width=width, what=f"checks[{j}]")
            for j, text in enumerate(checks)
        ]
    )
    position = {number: i for i, number in enumerate(order)}
    mine = given[server_index - 1]
    members = set(clients)
    values: list[Residues] = []
    for number, blob in rows:
        if number not in position:
            continue
        stored, shares = split_checked_blob(blob, length=layout.length, checks=width)
        if not np.array_equal(stored, mine[position[number]]):
            raise InvalidProofError(
                f"client {number}: the check values given for server {server_index} are not the "
                "ones it computed: nothing closed",
                check="exchange",
            )
        if number in members:
            values.append(shares)
    outcome = verdicts(given, threshold=threshold)
    for i, number in enumerate(order):
        code = int(outcome[i])
        if number in members and code != PASSED:
            raise InvalidProofError(
                f"client {number} fails the joint check ({VERDICT_NAMES[code]}): it cannot be a "
                "participant; nothing closed",
                check=VERDICT_NAMES[code],
            )
        if number not in members and code == PASSED:
            raise InvalidProofError(
                f"client {number} passes the joint check: it cannot be refused; nothing closed",
                check="verdict",
            )
    return field.sum(values)


def count_refused(session: Session, task_id: str, count: int) -> None:
    """Count ``count`` reporters dropped at close under ``invalid-proof``, in the close's
    transaction (so that a retried close, a no-op, does not count them twice)."""
    if not count:
        return
    row = session.get(RefusedReportRow, (task_id, INVALID_PROOF), with_for_update=True)
    if row is None:
        session.add(RefusedReportRow(task_id=task_id, reason=INVALID_PROOF, count=count))
    else:
        row.count += count


__all__ = [
    "INVALID_PROOF",
    "check_close_arguments",
    "checked_report",
    "checked_total",
    "checks_out",
    "count_refused",
]

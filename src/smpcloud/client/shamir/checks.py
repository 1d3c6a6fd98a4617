"""The administrator's half of the joint validity check of a Shamir task (``validity="range"``).

:func:`decide` reads every server's check values (``GET /v1/tasks/{id}/checks``, all n are
needed) and decides each reporter held by every server: it passes, or it fails the bit check
(a value outside the declared range) or the degree check (shares off one polynomial);
:func:`close_body` builds the close request that hands every server the participants, the
refused reporters and all n servers' check values of both, which each server re-checks before
closing (:mod:`smpcloud.service.schemes.shamir_checks`). What the administrator learns: who
passed; the check values are uniformly random given that a report passed
(:mod:`smpcloud.crypto.shamir_validity`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from smpcloud.crypto.shamir_validity import PASSED, VERDICT_NAMES, verdicts
from smpcloud.errors import InvalidInputError, VerificationError
from smpcloud.protocol.checked_shares import (
    decode_check_values,
    encode_check_values,
)
from smpcloud.protocol.schemas import CloseIn, ShamirChecksOut


@dataclass(frozen=True, slots=True)
class Decision:
    """The verdict over every reporter held by all n servers.

    Attributes:
        passed: the reporters that pass, in increasing order.
        refused: the others, with the check they fail (``"bit"`` or ``"degree"``).
        tables: per server j, its check values by client number.
    """

    passed: list[int]
    refused: dict[int, str]
    tables: Mapping[int, Mapping[int, npt.NDArray[np.uint64]]] = field(repr=False)


def decide(
    answers: Mapping[int, ShamirChecksOut], *, servers: int, threshold: int, width: int
) -> Decision:
    """Decide every reporter that all n servers hold from their check values.

    Args:
        answers: server j's ``/checks`` answer, for every j = 1..n.
        servers: n.
        threshold: t.
        width: 2R, the check values per report.

    Raises:
        VerificationError: a missing server, or an answer that is not well formed (another
            index or repetition count, a client listed twice, bad values).
    """
    if sorted(answers) != list(range(1, servers + 1)):
        raise VerificationError(f"every server's check values are needed; got {sorted(answers)}")
    tables: dict[int, dict[int, npt.NDArray[np.uint64]]] = {}
    for j, out in sorted(answers.items()):
        if out.server_index != j or out.repetitions * 2 != width:
            raise VerificationError(
                f"server {j} answered its check values as server {out.server_index} with "
                f"{out.repetitions} repetitions"
            )
        if len(set(out.clients)) != len(out.clients):
            raise VerificationError(f"server {j} lists a client's check values twice")
        try:
            values = decode_check_values(
                out.values, rows=len(out.clients), width=width, what=f"server {j}'s checks"
            )
        except InvalidInputError as exc:
            raise VerificationError(str(exc)) from None
        tables[j] = dict(zip(out.clients, values, strict=True))
    held = sorted(set.intersection(*(set(table) for table in tables.values())))
    if not held:
        return Decision([], {}, tables)
    block = np.stack([[tables[j][c] for c in held] for j in range(1, servers + 1)])
    outcome = [int(v) for v in verdicts(block, threshold=threshold)]
    passed = [c for c, v in zip(held, outcome, strict=True) if v == PASSED]
    refused = {c: VERDICT_NAMES[v] for c, v in zip(held, outcome, strict=True) if v != PASSED}
    return Decision(passed, refused, tables)


def close_body(
    decision: Decision, participants: Sequence[int], *, min_clients: int, width: int
) -> tuple[dict[str, object], dict[int, str]]:
    """The close request (participants, refused reporters, every server's check values of
    both) and the refused reporters with the check each fails.

    Args:
        decision: from :func:`decide`.
        participants: the participant set (``decision.passed``, or the set servers already
            closed over).
        min_clients: the task's smallest participant set.
        width: 2R.

    Raises:
        InvalidInputError: fewer than ``min_clients`` participants (nothing is closed).
    """
    if len(participants) < min_clients:
        raise InvalidInputError(
            f"only {len(participants)} client(s) have a share on every server that passed the "
            f"joint check, fewer than min_clients={min_clients} ({len(decision.refused)} "
            "refused): nothing was closed"
        )
    members = set(participants)
    refused = {c: why for c, why in sorted(decision.refused.items()) if c not in members}
    order = [*participants, *refused]
    checks = [
        encode_check_values(
            np.array([table[c] for c in order], dtype=np.uint64).reshape(len(order), width)
        )
        for _, table in sorted(decision.tables.items())
    ]
    body = CloseIn(clients=list(participants), refused=list(refused), checks=checks)
    return body.model_dump(), refused


__all__ = ["Decision", "close_body", "decide"]

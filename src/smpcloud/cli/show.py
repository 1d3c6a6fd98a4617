"""Human-readable output of the aggregation commands: a task's status, the task list, results.

Plain aligned text (no colours, no JSON nulls), so that it reads well in a terminal and in a
log, and greps well. Every command that prints one of these also has ``--json`` for the exact
JSON of the server's response (:func:`wire_json`).
"""

from __future__ import annotations

import dataclasses
import math
from datetime import datetime
from typing import Final

from smpcloud.client import TaskList, TaskResult, TaskStatus
from smpcloud.protocol.schemas import ResultOut, TaskListOut, TaskStatusOut

#: Values of a vector result shown unless --all.
VECTOR_PREVIEW: Final = 10

_WireModel = type[TaskStatusOut] | type[TaskListOut] | type[ResultOut]


def wire_json(model: _WireModel, value: TaskStatus | TaskList | TaskResult) -> str:
    """The JSON the server sent for ``value`` (the SDK's dataclass), byte for byte in content:
    the same schema serialises it again (times as RFC 3339, exactly as on the wire)."""
    data = dataclasses.asdict(value)
    if isinstance(value, TaskResult):
        # The SDK reads an out-of-range element as NaN and the exact sums as ints; the wire
        # has null and decimal strings.
        data["sum"] = [None if _missing(v) else v for v in value.sum]
        data["average"] = [None if _missing(v) else v for v in value.average]
        data["encoded_sum"] = [str(v) for v in value.encoded_sum]
    return model.model_validate(data).model_dump_json()


def _missing(value: float) -> bool:
    return isinstance(value, float) and math.isnan(value)


def when(moment: datetime | None) -> str:
    """A UTC time to the second, or ``none``."""
    if moment is None:
        return "none"
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def number(value: float) -> str:
    """A sum or an average: ints as they are, floats with up to 12 significant digits.

    NaN is how the SDK reads an element the server reports out of range: ``out of range``.
    """
    if _missing(value):
        return "out of range"
    if isinstance(value, int):
        return str(value)
    return format(value, ".12g")


def state_line(status: TaskStatus) -> str:
    """What the task's state means for the person who asked, in one line."""
    received = f"{status.reports} of {status.min_clients} required reports"
    if status.state == "open":
        if status.scheme == "shamir":
            return "open: accepting shares until the administrator closes it"
        return f"open: accepting reports ({received} so far)"
    if status.state == "closed":
        if status.scheme == "shamir":
            return "closed: this server's share of the sum is published"
        return (
            f"closed with {received}: waiting for key holders to decrypt "
            f"({status.partials_received} of {status.threshold} so far)"
        )
    if status.state == "decrypted":
        return "decrypted: the result is published (smpcloud result shows it)"
    if status.state == "insufficient":
        return f"insufficient: closed with {received}; it will never release a result"
    return (
        "withheld: the decrypted sums left the declared bounds (a client forged its report); "
        "nothing will ever be released"
    )


def certified_line(status: TaskStatus) -> str:
    """Which key holders certified a Paillier task (as the server says it checked)."""
    needed = f"{len(status.certified_by)} of {status.threshold} needed"
    if not status.certified_by:
        return f"by no key holder yet ({needed}): key holders run smpcloud certify"
    holders = ", ".join(str(i) for i in status.certified_by)
    return f"by holders {holders} ({needed})"


def refused_line(refused: dict[str, int]) -> str:
    """Uploads the server refused, by reason (``invalid-proof``: a failed validity proof)."""
    if not refused:
        return "none"
    return ", ".join(f"{count} {reason}" for reason, count in sorted(refused.items()))


def status_lines(status: TaskStatus) -> list[str]:
    """``smpcloud task status`` without --json."""
    rows = [
        ("task", f"{status.task_id} ({status.scheme})"),
        ("state", state_line(status)),
        (
            "reports",
            f"{status.reports} of {status.min_clients} required "
            f"({status.registered_clients} clients registered, at most {status.max_clients:,})",
        ),
        ("refused", refused_line(status.refused)),
    ]
    if status.scheme == "shamir":
        rows.append(
            (
                "servers",
                f"this is server {status.server_index} of {status.servers}; "
                f"{status.threshold} servers' shares rebuild the sum",
            )
        )
    else:
        rows.append(
            (
                "decryption",
                f"{status.partials_received} partial decryptions received; "
                f"{status.threshold} of {status.holders} key holders needed",
            )
        )
        rows.append(("certified", certified_line(status)))
    rows.append(("deadline", when(status.deadline)))
    rows.append(("created", when(status.created_at)))
    if status.closed_at is not None:
        by = {"admin": "by the administrator", "deadline": "at its deadline"}
        reason = by.get(status.close_reason or "", "")
        rows.append(("closed", f"{when(status.closed_at)} {reason}".rstrip()))
    if status.reported is not None:
        rows.append(("your report", "received" if status.reported else "not received"))
    width = max(len(label) for label, _ in rows) + 2
    return [f"{label.ljust(width)}{text}" for label, text in rows]


def task_list_lines(page: TaskList) -> list[str]:
    """``smpcloud task list`` without --json: a table, newest first."""
    if not page.tasks:
        return ["no tasks on this server yet (smpcloud task create makes one)"]
    header = ("id", "name", "scheme", "state", "reports/min", "created")
    rows = [
        (
            t.task_id,
            t.name if len(t.name) <= 30 else t.name[:29] + "…",
            t.scheme,
            t.state,
            f"{t.reports}/{t.min_clients}",
            t.created_at.strftime("%Y-%m-%d %H:%M UTC"),
        )
        for t in page.tasks
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in [header, *rows]]  # fmt: skip
    if page.total > len(page.tasks):
        lines.append(
            f"showing the newest {len(page.tasks)} of {page.total} tasks "
            f"(--limit N shows up to 1000)"
        )
    return lines


def result_lines(res: TaskResult, *, show_all: bool) -> list[str]:
    """``smpcloud result`` without --json: count, then the sum and average (per value)."""
    holders = ", ".join(str(h) for h in res.holders)
    lines: list[str] = []
    if len(res.sum) == 1:
        lines += [
            f"count    {res.count} reports",
            f"sum      {number(res.sum[0])}",
            f"average  {number(res.average[0])}",
            f"holders  {holders} (the key holders who decrypted)",
        ]
    else:
        lines.append(
            f"count    {res.count} reports of {len(res.sum)} values each "
            f"(decrypted by key holders {holders})"
        )
        shown = len(res.sum) if show_all else min(VECTOR_PREVIEW, len(res.sum))
        cells = [("index", "sum", "average")] + [
            (str(i), number(res.sum[i]), number(res.average[i])) for i in range(shown)
        ]
        widths = [max(len(row[c]) for row in cells) for c in range(3)]
        for row in cells:
            lines.append(
                f"{row[0].ljust(widths[0])}  {row[1].rjust(widths[1])}  {row[2].rjust(widths[2])}"
            )
        if shown < len(res.sum):
            lines.append(
                f"... {len(res.sum) - shown} more (--all shows every value, --json prints them "
                "as JSON)"
            )
    for index in res.out_of_range[: len(res.sum) if show_all else VECTOR_PREVIEW]:
        exact = res.encoded_sum[index] if index < len(res.encoded_sum) else None
        lines.append(
            f"out of range: value {index} (a client sent a value outside the declared range"
            + (f"; exact encoded sum {exact})" if exact is not None else ")")
        )
    if not res.within_declared_range:
        lines.append(
            "warning: some sum lies outside count x the declared range: at least one client "
            "submitted a value outside it"
        )
    return lines


__all__ = [
    "VECTOR_PREVIEW",
    "number",
    "result_lines",
    "state_line",
    "status_lines",
    "task_list_lines",
    "when",
    "wire_json",
]

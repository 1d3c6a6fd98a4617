"""smpcloud result's output for a result the server reports out of range (a forged report)."""

from __future__ import annotations

import json

from smpcloud.cli.show import result_lines, wire_json
from smpcloud.client.models import TaskResult
from smpcloud.protocol.schemas import ResultOut

FORGED = TaskResult(
    task_id="t",
    count=3,
    sum=[float("nan"), 2.5],
    average=[float("nan"), 2.5 / 3],
    holders=[1, 2, 3],
    within_declared_range=False,
    out_of_range=[0],
    encoded_sum=[10**200, 163840],
)


def test_out_of_range_values_are_named_not_printed_as_nan() -> None:
    text = "\n".join(result_lines(FORGED, show_all=False))
    assert "nan" not in text.lower()
    assert "out of range" in text
    assert f"exact encoded sum {10**200}" in text


def test_json_of_an_out_of_range_result_is_valid_json_with_nulls() -> None:
    wire = wire_json(ResultOut, FORGED)
    assert "NaN" not in wire
    data = json.loads(wire)
    assert data["sum"] == [None, 2.5]
    assert data["average"][0] is None
    assert data["encoded_sum"] == [str(10**200), "163840"]
    assert data["out_of_range"] == [0]


def test_status_counts_refused_reports_by_reason() -> None:
    from datetime import UTC, datetime

    from smpcloud.cli.show import refused_line, status_lines
    from smpcloud.client.models import TaskStatus

    assert refused_line({}) == "none"
    assert (
        refused_line({"key-mismatch": 1, "invalid-proof": 3}) == "3 invalid-proof, 1 key-mismatch"
    )
    status = TaskStatus(
        task_id="t",
        state="open",
        reports=4,
        registered_clients=9,
        min_clients=3,
        max_clients=9,
        partials_received=0,
        threshold=2,
        holders=3,
        deadline=None,
        created_at=datetime(2026, 12, 3, tzinfo=UTC),
        closed_at=None,
        close_reason=None,
        refused={"invalid-proof": 2},
    )
    lines = status_lines(status)
    assert any(line.startswith("refused") and line.endswith("2 invalid-proof") for line in lines)

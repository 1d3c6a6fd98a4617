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

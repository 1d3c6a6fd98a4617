"""Private lookup with 1-out-of-N OT: the app helper over a transport, and the example script."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from smpcloud.apps.private_lookup import (
    MAX_LOOKUPS,
    decode_row,
    encode_rows,
    private_lookup,
    serve_lookup,
)
from smpcloud.errors import InvalidInputError, ProtocolError
from smpcloud.mpc import codec
from smpcloud.mpc.memory import MemoryNetwork

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "private_lookup.py"


def lookup(table: np.ndarray, indices: list[int]) -> tuple[int, list[Any]]:
    async def main() -> tuple[int, list[Any]]:
        server, client = MemoryNetwork(2).transports()
        fetched, rows = await asyncio.gather(
            serve_lookup(server, 2, table), private_lookup(client, 1, indices)
        )
        return fetched, rows

    return asyncio.run(main())


def test_rows_round_trip_through_the_table_encoding() -> None:
    rows = ["", "a", "naïve", b"\x00\xff raw bytes"]
    table = encode_rows(rows, width=40)
    assert table.shape == (4, 40)
    assert [decode_row(r) for r in table] == [r.encode() if isinstance(r, str) else r for r in rows]
    with pytest.raises(InvalidInputError):
        encode_rows(["only one"])
    with pytest.raises(InvalidInputError):
        encode_rows(["short", "a much longer row"], width=8)
    with pytest.raises(InvalidInputError):
        decode_row(np.frombuffer(b"\xff\x00\x00\x00ab", dtype=np.uint8))


def test_the_client_gets_exactly_the_rows_it_asked_for() -> None:
    records = [f"record {i}: " + "x" * (i % 13) for i in range(300)]
    indices = [0, 299, 17, 17, 150]
    fetched, rows = lookup(encode_rows(records), indices)
    assert fetched == len(indices)  # all the server learns
    assert [decode_row(r).decode() for r in rows] == [records[i] for i in indices]


def test_bad_requests_are_refused() -> None:
    table = encode_rows(["a", "b", "c"])
    with pytest.raises(InvalidInputError, match=r"0\.\.2"):
        asyncio.run(_client_only(lambda client: private_lookup(client, 1, [3]), table))
    with pytest.raises(InvalidInputError):
        asyncio.run(
            _client_only(lambda client: private_lookup(client, 1, [0] * (MAX_LOOKUPS + 1)), table)
        )

    async def greedy() -> None:
        server, client = MemoryNetwork(2).transports()
        await client.send(1, ("lookup", 0), codec.encode_ints([MAX_LOOKUPS + 1]))
        await serve_lookup(server, 2, table)

    with pytest.raises(ProtocolError, match="too many"):
        asyncio.run(greedy())


async def _client_only(job: Any, table: np.ndarray) -> Any:
    server, client = MemoryNetwork(2, timeout=2.0).transports()
    serving = asyncio.ensure_future(serve_lookup(server, 2, table, timeout=2.0))
    try:
        return await job(client)
    finally:
        serving.cancel()
        await asyncio.gather(serving, return_exceptions=True)


def test_the_example_runs_over_tls_and_prints_what_each_side_learns() -> None:
    out = subprocess.run(
        [sys.executable, str(EXAMPLE), "--row", "7", "--rows", "50"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "server learned: the client fetched 1 row(s); which one: nothing" in out.stdout
    assert "client asked for row 7 and learned: drug-00007" in out.stdout
    assert "correct: True" in out.stdout

"""Private lookup: a client reads one row of a server's table; the server never learns which.

A clinic (the client) wants the reference record of one drug from a pharmacology server's
catalogue without telling the server which drug its patient takes. With 1-out-of-N oblivious
transfer (smpcloud.apps.private_lookup, Naor-Pinkas over Chou-Orlandi base OTs on Ed25519) the
server sends the whole catalogue, every row encrypted under its own key, and the client can
derive exactly one of those keys: the one of the row it chose.

Both sides run here in one process but talk over a real mutually authenticated TLS 1.3
connection on 127.0.0.1 (a two-party deployment without a dealer, certificates in a temporary
directory), exactly as they would across the Internet.

Run: .venv/bin/python examples/private_lookup.py [--row 42] [--rows 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from smpcloud.apps.private_lookup import decode_row, encode_rows, private_lookup, serve_lookup
from smpcloud.mpc.certs import create_deployment
from smpcloud.mpc.config import load_deployment, render_deployment
from smpcloud.mpc.node import connect
from smpcloud.ports import free_port_range

SERVER, CLIENT = 1, 2


def catalogue(rows: int) -> list[str]:
    """A made-up drug catalogue: one record per row, of different lengths."""
    classes = ["statin", "beta blocker", "ACE inhibitor", "SSRI", "anticoagulant", "biguanide"]
    return [
        f"drug-{i:05d} | class: {classes[i % len(classes)]} | max dose {10 + (i * 37) % 490} mg"
        f"{' | interacts with grapefruit' if i % 7 == 0 else ''}"
        for i in range(rows)
    ]


async def main(row: int, rows: int) -> None:
    records = catalogue(rows)
    table = encode_rows(records)
    with tempfile.TemporaryDirectory() as tmp:
        create_deployment(tmp, parties=2, dealer=False)
        config_path = Path(tmp) / "parties.toml"
        config_path.write_text(
            render_deployment(parties=2, threshold=1, base_port=free_port_range(3), dealer=False)
        )
        config = load_deployment(config_path)
        server, client = await asyncio.gather(connect(config, SERVER), connect(config, CLIENT))
        try:
            fetched, (answer,) = await asyncio.gather(
                serve_lookup(server, CLIENT, table), private_lookup(client, SERVER, [row])
            )
        finally:
            await asyncio.gather(server.close(), client.close())

    got = decode_row(answer)
    print(f"server: holds {len(records)} rows of {table.shape[1]} bytes (length-prefixed, padded)")
    print(f"server learned: the client fetched {fetched} row(s); which one: nothing")
    print(f"client asked for row {row} and learned: {got.decode()}")
    print(
        f"client learned besides: the table's shape ({table.shape[0]} x {table.shape[1]} bytes); "
        f"the other {len(records) - 1} rows stayed encrypted under keys it cannot derive"
    )
    print(f"correct: {got.decode() == records[row]}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--row", type=int, default=42)
    parser.add_argument("--rows", type=int, default=1000)
    args = parser.parse_args()
    if not 0 <= args.row < args.rows:
        raise SystemExit(f"--row must be in 0..{args.rows - 1}")
    asyncio.run(main(args.row, args.rows))

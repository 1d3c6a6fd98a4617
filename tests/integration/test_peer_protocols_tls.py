"""Every statistics protocol and fixed-point multiplication over the TLS mesh, one process per
party plus the dealer, compared with the same computation in numpy."""

from __future__ import annotations

import asyncio
import multiprocessing
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from smpcloud.mpc.certs import create_deployment
from smpcloud.mpc.config import load_deployment, render_deployment
from smpcloud.mpc.node import run_dealer_node, run_party
from smpcloud.mpc.protocols import statistics
from smpcloud.mpc.runtime import Party
from smpcloud.ports import free_port_range

DATA = {
    1: ([1.5, -2.25, 10.0, 3.0], [1.0, 2.0, 0.5, 1.0]),
    2: ([4.0, 0.125], [3.0, 1.0]),
    3: ([0.5, 7.75, -1.0], [0.25, 2.0, 1.0]),
}


async def program(party: Party) -> dict[str, Any]:
    values, weights = DATA[party.id]
    out: dict[str, Any] = {}
    out["sum"] = (await statistics.secure_sum(party, [sum(values)], frac_bits=16))[0]
    out["mean"] = await statistics.mean(party, values)
    out["sum_of_squares"] = await statistics.sum_of_squares(party, values)
    out["dot"] = await statistics.dot_product(party, values, weights)
    out["variance"] = await statistics.variance(party, values)
    out["std"] = await statistics.standard_deviation(party, values, sample=True)
    out["weighted_mean"] = await statistics.weighted_mean(party, values, weights)
    x = await party.input([1.5, -2.0, 0.3] if party.id == 1 else None, owner=1, frac_bits=16)
    y = await party.input([2.0, 0.25, -3.5] if party.id == 3 else None, owner=3, frac_bits=16)
    out["products"] = [float(v) for v in await party.open(await party.mul(x, y))]
    return out


def run_one(config: str, pid: int, queue: Any) -> None:
    deployment = load_deployment(config)
    if pid == 0:
        asyncio.run(run_dealer_node(deployment))
    else:
        queue.put((pid, asyncio.run(run_party(deployment, pid, program))))


def test_all_protocols_over_tls_in_separate_processes(tmp_path: Path) -> None:
    create_deployment(tmp_path, parties=3, dealer=True)
    base = free_port_range(4)
    config = tmp_path / "parties.toml"
    config.write_text(render_deployment(parties=3, threshold=2, base_port=base))
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=run_one, args=(str(config), pid, queue)) for pid in range(4)]
    for p in procs:
        p.start()
    try:
        results = dict(queue.get(timeout=120) for _ in range(3))
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
    assert all(p.exitcode == 0 for p in procs)
    x = np.concatenate([np.array(v) for v, _ in DATA.values()])
    w = np.concatenate([np.array(w) for _, w in DATA.values()])
    expected = {
        "sum": x.sum(),
        "mean": x.mean(),
        "sum_of_squares": (x**2).sum(),
        "dot": x @ w,
        "variance": x.var(),
        "std": x.std(ddof=1),
        "weighted_mean": (x @ w) / w.sum(),
    }
    for pid, got in results.items():
        for name, want in expected.items():
            assert float(got[name]) == pytest.approx(want, abs=1e-3), (pid, name)
        assert got["products"] == pytest.approx([3.0, -0.5, -1.05], abs=2**-14)

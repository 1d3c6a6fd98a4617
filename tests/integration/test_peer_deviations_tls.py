"""A party process that tries to steer the dealer, over the TLS mesh (issue 14, finding 4).

Four processes: the dealer, two honest parties and party 1, which runs the same program but
asks the dealer for truncation masks of f + 1 bits instead of the field's size and records
the truncation round it takes part in. Had the dealer followed it, c = z + 2^127 + r with
r < 2^17 would give it the secret product z; the dealer must refuse it, naming it, and the
honest parties must finish correctly or fail naming it — never with the product exposed.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from pathlib import Path
from typing import Any

import pytest

from smpcloud.mpc import codec
from smpcloud.mpc.certs import create_deployment
from smpcloud.mpc.config import load_deployment, render_deployment
from smpcloud.mpc.node import connect, run_dealer_node, run_party
from smpcloud.mpc.runtime import MPC_FIELD, Party, interpolate
from smpcloud.mpc.transport import Payload, Tag, Transport
from smpcloud.mpc.triples import DealerTriples
from smpcloud.ports import free_port_range

F = MPC_FIELD
X = [-2.5313, 1.5]  # party 2's secret values
Y = [3.3737, 2.0]  # party 3's secret values
TRUNCATION: Tag = ("smpc", 4)  # input, input, Beaver opening, truncation opening


async def program(party: Party) -> float:
    x = await party.input(X if party.id == 2 else None, owner=2, frac_bits=16)
    y = await party.input(Y if party.id == 3 else None, owner=3, frac_bits=16)
    if party.id != 1:
        await asyncio.sleep(1.0)  # let the cheater's dealer requests arrive first
    z = await party.mul(x, y)  # secret products: only their sum is output
    return float((await party.open(z.take([0]) + z.take([1])))[0])


class Spy:
    """Party 1's own transport, keeping what it sends and receives in the truncation round."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.party = inner.party
        self.peers = inner.peers
        self.seen: dict[int, bytes] = {}

    async def send(self, to: int, tag: Tag, payload: Payload) -> None:
        if tag == TRUNCATION:
            self.seen[self.party] = bytes(payload)
        await self.inner.send(to, tag, payload)

    async def recv(self, frm: int, tag: Tag, *, timeout: float | None = None) -> bytes:
        data = await self.inner.recv(frm, tag, timeout=timeout)
        if tag == TRUNCATION:
            self.seen[frm] = data
        return data

    async def close(self) -> None:
        await self.inner.close()


class ShortMasks(DealerTriples):
    async def truncation_pairs(
        self, count: int, *, frac_bits: int, mask_bits: int
    ) -> tuple[Any, Any]:
        return await super().truncation_pairs(count, frac_bits=frac_bits, mask_bits=frac_bits + 1)


async def cheat(config: str) -> tuple[str, Any]:
    deployment = load_deployment(config)
    transport = await connect(deployment, 1)
    spy = Spy(transport)
    party = Party(
        spy,
        n=3,
        t=2,
        triples=ShortMasks(spy, field=F, timeout=deployment.timeout),
        timeout=deployment.timeout,
    )
    try:
        await program(party)
        await party.input_all([0], bits=2)  # the old closing round of run_party (before the fix)
    except Exception as exc:
        outcome: tuple[str, Any] = ("error", f"{type(exc).__name__}: {exc}")
    else:
        outcome = ("finished", None)
    finally:
        await party.close()
        await asyncio.sleep(0.5)  # let the cheater's last shares reach its peers
        await transport.close()
    if len(spy.seen) >= 2:  # it took part in the truncation round: what it can compute
        xs = sorted(spy.seen)[:2]
        blocks = [codec.decode_vectors(spy.seen[x], F, count=1)[0] for x in xs]
        c = F.to_ints(interpolate(F, xs, blocks), signed=False)
        return "leaked", [(int(v) - (1 << 127)) / 2**32 for v in c]
    return outcome


def run_one(config: str, pid: int, queue: Any) -> None:
    deployment = load_deployment(config)
    if pid == 0:
        stats = asyncio.run(run_dealer_node(deployment))
        queue.put((0, ("dealer", stats.refusals)))
    elif pid == 1:
        queue.put((1, asyncio.run(cheat(config))))
    else:
        try:
            queue.put((pid, ("finished", asyncio.run(run_party(deployment, pid, program)))))
        except Exception as exc:
            queue.put((pid, ("error", f"{type(exc).__name__}: {exc}")))


def test_a_party_process_asking_for_short_masks_is_refused_and_learns_nothing(
    tmp_path: Path,
) -> None:
    create_deployment(tmp_path, parties=3, dealer=True)
    config = tmp_path / "parties.toml"
    text = render_deployment(parties=3, threshold=2, base_port=free_port_range(4))
    config.write_text(text.replace("timeout = 30.0", "timeout = 10.0"))
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=run_one, args=(str(config), pid, queue)) for pid in range(4)]
    for p in procs:
        p.start()
    try:
        results = dict(queue.get(timeout=120) for _ in range(4))
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
    kind, detail = results[1]
    assert kind != "leaked", f"party 1 read the secret products {detail} (secret {X[0] * Y[0]})"
    assert kind == "error" and "party 1" in detail and "mask_bits=17" in detail, detail
    dealer_kind, refusals = results[0]
    assert dealer_kind == "dealer" and any("party 1" in r for r in refusals)
    want = X[0] * Y[0] + X[1] * Y[1]
    for pid in (2, 3):
        kind, value = results[pid]
        if kind == "finished":
            assert value == pytest.approx(want, abs=2**-14)
        else:
            assert "party 1" in value, value

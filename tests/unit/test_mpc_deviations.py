"""Deviating parties on the in-memory network: a party that steers the dealer (issue 14,
finding 4) and a party that sends an inconsistent share in an opening (finding 5).

Each attack is played by a real :class:`Party` whose transport or triple source is altered
the way a cheating party would alter its own code; the honest parties run unchanged.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from smpcloud.errors import InvalidInputError, ProtocolError
from smpcloud.mpc import codec
from smpcloud.mpc.codec import Request, RequestOp
from smpcloud.mpc.dealer import run_dealer
from smpcloud.mpc.memory import MemoryNetwork, MemoryTransport
from smpcloud.mpc.runtime import MPC_FIELD, Party, interpolate, mask_bits
from smpcloud.mpc.session import SessionParameters
from smpcloud.mpc.transport import Payload, Tag
from smpcloud.mpc.triples import DealerTriples, dealer_session

F = MPC_FIELD
FRAC = 16
X = [-2.5313, 1.5]  # party 2's secret values
Y = [3.3737, 2.0]  # party 3's secret values
SECRET = X[0] * Y[0]  # -8.5397...: party 1 must never learn it


class Spy:
    """A party's own transport, recording what it sends and receives (by tag)."""

    def __init__(self, inner: MemoryTransport) -> None:
        self.inner = inner
        self.party = inner.party
        self.peers = inner.peers
        self.sent: dict[Tag, bytes] = {}
        self.received: dict[tuple[int, Tag], bytes] = {}

    async def send(self, to: int, tag: Tag, payload: Payload) -> None:
        self.sent[tag] = bytes(payload)
        await self.inner.send(to, tag, payload)

    async def recv(self, frm: int, tag: Tag, *, timeout: float | None = None) -> bytes:
        data = await self.inner.recv(frm, tag, timeout=timeout)
        self.received[(frm, tag)] = data
        return data

    async def close(self) -> None:
        await self.inner.close()


class ShortMasks(DealerTriples):
    """A dealer client that asks for truncation masks of f + 1 bits instead of the field's."""

    async def truncation_pairs(
        self, count: int, *, frac_bits: int, mask_bits: int
    ) -> tuple[Any, Any]:
        return await super().truncation_pairs(count, frac_bits=frac_bits, mask_bits=frac_bits + 1)


async def product_program(party: Party, *, honest: bool) -> float:
    x = await party.input(X if party.id == 2 else None, owner=2, frac_bits=FRAC)
    y = await party.input(Y if party.id == 3 else None, owner=3, frac_bits=FRAC)
    if honest:
        await asyncio.sleep(0.2)  # the cheater's dealer requests arrive first
    z = await party.mul(x, y)  # secret products, truncated (one opening of masked values)
    total = z.take([0]) + z.take([1])
    return float((await party.open(total))[0])  # the output: only the sum of the products


def recover_products(spy: Spy, tag: Tag) -> list[float]:
    """What party 1 can compute from the truncation round it took part in.

    It opened c = z + 2^(ell-1) + r, with ell public (two 64-bit inputs: 128) and, had the
    dealer followed its request, r < 2^(f+1): so z = c - 2^127 up to 2^(f+1), i.e. 2^-15.
    """
    mine = codec.decode_vectors(spy.sent[tag], F, count=1)[0]
    peer = next(j for (j, t) in spy.received if t == tag)
    theirs = codec.decode_vectors(spy.received[(peer, tag)], F, count=1)[0]
    c = F.to_ints(interpolate(F, [1, peer], [mine, theirs]), signed=False)
    return [(int(v) - (1 << 127)) / 2 ** (2 * FRAC) for v in c]


def test_a_party_asking_for_short_truncation_masks_is_refused_and_learns_no_product() -> None:
    async def main() -> tuple[list[Any], Spy, Any]:
        network = MemoryNetwork(3, dealer=True, timeout=2.0)
        params = SessionParameters(n=3, t=2)
        dealer = asyncio.ensure_future(run_dealer(network.dealer(), parameters=params))
        t1, t2, t3 = network.transports()
        spy = Spy(t1)
        cheat = Party(spy, n=3, t=2, triples=ShortMasks(spy, field=F, timeout=2.0), timeout=2.0)
        honest = [
            Party(t, n=3, t=2, triples=DealerTriples(t, field=F), timeout=2.0) for t in (t2, t3)
        ]

        async def one(party: Party, good: bool) -> float:
            try:
                return await product_program(party, honest=good)
            finally:
                await party.close()

        results = await asyncio.gather(
            one(cheat, False), *(one(p, True) for p in honest), return_exceptions=True
        )
        for t in (t1, t2, t3):
            await t.close()
        return list(results), spy, await asyncio.wait_for(dealer, 5.0)

    results, spy, served = asyncio.run(main())
    truncation = ("smpc", 4)  # input, input, Beaver opening, truncation opening
    leaked = recover_products(spy, truncation) if truncation in spy.sent else None
    assert leaked is None, f"party 1 read the secret products {leaked} (secret {SECRET})"
    assert isinstance(results[0], ProtocolError)
    message = str(results[0])
    assert "party 1" in message and "mask_bits=17" in message and str(mask_bits(F)) in message
    want = X[0] * Y[0] + X[1] * Y[1]
    for honest in results[1:]:
        assert honest == pytest.approx(want, abs=2**-14)
    assert served.refused == 1 and any("party 1" in r for r in served.refusals)


def _request(op: RequestOp, count: int, frac: int = 0, mask: int = 0) -> bytes:
    return codec.encode_request(Request(op, count, frac, mask))


def test_a_batch_requested_with_two_different_counts_refuses_the_second_naming_it() -> None:
    async def main() -> tuple[np.ndarray, str, Any]:
        network = MemoryNetwork(2, dealer=True, timeout=2.0)
        dealer = asyncio.ensure_future(run_dealer(network.dealer(), n=2, t=2))
        p1, p2 = network.transports()
        tag = (dealer_session("smpc"), 0)
        await p1.send(0, tag, _request(RequestOp.TRIPLES, 5))
        mine = codec.decode_vectors(await p1.recv(0, tag), F, count=3, length=5)
        await p2.send(0, tag, _request(RequestOp.TRIPLES, 7))
        reply = await p2.recv(0, tag)
        assert codec.kind_of(reply) == codec.Kind.ERROR
        for party in (p1, p2):
            await party.close()
        return mine, codec.decode_error(reply), await asyncio.wait_for(dealer, 5.0)

    mine, refusal, served = asyncio.run(main())
    assert mine.shape == (3, F.k, 5)
    assert "party 2" in refusal and "7 triples" in refusal
    assert "party 1" in refusal and "5 triples" in refusal
    assert served.refused == 1 and served.triples == 5


def test_a_refused_party_fails_fast_with_the_dealers_reason() -> None:
    async def main() -> None:
        network = MemoryNetwork(2, dealer=True, timeout=30.0)
        dealer = asyncio.ensure_future(run_dealer(network.dealer(), n=2, t=2))
        p1, _ = network.transports()
        source = ShortMasks(p1, field=F, timeout=30.0)
        try:
            await asyncio.wait_for(source.truncation_pairs(3, frac_bits=16, mask_bits=0), 5.0)
        finally:
            for tr in network.transports():
                await tr.close()
            await asyncio.wait_for(dealer, 5.0)

    with pytest.raises(ProtocolError, match=r"refused batch 0: party 1 asked .*mask_bits=17"):
        asyncio.run(main())


def test_truncation_shifts_outside_the_session_are_refused_by_dealer_and_party() -> None:
    params = SessionParameters(n=2, t=2, shifts=frozenset({16}))

    async def main() -> str:
        network = MemoryNetwork(2, dealer=True, timeout=2.0)
        dealer = asyncio.ensure_future(run_dealer(network.dealer(), parameters=params))
        p1, p2 = network.transports()
        tag = (dealer_session("smpc"), 0)
        room = mask_bits(F)
        await p1.send(0, tag, _request(RequestOp.TRUNCATION_PAIRS, 4, 8, room))
        reply = codec.decode_error(await p1.recv(0, tag))
        for party in (p1, p2):
            await party.close()
        await asyncio.wait_for(dealer, 5.0)
        return reply

    refusal = asyncio.run(main())
    assert "party 1" in refusal and "frac_bits=8" in refusal and "[16]" in refusal

    party = Party(MemoryNetwork(2).transports()[0], n=2, t=2, truncation_shifts={16})
    with pytest.raises(InvalidInputError, match="shift"):
        asyncio.run(party.truncate(party.constant([1.0], frac_bits=20), 8))


# ============================================================================ openings


class Tamper:
    """A cheating party's transport: adds 1 to its share in one opening (under ``tag``)."""

    def __init__(self, inner: MemoryTransport, tag: Tag) -> None:
        self.inner = inner
        self.party = inner.party
        self.peers = inner.peers
        self.tag = tag

    async def send(self, to: int, tag: Tag, payload: Payload) -> None:
        if tag == self.tag:
            block = codec.decode_vectors(bytes(payload), F, count=1)
            block[0, :, 0] = (block[0, :, 0] + 1) % F.column[:, 0]
            payload = codec.encode_vectors(F, block)
        await self.inner.send(to, tag, payload)

    async def recv(self, frm: int, tag: Tag, *, timeout: float | None = None) -> bytes:
        return await self.inner.recv(frm, tag, timeout=timeout)

    async def close(self) -> None:
        await self.inner.close()


def _open_with_a_cheater(n: int, t: int, cheater: int) -> list[Any]:
    async def main() -> list[Any]:
        network = MemoryNetwork(n, timeout=5.0)
        transports: list[Any] = list(network.transports())
        transports[cheater - 1] = Tamper(transports[cheater - 1], ("smpc", 2))
        parties = [Party(tr, n=n, t=t, timeout=5.0) for tr in transports]

        async def program(party: Party) -> Any:
            x = await party.input([10, 20, 30] if party.id == 1 else None, owner=1)
            return (await party.open(x)).tolist()

        return await asyncio.gather(*(program(p) for p in parties), return_exceptions=True)

    return asyncio.run(main())


def test_an_inconsistent_share_is_named_when_n_is_at_least_t_plus_2() -> None:
    results = _open_with_a_cheater(4, 2, cheater=4)
    for honest in results[:3]:
        assert isinstance(honest, ProtocolError), honest
        assert "party 4" in str(honest) and "opening" in str(honest)


def test_an_inconsistent_share_is_detected_when_n_is_t_plus_1() -> None:
    results = _open_with_a_cheater(3, 2, cheater=3)
    for honest in results[:2]:
        assert isinstance(honest, ProtocolError), honest
        assert "inconsistent share among parties [1, 2, 3]" in str(honest)


def test_consistent_openings_with_n_above_t_still_succeed_and_tolerate_drop_outs() -> None:
    async def main() -> list[Any]:
        network = MemoryNetwork(5, timeout=1.0)
        network.silence(5)
        parties = [Party(tr, n=5, t=3, timeout=1.0) for tr in network.transports()]

        async def program(party: Party) -> Any:
            x = await party.input([7, -8] if party.id == 1 else None, owner=1)
            first = (await party.open(x)).tolist()
            second = (await party.open(x + x)).tolist()
            return first, second

        return await asyncio.gather(*(program(p) for p in parties[:4]))

    for first, second in asyncio.run(main()):
        assert first == [7, -8] and second == [14, -16]

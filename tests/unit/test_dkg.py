"""Distributed key generation among in-memory holders: the key works, the modulus is a
biprime, and silent or deviating holders are named. (Over TLS, in separate processes:
tests/integration/test_dkg_processes.py.)"""

from __future__ import annotations

import asyncio
import itertools
import json

import gmpy2
import pytest

from smpcloud.crypto import threshold
from smpcloud.crypto.biprime import assemble_shares, check_modulus, sieve_parameters
from smpcloud.errors import InvalidInputError, KeyGenerationError
from smpcloud.mpc.dkg import KeygenResult, generate_key
from smpcloud.mpc.dkg.exchange import Exchange
from smpcloud.mpc.dkg.modulus import Candidate, find_biprime, open_moduli, trial_division
from smpcloud.mpc.dkg.sieve import sieve
from smpcloud.mpc.memory import MemoryNetwork, MemoryTransport
from smpcloud.mpc.transport import Payload, Tag

BITS = 512  # insecure, for speed: the protocol is the same at every size


def run(
    n: int,
    t: int,
    *,
    transports: list[object] | None = None,
    timeout: float = 30.0,
    network: MemoryNetwork | None = None,
) -> list[KeygenResult | BaseException]:
    net = network or MemoryNetwork(n, timeout=timeout)
    ends = transports or net.transports()

    async def main() -> list[KeygenResult | BaseException]:
        return await asyncio.gather(
            *(
                generate_key(
                    tr,  # type: ignore[arg-type]
                    tuple(range(1, n + 1)),
                    threshold_t=t,
                    bits=BITS,
                    insecure=True,
                    timeout=timeout,
                )
                for tr in ends
            ),
            return_exceptions=True,
        )

    return asyncio.run(main())


@pytest.mark.parametrize(("n", "t"), [(3, 2), (3, 3), (3, 1), (4, 3), (5, 3)])
def test_every_t_subset_decrypts_and_fewer_cannot(n: int, t: int) -> None:
    results = run(n, t)
    assert all(isinstance(r, KeygenResult) for r in results), results
    keys = [r for r in results if isinstance(r, KeygenResult)]
    pk = keys[0].public_key
    assert {k.public_key.digest for k in keys} == {pk.digest}
    assert {k.roster.digest() for k in keys} == {keys[0].roster.digest()}
    assert [k.share.index for k in keys] == list(range(1, n + 1))
    for value in (0, 1, -5, 123456789, pk.n // 2):
        c = pk.encrypt(value)
        partials = {k.share.index: k.share.partial_decrypt(c) for k in keys}
        assert all(threshold.verify_partial(pk, p) for p in partials.values())
        for subset in itertools.combinations(partials, t):
            assert threshold.combine(pk, [partials[i] for i in subset]) == value
    if t > 1:
        c = pk.encrypt(42)
        with pytest.raises(Exception):  # noqa: B017 - ThresholdNotMetError
            threshold.combine(pk, [keys[0].share.partial_decrypt(c)] * (t - 1))


def test_keys_interoperate_with_the_dealer_format() -> None:
    """Same JSON kinds and fields as a dealt key; batch decryption and combining unchanged."""
    keys = [r for r in run(3, 2) if isinstance(r, KeygenResult)]
    dealer_pk, dealer_shares = threshold.deal(512, n=3, t=2, insecure=True)
    ours = threshold.public_key_to_json(keys[0].public_key)
    assert ours.keys() == threshold.public_key_to_json(dealer_pk).keys()
    restored = [
        threshold.key_share_from_json(
            json.loads(json.dumps(threshold.key_share_to_json(k.share))), insecure=True
        )
        for k in keys
    ]
    assert json.loads(json.dumps(threshold.key_share_to_json(dealer_shares[0]))).keys() == (
        threshold.key_share_to_json(restored[0]).keys()
    )
    pk = restored[0].public
    cts = [pk.encrypt(v) for v in (7, -3, 10**30)]
    batches = [s.partial_decrypt_batch(cts) for s in restored[1:]]
    assert threshold.combine_batch(pk, cts, batches) == [7, -3, 10**30]
    # the dealer's shares keep working under the widened key-share bound
    c = dealer_pk.encrypt(99)
    assert threshold.combine(dealer_pk, [s.partial_decrypt(c) for s in dealer_shares[:2]]) == 99


def test_the_modulus_is_a_product_of_two_primes_that_no_single_holder_knows() -> None:
    """Run the search phases and, with a test-only view of every holder, add up the shares."""
    n, bits = 3, BITS
    params = sieve_parameters(bits, n)
    net = MemoryNetwork(n)

    async def holder(tr: MemoryTransport) -> tuple[Candidate | None, list[int], list[int]]:
        ex = Exchange(tr, (1, 2, 3), session="t", timeout=30)
        found = None
        while found is None:
            a, b, _ = await sieve(ex, params, 512, 1)
            ps = assemble_shares(params, a, first=tr.party == 1)
            qs = assemble_shares(params, b, first=tr.party == 1)
            moduli = await open_moduli(ex, ps, qs, bits=bits, tau=1)
            keep = await trial_division(ex, moduli)
            found, _ = await find_biprime(
                ex, [Candidate(k, moduli[k], ps[k], qs[k]) for k in keep], b"t"
            )
        return found, ps, qs

    async def main() -> list[tuple[Candidate | None, list[int], list[int]]]:
        return await asyncio.gather(*(holder(tr) for tr in net.transports()))

    results = asyncio.run(main())
    found = [r[0] for r in results]
    assert all(f is not None for f in found)
    modulus = found[0].modulus  # type: ignore[union-attr]
    p = sum(f.p_share for f in found)  # type: ignore[union-attr]
    q = sum(f.q_share for f in found)  # type: ignore[union-attr]
    assert p * q == modulus and p != q
    assert gmpy2.is_prime(p, 50) and gmpy2.is_prime(q, 50)
    assert p % 4 == 3 and q % 4 == 3
    assert p.bit_length() == q.bit_length() == bits // 2
    check_modulus(modulus, bits)
    for f in found:  # no holder's own share is the factor, or close to it
        assert f is not None and f.p_share not in (p, q) and abs(p - f.p_share).bit_length() > 200


def test_a_silent_holder_is_named_by_the_others() -> None:
    net = MemoryNetwork(3, timeout=1.0)
    net.silence(3)
    results = run(3, 2, network=net, timeout=1.0)
    for r in results[:2]:
        assert isinstance(r, KeyGenerationError)
        assert r.holders == (3,)
        assert "holder 3 did not answer" in str(r)


class Tamper:
    """A Transport that changes one message a holder sends: a deviating holder."""

    def __init__(self, inner: MemoryTransport, round_name: str, change: object) -> None:
        self.inner = inner
        self.party = inner.party
        self.peers = inner.peers
        self.round_name = round_name
        self.change = change

    async def send(self, to: int, tag: Tag, payload: Payload) -> None:
        data = bytes(payload)
        if tag[0].endswith(":" + self.round_name):
            data = self.change(to, data)  # type: ignore[operator]
        await self.inner.send(to, tag, data)

    async def recv(self, frm: int, tag: Tag, *, timeout: float | None = None) -> bytes:
        return await self.inner.recv(frm, tag, timeout=timeout)

    async def close(self) -> None:
        await self.inner.close()


def test_a_malformed_message_names_its_sender() -> None:
    net = MemoryNetwork(3, timeout=2.0)
    ends: list[object] = list(net.transports())
    ends[1] = Tamper(net.transports()[1], "sieve: N mod l", lambda to, data: data[:-1])
    results = run(3, 2, transports=ends, timeout=2.0)
    for r in (results[0], results[2]):
        assert isinstance(r, KeyGenerationError)
        assert r.holders == (2,)


def test_a_holder_that_skews_its_key_shares_is_caught_before_any_key_is_written() -> None:
    """Holder 2 adds 1 to the integer share it sends holder 1: X still checks out, so only the
    self-test, which decrypts with every t-subset, can catch it, and it does."""

    def skew(to: int, data: bytes) -> bytes:
        if to != 1:
            return data
        value = int.from_bytes(data, "big", signed=True) + 1
        return value.to_bytes(len(data), "big", signed=True)

    net = MemoryNetwork(3, timeout=5.0)
    ends: list[object] = list(net.transports())
    ends[1] = Tamper(net.transports()[1], "key: integer shares", skew)
    results = run(3, 2, transports=ends, timeout=5.0)
    assert all(isinstance(r, KeyGenerationError) for r in results), results
    assert any("do not decrypt" in str(r) for r in results)


def test_parameters_are_checked_before_anything_is_sent() -> None:
    with pytest.raises(InvalidInputError, match="at least 3"):
        asyncio.run(generate_key(MemoryNetwork(2).transports()[0], (1, 2), threshold_t=2))
    with pytest.raises(InvalidInputError, match="insecure"):
        asyncio.run(
            generate_key(MemoryNetwork(3).transports()[0], (1, 2, 3), threshold_t=2, bits=1024)
        )
    with pytest.raises(InvalidInputError, match="threshold"):
        asyncio.run(
            generate_key(MemoryNetwork(3).transports()[0], (1, 2, 3), threshold_t=4, bits=2048)
        )

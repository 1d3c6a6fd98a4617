"""Dealer-free Beaver triples (OT between the parties) give the same results as the dealer's.

In-memory runs of every statistics protocol and of Party.mul / truncate, the triples opened and
checked, malformed and silent peers, and one run across real processes over mutual TLS.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from smpcloud.apps import peer_stats
from smpcloud.crypto.field import DEFAULT_FIELD, Field
from smpcloud.crypto.shamir import interpolate
from smpcloud.errors import InvalidInputError, ProtocolError
from smpcloud.mpc.certs import create_deployment
from smpcloud.mpc.config import load_deployment, render_deployment
from smpcloud.mpc.local import run_local
from smpcloud.mpc.memory import MemoryNetwork
from smpcloud.mpc.node import run_party
from smpcloud.mpc.ot_triples import OTTriples, ot_session, truncation_error_bound
from smpcloud.mpc.protocols import statistics as stats
from smpcloud.mpc.runtime import MPC_FIELD, Party
from smpcloud.mpc.triples import TripleSource
from smpcloud.ports import free_port_range

SMPCLOUD = [sys.executable, "-m", "smpcloud"]
FIELD64 = Field((4294967291, 4294967279))


def run(n: int, t: int, program: Any, **kwargs: Any) -> list[Any]:
    return asyncio.run(run_local(n, t, program, **kwargs))


def rows(seed: int, n: int) -> dict[int, np.ndarray]:
    rng = np.random.default_rng(seed)  # test data only, never secrets
    return {i: np.round(rng.normal(30, 8, 5 + 3 * i), 3) for i in range(1, n + 1)}


# ====================================================================== same results as the dealer


def test_every_statistics_protocol_gives_the_dealers_results() -> None:
    data = rows(5, 3)
    weights = {i: np.round(np.linspace(0.5, 2.0, len(r)), 3) for i, r in data.items()}

    async def program(party: Party) -> dict[str, Any]:
        mine, w = data[party.id], weights[party.id]
        return {
            "sum": (await stats.secure_sum(party, [party.id, -2 * party.id])).tolist(),
            "mean": await stats.mean(party, mine),
            "ss": await stats.sum_of_squares(party, mine),
            "dot": await stats.dot_product(party, mine, w),
            "var": await stats.variance(party, mine),
            "svar": await stats.variance(party, mine, sample=True),
            "std": await stats.standard_deviation(party, mine),
            "wmean": await stats.weighted_mean(party, mine, w),
        }

    with_dealer = run(3, 2, program, triples="dealer")
    dealer_free = run(3, 2, program, triples="ot")
    assert dealer_free == with_dealer  # the statistics are exact: equal to the last bit
    assert len({json.dumps(r, sort_keys=True) for r in dealer_free}) == 1


@pytest.mark.parametrize(("n", "t"), [(2, 1), (2, 2), (3, 2), (4, 3)])
def test_mul_gives_the_dealers_results(n: int, t: int) -> None:
    f = 16
    a = np.array([3, -7, 2**40, -(2**31), 0, 123456789], dtype=np.int64)
    b = np.array([-5, -9, 3, 2**31 - 1, 77, -987654321], dtype=np.int64)
    p = np.array([-100.5, -3.25, 0.0, 2.0**-10, 7.75, 100.25])  # exact in fixed point
    q = np.array([7.75, -3.5, 1.0, 3.0 + 2.0**-16, -0.125, 2.0**-16])

    async def program(party: Party) -> tuple[list[int], np.ndarray]:
        x = await party.input(a if party.id == 1 else None, owner=1)
        y = await party.input(b if party.id == n else None, owner=n)
        xf = await party.input(p if party.id == 1 else None, owner=1, frac_bits=f)
        yf = await party.input(q if party.id == n else None, owner=n, frac_bits=f)
        products, reals = await asyncio.gather(party.mul(x, y), party.mul(xf, yf))
        ints, fixed = await party.open_many([products, reals])
        return [int(v) for v in ints], np.asarray(fixed, dtype=np.float64)

    low, high = truncation_error_bound(n)
    dealer = run(n, t, program, triples="dealer")
    for (ints, fixed), (dealer_ints, dealer_fixed) in zip(run(n, t, program, triples="ot"), dealer):
        assert ints == dealer_ints == [int(x) * int(y) for x, y in zip(a, b)]
        exact = p * q  # exact: multiples of 2^-32
        assert np.all(np.abs(dealer_fixed - exact) < 2.0**-f)
        # floor(pq 2^f) + E with E in [low, high]: within (low - 1, high] units of pq 2^f.
        units = (fixed - exact) * 2**f
        assert np.all((units > low - 1) & (units <= high))


def test_dealer_free_truncation_is_exactly_unbiased() -> None:
    count = 3000

    async def program(party: Party) -> tuple[np.ndarray, np.ndarray]:
        halves = party.constant(np.ones(count, dtype=np.int64))  # 1 / 2 = 0.5
        fives = party.constant(np.full(count, -5, dtype=np.int64))  # -5 / 8 = -0.625
        a = np.asarray(await party.open(await party.truncate(halves, 1)))
        b = np.asarray(await party.open(await party.truncate(fives, 3)))
        return a, b

    for n in (2, 3, 4):
        low, high = truncation_error_bound(n)
        a, b = run(n, 2, program, triples="ot")[0]
        assert low <= a.min() and a.max() <= high  # floor(1/2) = 0
        assert -1 + low <= b.min() and b.max() <= -1 + high  # floor(-5/8) = -1
        sd = (high - low) / (2 * math.sqrt(count))  # bounds the standard error of a mean
        assert abs(float(a.mean()) - 0.5) < 6 * sd
        assert abs(float(b.mean()) + 0.625) < 6 * sd


# ====================================================================== the triples themselves


async def _shares_of_triples(party: Party, count: int) -> tuple[Any, ...]:
    source = party.triples
    assert isinstance(source, OTTriples) and isinstance(source, TripleSource)
    return await source.triples(count)


@pytest.mark.parametrize(
    ("n", "t", "field"), [(2, 2, FIELD64), (3, 2, MPC_FIELD), (5, 3, DEFAULT_FIELD)]
)
def test_opened_triples_satisfy_c_equals_ab(n: int, t: int, field: Field) -> None:
    count = 40

    async def program(party: Party) -> tuple[Any, ...]:
        first = await _shares_of_triples(party, count)
        second = await _shares_of_triples(party, 3)  # a second call reuses the setup
        return first + second

    results = run(n, t, program, triples="ot", field=field)
    for offset, size in ((0, count), (3, 3)):
        for subset in itertools.combinations(range(n), t):
            xs = [i + 1 for i in subset]
            a, b, c = (
                interpolate(field, xs, [results[i][offset + k] for i in subset]) for k in range(3)
            )
            assert a.shape == (field.k, size)
            assert (field.mul(a, b) == c).all()
        assert len({a.tobytes() for a in [a[:, j] for j in range(size)]}) == size  # random


def test_requests_larger_than_a_batch_are_split() -> None:
    field = FIELD64
    network = MemoryNetwork(3)
    sources = [
        OTTriples(tr, n=3, t=2, field=field, session="split", max_batch=7)
        for tr in network.transports()
    ]

    async def main() -> list[Any]:
        return list(await asyncio.gather(*(s.triples(20) for s in sources)))

    results = asyncio.run(main())
    a, b, c = (interpolate(field, [1, 2], [results[0][k], results[1][k]]) for k in range(3))
    assert a.shape == (2, 20) and (field.mul(a, b) == c).all()
    assert sources[0]._next_step == 4 + 3 * 4  # three batches of at most 7


def test_prefetched_dealer_free_triples_are_used() -> None:
    async def program(party: Party) -> list[int]:
        await party.prefetch(triples=10)
        x = await party.input(np.arange(10) if party.id == 1 else None, owner=1)
        return [int(v) for v in await party.open(await party.mul(x, x))]

    for result in run(3, 2, program, triples="ot"):
        assert result == [v * v for v in range(10)]


def test_zero_triples_cost_nothing() -> None:
    network = MemoryNetwork(2)
    source = OTTriples(network.transports()[0], n=2, t=1, field=FIELD64)

    async def main() -> tuple[Any, ...]:
        return await source.triples(0)

    assert [part.shape for part in asyncio.run(main())] == [(2, 0)] * 3
    assert not source._ready


# ====================================================================== failures


def test_a_silent_party_is_named() -> None:
    async def program(party: Party) -> Any:
        x = party.constant([1, 2, 3])
        return await party.mul(x, x)

    results = run(3, 2, program, triples="ot", silent=[3], timeout=1.0, return_exceptions=True)
    for result in results[:2]:
        assert isinstance(result, ProtocolError) and "party 3" in str(result)


def test_a_malformed_setup_from_a_peer_is_rejected_and_remembered() -> None:
    network = MemoryNetwork(2)
    mine, theirs = network.transports()
    source = OTTriples(mine, n=2, t=1, field=FIELD64, session="bad")

    async def main() -> None:
        await theirs.send(1, (ot_session("bad"), 0), b"SMOT\x01\x01garbage")
        with pytest.raises(ProtocolError, match="base OT setup"):
            await source.triples(5)
        with pytest.raises(ProtocolError, match="failed earlier"):
            await source.triples(5)
        await source.close()
        with pytest.raises(ProtocolError, match="closed"):
            await source.triples(1)

    asyncio.run(main())


def test_malformed_shares_from_a_peer_are_rejected() -> None:
    network = MemoryNetwork(2)
    mine, theirs = network.transports()
    source = OTTriples(mine, n=2, t=2, field=FIELD64, session="bad")

    async def main() -> None:
        # Truncation pairs take one round of Shamir shares: answer it with the wrong length.
        await theirs.send(1, (ot_session("bad"), 4), b"SMPC\x01\x01\x02\x02" + bytes(20))
        with pytest.raises(ProtocolError, match="malformed shares from party 2"):
            await source.truncation_pairs(3, frac_bits=8, mask_bits=60)

    asyncio.run(main())


def test_parameters_are_checked() -> None:
    network = MemoryNetwork(3, dealer=True)
    transports = network.transports()
    with pytest.raises(InvalidInputError):
        OTTriples(network.dealer(), n=3, t=2, field=FIELD64)
    with pytest.raises(InvalidInputError, match="reach"):
        OTTriples(MemoryNetwork(2).transports()[0], n=3, t=2, field=FIELD64)
    with pytest.raises(InvalidInputError, match="max_batch"):
        OTTriples(transports[0], n=3, t=2, field=FIELD64, max_batch=0)
    source = OTTriples(transports[0], n=3, t=2, field=FIELD64)

    async def main() -> None:
        with pytest.raises(InvalidInputError):
            await source.truncation_pairs(1, frac_bits=0, mask_bits=20)
        with pytest.raises(InvalidInputError, match="no room"):
            await source.truncation_pairs(1, frac_bits=18, mask_bits=20)
        with pytest.raises(InvalidInputError):
            await source.triples(-1)

    asyncio.run(main())
    with pytest.raises(InvalidInputError, match="triples must be"):
        run(2, 1, lambda party: asyncio.sleep(0), triples="trusted")  # type: ignore[arg-type]


def test_no_triple_source_still_refuses_multiplication() -> None:
    async def program(party: Party) -> Any:
        x = party.constant([1])
        return await party.mul(x, x)

    with pytest.raises(ProtocolError, match="no triple source"):
        run(2, 1, program, triples="none")


def test_run_party_refuses_dealer_triples_without_a_dealer(tmp_path: Path) -> None:
    create_deployment(tmp_path, parties=2, dealer=False)
    config = tmp_path / "parties.toml"
    config.write_text(render_deployment(parties=2, threshold=1, base_port=40000, dealer=False))

    async def main() -> None:
        await run_party(load_deployment(config), 1, lambda p: asyncio.sleep(0), triples="dealer")

    with pytest.raises(InvalidInputError, match="no dealer"):
        asyncio.run(main())


# ====================================================================== real TLS connections


def test_dealer_free_parties_over_real_tls_sockets(tmp_path: Path) -> None:
    # A deployment without a dealer: run_party picks OT triples by itself.
    create_deployment(tmp_path, parties=3, dealer=False)
    config_path = tmp_path / "parties.toml"
    base = free_port_range(4)
    config_path.write_text(render_deployment(parties=3, threshold=2, base_port=base, dealer=False))
    config = load_deployment(config_path)
    data = rows(9, 3)

    async def program(party: Party) -> tuple[float, list[int]]:
        x = await party.input(np.arange(6) - 2 if party.id == 1 else None, owner=1)
        y = await party.input(np.arange(6) * 3 if party.id == 3 else None, owner=3)
        product = [int(v) for v in await party.open(await party.mul(x, y))]
        return await stats.variance(party, data[party.id]), product

    async def everyone() -> list[tuple[float, list[int]]]:
        return list(await asyncio.gather(*(run_party(config, i, program) for i in (1, 2, 3))))

    over_tls = asyncio.run(everyone())
    with_dealer = run(3, 2, program, triples="dealer")
    assert over_tls == with_dealer
    assert over_tls[0][1] == [(v - 2) * v * 3 for v in range(6)]


# ====================================================================== real processes over TLS


def deployment(tmp_path: Path, *extra: str) -> Path:
    base = free_port_range(4)
    done = subprocess.run(
        [
            *SMPCLOUD,
            "certs",
            "--parties",
            "3",
            "--base-port",
            str(base),
            "--out",
            str(tmp_path),
            *extra,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return tmp_path / "parties.toml"


def run_parties(config: Path, data_dir: Path, mode: str) -> list[dict[str, Any]]:
    procs = [
        subprocess.Popen(
            [
                *SMPCLOUD,
                "party",
                "--config",
                str(config),
                "--id",
                str(i),
                "--input",
                str(data_dir / f"{i}.csv"),
                "--compute",
                SPEC,
                "--triples",
                mode,
                "--json",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in (1, 2, 3)
    ]
    out = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=180)
        assert proc.returncode == 0, stderr
        out.append(json.loads(stdout))
    return out


DATA = {1: [1.5, -2.25, 10.0], 2: [4.0, 3.125], 3: [0.5, 0.5, 7.75, -1.0]}
SPEC = "count,sum,mean,sum_of_squares,variance,std"


def write_inputs(tmp_path: Path) -> None:
    for i, values in DATA.items():
        (tmp_path / f"{i}.csv").write_text("\n".join(map(str, values)) + "\n")


def test_dealer_free_party_processes_give_the_dealers_results(tmp_path: Path) -> None:
    write_inputs(tmp_path)
    # A deployment without a dealer: three CLI processes make their own triples by OT.
    free = run_parties(deployment(tmp_path / "free", "--no-dealer"), tmp_path, "ot")

    async def program(party: Party) -> dict[str, float]:
        return await peer_stats.compute(party, DATA[party.id], SPEC.split(","), frac_bits=16)

    dealt = run(3, 2, program, triples="dealer")  # the same statistics with the dealer
    for got, reference in zip(free, dealt):
        assert got == {
            "party": got["party"],
            "column": 0,
            "rows": len(DATA[got["party"]]),
            **reference,
        }
    everything = np.concatenate([np.array(v) for v in DATA.values()])
    assert free[0]["count"] == everything.size
    assert free[0]["variance"] == pytest.approx(everything.var(), abs=1e-4)


@pytest.mark.slow
def test_dealer_free_and_dealer_party_processes_agree(tmp_path: Path) -> None:
    write_inputs(tmp_path)
    free = run_parties(deployment(tmp_path / "free", "--no-dealer"), tmp_path, "ot")
    config = deployment(tmp_path / "dealt")
    dealer = subprocess.Popen(
        [*SMPCLOUD, "dealer", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    dealt = run_parties(config, tmp_path, "dealer")
    dealer.communicate(timeout=60)
    assert free == dealt

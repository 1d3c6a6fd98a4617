"""DaskPool on a real Dask LocalCluster (two worker processes): the same results as the local pool.

Every check compares the Dask path with the local process pool (or the one-process code) on the
same inputs: aggregates, verification verdicts (a forged report refused), partial decryptions
and combined plaintexts. Workers lost mid-job are rerun or give DaskClusterError, never a wrong
result; an unreachable scheduler is refused within the connect timeout.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smpcloud.crypto import paillier, threshold
from smpcloud.crypto.paillier import Ciphertext, PublicKey
from smpcloud.crypto.validity import ProofLayout, ReportBase
from smpcloud.errors import InvalidInputError, InvalidProofError, MalformedCiphertextError
from smpcloud.parallel import CryptoPool
from smpcloud.parallel.dask_pool import DaskClusterError, DaskPool, check_scheduler

distributed = pytest.importorskip("distributed", reason="needs pip install 'smpcloud[dask]'")
cloudpickle = pytest.importorskip("cloudpickle", reason="needs pip install 'smpcloud[dask]'")

CONTEXT = b"ctx"


@pytest.fixture(scope="module")
def client() -> Iterator[object]:
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    )
    dask_client = distributed.Client(cluster, set_as_default=False)
    # The workers cannot import this test module: its functions travel by value.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        yield dask_client
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
        dask_client.close()
        cluster.close()


@pytest.fixture(scope="module")
def pools(client: object) -> Iterator[tuple[DaskPool, CryptoPool]]:
    with DaskPool(client) as dask_pool, CryptoPool(2) as local:
        yield dask_pool, local


@pytest.fixture(scope="module")
def keys() -> tuple[PublicKey, paillier.PrivateKey]:
    return paillier.generate_keypair(512, insecure=True)


def _ciphertexts(pk: PublicKey, count: int) -> tuple[list[int], bytes]:
    values = [secrets.randbelow(1000) for _ in range(count)]
    with CryptoPool(2) as pool:
        cts = pool.encrypt_many(pk, values)
    return values, b"".join(c.to_bytes() for c in cts)


def test_aggregate_equals_the_local_pool_and_the_plaintext_sum(
    pools: tuple[DaskPool, CryptoPool], keys: tuple[PublicKey, paillier.PrivateKey]
) -> None:
    dask_pool, local = pools
    pk, sk = keys
    values, blob = _ciphertexts(pk, 9000)
    assert dask_pool.workers == 2 and not dask_pool.inline
    ours = dask_pool.aggregate(pk, blob)
    assert ours.value == local.aggregate(pk, blob).value
    assert sk.decrypt(ours) == sum(values)
    # The same from ints and from Ciphertext objects.
    ints = [int.from_bytes(blob[i : i + 128], "big") for i in range(0, len(blob), 128)]
    assert dask_pool.aggregate(pk, ints).value == ours.value
    assert dask_pool.aggregate(pk, [Ciphertext(pk, c) for c in ints]).value == ours.value


def test_aggregate_names_the_first_bad_ciphertext_like_the_local_pool(
    pools: tuple[DaskPool, CryptoPool], keys: tuple[PublicKey, paillier.PrivateKey]
) -> None:
    dask_pool, local = pools
    pk, _ = keys
    _, blob = _ciphertexts(pk, 8000)
    ints = [int.from_bytes(blob[i : i + 128], "big") for i in range(0, len(blob), 128)]
    ints[6100] = pk.n_squared + 5  # out of range, in a later leaf
    ints[7000] = pk.n * 3  # not coprime, later still
    ints[5000] = pk.n  # not coprime: the first bad one
    errors = []
    for pool in (dask_pool, local):
        with pytest.raises(MalformedCiphertextError) as info:
            pool.aggregate(pk, ints)
        errors.append(str(info.value))
    assert errors[0] == errors[1]
    assert "ciphertext 5000" in errors[0]
    with pytest.raises(InvalidInputError):
        dask_pool.aggregate(pk, [])


@settings(max_examples=5, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(reports=st.integers(2, 300), length=st.integers(1, 40))
def test_aggregate_vectors_equals_the_local_pool(
    pools: tuple[DaskPool, CryptoPool],
    keys: tuple[PublicKey, paillier.PrivateKey],
    reports: int,
    length: int,
) -> None:
    dask_pool, local = pools
    pk, _ = keys
    width = 128
    # Random values below n are valid ciphertexts (coprime to n but with negligible chance).
    rows = [
        b"".join((secrets.randbelow(pk.n - 2) + 2).to_bytes(width, "big") for _ in range(length))
        for _ in range(reports)
    ]
    ours = dask_pool.aggregate_vectors(pk, rows)
    theirs = local.aggregate_vectors(pk, rows)
    assert [c.value for c in ours] == [c.value for c in theirs]


def test_aggregate_vectors_names_the_bad_report_like_the_local_pool(
    pools: tuple[DaskPool, CryptoPool], keys: tuple[PublicKey, paillier.PrivateKey]
) -> None:
    dask_pool, local = pools
    pk, _ = keys
    rows = [[1 + 2 * j for j in range(50)] for _ in range(200)]
    rows[150][7] = pk.n_squared  # out of range
    rows[120][30] = pk.n * 7  # not coprime (in an earlier report)
    errors = []
    for pool in (dask_pool, local):
        with pytest.raises(MalformedCiphertextError) as info:
            pool.aggregate_vectors(pk, rows)
        errors.append(str(info.value))
    assert errors[0] == errors[1]
    with pytest.raises(InvalidInputError, match="report 1 has"):
        dask_pool.aggregate_vectors(pk, [[1, 1], [1]])


def test_verification_verdicts_equal_the_local_pool(
    pools: tuple[DaskPool, CryptoPool], keys: tuple[PublicKey, paillier.PrivateKey]
) -> None:
    dask_pool, local = pools
    pk, sk = keys
    base = ReportBase(pk.n)
    layout = ProofLayout.unpacked(-4, 4, 40)
    values = [i % 9 for i in range(40)]
    cts, proof = dask_pool.prove_report(base, layout, values, CONTEXT)
    assert [sk.raw_decrypt(c) for c in cts] == [(u - 4) % pk.n for u in values]
    for pool in (dask_pool, local):
        pool.verify_report(base, layout, cts, proof, CONTEXT)
    forged = bytearray(proof)
    forged[layout.proof_offset(base.bits, 33)] ^= 1
    verdicts = []
    for pool in (dask_pool, local):
        with pytest.raises(InvalidProofError, match="ciphertext 33") as info:
            pool.verify_report(base, layout, cts, bytes(forged), CONTEXT)
        verdicts.append((str(info.value), info.value.check))
    assert verdicts[0] == verdicts[1]
    # A report whose values are out of range cannot be proved; a swapped ciphertext fails.
    swapped = list(cts)
    swapped[3], swapped[4] = swapped[4], swapped[3]
    for pool in (dask_pool, local):
        with pytest.raises(InvalidProofError):
            pool.verify_report(base, layout, swapped, proof, CONTEXT)
        with pytest.raises(InvalidProofError) as info:
            pool.verify_report(base, layout, cts, proof, CONTEXT + b"x")
        assert info.value.check == "challenge"


def test_partial_decryptions_equal_the_local_pool(pools: tuple[DaskPool, CryptoPool]) -> None:
    dask_pool, local = pools
    public, shares = threshold.deal(512, n=3, t=2, insecure=True)
    pk = public.public_key
    values = [secrets.randbelow(10**6) for _ in range(24)]
    cts = [pk.encrypt(m) for m in values]
    # Unproved partial values are deterministic: the batch's values must be equal.
    ours = [dask_pool.partial_decrypt_batch(share, cts) for share in shares[:2]]
    theirs = [local.partial_decrypt_batch(share, cts) for share in shares[:2]]
    assert [b.values for b in ours] == [b.values for b in theirs]
    assert dask_pool.combine_batch(public, cts, ours) == values
    assert local.combine_batch(public, cts, ours) == values
    # Proved partials (random proofs): the values equal, and they combine on either pool.
    partials = [dask_pool.partial_decrypt_many(share, cts) for share in shares[1:]]
    local_partials = local.partial_decrypt_many(shares[1], cts)
    assert [p.value for p in partials[0]] == [p.value for p in local_partials]
    groups = [list(group) for group in zip(*partials, strict=True)]
    assert dask_pool.combine_many(public, groups) == values
    assert local.combine_many(public, groups) == values


def test_key_shares_are_scattered_once_per_pool(client: object) -> None:
    public, shares = threshold.deal(256, n=2, t=1, insecure=True)
    cts = [public.public_key.encrypt(m) for m in range(12)]
    with DaskPool(client) as pool:
        first = pool.partial_decrypt_batch(shares[0], cts)
        refs = dict(pool._shares)  # the cache is what is tested
        second = pool.partial_decrypt_batch(shares[0], cts)
        assert dict(pool._shares) == refs and len(refs) == 1
        assert first.values == second.values
        pool.partial_decrypt_batch(shares[1], cts)
        assert len(pool._shares) == 2
    assert pool.inline and not pool._shares
    # Closed: everything runs inline, with the same result.
    assert pool.partial_decrypt_batch(shares[0], cts).values == first.values


def _marker_job(marker: str, value: int) -> int:
    """Kill the worker process the first time (the marker file does not exist yet)."""
    path = Path(marker)
    if not path.exists():
        path.write_text("died once")
        os._exit(1)
    return value * 2


def _always_dies(value: int) -> int:
    os._exit(1)


def test_a_worker_lost_mid_job_is_rerun_never_a_wrong_result(
    client: object, keys: tuple[PublicKey, paillier.PrivateKey]
) -> None:
    pk, sk = keys
    with tempfile.TemporaryDirectory() as tmp, DaskPool(client) as pool:
        marker = str(Path(tmp) / "died")
        job = _marker_job
        results = pool.run(job, job, [((marker, i), (marker, i)) for i in range(6)])
        assert results == [2 * i for i in range(6)]
        assert Path(marker).exists()  # a worker did die
        # The cluster is usable again (the nanny restarted the worker): a correct aggregate.
        values, blob = _ciphertexts(pk, 5000)
        assert sk.decrypt(pool.aggregate(pk, blob)) == sum(values)


def test_a_worker_killed_during_an_aggregation_never_gives_a_wrong_result(
    client: object, keys: tuple[PublicKey, paillier.PrivateKey]
) -> None:
    pk, sk = keys
    values, blob = _ciphertexts(pk, 4000)
    blob *= 20  # 80,000 ciphertexts (their plaintexts' sum, 20 times)
    outcome: list[object] = []
    with DaskPool(client) as pool, ThreadPoolExecutor(1) as thread:
        running = thread.submit(pool.aggregate, pk, blob)
        for _ in range(20_000):  # until the leaves are on the workers (or the job is done)
            if running.done() or any(client.processing().values()):  # type: ignore[attr-defined]
                break
            time.sleep(0.001)
        victim = sorted(client.scheduler_info()["workers"])[0]  # type: ignore[attr-defined]
        with contextlib.suppress(Exception):  # the worker dies while answering
            client.run(os._exit, 1, workers=[victim])  # type: ignore[attr-defined]
        try:
            outcome.append(sk.decrypt(running.result()))
        except DaskClusterError as exc:  # allowed: a clear error, never a wrong sum
            outcome.append(exc)
    assert outcome == [20 * sum(values)] or isinstance(outcome[0], DaskClusterError)
    # The cluster heals (the nanny restarts the worker) and aggregates correctly again.
    with DaskPool(client) as pool:
        assert sk.decrypt(pool.aggregate(pk, blob)) == 20 * sum(values)


@pytest.mark.slow
def test_a_job_that_keeps_killing_workers_fails_clearly(client: object) -> None:
    with DaskPool(client) as pool:
        job = _always_dies
        with pytest.raises(DaskClusterError, match="could not run on the Dask cluster"):
            pool.run(job, job, [((1,), (1,)), ((2,), (2,))])


def test_an_unreachable_scheduler_is_refused_within_the_timeout() -> None:
    with socket.socket() as sock:  # a port that is bound, never listened on: refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        with pytest.raises(DaskClusterError, match=f"tcp://127.0.0.1:{port}.*within 1 s"):
            DaskPool(f"tcp://127.0.0.1:{port}", connect_timeout=1)
        with pytest.raises(DaskClusterError, match="cannot connect"):
            check_scheduler(f"tcp://127.0.0.1:{port}", timeout=1)


def test_bad_arguments_are_refused(client: object) -> None:
    with pytest.raises(InvalidInputError):
        DaskPool(42)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        DaskPool(client, connect_timeout=0)
    with pytest.raises(InvalidInputError):
        DaskPool(client, preload=["not a key"])  # type: ignore[list-item]
    with pytest.raises(InvalidInputError):
        DaskPool("  ")


def test_check_scheduler_counts_threads_and_preload_builds_tables(
    client: object, keys: tuple[PublicKey, paillier.PrivateKey]
) -> None:
    address = client.scheduler.address  # type: ignore[attr-defined]
    assert check_scheduler(address) == 2
    pk, _ = keys
    with DaskPool(address, preload=[pk]) as pool:
        pool.start()
        assert "127.0.0.1" in repr(pool)
        values = list(range(-20, 20))
        cts = pool.encrypt_many(pk, values)
        with CryptoPool(1) as inline:
            assert inline.decrypt_many(keys[1], cts) == values
        assert pool.decrypt_many(keys[1], cts) == values
    assert repr(pool).startswith("DaskPool(closed")


def test_the_service_settings_and_workers_take_a_scheduler(client: object) -> None:
    from smpcloud.service.config import Settings
    from smpcloud.service.workers import Workers

    token = "Q7p2Lw9sZk4Rt1Vb-x8Y"
    address = client.scheduler.address  # type: ignore[attr-defined]
    assert Settings(admin_token=token, dask_scheduler=address).dask_scheduler == address
    for bad in ("", "tcp://host 8786"):
        with pytest.raises(InvalidInputError, match="dask_scheduler"):
            Settings(admin_token=token, dask_scheduler=bad)
    workers = Workers(None, address)
    assert workers.count == 1  # inline until started
    workers.start()
    try:
        assert workers.count == 2
        assert workers.run(lambda pool: isinstance(pool, DaskPool))
    finally:
        workers.close()
    assert workers.count == 1

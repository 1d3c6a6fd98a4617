"""Secure aggregation for the use cases: peer MPC on 127.0.0.1, or the cloud service.

Two ways to add up vectors that belong to different owners (hospitals, banks) so that only the
sum is revealed:

* **Peer MPC** (:func:`run_parties`, :func:`peer_secure_sum`): the owners are the computing
  parties. Each Shamir-shares its vector to all, everyone adds the shares it holds, the sum is
  interpolated (``smpcloud.mpc.protocols.statistics.secure_sum``). ``transport="memory"`` runs
  the parties in one event loop over an in-memory network; ``transport="tls"`` runs them over
  real mutually authenticated TLS 1.3 connections on 127.0.0.1 (a fresh deployment CA and one
  certificate per party in a temporary directory), still in one process.
* **Cloud aggregation** (:class:`ServiceAggregator`): the owners are clients of the
  aggregation service, started as a subprocess on 127.0.0.1. Each client encrypts its vector
  under a threshold Paillier key and uploads only ciphertexts; the server adds them without
  being able to read them; t of the n key holders decrypt only the aggregate. Each task is
  first certified by t key holders (their signatures over its key and parameters), and every
  client checks those signatures against the pinned roster before it encrypts.

Packing (cloud mode). Each task is a packed task of the service
(:mod:`smpcloud.crypto.packing`): the clients' fixed-point values go many to a plaintext, the
server checks every decrypted slot against the layout's bounds, and each key holder sends one
batched partial decryption with one proof. The declared range of a value is public: by
default the widest a packed task admits at the chosen precision, +-2^(62 - frac_bits)
(:func:`default_bound`), so up to 31 values share a ciphertext under a 2048-bit key. Packing
reveals nothing beyond the sums (the layout is a bijective encoding of the slot sums).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Final, Literal, Self, TypeVar

import numpy as np
import numpy.typing as npt

from smpcloud.client import Admin, Client, KeyHolder
from smpcloud.crypto import threshold
from smpcloud.crypto.packing import Packing
from smpcloud.crypto.signatures import Roster, SigningKey
from smpcloud.errors import InvalidInputError, ProtocolError, TransportError
from smpcloud.mpc.certs import create_deployment
from smpcloud.mpc.config import load_deployment, render_deployment
from smpcloud.mpc.local import run_local
from smpcloud.mpc.node import run_dealer_node, run_party
from smpcloud.mpc.protocols.statistics import secure_sum
from smpcloud.mpc.runtime import Party
from smpcloud.ports import free_port_range
from smpcloud.service.local import local_server

R = TypeVar("R")
FloatArray = npt.NDArray[np.float64]
PeerTransport = Literal["memory", "tls"]
Progress = Callable[[str], None]

#: Default fixed-point precision of the use cases: resolution 2^-20 ~ 9.5e-7.
DEFAULT_FRAC_BITS: Final = 20
#: Seconds a TLS party waits for its peers to connect.
CONNECT_DEADLINE: Final = 20.0


def _say(progress: Progress | None, message: str) -> None:
    if progress is not None:
        progress(message)


class Stopwatch:
    """Accumulate wall-clock seconds per phase: ``with watch("phase"): ...``."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[phase] = self.seconds.get(phase, 0.0) + time.perf_counter() - start


def majority_threshold(parties: int) -> int:
    """Return t = floor(n/2) + 1: any t of n parties reconstruct, a minority learns nothing."""
    return parties // 2 + 1


# ------------------------------------------------------------------------------ peer MPC


async def _tls_attempt(
    n: int,
    t: int,
    program: Callable[[Party], Awaitable[R]],
    *,
    dealer: bool,
    session: str,
    directory: Path,
) -> list[R]:
    base = free_port_range(n + 1)
    config_path = directory / "parties.toml"
    config_path.write_text(
        render_deployment(parties=n, threshold=t, base_port=base, dealer=dealer), encoding="utf-8"
    )
    config = load_deployment(config_path)
    tasks = [
        asyncio.ensure_future(
            run_party(config, pid, program, session=session, connect_deadline=CONNECT_DEADLINE)
        )
        for pid in range(1, n + 1)
    ]
    dealer_task = (
        asyncio.ensure_future(
            run_dealer_node(config, session=session, connect_deadline=CONNECT_DEADLINE)
        )
        if dealer
        else None
    )
    everything = [*tasks, *([dealer_task] if dealer_task is not None else [])]
    try:
        results = await asyncio.gather(*tasks)
        if dealer_task is not None:
            await dealer_task
    except BaseException:
        for task in everything:
            task.cancel()
        await asyncio.gather(*everything, return_exceptions=True)
        raise
    return list(results)


async def _run_tls(
    n: int,
    t: int,
    program: Callable[[Party], Awaitable[R]],
    *,
    dealer: bool,
    session: str,
    attempts: int = 3,
) -> list[R]:
    with tempfile.TemporaryDirectory(prefix="smpcloud-mesh-") as tmp:
        directory = Path(tmp)
        create_deployment(directory, parties=n, dealer=dealer, hosts=("127.0.0.1",))
        for attempt in range(1, attempts + 1):
            try:
                return await _tls_attempt(
                    n, t, program, dealer=dealer, session=session, directory=directory
                )
            except TransportError:
                # Most likely a port taken between probing and listening: new ports, again.
                if attempt == attempts:
                    raise
    raise ProtocolError("unreachable")  # pragma: no cover - the loop returns or raises


def run_parties(
    n: int,
    t: int,
    program: Callable[[Party], Awaitable[R]],
    *,
    transport: PeerTransport = "memory",
    dealer: bool = True,
    session: str = "smpc",
) -> list[R]:
    """Run an SPMD ``program`` for parties 1..n on this machine and return each party's result.

    Args:
        n, t: parties and threshold (any t reconstruct; t - 1 learn nothing).
        program: what every party runs with its own :class:`~smpcloud.mpc.runtime.Party`.
        transport: ``"memory"`` (one event loop, in-memory network) or ``"tls"`` (real mutual
            TLS 1.3 connections on 127.0.0.1 between the parties, each with its own certificate
            from a throw-away deployment CA).
        dealer: also run the trusted dealer of Beaver triples (needed for multiplications).
        session: the computation's name.

    Returns:
        The programs' results, party 1 first.

    Raises:
        InvalidInputError: unknown transport or bad n, t.
        ProtocolError, TransportError: a party failed (the first failure is raised).
        RuntimeError: called from a running event loop (use ``run_local`` there).
    """
    if transport == "memory":
        return asyncio.run(run_local(n, t, program, dealer=dealer, session=session))
    if transport == "tls":
        return asyncio.run(_run_tls(n, t, program, dealer=dealer, session=session))
    raise InvalidInputError(f"unknown transport {transport!r}; choose 'memory' or 'tls'")


def peer_secure_sum(
    vectors: Sequence[FloatArray],
    *,
    frac_bits: int = DEFAULT_FRAC_BITS,
    transport: PeerTransport = "memory",
    session: str = "secure-sum",
) -> FloatArray:
    """Add up one vector per owner by peer MPC, each owner a party (t = majority).

    Reveals: the element-wise sum, and nothing else (the vector length is public).

    Args:
        vectors: owner i's vector at index i - 1; all of one length; at least two owners.
        frac_bits: fixed-point precision; each entry of the sum is off by at most
            len(vectors) * 2^-(frac_bits+1).
        transport: as for :func:`run_parties`.
        session: the computation's name.

    Raises:
        InvalidInputError: fewer than two owners or vectors of different lengths.
        OverflowDetectedError: an entry does not fit a signed 64-bit fixed-point integer.
    """
    vecs = [np.asarray(v, dtype=np.float64).ravel() for v in vectors]
    if len(vecs) < 2:
        raise InvalidInputError("secure aggregation needs at least two owners")
    if len({v.shape for v in vecs}) != 1:
        raise InvalidInputError("every owner's vector must have the same length")
    n = len(vecs)

    async def program(party: Party) -> FloatArray:
        opened = await secure_sum(party, vecs[party.id - 1], frac_bits=frac_bits)
        return np.asarray(opened, dtype=np.float64)

    results = run_parties(
        n, majority_threshold(n), program, transport=transport, dealer=False, session=session
    )
    return results[0]


# ------------------------------------------------------------------------------ packing


def default_bound(frac_bits: int) -> float:
    """Return the widest public bound B for values with ``frac_bits`` fractional bits.

    Values in [-B, B] with B = 2^(62 - frac_bits) encode, as fixed point, inside the signed
    64-bit range that a packing layout (:class:`smpcloud.crypto.packing.Packing`) accepts.

    Raises:
        InvalidInputError: frac_bits outside 0..48.
    """
    if type(frac_bits) is not int or not 0 <= frac_bits <= 48:
        raise InvalidInputError("frac_bits must be in 0..48")
    return float(1 << (62 - frac_bits))


# ------------------------------------------------------------------------------ cloud mode


class ServiceAggregator:
    """Secure sums through the aggregation service on 127.0.0.1, with threshold decryption.

    Use as a context manager: entering runs the key ceremony (a ``holders``-party threshold
    Paillier key, ``t`` needed to decrypt) and starts the server (a subprocess with a SQLite file
    in a temporary directory); each :meth:`aggregate` is one task; leaving stops the server.

    Reveals (per :meth:`aggregate`): to everyone, the element-wise sum of the clients' vectors
    and how many clients reported. The server sees only ciphertexts; each key holder sees only
    the aggregate ciphertexts and the partial decryptions; no one sees a single client's vector.

    Args:
        key_bits: Paillier modulus size (2048 default; 3072 for long-term security).
        holders: key holders n; ``t`` of them decrypt.
        t: decryption threshold.
        frac_bits: fixed-point precision; each entry of a sum over K clients is off by at most
            K * 2^-(frac_bits+1).
        insecure_keys: allow keys below 2048 bits (fast tests only).
        progress: called with a short message per phase.

    Raises:
        InvalidInputError: bad parameters.
    """

    def __init__(
        self,
        *,
        key_bits: int = 2048,
        holders: int = 5,
        t: int = 3,
        frac_bits: int = DEFAULT_FRAC_BITS,
        insecure_keys: bool = False,
        progress: Progress | None = None,
    ) -> None:
        if not 1 <= t <= holders:
            raise InvalidInputError("need 1 <= t <= holders")
        if not 0 <= frac_bits <= 48:
            raise InvalidInputError("frac_bits must be in 0..48")
        self.key_bits = key_bits
        self.holders = holders
        self.t = t
        self.frac_bits = frac_bits
        self.insecure_keys = insecure_keys
        self.progress = progress
        self.watch = Stopwatch()
        self.ciphertexts_decrypted = 0
        self._stack: contextlib.ExitStack | None = None
        self._url = ""
        self._admin: Admin | None = None
        self._key: threshold.ThresholdPublicKey | None = None
        self._shares: list[threshold.KeyShare] = []
        self._signing: list[SigningKey] = []
        self._roster: Roster | None = None

    @property
    def seconds(self) -> dict[str, float]:
        """Seconds spent per phase so far (key ceremony, server start, uploads, decryption)."""
        return self.watch.seconds

    def __enter__(self) -> Self:
        stack = contextlib.ExitStack()
        try:
            _say(self.progress, f"key ceremony: {self.t}-of-{self.holders} {self.key_bits}-bit key")
            with self.watch("key_ceremony"):
                self._key, self._shares = threshold.deal(
                    self.key_bits, n=self.holders, t=self.t, insecure=self.insecure_keys
                )
                self._signing = [SigningKey.generate() for _ in self._shares]
                self._roster = Roster(
                    self.t, {i: k.verify_key for i, k in enumerate(self._signing, start=1)}
                )
            _say(self.progress, "starting the aggregation server on 127.0.0.1")
            with self.watch("server_start"):
                tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="smpcloud-app-"))
                admin_token = secrets.token_urlsafe(32)
                self._url = stack.enter_context(
                    local_server(
                        Path(tmp) / "server.db",
                        admin_token,
                        allow_insecure_keys=self.insecure_keys,
                    )
                )
                self._admin = stack.enter_context(Admin(self._url, admin_token))
        except BaseException:
            stack.close()
            raise
        self._stack = stack
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._stack is not None:
            self._stack.close()
            self._stack = None
        self._admin = None

    def aggregate(
        self,
        vectors: Sequence[FloatArray],
        *,
        name: str = "secure sum",
        frac_bits: int | None = None,
        bound: float | None = None,
    ) -> FloatArray:
        """Return the element-wise sum of one vector per client, computed by the service.

        One packed task: each client encodes its values as fixed point (range-checked by the
        SDK), packs and encrypts them locally and uploads; the administrator closes the task;
        ``t`` randomly chosen key holders each send one batched partial decryption with one
        proof; the server combines, unpacks and checks the sums.

        Args:
            vectors: client i's vector at index i; all of one length.
            name: the task's label.
            frac_bits: fixed-point precision of this sum (default: the aggregator's).
            bound: the public bound B of every value, declared in the task: values in [-B, B]
                (default: :func:`default_bound`, the widest the precision allows).

        Reveals: the element-wise sum and the number of clients (see the class docstring),
        and the declared bound.

        Raises:
            InvalidInputError: fewer than two clients, vectors of different lengths, a bound
                the precision cannot encode, or the aggregator is not entered.
            OverflowDetectedError: a value outside [-B, B], NaN or infinite (nothing is sent).
            ProtocolError: the service counted a different number of reports.
        """
        admin, key, roster = self._admin, self._key, self._roster
        if admin is None or key is None or roster is None:
            raise InvalidInputError("use ServiceAggregator as a context manager")
        vecs = [np.asarray(v, dtype=np.float64).ravel() for v in vectors]
        if len(vecs) < 2:
            raise InvalidInputError("secure aggregation needs at least two clients")
        if len({v.shape for v in vecs}) != 1:
            raise InvalidInputError("every client's vector must have the same length")
        clients, length = len(vecs), int(vecs[0].shape[0])
        bits = self.frac_bits if frac_bits is None else frac_bits
        widest = default_bound(bits)  # also checks frac_bits
        limit = widest if bound is None else bound
        if not isinstance(limit, (int, float)) or not 0 < limit <= widest:
            raise InvalidInputError(
                f"bound must be a positive number of at most 2^{62 - bits} for {bits} "
                "fractional bits"
            )
        layout = Packing.for_key(
            key.public_key,
            length=length,
            min_value=-limit,
            max_value=limit,
            max_additions=clients,
            frac_bits=bits,
        )
        task = admin.create_task(key, name=name, packing=layout, min_clients=clients, roster=roster)
        credentials = admin.register_clients(task.task_id, clients)
        rng = secrets.SystemRandom()
        with self.watch("certify"):
            for index in sorted(rng.sample(range(self.holders), self.t)):
                with KeyHolder(
                    self._url, task.task_id, task.holder_tokens[index], self._shares[index]
                ) as holder:
                    holder.certify(self._signing[index])
        _say(self.progress, f"{name}: {clients} clients encrypt and upload {length} values")
        with self.watch("encrypt_and_upload"):
            for cred, vec in zip(credentials, vecs, strict=True):  # on each client's machine
                with Client(
                    self._url,
                    task.task_id,
                    cred.token,
                    holders=roster,
                    public_key=key,
                    allow_insecure_keys=self.insecure_keys,
                ) as client:
                    client.submit(vec)
        with self.watch("close_and_aggregate"):
            admin.close(task.task_id)
        _say(self.progress, f"{name}: {self.t} of {self.holders} key holders decrypt the sum")
        with self.watch("threshold_decryption"):
            chosen = sorted(rng.sample(range(self.holders), self.t))
            for index in chosen:
                with KeyHolder(
                    self._url, task.task_id, task.holder_tokens[index], self._shares[index]
                ) as holder:
                    holder.contribute()
            result = admin.result(task.task_id)
        if result.count != clients:
            raise ProtocolError(f"the service counted {result.count} reports, not {clients}")
        self.ciphertexts_decrypted += layout.ciphertexts
        return np.asarray(result.sum, dtype=np.float64)


__all__ = [
    "DEFAULT_FRAC_BITS",
    "PeerTransport",
    "ServiceAggregator",
    "Stopwatch",
    "default_bound",
    "majority_threshold",
    "peer_secure_sum",
    "run_parties",
]

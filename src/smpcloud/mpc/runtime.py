"""A party's view of a peer MPC computation: share, add, multiply with Beaver triples, open.

Every computing party (ids 1..n) runs the same program side by side (SPMD) with its own
:class:`Party`. Values live as Shamir shares (t of n reconstruct, degree t - 1, x = party id)
in :class:`SharedVector`; linear operations are local, multiplication consumes Beaver triples
from a :class:`~smpcloud.mpc.triples.TripleSource` and one round of openings, and
:meth:`Party.open` reveals a value. Protocols never open sockets: they talk only through a
:class:`~smpcloud.mpc.transport.Transport`.

Ordering rule (SPMD): every operation that communicates (``input``, ``input_all``, ``open``,
``mul``, ``dot``, ``truncate``) reserves its message tags and its dealer batches when it is
*called*, from counters that all parties advance identically. So communicating operations must
be started in the same order at every party: await them one after another, or start several at
once with ``asyncio.gather`` from the same point of the program. Messages carry their shape, so
most mix-ups are detected (:class:`~smpcloud.errors.ShareError`), but not all.

Security model: semi-honest (honest-but-curious) parties, at most t - 1 of them colluding; a
trusted dealer for triples (see :mod:`smpcloud.mpc.dealer`). Malformed messages are rejected,
but a malicious party that sends well-formed wrong shares is not detected (no MACs).

The default field :data:`MPC_FIELD` is larger than the crypto default; see its comment.

Example (every party runs this with its own ``my_values``; see also
:func:`smpcloud.mpc.local.run_local`)::

    async def program(party: Party) -> float:
        xs = await party.input_all(my_values, frac_bits=16)   # one round, n shared vectors
        x = SharedVector.concat(xs)                     # all parties' values, still secret
        squares = await party.sum_of_squares(x)         # Beaver: one round (+1 to truncate)
        return float((await party.open(squares))[0])    # reveals only the sum of squares
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final, TypeAlias

import numpy as np
import numpy.typing as npt

from smpcloud.crypto import shamir
from smpcloud.crypto.encoding import FixedPoint
from smpcloud.crypto.field import Field, Residues, random_elements
from smpcloud.crypto.shamir import interpolate, share_elements
from smpcloud.errors import (
    InvalidInputError,
    OverflowDetectedError,
    ProtocolError,
    ShareError,
    TransportError,
)
from smpcloud.mpc import codec
from smpcloud.mpc.transport import DEFAULT_TIMEOUT, Tag, Transport
from smpcloud.mpc.triples import TripleSource

#: The six largest primes below 2^32 (``gmpy2.prev_prime`` from 2^32; checked in the tests):
#: M ~ 2^192. Why six, when :data:`~smpcloud.crypto.field.DEFAULT_FIELD` has three (2^96)?
#: A product of two 64-bit fixed-point values needs 127 bits before truncation, and the
#: probabilistic truncation masks it with a random r that must exceed it by kappa >= 40 bits
#: without wrapping around M: 128 + 40 + 1 bits < 192. Five primes (2^160) would cap inputs at
#: 59 bits. The price is linear in the number of primes: integer-only work (secure sums) runs
#: about twice as fast on ``DEFAULT_FIELD``, which a :class:`Party` accepts as well.
MPC_FIELD: Final = Field((4294967291, 4294967279, 4294967231, 4294967197, 4294967189, 4294967161))

#: Statistical security parameter of the truncation mask (bits): leakage <= 2^-kappa.
DEFAULT_KAPPA: Final = 40

#: Bits of a default input: signed 64-bit integers, or 64-bit fixed-point encodings.
DEFAULT_BITS: Final = 64

_WORD: Final = 1 << 64
_Decoder: TypeAlias = Callable[[bytes], Residues]
#: A slice of prefetched material: (the fetch, first index, count).
_Pooled: TypeAlias = tuple["asyncio.Future[tuple[Residues, ...]]", int, int]
_TAU: Final = 2.0**-30  # float margin in CRT lifting (the true error is below 2^-47)

#: What :meth:`Party.open` returns: int64, exact Python ints (object) or float64.
Opened: TypeAlias = npt.NDArray[np.int64] | npt.NDArray[np.object_] | npt.NDArray[np.float64]


# ====================================================================== vectorised RNS helpers


@dataclass(frozen=True, slots=True)
class _FieldConstants:
    crt_weight: npt.NDArray[np.uint64]  # (k, 1): (M/p_i)^-1 mod p_i
    crt_inv_p: npt.NDArray[np.float64]  # (k, 1): 1/p_i
    crt_cofactor64: npt.NDArray[np.uint64]  # (k, 1): (M/p_i) mod 2^64
    modulus64: np.uint64  # M mod 2^64


@lru_cache(maxsize=32)
def _constants(field: Field) -> _FieldConstants:
    ps = field.moduli
    modulus = field.modulus
    k = field.k
    return _FieldConstants(
        crt_weight=np.array([pow(modulus // p, -1, p) for p in ps], dtype=np.uint64).reshape(k, 1),
        crt_inv_p=np.array([1.0 / p for p in ps], dtype=np.float64).reshape(k, 1),
        crt_cofactor64=np.array([(modulus // p) % _WORD for p in ps], dtype=np.uint64).reshape(
            k, 1
        ),
        modulus64=np.uint64(modulus % _WORD),
    )


def mask_bits(field: Field) -> int:
    """Return R, the bit size of truncation masks in ``field``: 2^(R+1) <= M."""
    return field.modulus.bit_length() - 2


def from_int64(field: Field, values: npt.NDArray[np.int64]) -> Residues:
    """Map signed 64-bit integers to field elements, vectorised (shape ``(k, m)``)."""
    shifted = values.view(np.uint64) ^ np.uint64(1 << 63)  # v + 2^63, in [0, 2^64)
    out = np.empty((field.k, values.shape[0]), dtype=np.uint64)
    scratch = np.empty_like(shifted)
    for i, p in enumerate(field.moduli):
        row = out[i]
        prime = np.uint64(p)
        np.remainder(shifted, prime, out=row)
        row += np.uint64((p - (1 << 63) % p) % p)  # subtract 2^63 again: row < 2p now
        np.subtract(row, prime, out=scratch)
        np.minimum(row, scratch, out=row)  # conditional subtraction (unsigned wrap)
    return out


def _crt_lift(field: Field, x: Residues) -> tuple[Residues, npt.NDArray[np.float64]]:
    """Return c_i = x_i (M/p_i)^-1 mod p_i and sum_i c_i / p_i (a float).

    The integer value is X = sum_i c_i (M/p_i) - q M with q = floor(sum_i c_i / p_i).
    """
    consts = _constants(field)
    c = x * consts.crt_weight
    c %= field.column
    frac = np.multiply(c, consts.crt_inv_p, dtype=np.float64).sum(axis=0)
    return c, frac


def small_to_int64(field: Field, x: Residues) -> npt.NDArray[np.int64]:
    """Return signed elements known to satisfy |v| < 2^63 and 4|v| < M, as int64, exactly.

    CRT with a floating-point quotient: sum c_i / p_i lies within |v|/M <= 1/4 of an
    integer, far more than the float error (< 2^-47), so rounding it gives the exact quotient.
    The caller guarantees the bound (the tracked public bound of a :class:`SharedVector`).
    """
    consts = _constants(field)
    c, frac = _crt_lift(field, x)
    q = np.rint(frac).astype(np.uint64)
    c *= consts.crt_cofactor64  # c is ours: scale in place (wraps mod 2^64)
    low = c.sum(axis=0, dtype=np.uint64)  # wraps mod 2^64
    low -= q * consts.modulus64
    out: npt.NDArray[np.int64] = low.view(np.int64)
    return out


def low_bits(field: Field, x: Residues, bits: int) -> npt.NDArray[np.uint64]:
    """Return X mod 2^bits for elements read as unsigned integers X in [0, M), exactly.

    CRT with a floating-point quotient; the rare elements whose quotient is ambiguous (X
    within 2^-30 M of 0 or M) are converted exactly instead. Requires 0 <= bits <= 64.
    """
    consts = _constants(field)
    c, frac = _crt_lift(field, x)
    q = np.floor(frac)
    rest = frac - q
    c *= consts.crt_cofactor64  # c is ours: scale in place (wraps mod 2^64)
    low = c.sum(axis=0, dtype=np.uint64)
    low -= q.astype(np.uint64) * consts.modulus64
    unsure = np.flatnonzero((rest < _TAU) | (rest > 1.0 - _TAU))
    if unsure.size:
        exact = field.to_ints(x[:, unsure], signed=False)
        low[unsure] = np.array([int(v) % _WORD for v in exact.tolist()], dtype=np.uint64)
    if bits < 64:
        low &= np.uint64((1 << bits) - 1)
    result: npt.NDArray[np.uint64] = low
    return result


# ====================================================================== shared values


@dataclass(frozen=True, slots=True, eq=False)
class SharedVector:
    """This party's Shamir shares of a vector of secret values.

    Attributes:
        shares: the share residues, ``uint64`` of shape ``(k, m)``. Secret: never logged.
        field: the field of the shares.
        frac_bits: None for integers; f for fixed-point values v / 2^f.
        bound: a public bound, |v| <= bound for every encoded value v, tracked through every
            operation so that a product or a truncation that could wrap around the field is
            refused (:class:`~smpcloud.errors.OverflowDetectedError`) before it runs.

    Operators (local, no communication): ``x + y``, ``x - y``, ``-x``, ``x + c``, ``x - c``,
    ``c * x`` for a public int c (or a public float added to a fixed-point vector), and
    ``sum(list_of_vectors)``. ``x[i:j]`` slices; :meth:`sum` adds the elements up;
    :meth:`concat` joins vectors. Multiplication of two shared vectors needs a round of
    communication: ``await party.mul(x, y)``.
    """

    shares: Residues
    field: Field
    frac_bits: int | None = None
    bound: int = 1 << 63

    __array_ufunc__ = None  # make numpy defer to our reflected operators

    def __repr__(self) -> str:
        kind = "int" if self.frac_bits is None else f"fixed(f={self.frac_bits})"
        return f"SharedVector(length={self.length}, {kind}, shares=<redacted>)"

    @property
    def length(self) -> int:
        """Number of values."""
        return int(self.shares.shape[1])

    def __len__(self) -> int:
        return self.length

    @property
    def is_fixed(self) -> bool:
        """True for fixed-point values."""
        return self.frac_bits is not None

    def _with(self, shares: Residues, bound: int) -> SharedVector:
        _check_bound(self.field, bound, "result")
        return SharedVector(shares, self.field, self.frac_bits, bound)

    def _check_other(self, other: SharedVector) -> None:
        if other.field != self.field:
            raise ShareError("shared vectors from different fields")
        if other.length != self.length:
            raise ShareError(f"shared vectors of different lengths: {self.length}, {other.length}")
        if other.frac_bits != self.frac_bits:
            raise ShareError(
                f"cannot combine shared values with frac_bits {self.frac_bits} and "
                f"{other.frac_bits}"
            )

    def _public(self, value: object) -> tuple[Residues, int] | None:
        """Encode a public constant at this vector's scale; None if unsupported."""
        f = self.frac_bits
        if isinstance(value, bool):
            return None
        if isinstance(value, (int, np.integer)):
            encoded = int(value) << (f or 0)
            return self.field.from_int(encoded), abs(encoded)
        if isinstance(value, (float, np.floating)) and f is not None:
            if not math.isfinite(value):
                raise OverflowDetectedError(f"cannot encode non-finite constant {value!r}")
            encoded = round(float(value) * (1 << f))
            return self.field.from_int(encoded), abs(encoded)
        if isinstance(value, np.ndarray) and value.ndim == 1:
            if value.shape[0] != self.length:
                raise ShareError(
                    f"public vector of length {value.shape[0]} for a shared vector of "
                    f"length {self.length}"
                )
            ints = _encode_plain(value, f, DEFAULT_BITS)
            return from_int64(self.field, ints), _max_abs(ints)
        return None

    def __add__(self, other: object) -> SharedVector:
        if isinstance(other, SharedVector):
            self._check_other(other)
            return self._with(self.field.add(self.shares, other.shares), self.bound + other.bound)
        if isinstance(other, (int, np.integer)) and not isinstance(other, bool) and other == 0:
            return self
        public = self._public(other)
        if public is None:
            return NotImplemented
        residues, size = public
        return self._with(self.field.add(self.shares, residues), self.bound + size)

    __radd__ = __add__

    def __neg__(self) -> SharedVector:
        return SharedVector(self.field.neg(self.shares), self.field, self.frac_bits, self.bound)

    def __sub__(self, other: object) -> SharedVector:
        if isinstance(other, SharedVector):
            self._check_other(other)
            return self._with(self.field.sub(self.shares, other.shares), self.bound + other.bound)
        public = self._public(other)
        if public is None:
            return NotImplemented
        residues, size = public
        return self._with(self.field.sub(self.shares, residues), self.bound + size)

    def __rsub__(self, other: object) -> SharedVector:
        public = self._public(other)
        if public is None:
            return NotImplemented
        residues, size = public
        return self._with(self.field.sub(residues, self.shares), self.bound + size)

    def __mul__(self, other: object) -> SharedVector:
        """Multiply by a public integer (exact; no truncation needed)."""
        if isinstance(other, (int, np.integer)) and not isinstance(other, bool):
            c = int(other)
            return self._with(self.field.mul_int(self.shares, c), self.bound * abs(c))
        return NotImplemented

    __rmul__ = __mul__

    def __getitem__(self, index: slice) -> SharedVector:
        if not isinstance(index, slice):
            raise TypeError("shared vectors support slices only, e.g. x[2:5]")
        return SharedVector(self.shares[:, index], self.field, self.frac_bits, self.bound)

    def take(self, indices: Sequence[int] | npt.NDArray[np.integer[Any]]) -> SharedVector:
        """Return the elements at ``indices`` (in that order, repeats allowed; local).

        Raises:
            InvalidInputError: an index outside 0 .. length - 1.
        """
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= self.length):
            raise InvalidInputError(f"indices outside 0..{self.length - 1}")
        return SharedVector(self.shares[:, idx], self.field, self.frac_bits, self.bound)

    def with_bound(self, bound: int) -> SharedVector:
        """Return the same shares with a tighter public bound that the caller can prove.

        The runtime's bound only grows (every product multiplies bounds); when the mathematics
        of an algorithm guarantees a smaller one (a correlation is at most 1, an iterate
        converges), declaring it keeps later products inside the field. The values are not
        checked (they are secret): a wrong bound can make a later product wrap around.

        Raises:
            InvalidInputError: a bound that is not a positive int.
        """
        if type(bound) is not int or bound < 1:
            raise InvalidInputError("bound must be a positive int")
        return SharedVector(self.shares, self.field, self.frac_bits, min(bound, self.bound))

    def sum(self) -> SharedVector:
        """Return a length-1 vector holding the sum of all elements (local)."""
        column = self.field.column
        total = self.shares.sum(axis=1, dtype=np.uint64).reshape(self.field.k, 1) % column
        return self._with(total, self.bound * self.length)

    @staticmethod
    def concat(parts: Sequence[SharedVector]) -> SharedVector:
        """Join vectors end to end (same field and scale).

        Raises:
            ShareError: no parts, or parts from different fields or scales.
        """
        if not parts:
            raise ShareError("nothing to concatenate")
        first = parts[0]
        for p in parts[1:]:
            if p.field != first.field or p.frac_bits != first.frac_bits:
                raise ShareError("cannot concatenate vectors of different fields or scales")
        shares = np.concatenate([p.shares for p in parts], axis=1)
        return SharedVector(shares, first.field, first.frac_bits, max(p.bound for p in parts))


def _max_abs(ints: npt.NDArray[np.int64]) -> int:
    return max(int(ints.max()), -int(ints.min())) if ints.size else 0


def _check_bound(field: Field, bound: int, what: str) -> None:
    if 2 * bound >= field.modulus:
        raise OverflowDetectedError(
            f"{what} could reach 2^{bound.bit_length()} and wrap around the field "
            f"(~2^{field.modulus.bit_length()}); use a larger field or declare smaller inputs "
            "(bits=...)"
        )


def _encode_plain(values: object, frac_bits: int | None, bits: int) -> npt.NDArray[np.int64]:
    """Encode a party's plaintext values as int64 integers within a signed ``bits``-bit range."""
    arr = np.atleast_1d(np.asarray(values))
    if arr.ndim != 1:
        raise InvalidInputError(f"expected a 1-D vector of values, got shape {arr.shape}")
    if arr.dtype == np.bool_:
        raise InvalidInputError("booleans are not values; convert them to integers")
    if arr.dtype == object:  # Python ints too large for int64, or mixed objects
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in arr.tolist()):
            raise InvalidInputError("values must be integers or reals")
        if arr.size and max(abs(int(v)) for v in arr.tolist()) >= 1 << 63:
            raise OverflowDetectedError(f"input outside the signed {bits}-bit range")
        arr = arr.astype(np.int64)
    if arr.dtype.kind in "iu":
        if arr.dtype == np.uint64 and arr.size and int(arr.max()) >= 1 << 63:
            raise OverflowDetectedError(f"input outside the signed {bits}-bit range")
        ints = arr.astype(np.int64)
        shift = frac_bits or 0
        reach = 1 << (bits - 1 - shift)  # v << shift must fit a signed bits-bit integer
        if ints.size and (int(ints.min()) < -reach or int(ints.max()) > reach - 1):
            raise OverflowDetectedError(
                f"input outside the {'fixed-point' if shift else 'integer'} range of "
                f"{bits}-bit values"
            )
        return ints << np.int64(shift) if shift else ints
    if arr.dtype.kind == "f":
        if frac_bits is None:
            raise InvalidInputError("real-valued inputs need a fixed-point scale: frac_bits=...")
        return FixedPoint(frac_bits=frac_bits, bits=bits).encode_array(arr)
    raise InvalidInputError(f"values must be integers or reals, got dtype {arr.dtype}")


# ====================================================================== the party


class Party:
    """One computing party's context in an SPMD computation.

    Args:
        transport: this party's connection; ``transport.party`` is its id (1..n).
        n: number of computing parties (ids 1..n; id 0 is the dealer, if any).
        t: threshold: t shares reconstruct (degree t - 1); any t - 1 parties learn nothing.
            Openings succeed as long as t parties answer (drop-out tolerance n - t).
        field: the field of the shares (default :data:`MPC_FIELD`).
        triples: where Beaver triples and truncation pairs come from (for example
            :class:`~smpcloud.mpc.triples.DealerTriples`); None allows only linear work.
        session: a name shared by all parties of this computation (the first half of tags).
        timeout: seconds to wait for any one round before naming the silent parties.
        kappa: statistical security of truncation masks (bits), at least 40.

    Raises:
        InvalidInputError: parameters out of range or a transport that is not party 1..n.
    """

    def __init__(
        self,
        transport: Transport,
        *,
        n: int,
        t: int,
        field: Field = MPC_FIELD,
        triples: TripleSource | None = None,
        session: str = "smpc",
        timeout: float = DEFAULT_TIMEOUT,
        kappa: int = DEFAULT_KAPPA,
    ) -> None:
        shamir.check_parameters(n, t, field)
        if not 1 <= transport.party <= n:
            raise InvalidInputError(f"party id {transport.party} outside 1..{n}")
        missing = set(range(1, n + 1)) - {transport.party} - set(transport.peers)
        if missing:
            raise InvalidInputError(f"transport cannot reach parties {sorted(missing)}")
        if kappa < 40:
            raise InvalidInputError(f"statistical security kappa={kappa} must be at least 40")
        if timeout <= 0:
            raise InvalidInputError("timeout must be positive")
        self.transport = transport
        self.id = transport.party
        self.n = n
        self.t = t
        self.field = field
        self.triples = triples
        self.session = session
        self.timeout = timeout
        self.kappa = kappa
        self.parties = tuple(range(1, n + 1))
        self.peers = tuple(p for p in self.parties if p != self.id)
        self._step = 0
        self._background: set[asyncio.Future[bytes]] = set()
        self._triple_pool: list[_Pooled] = []
        self._pair_pool: dict[int, list[_Pooled]] = {}

    def __repr__(self) -> str:
        return f"Party(id={self.id}, n={self.n}, t={self.t}, session={self.session!r})"

    # ------------------------------------------------------------------ plumbing

    def _next_tag(self) -> Tag:
        self._step += 1
        return (self.session, self._step)

    def _source(self) -> TripleSource:
        if self.triples is None:
            raise ProtocolError(
                "this party has no triple source: multiplication needs a dealer "
                "(DealerTriples) or another TripleSource"
            )
        return self.triples

    def _keep(self, task: asyncio.Future[bytes]) -> None:
        """Track a receive until it finishes; :meth:`close` cancels what is left."""
        self._background.add(task)
        task.add_done_callback(_forget(self._background))

    async def _send_all(self, tag: Tag, payloads: dict[int, memoryview]) -> None:
        """Send to several peers concurrently; a peer whose connection is gone is skipped.

        Raises:
            TransportError: no send succeeded (every peer is gone, or the payload is larger
                than the transport accepts); a dropped-out minority is tolerated silently.
        """
        results = await asyncio.gather(
            # Read-only views of fresh buffers (codec.encode_vectors_view): transports treat
            # them as bytes (TlsTransport sends them without a copy, others copy them).
            *(self.transport.send(to, tag, p) for to, p in payloads.items()),
            return_exceptions=True,
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        for error in errors:
            if not isinstance(error, TransportError):
                raise error
        if errors and len(errors) == len(results):
            raise errors[0]

    async def _gather(
        self,
        tag: Tag,
        senders: Sequence[int],
        need: int,
        decode: _Decoder,
        what: str,
    ) -> dict[int, Residues]:
        """Receive from ``senders`` until ``need`` decoded messages arrived, within the timeout.

        Returns the messages in arrival order. Receives still running are left to finish in
        the background.

        Raises:
            ProtocolError: fewer than ``need`` arrive in time (names the missing parties).
            ShareError: a sender's message is malformed (names the sender).
        """
        got: dict[int, Residues] = {}
        tasks = {
            asyncio.ensure_future(self.transport.recv(j, tag, timeout=self.timeout)): j
            for j in senders
        }
        for task in tasks:
            # Receives not consumed below finish in the background (draining the mailbox);
            # their results and errors are then dropped.
            self._keep(task)
        failed: dict[int, str] = {}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        pending = set(tasks)
        while len(got) < need and len(got) + len(pending) >= need:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            done, pending = await asyncio.wait(
                pending, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
            )
            if not done:
                break
            for task in done:
                sender = tasks[task]
                exc = task.exception()
                if exc is None:
                    try:
                        got[sender] = decode(task.result())
                    except (ShareError, ProtocolError) as bad:
                        raise ShareError(
                            f"party {sender} sent a malformed message for {what} (tag {tag}): {bad}"
                        ) from None
                elif isinstance(exc, TransportError):
                    failed[sender] = "connection lost"
                elif isinstance(exc, ProtocolError):
                    failed[sender] = "silent"
                else:
                    raise exc
        if len(got) < need:
            missing = sorted(set(senders) - set(got))
            lost = [p for p in missing if failed.get(p) == "connection lost"]
            detail = f" (connection lost: {lost})" if lost else ""
            raise ProtocolError(
                f"{what}: only {len(got)} of the {need} peer messages needed arrived within "
                f"{self.timeout:g} s; missing parties {missing}{detail}"
            )
        return got

    async def _open_block(self, block: Residues, tag: Tag, what: str) -> Residues:
        """Open a (v, k, m) block of shares: send it to every peer, rebuild from the first t."""
        payload = codec.encode_vectors_view(self.field, block)
        v, _, m = block.shape

        def decode(data: bytes) -> Residues:
            return codec.decode_vectors(data, self.field, count=v, length=m)

        sending = asyncio.ensure_future(self._send_all(tag, dict.fromkeys(self.peers, payload)))
        try:
            got = await self._gather(tag, self.peers, self.t - 1, decode, what)
        finally:
            await sending
        xs = [self.id, *list(got)[: self.t - 1]]
        return interpolate(self.field, xs, [block, *(got[x] for x in xs[1:])])

    # ------------------------------------------------------------------ inputs

    def _encode_input(self, values: object, frac_bits: int | None, bits: int) -> Residues:
        return from_int64(self.field, _encode_plain(values, frac_bits, bits))

    def _check_format(self, frac_bits: int | None, bits: int) -> int:
        if not 2 <= bits <= 64:
            raise InvalidInputError(f"input width bits={bits} must be in 2..64")
        if frac_bits is not None and not 0 <= frac_bits < bits - 1:
            raise InvalidInputError(f"frac_bits={frac_bits} must be in 0..{bits - 2}")
        bound = 1 << (bits - 1)
        _check_bound(self.field, bound, f"a {bits}-bit input")
        return bound

    async def input(
        self,
        values: object = None,
        *,
        owner: int,
        frac_bits: int | None = None,
        bits: int = DEFAULT_BITS,
    ) -> SharedVector:
        """Secret-share ``owner``'s values to all parties (one message from owner to each).

        Args:
            values: at the owner, a 1-D vector (or a scalar) of ints, or of reals when
                ``frac_bits`` is given; ignored at the other parties.
            owner: the id of the party whose values these are (every party passes the same).
            frac_bits: None for integers; f to encode reals as round(v * 2^f).
            bits: the encoded values must fit a signed ``bits``-bit integer (the owner checks;
                the bound is public and lets the runtime refuse products that could overflow).

        Returns:
            This party's share of the vector. Reveals the vector's length to everyone.

        Raises:
            OverflowDetectedError: (owner) a value out of range; the field too small for bits.
            ProtocolError: (others) the owner went silent within the timeout.
            ShareError: (others) the owner's message is malformed.
        """
        bound = self._check_format(frac_bits, bits)
        if owner not in self.parties:
            raise InvalidInputError(f"owner {owner} is not a party 1..{self.n}")
        tag = self._next_tag()
        if self.id == owner:
            if values is None:
                raise InvalidInputError(f"party {owner} owns this input and must supply values")
            secret = self._encode_input(values, frac_bits, bits)
            shares = share_elements(self.field, secret, n=self.n, t=self.t)
            await self._send_all(
                tag, {j: codec.encode_vectors_view(self.field, shares[j - 1]) for j in self.peers}
            )
            mine = shares[self.id - 1]
        else:
            got = await self._gather(
                tag,
                [owner],
                1,
                lambda data: codec.decode_vectors(data, self.field, count=1)[0],
                f"input of party {owner}",
            )
            mine = got[owner]
        return SharedVector(mine, self.field, frac_bits, bound)

    async def input_all(
        self, values: object, *, frac_bits: int | None = None, bits: int = DEFAULT_BITS
    ) -> list[SharedVector]:
        """Every party secret-shares its own values in one round (the paper's first step).

        Args:
            values: this party's 1-D vector (lengths may differ between parties).
            frac_bits, bits: as for :meth:`input`; every party passes the same.

        Returns:
            n shared vectors, entry i holding party i + 1's input. Reveals every input's length.

        Raises:
            ProtocolError: a party went silent within the timeout (all inputs are required).
            ShareError: a party's message is malformed.
            OverflowDetectedError: one of this party's values is out of range.
        """
        bound = self._check_format(frac_bits, bits)
        tag = self._next_tag()
        secret = self._encode_input(values, frac_bits, bits)
        shares = share_elements(self.field, secret, n=self.n, t=self.t)
        sending = asyncio.ensure_future(
            self._send_all(
                tag, {j: codec.encode_vectors_view(self.field, shares[j - 1]) for j in self.peers}
            )
        )
        try:
            got = await self._gather(
                tag,
                self.peers,
                len(self.peers),
                lambda data: codec.decode_vectors(data, self.field, count=1)[0],
                "input round",
            )
        finally:
            await sending
        got[self.id] = shares[self.id - 1]
        return [SharedVector(got[i], self.field, frac_bits, bound) for i in self.parties]

    def constant(self, values: object, *, frac_bits: int | None = None) -> SharedVector:
        """Return a public vector as a (trivial) sharing: every share equals the value."""
        ints = _encode_plain(values, frac_bits, DEFAULT_BITS)
        bound = _max_abs(ints)
        return SharedVector(from_int64(self.field, ints), self.field, frac_bits, bound)

    # ------------------------------------------------------------------ outputs

    async def open(self, x: SharedVector) -> Opened:
        """Reveal a shared vector to every party.

        Every party sends its share to every other party and interpolates from the first t
        shares that arrive, its own included. Drop-outs: succeeds as long as t parties answer.

        Returns:
            For integers, int64 when every value fits (always when the public bound is below
            2^63), else exact Python ints (numpy object array); for fixed-point values,
            float64 (v / 2^f).

        Raises:
            ProtocolError: fewer than t parties answered within the timeout (names the
                missing ones).
            ShareError: a peer's message is malformed.
        """
        return (await self.open_many([x]))[0]

    async def open_many(self, xs: Sequence[SharedVector]) -> list[Opened]:
        """Reveal several shared vectors in one round (one message per peer)."""
        if not xs:
            return []
        for x in xs:
            if x.field != self.field:
                raise ShareError("shared vector from another field")
        tag = self._next_tag()
        joined = np.concatenate([x.shares for x in xs], axis=1) if len(xs) > 1 else xs[0].shares
        block = joined.reshape(1, *joined.shape)
        opened = (await self._open_block(block, tag, "opening"))[0]
        out: list[Opened] = []
        start = 0
        for x in xs:
            part = opened[:, start : start + x.length]
            start += x.length
            out.append(self._decode_opened(part, x))
        return out

    def _decode_opened(self, elements: Residues, x: SharedVector) -> Opened:
        ints = self._opened_int64(elements, x.bound)
        if x.frac_bits is None:
            return self.field.to_ints(elements) if ints is None else ints
        scale = float(1 << x.frac_bits)
        if ints is None:
            return self.field.to_float(elements, scale=scale)
        return ints.astype(np.float64) / scale

    def _opened_int64(self, elements: Residues, bound: int) -> npt.NDArray[np.int64] | None:
        """Return opened values as int64 if they all fit, else None (exact path needed)."""
        if self.field.modulus < 1 << 66:  # a small field: the generic conversion is exact
            try:
                return self.field.to_int64(elements)
            except OverflowDetectedError:
                return None
        candidate = small_to_int64(self.field, elements)
        if bound < 1 << 63 and 4 * bound < self.field.modulus:
            return candidate  # guaranteed exact by the public bound
        # The bound allows larger values: keep the candidate only if it is the value.
        if np.array_equal(from_int64(self.field, candidate), elements):
            return candidate
        return None

    # ------------------------------------------------------------------ multiplication

    def _product_format(self, x: SharedVector, y: SharedVector) -> tuple[int | None, int]:
        if x.field != self.field or y.field != self.field:
            raise ShareError("shared vector from another field")
        if x.length != y.length:
            raise ShareError(f"shared vectors of different lengths: {x.length}, {y.length}")
        fx, fy = x.frac_bits, y.frac_bits
        frac = None if fx is None and fy is None else (fx or 0) + (fy or 0)
        return frac, x.bound * y.bound

    def _truncation_plan(self, bound: int, shift: int) -> int:
        """Return ell, the bit size of truncated values, or raise if the field is too small."""
        ell = max(bound.bit_length() + 1, shift + 1)
        room = mask_bits(self.field)
        if ell + self.kappa > room:
            raise OverflowDetectedError(
                f"truncating values of up to {ell} bits with kappa={self.kappa} needs a "
                f"{ell + self.kappa + 2}-bit field, this one has "
                f"{self.field.modulus.bit_length()} bits"
            )
        return ell

    async def mul(self, x: SharedVector, y: SharedVector, *, truncate: bool = True) -> SharedVector:
        """Multiply element-wise with Beaver triples: one round for the whole vector.

        Takes triples ([a], [b], [c = ab]), opens d = x - a and e = y - b together (one
        message per peer), and returns z = c + d[b] + e[a] + de. Integers are exact. Two
        fixed-point operands with f fractional bits give a product with 2f; with ``truncate``
        (default) it is brought back to f bits by :meth:`truncate` (one more round, error
        below one unit 2^-f, unbiased).

        Reveals nothing: d and e are uniformly random (one-time pads a and b).

        Raises:
            OverflowDetectedError: the product (or the truncation mask) could wrap around the
                field, judged from the public bounds before anything is sent.
            ProtocolError: no triple source, the dealer or fewer than t parties answered.
        """
        frac, bound = self._product_format(x, y)
        _check_bound(self.field, bound, "the product")
        shift = 0
        if truncate and x.frac_bits is not None and y.frac_bits is not None:
            shift = min(x.frac_bits, y.frac_bits)
        if shift:
            self._truncation_plan(bound, shift)
        return await self._multiply(x, y, frac, bound, shift, sum_up=False)

    async def dot(self, x: SharedVector, y: SharedVector, *, truncate: bool = True) -> SharedVector:
        """Return the inner product sum_j x_j y_j as a length-1 shared vector.

        One Beaver round for the element-wise products, then a local sum; fixed-point
        results are truncated once, after the sum (one more round) unless ``truncate=False``
        (then the result has 2f fractional bits, exact). Reveals nothing.

        Raises:
            OverflowDetectedError, ProtocolError: as for :meth:`mul`.
        """
        frac, bound = self._product_format(x, y)
        bound *= max(x.length, 1)
        _check_bound(self.field, bound, "the inner product")
        shift = 0
        if truncate and x.frac_bits is not None and y.frac_bits is not None:
            shift = min(x.frac_bits, y.frac_bits)
        if shift:
            self._truncation_plan(bound, shift)
        return await self._multiply(x, y, frac, bound, shift, sum_up=True)

    async def sum_of_squares(self, x: SharedVector, *, truncate: bool = True) -> SharedVector:
        """Return sum_j x_j^2 as a length-1 shared vector (:meth:`dot` of x with itself)."""
        return await self.dot(x, x, truncate=truncate)

    async def _multiply(
        self,
        x: SharedVector,
        y: SharedVector,
        frac: int | None,
        bound: int,
        shift: int,
        *,
        sum_up: bool,
    ) -> SharedVector:
        m = x.length
        # Reserve tags and dealer batches now, in program order (see the module docstring).
        tag = self._next_tag()
        trunc_tag = self._next_tag() if shift else None
        triple_task = self._reserve_triples(m)
        pair_task = self._reserve_pairs(1 if sum_up else m, shift) if shift else None
        try:
            a, b, c = await triple_task
            for part in (a, b, c):
                if part.shape != x.shares.shape:
                    raise ProtocolError("triple source returned triples of the wrong shape")
            column = self.field.column
            # d = x - a and e = y - b, computed as x + (p - a) and reduced once.
            block = np.empty((2, self.field.k, m), dtype=np.uint64)
            np.subtract(column, a, out=block[0])
            block[0] += x.shares
            np.subtract(column, b, out=block[1])
            block[1] += y.shares
            block %= column
            opened = await self._open_block(block, tag, "multiplication")
            d, e = opened[0], opened[1]
            # z = c + d b + e a + d e = c + d (b + e) + e a
            z = b + e
            z %= column
            z *= d
            z %= column
            np.multiply(e, a, out=d)  # d is no longer needed
            d %= column
            z += d
            z += c
            z %= column
            if sum_up:
                z = z.sum(axis=1, dtype=np.uint64).reshape(self.field.k, 1) % column
            result = SharedVector(z, self.field, frac, bound)
            if pair_task is None or trunc_tag is None:
                return result
            r, r_shifted = await pair_task
            return await self._truncate_with(result, shift, r, r_shifted, trunc_tag)
        finally:
            for task in (triple_task, pair_task):
                if task is not None and not task.done():
                    task.cancel()

    # ------------------------------------------------------------------ preprocessing

    def prefetch(
        self, *, triples: int = 0, truncation_pairs: int = 0, frac_bits: int = 16
    ) -> asyncio.Future[None]:
        """Start fetching triples and truncation pairs ahead of time (the offline phase).

        Returns at once with a future: ``await party.prefetch(triples=N)`` waits for the
        material; calling it without awaiting lets the dealer work while the program goes on
        (for example during the input round). Later multiplications (and truncations by
        ``frac_bits``) take from this pool first, in call order, and ask the triple source
        only for what is missing. A product of m values takes m triples (and m pairs if it is
        truncated); a dot product takes m triples and one pair. Every party must make the same
        calls (like any other operation).

        Raises:
            ProtocolError: no triple source (the future raises if the source fails).
        """
        if triples < 0 or truncation_pairs < 0:
            raise InvalidInputError("counts must be non-negative")
        source = self._source()
        fetching: list[asyncio.Future[tuple[Residues, ...]]] = []
        if triples:
            fut = asyncio.ensure_future(_as_tuple(source.triples(triples)))
            self._triple_pool.append((fut, 0, triples))
            fut.add_done_callback(_retrieve)
            fetching.append(fut)
        if truncation_pairs:
            fut = asyncio.ensure_future(
                _as_tuple(
                    source.truncation_pairs(
                        truncation_pairs, frac_bits=frac_bits, mask_bits=mask_bits(self.field)
                    )
                )
            )
            self._pair_pool.setdefault(frac_bits, []).append((fut, 0, truncation_pairs))
            fut.add_done_callback(_retrieve)
            fetching.append(fut)
        done = asyncio.ensure_future(_wait_all(fetching))
        done.add_done_callback(_retrieve)
        return done

    def _reserve_triples(self, count: int) -> asyncio.Future[tuple[Residues, ...]]:
        """Take ``count`` triples: from the pool now, the rest from the source (in order)."""
        return self._reserve(self._triple_pool, count, lambda n: self._source().triples(n))

    def _reserve_pairs(self, count: int, shift: int) -> asyncio.Future[tuple[Residues, ...]]:
        """Take ``count`` truncation pairs for ``shift``: pool first, then the source."""
        room = mask_bits(self.field)
        return self._reserve(
            self._pair_pool.setdefault(shift, []),
            count,
            lambda n: self._source().truncation_pairs(n, frac_bits=shift, mask_bits=room),
        )

    def _reserve(
        self,
        pool: list[_Pooled],
        count: int,
        fetch: Callable[[int], Awaitable[tuple[Residues, ...]]],
    ) -> asyncio.Future[tuple[Residues, ...]]:
        taken: list[_Pooled] = []
        need = count
        while need and pool:
            fut, start, size = pool[0]
            take = min(size, need)
            taken.append((fut, start, take))
            if take == size:
                pool.pop(0)
            else:
                pool[0] = (fut, start + take, size - take)
            need -= take
        rest: asyncio.Future[tuple[Residues, ...]] | None = None
        if need:
            self._source()  # fail now, before anything is reserved elsewhere
            # Ask the source now, not after the pooled part arrives: its reservation must take
            # its place in program order at every party, whatever the pool's timing.
            rest = asyncio.ensure_future(_as_tuple(fetch(need)))
            rest.add_done_callback(_retrieve)

        async def get() -> tuple[Residues, ...]:
            parts: list[tuple[Residues, ...]] = []
            for fut, start, size in taken:
                whole = await asyncio.shield(fut)  # shared with other reservations
                parts.append(tuple(p[:, start : start + size] for p in whole))
            if rest is not None:
                parts.append(await rest)
            if len(parts) == 1:
                return parts[0]
            return tuple(
                np.concatenate([part[i] for part in parts], axis=1) for i in range(len(parts[0]))
            )

        return asyncio.ensure_future(get())

    # ------------------------------------------------------------------ truncation

    async def truncate(self, x: SharedVector, bits: int | None = None) -> SharedVector:
        """Divide by 2^bits with probabilistic rounding (Catrina & de Hoogh, FC 2010, sec. 3).

        With a dealer pair ([r], [r >> bits]) of r uniform in [0, 2^R) (R = M.bit_length()-2),
        the parties open c = x + 2^(ell-1) + r, where |x| < 2^(ell-1) (from the public bound),
        and compute [y] = (c >> bits) - [r >> bits] - 2^(ell-1-bits). Then y = floor(x / 2^bits)
        + u with u = 1 with probability frac(x / 2^bits): the error is below one unit of the
        result (2^-f in fixed-point) and E[y] = x / 2^bits exactly.

        Reveals c, which hides x statistically: its distance from uniform noise is at most
        2^(ell - R) <= 2^-kappa.

        Args:
            x: the shared values (integers, or fixed-point with f >= bits fractional bits;
                the result has f - bits).
            bits: how many bits to drop; required for integers, defaults to ``x.frac_bits``
                for fixed-point values (giving integers).

        Raises:
            OverflowDetectedError: ell + kappa > R, the field is too small for x's bound.
            InvalidInputError: bits out of range.
        """
        shift = x.frac_bits if bits is None else bits
        if shift is None or shift < 0 or (x.frac_bits is not None and shift > x.frac_bits):
            raise InvalidInputError(f"cannot truncate by {bits} bits")
        if x.field != self.field:
            raise ShareError("shared vector from another field")
        if shift == 0:
            return x
        self._truncation_plan(x.bound, shift)
        tag = self._next_tag()
        pair_task = self._reserve_pairs(x.length, shift)
        try:
            r, r_shifted = await pair_task
        finally:
            if not pair_task.done():
                pair_task.cancel()
        return await self._truncate_with(x, shift, r, r_shifted, tag)

    async def _truncate_with(
        self, x: SharedVector, shift: int, r: Residues, r_shifted: Residues, tag: Tag
    ) -> SharedVector:
        if r.shape != x.shares.shape or r_shifted.shape != x.shares.shape:
            raise ProtocolError("triple source returned truncation pairs of the wrong shape")
        ell = self._truncation_plan(x.bound, shift)
        field = self.field
        column = field.column
        offset = 1 << (ell - 1)
        masked = field.add_int(field.add(x.shares, r), offset)
        c = (await self._open_block(masked.reshape(1, *masked.shape), tag, "truncation"))[0]
        low = low_bits(field, c, shift)
        # (c - low) / 2^shift, exactly divisible, computed in every residue.
        inverse = np.array([[pow(1 << shift, -1, p)] for p in field.moduli], dtype=np.uint64)
        high = field.sub(c, low % column)
        high *= inverse
        high %= column
        shares = field.add_int(field.sub(high, r_shifted), -(offset >> shift))
        frac = None if x.frac_bits is None else x.frac_bits - shift
        return SharedVector(shares, field, frac, (x.bound >> shift) + 1)

    # ------------------------------------------------------------------ lifecycle

    async def close(self) -> None:
        """Tell the triple source we are done and stop background receives.

        Does not close the transport (whoever created it closes it).
        """
        try:
            if self.triples is not None:
                await self.triples.close()
        finally:
            for task in list(self._background):
                task.cancel()
            self._background.clear()

    async def __aenter__(self) -> Party:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def _as_tuple(fetch: Awaitable[tuple[Residues, ...]]) -> tuple[Residues, ...]:
    return tuple(await fetch)


async def _wait_all(futures: Sequence[asyncio.Future[tuple[Residues, ...]]]) -> None:
    for fut in futures:
        await asyncio.shield(fut)


def _retrieve(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()  # a failed prefetch is reported where its material is used


def _forget(tasks: set[asyncio.Future[bytes]]) -> Callable[[asyncio.Future[bytes]], None]:
    def done(task: asyncio.Future[bytes]) -> None:
        tasks.discard(task)
        if not task.cancelled():
            task.exception()  # retrieve it: a late or failed receive is not an error here

    return done


__all__ = [
    "DEFAULT_BITS",
    "DEFAULT_KAPPA",
    "MPC_FIELD",
    "Opened",
    "Party",
    "SharedVector",
    "from_int64",
    "interpolate",
    "low_bits",
    "mask_bits",
    "random_elements",
    "share_elements",
    "small_to_int64",
]

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
trusted dealer for triples (see :mod:`smpcloud.mpc.dealer`). What a deviating party is kept
from or caught at: malformed messages are rejected naming the sender; the parameters of its
triples and truncation pairs are fixed by the session (:class:`SessionParameters`, which each
party and the dealer compute from the same configuration), so it cannot steer them; and every
opening checks, when more than t shares are at hand, that they lie on one polynomial, naming
the party whose share disagrees when it can be told (:mod:`smpcloud.mpc.rounds`). Not detected:
wrong but consistent values (no MACs; a party chooses its own inputs freely), nor a changed
share when only t shares arrive.

The default field :data:`MPC_FIELD` is larger than the crypto default; see its comment in
:mod:`smpcloud.mpc.session`.

The parts: :class:`Party` (inputs, openings, Beaver multiplication, truncation) is here;
:class:`SharedVector`, the encoding of plaintext inputs and the decoding of opened values are
in :mod:`smpcloud.mpc.shared`,
a party's message rounds in :mod:`smpcloud.mpc.rounds`, its prefetched triples and truncation
pairs in :mod:`smpcloud.mpc.preprocessing`, the RNS conversions in :mod:`smpcloud.mpc.rns`.
This module re-exports :class:`SharedVector` and the conversions under their old names.

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
from collections.abc import Collection, Sequence

import numpy as np

from smpcloud.crypto.field import Field, Residues, random_elements
from smpcloud.crypto.shamir import interpolate, share_elements
from smpcloud.errors import (
    InvalidInputError,
    OverflowDetectedError,
    ProtocolError,
    ShareError,
)
from smpcloud.mpc import codec
from smpcloud.mpc.preprocessing import MaterialPool
from smpcloud.mpc.rns import from_int64, low_bits, mask_bits, small_to_int64
from smpcloud.mpc.rounds import Rounds
from smpcloud.mpc.session import DEFAULT_KAPPA, MPC_FIELD, SessionParameters
from smpcloud.mpc.shared import (
    DEFAULT_BITS,
    Opened,
    SharedVector,
    check_bound,
    decode_opened,
    encode_plain,
    max_abs,
)
from smpcloud.mpc.transport import DEFAULT_TIMEOUT, Tag, Transport
from smpcloud.mpc.triples import TripleSource


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
        truncation_shifts: the truncation shifts (bits) the program may use, as the session
            fixes them (:attr:`SessionParameters.shifts`); None allows every shift.
        grace: seconds an opening keeps waiting, once t shares are in, for the other live
            peers' shares (to check them); None: ``timeout`` (see :mod:`smpcloud.mpc.rounds`).

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
        truncation_shifts: Collection[int] | None = None,
        grace: float | None = None,
    ) -> None:
        #: What this party agrees on with the others and the dealer (validates n, t, kappa).
        self.parameters = SessionParameters(
            n=n,
            t=t,
            field=field,
            session=session,
            kappa=kappa,
            shifts=None if truncation_shifts is None else frozenset(truncation_shifts),
        )
        if not 1 <= transport.party <= n:
            raise InvalidInputError(f"party id {transport.party} outside 1..{n}")
        missing = set(range(1, n + 1)) - {transport.party} - set(transport.peers)
        if missing:
            raise InvalidInputError(f"transport cannot reach parties {sorted(missing)}")
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
        self._rounds = Rounds(
            transport, peers=self.peers, t=t, field=field, timeout=timeout, grace=grace
        )
        self._material = MaterialPool(self._source, field)

    @classmethod
    def from_parameters(
        cls,
        transport: Transport,
        parameters: SessionParameters,
        *,
        triples: TripleSource | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        grace: float | None = None,
    ) -> Party:
        """Return this party of the session ``parameters`` describe (computed from the
        deployment as the dealer computes them: :meth:`SessionParameters.from_deployment`)."""
        return cls(
            transport,
            n=parameters.n,
            t=parameters.t,
            field=parameters.field,
            triples=triples,
            session=parameters.session,
            timeout=timeout,
            kappa=parameters.kappa,
            truncation_shifts=parameters.shifts,
            grace=grace,
        )

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

    # ------------------------------------------------------------------ inputs

    def _encode_input(self, values: object, frac_bits: int | None, bits: int) -> Residues:
        return from_int64(self.field, encode_plain(values, frac_bits, bits))

    def _check_format(self, frac_bits: int | None, bits: int) -> int:
        if not 2 <= bits <= 64:
            raise InvalidInputError(f"input width bits={bits} must be in 2..64")
        if frac_bits is not None and not 0 <= frac_bits < bits - 1:
            raise InvalidInputError(f"frac_bits={frac_bits} must be in 0..{bits - 2}")
        bound = 1 << (bits - 1)
        check_bound(self.field, bound, f"a {bits}-bit input")
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
            await self._rounds.send_all(
                tag, {j: codec.encode_vectors_view(self.field, shares[j - 1]) for j in self.peers}
            )
            mine = shares[self.id - 1]
        else:
            got = await self._rounds.gather(
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
            self._rounds.send_all(
                tag, {j: codec.encode_vectors_view(self.field, shares[j - 1]) for j in self.peers}
            )
        )
        try:
            got = await self._rounds.gather(
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
        ints = encode_plain(values, frac_bits, DEFAULT_BITS)
        bound = max_abs(ints)
        return SharedVector(from_int64(self.field, ints), self.field, frac_bits, bound)

    # ------------------------------------------------------------------ outputs

    async def open(self, x: SharedVector) -> Opened:
        """Reveal a shared vector to every party.

        Every party sends its share to every other party, waits for the live peers' shares,
        checks them when more than t are at hand and interpolates from t (a checked opening,
        :mod:`smpcloud.mpc.rounds`). Drop-outs: succeeds as long as t parties answer.

        Returns:
            For integers, int64 when every value fits (always when the public bound is below
            2^63), else exact Python ints (numpy object array); for fixed-point values,
            float64 (v / 2^f).

        Raises:
            ProtocolError: fewer than t parties answered within the timeout (names the
                missing ones), or their shares disagree (names the party when it can).
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
        opened = (await self._rounds.open_block(block, tag, "opening"))[0]
        out: list[Opened] = []
        start = 0
        for x in xs:
            part = opened[:, start : start + x.length]
            start += x.length
            out.append(decode_opened(part, x))
        return out

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
        """Return ell, the bit size of truncated values, or raise if the field is too small
        or the session does not use this shift."""
        self.parameters.check_shift(shift)
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
            InvalidInputError: a truncation shift the session does not use.
        """
        frac, bound = self._product_format(x, y)
        check_bound(self.field, bound, "the product")
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
            OverflowDetectedError, ProtocolError, InvalidInputError: as for :meth:`mul`.
        """
        frac, bound = self._product_format(x, y)
        bound *= max(x.length, 1)
        check_bound(self.field, bound, "the inner product")
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
        triple_task = self._material.reserve_triples(m)
        pair_task = self._material.reserve_pairs(1 if sum_up else m, shift) if shift else None
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
            opened = await self._rounds.open_block(block, tag, "multiplication")
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
            InvalidInputError: a shift (``frac_bits``) the session does not use.
        """
        if truncation_pairs:
            self.parameters.check_shift(frac_bits)
        return self._material.prefetch(
            triples=triples, truncation_pairs=truncation_pairs, frac_bits=frac_bits
        )

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
            InvalidInputError: bits out of range, or a shift the session does not use.
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
        pair_task = self._material.reserve_pairs(x.length, shift)
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
        c = (await self._rounds.open_block(masked.reshape(1, *masked.shape), tag, "truncation"))[0]
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

    async def barrier(self) -> None:
        """A last round: every party says it is done and waits for the live peers (up to the
        timeout; n - t drop-outs tolerated), so that none closes while others still read.

        Raises:
            ProtocolError: fewer than t parties answered in time (names the missing ones).
        """
        await self._rounds.barrier(self._next_tag())

    async def close(self) -> None:
        """Tell the triple source we are done and stop background receives.

        Does not close the transport (whoever created it closes it).
        """
        try:
            if self.triples is not None:
                await self.triples.close()
        finally:
            self._rounds.close()

    async def __aenter__(self) -> Party:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


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

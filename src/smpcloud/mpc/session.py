"""What every member of one peer computation agrees on before it starts: its session parameters.

A :class:`SessionParameters` value is computed in one place — from the deployment file
(:meth:`SessionParameters.from_deployment`) or from the arguments of an in-process run — and
both sides use it: each computing party's :class:`~smpcloud.mpc.runtime.Party` (its field,
threshold, truncation shifts and statistical security) and the dealer
(:func:`~smpcloud.mpc.dealer.run_dealer`), which checks every request against it
(:meth:`SessionParameters.check_request`). So the parameters of correlated randomness — in
particular the size of truncation masks, on which the privacy of every truncated value rests —
are fixed by the session, never by whichever party asks first.

It also holds the two constants the parameters default to: the MPC field and kappa.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Final

from smpcloud.crypto import shamir
from smpcloud.crypto.field import Field
from smpcloud.errors import InvalidInputError, ProtocolError
from smpcloud.mpc.codec import Request, RequestOp
from smpcloud.mpc.config import DeploymentConfig
from smpcloud.mpc.rns import mask_bits
from smpcloud.mpc.triples import MAX_BATCH

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


def describe_request(request: Request) -> str:
    """Return a request in words, for messages (``"5 triples"``, ``"3 truncation pairs ..."``)."""
    if request.op == RequestOp.TRIPLES:
        return f"{request.count} triples"
    if request.op == RequestOp.TRUNCATION_PAIRS:
        return (
            f"{request.count} truncation pairs with frac_bits={request.frac_bits}, "
            f"mask_bits={request.mask_bits}"
        )
    return request.op.name.lower()


@dataclass(frozen=True, slots=True)
class SessionParameters:
    """The parameters one computation fixes for all its members.

    Attributes:
        n: number of computing parties (ids 1..n).
        t: threshold: t shares reconstruct (degree t - 1).
        field: the field of the shares.
        session: the computation's name (the first half of every tag).
        kappa: statistical security of truncation masks (bits), at least 40.
        shifts: the truncation shifts (bits dropped) the program may use; None allows every
            shift in 1..mask_bits - 1. Truncation masks always have :attr:`mask_bits` bits.
        max_batch: the largest batch of triples or pairs the dealer serves.

    Raises:
        InvalidInputError: parameters out of range.
    """

    n: int
    t: int
    field: Field = MPC_FIELD
    session: str = "smpc"
    kappa: int = DEFAULT_KAPPA
    shifts: frozenset[int] | None = None
    max_batch: int = MAX_BATCH

    def __post_init__(self) -> None:
        shamir.check_parameters(self.n, self.t, self.field)
        if self.kappa < 40:
            raise InvalidInputError(f"statistical security kappa={self.kappa} must be at least 40")
        if not 1 <= self.max_batch <= MAX_BATCH:
            raise InvalidInputError(f"max_batch must be in 1..{MAX_BATCH}")
        if self.shifts is not None:
            room = self.mask_bits
            bad = sorted(s for s in self.shifts if not 0 < s < room)
            if bad:
                raise InvalidInputError(f"truncation shifts {bad} outside 1..{room - 1}")

    @property
    def mask_bits(self) -> int:
        """The bit size of every truncation mask: the field's room (2^(R+1) <= M)."""
        return mask_bits(self.field)

    @classmethod
    def from_deployment(
        cls,
        config: DeploymentConfig,
        *,
        session: str = "smpc",
        field: Field = MPC_FIELD,
        shifts: Collection[int] | None = None,
    ) -> SessionParameters:
        """Return the parameters every member of a deployment computes from its file.

        Args:
            config: the deployment (its threshold, its parties and its ``frac_bits``).
            session: the computation's name.
            field: the field of the shares.
            shifts: the truncation shifts the program uses; default: the deployment's
                ``truncation_shifts`` (None there: every shift; a shift changes only what a
                truncation computes, not what it hides, and every party of a batch must
                still ask for the same one).

        Raises:
            InvalidInputError: parameters out of range.
        """
        chosen = shifts if shifts is not None else config.truncation_shifts
        if chosen is not None:
            chosen = frozenset(chosen)
        return cls(
            n=config.parties, t=config.threshold, field=field, session=session, shifts=chosen
        )

    def check_shift(self, shift: int) -> None:
        """Check that the program may truncate by ``shift`` bits in this session.

        Raises:
            InvalidInputError: a shift outside :attr:`shifts` (or outside 1..mask_bits - 1).
        """
        if not 0 < shift < self.mask_bits:
            raise InvalidInputError(f"truncation shift {shift} outside 1..{self.mask_bits - 1}")
        if self.shifts is not None and shift not in self.shifts:
            raise InvalidInputError(
                f"truncation shift {shift} is not among this session's shifts {sorted(self.shifts)}"
            )

    def check_request(self, request: Request, *, party: int, batch: int) -> None:
        """Check a party's request to the dealer against what the session fixes.

        Raises:
            ProtocolError: a count outside 1..max_batch, truncation masks of another size than
                :attr:`mask_bits`, or a shift the session does not use. The message names
                the party, what it asked for and what the session fixes.
        """
        if request.op == RequestOp.DONE:
            return
        asked = f"party {party} asked for {describe_request(request)} (batch {batch})"
        if not 1 <= request.count <= self.max_batch:
            raise ProtocolError(f"{asked}: a batch of {request.count} outside 1..{self.max_batch}")
        if request.op != RequestOp.TRUNCATION_PAIRS:
            return
        fixed = f"session {self.session!r} fixes mask_bits={self.mask_bits}"
        if request.mask_bits != self.mask_bits:
            raise ProtocolError(f"{asked}, but {fixed}")
        shifts = (
            f"shifts {sorted(self.shifts)}"
            if self.shifts is not None
            else f"shifts 1..{self.mask_bits - 1}"
        )
        if not 0 < request.frac_bits < self.mask_bits or (
            self.shifts is not None and request.frac_bits not in self.shifts
        ):
            raise ProtocolError(f"{asked}, but {fixed} and {shifts}")


__all__ = [
    "DEFAULT_KAPPA",
    "MPC_FIELD",
    "SessionParameters",
    "describe_request",
]

"""The public frame of a Paillier report's validity proof: the key's base and the layout.

:class:`ReportBase` is the fixed DJN base a report is encrypted on (derived from n alone, so
prover and verifier share it and its fixed-base table); :class:`ProofLayout` says what each
ciphertext of a report carries and fixes the proof's exact byte layout. The proof itself, what
it proves and reveals, and its assumptions are in :mod:`smpcloud.crypto.validity`, which
re-exports these names.

Pure module: no sockets, no files, no global mutable state, no randomness.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Final

import gmpy2
from gmpy2 import mpz

from smpcloud.crypto.fixed_base import FixedBaseTable, choose_window
from smpcloud.crypto.packing_layout import Packing
from smpcloud.crypto.pedersen import POINT_BYTES, SCALAR_BYTES
from smpcloud.crypto.range_proof import BIT_PROOF_BYTES
from smpcloud.crypto.wire import int_bytes
from smpcloud.errors import InvalidInputError

#: Statistical zero-knowledge slack of the integer responses, in bits.
STATISTICAL_BITS: Final = 48
#: Bits of the link's challenge.
CHALLENGE_BITS: Final = 128
#: Largest bit length of a span U the proof is sound for (k + 128 + S + 2 < 252).
MAX_SPAN_BITS: Final = 72
#: Bytes of the Fiat-Shamir digest sent with each ciphertext's proof.
DIGEST_BYTES: Final = 64
PROOF_DOMAIN: Final = b"smpcloud/report-proof/v1"
BASE_DOMAIN: Final = b"smpcloud/report-base/v1"


class ReportBase:
    """The fixed DJN base of report encryption for a modulus n, and its fixed-base table.

    x = SHAKE-256(BASE_DOMAIN || n) mod n, h = -x^2 mod n, h_s = h^n mod n^2: derived from n
    alone, so prover and verifier share it (and its table). Build once per key and keep it
    (this module holds no cache): ~20 ms for h_s plus the table (~0.1 s, up to 16 MiB, see
    :mod:`smpcloud.crypto.fixed_base`) at 2048 bits.

    Args:
        n: the Paillier modulus (odd, at least 128 bits).
        table: build the fixed-base table (False: one powmod per exponentiation, better for a
            single short report).

    Raises:
        InvalidInputError: n not an odd integer of at least 128 bits, or x not a unit mod n
            (which would factor n).
    """

    __slots__ = (
        "bits",
        "digest",
        "h_s",
        "n",
        "n_squared",
        "nsq_bytes",
        "rho_bits",
        "table",
        "z_bits",
    )

    def __init__(self, n: int, *, table: bool = True) -> None:
        if type(n) is not int or n % 2 == 0 or n.bit_length() < 128:
            raise InvalidInputError("a report base needs an odd modulus of at least 128 bits")
        n_bytes = int_bytes(n)
        seed = hashlib.shake_256(BASE_DOMAIN + n_bytes).digest((n.bit_length() + 128 + 7) // 8)
        x = mpz(int.from_bytes(seed, "big")) % n
        if gmpy2.gcd(x, n) != 1:
            raise InvalidInputError("the report base is not a unit mod n")
        self.n = mpz(n)
        self.bits = n.bit_length()
        self.n_squared = self.n * self.n
        self.nsq_bytes = nsq_bytes(self.bits)
        self.h_s = gmpy2.powmod((-(x * x)) % self.n, self.n, self.n_squared)
        self.rho_bits = (self.bits + 1) // 2
        self.z_bits = 8 * z_bytes(self.bits)
        window = choose_window(self.z_bits, self.nsq_bytes) if table else 0
        self.table = FixedBaseTable(self.h_s, self.n_squared, self.z_bits, window)
        self.digest = hashlib.sha512(b"smpcloud/report-base/key\x00" + n_bytes).digest()

    def power(self, exponent: int) -> mpz:
        """Return h_s^exponent mod n^2 for 0 <= exponent < 2^z_bits."""
        return self.table.mul_pow(mpz(1), exponent)

    def encrypt(self, plaintext: int, rho: int) -> int:
        """Return (1 + m n) h_s^rho mod n^2 for m = plaintext mod n."""
        base = self.n * (mpz(plaintext) % self.n) + 1
        return int(self.table.mul_pow(base, rho))


def _ceil8(bits: int) -> int:
    return (bits + 7) // 8


def nsq_bytes(key_bits: int) -> int:
    """Bytes of a value mod n^2 in a proof or a challenge, for a modulus of ``key_bits`` bits."""
    return _ceil8(2 * key_bits)


def z_bytes(key_bits: int) -> int:
    """Bytes of the randomiser's response z, for a modulus of ``key_bits`` bits."""
    return _ceil8((key_bits + 1) // 2 + CHALLENGE_BITS + STATISTICAL_BITS + 1)


@dataclass(frozen=True, slots=True)
class ProofLayout:
    """What each ciphertext of a report carries: m_j = offset + sum_s 2^(s slot_bits) u_(j,s).

    Attributes:
        span: U, each value lies in [0, U] (1 <= U < 2^MAX_SPAN_BITS).
        offset: K, added to every plaintext (an unpacked task's encoded minimum; 0 if packed).
        length: values per report.
        slots: values per ciphertext (1 unpacked).
        slot_bits: bits between two slots (0 unpacked).

    Raises:
        InvalidInputError: a field out of range, or a span too wide to prove (narrow the range).
    """

    span: int
    offset: int
    length: int
    slots: int = 1
    slot_bits: int = 0

    def __post_init__(self) -> None:
        for name in ("span", "offset", "length", "slots", "slot_bits"):
            if type(getattr(self, name)) is not int:
                raise InvalidInputError(f"proof layout: {name} must be an int")
        if self.span < 1:
            raise InvalidInputError(
                "a range proof needs max_value above min_value (the encoded span is 0)"
            )
        if self.span.bit_length() > MAX_SPAN_BITS:
            raise InvalidInputError(
                f"the declared range spans 2^{self.span.bit_length() - 1} or more encoded "
                f"values; validity proofs take spans below 2^{MAX_SPAN_BITS}: narrow the range "
                "(min_value, max_value) or use fewer fractional bits"
            )
        if self.length < 1 or self.slots < 1:
            raise InvalidInputError("proof layout: length and slots must be positive")
        if self.slots > 1 and self.slot_bits < self.span.bit_length():
            raise InvalidInputError("proof layout: slots narrower than the span")

    @classmethod
    def unpacked(cls, lo: int, hi: int, length: int) -> ProofLayout:
        """The layout of an unpacked task: one value per ciphertext, m = lo + u, u in [0, hi - lo].

        Args:
            lo: the encoded minimum; hi: the encoded maximum; length: values per report.

        Raises:
            InvalidInputError: as for the constructor.
        """
        return cls(span=hi - lo, offset=lo, length=length)

    @classmethod
    def packed(cls, packing: Packing) -> ProofLayout:
        """The layout of a packed task (offset 0; slot values as ``packing.to_slots`` gives).

        Raises:
            InvalidInputError: as for the constructor.
        """
        return cls(
            span=packing.span,
            offset=0,
            length=packing.length,
            slots=packing.slots,
            slot_bits=packing.slot_bits,
        )

    @property
    def bits(self) -> int:
        """k, the bits per value."""
        return self.span.bit_length()

    @property
    def ciphertexts(self) -> int:
        """Ciphertexts per report."""
        return -(-self.length // self.slots)

    def slots_in(self, index: int) -> int:
        """Real slots of ciphertext ``index`` (the last may have fewer)."""
        return min(self.slots, self.length - index * self.slots)

    def to_bytes(self) -> bytes:
        """The layout's canonical bytes (hashed into every challenge)."""
        out = []
        for part in (self.span, self.offset, self.length, self.slots, self.slot_bits):
            raw = part.to_bytes(part.bit_length() // 8 + 1, "big", signed=True)
            out.append(len(raw).to_bytes(4, "big") + raw)
        return b"".join(out)

    def zs_bytes(self) -> int:
        """Bytes of one response z_s."""
        return _ceil8(self.bits + CHALLENGE_BITS + STATISTICAL_BITS + 1)

    def slot_proof_bytes(self) -> int:
        """Bytes of one value's proof: its bits' proofs, A_s, t_s and z_s."""
        return self.bits * BIT_PROOF_BYTES + POINT_BYTES + SCALAR_BYTES + self.zs_bytes()

    def ciphertext_proof_bytes(self, key_bits: int, index: int) -> int:
        """Bytes of ciphertext ``index``'s proof under a modulus of ``key_bits`` bits."""
        fixed = DIGEST_BYTES + nsq_bytes(key_bits) + z_bytes(key_bits)
        return fixed + self.slots_in(index) * self.slot_proof_bytes()

    def proof_offset(self, key_bits: int, index: int) -> int:
        """Where ciphertext ``index``'s proof starts in the proof (``ciphertexts``: the end)."""
        full = self.ciphertext_proof_bytes(key_bits, 0)
        if index < self.ciphertexts:
            return index * full
        return (self.ciphertexts - 1) * full + self.ciphertext_proof_bytes(
            key_bits, self.ciphertexts - 1
        )

    def proof_bytes(self, key_bits: int) -> int:
        """Exact bytes of a report's proof under a modulus of ``key_bits`` bits."""
        return self.proof_offset(key_bits, self.ciphertexts)


__all__ = [
    "BASE_DOMAIN",
    "CHALLENGE_BITS",
    "DIGEST_BYTES",
    "MAX_SPAN_BITS",
    "PROOF_DOMAIN",
    "STATISTICAL_BITS",
    "ProofLayout",
    "ReportBase",
    "nsq_bytes",
    "z_bytes",
]

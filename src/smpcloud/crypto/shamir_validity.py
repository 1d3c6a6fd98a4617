"""Joint validity checks of Shamir reports: n servers check that every shared bit is a bit.

The honest-majority case of a fully linear proof (in the spirit of Prio and of Boneh, Boyle,
Corrigan-Gibbs, Gilboa and Ishai's linear PCPs), for Shamir tasks with ``validity="range"``.

**Statement.** A client's value x is offset-encoded as u = enc(x) - lo in [0, U] (U the span of
the declared range) and decomposed into k = bit_length(U) weighted bits
(:mod:`smpcloud.crypto.decomposition`): "each bit is a bit" is then exactly "u in [0, U]". The
client Shamir-shares the k L bits of its L values (degree t - 1, t-of-n, over GF(p), p a prime
just below 2^32) together with 2R masks, and the servers check jointly that

* every shared bit b lies on one polynomial of degree t - 1 (the **degree check**: otherwise
  different groups of t servers would rebuild different sums), and
* b^2 - b = 0 for each of them (the **bit check**).

The aggregate is computed on the derived value shares sum_i w_i [b_i] (linear, local), so an
accepted report adds exactly one value of [0, U] per element.

**Why a single prime.** In the residue ring Z_M of the other Shamir tasks (M a product of three
primes), b^2 = b has 2^3 roots: 0, 1 and the CRT idempotents (1 modulo some primes, 0 modulo
the others), which are huge integers. A bit check over Z_M therefore accepts values far outside
the range; over GF(p) the only roots are 0 and 1. :func:`check_validity_field` refuses any
other field.

**Parameters.** n = 2t - 1 servers (3 with t = 2, 5 with t = 3): then the product of two
degree-(t - 1) sharings is a degree-(2t - 2) sharing that the n servers' values determine, so
each server evaluates the degree-2 check on its own shares and only one field element per check
and repetition is opened. max_clients U < p, so that a sum of accepted reports never wraps.

**The checks** (repeated R = :data:`REPETITIONS` times, coefficients independent per
repetition). Public coefficients rho_(r,i), rho'_(r,i) come from SHAKE-256 of a seed that binds
the client's number and the digests of its n sealed shares (:func:`validity_seed`,
:func:`coefficients`): fixed only after the client committed to every share. Server j sends

* sigma_(r,j) = sum_i rho_(r,i) (b_i(j)^2 - b_i(j)) + Z_r(j), where Z_r is the client's random
  sharing of 0 of degree 2t - 2; the n values must interpolate to 0 at x = 0;
* tau_(r,j) = sum_i rho'_(r,i) b_i(j) + Y_r(j), where Y_r is the client's random sharing
  (degree t - 1) of a uniformly random value; the n values must lie on a polynomial of degree
  t - 1.

**Completeness.** An honest report passes every check, always (both sums are identities).

**Soundness** (a forged report is dropped), when every server follows the protocol: if some
shared b is not on a degree-(t - 1) polynomial, tau's excess coefficients are a non-zero linear
form in the independent rho' (fixed after the shares): it vanishes with probability 1/p per
repetition; if every b is on one but some secret b is not a bit, the constant term of sigma is
a non-zero linear form in rho: again 1/p per repetition. With R = 3 and p ~ 2^32 a cheating
client passes with probability about 2^-96 per attempt, in the random-oracle model (ROM) for
SHAKE-256/SHA-256 (Fiat-Shamir): a client that grinds 2^g sets of shares raises that to about
2^(g - 96), and it must re-register for each attempt it gets refused (one report per client).
A **malicious server** can make an honest report fail (by sending a wrong check value) or help
a client pass a forged one (as in Prio): soundness needs every server honest; privacy does not.

**Privacy** (what is revealed), against fewer than t colluding servers: each of them sees
uniformly random shares; the opened sigma polynomial is a uniformly random polynomial of
degree 2t - 2 with constant term 0, and the opened tau polynomial a uniformly random polynomial
of degree t - 1 (the masks Z_r, Y_r are uniform and used once), so the opened values reveal
nothing beyond "the report passed". A report whose masks are all zero still passes when honest
(masks are for privacy only) but its opened values then leak linear combinations of its bits.
All n servers must answer for a report to be checked.

Bad input raises :class:`~smpcloud.errors.InvalidInputError` (parameters, shapes, values not in
the field) or :class:`~smpcloud.errors.OverflowDetectedError` (a value outside [0, U] on the
client's side). Pure module: numpy and hashlib only; randomness from the OS CSPRNG.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

import numpy as np
import numpy.typing as npt

from smpcloud.crypto.decomposition import bit_weights, decompose_array
from smpcloud.crypto.field import Field, Residues, random_elements
from smpcloud.crypto.shamir import lagrange_coefficients, share_elements
from smpcloud.errors import InvalidInputError

#: The prime of every validated Shamir task: 2^32 - 5, the largest prime below 2^32.
VALIDITY_PRIME: Final = 4294967291
#: GF(p) as a one-modulus :class:`~smpcloud.crypto.field.Field` (the sharing code takes any).
VALIDITY_FIELD: Final = Field((VALIDITY_PRIME,))
#: R, the number of repetitions of each check (soundness about p^-R ~ 2^-96 per report).
REPETITIONS: Final = 3
#: The domain of the coefficient seed (:func:`validity_seed`).
SEED_DOMAIN: Final = b"smpcloud/shamir-validity/v1"
#: Bytes of a sealed share's digest (SHA-256).
DIGEST_BYTES: Final = 32

#: Verdict codes of :func:`verdicts`.
PASSED: Final = 0
#: The opened bit-check polynomial is not 0 at x = 0: some value is outside [0, U].
BIT_CHECK_FAILED: Final = 1
#: The opened degree-check values are not on one polynomial of degree t - 1.
DEGREE_CHECK_FAILED: Final = 2
#: The short name of each failing verdict (for error messages and refusal counts).
VERDICT_NAMES: Final = {BIT_CHECK_FAILED: "bit", DEGREE_CHECK_FAILED: "degree"}

_P: Final = np.uint64(VALIDITY_PRIME)
_U64 = npt.NDArray[np.uint64]


def check_validity_field(field: Field) -> None:
    """Refuse a field the bit check is unsound in: anything but one prime.

    Raises:
        InvalidInputError: a field of several moduli (Z_M, whose idempotents satisfy b^2 = b).
    """
    if field.moduli != VALIDITY_FIELD.moduli:
        raise InvalidInputError(
            "the Shamir validity check runs in GF(p), p = 2^32 - 5: in a ring Z_M of several "
            "primes b^2 = b has roots other than 0 and 1 (the CRT idempotents)"
        )


def check_validity_parameters(servers: int, threshold: int) -> None:
    """Refuse (n, t) the local degree-2 check needs n = 2t - 1 for.

    Raises:
        InvalidInputError: n != 2t - 1, with a message that says which (n, t) work.
    """
    if type(servers) is not int or type(threshold) is not int or servers != 2 * threshold - 1:
        raise InvalidInputError(
            f"servers={servers}, threshold={threshold}: a task with validity 'range' needs "
            "n = 2t - 1 servers (3 servers with t = 2, 5 with t = 3, ...), so that the servers "
            "can check each report's degree-2 statement on their own shares; use those, or "
            "validity 'none'"
        )


def check_validity_span(span: int, max_clients: int) -> None:
    """Refuse a range whose accepted sums could wrap modulo p: needs max_clients U < p.

    Args:
        span: U = hi - lo of the encoded range (at least 1).
        max_clients: the task's largest number of clients.

    Raises:
        InvalidInputError: U < 1, or max_clients U >= p (the message says what to change).
    """
    if type(span) is not int or span < 1:
        raise InvalidInputError(
            "a task with validity 'range' needs a declared range with min_value below "
            "max_value (its encoded span must be at least 1)"
        )
    if type(max_clients) is not int or max_clients < 1:
        raise InvalidInputError("max_clients must be a positive integer")
    if max_clients * span >= VALIDITY_PRIME:
        raise InvalidInputError(
            f"max_clients={max_clients} times the encoded span {span} of the declared range is "
            f"2^{(max_clients * span).bit_length()}, not below the validity field's prime "
            "p = 2^32 - 5: narrow the range, lower frac_bits or max_clients, or use validity "
            "'none'"
        )


@dataclass(frozen=True, slots=True)
class ValidityLayout:
    """The shape of one validated share: k L bits, then R masks Z_r, then R masks Y_r.

    Attributes:
        length: L, the task's number of values per client.
        span: U, the encoded span of the declared range.
        repetitions: R.
    """

    length: int
    span: int
    repetitions: int = REPETITIONS

    def __post_init__(self) -> None:
        if type(self.length) is not int or self.length < 1:
            raise InvalidInputError("a validity layout needs length >= 1")
        if type(self.repetitions) is not int or not 1 <= self.repetitions <= 16:
            raise InvalidInputError("repetitions must be in 1..16")
        bit_weights(self.span)  # refuses a bad span

    @property
    def bits(self) -> int:
        """k, the number of weighted bits per value."""
        return len(bit_weights(self.span))

    @property
    def bit_elements(self) -> int:
        """k L, the number of shared bits."""
        return self.bits * self.length

    @property
    def size(self) -> int:
        """k L + 2R, the elements of one server's share of a report."""
        return self.bit_elements + 2 * self.repetitions

    @property
    def checks(self) -> int:
        """2R, the check values a server computes per report."""
        return 2 * self.repetitions


# --------------------------------------------------------------------- client side


def _zero_sharing(field: Field, count: int, *, servers: int, degree: int) -> list[Residues]:
    """Shares for x = 1..n of ``count`` random polynomials of ``degree`` with constant 0."""
    coefficients = random_elements(field, (degree, field.k, count))
    column = field.column
    out = []
    for x in range(1, servers + 1):
        acc = np.zeros((field.k, count), dtype=np.uint64)
        for c in coefficients[::-1]:  # Horner, then one more multiplication by x: constant 0
            acc += c
            acc %= column
            acc *= np.uint64(x)
            acc %= column
        out.append(acc)
    return out


def share_report(
    offsets: npt.NDArray[np.uint64],
    layout: ValidityLayout,
    *,
    servers: int,
    threshold: int,
    zero_masks: bool = False,
) -> list[Residues]:
    """The client's side: bits and masks of its values, Shamir-shared for servers 1..n.

    Args:
        offsets: u = enc(x) - lo per value, a 1-D ``uint64`` array of ``layout.length``
            entries, each in [0, U].
        layout: the task's layout (L, U, R).
        servers: n (= 2t - 1).
        threshold: t.
        zero_masks: leave every mask 0 (tests only: the report then still passes when honest,
            but its opened check values reveal combinations of its bits).

    Returns:
        n blocks of shape ``(1, layout.size)``: block j - 1 is server j's share, bit i of value
        l at index i L + l, then Z_1(j) .. Z_R(j), then Y_1(j) .. Y_R(j). Secret.

    Raises:
        InvalidInputError: a wrong shape, (n, t) with n != 2t - 1.
        OverflowDetectedError: a value outside [0, U].
    """
    check_validity_parameters(servers, threshold)
    values = np.asarray(offsets)
    if values.shape != (layout.length,):
        raise InvalidInputError(f"expected {layout.length} offsets, got shape {values.shape}")
    field = VALIDITY_FIELD
    bits = decompose_array(values.astype(np.uint64), layout.span)
    secret = bits.reshape(1, layout.bit_elements).astype(np.uint64)
    bit_shares = share_elements(field, secret, n=servers, t=threshold)
    r = layout.repetitions
    if zero_masks:
        zeros = np.zeros((1, r), dtype=np.uint64)
        z_shares, y_shares = [zeros] * servers, [zeros] * servers
    else:
        z_shares = _zero_sharing(field, r, servers=servers, degree=2 * threshold - 2)
        y_shares = share_elements(field, field.random(r), n=servers, t=threshold)
    return [
        np.concatenate([b, z, y], axis=1)
        for b, z, y in zip(bit_shares, z_shares, y_shares, strict=True)
    ]


# --------------------------------------------------------------------- coefficients


def validity_seed(client: int, digests: Sequence[bytes]) -> bytes:
    """The seed of a report's check coefficients: SHA-256 of the domain, client and digests.

    SHA-256(:data:`SEED_DOMAIN` || 0x00 || client as 8 bytes || n as 4 bytes || d_1 .. d_n),
    d_j the SHA-256 digest of the sealed share sent to server j. Public coins: every server
    derives the same coefficients from the same list.

    Raises:
        InvalidInputError: a client number outside 1..2^63 - 1, no digests, or a digest that
            is not 32 bytes.
    """
    if type(client) is not int or not 1 <= client < 1 << 63:
        raise InvalidInputError("the client number must be an int >= 1")
    if not digests or any(not isinstance(d, bytes) or len(d) != DIGEST_BYTES for d in digests):
        raise InvalidInputError("a validity seed needs one 32-byte digest per server")
    h = hashlib.sha256(SEED_DOMAIN + b"\x00")
    h.update(client.to_bytes(8, "big") + len(digests).to_bytes(4, "big"))
    for digest in digests:
        h.update(digest)
    return h.digest()


def expand(seed: bytes, count: int) -> _U64:
    """``count`` elements of GF(p) from SHAKE-256(seed), by rejection sampling of 32-bit words.

    Little-endian 32-bit words of the SHAKE-256 output stream, those below p kept in order:
    exactly uniform (in the ROM) and deterministic.

    Raises:
        InvalidInputError: a seed that is not bytes, or a negative count.
    """
    if not isinstance(seed, bytes) or type(count) is not int or count < 0:
        raise InvalidInputError("expand takes a bytes seed and a count >= 0")
    extra = 16 + count // 4096
    while True:
        stream = hashlib.shake_256(seed).digest(4 * (count + extra))
        words = np.frombuffer(stream, dtype="<u4")
        head = words[:count]
        if not (head >= np.uint32(VALIDITY_PRIME)).any():  # the usual case: nothing rejected
            out: _U64 = head.astype(np.uint64)
            return out
        kept = words[words < np.uint32(VALIDITY_PRIME)]
        if kept.size >= count:
            out = kept[:count].astype(np.uint64)
            return out
        extra *= 2  # pragma: no cover - probability about 2^-29 per element


def coefficients(seed: bytes, layout: ValidityLayout) -> tuple[_U64, _U64]:
    """The public coefficients: rho (bit check) and rho' (degree check), each (R, k L).

    Raises:
        InvalidInputError: as :func:`expand`.
    """
    r, m = layout.repetitions, layout.bit_elements
    both = expand(seed, 2 * r * m).reshape(2, r, m)
    return both[0], both[1]


# --------------------------------------------------------------------- server side


def split_share(vector: Residues, layout: ValidityLayout) -> tuple[_U64, _U64, _U64]:
    """Split one server's share into its bits (k L), masks Z (R) and masks Y (R), 1-D each.

    Raises:
        InvalidInputError: not a ``(1, layout.size)`` ``uint64`` array of elements of GF(p).
    """
    if (
        not isinstance(vector, np.ndarray)
        or vector.dtype != np.uint64
        or vector.shape != (1, layout.size)
    ):
        raise InvalidInputError(f"a validated share must be (1, {layout.size}) uint64 residues")
    if (vector >= _P).any():
        raise InvalidInputError("a validated share holds an element outside GF(p)")
    flat = vector[0]
    m, r = layout.bit_elements, layout.repetitions
    return flat[:m], flat[m : m + r], flat[m + r :]


@lru_cache(maxsize=64)
def _weights_column(span: int) -> _U64:
    return np.array(bit_weights(span), dtype=np.uint64).reshape(-1, 1)


def value_shares(vector: Residues, layout: ValidityLayout) -> Residues:
    """This server's shares of the values: sum_i w_i [b_i] per value, shape ``(1, L)``.

    Linear and local; what the server sums at close. The sum of accepted reports' values lies
    in [0, max_clients U], below p.

    Raises:
        InvalidInputError: as :func:`split_share`.
    """
    bits, _, _ = split_share(vector, layout)
    weighted = (bits.reshape(layout.bits, layout.length) * _weights_column(layout.span)) % _P
    total: Residues = (weighted.sum(axis=0, dtype=np.uint64) % _P).reshape(1, layout.length)
    return total


def check_values(vector: Residues, seed: bytes, layout: ValidityLayout) -> _U64:
    """This server's check values of one report: sigma_1..sigma_R, then tau_1..tau_R.

    sigma_r = sum_i rho_(r,i) (b_i^2 - b_i) + Z_r and tau_r = sum_i rho'_(r,i) b_i + Y_r, on
    this server's shares. Opened to the administrator; uniformly random given the report
    passed (module docstring).

    Raises:
        InvalidInputError: as :func:`split_share` and :func:`expand`.
    """
    bits, z, y = split_share(vector, layout)
    rho, rho2 = coefficients(seed, layout)
    squares = (bits * bits) % _P
    quadratic = (squares + _P - bits) % _P
    sigma = (((rho * quadratic) % _P).sum(axis=1, dtype=np.uint64) + z) % _P
    tau = (((rho2 * bits) % _P).sum(axis=1, dtype=np.uint64) + y) % _P
    out: _U64 = np.concatenate([sigma, tau])
    return out


# --------------------------------------------------------------------- verdict


def _combine(weights: Sequence[int], rows: _U64) -> _U64:
    """sum_j weights[j] rows[j] mod p, for rows of shape (m, ...)."""
    acc = np.zeros(rows.shape[1:], dtype=np.uint64)
    for weight, row in zip(weights, rows, strict=True):
        acc += (row * np.uint64(weight)) % _P
        acc %= _P
    return acc


def verdicts(values: npt.NDArray[np.uint64], *, threshold: int) -> npt.NDArray[np.uint8]:
    """Decide many reports from every server's check values.

    Args:
        values: ``(n, C, 2R)`` ``uint64``: server j's (row j - 1) check values of C reports,
            sigma_1..sigma_R then tau_1..tau_R, each below p.
        threshold: t (n must be 2t - 1).

    Returns:
        One code per report: :data:`PASSED`, :data:`DEGREE_CHECK_FAILED` (the opened tau values
        are off a degree-(t - 1) polynomial; checked first: the bit check means nothing then)
        or :data:`BIT_CHECK_FAILED` (the opened sigma polynomial is not 0 at 0).

    Raises:
        InvalidInputError: a wrong shape or dtype, n != 2t - 1, an odd number of check values
            or a value not below p.
    """
    arr = np.asarray(values)
    if arr.ndim != 3 or arr.dtype != np.uint64 or arr.shape[2] % 2 or not arr.shape[2]:
        raise InvalidInputError("check values must be a (n, C, 2R) uint64 array")
    n = arr.shape[0]
    check_validity_parameters(n, threshold)
    if (arr >= _P).any():
        raise InvalidInputError("a check value outside GF(p)")
    r = arr.shape[2] // 2
    sigma, tau = arr[:, :, :r], arr[:, :, r:]
    xs = list(range(1, n + 1))
    at_zero = _combine(
        lagrange_coefficients(xs, VALIDITY_FIELD), sigma
    )  # degree 2t - 2 = n - 1: every server needed
    bit_ok = (at_zero == 0).all(axis=1)
    degree_ok = np.ones(arr.shape[1], dtype=bool)
    first = xs[:threshold]
    for x in xs[threshold:]:
        expected = _combine(lagrange_coefficients(first, VALIDITY_FIELD, at=x), tau[:threshold])
        degree_ok &= (expected == tau[x - 1]).all(axis=1)
    out = np.full(arr.shape[1], PASSED, dtype=np.uint8)
    out[~bit_ok] = BIT_CHECK_FAILED
    out[~degree_ok] = DEGREE_CHECK_FAILED
    return out


__all__ = [
    "BIT_CHECK_FAILED",
    "DEGREE_CHECK_FAILED",
    "DIGEST_BYTES",
    "PASSED",
    "REPETITIONS",
    "SEED_DOMAIN",
    "VALIDITY_FIELD",
    "VALIDITY_PRIME",
    "VERDICT_NAMES",
    "ValidityLayout",
    "check_validity_field",
    "check_validity_parameters",
    "check_validity_span",
    "check_values",
    "coefficients",
    "expand",
    "share_report",
    "split_share",
    "validity_seed",
    "value_shares",
    "verdicts",
]

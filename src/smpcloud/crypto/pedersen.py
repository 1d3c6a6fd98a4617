"""Pedersen commitments in the prime-order subgroup of edwards25519 (through libsodium).

The group is the subgroup of order l = 2^252 + 27742317777372353535851937790883648493 of the
twisted Edwards curve edwards25519; points travel as their 32-byte canonical encodings and
scalars are Python ints mod l. Two generators:

* B, the standard base point (blinding; libsodium's fast fixed-base multiplication);
* H = ``crypto_core_ed25519_from_uniform(SHA-512("smpcloud/pedersen/H/v1")[:32])`` (value),
  a hash-to-curve point: nobody knows log_B H.

commit(v, r) = v H + r B. *Hiding*: perfect (for uniform r mod l, the commitment is a uniform
group element whatever v). *Binding*: computational, under the discrete-logarithm assumption in
this group (two openings of one commitment give log_B H). What a commitment reveals: nothing.

Every point from outside goes through :func:`decode_point`, which refuses anything that is not a
canonical encoding of a point of the prime-order subgroup (small-order points and the identity
included): :class:`~smpcloud.errors.InvalidProofError` with ``check="point"``. libsodium refuses
to multiply by the scalar 0 or to return the identity from a multiplication, so the helpers here
handle a zero scalar themselves (the result is the identity, :data:`IDENTITY`).

Pure module: no sockets, no files, no global mutable state; randomness from ``secrets``.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Final

from nacl.bindings import (
    crypto_core_ed25519_add,
    crypto_core_ed25519_from_uniform,
    crypto_core_ed25519_is_valid_point,
    crypto_core_ed25519_sub,
    crypto_scalarmult_ed25519_base_noclamp,
    crypto_scalarmult_ed25519_noclamp,
)

from smpcloud.errors import InvalidProofError

#: The order of the prime-order subgroup of edwards25519.
L: Final = (1 << 252) + 27742317777372353535851937790883648493
#: Bytes of a point or a scalar.
POINT_BYTES: Final = 32
SCALAR_BYTES: Final = 32
#: The identity's canonical encoding (never valid from outside: see decode_point).
IDENTITY: Final = (1).to_bytes(32, "little")
#: Domain of the value generator H.
H_DOMAIN: Final = b"smpcloud/pedersen/H/v1"


def _scalar_bytes(s: int) -> bytes:
    return (s % L).to_bytes(SCALAR_BYTES, "little")


def base_mul(s: int) -> bytes:
    """Return s B for an integer s (reduced mod l; 0 gives the identity)."""
    s %= L
    if not s:
        return IDENTITY
    return bytes(crypto_scalarmult_ed25519_base_noclamp(s.to_bytes(SCALAR_BYTES, "little")))


def mul(s: int, point: bytes) -> bytes:
    """Return s P for an integer s (reduced mod l) and a point P of the subgroup.

    P must be a valid subgroup point (from :func:`decode_point` or computed here) or the
    identity; 0 P and s O are the identity.
    """
    s %= L
    if not s or point == IDENTITY:
        return IDENTITY
    return bytes(crypto_scalarmult_ed25519_noclamp(s.to_bytes(SCALAR_BYTES, "little"), point))


def add(p: bytes, q: bytes) -> bytes:
    """Return P + Q."""
    return bytes(crypto_core_ed25519_add(p, q))


def sub(p: bytes, q: bytes) -> bytes:
    """Return P - Q."""
    return bytes(crypto_core_ed25519_sub(p, q))


def _derive_h() -> bytes:
    seed = hashlib.sha512(H_DOMAIN).digest()[:32]
    return bytes(crypto_core_ed25519_from_uniform(seed))


#: The base point B (blinding generator).
B: Final = base_mul(1)
#: The value generator H (derived as the module docstring says).
H: Final = _derive_h()


def commit(value: int, blinding: int) -> bytes:
    """Return the Pedersen commitment value H + blinding B (both reduced mod l).

    Args:
        value: the committed integer (any sign; reduced mod l).
        blinding: the blinding scalar (uniform mod l for hiding).

    Returns:
        The commitment's 32-byte encoding.
    """
    return add(mul(value, H), base_mul(blinding))


def random_scalar() -> int:
    """Return a uniform scalar in [0, l) from the OS CSPRNG."""
    return secrets.randbelow(L)


def hash_to_scalar(*parts: bytes) -> int:
    """Return SHA-512 of the length-prefixed parts, as an integer mod l.

    Each part is prefixed with its length (8 bytes big-endian), so no two lists of parts hash
    alike. The 512-bit digest reduced mod l is statistically close to uniform (bias < 2^-259).
    """
    h = hashlib.sha512()
    for part in parts:
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return int.from_bytes(h.digest(), "little") % L


def decode_point(data: bytes, what: str) -> bytes:
    """Check a point from outside: a canonical encoding of a point of the prime-order subgroup.

    Args:
        data: 32 bytes.
        what: names the point in the error message (e.g. "bit 3 of value 7").

    Returns:
        ``data`` itself (as bytes).

    Raises:
        InvalidProofError: (check "point") not 32 bytes, not canonical, not on the curve, of
            small order (the identity included), or outside the prime-order subgroup.
    """
    point = bytes(data)
    if len(point) != POINT_BYTES or not crypto_core_ed25519_is_valid_point(point):
        raise InvalidProofError(f"{what}: not a point of the prime-order group", check="point")
    return point


def decode_scalar(data: bytes, what: str, *, check: str) -> int:
    """Read a canonical scalar (32 bytes little-endian, below l) from outside.

    Args:
        data: 32 bytes.
        what: names the scalar in the error message.
        check: the check name of the error.

    Returns:
        The scalar as an int in [0, l).

    Raises:
        InvalidProofError: (check ``check``) not a canonical scalar.
    """
    value = int.from_bytes(data, "little")
    if len(data) != SCALAR_BYTES or value >= L:
        raise InvalidProofError(f"{what}: not a canonical scalar (below l)", check=check)
    return value


def scalar_bytes(s: int) -> bytes:
    """Return the 32-byte little-endian encoding of s mod l."""
    return _scalar_bytes(s)


__all__ = [
    "H_DOMAIN",
    "IDENTITY",
    "POINT_BYTES",
    "SCALAR_BYTES",
    "B",
    "H",
    "L",
    "add",
    "base_mul",
    "commit",
    "decode_point",
    "decode_scalar",
    "hash_to_scalar",
    "mul",
    "random_scalar",
    "scalar_bytes",
    "sub",
]

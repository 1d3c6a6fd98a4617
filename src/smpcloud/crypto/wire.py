"""Wire format for big integers and JSON envelopes (docs/architecture.md: numbers).

Integers travel as their minimal unsigned big-endian bytes in base64url **without padding**;
every other spelling (padding, ``+``/``/``, whitespace, spare bits, leading zero bytes) is
rejected, so distinct texts always mean distinct integers. JSON objects carry a ``"kind"`` and a
``"version"`` and exactly their declared fields.
"""

from __future__ import annotations

import base64
import binascii
import operator
import re
from collections.abc import Mapping
from typing import Final, SupportsIndex

from smpcloud.errors import InvalidInputError

JSON_VERSION: Final = 1
_B64URL_RE: Final = re.compile(r"[A-Za-z0-9_-]+")


def as_int(value: object) -> int | None:
    """Return value as an int if it is an integer (int, gmpy2.mpz, numpy integer), else None.

    Booleans are not integers here: ``c + True`` is almost certainly a bug.
    """
    if type(value) is int:
        return value
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return int(value)
    if isinstance(value, SupportsIndex):
        try:
            return int(operator.index(value))
        except TypeError:  # e.g. a numpy array with more than one element
            return None
    return None


def int_bytes(value: int) -> bytes:
    """Return the minimal unsigned big-endian encoding of value > 0."""
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def encode_int(value: int) -> str:
    """Encode a positive integer for JSON: minimal unsigned big-endian bytes, base64url, no padding.

    Args:
        value: an integer >= 1.

    Returns:
        The canonical text, for example ``"AQAB"`` for 65537.

    Raises:
        InvalidInputError: if value is not an integer >= 1.
    """
    number = as_int(value)
    if number is None or number < 1:
        raise InvalidInputError("only integers >= 1 have a wire encoding")
    return b64url(int_bytes(number))


def decode_int(
    text: object,
    what: str,
    *,
    max_bytes: int,
    error: type[InvalidInputError] = InvalidInputError,
) -> int:
    """Decode the canonical wire form of a positive integer, rejecting every other spelling.

    The only accepted form is what :func:`encode_int` produces: base64url without padding, no
    whitespace, no unused bits set in the last character, and no leading zero byte. So distinct
    texts always decode to distinct integers.

    Args:
        text: the JSON value.
        what: name of the field, used in error messages (never the value itself).
        max_bytes: the largest admissible integer size in bytes.
        error: the exception class to raise.

    Returns:
        The integer, >= 1.

    Raises:
        InvalidInputError: (or ``error``) if text is not the canonical encoding of an integer
            of at most max_bytes bytes.
    """
    if not isinstance(text, str):
        raise error(f"{what}: expected a base64url string, got {type(text).__name__}")
    if len(text) > -(-4 * max_bytes // 3):
        raise error(f"{what}: longer than {max_bytes} bytes")
    if not _B64URL_RE.fullmatch(text):
        raise error(f"{what}: not unpadded base64url (allowed characters: A-Z a-z 0-9 - _)")
    if len(text) % 4 == 1:
        raise error(f"{what}: impossible base64url length")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:  # pragma: no cover - excluded by the checks above
        raise error(f"{what}: not base64url") from exc
    if b64url(raw) != text:
        raise error(f"{what}: non-canonical base64url (unused bits set)")
    if raw[0] == 0:
        raise error(f"{what}: non-canonical integer (leading zero byte)")
    return int.from_bytes(raw, "big")


def short_repr(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_json_object(
    data: object,
    kind: str,
    fields: tuple[str, ...],
    error: type[InvalidInputError] = InvalidInputError,
) -> Mapping[str, object]:
    """Check the envelope of a JSON object: its kind, version 1, exactly the expected fields."""
    if not isinstance(data, Mapping):
        raise error(f"{kind}: expected a JSON object, got {type(data).__name__}")
    got_kind = data.get("kind")
    if got_kind != kind:
        raise error(f"unexpected kind {short_repr(got_kind)}; expected {kind!r}")
    version = data.get("version")
    if type(version) is not int or version != JSON_VERSION:
        raise error(f"{kind}: unsupported version {short_repr(version)}; expected {JSON_VERSION}")
    expected = {"kind", "version", *fields}
    missing = sorted(expected - set(data))
    if missing:
        raise error(f"{kind}: missing field(s) {', '.join(missing)}")
    extra = [key for key in data if key not in expected]
    if extra:
        names = ", ".join(sorted(short_repr(key) for key in extra)[:5])
        raise error(f"{kind}: unexpected field(s) {names}")
    return data

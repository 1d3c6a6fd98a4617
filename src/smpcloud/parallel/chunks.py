"""How batches are cut into pieces for the workers, and the forms ciphertexts travel in.

Ciphertexts travel to workers as Python ints or as slices of fixed-width big-endian bytes (the
storage format of ``Ciphertext.to_bytes``), never as pickled ``Ciphertext`` objects; keys
travel as their modulus (and factors). This module converts what callers pass (objects,
integers, one bytes object) into those payloads in the calling process, checking types and keys
on the way, and cuts index ranges into spans. It computes nothing secret and reveals nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from smpcloud.crypto.paillier import Ciphertext, PublicKey
from smpcloud.crypto.wire import as_int
from smpcloud.errors import InvalidInputError, KeyMismatchError, MalformedCiphertextError

#: Ciphertexts as objects or integers, or as one bytes object of concatenated fixed-width
#: big-endian values (``Ciphertext.to_bytes`` of each, in order).
CiphertextBatch = bytes | bytearray | memoryview | Sequence[Ciphertext | int]
#: A piece of ciphertexts as it travels to a worker: ints, or fixed-width big-endian bytes.
Payload = bytes | list[int]
#: A partial decryption without its ciphertext: (holder index, value, challenge, response).
PartialFields = tuple[int, int, int, int]


def spans(total: int, parts: int, minimum: int) -> list[tuple[int, int]]:
    """Split range(total) into at most ``parts`` contiguous pieces of at least ``minimum``.

    Args:
        total: the number of items.
        parts: the most pieces wanted.
        minimum: the fewest items a piece should hold (fewer pieces if needed).

    Returns:
        (start, stop) pairs covering range(total) in order; one piece if total < 2 minimum.
    """
    parts = max(1, min(parts, total // max(minimum, 1)))
    base, extra = divmod(total, parts)
    out = []
    start = 0
    for index in range(parts):
        stop = start + base + (1 if index < extra else 0)
        out.append((start, stop))
        start = stop
    return out


def ciphertext_width(n: int) -> int:
    """Return the byte length of n^2: the width of one ciphertext in a bytes payload."""
    return ((n * n).bit_length() + 7) // 8


def iter_values(data: Payload, width: int) -> Iterator[int]:
    """Iterate over the ciphertexts of a payload as ints (``width`` bytes each for bytes)."""
    if isinstance(data, list):
        return iter(data)
    view = memoryview(data)
    from_bytes = int.from_bytes
    return (from_bytes(view[i : i + width], "big") for i in range(0, len(view), width))


def value_at(data: Payload, index: int, width: int) -> int:
    """Return ciphertext ``index`` of a payload as an int (``width`` bytes each for bytes)."""
    if isinstance(data, list):
        return data[index]
    return int.from_bytes(data[index * width : (index + 1) * width], "big")


def ciphertext_ints(public_key: PublicKey, items: Sequence[object], start: int) -> list[int]:
    """Return items as ints, checking key and type; indices in messages start at ``start``.

    Integers are not validated here (the workers check them).

    Args:
        public_key: the key the ciphertexts must belong to.
        items: ``Ciphertext`` objects or integers.
        start: the index of items[0] in the caller's batch.

    Returns:
        The values, in order.

    Raises:
        KeyMismatchError: a Ciphertext under another key (by index).
        MalformedCiphertextError: an item that is neither a Ciphertext nor an integer.
    """
    n = public_key.n
    out: list[int] = []
    append = out.append
    for offset, item in enumerate(items):
        if isinstance(item, Ciphertext):
            other = item.public_key
            if other is not public_key and other.n != n:
                raise KeyMismatchError(f"ciphertext {start + offset} is under another key")
            append(item.value)
        else:
            c = as_int(item)
            if c is None:
                raise MalformedCiphertextError(
                    f"ciphertext {start + offset}: expected a Ciphertext or an integer, "
                    f"got {type(item).__name__}"
                )
            append(c)
    return out


def batch_length(public_key: PublicKey, batch: object, what: str) -> int:
    """Return the number of ciphertexts in a batch (checking a bytes batch's size).

    Args:
        public_key: the key (gives the width of a bytes batch).
        batch: a sequence of ciphertexts or integers, or bytes.
        what: how messages name the batch ("ciphertexts", "report 3").

    Returns:
        The number of ciphertexts.

    Raises:
        MalformedCiphertextError: bytes that are not a whole number of ciphertexts.
        InvalidInputError: neither a sequence nor bytes.
    """
    if isinstance(batch, (bytes, bytearray, memoryview)):
        width = ciphertext_width(public_key.n)
        size = memoryview(batch).nbytes
        if size % width:
            raise MalformedCiphertextError(
                f"{what}: {size} bytes is not a whole number of {width}-byte ciphertexts"
            )
        return size // width
    if isinstance(batch, (str, dict)) or not isinstance(batch, Sequence):
        raise InvalidInputError(
            f"{what}: expected a sequence of ciphertexts or bytes, got {type(batch).__name__}"
        )
    return len(batch)


def payload(public_key: PublicKey, batch: CiphertextBatch, start: int, stop: int) -> Payload:
    """Return ciphertexts start..stop of a batch as a payload (bytes stay bytes).

    Raises:
        KeyMismatchError: as for :func:`ciphertext_ints`.
        MalformedCiphertextError: as for :func:`ciphertext_ints`.
    """
    if isinstance(batch, (bytes, bytearray, memoryview)):
        width = ciphertext_width(public_key.n)
        return bytes(memoryview(batch).cast("B")[start * width : stop * width])
    return ciphertext_ints(public_key, batch[start:stop], start)


def check_public_key(public_key: object) -> PublicKey:
    """Return public_key if it is a Paillier PublicKey.

    Raises:
        InvalidInputError: it is not.
    """
    if not isinstance(public_key, PublicKey):
        raise InvalidInputError(f"public_key must be a PublicKey, got {type(public_key).__name__}")
    return public_key


def ciphertext_objects(ciphertexts: Sequence[Ciphertext]) -> list[Ciphertext]:
    """Return a non-empty sequence of ``Ciphertext`` objects as a list.

    Raises:
        InvalidInputError: not a sequence, empty, or an item that is not a Ciphertext (by
            index).
    """
    if isinstance(ciphertexts, (str, bytes)) or not isinstance(ciphertexts, Sequence):
        raise InvalidInputError(
            f"expected a sequence of ciphertexts, got {type(ciphertexts).__name__}"
        )
    items = list(ciphertexts)
    if not items:
        raise InvalidInputError("no ciphertexts")
    for index, item in enumerate(items):
        if not isinstance(item, Ciphertext):
            raise InvalidInputError(
                f"ciphertext {index}: expected a Ciphertext, got {type(item).__name__}"
            )
    return items


__all__ = [
    "CiphertextBatch",
    "PartialFields",
    "Payload",
    "batch_length",
    "check_public_key",
    "ciphertext_ints",
    "ciphertext_objects",
    "ciphertext_width",
    "iter_values",
    "payload",
    "spans",
    "value_at",
]

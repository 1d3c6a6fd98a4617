"""Merkle trees over a log of records (RFC 9162, Certificate Transparency 2.0, section 2.1).

The aggregation server keeps the reports it accepted as an append-only log and publishes the
root of its Merkle tree at close; a key holder recomputes the root from the records it is
given, and a client checks with an inclusion proof (log(n) hashes) that its report is among
them. The hash is SHA-256 with RFC 9162's domain separation: a leaf is H(0x00 || record), an
inner node H(0x01 || left || right), so no leaf can pass for an inner node (second-preimage
resistance of the tree rests on that of SHA-256). The tree of n leaves splits at the largest
power of two below n, exactly as RFC 9162's MTH; the empty tree's root is SHA-256("").

Pure: hashing only. Reveals nothing beyond the hashes given to it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Final

from smpcloud.errors import InvalidInputError, VerificationError

HASH_BYTES: Final = 32
_LEAF: Final = b"\x00"
_NODE: Final = b"\x01"


def leaf_hash(record: bytes) -> bytes:
    """H(0x00 || record): the hash of one log record (a leaf)."""
    return hashlib.sha256(_LEAF + record).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """H(0x01 || left || right): an inner node."""
    return hashlib.sha256(_NODE + left + right).digest()


def _check_hashes(hashes: Sequence[bytes], what: str) -> None:
    for value in hashes:
        if not isinstance(value, bytes) or len(value) != HASH_BYTES:
            raise InvalidInputError(f"{what}: every hash is {HASH_BYTES} bytes")


def root(leaves: Sequence[bytes]) -> bytes:
    """The Merkle tree hash (RFC 9162 MTH) of a list of leaf hashes.

    Bottom-up: each level pairs neighbours, and an odd last node moves up unchanged, which
    gives exactly the tree that splits at the largest power of two below n.

    Args:
        leaves: the leaves' hashes (:func:`leaf_hash`), in log order.

    Returns:
        32 bytes; SHA-256 of the empty string for no leaves.

    Raises:
        InvalidInputError: a hash that is not 32 bytes.
    """
    _check_hashes(leaves, "leaves")
    if not leaves:
        return hashlib.sha256(b"").digest()
    level = list(leaves)
    while len(level) > 1:
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """The audit path of leaf ``index`` in the tree of ``leaves`` (RFC 9162 2.1.3.1).

    Args:
        leaves: the leaves' hashes, in log order.
        index: 0-based position of the leaf.

    Returns:
        The sibling hashes from the leaf up to the root (at most ceil(log2 n)).

    Raises:
        InvalidInputError: index out of range, or a hash that is not 32 bytes.
    """
    _check_hashes(leaves, "leaves")
    if type(index) is not int or not 0 <= index < len(leaves):
        raise InvalidInputError(f"leaf index {index!r} is not in 0..{len(leaves) - 1}")
    path: list[bytes] = []
    level = list(leaves)
    position = index
    while len(level) > 1:
        sibling = position ^ 1
        if sibling < len(level):
            path.append(level[sibling])
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
        position //= 2
    return path


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], expected_root: bytes
) -> None:
    """Check that ``leaf`` is leaf ``index`` of the tree of ``size`` leaves with ``expected_root``.

    RFC 9162 2.1.3.2.

    Args:
        leaf: the leaf's hash.
        index: its 0-based position.
        size: the number of leaves in the tree.
        proof: its audit path (:func:`inclusion_proof`).
        expected_root: the published root.

    Raises:
        VerificationError: the proof does not lead to ``expected_root``.
        InvalidInputError: malformed arguments.
    """
    _check_hashes([leaf, expected_root, *proof], "inclusion proof")
    if type(size) is not int or type(index) is not int or not 0 <= index < size:
        raise InvalidInputError(f"leaf index {index!r} is not in a tree of {size!r} leaves")
    position, last = index, size - 1
    current = leaf
    for sibling in proof:
        if last == 0:
            raise VerificationError("the inclusion proof is longer than the tree is deep")
        if position % 2 == 1 or position == last:
            current = node_hash(sibling, current)
            if position % 2 == 0:  # a right-most node without sibling: climb to a real one
                while position % 2 == 0 and position != 0:
                    position //= 2
                    last //= 2
        else:
            current = node_hash(current, sibling)
        position //= 2
        last //= 2
    if last != 0 or current != expected_root:
        raise VerificationError("the report is not in the log with the published root")


__all__ = ["HASH_BYTES", "inclusion_proof", "leaf_hash", "node_hash", "root", "verify_inclusion"]

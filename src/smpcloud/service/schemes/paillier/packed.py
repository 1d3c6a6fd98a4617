"""The packed variant of Paillier tasks: many values per ciphertext (crypto.packing).

A report carries a vector of ``length`` values packed many to a ciphertext (10^5 values in
1,177 ciphertexts at 2048 bits for the reference layout), so every per-ciphertext cost (upload,
validation, aggregation, partial decryption) shrinks by the packing factor. The server
aggregates packed reports exactly like others; after combining it unpacks the sums and checks
every slot against the layout's bounds: a slot above count · span withholds the result
(:class:`~smpcloud.errors.OverflowDetectedError` for the t-th key holder's upload, then the
task's state ``withheld``, kept in the database) instead of publishing sums that spilled into
each other. Same disclosure: the count and the per-value sums.

Who can reach ``withheld``: on a ``validity="none"`` task, any one client that bypasses the
SDK's range check (nothing checks its report). On a ``validity="range"`` task, no client: every
report was proven in range before it was accepted
(:mod:`~smpcloud.service.schemes.paillier.validity`), so the sums cannot leave the bounds; the
check stays as a last guard against an aggregate that is not the product of the proven reports
(a server fault, which the key holders' aggregate check also catches).

This module holds what differs for a packed task: the layout's checks at creation, the
encoding it implies, and the unpacking of the combined sums; the Paillier scheme calls it
wherever ``meta.packing`` is set.
"""

from __future__ import annotations

import logging
from typing import Final

from smpcloud.crypto import threshold
from smpcloud.crypto.packing import Packing, unpack_sums
from smpcloud.errors import InvalidInputError, OverflowDetectedError
from smpcloud.protocol.problems import TaskStateError
from smpcloud.protocol.schemas import TaskEncoding, TaskIn
from smpcloud.service.config import Settings

logger = logging.getLogger("smpcloud.service")

#: Most values a packed task may declare (its result holds one sum and one average per value).
MAX_PACKED_VALUES: Final = 1 << 20


def implied_encoding(packing: Packing) -> TaskEncoding:
    """The encoding a packing layout implies: integers if frac_bits = 0 with integer bounds."""
    lo, hi = packing.min_value, packing.max_value
    if packing.frac_bits == 0 and isinstance(lo, int) and isinstance(hi, int):
        return TaskEncoding.integer(lo, hi)
    return TaskEncoding.fixed(packing.frac_bits, lo, hi)


def check_packing(body: TaskIn, public: threshold.ThresholdPublicKey) -> Packing:
    """Parse and check a packed task's layout against the task and its key.

    The layout's own guarantee replaces the n/2 reach check of unpacked tasks: a sum of up
    to max_additions in-range vectors never leaves its slot and every packed plaintext
    stays below 2^(key_bits - 2) < n/2 (see :mod:`smpcloud.crypto.packing`).

    Args:
        body: the task (``body.packing`` is set).
        public: the task's threshold public key.

    Returns:
        The layout.

    Raises:
        InvalidInputError: a malformed layout; its length other than ``body.length``; its
            max_additions below ``body.max_clients``; a layout for a larger key than the
            task's; more than MAX_PACKED_VALUES values; an ``encoding`` given in the body
            that is not the one the layout implies.
    """
    try:
        packing = Packing.from_json(body.packing)
    except InvalidInputError as exc:
        raise InvalidInputError(f"packing: {exc}") from None
    if packing.length != body.length:
        raise InvalidInputError(
            f"packing: the layout is for vectors of {packing.length} values; the task "
            f"declares length {body.length}"
        )
    if packing.length > MAX_PACKED_VALUES:
        raise InvalidInputError(
            f"packing: {packing.length} values exceed this server's limit of "
            f"{MAX_PACKED_VALUES} values per packed report"
        )
    if packing.max_additions < body.max_clients:
        raise InvalidInputError(
            f"packing: the layout adds at most {packing.max_additions} reports "
            f"(max_additions), fewer than the task's max_clients of {body.max_clients}: "
            "its sums could overflow their slots"
        )
    try:
        packing.check_key_bits(public.public_key.bits)
    except InvalidInputError as exc:
        raise InvalidInputError(f"packing: {exc}") from None
    implied = implied_encoding(packing)
    if "encoding" in body.model_fields_set and body.encoding != implied:
        raise InvalidInputError(
            f"encoding: a packed task's encoding is implied by its layout ({implied.kind}, "
            f"frac_bits={implied.frac_bits}, range [{implied.min_value}, "
            f"{implied.max_value}]); the one given differs (or leave it out)"
        )
    return packing


def check_packed_length(settings: Settings, ciphertexts: int) -> None:
    """Refuse a layout needing more ciphertexts per report than the server's limit.

    Raises:
        InvalidInputError: ``ciphertexts`` above ``settings.max_vector_length``.
    """
    limit = settings.max_vector_length
    if ciphertexts > limit:
        raise InvalidInputError(
            f"packing: the layout needs {ciphertexts} ciphertexts per report, more than "
            f"this server's limit of {limit}"
        )


def unpack_checked(
    task_id: str, plaintexts: list[int], packing: Packing, count: int, validity: str = "none"
) -> list[int]:
    """Unpack a packed task's combined plaintexts into one sum per value, checking every slot.

    Args:
        task_id: the task (for messages).
        plaintexts: the decrypted aggregate, one per ciphertext.
        packing: the task's layout.
        count: the number of reports aggregated.
        validity: the task's validity (``range``: every report was proven in range, so no
            client can be the cause; see the module docstring).

    Returns:
        One sum per value.

    Raises:
        OverflowDetectedError: a slot leaves the layout's bounds (on a ``none`` task, a
            forged report); the caller withholds the result for good.
    """
    try:
        return unpack_sums(plaintexts, packing, count)
    except OverflowDetectedError as exc:
        logger.warning(
            "task %s: the decrypted aggregate does not unpack within its layout's "
            "bounds (%s); result withheld",
            task_id,
            exc,
        )
        cause = (
            "Every report was proven in range, so the aggregate is not the product of the "
            "accepted reports (a server fault)."
            if validity == "range"
            else "Some client must have uploaded a report outside the declared range (a "
            "forged report, not made by the SDK; a task with validity 'range' refuses those)."
        )
        raise OverflowDetectedError(
            f"task {task_id!r}: the decrypted aggregate does not unpack within the "
            f"packing layout's bounds ({exc}). {cause} The result is withheld for good: the "
            "task's state is now 'withheld'."
        ) from None


def withheld_error(task_id: str) -> TaskStateError:
    """The error for any request on a task whose result is withheld."""
    return TaskStateError(
        f"task {task_id!r}: result withheld. Its decrypted aggregate did not unpack within the "
        "packing layout's bounds (on a task with validity 'none': some client uploaded a report "
        "outside the declared range, a forged report not made by the SDK); no sums of this task "
        "will be released."
    )


__all__ = [
    "MAX_PACKED_VALUES",
    "check_packed_length",
    "check_packing",
    "implied_encoding",
    "unpack_checked",
    "withheld_error",
]

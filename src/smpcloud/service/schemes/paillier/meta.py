"""The metadata of a Paillier task (packed or not): its threshold key and, if packed, its layout."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from smpcloud.crypto import threshold
from smpcloud.crypto.packing import Packing
from smpcloud.crypto.paillier import Ciphertext
from smpcloud.errors import MalformedCiphertextError
from smpcloud.protocol.problems import NotFoundError
from smpcloud.service.db import PackedTaskRow, PaillierTaskRow, TaskRow
from smpcloud.service.meta import TaskMeta, common_fields


@dataclass(frozen=True, slots=True)
class PaillierMeta(TaskMeta):
    """The immutable part of a Paillier task, parsed once and cached.

    Attributes:
        public: the threshold public key.
        public_key_json: its JSON form, as served to participants.
        packing: the packing layout of a packed task (None: one value per ciphertext).
    """

    public: threshold.ThresholdPublicKey
    public_key_json: dict[str, Any]
    packing: Packing | None = None

    @property
    def ciphertexts(self) -> int:
        """Ciphertexts per report (and in the aggregate): the layout's count, else ``length``."""
        return self.packing.ciphertexts if self.packing is not None else self.length

    @property
    def width(self) -> int:
        """Bytes per stored ciphertext (the byte length of n^2)."""
        return (self.public.public_key.n_squared.bit_length() + 7) // 8

    def split(self, blob: bytes) -> list[Ciphertext]:
        """Decode ``ciphertexts`` concatenated fixed-width ciphertexts (validating each).

        Raises:
            MalformedCiphertextError: a blob of the wrong size or a stored ciphertext that
                does not decode (a corrupted database).
        """
        width, count = self.width, self.ciphertexts
        if len(blob) != width * count:
            raise MalformedCiphertextError("stored ciphertexts have the wrong size")
        pk = self.public.public_key
        return [Ciphertext.from_bytes(pk, blob[i * width : (i + 1) * width]) for i in range(count)]


def load_paillier_meta(session: Session, task: TaskRow) -> PaillierMeta:
    """Read a Paillier task's metadata (its key and layout tables) in a read session.

    Raises:
        NotFoundError: the task has no Paillier key row.
    """
    row = session.get(PaillierTaskRow, task.id)
    if row is None:
        raise NotFoundError(f"no Paillier task {task.id!r}")
    packed = session.get(PackedTaskRow, task.id)
    key_json = json.loads(row.public_key_json)
    return PaillierMeta(
        **common_fields(task),
        # Validated at creation under the policy of that time; trust the stored key.
        public=threshold.public_key_from_json(key_json, insecure=True),
        public_key_json=key_json,
        packing=(
            Packing.from_json(json.loads(packed.packing_json)) if packed is not None else None
        ),
    )


__all__ = ["PaillierMeta", "load_paillier_meta"]

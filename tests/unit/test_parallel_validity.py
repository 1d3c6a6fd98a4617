"""Report validity proofs on real worker processes (parallel.validity_ops via CryptoPool)."""

from __future__ import annotations

import pytest

from smpcloud.crypto import paillier
from smpcloud.crypto.packing import Packing
from smpcloud.crypto.validity import ProofLayout, ReportBase, verify_report
from smpcloud.errors import InvalidProofError
from smpcloud.parallel import CryptoPool

CONTEXT = b"ctx"


def test_pool_proves_and_verifies_in_chunks_like_one_process() -> None:
    pk, sk = paillier.generate_keypair(512, insecure=True)
    base = ReportBase(pk.n)
    layout = ProofLayout.unpacked(-4, 4, 40)
    values = [i % 9 for i in range(40)]
    with CryptoPool(2) as pool:
        cts, proof = pool.prove_report(base, layout, values, CONTEXT)
        verify_report(base, layout, cts, proof, CONTEXT)  # one process agrees
        pool.verify_report(base, layout, cts, proof, CONTEXT)
        assert [sk.raw_decrypt(c) for c in cts] == [(u - 4) % pk.n for u in values]
        # A failure in a worker's chunk comes back with its check and the element named.
        forged = bytearray(proof)
        at = layout.proof_offset(base.bits, 33)
        forged[at] ^= 1
        with pytest.raises(InvalidProofError, match="ciphertext 33") as info:
            pool.verify_report(base, layout, cts, bytes(forged), CONTEXT)
        assert info.value.check == "challenge"
        with pytest.raises(InvalidProofError) as info:
            pool.verify_report(base, layout, cts[:-1], proof, CONTEXT)
        assert info.value.check == "length"
        # A one-value report goes to a worker too (one piece), with the same verdict.
        single = ProofLayout.unpacked(0, 3, 1)
        one, one_proof = pool.prove_report(base, single, [2], CONTEXT)
        pool.verify_report(base, single, one, one_proof, CONTEXT)
        with pytest.raises(InvalidProofError) as info:
            pool.verify_report(base, single, one, one_proof, CONTEXT + b"x")
        assert info.value.check == "challenge"
        packing = Packing(
            length=50, key_bits=512, min_value=-1.0, max_value=1.0, max_additions=4, frac_bits=3
        )
        packed = ProofLayout.packed(packing)
        slots = [i % (packing.span + 1) for i in range(50)]
        cts, proof = pool.prove_report(base, packed, slots, CONTEXT)
        pool.verify_report(base, packed, cts, proof, CONTEXT)
        verify_report(base, packed, cts, proof, CONTEXT)

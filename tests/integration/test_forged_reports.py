"""Forged Paillier reports against a real server: accepted on a 'none' task, refused on 'range'.

The audit of issue 15 first (a 'none' packed task, 10 clients, values in [-1, 1]): forged
reports of +6.0 in slot 0, +4/-4 in two slots, -8.5 in slot 3 and +40 in slot 2 (a spill into
slot 3) are accepted and shift the published sums, and one -20.0 makes the task 'withheld' for
good. Then the same forgeries, and many more kinds, on 'range' tasks (packed and unpacked): each
is refused with 422 (invalid-proof and the failed check's name, or the existing precise slug),
the honest clients' result is exact, and the task's status counts the refusals by reason.

The forger is a client that bypasses the SDK: it builds ciphertexts and proofs with the crypto
API directly (:class:`Forger`), posts them with httpx under its own token.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import httpx
import numpy as np
import pytest
from service_harness import Key, ServerProcess, assert_problem

from smpcloud.client import TaskCreated
from smpcloud.crypto import pedersen, threshold
from smpcloud.crypto.decomposition import bit_weights, decompose
from smpcloud.crypto.packing import Packing
from smpcloud.crypto.range_proof import BitWitness, commit_bit, respond_bit
from smpcloud.crypto.validity import (
    CHALLENGE_BITS,
    PROOF_DOMAIN,
    STATISTICAL_BITS,
    ProofLayout,
    ReportBase,
    prove_report,
)
from smpcloud.crypto.wire import encode_int
from smpcloud.errors import OverflowDetectedError
from smpcloud.protocol.report_proofs import client_digest, encode_proof, proof_context

pytestmark = pytest.mark.backends("sqlite", "postgres")

FRAC = 16
SCALE = 1 << FRAC


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def packing_for(key: Key, length: int, clients: int) -> Packing:
    return Packing.for_key(
        key[0].public_key,
        length=length,
        min_value=-1.0,
        max_value=1.0,
        max_additions=clients,
        frac_bits=FRAC,
    )


# ------------------------------------------------------------------------------ the forger


@dataclass
class Forger:
    """A client that bypasses the SDK: ciphertexts and proofs made with the crypto API."""

    key: Key
    base: ReportBase
    layout: ProofLayout
    task_id: str

    def context(self, token: str, task_id: str | None = None) -> bytes:
        return proof_context(
            task_id or self.task_id, client_digest(token), self.key[0].fingerprint()
        )

    def honest(self, values: Sequence[int], token: str) -> tuple[list[int], bytes]:
        """An honest proof of in-range slot values (u in [0, U])."""
        return prove_report(self.base, self.layout, list(values), self.context(token))

    def forge(
        self,
        token: str,
        committed: Sequence[int],
        *,
        plaintexts: Sequence[int] | None = None,
        context: bytes | None = None,
        layout: ProofLayout | None = None,
    ) -> tuple[list[int], bytes]:
        """Prove ``committed`` slot values (any ints: out-of-range ones get a non-bit), with
        ciphertexts of ``plaintexts`` (default: what the committed values give)."""
        layout = layout or self.layout
        context = self.context(token) if context is None else context
        header = (
            PROOF_DOMAIN
            + len(context).to_bytes(8, "big")
            + context
            + layout.to_bytes()
            + self.base.digest
        )
        cts: list[int] = []
        proofs: list[bytes] = []
        for j in range(layout.ciphertexts):
            values = list(committed[j * layout.slots : j * layout.slots + layout.slots_in(j)])
            m = layout.offset + sum(u << (s * layout.slot_bits) for s, u in enumerate(values))
            if plaintexts is not None:
                m = plaintexts[j]
            c, proof = self._one(layout, header, j, values, m)
            cts.append(c)
            proofs.append(proof)
        return cts, b"".join(proofs)

    def _one(
        self, layout: ProofLayout, header: bytes, j: int, values: list[int], m: int
    ) -> tuple[int, bytes]:
        base, n, nsq = self.base, int(self.base.n), int(self.base.n_squared)
        span = layout.span
        weights = bit_weights(span)
        rho = secrets.randbits(base.rho_bits)
        c = base.encrypt(m, rho)
        witnesses: list[list[BitWitness]] = []
        blindings: list[int] = []
        for u in values:
            if 0 <= u <= span:
                bits = [commit_bit(b) for b in decompose(u, span)]
            else:  # all the excess in "bit" 0: a commitment to u - (other bits), not a bit
                bits = [forged_bit(u)] + [commit_bit(0) for _ in weights[1:]]
            witnesses.append(bits)
            blindings.append(
                sum(w * b.blinding for w, b in zip(weights, bits, strict=True)) % pedersen.L
            )
        alpha_bits = layout.bits + CHALLENGE_BITS + STATISTICAL_BITS
        alphas = [secrets.randbits(alpha_bits) for _ in values]
        betas = [pedersen.random_scalar() for _ in values]
        a_points = [pedersen.commit(a, b) for a, b in zip(alphas, betas, strict=True)]
        gamma = secrets.randbits(base.rho_bits + CHALLENGE_BITS + STATISTICAL_BITS)
        weighted = sum(a << (s * layout.slot_bits) for s, a in enumerate(alphas))
        a_big = (n * (weighted % n) + 1) * int(base.power(gamma)) % nsq
        h = hashlib.sha512(header)
        h.update(j.to_bytes(8, "big"))
        h.update(c.to_bytes(base.nsq_bytes, "big"))
        h.update(b"".join(w.commitment for bits in witnesses for w in bits))
        h.update(b"".join(a for bits in witnesses for w in bits for a in w.first))
        h.update(b"".join(a_points))
        h.update(a_big.to_bytes(base.nsq_bytes, "big"))
        digest = h.digest()
        value = int.from_bytes(digest, "little")
        e_or, e = value % pedersen.L, value & ((1 << CHALLENGE_BITS) - 1)
        out = [digest]
        out.extend(respond_bit(w, e_or) for bits in witnesses for w in bits)
        for s, u in enumerate(values):
            out.append(a_points[s])
            out.append(pedersen.scalar_bytes(betas[s] + e * blindings[s]))
            out.append((alphas[s] + e * u).to_bytes(layout.zs_bytes(), "little", signed=True))
        out.append(a_big.to_bytes(base.nsq_bytes, "big"))
        out.append((gamma + e * rho).to_bytes(base.z_bits // 8, "little"))
        return c, b"".join(out)


def forged_bit(value: int) -> BitWitness:
    """A "bit" commitment to ``value`` (not 0 or 1) with an OR-proof made as if it were 1."""
    r = pedersen.random_scalar()
    c = pedersen.commit(value, r)
    w, e_fake, z_fake = (pedersen.random_scalar() for _ in range(3))
    a_fake = pedersen.sub(pedersen.base_mul(z_fake), pedersen.mul(e_fake, c))
    return BitWitness(1, r, c, w, e_fake, z_fake, (a_fake, pedersen.base_mul(w)))


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def post(
    server: ServerProcess,
    task_id: str,
    token: str,
    key: Key,
    cts: Sequence[int],
    proof: str | bytes | None,
) -> httpx.Response:
    body: dict[str, object] = {
        "key_id": key[0].public_key.key_id,
        "ciphertexts": [encode_int(c) for c in cts],
    }
    if proof is not None:
        body["proof"] = encode_proof(proof) if isinstance(proof, bytes) else proof
    return httpx.post(
        f"{server.base_url}/v1/tasks/{task_id}/reports",
        json=body,
        headers=bearer(token),
        timeout=60.0,
    )


def decrypt(server: ServerProcess, task: TaskCreated, key: Key) -> None:
    for share in key[1][:3]:
        with server.holder(task, share) as holder:
            holder.contribute()


def encoded(x: float) -> int:
    return round(x * SCALE)


def slot_values(xs: Sequence[float]) -> list[int]:
    """Offset encoding u = round(x 2^f) - lo, lo = -2^f: the values a packed slot holds."""
    return [encoded(x) + SCALE for x in xs]


# ------------------------------------------------------------------- the audit, reproduced

AUDIT_LENGTH = 6
HONEST = np.array(
    [
        [0.5, -0.25, -1.0, 1.0, 0.0, 0.75],
        [-0.5, 0.25, -1.0, 1.0, -0.75, 1.0],
        [1.0, 1.0, -1.0, 0.5, 0.5, -0.5],
    ]
)

#: name -> per-slot additive forgery (in value units) on top of an honest-looking zero vector
#: (the honest rows above keep every slot's total within the slot check, so that the forged
#: sums are published, as in the audit).
AUDIT_FORGERIES: dict[str, dict[int, float]] = {
    "+6.0 in slot 0": {0: 6.0},
    "+4/-4 in two slots": {1: 4.0, 4: -4.0},
    "-8.5 in slot 3": {3: -8.5},
    "+40 in slot 2 (spills into slot 3)": {2: 40.0},
}


def forged_plaintext(packing: Packing, shifts: dict[int, float]) -> int:
    """The packed plaintext of a zero vector with ``shifts`` added to its slots (any sign)."""
    us = slot_values([0.0] * packing.length)
    for slot, shift in shifts.items():
        us[slot] += encoded(shift)
    return sum(u << (s * packing.slot_bits) for s, u in enumerate(us))


def test_audit_none_task_accepts_forgeries_and_can_be_withheld(
    server: ServerProcess, key: Key
) -> None:
    clients = 10
    packing = packing_for(key, AUDIT_LENGTH, clients)
    pk = key[0].public_key
    task, creds = server.new_task(key, clients, packing=packing, min_clients=3, validity="none")
    for cred, row in zip(creds, HONEST, strict=False):
        with server.client(task.task_id, cred.token) as client:
            client.submit(row)
    forgers = creds[len(HONEST) :]
    expected = HONEST.sum(axis=0)
    for cred, shifts in zip(forgers, AUDIT_FORGERIES.values(), strict=False):
        c = pk.encrypt(forged_plaintext(packing, shifts) % pk.n)
        response = post(server, task.task_id, cred.token, key, [c.value], None)
        assert response.status_code == 201, response.text  # accepted: nothing checks it
    with server.admin() as admin:
        admin.close(task.task_id)
    decrypt(server, task, key)
    with server.admin() as admin:
        result = admin.result(task.task_id)
    assert result.count == len(HONEST) + len(AUDIT_FORGERIES)
    # Published, and shifted far beyond what 7 in-range reports of zeros could do.
    shifted = np.asarray(result.sum) - expected
    assert np.max(np.abs(shifted)) > 5.0

    # One forged -20.0 blocks a second 'none' task for good.
    task2, creds2 = server.new_task(key, 3, packing=packing, min_clients=3, validity="none")
    for cred, row in zip(creds2[:2], HONEST, strict=False):
        with server.client(task2.task_id, cred.token) as client:
            client.submit(row)
    c = pk.encrypt(forged_plaintext(packing, {3: -20.0}) % pk.n)
    assert post(server, task2.task_id, creds2[2].token, key, [c.value], None).status_code == 201
    with server.admin() as admin:
        admin.close(task2.task_id)
    with pytest.raises(OverflowDetectedError):
        decrypt(server, task2, key)
    with server.admin() as admin:
        assert admin.status(task2.task_id).state == "withheld"


# --------------------------------------------------------------- the same on 'range' tasks


@dataclass
class Kind:
    """One forged report: how to make it, and the slug and checks it must be refused with."""

    make: Callable[[], tuple[list[int], str | bytes | None]]
    slug: str
    checks: frozenset[str]


def flip(proof: bytes, at: int, bit: int = 0) -> bytes:
    out = bytearray(proof)
    out[at] ^= 1 << bit
    return bytes(out)


def test_range_packed_task_refuses_every_forgery(server: ServerProcess, key: Key) -> None:
    clients = 10
    packing = packing_for(key, AUDIT_LENGTH, clients)
    pk = key[0].public_key
    task, creds = server.new_task(key, clients, packing=packing, min_clients=3, validity="range")
    other_task, _ = server.new_task(key, 2, packing=packing, min_clients=2, validity="range")
    layout = ProofLayout.packed(packing)
    base = ReportBase(pk.n)
    forger = Forger(key, base, layout, task.task_id)
    token = creds[-1].token  # the forging client
    victim = creds[-2].token
    zeros = slot_values([0.0] * AUDIT_LENGTH)
    honest_cts, honest_proof = forger.honest(zeros, token)
    victim_cts, victim_proof = forger.honest(slot_values([0.5] * AUDIT_LENGTH), victim)
    other_key = threshold.deal(key[0].n.bit_length(), n=5, t=3, insecure=True)
    other_base = ReportBase(other_key[0].public_key.n)
    k = layout.bits
    bit_bytes = 128
    slot_bytes = layout.slot_proof_bytes()
    used = layout.slots_in(0)
    links = 64 + used * k * bit_bytes  # first A_s
    a_big = 64 + used * slot_bytes  # the Paillier commitment A
    z_at = a_big + base.nsq_bytes
    n2 = int(base.n_squared)

    def with_shifts(shifts: dict[int, float]) -> list[int]:
        us = list(zeros)
        for slot, shift in shifts.items():
            us[slot] += encoded(shift)
        return us

    def claim_zero_send(shifts: dict[int, float]) -> tuple[list[int], bytes]:
        """Honest bits of zeros, ciphertext of the forged plaintext: the link must fail."""
        return forger.forge(token, zeros, plaintexts=[forged_plaintext(packing, shifts)])

    def rerandomised() -> tuple[list[int], bytes]:
        c = honest_cts[0] * int(base.power(secrets.randbits(base.rho_bits))) % n2
        return [c], honest_proof

    def other_layout() -> tuple[list[int], bytes]:
        same_bits = ProofLayout(
            span=layout.span + 1,
            offset=0,
            length=layout.length,
            slots=layout.slots,
            slot_bits=layout.slot_bits,
        )
        assert same_bits.bits == layout.bits
        return forger.forge(token, zeros, layout=same_bits)

    def other_key_proof() -> tuple[list[int], bytes]:
        _, proof = Forger(other_key, other_base, layout, task.task_id).honest(zeros, token)
        return honest_cts, proof

    def too_large_response() -> tuple[list[int], bytes]:
        out = bytearray(honest_proof)
        top = links + 64 + layout.zs_bytes() - 1  # the last byte of z_0
        out[top] |= 0x80
        return honest_cts, bytes(out)

    kinds: dict[str, Kind] = {
        # Values out of range: committed as they are (a "bit" that is not 0 or 1).
        "above range (+6.0 in slot 0)": Kind(
            lambda: forger.forge(token, with_shifts({0: 6.0})),
            "invalid-proof",
            frozenset({"challenge"}),
        ),
        "below range (-8.5 in slot 3)": Kind(
            lambda: forger.forge(token, with_shifts({3: -8.5})),
            "invalid-proof",
            frozenset({"challenge"}),
        ),
        "cancelling slots (+4 / -4)": Kind(
            lambda: forger.forge(token, with_shifts({1: 4.0, 4: -4.0})),
            "invalid-proof",
            frozenset({"challenge"}),
        ),
        # Honest-looking bits, a ciphertext that does not carry them.
        "in-range claim, +6.0 encrypted": Kind(
            lambda: claim_zero_send({0: 6.0}), "invalid-proof", frozenset({"link"})
        ),
        "carry into the next slot (+40 in slot 2)": Kind(
            lambda: claim_zero_send({2: 40.0}), "invalid-proof", frozenset({"link"})
        ),
        "cancelling slots, encrypted only": Kind(
            lambda: claim_zero_send({1: 4.0, 4: -4.0}), "invalid-proof", frozenset({"link"})
        ),
        "-20.0 (the withholding forgery)": Kind(
            lambda: claim_zero_send({3: -20.0}), "invalid-proof", frozenset({"link"})
        ),
        "huge plaintext (n/2)": Kind(
            lambda: forger.forge(token, zeros, plaintexts=[int(base.n) // 2]),
            "invalid-proof",
            frozenset({"link"}),
        ),
        # m = n is 0 mod n: the very ciphertext of the all-minimum vector, so a claim of
        # other values fails the link (and a claim of zeros would be an honest report).
        "negative zero (m = n) claiming other values": Kind(
            lambda: forger.forge(token, zeros, plaintexts=[int(base.n)]),
            "invalid-proof",
            frozenset({"link"}),
        ),
        "a valid proof copied from another client's report": Kind(
            lambda: (victim_cts, victim_proof), "invalid-proof", frozenset({"challenge"})
        ),
        "a valid proof from another task": Kind(
            lambda: forger.forge(token, zeros, context=forger.context(token, other_task.task_id)),
            "invalid-proof",
            frozenset({"challenge"}),
        ),
        "a replayed proof with a re-randomised ciphertext": Kind(
            rerandomised, "invalid-proof", frozenset({"challenge"})
        ),
        "a proof under another key": Kind(
            other_key_proof, "invalid-proof", frozenset({"challenge"})
        ),
        "a truncated proof": Kind(
            lambda: (honest_cts, honest_proof[:-1]), "invalid-proof", frozenset({"length"})
        ),
        "a padded proof": Kind(
            lambda: (honest_cts, honest_proof + b"\0"), "invalid-proof", frozenset({"length"})
        ),
        "a flipped bit in the challenge digest": Kind(
            lambda: (honest_cts, flip(honest_proof, 0)), "invalid-proof", frozenset({"challenge"})
        ),
        "a flipped bit in a bit commitment": Kind(
            lambda: (honest_cts, flip(honest_proof, 64 + 5)),
            "invalid-proof",
            frozenset({"challenge", "point"}),
        ),
        "a flipped bit in a bit's e0": Kind(
            lambda: (honest_cts, flip(honest_proof, 64 + 32)),
            "invalid-proof",
            frozenset({"challenge", "bit"}),
        ),
        "a flipped bit in a bit's z1": Kind(
            lambda: (honest_cts, flip(honest_proof, 64 + 96 + 7)),
            "invalid-proof",
            frozenset({"challenge", "bit"}),
        ),
        "a flipped bit in a link commitment A_s": Kind(
            lambda: (honest_cts, flip(honest_proof, links + 3)),
            "invalid-proof",
            frozenset({"challenge", "point"}),
        ),
        "a flipped bit in a link response t_s": Kind(
            lambda: (honest_cts, flip(honest_proof, links + 32)),
            "invalid-proof",
            frozenset({"link"}),
        ),
        "a flipped bit in a link response z_s": Kind(
            lambda: (honest_cts, flip(honest_proof, links + 64)),
            "invalid-proof",
            frozenset({"link"}),
        ),
        "a flipped bit in the Paillier commitment A": Kind(
            lambda: (honest_cts, flip(honest_proof, a_big + 100)),
            "invalid-proof",
            frozenset({"challenge"}),
        ),
        "a flipped bit in the randomiser response z": Kind(
            lambda: (honest_cts, flip(honest_proof, z_at)), "invalid-proof", frozenset({"link"})
        ),
        "a link response too large": Kind(
            too_large_response, "invalid-proof", frozenset({"range"})
        ),
        "a proof for another layout (other span, same bits)": Kind(
            other_layout, "invalid-proof", frozenset({"challenge"})
        ),
        "a ciphertext swapped between two proven reports": Kind(
            lambda: (victim_cts, honest_proof), "invalid-proof", frozenset({"challenge"})
        ),
        "no proof": Kind(lambda: (honest_cts, None), "invalid-proof", frozenset({"missing"})),
        "a proof that is not base64url": Kind(
            lambda: (honest_cts, "not base64!"), "invalid-proof", frozenset({"encoding"})
        ),
        "a proof with unused bits set": Kind(
            lambda: (honest_cts, b64(honest_proof)[:-1] + "_"),
            "invalid-proof",
            frozenset({"encoding", "length"}),
        ),
        "a ciphertext outside [1, n^2)": Kind(
            lambda: ([n2 + 1], honest_proof), "malformed-ciphertext", frozenset()
        ),
    }
    assert len(kinds) >= 20
    refused = 0
    for name, kind in kinds.items():
        cts, proof = kind.make()
        response = post(server, task.task_id, token, key, cts, proof)
        body = assert_problem(response, 422, kind.slug)
        if kind.checks:
            assert body.get("check") in kind.checks, (name, body)
        refused += 1

    # A 'none' task refuses a report that carries a proof: nobody must believe it was checked.
    none_task, none_creds = server.new_task(key, 2, packing=packing, validity="none")
    none_forger = Forger(key, base, layout, none_task.task_id)
    cts, proof = none_forger.honest(zeros, none_creds[0].token)
    body = assert_problem(
        post(server, none_task.task_id, none_creds[0].token, key, cts, proof), 422, "invalid-proof"
    )
    assert body["check"] == "unexpected"

    # The honest clients (through the SDK) and the forger's own honest report are accepted.
    for cred, row in zip(creds, HONEST, strict=False):
        with server.client(task.task_id, cred.token) as client:
            client.submit(row)
    assert post(server, task.task_id, token, key, honest_cts, honest_proof).status_code == 201
    with server.admin() as admin:
        status = admin.status(task.task_id)
        assert status.refused == {"invalid-proof": refused - 1, "malformed-ciphertext": 1}
        admin.close(task.task_id)
    decrypt(server, task, key)
    with server.admin() as admin:
        result = admin.result(task.task_id)
        assert admin.status(task.task_id).state == "decrypted"
    assert result.count == len(HONEST) + 1
    exact = HONEST.sum(axis=0)  # + the forger's zeros
    assert np.max(np.abs(np.asarray(result.sum) - exact)) <= 1e-9
    assert result.within_declared_range


def test_range_unpacked_task_refuses_forgeries(server: ServerProcess, key: Key) -> None:
    from smpcloud.client import TaskEncoding

    encoding = TaskEncoding.integer(-1000, 1000)
    task, creds = server.new_task(key, 4, length=2, encoding=encoding, validity="range")
    pk = key[0].public_key
    layout = ProofLayout.unpacked(-1000, 1000, 2)
    forger = Forger(key, ReportBase(pk.n), layout, task.task_id)
    token = creds[-1].token
    # u = value + 1000: 1001 is 1 over the top, -1 is 1 below the bottom.
    cases = {
        "one above the top": (forger.forge(token, [2001, 1000]), {"challenge"}),
        "one below the bottom": (forger.forge(token, [1000, -1]), {"challenge"}),
        "in-range claim, 10^6 encrypted": (
            forger.forge(token, [1000, 1000], plaintexts=[10**6, 0]),
            {"link"},
        ),
        "a claim of the offset only (K = lo forgotten)": (
            forger.forge(token, [1000, 1000], plaintexts=[1000, 1000]),
            {"link"},
        ),
    }
    for name, ((cts, proof), checks) in cases.items():
        body = assert_problem(
            post(server, task.task_id, token, key, cts, proof), 422, "invalid-proof"
        )
        assert body["check"] in checks, (name, body)
    values = [[-1000, 1000], [7, -3], [999, -1000]]
    for cred, row in zip(creds, values, strict=False):
        with server.client(task.task_id, cred.token) as client:
            prepared = client.prepare(row)
            assert prepared.proof is not None
            client.upload(prepared)
    with server.admin() as admin:
        assert admin.status(task.task_id).refused == {"invalid-proof": len(cases)}
        admin.close(task.task_id)
    decrypt(server, task, key)
    with server.admin() as admin:
        result = admin.result(task.task_id)
    assert list(result.sum) == [sum(v[0] for v in values), sum(v[1] for v in values)]


def test_range_task_refuses_a_span_too_wide_to_prove(server: ServerProcess, key: Key) -> None:
    from smpcloud.client import TaskEncoding
    from smpcloud.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="narrow the range"):
        server.new_task(
            key,
            0,
            encoding=TaskEncoding.fixed(40, -(2.0**40), 2.0**40),
            validity="range",
        )

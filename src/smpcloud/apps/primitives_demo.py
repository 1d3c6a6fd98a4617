"""A short end-to-end demonstration of the primitives: Shamir secure sum and Paillier sum.

Scenario: a few hospitals each hold a private count (patients admitted with a condition this
month). They want the total without anyone, including the servers, learning a single count.

1. **Shamir secure sum** (the paper's secure sum protocol, in the cloud): each hospital splits
   its count into n Shamir shares, one per non-colluding server; each server adds the shares it
   received; any t servers interpolate the total. Reveals: the total only. A server alone sees
   uniformly random field elements.
2. **Paillier homomorphic sum**: each hospital encrypts its count under the key holder's public
   key; the cloud multiplies the ciphertexts (adding the plaintexts) without being able to read
   them; the key holder decrypts only the aggregate. Reveals: the total only (to the key holder).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from smpcloud.crypto import paillier, shamir
from smpcloud.errors import InvalidInputError


@dataclass(slots=True)
class DemoReport:
    """What the demonstration computed, with a trace of what each party held."""

    inputs: list[int]
    shamir_servers: int
    shamir_threshold: int
    shamir_sum: int
    server_views: list[str] = field(default_factory=list)
    paillier_bits: int = 0
    paillier_sum: int = 0
    ciphertext_previews: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def plaintext_sum(self) -> int:
        """The sum computed in the clear, for comparison only."""
        return sum(self.inputs)

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready summary (no shares, no keys)."""
        return {
            "clients": len(self.inputs),
            "sum": self.shamir_sum,
            "average": self.shamir_sum / len(self.inputs),
            "plaintext_sum": self.plaintext_sum,
            "plaintext_average": self.plaintext_sum / len(self.inputs),
            "shamir": {
                "servers": self.shamir_servers,
                "threshold": self.shamir_threshold,
                "sum": self.shamir_sum,
            },
            "paillier": {"bits": self.paillier_bits, "sum": self.paillier_sum},
            "seconds": self.seconds,
        }


def sample_counts(clients: int) -> list[int]:
    """Return plausible monthly admission counts (20..400) for ``clients`` hospitals."""
    return [20 + secrets.randbelow(381) for _ in range(clients)]


def run(
    clients: int = 5,
    *,
    servers: int = 3,
    threshold: int = 2,
    bits: int = 2048,
    inputs: list[int] | None = None,
) -> DemoReport:
    """Run both secure sums over the same private inputs and return what happened.

    Raises:
        InvalidInputError: clients < 1, or Shamir parameters out of range.
    """
    if clients < 1:
        raise InvalidInputError("the demo needs at least one client")
    values = inputs if inputs is not None else sample_counts(clients)
    report = DemoReport(values, servers, threshold, 0, paillier_bits=bits)

    start = time.perf_counter()
    held: list[list[shamir.Share]] = [[] for _ in range(servers)]
    for value in values:  # each hospital shares its count, one share per server
        for server, share in enumerate(shamir.share(value, n=servers, t=threshold)):
            held[server].append(share)
    local_sums = [sum(shares[1:], shares[0]) for shares in held]  # each server adds locally
    for server, shares in enumerate(held):
        preview = ", ".join(f"{int(s.y[0, 0]):>10}" for s in shares[:3])
        report.server_views.append(
            f"server {server + 1} holds [{preview}{', ...' * (len(shares) > 3)}]"
        )
    report.shamir_sum = int(shamir.reconstruct(local_sums[-threshold:]))
    report.seconds["shamir"] = time.perf_counter() - start

    start = time.perf_counter()
    public_key, private_key = paillier.generate_keypair(bits=bits)
    report.seconds["paillier_keygen"] = time.perf_counter() - start
    start = time.perf_counter()
    ciphertexts = [public_key.encrypt(v) for v in values]
    report.ciphertext_previews = [f"{int(c.value):x}"[:24] + "..." for c in ciphertexts[:3]]
    aggregate = sum(ciphertexts[1:], ciphertexts[0])  # the cloud: ciphertext multiplication
    report.paillier_sum = private_key.decrypt(aggregate)
    report.seconds["paillier"] = time.perf_counter() - start
    return report

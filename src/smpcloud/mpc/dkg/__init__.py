"""Distributed key generation for threshold Paillier: the key holders make the key together.

No machine ever holds p, q or the decryption exponent: the holders jointly generate a biprime
N = pq (Boneh-Franklin, with sieving by construction and a distributed biprimality test),
then integer shares of d = 0 mod phi(N), 1 mod N, so that their key shares, verification keys
and public key have exactly the format of a dealer's (:mod:`smpcloud.crypto.threshold`): the
service, the SDK and the clients are unchanged.

One module per phase: :mod:`.exchange` (rounds, naming silent holders), :mod:`.sieve`,
:mod:`.modulus` (products, trial division, biprimality), :mod:`.exponent` (the shared
exponent), :mod:`.ceremony` (the driver, self-test and agreement; its docstring states the
security model). The pure arithmetic is in :mod:`smpcloud.crypto.biprime` and
:mod:`smpcloud.crypto.integer_sharing`.
"""

from smpcloud.mpc.dkg.ceremony import (
    KeygenResult,
    KeygenStats,
    check_parameters,
    generate_key,
)

__all__ = ["KeygenResult", "KeygenStats", "check_parameters", "generate_key"]

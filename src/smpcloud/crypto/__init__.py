"""Pure cryptographic math: no sockets, no files, no asyncio, no global mutable state.

Modules: ``field`` (residue-number-system field arithmetic and CSPRNG sampling), ``shamir``
(t-of-n secret sharing), ``additive`` (n-of-n sharing over Z_2^64), ``encoding`` (signed
fixed-point), ``paillier`` (additively homomorphic encryption; ``fixed_base`` holds its
fast-encryption table), ``packing`` (many fixed-point values per Paillier plaintext, overflow
detected; ``packing_layout`` holds the layout), ``threshold`` (t-of-n Paillier decryption;
``threshold_proofs`` holds the Chaum-Pedersen proof, ``threshold_batch`` the batched proof and
combining), ``ot`` and ``ot_extension`` (base and 1-out-of-N oblivious transfer, IKNP
extension, Gilboa multiplication).
"""

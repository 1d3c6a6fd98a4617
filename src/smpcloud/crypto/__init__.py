"""Pure cryptographic math: no sockets, no files, no asyncio, no global mutable state.

Modules: ``field`` (residue-number-system field arithmetic and CSPRNG sampling), ``shamir``
(t-of-n secret sharing), ``additive`` (n-of-n sharing over Z_2^64), ``encoding`` (signed
fixed-point), ``paillier`` (additively homomorphic encryption), ``packing`` (many fixed-point
values per Paillier plaintext, overflow detected), ``threshold`` (t-of-n Paillier decryption),
``ot`` and ``ot_extension`` (base and 1-out-of-N oblivious transfer, IKNP extension, Gilboa
multiplication).
"""

"""The paper's evaluation, measured on this machine: Figure 7 and Table 1 (rank 6).

* :mod:`.figure7`: seconds per phase against the number of clients, both modes, on real
  server subprocesses (``smpcloud bench fig7``);
* :mod:`.table1`: the same aggregation done four ways at the cryptographic level, with peers
  (``smpcloud bench table1``).

They share :mod:`.harness` (the encoding, the key shapes, the check against the plaintext,
progress steps, local servers) and :mod:`.simulate` (the clients' local work on a process
pool). The data come from :mod:`smpcloud.datasets`; the plots need the optional ``examples``
extra. This package never imports :mod:`smpcloud.apps` (the use cases stand above it).
"""

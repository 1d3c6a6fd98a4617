"""The Paillier scheme of the aggregation service (the paper's Figures 1 and 2).

Protocol::

    admin     POST task (threshold public key, encoding, length, min_clients, deadline)
              -> task id, one token per key holder;  POST clients -> one token per client
    client    GET task (key, encoding) -> encrypt locally -> POST report (once)
              (validity 'range': + a proof that every value lies in the declared range;
              the server verifies it before anything is stored, else 422 invalid-proof)
              <- signed receipt (the report's Merkle leaf)
    server    on close (admin request or deadline): aggregate = element-wise product of
              all reports' ciphertexts = E(sum of the values); publish it with the count
              and the signed Merkle log of the same reports
    holder i  GET aggregate, log, logged reports -> check product, count, root, signature
              -> POST c_i = partial decryption + proof, per element (+ attestation)
    server    verify each proof; with t valid partials: combine -> sum, count, average
              (with the log's count and root and the holders' attestations)
    client    GET log/proof?leaf= -> check its receipt's leaf is under the signed root

What the server learns: the count of reports and, once t key holders cooperate, the sums (so the
averages). It stores ciphertexts it cannot decrypt. What it publishes besides: to the task's
participants, a signed receipt per upload and the signed Merkle log (hashes of the reports); to
the key holders and the administrator, the logged ciphertexts.

**Packed tasks** (``packing``): many values per ciphertext; same disclosure, the count and the
per-value sums (:mod:`~smpcloud.service.schemes.paillier.packed`). **Batched partial
decryptions**: one proof per key holder for all ciphertexts
(:mod:`~smpcloud.service.schemes.paillier.decryption`). **Aggregation at close**, on every core,
outside the write lock (:mod:`~smpcloud.service.schemes.paillier.aggregation`, with the measured
figures).

Limits of this protection (what it does *not* give):

* Validity ``range`` (:mod:`~smpcloud.service.schemes.paillier.validity`): every report proves
  in zero knowledge that each of its values lies in the declared range, so no client can move
  a sum by more than an in-range value can, nor block a packed task (``withheld``); a client
  lying *within* its range is never detected. Validity ``none``: nothing checks a report, and a
  client that bypasses the SDK can encrypt any plaintext mod n, bias the sum arbitrarily and
  withhold a packed task's result (see :class:`~smpcloud.protocol.schemas.TaskEncoding`).
* The administrator (who registers clients) could register sybil clients with known values to
  isolate one real client's value; min_clients protects against accidents and honest-but-
  curious result readers, not against a malicious administrator. A malicious *server* can no
  longer pass one client's ciphertext off as the aggregate or misstate the count: every upload
  gets a signed receipt, the server publishes a signed Merkle log of the reports it aggregated
  (:mod:`~smpcloud.service.schemes.paillier.log`), and key holders decrypt only after checking
  that the aggregate is the product of exactly the logged reports, from distinct clients, as
  many as its count (``smpcloud.client.aggregate_check``); a client whose accepted report is
  left out of the log finds out with its receipt (``smpcloud receipt verify``).
* Bearer tokens travel in headers: deploy behind TLS.

Modules, one per phase: ``meta`` (the cached key and layout), ``scheme`` (creation, reports,
views), ``validity`` (the reports' validity proofs), ``aggregation`` (closing and the
aggregate), ``log`` (receipts and the signed report log), ``decryption`` (partial decryptions,
attestations and the result), ``packed`` (what differs for a packed task).
"""

from smpcloud.service.schemes.paillier.meta import PaillierMeta
from smpcloud.service.schemes.paillier.packed import MAX_PACKED_VALUES
from smpcloud.service.schemes.paillier.scheme import PaillierScheme

__all__ = ["MAX_PACKED_VALUES", "PaillierMeta", "PaillierScheme"]

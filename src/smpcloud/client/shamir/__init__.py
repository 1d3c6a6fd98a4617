"""SDK of the service's Shamir mode: n aggregation servers, one Shamir share of each client each.

The paper's secure sum in the cloud (protocol in :mod:`smpcloud.protocol.sharing`)::

    from smpcloud.client import ShamirAggregation, ShamirClient, ShamirServer, TaskEncoding

    servers = [ShamirServer(url, admin_token) for url, admin_token in deployment]   # n = 3
    with ShamirAggregation.create_on_servers(
        servers, name="average BMI", threshold=2, min_clients=10,
        encoding=TaskEncoding.fixed(16, 0.0, 100.0),
    ) as aggregation:
        credentials = aggregation.register(100)      # hand credentials[i] to client i privately
        ...                                          # on each client's machine:
        with ShamirClient(credentials[0]) as client:
            client.submit(23.4)                      # share j, sealed, goes to server j
        aggregation.close_all()                      # one participant set on every server
        result = aggregation.result()                # sum, count, average from any t servers

What is revealed: each server sees uniformly random shares, who reported to it and the
participant set; the analyst (the holder of the servers' admin tokens) learns the sum and the
count over the participant set; fewer than t colluding servers learn nothing about any input.
Share j is sealed to server j's share key (RFC 9180 HPKE), which the administrator reads from
server j when creating the task and pins in the task and in every client's credentials: a
proxy, a TLS terminator in front of the servers or one host posing as several servers sees
ciphertexts only (their sizes and timing, and the tokens and task ids of the requests).
Clients refuse, before sending anything, plain http to a non-loopback host, two servers on
one non-loopback host (loopback is the one exception, so that local demonstrations with n
ports on 127.0.0.1 work), two servers with one key, and a server that serves another key than
the pinned one (:mod:`smpcloud.client.shamir.pinning`). Trusted: the administrator, for the
keys it pins and the credentials it writes (it holds no opening key, so on the path it sees
sealed shares only; but an administrator who pinned keys of its own would read every share);
each server, to keep its opening key to itself; fewer than t servers colluding.
Every server closes once, over one participant set, and t > n/2 is required, so no second sum
over a set that differs by one client (which would reveal that client's value) can be
reconstructed. With ``validity="range"`` (:meth:`ShamirAggregation.create_on_servers`) each
report carries the bits and masks of the servers' joint check that every value lies in the
declared range, and a report that fails is dropped by every server
(:mod:`smpcloud.crypto.shamir_validity`; needs n = 2t - 1 and every server at close). Not
protected against: malicious clients on a ``none`` task, a client lying within its range, a
server that breaks the check (it can fail an honest report or pass a colluding client's forged
one), an administrator who registers sybil clients with known values, t or more colluding
servers.

Drop-outs: a client counts if its shares reach at least t servers *and* every server the
administrator reaches at close holds its share (the participant set is the intersection); up to
n - t servers may be offline at any step. A client keeps its shares in memory until all n
servers have them: :meth:`ShamirClient.retry` re-sends the *same* shares to the servers it
missed. Sharing again from a fresh object after a partial upload would mix two sharings, so
:meth:`ShamirClient.submit` first asks every reachable server whether it already holds this
client's report and sends nothing if one does.

Where the parts live: the value types in :mod:`smpcloud.client.shamir.models`, the
administrator and analyst in :mod:`smpcloud.client.shamir.aggregation`, the data owner (and
:func:`prepare_shares`) in :mod:`smpcloud.client.shamir.data_owner`, the administrator's half
of the validity check (validity ``range``) in :mod:`smpcloud.client.shamir.checks`, the calls to
every server in ``smpcloud.client.shamir._servers``.
"""

from smpcloud.client.shamir.aggregation import ShamirAggregation
from smpcloud.client.shamir.data_owner import ShamirClient, check_credentials, prepare_shares
from smpcloud.client.shamir.models import (
    CREDENTIALS_KIND,
    ShamirClosed,
    ShamirCredentials,
    ShamirEndpoint,
    ShamirPreparedReport,
    ShamirResult,
    ShamirServer,
    ShamirSubmission,
    ShamirTask,
    ShamirTaskInfo,
)
from smpcloud.client.shamir.pinning import (
    DuplicateShareKeyError,
    InsecureServerURLError,
    SharedHostError,
    ShareKeyMismatchError,
)

__all__ = [
    "CREDENTIALS_KIND",
    "DuplicateShareKeyError",
    "InsecureServerURLError",
    "ShamirAggregation",
    "ShamirClient",
    "ShamirClosed",
    "ShamirCredentials",
    "ShamirEndpoint",
    "ShamirPreparedReport",
    "ShamirResult",
    "ShamirServer",
    "ShamirSubmission",
    "ShamirTask",
    "ShamirTaskInfo",
    "ShareKeyMismatchError",
    "SharedHostError",
    "check_credentials",
    "prepare_shares",
]

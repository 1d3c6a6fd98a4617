"""The paper's Table 1, measured: the same aggregation done four ways on the same data.

N clients each hold one real patient's body-mass index (scikit-learn's diabetes dataset,
:func:`smpcloud.datasets.patient_bmis`); the server must learn their sum (hence the average).
Four ways, measured in one run, at the cryptographic level (no HTTP, no database: the table
compares cryptographic cost and upload size; Figure 7, :mod:`smpcloud.evaluation.figure7`,
measures the service end to end):

1. **plaintext** (no privacy): each client sends its value as a JSON number; the server adds.
   The server learns every value.
2. **traditional encryption**: each client encrypts its fixed-point value with AES-256-GCM
   under a key the server holds (fresh 96-bit nonce, the task id as associated data) and sends
   nonce and ciphertext-with-tag in base64 JSON; the server decrypts and adds. Protected on the
   wire, but the server learns every value.
3. **Paillier SMPC**: each client checks that 3 of the 5 key holders certified the task's key
   and parameters (their Ed25519 signatures over the task as served, against the pinned roster:
   :func:`smpcloud.protocol.certificates.verify_certified`, as
   :meth:`smpcloud.client.Client.info` does), then encodes and encrypts under the 3-of-5
   threshold key (:func:`smpcloud.client.prepare_report`): classic r^n encryption as a one-shot
   device does, and, on a second row, the fast DJN encryption with the key object's table
   already built (a process that encrypts many values). The server validates each ciphertext
   (range, coprime to n) and multiplies them all, as the service does; 3 of the 5 key holders
   partial-decrypt the aggregate with proofs and the proofs are checked when combining. The
   server learns the count; only the sum is ever decrypted.
4. **Shamir SMPC**: each client Shamir-shares its value to 3 servers, t = 2, and seals share
   j to server j's key (:func:`smpcloud.client.prepare_shares`); each server opens, decodes
   and checks its shares and adds them; the analyst rebuilds the sum from 2 servers' shares of
   it. Each server learns only uniformly random shares (and who reported).

Peers in the same run, where installed (benchmark-only dependencies, imported only inside
the functions of :mod:`smpcloud.evaluation.table1_peers`): **python-paillier** (``phe``)
encrypting the same fixed-point values and summing them (single key, no threshold, no
ciphertext validation), and **MPyC** (3 local parties as subprocesses, ``-M3``): a secure sum
of the same values, each party entering a third of them as a secure NumPy array of SecInt(64).

Columns: time per client (median over the clients, one core: for Paillier, check the holders'
certificates (~1 ms), then encode, encrypt or share, and serialise the request body), server
time (all N reports: parse, decrypt or validate, combine; for Shamir, each of the 3 servers),
release (decrypting or rebuilding the result), bytes one client uploads (the real JSON request
body: for Paillier and Shamir the service's ``ReportIn`` as the SDK sends it, measured as httpx
encodes it), and what the server learns.

Every result is checked against the plaintext
(:func:`~smpcloud.evaluation.harness.check_secure_sum`); a wrong one raises
:class:`~smpcloud.errors.VerificationError`.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import numpy as np

from smpcloud.client import (
    ShamirCredentials,
    ShamirEndpoint,
    ShamirTaskInfo,
    TaskInfo,
    prepare_report,
    prepare_shares,
)
from smpcloud.crypto import threshold
from smpcloud.crypto.paillier import Ciphertext, PublicKey
from smpcloud.crypto.sealing import OpeningKey
from smpcloud.crypto.shamir import Share, reconstruct_elements
from smpcloud.crypto.signatures import Roster, SigningKey
from smpcloud.crypto.wire import decode_int
from smpcloud.datasets import check_extra, patient_bmis
from smpcloud.errors import (
    InvalidInputError,
    KeyMismatchError,
    MalformedCiphertextError,
    VerificationError,
)
from smpcloud.evaluation.harness import (
    ENCODING,
    KEY_HOLDERS,
    KEY_THRESHOLD,
    SHAMIR_SERVERS,
    SHAMIR_THRESHOLD,
    check_secure_sum,
)
from smpcloud.evaluation.table1_peers import mpyc_row, phe_row
from smpcloud.evaluation.table1_rows import (
    Table1Result,
    Table1Row,
    fmt_seconds,
    json_bytes,
    median_size,
    render_markdown,
    timed_each,
)
from smpcloud.protocol.certificates import CertificateOut, sign_certificate, verify_certified
from smpcloud.protocol.schemas import ReportIn, TaskInfoOut
from smpcloud.protocol.sharing import SHAMIR_FIELD, open_share

MD_NAME: Final = "table1.md"
MAX_CLIENTS: Final = 1_000_000

_TASK_ID: Final = "table1"
_AES_VALUE_BYTES: Final = 8  # a signed 64-bit fixed-point value


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


# ------------------------------------------------------------------------------ the 4 ways


def _plaintext(values: list[float]) -> Table1Row:
    bodies, per_client = timed_each(values, lambda v: json_bytes(v))
    start = time.perf_counter()
    total = 0.0
    for body in bodies:
        value = json.loads(body)
        if not isinstance(value, float):
            raise VerificationError("a plaintext body is not a number")
        total += value
    server = time.perf_counter() - start
    if abs(total - float(np.sum(values))) > 1e-9 * max(1.0, abs(total)):
        raise VerificationError(f"the plaintext sum {total!r} is wrong")
    return Table1Row(
        "plaintext (no privacy)",
        per_client,
        server,
        None,
        median_size(bodies),
        "every value",
        "a JSON number per client; the server parses and adds floats",
    )


def _aes_gcm(values: list[float]) -> Table1Row:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    key = AESGCM.generate_key(bit_length=256)  # held by the server, shared with every client
    aad = _TASK_ID.encode()

    def client(value: float) -> bytes:
        plain = ENCODING.encode(value).to_bytes(_AES_VALUE_BYTES, "big", signed=True)
        nonce = os.urandom(12)
        sealed = AESGCM(key).encrypt(nonce, plain, aad)  # ciphertext || 16-byte tag
        return json_bytes({"nonce": _b64(nonce), "ciphertext": _b64(sealed)})

    bodies, per_client = timed_each(values, client)
    server_cipher = AESGCM(key)
    start = time.perf_counter()
    total = 0
    for body in bodies:
        message = json.loads(body)
        nonce = base64.b64decode(message["nonce"], validate=True)
        sealed = base64.b64decode(message["ciphertext"], validate=True)
        total += int.from_bytes(server_cipher.decrypt(nonce, sealed, aad), "big", signed=True)
    server = time.perf_counter() - start
    check_secure_sum(count=len(bodies), secure_sum=ENCODING.decode_sum(total), values=values)
    return Table1Row(
        "traditional encryption (AES-256-GCM, server holds the key)",
        per_client,
        server,
        None,
        median_size(bodies),
        "every value (it decrypts each one)",
        "fresh 96-bit nonce per client; base64 nonce + ciphertext + tag in JSON",
    )


def _paillier_server(public_key: PublicKey, bodies: Sequence[bytes]) -> Ciphertext:
    """Validate every report as the service does and multiply them all (adds the plaintexts)."""
    width = (public_key.n_squared.bit_length() + 7) // 8
    total: Ciphertext | None = None
    for body in bodies:
        report = ReportIn.model_validate_json(body)
        if report.key_id != public_key.key_id or report.ciphertexts is None:
            raise KeyMismatchError("a report is for another key")
        for text in report.ciphertexts:
            value = decode_int(text, "ciphertext", max_bytes=width, error=MalformedCiphertextError)
            c = Ciphertext(public_key, value)  # checks [1, n^2) and gcd(c, n) = 1
            total = c if total is None else total + c
    if total is None:
        raise InvalidInputError("no reports")
    return total


def _threshold_release(
    key: tuple[threshold.ThresholdPublicKey, Sequence[threshold.KeyShare]], total: Ciphertext
) -> tuple[int, float]:
    public, shares = key
    chosen = sorted(secrets.SystemRandom().sample(range(len(shares)), public.threshold))
    start = time.perf_counter()
    partials = [shares[i].partial_decrypt(total) for i in chosen]
    plain = threshold.combine(public, partials)  # verifies every proof
    return plain, time.perf_counter() - start


def _certified(info: TaskInfo) -> tuple[TaskInfoOut, Roster]:
    """The task as a server serves it, certified by 3 of the 5 key holders, and the roster."""
    signing = {i: SigningKey.generate() for i in range(1, info.holders + 1)}
    roster = Roster(info.threshold, {i: k.verify_key for i, k in signing.items()})
    served = TaskInfoOut(
        task_id=info.task_id,
        name=info.name,
        state=info.state,
        length=info.length,
        encoding=info.encoding,
        public_key=threshold.public_key_to_json(info.public_key),
        holders=info.holders,
        threshold=info.threshold,
        min_clients=info.min_clients,
        max_clients=info.max_clients,
        deadline=info.deadline,
        roster=roster.to_json(),
    )
    chosen = sorted(secrets.SystemRandom().sample(sorted(signing), info.threshold))
    certificates = [
        CertificateOut(holder=i, signature=sign_certificate(served, signing[i]).signature)
        for i in chosen
    ]
    return served.model_copy(update={"certificates": certificates}), roster


def _paillier(
    values: list[float],
    key: tuple[threshold.ThresholdPublicKey, Sequence[threshold.KeyShare]],
    *,
    with_table: bool,
) -> tuple[Table1Row, float | None]:
    public = key[0]
    key_object = PublicKey(public.public_key.n)  # a fresh object, as a device parses it
    table_seconds: float | None = None
    if with_table:
        start = time.perf_counter()
        key_object.precompute()
        table_seconds = time.perf_counter() - start
    info = TaskInfo(
        task_id=_TASK_ID,
        name="table 1",
        state="open",
        length=1,
        encoding=ENCODING,
        public_key=threshold.ThresholdPublicKey(
            key_object, public.holders, public.threshold, public.v, public.verification_keys
        ),
        holders=public.holders,
        threshold=public.threshold,
        min_clients=2,
        max_clients=MAX_CLIENTS,
        deadline=None,
    )
    served, roster = _certified(info)

    def client(value: float) -> bytes:
        verify_certified(served, roster)  # before encrypting, as Client.info does
        return json_bytes(prepare_report(info, value).request_body())

    bodies, per_client = timed_each(values, client)
    start = time.perf_counter()
    total = _paillier_server(public.public_key, bodies)
    server = time.perf_counter() - start
    plain, release = _threshold_release(key, total)
    check_secure_sum(count=len(bodies), secure_sum=ENCODING.decode_sum(plain), values=values)
    if with_table:
        method = "Paillier SMPC, fast DJN encryption (table built)"
        note = (
            f"key object's fixed-base table built once ({fmt_seconds(table_seconds)}) and "
            "reused: a process that encrypts many values"
        )
    else:
        method = "Paillier SMPC, classic r^n encryption (one-shot device)"
        note = (
            f"{public.public_key.bits}-bit key; server validates [1, n^2) and gcd(c, n) = 1 per "
            f"ciphertext, multiplies; release: {public.threshold} of {public.holders} holders "
            "partial-decrypt with proofs, proofs checked on combining"
        )
    row = Table1Row(
        method,
        per_client,
        server,
        release,
        median_size(bodies),
        "the count only (ciphertexts); the holders release only the sum",
        note,
    )
    return row, table_seconds


def _shamir(values: list[float]) -> Table1Row:
    info = ShamirTaskInfo(
        name="table 1",
        length=1,
        encoding=ENCODING,
        servers=SHAMIR_SERVERS,
        threshold=SHAMIR_THRESHOLD,
        min_clients=2,
        max_clients=MAX_CLIENTS,
        deadline=None,
    )
    servers = range(1, SHAMIR_SERVERS + 1)
    keys = {j: OpeningKey.generate() for j in servers}  # each server's share key
    task_id = "table-1"
    numbers = iter(range(1, len(values) + 1))

    def client(value: float) -> list[bytes]:
        credentials = ShamirCredentials(
            next(numbers),
            SHAMIR_THRESHOLD,
            tuple(
                ShamirEndpoint(j, f"https://server-{j}.invalid", task_id, "-", keys[j].sealing_key)
                for j in servers
            ),
        )
        report = prepare_shares(info, value, credentials)
        return [json_bytes(report.request_body(j)) for j in servers]

    per_server, per_client = timed_each(values, client)
    sums = []
    server_times = []
    for j in servers:
        start = time.perf_counter()
        held = []
        for number, bodies in enumerate(per_server, start=1):
            report = ReportIn.model_validate_json(bodies[j - 1])
            if report.sealed_share is None:  # pragma: no cover - prepare_shares seals
                raise VerificationError("a Shamir report without a sealed share")
            held.append(
                open_share(
                    keys[j],
                    report.sealed_share.model_dump(),
                    task_id=task_id,
                    server_index=j,
                    client=number,
                    length=1,
                    field=SHAMIR_FIELD,
                )
            )
        sums.append(SHAMIR_FIELD.sum(held))
        server_times.append(time.perf_counter() - start)
    start = time.perf_counter()
    chosen = sorted(secrets.SystemRandom().sample(list(servers), SHAMIR_THRESHOLD))
    shares = [Share(j, sums[j - 1], SHAMIR_FIELD, SHAMIR_THRESHOLD) for j in chosen]
    total = int(SHAMIR_FIELD.to_ints(reconstruct_elements(shares, field=SHAMIR_FIELD))[0])
    release = time.perf_counter() - start
    check_secure_sum(count=len(per_server), secure_sum=ENCODING.decode_sum(total), values=values)
    sizes = [median_size([bodies[j - 1] for bodies in per_server]) for j in servers]
    return Table1Row(
        f"Shamir SMPC ({SHAMIR_SERVERS} servers, t = {SHAMIR_THRESHOLD})",
        per_client,
        statistics.mean(server_times),
        release,
        sum(sizes),
        "each server: one uniformly random share per client; the analyst: only the sum",
        f"{SHAMIR_SERVERS} bodies of {sizes[0]} B, one per server; server time is each "
        f"server's (they run in parallel); release: the analyst rebuilds from "
        f"{SHAMIR_THRESHOLD} servers' shares of the sum",
    )


# ----------------------------------------------------------------------------------- entry


def run_table1(
    *,
    clients: int = 1000,
    bits: int = 2048,
    out: Path,
    key: tuple[threshold.ThresholdPublicKey, Sequence[threshold.KeyShare]] | None = None,
    allow_insecure_keys: bool = False,
    peers: bool = True,
) -> Table1Result:
    """Measure Table 1 and write ``out/table1.md``; prints nothing.

    Args:
        clients: number of clients N (at least 2).
        bits: Paillier modulus size (2048 or more; less only with ``allow_insecure_keys``);
            used for the threshold key and for phe's key.
        out: directory for the Markdown file (created if missing).
        key: a 3-of-5 threshold key to use instead of dealing one; ``bits`` bits.
        allow_insecure_keys: allow keys below 2048 bits (fast tests only).
        peers: also measure python-paillier and MPyC (rows say "skipped" when not installed).

    Returns:
        The rows (in table order), the Markdown text and its path.

    Raises:
        InvalidInputError: bad arguments.
        VerificationError: a result differs from the plaintext one.
        MissingExtraError: scikit-learn (the ``examples`` extra) is missing.
    """
    if type(clients) is not int or clients < 2:
        raise InvalidInputError("clients must be an int of at least 2")
    if bits < 2048 and not allow_insecure_keys:
        raise InvalidInputError(f"{bits}-bit keys are insecure; use 2048 or more")
    check_extra("sklearn.datasets")
    notes: list[str] = []
    if key is None:
        start = time.perf_counter()
        key = threshold.deal(bits, n=KEY_HOLDERS, t=KEY_THRESHOLD, insecure=allow_insecure_keys)
        notes.append(
            f"key ceremony (dealer, once, not in the table): {time.perf_counter() - start:.2f} s"
        )
    public, shares = key
    if public.public_key.bits != bits:
        raise InvalidInputError(f"the key has {public.public_key.bits} bits, not {bits}")
    if (public.holders, public.threshold, len(shares)) != (KEY_HOLDERS, KEY_THRESHOLD, KEY_HOLDERS):
        raise InvalidInputError(
            f"the key must be {KEY_THRESHOLD}-of-{KEY_HOLDERS}, with its shares"
        )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    values = [float(v) for v in patient_bmis(clients)]

    classic, _ = _paillier(values, key, with_table=False)
    fast, _ = _paillier(values, key, with_table=True)
    rows = [_plaintext(values), _aes_gcm(values), classic, fast, _shamir(values)]
    if peers:
        rows.append(phe_row(values, bits))
        rows.append(mpyc_row(values))
    notes.append(
        "every secure result (AES-GCM, both Paillier rows, Shamir, phe, MPyC) was checked "
        "against the plaintext sum of the fixed-point values"
    )
    markdown = render_markdown(rows, clients=clients, bits=bits, notes=notes)
    path = out / MD_NAME
    path.write_text(markdown, encoding="utf-8")
    return Table1Result(
        rows=rows, clients=clients, bits=bits, markdown=markdown, path=path, notes=notes
    )


__all__ = ["KEY_HOLDERS", "KEY_THRESHOLD", "MD_NAME", "Table1Result", "Table1Row", "run_table1"]

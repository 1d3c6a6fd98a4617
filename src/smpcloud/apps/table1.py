"""The paper's Table 1, measured: the same aggregation done four ways on the same data.

N clients each hold one real patient's body-mass index (scikit-learn's diabetes dataset,
:func:`~smpcloud.apps.service_demo.patient_bmis`); the server must learn their sum (hence the
average). Four ways, measured in one run, at the cryptographic level (no HTTP, no database: the
table compares cryptographic cost and upload size; Figure 7, :mod:`smpcloud.apps.figure7`,
measures the service end to end):

1. **plaintext** (no privacy): each client sends its value as a JSON number; the server adds.
   The server learns every value.
2. **traditional encryption**: each client encrypts its fixed-point value with AES-256-GCM
   under a key the server holds (fresh 96-bit nonce, the task id as associated data) and sends
   nonce and ciphertext-with-tag in base64 JSON; the server decrypts and adds. Protected on the
   wire, but the server learns every value.
3. **Paillier SMPC**: each client encodes and encrypts under the 3-of-5 threshold key
   (:func:`smpcloud.client.prepare_report`): classic r^n encryption as a one-shot device does,
   and, on a second row, the fast DJN encryption with the key object's table already built (a
   process that encrypts many values). The server validates each ciphertext (range, coprime
   to n) and multiplies them all, as the service does; 3 of the 5 key holders partial-decrypt
   the aggregate with proofs and the proofs are checked when combining. The server learns the
   count; only the sum is ever decrypted.
4. **Shamir SMPC**: each client Shamir-shares its value to 3 servers, t = 2
   (:func:`smpcloud.client.prepare_shares`); each server decodes and checks its shares and
   adds them; the analyst rebuilds the sum from 2 servers' shares of it. Each server learns
   only uniformly random shares (and who reported).

Peers in the same run, where installed (benchmark-only dependencies, imported only inside
this module's functions): **python-paillier** (``phe``) encrypting the same fixed-point
values and summing them (single key, no threshold, no ciphertext validation), and **MPyC**
(3 local parties as subprocesses, ``-M3``): a secure sum of the same values, each party entering
a third of them as a secure NumPy array of SecInt(64).

Columns: time per client (median over the clients, one core: encode, encrypt or share, and
serialise the request body), server time (all N reports: parse, decrypt or validate, combine;
for Shamir, each of the 3 servers), release (decrypting or rebuilding the result), bytes one
client uploads (the real JSON request body: for Paillier and Shamir the service's
``ReportIn`` as the SDK sends it, measured as httpx encodes it), and what the server learns.

Every result is checked against the plaintext (:func:`~smpcloud.apps.figure7.check_secure_sum`);
a wrong one raises :class:`~smpcloud.errors.VerificationError`.
"""

from __future__ import annotations

import base64
import importlib.metadata
import importlib.util
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, TypeVar

import httpx
import numpy as np

from smpcloud.apps.figure7 import check_secure_sum
from smpcloud.apps.service_demo import BMI_RANGE, FRAC_BITS, patient_bmis
from smpcloud.client import TaskEncoding, TaskInfo, prepare_report, prepare_shares
from smpcloud.client.shamir import ShamirTaskInfo
from smpcloud.crypto import threshold
from smpcloud.crypto.paillier import Ciphertext, PublicKey
from smpcloud.crypto.shamir import Share, reconstruct_elements
from smpcloud.crypto.wire import decode_int
from smpcloud.errors import (
    InvalidInputError,
    KeyMismatchError,
    MalformedCiphertextError,
    VerificationError,
)
from smpcloud.ports import free_port_range
from smpcloud.protocol.schemas import ReportIn
from smpcloud.protocol.sharing import SHAMIR_FIELD, decode_share

T = TypeVar("T")
U = TypeVar("U")

MD_NAME: Final = "table1.md"
KEY_HOLDERS: Final = 5
KEY_THRESHOLD: Final = 3
SHAMIR_SERVERS: Final = 3
SHAMIR_THRESHOLD: Final = 2
MAX_CLIENTS: Final = 1_000_000

_ENCODING: Final = TaskEncoding.fixed(FRAC_BITS, *BMI_RANGE)
_TASK_ID: Final = "table1"
_AES_VALUE_BYTES: Final = 8  # a signed 64-bit fixed-point value
_MPYC_TIMEOUT: Final = 600.0
_URL: Final = "http://127.0.0.1/v1/tasks/table1/reports"

# MPyC's side: a secure sum among the parties, each entering a slice of the values. Written to a
# temporary file and run as `python script -M3`; party 0 prints one JSON line.
_MPYC_SCRIPT: Final = """
import json, os, time
import numpy as np
from mpyc.runtime import mpc

async def main():
    with open(os.environ["SMPCLOUD_TABLE1_VALUES"], encoding="utf-8") as handle:
        values = json.load(handle)
    await mpc.start()
    secint = mpc.SecInt(64)
    m = len(mpc.parties)
    width = -(-len(values) // m)
    mine = values[mpc.pid :: m]
    mine = mine + [0] * (width - len(mine))
    await mpc.barrier()
    start = time.perf_counter()
    shared = mpc.input(secint.array(np.array(mine, dtype=np.int64)))
    total = shared[0]
    for x in shared[1:]:
        total = total + x
    out = await mpc.output(mpc.np_sum(total))
    seconds = time.perf_counter() - start
    if mpc.pid == 0:
        print(json.dumps({"sum": int(out), "seconds": seconds}), flush=True)
    await mpc.shutdown()

mpc.run(main())
"""


# ------------------------------------------------------------------------------ value types


@dataclass(frozen=True, slots=True)
class Table1Row:
    """One way of doing the aggregation, as measured.

    Attributes:
        method: what was done.
        client_seconds: median seconds per client (None: not measured or not applicable).
        server_seconds: the server's seconds for all N reports (Shamir: each server).
        release_seconds: seconds to decrypt or rebuild the result (None: nothing to release).
        bytes_per_client: bytes of the request body (bodies) one client uploads.
        server_learns: what the server (or servers) learn.
        note: how it was measured, or why the row was skipped.
        peer: True for another library's implementation of the same job.
        skipped: True when the row could not be measured (peer not installed).
    """

    method: str
    client_seconds: float | None
    server_seconds: float | None
    release_seconds: float | None
    bytes_per_client: int | None
    server_learns: str
    note: str = ""
    peer: bool = False
    skipped: bool = False


@dataclass(frozen=True, slots=True)
class Table1Result:
    """What :func:`run_table1` measured and where it wrote it."""

    rows: list[Table1Row]
    clients: int
    bits: int
    markdown: str
    path: Path
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------- helpers


def _timed_each(items: Sequence[T], work: Callable[[T], U]) -> tuple[list[U], float]:
    """Run work(item) for each item; return the outputs and the median seconds per item."""
    outputs: list[U] = []
    times: list[float] = []
    clock = time.perf_counter
    for item in items:
        start = clock()
        outputs.append(work(item))
        times.append(clock() - start)
    return outputs, statistics.median(times)


def _json_bytes(body: object) -> bytes:
    """Serialise a JSON body compactly (as the client's HTTP library does)."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def _wire_size(body: bytes) -> int:
    """Return the size of the request body httpx sends for ``json=`` this JSON document."""
    return len(httpx.Request("POST", _URL, json=json.loads(body)).content)


def _median_size(bodies: Sequence[bytes]) -> int:
    """Return the median wire size of the bodies (they differ by a byte or two)."""
    return int(statistics.median_low(_wire_size(b) for b in bodies))


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def _fmt_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.3g} µs"
    if seconds < 1.0:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds:.3g} s"


def _fmt_bytes(count: int | None) -> str:
    return "—" if count is None else f"{count:,} B"


# ------------------------------------------------------------------------------ the 4 ways


def _plaintext(values: list[float]) -> Table1Row:
    bodies, per_client = _timed_each(values, lambda v: _json_bytes(v))
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
        _median_size(bodies),
        "every value",
        "a JSON number per client; the server parses and adds floats",
    )


def _aes_gcm(values: list[float]) -> Table1Row:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    key = AESGCM.generate_key(bit_length=256)  # held by the server, shared with every client
    aad = _TASK_ID.encode()

    def client(value: float) -> bytes:
        plain = _ENCODING.encode(value).to_bytes(_AES_VALUE_BYTES, "big", signed=True)
        nonce = os.urandom(12)
        sealed = AESGCM(key).encrypt(nonce, plain, aad)  # ciphertext || 16-byte tag
        return _json_bytes({"nonce": _b64(nonce), "ciphertext": _b64(sealed)})

    bodies, per_client = _timed_each(values, client)
    server_cipher = AESGCM(key)
    start = time.perf_counter()
    total = 0
    for body in bodies:
        message = json.loads(body)
        nonce = base64.b64decode(message["nonce"], validate=True)
        sealed = base64.b64decode(message["ciphertext"], validate=True)
        total += int.from_bytes(server_cipher.decrypt(nonce, sealed, aad), "big", signed=True)
    server = time.perf_counter() - start
    check_secure_sum(count=len(bodies), secure_sum=_ENCODING.decode_sum(total), values=values)
    return Table1Row(
        "traditional encryption (AES-256-GCM, server holds the key)",
        per_client,
        server,
        None,
        _median_size(bodies),
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
        encoding=_ENCODING,
        public_key=threshold.ThresholdPublicKey(
            key_object, public.holders, public.threshold, public.v, public.verification_keys
        ),
        holders=public.holders,
        threshold=public.threshold,
        min_clients=2,
        max_clients=MAX_CLIENTS,
        deadline=None,
    )
    bodies, per_client = _timed_each(
        values, lambda v: _json_bytes(prepare_report(info, v).request_body())
    )
    start = time.perf_counter()
    total = _paillier_server(public.public_key, bodies)
    server = time.perf_counter() - start
    plain, release = _threshold_release(key, total)
    check_secure_sum(count=len(bodies), secure_sum=_ENCODING.decode_sum(plain), values=values)
    if with_table:
        method = "Paillier SMPC, fast DJN encryption (table built)"
        note = (
            f"key object's fixed-base table built once ({_fmt_seconds(table_seconds)}) and "
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
        _median_size(bodies),
        "the count only (ciphertexts); the holders release only the sum",
        note,
    )
    return row, table_seconds


def _shamir(values: list[float]) -> Table1Row:
    info = ShamirTaskInfo(
        name="table 1",
        length=1,
        encoding=_ENCODING,
        servers=SHAMIR_SERVERS,
        threshold=SHAMIR_THRESHOLD,
        min_clients=2,
        max_clients=MAX_CLIENTS,
        deadline=None,
    )
    servers = range(1, SHAMIR_SERVERS + 1)

    def client(value: float) -> list[bytes]:
        report = prepare_shares(info, value)
        return [_json_bytes(report.request_body(j)) for j in servers]

    per_server, per_client = _timed_each(values, client)
    sums = []
    server_times = []
    for j in servers:
        start = time.perf_counter()
        held = []
        for bodies in per_server:
            report = ReportIn.model_validate_json(bodies[j - 1])
            held.append(decode_share(report.share, length=1, field=SHAMIR_FIELD))
        sums.append(SHAMIR_FIELD.sum(held))
        server_times.append(time.perf_counter() - start)
    start = time.perf_counter()
    chosen = sorted(secrets.SystemRandom().sample(list(servers), SHAMIR_THRESHOLD))
    shares = [Share(j, sums[j - 1], SHAMIR_FIELD, SHAMIR_THRESHOLD) for j in chosen]
    total = int(SHAMIR_FIELD.to_ints(reconstruct_elements(shares, field=SHAMIR_FIELD))[0])
    release = time.perf_counter() - start
    check_secure_sum(count=len(per_server), secure_sum=_ENCODING.decode_sum(total), values=values)
    sizes = [_median_size([bodies[j - 1] for bodies in per_server]) for j in servers]
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


# ------------------------------------------------------------------------------------ peers


def _phe_row(values: list[float], bits: int) -> Table1Row:
    method = "peer: python-paillier (phe), encrypt + sum"
    try:
        from phe import paillier as phe_paillier
    except ImportError:
        return Table1Row(
            method, None, None, None, None, "—", "skipped: phe not installed", True, True
        )
    public, private = phe_paillier.generate_paillier_keypair(n_length=bits)
    encoded = [_ENCODING.encode(v) for v in values]

    def client(m: int) -> bytes:
        c = public.encrypt(m)
        return _json_bytes({"ciphertext": str(c.ciphertext()), "exponent": c.exponent})

    bodies, per_client = _timed_each(encoded, client)
    start = time.perf_counter()
    received = []
    for body in bodies:
        message = json.loads(body)
        received.append(
            phe_paillier.EncryptedNumber(public, int(message["ciphertext"]), message["exponent"])
        )
    total = sum(received[1:], received[0])
    server = time.perf_counter() - start
    start = time.perf_counter()
    plain = int(private.decrypt(total))
    release = time.perf_counter() - start
    check_secure_sum(count=len(bodies), secure_sum=_ENCODING.decode_sum(plain), values=values)
    version = _version("phe")
    return Table1Row(
        f"peer: python-paillier {version} (phe), encrypt + sum",
        per_client,
        server,
        release,
        _median_size(bodies),
        "the count only; but one private key decrypts any single value",
        f"{bits}-bit key; classic r^n encryption; ciphertexts as decimal strings (phe's "
        "documented JSON form); no ciphertext validation; release: one private key, no threshold",
        True,
    )


def _mpyc_row(values: list[float]) -> Table1Row:
    method = "peer: MPyC secure sum (3 parties)"
    spec = importlib.util.find_spec("mpyc")
    if spec is None:
        return Table1Row(
            method, None, None, None, None, "—", "skipped: MPyC not installed", True, True
        )
    encoded = [_ENCODING.encode(v) for v in values]
    with tempfile.TemporaryDirectory(prefix="smpcloud-table1-") as tmp:
        script = Path(tmp) / "mpyc_sum.py"
        script.write_text(_MPYC_SCRIPT, encoding="utf-8")
        data = Path(tmp) / "values.json"
        data.write_text(json.dumps(encoded), encoding="utf-8")
        env = {**os.environ, "SMPCLOUD_TABLE1_VALUES": str(data)}
        start = time.perf_counter()
        done = subprocess.run(  # noqa: S603 - our own interpreter and script
            [sys.executable, str(script), "-M3", "-B", str(free_port_range(3))],
            capture_output=True,
            text=True,
            env=env,
            timeout=_MPYC_TIMEOUT,
            check=False,
            cwd=tmp,
        )
        wall = time.perf_counter() - start
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr or done.stdout)[-300:].strip()
        return Table1Row(
            method, None, None, None, None, "—", f"skipped: MPyC failed: {tail}", True, True
        )
    outcome = json.loads(lines[-1])
    check_secure_sum(
        count=len(values), secure_sum=_ENCODING.decode_sum(int(outcome["sum"])), values=values
    )
    seconds = float(outcome["seconds"])
    version = _version("mpyc")  # never import mpyc here: importing it parses sys.argv
    return Table1Row(
        f"peer: MPyC {version} secure sum (3 local parties)",
        seconds / len(values),
        seconds,
        None,
        None,
        "each party: only the sum (honest majority); the parties enter the values",
        f"SecInt(64) secure arrays, each party enters a third of the values; time per client "
        f"is amortised (input + sum + output, over all values); {wall:.2f} s with start-up",
        True,
    )


# ---------------------------------------------------------------------------------- output


def _markdown(rows: Sequence[Table1Row], *, clients: int, bits: int, notes: Sequence[str]) -> str:
    caption = (
        f"**Table 1 (measured).** The same aggregation of {clients:,} clients' body-mass "
        f"indices (scikit-learn diabetes dataset, fixed point with {FRAC_BITS} fractional "
        f"bits) done four ways in one run, with peers. Measured at the cryptographic level (no "
        "HTTP, no database): the table compares cryptographic cost and upload size; Figure 7 "
        "measures the service end to end. Time per client: median, one core (encode, encrypt "
        "or share, serialise the body). Server time: all reports (parse, decrypt or validate, "
        "combine). Release: decrypting or rebuilding the result. Bytes: the JSON request body "
        f"one client uploads. Paillier: {bits}-bit modulus, {KEY_THRESHOLD}-of-{KEY_HOLDERS} "
        f"threshold decryption; Shamir: {SHAMIR_SERVERS} servers, t = {SHAMIR_THRESHOLD}."
    )
    header = [
        "method",
        "time per client",
        "server time",
        "release",
        "bytes per client",
        "what the server learns",
    ]
    lines = [
        caption,
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + ["---:"] * 4 + ["---"]) + "|",
    ]
    for row in rows:
        cells = [
            row.method,
            _fmt_seconds(row.client_seconds),
            _fmt_seconds(row.server_seconds),
            _fmt_seconds(row.release_seconds),
            _fmt_bytes(row.bytes_per_client),
            row.server_learns,
        ]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    lines.append("")
    lines.append("Notes:")
    lines.append("")
    lines.extend(f"- {row.method}: {row.note}" for row in rows if row.note)
    lines.extend(f"- {note}" for note in notes)
    return "\n".join(lines) + "\n"


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
    """
    if type(clients) is not int or clients < 2:
        raise InvalidInputError("clients must be an int of at least 2")
    if bits < 2048 and not allow_insecure_keys:
        raise InvalidInputError(f"{bits}-bit keys are insecure; use 2048 or more")
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
        rows.append(_phe_row(values, bits))
        rows.append(_mpyc_row(values))
    notes.append(
        "every secure result (AES-GCM, both Paillier rows, Shamir, phe, MPyC) was checked "
        "against the plaintext sum of the fixed-point values"
    )
    markdown = _markdown(rows, clients=clients, bits=bits, notes=notes)
    path = out / MD_NAME
    path.write_text(markdown, encoding="utf-8")
    return Table1Result(
        rows=rows, clients=clients, bits=bits, markdown=markdown, path=path, notes=notes
    )


__all__ = ["MD_NAME", "Table1Result", "Table1Row", "run_table1"]

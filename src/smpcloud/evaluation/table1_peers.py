"""Table 1's peers: python-paillier and MPyC doing the same job on the same values.

Benchmark-only dependencies (the ``bench`` extra), imported only inside these functions; a
peer that is not installed (or fails) gives a row marked skipped.

* **python-paillier** (``phe``) encrypts the same fixed-point values and sums them (single key,
  no threshold, no ciphertext validation). Reveals to its server the count only; but one
  private key decrypts any single value.
* **MPyC** (3 local parties as subprocesses, ``-M3``) computes a secure sum of the same values,
  each party entering a third of them as a secure NumPy array of SecInt(64). Reveals to each
  party only the sum (honest majority).

Every result is checked against the plaintext
(:func:`~smpcloud.evaluation.harness.check_secure_sum`).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Final

from smpcloud.evaluation.harness import ENCODING, check_secure_sum
from smpcloud.evaluation.table1_rows import Table1Row, json_bytes, median_size, timed_each, version
from smpcloud.ports import free_port_range

_MPYC_TIMEOUT: Final = 600.0

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


def phe_row(values: list[float], bits: int) -> Table1Row:
    """Measure python-paillier on the values with a ``bits``-bit key (skipped if missing).

    Raises:
        VerificationError: its sum differs from the plaintext one.
    """
    method = "peer: python-paillier (phe), encrypt + sum"
    try:
        from phe import paillier as phe_paillier
    except ImportError:
        return Table1Row(
            method, None, None, None, None, "—", "skipped: phe not installed", True, True
        )
    public, private = phe_paillier.generate_paillier_keypair(n_length=bits)
    encoded = [ENCODING.encode(v) for v in values]

    def client(m: int) -> bytes:
        c = public.encrypt(m)
        return json_bytes({"ciphertext": str(c.ciphertext()), "exponent": c.exponent})

    bodies, per_client = timed_each(encoded, client)
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
    check_secure_sum(count=len(bodies), secure_sum=ENCODING.decode_sum(plain), values=values)
    installed = version("phe")
    return Table1Row(
        f"peer: python-paillier {installed} (phe), encrypt + sum",
        per_client,
        server,
        release,
        median_size(bodies),
        "the count only; but one private key decrypts any single value",
        f"{bits}-bit key; classic r^n encryption; ciphertexts as decimal strings (phe's "
        "documented JSON form); no ciphertext validation; release: one private key, no threshold",
        True,
    )


def mpyc_row(values: list[float]) -> Table1Row:
    """Measure MPyC's secure sum of the values, 3 local parties (skipped if missing or failed).

    Raises:
        VerificationError: its sum differs from the plaintext one.
    """
    method = "peer: MPyC secure sum (3 parties)"
    spec = importlib.util.find_spec("mpyc")
    if spec is None:
        return Table1Row(
            method, None, None, None, None, "—", "skipped: MPyC not installed", True, True
        )
    encoded = [ENCODING.encode(v) for v in values]
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
        count=len(values), secure_sum=ENCODING.decode_sum(int(outcome["sum"])), values=values
    )
    seconds = float(outcome["seconds"])
    installed = version("mpyc")  # never import mpyc here: importing it parses sys.argv
    return Table1Row(
        f"peer: MPyC {installed} secure sum (3 local parties)",
        seconds / len(values),
        seconds,
        None,
        None,
        "each party: only the sum (honest majority); the parties enter the values",
        f"SecInt(64) secure arrays, each party enters a third of the values; time per client "
        f"is amortised (input + sum + output, over all values); {wall:.2f} s with start-up",
        True,
    )


__all__ = ["mpyc_row", "phe_row"]

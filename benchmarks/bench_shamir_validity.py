"""Shamir reports with validity checks (issue 15): client preparation, server checks, bytes.

Per client report of L values in [-1, 1] with 16 fractional bits (U = 2^17, k = 18 weighted
bits per value), n = 3 servers, t = 2, R = 3 repetitions:

* client preparation without HPKE: encode, offset, decompose into bits, Shamir-share the bits
  and the 2R masks (:func:`smpcloud.crypto.shamir_validity.share_report`);
* client preparation with HPKE: the SDK's whole local half (:func:`smpcloud.client.
  prepare_shares`: the above, then seal share j to server j and digest the sealed shares);
* the server's work per report (one server): open the sealed share, check the digest and the
  length, compute the 2R check values and the L value shares
  (:func:`smpcloud.service.schemes.shamir_checks.checked_report`);
* the administrator's verdict per report (from the three servers' check values);
* bytes of one report's upload body to one server, with validity and without (for scale).

Target: within 5x of libprio-rs Prio3SumVec, which splits a length-1,000 vector in 3.59 ms
(Rust, one thread) and prepares in microseconds: PASS when the preparation (with HPKE) of a
length-1,000 report takes at most 17.95 ms (median).

Run: .venv/bin/python benchmarks/bench_shamir_validity.py [--repeat 7] [--lengths 1,100,1000,10000]
     [--quick]   (lengths 1, 100, 1000, 3 repeats: a smoke test)
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from _common import machine_line, median_seconds, pin_to_one_core, print_table
from smpcloud.client.shamir import (
    ShamirCredentials,
    ShamirEndpoint,
    ShamirTaskInfo,
    prepare_shares,
)
from smpcloud.crypto import shamir_validity as sv
from smpcloud.crypto.sealing import OpeningKey
from smpcloud.protocol.checked_shares import (
    encoded_span,
    validity_layout,
)
from smpcloud.protocol.schemas import ReportIn, TaskEncoding
from smpcloud.service.schemes.shamir_checks import checked_report

SERVERS, THRESHOLD = 3, 2
ENCODING = TaskEncoding.fixed(16, -1.0, 1.0)
#: libprio-rs Prio3SumVec, length 1,000: 3.59 ms to split (Rust, one thread); 5x of it.
PRIO_TARGET_MS = 5 * 3.59
TARGET_LENGTH = 1000


def info_for(length: int, validity: str) -> ShamirTaskInfo:
    return ShamirTaskInfo(
        name="bench",
        length=length,
        encoding=ENCODING,
        servers=SERVERS,
        threshold=THRESHOLD,
        min_clients=2,
        max_clients=1000,
        deadline=None,
        validity=validity,
    )


def credentials(keys: list[OpeningKey]) -> ShamirCredentials:
    return ShamirCredentials(
        client_id=1,
        threshold=THRESHOLD,
        endpoints=tuple(
            ShamirEndpoint(j, f"http://127.0.0.1:{8000 + j}", f"task-{j}", "token", k.sealing_key)
            for j, k in enumerate(keys, start=1)
        ),
    )


def measure(length: int, keys: list[OpeningKey], repeat: int) -> list[object]:
    """One row: ms for preparation (without, with HPKE), server check, verdict; bytes."""
    values = list(np.linspace(-1.0, 1.0, length))
    creds = credentials(keys)
    info = info_for(length, "range")
    layout = validity_layout(length, ENCODING)
    lo, _ = encoded_span(ENCODING)

    def prepare_plain() -> list[np.ndarray]:
        offsets = np.array(
            [ENCODING.encode(v, index=i) - lo for i, v in enumerate(values)], dtype=np.uint64
        )
        return sv.share_report(offsets, layout, servers=SERVERS, threshold=THRESHOLD)

    def prepare_sealed() -> object:
        return prepare_shares(info, values, creds)

    report = prepare_shares(info, values, creds)
    bodies = [ReportIn.model_validate(report.request_body(j)) for j in (1, 2, 3)]

    def server_check() -> bytes:
        return checked_report(
            keys[0],
            bodies[0],
            task_id="task-1",
            servers=SERVERS,
            server_index=1,
            number=1,
            layout=layout,
        )

    stored = [
        checked_report(
            k, b, task_id=f"task-{j}", servers=SERVERS, server_index=j, number=1, layout=layout
        )
        for j, (k, b) in enumerate(zip(keys, bodies, strict=True), start=1)
    ]
    checks = np.stack(
        [np.frombuffer(s[: 4 * layout.checks], dtype="<u4").astype(np.uint64) for s in stored]
    ).reshape(SERVERS, 1, layout.checks)
    if int(sv.verdicts(checks, threshold=THRESHOLD)[0]) != sv.PASSED:
        raise SystemExit("an honest report failed the joint check")

    def verdict() -> object:
        return sv.verdicts(checks, threshold=THRESHOLD)

    t_plain = median_seconds(prepare_plain, repeat)
    t_sealed = median_seconds(prepare_sealed, repeat)
    t_server = median_seconds(server_check, repeat)
    t_verdict = median_seconds(verdict, repeat)
    size = len(json.dumps(report.request_body(1)))
    none_size = len(
        json.dumps(prepare_shares(info_for(length, "none"), values, creds).request_body(1))
    )
    return [
        f"{length:,}",
        f"{t_plain * 1e3:.3f}",
        f"{t_sealed * 1e3:.3f}",
        f"{t_server * 1e3:.3f}",
        f"{t_verdict * 1e3:.3f}",
        f"{size:,}",
        f"{none_size:,}",
        f"{size / none_size:.1f}x",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--lengths", default="1,100,1000,10000")
    parser.add_argument("--quick", action="store_true", help="lengths 1,100,1000, 3 repeats")
    args = parser.parse_args(argv)
    lengths = [1, 100, 1000] if args.quick else [int(v) for v in args.lengths.split(",") if v]
    repeat = 3 if args.quick else args.repeat
    print(
        f"# Shamir validity checks ({pin_to_one_core()}), n={SERVERS}, t={THRESHOLD}, "
        f"R={sv.REPETITIONS}, values in [-1, 1] with 16 fractional bits "
        f"(k={validity_layout(1, ENCODING).bits} bits per value), medians of {repeat}"
    )
    print(machine_line())
    keys = [OpeningKey.generate() for _ in range(SERVERS)]
    rows = [measure(length, keys, repeat) for length in lengths]
    print_table(
        [
            "values",
            "client prep ms (no HPKE)",
            "client prep ms (HPKE, SDK)",
            "server check ms/report",
            "verdict ms/report",
            "bytes/report/server",
            "bytes without validity",
            "ratio",
        ],
        rows,
    )
    print(
        "client prep (HPKE) = encode + bits + shares + masks + 3 HPKE seals + digests "
        "(smpcloud.client.prepare_shares); server check = open + digest + length + check "
        "values + value shares for one server"
    )
    if TARGET_LENGTH in lengths:
        prep = float(rows[lengths.index(TARGET_LENGTH)][2])
        verdict = "PASS" if prep <= PRIO_TARGET_MS else "FAIL"
        print(
            f"target: preparation of length 1,000 <= {PRIO_TARGET_MS:.2f} ms (5x libprio-rs "
            f"Prio3SumVec's 3.59 ms split) -> {prep:.3f} ms [{verdict}]"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

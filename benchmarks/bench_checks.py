"""What the checks against a cheating cloud cost: Figure 7 with and without them, in one run.

Issue 14 added checks to the Paillier service's every phase: each client verifies t key
holders' signatures on the task before encrypting (certified task keys); the server signs a
receipt per upload and builds the report log at close; each key holder fetches every logged
report and checks the aggregate before decrypting. Its target: Figure 7 at most 10% slower end
to end at 10^4 clients.

The comparison is made in the same run, against the code just before those checks (the
commit BASELINE, taken from this repository's history with `git archive`): each run measures
the baseline and the current code one after the other, each in a process of its own, on the
same machine and the same number of clients; the script prints the median of each phase and
of the end-to-end total, and the ratio. It also prints the per-client cost of the certificate
check on its own.

Run: .venv/bin/python benchmarks/bench_checks.py [--clients 10000] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from _common import machine_line, median_seconds

#: The last commit before issue 14's checks (certified keys, receipts, the holders' check).
BASELINE = "4ed6d68"
TARGET_RATIO = 1.10
ROOT = Path(__file__).resolve().parents[1]

_RUN = """
import json, sys, tempfile
from pathlib import Path
from smpcloud.evaluation.figure7 import run_figure7
result = run_figure7(client_counts=[int(sys.argv[1])], modes=["paillier"], bits=int(sys.argv[2]),
                     out=Path(tempfile.mkdtemp(prefix="bench-checks-")))
print(json.dumps({row.phase: row.seconds for row in result.rows}))
"""


def baseline_sources(revision: str, into: Path) -> Path:
    """Extract ``src/`` of ``revision`` from this repository's history; return its path."""
    archive = into / "baseline.tar"
    with archive.open("wb") as out:
        subprocess.run(
            ["git", "-C", str(ROOT), "archive", "--format=tar", revision, "src"],
            stdout=out,
            check=True,
        )
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def figure7_phases(src: Path, clients: int, bits: int) -> dict[str, float]:
    """Run Figure 7's Paillier mode at ``clients`` with the code in ``src``, in a new process."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    done = subprocess.run(
        [sys.executable, "-c", _RUN, str(clients), str(bits)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=3600,
    )
    if done.returncode != 0:
        raise SystemExit(f"figure 7 failed with {src}:\n{done.stderr[-2000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def certificate_check_seconds() -> float:
    """Median seconds of one client's check of 3 holders' certificates (2048-bit key)."""
    from smpcloud.crypto import threshold
    from smpcloud.crypto.signatures import Roster, SigningKey
    from smpcloud.protocol.certificates import CertificateOut, sign_certificate, verify_certified
    from smpcloud.protocol.schemas import TaskInfoOut
    from smpcloud.protocol.task_encoding import INTEGER_ENCODING

    public, _shares = threshold.deal(2048, n=5, t=3)
    signing = {i: SigningKey.generate() for i in range(1, 6)}
    roster = Roster(3, {i: k.verify_key for i, k in signing.items()})
    served = TaskInfoOut(
        task_id="t" * 22,
        name="bench",
        state="open",
        length=1,
        encoding=INTEGER_ENCODING,
        public_key=threshold.public_key_to_json(public),
        holders=5,
        threshold=3,
        min_clients=10,
        max_clients=100,
        deadline=None,
        roster=roster.to_json(),
    )
    certificates = [
        CertificateOut(holder=i, signature=sign_certificate(served, signing[i]).signature)
        for i in (1, 3, 5)
    ]
    served = served.model_copy(update={"certificates": certificates})
    return median_seconds(lambda: verify_certified(served, roster), repeat=200)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--bits", type=int, default=2048)
    parser.add_argument("--baseline", default=BASELINE, help="git revision before the checks")
    args = parser.parse_args(argv)
    print(machine_line())
    print(f"one client's check of 3 certificates: {certificate_check_seconds() * 1e3:.2f} ms")
    with tempfile.TemporaryDirectory(prefix="bench-checks-") as tmp:
        base_src = baseline_sources(args.baseline, Path(tmp))
        runs: dict[str, list[dict[str, float]]] = {"baseline": [], "checks": []}
        started = time.perf_counter()
        for run in range(1, args.runs + 1):
            for label, src in (("baseline", base_src), ("checks", ROOT / "src")):
                phases = figure7_phases(src, args.clients, args.bits)
                runs[label].append(phases)
                print(
                    f"[{time.perf_counter() - started:6.0f} s] run {run} {label:>8}: "
                    f"{sum(phases.values()):6.2f} s end to end",
                    file=sys.stderr,
                    flush=True,
                )
    phases = list(runs["checks"][0])
    print(
        f"\nFigure 7, Paillier mode, {args.clients:,} clients, {args.bits}-bit 3-of-5 key, "
        f"medians of {args.runs} runs (baseline = {args.baseline}, before the checks):"
    )
    print(f"{'phase':<34}{'baseline':>10}{'checks':>10}{'ratio':>8}")
    for phase in phases:
        before = statistics.median(r[phase] for r in runs["baseline"])
        after = statistics.median(r[phase] for r in runs["checks"])
        print(f"{phase:<34}{before:>9.2f}s{after:>9.2f}s{after / before:>8.2f}")
    before = statistics.median(sum(r.values()) for r in runs["baseline"])
    after = statistics.median(sum(r.values()) for r in runs["checks"])
    ratio = after / before
    print(f"{'end to end':<34}{before:>9.2f}s{after:>9.2f}s{ratio:>8.2f}")
    print(machine_line())
    ok = ratio <= TARGET_RATIO
    print(
        f"target: end to end with the checks <= {TARGET_RATIO:.2f}x without -> {ratio:.2f}x "
        f"[{'PASS' if ok else 'FAIL'}]"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Three hospitals compute joint statistics of their patients' BMI without sharing a record.

Runs everything on 127.0.0.1, each party in its own process, exactly as three organisations
would on three hosts:

    smpcloud example split-diabetes --parties 3 --out DIR/data   # the hospitals' CSV files
    smpcloud certs --parties 3 --out DIR/deploy     # deployment CA + one certificate each
    smpcloud dealer --config DIR/deploy/parties.toml          # the Beaver-triple dealer (id 0)
    smpcloud party  --config DIR/deploy/parties.toml --id I \\
                    --input DIR/data/hospital-I.csv --column bmi \\
                    --compute count,mean,variance,std

The patients are scikit-learn's diabetes dataset (442 real records) split in three. Each party
prints the joint results it learned; this script then prints the same statistics computed in the
clear, for comparison.

Run: .venv/bin/python examples/three_hospitals.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from sklearn.datasets import load_diabetes

from smpcloud.ports import free_port_range

SMPCLOUD = [sys.executable, "-m", "smpcloud"]


def main() -> int:
    bmi = load_diabetes(scaled=False).data[:, 2]
    with tempfile.TemporaryDirectory(prefix="smpcloud-hospitals-") as tmp:
        out = Path(tmp)
        base = free_port_range(4)
        subprocess.run(
            [
                *SMPCLOUD,
                "certs",
                "--parties",
                "3",
                "--threshold",
                "2",
                "--base-port",
                str(base),
                "--out",
                str(out / "deploy"),
            ],
            check=True,
        )
        config = out / "deploy" / "parties.toml"
        subprocess.run(
            [*SMPCLOUD, "example", "split-diabetes", "--parties", "3", "--out", str(out / "data")],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        dealer = subprocess.Popen(
            [*SMPCLOUD, "dealer", "--config", str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        parties = [
            subprocess.Popen(
                [
                    *SMPCLOUD,
                    "party",
                    "--config",
                    str(config),
                    "--id",
                    str(i),
                    "--input",
                    str(out / "data" / f"hospital-{i}.csv"),
                    "--column",
                    "bmi",
                    "--compute",
                    "count,mean,variance,std",
                    "--json",
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in (1, 2, 3)
        ]
        results = []
        for i, proc in enumerate(parties, start=1):
            stdout, stderr = proc.communicate(timeout=300)
            if proc.returncode:
                print(f"party {i} failed:\n{stderr}", file=sys.stderr)
                return 1
            results.append(json.loads(stdout))
        dealer.communicate(timeout=60)
    for r in results:
        print(
            f"hospital {r['party']} ({r['rows']} patients) learned: count={r['count']:.0f} "
            f"mean={r['mean']:.4f} variance={r['variance']:.4f} std={r['std']:.4f}"
        )
    print(
        f"in the clear, for comparison:        count={bmi.size} mean={bmi.mean():.4f} "
        f"variance={bmi.var():.4f} std={bmi.std():.4f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Three hospitals compute joint statistics of their patients' BMI without sharing a record.

Runs everything on 127.0.0.1, each party in its own process, exactly as three organisations
would on three hosts:

    smpcloud certs --parties 3 --out DIR            # deployment CA + one certificate each
    smpcloud dealer --config DIR/parties.toml       # the Beaver-triple dealer (id 0)
    smpcloud party  --config DIR/parties.toml --id I --input hospital-I.csv \\
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

import numpy as np
from sklearn.datasets import load_diabetes

from smpcloud.ports import free_port_range

SMPCLOUD = [sys.executable, "-m", "smpcloud"]


def main() -> int:
    bmi = load_diabetes(scaled=False).data[:, 2]
    splits = np.array_split(bmi, 3)
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
        for i, rows in enumerate(splits, start=1):
            lines = ["bmi", *(f"{v:.1f}" for v in rows)]
            (out / f"hospital-{i}.csv").write_text("\n".join(lines) + "\n")
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
                    str(out / f"hospital-{i}.csv"),
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

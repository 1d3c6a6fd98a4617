"""Shamir share + reconstruct of 10^6 values (n=5, t=3) on one core, beside MPyC.

Target (issue 2): share + reconstruct of 10^6 values in <= 1.0 s in total (median).
MPyC (its numpy Shamir, `thresha.np_random_split` / `np_recombine`, over a ~2^100 prime field)
does the same job on a smaller vector in the same run; the ratio compares values per second.

Then the service's Shamir upload path (n=3, t=2), per report and per share, sealed (what the
SDK and the server do since issue 14: HPKE seal to each server's key, open on the server) next
to unsealed (the plain share text of before) at vector lengths 1, 10^3 and 10^5: client
(encode + share + wire form or seal) and server (open + strict decode, or decode alone).

Run: .venv/bin/python benchmarks/bench_shamir.py [--values 1000000] [--repeat 5]
     [--seal-lengths 1,1000,100000]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from _common import median_seconds, pin_to_one_core, print_table
from smpcloud.crypto import shamir
from smpcloud.crypto.field import DEFAULT_FIELD
from smpcloud.crypto.sealing import OpeningKey
from smpcloud.protocol.sharing import decode_share, encode_share, open_share, seal_share

SEAL_SERVERS, SEAL_THRESHOLD = 3, 2


def sealing_times(length: int, keys: list[OpeningKey], repeat: int) -> list[float]:
    """Seconds per report: client plain, client sealed, server plain, server sealed (medians)."""
    field = DEFAULT_FIELD
    secret = field.from_ints(np.arange(length, dtype=np.int64) - length // 2)
    plain: list[str] = []
    sealed: list[dict[str, str]] = []

    def share() -> list[np.ndarray]:
        return shamir.share_elements(field, secret, n=SEAL_SERVERS, t=SEAL_THRESHOLD)

    def client_plain() -> None:
        plain[:] = [encode_share(y, field) for y in share()]

    def client_sealed() -> None:
        sealed[:] = [
            seal_share(k.sealing_key, y, task_id="bench", server_index=j, client=1)
            for j, (k, y) in enumerate(zip(keys, share(), strict=True), start=1)
        ]

    def server_plain() -> None:
        for text in plain:
            decode_share(text, length=length, field=field)

    def server_sealed() -> None:
        for j, (k, box) in enumerate(zip(keys, sealed, strict=True), start=1):
            open_share(k, box, task_id="bench", server_index=j, client=1, length=length)

    client_plain()
    client_sealed()
    return [
        median_seconds(f, repeat)
        for f in (client_plain, client_sealed, server_plain, server_sealed)
    ]


def sealing_rows(lengths: list[int], repeat: int) -> list[list[object]]:
    """Per report (3 shares) and per share, milliseconds: unsealed and sealed."""
    keys = [OpeningKey.generate() for _ in range(SEAL_SERVERS)]
    rows: list[list[object]] = []
    for length in lengths:
        times = sealing_times(length, keys, repeat)
        ms = [t * 1e3 for t in times]
        rows.append(
            [
                f"{length:,}",
                f"{ms[0]:.3f}",
                f"{ms[1]:.3f}",
                f"{ms[2] / SEAL_SERVERS:.3f}",
                f"{ms[3] / SEAL_SERVERS:.3f}",
                f"{(ms[1] - ms[0]) / SEAL_SERVERS:+.3f}",
                f"{(ms[3] - ms[2]) / SEAL_SERVERS:+.3f}",
            ]
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--values", type=int, default=1_000_000)
    parser.add_argument("--mpyc-values", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--seal-lengths",
        default="1,1000,100000",
        help="Vector lengths of the sealed-upload comparison (comma-separated; empty: skip).",
    )
    args = parser.parse_args(argv)
    seal_lengths = [int(v) for v in args.seal_lengths.split(",") if v.strip()]
    print(f"# Shamir sharing benchmark ({pin_to_one_core()}), n=5, t=3, medians of {args.repeat}")

    secrets_vec = np.arange(args.values, dtype=np.int64) * 1_000_003 - 7
    holder: dict[str, list[shamir.Share]] = {}

    def do_share() -> None:
        holder["shares"] = shamir.share(secrets_vec, n=5, t=3)

    def do_reconstruct() -> None:
        out = shamir.reconstruct(holder["shares"][2:5])
        if not np.array_equal(out, secrets_vec):
            raise SystemExit("reconstruction mismatch")

    do_share()
    t_share = median_seconds(do_share, args.repeat)
    t_rec = median_seconds(do_reconstruct, args.repeat)
    total = t_share + t_rec
    rows: list[list[object]] = [
        [
            "smpcloud",
            f"{args.values:,}",
            f"{t_share:.3f}",
            f"{t_rec:.3f}",
            f"{total:.3f}",
            f"{args.values / total:,.0f}",
        ]
    ]

    ratio = None
    try:
        from mpyc import __version__ as mpyc_version
        from mpyc import gmpy
        from mpyc.finfields import GF
        from mpyc.thresha import np_random_split, np_recombine
    except ImportError:
        print("MPyC not installed (pip install '.[bench]'): peer comparison skipped")
    else:
        field = GF(int(gmpy.next_prime(2**100)))
        s = np.arange(args.mpyc_values, dtype=object)

        def mpyc_share() -> None:
            holder["mpyc"] = np_random_split(field, s, 2, 5)  # degree 2: 3 shares reconstruct

        def mpyc_reconstruct() -> None:
            shares = holder["mpyc"]
            np_recombine(field, [(x, shares[x - 1]) for x in (3, 4, 5)])

        mpyc_share()
        m_share = median_seconds(mpyc_share, max(1, args.repeat // 2))
        m_rec = median_seconds(mpyc_reconstruct, max(1, args.repeat // 2))
        m_total = m_share + m_rec
        rows.append(
            [
                f"MPyC {mpyc_version} numpy",
                f"{args.mpyc_values:,}",
                f"{m_share:.3f}",
                f"{m_rec:.3f}",
                f"{m_total:.3f}",
                f"{args.mpyc_values / m_total:,.0f}",
            ]
        )
        ratio = (args.values / total) / (args.mpyc_values / m_total)

    print_table(["library", "values", "share s", "reconstruct s", "total s", "values/s"], rows)
    if ratio is not None:
        print(f"\nthroughput ratio smpcloud / MPyC: {ratio:.1f}x")
    verdict = "PASS" if total <= 1.0 or args.values != 1_000_000 else "FAIL"
    print(f"target: share + reconstruct of 10^6 values <= 1.0 s -> {total:.3f} s [{verdict}]")
    if seal_lengths:
        print(
            f"\n# sealed vs unsealed Shamir uploads (n={SEAL_SERVERS}, t={SEAL_THRESHOLD}; "
            "HPKE X25519/HKDF-SHA256/ChaCha20-Poly1305), ms, medians"
        )
        print_table(
            [
                "length",
                "client/report plain",
                "client/report sealed",
                "server/share plain",
                "server/share sealed",
                "seal cost/share",
                "open cost/share",
            ],
            sealing_rows(seal_lengths, max(args.repeat, 7)),
        )
        print(
            "seal cost = sealed - plain (the same share made and put in wire form either way); "
            "a negative one is within this shared machine's noise"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

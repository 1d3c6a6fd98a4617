"""Key generation without a dealer: three holders in separate processes over mutual TLS."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from smpcloud.crypto import threshold
from smpcloud.keyfiles import load_key_share, load_threshold_public_key
from smpcloud.ports import free_port_range

SMPCLOUD = [sys.executable, "-m", "smpcloud"]


def deployment(
    tmp_path: Path, holders: int = 3, *, connect_timeout: float = 60.0, timeout: float = 30.0
) -> Path:
    base = free_port_range(holders + 1)
    out = tmp_path / "dep"
    done = subprocess.run(
        [
            *SMPCLOUD,
            "certs",
            "--parties",
            str(holders),
            "--no-dealer",
            "--base-port",
            str(base),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    config = out / "parties.toml"
    text = config.read_text()
    text = text.replace("connect_timeout = 60.0", f"connect_timeout = {connect_timeout}")
    text = text.replace("timeout = 30.0", f"timeout = {timeout}", 1)
    config.write_text(text)
    return config


def holder(config: Path, i: int, out: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            *SMPCLOUD,
            "keygen",
            "--distributed",
            "--config",
            str(config),
            "--id",
            str(i),
            "--out",
            str(out),
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(procs: list[subprocess.Popen[str]]) -> list[tuple[int, str, str]]:
    out = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=600)
        out.append((proc.returncode, stdout, stderr))
    return out


def test_three_holders_make_a_key_that_every_two_decrypt(tmp_path: Path) -> None:
    config = deployment(tmp_path)
    dirs = [tmp_path / f"holder-{i}" for i in (1, 2, 3)]
    results = finish(
        [
            holder(config, i, d, "--bits", "1024", "--insecure")
            for i, d in zip((1, 2, 3), dirs, strict=True)
        ]
    )
    for code, stdout, stderr in results:
        assert code == 0, stderr
        assert "with no dealer" in stdout
        assert "biprime found" in stderr  # progress on stderr
    public = {(d / "public_key.json").read_text() for d in dirs}
    rosters = {(d / "holders.json").read_text() for d in dirs}
    assert len(public) == 1 and len(rosters) == 1
    for i, d in enumerate(dirs, start=1):  # each directory holds only its own secrets
        secret_files = sorted(p.name for p in d.iterdir() if p.name.startswith(("key_", "sign")))
        assert secret_files == [f"key_share_{i}.json", f"signing_key_{i}.json"]
        assert (d / f"key_share_{i}.json").stat().st_mode & 0o777 == 0o600
    pk = load_threshold_public_key(dirs[0] / "public_key.json", insecure=True)
    assert pk.n.bit_length() == 1024 and pk.holders == 3 and pk.threshold == 2
    shares = [
        load_key_share(d / f"key_share_{i}.json", insecure=True) for i, d in enumerate(dirs, 1)
    ]
    c = pk.encrypt(-271828)
    partials = [s.partial_decrypt(c) for s in shares]
    for pair in itertools.combinations(partials, 2):
        assert threshold.combine(pk, list(pair)) == -271828
    roster = json.loads(rosters.pop())
    assert roster["threshold"] == 2


def test_a_holder_that_never_starts_is_named(tmp_path: Path) -> None:
    config = deployment(tmp_path, connect_timeout=3.0)
    results = finish([holder(config, i, tmp_path / f"h{i}", "--bits", "2048") for i in (1, 2)])
    for code, _, stderr in results:
        assert code == 1
        assert "party 3" in stderr and "Traceback" not in stderr
    assert not (tmp_path / "h1" / "public_key.json").exists()


def test_a_holder_killed_during_the_ceremony_is_named(tmp_path: Path) -> None:
    config = deployment(tmp_path, timeout=5.0)
    procs = [holder(config, i, tmp_path / f"h{i}", "--bits", "2048") for i in (1, 2, 3)]
    victim = procs[2]
    assert victim.stderr is not None
    for line in victim.stderr:
        if "connected;" in line:
            break
    os.kill(victim.pid, signal.SIGKILL)
    results = finish(procs[:2])
    victim.wait(timeout=10)
    for code, stdout, stderr in results:
        assert code == 1, stdout
        assert "holder 3" in stderr and "did not answer" in stderr
        assert "Traceback" not in stderr
    assert not (tmp_path / "h1" / "key_share_1.json").exists()


@pytest.mark.parametrize(
    ("edit", "holder_id", "message"),
    [
        (lambda t: t, 7, "no holder with id 7"),
        (
            lambda t: (
                t + '\n[[party]]\nid = 0\nhost = "127.0.0.1"\nport = 1\ncert = "c"\nkey = "k"\n'
            ),
            1,
            "has a dealer (id 0)",
        ),
    ],
    ids=["unknown-id", "dealer-entry"],
)
def test_bad_deployments_are_refused_in_one_line(
    tmp_path: Path, edit: object, holder_id: int, message: str
) -> None:
    config = deployment(tmp_path)
    config.write_text(edit(config.read_text()))  # type: ignore[operator]
    done = subprocess.run(
        [
            *SMPCLOUD,
            "keygen",
            "--distributed",
            "--config",
            str(config),
            "--id",
            str(holder_id),
            "--out",
            str(tmp_path / "k"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) <= 3


def test_distributed_options_are_checked(tmp_path: Path) -> None:
    config = deployment(tmp_path)
    for args, message in [
        (["--distributed", "--out", str(tmp_path / "k")], "--config"),
        (["--config", str(config), "--id", "1", "--out", str(tmp_path / "k")], "--distributed"),
        (
            [
                "--distributed",
                "--config",
                str(config),
                "--id",
                "1",
                "--holders",
                "4",
                "--out",
                str(tmp_path / "k"),
            ],
            "come from --config",
        ),
        (
            [
                "--distributed",
                "--config",
                str(config),
                "--id",
                "1",
                "--bits",
                "1024",
                "--out",
                str(tmp_path / "k"),
            ],
            "1024",
        ),
    ]:
        done = subprocess.run(
            [*SMPCLOUD, "keygen", *args], capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 2, (args, done.stderr)
        assert message in done.stderr

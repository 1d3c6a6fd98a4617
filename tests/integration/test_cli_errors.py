"""Every mistake a user can make ends in one clear line and a non-zero exit, never a traceback.

Each case runs ``python -m smpcloud ...`` as a subprocess (issue 13's findings 4, 5 and 8):
missing or unreadable token and key files, key files of the wrong kind, malformed JSON, an
unreachable server, a wrong task id or token, bad option values, unusable databases, an
existing key directory, and Ctrl-C during a long command.
"""

from __future__ import annotations

import importlib.util
import json
import os
import selectors
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from service_harness import ServerProcess

from smpcloud.keyfiles import load_roster, load_signing_key
from smpcloud.ports import free_port

SMPCLOUD = [sys.executable, "-m", "smpcloud"]


def run(
    args: list[str], env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SMPCLOUD, *args], capture_output=True, text=True, env=env, timeout=timeout, check=False
    )


@dataclass
class World:
    """A server, a real key, a task with its tokens, and a directory of bad files."""

    env: dict[str, str]
    keys: Path
    task_dir: Path
    task_id: str
    other_task_dir: Path
    bad: Path


@pytest.fixture(scope="module")
def world(server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("cli-errors")
    env = {
        **os.environ,
        "SMPCLOUD_ADMIN_TOKEN": server.admin_token,
        "SMPCLOUD_SERVER": server.base_url,
    }
    env.pop("SMPCLOUD_TASK", None)
    env.pop("SMPCLOUD_TOKEN", None)
    keys = root / "keys"
    made = run(
        ["keygen", "--holders", "3", "--threshold", "2", "--bits", "2048", "--out", str(keys)],
        env,
        timeout=300,
    )
    assert made.returncode == 0, made.stderr
    dirs = []
    for name in ("task", "other"):
        out = run(
            [
                "task",
                "create",
                "--public-key",
                str(keys / "public_key.json"),
                "--holders",
                str(keys / "holders.json"),
                "--name",
                name,
                "--clients",
                "2",
                "--min-clients",
                "2",
                "--range",
                "0",
                "10",
                "--out",
                str(root / name),
            ],
            env,
        )
        assert out.returncode == 0, out.stderr
        dirs.append(root / name)
        server.secrets_handed_out.extend(
            p.read_text().strip() for p in (root / name).glob("*.token")
        )
    task_id = json.loads((dirs[0] / "task.json").read_text())["task_id"]
    env["SMPCLOUD_HOLDERS"] = str(keys / "holders.json")
    for i in (1, 2):  # the first task is certified (2 of 3); the other is not
        certified = run(
            [
                "certify",
                "--task",
                task_id,
                "--token-file",
                str(dirs[0] / f"holder_{i}.token"),
                "--key-share",
                str(keys / f"key_share_{i}.json"),
                "--signing-key",
                str(keys / f"signing_key_{i}.json"),
            ],
            env,
        )
        assert certified.returncode == 0, certified.stderr
    bad = root / "bad"
    bad.mkdir()
    (bad / "empty.token").write_text("")
    (bad / "two-lines.token").write_text("smpc_c_abc\nsmpc_c_def\n")
    (bad / "broken.json").write_text('{"kind": "threshold-key-share", ')
    (bad / "list.json").write_text("[1, 2, 3]")
    (bad / "parties.toml").write_text("this is [not toml\n")
    (bad / "values.csv").write_text("bmi\n1\n2\n")
    (bad / "a-file").write_text("x")
    (bad / "keys").mkdir()
    (bad / "keys" / "public_key.json").write_text("{}")
    return World(env, keys, dirs[0], task_id, dirs[1], bad)


def closed_port_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


# (id, args, extra env, fragments the message must contain)
CASES: list[tuple[str, list[str], dict[str, str], list[str]]] = [
    # token files
    (
        "missing token file",
        ["submit", "--task", "{task}", "--token-file", "{bad}/nope.token", "1"],
        {},
        ["nope.token", "does not exist"],
    ),
    (
        "empty token file",
        ["submit", "--task", "{task}", "--token-file", "{bad}/empty.token", "1"],
        {},
        ["empty.token", "empty"],
    ),
    (
        "two-line token file",
        ["submit", "--task", "{task}", "--token-file", "{bad}/two-lines.token", "1"],
        {},
        ["two-lines.token", "one line"],
    ),
    (
        "no token at all",
        ["submit", "--task", "{task}", "1"],
        {},
        ["--token-file", "SMPCLOUD_TOKEN"],
    ),
    (
        "no admin token",
        ["task", "status", "--task", "{task}"],
        {"SMPCLOUD_ADMIN_TOKEN": ""},
        ["--admin-token-file", "SMPCLOUD_ADMIN_TOKEN"],
    ),
    (
        "missing admin token file",
        ["task", "list", "--admin-token-file", "{bad}/nope.token"],
        {},
        ["nope.token"],
    ),
    # wrong tokens, wrong task
    (
        "wrong admin token",
        ["task", "list"],
        {"SMPCLOUD_ADMIN_TOKEN": "Zq8-wrong-but-long-Kp3x"},
        ["only the administrator's token"],
    ),
    ("wrong task id", ["task", "status", "--task", "no-such-task"], {}, ["no task 'no-such-task'"]),
    (
        "another task's token",
        ["submit", "--task", "{task}", "--token-file", "{other}/client_1.token", "1"],
        {},
        ["not valid for this task"],
    ),
    (
        "holder token to submit",
        ["submit", "--task", "{task}", "--token-file", "{taskdir}/holder_1.token", "1"],
        {},
        ["holder token may not"],
    ),
    # key files
    (
        "malformed key share",
        [
            "decrypt",
            "--task",
            "{task}",
            "--token-file",
            "{taskdir}/holder_1.token",
            "--key-share",
            "{bad}/broken.json",
        ],
        {},
        ["broken.json", "not valid JSON"],
    ),
    (
        "public key as key share",
        [
            "decrypt",
            "--task",
            "{task}",
            "--token-file",
            "{taskdir}/holder_1.token",
            "--key-share",
            "{keys}/public_key.json",
        ],
        {},
        ["public_key.json", "key share"],
    ),
    (
        "key share as public key",
        [
            "task",
            "create",
            "--public-key",
            "{keys}/key_share_1.json",
            "--name",
            "x",
            "--out",
            "{bad}/new-task",
        ],
        {},
        ["key_share_1.json", "public key"],
    ),
    (
        "a list as public key",
        [
            "task",
            "create",
            "--public-key",
            "{bad}/list.json",
            "--name",
            "x",
            "--out",
            "{bad}/new-task",
        ],
        {},
        ["list.json"],
    ),
    (
        "task dir exists",
        [
            "task",
            "create",
            "--public-key",
            "{keys}/public_key.json",
            "--name",
            "x",
            "--out",
            "{taskdir}",
        ],
        {},
        ["task.json", "already"],
    ),
    # the server
    (
        "connection refused",
        ["task", "list", "--server", "{closed}"],
        {},
        ["cannot reach", "{closed}"],
    ),
    (
        "connection refused on submit",
        [
            "submit",
            "--task",
            "{task}",
            "--token-file",
            "{taskdir}/client_1.token",
            "1",
            "--server",
            "{closed}",
        ],
        {},
        ["cannot reach", "{closed}"],
    ),
    ("not a URL", ["task", "list", "--server", "localhost:8000"], {}, ["--server", "http://"]),
    # state and values
    ("result before close", ["result", "--task", "{task}"], {}, ["still open"]),
    (
        "decrypt before close",
        [
            "decrypt",
            "--task",
            "{task}",
            "--token-file",
            "{taskdir}/holder_1.token",
            "--key-share",
            "{keys}/key_share_1.json",
        ],
        {},
        ["still open"],
    ),
    (
        "value out of range",
        ["submit", "--task", "{task}", "--token-file", "{taskdir}/client_2.token", "11"],
        {},
        ["outside"],
    ),
    (
        "value not a number",
        ["submit", "--task", "{task}", "--token-file", "{taskdir}/client_2.token", "abc"],
        {},
        ["'abc' is not a number"],
    ),
    ("bad limit", ["task", "list", "--limit", "0"], {}, ["--limit"]),
    (
        "fixed without range",
        [
            "task",
            "create",
            "--public-key",
            "{keys}/public_key.json",
            "--name",
            "x",
            "--fixed",
            "16",
            "--out",
            "{bad}/t2",
        ],
        {},
        ["--fixed needs --range"],
    ),
    # certification (finding 1 of issue 14)
    (
        "submit without pinned holders",
        ["submit", "--task", "{task}", "--token-file", "{taskdir}/client_2.token", "1"],
        {"SMPCLOUD_HOLDERS": ""},
        ["--holders", "--holders-fingerprint", "SMPCLOUD_HOLDERS"],
    ),
    (
        "submit with a malformed holders fingerprint",
        [
            "submit",
            "--task",
            "{task}",
            "--token-file",
            "{taskdir}/client_2.token",
            "--holders-fingerprint",
            "abc",
            "1",
        ],
        {"SMPCLOUD_HOLDERS": ""},
        ["64 hex digits"],
    ),
    (
        "submit to an uncertified task",
        ["submit", "--task", "{othertask}", "--token-file", "{other}/client_1.token", "1"],
        {},
        ["UncertifiedTaskError", "0 valid signature(s)", "2 needed", "smpcloud certify"],
    ),
    (
        "holders file of another kind",
        [
            "submit",
            "--task",
            "{task}",
            "--token-file",
            "{taskdir}/client_2.token",
            "--holders",
            "{keys}/public_key.json",
            "1",
        ],
        {"SMPCLOUD_HOLDERS": ""},
        ["public_key.json", "not a holder roster"],
    ),
    (
        "certify with another holder's signing key",
        [
            "certify",
            "--task",
            "{task}",
            "--token-file",
            "{taskdir}/holder_3.token",
            "--key-share",
            "{keys}/key_share_3.json",
            "--signing-key",
            "{keys}/signing_key_1.json",
        ],
        {},
        ["KeyMismatchError", "holder 3"],
    ),
    (
        "certify with a malformed signing key",
        [
            "certify",
            "--task",
            "{task}",
            "--token-file",
            "{taskdir}/holder_3.token",
            "--key-share",
            "{keys}/key_share_3.json",
            "--signing-key",
            "{bad}/broken.json",
        ],
        {},
        ["broken.json"],
    ),
    # keygen, certs, peers
    ("keygen into a file", ["keygen", "--out", "{bad}/a-file"], {}, ["a-file"]),
    (
        "keygen into existing keys",
        ["keygen", "--bits", "4096", "--out", "{bad}/keys"],
        {},
        ["--force", "public_key.json"],
    ),
    (
        "threshold above holders",
        ["keygen", "--holders", "2", "--threshold", "3", "--out", "{bad}/k"],
        {},
        ["threshold 3 exceeds holders 2"],
    ),
    (
        "malformed parties.toml",
        ["party", "--config", "{bad}/parties.toml", "--id", "1", "--input", "{bad}/values.csv"],
        {},
        ["parties.toml"],
    ),
    # serve
    (
        "serve: missing directory",
        ["serve", "--db", "sqlite:////nonexistent/dir/x.db"],
        {},
        ["/nonexistent/dir", "does not exist"],
    ),
    ("serve: a directory as the db", ["serve", "--db", "sqlite:///{bad}"], {}, ["is a directory"]),
    (
        "serve: a non-database file",
        ["serve", "--db", "sqlite:///{bad}/values.csv"],
        {},
        ["values.csv", "not"],
    ),
    (
        "serve: postgres without driver",
        ["serve", "--db", "postgresql://u@127.0.0.1/db"],
        {},
        ["PostgreSQL", "pip install 'smpcloud[postgres]'"],
    ),
    ("serve: unknown scheme", ["serve", "--db", "foo://x"], {}, ["foo", "sqlite:///"]),
    ("serve: not a URL", ["serve", "--db", "just-a-file.db"], {}, ["just-a-file.db", "sqlite:///"]),
]


@pytest.mark.parametrize(
    ("args", "env", "fragments"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_a_mistake_is_one_line_and_a_failing_exit(
    world: World, args: list[str], env: dict[str, str], fragments: list[str]
) -> None:
    if any("postgres" in a for a in args) and importlib.util.find_spec("psycopg") is not None:
        pytest.skip("the case is about psycopg being absent; it is installed here")
    closed = closed_port_url()
    fill = {
        "task": world.task_id,
        "bad": str(world.bad),
        "keys": str(world.keys),
        "taskdir": str(world.task_dir),
        "other": str(world.other_task_dir),
        "othertask": json.loads((world.other_task_dir / "task.json").read_text())["task_id"],
        "closed": closed,
    }
    argv = [a.format(**fill) for a in args]
    out = run(argv, {**world.env, **env}, timeout=60)
    assert out.returncode != 0, (argv, out.stdout, out.stderr)
    assert "Traceback" not in out.stderr, out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("Error")]
    assert len(errors) == 1, out.stderr
    for fragment in fragments:
        assert fragment.format(**fill) in out.stderr, (fragment, out.stderr)
    assert "searching" not in out.stderr  # nothing was generated before refusing


def test_keygen_force_replaces_the_whole_set(tmp_path: Path) -> None:
    env = dict(os.environ)
    first = run(
        ["keygen", "--holders", "3", "--threshold", "2", "--bits", "2048", "--out", str(tmp_path)],
        env,
        timeout=300,
    )
    assert first.returncode == 0, first.stderr
    old_public = (tmp_path / "public_key.json").read_text()
    second = run(
        [
            "keygen",
            "--holders",
            "2",
            "--threshold",
            "2",
            "--bits",
            "2048",
            "--out",
            str(tmp_path),
            "--force",
        ],
        env,
        timeout=300,
    )
    assert second.returncode == 0, second.stderr
    assert (tmp_path / "public_key.json").read_text() != old_public
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "holders.json",
        "key_share_1.json",
        "key_share_2.json",
        "public_key.json",
        "signing_key_1.json",
        "signing_key_2.json",
    ]
    for name in ("key_share_1.json", "key_share_2.json", "signing_key_1.json"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o600
    roster = load_roster(tmp_path / "holders.json")
    assert (
        roster.size == 2
        and roster.keys[2] == load_signing_key(tmp_path / "signing_key_2.json").verify_key
    )


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_during_a_long_command_is_exit_130_and_one_line(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [
            *SMPCLOUD,
            "keygen",
            "--bits",
            "4096",
            "--holders",
            "2",
            "--threshold",
            "2",
            "--out",
            str(tmp_path / "keys"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A shell without job control starts background jobs with SIGINT ignored, and Python
        # then installs no KeyboardInterrupt handler: give the command a terminal's default,
        # whatever started the test run (seen: CI started with `nohup ... &`).
        preexec_fn=_default_sigint,
    )
    try:
        assert proc.stderr is not None
        selector = selectors.DefaultSelector()
        selector.register(proc.stderr, selectors.EVENT_READ)
        assert selector.select(timeout=60), "keygen printed nothing"
        started = proc.stderr.readline()
        assert "searching" in started, started
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert "interrupted" in err.lower()
    assert not (tmp_path / "keys" / "public_key.json").exists()

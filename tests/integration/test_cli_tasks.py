"""The aggregation commands as a new user runs them: task create/list/status/close, submit,
decrypt and result, as subprocesses against a real server (issue 13's findings 1, 2, 3, 6, 7).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
from service_harness import ServerProcess, assert_problem

from smpcloud.cli.service import PROOF_POOL_MIN_VALUES
from smpcloud.client import Admin, KeyHolder
from smpcloud.keyfiles import load_key_share, load_signing_key, read_token_file

SMPCLOUD = [sys.executable, "-m", "smpcloud"]


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2048-bit 2-of-3 key made by `smpcloud keygen` (the CLI refuses smaller keys)."""
    out = tmp_path_factory.mktemp("keys")
    done = subprocess.run(
        [
            *SMPCLOUD,
            "keygen",
            "--holders",
            "3",
            "--threshold",
            "2",
            "--bits",
            "2048",
            "--out",
            str(out),
            "--force",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture(scope="module")
def env(server: ServerProcess) -> dict[str, str]:
    return {
        **os.environ,
        "SMPCLOUD_ADMIN_TOKEN": server.admin_token,
        "SMPCLOUD_SERVER": server.base_url,
        "SMPCLOUD_HOLDERS": "",  # set per test: the keys fixture's holders.json
    }


def smp(
    env: dict[str, str], *args: str, task: str | None = None
) -> subprocess.CompletedProcess[str]:
    full = {**env, **({"SMPCLOUD_TASK": task} if task else {})}
    return subprocess.run(
        [*SMPCLOUD, *args], capture_output=True, text=True, env=full, timeout=120, check=False
    )


def ok(out: subprocess.CompletedProcess[str]) -> str:
    assert out.returncode == 0, (out.args, out.stdout, out.stderr)
    assert "Traceback" not in out.stderr
    return out.stdout


def create_task(
    env: dict[str, str], keys: Path, out: Path, *extra: str, clients: int = 3, min_clients: int = 2
) -> str:
    ok(
        smp(
            env,
            "task",
            "create",
            "--public-key",
            str(keys / "public_key.json"),
            "--holders",
            str(keys / "holders.json"),
            "--name",
            f"task in {out.name}",
            "--clients",
            str(clients),
            "--min-clients",
            str(min_clients),
            "--out",
            str(out),
            *extra,
        )
    )
    task_id = json.loads((out / "task.json").read_text())["task_id"]
    assert isinstance(task_id, str)
    env["SMPCLOUD_HOLDERS"] = str(keys / "holders.json")
    certify(env, keys, out, task_id)
    return task_id


def certify(env: dict[str, str], keys: Path, task_dir: Path, task_id: str) -> None:
    """Key holders 1 and 2 (of the 2-of-3 key) certify the task, through the SDK."""
    for i in (1, 2):
        with KeyHolder(
            env["SMPCLOUD_SERVER"],
            task_id,
            read_token_file(task_dir / f"holder_{i}.token"),
            load_key_share(keys / f"key_share_{i}.json"),
        ) as holder:
            holder.certify(load_signing_key(keys / f"signing_key_{i}.json"))


def remember_tokens(server: ServerProcess, task_dir: Path) -> None:
    server.secrets_handed_out.extend(p.read_text().strip() for p in task_dir.glob("*.token"))


# ------------------------------------------------------------------ 1. task close dead end


def test_close_with_too_few_reports_says_so_and_fails(
    server: ServerProcess, env: dict[str, str], keys: Path, tmp_path: Path
) -> None:
    task = create_task(env, keys, tmp_path / "t", "--range", "0", "100", min_clients=10)
    remember_tokens(server, tmp_path / "t")
    ok(smp(env, "submit", "--token-file", str(tmp_path / "t" / "client_1.token"), "5", task=task))
    closed = smp(env, "task", "close", task=task)
    assert closed.returncode == 3, (closed.stdout, closed.stderr)
    assert "Traceback" not in closed.stderr
    message = closed.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert "1 of 10 required reports" in message and "never release a result" in message
    again = smp(env, "task", "close", task=task)  # closing again: still the same dead end
    assert again.returncode == 3 and "1 of 10" in again.stderr


def test_close_with_enough_reports_exits_zero(
    server: ServerProcess, env: dict[str, str], keys: Path, tmp_path: Path
) -> None:
    task = create_task(env, keys, tmp_path / "t", "--range", "0", "100", min_clients=2)
    remember_tokens(server, tmp_path / "t")
    for j in (1, 2):
        ok(
            smp(
                env,
                "submit",
                "--token-file",
                str(tmp_path / "t" / f"client_{j}.token"),
                "4",
                task=task,
            )
        )
    out = ok(smp(env, "task", "close", task=task))
    assert "closed" in out and "2 of 2 required reports" in out


# ------------------------------------------------------------------ 2. negative values, files


def test_submit_takes_negative_values(
    server: ServerProcess, env: dict[str, str], keys: Path, tmp_path: Path
) -> None:
    task = create_task(
        env, keys, tmp_path / "t", "--fixed", "16", "--range", "-1", "1", "--length", "2"
    )
    remember_tokens(server, tmp_path / "t")
    out = ok(
        smp(
            env,
            "submit",
            "--token-file",
            str(tmp_path / "t" / "client_1.token"),
            "-0.5",
            "-1",
            task=task,
        )
    )
    assert "submitted 2" in out
    # A real unknown option is still refused as one.
    bad = smp(env, "submit", "--token-fil", "x", "0.5", task=task)
    assert bad.returncode == 2 and "--token-fil" in bad.stderr and "Traceback" not in bad.stderr


def test_submit_from_file_csv_npy_json(
    server: ServerProcess, env: dict[str, str], keys: Path, tmp_path: Path
) -> None:
    task = create_task(
        env,
        keys,
        tmp_path / "t",
        "--fixed",
        "16",
        "--range",
        "-1",
        "1",
        "--length",
        "4",
        "--clients",
        "5",
        "--packed",
    )
    remember_tokens(server, tmp_path / "t")
    vector = [0.5, -0.25, 1.0, -1.0]
    (tmp_path / "row.csv").write_text(",".join(map(str, vector)) + "\n")
    (tmp_path / "column.csv").write_text("\n".join(map(str, vector)) + "\n")
    np.save(tmp_path / "vector.npy", np.array(vector))
    (tmp_path / "vector.json").write_text(json.dumps(vector))
    for j, name in enumerate(["row.csv", "column.csv", "vector.npy", "vector.json"], start=1):
        out = ok(
            smp(
                env,
                "submit",
                "--token-file",
                str(tmp_path / "t" / f"client_{j}.token"),
                "--from-file",
                str(tmp_path / name),
                task=task,
            )
        )
        assert "submitted 4" in out
    with Admin(server.base_url, server.admin_token) as admin:
        assert admin.status(task).reports == 4


@pytest.mark.parametrize(
    ("name", "content", "fragment"),
    [
        ("bad.csv", "1,2\n3,4\n", "one row or one column"),
        ("word.csv", "0.5,abc,1,1\n", "'abc' is not a number"),
        ("empty.csv", "\n", "no numbers"),
        ("object.json", '{"a": 1}', "a JSON list of numbers"),
        ("strings.json", '["1", 2, 3, 4]', "a JSON list of numbers"),
        ("broken.json", "[1, 2,", "not valid JSON"),
        ("matrix.npy", None, "1-D"),
        ("garbage.npy", "not numpy", "not a .npy file"),
        ("values.txt", "1 2 3 4", "use .csv, .npy or .json"),
    ],
)
def test_submit_from_a_bad_file_is_one_line(
    env: dict[str, str], tmp_path: Path, name: str, content: str | None, fragment: str
) -> None:
    path = tmp_path / name
    if content is None:
        np.save(path, np.zeros((2, 2)))
    else:
        path.write_text(content)
    token = tmp_path / "client.token"
    token.write_text("smpc_c_not-a-real-token\n")
    # The file is read before the server is asked anything: the task does not matter here.
    out = smp(env, "submit", "--token-file", str(token), "--from-file", str(path), task="x")
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert fragment in out.stderr and name in out.stderr, out.stderr


def test_wrong_length_is_clear(
    server: ServerProcess, env: dict[str, str], keys: Path, tmp_path: Path
) -> None:
    task = create_task(env, keys, tmp_path / "t", "--range", "-5", "5", "--length", "4")
    remember_tokens(server, tmp_path / "t")
    (tmp_path / "short.json").write_text("[1, 2]")
    out = smp(
        env,
        "submit",
        "--token-file",
        str(tmp_path / "t" / "client_1.token"),
        "--from-file",
        str(tmp_path / "short.json"),
        task=task,
    )
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "4 value(s) per client; got 2" in out.stderr


def test_values_and_from_file_are_exclusive(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "v.json").write_text("[1]")
    token = tmp_path / "client.token"
    token.write_text("smpc_c_x\n")
    both = smp(
        env,
        "submit",
        "--token-file",
        str(token),
        "--from-file",
        str(tmp_path / "v.json"),
        "1",
        task="x",
    )
    assert both.returncode == 2 and "either VALUES or --from-file" in both.stderr
    neither = smp(env, "submit", "--token-file", str(token), task="x")
    assert neither.returncode == 2 and "VALUES or --from-file" in neither.stderr


# ------------------------------------------------------------------ 3. token files


def test_token_files_are_plain_text_0600_and_both_forms_are_read(
    server: ServerProcess, env: dict[str, str], keys: Path, tmp_path: Path
) -> None:
    task_dir = tmp_path / "t"
    task = create_task(env, keys, task_dir, "--range", "-5", "5")
    remember_tokens(server, task_dir)
    for path in [*task_dir.glob("client_*.token"), *task_dir.glob("holder_*.token")]:
        text = path.read_text()
        assert text.endswith("\n") and len(text.splitlines()) == 1 and '"' not in text, path
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    # The old JSON-string form is still read.
    old = tmp_path / "old.token"
    old.write_text(json.dumps((task_dir / "client_1.token").read_text().strip()))
    ok(smp(env, "submit", "--token-file", str(old), "-3", task=task))
    ok(smp(env, "submit", "--token-file", str(task_dir / "client_2.token"), "4", task=task))
    # The admin token file: plain text as well.
    admin_file = tmp_path / "admin.token"
    admin_file.write_text(server.admin_token + "\n")
    admin_env = {k: v for k, v in env.items() if k != "SMPCLOUD_ADMIN_TOKEN"}
    ok(smp(admin_env, "task", "status", "--admin-token-file", str(admin_file), task=task))


# ------------------------------------------------------------------ 6. task list


def test_task_list_table_json_sdk_and_http(
    server: ServerProcess, env: dict[str, str], keys: Path, tmp_path: Path
) -> None:
    first = create_task(env, keys, tmp_path / "a", "--range", "0", "9", min_clients=2)
    second = create_task(env, keys, tmp_path / "b", "--range", "0", "9", min_clients=3)
    remember_tokens(server, tmp_path / "a")
    remember_tokens(server, tmp_path / "b")
    ok(smp(env, "submit", "--token-file", str(tmp_path / "b" / "client_1.token"), "7", task=second))

    table = ok(smp(env, "task", "list"))
    lines = table.splitlines()
    header = next(line for line in lines if "id" in line and "state" in line)
    for column in ("name", "scheme", "reports", "created"):
        assert column in header
    row_second = next(line for line in lines if second in line)
    assert "open" in row_second and "1/3" in row_second and "paillier" in row_second
    assert any(first in line for line in lines)
    # Newest first.
    assert lines.index(row_second) < next(i for i, line in enumerate(lines) if first in line)

    data = json.loads(ok(smp(env, "task", "list", "--json", "--limit", "1")))
    assert data["limit"] == 1 and data["total"] >= 2 and len(data["tasks"]) == 1
    assert data["tasks"][0]["task_id"] == second
    assert data["tasks"][0]["reports"] == 1 and data["tasks"][0]["min_clients"] == 3

    with Admin(server.base_url, server.admin_token) as admin:
        listed = admin.list_tasks(limit=2)
    assert [t.task_id for t in listed.tasks] == [second, first]
    assert listed.total >= 2 and listed.tasks[0].state == "open"

    url = f"{server.base_url}/v1/tasks"
    assert_problem(httpx.get(url), 401, "authentication-required")
    client_token = (tmp_path / "a" / "client_1.token").read_text().strip()
    assert_problem(
        httpx.get(url, headers={"Authorization": f"Bearer {client_token}"}),
        403,
        "permission-denied",
    )
    admin = {"Authorization": f"Bearer {server.admin_token}"}
    for bad in ("0", "1001", "x"):
        assert_problem(httpx.get(url, params={"limit": bad}, headers=admin), 422, "invalid-input")


# ------------------------------------------------------------------ 7. status and result


def test_status_is_readable_and_json_is_exact(
    server: ServerProcess, env: dict[str, str], keys: Path, tmp_path: Path
) -> None:
    task = create_task(env, keys, tmp_path / "t", "--range", "0", "9", min_clients=2)
    remember_tokens(server, tmp_path / "t")
    text = ok(smp(env, "task", "status", task=task))
    assert "null" not in text and "{" not in text
    assert "open" in text and "0 of 2 required" in text
    assert "none" in text.lower()  # the deadline
    assert "2 of 3" in text  # key holders needed to decrypt
    data = json.loads(ok(smp(env, "task", "status", "--json", task=task)))
    raw = httpx.get(
        f"{server.base_url}/v1/tasks/{task}/status",
        headers={"Authorization": f"Bearer {server.admin_token}"},
    ).json()
    assert data == raw


def test_vector_result_is_one_value_per_line(
    server: ServerProcess, env: dict[str, str], keys: Path, tmp_path: Path
) -> None:
    task_dir = tmp_path / "t"
    task = create_task(
        env, keys, task_dir, "--range", "-100", "100", "--length", "14", min_clients=2
    )
    remember_tokens(server, task_dir)
    ok(
        smp(
            env,
            "submit",
            "--token-file",
            str(task_dir / "client_1.token"),
            *[str(i) for i in range(14)],
            task=task,
        )
    )
    ok(
        smp(
            env,
            "submit",
            "--token-file",
            str(task_dir / "client_2.token"),
            *[str(-2 * i) for i in range(14)],
            task=task,
        )
    )
    ok(smp(env, "task", "close", task=task))
    for i in (1, 3):
        ok(
            smp(
                env,
                "decrypt",
                "--token-file",
                str(task_dir / f"holder_{i}.token"),
                "--key-share",
                str(keys / f"key_share_{i}.json"),
                task=task,
            )
        )
    text = ok(smp(env, "result", task=task))
    assert "[" not in text
    assert "... 4 more" in text
    assert any(line.split()[:3] == ["9", "-9", "-4.5"] for line in text.splitlines()), text
    assert not any(line.split()[:1] == ["10"] for line in text.splitlines())
    every = ok(smp(env, "result", "--all", task=task))
    assert "more" not in every
    assert any(line.split()[:3] == ["13", "-13", "-6.5"] for line in every.splitlines()), every
    data = json.loads(ok(smp(env, "result", "--json", task=task)))
    assert data["sum"] == [-i for i in range(14)] and data["count"] == 2
    status = ok(smp(env, "task", "status", task=task))
    assert "decrypted" in status


def test_a_long_vector_is_proved_on_every_core_and_says_so(
    server: ServerProcess, env: dict[str, str], keys: Path, tmp_path: Path
) -> None:
    """`submit` of more than PROOF_POOL_MIN_VALUES values to a range task (the default)."""
    length = PROOF_POOL_MIN_VALUES + 20
    task = create_task(
        env, keys, tmp_path / "t", "--fixed", "4", "--range", "-1", "1", "--length",
        str(length), "--clients", "2", "--packed",
    )  # fmt: skip
    remember_tokens(server, tmp_path / "t")
    (tmp_path / "vector.json").write_text(json.dumps([0.5] * length))
    token = str(tmp_path / "t" / "client_1.token")
    values = str(tmp_path / "vector.json")
    done = smp(env, "submit", "--token-file", token, "--from-file", values, task=task)
    out = ok(done)
    assert f"submitted {length} encrypted value(s) with a validity proof" in out
    assert f"proving {length} values in range, on every core" in done.stderr
    with Admin(server.base_url, server.admin_token) as admin:
        status = admin.status(task)
    assert status.reports == 1 and status.refused == {}

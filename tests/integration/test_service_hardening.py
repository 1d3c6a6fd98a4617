"""The hardening findings of issue 13, each reproduced against a real uvicorn subprocess.

1. a forged ciphertext near n made ``GET /result`` answer 500 forever;
2. the SQLite database and its WAL were created world-readable;
3. large bodies were buffered before authentication (memory grew with unauthenticated posts);
4. any bearer string told whether a task exists (403 against 404);
5. 400 missing from the OpenAPI description, ``"5"`` accepted for an integer, control and
   bidirectional-override characters stored in task names;
6. ``GET /`` was 404 and ``/docs`` loaded Swagger UI from a CDN.
"""

from __future__ import annotations

import json
import math
import re
import select
import socket
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from service_harness import Key, ServerProcess, assert_problem, start_server

from smpcloud.client import TaskEncoding
from smpcloud.crypto import threshold
from smpcloud.crypto.wire import encode_int


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def forged_report(key: Key, plaintext: int) -> dict[str, object]:
    """A report that no SDK would build: any plaintext mod n, encrypted as is."""
    pk = key[0].public_key
    return {"key_id": pk.key_id, "ciphertexts": [encode_int(pk.encrypt(plaintext).value)]}


# ------------------------------------------------------------------- 1. forged sums near n


@pytest.fixture(scope="module")
def wide_key() -> Key:
    """A key whose n/2 exceeds the largest float (2^1024): 1200 bits, insecure, fast."""
    return threshold.deal(1200, n=3, t=2, insecure=True)


@pytest.mark.parametrize(
    "encoding",
    [
        None,
        {"kind": "fixed_point", "frac_bits": 16, "min_value": -100.0, "max_value": 100.0},
    ],
    ids=["integer", "fixed_point"],
)
def test_a_forged_sum_near_n_is_readable_and_flagged(
    server: ServerProcess, wide_key: Key, encoding: dict[str, object] | None
) -> None:
    public, shares = wide_key
    n = public.n
    with server.admin() as admin:
        task = admin.create_task(
            public,
            name="forged",
            min_clients=2,
            validity="none",  # the unchecked mode's last guard is what this test is about
            encoding=None if encoding is None else TaskEncoding.model_validate(encoding),
        )
        creds = admin.register_clients(task.task_id, 3)
    server.secrets_handed_out.extend([*task.holder_tokens, *(c.token for c in creds)])
    url = f"{server.base_url}/v1/tasks/{task.task_id}"
    forged = (n - 1) // 2 - 10**6  # near the largest positive plaintext: ~2^1199
    assert (
        httpx.post(
            url + "/reports", headers=bearer(creds[0].token), json=forged_report(wide_key, forged)
        ).status_code
        == 201
    )
    with server.client(task.task_id, creds[1].token) as client:
        client.submit(3)
    with server.admin() as admin:
        admin.close(task.task_id)
    for share in shares[:2]:
        with server.holder(task, share) as holder:
            holder.contribute()
    for _ in range(2):  # readable, and readable again
        response = httpx.get(url + "/result", headers=bearer(server.admin_token))
        assert response.status_code == 200, response.text[:300]
        body = response.json()
        assert body["count"] == 2
        assert body["within_declared_range"] is False
        assert body["out_of_range"] == [0]
        assert body["sum"] == [None] and body["average"] == [None]
        scale = 1 if encoding is None else 1 << 16
        assert body["encoded_sum"] == [str(forged + 3 * scale)]
    # The SDK parses it: NaN where the value is out of range, the exact integer beside it.
    with server.admin() as admin:
        result = admin.result(task.task_id)
    assert result.out_of_range == [0] and not result.within_declared_range
    assert math.isnan(result.sum[0]) and math.isnan(result.average[0])
    assert result.encoded_sum == [forged + 3 * scale]


def test_an_honest_result_has_no_out_of_range_element(server: ServerProcess, key: Key) -> None:
    task, creds = server.new_task(key, 2, length=2)
    for cred, values in zip(creds, ([1, -4], [2, 10]), strict=True):
        with server.client(task.task_id, cred.token) as client:
            client.submit(values)
    with server.admin() as admin:
        admin.close(task.task_id)
    for share in key[1][:3]:
        with server.holder(task, share) as holder:
            holder.contribute()
    body = httpx.get(
        f"{server.base_url}/v1/tasks/{task.task_id}/result", headers=bearer(server.admin_token)
    ).json()
    assert body["sum"] == [3, 6] and body["average"] == [1.5, 3.0]
    assert body["out_of_range"] == [] and body["encoded_sum"] == ["3", "6"]
    assert body["within_declared_range"] is True


# --------------------------------------------------------------------- 2. private files


def test_database_and_wal_are_created_private(tmp_path: Path, key: Key) -> None:
    server = start_server(tmp_path)
    try:
        task, creds = server.new_task(key, 1)
        with server.client(task.task_id, creds[0].token) as client:
            client.submit(1)
        db = server.db_path
        files = [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")]
        for path in files:
            assert path.exists(), path
            mode = stat.S_IMODE(path.stat().st_mode)
            assert mode == 0o600, f"{path.name}: {oct(mode)}"
    finally:
        server.stop()
    server.check_log_has_no_secrets(key)


# ------------------------------------------------------------- 3. authenticate before body


BIG = 8 << 20
HEAD_CHUNK = 64 << 10


def _rss_kib(pid: int) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", text, re.MULTILINE)
    assert match is not None
    return int(match.group(1))


def _big_unauthenticated_post(port: int, path: str, token: str | None) -> tuple[int, bool]:
    """POST an 8 MiB body by hand; return the status and whether it came before the body.

    Sends the headers and 64 KiB, then waits for an answer; a server that answers only after
    the whole body gets it (and its answer is then marked as late).
    """
    auth = f"Authorization: Bearer {token}\r\n" if token is not None else ""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {BIG}\r\n{auth}\r\n"
    ).encode()
    chunk = b"A" * HEAD_CHUNK
    with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
        sock.sendall(head + chunk)
        readable, _, _ = select.select([sock], [], [], 20.0)
        early = bool(readable)
        if not early:
            sent = HEAD_CHUNK
            try:
                while sent < BIG:
                    sock.sendall(chunk)
                    sent += len(chunk)
            except OSError:
                pass
        data = b""
        try:
            while b"\r\n\r\n" not in data:
                part = sock.recv(65536)
                if not part:
                    break
                data += part
        except OSError:
            pass
    status_line = data.split(b"\r\n", 1)[0].decode(errors="replace")
    return int(status_line.split()[1]) if status_line.startswith("HTTP/") else 0, early


def test_large_unauthenticated_posts_are_refused_before_their_body(
    tmp_path: Path, key: Key
) -> None:
    server = start_server(tmp_path, "--max-body-bytes", str(BIG))
    try:
        task, _creds = server.new_task(key, 1)
        assert server.proc is not None
        before = _rss_kib(server.proc.pid)
        cases = [
            (f"/v1/tasks/{task.task_id}/reports", None),
            (f"/v1/tasks/{task.task_id}/reports", "not-a-token"),
            ("/v1/tasks/no-such-task/partials", "not-a-token"),
            ("/v1/tasks", "not-a-token"),
        ]
        outcomes: list[tuple[int, bool]] = []
        lock = threading.Lock()

        def attack(i: int) -> None:
            path, token = cases[i % len(cases)]
            outcome = _big_unauthenticated_post(server.port, path, token)
            with lock:
                outcomes.append(outcome)

        threads = [threading.Thread(target=attack, args=(i,)) for i in range(32)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        after = _rss_kib(server.proc.pid)
        # 32 buffered bodies would be 256 MiB (measured before the fix: +830 MB); allow far
        # less than one tenth of that.
        assert after - before < 24 * 1024, (before, after)
        assert len(outcomes) == 32
        assert all(status in (401, 403) for status, _ in outcomes), outcomes
        assert all(early for _, early in outcomes), "answered only after the whole body"
        assert server.alive()
        # An authenticated upload of a normal size still works.
        with server.admin() as admin:
            assert admin.status(task.task_id).reports == 0
    finally:
        server.stop()
    server.check_log_has_no_secrets(key)


def test_a_chunked_unauthenticated_post_is_refused_before_its_body(server: ServerProcess) -> None:
    """No Content-Length (chunked transfer encoding): the body may be large, so auth first."""
    head = (
        b"POST /v1/tasks HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
        sock.sendall(head + b"%x\r\n" % HEAD_CHUNK + b"A" * HEAD_CHUNK + b"\r\n")
        readable, _, _ = select.select([sock], [], [], 20.0)
        assert readable, "no answer before the end of the body"
        data = sock.recv(65536)
    assert data.startswith(b"HTTP/1.1 401 "), data[:200]
    assert b"application/problem+json" in data


def test_large_authenticated_body_is_still_read(server: ServerProcess, key: Key) -> None:
    """Above the pre-authentication threshold, a valid token's upload goes through as before."""
    task, creds = server.new_task(key, 1)
    body = forged_report(key, 7) | {"key_id": key[0].public_key.key_id + " " * 100_000}
    response = httpx.post(
        f"{server.base_url}/v1/tasks/{task.task_id}/reports",
        headers=bearer(creds[0].token),
        json=body,
    )
    assert len(response.request.content) > 100_000
    assert_problem(response, 422, "invalid-input", "key_id")


# --------------------------------------------------------- 4. existence is not revealed


def test_unknown_task_and_foreign_token_get_the_same_answer(
    server: ServerProcess, key: Key
) -> None:
    task, creds = server.new_task(key, 1)
    other, other_creds = server.new_task(key, 1)
    routes = [
        ("GET", ""),
        ("GET", "/status"),
        ("POST", "/reports"),
        ("GET", "/result"),
        ("POST", "/clients"),
        ("POST", "/partials"),
    ]
    tokens = ["not-a-token", other_creds[0].token, other.holder_tokens[0], "smpc_c_" + "A" * 43]
    for method, suffix in routes:
        answers = set()
        for task_id in (task.task_id, "no-such-task"):
            for token in tokens:
                response = httpx.request(
                    method,
                    f"{server.base_url}/v1/tasks/{task_id}{suffix}",
                    headers=bearer(token),
                    json=forged_report(key, 1),
                )
                answers.add((response.status_code, response.text.replace(task_id, "<id>")))
        assert len(answers) == 1, (method, suffix, answers)
        status, text = answers.pop()
        assert status == 403 and "no-such-task" not in text
    # The administrator may still learn that a task does not exist.
    response = httpx.get(
        f"{server.base_url}/v1/tasks/no-such-task/status", headers=bearer(server.admin_token)
    )
    assert_problem(response, 404, "not-found", "no task")
    # A token of this task with the wrong role still says what is wrong.
    response = httpx.post(
        f"{server.base_url}/v1/tasks/{task.task_id}/close", headers=bearer(creds[0].token)
    )
    assert_problem(response, 403, "permission-denied", "client token may not")


# ------------------------------------------------------------------ 5. strict wire input


def test_openapi_documents_400_and_the_server_answers_it(server: ServerProcess, key: Key) -> None:
    spec = httpx.get(f"{server.base_url}/openapi.json").json()
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if "requestBody" in operation:
                assert "400" in operation["responses"], (method, path)
    task, creds = server.new_task(key, 1)
    response = httpx.post(
        f"{server.base_url}/v1/tasks/{task.task_id}/reports",
        headers=bearer(creds[0].token) | {"content-type": "application/json"},
        content=b'{"key_id": "\xff\xfe"}',
    )
    assert_problem(response, 400, "bad-request")


def test_integers_are_never_coerced_from_strings(server: ServerProcess, key: Key) -> None:
    task, _ = server.new_task(key, 0)
    auth = bearer(server.admin_token)
    url = f"{server.base_url}/v1/tasks"
    response = httpx.post(f"{url}/{task.task_id}/clients", headers=auth, json={"count": "5"})
    assert_problem(response, 422, "invalid-input", "count")
    response = httpx.post(f"{url}/{task.task_id}/clients", headers=auth, json={"count": 5.0})
    assert_problem(response, 422, "invalid-input", "count")
    good = {
        "name": "t",
        "public_key": threshold.public_key_to_json(key[0]),
        "min_clients": 2,
    }
    for field, value in [
        ("min_clients", "2"),
        ("max_clients", "10"),
        ("length", "1"),
        ("length", True),
        ("encoding", {"kind": "fixed_point", "frac_bits": "8", "min_value": 0, "max_value": 1}),
    ]:
        response = httpx.post(url, headers=auth, json=good | {field: value})
        assert_problem(response, 422, "invalid-input", field)
    assert httpx.post(url, headers=auth, json=good).status_code == 201


BAD_NAMES = [
    "nul\x00byte",
    "new\nline",
    "tab\there",
    "escape\x1b[31m",
    "del\x7f",
    "c1\x85",
    "invoice\u202egnp.exe",  # RIGHT-TO-LEFT OVERRIDE
    "isolate\u2066x\u2069",
    "mark\u200f",
    "line\u2028sep",
    "bom\ufeff",
    "   ",
]
GOOD_NAMES = ["BMI (mai 2025)", "平均身高", "Средний доход", "متوسط العمر", "क्षेत्र", "👩‍💻 count"]


def test_names_with_control_or_bidi_characters_are_refused(server: ServerProcess, key: Key) -> None:
    url = f"{server.base_url}/v1/tasks"
    auth = bearer(server.admin_token)
    public = threshold.public_key_to_json(key[0])
    for name in BAD_NAMES:
        body = {"name": name, "public_key": public, "min_clients": 2}
        problem = assert_problem(httpx.post(url, headers=auth, json=body), 422, "invalid-input")
        assert "name" in problem["detail"], (repr(name), problem["detail"])
        assert name.strip() == "" or name not in json.dumps(problem)
    for name in GOOD_NAMES:
        body = {"name": name, "public_key": public, "min_clients": 2}
        response = httpx.post(url, headers=auth, json=body)
        assert response.status_code == 201, (name, response.text)
        info = httpx.get(f"{url}/{response.json()['task_id']}", headers=auth).json()
        assert info["name"] == name


# -------------------------------------------------------------------- 6. index and docs


def test_root_is_an_index(server: ServerProcess) -> None:
    response = httpx.get(server.base_url + "/")
    assert response.status_code == 200
    body = response.json()
    assert body["service"] and body["version"]
    for link in ("docs", "openapi", "health"):
        target = httpx.get(server.base_url + body["links"][link])
        assert target.status_code == 200, link


def _asset_urls(html: str) -> list[str]:
    return re.findall(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""", html)


@pytest.mark.parametrize(
    ("page", "kinds"),
    [("/docs", {"text/javascript", "text/css", "image/png"}), ("/redoc", {"text/javascript"})],
)
def test_docs_load_only_local_assets(server: ServerProcess, page: str, kinds: set[str]) -> None:
    response = httpx.get(server.base_url + page)
    assert response.status_code == 200
    html = response.text
    assert "http://" not in html and "https://" not in html, re.findall(r"https?://\S+", html)
    urls = _asset_urls(html)
    seen: set[str] = set()
    for url in urls:
        assert url.startswith("/"), url
        asset = httpx.get(server.base_url + url)
        assert asset.status_code == 200, url
        kind = (
            asset.headers["content-type"]
            .split(";")[0]
            .replace("application/javascript", "text/javascript")
        )
        if url.endswith(".json"):
            assert kind == "application/json", url
        else:
            seen.add(kind)
            assert len(asset.content) > 100, url
    assert kinds <= seen, (seen, urls)


@pytest.fixture(autouse=True)
def _server_survives(server: ServerProcess) -> Iterator[None]:
    yield
    assert server.alive()

"""``smpcloud certs ca`` / ``request`` / ``sign`` end to end, in subprocesses (issue 16).

Each party makes its own TLS key on its own "machine" (a directory), only its request travels
to the CA, only the certificate travels back; then the three parties, each in its own process
with its own parties.toml, connect over the real TLS mesh on 127.0.0.1. Bad requests, existing
files and misused options end in one clear line and a non-zero exit, never a traceback. The
one-machine path (``smpcloud certs --parties``) still works and says what it is.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from smpcloud.mpc.config import render_deployment
from smpcloud.ports import free_port_range

SMPCLOUD = [sys.executable, "-m", "smpcloud"]


def smpcloud(*args: str | Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SMPCLOUD, *map(str, args)], capture_output=True, text=True, check=False, timeout=timeout
    )


def ok(*args: str | Path) -> str:
    out = smpcloud(*args)
    assert out.returncode == 0, (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr
    return out.stdout


def one_clear_line(out: subprocess.CompletedProcess[str], status: int = 1) -> str:
    """A user error: the exit status, no traceback, the message on one line of stderr."""
    assert out.returncode == status, (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, out.stderr
    return errors[0]


def fingerprint_of(request_output: str) -> str:
    line = next(x for x in request_output.splitlines() if "fingerprint" in x)
    return line.rsplit(" ", 1)[-1]


def private_key_files(directory: Path) -> set[str]:
    return {
        str(p.relative_to(directory))
        for p in directory.rglob("*")
        if p.is_file() and b"PRIVATE KEY" in p.read_bytes()
    }


# -- the whole flow, then the mesh ---------------------------------------------------------------

MESH_SCRIPT = textwrap.dedent(
    """
    import asyncio, json, sys
    from smpcloud.mpc.config import load_deployment
    from smpcloud.mpc.tcp import connect_mesh

    async def main(config, party):
        deployment = load_deployment(config)
        me = deployment.endpoint(party)
        transport = await connect_mesh(
            party, deployment.addresses(), cert=me.cert, key=me.key, ca=deployment.ca,
            connect_deadline=20.0, timeout=20.0,
        )
        async with transport:
            for peer in transport.peers:
                await transport.send(peer, ("hello", 0), f"{party}->{peer}".encode())
            got = {}
            for peer in transport.peers:
                got[str(peer)] = (await transport.recv(peer, ("hello", 0))).decode()
            for peer in transport.peers:  # nobody closes before everyone has everything
                await transport.send(peer, ("done", 0), b"")
            for peer in transport.peers:
                await transport.recv(peer, ("done", 0))
        print(json.dumps(got))

    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
    """
)


def run_mesh(configs: dict[int, Path]) -> dict[int, dict[str, str]]:
    """Every party in its own process, each reading its own parties.toml."""
    processes = {
        pid: subprocess.Popen(
            [sys.executable, "-c", MESH_SCRIPT, str(config), str(pid)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for pid, config in configs.items()
    }
    outcomes: dict[int, tuple[int, str, str]] = {}
    try:
        for pid, process in processes.items():
            stdout, stderr = process.communicate(timeout=60)
            outcomes[pid] = (process.returncode, stdout, stderr)
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
    results: dict[int, dict[str, str]] = {}
    for pid, (status, stdout, stderr) in outcomes.items():
        assert status == 0, (pid, stderr)
        results[pid] = json.loads(stdout)
    return results


def test_ca_request_sign_then_the_mesh_connects(tmp_path: Path) -> None:
    ca_machine = tmp_path / "ca-machine"
    ca_dir = ca_machine / "ca"
    inbox = ca_machine / "inbox"
    out = ok("certs", "ca", "--out", ca_dir)
    assert "offline" in out
    inbox.mkdir()
    parties = {pid: tmp_path / f"party-{pid}-machine" for pid in (1, 2, 3)}
    for pid, machine in parties.items():
        out = ok("certs", "request", "--id", str(pid), "--host", "127.0.0.1", "--out", machine)
        assert f"send to the CA:  {machine / f'party-{pid}.csr'}" in out
        assert f"never send:      {machine / f'party-{pid}-key.pem'}" in out
        fingerprint = fingerprint_of(out)
        # Only the request travels to the CA ...
        shutil.copy(machine / f"party-{pid}.csr", inbox)
        signed = ok(
            "certs",
            "sign",
            "--ca",
            ca_dir,
            "--id",
            str(pid),
            "--fingerprint",
            fingerprint,
            inbox / f"party-{pid}.csr",
        )
        assert f"certified party {pid} for 127.0.0.1 until" in signed
        assert fingerprint in signed
        # ... and only the certificate and the CA certificate travel back.
        shutil.copy(inbox / f"party-{pid}.pem", machine)
        shutil.copy(ca_dir / "ca.pem", machine)
        assert private_key_files(machine) == {f"party-{pid}-key.pem"}
    assert private_key_files(ca_machine) == {"ca/ca-key.pem"}

    for attempt in range(3):  # the ports were free a moment ago; someone may have taken one
        base = free_port_range(4)
        text = render_deployment(parties=3, threshold=2, base_port=base, dealer=False)
        configs = {}
        for pid, machine in parties.items():
            configs[pid] = machine / "parties.toml"
            configs[pid].write_text(text)
        try:
            results = run_mesh(configs)
        except AssertionError as exc:
            if "cannot listen" in str(exc) and attempt < 2:
                continue
            raise
        break
    for pid in (1, 2, 3):
        assert results[pid] == {str(p): f"{p}->{pid}" for p in (1, 2, 3) if p != pid}


# -- refusals: one clear line --------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("ca") / "ca"
    ok("certs", "ca", "--out", directory)
    return directory


def hand_built(
    path: Path,
    common_name: str,
    uri: str,
    *,
    extension: x509.ExtensionType | None = None,
) -> Path:
    """A request built with ``cryptography`` by someone who does not use smpcloud."""
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "smpcloud"),
                    x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                ]
            )
        )
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(uri), x509.DNSName("localhost")]
            ),
            critical=False,
        )
    )
    if extension is not None:
        builder = builder.add_extension(extension, critical=True)
    path.write_bytes(builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
    return path


def tampered(tmp_path: Path) -> Path:
    ok("certs", "request", "--id", "2", "--host", "127.0.0.1", "--out", tmp_path / "p")
    pem = (tmp_path / "p" / "party-2.csr").read_bytes()
    der = bytearray(x509.load_pem_x509_csr(pem).public_bytes(serialization.Encoding.DER))
    where = der.find(b"smpcloud-party-2") + len("smpcloud-party-")
    der[where] = ord("3")
    path = tmp_path / "tampered.csr"
    path.write_bytes(x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM))
    return path


def not_a_request(tmp_path: Path) -> Path:
    path = tmp_path / "notes.csr"
    path.write_text("please sign me\n")
    return path


BAD = {
    "tampered signature": (tampered, "signature does not verify"),
    "not a request": (not_a_request, "not a PEM certificate signing request"),
    "no party id": (
        lambda d: hand_built(d / "r.csr", "www.example.org", "https://example.org"),
        "no valid party id",
    ),
    "id 1001": (
        lambda d: hand_built(d / "r.csr", "smpcloud-party-1001", "urn:smpcloud:party:1001"),
        "outside 0..1000",
    ),
    "CA powers": (
        lambda d: hand_built(
            d / "r.csr",
            "smpcloud-party-1",
            "urn:smpcloud:party:1",
            extension=x509.BasicConstraints(ca=True, path_length=None),
        ),
        "asks for CA powers",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_sign_refuses_a_bad_request_in_one_line(tmp_path: Path, ca_dir: Path, case: str) -> None:
    make, message = BAD[case]
    request = make(tmp_path)
    line = one_clear_line(smpcloud("certs", "sign", "--ca", ca_dir, request))
    assert message in line and str(request) in line
    assert not [p for p in tmp_path.rglob("party-*.pem") if not p.name.endswith("-key.pem")]


def test_sign_refuses_another_id_and_another_key(tmp_path: Path, ca_dir: Path) -> None:
    mine = ok("certs", "request", "--id", "2", "--host", "localhost", "--out", tmp_path / "a")
    ok("certs", "request", "--id", "2", "--host", "localhost", "--out", tmp_path / "b")
    request = tmp_path / "a" / "party-2.csr"
    line = one_clear_line(smpcloud("certs", "sign", "--ca", ca_dir, "--id", "3", request))
    assert "for party 2, not party 3" in line
    forged = tmp_path / "b" / "party-2.csr"
    line = one_clear_line(
        smpcloud("certs", "sign", "--ca", ca_dir, "--fingerprint", fingerprint_of(mine), forged)
    )
    assert "not the request party 2 made" in line
    assert not (tmp_path / "a" / "party-2.pem").exists()
    assert not (tmp_path / "b" / "party-2.pem").exists()


def test_nothing_is_overwritten_without_force(tmp_path: Path) -> None:
    ca = tmp_path / "ca"
    ok("certs", "ca", "--out", ca)
    before = (ca / "ca-key.pem").read_bytes()
    assert "--force" in one_clear_line(smpcloud("certs", "ca", "--out", ca))
    assert (ca / "ca-key.pem").read_bytes() == before
    mine = tmp_path / "mine"
    ok("certs", "request", "--id", "1", "--host", "127.0.0.1", "--out", mine)
    key = (mine / "party-1-key.pem").read_bytes()
    again = smpcloud("certs", "request", "--id", "1", "--host", "127.0.0.1", "--out", mine)
    assert "--force" in one_clear_line(again)
    assert (mine / "party-1-key.pem").read_bytes() == key
    ok("certs", "sign", "--ca", ca, mine / "party-1.csr")
    cert = (mine / "party-1.pem").read_bytes()
    assert "--force" in one_clear_line(smpcloud("certs", "sign", "--ca", ca, mine / "party-1.csr"))
    assert (mine / "party-1.pem").read_bytes() == cert
    ok("certs", "sign", "--ca", ca, "--force", mine / "party-1.csr")
    assert (mine / "party-1.pem").read_bytes() != cert
    ok("certs", "ca", "--out", ca, "--force")
    assert (ca / "ca-key.pem").read_bytes() != before


def test_bad_invocations(tmp_path: Path, ca_dir: Path) -> None:
    assert "--parties N --out DIR" in one_clear_line(smpcloud("certs"), status=2)
    line = one_clear_line(smpcloud("certs", "--parties", "3", "ca", "--out", tmp_path), status=2)
    assert "--parties" in line and "one-machine" in line
    one_clear_line(
        smpcloud("certs", "request", "--id", "1001", "--host", "h", "--out", tmp_path), 2
    )
    one_clear_line(smpcloud("certs", "request", "--id", "1", "--out", tmp_path), status=2)
    line = one_clear_line(
        smpcloud("certs", "request", "--id", "1", "--host", "bad host!", "--out", tmp_path / "x")
    )
    assert "bad host!" in line
    assert not (tmp_path / "x").exists()
    request = tmp_path / "r"
    ok("certs", "request", "--id", "1", "--host", "localhost", "--out", request)
    # A directory without the CA key, and a party's directory given as the CA.
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    shutil.copy(ca_dir / "ca.pem", lonely)
    line = one_clear_line(smpcloud("certs", "sign", "--ca", lonely, request / "party-1.csr"))
    assert "ca-key.pem: does not exist" in line
    demo = tmp_path / "demo"
    ok("certs", "--parties", "1", "--no-dealer", "--out", demo)
    fake = tmp_path / "fake-ca"
    fake.mkdir()
    shutil.copy(demo / "party-1.pem", fake / "ca.pem")
    shutil.copy(demo / "party-1-key.pem", fake / "ca-key.pem")
    line = one_clear_line(smpcloud("certs", "sign", "--ca", fake, request / "party-1.csr"))
    assert "not a CA certificate" in line


def test_one_machine_path_still_works_and_says_what_it_is(tmp_path: Path) -> None:
    out = ok("certs", "--parties", "3", "--out", tmp_path / "d")
    assert "one-machine path, for local demos and tests" in out
    assert private_key_files(tmp_path / "d") == {
        "ca-key.pem",
        "party-0-key.pem",
        "party-1-key.pem",
        "party-2-key.pem",
        "party-3-key.pem",
    }
    assert (tmp_path / "d" / "parties.toml").exists()
    text = " ".join(ok("certs", "--help").split())
    assert "one-machine convenience path, for local demos and tests only" in text
    for needed in ("certs ca --out", "certs request --id", "certs sign --ca", "never"):
        assert needed in text, needed


@pytest.mark.parametrize(
    ("command", "needed"),
    [
        ("ca", ("offline", "certs request", "certs sign", "Example")),
        ("request", ("never leaves this machine", "send only", "fingerprint", "Example")),
        ("sign", ("--fingerprint", "--id", "ca.pem", "Example")),
    ],
)
def test_each_subcommand_explains_the_flow(command: str, needed: tuple[str, ...]) -> None:
    text = " ".join(ok("certs", command, "--help").split())
    for phrase in needed:
        assert phrase in text, phrase


def test_config_writes_the_shared_deployment_file_for_holders(tmp_path: Path) -> None:
    from smpcloud.mpc.config import load_deployment

    target = tmp_path / "holders.toml"
    out = ok(
        "certs",
        "config",
        "--parties",
        "4",
        "--threshold",
        "3",
        "--no-dealer",
        "--base-port",
        "9500",
        "--out",
        target,
    )
    assert "4 parties (t = 3)" in out
    config = load_deployment(target)
    assert sorted(config.endpoints) == [1, 2, 3, 4] and config.threshold == 3
    assert config.endpoints[2].port == 9502
    assert config.endpoints[2].key == tmp_path / "party-2-key.pem"
    again = smpcloud("certs", "config", "--parties", "3", "--out", target)
    assert "--force" in one_clear_line(again)
    bad = smpcloud("certs", "config", "--parties", "2", "--threshold", "3", "--out", target)
    assert bad.returncode == 2 and "exceeds" in bad.stderr

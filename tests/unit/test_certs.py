"""Tests for smpcloud.mpc.certs: layout, modes, ids in certificates, refusal to overwrite."""

from __future__ import annotations

import datetime
import ipaddress
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from smpcloud import keyfiles
from smpcloud.errors import InvalidInputError
from smpcloud.mpc.certs import (
    Deployment,
    create_deployment,
    load_certificate,
    party_id_from_certificate,
)

pytestmark = pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")


@pytest.fixture
def open_umask() -> Iterator[None]:
    """Run with umask 0, so that only the code under test can make a file private."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def all_files(dep: Deployment) -> list[Path]:
    files = [dep.ca_cert, dep.ca_key]
    for entry in dep.endpoints:
        files += [entry.cert, entry.key]
    return files


def test_layout_and_modes(tmp_path: Path, open_umask: None) -> None:
    out = tmp_path / "deploy"
    dep = create_deployment(out, parties=3)
    assert dep.directory == out
    assert dep.ids == (0, 1, 2, 3)
    assert dep.ca_cert == out / "ca.pem"
    assert dep.ca_key == out / "ca-key.pem"
    expected = {"ca.pem", "ca-key.pem"}
    for i in range(4):
        entry = dep.endpoint(i)
        assert entry.cert == out / f"party-{i}.pem"
        assert entry.key == out / f"party-{i}-key.pem"
        expected |= {f"party-{i}.pem", f"party-{i}-key.pem"}
    assert {p.name for p in out.iterdir()} == expected
    assert mode(out) == 0o700
    assert mode(dep.ca_key) == 0o600
    for entry in dep.endpoints:
        assert mode(entry.key) == 0o600
        assert mode(entry.cert) & 0o077 != 0  # certificates are public
    # ca.pem holds only the CA certificate, no key.
    assert b"PRIVATE KEY" not in dep.ca_cert.read_bytes()
    assert dep.ca_cert.read_bytes().count(b"BEGIN CERTIFICATE") == 1
    with pytest.raises(InvalidInputError, match="party 7"):
        dep.endpoint(7)


def test_without_dealer(tmp_path: Path) -> None:
    dep = create_deployment(tmp_path, parties=2, dealer=False)
    assert dep.ids == (1, 2)
    assert not (tmp_path / "party-0.pem").exists()


def test_ids_readable_from_certificates(tmp_path: Path) -> None:
    dep = create_deployment(tmp_path, parties=4)
    for entry in dep.endpoints:
        cert = load_certificate(entry.cert)
        assert party_id_from_certificate(cert) == entry.id
        der = cert.public_bytes(serialization.Encoding.DER)
        assert party_id_from_certificate(der) == entry.id
        common_name = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        assert common_name == f"smpcloud-party-{entry.id}"


def test_certificates_are_signed_by_the_ca_and_match_their_keys(tmp_path: Path) -> None:
    dep = create_deployment(tmp_path, parties=2, hosts=["10.0.0.7", "party.example.org", "::1"])
    ca = load_certificate(dep.ca_cert)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    ca_key = serialization.load_pem_private_key(dep.ca_key.read_bytes(), None)
    assert ca_key.public_key() == ca.public_key()
    for entry in dep.endpoints:
        cert = load_certificate(entry.cert)
        cert.verify_directly_issued_by(ca)
        assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        key = serialization.load_pem_private_key(entry.key.read_bytes(), None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        assert key.curve.name == "secp256r1"
        assert key.public_key() == cert.public_key()
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.UniformResourceIdentifier) == [
            f"urn:smpcloud:party:{entry.id}"
        ]
        assert san.get_values_for_type(x509.IPAddress) == [
            ipaddress.ip_address("10.0.0.7"),
            ipaddress.ip_address("::1"),
        ]
        assert san.get_values_for_type(x509.DNSName) == ["party.example.org"]
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert set(usages) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
        assert cert.not_valid_after_utc - cert.not_valid_before_utc > datetime.timedelta(days=365)


def test_two_deployments_have_different_cas(tmp_path: Path) -> None:
    a = create_deployment(tmp_path / "a", parties=1)
    b = create_deployment(tmp_path / "b", parties=1)
    ca_b = load_certificate(b.ca_cert)
    with pytest.raises((ValueError, TypeError)):
        load_certificate(a.endpoint(1).cert).verify_directly_issued_by(ca_b)


def test_refuses_to_overwrite(tmp_path: Path) -> None:
    dep = create_deployment(tmp_path, parties=2)
    before = {p: p.read_bytes() for p in all_files(dep)}
    with pytest.raises(FileExistsError):
        create_deployment(tmp_path, parties=2)
    assert {p: p.read_bytes() for p in all_files(dep)} == before


def test_one_existing_file_means_nothing_is_written(tmp_path: Path) -> None:
    (tmp_path / "party-2-key.pem").write_text("mine")
    with pytest.raises(FileExistsError, match=r"party-2-key\.pem"):
        create_deployment(tmp_path, parties=3)
    assert [p.name for p in tmp_path.iterdir()] == ["party-2-key.pem"]
    assert (tmp_path / "party-2-key.pem").read_text() == "mine"


def test_existing_symlink_is_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("keep")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "ca-key.pem").symlink_to(target)
    with pytest.raises(FileExistsError):
        create_deployment(tmp_path / "out", parties=1)
    assert target.read_text() == "keep"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"parties": 0}, "parties"),
        ({"parties": 1001}, "parties"),
        ({"parties": 2, "days": 0}, "days"),
        ({"parties": 2, "hosts": ["bad host!"]}, "host"),
        ({"parties": 2, "hosts": ["-bad.example"]}, "host"),
        ({"parties": 2, "hosts": "127.0.0.1"}, "sequence"),
    ],
)
def test_bad_parameters(tmp_path: Path, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        create_deployment(tmp_path, **kwargs)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def _certificate(common_name: str | None, uris: list[str] | None) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "smpcloud")]
    if common_name is not None:
        attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(attributes))
        .issuer_name(x509.Name(attributes))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    if uris is not None:
        names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(u) for u in uris]
        names.append(x509.DNSName("localhost"))
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(key, hashes.SHA256())


def test_party_id_accepts_a_well_formed_certificate() -> None:
    cert = _certificate("smpcloud-party-12", ["urn:smpcloud:party:12", "https://example.org"])
    assert party_id_from_certificate(cert) == 12


@pytest.mark.parametrize(
    ("common_name", "uris"),
    [
        ("smpcloud-party-1", None),  # no SAN
        (None, ["urn:smpcloud:party:1"]),  # no CN
        ("smpcloud-party-1", []),  # no party URI
        ("smpcloud-party-1", ["urn:smpcloud:party:2"]),  # CN and URI disagree
        ("smpcloud-party-1", ["urn:smpcloud:party:1", "urn:smpcloud:party:1"]),  # two URIs
        ("someone-else-1", ["urn:smpcloud:party:1"]),  # not an smpcloud party
        ("smpcloud-party-01", ["urn:smpcloud:party:01"]),  # leading zero
        ("smpcloud-party--1", ["urn:smpcloud:party:-1"]),  # negative
        ("smpcloud-party-70000", ["urn:smpcloud:party:70000"]),  # out of range
        ("smpcloud-party-1x", ["urn:smpcloud:party:1x"]),  # not a number
    ],
)
def test_party_id_rejects_bad_certificates(common_name: str | None, uris: list[str] | None) -> None:
    with pytest.raises(InvalidInputError):
        party_id_from_certificate(_certificate(common_name, uris))


def test_party_id_rejects_garbage_bytes() -> None:
    with pytest.raises(InvalidInputError, match="DER"):
        party_id_from_certificate(b"\x30\x03\x02\x01\x00")


def test_load_certificate_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "not-a-cert.pem"
    path.write_text("hello")
    with pytest.raises(InvalidInputError, match=r"not-a-cert\.pem"):
        load_certificate(path)


def test_write_secret_bytes(tmp_path: Path, open_umask: None) -> None:
    path = tmp_path / "secret.pem"
    keyfiles.write_secret_bytes(path, b"one")
    assert mode(path) == 0o600
    assert path.read_bytes() == b"one"
    with pytest.raises(FileExistsError):
        keyfiles.write_secret_bytes(path, b"two")
    assert path.read_bytes() == b"one"
    keyfiles.write_secret_bytes(path, b"three", overwrite=True)
    assert path.read_bytes() == b"three"
    assert mode(path) == 0o600

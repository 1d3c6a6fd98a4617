"""Per-party TLS keys (issue 16): the CA alone, a party's own key and request, the CA's signature.

The concern: ``create_deployment`` (``smpcloud certs --parties``) writes every party's private
key on one machine, so whoever ran it can impersonate any party. With :func:`create_ca`,
:func:`create_request` and :func:`sign_request` each party makes its own key, and the CA signs
only the public key in the party's request. Bad requests are refused with a clear error.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from test_certs import mode, open_umask  # noqa: F401  (open_umask: a fixture, used by name)

from smpcloud.errors import InvalidInputError
from smpcloud.mpc.certs import (
    CaFiles,
    create_ca,
    create_deployment,
    load_certificate,
    party_id_from_certificate,
)
from smpcloud.mpc.csr import (
    CertificateRequestError,
    create_request,
    request_fingerprint,
    sign_request,
)

pytestmark = pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")


def private_key_files(directory: Path) -> set[str]:
    """Names of the files below ``directory`` that hold a private key."""
    return {
        str(p.relative_to(directory))
        for p in directory.rglob("*")
        if p.is_file() and b"PRIVATE KEY" in p.read_bytes()
    }


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> CaFiles:
    return create_ca(tmp_path_factory.mktemp("ca"))


# -- the concern, and the way out ----------------------------------------------------------------


def test_one_machine_path_holds_every_private_key(tmp_path: Path) -> None:
    """What issue 16 is about: one directory, one machine, every party's private key."""
    create_deployment(tmp_path, parties=3)
    assert private_key_files(tmp_path) == {
        "ca-key.pem",
        "party-0-key.pem",
        "party-1-key.pem",
        "party-2-key.pem",
        "party-3-key.pem",
    }


@pytest.mark.usefixtures("open_umask")
def test_request_and_sign_keep_each_private_key_with_its_party(tmp_path: Path) -> None:
    ca_machine = tmp_path / "ca-machine"
    ca = create_ca(ca_machine / "ca")
    inbox = ca_machine / "requests"
    inbox.mkdir()
    for pid in (1, 2, 3):
        party_machine = tmp_path / f"party-{pid}-machine"
        request = create_request(party_machine, pid, ["127.0.0.1", f"party{pid}.example.org"])
        assert request.key == party_machine / f"party-{pid}-key.pem"
        assert request.csr == party_machine / f"party-{pid}.csr"
        assert mode(request.key) == 0o600
        assert mode(party_machine) == 0o700
        assert b"PRIVATE KEY" not in request.csr.read_bytes()
        # Only the request travels to the CA.
        shutil.copy(request.csr, inbox / request.csr.name)
        signed = sign_request(ca.directory, inbox / request.csr.name)
        assert signed.id == pid
        assert signed.hosts == ("127.0.0.1", f"party{pid}.example.org")
        assert signed.fingerprint == request.fingerprint
        assert signed.cert == inbox / f"party-{pid}.pem"
        # The certificate travels back; the key never moved.
        cert = load_certificate(signed.cert)
        key = serialization.load_pem_private_key(request.key.read_bytes(), None)
        assert cert.public_key() == key.public_key()
        cert.verify_directly_issued_by(load_certificate(ca.cert))
        assert party_id_from_certificate(cert) == pid
        assert private_key_files(party_machine) == {f"party-{pid}-key.pem"}
    assert private_key_files(ca_machine) == {"ca/ca-key.pem"}


def test_signed_certificate_is_what_the_one_machine_path_issues(
    tmp_path: Path, ca: CaFiles
) -> None:
    hosts = ["10.0.0.7", "party.example.org", "::1"]
    demo = create_deployment(tmp_path / "demo", parties=2, hosts=hosts)
    request = create_request(tmp_path / "p2", 2, hosts)
    signed = sign_request(ca.directory, request.csr)
    mine = load_certificate(signed.cert)
    theirs = load_certificate(demo.endpoint(2).cert)
    assert mine.subject == theirs.subject
    assert mine.issuer == load_certificate(ca.cert).subject

    def extensions(cert: x509.Certificate) -> dict[object, tuple[bool, object]]:
        skip = (x509.SubjectKeyIdentifier, x509.AuthorityKeyIdentifier)
        return {
            ext.oid: (ext.critical, ext.value)
            for ext in cert.extensions
            if not isinstance(ext.value, skip)
        }

    assert extensions(mine) == extensions(theirs)
    assert [type(e.value) for e in mine.extensions] == [type(e.value) for e in theirs.extensions]
    assert (mine.not_valid_after_utc - mine.not_valid_before_utc) == (
        theirs.not_valid_after_utc - theirs.not_valid_before_utc
    )
    assert mine.signature_hash_algorithm is not None
    assert mine.signature_hash_algorithm.name == "sha256"


# -- the CA alone --------------------------------------------------------------------------------


@pytest.mark.usefixtures("open_umask")
def test_create_ca_layout_modes_and_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "ca"
    ca = create_ca(out)
    assert (ca.directory, ca.cert, ca.key) == (out, out / "ca.pem", out / "ca-key.pem")
    assert {p.name for p in out.iterdir()} == {"ca.pem", "ca-key.pem"}
    assert mode(out) == 0o700
    assert mode(ca.key) == 0o600
    cert = load_certificate(ca.cert)
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    key = serialization.load_pem_private_key(ca.key.read_bytes(), None)
    assert key.public_key() == cert.public_key()
    before = ca.cert.read_bytes()
    with pytest.raises(FileExistsError, match=r"ca\.pem"):
        create_ca(out)
    assert ca.cert.read_bytes() == before
    create_ca(out, overwrite=True)
    assert ca.cert.read_bytes() != before
    assert mode(ca.key) == 0o600


def test_create_ca_refuses_bad_days(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="days"):
        create_ca(tmp_path, days=0)
    assert list(tmp_path.iterdir()) == []


# -- a party's request ---------------------------------------------------------------------------


def test_create_request_contents(tmp_path: Path) -> None:
    request = create_request(tmp_path, 0, ["localhost", "127.0.0.1", "localhost"])
    csr = x509.load_pem_x509_csr(request.csr.read_bytes())
    assert csr.is_signature_valid
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "smpcloud-party-0"
    san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == ["urn:smpcloud:party:0"]
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    key = serialization.load_pem_private_key(request.key.read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    assert csr.public_key() == key.public_key()
    assert request.fingerprint == request_fingerprint(csr)
    assert len(request.fingerprint.replace(":", "")) == 64


def test_create_request_refuses_to_overwrite(tmp_path: Path) -> None:
    first = create_request(tmp_path, 1, ["127.0.0.1"])
    key = first.key.read_bytes()
    with pytest.raises(FileExistsError, match=r"party-1-key\.pem"):
        create_request(tmp_path, 1, ["127.0.0.1"])
    assert first.key.read_bytes() == key
    (tmp_path / "party-2.csr").write_text("mine")
    with pytest.raises(FileExistsError, match=r"party-2\.csr"):
        create_request(tmp_path, 2, ["127.0.0.1"])
    assert not (tmp_path / "party-2-key.pem").exists()
    again = create_request(tmp_path, 1, ["127.0.0.1"], overwrite=True)
    assert again.key.read_bytes() != key
    assert mode(again.key) == 0o600


@pytest.mark.parametrize(
    ("party", "hosts", "message"),
    [
        (-1, ["127.0.0.1"], "0..1000"),
        (1001, ["127.0.0.1"], "0..1000"),
        (True, ["127.0.0.1"], "0..1000"),
        (1, [], "at least one host"),
        (1, "127.0.0.1", "sequence"),
        (1, ["bad host!"], "host"),
    ],
)
def test_create_request_refuses_bad_parameters(
    tmp_path: Path, party: int, hosts: list[str], message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        create_request(tmp_path / "out", party, hosts)
    assert not (tmp_path / "out").exists()


# -- the CA's signature: what it refuses ---------------------------------------------------------


def build_csr(
    tmp_path: Path,
    *,
    common_name: str | None = "smpcloud-party-1",
    uris: tuple[str, ...] = ("urn:smpcloud:party:1",),
    others: tuple[x509.GeneralName, ...] = (x509.DNSName("localhost"),),
    extensions: tuple[x509.ExtensionType, ...] = (),
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | None = None,
    name: str = "request.csr",
) -> Path:
    """A request built by hand with ``cryptography``, as a party that does not use smpcloud."""
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "smpcloud")]
    if common_name is not None:
        attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attributes))
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(u) for u in uris]
    names += others
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    for extension in extensions:
        builder = builder.add_extension(extension, critical=True)
    signer = key if key is not None else ec.generate_private_key(ec.SECP256R1())
    csr = builder.sign(signer, hashes.SHA256())
    path = tmp_path / name
    path.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    return path


def test_a_hand_built_request_is_signed(tmp_path: Path, ca: CaFiles) -> None:
    ip = ipaddress.ip_address("10.1.2.3")
    path = build_csr(tmp_path, others=(x509.DNSName("node.example.org"), x509.IPAddress(ip)))
    signed = sign_request(ca.directory, path, out=tmp_path / "mine.pem")
    assert signed.id == 1
    assert signed.hosts == ("node.example.org", "10.1.2.3")
    assert signed.cert == tmp_path / "mine.pem"


def _ca_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


BAD_REQUESTS: dict[str, tuple[dict[str, object], str]] = {
    "no id": ({"common_name": "someone", "uris": ()}, "party id"),
    "no common name": ({"common_name": None}, "common name"),
    "no URI": ({"uris": ()}, "party URI"),
    "id 1001": (
        {"common_name": "smpcloud-party-1001", "uris": ("urn:smpcloud:party:1001",)},
        "0..1000",
    ),
    "id with a leading zero": (
        {"common_name": "smpcloud-party-01", "uris": ("urn:smpcloud:party:01",)},
        "party id",
    ),
    "CN and URI disagree": ({"uris": ("urn:smpcloud:party:2",)}, "different parties"),
    "another URI": ({"uris": ("urn:smpcloud:party:1", "https://evil.example")}, "URI"),
    "an e-mail name": ({"others": (x509.RFC822Name("a@example.org"),)}, "DNS names"),
    "a wildcard DNS name": ({"others": (x509.DNSName("*.example.org"),)}, "host"),
    "CA powers": ({"extensions": (x509.BasicConstraints(ca=True, path_length=None),)}, "CA"),
    "certificate signing": ({"extensions": (_ca_usage(),)}, "CA"),
    "an extension smpcloud does not issue": (
        {"extensions": (x509.OCSPNoCheck(),)},
        "extension",
    ),
    "an RSA key": (
        {"key": rsa.generate_private_key(public_exponent=65537, key_size=2048)},
        "P-256",
    ),
    "a P-384 key": ({"key": ec.generate_private_key(ec.SECP384R1())}, "P-256"),
}


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_sign_refuses_a_bad_request(tmp_path: Path, ca: CaFiles, case: str) -> None:
    kwargs, message = BAD_REQUESTS[case]
    path = build_csr(tmp_path, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(CertificateRequestError, match=message):
        sign_request(ca.directory, path)
    assert [p.name for p in tmp_path.iterdir()] == ["request.csr"]


def test_sign_refuses_a_tampered_request(tmp_path: Path, ca: CaFiles) -> None:
    """Someone changes the id in transit: the self-signature no longer verifies."""
    request = create_request(tmp_path, 2, ["127.0.0.1"])
    csr = x509.load_pem_x509_csr(request.csr.read_bytes())
    der = bytearray(csr.public_bytes(serialization.Encoding.DER))
    where = der.find(b"smpcloud-party-2")
    der[where + len("smpcloud-party-")] = ord("3")
    tampered = x509.load_der_x509_csr(bytes(der))
    assert not tampered.is_signature_valid
    path = tmp_path / "tampered.csr"
    path.write_bytes(tampered.public_bytes(serialization.Encoding.PEM))
    with pytest.raises(CertificateRequestError, match="signature"):
        sign_request(ca.directory, path)
    assert not (tmp_path / "party-3.pem").exists()


@pytest.mark.parametrize(
    "content",
    [
        b"hello",
        b"",
        b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
    ],
)
def test_sign_refuses_a_file_that_is_no_request(
    tmp_path: Path, ca: CaFiles, content: bytes
) -> None:
    path = tmp_path / "junk.csr"
    path.write_bytes(content)
    with pytest.raises(CertificateRequestError, match=r"junk\.csr.*not a PEM certificate signing"):
        sign_request(ca.directory, path)


def test_sign_refuses_a_certificate_given_as_request(tmp_path: Path, ca: CaFiles) -> None:
    with pytest.raises(CertificateRequestError, match="not a PEM certificate signing request"):
        sign_request(ca.directory, ca.cert)


def test_sign_refuses_a_huge_file(tmp_path: Path, ca: CaFiles) -> None:
    path = tmp_path / "huge.csr"
    path.write_bytes(b"A" * (1 << 20))
    with pytest.raises(CertificateRequestError, match="too large"):
        sign_request(ca.directory, path)


def test_expected_id(tmp_path: Path, ca: CaFiles) -> None:
    request = create_request(tmp_path, 2, ["127.0.0.1"])
    with pytest.raises(CertificateRequestError, match="party 2, not party 3"):
        sign_request(ca.directory, request.csr, expected_id=3)
    assert not (tmp_path / "party-2.pem").exists()
    assert sign_request(ca.directory, request.csr, expected_id=2).id == 2


def test_expected_fingerprint(tmp_path: Path, ca: CaFiles) -> None:
    """The CA signs only the request whose fingerprint the party read out to it."""
    genuine = create_request(tmp_path / "genuine", 2, ["127.0.0.1"])
    forged = create_request(tmp_path / "forged", 2, ["127.0.0.1"])
    with pytest.raises(CertificateRequestError, match="not the request party 2 made"):
        sign_request(ca.directory, forged.csr, expected_fingerprint=genuine.fingerprint)
    assert not (tmp_path / "forged" / "party-2.pem").exists()
    spoken = genuine.fingerprint.upper().replace(":", " ")
    signed = sign_request(ca.directory, genuine.csr, expected_fingerprint=spoken)
    assert signed.fingerprint == genuine.fingerprint


def test_sign_refuses_to_overwrite(tmp_path: Path, ca: CaFiles) -> None:
    request = create_request(tmp_path, 1, ["127.0.0.1"])
    first = sign_request(ca.directory, request.csr)
    before = first.cert.read_bytes()
    with pytest.raises(FileExistsError, match=r"party-1\.pem"):
        sign_request(ca.directory, request.csr)
    assert first.cert.read_bytes() == before
    again = sign_request(ca.directory, request.csr, overwrite=True)
    assert again.cert.read_bytes() != before


def test_sign_validity(tmp_path: Path, ca: CaFiles) -> None:
    request = create_request(tmp_path, 1, ["127.0.0.1"])
    signed = sign_request(ca.directory, request.csr, days=30)
    cert = load_certificate(signed.cert)
    assert cert.not_valid_after_utc == signed.not_after
    span = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert span == datetime.timedelta(days=30, minutes=5)
    with pytest.raises(InvalidInputError, match="days"):
        sign_request(ca.directory, request.csr, days=0, overwrite=True)


def test_certificate_never_outlives_its_ca(tmp_path: Path) -> None:
    ca = create_ca(tmp_path / "ca", days=10)
    request = create_request(tmp_path, 1, ["127.0.0.1"])
    signed = sign_request(ca.directory, request.csr, days=365)
    assert signed.not_after == load_certificate(ca.cert).not_valid_after_utc


def test_sign_needs_a_matching_ca(tmp_path: Path, ca: CaFiles) -> None:
    request = create_request(tmp_path, 1, ["127.0.0.1"])
    with pytest.raises(FileNotFoundError):
        sign_request(tmp_path / "nowhere", request.csr)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    shutil.copy(ca.cert, mixed / "ca.pem")
    shutil.copy(create_ca(tmp_path / "other").key, mixed / "ca-key.pem")
    with pytest.raises(InvalidInputError, match="does not match"):
        sign_request(mixed, request.csr)
    # A party's own directory is no CA: its certificate cannot sign.
    party = tmp_path / "party"
    demo = create_deployment(tmp_path / "demo", parties=1, dealer=False)
    party.mkdir()
    shutil.copy(demo.endpoint(1).cert, party / "ca.pem")
    shutil.copy(demo.endpoint(1).key, party / "ca-key.pem")
    with pytest.raises(InvalidInputError, match="not a CA"):
        sign_request(party, request.csr)

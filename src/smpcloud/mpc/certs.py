"""Deployment certificates for the TLS mesh: one CA, one certificate and key per endpoint.

A *deployment* is the set of endpoints that run one peer-MPC computation: parties 1..n and,
optionally, the dealer 0. Keys are ECDSA P-256 (TLS 1.3 signature scheme
``ecdsa_secp256r1_sha256``, supported by every OpenSSL that Python's ``ssl`` links against),
made and used with ``cryptography``.

Two ways to make them. In a real deployment no one but a party sees its private key:
:func:`create_ca` makes the CA alone, each party its own key and a certificate signing request,
and the CA signs the request (:mod:`smpcloud.mpc.csr`). :func:`create_deployment`, the
one-machine convenience path for local demos and tests, makes the CA *and* every endpoint's key
in one directory: whoever runs it could impersonate any party. Both issue endpoint certificates
with :func:`issue_certificate`. The one-machine path writes::

    OUT/ca.pem               the deployment CA certificate: the only trust anchor of the mesh
    OUT/ca-key.pem           the CA private key (0600). Needed only to issue certificates: keep
                             it offline, away from every party's machine
    OUT/party-<id>.pem       endpoint certificate, signed by the CA
    OUT/party-<id>-key.pem   endpoint private key, PKCS#8 PEM, unencrypted     (0600)

Each endpoint certificate names its party id twice, and :func:`party_id_from_certificate` reads
it back after a TLS handshake: subject CN ``smpcloud-party-<id>`` and exactly one SAN URI
``urn:smpcloud:party:<id>`` (both must agree). The hosts given to :func:`create_deployment` are
added as SAN DNS names / IP addresses so that hostname verification can be switched on as well.
Certificates carry both ``serverAuth`` and ``clientAuth`` (every endpoint is a TLS server for
some peers and a client of others).

What a certificate reveals: the party id, the hosts and the validity period. What it protects:
only the holder of ``party-<id>-key.pem`` can complete a handshake as party ``<id>``; whoever
holds ``ca-key.pem`` can mint any identity, hence "keep it offline".
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from smpcloud.errors import InvalidInputError
from smpcloud.keyfiles import write_secret_bytes

#: Subject common name prefix of an endpoint certificate.
CN_PREFIX: Final = "smpcloud-party-"
#: SAN URI prefix of an endpoint certificate.
URI_PREFIX: Final = "urn:smpcloud:party:"
#: Largest party id a certificate may carry (far above any realistic mesh).
MAX_PARTY_ID: Final = 65535
#: Largest number of computing parties :func:`create_deployment` accepts.
MAX_PARTIES: Final = 1000

#: Default validity of a CA made by :func:`create_ca`, in days (it must outlive the certificates
#: it signs, which never extend past it).
CA_DAYS: Final = 3650
#: Default validity of an endpoint certificate, in days.
ENDPOINT_DAYS: Final = 365
#: Longest validity accepted, in days.
MAX_DAYS: Final = 36500

_ID_TEXT = re.compile(r"0|[1-9][0-9]{0,4}")
_DNS_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_CLOCK_SKEW = datetime.timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class EndpointFiles:
    """The certificate and private key of one endpoint (0 = dealer, 1..n = parties)."""

    id: int
    cert: Path
    key: Path


@dataclass(frozen=True, slots=True)
class CaFiles:
    """Where a deployment CA is kept (:func:`create_ca`): in ``directory``, ``cert``
    (``ca.pem``: give it to every endpoint) and ``key`` (``ca-key.pem``: keep it offline)."""

    directory: Path
    cert: Path
    key: Path

    @classmethod
    def at(cls, directory: str | os.PathLike[str]) -> CaFiles:
        """The CA files' paths in ``directory`` (whether or not they exist)."""
        folder = Path(directory)
        return cls(folder, folder / "ca.pem", folder / "ca-key.pem")


@dataclass(frozen=True, slots=True)
class Deployment:
    """Where :func:`create_deployment` wrote everything.

    Attributes:
        directory: the output directory.
        ca_cert: the CA certificate (give it to every endpoint).
        ca_key: the CA private key (keep it offline).
        endpoints: one entry per endpoint, in id order (the dealer 0 first when present).
    """

    directory: Path
    ca_cert: Path
    ca_key: Path
    endpoints: tuple[EndpointFiles, ...]

    @property
    def ids(self) -> tuple[int, ...]:
        """The endpoint ids, in order."""
        return tuple(e.id for e in self.endpoints)

    def endpoint(self, party: int) -> EndpointFiles:
        """Return the files of ``party``.

        Raises:
            InvalidInputError: no such endpoint in this deployment.
        """
        for entry in self.endpoints:
            if entry.id == party:
                return entry
        raise InvalidInputError(f"party {party} is not in this deployment")


def parse_host(host: str) -> x509.GeneralName:
    """Return ``host`` (an IP address, or an ASCII DNS name without wildcard) as a SAN entry:
    an ``x509.IPAddress`` or an ``x509.DNSName`` (without a trailing dot).

    Raises:
        InvalidInputError: neither an IP address nor an ASCII DNS name.
    """
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        pass
    name = host.rstrip(".")
    labels = name.split(".")
    if not name or len(name) > 253 or not all(_DNS_LABEL.fullmatch(label) for label in labels):
        raise InvalidInputError(f"host {host!r} is neither an IP address nor an ASCII DNS name")
    return x509.DNSName(name)


def parse_hosts(hosts: Sequence[str]) -> list[x509.GeneralName]:
    """Return every host's SAN entry (:func:`parse_host`), in order, without repetitions.

    Raises:
        InvalidInputError: ``hosts`` is one string, or a host is not valid.
    """
    if isinstance(hosts, str):
        raise InvalidInputError("hosts must be a sequence of host names, not one string")
    names: list[x509.GeneralName] = []
    for host in hosts:
        name = parse_host(host)
        if name not in names:
            names.append(name)
    return names


def check_days(days: int) -> None:
    """Refuse a validity outside 1..:data:`MAX_DAYS` days (InvalidInputError)."""
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_DAYS:
        raise InvalidInputError(f"days must be in 1..{MAX_DAYS}, got {days!r}")


def endpoint_subject(party: int) -> x509.Name:
    """The subject of party ``party``'s certificate: O=smpcloud, CN=smpcloud-party-<id>."""
    return _name(f"{CN_PREFIX}{party}")


def party_uri(party: int) -> x509.UniformResourceIdentifier:
    """The SAN URI naming party ``party``: ``urn:smpcloud:party:<id>``."""
    return x509.UniformResourceIdentifier(f"{URI_PREFIX}{party}")


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "smpcloud"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def private_key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    """``key`` as unencrypted PKCS#8 PEM (write it with ``keyfiles.write_secret_bytes``)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def write_public_pem(path: Path, data: bytes, *, overwrite: bool = False) -> None:
    """Write a public PEM file (a certificate, a request), world-readable (0666 minus umask):
    created exclusively (an existing file or symlink is never followed or replaced), or with
    ``overwrite`` written so under a temporary name and renamed over the old one (atomic).

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is false.
        OSError: the directory is missing or not writable.
    """
    target = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp") if overwrite else path
    try:
        with target.open("xb") as handle:
            handle.write(data)
        if overwrite:
            os.replace(target, path)
    except BaseException:
        if overwrite:
            target.unlink(missing_ok=True)
        raise


_ENDPOINT_FILE = re.compile(r"party-(0|[1-9][0-9]{0,4})(-key)?\.pem")


def deployment_files(directory: str | os.PathLike[str]) -> list[Path]:
    """The files of a deployment already in ``directory``: the CA's and every endpoint's.

    Returns:
        ``ca.pem``, ``ca-key.pem``, ``party-<id>.pem`` and ``party-<id>-key.pem`` files that
        exist there, sorted (nothing else, whatever else the directory holds).
    """
    folder = Path(directory)
    if not folder.is_dir():
        return []
    return sorted(
        entry
        for entry in folder.iterdir()
        if entry.name in ("ca.pem", "ca-key.pem") or _ENDPOINT_FILE.fullmatch(entry.name)
    )


def _make_ca(
    now: datetime.datetime, days: int
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(f"smpcloud deployment CA {secrets.token_hex(4)}")
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _CLOCK_SKEW)
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def refuse_existing(paths: Sequence[Path]) -> None:
    """Raise FileExistsError naming every one of ``paths`` that exists (a symlink included)."""
    existing = [str(p) for p in paths if os.path.lexists(p)]
    if existing:
        raise FileExistsError(f"refusing to overwrite existing files: {', '.join(existing)}")


def create_ca(
    directory: str | os.PathLike[str], *, days: int = CA_DAYS, overwrite: bool = False
) -> CaFiles:
    """Create a deployment CA alone: ``ca.pem`` and ``ca-key.pem`` (0600) in ``directory``.

    The CA is the mesh's only trust anchor: whoever holds ``ca-key.pem`` can issue a
    certificate for any party id, so keep it offline and use it only to sign the parties'
    requests (:func:`smpcloud.mpc.csr.sign_request`). No endpoint key is made here: each party
    makes its own (:func:`smpcloud.mpc.csr.create_request`). Randomness: the OS CSPRNG
    (through OpenSSL).

    Args:
        directory: where to write; created (mode 0700) if missing.
        days: the CA's validity, from now; certificates it signs never extend past it.
        overwrite: replace a CA already there (each file atomically; the key 0600 from the
            moment it exists). Certificates the old CA signed are then no longer trusted by
            endpoints given the new ``ca.pem``.

    Returns:
        The paths written.

    Raises:
        InvalidInputError: days out of range.
        FileExistsError: ``ca.pem`` or ``ca-key.pem`` exists and ``overwrite`` is false; then
            nothing is written.
    """
    check_days(days)
    files = CaFiles.at(directory)
    if not overwrite:
        refuse_existing([files.cert, files.key])
    files.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    key, cert = _make_ca(datetime.datetime.now(datetime.UTC), days)
    write_secret_bytes(files.key, private_key_pem(key), overwrite=overwrite)
    write_public_pem(files.cert, cert.public_bytes(serialization.Encoding.PEM), overwrite=overwrite)
    return files


def issue_certificate(
    party: int,
    public_key: ec.EllipticCurvePublicKey,
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    hosts: Sequence[x509.GeneralName],
    *,
    now: datetime.datetime,
    days: int,
) -> x509.Certificate:
    """Issue party ``party``'s endpoint certificate for ``public_key``, signed by the CA.

    The one function both paths (:func:`create_deployment`, and
    :func:`smpcloud.mpc.csr.sign_request`) issue certificates with: subject
    ``O=smpcloud, CN=smpcloud-party-<id>``; SAN ``urn:smpcloud:party:<id>`` then ``hosts``;
    not a CA (critical); key usage digitalSignature only (critical); extended key usages
    serverAuth and clientAuth; subject and authority key identifiers; SHA-256. Valid from
    ``now`` minus 5 minutes (clock skew) for ``days`` days, but never past the CA's own end.

    Args:
        party: the id to certify (the caller has checked it).
        public_key: the endpoint's public key (its private key stays with the endpoint).
        ca_key: the CA's private key; ca_cert: its certificate (the issuer).
        hosts: SAN DNS names / IP addresses (:func:`parse_hosts`).
        now: the time of issue; days: the validity in days.

    Returns:
        The signed certificate.
    """
    san: list[x509.GeneralName] = [party_uri(party), *hosts]
    not_after = min(now + datetime.timedelta(days=days), ca_cert.not_valid_after_utc)
    return (
        x509.CertificateBuilder()
        .subject_name(endpoint_subject(party))
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _CLOCK_SKEW)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )


def create_deployment(
    out_dir: str | os.PathLike[str],
    *,
    parties: int,
    dealer: bool = True,
    hosts: Sequence[str] = ("127.0.0.1", "localhost"),
    days: int = ENDPOINT_DAYS,
    overwrite: bool = False,
) -> Deployment:
    """Create a deployment CA and one certificate + private key per endpoint in ``out_dir``.

    The one-machine convenience path, for local demos and tests: this machine makes (and sees)
    the CA key and every party's private key, so whoever runs it could impersonate any party.
    A real deployment uses :func:`create_ca` on the CA's machine and, on each party's machine,
    :func:`smpcloud.mpc.csr.create_request`, then :func:`smpcloud.mpc.csr.sign_request`: no one
    but a party ever sees its private key. Both paths issue the same certificates
    (:func:`issue_certificate`).

    Endpoints are parties 1..``parties`` and, when ``dealer`` is true, the dealer 0. Every
    certificate lists all ``hosts`` (SAN DNS names or IP addresses). Private keys (the CA's
    included) are written with mode 0600 from the moment they exist; certificates are world-readable
    (0666 minus the umask). Keep
    ``ca-key.pem`` offline: it is needed only to issue certificates, and whoever holds it can
    impersonate any party. Randomness: the OS CSPRNG (through OpenSSL).

    Args:
        out_dir: the output directory; created (mode 0700) if missing.
        parties: number of computing parties n, 1 <= n <= 1000.
        dealer: also issue a certificate for the dealer, id 0.
        hosts: host names / IP addresses the endpoints are reached at.
        days: validity of every certificate, from now (minus 5 minutes for clock skew).
        overwrite: replace a deployment already in ``out_dir``: a new CA and new keys (still
            0600 from the moment they exist, each file replaced atomically), and the endpoint
            files of ids the new deployment does not have are deleted (:func:`deployment_files`).

    Returns:
        The paths written (see the module docstring for the layout).

    Raises:
        InvalidInputError: parties or days out of range, a host that is neither an IP address
            nor an ASCII DNS name.
        FileExistsError: any of the files already exists and ``overwrite`` is false; then
            nothing is written.
    """
    if not 1 <= parties <= MAX_PARTIES:
        raise InvalidInputError(f"parties must be in 1..{MAX_PARTIES}, got {parties}")
    check_days(days)
    general_names = parse_hosts(hosts)

    directory = Path(out_dir)
    ids = ([0] if dealer else []) + list(range(1, parties + 1))
    layout = Deployment(
        directory=directory,
        ca_cert=directory / "ca.pem",
        ca_key=directory / "ca-key.pem",
        endpoints=tuple(
            EndpointFiles(i, directory / f"party-{i}.pem", directory / f"party-{i}-key.pem")
            for i in ids
        ),
    )
    targets = [layout.ca_cert, layout.ca_key]
    for entry in layout.endpoints:
        targets += [entry.cert, entry.key]
    if not overwrite:
        refuse_existing(targets)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    stale = [p for p in deployment_files(directory) if p not in targets] if overwrite else []

    now = datetime.datetime.now(datetime.UTC)
    ca_key, ca_cert = _make_ca(now, days)
    # Private keys first: if a write fails half-way, no certificate points at a missing key.
    write_secret_bytes(layout.ca_key, private_key_pem(ca_key), overwrite=overwrite)
    pem = serialization.Encoding.PEM
    write_public_pem(layout.ca_cert, ca_cert.public_bytes(pem), overwrite=overwrite)
    for entry in layout.endpoints:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = issue_certificate(
            entry.id, key.public_key(), ca_key, ca_cert, general_names, now=now, days=days
        )
        write_secret_bytes(entry.key, private_key_pem(key), overwrite=overwrite)
        write_public_pem(entry.cert, cert.public_bytes(pem), overwrite=overwrite)
    for path in stale:  # endpoints of the replaced deployment that the new one does not have
        path.unlink(missing_ok=True)
    return layout


def _parse_id(text: str, where: str) -> int:
    if not _ID_TEXT.fullmatch(text) or int(text) > MAX_PARTY_ID:
        raise InvalidInputError(f"certificate {where} holds no valid party id")
    return int(text)


def party_id_from_names(subject: x509.Name, extensions: x509.Extensions) -> int:
    """Return the party id named by a certificate's (or a request's) subject and extensions.

    Reads the subject CN ``smpcloud-party-<id>`` and the single SAN URI
    ``urn:smpcloud:party:<id>``; both must be present and agree, and ``<id>`` must be a decimal
    number in 0..65535 without leading zeros. Checks no signature.

    Args:
        subject: the subject name; extensions: the extensions (the SAN among them).

    Returns:
        The party id.

    Raises:
        InvalidInputError: no (or conflicting, or malformed) party ids.
    """
    try:
        names = subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        san = extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise InvalidInputError("certificate has no subject alternative name") from None
    except ValueError:
        raise InvalidInputError("certificate has malformed names") from None
    if len(names) != 1 or not isinstance(names[0].value, str):
        raise InvalidInputError("certificate must have exactly one subject common name")
    common_name = names[0].value
    if not common_name.startswith(CN_PREFIX):
        raise InvalidInputError("certificate subject is not an smpcloud party")
    from_cn = _parse_id(common_name.removeprefix(CN_PREFIX), "subject")
    uris = [
        uri
        for uri in san.get_values_for_type(x509.UniformResourceIdentifier)
        if uri.startswith(URI_PREFIX)
    ]
    if len(uris) != 1:
        raise InvalidInputError("certificate must have exactly one smpcloud party URI")
    from_uri = _parse_id(uris[0].removeprefix(URI_PREFIX), "URI")
    if from_cn != from_uri:
        raise InvalidInputError("certificate subject and URI name different parties")
    return from_cn


def party_id_from_certificate(certificate: bytes | x509.Certificate) -> int:
    """Return the party id an endpoint certificate was issued for.

    Reads the subject CN ``smpcloud-party-<id>`` and the single SAN URI
    ``urn:smpcloud:party:<id>``; both must be present and agree, and ``<id>`` must be a decimal
    number in 0..65535 without leading zeros (:func:`party_id_from_names`).

    Does **not** check the signature, the validity period or the issuer: call it only on a
    certificate that the TLS handshake has already verified against the deployment CA (as
    ``ssl.SSLObject.getpeercert(binary_form=True)`` returns it).

    Args:
        certificate: a DER-encoded certificate or a parsed one.

    Raises:
        InvalidInputError: not a certificate, or it carries no (or conflicting) party ids.
    """
    if isinstance(certificate, x509.Certificate):
        cert = certificate
    else:
        try:
            cert = x509.load_der_x509_certificate(bytes(certificate))
        except ValueError:
            raise InvalidInputError("not a DER-encoded X.509 certificate") from None
    try:
        extensions = cert.extensions
    except ValueError:
        raise InvalidInputError("certificate has malformed names") from None
    return party_id_from_names(cert.subject, extensions)


def load_certificate(path: str | os.PathLike[str]) -> x509.Certificate:
    """Read one PEM certificate (e.g. ``party-<id>.pem``).

    Raises:
        FileNotFoundError: no such file.
        InvalidInputError: the file holds no PEM certificate (the message names the file).
    """
    source = Path(path)
    data = source.read_bytes()
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError:
        raise InvalidInputError(f"{source}: not a PEM certificate") from None


__all__ = [
    "CA_DAYS",
    "CN_PREFIX",
    "ENDPOINT_DAYS",
    "MAX_DAYS",
    "MAX_PARTIES",
    "MAX_PARTY_ID",
    "URI_PREFIX",
    "CaFiles",
    "Deployment",
    "EndpointFiles",
    "check_days",
    "create_ca",
    "create_deployment",
    "deployment_files",
    "endpoint_subject",
    "issue_certificate",
    "load_certificate",
    "parse_host",
    "parse_hosts",
    "party_id_from_certificate",
    "party_id_from_names",
    "party_uri",
    "private_key_pem",
    "refuse_existing",
    "write_public_pem",
]

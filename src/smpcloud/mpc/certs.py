"""Deployment certificates for the TLS mesh: one CA, one certificate and key per endpoint.

A *deployment* is the set of endpoints that run one peer-MPC computation: parties 1..n and,
optionally, the dealer 0. :func:`create_deployment` makes, with ``cryptography`` and ECDSA P-256
keys (TLS 1.3 signature scheme ``ecdsa_secp256r1_sha256``, supported by every OpenSSL that
Python's ``ssl`` links against)::

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


def _check_host(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        pass
    name = host.rstrip(".")
    labels = name.split(".")
    if not name or len(name) > 253 or not all(_DNS_LABEL.fullmatch(label) for label in labels):
        raise InvalidInputError(f"host {host!r} is neither an IP address nor an ASCII DNS name")
    return x509.DNSName(name)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "smpcloud"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write_certificate(path: Path, cert: x509.Certificate, *, overwrite: bool = False) -> None:
    # "x": exclusive create, never follows or replaces an existing file; mode 0666 & ~umask.
    # Overwriting writes a new file the same way and renames it over the old one (atomic).
    target = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp") if overwrite else path
    try:
        with target.open("xb") as handle:
            handle.write(cert.public_bytes(serialization.Encoding.PEM))
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


def _make_endpoint(
    party: int,
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    hosts: Sequence[x509.GeneralName],
    now: datetime.datetime,
    days: int,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key()
    san: list[x509.GeneralName] = [x509.UniformResourceIdentifier(f"{URI_PREFIX}{party}")]
    san.extend(hosts)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(f"{CN_PREFIX}{party}"))
        .issuer_name(ca_cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _CLOCK_SKEW)
        .not_valid_after(now + datetime.timedelta(days=days))
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def create_deployment(
    out_dir: str | os.PathLike[str],
    *,
    parties: int,
    dealer: bool = True,
    hosts: Sequence[str] = ("127.0.0.1", "localhost"),
    days: int = 365,
    overwrite: bool = False,
) -> Deployment:
    """Create a deployment CA and one certificate + private key per endpoint in ``out_dir``.

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
    if not 1 <= days <= 36500:
        raise InvalidInputError(f"days must be in 1..36500, got {days}")
    if isinstance(hosts, str):
        raise InvalidInputError("hosts must be a sequence of host names, not one string")
    general_names: list[x509.GeneralName] = []
    for host in hosts:
        name = _check_host(host)
        if name not in general_names:
            general_names.append(name)

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
    existing = [str(p) for p in targets if os.path.lexists(p)]
    if existing and not overwrite:
        raise FileExistsError(f"refusing to overwrite existing files: {', '.join(existing)}")
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    stale = [p for p in deployment_files(directory) if p not in targets] if overwrite else []

    now = datetime.datetime.now(datetime.UTC)
    ca_key, ca_cert = _make_ca(now, days)
    # Private keys first: if a write fails half-way, no certificate points at a missing key.
    write_secret_bytes(layout.ca_key, _private_pem(ca_key), overwrite=overwrite)
    _write_certificate(layout.ca_cert, ca_cert, overwrite=overwrite)
    for entry in layout.endpoints:
        key, cert = _make_endpoint(entry.id, ca_key, ca_cert, general_names, now, days)
        write_secret_bytes(entry.key, _private_pem(key), overwrite=overwrite)
        _write_certificate(entry.cert, cert, overwrite=overwrite)
    for path in stale:  # endpoints of the replaced deployment that the new one does not have
        path.unlink(missing_ok=True)
    return layout


def _parse_id(text: str, where: str) -> int:
    if not _ID_TEXT.fullmatch(text) or int(text) > MAX_PARTY_ID:
        raise InvalidInputError(f"certificate {where} holds no valid party id")
    return int(text)


def party_id_from_certificate(certificate: bytes | x509.Certificate) -> int:
    """Return the party id an endpoint certificate was issued for.

    Reads the subject CN ``smpcloud-party-<id>`` and the single SAN URI
    ``urn:smpcloud:party:<id>``; both must be present and agree, and ``<id>`` must be a decimal
    number in 0..65535 without leading zeros.

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
        names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
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
    "CN_PREFIX",
    "MAX_PARTIES",
    "MAX_PARTY_ID",
    "URI_PREFIX",
    "Deployment",
    "EndpointFiles",
    "create_deployment",
    "deployment_files",
    "load_certificate",
    "party_id_from_certificate",
]
